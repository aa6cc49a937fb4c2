# The search index's worker (issue #17, first part): chat-worker index,
# started by scripts/stack, against the test stack's real PostgreSQL,
# Redis and Kafka-protocol broker.
#
#   - A and B, and C and D, exchange messages through the gateway while
#     1,000 messages a second go to chat.messages; each is found by
#     GET /v1/search within 3 s of its ack, its words found
#     by PostgreSQL's full-text search in the configured language
#     (search_config, 'simple'), with its conversation, sender and
#     recipient; a word of A's conversation is not in C's;
#   - a group message is indexed with its group;
#   - an e2e message: its body never reaches the index (doc is NULL, its
#     words are found nowhere), its search_tokens are stored as they came
#     and found by them;
#   - the same record twice: one row; an unreadable record is logged and
#     skipped (the persist worker dead-letters it), and the worker goes on;
#   - a message deleted from messages (as the ephemeral retention mode
#     does) leaves the index;
#   - the worker SIGKILLed and started again: what it had not committed
#     is indexed, nothing twice.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use POSIX ();
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatJWT;
use ChatClient qw(register_users ws_connect frames api_as);
use ChatPersist ();

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

ChatPersist::start_gateway('node1');
my $port = ChatTest::port();

sub sql { ChatPersist::sql(@_) }

sub caught_up { ChatPersist::messages_caught_up('chat-index', @_) }

ChatTest::stack_svc('index', 'start');
ok(caught_up(90), 'the index worker runs and has caught up');

my %u = register_users('idx', qw(a b c d));
my ($A, $B, $C, $D) = @u{qw(a b c d)};
my $run = sprintf '%x', int(time * 1000);
my ($wa, $wc) = (ws_connect($port, $A), ws_connect($port, $C));

my $n = 0;
sub send_msg {
    my ($ws, %m) = @_;
    my $cid = 'i' . $run . '-' . ++$n;
    $ws->send_text(encode_json({ type => 'send', client_id => $cid, %m }));
    my ($ack) = grep { $_->{client_id} eq $cid } frames($ws, 'ack', 1, 20);
    return $ack;
}

# rows of message_search matching a word, as "conv seq id"
sub found {
    my ($word, $where) = @_;
    $where //= 'true';
    return sql("SELECT id FROM message_search "
               . "WHERE doc @@ plainto_tsquery((SELECT language FROM "
               . "search_config), :'w') AND $where ORDER BY id",
               w => $word);
}


# --- 1. within 3 s of the ack at steady load, in the right conversation ------
#
# build/chat-bench-produce writes 1,000 one-to-one messages a second to
# chat.messages meanwhile, users of its own (no rows in users): the index
# and persist workers read them with ours.  "Searchable" is found by
# GET /v1/search, which needs the message stored too.

my $load_base = int(time) * 1000 + 7;
my $load_pid = fork // die "fork: $!";
if (!$load_pid) {
    $ENV{KAFKA_BROKERS} = ChatPersist::stack_env('KAFKA_BROKERS');
    open STDOUT, '>', '/dev/null';
    exec "$ChatTest::Root/build/chat-bench-produce", '--count', 30000,
         '--rate', 1000, '--conversations', 100, '--words', 500,
         '--user-base', $load_base, '--max-lag', 0
        or POSIX::_exit(127);
}
sleep 2;

sub load_rows {
    return sql("SELECT count(*) FROM message_search WHERE sender BETWEEN "
               . "(:'b')::bigint AND (:'b')::bigint + 199", b => $load_base);
}
ok(ChatTest::wait_until(sub { load_rows() > 0 }, timeout => 10),
   'a steady load of 1,000 messages a second is being indexed');

sub searchable {
    my ($uid, $word, $id) = @_;
    my ($st, $r) = api_as($uid, GET => "/v1/search?q=$word");
    return $st == 200 && grep { $_->{id} eq $id } @{ $r->{results} || [] };
}

my ($w1, $w2, $a1, $c1, @late, @took);
my $worst = 0;
for my $i (1 .. 5) {
    $w1 = "zebra$run$i";
    $w2 = "okapi$run$i";
    my $acked = time;
    $a1 = send_msg($wa, to => $B, body => "the $w1 crossed");
    $c1 = send_msg($wc, to => $D, body => "an $w2 and a $w1 too");
    last unless $a1 && $c1;
    ChatTest::wait_until(sub { searchable($A, $w1, $a1->{id})
                               && searchable($C, $w2, $c1->{id}) },
                         timeout => 6, interval => 0.05);
    my $took = time - $acked;
    $worst = $took if $took > $worst;
    push @took, $took;
    push @late, sprintf('%.2f', $took) if $took > 3;
    sleep 0.5;
}
ok($a1 && $c1, 'the messages are acked');
ok(!@late, sprintf('at 1,000 msgs/s, each of 5 pairs searchable through '
                   . 'GET /v1/search within 3 s of the ack (worst %.2f s, '
                   . 'median %.2f s)', $worst, (sort { $a <=> $b } @took)[$#took / 2] // 0))
    or diag "late: @late";
ok(load_rows() > 2000, '... while the load was being indexed ('
                       . load_rows() . ' rows)');
kill 'TERM', $load_pid;
waitpid $load_pid, 0;
for my $t (qw(message_search messages)) {
    sql("DELETE FROM $t WHERE sender BETWEEN (:'b')::bigint AND (:'b')::bigint + 199",
        b => $load_base);
}
sql("DELETE FROM deliveries WHERE recipient BETWEEN (:'b')::bigint AND (:'b')::bigint + 199",
    b => $load_base);

my $row = sql("SELECT conv, sender, recipient, group_id IS NULL, ts > 0 "
              . "FROM message_search WHERE id = :'id'", id => $a1->{id});
my $conv = $A < $B ? "d:$A:$B" : "d:$B:$A";
is($row, "$conv|$A|$B|t|t", 'A\'s row: its conversation, sender, recipient');
is(found($w2, "conv = '$conv'"), '', 'C\'s word is not in A\'s conversation');
is(found($w2), $c1->{id}, '... but in C\'s');

# an exact word, not a substring
is(found(substr($w1, 0, 7)), '', 'a prefix of a word finds nothing');


# --- 2. a group message --------------------------------------------------------

my ($st, $g) = api_as($A, POST => '/v1/groups',
                      { name => "idx-$run", members => [$B, $C] });
is($st, 201, 'group created');
my $w3 = "lynx$run";
my $g1 = send_msg($wa, group => $g->{group_id}, body => "a $w3 in the group");
ok(ChatTest::wait_until(sub { found($w3) eq $g1->{id} }, timeout => 5),
   'the group message is indexed');
is(sql("SELECT group_id, recipient IS NULL FROM message_search "
       . "WHERE id = :'id'", id => $g1->{id}),
   "$g->{group_id}|t", '... with its group and no recipient');


# --- 3. e2e: the body never, the blind-index terms as they came ----------------

my $secret = "walrus$run";
# 22 base64url characters each (as a client makes them), new each run
my @tokens = map { substr("${_}_$run" . ('x' x 22), 0, 22) } qw(tokA tokB);
my $eid = ChatPersist::new_id();
my $erec = ChatPersist::message_record(id => $eid, seq => 9000 + $$ % 1000,
                                       from => $A, to => $B,
                                       body => "ciphertext $secret");
$erec->[1] =~ s/\}$/,"e2e":true,"search_tokens":["$tokens[0]","$tokens[1]"]}/;
ChatPersist::produce('chat.messages', $erec);
ok(ChatTest::wait_until(sub {
       sql("SELECT count(*) FROM message_search WHERE id = :'id'",
           id => $eid) == 1 }, timeout => 10),
   'the e2e message is indexed');
is(sql("SELECT doc IS NULL, array_to_string(tokens, ',') FROM message_search "
       . "WHERE id = :'id'", id => $eid),
   "t|$tokens[0],$tokens[1]", '... without its body, with its tokens');
is(found($secret), '', 'its plaintext word is found nowhere');
is(sql("SELECT id FROM message_search WHERE tokens @> ARRAY[:'t']::text[]",
       t => $tokens[1]), $eid, 'a token finds it');


# ... and through the gateway: the tokens a client sends reach the index
my @gt = map { substr("gw${_}_$run" . ('y' x 22), 0, 22) } qw(A B C);
my $ge = send_msg($wa, to => $B, body => 'Y2lwaGVydGV4dA', e2e => JSON::PP::true,
                  search_tokens => \@gt);
ok($ge && $ge->{id}, 'an e2e send with search_tokens is acked');
ok(ChatTest::wait_until(sub {
       sql("SELECT array_to_string(tokens, ',') FROM message_search "
           . "WHERE id = :'id' AND doc IS NULL", id => $ge->{id})
       eq join(',', @gt) }, timeout => 5),
   '... and indexed by its tokens only');


# --- 4. twice, and an unreadable record ----------------------------------------

ChatPersist::produce('chat.messages', $erec, ['d:1:2', 'not a record']);
ok(caught_up(30), 'the worker went past both');
is(sql("SELECT count(*) FROM message_search WHERE id = :'id'", id => $eid),
   1, 'the same record twice: one row');
my $ilog = ChatPersist::stack_env('CHAT_VAR') . '/log/worker-index.log';
like(do { local (@ARGV, $/) = $ilog; <> },
     qr/event=unreadable source=chat\.messages\/\d+\/\d+ reason=/,
     'the unreadable record is logged and skipped (persist dead-letters it)');


# --- 5. a message deleted leaves the index -------------------------------------

ok(ChatTest::wait_until(sub {
       sql("SELECT count(*) FROM messages WHERE id = :'id'",
           id => $a1->{id}) == 1 }, timeout => 30),
   'the persist worker stored A\'s message');
sql("DELETE FROM messages WHERE conv = :'c' AND id = :'id'",
    c => $conv, id => $a1->{id});
is(sql("SELECT count(*) FROM message_search WHERE id = :'id'",
       id => $a1->{id}), 0, 'deleted from messages: gone from the index');


# --- 6. SIGKILL, then the start: indexed once ----------------------------------

ChatTest::stack_svc('index', 'kill');
my $w4 = "ibex$run";
my @k = map { send_msg($wa, to => $B, body => "$w4 number $_") } 1 .. 5;
is(scalar(grep { $_ && $_->{id} } @k), 5, 'five messages acked while the '
                                          . 'worker is down');
ChatTest::stack_svc('index', 'start');
ok(caught_up(60), 'the restarted worker caught up');
is(found($w4), join("\n", sort map { $_->{id} } @k),
   'all five indexed, each once');

done_testing();
