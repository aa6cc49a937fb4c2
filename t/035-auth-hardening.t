# Issue #12's authentication defects, against the real stack:
#
#   - device tokens: another user's PUT is 409 and moves nothing; DELETE
#     removes only one's own (defect 6);
#   - login limiting: an attempt is reserved before the hash is checked,
#     so 15 concurrent wrong passwords give exactly chat_login_limit 401s;
#     the limit is per (username, address): a stranger elsewhere does not
#     lock the owner out; over the per-username ceiling attempts are paced
#     with a growing Retry-After, never refused for good (defect 4);
#   - tokens in the logs: ?access_token= only on the WebSocket route, and
#     no token in any log file, whatever nginx logs about the request
#     (too large body, bad JSON, 401) (defect 5);
#   - logout (DELETE /v1/sessions/current), on two nginx instances sharing
#     the stack: the token gets 401 on both at once, a new WebSocket with it
#     401, its open WebSockets on both close with 1008 within a second;
#     another token of the same user keeps working.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use ChatClient qw(frame next_of);
use POSIX ();
use ChatTest;
use ChatJWT;
use ChatWS;

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

my $http = <<'CONF';
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_kafka_brokers $TEST_NGINX_KAFKA_BROKERS;
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_login_limit 10 1m;
    chat_password_concurrency 2;
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Forwarded-For;
    log_format tokens '$remote_addr "$request" $status "$http_referer"';
CONF
my $server = <<'CONF';
    access_log logs/tokens-access.log tokens;
    access_log logs/combined-access.log combined;
    location /v1/ {
        client_max_body_size 1k;
        chat_api;
    }
    location = /v1/ws {
        chat_websocket;
    }
CONF

ChatTest::start_nginx(workers => 2, http_config => $http, config => $server);
my $port2 = ChatTest::port() + 3;
ChatTest::start_nginx(name => 'two', workers => 2, port => $port2,
                      http_config => $http, config => $server);

my $run = sprintf '%x%x', $$, int(time * 1000) % 1000000;
my (%tok, %uid);

sub api {
    my ($method, $path, $body, $who, %o) = @_;
    my %h = %{ $o{headers} || {} };
    $h{Authorization} = "Bearer $tok{$who}" if $who && $tok{$who};
    $h{'Content-Type'} = 'application/json' if defined $body;
    my ($status, $headers, $text) = ChatTest::http_request(
        $method, $path, \%h,
        defined $body ? (ref $body ? encode_json($body) : $body) : undef,
        timeout => $o{timeout} // 20, port => $o{port});
    my $json = eval { decode_json($text) };
    return ($status, $json, $text, $headers);
}

sub login {
    my ($name, $password, $addr, %o) = @_;
    return api(POST => '/v1/sessions',
               { username => "${name}_$run", password => $password }, undef,
               headers => { 'X-Forwarded-For' => $addr }, %o);
}

for my $name (qw(owner other)) {
    my ($st, $j, $t) = api(POST => '/v1/users',
                           { username => "${name}_$run",
                             password => "pw-$name-secret" });
    is($st, 201, "register $name") or diag $t;
    $uid{$name} = $j->{user_id};
    ($st, $j) = login($name, "pw-$name-secret", '198.51.100.1');
    is($st, 200, "$name logs in");
    $tok{$name} = $j->{token};
}


# --- device tokens (defect 6) ---------------------------------------------

{
    my $dev = "/v1/devices/dev-$run";
    my ($st, $j) = api(PUT => $dev, { platform => 'fcm' }, 'owner');
    is($st, 204, 'the owner registers a device token');
    ($st) = api(PUT => $dev, { platform => 'apns' }, 'owner');
    is($st, 204, '... again: still 204');

    ($st, $j) = api(PUT => $dev, { platform => 'webhook' }, 'other');
    is($st, 409, 'another user registering the same token: 409');
    is($j->{error}, 'conflict', '... error "conflict"');
    ok(length($j->{message} // ''), '... with a message');

    ($st) = api(DELETE => $dev, undef, 'other');
    is($st, 204, 'DELETE of a token one does not hold: 204 (idempotent)');
    ($st) = api(PUT => $dev, { platform => 'webhook' }, 'other');
    is($st, 409, '... and it did not remove the owner\'s: still 409');

    ($st) = api(DELETE => $dev, undef, 'owner');
    is($st, 204, 'the owner deletes it: 204');
    ($st) = api(DELETE => $dev, undef, 'owner');
    is($st, 204, '... again: 204');
    ($st) = api(PUT => $dev, { platform => 'webhook' }, 'other');
    is($st, 204, 'a deleted token is free: the other user takes it');
    ($st) = api(PUT => $dev, { platform => 'fcm' }, 'owner');
    is($st, 409, '... and now the owner gets 409');

    ($st) = api(DELETE => $dev, undef, undef);
    is($st, 401, 'DELETE without a token: 401');
    ($st) = api(DELETE => '/v1/devices/' . ('x' x 4097), undef, 'owner');
    is($st, 400, 'DELETE of an over-long token: 400');
}


# --- login limiting (defect 4) ------------------------------------------------

# 15 wrong passwords at once from one address, limit 10
{
    my @kids;
    for my $i (1 .. 15) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my ($s) = login('owner', "wrong-$i", '203.0.113.7',
                            timeout => 60);
            POSIX::_exit($s == 401 ? 1 : $s == 429 ? 2 : 3);
        }
        push @kids, $pid;
    }
    my %n = (1 => 0, 2 => 0, 3 => 0);
    for my $pid (@kids) {
        waitpid $pid, 0;
        $n{ $? >> 8 }++;
    }
    is($n{1}, 10, '15 concurrent wrong logins: exactly 10 are checked (401)');
    is($n{2}, 5, '... the other 5 are refused before hashing (429)');
    is($n{3}, 0, '... nothing else');
}

my ($st, $j, undef, $h) = login('owner', 'pw-owner-secret', '203.0.113.7');
is($st, 429, 'from that address even the right password waits');
is($j->{error}, 'rate_limited', '... rate_limited');
ok($j->{retry_after} >= 1 && $j->{retry_after} <= 60,
   "... retry_after in seconds ($j->{retry_after})");
is($h->{'retry-after'}, $j->{retry_after}, '... and a Retry-After header');

($st, $j) = login('owner', 'pw-owner-secret', '198.51.100.1');
is($st, 200, 'the owner from another address logs in');

# the per-username ceiling (10 x the limit): 90 more failures from 9 other
# addresses, 100 in all
{
    my @kids;
    for my $a (1 .. 9) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $bad = 0;
            for my $i (1 .. 10) {
                my ($s) = login('owner', "wrong-$a-$i", "203.0.113.1$a",
                                timeout => 60);
                $bad++ if $s != 401;
            }
            POSIX::_exit($bad ? 1 : 0);
        }
        push @kids, $pid;
    }
    my $bad = 0;
    for my $pid (@kids) {
        waitpid $pid, 0;
        $bad++ if $?;
    }
    is($bad, 0, '90 more wrong passwords from 9 addresses: all checked');
}

($st, $j) = login('owner', 'wrong-again', '203.0.113.50');
is($st, 401, 'over the ceiling: one attempt is let through (a fresh address)');
($st, $j, undef, $h) = login('owner', 'wrong-again', '203.0.113.51');
is($st, 429, '... the next one, from yet another address, waits');
ok($j->{retry_after} >= 1 && $j->{retry_after} <= 64,
   "... for a pause ($j->{retry_after} s)");
($st, $j) = login('owner', 'pw-owner-secret', '198.51.100.2');
is($st, 429, '... the owner too: slowed down, not locked out');
my $wait = $j->{retry_after} // 1;
sleep $wait + 0.2;
($st) = login('owner', 'pw-owner-secret', '198.51.100.2');
is($st, 200, "after the pause the owner logs in (${wait} s)");

# the other user is not affected at all
($st) = login('other', 'pw-other-secret', '203.0.113.7');
is($st, 200, 'another username from the attacker\'s address: 200');



# --- no token in the logs (defect 5) ------------------------------------------

{
    my $q = $tok{owner};          # in query strings
    my $hd = $tok{other};         # in Authorization headers
    my $bad = ChatJWT::token(sub => $uid{owner}, secret => 'x' x 40);
    my ($st, $j);

    ($st, $j) = api(GET => "/v1/me?access_token=$q");
    is($st, 401, 'the API ignores ?access_token= (as if no token)');
    is($j->{message}, 'no bearer token', '... "no bearer token"');
    ($st) = api(GET => "/v1/me?access_token=$q", undef, 'other');
    is($st, 200, '... a header token works beside it');

    ($st) = api(POST => "/v1/groups?x=1&access_token=$q",
                '{"name":"' . ('y' x 2000) . '","members":[]}', 'other');
    is($st, 413, 'a body over client_max_body_size: 413 (nginx logs it)');
    ($st) = api(POST => "/v1/groups?access_token=$q", '{"name":', 'other');
    is($st, 400, 'bad JSON: 400');
    ($st) = api(GET => "/v1/me?access_token=$bad",
                undef, undef, headers => { Authorization => "Bearer $bad" });
    is($st, 401, 'a token with a bad signature: 401');
    ($st) = api(GET => "/v1/nowhere?access_token=$q", undef, 'other');
    is($st, 404, 'an unknown path: 404');

    my $ws = ChatWS->new(port => ChatTest::port());
    ($st) = $ws->handshake("/v1/ws?access_token=$q");
    is($st, 101, 'the WebSocket route takes ?access_token=');
    $ws->close;
    $ws = ChatWS->new(port => ChatTest::port());
    ($st) = $ws->handshake("/v1/ws?access_token=$bad");
    is($st, 401, '... and refuses a bad one with 401');
    $ws->close;

    sleep 0.5;
    my $logs = ChatTest::servroot() . '/logs';
    my $all = join '', map { ChatTest::slurp($_) // '' } glob "$logs/*.log";
    like($all, qr/client intended to send too large body/,
         'nginx did log the oversized body (with its request line)');
    like($all, qr{request: "POST /v1/groups\?x=1&access_token=\[hidden\]},
         '... whose token is [hidden]');
    like(ChatTest::slurp("$logs/tokens-access.log"),
         qr{"GET /v1/me\?access_token=\[hidden\] HTTP/1.1" 401},
         '$request in access logs is the scrubbed line too');
    for my $t ([query => $q], [header => $hd], [bad => $bad]) {
        my ($sig) = $t->[1] =~ /\.([^.]+)$/;
        unlike($all, qr/\Q$sig\E/,
               "the $t->[0] token's signature is in no log file");
    }
}



# --- logout ("other": the owner is being paced by now) -------------------------

{
    my ($st, $j, $a, $b);
    ($st, $a) = login('other', 'pw-other-secret', '198.51.100.9');
    ($st, $b) = login('other', 'pw-other-secret', '198.51.100.9');
    my ($ta, $tb) = ($a->{token}, $b->{token});
    isnt($ta, $tb, 'two logins in one second give two tokens (jti)');
    my $port1 = ChatTest::port();

    my $ws = sub {
        my ($port, $path, %h) = @_;
        my $w = ChatWS->new(port => $port);
        my ($code) = $w->handshake($path, %h);
        return ($w, $code);
    };
    my ($wa1, $c1) = $ws->($port1, '/v1/ws', Authorization => "Bearer $ta");
    my ($wa2, $c2) = $ws->($port2, "/v1/ws?access_token=$ta");
    my ($wb2, $c3) = $ws->($port2, '/v1/ws', Authorization => "Bearer $tb");
    is("$c1 $c2 $c3", '101 101 101', 'token A on both nodes, B on node two');
    sleep 0.5;    # their routes are in Redis

    my $me = sub {
        my ($t, $port) = @_;
        return api(GET => '/v1/me', undef, undef, port => $port,
                   headers => { Authorization => "Bearer $t" });
    };

    ($st) = api(DELETE => '/v1/sessions/current', undef, undef,
                headers => { Authorization => "Bearer $ta" });
    is($st, 204, 'DELETE /v1/sessions/current: 204');
    my $t0 = time;

    is($wa1->read_close(1), 1008, 'its WebSocket on node one: close 1008');
    is($wa2->read_close(1), 1008, 'its WebSocket on node two: close 1008');
    cmp_ok(time - $t0, '<', 1, '... within a second');

    ($st, $j) = $me->($ta, $port1);
    is($st, 401, 'the token: 401 on node one');
    is($j->{message}, 'token revoked', '... "token revoked"');
    ($st) = $me->($ta, $port2);
    is($st, 401, '... and on node two');
    ($st) = api(DELETE => '/v1/sessions/current', undef, undef,
                headers => { Authorization => "Bearer $ta" });
    is($st, 401, 'logging out again: 401');
    my ($w, $c) = $ws->($port2, '/v1/ws', Authorization => "Bearer $ta");
    is($c, 401, 'a new WebSocket with it: 401');
    ($w, $c) = $ws->($port1, "/v1/ws?access_token=$ta");
    is($c, 401, '... with it in the query too');

    ($st) = $me->($tb, $port1);
    is($st, 200, 'the other token of the same user still works');
    $wb2->send_text('{"type":"ping"}');
    is($wb2->read_text(2), '{"type":"pong"}',
       '... and its WebSocket stays open');

    # a token without a jti (made elsewhere): its id is its hash
    my $p1 = ChatJWT::token(sub => $uid{other}, exp => time + 3000);
    my $p2 = ChatJWT::token(sub => $uid{other}, exp => time + 3001);
    ($st) = $me->($p1, $port1);
    is($st, 200, 'a token without jti works');
    ($st) = api(DELETE => '/v1/sessions/current', undef, undef,
                headers => { Authorization => "Bearer $p1" });
    is($st, 204, '... logs out');
    ($st) = $me->($p1, $port2);
    is($st, 401, '... and is refused');
    ($st) = $me->($p2, $port2);
    is($st, 200, 'another token without jti is not');

    ($st) = api(DELETE => '/v1/sessions/current');
    is($st, 401, 'DELETE /v1/sessions/current without a token: 401');
}

done_testing();
