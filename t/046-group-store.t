# Groups in PostgreSQL (issue #14, sql/0008_groups.sql) against the test
# stack's real PostgreSQL, Kafka-protocol broker and persist worker, with
# group records made with kcat as the gateway writes them
# (t/lib/ChatPersist.pm) and the API read through a ChatTest nginx:
#
#   - a group message is stored once, replays change nothing, and no
#     delivery row is written for it (one-to-one messages keep theirs);
#   - receipts move the member's positions: delivered then read, read of
#     an older message, replayed receipts (times too), out-of-order
#     receipts across and within batches keep the greatest; a
#     non-member's receipt writes nothing;
#   - GET /v1/messages?group=G: delivered_count, read_count and status
#     for groups of 2 and 3 other members, partly and fully reached;
#   - GET /v1/messages/{id}/receipts: 200 and one entry per member for
#     the sender, 403 for another member and for a one-to-one recipient,
#     the one-to-one sender's single entry, 404 for an unknown id and for
#     ids that are not ids;
#   - a removed member: its position goes, it is no longer counted, its
#     backlog is empty; a member added later is not counted for what was
#     sent before, and its receipts for those change nothing;
#   - chat_group_backlog(): what a member is owed, oldest first, from its
#     position or after_seq, limited, nothing sent before it joined (also
#     a message acknowledged before the join but stored after it),
#     nothing for a non-member; the frame as members get it.

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

ChatPersist::start_gateway('gstore-node');

my $Json = ChatPersist::Json;
my $run = sprintf '%x%x', $$, time;
my %uid = map { $_ => ChatPersist::register("${_}_$run") }
          qw(amy bob cat dan eve fay zed);
my ($A, $B, $C, $D, $E, $F, $Z) = @uid{qw(amy bob cat dan eve fay zed)};

ChatTest::stack_svc('persist', 'start');
ok(ChatPersist::wait_caught_up(90), 'the worker has caught up at the start');

sub sql { ChatPersist::sql(@_) }

# a group made by amy through the API; its id
sub group {
    my ($name, @members) = @_;
    my ($st, undef, $body) = ChatTest::http_request(
        POST => '/v1/groups',
        { Authorization => 'Bearer ' . ChatJWT::token(sub => $A) },
        $Json->encode({ name => "$name $run", members => \@members }));
    die "group $name: $st $body\n" unless $st == 201;
    return $Json->decode($body)->{group_id};
}

# "user:delivered_seq:read_seq" of a group, by user
sub positions {
    my ($gid) = @_;
    return sql("SELECT coalesce(string_agg(user_id || ':' || delivered_seq "
               . "|| ':' || read_seq, ',' ORDER BY user_id), '') "
               . "FROM group_positions WHERE group_id = :'g'", g => $gid);
}

sub pos_str { join ',', map { join ':', @$_ } sort { $a->[0] <=> $b->[0] } @_ }

my $G = group('four', $B, $C, $D);       # amy + 3 others
my $H = group('three', $B, $C);          # amy + 2 others

is(positions($G), pos_str([$A, 0, 0], [$B, 0, 0], [$C, 0, 0], [$D, 0, 0]),
   'members of a new group start at position 0');


# --- 1. stored once, no delivery rows ---------------------------------------

my (%gid, %ts);      # "G:seq" => message id, ts
sub gmsg {
    my ($g, $seq, %o) = @_;
    $gid{"$g:$seq"} //= ChatPersist::new_id();
    $ts{"$g:$seq"} //= $o{ts} // int(time * 1000);
    return ChatPersist::message_record(id => $gid{"$g:$seq"}, seq => $seq,
        from => $o{from} // $A, group => $g, body => "g$g m$seq $run",
        client_id => "c$g-$seq-$run", ts => $ts{"$g:$seq"});
}

sub grcpt {
    my ($g, $seq, $by, $status, $ts, $from) = @_;
    return ChatPersist::receipt_record(conv => "g:$g", id => $gid{"$g:$seq"},
        seq => $seq, from => $from // $A, by => $by, status => $status,
        ts => $ts // int(time * 1000));
}

ChatPersist::produce('chat.messages', map { gmsg($G, $_) } 1 .. 5);
ChatPersist::produce('chat.messages', map { gmsg($H, $_) } 1 .. 2);
ok(ChatPersist::wait_caught_up(60), 'group messages persisted');
ChatPersist::produce('chat.messages', map { gmsg($G, $_) } 1 .. 5);
ok(ChatPersist::wait_caught_up(60), '... and the same records again');

is(sql("SELECT count(*) || '/' || count(DISTINCT id) FROM messages "
       . "WHERE conv = :'c'", c => "g:$G"), '5/5',
   'each group message is stored once');
is(sql("SELECT string_agg(seq || '=' || id, ',' ORDER BY seq) FROM messages "
       . "WHERE conv = :'c'", c => "g:$G"),
   join(',', map { "$_=$gid{qq($G:$_)}" } 1 .. 5), '... under its seq');
is(sql("SELECT count(*) FROM deliveries WHERE conv IN (:'g', :'h')",
       g => "g:$G", h => "g:$H"), 0, '... with no delivery rows');

# a one-to-one message keeps its delivery row
my $one = ChatPersist::new_id();
my $conv_ab = ChatPersist::conv($A, $B);
ChatPersist::produce('chat.messages', ChatPersist::message_record(
    id => $one, seq => 1, from => $A, to => $B, body => "one $run"));
ok(ChatPersist::wait_caught_up(60), 'a one-to-one message persisted');
is(sql("SELECT recipient || ':' || state FROM deliveries WHERE conv = :'c'",
       c => $conv_ab), "$B:sent", '... with its delivery row');


# --- 2. receipts move positions ----------------------------------------------

my $t0 = int(time * 1000);

# bob: delivered 2, then read 1 (read of an older one: read_seq 1)
ChatPersist::produce('chat.receipts', grcpt($G, 2, $B, 'delivered', $t0 + 1));
ok(ChatPersist::wait_caught_up(60), 'bob: delivered 2');
is(positions($G), pos_str([$A, 0, 0], [$B, 2, 0], [$C, 0, 0], [$D, 0, 0]),
   '... bob at 2, nothing read');
ChatPersist::produce('chat.receipts', grcpt($G, 1, $B, 'read', $t0 + 2));
ok(ChatPersist::wait_caught_up(60), 'bob: read 1');
is(positions($G), pos_str([$A, 0, 0], [$B, 2, 1], [$C, 0, 0], [$D, 0, 0]),
   '... read moves to 1, delivered stays at 2');
is(sql("SELECT delivered_at || ':' || read_at FROM group_positions "
       . "WHERE group_id = :'g' AND user_id = :'u'", g => $G, u => $B),
   ($t0 + 1) . ':' . ($t0 + 2), '... the times of the receipts that moved them');

# cat: delivered 4; then, in a later batch, delivered 3 (out of order)
ChatPersist::produce('chat.receipts', grcpt($G, 4, $C, 'delivered', $t0 + 3));
ok(ChatPersist::wait_caught_up(60), 'cat: delivered 4');
ChatPersist::produce('chat.receipts', grcpt($G, 3, $C, 'delivered', $t0 + 4),
                     grcpt($G, 2, $C, 'read', $t0 + 5));
ok(ChatPersist::wait_caught_up(60), 'cat: delivered 3 and read 2, later');
is(positions($G), pos_str([$A, 0, 0], [$B, 2, 1], [$C, 4, 2], [$D, 0, 0]),
   '... delivered keeps the greatest (4), read moves to 2');
is(sql("SELECT delivered_at FROM group_positions WHERE group_id = :'g' "
       . "AND user_id = :'u'", g => $G, u => $C), $t0 + 3,
   '... and delivered_at stays that of 4');

# replays (the same records again) change nothing, times included
my $all_sql = q{SELECT string_agg(concat_ws(':', user_id, delivered_seq,
                                            delivered_at, read_seq, read_at),
                                  ',' ORDER BY user_id)
                FROM group_positions WHERE group_id = :'g'};
my $before = sql($all_sql, g => $G);
my $off = ChatPersist::log_size();
ChatPersist::produce('chat.receipts', grcpt($G, 2, $B, 'delivered', $t0 + 1),
                     grcpt($G, 1, $B, 'read', $t0 + 2),
                     grcpt($G, 4, $C, 'delivered', $t0 + 3),
                     grcpt($G, 2, $B, 'delivered', $t0 + 9));
ok(ChatPersist::wait_caught_up(60), 'receipts replayed');
is(sql($all_sql, g => $G), $before, '... positions and times unchanged');
is(ChatPersist::batch_sums($off)->{receipts} // 0, 0,
   '... the worker counts no receipt applied');

# within one batch, out of order: the greatest of each kind wins, with its
# time; read implies delivered
ChatPersist::produce('chat.receipts', grcpt($G, 3, $D, 'delivered', $t0 + 6),
                     grcpt($G, 5, $D, 'read', $t0 + 7),
                     grcpt($G, 1, $D, 'delivered', $t0 + 8));
ok(ChatPersist::wait_caught_up(60), 'dan: three receipts at once');
is(sql("SELECT concat_ws(':', delivered_seq, delivered_at, read_seq, read_at) "
       . "FROM group_positions WHERE group_id = :'g' AND user_id = :'u'",
       g => $G, u => $D),
   join(':', 5, $t0 + 7, 5, $t0 + 7),
   '... read 5 moves both to 5, with its time');
# back to a state where dan lags: dan is made to have only 1 (a test
# shortcut: positions only go forward through receipts)
sql("UPDATE group_positions SET delivered_seq = 1, read_seq = 0, "
    . "read_at = NULL WHERE group_id = :'g' AND user_id = :'u'",
    g => $G, u => $D);

# a non-member's receipt writes nothing
ChatPersist::produce('chat.receipts', grcpt($G, 5, $Z, 'read'));
ok(ChatPersist::wait_caught_up(60), 'a receipt by a non-member');
is(sql("SELECT count(*) FROM group_positions WHERE user_id = :'u'", u => $Z),
   0, '... writes no position');


# --- 3. counts and status in the history -------------------------------------

# G: amy sent 1..5; bob 2/1, cat 4/2, dan 1/0 (3 others)
sub counts {
    my ($g, $uid) = @_;
    my ($st, $page, $raw) = ChatPersist::api_get($uid // $A,
                                                 "/v1/messages?group=$g");
    return "$st $raw" unless $st == 200;
    return join ' ', map { "$_->{seq}:$_->{status}:$_->{delivered_count}:"
                           . "$_->{read_count}" }
                     reverse @{ $page->{messages} };
}
is(counts($G), '1:delivered:3:2 2:sent:2:1 3:sent:1:0 4:sent:1:0 5:sent:0:0',
   'group of 3 others: counts and status, partly reached');
is(counts($G, $B), counts($G), '... the same for any member');

ChatPersist::produce('chat.receipts', grcpt($G, 5, $B, 'read'),
                     grcpt($G, 5, $C, 'read'), grcpt($G, 4, $D, 'read'));
ok(ChatPersist::wait_caught_up(60), 'more receipts');
is(counts($G), '1:read:3:3 2:read:3:3 3:read:3:3 4:read:3:3 5:sent:2:2',
   '... read by all up to 4, 5 by two of three: sent');

# H: amy sent 1..2 to bob and cat (2 others)
ChatPersist::produce('chat.receipts', grcpt($H, 2, $B, 'read'),
                     grcpt($H, 1, $C, 'delivered'));
ok(ChatPersist::wait_caught_up(60), 'receipts in the group of 2 others');
is(counts($H), '1:delivered:2:1 2:sent:1:1',
   'group of 2 others: partly');
ChatPersist::produce('chat.receipts', grcpt($H, 2, $C, 'read'));
ok(ChatPersist::wait_caught_up(60), '... cat reads 2');
is(counts($H), '1:read:2:2 2:read:2:2', '... fully read');

my ($st, $page, $raw) = ChatPersist::api_get($A, "/v1/messages?group=$H");
like($raw, qr/^\{"messages":\[\{"id":"\Q$gid{"$H:2"}\E","seq":2,"from":$A,"group":$H,"body":"g$H m2 \Q$run\E","client_id":"c$H-2-\Q$run\E","ts":$ts{"$H:2"},"status":"read","delivered_count":2,"read_count":2\},/,
     '... the message object, compact, in the order of the contract');

# a message of bob's: counts are of the others (amy, cat), not of bob
ChatPersist::produce('chat.messages', gmsg($H, 3, from => $B));
ok(ChatPersist::wait_caught_up(60), "bob's message to H");
ChatPersist::produce('chat.receipts', grcpt($H, 3, $A, 'read', undef, $B));
ok(ChatPersist::wait_caught_up(60), '... read by amy');
($st, $page) = ChatPersist::api_get($C, "/v1/messages?group=$H&limit=1");
is(join(':', map { $page->{messages}[0]{$_} // '-' }
                 qw(seq from status delivered_count read_count)),
   "3:$B:sent:1:1", "... counts of amy and cat: 1 of 2");


# --- 4. GET /v1/messages/{id}/receipts ----------------------------------------

my $id5 = $gid{"$G:5"};

sub receipts {
    my ($uid, $id) = @_;
    my ($s, $j, $r) = ChatPersist::api_get($uid, "/v1/messages/$id/receipts");
    return ($s, $j, $r);
}

my ($s, $j, $r) = receipts($A, $id5);
is($s, 200, 'receipts of a group message, for its sender: 200') or diag $r;
my %at = map { $_ => sql("SELECT concat_ws(':', delivered_at, read_at) "
                         . "FROM group_positions WHERE group_id = :'g' "
                         . "AND user_id = :'u'", g => $G, u => $_) }
         $B, $C, $D;
my ($b_read) = (split /:/, $at{$B})[1];
my ($c_read) = (split /:/, $at{$C})[1];
is_deeply($j, { receipts => [
              { user_id => $B, status => 'read', ts => $b_read + 0 },
              { user_id => $C, status => 'read', ts => $c_read + 0 },
              { user_id => $D, status => 'sent', ts => undef },
          ] }, '... one entry per other member, by user id')
    or diag $r;
like($r, qr/^\{"receipts":\[\{"user_id":$B,"status":"read","ts":\d+\},/,
     '... compact');
($s, $j) = receipts($A, $gid{"$G:2"});
is(join(',', map { "$_->{user_id}:$_->{status}" } @{ $j->{receipts} }),
   "$B:read,$C:read,$D:read", '... of message 2: all read');

($s, $j, $r) = receipts($B, $id5);
is($s, 403, 'another member: 403') or diag $r;
is($j->{error}, 'forbidden', '... forbidden');
($s, $j) = receipts($Z, $id5);
is($s, 403, 'a non-member: 403');

($s, $j, $r) = receipts($A, ChatPersist::new_id());
is("$s " . ($j->{error} // ''), '404 not_found', 'an unknown id: 404')
    or diag $r;
for my $bad ('abc', lc($id5), substr($id5, 0, 25),
             $id5 . '0', 'I' x 26, '8' . substr($id5, 1),
             "%27%3B%20DROP%20TABLE%20messages%3B--") {
    ($s, $j, $r) = receipts($A, $bad);
    is("$s " . ($j->{error} // ''), '404 not_found', "not an id ($bad): 404")
        or diag $r;
}
($s) = ChatTest::http_get("/v1/messages/$id5/receipts");
is($s, 401, 'no token: 401');
($s, undef, $r) = ChatPersist::api_get($A, "/v1/messages/$id5");
is($s, 404, '/v1/messages/{id} alone: 404') or diag $r;

# one-to-one: the sender gets its recipient's entry, the recipient 403
($s, $j, $r) = receipts($A, $one);
is_deeply([$s, $j], [200, { receipts => [
              { user_id => $B, status => 'sent', ts => undef } ] }],
          'a one-to-one message, for its sender: the recipient, sent')
    or diag $r;
ChatPersist::produce('chat.receipts', ChatPersist::receipt_record(
    id => $one, seq => 1, from => $A, by => $B, status => 'delivered',
    ts => $t0 + 50));
ok(ChatPersist::wait_caught_up(60), '... bob receives it');
($s, $j) = receipts($A, $one);
is_deeply($j, { receipts => [
              { user_id => $B, status => 'delivered', ts => $t0 + 50 } ] },
          '... delivered, with the receipt\'s time');
($s, $j) = receipts($B, $one);
is($s, 403, '... its recipient: 403');


# --- 5. membership changes ----------------------------------------------------

# dan lags on 5 (delivered 4); removed, it no longer counts
is(counts($G), '1:read:3:3 2:read:3:3 3:read:3:3 4:read:3:3 5:sent:2:2',
   'before dan leaves');
my ($dst) = ChatTest::http_request(
    DELETE => "/v1/groups/$G/members/$D",
    { Authorization => 'Bearer ' . ChatJWT::token(sub => $A) });
is($dst, 204, 'amy removes dan');
is(sql("SELECT count(*) FROM group_positions WHERE group_id = :'g' "
       . "AND user_id = :'u'", g => $G, u => $D), 0, '... his position goes');
is(counts($G), '1:read:2:2 2:read:2:2 3:read:2:2 4:read:2:2 5:read:2:2',
   '... and he is no longer counted: 5 is read by everyone left');
($s, $j) = receipts($A, $id5);
is(join(',', map { $_->{user_id} } @{ $j->{receipts} }), "$B,$C",
   '... nor listed');
ChatPersist::produce('chat.receipts', grcpt($G, 5, $D, 'read'));
ok(ChatPersist::wait_caught_up(60), 'a receipt of his after that');
is(sql("SELECT count(*) FROM group_positions WHERE user_id = :'u'", u => $D),
   0, '... writes nothing');

# eve joins after 1..5: not counted for them; starts at the group's top
sleep 0.01;
my ($est) = ChatTest::http_request(
    PUT => "/v1/groups/$G/members/$E",
    { Authorization => 'Bearer ' . ChatJWT::token(sub => $A) });
is($est, 200, 'amy adds eve');
is(sql("SELECT delivered_seq || ':' || read_seq FROM group_positions "
       . "WHERE group_id = :'g' AND user_id = :'u'", g => $G, u => $E),
   '5:5', '... she starts at the newest stored seq');
is(counts($G), '1:read:2:2 2:read:2:2 3:read:2:2 4:read:2:2 5:read:2:2',
   '... and is not counted for what was sent before');
ChatPersist::produce('chat.receipts', grcpt($G, 3, $E, 'delivered'));
ok(ChatPersist::wait_caught_up(60), 'her receipt of an earlier message');
is(positions($G), pos_str([$A, 0, 0], [$B, 5, 5], [$C, 5, 5], [$E, 5, 5]),
   '... changes nothing');
sleep 0.01;
ChatPersist::produce('chat.messages', gmsg($G, 6));
ok(ChatPersist::wait_caught_up(60), 'message 6, after she joined');
is((split / /, counts($G))[-1], '6:sent:0:0', '... counts her: 0 of 3');
ChatPersist::produce('chat.receipts', grcpt($G, 6, $E, 'read'),
                     grcpt($G, 6, $B, 'read'), grcpt($G, 6, $C, 'delivered'));
ok(ChatPersist::wait_caught_up(60), '... all three receive it');
is((split / /, counts($G))[-1], '6:delivered:3:2', '... delivered, 2 read');


# --- 6. chat_group_backlog ------------------------------------------------------

sub backlog {
    my ($u, $g, $after, $lim) = @_;
    return sql("SELECT coalesce(string_agg(seq::text, ',' ORDER BY n), '') "
               . "FROM chat_group_backlog(:'u', :'g', "
               . (defined $after ? ":'a'" : 'NULL') . ", :'l') "
               . "WITH ORDINALITY AS b(seq, id, sender, frame, n)",
               u => $u, g => $g, l => $lim // 100,
               (defined $after ? (a => $after) : ()));
}

# bob is at 6, cat at 6 (delivered), eve at 6: make bob's position lag
sql("UPDATE group_positions SET delivered_seq = 2, read_seq = 2 "
    . "WHERE group_id = :'g' AND user_id = :'u'", g => $G, u => $B);
is(backlog($B, $G), '3,4,5,6', 'backlog: after the position, oldest first');
is(backlog($B, $G, 4), '5,6', '... after after_seq when that is further');
is(backlog($B, $G, 1), '3,4,5,6', '... after the position when that is');
is(backlog($B, $G, undef, 2), '3,4', '... at most lim');
is(backlog($B, $G, undef, 0), '', '... lim 0: nothing');
is(backlog($C, $G), '', 'cat has everything: nothing');
is(backlog($D, $G), '', 'dan, removed: nothing');
is(backlog($Z, $G), '', 'a non-member: nothing');
is(backlog($B, 999999999999), '', 'no such group: nothing');

my ($id6, $ts6) = ($gid{"$G:6"}, $ts{"$G:6"});
is(sql("SELECT seq || ' ' || id || ' ' || sender || ' ' || frame "
       . "FROM chat_group_backlog(:'u', :'g', 5, 1)", u => $B, g => $G),
   "6 $id6 $A "
   . qq({"type":"message","id":"$id6","seq":6,"from":$A,)
   . qq("group":$G,"body":"g$G m6 $run","client_id":"c$G-6-$run",)
   . qq("ts":$ts6}),
   '... the row: seq, id, sender and the frame as members get it');

# fay joins at the top (6); message 7 was acknowledged before she joined
# but is stored after: its ts keeps it out; 8, sent after, is hers
my $t_before = int(time * 1000) - 1;
sleep 0.01;
my ($fst) = ChatTest::http_request(
    PUT => "/v1/groups/$G/members/$F",
    { Authorization => 'Bearer ' . ChatJWT::token(sub => $A) });
is($fst, 200, 'amy adds fay');
sleep 0.01;
ChatPersist::produce('chat.messages', gmsg($G, 7, ts => $t_before),
                     gmsg($G, 8));
ok(ChatPersist::wait_caught_up(60), 'messages 7 (sent before) and 8 (after)');
is(backlog($F, $G), '8', 'fay is owed only 8');
sql("UPDATE group_positions SET delivered_seq = 0, read_seq = 0 "
    . "WHERE group_id = :'g' AND user_id = :'u'", g => $G, u => $F);
is(backlog($F, $G), '8', '... also from position 0: by the time she joined');
is((split / /, counts($G))[-2], '7:sent:0:0',
   '... and 7 does not count her (nor anyone: nobody has it yet)');
is(backlog($E, $G), '7,8', 'eve, a member when 7 was sent, is owed both');

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');

done_testing();
