# GET /v1/search (issue #17): the search API over the index that
# chat-worker index writes, against the test stack.
#
#   - A and B, and C and D, exchange messages: A's search for a word finds
#     exactly A's matching messages (sent and received), never C's or D's;
#     each result is the message object (as the history has it) with its
#     conversation, a snippet with the word marked and its rank;
#   - a group: its members find its messages; a member removed from it
#     finds none of them any more (nor those sent after the removal);
#   - an e2e message with search_tokens is found by tokens= (its sender's
#     blind index), never by its plaintext, and has no snippet;
#   - ranking and pages: limit=2 over five hits gives three pages chained
#     by next_before, each hit once, relevance first;
#   - bad input: no query, both q and tokens, an empty or wordless or
#     over-long q, bad tokens, a bad limit, a bad or foreign cursor: 400
#     with a JSON error; no token: 401.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use URI::Escape qw(uri_escape_utf8);
use ChatTest;
use ChatJWT;
use ChatClient qw(register_users ws_connect frames api_as);
use ChatPersist ();

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

ChatPersist::start_gateway('node1');
my $port = ChatTest::port();

ChatTest::stack_svc('index', 'start');
ChatTest::stack_svc('persist', 'start');

my %u = register_users('srch', qw(a b c d));
my ($A, $B, $C, $D) = @u{qw(a b c d)};
my $run = sprintf '%x', int(time * 1000);
my ($wa, $wb, $wc) = map { ws_connect($port, $_) } $A, $B, $C;

my $n = 0;
sub send_msg {
    my ($ws, %m) = @_;
    my $cid = 's' . $run . '-' . ++$n;
    $ws->send_text(encode_json({ type => 'send', client_id => $cid, %m }));
    my ($ack) = grep { $_->{client_id} eq $cid } frames($ws, 'ack', 1, 20);
    return $ack;
}

sub search {
    my ($uid, $query) = @_;
    return api_as($uid, GET => "/v1/search?$query");
}
sub ids { [sort map { $_->{id} } @{ $_[0]{results} // [] }] }

# a search that finds $want ids within 10 s (the index and the persist
# worker both have to have the messages)
sub wait_search {
    my ($uid, $query, $want) = @_;
    my ($st, $j);
    ChatTest::wait_until(sub {
        ($st, $j) = search($uid, $query);
        $st == 200 && @{ $j->{results} // [] } >= $want },
        timeout => 10, interval => 0.2);
    return ($st, $j);
}


# --- 1. A finds A's, never C's ---------------------------------------------------

my $w = "heron$run";
my $a1 = send_msg($wa, to => $B, body => "a $w over the lake");
my $b1 = send_msg($wb, to => $A, body => "that $w again, and a $w");
my $c1 = send_msg($wc, to => $D, body => "C saw a $w too");
ok($a1 && $b1 && $c1, 'three messages acked');

my ($st, $j) = wait_search($A, "q=$w", 2);
is($st, 200, 'A searches');
is_deeply(ids($j), [sort $a1->{id}, $b1->{id}],
          'A finds exactly A\'s two messages, sent and received');
my ($r) = grep { $_->{id} eq $b1->{id} } @{ $j->{results} };
is($r->{conv}, $A < $B ? "d:$A:$B" : "d:$B:$A", 'each with its conversation');
is($r->{from}, $B, '... the message object (from)');
is($r->{body}, "that $w again, and a $w", '... (body)');
like($r->{snippet}, qr/<b>\Q$w\E<\/b>/, '... and a snippet with the word');
is($j->{results}[0]{id}, $b1->{id},
   'the message with the word twice ranks first');
($st, $j) = wait_search($C, "q=$w", 1);
is_deeply(ids($j), [$c1->{id}], 'C finds only C\'s');
($st, $j) = search($D, 'q=' . uri_escape_utf8("over the lake $w"));
is_deeply(ids($j), [], 'D finds nothing of A\'s (every word must match)');


# --- 2. a group, and a removed member -------------------------------------------

($st, my $g) = api_as($A, POST => '/v1/groups',
                      { name => "srch-$run", members => [$B, $C] });
is($st, 201, 'group created');
my $gw = "egret$run";
my $g1 = send_msg($wa, group => $g->{group_id}, body => "an $gw in the group");
($st, $j) = wait_search($C, "q=$gw", 1);
is_deeply(ids($j), [$g1->{id}], 'a member finds the group\'s message');
($st) = api_as($A, DELETE => "/v1/groups/$g->{group_id}/members/$C");
is($st, 204, 'C removed from the group');
my $g2 = send_msg($wa, group => $g->{group_id}, body => "another $gw later");
($st, $j) = wait_search($B, "q=$gw", 2);
is_deeply(ids($j), [sort $g1->{id}, $g2->{id}], 'B still finds both');
($st, $j) = search($C, "q=$gw");
is_deeply(ids($j), [], 'the removed member finds none of them');


# --- 3. e2e: by tokens, never by plaintext --------------------------------------

my @tok = map { substr("t${_}_$run" . ('z' x 22), 0, 22) } qw(a b);
my $secret = "ibis$run";
my $e1 = send_msg($wa, to => $B, body => "c2VjcmV0 $secret",
                  e2e => JSON::PP::true, search_tokens => \@tok);
ok($e1 && $e1->{id}, 'an e2e message with tokens acked');
($st, $j) = wait_search($A, "tokens=$tok[0],$tok[1]", 1);
is_deeply(ids($j), [$e1->{id}], 'found by its tokens (all of them)');
is($j->{results}[0]{snippet}, undef, '... without a snippet');
($st, $j) = search($A, "tokens=$tok[0]," . substr("nope$run" . 'q' x 22, 0, 22));
is_deeply(ids($j), [], 'a token it does not have: not found');
($st, $j) = search($A, "q=$secret");
is_deeply(ids($j), [], 'never by its plaintext');
($st, $j) = search($C, "tokens=$tok[0]");
is_deeply(ids($j), [], 'nor by someone outside the conversation');


# --- 4. pages ------------------------------------------------------------------

my $pw = "stork$run";
my @p = map { send_msg($wa, to => $B, body => join(' ', ($pw) x $_) . " $_") }
        1 .. 5;
wait_search($A, "q=$pw&limit=50", 5);
my (@seen, $before, $pages);
while (1) {
    ($st, $j) = search($A, "q=$pw&limit=2" . ($before ? "&before=$before" : ''));
    last unless $st == 200;
    $pages++;
    push @seen, map { $_->{id} } @{ $j->{results} };
    $before = $j->{next_before} or last;
    last if $pages > 5;
}
is($pages, 3, 'five hits, two a page: three pages');
is_deeply([sort @seen], [sort map { $_->{id} } @p], 'each hit once');
is($seen[0], $p[4]{id}, 'the message with the word five times first');


# --- 5. bad input ---------------------------------------------------------------

for my $bad ('', 'limit=5', "q=$w&tokens=$tok[0]", 'q=', 'q=%20%2C%21',
             'q=' . ('x' x 257), "q=$w&q=$w", 'tokens=short',
             'tokens=' . join(',', ($tok[0]) x 17), "tokens=$tok[0]%24",
             "q=$w&limit=0", "q=$w&limit=51", "q=$w&before=!!",
             "q=$w&before=" . 'QUJD', 'q=%ff%fe')
{
    my ($s, $e) = search($A, $bad);
    is($s, 400, "400 for '" . substr($bad, 0, 40) . "'");
    is(ref $e && $e->{error}, 'bad_request', '... a JSON error')
        or diag(explain $e);
}
my ($s) = ChatTest::http_request(GET => "/v1/search?q=$w", {});
is($s, 401, 'no token: 401');

done_testing();
