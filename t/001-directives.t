# Every chat_* directive: accepted where it belongs, and "nginx -t"
# rejects bad values with a message that names the directive.

use Test::Nginx::Socket 'no_plan';
use ChatJWT;

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: every directive with a good value
--- http_config
    chat_node_name directives-node;
    chat_redis 127.0.0.1:1 127.0.0.1:2 unix:/tmp/chat-test-no-such.sock;
    chat_redis_timeout 500ms;
    chat_postgres "hostaddr=127.0.0.1 port=1 dbname=chat user=chat";
    chat_postgres_pool_size 3;
    chat_postgres_timeout 2s;
    chat_kafka_brokers 127.0.0.1:1,127.0.0.1:2;
    chat_kafka_timeout 3s;
    chat_kafka_option linger.ms 5;
    chat_kafka_option socket.keepalive.enable false;
    chat_healthz_timeout 1s;
--- config
    location = /healthz {
        chat_healthz;
        chat_healthz_timeout 300ms;
    }
    location = /plain {
        return 200 "plain\n";
    }
--- request
GET /plain
--- response_headers
X-Chat-Node: directives-node
--- response_body
plain
--- error_code: 200



=== TEST 2: X-Chat-Node defaults to the host name
--- http_config
    chat_redis 127.0.0.1:1;
--- config
    location = /plain {
        return 200 "plain\n";
    }
--- request
GET /plain
--- response_headers_like
X-Chat-Node: .+
--- error_code: 200



=== TEST 3: without any chat_* directive the module stays out of the way
--- config
    location = /plain {
        return 200 "plain\n";
    }
--- request
GET /plain
--- response_headers
X-Chat-Node:
--- error_code: 200



=== TEST 4: chat_redis_timeout must be a time
--- http_config
    chat_redis 127.0.0.1:1;
    chat_redis_timeout soon;
--- config
--- must_die
--- error_log
"chat_redis_timeout" directive invalid value



=== TEST 5: chat_redis_timeout must not be zero
--- http_config
    chat_redis 127.0.0.1:1;
    chat_redis_timeout 0;
--- config
--- must_die
--- error_log
"chat_redis_timeout" directive must be greater than zero



=== TEST 6: chat_redis needs an absolute unix socket path
--- http_config
    chat_redis unix:relative.sock;
--- config
--- must_die
--- error_log
chat_redis: "unix:relative.sock" is not an absolute unix socket path



=== TEST 7: chat_redis rejects a bad port
--- http_config
    chat_redis 127.0.0.1:notaport;
--- config
--- must_die
--- error_log
chat_redis: invalid port in "127.0.0.1:notaport"



=== TEST 8: chat_redis rejects the same server twice
--- http_config
    chat_redis 127.0.0.1:6379 127.0.0.1:6379;
--- config
--- must_die
--- error_log
chat_redis: "127.0.0.1:6379" is listed twice



=== TEST 9: chat_redis only once
--- http_config
    chat_redis 127.0.0.1:6379;
    chat_redis 127.0.0.1:6380;
--- config
--- must_die
--- error_log
"chat_redis" directive is duplicate



=== TEST 10: chat_redis takes at least one address
--- http_config
    chat_redis;
--- config
--- must_die
--- error_log
invalid number of arguments in "chat_redis" directive



=== TEST 11: chat_postgres rejects a host name (it would block on DNS)
--- http_config
    chat_postgres "host=db.example.com dbname=chat";
--- config
--- must_die
--- error_log
chat_postgres: "host" must be an IP address or a socket directory



=== TEST 12: chat_postgres accepts a numeric host and a socket directory
--- http_config
    chat_postgres "host=127.0.0.1,/var/run/postgresql port=1,2 dbname=chat";
--- config
    location = /plain {
        return 200 "plain\n";
    }
--- request
GET /plain
--- error_code: 200



=== TEST 13: chat_postgres rejects a malformed connection string, without echoing it
--- http_config
    chat_postgres "hostaddr=127.0.0.1 password=s3cret-value unknownkey=1";
--- config
--- must_die
--- error_log
chat_postgres: invalid connection string: invalid connection option "unknownkey"
--- no_error_log
s3cret-value



=== TEST 14: chat_postgres_pool_size is bounded
--- http_config
    chat_postgres "hostaddr=127.0.0.1 port=1";
    chat_postgres_pool_size 65;
--- config
--- must_die
--- error_log
"chat_postgres_pool_size" directive must be between 1 and 64



=== TEST 15: chat_postgres_pool_size must be a number
--- http_config
    chat_postgres "hostaddr=127.0.0.1 port=1";
    chat_postgres_pool_size many;
--- config
--- must_die
--- error_log
"chat_postgres_pool_size" directive invalid number



=== TEST 16: chat_postgres_timeout must not be zero
--- http_config
    chat_postgres "hostaddr=127.0.0.1 port=1";
    chat_postgres_timeout 0s;
--- config
--- must_die
--- error_log
"chat_postgres_timeout" directive must be greater than zero



=== TEST 17: chat_kafka_brokers without spaces
--- http_config
    chat_kafka_brokers "127.0.0.1:1, 127.0.0.1:2";
--- config
--- must_die
--- error_log
chat_kafka_brokers: "127.0.0.1:1, 127.0.0.1:2": list brokers separated by commas, without spaces



=== TEST 18: chat_kafka_timeout must be a time
--- http_config
    chat_kafka_brokers 127.0.0.1:1;
    chat_kafka_timeout -1;
--- config
--- must_die
--- error_log
"chat_kafka_timeout" directive invalid value



=== TEST 19: chat_kafka_option cannot weaken durability
--- http_config
    chat_kafka_brokers 127.0.0.1:1;
    chat_kafka_option acks 1;
--- config
--- must_die
--- error_log
chat_kafka_option: "acks" is set by the module



=== TEST 20: chat_kafka_option rejects an unknown property
--- http_config
    chat_kafka_brokers 127.0.0.1:1;
    chat_kafka_option no.such.property 1;
--- config
--- must_die
--- error_log
chat_kafka_option: "no.such.property": No such configuration property



=== TEST 21: chat_kafka_option rejects a bad value
--- http_config
    chat_kafka_brokers 127.0.0.1:1;
    chat_kafka_option linger.ms often;
--- config
--- must_die
--- error_log eval
qr/chat_kafka_option: "linger\.ms": Invalid value/



=== TEST 22: chat_healthz takes no arguments
--- config
    location = /healthz {
        chat_healthz please;
    }
--- must_die
--- error_log
invalid number of arguments in "chat_healthz" directive



=== TEST 23: chat_healthz_timeout must not be zero
--- config
    location = /healthz {
        chat_healthz;
        chat_healthz_timeout 0;
    }
--- must_die
--- error_log
"chat_healthz_timeout" directive must be greater than zero



=== TEST 24: backend directives belong in http{}, not in a location
--- config
    location = /x {
        chat_redis 127.0.0.1:6379;
    }
--- must_die
--- error_log
"chat_redis" directive is not allowed here



=== TEST 25: chat_send_rate takes r/s or r/m, a burst, or off
--- http_config
    chat_send_rate 300r/m burst=10;
--- config
    location = /a {
        chat_send_rate off;
        return 200 "a\n";
    }
    location = /b {
        chat_send_rate 5r/s;
        return 200 "b\n";
    }
--- request
GET /a
--- response_body
a
--- error_code: 200



=== TEST 26: chat_send_rate rejects a rate without a unit
--- config
    location = /x {
        chat_send_rate 20;
    }
--- must_die
--- error_log
invalid rate "20" (e.g. 20r/s, 300r/m)



=== TEST 27: chat_send_rate rejects a zero rate
--- config
    location = /x {
        chat_send_rate 0r/s;
    }
--- must_die
--- error_log
invalid rate "0r/s" (1 to 1000000)



=== TEST 28: chat_send_rate rejects a bad burst
--- config
    location = /x {
        chat_send_rate 5r/s burst=many;
    }
--- must_die
--- error_log
invalid burst "burst=many"



=== TEST 29: chat_send_rate rejects a parameter that is not burst=
--- config
    location = /x {
        chat_send_rate 5r/s nodelay;
    }
--- must_die
--- error_log
invalid parameter "nodelay"



=== TEST 30: chat_send_rate off takes no burst
--- config
    location = /x {
        chat_send_rate off burst=5;
    }
--- must_die
--- error_log
"chat_send_rate" directive takes no burst when off



=== TEST 31: chat_send_rate twice in one place
--- config
    location = /x {
        chat_send_rate 5r/s;
        chat_send_rate 6r/s;
    }
--- must_die
--- error_log
"chat_send_rate" directive is duplicate



=== TEST 32: the media directives with good values
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_postgres "hostaddr=127.0.0.1 port=1 dbname=chat user=chat";
    chat_media_path $TEST_NGINX_SERVER_ROOT/html/;
    chat_media_location /_store/;
    chat_media_max_size 2m;
    chat_media_url_ttl 10m;
    chat_media_url_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location /v1/ {
        chat_api;
    }
    location /_store/ {
        internal;
        alias $TEST_NGINX_SERVER_ROOT/html/;
    }
    location = /plain {
        return 200 "ok\n";
    }
--- request
GET /plain
--- response_body
ok
--- error_code: 200



=== TEST 33: chat_media_path needs a key for its URLs
--- http_config
    chat_media_path /tmp;
--- config
--- must_die
--- error_log
"chat_media_path" needs "chat_media_url_secret_file" or "chat_jwt_secret_file"



=== TEST 34: chat_media_location starts and ends with a slash
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_media_location /store;
--- config
--- must_die
--- error_log
"chat_media_location" must start and end with "/"



=== TEST 35: chat_media_url_ttl must not be zero
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_media_url_ttl 0;
--- config
--- must_die
--- error_log
"chat_media_url_ttl" must be greater than zero



=== TEST 36: chat_media_max_size must not be zero
--- http_config
    chat_media_max_size 0;
--- config
--- must_die
--- error_log
"chat_media_max_size" directive must be greater than zero



=== TEST 37: chat_media_path only once
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_media_path /tmp;
    chat_media_path /var/tmp;
--- config
--- must_die
--- error_log
"chat_media_path" directive is duplicate



=== TEST 38: chat_media_s3 with its credentials and chat_media_path
--- user_files
>>> s3.credentials
AKIDEXAMPLE
wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
>>> url.secret
0123456789abcdef0123456789abcdef0123456789
--- http_config
    chat_media_path html;
    chat_media_url_secret_file ../html/url.secret;
    chat_media_s3 https://s3.eu-west-1.amazonaws.com:443/ my-bucket.1 eu-west-1;
    chat_media_s3_credentials_file ../html/s3.credentials;
    chat_media_s3_location /_s3/;
--- config
    location = /plain {
        return 200 "plain\n";
    }
--- request
GET /plain
--- response_body
plain
--- error_code: 200



=== TEST 39: chat_media_s3 takes no path in its endpoint
--- http_config
    chat_media_s3 http://127.0.0.1:9000/bucket bucket us-east-1;
--- config
--- must_die
--- error_log
chat_media_s3: the endpoint "http://127.0.0.1:9000/bucket" must be a scheme and host[:port], with no path



=== TEST 40: chat_media_s3 checks the bucket's name
--- http_config
    chat_media_s3 http://127.0.0.1:9000 My_Bucket us-east-1;
--- config
--- must_die
--- error_log
chat_media_s3: the bucket "My_Bucket" must be 3 to 63 of a-z 0-9 . -



=== TEST 41: chat_media_s3 needs its credentials
--- user_files
>>> url.secret
0123456789abcdef0123456789abcdef0123456789
--- http_config
    chat_media_path html;
    chat_media_url_secret_file ../html/url.secret;
    chat_media_s3 http://127.0.0.1:9000 bucket us-east-1;
--- config
--- must_die
--- error_log
"chat_media_s3" needs "chat_media_s3_credentials_file"



=== TEST 42: chat_media_s3_credentials_file takes two lines, and says so without the secret
--- user_files
>>> s3.credentials
AKIDEXAMPLE
wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
extra
--- http_config
    chat_media_s3_credentials_file ../html/s3.credentials;
--- config
--- must_die
--- error_log
must hold the access key id (visible ASCII, no / , = ;) on its first line and the secret access key (at most 128 bytes) on its second, and nothing else
--- no_error_log
wJalrXUtnFEMI



=== TEST 43: chat_media_s3 needs chat_media_path (uploads are written there first)
--- user_files
>>> s3.credentials
AKIDEXAMPLE
wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
--- http_config
    chat_media_s3 http://127.0.0.1:9000 bucket us-east-1;
    chat_media_s3_credentials_file ../html/s3.credentials;
--- config
--- must_die
--- error_log
"chat_media_s3" needs "chat_media_path"



=== TEST 44: chat_public_url wants an http(s) URL with a host
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_public_url ftp://chat.example.com;
--- config
--- must_die
--- error_log
"chat_public_url" directive wants an http:// or https:// URL with a host



=== TEST 45: chat_public_url refuses a query, a user, spaces
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_public_url "https://user@chat.example.com/?x=1";
--- config
--- must_die
--- error_log
"chat_public_url" directive wants a URL without query, fragment, user or spaces



=== TEST 46: chat_public_url with no host
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_public_url https:///v1;
--- config
--- must_die
--- error_log
"chat_public_url" directive wants an http:// or https:// URL with a host



=== TEST 47: an nginx with the module for chat_auth alone (an edge) names no node
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /index.html {
        chat_auth on;
    }
--- request
GET /index.html
--- error_code: 401
--- response_headers
!X-Chat-Node
WWW-Authenticate: Bearer realm="chat"
