# A large group's fan-out is spread over turns of the event loop (issue
# #14: "a large group never stalls a worker's event loop"): a worker writes
# about 4096 frames to its connections per turn, and what a channel brings
# beyond that waits, in order, for the next turns (ngx_chat_channel.c).
#
#   - a group of 41 on one worker, 256 messages sent in one write: their
#     deliveries come in one PUBLISH of 256 lines naming 40 members, over
#     10,000 frames; the worker says that the rest waits, and every member
#     gets every message once, in the order sent;
#   - a one-to-one message sent meanwhile keeps its place behind them.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatJWT;
use ChatWS;
use ChatClient qw(register_users ws_connect frame frames quiet);

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

ChatTest::start_nginx(
    workers     => 1,
    http_config => <<'CONF',
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_kafka_brokers $TEST_NGINX_KAFKA_BROKERS;
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
CONF
    config      => <<'CONF',
    location /v1/ {
        chat_api;
    }
    location = /v1/ws {
        chat_send_rate off;
        chat_ws_frame_rate off;
        chat_websocket;
    }
CONF
);

my $run = sprintf '%x%x', $$, time;
my $M = 40;
my @names = ('s', map { "m$_" } 1 .. $M);
my %uid = register_users('gt', @names);
is(scalar(grep { $uid{$_} } @names), $M + 1, "$M members and a sender");

my ($st, undef, $body) = ChatTest::http_request(
    POST => '/v1/groups',
    { Authorization => 'Bearer ' . ChatJWT::token(sub => $uid{s}) },
    encode_json({ name => "turns-$run",
                  members => [ map { $uid{"m$_"} } 1 .. $M ] }));
is($st, 201, 'a group of 41') or diag $body;
my $gid = eval { decode_json($body)->{group_id} };

my $s = ws_connect(ChatTest::port(), $uid{s});
my %ws = map { ("m$_" => ws_connect(ChatTest::port(), $uid{"m$_"})) } 1 .. $M;
my $peer = ws_connect(ChatTest::port(), $uid{m1});

my ($rhost, $rport) = split /:/, $ENV{TEST_NGINX_REDIS};
ok(ChatTest::wait_until(sub {
       !grep { `redis-cli -h $rhost -p $rport ZCARD chat:routes:{$uid{"m$_"}}`
               !~ /^[12]$/ } 1 .. $M }, timeout => 20),
   'all online');
sleep 1;    # their group syncs are done

# one send first, so that the group's counter and member list are in
# Redis: the 256 then go through in one round
$s->send_text(encode_json({ type => 'send', group => $gid,
                            client_id => "w-$run", body => 'warm' }));
my ($w) = frames($s, 'ack', 1, 10);
ok($w, 'a first message');
for my $m (1 .. $M) { frames($ws{"m$m"}, 'message', 1, 10) }

my $N = 256;
$s->send_all(join '', map {
    ChatWS::frame_bytes(1, encode_json({ type => 'send', group => $gid,
                                         client_id => "t$_-$run",
                                         body => "turn $_" }))
} 1 .. $N);
my @acks = frames($s, 'ack', $N, 60);
is(scalar @acks, $N, "$N sends in one write, $N acks");
# a one-to-one message to m1 right behind them
$peer->send_text(encode_json({ type => 'send', to => $uid{m2},
                               client_id => "p-$run", body => 'after' }));

my $bad = 0;
for my $m (1 .. $M) {
    my @got = frames($ws{"m$m"}, 'message', $N + ($m == 2 ? 1 : 0), 60);
    my @b = map { $_->{body} } @got;
    my @want = map { "turn $_" } 1 .. $N;
    push @want, 'after' if $m == 2;
    $bad++ unless "@b" eq "@want";
    diag "m$m: got " . scalar(@b) if "@b" ne "@want" && $bad < 3;
}
is($bad, 0, "each of the $M members gets the $N once, in order "
            . '(and m2 the one-to-one message after them)');
ok(quiet($ws{m3}, 'message', 0.5), '... and nothing more');
like(ChatTest::error_log(),
     qr/chat: channel: \d+ frames written this turn, the rest waits/,
     'the worker spread them over turns');
unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');

$_->close for $s, $peer, values %ws;
done_testing();
