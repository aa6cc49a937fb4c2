# What the gateway acknowledges, chat-worker persist stores (issue #12,
# defect 2), against the test stack: sends whose record the worker would
# refuse (media "", a 300-byte or 40 KB media, a media id with other
# characters, a body of 16 KiB and one byte, a client_id of 65 bytes) get
# an error frame bad_request with their client_id and never an ack; none
# reaches chat.messages, the recipient's live connection or its inbox,
# and chat.dlq gets nothing.  The valid sends around them (a media id, a
# body of exactly 16 KiB in ASCII and in two-byte UTF-8) are acked, stored
# and read back from GET /v1/messages with seq 1, 2, 3, ... without a gap.
# Then "search_tokens" (issue #17): acked with "e2e":true and 1 to 64
# base64url strings of 16 to 64 characters, carried by the chat.messages
# record as sent, left out of the recipient's frame; refused with
# bad_request without e2e, with 65 tokens, a 15-character or padded token,
# or a string instead of an array.

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

ChatPersist::start_gateway('limits-node');

my $run = sprintf '%x%x', $$, time;
my %uid = map { $_ => ChatPersist::register("${_}_$run") } qw(amy bob cat);
my ($A, $B, $C) = @uid{qw(amy bob cat)};
my $Json = ChatPersist::Json();

ChatTest::stack_svc('persist', 'start');

my $MEDIA_ERR = '"media" must be a media id';
my $BODY_ERR = '"body" must be a string of at most 16384 bytes';
my $CID_ERR = '"client_id" must be a string of 1 to 64 bytes';

my $max_ascii = join '', map { chr(0x20 + $_ % 95) } 0 .. 16383;
my $max_utf8 = "\x{e9}" x 8192;        # 16384 bytes of UTF-8

# [client_id, to, extra members, the error message or undef for an ack]
my $cid65 = "c65-$run-" . ('x' x (65 - length("c65-$run-")));
my @sends = (
    ["ok1-$run", $B, { body => 'first' }, undef],
    ["empty-$run", $B, { body => 'x', media => '' }, $MEDIA_ERR],
    ["m300-$run", $B, { body => 'x', media => 'a' x 300 }, $MEDIA_ERR],
    ["m40k-$run", $B, { body => 'x', media => 'a' x 40960 }, $MEDIA_ERR],
    ["mdot-$run", $B, { body => 'x', media => '../etc' }, $MEDIA_ERR],
    ["mutf-$run", $B, { body => 'x', media => "m\x{e9}" }, $MEDIA_ERR],
    ["big-$run", $B, { body => 'b' x 16385 }, $BODY_ERR],
    [$cid65, $B, { body => 'x' }, $CID_ERR],
    ["ok2-$run", $B, { body => $max_ascii, media => "m_$run-2" }, undef],
    ["ok3-$run", $B, { body => $max_utf8, e2e => JSON::PP::true }, undef],
    # the same refusals for a recipient that is not connected (its inbox)
    ["cempty-$run", $C, { body => 'x', media => '' }, $MEDIA_ERR],
    ["cm40k-$run", $C, { body => 'x', media => 'z' x 40960 }, $MEDIA_ERR],
    ["cbig-$run", $C, { body => 'b' x 16385 }, $BODY_ERR],
    ["cok-$run", $C, { body => 'to cat', media => "M-$run" }, undef],
);
my %want = map { $_->[0] => $_ } @sends;
my @bad = grep { defined $want{$_}[3] } map { $_->[0] } @sends;
my @good = grep { !defined $want{$_}[3] } map { $_->[0] } @sends;

my $wb = ChatPersist::ws_connect($B);
my $wa = ChatPersist::ws_connect($A);

# all at once: the refusals come at once, the acks once Kafka has them
for my $s (@sends) {
    $wa->send_text($Json->encode({ type => 'send', to => $s->[1],
                                   client_id => $s->[0], %{ $s->[2] } }));
}

my (%answer, @extra);
my $deadline = time + 30;
while (keys %answer < @sends && time < $deadline) {
    my $t = $wa->read_text(5) // last;
    my $f = eval { $Json->decode($t) } || { raw => $t };
    my $cid = $f->{client_id} // '';
    if (exists $want{$cid} && !exists $answer{$cid}) {
        $answer{$cid} = $f;
    } else {
        push @extra, $f;
    }
}
# whatever else comes within a second (an ack after an error, say)
while (defined(my $t = $wa->read_text(1))) {
    push @extra, eval { $Json->decode($t) } || { raw => $t };
}

is(scalar(keys %answer), scalar @sends, 'one answer per send')
    or diag explain [sort keys %answer];
is_deeply(\@extra, [], '... and nothing more');

for my $cid (@bad) {
    my $f = $answer{$cid} // {};
    is_deeply([@$f{qw(type code message client_id)}],
              ['error', 'bad_request', $want{$cid}[3], $cid],
              "$cid: an error frame bad_request, not an ack")
        or diag explain $f;
}

my %ack;
for my $cid (@good) {
    my $f = $answer{$cid} // {};
    ok(($f->{type} // '') eq 'ack' && $f->{id} && $f->{seq},
       "$cid: acked") or diag explain $f;
    $ack{$cid} = $f;
}
is_deeply([map { $ack{$_}{seq} // 0 } grep { !/^c/ } @good], [1, 2, 3],
          'seq 1, 2, 3 to bob: no number taken by a refused send');
is($ack{"cok-$run"}{seq}, 1, '... and 1 to cat');

# --- the recipient, live and from the inbox ----------------------------------------

my @live;
$deadline = time + 10;
while (@live < 3 && time < $deadline) {
    my $t = $wb->read_text(2) // next;
    my $f = eval { $Json->decode($t) } or next;
    push @live, $f if ($f->{type} // '') eq 'message';
}
while (defined(my $t = $wb->read_text(1))) {
    my $f = eval { $Json->decode($t) } or next;
    push @live, $f if ($f->{type} // '') eq 'message';
}
is_deeply([map { $_->{client_id} } @live], ["ok1-$run", "ok2-$run",
                                            "ok3-$run"],
          'bob, connected, got the three acked messages and nothing else');
is($live[1]{body}, $max_ascii, '... the 16 KiB body byte for byte');

my $wc = ChatPersist::ws_connect($C);
my @waiting;
while (defined(my $t = $wc->read_text(3))) {
    my $f = eval { $Json->decode($t) } or next;
    push @waiting, $f if ($f->{type} // '') eq 'message';
}
is_deeply([map { $_->{client_id} } @waiting], ["cok-$run"],
          'cat, connecting later, got only the acked message from its '
          . 'inbox');

# --- Kafka, the worker, history ------------------------------------------------------

my @records = grep { /\Q$run\E/ }
              ChatPersist::consume('chat.messages', '%s\n');
my @in_kafka = map { ($Json->decode($_)->{client_id}) } @records;
is_deeply([sort @in_kafka], [sort @good],
          'chat.messages holds the acked messages only');
ok(!grep({ length($_) > 100 * 1024 } @records),
   '... none of them over 100 KiB');

ok(ChatPersist::wait_caught_up(90), 'the worker persisted them');
my @dlq = grep { /\Q$run\E/ } ChatPersist::consume('chat.dlq', '%s\t%h\n');
is_deeply(\@dlq, [], 'chat.dlq got nothing of this run');

my ($st, $page, $raw) = ChatPersist::api_get($A, "/v1/messages?with=$B");
is($st, 200, 'history: 200') or diag $raw;
my @hist = reverse @{ $page->{messages} // [] };
is_deeply([map { $_->{seq} } @hist], [1, 2, 3],
          'history with bob: seq 1, 2, 3, no gap');
is_deeply([map { $_->{id} } @hist],
          [map { $ack{$_}{id} } "ok1-$run", "ok2-$run", "ok3-$run"],
          '... the acked ids');
is($hist[1]{body}, $max_ascii, '... a body of 16384 bytes kept whole');
is($hist[1]{media}, "m_$run-2", '... with its media id');
is($hist[2]{body}, $max_utf8, '... 8192 two-byte characters kept whole');
ok($hist[2]{e2e}, '... e2e kept');

($st, $page) = ChatPersist::api_get($C, "/v1/messages?with=$A");
is_deeply([map { "$_->{seq}:$_->{client_id}:" . ($_->{media} // '') }
           @{ $page->{messages} // [] }], ["1:cok-$run:M-$run"],
          'history with cat: the one acked message');

# --- search tokens of an e2e message (issue #17) -----------------------------------
#
# Acked only with "e2e":true and 1 to 64 base64url strings of 16 to 64
# characters; the chat.messages record carries them as sent (a duplicate
# too), the recipient's message frame does not.

my @tokens = ('AZaz09_-0123456789abcd', '0123456789abcdef',
              'AZaz09_-0123456789abcd', 'x' x 64);
my $TOK_E2E = '"search_tokens" needs "e2e":true';
my $TOK_ERR = '"search_tokens" must be 1 to 64 strings of 16 to 64 '
              . 'base64url characters';
my @tsends = (
    ["tok-$run", { e2e => JSON::PP::true, search_tokens => \@tokens },
     undef],
    ["tnoe2e-$run", { search_tokens => [$tokens[0]] }, $TOK_E2E],
    ["tfalse-$run", { e2e => JSON::PP::false,
                      search_tokens => [$tokens[0]] }, $TOK_E2E],
    ["t65-$run", { e2e => JSON::PP::true,
                   search_tokens => [map { sprintf 'tok_%012d-xyz', $_ }
                                     1 .. 65] }, $TOK_ERR],
    ["tshort-$run", { e2e => JSON::PP::true,
                      search_tokens => ['0123456789abcde'] }, $TOK_ERR],
    ["tpad-$run", { e2e => JSON::PP::true,
                    search_tokens => ['0123456789abcdef='] }, $TOK_ERR],
    ["tstr-$run", { e2e => JSON::PP::true, search_tokens => $tokens[0] },
     $TOK_ERR],
);
for my $s (@tsends) {
    $wa->send_text($Json->encode({ type => 'send', to => $B,
                                   client_id => $s->[0],
                                   body => 'b3BhcXVl', %{ $s->[1] } }));
}
my %tans;
$deadline = time + 30;
while (keys %tans < @tsends && time < $deadline) {
    my $t = $wa->read_text(5) // last;
    my $f = eval { $Json->decode($t) } or next;
    $tans{ $f->{client_id} // '' } //= $f;
}
while (defined(my $t = $wa->read_text(1))) {
    my $f = eval { $Json->decode($t) } or next;
    $tans{"extra $f->{type}"} = $f;
}
is_deeply([sort keys %tans], [sort map { $_->[0] } @tsends],
          'search tokens: one answer per send, nothing more');
my $tack = $tans{"tok-$run"} // {};
ok(($tack->{type} // '') eq 'ack' && $tack->{id},
   'e2e with search tokens: acked') or diag explain $tack;
for my $s (grep { defined $_->[2] } @tsends) {
    my $f = $tans{$s->[0]} // {};
    is_deeply([@$f{qw(type code message)}], ['error', 'bad_request', $s->[2]],
              "$s->[0]: an error frame bad_request, not an ack")
        or diag explain $f;
}

my $tlive;
$deadline = time + 10;
while (!$tlive && time < $deadline) {
    my $t = $wb->read_text(2) // next;
    my $f = eval { $Json->decode($t) } or next;
    $tlive = $f if ($f->{client_id} // '') eq "tok-$run";
}
ok($tlive && $tlive->{e2e} && $tlive->{id} eq ($tack->{id} // ''),
   'bob got the e2e message') or diag explain $tlive;
ok($tlive && !exists $tlive->{search_tokens},
   '... without the sender\'s search tokens') or diag explain $tlive;

my @trec = map { $Json->decode($_) }
           grep { /"client_id":"t[a-z0-9]*-\Q$run\E"/ }
           ChatPersist::consume('chat.messages', '%s\n');
is_deeply([map { $_->{client_id} } @trec], ["tok-$run"],
          'chat.messages: only the acked one of them');
is_deeply($trec[0]{search_tokens}, \@tokens,
          '... with its search tokens as sent, in order, after "e2e"')
    or diag explain $trec[0];
ok(ChatPersist::wait_caught_up(90), 'the worker persisted it');
@dlq = grep { /\Q$run\E/ } ChatPersist::consume('chat.dlq', '%s\t%h\n');
is_deeply(\@dlq, [], '... and chat.dlq got nothing');

$_->close for $wa, $wb, $wc;

done_testing();
