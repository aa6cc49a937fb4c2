# GET /healthz against the real PostgreSQL, Redis and Kafka broker of the
# test stack and against ports where nothing listens (down).  Each request
# is made twice against one nginx, which catches state that leaks between
# requests.

use Test::Nginx::Socket 'no_plan';
repeat_each(2);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: all three backends up
--- http_config
    chat_node_name hz1;
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_kafka_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location = /healthz {
        chat_healthz;
    }
--- request
GET /healthz
--- response_headers
Content-Type: application/json
X-Chat-Node: hz1
--- response_body
{"status":"ok","node":"hz1","postgres":"ok","kafka":"ok","redis":"ok"}
--- error_code: 200
--- no_error_log
[error]



=== TEST 2: HEAD answers like GET, without a body
--- http_config
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
--- config
    location = /healthz {
        chat_healthz;
    }
--- request
HEAD /healthz
--- response_body
--- error_code: 200



=== TEST 3: other methods get 405 with a JSON error
--- http_config
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
--- config
    location = /healthz {
        chat_healthz;
    }
--- request
POST /healthz
hello
--- response_body
{"error":"method_not_allowed","message":"use GET or HEAD"}
--- error_code: 405



=== TEST 4: Redis down is named, the others stay ok
--- http_config
    chat_redis 127.0.0.1:1;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_kafka_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location = /healthz {
        chat_healthz;
    }
--- request
GET /healthz
--- response_body_like: ^\{"status":"unavailable","node":"[^"]+","postgres":"ok","kafka":"ok","redis":"down","error":"backend_unavailable","message":"redis 127.0.0.1:1: down"\}$
--- error_code: 503
--- error_log
chat: healthz: redis 127.0.0.1:1: down



=== TEST 5: PostgreSQL down is named
--- http_config
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "hostaddr=127.0.0.1 port=1 dbname=chat user=chat";
    chat_kafka_brokers $TEST_NGINX_KAFKA_BROKERS;
--- config
    location = /healthz {
        chat_healthz;
    }
--- request
GET /healthz
--- response_body_like: ^\{"status":"unavailable","node":"[^"]+","postgres":"down","kafka":"ok","redis":"ok","error":"backend_unavailable","message":"postgres: down"\}$
--- error_code: 503
--- error_log
chat: healthz: postgres: down



=== TEST 6: Kafka down is named, within chat_healthz_timeout
--- http_config
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_kafka_brokers 127.0.0.1:1;
--- config
    location = /healthz {
        chat_healthz;
        chat_healthz_timeout 1500ms;
    }
--- request
GET /healthz
--- response_body_like: "kafka":"(down|timeout)".*"message":"kafka: (down|timeout)"
--- error_code: 503
--- timeout: 5



=== TEST 7: several Redis servers are reported one by one
--- http_config
    chat_redis $TEST_NGINX_REDIS 127.0.0.1:1;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
--- config
    location = /healthz {
        chat_healthz;
    }
--- request
GET /healthz
--- response_body_like: "redis":"down","redis_servers":\{"[0-9.:]+":"ok","127\.0\.0\.1:1":"down"\}
--- error_code: 503



=== TEST 8: the password of chat_postgres never reaches the error log
--- http_config
    chat_postgres "hostaddr=127.0.0.1 port=1 dbname=chat user=chat password=pw-must-not-leak";
--- config
    location = /healthz {
        chat_healthz;
    }
--- request
GET /healthz
--- error_code: 503
--- no_error_log
pw-must-not-leak
