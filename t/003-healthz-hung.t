# GET /healthz against hung backends: a listener that accepts connections
# and never answers.  /healthz must still answer, within its timeout.

use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;

# A hung backend: the kernel completes the handshake from the listen
# backlog, nobody ever reads or writes.
our $Hung = IO::Socket::INET->new(
    Listen    => 64,
    LocalAddr => '127.0.0.1',
    LocalPort => 0,
    Proto     => 'tcp',
) or die "cannot listen: $!";

$ENV{TEST_NGINX_HUNG} = '127.0.0.1:' . $Hung->sockport;
$ENV{TEST_NGINX_HUNG_PORT} = $Hung->sockport;

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a hung Redis times out after chat_redis_timeout
--- http_config
    chat_redis $TEST_NGINX_HUNG;
    chat_redis_timeout 300ms;
--- config
    location = /healthz {
        chat_healthz;
    }
--- request
GET /healthz
--- response_body_like: "redis":"timeout".*"message":"redis 127\.0\.0\.1:\d+: timeout"
--- error_code: 503
--- error_log eval
qr/chat: redis 127\.0\.0\.1:\d+: (no reply in 300 ms|connect timed out after 300 ms)/



=== TEST 2: a hung PostgreSQL answers 503 by chat_healthz_timeout
--- http_config
    chat_postgres "hostaddr=127.0.0.1 port=$TEST_NGINX_HUNG_PORT dbname=chat user=chat";
    chat_postgres_timeout 5s;
--- config
    location = /healthz {
        chat_healthz;
        chat_healthz_timeout 400ms;
    }
--- request
GET /healthz
--- response_body_like: "postgres":"timeout".*"message":"postgres: timeout"
--- error_code: 503
--- timeout: 3



=== TEST 3: a hung PostgreSQL is given up after chat_postgres_timeout
--- http_config
    chat_postgres "hostaddr=127.0.0.1 port=$TEST_NGINX_HUNG_PORT dbname=chat user=chat";
    chat_postgres_timeout 200ms;
--- config
    location = /healthz {
        chat_healthz;
        chat_healthz_timeout 1s;
    }
--- request
GET /healthz
--- response_body_like: "postgres":"(timeout|down)"
--- error_code: 503
--- error_log
chat: postgres: connect timed out after 200 ms



=== TEST 4: a hung Kafka broker answers 503 by chat_healthz_timeout
--- http_config
    chat_kafka_brokers $TEST_NGINX_HUNG;
--- config
    location = /healthz {
        chat_healthz;
        chat_healthz_timeout 500ms;
    }
--- request
GET /healthz
--- response_body_like: "kafka":"(timeout|down)"
--- error_code: 503
--- timeout: 3
