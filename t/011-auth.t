# chat_auth, chat_jwt_secret_file, chat_jwt_ttl and $chat_user_id: bearer
# tokens are checked in the access phase with no database round trip;
# every kind of bad token gets a 401 with a JSON error.  The protected
# locations serve stub_status, a content handler: "return" would answer in
# the rewrite phase, before any access check.

use Test::Nginx::Socket 'no_plan';
use ChatJWT;

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

our $Short = '/tmp/chat-jwt-short-' . $$;
open my $fh, '>', $Short or die $!;
print $fh "too-short-secret\n";
close $fh;
$ENV{TEST_NGINX_SHORT_SECRET_FILE} = $Short;
END { unlink $Short }

our $Good = ChatJWT::token(sub => 42);

repeat_each(2);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a valid token passes and sets $chat_user_id
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /t {
        chat_auth on;
        add_header X-User $chat_user_id;
        stub_status;
    }
--- more_headers eval
"Authorization: Bearer $::Good"
--- request
GET /t
--- response_headers
X-User: 42
--- response_body_like: ^Active connections
--- error_code: 200



=== TEST 2: the scheme is case-insensitive
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /t {
        chat_auth on;
        add_header X-User $chat_user_id;
        stub_status;
    }
--- more_headers eval
"Authorization: bearer $::Good"
--- request
GET /t
--- response_headers
X-User: 42
--- error_code: 200



=== TEST 3: ?access_token= where chat_auth_query_token is on (edges)
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /t {
        chat_auth on;
        chat_auth_query_token on;
        add_header X-User $chat_user_id;
        stub_status;
    }
--- request eval
"GET /t?access_token=$::Good"
--- response_headers
X-User: 42
--- error_code: 200



=== TEST 4: ?access_token= is ignored elsewhere: no token, 401
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /t {
        chat_auth on;
        add_header X-User $chat_user_id always;
        stub_status;
    }
--- request eval
"GET /t?access_token=$::Good"
--- response_headers
X-User:
--- response_body_like: "no bearer token"
--- error_code: 401



=== TEST 5: the token never reaches the error log's request line
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /t {
        chat_auth on;
        chat_auth_query_token on;
        client_max_body_size 10;
        stub_status;
    }
--- log_level: info
--- request eval
"POST /t?a=1&access_token=$::Good&Access_Token=x.y.z&b=2\n" . ('x' x 100)
--- error_code: 413
--- error_log eval
qr{request: "POST /t\?a=1&access_token=\[hidden\]&Access_Token=\[hidden\]&b=2 HTTP/1\.1"}
--- no_error_log eval
[$::Good =~ s/.*\.//r]



=== TEST 6: no token: 401, JSON, WWW-Authenticate
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /t {
        chat_auth on;
        stub_status;
    }
--- request
GET /t
--- response_headers
WWW-Authenticate: Bearer realm="chat"
Content-Type: application/json
--- response_body
{"error":"unauthorized","message":"no bearer token"}
--- error_code: 401



=== TEST 7: a request body is discarded, not read as the next request
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /t {
        chat_auth on;
        stub_status;
    }
--- request
POST /t
{"a":"b"}
--- response_body_like: "error":"unauthorized"
--- error_code: 401



=== TEST 8: expired
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /t {
        chat_auth on;
        stub_status;
    }
--- more_headers eval
"Authorization: Bearer " . ChatJWT::token(sub => 42, exp => time - 1)
--- request
GET /t
--- response_body_like: ^\{"error":"unauthorized","message":"[^"]*expired[^"]*"\}$
--- error_code: 401



=== TEST 9: signed with another secret
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /t {
        chat_auth on;
        stub_status;
    }
--- more_headers eval
"Authorization: Bearer " . ChatJWT::token(sub => 42, secret => 'x' x 48)
--- request
GET /t
--- response_body_like: ^\{"error":"unauthorized","message":"[^"]*signature[^"]*"\}$
--- error_code: 401



=== TEST 10: a payload changed after signing
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /t {
        chat_auth on;
        stub_status;
    }
--- more_headers eval
my ($h, $p, $s) = split /\./, ChatJWT::token(sub => 42);
"Authorization: Bearer $h." . ChatJWT::b64('{"sub":"1","exp":9999999999}')
. ".$s"
--- request
GET /t
--- response_body_like: "error":"unauthorized"
--- error_code: 401



=== TEST 11: alg none, with and without a signature
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /t {
        chat_auth on;
        stub_status;
    }
--- request eval
["GET /t", "GET /t"]
--- more_headers eval
["Authorization: Bearer "
 . ChatJWT::token(header => '{"alg":"none","typ":"JWT"}', sig => ''),
 "Authorization: Bearer "
 . ChatJWT::token(header => '{"alg":"none","typ":"JWT"}')]
--- error_code eval
[401, 401]
--- response_body_like eval
[qr/"error":"unauthorized"/, qr/"error":"unauthorized"/]



=== TEST 12: HS512 and RS256 headers are refused (alg pinned)
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /t {
        chat_auth on;
        stub_status;
    }
--- request eval
["GET /t", "GET /t"]
--- more_headers eval
["Authorization: Bearer "
 . ChatJWT::token(header => '{"alg":"HS512","typ":"JWT"}'),
 "Authorization: Bearer "
 . ChatJWT::token(header => '{"alg":"RS256","typ":"JWT"}')]
--- error_code eval
[401, 401]



=== TEST 13: garbage, a user id of 0, and a token that is not a JWT
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /t {
        chat_auth on;
        stub_status;
    }
--- request eval
["GET /t", "GET /t", "GET /t", "GET /t"]
--- more_headers eval
["Authorization: Bearer not.a.token",
 "Authorization: Bearer " . ChatJWT::token(sub => 0),
 "Authorization: Basic dXNlcjpwYXNz",
 "Authorization: Bearer " . ('A' x 5000)]
--- error_code eval
[401, 401, 401, 401]



=== TEST 14: chat_auth off (the default) lets requests through, $chat_user_id empty
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /t {
        return 200 "user [$chat_user_id]\n";
    }
--- request
GET /t
--- response_body
user []



=== TEST 15: $chat_user_id works without chat_auth, for hash and log_format
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    log_format chat_user '$chat_user_id $uri';
    upstream chat_nodes {
        hash $chat_user_id consistent;
        server 127.0.0.1:1;
        server 127.0.0.1:2;
    }
--- config
    access_log logs/user.log chat_user;
    location = /t {
        return 200 "user $chat_user_id\n";
    }
--- more_headers eval
"Authorization: Bearer $::Good"
--- request
GET /t
--- response_body
user 42



=== TEST 16: chat_auth is inherited by nested locations
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location /v1/ {
        chat_auth on;
        location /v1/inner {
            stub_status;
        }
    }
--- request
GET /v1/inner
--- error_code: 401



=== TEST 17: chat_jwt_secret_file that does not exist
--- http_config
    chat_jwt_secret_file /nonexistent/chat.secret;
--- config
--- must_die
--- error_log
chat_jwt_secret_file: cannot open "/nonexistent/chat.secret"



=== TEST 18: a secret that is too short, never echoed
--- http_config
    chat_jwt_secret_file $TEST_NGINX_SHORT_SECRET_FILE;
--- config
--- must_die
--- error_log eval
qr/chat_jwt_secret_file: "[^"]+" holds 16 bytes, at least 32 are needed/
--- no_error_log
too-short-secret



=== TEST 19: chat_jwt_ttl must be a positive time
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_jwt_ttl 0;
--- config
--- must_die
--- error_log
"chat_jwt_ttl" must be greater than zero



=== TEST 20: chat_auth takes on or off
--- config
    location = /t {
        chat_auth maybe;
    }
--- must_die
--- error_log
invalid value "maybe" in "chat_auth" directive, it must be "on" or "off"



=== TEST 21: chat_api needs a secret
--- http_config
    chat_postgres "hostaddr=127.0.0.1 port=1";
--- config
    location /v1/ {
        chat_api;
    }
--- must_die
--- error_log
"chat_api" needs "chat_jwt_secret_file"



=== TEST 22: chat_api needs PostgreSQL
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location /v1/ {
        chat_api;
    }
--- must_die
--- error_log
"chat_api" needs "chat_postgres"



=== TEST 23: chat_thread_pool must name a thread pool
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_postgres "hostaddr=127.0.0.1 port=1";
    chat_thread_pool no_such_pool;
--- config
    location /v1/ {
        chat_api;
    }
--- must_die
--- error_log
unknown thread pool "no_such_pool"



=== TEST 24: chat_password_concurrency is bounded
--- http_config
    chat_password_concurrency 0;
--- config
--- must_die
--- error_log
"chat_password_concurrency" directive must be between 1 and 256



=== TEST 25: chat_login_limit takes a number and a period, or off
--- http_config
    chat_login_limit ten 1m;
--- config
--- must_die
--- error_log
"chat_login_limit" directive invalid number of failures
