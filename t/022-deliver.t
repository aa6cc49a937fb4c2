# Live delivery over real WebSockets, two nginx instances ("nodes") sharing
# the test stack's Redis and Kafka, two workers each:
#
#   - ann on node 1, ben on node 2 and on another worker of node 1, ann's
#     second device on node 2: 1000 messages from ann reach both of ben's
#     devices in order exactly once, ann gets 1000 acks, her other device
#     gets her messages, ben's delivered and read receipts reach ann;
#   - messages sent while ben is offline, and while he reconnects, all
#     arrive, in order, once; unacknowledged ones come again on sync;
#   - receipts only from a recipient; typing; routes removed on close and
#     when a worker dies; a graceful shutdown sends close 1001;
#   - the broker down: error frames and nothing delivered.

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

my $http = <<'CONF';
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_kafka_brokers $TEST_NGINX_KAFKA_BROKERS;
    chat_kafka_timeout 2s;
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
CONF
my $server = <<'CONF';
    location /v1/ {
        chat_api;
    }
    location = /v1/ws {
        chat_send_rate off;
        chat_websocket;
    }
CONF

my $base = ($ENV{TEST_NGINX_PORT} || 1984) + 100;
ChatTest::start_nginx(workers => 2, listen => 'reuseport', port => $base,
                      http_config => "    chat_node_name node-one;\n$http",
                      config => $server);
ChatTest::start_nginx(name => 'two', workers => 2, port => $base + 1,
                      http_config => "    chat_node_name node-two;\n$http",
                      config => $server);
my %port = (one => $base, two => $base + 1);

my $run = sprintf '%x%x', $$, time;
my %uid = register_users('d', qw(ann ben cy));

my $redis = $ENV{TEST_NGINX_REDIS};
my ($rhost, $rport) = split /:/, $redis;
sub redis { my $out = `redis-cli -h $rhost -p $rport @_ 2>&1`; chomp $out;
            return $out }

sub connect_as { ws_connect($port{$_[1]}, $uid{$_[0]}) }

sub worker_of {
    my ($node, $who) = @_;
    my @p = ChatTest::error_log($node eq 'one' ? '' : $node)
        =~ /\[info\] (\d+)#\d+: \*\d+ chat: ws: user $uid{$who} connected/g;
    return $p[-1];
}

sub send_msg {
    my ($ws, %m) = @_;
    $ws->send_text(encode_json({ type => 'send', %m }));
}

# --- ann on node one; ben on node two and on ann's node, other worker ----

my $ann = connect_as('ann', 'one');
my $ann2 = connect_as('ann', 'two');
my $ben = connect_as('ben', 'two');
my $ben2;
for (1 .. 40) {
    $ben2 = connect_as('ben', 'one');
    sleep 0.1;
    last if worker_of('one', 'ben') != worker_of('one', 'ann');
    $ben2->close;
    undef $ben2;
}
ok($ben2, "ben's second device is on another worker of ann's node")
    or BAIL_OUT('could not place a connection on another worker');
isnt(worker_of('one', 'ben'), worker_of('one', 'ann'),
     '... pids ' . worker_of('one', 'ann') . ' and '
     . worker_of('one', 'ben'));

# routes: one per connection, on ben's key, naming both nodes
ok(ChatTest::wait_until(sub {
       redis("ZCARD chat:routes:{$uid{ben}}") == 2 }),
   'ben has two routes in Redis');
my $routes = redis("ZRANGE chat:routes:{$uid{ben}} 0 -1");
like($routes, qr/^chat:w:node-one:\d+\.\d+ \d+$/m, '... one on node one');
like($routes, qr/^chat:w:node-two:\d+\.\d+ \d+$/m, '... one on node two');

my $N = 1000;
my $t0 = time;
send_msg($ann, to => $uid{ben}, client_id => "m$_-$run", body => "msg $_")
    for 1 .. $N;

my @acks = frames($ann, 'ack', $N, 60);
is(scalar @acks, $N, "ann gets $N acks");
is_deeply([ map { $_->{client_id} } @acks ],
          [ map { "m$_-$run" } 1 .. $N ], '... in the order she sent');
my @seq = map { $_->{seq} } @acks;
is_deeply(\@seq, [ $seq[0] .. $seq[0] + $N - 1 ],
          '... with seq going up by one');

for my $dev ([ 'node two', $ben ], [ 'node one, other worker', $ben2 ]) {
    my ($name, $ws) = @$dev;
    my @m = frames($ws, 'message', $N, 60);
    is(scalar @m, $N, "ben ($name) receives $N messages");
    is_deeply([ map { $_->{body} } @m ], [ map { "msg $_" } 1 .. $N ],
              '... all of them, in order');
    is_deeply([ map { $_->{id} } @m ], [ map { $_->{id} } @acks ],
              '... with the acked ids');
    is($m[0]{from}, $uid{ann}, '... from ann');
    is($m[0]{to}, $uid{ben}, '... to ben');
    ok(quiet($ws, 'message', 1), '... and nothing twice');
}
my $took = time - $t0;
diag sprintf '%d messages sent, acked and received twice in %.2f s',
    $N, $took;

my @own = frames($ann2, 'message', $N, 60);
is(scalar @own, $N, "ann's other device gets her $N messages");
is($own[-1]{body}, "msg $N", '... the last one last');
ok(quiet($ann, 'message', 0.5), '... and the sending device none');

# receipts: delivered for all from one device, read for all from the other
$ben->send_text(encode_json({ type => 'receipt', id => $_->{id},
                              status => 'delivered' })) for @acks;
my @dr = frames($ann, 'receipt', $N, 60);
is(scalar @dr, $N, "ann gets $N delivered receipts");
is_deeply([ map { $_->{id} } @dr ], [ map { $_->{id} } @acks ],
          '... for her messages, in order');
is($dr[0]{by}, $uid{ben}, '... by ben');
is($dr[0]{status}, 'delivered', '... delivered');
my @dr2 = frames($ann2, 'receipt', $N, 60);
is(scalar @dr2, $N, '... and so does her other device');

# the same receipts from ben's other device change nothing
$ben2->send_text(encode_json({ type => 'receipt', id => $acks[0]{id},
                               status => 'delivered' }));
ok(quiet($ann, 'receipt', 1), 'a second delivered receipt is not sent on');

$ben2->send_text(encode_json({ type => 'receipt', id => $_->{id},
                               status => 'read' })) for @acks[0 .. 9];
my @rr = frames($ann, 'receipt', 10, 30);
is(scalar @rr, 10, 'read receipts reach ann');
is($rr[0]{status}, 'read', '... as read');

# what Kafka holds: one receipt per change, for the persistence worker
my @k = grep { /"by":$uid{ben}\b/ }
        `kcat -b "$ENV{TEST_NGINX_KAFKA_BROKERS}" -C -t chat.receipts -o beginning -e -q 2>&1`;
is(scalar(grep { /"status":"delivered"/ } @k), $N,
   "chat.receipts holds $N delivered receipts");
is(scalar(grep { /"status":"read"/ } @k), 10, '... and 10 read');
my $kr = decode_json($k[0]);
is($kr->{from}, $uid{ann}, '... naming the sender');
like($kr->{conv}, qr/^d:\d+:\d+$/, '... the conversation');
ok($kr->{seq} > 0, '... and the seq');

# --- receipts only from a recipient ----------------------------------------

for my $c (
    [ "ann's receipt for her own message", $ann,
      { id => $acks[0]{id}, status => 'read' }, 'unknown_message' ],
    [ 'an unknown id', $ben, { id => 'nope', status => 'read' },
      'unknown_message' ],
    [ 'no id', $ben, { status => 'read' }, 'bad_request' ],
    [ 'a bad status', $ben, { id => $acks[0]{id}, status => 'seen' },
      'bad_request' ],
    [ 'an id that is not a string', $ben, { id => 5, status => 'read' },
      'bad_request' ],
) {
    my ($name, $ws, $r, $code) = @$c;
    $ws->send_text(encode_json({ type => 'receipt', %$r }));
    my ($e) = frames($ws, 'error', 1, 10);
    is($e->{code}, $code, "$name: $code") or diag explain $e;
}

# --- typing ----------------------------------------------------------------

$ann->send_text(encode_json({ type => 'typing', to => $uid{ben} }));
my ($ty) = frames($ben, 'typing', 1, 10);
is($ty->{from}, $uid{ann}, 'typing reaches ben');
($ty) = frames($ben2, 'typing', 1, 10);
is($ty->{to}, $uid{ben}, '... on both devices');
$ann->send_text(encode_json({ type => 'typing', to => $uid{ben} }));
ok(quiet($ben, 'typing', 0.5), 'a second one within a second is dropped');
$ann->send_text(encode_json({ type => 'typing', to => 'x' }));
my ($te) = frames($ann, 'error', 1, 10);
is($te->{code}, 'bad_request', 'typing to a bad id: bad_request');

# --- offline, reconnecting, sync -------------------------------------------

$ben->close;
$ben2->close;
ok(ChatTest::wait_until(sub {
       redis("ZCARD chat:routes:{$uid{ben}}") == 0 }),
   "ben's routes are gone when he disconnects");

send_msg($ann, to => $uid{ben}, client_id => "o$_-$run", body => "off $_")
    for 1 .. 50;
is(scalar(frames($ann, 'ack', 50, 30)), 50, '50 acks while ben is away');

# ben comes back while ann goes on sending
send_msg($ann, to => $uid{ben}, client_id => "r$_-$run", body => "race $_")
    for 1 .. 100;
$ben = connect_as('ben', 'two');
send_msg($ann, to => $uid{ben}, client_id => "s$_-$run", body => "race2 $_")
    for 1 .. 100;
is(scalar(frames($ann, 'ack', 200, 30)), 200, '200 more acks');
my @back = frames($ben, 'message', 250, 60);
is_deeply([ map { $_->{body} } @back ],
          [ (map { "off $_" } 1 .. 50), (map { "race $_" } 1 .. 100),
            (map { "race2 $_" } 1 .. 100) ],
          'ben gets what came while away and while connecting, in order')
    or diag scalar(@back) . ' messages';
ok(quiet($ben, 'message', 1), '... each once');

# nothing acknowledged yet: a sync sends it all again, oldest first
$ben->send_text('{"type":"sync"}');
my @again = frames($ben, 'message', 250, 60);
is(scalar @again, 250, 'sync sends the 250 unacknowledged again');
is($again[0]{body}, 'off 1', '... oldest first');

# acknowledge half: the next connection gets only the rest
$ben->send_text(encode_json({ type => 'receipt', id => $_->{id},
                              status => 'delivered' })) for @back[0 .. 124];
is(scalar(frames($ann, 'receipt', 125, 30)), 125, 'ann hears of 125');
$ben->close;
$ben = connect_as('ben', 'one');
my @rest = frames($ben, 'message', 125, 30);
is_deeply([ map { $_->{id} } @rest ],
          [ map { $_->{id} } @back[125 .. 249] ],
          'a new connection gets only the unacknowledged ones');
ok(quiet($ben, 'message', 1), '... and nothing more');

# receipts for an offline sender wait for its next connection
$ann->close;
$ann2->close;
ok(ChatTest::wait_until(sub {
       redis("ZCARD chat:routes:{$uid{ann}}") == 0 }), 'ann is away');
$ben->send_text(encode_json({ type => 'receipt', id => $_->{id},
                              status => 'read' })) for @rest[0 .. 4];
ok(ChatTest::wait_until(sub {
       redis("LLEN chat:rbox:{$uid{ann}}") == 5 }),
   'receipts for ann are kept while she is away');
$ann = connect_as('ann', 'two');
my @kept = frames($ann, 'receipt', 5, 10);
is_deeply([ map { $_->{id} } @kept ], [ map { $_->{id} } @rest[0 .. 4] ],
          '... and reach her when she connects');
is(redis("EXISTS chat:rbox:{$uid{ann}}"), 0, '... once');

# --- a worker that dies: its route goes with the next delivery -------------

my $pid = worker_of('one', 'ben');
kill 'KILL', $pid;
ok(ChatTest::wait_until(sub { !kill 0, $pid }), "ben's worker $pid killed");
like(redis("ZRANGE chat:routes:{$uid{ben}} 0 -1"), qr/:\Q$pid\E\./,
     '... its route is still in Redis');
send_msg($ann, to => $uid{ben}, client_id => "k-$run", body => 'after kill');
frames($ann, 'ack', 1, 10);
ok(ChatTest::wait_until(sub {
       redis("ZRANGE chat:routes:{$uid{ben}} 0 -1") !~ /:\Q$pid\E\./ }),
   '... and gone after a delivery found nobody listening');

# --- the broker down: errors, nothing delivered ----------------------------

$ben = connect_as('ben', 'two');
frames($ben, 'message', 121, 30);   # the backlog
ChatTest::stack_svc('kafka', 'down');
send_msg($ann, to => $uid{ben}, client_id => "x-$run", body => 'lost?');
my ($err) = frames($ann, 'error', 1, 20);
is($err->{code}, 'unavailable', 'broker down: the send fails')
    or diag explain $err;
ChatTest::stack_svc('kafka', 'up');
ok(quiet($ben, 'message', 1), '... and ben gets nothing');
my $acked;
for (1 .. 20) {
    send_msg($ann, to => $uid{ben}, client_id => "x-$run", body => 'lost?');
    my $f = frame($ann, 10);
    last if ($acked = ($f->{type} // '') eq 'ack');
    sleep 1;
}
ok($acked, 'broker back: the retry is acked');
my ($late) = frames($ben, 'message', 1, 10);
is($late->{body}, 'lost?', '... and delivered once');

# --- Redis restarts: subscriptions, scripts and routes come back -----------

ChatTest::stack_svc('redis', 'stop');
ChatTest::stack_svc('redis', 'start');
my ($ok, $m);
for my $i (1 .. 30) {
    send_msg($ann, to => $uid{ben}, client_id => "rr$i-$run",
             body => 'after redis');
    my $f = frame($ann, 10);
    if (($f->{type} // '') eq 'ack') {
        ($m) = frames($ben, 'message', 1, 10);
        last if ($ok = $m && $m->{body} eq 'after redis');
    }
    sleep 0.5;
}
ok($ok, 'after a Redis restart messages are delivered live again');
like(ChatTest::error_log('two'), qr/subscribed to chat:w:node-two/,
     '... the workers subscribed again');

# --- a client we did not write ---------------------------------------------

my @args = ("ws://127.0.0.1:$port{one}/v1/ws", ChatJWT::token(sub => $uid{cy}),
            "ws://127.0.0.1:$port{two}/v1/ws",
            ChatJWT::token(sub => $uid{ann}), $uid{ann});
my @py = `/usr/bin/python3 t/lib/ws_chat.py @args 2>&1`;
is(scalar(grep { /^ack py\d \d+$/ } @py), 3,
   'python3-websockets: cy on node one gets 3 acks') or diag @py;
is_deeply([ grep { /^message/ } @py ],
          [ map { "message hello $_\n" } 0 .. 2 ],
          '... ann on node two (python too) gets the 3 messages in order');
is(scalar(grep { /^receipt read$/ } @py), 3, '... and cy her read receipts');

# --- graceful shutdown -----------------------------------------------------

ChatTest::stop_nginx('two');
is($ben->read_close(10), 1001, 'a graceful shutdown closes with 1001');

for my $node ('', 'two') {
    # but the worker killed on purpose
    my @alerts = grep { !/worker process \Q$pid\E exited on signal 9/ }
                 ChatTest::error_log($node) =~ /^.*\[(?:alert|crit|emerg)\].*$/mg;
    is_deeply(\@alerts, [], 'no alerts on node ' . ($node || 'one'));
}

done_testing();
