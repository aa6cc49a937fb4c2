# Group chat over real WebSockets (issue #14): two nginx instances
# ("nodes") sharing the test stack's Redis, PostgreSQL and Kafka, two
# workers each.
#
#   - a group of six: five members online, spread over both nodes and
#     both workers of each, each sends 20 messages at once; every member
#     gets every message exactly once (its own as acks, the others' as
#     message frames), with one seq per message for everyone, each
#     sender's in the order sent; the sixth, offline, gets all 100 on
#     connect, in seq order;
#   - membership: a removed member gets nothing sent after the removal
#     while the others do; an added one gets what follows and none of the
#     earlier history; non-members are refused (send and typing: forbidden;
#     a group that does not exist: not_found); the cached member list is
#     filled again after Redis lost it;
#   - receipts from every other member reach the sender (delivered, then
#     read); typing goes to the other members online.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatJWT;
use ChatWS;
use ChatClient qw(register_users ws_connect frame frames quiet collect
                  api_as);

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

my $http = <<'CONF';
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_kafka_brokers $TEST_NGINX_KAFKA_BROKERS;
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
                      http_config => "    chat_node_name gnode-one;\n$http",
                      config => $server);
ChatTest::start_nginx(name => 'two', workers => 2, listen => 'reuseport',
                      port => $base + 1,
                      http_config => "    chat_node_name gnode-two;\n$http",
                      config => $server);
my %port = (one => $base, two => $base + 1);

my $run = sprintf '%x%x', $$, time;
my @names = qw(a b c d e f);
my %uid = register_users('g', @names, qw(x y));

my ($rhost, $rport) = split /:/, $ENV{TEST_NGINX_REDIS};
sub redis { my $out = `redis-cli -h $rhost -p $rport @_ 2>&1`; chomp $out;
            return $out }

sub api { api_as($uid{ $_[0] }, @_[1 .. $#_]) }

sub send_msg { $_[0]->send_text(encode_json({ type => 'send', @_[1 .. $#_] })) }

sub worker_of {
    my ($node, $who) = @_;
    my @p = ChatTest::error_log($node eq 'one' ? '' : $node)
        =~ /\[info\] (\d+)#\d+: \*\d+ chat: ws: user $uid{$who} connected/g;
    return $p[-1] // 0;
}

my ($st, $g) = api('a', POST => '/v1/groups',
                   { name => "g-$run", members => [ @uid{qw(b c d e f)} ] });
is($st, 201, 'a makes a group of six') or diag explain $g;
my $gid = $g->{group_id};

# --- five online over two nodes and both workers of each ----------------------

my %node = (a => 'one', b => 'one', c => 'two', d => 'two', e => 'one');
my %ws;
for my $who (qw(a b c d e)) {
    $ws{$who} = ws_connect($port{ $node{$who} }, $uid{$who});
}
# the second connection of each node on the other worker than the first
for my $pair ([qw(a b one)], [qw(c d two)]) {
    my ($first, $second, $n) = @$pair;
    for (1 .. 40) {
        sleep 0.1;
        last if worker_of($n, $second) && worker_of($n, $first)
                && worker_of($n, $second) != worker_of($n, $first);
        $ws{$second}->close;
        $ws{$second} = ws_connect($port{$n}, $uid{$second});
    }
    isnt(worker_of($n, $second), worker_of($n, $first),
         "node $n: $first and $second on two workers");
}

ok(ChatTest::wait_until(sub {
       !grep { redis("ZCARD chat:routes:{$uid{$_}}") != 1 } qw(a b c d e) },
       timeout => 10), 'five members online (a route each)');

my $N = 20;
for my $i (1 .. $N) {
    for my $who (qw(a b c d e)) {
        send_msg($ws{$who}, group => $gid, client_id => "$who$i-$run",
                 body => "$who says $i");
    }
}

my (%acks, %seq_of, %got, %in);
for my $who (qw(a b c d e)) {
    $in{$who} = collect($ws{$who}, { ack => $N, message => 4 * $N }, 60);
    my @acks = @{ $in{$who}{ack} };
    is(scalar @acks, $N, "$who: $N acks");
    is_deeply([ map { $_->{client_id} } @acks ],
              [ map { "$who$_-$run" } 1 .. $N ], '... in the order sent');
    my @seq = map { $_->{seq} } @acks;
    is(scalar(grep { $seq[$_] <= $seq[$_ - 1] } 1 .. $#seq), 0,
       '... seq rising') or diag "@seq";
    $acks{$who} = \@acks;
    $seq_of{ $_->{id} } = $_->{seq} for @acks;
}
is(scalar(keys %seq_of), 5 * $N, '100 messages, 100 ids');
my %seen_seq;
$seen_seq{$_}++ for values %seq_of;
is(scalar(keys %seen_seq), 5 * $N, '... 100 different seqs');

for my $who (qw(a b c d e)) {
    my @m = @{ $in{$who}{message} };
    is(scalar @m, 4 * $N, "$who gets the others' " . 4 * $N);
    my %ids;
    $ids{ $_->{id} }++ for @m;
    is(scalar(grep { $ids{$_} != 1 } keys %ids), 0, '... each once');
    is(scalar(grep { ($_->{from} // 0) == $uid{$who} } @m), 0,
       '... none of its own');
    is(scalar(grep { !defined $seq_of{ $_->{id} }
                     || $seq_of{ $_->{id} } != $_->{seq} } @m), 0,
       '... each with the seq its sender was acked with');
    is(scalar(grep { ($_->{group} // 0) != $gid } @m), 0,
       '... each naming the group');
    for my $from (grep { $_ ne $who } qw(a b c d e)) {
        my @b = map { $_->{body} } grep { $_->{from} == $uid{$from} } @m;
        is_deeply(\@b, [ map { "$from says $_" } 1 .. $N ],
                  "... $from\'s in the order sent") or last;
    }
    ok(quiet($ws{$who}, 'message', 0.3), '... and nothing more');
    $got{$who} = \@m;
}

# --- the offline member ------------------------------------------------------

# as if the log had begun at seq 3, with seq 1 and 2 entering it after
# (they were in flight then): f reads them from PostgreSQL first, and not
# again from the log
my $psql = "psql \"$ENV{TEST_NGINX_PG_DSN}\" -XAtc";
ok(ChatTest::wait_until(sub {
       `$psql "SELECT count(*) FROM messages WHERE conv = 'g:$gid'"`
           =~ /^100$/m }, timeout => 30),
   'the 100 are in PostgreSQL (chat-worker persist)');
is(redis("SET chat:glogf:{g:$gid} 3"), 'OK', "the log says it begins at seq 3");

my $f = ws_connect($port{two}, $uid{f});
my @fm = frames($f, 'message', 5 * $N, 30);
is(scalar @fm, 5 * $N, 'f, offline meanwhile, gets all 100 on connect');
my @fseq = map { $_->{seq} } @fm;
is_deeply(\@fseq, [ sort { $a <=> $b } values %seq_of ], '... in seq order')
    or diag "@fseq";
ok(quiet($f, 'message', 0.5), '... once');

# f's delivered receipts move its position; a second connection of f gets
# nothing of what f acknowledged
$f->send_text(encode_json({ type => 'receipt', ids => [ map { $_->{id} }
                            @fm[0 .. 99] ], status => 'delivered' }));
my @dr;
for my $who (qw(a b c d e)) {
    push @dr, frames($ws{$who}, 'receipt', $N, 20);
}
is(scalar @dr, 5 * $N, "f's delivered receipts reach each sender");
is(scalar(grep { $_->{by} == $uid{f} && $_->{status} eq 'delivered' } @dr),
   5 * $N, '... by f, delivered');
$f->close;
my $f2 = ws_connect($port{one}, $uid{f});
ok(quiet($f2, 'message', 1.5),
   "f's next connection: nothing again (all delivered)");

# --- receipts: read from everyone for one of a's messages --------------------

my $last = $acks{a}[-1]{id};
for my $who (qw(b c d e)) {
    $ws{$who}->send_text(encode_json({ type => 'receipt', id => $last,
                                       status => 'read' }));
}
# f read it on its next connection (it got it on the one before): found
# in PostgreSQL
$f2->send_text(encode_json({ type => 'receipt', id => $last,
                             status => 'read' }));
my @rr = frames($ws{a}, 'receipt', 5, 20);
is_deeply([ sort { $a <=> $b } map { $_->{by} } @rr ],
          [ sort { $a <=> $b } @uid{qw(b c d e f)} ],
          'a gets read receipts from b, c, d and e, and from f, whose '
          . 'connection got it earlier') or diag explain \@rr;
is(scalar(grep { $_->{id} eq $last && $_->{status} eq 'read' } @rr), 5,
   '... for her message, read');
$f2->send_text(encode_json({ type => 'receipt', id => $last,
                             status => 'read' }));
ok(quiet($ws{a}, 'receipt', 1), "... f's second read is not sent on");
# a message f was never sent: a one-to-one message between a and b
send_msg($ws{a}, to => $uid{b}, client_id => "pair-$run", body => 'just b');
my ($pair) = frames($ws{a}, 'ack', 1, 10);
frames($ws{b}, 'message', 1, 10);
ok(ChatTest::wait_until(sub {
       `psql "$ENV{TEST_NGINX_PG_DSN}" -XAtc "SELECT count(*) FROM messages
         WHERE id = '$pair->{id}'"` =~ /^1$/m }, timeout => 30),
   "a's message to b is in PostgreSQL");
$f2->send_text(encode_json({ type => 'receipt', id => $pair->{id},
                             status => 'read' }));
my ($uerr) = frames($f2, 'error', 1, 5);
is($uerr && "$uerr->{code} $uerr->{id}", "unknown_message $pair->{id}",
   "f's receipt for a message it was never sent: unknown_message")
    or diag explain $uerr;
$ws{b}->send_text(encode_json({ type => 'receipt', id => $last,
                                status => 'read' }));
ok(quiet($ws{a}, 'receipt', 1), '... a second read by b is not sent on');

# --- typing ------------------------------------------------------------------

$ws{c}->send_text(encode_json({ type => 'typing', group => $gid }));
for my $who (qw(a b d e)) {
    my ($t) = frames($ws{$who}, 'typing', 1, 10);
    is($t && "$t->{from} $t->{group}", "$uid{c} $gid", "$who sees c typing");
}
ok(quiet($ws{c}, 'typing', 0.5), '... c does not');

# --- membership changes ------------------------------------------------------

my $x = ws_connect($port{two}, $uid{x});
my $y = ws_connect($port{one}, $uid{y});

send_msg($y, group => $gid, client_id => "y1-$run", body => 'let me in');
my ($ye) = frames($y, 'error', 1, 10);
is($ye && "$ye->{code} $ye->{client_id}", "forbidden y1-$run",
   'a non-member sends: forbidden') or diag explain $ye;
$y->send_text(encode_json({ type => 'typing', group => $gid }));
($ye) = frames($y, 'error', 1, 10);
is($ye && $ye->{code}, 'forbidden', '... types: forbidden');
send_msg($y, group => 999999999, client_id => "y2-$run", body => 'hi');
($ye) = frames($y, 'error', 1, 10);
is($ye && "$ye->{code} $ye->{client_id}", "not_found y2-$run",
   'a group that does not exist: not_found') or diag explain $ye;
ok(quiet($ws{a}, 'message', 0.5), '... and nobody got anything');

($st) = api('a', DELETE => "/v1/groups/$gid/members/$uid{e}");
is($st, 204, 'a removes e');
($st) = api('a', PUT => "/v1/groups/$gid/members/$uid{x}");
is($st, 200, 'a adds x');

send_msg($ws{b}, group => $gid, client_id => "after-$run",
         body => 'after the change');
my ($ack) = frames($ws{b}, 'ack', 1, 10);
ok($ack, 'b sends right after the change');
for my $who (qw(a c d)) {
    my ($m) = frames($ws{$who}, 'message', 1, 10);
    is($m && $m->{body}, 'after the change', "$who gets it");
}
my ($xm) = frames($x, 'message', 1, 10);
is($xm && $xm->{body}, 'after the change', 'x, just added, gets it');
ok(quiet($x, 'message', 0.5), '... and none of the earlier history');
ok(quiet($ws{e}, 'message', 1), 'e, just removed, gets nothing');
$ws{e}->close;
my $e2 = ws_connect($port{two}, $uid{e});
ok(quiet($e2, 'message', 1), '... not even when it connects again');

send_msg($e2, group => $gid, client_id => "e-out-$run", body => 'still?');
my ($ee) = frames($e2, 'error', 1, 10);
is($ee && $ee->{code}, 'forbidden', '... and may no longer send');

# the member list lost by Redis: filled again from PostgreSQL
is(redis("DEL chat:gm:{g:$gid}"), '1', 'Redis loses the member list');
send_msg($ws{c}, group => $gid, client_id => "refill-$run",
         body => 'after the loss');
($ack) = frames($ws{c}, 'ack', 1, 10);
ok($ack, 'c sends: acked');
for my $who (qw(a b d)) {
    my ($m) = frames($ws{$who}, 'message', 1, 10);
    is($m && $m->{body}, 'after the loss', "$who gets it");
}
($xm) = frames($x, 'message', 1, 10);
is($xm && $xm->{body}, 'after the loss', 'x too');
ok(quiet($e2, 'message', 0.5), 'e not');
is(redis("SISMEMBER chat:gm:{g:$gid} $uid{x}"), '1',
   '... the list is in Redis again, with x');

# {"type":"sync"}: what the member has not acknowledged comes again
$x->send_text('{"type":"sync"}');
my @xs = frames($x, 'message', 2, 10);
is_deeply([ map { $_->{body} } @xs ], [ 'after the change', 'after the loss' ],
          'x asks for a sync: its two unacknowledged messages again, in order')
    or diag explain \@xs;
ok(quiet($x, 'message', 0.5), '... and nothing else');

# the group's log lost by Redis: a member behind it reads PostgreSQL first
ok(ChatTest::wait_until(sub {
       `$psql "SELECT count(*) FROM messages WHERE conv = 'g:$gid'
                 AND body IN ('after the change', 'after the loss')"`
           =~ /^2$/m }, timeout => 30),
   "x's two messages are in PostgreSQL (chat-worker persist)");
$x->close;
redis("DEL chat:glog:{g:$gid} chat:glogq:{g:$gid} chat:glogn:{g:$gid} "
      . "chat:glogf:{g:$gid}");
send_msg($ws{a}, group => $gid, client_id => "lost-$run",
         body => 'after the log loss');
($ack) = frames($ws{a}, 'ack', 1, 10);
ok($ack, 'Redis loses the log; a sends again: acked');
is(redis("GET chat:glogf:{g:$gid}"), $ack && $ack->{seq},
   '... the new log holds everything from that seq on');
my $x2 = ws_connect($port{one}, $uid{x});
my @xb = frames($x2, 'message', 3, 15);
is_deeply([ map { $_->{body} } @xb ],
          [ 'after the change', 'after the loss', 'after the log loss' ],
          'x connects: the two older ones from PostgreSQL, then the log')
    or diag explain \@xb;
is_deeply([ map { $_->{seq} } @xb ], [ sort { $a <=> $b } map { $_->{seq} } @xb ],
          '... in seq order');
$x2->send_text(encode_json({ type => 'receipt', ids => [ map { $_->{id} } @xb ],
                             status => 'delivered' }));
my @xr = frames($ws{a}, 'receipt', 1, 10);
ok(scalar(grep { $_->{by} == $uid{x} } @xr),
   "... its receipts work for them too (a hears of hers)");
$x2->close;
my $x3 = ws_connect($port{two}, $uid{x});
ok(quiet($x3, 'message', 1.5), '... and its next connection gets nothing');

# --- the sender's history and receipts (chat-worker persist) -----------------

# a's message as a sees it in the history, once persist has its counts
sub hist_of {
    my ($id, $want) = @_;
    my $m;
    ChatTest::wait_until(sub {
        my ($s, $h) = api('a', GET => "/v1/messages?group=$gid&limit=100");
        ($m) = grep { $_->{id} eq $id } @{ ref $h eq 'HASH'
                                           ? $h->{messages} // [] : [] };
        $m && join(' ', map { $m->{$_} // '-' }
                        qw(delivered_count read_count status)) eq $want;
    }, timeout => 30, interval => 0.3);
    return $m;
}
sub receipts_of {
    my ($who, $id) = @_;
    my ($s, $r) = api($who, GET => "/v1/messages/$id/receipts");
    return ($s, { map { $_->{user_id} => $_->{status} }
                  @{ ref $r eq 'HASH' ? $r->{receipts} // [] : [] } });
}

# a's last burst message: read by b, c, d, e and f; e has left since and
# x joined after it: neither counts
my $m = hist_of($last, '4 4 read');
is($m && "$m->{delivered_count} $m->{read_count} $m->{status}",
   '4 4 read', "a's history: her message read by the 4 other members it "
   . 'counts (b c d f): read')
    or diag explain $m;
($st, my $rc) = receipts_of('a', $last);
is($st, 200, "GET /v1/messages/{id}/receipts for a's message: 200");
is_deeply($rc, { $uid{b} => 'read', $uid{c} => 'read', $uid{d} => 'read',
                 $uid{f} => 'read' },
          '... b, c, d and f read; nobody else')
    or diag explain $rc;
($st) = receipts_of('b', $last);
is($st, 403, '... b may not ask');

# a new message of a's, read by every member online: b c d f x
send_msg($ws{a}, group => $gid, client_id => "readme-$run",
         body => 'read me');
($ack) = frames($ws{a}, 'ack', 1, 10);
ok($ack, 'a sends once more');
for my $c ($ws{b}, $ws{c}, $ws{d}, $x3, $f2) {
    my $rm;
    # f2 has not read the messages after the membership changes yet
    do { ($rm) = frames($c, 'message', 1, 10) }
        while $rm && $rm->{body} ne 'read me';
    $c->send_text(encode_json({ type => 'receipt', id => $rm->{id},
                                status => 'read' })) if $rm;
}
my @rm = frames($ws{a}, 'receipt', 5, 20);
is_deeply([ sort { $a <=> $b } map { $_->{by} } @rm ],
          [ sort { $a <=> $b } @uid{qw(b c d f x)} ],
          'a gets read receipts from b, c, d, f and x');
$m = hist_of($ack && $ack->{id} // '', '5 5 read');
is($m && "$m->{delivered_count} $m->{read_count} $m->{status}",
   '5 5 read', "a's history: read by all 5 other members: read")
    or diag explain $m;
($st, $rc) = receipts_of('a', $ack && $ack->{id} // '');
is_deeply($rc, { map { $uid{$_} => 'read' } qw(b c d f x) },
          '... and the receipts list the five, read') or diag explain $rc;

$_->close for values %ws;
$_->close for $y, $e2, $f2, $x3;

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/,
       'no alerts on node one');
unlike(ChatTest::error_log('two'), qr/\[(alert|crit|emerg)\]/,
       '... nor on node two');

done_testing();
