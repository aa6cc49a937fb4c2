# GET /v1/messages against the test stack: 50 messages sent over a real
# WebSocket and persisted by the stack's chat-worker persist, read back in
# pages of 20 (order, next_before, the message objects of CONTRACT.md
# section 2), status from receipts, groups (records made with kcat: the
# gateway does not send to groups yet) for members only, bad query
# strings, and bodies full of SQL and COPY metacharacters that must come
# back byte for byte.

use strict;
use warnings;
use utf8;
use Test::More;
use Time::HiRes qw(time);
use ChatTest;
use ChatJWT;
use ChatPersist;

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

ChatPersist::start_gateway('history-node');

my $run = sprintf '%x%x', $$, time;
my %uid = map { $_ => ChatPersist::register("${_}_$run") } qw(amy bob cat);
my ($A, $B, $C) = @uid{qw(amy bob cat)};

ChatTest::stack_svc('persist', 'start');

# bodies that would break SQL built by pasting, or COPY text unescaped
my @tricky = (
    q{'; DROP TABLE messages; --},
    qq{tab\there\nnew line\r\ncarriage \\N \\. back\\slash},
    q{"quoted" 100% _under_ $1 :'var' {"json":[1]}},
    "émoji 😀 and ünïcödé",
    '',
);

my $ws = ChatPersist::ws_connect($A);
my (@acks, @sent);
for my $i (1 .. 50) {
    my $body = $i <= @tricky ? $tricky[$i - 1] : "history $i";
    my %extra = $i == 7 ? (e2e => JSON::PP::true, media => "m-$run") : ();
    my $ack = ChatPersist::ws_send($ws, to => $B, client_id => "h$i-$run",
                                   body => $body, %extra);
    push @acks, $ack;
    push @sent, $body;
}
is(scalar(grep { ($_->{type} // '') eq 'ack' } @acks), 50,
   '50 messages acked');
ok(ChatPersist::wait_caught_up(90), 'the worker persisted them');

# --- pages of 20 ---------------------------------------------------------------------

my ($st, $page, $raw) = ChatPersist::api_get($A, "/v1/messages?with=$B&limit=20");
is($st, 200, 'first page: 200') or diag $raw;
is_deeply([map { $_->{seq} } @{ $page->{messages} }], [reverse 31 .. 50],
          '... seq 50 down to 31, newest first');
is($page->{next_before}, 31, '... next_before 31');

my $m50 = $page->{messages}[0];
is($m50->{id}, $acks[49]{id}, 'the message object: the acked id');
is($m50->{ts}, $acks[49]{ts}, '... the acked ts');
is_deeply([sort keys %$m50],
          [sort qw(id seq from to body client_id ts status)],
          '... exactly the members of the contract');
like($raw, qr/^\{"messages":\[\{"id":"\Q$acks[49]{id}\E","seq":50,"from":$A,"to":$B,"body":"history 50","client_id":"h50-\Q$run\E","ts":\d+,"status":"sent"\},/,
     '... in the order of the contract, compact');

($st, $page) = ChatPersist::api_get($A, "/v1/messages?with=$B&limit=20&before=31");
is_deeply([map { $_->{seq} } @{ $page->{messages} }], [reverse 11 .. 30],
          'second page: 30 down to 11');
is($page->{next_before}, 11, '... next_before 11');

($st, $page, $raw) = ChatPersist::api_get($A, "/v1/messages?before=11&limit=20&with=$B");
is_deeply([map { $_->{seq} } @{ $page->{messages} }], [reverse 1 .. 10],
          'third page: 10 down to 1');
like($raw, qr/"next_before":null\}$/, '... next_before null: nothing older');

is_deeply([map { $_->{body} } reverse @{ $page->{messages} }],
          [@sent[0 .. 9]],
          'bodies with quotes, tabs, newlines, backslashes, \N, emoji and '
          . 'nothing come back byte for byte');
my ($m7) = grep { $_->{seq} == 7 } @{ $page->{messages} };
ok($m7->{e2e} && $m7->{media} eq "m-$run", 'e2e and media are kept');
ok(!exists $page->{messages}[0]{e2e} && !exists $page->{messages}[0]{media},
   '... and absent where not sent');

($st, $page) = ChatPersist::api_get($A, "/v1/messages?with=$B");
is(scalar @{ $page->{messages} }, 50, 'the default limit is 50');
is($page->{next_before}, undef, '... and with exactly 50, next_before null');
($st, $page) = ChatPersist::api_get($A, "/v1/messages?with=$B&limit=49");
is($page->{next_before}, 2, 'limit=49: next_before 2');
($st, $page) = ChatPersist::api_get($A, "/v1/messages?with=$B&before=1");
is_deeply($page, { messages => [], next_before => undef },
          'before=1: nothing');

my ($st_b, $page_b) = ChatPersist::api_get($B, "/v1/messages?with=$A&limit=20");
is_deeply([map { $_->{id} } @{ $page_b->{messages} }],
          [map { $_->{id} } reverse @acks[30 .. 49]],
          'the recipient sees the same conversation');

# --- status from receipts --------------------------------------------------------------

my $conv = ChatPersist::conv($A, $B);
ChatPersist::produce('chat.receipts',
    map { ChatPersist::receipt_record(id => $acks[$_->[0] - 1]{id},
              seq => $_->[0], from => $A, by => $B, status => $_->[1]) }
    [48, 'delivered'], [49, 'read'], [50, 'delivered'], [50, 'read']);
ok(ChatPersist::wait_caught_up(60), 'receipts persisted');
($st, $page) = ChatPersist::api_get($A, "/v1/messages?with=$B&limit=4");
is_deeply([map { "$_->{seq}:$_->{status}" } @{ $page->{messages} }],
          ['50:read', '49:read', '48:delivered', '47:sent'],
          'status as the sender sees it');

# --- who may read what -------------------------------------------------------------------

($st, $page) = ChatPersist::api_get($C, "/v1/messages?with=$A");
is($st, 200, 'a user C never talked to: 200');
is_deeply($page, { messages => [], next_before => undef }, '... empty');
($st, $page) = ChatPersist::api_get($C, "/v1/messages?with=999999999999");
is_deeply([$st, $page], [200, { messages => [], next_before => undef }],
          'no such user: an empty conversation too');
($st) = ChatTest::http_get("/v1/messages?with=$B");
is($st, 401, 'no token: 401');

# a group of A and B; its messages as the gateway will write them
my ($gst, undef, $gbody) = ChatTest::http_request(
    POST => '/v1/groups',
    { Authorization => 'Bearer ' . ChatJWT::token(sub => $A) },
    ChatPersist::Json()->encode({ name => "history $run", members => [$B] }));
is($gst, 201, 'a group of A and B') or diag $gbody;
my $gid = ChatPersist::Json()->decode($gbody)->{group_id};
my @gids = map { ChatPersist::new_id() } 1 .. 3;
ChatPersist::produce('chat.messages',
    map { ChatPersist::message_record(id => $gids[$_ - 1], seq => $_,
                                      from => $A, group => $gid,
                                      body => "group $_") } 1 .. 3);
ChatPersist::produce('chat.receipts', ChatPersist::receipt_record(
    id => $gids[0], conv => "g:$gid", seq => 1, from => $A, by => $B,
    status => 'read'));
ok(ChatPersist::wait_caught_up(60), 'group messages persisted');

($st, $page, $raw) = ChatPersist::api_get($B, "/v1/messages?group=$gid");
is($st, 200, 'a member reads the group') or diag $raw;
is_deeply([map { $_->{seq} } @{ $page->{messages} }], [3, 2, 1],
          '... newest first');
like($raw, qr/\{"id":"$gids[0]","seq":1,"from":$A,"group":$gid,"body":"group 1","client_id":"[^"]+","ts":\d+,"status":"read","delivered_count":1,"read_count":1\}/,
     '... "group" instead of "to", counts of the other members');
is($page->{messages}[0]{status}, 'sent', '... unread ones are sent');

($st, $page, $raw) = ChatPersist::api_get($C, "/v1/messages?group=$gid");
is($st, 403, 'a non-member: 403');
is($raw, qq({"error":"forbidden","message":"not a member of this group"}\n),
   '... with the JSON error');
($st, undef, $raw) = ChatPersist::api_get($A, '/v1/messages?group=999999999999');
is($st, 404, 'no such group: 404') or diag $raw;

# --- bad query strings -------------------------------------------------------------------------

for my $q ('', 'limit=5', "with=$B&group=$gid", 'with=abc', 'with=0',
           'with=-1', "with=$B&limit=0", "with=$B&limit=101",
           "with=$B&limit=x", "with=$B&before=0", "with=$B&before=-5",
           "with=$B&with=$B", 'with=1%27%3B%20DROP%20TABLE%20messages%3B--',
           "with=$B'%20OR%20'1'='1", 'with=99999999999999999999',
           "group=1;DELETE", "with=$B&before=1.5") {
    my ($s, $j, $r) = ChatPersist::api_get($A, "/v1/messages?$q");
    ok($s == 400 && ($j->{error} // '') eq 'bad_request'
       && length($j->{message} // ''),
       "400 bad_request for ?$q") or diag "$s $r";
}
is(ChatPersist::sql("SELECT count(*) FROM messages WHERE conv = :'c'",
                    c => $conv), 50, 'and the messages are all still there');

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');

done_testing();
