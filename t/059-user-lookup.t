# GET /v1/users/lookup?username=<name>: the account of a username, for
# clients that take a name (the web client's new chat and friend request):
# 200 {"user_id","username","display_name"} for an existing name (also
# percent-encoded), 404 not_found for a name nobody has, 400 for a name
# that registration would refuse (or none), 401 without a token; against
# the test stack's real PostgreSQL.  The user is made with psql (no
# password hashing spent on it; its hash is unusable).

use Test::Nginx::Socket 'no_plan';
use ChatJWT;
use ChatPersist ();

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

our $Run = sprintf '%x%x', $$, time;
our $Name = "lk_$Run";
# a display name that JSON must escape
our $Id = ChatPersist::sql(<<'SQL', name => $Name);
INSERT INTO users (username, display_name, password_hash)
    VALUES (:'name', 'Look "Up"', '!') RETURNING id
SQL
our $Auth = 'Authorization: Bearer ' . ChatJWT::token(sub => $Id);
our $Missing = "lm_$Run";

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value(http_config => <<'CONF');
    chat_node_name lookup;
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
CONF
    $block->set_value(config => <<'CONF');
    location /v1/ {
        chat_api;
    }
CONF
    $block->set_value(more_headers => $Auth)
        unless defined $block->more_headers;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: an existing username: its id, name and display name
--- request eval
"GET /v1/users/lookup?username=$::Name"
--- error_code: 200
--- response_headers
Content-Type: application/json
X-Chat-Node: lookup
--- response_body eval
qq({"user_id":$::Id,"username":"$::Name","display_name":"Look \\"Up\\""}\n)



=== TEST 2: percent-encoded, among other parameters
--- request eval
my $n = $::Name;
$n =~ s/_/%5F/g;
"GET /v1/users/lookup?x=1&username=$n&y=2"
--- error_code: 200
--- response_body_like eval
qr/\A\{"user_id":$::Id,"username":"$::Name",/



=== TEST 3: a name nobody has: 404
--- request eval
"GET /v1/users/lookup?username=$::Missing"
--- error_code: 404
--- response_body
{"error":"not_found","message":"no such user"}



=== TEST 4: malformed names: 400, as registration would refuse them
--- request eval
[ "GET /v1/users/lookup?username=Upper_$::Run",
  "GET /v1/users/lookup?username=ab",
  "GET /v1/users/lookup?username=" . ('a' x 33),
  "GET /v1/users/lookup?username=",
  "GET /v1/users/lookup?username=a%20b_c",
  "GET /v1/users/lookup?username=$::Name%27--" ]
--- more_headers eval
[ ($::Auth) x 6 ]
--- error_code eval
[ (400) x 6 ]
--- response_body eval
[ ('{"error":"bad_request","message":"\"username\" must match '
   . "[a-z0-9_]{3,32}\"}\n") x 6 ]



=== TEST 5: no username parameter: 400
--- request
GET /v1/users/lookup?user=x
--- error_code: 400
--- response_body
{"error":"bad_request","message":"\"username\" is required"}



=== TEST 6: no token: 401
--- more_headers
X-Nothing: 1
--- request eval
"GET /v1/users/lookup?username=$::Name"
--- error_code: 401
--- response_body
{"error":"unauthorized","message":"no bearer token"}



=== TEST 7: another method: 405
--- request eval
"POST /v1/users/lookup?username=$::Name\n{}"
--- error_code: 405
