# chat_metrics: the Prometheus text of the module's shared counters,
# summed over two nginx workers.  One scrape, a chat flow with its two
# users on different workers (2 users, 3 messages, receipts, a bad frame,
# a refused send, a too big message, a ping), another scrape: every
# counter moved by exactly what the flow did, whichever worker answered.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatJWT;
use ChatWS;
use ChatClient qw(register_users ws_connect frame frames next_of);
use ChatPersist;

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

ChatPersist::start_gateway(
    'metrics-node',
    workers      => 2,
    listen       => 'reuseport',
    http_extra   => '    chat_ws_max_message 1k;',
    config_extra => <<'CONF',
    location = /metrics {
        chat_metrics;
        allow 127.0.0.1;
        deny all;
    }
CONF
);

# name{labels} (without node) => value; dies on a line that is not
# Prometheus text or a series without node="metrics-node"
sub scrape {
    my ($st, $h, $body) = ChatTest::http_get('/metrics');
    die "scrape: $st $body\n" unless $st == 200;
    die "scrape: content type $h->{'content-type'}\n"
        unless $h->{'content-type'} =~ m{^text/plain; version=0\.0\.4};
    my (%v, %type);
    for my $line (split /\n/, $body) {
        if ($line =~ /^# TYPE (chat_\w+) (counter|gauge|histogram)$/) {
            $type{$1} = $2;
            next;
        }
        next if $line =~ /^# HELP chat_\w+ \S/;
        die "scrape: bad line: $line\n"
            unless $line =~ /^(chat_\w+)\{node="metrics-node"
                              ((?:,\w+="[^"]*")*)\}\ (-?[0-9.]+)$/x;
        my ($name, $labels, $value) = ($1, $2, $3);
        $labels =~ s/^,//;
        $v{"$name\{$labels}"} = $value + 0;
    }
    return (\%v, \%type);
}

sub delta {
    my ($before, $after, $series) = @_;
    die "no series $series\n" unless exists $after->{$series};
    return $after->{$series} - ($before->{$series} // 0);
}

# the stack's persist worker writes its metrics file there (scripts/stack
# passes --metrics-file): name{labels} => value
my $prom = ChatPersist::stack_env('CHAT_WORKER_METRICS_DIR')
           . '/worker-persist.prom';
sub worker_metrics {
    my %v;
    for (split /\n/, ChatTest::slurp($prom)) {
        $v{$1} = $2 if /^(chat_worker_\w+)\{[^}]*\} (-?[0-9.]+)$/
                       && !/result="abandoned"/;
    }
    return \%v;
}
my $w0 = worker_metrics();
my $t_start = time;

my ($s0, $types) = scrape();
is($types->{chat_ws_connections}, 'gauge', 'chat_ws_connections is a gauge');
is($types->{chat_frames_in_total}, 'counter', 'frames in: a counter');
is($types->{chat_send_ack_seconds}, 'histogram', 'send to ack: histogram');
ok(exists $s0->{'chat_send_ack_seconds_bucket{le="0.001"}'}
   && exists $s0->{'chat_send_ack_seconds_bucket{le="10"}'}
   && exists $s0->{'chat_send_ack_seconds_bucket{le="+Inf"}'},
   'its buckets from 1 ms to 10 s, and +Inf');

my %uid = register_users('met', qw(ann ben));

# which worker (pid) took connection *N: its "connected" line
sub worker_of {
    my ($user) = @_;
    my ($pid) = ChatTest::error_log() =~
        /.*\b(\d+)#\d+: \*\d+ chat: ws: user \Q$user\E connected/s;
    return $pid;
}

my $ann = ws_connect(ChatTest::port(), $uid{ann});
my $ann_pid;
ChatTest::wait_until(sub { $ann_pid = worker_of($uid{ann}) },
                     timeout => 5);
ok($ann_pid, "ann is on worker $ann_pid");

# ben on the other worker: reconnect (closing normally) until he is
my ($ben, $ben_pid, $extra) = (undef, undef, 0);
for my $try (1 .. 40) {
    $ben = ws_connect(ChatTest::port(), $uid{ben});
    ChatTest::wait_until(sub {
        (() = ChatTest::error_log() =~
             /chat: ws: user \Q$uid{ben}\E connected/g) >= $try });
    $ben_pid = worker_of($uid{ben});
    last if $ben_pid && $ben_pid != $ann_pid;
    $ben->send_frame(8, pack('n', 1000));
    $ben->read_close(5);
    $ben->close;
    $extra++;
}
isnt($ben_pid, $ann_pid, "ben is on the other worker ($ben_pid), after "
                         . "$extra reconnects");

# both connections are counted (each worker added its own)
ok(ChatTest::wait_until(sub {
       my ($v) = scrape();
       delta($s0, $v, 'chat_ws_connections{}') == 2
       && delta($s0, $v, 'chat_online_users{}') == 2 }, timeout => 10),
   'two connections open, two users online, whichever worker answers');

# --- the flow ---------------------------------------------------------

my $run = sprintf '%x', time * 1000;
my @acks;
for my $i (1 .. 3) {
    $ann->send_text(encode_json({ type => 'send', to => $uid{ben},
                                  client_id => "m$i-$run",
                                  body => "hello $i" }));
    push @acks, next_of($ann, 'ack', 20);
}
is(scalar(grep { $_ && $_->{id} } @acks), 3, 'three acks');
my @msgs = frames($ben, 'message', 3, 20);
is(scalar @msgs, 3, 'ben gets the three messages');

$ben->send_text(encode_json({ type => 'receipt', status => 'read',
                              ids => [ map { $_->{id} } @acks ] }));
my @receipts = frames($ann, 'receipt', 3, 20);
is(scalar @receipts, 3, 'ann gets three read receipts');

# a refused send: no such user
$ann->send_text(encode_json({ type => 'send', to => 999999999,
                              client_id => "x-$run", body => 'x' }));
my $err = next_of($ann, 'error', 20);
is($err->{code}, 'not_found', 'a send to nobody is refused (not_found)');

# a bad frame: an unknown type
$ben->send_text('{"type":"nope"}');
$err = next_of($ben, 'error', 10);
is($err->{code}, 'unknown_type', 'a frame of no known type: unknown_type');

$ben->send_text('{"type":"ping"}');
is(next_of($ben, 'pong', 10)->{type}, 'pong', 'a ping, a pong');

# ends: ann closes, ben's message is over chat_ws_max_message (1k)
$ann->send_frame(8, pack('n', 1000));
is($ann->read_close(5), 1000, 'ann closes normally');
$ann->close;
$ben->send_text('x' x 2000);
is($ben->read_close(5), 1009, 'a message over 1k: closed with 1009');
$ben->close;

my $s1;
ok(ChatTest::wait_until(sub {
       ($s1) = scrape();
       delta($s0, $s1, 'chat_ws_connections{}') == 0 }, timeout => 10),
   'no connection open any more');

my %want = (
    'chat_ws_opened_total{}'                       => 2 + $extra,
    'chat_ws_connections{}'                        => 0,
    'chat_online_users{}'                          => 0,
    'chat_ws_closed_total{reason="normal"}'        => 1 + $extra,
    'chat_ws_closed_total{reason="too_big"}'       => 1,
    'chat_ws_closed_total{reason="dropped"}'       => 0,
    'chat_ws_closed_total{reason="error"}'         => 0,
    'chat_frames_in_total{type="send"}'            => 4,
    'chat_frames_in_total{type="receipt"}'         => 1,
    'chat_frames_in_total{type="ping"}'            => 1,
    'chat_frames_in_total{type="invalid"}'         => 1,
    'chat_frames_in_total{type="typing"}'          => 0,
    'chat_frames_out_total{type="ack"}'            => 3,
    'chat_frames_out_total{type="message"}'        => 3,
    'chat_frames_out_total{type="receipt"}'        => 3,
    'chat_frames_out_total{type="error"}'          => 2,
    'chat_frames_out_total{type="pong"}'           => 1,
    'chat_frames_out_total{type="other"}'          => 0,
    'chat_messages_sent_total{}'                   => 4,
    'chat_messages_acked_total{}'                  => 3,
    'chat_messages_delivered_total{}'              => 3,
    'chat_messages_refused_total{}'                => 1,
    'chat_receipts_total{status="read"}'           => 3,
    'chat_receipts_total{status="delivered"}'      => 0,
    'chat_errors_total{source="ws",code="not_found"}'    => 1,
    'chat_errors_total{source="ws",code="unknown_type"}' => 1,
    'chat_errors_total{source="ws",code="other"}'        => 0,
    'chat_http_requests_total{route="users",status="2xx"}' => 2,
    'chat_http_requests_total{route="users",status="4xx"}' => 0,
    'chat_send_ack_seconds_count{}'                => 3,
    'chat_delivery_seconds_count{}'                => 3,
);
for my $series (sort keys %want) {
    is(delta($s0, $s1, $series), $want{$series}, "$series moved by "
                                                 . $want{$series});
}

# a histogram's +Inf is its count, its buckets cumulative
is($s1->{'chat_send_ack_seconds_bucket{le="+Inf"}'},
   $s1->{'chat_send_ack_seconds_count{}'}, 'send_ack: +Inf == count');
my @le = qw(0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf);
ok(!grep({ $s1->{"chat_send_ack_seconds_bucket{le=\"$le[$_]\"}"}
           < $s1->{"chat_send_ack_seconds_bucket{le=\"$le[$_ - 1]\"}"} }
         1 .. $#le), '... and its buckets never go down');
cmp_ok(delta($s0, $s1, 'chat_send_ack_seconds_sum{}'), '>', 0,
       '... its sum moved');
cmp_ok(delta($s0, $s1, 'chat_redis_call_seconds_count{}'), '>=', 3,
       'Redis calls timed');
cmp_ok(delta($s0, $s1, 'chat_postgres_call_seconds_count{}'), '>=', 2,
       'PostgreSQL queries timed (registrations at least)');
is(delta($s0, $s1, 'chat_redis_errors_total{}'), 0, 'no Redis errors');
is(delta($s0, $s1, 'chat_kafka_delivery_failures_total{}'), 0,
   'no Kafka delivery failures');
ok(exists $s1->{'chat_kafka_queue_messages{}'}, 'the Kafka queue gauge');

# an API error: its code and status class
my ($est) = ChatTest::http_request(POST => '/v1/users', {}, '{"x":1}');
is($est, 400, 'a registration without a username: 400');
my ($s2) = scrape();
is(delta($s1, $s2, 'chat_errors_total{source="http",code="bad_request"}'),
   1, 'counted as an HTTP bad_request');
is(delta($s1, $s2, 'chat_http_requests_total{route="users",status="4xx"}'),
   1, '... and a users 4xx');

# a refusal written by PostgreSQL ({"error" : "forbidden", ...}): counted
# by its code too
my ($hst, $hbody) = ChatClient::api_as($uid{ann}, GET =>
                                       '/v1/messages?group=999999999');
my $hcode = ref $hbody ? $hbody->{error} // '' : '';
like($hcode, qr/^(forbidden|not_found)$/,
     "the history of a group ann is not in: $hst $hcode");
my ($s2b) = scrape();
is(delta($s2, $s2b, "chat_errors_total{source=\"http\",code=\"$hcode\"}"),
   1, "... counted as an HTTP $hcode");
is(delta($s2, $s2b, 'chat_http_requests_total{route="messages",status="4xx"}'),
   1, '... and a messages 4xx');

# the same numbers from either worker: ten scrapes agree
my %seen;
for (1 .. 10) {
    my ($v) = scrape();
    $seen{ $v->{'chat_ws_opened_total{}'} }++;
}
is(scalar keys %seen, 1, 'ten scrapes, one count of connections opened');

# not a chat_api: POST is refused
my ($pst) = ChatTest::http_request(POST => '/metrics', {}, '');
is($pst, 405, 'POST /metrics: 405');

# --- a reload: the counters go on, the old workers' WebSockets close ------

my ($last) = scrape();
my $ws = ws_connect(ChatTest::port(), $uid{ann});
ok(ChatTest::wait_until(sub {
       delta($last, (scrape())[0], 'chat_ws_connections{}') == 1 }),
   'a connection open before the reload');
my ($master) = ChatTest::slurp(ChatTest::servroot() . '/logs/nginx.pid')
               =~ /(\d+)/;
kill 'HUP', $master;
is($ws->read_close(10), 1001, 'the reload closes it with 1001');
$ws->close;
my $s3;
ok(ChatTest::wait_until(sub {
       ($s3) = scrape();
       delta($last, $s3, 'chat_ws_closed_total{reason="going_away"}') == 1
   }), 'counted as going_away');
is(delta($last, $s3, 'chat_ws_opened_total{}'), 1,
   'the counts from before the reload are kept');
is(delta($last, $s3, 'chat_ws_connections{}'), 0, 'none open');
is(delta($last, $s3, 'chat_online_users{}'), 0, 'nobody online');

# --- the persist worker's file --------------------------------------------

ok(exists $w0->{chat_worker_consumer_lag},
   "the persist worker's metrics file ($prom) has its consumer lag");
my $w1;
ok(ChatTest::wait_until(sub {
       $w1 = worker_metrics();
       ($w1->{chat_worker_records_total} // 0)
           >= ($w0->{chat_worker_records_total} // 0) + 6
       && ($w1->{chat_worker_last_batch_timestamp_seconds} // 0) >= $t_start
   }, timeout => 20),
   '... and counts the 3 messages and 3 receipts of the flow, its last '
   . 'batch after the flow began') or diag explain $w0, $w1;
cmp_ok($w1->{chat_worker_batches_total} // 0, '>',
       $w0->{chat_worker_batches_total} // 0, '... in batches written');
cmp_ok($w1->{chat_worker_written_total} // 0, '>=',
       ($w0->{chat_worker_written_total} // 0) + 3, '... rows stored');

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');

done_testing();
