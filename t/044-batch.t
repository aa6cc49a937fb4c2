# The batched message path (issue #13): the claims, deliveries and
# receipts of one event-loop round go to Redis as one script call per
# server (src/store/ngx_chat_batch.c), at most 256 items a call.
#
#   - order across call boundaries: 600 sends in one write fill three
#     CLAIM calls and as many DELIVER calls; acks, seq and delivery keep
#     the order of sending;
#   - one item failing fails alone: a recipient whose inbox Redis refuses
#     (a key of the wrong type) in the same call as one whose inbox takes
#     the message: both acked, the second delivered live, the first given
#     up after chat_delivery_timeout and refilled from PostgreSQL;
#   - Redis down mid-call: the claims of a call that Redis never answered
#     (the server is paused, then killed) each get one error frame and no
#     ack; sent again with the same client_ids once Redis is back, each is
#     acked once and delivered once;
#   - a send that would wait behind a call unanswered for half of
#     chat_redis_timeout is refused at once (busy);
#   - Redis restarted with data to load: the connections made while it
#     loads get LOADING for their SCRIPT LOADs (AUTH is taken meanwhile)
#     and are made again until Redis takes them, so the sends after the
#     load find their scripts (no NOSCRIPT).

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use ChatTest;
use ChatJWT;
use ChatWS;
use ChatClient qw(register_users ws_connect frame frames quiet);

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

# a Redis of this test's own, to pause and kill
my $port = ($ENV{TEST_NGINX_PORT} || 1984) + 189;
my $dir = "/tmp/chat-batch-$$";
mkdir $dir;
my $conf = ChatTest::redis_auth_conf($dir);

sub redis_start {
    my (@more) = @_;
    system('redis-server', $conf, '--port', $port, '--bind', '127.0.0.1',
           '--save', '', '--appendonly', 'no', '--daemonize', 'yes',
           '--pidfile', "$dir/redis.pid", '--dir', $dir,
           '--logfile', "$dir/redis.log", @more) == 0
        or BAIL_OUT('cannot start redis-server');
    ChatTest::wait_until(sub { redis('PING') eq 'PONG' }, timeout => 60)
        or BAIL_OUT('redis-server does not answer');
}

sub redis_pid {
    open my $fh, '<', "$dir/redis.pid" or return 0;
    my $pid = <$fh> // 0;
    chomp $pid;
    return $pid =~ /^\d+$/ ? $pid : 0;
}

sub redis {
    my $out = `redis-cli -h 127.0.0.1 -p $port @_ 2>&1`;
    chomp $out;
    return $out;
}

END {
    my $pid = redis_pid();
    kill 'KILL', $pid if $pid;
    system('rm', '-rf', $dir) if $dir;
}

ChatTest::wait_until(sub { !IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                                  PeerPort => $port) });
redis_start();

my $DELIVERY_TIMEOUT = 3;
my $REDIS_TIMEOUT = 4;

ChatTest::start_nginx(
    workers     => 1,
    http_config => <<"CONF",
    chat_node_name batch;
    chat_redis 127.0.0.1:$port;
    chat_redis_password_file \$TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_redis_timeout ${REDIS_TIMEOUT}s;
    chat_delivery_timeout ${DELIVERY_TIMEOUT}s;
    chat_postgres "\$TEST_NGINX_PG_DSN";
    chat_kafka_brokers \$TEST_NGINX_KAFKA_BROKERS;
    chat_jwt_secret_file \$TEST_NGINX_JWT_SECRET_FILE;
CONF
    config      => <<'CONF',
    location = /healthz {
        chat_healthz;
    }
    location /v1/ {
        chat_api;
    }
    location = /v1/ws {
        chat_send_rate off;
        chat_websocket;
    }
CONF
);

ok(ChatTest::wait_until(sub { (ChatTest::http_get('/healthz'))[0] == 200 },
                        timeout => 15), 'healthy at the start');

my $run = sprintf '%x%x', $$, time;
my %uid = register_users('bt', qw(ann ben cid));

sub send_frames {
    my ($ws, $to, @cids) = @_;
    $ws->send_all(join '', map {
        ChatWS::frame_bytes(1, encode_json({ type => 'send', to => $to,
                                             client_id => $_,
                                             body => "body of $_" }))
    } @cids);
}

my $ann = ws_connect(ChatTest::port(), $uid{ann});
my $ben = ws_connect(ChatTest::port(), $uid{ben});

# --- order across call boundaries ---------------------------------------------

my $N = 600;
my @cids = map { "o$_-$run" } 1 .. $N;
send_frames($ann, $uid{ben}, @cids);
my @acks = frames($ann, 'ack', $N, 60);
is(scalar @acks, $N, "$N sends in one write: $N acks");
is_deeply([map { $_->{client_id} } @acks], \@cids,
          '... in the order sent');
my @seq = map { $_->{seq} } @acks;
is(scalar(grep { $seq[$_] != $seq[0] + $_ } 0 .. $#seq), 0,
   '... with seq one after another') or diag "@seq[0 .. 9] ...";
my @got = frames($ben, 'message', $N, 60);
is(scalar @got, $N, "ben gets the $N");
is_deeply([map { $_->{client_id} } @got], \@cids,
          '... in the order sent, each once');
ok(quiet($ben, 'message', 1), '... and nothing more');

# --- one item of a call fails alone -------------------------------------------

is(redis("SET chat:inbox:{$uid{cid}} not-a-hash"), 'OK',
   "cid's inbox is a string: Redis refuses its deliveries");
send_frames($ann, $uid{cid}, "f1-$run");
send_frames($ann, $uid{ben}, "f2-$run");
my @fa = frames($ann, 'ack', 2, 20);
is_deeply([map { $_->{client_id} } @fa], ["f1-$run", "f2-$run"],
          'both sends acked (they are in Kafka)');
my ($m) = frames($ben, 'message', 1, 10);
is($m && $m->{client_id}, "f2-$run",
   'ben gets his at once: the failed item held nothing up');
ok(ChatTest::wait_until(sub {
       ChatTest::error_log() =~ /an item of a batch failed: WRONGTYPE/ },
       timeout => 10), 'the failed item is logged');
my $given_up = qr/message \S+ to $uid{cid} is in Kafka but not in the inbox/;
ok(ChatTest::wait_until(sub { ChatTest::error_log() =~ $given_up },
                        timeout => $DELIVERY_TIMEOUT + 10),
   "cid's delivery is given up after chat_delivery_timeout");
redis("DEL chat:inbox:{$uid{cid}}");
# what the refill reads is what chat-worker persist has stored by then
my $fid = $fa[0] && $fa[0]{id} // '';
my $sql = "SELECT count(*) FROM messages WHERE id = '$fid'";
ok(ChatTest::wait_until(sub {
       `psql "$ENV{TEST_NGINX_PG_DSN}" -XAtc "$sql" 2>/dev/null` =~ /^1$/m },
       timeout => 30), "cid's message is in PostgreSQL (chat-worker persist)");
my $cid = ws_connect(ChatTest::port(), $uid{cid});
my ($cm) = frames($cid, 'message', 1, 20);
is($cm && $cm->{client_id}, "f1-$run",
   'cid gets it on connect, refilled from PostgreSQL');
$cid->close;

# --- Redis down mid-call ------------------------------------------------------

is(redis('CLIENT PAUSE 30000 WRITE'), 'OK',
   'Redis holds every write (scripts too)');
my $K = 50;
my @lost = map { "d$_-$run" } 1 .. $K;
send_frames($ann, $uid{ben}, @lost);
# once the oldest call has waited half of chat_redis_timeout, new sends
# are refused at once: they would time out behind it
sleep $REDIS_TIMEOUT / 2 + 0.3;
send_frames($ann, $uid{ben}, "late-$run");
my ($busy) = frames($ann, 'error', 1, 5);
is($busy && "$busy->{code} $busy->{client_id}", "busy late-$run",
   'a send behind a call waiting half of chat_redis_timeout: busy')
    or diag explain $busy;
my $rpid = redis_pid();
ok($rpid && kill('KILL', $rpid), 'Redis killed with the call unanswered');
my @err = frames($ann, 'error', $K, 20);
is(scalar @err, $K, "each of the $K sends gets an error frame");
is_deeply([sort map { $_->{client_id} // '' } @err], [sort @lost],
          '... one per client_id');
is(scalar(grep { ($_->{code} // '') eq 'unavailable' } @err), $K,
   '... unavailable');
ok(quiet($ann, 'ack', 1), '... and no ack');

redis_start();
ok(ChatTest::wait_until(sub { (ChatTest::http_get('/healthz'))[0] == 200 },
                        timeout => 30), 'Redis back: healthy again');
$ben->close;
$ben = ws_connect(ChatTest::port(), $uid{ben});
send_frames($ann, $uid{ben}, @lost);
my @again = frames($ann, 'ack', $K, 30);
is_deeply([map { $_->{client_id} } @again], \@lost,
          'sent again with the same client_ids: each acked, in order');
# ben's inbox went with Redis's data: his connection refills it from
# PostgreSQL (what he never acknowledged of the above comes again, as it
# should); of the sends again, each comes once, in order
my @back;
my $end = time + 30;
while (time < $end && @back < $K) {
    my $f = frame($ben, $end - time) // last;
    push @back, $f->{client_id}
        if ($f->{type} // '') eq 'message'
           && ($f->{client_id} // '') =~ /^d\d+-/;
}
is_deeply(\@back, \@lost, '... and delivered, in order');
my @twice;
$end = time + 2;
while (time < $end) {
    my $f = frame($ben, $end - time) // last;
    push @twice, $f->{client_id}
        if ($f->{type} // '') eq 'message'
           && ($f->{client_id} // '') =~ /^d\d+-/;
}
is_deeply(\@twice, [], '... each once');

# --- Redis restarted with its data still loading ------------------------------

# 50,000 keys in an RDB file, read back at ~100 us each (key-load-delay),
# with Redis answering (LOADING) between every KB of it: several seconds
# in which the module's reconnects find Redis up but loading
is(redis(q{EVAL "for i = 1, tonumber(ARGV[1]) do }
         . q{redis.call('SET', 'pad:' .. i, 'x') end return 'set'" 0 50000}),
   'set', '50,000 keys to load');
is(redis('SAVE'), 'OK', '... saved (RDB)');
$rpid = redis_pid();
ok($rpid && kill('KILL', $rpid), 'Redis killed');
ChatTest::wait_until(sub { !kill(0, $rpid) });
my $loaded_at = length ChatTest::error_log();
redis_start('--key-load-delay', 40,
            '--loading-process-events-interval-bytes', 1024);
my $since = sub { substr ChatTest::error_log(), $loaded_at };
like($since->(), qr/SCRIPT LOAD refused: LOADING/,
     'a connection made while Redis loaded: SCRIPT LOAD refused, logged');
cmp_ok(redis('DBSIZE'), '>=', 50000, 'Redis has loaded its data');
ok(ChatTest::wait_until(sub { (ChatTest::http_get('/healthz'))[0] == 200 },
                        timeout => 30), '... and the module is healthy');
# the last connection made while loading is made again within the
# backoff's first step (50-100 ms)
sleep 1;
my @first = map { "l$_-$run" } 1 .. 3;
send_frames($ann, $uid{ben}, @first);
my @la = frames($ann, 'ack', 3, 20);
is_deeply([map { $_->{client_id} } @la], \@first,
          'the first sends after the load are acked')
    or diag explain [frames($ann, 'error', 3, 1)];
my @lb = frames($ben, 'message', 3, 20);
is_deeply([map { $_->{client_id} } @lb], \@first, '... and delivered');
unlike($since->(), qr/NOSCRIPT/, 'no EVALSHA found its script missing');

my $log = ChatTest::error_log();
unlike($log, qr/\[(alert|crit|emerg)\]|sanitizer/i,
       'no alert, crit or sanitizer report in the error log');

ChatTest::stop_nginx();
done_testing();
