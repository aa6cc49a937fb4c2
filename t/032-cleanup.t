# chat-worker cleanup (the retention modes, sql/0005_retention.sql)
# against the test stack's real PostgreSQL, Redis, Kafka-protocol broker
# and persist worker; messages and receipts sent over real WebSockets
# through a ChatTest nginx, group traffic and early receipts made with kcat
# (the gateway does not send to groups yet):
#
#   - bad option values: a clear error and exit 2;
#   - permanent (the default) deletes nothing, says so, exits 0;
#   - ephemeral: of ann's messages to ben only those ben has (delivered or
#     read) go, with their delivery rows; a group message goes once every
#     member has it (the members' positions, sql/0008), not before; a message without any delivery row stays;
#     a receipt parked before its message stays until the message comes,
#     then that message goes; parked receipts older than --pending-ttl go;
#     GET /v1/messages shows what is left; bodies never reach the log;
#   - the search index: a row of a message deleted before it was indexed
#     goes after --search-grace, the rows of stored messages and of
#     messages not stored yet stay;
#   - --ttl: old undelivered messages go, new ones stay;
#   - two instances at once delete each message once, and all of them;
#   - the daemon from scripts/stack (CHAT_RETENTION=ephemeral): a message
#     ben receives and acknowledges disappears within seconds; SIGTERM
#     stops it with exit 0.
#
# The ephemeral passes clean the whole test database, so what other
# suites left there goes too (they do not read it back); the checks below
# are about this run's conversations, and the counts of the worker's log
# are exact only where nothing else can be deleted.

use strict;
use warnings;
use Test::More;
use File::Temp ();
use POSIX ();
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatJWT;
use ChatPersist;
use ChatClient qw(frames);

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

ChatPersist::start_gateway('cleanup-node');

my $run = sprintf '%x%x', $$, time;
my %uid = map { $_ => ChatPersist::register("${_}_$run") }
          qw(ann ben cid dan);
my $Json = ChatPersist::Json;

ChatTest::stack_svc('persist', 'start');

my $worker = $ENV{CHAT_WORKER_BIN} // "$ChatTest::Root/build/chat-worker";

# starts chat-worker cleanup ARGS with the stack's PG_DSN in the
# environment; its pid and the file its stdout and stderr go to
sub spawn_cleanup {
    my (@args) = @_;
    my $out = File::Temp->new(SUFFIX => '.log');
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $ENV{PG_DSN} = ChatPersist::stack_env('PG_DSN');
        open STDOUT, '>', $out->filename or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        exec $worker, 'cleanup', @args or POSIX::_exit(127);
    }
    return ($pid, $out);
}

# (exit code, output) of a run to its end
sub cleanup {
    my ($pid, $out) = spawn_cleanup(@_);
    waitpid $pid, 0;
    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    return ($rc, ChatTest::slurp($out->filename));
}

# the counts of the "event=pass" lines of a log, added
sub pass_sums {
    my ($log) = @_;
    my %sum;
    for (grep { /event=pass / } split /\n/, $log) {
        $sum{$1} += $2 while /\b(\w+)=(\d+)\b/g;
    }
    return \%sum;
}

sub count { ChatPersist::sql(@_) }

sub seqs {
    my ($conv) = @_;
    return ChatPersist::sql("SELECT coalesce(string_agg(seq::text, ',' "
                            . "ORDER BY seq), '') FROM messages "
                            . "WHERE conv = :'c'", c => $conv);
}

# a group's positions: user:delivered_seq:read_seq, by user
sub positions {
    my ($gid) = @_;
    return ChatPersist::sql("SELECT coalesce(string_agg(user_id || ':' || "
                            . "delivered_seq || ':' || read_seq, ',' "
                            . "ORDER BY user_id), '') FROM group_positions "
                            . "WHERE group_id = :'g'", g => $gid);
}

sub delivery_rows {
    my ($conv) = @_;
    return ChatPersist::sql("SELECT coalesce(string_agg(seq || ':' || "
                            . "recipient || ':' || state, ',' ORDER BY seq, "
                            . "recipient), '') FROM deliveries "
                            . "WHERE conv = :'c'", c => $conv);
}


# --- 1. bad options ------------------------------------------------------------

for my $case (
    [['--retention', 'forever'], qr/"retention" wants permanent or ephemeral, not "forever"/],
    [['--retention', 'ephemeral', '--ttl', '7x'], qr/"ttl" wants a duration like 30s, 15m, 12h or 7d .*not "7x"/],
    [['--retention', 'ephemeral', '--ttl', '-1d'], qr/"ttl" wants a duration/],
    [['--ttl', '7d'], qr/--ttl deletes messages: it needs --retention ephemeral/],
    [['--retention', 'ephemeral', '--interval', '0s'], qr/"interval" wants a duration .*from 1s/],
    [['--retention', 'ephemeral', '--pending-ttl', '5'], qr/"pending-ttl" wants a duration/],
    [['--retention', 'ephemeral', '--batch-size', '0'], qr/"batch-size" wants a number from 1/],
    [['--retention', 'ephemeral', '--search-grace', '10'], qr/"search-grace" wants a duration/],
    [['--retention', 'ephemeral', '--bogus'], qr/unknown option "--bogus"/],
) {
    my ($args, $re) = @$case;
    my ($rc, $out) = cleanup(@$args, '--once');
    is($rc, 2, "cleanup @$args: exit 2");
    like($out, $re, '... saying why');
}

my ($rc, $out) = (undef, scalar `$worker --help`);
like($out, qr/^  cleanup   the retention mode/m, '--help lists the cleanup role');
like($out, qr/--retention MODE .*--ttl DURATION .*--pending-ttl DURATION .*--interval DURATION .*--once/s,
     '... and its options');


# --- 2. the traffic ----------------------------------------------------------------

my $conv_ab = ChatPersist::conv($uid{ann}, $uid{ben});
my $ann = ChatPersist::ws_connect($uid{ann});
my @acks = map { ChatPersist::ws_send($ann, to => $uid{ben},
                                      client_id => "c$_-$run",
                                      body => "secret body $_ $run") } 1 .. 6;
is(scalar(grep { ($_->{type} // '') eq 'ack' } @acks), 6, '6 messages acked');

my $ben = ChatPersist::ws_connect($uid{ben});
my @got = frames($ben, 'message', 6, 30);
is(scalar @got, 6, 'ben gets them');
# 1 and 2 delivered, 3 read, 4 to 6 nothing
for my $i (0 .. 2) {
    $ben->send_text($Json->encode({ type => 'receipt', id => $acks[$i]{id},
                                    status => $i == 2 ? 'read'
                                                      : 'delivered' }));
}
ok(frames($ann, 'receipt', 3, 30) == 3, 'ann hears of his 3 receipts');

# groups (records made with kcat): everyone, part of them, nobody else
sub group {
    my ($name, @members) = @_;
    my ($st, undef, $body) = ChatTest::http_request(
        POST => '/v1/groups',
        { Authorization => 'Bearer ' . ChatJWT::token(sub => $uid{ann}) },
        $Json->encode({ name => "$name $run", members => \@members }));
    die "group $name: $st $body\n" unless $st == 201;
    return $Json->decode($body)->{group_id};
}
my $g = group('all', $uid{ben}, $uid{cid});
my $g_alone = group('alone');
my @gid = map { ChatPersist::new_id() } 1 .. 2;
my $t0 = int(time * 1000);
ChatPersist::produce('chat.messages',
    (map { ChatPersist::message_record(id => $gid[$_ - 1], seq => $_,
               group => $g, from => $uid{ann}, body => "group $_ $run") }
     1 .. 2),
    ChatPersist::message_record(id => ChatPersist::new_id(), seq => 1,
        group => $g_alone, from => $uid{ann}, body => "alone $run"));
ok(ChatPersist::wait_caught_up(60), 'group messages persisted');
sub group_receipt {
    my ($i, $by) = @_;
    return ChatPersist::receipt_record(conv => "g:$g", id => $gid[$i - 1],
        seq => $i, from => $uid{ann}, by => $by, status => 'delivered',
        ts => $t0 + 10);
}
# group message 1: both members have it; 2: only ben
ChatPersist::produce('chat.receipts', group_receipt(1, $uid{ben}),
                     group_receipt(1, $uid{cid}), group_receipt(2, $uid{ben}));

# a one-to-one message whose delivery row is missing
my $conv_ad = ChatPersist::conv($uid{ann}, $uid{dan});
ChatPersist::produce('chat.messages', ChatPersist::message_record(
    id => ChatPersist::new_id(), seq => 1, from => $uid{ann},
    to => $uid{dan}, body => "no row $run"));

# old, undelivered: only the TTL removes them; and a new one
my $conv_ac = ChatPersist::conv($uid{ann}, $uid{cid});
my $old = $t0 - 2 * 3600 * 1000;
ChatPersist::produce('chat.messages',
    (map { ChatPersist::message_record(id => ChatPersist::new_id(),
               seq => $_, from => $uid{ann}, to => $uid{cid},
               body => "old $_ $run", ts => $old + $_) } 1 .. 2),
    ChatPersist::message_record(id => ChatPersist::new_id(), seq => 3,
        from => $uid{ann}, to => $uid{cid}, body => "new $run"));

# a receipt ahead of its message (parked), and one parked long ago
my $conv_cd = ChatPersist::conv($uid{cid}, $uid{dan});
my $early = ChatPersist::new_id();
my $stale = ChatPersist::new_id();
ChatPersist::produce('chat.receipts',
    map { ChatPersist::receipt_record(id => $_, seq => 1, from => $uid{cid},
                                      by => $uid{dan}, status => 'read') }
    $early, $stale);
ok(ChatPersist::wait_caught_up(60), 'everything persisted');

ChatPersist::sql("DELETE FROM deliveries WHERE recipient = :'r' "
                 . "AND conv = :'c'", r => $uid{dan}, c => $conv_ad);
ChatPersist::sql("UPDATE pending_receipts SET received_at = now() - "
                 . "interval '2 hours' WHERE conv = :'c' AND id = :'id'",
                 c => $conv_cd, id => $stale);

ok(ChatTest::wait_until(sub { delivery_rows($conv_ab) eq join(',',
       map { "$_:$uid{ben}:" . ($_ <= 2 ? 'delivered' : $_ == 3 ? 'read'
                                                               : 'sent') }
       1 .. 6) }, timeout => 30, interval => 0.3),
   "ann-ben: ben's receipts reached PostgreSQL")
    or diag delivery_rows($conv_ab);
is(positions($g), join(',', "$uid{ann}:0:0", "$uid{ben}:2:0",
                          "$uid{cid}:1:0"),
   'group: message 1 reached by both, 2 by ben only (positions)');
is(delivery_rows("g:$g"), '', '... and no delivery rows');
is(delivery_rows("g:$g_alone"), '', 'the group of one: no delivery row');
is(seqs($conv_ad) . '|' . delivery_rows($conv_ad), '1|',
   'ann-dan: a message without its delivery row');
is(count("SELECT count(*) FROM pending_receipts WHERE conv = :'c'",
         c => $conv_cd), 2, 'two receipts parked');

# everything of this run, to see that permanent changes nothing
my $digest_sql = q{
    SELECT md5(coalesce((SELECT string_agg(conv || seq || id, ',' ORDER BY
                                           conv, seq) FROM messages), '')
               || coalesce((SELECT string_agg(conv || seq || recipient
                                              || state, ',' ORDER BY
                                              recipient, conv, seq)
                            FROM deliveries), '')
               || coalesce((SELECT string_agg(conv || id || recipient, ','
                                              ORDER BY conv, id, recipient)
                            FROM pending_receipts), ''))};


# --- 3. permanent: nothing ------------------------------------------------------------

my $before = ChatPersist::sql($digest_sql);
for my $args ([], ['--retention', 'permanent']) {
    ($rc, $out) = cleanup(@$args, '--once');
    is($rc, 0, "cleanup @$args --once: exit 0");
    like($out, qr/level=warn role=cleanup event=disabled retention=permanent deleted=0/,
         '... saying that it deletes nothing');
}
is(ChatPersist::sql($digest_sql), $before,
   'permanent: the database is as it was');


# --- 4. ephemeral ------------------------------------------------------------------------

($rc, $out) = cleanup('--retention', 'ephemeral', '--once',
                      '--batch-size', 2);
is($rc, 0, 'ephemeral --once: exit 0') or diag $out;
like($out, qr/event=pass scanned=\d+ delivered=\d+ expired=0 delivery_rows=\d+ pending=\d+ transactions=\d+ ms=\d+/,
     '... one line with the counts of the pass');
my $sum = pass_sums($out);
cmp_ok($sum->{delivered}, '>=', 4, '... at least our 4 delivered messages');
cmp_ok($sum->{pending}, '>=', 1, '... and our stale parked receipt');
cmp_ok($sum->{transactions}, '>', 3, '... windows of 2 messages each');
unlike($out, qr/secret body|\Q$run\E/, 'no body (nor anything of it) in the log');

is(seqs($conv_ab), '4,5,6', 'ann-ben: 1 to 3 (delivered, read) are gone');
is(delivery_rows($conv_ab), join(',', map { "$_:$uid{ben}:sent" } 4 .. 6),
   '... with their delivery rows; 4 to 6 are kept');
is(seqs("g:$g"), '2', 'group: the message both members have is gone, '
                      . 'the one cid does not have is kept');
is(positions($g), join(',', "$uid{ann}:0:0", "$uid{ben}:2:0",
                          "$uid{cid}:1:0"),
   '... the positions stay');
is(seqs("g:$g_alone"), '1', 'a group message nobody received is kept');
is(seqs($conv_ad), '1', 'a message without its delivery row is kept');
is(seqs($conv_ac), '1,2,3', 'undelivered messages are kept without --ttl');
is(ChatPersist::sql("SELECT string_agg(id, ',') FROM pending_receipts "
                    . "WHERE conv = :'c'", c => $conv_cd), $early,
   'the stale parked receipt is gone, the early one is kept');

my ($st, $page) = ChatPersist::api_get($uid{ann},
                                       "/v1/messages?with=$uid{ben}");
is_deeply([map { $_->{seq} } @{ $page->{messages} || [] }], [6, 5, 4],
          'GET /v1/messages: what is left, as before');

# the same again: nothing of ours changes
$before = ChatPersist::sql($digest_sql);
($rc, $out) = cleanup('--retention', 'ephemeral', '--once');
is($rc, 0, 'a second pass: exit 0');
is(pass_sums($out)->{delivered} // -1, 0, '... it deletes nothing more');
is(ChatPersist::sql($digest_sql), $before, '... the database is unchanged');

# the early receipt's message comes: it is read at once, and goes
ChatPersist::produce('chat.messages', ChatPersist::message_record(
    id => $early, seq => 1, from => $uid{cid}, to => $uid{dan},
    body => "late $run"));
ok(ChatPersist::wait_caught_up(60), 'the early receipt\'s message came');
is(delivery_rows($conv_cd), "1:$uid{dan}:read", '... the receipt applied');
($rc, $out) = cleanup('--retention', 'ephemeral', '--once');
is(pass_sums($out)->{delivered}, 1, '... and a pass deletes it');
is(seqs($conv_cd) . '|' . delivery_rows($conv_cd), '|', '... with its row');
is(count("SELECT seq FROM conv_seq_floor WHERE conv = :'c'", c => $conv_cd),
   1, '... its seq is kept as the conversation\'s floor');
is(count("SELECT chat_seq_top(:'c')", c => $conv_cd), 1,
   '... so a counter set from PostgreSQL goes on after it');
is(count("SELECT chat_seq_top(:'c')", c => $conv_ab), 6,
   'chat_seq_top of a conversation with messages: its newest seq');


# --- 4b. the search index's orphans (sql/0014) ----------------------------------------
#
# rows as chat-worker index writes them, put there by hand: the index
# worker is not part of this suite

sub index_row {
    my ($conv, $seq, $age_s, %to) = @_;
    ChatPersist::sql("INSERT INTO message_search (conv, seq, id, sender, "
        . "recipient, ts, doc, indexed_at) VALUES (:'c', :'s', :'id', "
        . ":'from', :'to', 0, to_tsvector('simple', 'orphan words'), "
        . "now() - (:'age')::int * interval '1 second') ON CONFLICT DO NOTHING",
        c => $conv, s => $seq, id => ChatPersist::new_id(),
        from => $to{from}, to => $to{to}, age => $age_s);
}

sub indexed {
    my ($conv) = @_;
    return ChatPersist::sql("SELECT coalesce(string_agg(seq::text, ',' "
                            . "ORDER BY seq), '') FROM message_search "
                            . "WHERE conv = :'c'", c => $conv);
}

ChatPersist::sql("DELETE FROM message_search WHERE conv IN "
                 . "(:'a', :'b', :'c')", a => $conv_cd, b => $conv_ab,
                 c => $conv_ad);
# deleted (the floor is 1), indexed an hour ago: an orphan
index_row($conv_cd, 1, 3600, from => $uid{cid}, to => $uid{dan});
# deleted (the floor is 3), indexed just now: within the grace
index_row($conv_ab, 2, 0, from => $uid{ann}, to => $uid{ben});
# stored: not an orphan, however old
index_row($conv_ab, 5, 3600, from => $uid{ann}, to => $uid{ben});
# not stored, above the floor (no floor): not stored yet, kept
index_row($conv_ad, 2, 3600, from => $uid{ann}, to => $uid{dan});

($rc, $out) = cleanup('--retention', 'ephemeral', '--once',
                      '--batch-size', 2);
is($rc, 0, 'a pass with orphans in the index: exit 0') or diag $out;
cmp_ok(pass_sums($out)->{search} // 0, '>=', 1, '... it counts them');
is(indexed($conv_cd), '', '... the row of a deleted message, indexed an '
                          . 'hour ago, is gone');
is(indexed($conv_ab), '2,5', '... one indexed just now (--search-grace '
                             . '10m) and one of a stored message stay');
is(indexed($conv_ad), '2', '... and one above its conversation\'s floor '
                           . '(not stored yet) stays');
like($out, qr/event=started .*search_grace_s=600 /,
     '... the grace in the start line');

($rc, $out) = cleanup('--retention', 'ephemeral', '--once',
                      '--search-grace', '0s');
is($rc, 0, '--search-grace 0s: exit 0');
is(indexed($conv_ab), '5', '... the new orphan goes too, the stored '
                           . 'message\'s row stays');
is(indexed($conv_ad), '2', '... the row above the floor still stays');
ChatPersist::sql("DELETE FROM message_search WHERE conv = :'c'",
                 c => $conv_ad);


# --- 5. --ttl ---------------------------------------------------------------------------

($rc, $out) = cleanup('--retention', 'ephemeral', '--ttl', '1h', '--once');
is($rc, 0, '--ttl 1h: exit 0');
cmp_ok(pass_sums($out)->{expired}, '>=', 2, '... expired counted');
is(seqs($conv_ac), '3', 'the two messages of 2 hours ago are gone, '
                        . 'the new one is kept');
is(delivery_rows($conv_ac), "3:$uid{cid}:sent", '... rows likewise');
is(seqs($conv_ab), '4,5,6', 'the recent undelivered ones to ben are kept');


# --- 6. two at once ---------------------------------------------------------------------

my $conv_bd = ChatPersist::conv($uid{ben}, $uid{dan});
my @many = map { ChatPersist::new_id() } 1 .. 500;
ChatPersist::produce('chat.messages',
    map { ChatPersist::message_record(id => $many[$_ - 1], seq => $_,
              from => $uid{ben}, to => $uid{dan}, body => "many $_") }
    1 .. 500);
ChatPersist::produce('chat.receipts',
    map { ChatPersist::receipt_record(id => $many[$_ - 1], seq => $_,
              from => $uid{ben}, by => $uid{dan}, status => 'delivered') }
    1 .. 400);
ok(ChatPersist::wait_caught_up(60), '500 messages, 400 delivered');
ok(ChatTest::wait_until(sub {
       count("SELECT count(*) FROM deliveries WHERE conv = :'c' AND "
             . "state = 'delivered'", c => $conv_bd) == 400 },
       timeout => 30, interval => 0.3), '... in PostgreSQL');

my @runs = map { [spawn_cleanup('--retention', 'ephemeral', '--once',
                                '--batch-size', 10)] } 1 .. 2;
my @rcs;
for (@runs) {
    waitpid $_->[0], 0;
    push @rcs, $? >> 8;
}
my @logs = map { ChatTest::slurp($_->[1]->filename) } @runs;
is_deeply(\@rcs, [0, 0], 'two instances side by side: both exit 0')
    or diag @logs;
is((pass_sums($logs[0])->{delivered} // 0)
   + (pass_sums($logs[1])->{delivered} // 0), 400,
   '... the 400 delivered are deleted once in all');
is(count("SELECT count(*) || ',' || min(seq) || ',' || max(seq) FROM "
         . "messages WHERE conv = :'c'", c => $conv_bd), '100,401,500',
   '... the 100 undelivered are kept');
is(count("SELECT count(*) FROM deliveries WHERE conv = :'c'",
         c => $conv_bd), 100, '... with their rows only');
unlike(join('', @logs), qr/level=(warn|error)/, '... no warning, no error');


# --- 7. the daemon of scripts/stack -----------------------------------------------------

ok(!eval { ChatTest::stack_svc('cleanup', 'start'); 1 }
   && $@ =~ /CHAT_RETENTION is permanent: nothing to delete/,
   'svc cleanup start in the permanent mode: refused, saying why');

my $log = ChatPersist::stack_env('CHAT_VAR') . '/log/worker-cleanup.log';
my $off = -s $log // 0;
{
    local $ENV{CHAT_RETENTION} = 'ephemeral';
    local $ENV{CHAT_CLEANUP_OPTS} = '--interval 1s';
    like(ChatTest::stack_svc('cleanup', 'start'), qr/worker-cleanup: started/,
         'CHAT_RETENTION=ephemeral: svc cleanup start runs it');
}

my $ack = ChatPersist::ws_send($ann, to => $uid{ben}, client_id => "d-$run",
                               body => "live $run");
my ($live) = frames($ben, 'message', 1, 30);
ok($ack && $ack->{id} && $live && ($live->{id} // '') eq $ack->{id},
   'ann\'s new message is acked and ben gets it');
ok(ChatTest::wait_until(sub {
       count("SELECT count(*) FROM messages WHERE conv = :'c' AND id = :'id'",
             c => $conv_ab, id => $ack->{id}) == 1 },
       timeout => 30, interval => 0.2), '... it is in PostgreSQL');
sleep 2.5;
is(count("SELECT count(*) FROM messages WHERE conv = :'c' AND id = :'id'",
         c => $conv_ab, id => $ack->{id}), 1,
   '... and stays there while ben has not acknowledged it');
$ben->send_text($Json->encode({ type => 'receipt', id => $ack->{id},
                                status => 'delivered' }));
ok(ChatTest::wait_until(sub {
       count("SELECT count(*) FROM messages WHERE conv = :'c' AND id = :'id'",
             c => $conv_ab, id => $ack->{id}) == 0 },
       timeout => 30, interval => 0.2),
   'ben acknowledges it: gone within seconds');
is(seqs($conv_ab), '4,5,6', '... the others are kept');

ChatTest::stack_svc('cleanup', 'stop');
my $text = do { open my $in, '<', $log or die "$log: $!"; seek $in, $off, 0;
                local $/; <$in> };
like($text, qr/event=started retention=ephemeral .*interval_ms=1000/,
     'its log: started ephemeral, every second');
like($text, qr/event=pass scanned=\d+ delivered=[1-9]/,
     '... a pass that deleted it');
like($text, qr/event=stopped passes=\d+ [^\n]*exit=0/,
     'SIGTERM: stopped, exit 0');

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');

done_testing();
