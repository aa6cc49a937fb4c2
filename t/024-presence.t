# Presence over real WebSockets, two nginx instances sharing the test
# stack's Redis, Kafka and PostgreSQL (issue #7):
#
#   - A and B are friends, C is a stranger; on connect each gets one
#     presence frame per friend (messages that waited do not wait for it);
#   - B connects: A gets online; B opens a second device and closes the
#     first: no event; B closes the last: A gets offline with last_seen;
#     C hears nothing;
#   - a device on a worker that was killed does not keep its user online
#     when the user's last live device closes;
#   - with a short chat_presence_ttl, killing the nginx worker that holds
#     B makes B go offline after the TTL;
#   - offline transitions go to Kafka (chat.presence) for the write-behind.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatJWT;
use ChatWS;
use ChatClient qw(register_users ws_connect frame);

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
CONF
my $server = <<'CONF';
    location /v1/ {
        chat_auth on;
        chat_api;
    }
    location = /v1/users {
        chat_api;
    }
    location = /v1/ws {
        chat_send_rate off;
        chat_websocket;
    }
CONF

my $base = ($ENV{TEST_NGINX_PORT} || 1984) + 110;
my %port = (one => $base, two => $base + 1);

sub start_two {
    my ($extra) = @_;
    ChatTest::start_nginx(name => 'two', workers => 2, port => $port{two},
                          http_config => "    chat_node_name p-two;\n"
                                         . ($extra // '') . $http,
                          config => $server);
}

ChatTest::start_nginx(workers => 2, port => $port{one},
                      http_config => "    chat_node_name p-one;\n$http",
                      config => $server);
start_two();

my %uid = register_users('p', qw(a b c));

sub api {
    my ($method, $path, $who) = @_;
    my ($st, undef, $body) = ChatTest::http_request(
        $method => $path,
        { Authorization => 'Bearer ' . ChatJWT::token(sub => $uid{$who}) });
    return ($st, eval { decode_json($body) } // $body);
}

is((api(PUT => "/v1/friends/$uid{b}", 'a'))[0], 200, 'a asks b');
is((api(PUT => "/v1/friends/$uid{a}", 'b'))[0], 200, 'b accepts');
is((api(PUT => "/v1/friends/$uid{b}", 'c'))[0], 200,
   'c only asks b (not friends)');

sub connect_as { ws_connect($port{$_[1]}, $uid{$_[0]}) }


# the next presence frame (other frames are skipped)
sub presence {
    my ($ws, $timeout) = @_;
    my $end = time + ($timeout // 10);
    while (time < $end) {
        my $f = frame($ws, $end - time) // return undef;
        return $f if ($f->{type} // '') eq 'presence';
    }
    return undef;
}

sub no_presence {
    my ($ws, $wait) = @_;
    return !defined presence($ws, $wait);
}

# --- on connect: one frame per friend --------------------------------------

# a message waits for b, so that the order can be seen
my $a = connect_as('a', 'one');
my $p = presence($a);
is_deeply($p, { type => 'presence', user_id => $uid{b}, online => JSON::PP::false,
                last_seen => undef },
          'a connects: b is offline, never seen') or diag explain $p;
$a->send_text(encode_json({ type => 'send', to => $uid{b}, client_id => 'w1',
                            body => 'waiting' }));
my $ack = frame($a);
is($ack->{type}, 'ack', 'a sends b a message');

my $c = connect_as('c', 'two');
ok(no_presence($c, 0.5), 'c, who has no friends, gets no presence frame');

my $t_b = time;
my $b = connect_as('b', 'two');
# the friends' state and what waited come side by side, in either order
my %first = map { my $f = frame($b); (($f // {})->{type} // 'none') => $f }
            1 .. 2;
ok($first{presence}, 'b gets a presence frame on connect')
    or diag explain \%first;
is($first{presence}{user_id}, $uid{a}, '... of a');
ok($first{presence}{online}, '... online');
is($first{message}{body}, 'waiting', '... and the message that waited');

$p = presence($a);
is_deeply([ @$p{qw(user_id online)} ], [ $uid{b}, JSON::PP::true ],
          'a hears that b is online') or diag explain $p;
cmp_ok(abs($p->{last_seen} / 1000 - $t_b), '<', 5,
       '... with last_seen = now (the last heartbeat)');
ok(no_presence($c, 0.5), 'c, not a friend, hears nothing');

# --- two devices: online while any is connected ----------------------------

my $b2 = connect_as('b', 'one');
is(presence($b2)->{user_id}, $uid{a}, "b's second device gets a's state");
ok(no_presence($a, 0.5), 'a second device is no change');
$b->close;
ok(no_presence($a, 1), 'closing one of two devices is no change');

my $t_off = time;
$b2->close;
$p = presence($a);
is_deeply([ @$p{qw(user_id online)} ], [ $uid{b}, JSON::PP::false ],
          'b closes the last: a hears offline') or diag explain $p;
cmp_ok(abs($p->{last_seen} / 1000 - $t_off), '<', 5,
       '... with last_seen when it happened');
ok(no_presence($a, 0.5), '... once');

my $a2 = connect_as('a', 'two');
my $p2 = presence($a2);
is($p2->{last_seen}, $p->{last_seen},
   'a new connection of a sees the same last_seen');
ok(!$p2->{online}, '... and b offline');
$a2->close;

# --- the HTTP side: friends only, Redis first ------------------------------

my ($st, $j) = api(GET => "/v1/users/$uid{b}/presence", 'a');
is($st, 200, "a may see b's presence");
is_deeply($j, { user_id => $uid{b}, online => JSON::PP::false,
                last_seen => $p->{last_seen} },
          '... offline, last_seen from Redis') or diag explain $j;
($st, $j) = api(GET => "/v1/users/$uid{b}/presence", 'c');
is($st, 403, 'c, a stranger with a pending request, may not');
is($j->{error}, 'forbidden', '... forbidden');
($st, $j) = api(GET => "/v1/users/$uid{c}/presence", 'c');
is($st, 200, 'one may see oneself');
ok($j->{online}, '... online (c is connected)');
($st, $j) = api(GET => '/v1/users/999999999/presence', 'a');
is($st, 404, 'an unknown user: 404');
($st, $j) = api(GET => '/v1/users/x/presence', 'a');
is($st, 404, 'not an id: 404');

($st, $j) = api(GET => '/v1/friends', 'a');
my ($fb) = grep { $_->{user_id} == $uid{b} } @{ $j->{friends} };
is_deeply([ @$fb{qw(state online last_seen)} ],
          [ 'friends', JSON::PP::false, $p->{last_seen} ],
          'GET /v1/friends: b offline with last_seen') or diag explain $j;
my $b3 = connect_as('b', 'one');
presence($a);
($st, $j) = api(GET => '/v1/friends', 'a');
($fb) = grep { $_->{user_id} == $uid{b} } @{ $j->{friends} };
ok($fb->{online}, '... online once b connects');
($st, $j) = api(GET => '/v1/friends', 'b');
my ($fc) = grep { $_->{user_id} == $uid{c} } @{ $j->{friends} };
is_deeply([ @$fc{qw(state online last_seen)} ],
          [ 'pending', JSON::PP::false, undef ],
          "b sees c's request, not c's presence") or diag explain $fc;
$b3->close;
$p = presence($a);
ok(!$p->{online}, 'b offline again');

# --- write-behind: the offline transition is in Kafka ----------------------

my @k = grep { /"user_id":$uid{b}\b/ }
        `kcat -b "$ENV{TEST_NGINX_KAFKA_BROKERS}" -C -t chat.presence -o beginning -e -q 2>&1`;
ok(scalar @k >= 1, 'chat.presence has b going offline') or diag @k;
my $kp = decode_json($k[-1]);
is($kp->{last_seen}, $p->{last_seen}, '... with its last_seen');

# --- a worker that dies: offline after chat_presence_ttl -------------------

start_two("    chat_presence_ttl 2s;\n");
$b = connect_as('b', 'two');
$p = presence($a);
ok($p && $p->{online}, 'b is online again (node two, ttl 2 s)');
frame($b) for 1 .. 2;   # a's presence, the message that still waits
sleep 0.3;
my @pids = ChatTest::error_log('two')
    =~ /\[info\] (\d+)#\d+: \*\d+ chat: ws: user $uid{b} connected/g;
my $pid = $pids[-1];
kill 'KILL', $pid;
my $t_kill = time;
$p = presence($a, 15);
ok($p && !$p->{online}, "b's worker $pid killed: a hears b went offline")
    or diag explain $p;
my $took = time - $t_kill;
cmp_ok($took, '<', 10, sprintf '... within the TTL and a sweep (%.1f s)',
       $took);
cmp_ok($p->{last_seen} / 1000, '<=', $t_kill + 0.5,
       '... last_seen is the last heartbeat, not the sweep');

# --- a dead worker's route does not keep its user online -------------------

start_two();
$b = connect_as('b', 'two');
$p = presence($a);
ok($p && $p->{online}, 'b is online again (node two, default ttl)');
$b2 = connect_as('b', 'one');
ok(no_presence($a, 0.5), "b's second device, on node one: no change");
@pids = ChatTest::error_log('two')
    =~ /\[info\] (\d+)#\d+: \*\d+ chat: ws: user $uid{b} connected/g;
my $pid2 = $pids[-1];
kill 'KILL', $pid2;
sleep 0.5;
is(ChatTest::error_log('two') =~ /worker process \Q$pid2\E exited on signal 9/
   ? 1 : 0, 1, "the worker holding b's first device ($pid2) is killed");
$t_off = time;
$b2->close;
$p = presence($a, 5);
ok($p && !$p->{online}, 'b closes the device on node one: a hears offline, '
   . "the dead worker's route does not count") or diag explain $p;
cmp_ok(time - $t_off, '<', 3, '... at once, not after the TTL');

# --- friends connecting at the same moment: each told once ----------------

# d connects on node one while e connects on node two: each may find the
# other online in the state it gets on connect and hear the other's coming
# online too; it is told once, whichever way
{
    my %q = register_users('q', qw(d e));
    my ($st) = ChatTest::http_request(PUT => "/v1/friends/$q{e}",
        { Authorization => 'Bearer ' . ChatJWT::token(sub => $q{d}) });
    my ($st2) = ChatTest::http_request(PUT => "/v1/friends/$q{d}",
        { Authorization => 'Bearer ' . ChatJWT::token(sub => $q{e}) });
    is("$st $st2", '200 200', 'd and e are friends');
    my ($rh, $rp) = split /:/, $ENV{TEST_NGINX_REDIS};
    my $offline = sub {
        !grep { `redis-cli -h $rh -p $rp ZSCORE chat:presence:live $_`
                    =~ /\d/ } values %q
    };
    my $rounds = 20;
    my @bad;
    for my $round (1 .. $rounds) {
        ChatTest::wait_until($offline, timeout => 10)
            or push @bad, "round $round: still online from the last";
        my $d = ws_connect($port{one}, $q{d});
        my $e = ws_connect($port{two}, $q{e});
        for ([$d, $q{e}, 'd'], [$e, $q{d}, 'e']) {
            my ($ws, $other, $who) = @$_;
            # until the other's online came (10 s at most, a loaded
            # machine may be slow to tell), then 0.8 s more for a second
            my (@told, $f);
            my $end = time + 10;
            while (defined($f = presence($ws, (grep { $_ } @told)
                                              ? 0.8 : $end - time))) {
                push @told, $f->{online} ? 1 : 0
                    if $f->{user_id} == $other;
                last if time > $end;
            }
            my $online = grep { $_ } @told;
            push @bad, "round $round: $who told (@told)" if $online != 1;
        }
        $d->close;
        $e->close;
    }
    is_deeply(\@bad, [], "$rounds rounds: each is told once that the "
              . 'other is online');
}

for my $node ('', 'two') {
    my @alerts = grep { !/worker process (?:\Q$pid\E|\Q$pid2\E) exited on signal 9/ }
                 ChatTest::error_log($node) =~ /^.*\[(?:alert|crit|emerg)\].*$/mg;
    is_deeply(\@alerts, [], 'no alerts on node ' . ($node || 'one'));
}

done_testing();
