# Store-and-forward to a user who was offline, end to end, against the test
# stack's real PostgreSQL, Redis, Kafka-protocol broker and persistence
# worker, with real WebSocket clients:
#
#   1. issue #5's sequence: B offline, A sends 50 messages (all acked), the
#      persist worker is SIGKILLed half-way (after a PostgreSQL commit,
#      before its Kafka offsets) and restarted; B connects and gets all 50
#      in order, once; PostgreSQL holds each exactly once; A's history in
#      pages of 20 with next_before; B's receipts turn into `status` in
#      A's history;
#   2. Redis loses everything (FLUSHALL) while B is offline with messages
#      waiting: the next messages go on with the conversation's seq (from
#      PostgreSQL's max), and B gets the lost ones from PostgreSQL, then
#      the new ones, in order, once; receipts work on them;
#   3. an inbox that lost its oldest entries (what an overflow trim does)
#      is refilled from PostgreSQL in order;
#   4. PostgreSQL down while a refill is due: what Redis holds is still
#      delivered, and the next connection refills.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(encode_json);
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatJWT;
use ChatPersist;
use ChatClient qw(frame frames quiet);

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

ChatPersist::start_gateway('offline-node');

my $run = sprintf '%x%x', $$, time;
my %uid = map { $_ => ChatPersist::register("${_}_$run") }
          qw(ann ben cid dan eve);

my ($rhost, $rport) = split /:/, ChatPersist::stack_env('REDIS');
sub redis { my $out = `redis-cli -h $rhost -p $rport @_ 2>&1`; chomp $out;
            $out }

ChatTest::stack_svc('persist', 'start');
ok(ChatPersist::wait_caught_up(90), 'the worker has caught up at the start');

# messages of the next $n message frames on $ws (other frames skipped)
sub messages_on {
    my ($ws, $n, $timeout) = @_;
    return frames($ws, 'message', $n, $timeout // 30);
}

sub receipts {
    my ($ws, $status, @ids) = @_;
    $ws->send_text(encode_json({ type => 'receipt', id => $_,
                                 status => $status })) for @ids;
}

sub history {
    my ($uid, $query) = @_;
    my ($st, $page, $raw) = ChatPersist::api_get($uid, "/v1/messages?$query");
    diag "GET /v1/messages?$query: $st $raw" unless $st == 200;
    return $page // {};
}


# --- 1. the sequence of issue #5 ----------------------------------------------

my $conv_ab = ChatPersist::conv($uid{ann}, $uid{ben});
my $ann = ChatPersist::ws_connect($uid{ann});
my (@acks, %body_of);

sub send_range {
    my ($ws, $to, $tag, $from, $last) = @_;
    my @got;
    for my $i ($from .. $last) {
        my $a = ChatPersist::ws_send($ws, to => $to, client_id => "$tag$i-$run",
                                     body => "$tag message $i");
        push @got, $a;
        $body_of{$a->{id} // ''} = "$tag message $i";
    }
    return @got;
}

{
    local $ENV{CHAT_WORKER_FAILPOINT} = 'after_pg_commit:4000';
    ChatTest::stack_svc('persist', 'stop');
    ChatTest::stack_svc('persist', 'start');
}
my $off = ChatPersist::log_size();

push @acks, send_range($ann, $uid{ben}, 'm', 1, 25);
ok(ChatPersist::wait_log($off, qr/event=failpoint name=after_pg_commit/, 60),
   'half-way: a batch is in PostgreSQL, its offsets not yet committed');
ChatTest::stack_svc('persist', 'kill');
push @acks, send_range($ann, $uid{ben}, 'm', 26, 50);
is(scalar(grep { ($_->{type} // '') eq 'ack' } @acks), 50,
   'all 50 messages are acked (the worker was killed after 25)');
is_deeply([map { $_->{seq} } @acks], [1 .. 50], '... seq 1 to 50');

ChatTest::stack_svc('persist', 'start');

my $ben = ChatPersist::ws_connect($uid{ben});
my @got = messages_on($ben, 50, 60);
is(scalar @got, 50, 'ben connects and receives 50 messages');
is_deeply([map { $_->{id} } @got], [map { $_->{id} } @acks],
          '... the acked ones, in order');
is_deeply([map { $_->{seq} } @got], [1 .. 50], '... seq 1 to 50');
is(scalar(grep { $_->{from} == $uid{ann} && $_->{to} == $uid{ben}
                 && $_->{body} eq $body_of{$_->{id}} } @got),
   50, '... from ann, to ben, bodies as sent');
ok(quiet($ben, 'message', 1.5), '... and no duplicate after them');

ok(ChatPersist::wait_caught_up(90), 'the restarted worker caught up');
is(ChatPersist::sql("SELECT count(*), count(DISTINCT id), min(seq), max(seq) "
                    . "FROM messages WHERE conv = :'conv'", conv => $conv_ab),
   '50|50|1|50', 'PostgreSQL holds each of the 50 exactly once');

my $page = history($uid{ann}, "with=$uid{ben}&limit=20");
is_deeply([map { $_->{seq} } @{ $page->{messages} }], [reverse 31 .. 50],
          'history page 1: seq 50 down to 31');
is($page->{next_before}, 31, '... next_before 31');
$page = history($uid{ann}, "with=$uid{ben}&limit=20&before=31");
is_deeply([map { $_->{seq} } @{ $page->{messages} }], [reverse 11 .. 30],
          'page 2: 30 down to 11');
is($page->{next_before}, 11, '... next_before 11');
$page = history($uid{ann}, "with=$uid{ben}&limit=20&before=11");
is_deeply([map { $_->{seq} } @{ $page->{messages} }], [reverse 1 .. 10],
          'page 3: 10 down to 1');
ok(exists $page->{next_before} && !defined $page->{next_before},
   '... next_before null');
is_deeply([map { $_->{id} } reverse @{ $page->{messages} }],
          [map { $_->{id} } @acks[0 .. 9]], '... the acked ids');
is(scalar(grep { $_->{status} eq 'sent' } @{ $page->{messages} }), 10,
   '... status sent before any receipt');

# receipts: delivered for all 50, read for the first 10
receipts($ben, 'delivered', map { $_->{id} } @got);
receipts($ben, 'read', map { $_->{id} } @got[0 .. 9]);
my @dr = frames($ann, 'receipt', 60, 60);
is(scalar @dr, 60, 'ann gets 60 receipts live');
ok(ChatTest::wait_until(sub {
       ChatPersist::sql("SELECT count(*) FILTER (WHERE state = 'read'), "
                        . "count(*) FILTER (WHERE state = 'delivered') "
                        . "FROM deliveries WHERE conv = :'conv' "
                        . "AND recipient = :'b'",
                        conv => $conv_ab, b => $uid{ben}) eq '10|40' },
       timeout => 60, interval => 0.3),
   'the receipts are in PostgreSQL: 10 read, 40 delivered');
my %status;
for my $before ('', '&before=31', '&before=11') {
    $page = history($uid{ann}, "with=$uid{ben}&limit=20$before");
    $status{$_->{seq}} = $_->{status} for @{ $page->{messages} };
}
is_deeply([map { $status{$_} } 1 .. 50],
          [('read') x 10, ('delivered') x 40],
          "ann's history: status read for 1-10, delivered for 11-50");
$ben->close;
undef $ben;

my $again = ChatPersist::ws_connect($uid{ben});
ok(quiet($again, 'message', 1.5),
   'ben connects again: nothing is sent twice');
$again->close;


# --- 2. Redis loses everything --------------------------------------------------

my @before_loss = send_range($ann, $uid{ben}, 'r', 1, 3);
is_deeply([map { $_->{seq} } @before_loss], [51 .. 53],
          'ben offline: 3 more messages, seq 51 to 53');
ok(ChatPersist::wait_caught_up(60), '... persisted');
is(redis('FLUSHALL'), 'OK', 'Redis loses everything (FLUSHALL)');
is(redis("EXISTS chat:seq:{$conv_ab}"), 0, "... the conversation's counter "
   . 'is gone');

# ann's route went with the rest: a new connection has one
$ann->close;
$ann = ChatPersist::ws_connect($uid{ann});
my @after_loss = send_range($ann, $uid{ben}, 'r', 4, 5);
is_deeply([map { $_->{type} } @after_loss], [qw(ack ack)],
          'two more messages are acked');
is_deeply([map { $_->{seq} } @after_loss], [54, 55],
          "... and go on with seq 54, 55 (the counter set from "
          . "PostgreSQL's max)");

$ben = ChatPersist::ws_connect($uid{ben});
@got = messages_on($ben, 5, 30);
is_deeply([map { $_->{id} } @got],
          [map { $_->{id} } @before_loss, @after_loss],
          'ben gets the 3 that Redis lost (from PostgreSQL) and the 2 new '
          . 'ones, in order');
is_deeply([map { $_->{seq} } @got], [51 .. 55], '... seq 51 to 55');
is_deeply([map { $_->{body} } @got[0 .. 2]],
          [map { $body_of{$_->{id}} } @before_loss],
          '... the refilled ones with their bodies');
is_deeply([sort keys %{ $got[0] }],
          [sort qw(type id seq from to body client_id ts status)],
          '... as message frames like any other');
is($got[0]{client_id}, "r1-$run", '... with their client_id');
ok(quiet($ben, 'message', 1.5), '... once');
like(ChatTest::error_log(),
     qr/3 undelivered messages of user $uid{ben} put back into the inbox/,
     'the log says 3 messages came back from PostgreSQL');

receipts($ben, 'delivered', map { $_->{id} } @got);
my @r = frames($ann, 'receipt', 5, 30);
is_deeply([map { $_->{id} } @r], [map { $_->{id} } @got],
          'receipts for refilled and new messages reach ann');
$ben->close;

$again = ChatPersist::ws_connect($uid{ben});
ok(quiet($again, 'message', 1.5),
   'ben connects again: the delivered ones do not come back');
$again->close;
ok(ChatTest::wait_until(sub {
       ChatPersist::sql("SELECT count(*) FROM deliveries WHERE "
                        . "conv = :'conv' AND seq > 50 AND state = "
                        . "'delivered'", conv => $conv_ab) == 5 },
       timeout => 60, interval => 0.3),
   'PostgreSQL has the 5 delivered');


# --- 3. the inbox lost its oldest entries (an overflow trim) -------------------

my $cid = ChatPersist::ws_connect($uid{cid});
my @trim = send_range($cid, $uid{dan}, 't', 1, 4);
ok(ChatPersist::wait_caught_up(60), 'cid sent dan 4 messages, persisted');
ok(ChatTest::wait_until(sub {
       redis("ZCARD chat:inboxq:{$uid{dan}}") == 4 },
       timeout => 10, interval => 0.1), "... they are in dan's inbox");
# what DELIVER's trim does: the oldest go, and the inbox is not complete
for my $m (@trim[0, 1]) {
    redis("HDEL chat:inbox:{$uid{dan}} $m->{id}");
    redis("ZREM chat:inboxq:{$uid{dan}} $m->{id}");
}
redis("DEL chat:inboxok:{$uid{dan}}");
my $dan = ChatPersist::ws_connect($uid{dan});
@got = messages_on($dan, 4, 30);
is_deeply([map { $_->{seq} } @got], [1 .. 4],
          'dan gets all 4 in order: the 2 trimmed ones from PostgreSQL first');
ok(quiet($dan, 'message', 1), '... once');
$dan->close;


# --- 4. PostgreSQL down when a refill is due -----------------------------------

my @pg = send_range($cid, $uid{eve}, 'p', 1, 2);
ok(ChatPersist::wait_caught_up(60), 'cid sent eve 2 messages, persisted');
redis("HDEL chat:inbox:{$uid{eve}} $pg[0]{id}");
redis("ZREM chat:inboxq:{$uid{eve}} $pg[0]{id}");
redis("DEL chat:inboxok:{$uid{eve}}");
ChatTest::stack_svc('postgres', 'stop');
my $eve = ChatPersist::ws_connect($uid{eve});
@got = messages_on($eve, 1, 30);
is($got[0]{id}, $pg[1]{id},
   'PostgreSQL down: eve still gets what Redis holds');
ok(quiet($eve, 'message', 1), '... and only that');
receipts($eve, 'delivered', $pg[1]{id});
ok(ChatTest::wait_until(sub {
       redis("HGET chat:inbox:{$uid{eve}} $pg[1]{id}") =~ /^d / },
       timeout => 10, interval => 0.1), '... and acknowledges it');
$eve->close;
ChatTest::stack_svc('postgres', 'start');
like(ChatTest::error_log(),
     qr/undelivered messages of user $uid{eve} were not read from PostgreSQL/,
     '... the log says the refill failed');
# the gateway's connections to PostgreSQL come back in their own time:
# each try is a new connection, which refills while the marker is missing
my $back;
ChatTest::wait_until(sub {
    $eve = ChatPersist::ws_connect($uid{eve});
    ($back) = messages_on($eve, 1, 2);
    $eve->close;
    return $back;
}, timeout => 60, interval => 0.5);
is($back && $back->{id}, $pg[0]{id},
   'PostgreSQL back: a next connection gets the missing one');
$cid->close;
$ann->close;

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/,
       'no alert in the error log');

ChatTest::stop_nginx();
done_testing();
