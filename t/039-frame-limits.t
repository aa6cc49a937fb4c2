# Every frame is metered before it makes any backend work, and one
# connection cannot hold a worker: sends to users that do not exist are
# rate limited like any other (not one PostgreSQL lookup each, without
# end), typing to an unknown user gets an error frame, a flood of receipts
# gets rate_limited, and a client flooding frames does not keep another
# connection of the same worker waiting until it is done.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use POSIX ();
use ChatTest;
use ChatJWT;
use ChatWS;
use ChatClient qw(register_users ws_connect frame next_of);

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
        chat_send_rate 20r/s burst=100;
        chat_ws_frame_rate 50r/s burst=200;
        chat_websocket;
    }
CONF
);

my $run = sprintf '%x%x', $$, time;
my $stopped;
END { kill 'CONT', $stopped if $stopped }
my %uid = register_users('fl', qw(ann bob cid));

sub connect_as { ws_connect(ChatTest::port(), $uid{$_[0]}) }

# the errors and acks that answer $n frames, within $timeout s
sub answers {
    my ($ws, $n, $timeout) = @_;
    my @a;
    my $end = time + ($timeout // 30);
    while (@a < $n && time < $end) {
        my $f = frame($ws, $end - time) // last;
        push @a, $f if ($f->{type} // '') =~ /^(ack|error)$/;
    }
    return @a;
}

sub codes { my %c; $c{ $_->{code} // $_->{type} }++ for @_; %c }

# 150 sends to users that do not exist, in one write: about the burst is
# looked up, the rest is rate_limited before any lookup
{
    my $ws = connect_as('ann');
    my $base = 9_000_000_000_000_000 + int(rand(1_000_000)) * 1000;
    $ws->send_all(join '', map {
        ChatWS::frame_bytes(1, encode_json({ type => 'send',
                                             to => $base + $_,
                                             client_id => "n$_-$run",
                                             body => 'x' }))
    } 1 .. 150);
    my %c = codes(answers($ws, 150));
    is(($c{not_found} // 0) + ($c{rate_limited} // 0), 150,
       '150 sends to unknown users: 150 errors') or diag explain \%c;
    cmp_ok($c{not_found} // 0, '<=', 101 + 5,
           '... at most about the burst looked up (not_found)');
    cmp_ok($c{rate_limited} // 0, '>=', 40, '... the rest rate_limited');

    # a user found missing is remembered: the same answer again
    sleep 6;
    $ws->send_text(encode_json({ type => 'send', to => $base + 1,
                                 client_id => "again-$run", body => 'x' }));
    my ($again) = answers($ws, 1);
    is($again->{code}, 'not_found', 'a send to the same unknown user again')
        or diag explain $again;
    is($again->{client_id}, "again-$run", '... naming its client_id');
}

# typing: to an unknown user an error frame, to a known one it goes on
{
    my $ws = connect_as('bob');
    my $cid = connect_as('cid');
    # cid's route is registered at connect, alongside its presence
    my ($rh, $rp) = split /:/, $ENV{TEST_NGINX_REDIS};
    ok(ChatTest::wait_until(sub {
           `redis-cli -h $rh -p $rp ZCARD chat:routes:{$uid{cid}}`
               =~ /^[1-9]/ }), 'the recipient is connected');
    $ws->send_text(encode_json({ type => 'typing',
                                 to => 9_100_000_000_000_000 + $$ }));
    my $e = next_of($ws, 'error', 10);
    is($e && $e->{code}, 'not_found', 'typing to an unknown user: not_found')
        or diag explain $e;
    $ws->send_text(encode_json({ type => 'typing', to => $uid{cid} }));
    my $t = next_of($cid, 'typing', 10);
    is($t && $t->{from}, $uid{bob}, 'typing to a known user goes on');
    $ws->close;
    $cid->close;
}

# a flood of receipts: rate_limited once over the frame limit
{
    my $ws = connect_as('bob');
    $ws->send_all(join '', map {
        ChatWS::frame_bytes(1, encode_json({ type => 'receipt',
                                             id => "no-such-$_",
                                             status => 'read' }))
    } 1 .. 400);
    my %c = codes(answers($ws, 400));
    cmp_ok($c{rate_limited} // 0, '>=', 150,
           '400 receipts at once: rate_limited over the burst')
        or diag explain \%c;
    cmp_ok($c{unknown_message} // 0, '<=', 201 + 5,
           '... and about the burst checked');
    $ws->close;
}

# one connection floods frames (pongs: no answer), then a send; another
# connection's send, written after the flood, is handled before the
# flood's send: the worker reads a bounded amount (16 KB) from one
# connection per round of its event loop.  The worker is stopped while
# both write, so that all of it waits at once in the kernel; the flood is
# 48 KB, what the kernel takes for a reader that does not read before it
# holds the writer back (a larger one would make even a reader without a
# budget stop at EAGAIN half-way).
SKIP: {
    my $master = ChatTest::slurp(ChatTest::servroot() . '/logs/nginx.pid');
    ($master) = $master =~ /(\d+)/;
    my @workers = grep {
        (ChatTest::slurp("/proc/$_/stat") =~ /^\d+ \(.*\) \S+ (\d+)/s)[0]
            == $master
    } map { m{/proc/(\d+)$} ? $1 : () } glob '/proc/[0-9]*';
    skip 'one worker of the test nginx is needed', 3 unless @workers == 1;
    my $worker = $workers[0];

    my $fl = connect_as('ann');
    my $ot = connect_as('ann');
    # the recipient is known to the worker, the conversation has a counter
    $fl->send_text(encode_json({ type => 'send', to => $uid{cid},
                                client_id => "warm-$run", body => 'w' }));
    my ($warm) = answers($fl, 1);
    is($warm->{type}, 'ack', 'a first send') or diag explain $warm;

    my $pong = ChatWS::frame_bytes(10, 'p' x 120);
    my $flood = $pong x int(48_000 / length $pong)
                . ChatWS::frame_bytes(1, encode_json({
                      type => 'send', to => $uid{cid},
                      client_id => "flood-$run", body => 'after the flood' }));

    kill 'STOP', $worker;
    $stopped = $worker;
    my $child = fork // die "fork: $!";
    if ($child == 0) {
        $fl->send_all($flood);
        POSIX::_exit(0);
    }
    # the flood waits in the kernel (or as much of it as fits)
    my $end = time + 10;
    sleep 0.1 while waitpid($child, POSIX::WNOHANG()) == 0 && time < $end;
    $ot->send_text(encode_json({ type => 'send', to => $uid{cid},
                                client_id => "other-$run", body => 'me' }));
    sleep 0.3;
    kill 'CONT', $worker;
    waitpid $child, 0;

    my ($fa) = answers($fl, 1, 60);
    my ($fb) = answers($ot, 1, 30);
    ok($fa && $fb && $fa->{type} eq 'ack' && $fb->{type} eq 'ack',
       'both sends are acked') or diag explain [$fa, $fb];
    cmp_ok($fb->{seq} // 0, '<', $fa->{seq} // 0,
           'the other connection went first, the flood did not hold the '
           . 'worker');
}

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');

done_testing();
