# Abuse limits that stock nginx directives provide around the API: logins
# per address with limit_req keyed by $binary_remote_addr, answered in
# JSON through error_page (as lua-free-conf/single-node.conf does).  One
# repetition: the zone's state would carry over into a second.

use Test::Nginx::Socket 'no_plan';
use ChatJWT;

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: logins per address: stock limit_req keyed by address, answered in JSON
--- http_config
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_postgres "hostaddr=127.0.0.1 port=1 dbname=chat user=chat";
    limit_req_zone $binary_remote_addr zone=login_t21:1m rate=1r/m;
    limit_req_status 429;
--- config
    location = /v1/sessions {
        limit_req zone=login_t21;
        error_page 429 = @json429;
        chat_api;
    }
    location @json429 {
        default_type application/json;
        return 429 '{"error":"rate_limited","message":"too many requests"}\n';
    }
--- request eval
["POST /v1/sessions\n{}", "POST /v1/sessions\n{}"]
--- error_code eval
[400, 429]
--- response_body eval
["{\"error\":\"bad_request\",\"message\":\"\\\"username\\\" is required\"}\n",
 "{\"error\":\"rate_limited\",\"message\":\"too many requests\"}\n"]
