# A large group's fan-out is spread over turns of the event loop (issue
# #14: "a large group never stalls a worker's event loop"): a worker writes
# about 4096 frames to its connections per turn, and what a channel brings
# beyond that waits, in order, for the next turns (ngx_chat_channel.c).
#
#   - a group of 100 on one worker, each member sending 3 messages at
#     once: a round's deliveries come in PUBLISHes of up to 100 lines
#     naming 99 members each, about 10,000 frames; the worker says that the
#     rest waits, and every member gets every other member's messages
#     once, each sender's in the order sent.

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
my $M = 100;
my $K = 3;
my @names = map { "m$_" } 1 .. $M;
my %uid = register_users('gt', @names);
is(scalar(grep { $uid{$_} } @names), $M, "$M members");

my ($st, undef, $body) = ChatTest::http_request(
    POST => '/v1/groups',
    { Authorization => 'Bearer ' . ChatJWT::token(sub => $uid{m1}) },
    encode_json({ name => "turns-$run",
                  members => [ map { $uid{"m$_"} } 2 .. $M ] }));
is($st, 201, "a group of $M") or diag $body;
my $gid = eval { decode_json($body)->{group_id} };

my %ws = map { ("m$_" => ws_connect(ChatTest::port(), $uid{"m$_"})) } 1 .. $M;

my ($rhost, $rport) = split /:/, $ENV{TEST_NGINX_REDIS};
ok(ChatTest::wait_until(sub {
       !grep { `redis-cli -h $rhost -p $rport ZCARD chat:routes:{$uid{"m$_"}}`
               !~ /^[12]$/ } 1 .. $M }, timeout => 30),
   'all online');
sleep 1;    # their group syncs are done

# one send first, so that the group's counter and member list are in
# Redis: then every member's sends go through at once
$ws{m1}->send_text(encode_json({ type => 'send', group => $gid,
                                 client_id => "w-$run", body => 'warm' }));
my ($w) = frames($ws{m1}, 'ack', 1, 10);
ok($w, 'a first message');
for my $m (2 .. $M) { frames($ws{"m$m"}, 'message', 1, 10) }

for my $m (1 .. $M) {
    $ws{"m$m"}->send_all(join '', map {
        ChatWS::frame_bytes(1, encode_json({ type => 'send', group => $gid,
                                             client_id => "t$m-$_-$run",
                                             body => "m$m turn $_" }))
    } 1 .. $K);
}

my ($bad, $acks) = (0, 0);
for my $m (1 .. $M) {
    my $ws = $ws{"m$m"};
    my $want = ($M - 1) * $K;
    my (@got, @ack);
    my $end = time + 60;
    while ((@got < $want || @ack < $K) && time < $end) {
        my $f = frame($ws, $end - time) // last;
        push @got, $f if ($f->{type} // '') eq 'message';
        push @ack, $f if ($f->{type} // '') eq 'ack';
    }
    $acks += @ack;
    my %by;
    push @{ $by{ $_->{from} } }, $_->{body} for @got;
    my $ok = @got == $want;
    for my $o (grep { $_ != $m } 1 .. $M) {
        my $b = join '|', @{ $by{ $uid{"m$o"} } // [] };
        $ok = 0 unless $b eq join '|', map { "m$o turn $_" } 1 .. $K;
    }
    unless ($ok) {
        $bad++;
        diag "m$m: got " . scalar(@got) . " of $want" if $bad < 3;
    }
}
is($acks, $M * $K, 'every send acked');
is($bad, 0, "each of the $M members gets the others' messages once, each "
            . "sender's in order");
ok(quiet($ws{m3}, 'message', 0.5), '... and nothing more');
like(ChatTest::error_log(),
     qr/chat: channel: \d+ frames written this turn, the rest waits/,
     'the worker spread them over turns');
unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');

$_->close for values %ws;
done_testing();
