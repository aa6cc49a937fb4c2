# The persistence worker (chat-worker persist, started by scripts/stack)
# against the test stack's real PostgreSQL, Redis and Kafka-protocol
# broker, with messages sent over a real WebSocket and, where the gateway
# cannot make them yet (receipts, corrupt records), records made with kcat:
#
#   - 50 messages A->B, all acked; the worker is SIGKILLed after a batch is
#     committed to PostgreSQL but before its Kafka offsets are, and
#     restarted: PostgreSQL holds each message exactly once;
#   - the same records produced again change nothing;
#   - PostgreSQL stopped while messages arrive: the worker retries and
#     commits no offset; everything lands once PostgreSQL is back;
#   - corrupt and incomplete records go to chat.dlq and the worker goes on;
#   - the brokers go down between a batch's COMMIT and its offset commit,
#     and come back: every acked message is in PostgreSQL once;
#   - receipts: delivered then read, read before delivered, a receipt
#     before its message, replayed receipts; "undelivered for B" via its
#     index.

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatJWT;
use ChatPersist;

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

ChatPersist::start_gateway('persist-node');

my $run = sprintf '%x%x', $$, time;
my %uid = map { $_ => ChatPersist::register("${_}_$run") }
          qw(ann ben cid dan eve fay gus hal);

# a clean start: the worker runs and has committed what the broker holds
ChatTest::stack_svc('persist', 'start');
ok(ChatPersist::wait_caught_up(90), 'the worker has caught up at the start');

sub count_conv {
    my ($conv) = @_;
    return ChatPersist::sql(
        "SELECT count(*), count(DISTINCT id) FROM messages "
        . "WHERE conv = :'conv'", conv => $conv);
}


# --- 1. 50 messages, the worker killed between PostgreSQL and Kafka -----------

my $conv_ab = ChatPersist::conv($uid{ann}, $uid{ben});
my $ws = ChatPersist::ws_connect($uid{ann});
my (@acks, %body_of);

# every batch now waits 4 s between COMMIT and the offset commit: the
# moment to kill it
{
    local $ENV{CHAT_WORKER_FAILPOINT} = 'after_pg_commit:4000';
    ChatTest::stack_svc('persist', 'stop');
    ChatTest::stack_svc('persist', 'start');
}
my $off = ChatPersist::log_size();

# sends messages FROM..TO of 50 from ann to ben, remembering the acks
sub send_range {
    my ($from, $to) = @_;
    for my $i ($from .. $to) {
        my $body = "message $i of 50";
        my $a = ChatPersist::ws_send($ws, to => $uid{ben},
                                     client_id => "m$i-$run", body => $body);
        push @acks, $a;
        $body_of{$a->{id} // ''} = $body;
    }
}

send_range(1, 25);
is(scalar(grep { ($_->{type} // '') eq 'ack' } @acks), 25,
   'the first 25 messages are acked');

ok(ChatPersist::wait_log($off, qr/event=failpoint name=after_pg_commit/, 60),
   'a batch is committed to PostgreSQL, its offsets not yet');
ChatTest::stack_svc('persist', 'kill');
my ($n_killed) = split /\|/, count_conv($conv_ab);
cmp_ok($n_killed, '>', 0, "PostgreSQL has $n_killed of them");
cmp_ok((ChatPersist::lag())[0], '>', 0,
       '... but the killed worker committed no offset for them');

send_range(26, 50);
is(scalar(grep { ($_->{type} // '') eq 'ack' } @acks), 50,
   'all 50 messages are acked while the worker is down');

$off = ChatPersist::log_size();
ChatTest::stack_svc('persist', 'start');
ok(ChatPersist::wait_caught_up(90), 'the restarted worker caught up');

is(count_conv($conv_ab), '50|50', 'PostgreSQL holds 50 rows, 50 ids');
my @rows = split /\n/, ChatPersist::sql(
    "SELECT id, seq, sender, recipient, body FROM messages "
    . "WHERE conv = :'conv' ORDER BY seq", conv => $conv_ab);
is_deeply([map { (split /\|/)[1] } @rows], [1 .. 50],
          'seq 1 to 50, no gap, no repeat');
is_deeply([sort map { (split /\|/)[0] } @rows],
          [sort map { $_->{id} } @acks], 'exactly the acked ids');
is(scalar(grep { my @f = split /\|/; $f[2] == $uid{ann}
                 && $f[3] == $uid{ben} && $f[4] eq $body_of{$f[0]} } @rows),
   50, 'sender, recipient and body of each as sent');
like(ChatPersist::log_since($off), qr/event=batch .*duplicates=[1-9]/,
     'the restarted worker wrote the uncommitted batch again, '
     . 'and it changed nothing');
is(ChatPersist::sql("SELECT count(*) FROM deliveries WHERE conv = :'conv' "
                    . "AND recipient = :'b' AND state = 'sent'",
                    conv => $conv_ab, b => $uid{ben}),
   50, 'one delivery row per message for the recipient, state sent');


# --- 2. the same records again change nothing ---------------------------------

my $digest_sql = "SELECT md5(string_agg(id || seq || body || stored_at, ',' "
               . "ORDER BY seq)) FROM messages WHERE conv = :'conv'";
my $before = ChatPersist::sql($digest_sql, conv => $conv_ab);
my @ours = grep { /^\Q$conv_ab\E\t/ }
           ChatPersist::consume('chat.messages', '%k\t%s\n');
chomp @ours;
is(scalar @ours, 50, 'the broker holds the 50 records');
$off = ChatPersist::log_size();
ChatPersist::produce('chat.messages', map { [split /\t/, $_, 2] } @ours);
ok(ChatPersist::wait_caught_up(60), 'the worker read them again');
is(count_conv($conv_ab), '50|50', 'still 50 rows');
is(ChatPersist::sql($digest_sql, conv => $conv_ab), $before,
   'not one row rewritten (same stored_at)');
is(ChatPersist::batch_sums($off)->{duplicates}, 50,
   'the worker counted them as duplicates');


# --- 3. PostgreSQL down while messages arrive ---------------------------------

my $conv_cd = ChatPersist::conv($uid{cid}, $uid{dan});
my (undef, $parts0) = ChatPersist::lag();
my @recs = map { ChatPersist::message_record(
                     id => ChatPersist::new_id(), seq => $_,
                     from => $uid{cid}, to => $uid{dan},
                     body => "while the database is down $_") } 1 .. 20;

ChatTest::stack_svc('postgres', 'stop');
$off = ChatPersist::log_size();
ChatPersist::produce('chat.messages', @recs);
ok(ChatPersist::wait_log($off, qr/event=pg_retry .*attempt=3/, 60),
   'the worker retries the batch');
my ($lag_down, $parts_down) = ChatPersist::lag();
cmp_ok($lag_down, '>=', 20, "no offset committed meanwhile (lag $lag_down)");
is_deeply([map { $parts_down->{$_}[0] } sort keys %$parts_down],
          [map { $parts0->{$_}[0] } sort keys %$parts0],
          '... the committed offsets are those from before');
unlike(ChatPersist::log_since($off), qr/event=batch /,
       '... and no batch was reported written');

ChatTest::stack_svc('postgres', 'start');
ok(ChatPersist::wait_caught_up(60), 'PostgreSQL back: the worker caught up');
is(count_conv($conv_cd), '20|20', 'all 20 messages landed, once each');
like(ChatPersist::log_since($off), qr/event=pg_connected/,
     'the worker reconnected');


# --- 4. corrupt and incomplete records: dead letters --------------------------

my $conv_ef = ChatPersist::conv($uid{eve}, $uid{fay});
my $good_id = ChatPersist::new_id();
my @bad = (
    [$conv_ef, "not json $run"],
    [$conv_ef, qq({"id":"${good_id}X","seq":1,"from":$uid{eve},"run":"$run"})],
    [$conv_ef, qq({"type":"typing","run":"$run"})],
    # a valid message under the wrong key
    [ChatPersist::conv($uid{eve}, $uid{eve}),
     ChatPersist::message_record(id => ChatPersist::new_id(), seq => 1,
                                 from => $uid{eve}, to => $uid{fay},
                                 body => "wrong key $run")->[1]],
);
$off = ChatPersist::log_size();
ChatPersist::produce('chat.messages', @bad,
    ChatPersist::message_record(id => $good_id, seq => 1, from => $uid{eve},
                                to => $uid{fay}, body => "after the junk"));
ChatPersist::produce('chat.receipts',
    [$conv_ef, qq({"type":"receipt","id":"$good_id","run":"$run"})]);
ok(ChatPersist::wait_caught_up(60), 'the worker went past the bad records');

my @dlq = grep { /\Q$run\E/ }
          ChatPersist::consume('chat.dlq', '%k\t%s\t%h\n');
is(scalar @dlq, 5, 'five records in chat.dlq') or diag @dlq;
like(join('', @dlq), qr/not json \Q$run\E\tchat-error=value is not valid JSON,chat-source=chat\.messages\/\d+\/\d+/,
     'not JSON: as it was, with the reason and where it came from');
like(join('', @dlq), qr/chat-error="id" has a bad length/, 'a bad id');
like(join('', @dlq), qr/chat-error=unknown record type/, 'an unknown type');
like(join('', @dlq), qr/wrong key \Q$run\E.*chat-error=key is not the conversation/,
     'a key that is not the conversation');
like(join('', @dlq), qr/chat-source=chat\.receipts\//,
     'an incomplete receipt');
like(ChatPersist::log_since($off), qr/level=warn .*event=dead_letter .*reason=/,
     'each with a log line');
is(count_conv($conv_ef), '1|1', 'the good record after them is stored');
ok(ChatTest::wait_until(sub {
       ChatTest::stack_svc('persist', 'start') =~ /already running/ }),
   'the worker still runs');


# --- 5. receipts ------------------------------------------------------------------

my @ids = map { $_->{id} } @acks;    # seq 1..50 in order
my $t0 = int(time * 1000);
sub receipt {
    my ($i, $status, $ts) = @_;
    return ChatPersist::receipt_record(id => $ids[$i - 1], seq => $i,
        from => $uid{ann}, by => $uid{ben}, status => $status, ts => $ts);
}
sub state_of {
    my ($i) = @_;
    return ChatPersist::sql(
        "SELECT state, delivered_at, coalesce(read_at, 0) FROM deliveries "
        . "WHERE recipient = :'b' AND conv = :'conv' AND seq = :'seq'",
        b => $uid{ben}, conv => $conv_ab, seq => $i);
}

# 1: delivered, then read (separate batches); 2: read, then delivered
ChatPersist::produce('chat.receipts', receipt(1, 'delivered', $t0),
                     receipt(2, 'read', $t0 + 50));
ok(ChatPersist::wait_caught_up(60), 'first receipts written');
is(state_of(1), "delivered|$t0|0", 'message 1: delivered');
is(state_of(2), sprintf('read|%d|%d', $t0 + 50, $t0 + 50),
   'message 2: read, which implies delivered');

ChatPersist::produce('chat.receipts', receipt(1, 'read', $t0 + 100),
                     receipt(2, 'delivered', $t0 + 200),
                     receipt(3, 'delivered', $t0 + 300));
ok(ChatPersist::wait_caught_up(60), 'second receipts written');
is(state_of(1), sprintf('read|%d|%d', $t0, $t0 + 100),
   'message 1: read, delivered_at kept');
is(state_of(2), sprintf('read|%d|%d', $t0 + 50, $t0 + 50),
   'message 2: a later delivered does not move it back');
is(state_of(3), sprintf('delivered|%d|0', $t0 + 300), 'message 3: delivered');

# all of them again: nothing changes
my $states = ChatPersist::sql("SELECT string_agg(state || delivered_at::text "
    . "|| coalesce(read_at, 0)::text, ',' ORDER BY seq) FROM deliveries "
    . "WHERE conv = :'conv' AND delivered_at IS NOT NULL", conv => $conv_ab);
$off = ChatPersist::log_size();
ChatPersist::produce('chat.receipts', receipt(1, 'delivered', $t0),
                     receipt(2, 'read', $t0 + 50), receipt(1, 'read', $t0 + 100),
                     receipt(2, 'delivered', $t0 + 200),
                     receipt(3, 'delivered', $t0 + 300));
ok(ChatPersist::wait_caught_up(60), 'replayed receipts read');
is_deeply([@{ ChatPersist::batch_sums($off) }{qw(receipts_in receipts)}],
          [5, 0], 'they changed no row');
is(ChatPersist::sql("SELECT string_agg(state || delivered_at::text "
    . "|| coalesce(read_at, 0)::text, ',' ORDER BY seq) FROM deliveries "
    . "WHERE conv = :'conv' AND delivered_at IS NOT NULL", conv => $conv_ab),
   $states, 'states and times as they were');

# a receipt before its message: kept, applied when the message comes
my $early = ChatPersist::new_id();
my $conv_de = ChatPersist::conv($uid{dan}, $uid{eve});
ChatPersist::produce('chat.receipts', ChatPersist::receipt_record(
    id => $early, seq => 1, from => $uid{dan}, by => $uid{eve},
    status => 'read', ts => $t0 + 500));
ok(ChatPersist::wait_caught_up(60), 'the early receipt is read');
is(ChatPersist::sql("SELECT recipient, delivered_ts, read_ts FROM "
                    . "pending_receipts WHERE conv = :'c' AND id = :'id'",
                    c => $conv_de, id => $early),
   join('|', $uid{eve}, $t0 + 500, $t0 + 500),
   '... and parked, since its message is not there');
ChatPersist::produce('chat.messages', ChatPersist::message_record(
    id => $early, seq => 1, from => $uid{dan}, to => $uid{eve},
    body => 'late', ts => $t0 + 400));
ok(ChatPersist::wait_caught_up(60), 'the message came');
is(ChatPersist::sql("SELECT state, delivered_at, read_at FROM deliveries "
                    . "WHERE recipient = :'r' AND conv = :'c' AND seq = 1",
                    r => $uid{eve}, c => $conv_de),
   sprintf('read|%d|%d', $t0 + 500, $t0 + 500),
   'the parked receipt was applied to it');
is(ChatPersist::sql("SELECT count(*) FROM pending_receipts "
                    . "WHERE conv = :'c'", c => $conv_de),
   0, '... and is no longer parked');

# --- the sweep: receipts parked in the last 10 minutes; all of them at start -
#
# Two workers racing: one parks a receipt while the other stores its
# message without seeing it.  The message "stored behind the worker's
# back" is written here directly, so that only the sweep can apply the
# receipt.  A receipt parked an hour ago is left to the first sweep after
# a start (sql/0016): each sweep used to look at every parked receipt.

sub park {
    my ($id, $from, $by, $ts) = @_;
    ChatPersist::produce('chat.receipts', ChatPersist::receipt_record(
        id => $id, seq => 1, from => $from, by => $by,
        status => 'delivered', ts => $ts));
}

sub store_behind {
    my ($id, $from, $to, $ts) = @_;
    ChatPersist::sql("INSERT INTO messages (conv, seq, id, sender, recipient, "
                     . "body, client_id, ts) VALUES (:'c', 1, :'id', :'f', "
                     . ":'t', 'raced', :'k', :'ts'); INSERT INTO deliveries "
                     . "(recipient, conv, seq, ts) VALUES (:'t', :'c', 1, "
                     . ":'ts')", c => ChatPersist::conv($from, $to),
                     id => $id, f => $from, t => $to, k => "k-$id",
                     ts => $ts);
}

sub sweep_state {
    my ($from, $to) = @_;
    return ChatPersist::sql("SELECT state FROM deliveries WHERE recipient = "
                            . ":'t' AND conv = :'c' AND seq = 1", t => $to,
                            c => ChatPersist::conv($from, $to));
}

my $sweep_base = int(time) * 1000 + 3;
my ($old_id, $new_id, $warm_id) = map { ChatPersist::new_id() } 1 .. 3;
my ($of, $ot, $nf, $nt, $wf, $wt) = map { $sweep_base + $_ } 0 .. 5;

# first a sweep must have run since the worker started (that one looks at
# everything)
park($warm_id, $wf, $wt, $t0 + 590);
ok(ChatPersist::wait_caught_up(60), 'a receipt of an unstored message read');
store_behind($warm_id, $wf, $wt, $t0 + 540);
ok(ChatTest::wait_until(sub { sweep_state($wf, $wt) eq 'delivered' },
                        timeout => 20, interval => 0.3),
   '... applied by a sweep once its message is stored behind its back');

park($old_id, $of, $ot, $t0 + 600);
park($new_id, $nf, $nt, $t0 + 700);
ok(ChatPersist::wait_caught_up(60), 'two receipts of unstored messages read');
is(ChatPersist::sql("SELECT count(*) FROM pending_receipts WHERE id IN "
                    . "(:'a', :'b')", a => $old_id, b => $new_id),
   2, '... and parked');
ChatPersist::sql("UPDATE pending_receipts SET received_at = now() - "
                 . "interval '1 hour' WHERE id = :'a'", a => $old_id);
store_behind($old_id, $of, $ot, $t0 + 550);
store_behind($new_id, $nf, $nt, $t0 + 650);
ok(ChatTest::wait_until(sub { sweep_state($nf, $nt) eq 'delivered' },
                        timeout => 20, interval => 0.3),
   'a sweep applied the receipt parked just now to the message stored '
   . 'behind its back');
is(sweep_state($of, $ot), 'sent',
   '... but not the one parked an hour ago: a sweep looks 10 minutes back');
is(ChatPersist::sql("SELECT count(*) FROM pending_receipts WHERE id = :'a'",
                    a => $old_id), 1, '... which stays parked');
like(ChatPersist::sql("SET enable_seqscan = off; EXPLAIN SELECT count(*) "
                      . "FROM pending_receipts p "
                      . "WHERE p.received_at >= now() - interval '10 "
                      . "minutes'"),
     qr/pending_receipts_received_at_idx/,
     "a sweep's parked receipts come from the received_at index");
ChatTest::stack_svc('persist', 'stop');
ChatTest::stack_svc('persist', 'start');
ok(ChatTest::wait_until(sub { sweep_state($of, $ot) eq 'delivered' },
                        timeout => 30, interval => 0.3),
   'the first sweep after a start applied the old one too');
is(ChatPersist::sql("SELECT count(*) FROM pending_receipts WHERE id IN "
                    . "(:'a', :'b')", a => $old_id, b => $new_id),
   0, '... and nothing is parked any more');

# what B has not received, oldest first, from its index
is(ChatPersist::sql("SELECT string_agg(seq::text, ',' ORDER BY ts, conv, seq) "
                    . "FROM deliveries WHERE recipient = :'b' "
                    . "AND state = 'sent'", b => $uid{ben}),
   join(',', 4 .. 50), 'B has not received 4 to 50, oldest first');
like(ChatPersist::sql("SET enable_seqscan = off; EXPLAIN SELECT conv, seq "
                      . "FROM deliveries WHERE recipient = :'b' "
                      . "AND state = 'sent' ORDER BY ts, conv, seq LIMIT 100",
                      b => $uid{ben}),
     qr/Index Only Scan using deliveries_p\d+_recipient_ts_conv_seq_idx/,
     '... a scan of the partial index on one partition');

# --- 6. the broker restarts between a PostgreSQL commit and its offsets -----------

my $conv_gh = ChatPersist::conv($uid{gus}, $uid{hal});
my $gus = ChatPersist::ws_connect($uid{gus});
{
    local $ENV{CHAT_WORKER_FAILPOINT} = 'after_pg_commit:4000';
    ChatTest::stack_svc('persist', 'stop');
    ChatTest::stack_svc('persist', 'start');
}
$off = ChatPersist::log_size();

# sends until acked: while the brokers are down a send gets an error
sub send_acked {
    my ($i) = @_;
    for (1 .. 60) {
        my $a = ChatPersist::ws_send($gus, to => $uid{hal},
                                     client_id => "b$i-$run",
                                     body => "through a broker restart $i");
        return $a if ($a->{type} // '') eq 'ack';
        sleep 0.5;
    }
    return {};
}

my @gh = map { send_acked($_) } 1 .. 10;
ok(ChatPersist::wait_log($off, qr/event=failpoint name=after_pg_commit/, 60),
   'a batch is in PostgreSQL, its offsets not yet committed');
ChatTest::stack_svc('kafka', 'down');
ok(ChatPersist::wait_log($off, qr/event=batch [^\n]*commit="?(?!ok)/, 30),
   '... the brokers go down: its offset commit fails');
ChatTest::stack_svc('kafka', 'up');
push @gh, map { send_acked($_) } 11 .. 20;
is(scalar(grep { ($_->{type} // '') eq 'ack' } @gh), 20,
   'the brokers are back: 20 messages acked in all');
ChatTest::stack_svc('persist', 'stop');
ChatTest::stack_svc('persist', 'start');
ok(ChatPersist::wait_caught_up(90), 'the worker caught up, offsets committed');
is(count_conv($conv_gh), '20|20', 'PostgreSQL holds each of the 20 once');
is(ChatPersist::sql("SELECT string_agg(seq::text, ',' ORDER BY seq) FROM "
                    . "messages WHERE conv = :'c'", c => $conv_gh),
   join(',', 1 .. 20), '... seq 1 to 20');
$gus->close;

# --- the worker leaves cleanly on SIGTERM -----------------------------------------

$off = ChatPersist::log_size();
ChatTest::stack_svc('persist', 'stop');
like(ChatPersist::log_since($off), qr/event=draining.*event=stopped [^\n]*exit=0/s,
     'SIGTERM: drained and exited 0');
ChatTest::stack_svc('persist', 'start');

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');

done_testing();
