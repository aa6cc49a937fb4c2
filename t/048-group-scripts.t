# The group chat's Redis Lua scripts (issue #14: gseq, gfill, ginval,
# gdeliver, gpub, gtype, gsync, greceipt) against a real Redis, the way the
# module calls them (ngx_chat_group.c, ngx_chat_gdeliver.c, ngx_chat_send.c,
# ngx_chat_gsync.c, ngx_chat_receipt.c): their keys, their arguments, every
# shape of reply, the keys they leave and what they PUBLISH; then odd and
# malformed input, which must give an error reply (or an error item of a
# batch) and never take Redis or the other items down.  As in
# t/042-lua-scripts.t the Redis is this test's own and every call is an
# EVALSHA of what src/store/lua/gen.sh -s prints, which the module loaded.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use Digest::SHA qw(sha1_hex);
use FindBin;
use POSIX ();
use ChatTest;
use ChatJWT;
use ChatLua qw(cli r is_err ev evb ev1 evb_raw now_ms subscribe pubs);

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';
plan skip_all => 'needs redis-cli --json (Redis 7)'
    unless `redis-cli --json --version 2>&1` =~ /^redis-cli 7/;

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

ChatLua::start(port => ($ENV{TEST_NGINX_PORT} || 1984) + 192,
               dir => "/tmp/chat-redis-glua-$$",
               lua => "$FindBin::Bin/../src/store/lua");

ok(ChatTest::wait_until(sub { cli('PING') eq 'PONG' }), 'a Redis of our own');

my @names = qw(gdeliver gfill ginval gpub greceipt gseq gsync gtype);
my %sha = ChatLua::scripts(@names);

ChatLua::start_nginx();

ok(ChatTest::wait_until(sub {
       my $e = r('SCRIPT', 'EXISTS', map { $sha{$_} } @names);
       ref $e eq 'ARRAY' && !grep { !$_ } @$e;
   }), 'the module loaded the eight group scripts, as gen.sh -s prints them')
    or diag explain r('SCRIPT', 'EXISTS', map { $sha{$_} } @names);

# the PUBLISHes on a channel after the first $from, once $n are there
sub heard {
    my ($ch, $from, $n, $timeout) = @_;
    my $p = [];
    ChatTest::wait_until(sub { $p = pubs($ch); @$p >= $from + $n },
                         timeout => $timeout // 5);
    return [ @$p[$from .. $#$p] ];
}

# a group line "g <gid> <n> <id> <from> <seq> <xconn> <uid,...> <frame>",
# its members sorted (SMEMBERS has no order)
sub gline {
    my $l = shift;
    my @f = split / /, $l, 9;
    return $l unless @f == 9 && $f[0] eq 'g';
    $f[7] = join ',', sort { $a <=> $b } split /,/, $f[7];
    return join ' ', @f;
}

my $live  = 'chat:w:gnode:5151.1765000000';
my $live2 = 'chat:w:gnode:5152.1765000000';
my $dead  = 'chat:w:gnode:5153.1765000000';     # nobody listens there
subscribe($live);
subscribe($live2);

my $ttl = 2592000;
my $G = 7001;
my ($A, $B, $C, $D, $E) = (5101, 5102, 5103, 5104, 5105);
sub gk { my ($name, $g) = @_; "chat:$name:{g:" . ($g // $G) . '}' }
my @id = map { sprintf '01M8HGZ2HMB05GCZS%09d', $_ } 0 .. 40;
sub gframe {
    my ($id, $seq, $from, $body) = @_;
    return encode_json({ type => 'message', id => $id, seq => $seq,
                         from => $from, group => $G, body => $body,
                         client_id => "c$seq", ts => 1765000000000 + $seq });
}
sub route {
    my ($uid, $ch, $conn, $ms) = @_;
    cli('ZADD', "chat:routes:{$uid}", now_ms() + ($ms // 3600000),
        "$ch $conn");
}


# --- GINVAL and GFILL: the cached member list (ngx_chat_group.c) ------------

my @gm = (gk('gm'), gk('gv'));
is(ev('gfill', \@gm, '0', 600, $A, $B, $C), 1,
   'GFILL at version 0 (no version yet): set');
is_deeply([ sort @{ r('SMEMBERS', $gm[0]) } ], [ $A, $B, $C ],
          'GFILL: the members');
my $t = cli('TTL', $gm[0]);
ok($t > 590 && $t <= 600, 'GFILL: the list expires after the ttl') or diag $t;

is(ev('ginval', \@gm, $ttl), 1, 'GINVAL: the version moves to 1');
is(cli('EXISTS', $gm[0]), '0', 'GINVAL: the list is gone');
ok(cli('TTL', $gm[1]) > $ttl - 100, 'GINVAL: the version expires');
is(ev('gfill', \@gm, '0', 600, $A, $B), 0,
   'GFILL with the version read before the change: refused (0)');
is(cli('EXISTS', $gm[0]), '0', '... and nothing set');
is(ev('ginval', \@gm, $ttl), 2, 'GINVAL again: 2');
is(ev('gfill', \@gm, '1', 600, $A, $B), 0,
   'GFILL with an older version: refused');
is(ev('gfill', \@gm, '2', 600, $A, $B, $C, $D), 1,
   'GFILL with the current version: set');
is(cli('SCARD', $gm[0]), '4', '... four members');
is(ev('gfill', \@gm, '2', 600, $A, $B), 1, 'GFILL again: set');
is_deeply([ sort @{ r('SMEMBERS', $gm[0]) } ], [ $A, $B ],
          '... replacing the list, not adding to it');

# a large group: SADD in slices of 1000 (Lua's unpack has a limit)
my @many = map { 900000 + $_ } 1 .. 2500;
is(ev('gfill', [gk('gm', 7002), gk('gv', 7002)], '0', 600, @many), 1,
   'GFILL of 2,500 members');
is(cli('SCARD', gk('gm', 7002)), '2500', '... all of them');
cli('DEL', gk('gm', 7002));

# an empty list is not a list: GFILL must not say "set" for it
my $empty = ev('gfill', [gk('gm', 7003), gk('gv', 7003)], '0', 600);
ok(is_err($empty), 'GFILL without members: an error, not "set"')
    or diag explain $empty;
is(cli('EXISTS', gk('gm', 7003)), '0', '... and no list');
ok(is_err(ev('gfill', [gk('gm', 7003), gk('gv', 7003)], '0', 'soon', $A)),
   'GFILL with a ttl that is not a number: an error');
is(cli('EXISTS', gk('gm', 7003)), '0',
   '... and no list (one without an expiry would stay for good)');
ok(is_err(ev('ginval', \@gm)), 'GINVAL without its ttl: an error');
is(cli('GET', $gm[1]), '3', '... after moving the version (INCR comes '
   . 'first)');
ev('gfill', \@gm, '3', 600, $A, $B, $C, $D);


# --- GSEQ: membership and the group's seq (ngx_chat_send.c) ----------------

my @gs = ("chat:seq:{g:$G}", @gm);
is_deeply(ev1('gseq', \@gs, $A), ['seed'],
          'GSEQ: a member, no counter yet: seed');
is(cli('EXISTS', $gs[0]), '0', 'GSEQ seed: no counter made');
cli('SET', $gs[0], 41);
is_deeply(ev1('gseq', \@gs, $A), ['seq', 42], 'GSEQ: a member: seq 42');
is_deeply(ev1('gseq', \@gs, $E), ['forbidden'],
          'GSEQ: not a member: forbidden');
is(cli('GET', $gs[0]), '42', 'GSEQ forbidden: no seq taken');
is_deeply(evb('gseq', [\@gs, $B], [\@gs, $E], [\@gs, $C]),
          [['seq', 43], ['forbidden'], ['seq', 44]],
          'GSEQ batch: a reply per item, seqs in item order');
cli('DEL', $gm[0]);
is_deeply(ev1('gseq', \@gs, $A), ['miss', '3'],
          'GSEQ without the member list: miss, with the version');
is(cli('GET', $gs[0]), '44', 'GSEQ miss: no seq taken');
is_deeply(ev1('gseq', ["chat:seq:{g:7004}", gk('gm', 7004), gk('gv', 7004)],
              $A),
          ['miss', '0'], 'GSEQ of a group never seen: miss at version 0');
ev('gfill', \@gm, '3', 600, $A, $B, $C, $D);

# odd input
cli('SET', gk('gm', 7005), 'not a set');
my $out = evb_raw('gseq', [["chat:seq:{g:7005}", gk('gm', 7005),
                            gk('gv', 7005)], $A], [\@gs, $A]);
like($out, qr/\A.*WRONGTYPE.*\nseq\n45\z/s,
     'GSEQ batch: an item whose list is not a set is an error, the next '
     . 'one done') or diag $out;
ok(is_err(r('EVALSHA', $sha{gseq}, 0, 'x')),
   'GSEQ with an item count that is not a number: an error');
$out = cli('EVALSHA', $sha{gseq}, 3, @gs, 1, 3, 1);
like($out, qr/\A(?:ERR|[^\n]*rror)[^\n]*\n?\z/,
     'GSEQ with fewer arguments than the item says: an error') or diag $out;
is(cli('PING'), 'PONG', '... and Redis is fine');


# --- GDELIVER: the group's log and its fan-out (ngx_chat_gdeliver.c) --------

my @gd = (gk('glog'), gk('glogq'), gk('glogn'), @gm, gk('glogf'));
cli('DEL', $gm[0]);
my $f1 = gframe($id[1], 1, $A, 'one');
is_deeply(ev1('gdeliver', \@gd, $G, $id[1], "$A 1 g:$G 1765000000001", $f1,
              5000, $ttl, 1, $live, 3),
          ['miss', '3'], 'GDELIVER without the member list: miss, version');
is(cli('EXISTS', @gd[0 .. 2], $gd[5]), 0,
   'GDELIVER miss: nothing logged, no position taken, no "from"');
ev('gfill', \@gm, '3', 600, $A, $B, $C, $D);

# A sends on its connection 3 of $live and has another there (4); B is on
# $live, C on $live2 and on the dead channel, D has no route; E, not a
# member, is on $live too
route($A, $live, 3);
route($A, $live, 4);
route($B, $live, 7);
route($B, $live, 8, -1000);             # expired
route($C, $live2, 9);
route($C, $dead, 10);
route($E, $live, 11);
my $p1 = @{ pubs($live) };
my $p2 = @{ pubs($live2) };
my $us = now_ms() * 1000;
my $r1 = ev1('gdeliver', \@gd, $G, $id[1], "$A 1 g:$G 1765000000001", $f1,
             5000, $ttl, 1, $live, 3);
my $n1 = ref $r1 eq 'ARRAY' ? $r1->[0] : '';
ok(ref $r1 eq 'ARRAY' && @$r1 == 1 && $n1 =~ /^\d{16}$/ && $n1 >= $us,
   'GDELIVER all=1: {n}, positions from Redis\'s clock in microseconds')
    or diag explain $r1;
is(cli('HGET', $gd[0], $id[1]), "$A 1 g:$G 1765000000001 $f1",
   'GDELIVER: the log entry "<from> <seq> <conv> <ts> <frame>"');
is(cli('ZSCORE', $gd[1], $id[1]), $n1, 'GDELIVER: at its position');
is(cli('GET', $gd[2]), $n1, 'GDELIVER: the counter');
is(cli('GET', $gd[5]), '1',
   'GDELIVER: a new log holds everything from the message\'s seq on (from)');
ok(cli('TTL', $_) > $ttl - 100, "GDELIVER: $_ expires") for @gd[0 .. 2, 5];
is_deeply([ map { [ map { gline($_) } @$_ ] } @{ heard($live, $p1, 1) } ],
          [[ "g $G $n1 $id[1] $A 1 3 $A,$B $f1" ]],
          'GDELIVER: one line on the sender\'s channel naming A and B once '
          . 'each, with the sending connection 3');
is_deeply(heard($live2, $p2, 1), [[ "g $G $n1 $id[1] $A 1 0 $C $f1" ]],
          '... and one on C\'s channel, with no connection left out');
is_deeply(r('ZRANGE', "chat:routes:{$C}", 0, -1), ["$live2 9"],
          'GDELIVER: the route on the dead channel went');
is_deeply(r('ZRANGE', "chat:routes:{$B}", 0, -1), ["$live 8", "$live 7"],
          'GDELIVER: an expired route on a live channel is left (gqueue does '
          . 'not trim: one call per member; a dead channel\'s go)');

$p1 = @{ pubs($live) };
is_deeply(ev1('gdeliver', \@gd, $G, $id[1], "$A 1 g:$G 1765000000001", $f1,
              5000, $ttl, 1, $live, 3),
          [-1], 'GDELIVER: the same id again: -1');
is(cli('GET', $gd[2]), $n1, '... no position taken');

# all=0 (several Redis servers): the members back, nothing published
my $f2 = gframe($id[2], 2, $B, 'two');
my $r2 = ev1('gdeliver', \@gd, $G, $id[2], "$B 2 g:$G 1765000000002", $f2,
             5000, $ttl, 0);
is(ref $r2 eq 'ARRAY' && $r2->[0], $n1 + 1, 'GDELIVER all=0: the next '
   . 'position') or diag explain $r2;
is_deeply([ sort @{ $r2->[1] // [] } ], [ $A, $B, $C, $D ],
          '... and the members, for GPUB');

# a batch: two messages, in item order, one PUBLISH per channel
my $f3 = gframe($id[3], 3, $C, 'three');
my $f4 = gframe($id[4], 4, $D, 'four');
my $rb = evb('gdeliver',
             [\@gd, $G, $id[3], "$C 3 g:$G 1765000000003", $f3, 5000, $ttl,
              1, $live2, 9],
             [\@gd, $G, $id[4], "$D 4 g:$G 1765000000004", $f4, 5000, $ttl,
              1, $live, 99]);
is_deeply($rb, [[$n1 + 2], [$n1 + 3]], 'GDELIVER batch: a reply per item');
my $h = heard($live, $p1, 1);
is_deeply([ map { [ map { gline($_) } @$_ ] } @$h ],
          [[ "g $G " . ($n1 + 2) . " $id[3] $C 3 0 $A,$B $f3",
             "g $G " . ($n1 + 3) . " $id[4] $D 4 99 $A,$B $f4" ]],
          'GDELIVER batch: both lines in one PUBLISH on $live (the '
          . 'sending connection only on its own channel)');
is_deeply(heard($live2, $p2 + 1, 1),
          [[ "g $G " . ($n1 + 2) . " $id[3] $C 3 9 $C $f3",
             "g $G " . ($n1 + 3) . " $id[4] $D 4 0 $C $f4" ]],
          '... and in one on $live2');
sleep 0.3;
is(scalar @{ pubs($live) }, $p1 + 1, 'GDELIVER -1: nothing was published');

# a large group: at least twice as many members as worker channels with a
# subscriber (ours two, and the module's own workers') goes to every such
# channel as one line naming all members (lib.lua's gbroadcast), routes or
# not, whatever all= says; each worker writes to those it holds
my @wch = sort @{ r('PUBSUB', 'CHANNELS', 'chat:w:*') };
ok(@wch >= 3 && (grep { $_ eq $live } @wch) && (grep { $_ eq $live2 } @wch)
   && !(grep { $_ eq $dead } @wch),
   'the worker channels with a subscriber: ours and the module\'s')
    or diag explain \@wch;
my $L = 7030;
my @gl = map { gk($_, $L) } qw(glog glogq glogn gm gv glogf);
my @big = map { 5200 + $_ } 1 .. 2 * @wch;
ev('gfill', [@gl[3, 4]], '0', 600, @big);
my %before = map { $_ => scalar @{ pubs($_) } } $live, $live2;
my $fb = gframe($id[7], 1, $big[0], 'to all');
my $rl = ev1('gdeliver', \@gl, $L, $id[7], "$big[0] 1 g:$L 1", $fb, 5000,
             $ttl, 0, $live2, 6);
ok(ref $rl eq 'ARRAY' && @$rl == 1 && $rl->[0] =~ /^\d{16}$/,
   'GDELIVER, 2 x channels members, all=0: {n} alone (published here, no '
   . 'GPUB)') or diag explain $rl;
my $all = join ',', sort { $a <=> $b } @big;
is_deeply([ map { [ map { gline($_) } @$_ ] }
            @{ heard($live, $before{$live}, 1) } ],
          [[ "g $L $rl->[0] $id[7] $big[0] 1 0 $all $fb" ]],
          'GDELIVER broadcast: one line on $live naming every member, though '
          . 'none has a route');
is_deeply([ map { [ map { gline($_) } @$_ ] }
            @{ heard($live2, $before{$live2}, 1) } ],
          [[ "g $L $rl->[0] $id[7] $big[0] 1 6 $all $fb" ]],
          '... and on $live2, with the sending connection named there only');
is(cli('EXISTS', "chat:routes:{$big[0]}"), '0', '... no route read or made');

# one member fewer: routes again (gqueue), so only channels with routes
cli('SREM', $gl[3], $big[-1]);
route($big[1], $live2, 12);
%before = map { $_ => scalar @{ pubs($_) } } $live, $live2;
my $rs = ev1('gdeliver', \@gl, $L, $id[8], "$big[0] 2 g:$L 2", 'F8', 5000,
             $ttl, 1, '', 0);
is_deeply(heard($live2, $before{$live2}, 1),
          [[ "g $L $rs->[0] $id[8] $big[0] 2 0 $big[1] F8" ]],
          'GDELIVER, fewer than 2 x channels members: by routes, $live2 '
          . 'names its one member');
sleep 0.3;
is(scalar @{ pubs($live) }, $before{$live},
   '... and $live, where no member has a route, hears nothing');
my $rs0 = ev1('gdeliver', \@gl, $L, $id[9], "$big[0] 3 g:$L 3", 'F9', 5000,
              $ttl, 0);
is(scalar @{ $rs0->[1] // [] }, @big - 1,
   '... and with all=0 the members come back for GPUB');

# typing in a large group: broadcast too, the typer left out of the names
cli('SADD', $gl[3], $big[-1]);
%before = map { $_ => scalar @{ pubs($_) } } $live, $live2;
my $tb = '{"type":"typing","from":' . $big[2] . ',"group":' . $L . '}';
is_deeply(ev1('gtype', [@gl[3, 4]], $L, $big[2], $tb, 0), ['ok'],
          'GTYPE, 2 x channels members, all=0: ok alone (published here)');
my $others = join ',', sort { $a <=> $b } grep { $_ != $big[2] } @big;
is_deeply([ map { [ map { gline($_) } @$_ ] }
            @{ heard($_, $before{$_}, 1) } ],
          [[ "g $L 0 - $big[2] 0 0 $others $tb" ]],
          "GTYPE broadcast on $_: every member but the typer")
    for $live, $live2;

# trim: the log keeps its max newest, and "from" moves past what went
my @gt = map { gk($_, 7010) } qw(glog glogq glogn gm gv glogf);
ev('gfill', [@gt[3, 4]], '0', 600, $D);
for my $i (10 .. 13) {
    ev1('gdeliver', \@gt, 7010, $id[$i], "$D $i g:7010 1765000000010", "f$i",
        3, $ttl, 1, $live, 0);
}
is_deeply(r('ZRANGE', $gt[1], 0, -1), [ @id[11 .. 13] ],
          'GDELIVER over max (3): the oldest left the queue');
is_deeply([ sort @{ r('HKEYS', $gt[0]) } ], [ @id[11 .. 13] ],
          '... and the log');
is(cli('GET', $gt[5]), '11', '... and from is past its seq (10 + 1)');
my $again = ev1('gdeliver', \@gt, 7010, $id[10], "$D 10 g:7010 1", 'f10',
                3, $ttl, 1, $live, 0);
ok(ref $again eq 'ARRAY' && $again->[0] =~ /^\d{16}$/,
   'GDELIVER: a trimmed id is logged again (the log forgot it)')
    or diag explain $again;
is(cli('GET', $gt[5]), '12', '... and the one it pushed out (seq 11) moves '
   . 'from to 12');

# seqs entering the log out of order (two senders): from is the greatest
# seq trimmed + 1, and never goes back
my @go = map { gk($_, 7012) } qw(glog glogq glogn gm gv glogf);
ev('gfill', [@go[3, 4]], '0', 600, $D);
my @fr;
for my $seq (5, 9, 3, 4, 20) {
    ev1('gdeliver', \@go, 7012, $id[$seq], "$D $seq g:7012 1", "f$seq",
        2, $ttl, 0);
    push @fr, cli('GET', $go[5]);
}
is_deeply(\@fr, [ 5, 5, 6, 10, 10 ],
          'GDELIVER max 2, seqs 5 9 3 4 20: from 5 (new log), 5, 6 (5 went), '
          . '10 (9 went), still 10 (3 went: lower)');
cli('SET', $go[5], 50);
ev1('gdeliver', \@go, 7012, $id[21], "$D 21 g:7012 1", 'f21', 2, $ttl, 0);
is(cli('GET', $go[5]), '50', 'GDELIVER: a trim below from leaves it');
cli('DEL', $go[5]);
ev1('gdeliver', \@go, 7012, $id[22], "$D 22 g:7012 1", 'f22', 2, $ttl, 0);
is(cli('GET', $go[5]), '21', 'GDELIVER: without a from, a trim sets it '
   . '(the counter is there: not a new log)');

# odd input: an item whose log is not a hash fails alone
my @gb = map { gk($_, 7011) } qw(glog glogq glogn gm gv glogf);
cli('SET', $gb[0], 'not a hash');
ev('gfill', [@gb[3, 4]], '0', 600, $D);
$out = evb_raw('gdeliver',
               [\@gb, 7011, $id[20], "$D 1 g:7011 1", 'f', 10, $ttl, 0],
               [\@gt, 7010, $id[21], "$D 9 g:7010 1", 'f21', 3, $ttl, 0]);
like($out, qr/\A.*WRONGTYPE.*\n\d{16}\n$D\z/s,
     'GDELIVER batch: an item whose log is not a hash is an error, the next '
     . 'one done') or diag $out;
my $n7010 = cli('GET', $gt[2]);
my $from7010 = cli('GET', $gt[5]);
$out = evb_raw('gdeliver',
               [\@gt, 7010, $id[22], "$D 1 g:7010 1", 'f22', 'many', $ttl, 0],
               [\@gt, 7010, $id[23], "$D 2 g:7010 1", 'f23', 3, $ttl, 0]);
like($out, qr/\A[^\n]*max[^\n]*\n\n?@{[ $n7010 + 1 ]}\n$D\z/s,
     'GDELIVER batch: an item with a max that is not a number is an error '
     . 'saying so, the next one done') or diag $out;
is(cli('HEXISTS', $gt[0], $id[22]), '0', '... and the bad one not logged');
$out = evb_raw('gdeliver',
               [\@gt, 7010, $id[24], "$D 1 g:7010 1", 'f24', 3, 'soon', 1,
                $live, 0],
               [\@gt, 7010, $id[25], "$D 3 g:7010 1", 'f25', 3, $ttl, 0]);
like($out, qr/\A[^\n]*ttl[^\n]*\n\n?@{[ $n7010 + 2 ]}\n$D\z/s,
     'GDELIVER batch: an item with a ttl that is not a number is an error '
     . 'saying so, the next one done') or diag $out;
is(cli('HEXISTS', $gt[0], $id[24]), '0', '... and the bad one not logged');
ok(cli('TTL', $gt[0]) > $ttl - 100, '... and the log still expires');
$out = evb_raw('gdeliver',
               [[@gb[0 .. 2], gk('gm', 7013), @gb[4, 5]], 7013, $id[26],
                "$D 1 g:7013 1", 'f', 'x', $ttl, 0]);
like($out, qr/\A[^\n]*max[^\n]*\n?\z/,
     'GDELIVER: a bad max is an error even when the member list is missing '
     . '(not a miss)') or diag $out;
ok(cli('GET', $gt[5]) >= $from7010, '... from never went back');
is(cli('PING'), 'PONG', '... and Redis is fine');

# --- GPUB: a frame to the members on this server (ngx_chat_group.c) ---------

$p1 = @{ pubs($live) };
$p2 = @{ pubs($live2) };
is_deeply(evb('gpub', [[], $G, 77, $id[5], "$B 5", 'F5', $live, 4, 0, $A, $C,
                       $D]),
          [2], 'GPUB: the channels reached (A\'s and C\'s; D has no route)');
is_deeply([ map { [ map { gline($_) } @$_ ] } @{ heard($live, $p1, 1) } ],
          [[ "g $G 77 $id[5] $B 5 4 $A F5" ]],
          'GPUB: "g <gid> <n> <id> <from> <seq> <xconn> <uids> <frame>" on '
          . 'A\'s channel, the sending connection named');
is_deeply(heard($live2, $p2, 1), [[ "g $G 77 $id[5] $B 5 0 $C F5" ]],
          '... and on C\'s, none left out');
is_deeply(evb('gpub', [[], $G, 0, '-', "$A 0", 'T', '', 0, $A, $A, $B, $C],
                      [[], $G, 0, '-', "$C 0", 'T2', '', 0, $C, $C]),
          [2, 0], 'GPUB batch with skip: A skipped, B and C reached; C '
          . 'alone skipped: 0');
is_deeply([ map { [ map { gline($_) } @$_ ] } @{ heard($live, $p1 + 1, 1) } ],
          [[ "g $G 0 - $A 0 0 $B T" ]], 'GPUB skip: A left out on $live');
is_deeply(evb('gpub', [[], $G, 1, $id[6], "$B 6", 'F6', $live, 1, 0]), [0],
          'GPUB without members: 0');
route($D, $dead, 5);
is_deeply(evb('gpub', [[], $G, 1, $id[6], "$B 6", 'F6', $live, 1, 0, $D]),
          [0],
          'GPUB: a channel nobody listens on is not counted');
is(cli('EXISTS', "chat:routes:{$D}"), '0', '... and its route went');
is(cli('PING'), 'PONG', 'Redis is fine');


# --- GTYPE: typing in a group (ngx_chat_receipt.c) --------------------------

my $tf = '{"type":"typing","from":' . $C . ',"group":' . $G . '}';
$p1 = @{ pubs($live) };
$p2 = @{ pubs($live2) };
is_deeply(ev1('gtype', \@gm, $G, $C, $tf, 1), ['ok'],
          'GTYPE all=1, a member: ok');
is_deeply([ map { [ map { gline($_) } @$_ ] } @{ heard($live, $p1, 1) } ],
          [[ "g $G 0 - $C 0 0 $A,$B $tf" ]],
          'GTYPE: "g <gid> 0 - <typer> 0 0 <others> <frame>" to the other '
          . 'members');
sleep 0.3;
is(scalar @{ pubs($live2) }, $p2, '... nothing on the typer\'s own channel');
is_deeply(ev1('gtype', \@gm, $G, $E, $tf, 1), ['forbidden'],
          'GTYPE: not a member: forbidden');
my $ty = ev1('gtype', \@gm, $G, $C, $tf, 0);
is_deeply([ $ty->[0], sort @{ $ty->[1] // [] } ], [ 'ok', $A, $B, $C, $D ],
          'GTYPE all=0: ok and the members, for GPUB');
cli('DEL', $gm[0]);
is_deeply(ev1('gtype', \@gm, $G, $C, $tf, 1), ['miss', '3'],
          'GTYPE without the member list: miss, with the version');
ev('gfill', \@gm, '3', 600, $A, $B, $C, $D);
sleep 0.3;
is(scalar @{ pubs($live) }, $p1 + 1, 'GTYPE: nothing published but the '
   . 'first');


# --- GSYNC: a member's connection reads the log (ngx_chat_gsync.c) ----------

# a log of its own: five messages by A whose seqs entered it out of order
my $S = 7020;
my @sl = map { gk($_, $S) } qw(glog glogq glogn gm gv glogf);
my @sk = (@sl[0, 1], gk('gpos', $S), $sl[5], gk('gspos', $S));
ev('gfill', [@sl[3, 4]], '0', 600, $A, $B, $C);
my @order = ([30, 2, 1000], [31, 1, 1000], [32, 3, 2000], [33, 5, 3000],
             [34, 4, 3000]);   # id, seq, ts
my %n;
for my $o (@order) {
    my ($i, $seq, $ts) = @$o;
    $n{$i} = ev1('gdeliver', \@sl, $S, $id[$i], "$A $seq g:$S $ts",
                 "F$seq", 5000, $ttl, 0)->[0];
}
sub e { my $i = shift; my ($o) = grep { $_->[0] == $i } @order;
        ($n{$i}, $id[$i], "$A $o->[1] g:$S $o->[2] F$o->[1]") }
is(cli('GET', $sl[5]), '2', 'the log starts at seq 2 (its first message\'s)');

is_deeply(ev1('gsync', \@sk, $B, 0, 0, 200, 0),
          [5, $n{34}, [ map { e($_) } 31, 30, 32, 34, 33 ], '0'],
          'GSYNC: everything, in seq order, with the last position, "0"');

# check=1: is everything since the member's delivered seq in the log?
is_deeply(ev1('gsync', \@sk, $B, 0, 0, 200, 1), [-1, '0', [], '2'],
          'GSYNC check, from 2, no delivered seq: -1 and from, nothing read');
cli('HSET', $sk[4], $B, 0);
is_deeply(ev1('gsync', \@sk, $B, $n{33}, 0, 200, 1), [-1, '0', [], '2'],
          '... delivered seq 0: the same, whatever the position');
cli('HSET', $sk[4], $B, 1);
is_deeply(ev1('gsync', \@sk, $B, 0, 0, 200, 1),
          [5, $n{34}, [ map { e($_) } 31, 30, 32, 34, 33 ], '0'],
          '... delivered seq 1 (= from - 1): read');
is_deeply(ev1('gsync', \@sk, $C, 0, 0, 200, 0),
          [5, $n{34}, [ map { e($_) } 31, 30, 32, 34, 33 ], '0'],
          'GSYNC without the check: read, whatever the delivered seq');
cli('SET', $sl[5], 10);
cli('HSET', $sk[4], $B, 8);
is_deeply(ev1('gsync', \@sk, $B, 0, 0, 200, 1), [-1, '0', [], '10'],
          'GSYNC check, from 10, delivered seq 8: -1');
cli('HSET', $sk[4], $B, 9);
is(ev1('gsync', \@sk, $B, 0, 0, 200, 1)->[0], 5,
   '... delivered seq 9: read');
cli('HSET', $sk[4], $B, 12);
is(ev1('gsync', \@sk, $B, 0, 0, 200, 1)->[0], 5, '... delivered seq 12: read');
cli('SET', $sl[5], 1);
is(ev1('gsync', \@sk, $C, 0, 0, 200, 1)->[0], 5,
   'GSYNC check, the log from seq 1, no delivered seq: read (it has all)');
cli('SET', $sl[5], 2);
cli('DEL', $sk[4]);

is_deeply(ev1('gsync', \@sk, $B, $n{31}, 0, 200, 0),
          [3, $n{34}, [ map { e($_) } 32, 34, 33 ], '0'],
          'GSYNC after a position: what follows it');
is_deeply(ev1('gsync', \@sk, $B, 0, 0, 2, 0),
          [2, $n{31}, [ map { e($_) } 31, 30 ], '0'],
          'GSYNC paged (limit 2): the first two, sorted');
is_deeply(ev1('gsync', \@sk, $B, $n{31}, 0, 2, 0),
          [2, $n{33}, [ map { e($_) } 32, 33 ], '0'], '... the next page');
is_deeply(ev1('gsync', \@sk, $B, $n{33}, 0, 2, 0),
          [1, $n{34}, [ e(34) ], '0'], '... the last');
is_deeply(ev1('gsync', \@sk, $B, $n{34}, 0, 2, 0),
          [0, $n{34}, [], '0'], '... then nothing, the position kept');
is_deeply(ev1('gsync', \@sk, $B, 0, 2000, 200, 0),
          [5, $n{34}, [ map { e($_) } 32, 34, 33 ], '0'],
          'GSYNC joined at 2000: nothing sent before, the last position '
          . 'still the end');
is_deeply(ev1('gsync', \@sk, $B, 0, 9999, 200, 0), [5, $n{34}, [], '0'],
          'GSYNC joined after everything: nothing');
is_deeply(ev1('gsync', \@sk, $A, 0, 0, 200, 0), [5, $n{34}, [], '0'],
          'GSYNC: the member\'s own messages left out (scanned, the '
          . 'position moves)');
cli('HSET', $sk[2], $B, $n{32});
is_deeply(ev1('gsync', \@sk, $B, 0, 0, 200, 0),
          [2, $n{34}, [ map { e($_) } 34, 33 ], '0'],
          'GSYNC: after the member\'s delivered position');
is_deeply(ev1('gsync', \@sk, $B, $n{33}, 0, 200, 0),
          [1, $n{34}, [ e(34) ], '0'],
          '... or after the connection\'s, if later');
is_deeply(ev1('gsync', \@sk, $C, 0, 0, 1, 0), [1, $n{30}, [ e(30) ], '0'],
          '... per member (C has none)');
cli('HDEL', $sl[0], $id[32]);
is_deeply(ev1('gsync', \@sk, $C, $n{31}, 0, 200, 0),
          [3, $n{34}, [ map { e($_) } 34, 33 ], '0'],
          'GSYNC: an entry gone from the log is skipped');
is_deeply(ev1('gsync', [ map { gk($_, 7021) } qw(glog glogq gpos glogf
                                                 gspos) ], $A, 0, 0, 200, 1),
          [0, '0', [], '0'],
          'GSYNC of an empty log (no from, check=1): nothing, position 0');
is_deeply(evb('gsync', [\@sk, $C, $n{33}, 0, 200, 0],
                       [\@sk, $B, 0, 0, 200, 0]),
          [[1, $n{34}, [ e(34) ], '0'],
           [2, $n{34}, [ map { e($_) } 34, 33 ], '0']],
          'GSYNC batch: two connections, each its own answer');

# two senders in one log: each member gets the others' messages only
my @ml = map { gk($_, 7023) } qw(glog glogq glogn gm gv glogf);
my @mk = (@ml[0, 1], gk('gpos', 7023), $ml[5], gk('gspos', 7023));
ev('gfill', [@ml[3, 4]], '0', 600, $A, $B, $C);
my (%mn, %me);
for my $m ([35, $A, 1], [36, $B, 2], [37, $A, 3], [38, $C, 4]) {
    my ($i, $from, $seq) = @$m;
    $mn{$seq} = ev1('gdeliver', \@ml, 7023, $id[$i], "$from $seq g:7023 5",
                    "M$seq", 5000, $ttl, 0)->[0];
    $me{$seq} = [ $mn{$seq}, $id[$i], "$from $seq g:7023 5 M$seq" ];
}
is_deeply(ev1('gsync', \@mk, $A, 0, 0, 200, 1),
          [4, $mn{4}, [ map { @{ $me{$_} } } 2, 4 ], '0'],
          'GSYNC, senders A B A C: A gets B\'s and C\'s (a log from seq 1 '
          . 'passes the check)');
is_deeply(ev1('gsync', \@mk, $B, 0, 0, 200, 0),
          [4, $mn{4}, [ map { @{ $me{$_} } } 1, 3, 4 ], '0'],
          '... B gets A\'s and C\'s');
is_deeply(ev1('gsync', \@mk, $A, 0, 0, 1, 0), [1, $mn{1}, [], '0'],
          '... A paged by 1: its own message scanned, nothing sent, the '
          . 'position past it');

$out = evb_raw('gsync', [\@sk, $C, 'x', 0, 200, 0],
               [\@sk, $C, $n{33}, 0, 200, 0]);
my $last = $n{34};
like($out, qr/\A[^\n]*(?:ERR|rror|attempt)[^\n]*\n\n?1\n$last\n/s,
     'GSYNC batch: an item with a position that is not a number is an '
     . 'error, the next one done') or diag $out;


# --- GRECEIPT: a member's positions (ngx_chat_receipt.c) --------------------

my @gr = (gk('glogq', $S), gk('gpos', $S), gk('gread', $S), gk('gspos', $S));
cli('DEL', @gr[1 .. 3]);
my $q1 = @{ pubs($live) };
is(ev1('greceipt', \@gr, $id[39], $C, 'd', $ttl, 3), 'moved',
   'GRECEIPT of an id not in the log: moved (the delivered seq)');
is(cli('HEXISTS', $gr[1], $C), '0', '... no position');
is(cli('HGET', $gr[3], $C), '3', '... the delivered seq 3');
ok(cli('TTL', $gr[3]) > $ttl - 100, '... which expires');
is(ev1('greceipt', \@gr, $id[39], $C, 'd', $ttl, 3), 'same',
   'GRECEIPT again: same');
is(ev1('greceipt', \@gr, $id[39], $C, 'd', $ttl, 2), 'same',
   'GRECEIPT with a lower seq: same');
is(cli('HGET', $gr[3], $C), '3', '... the delivered seq stays');
is(ev1('greceipt', \@gr, $id[32], $C, 'd', $ttl, 3), 'moved',
   'GRECEIPT of an entry gone from the log but still queued: moved');
is(cli('HGET', $gr[1], $C), $n{32}, '... to its position');

is(ev1('greceipt', \@gr, $id[31], $B, 'd', $ttl, 1), 'moved',
   'GRECEIPT delivered: moved');
is(cli('HGET', $gr[1], $B), $n{31}, '... to the message\'s position');
is(cli('HGET', $gr[3], $B), '1', '... and seq');
is(cli('HEXISTS', $gr[2], $B), '0', '... not the read position');
ok(cli('TTL', $gr[1]) > $ttl - 100, 'GRECEIPT: the positions expire');
is(ev1('greceipt', \@gr, $id[31], $B, 'd', $ttl, 1), 'same',
   'GRECEIPT delivered again: same');
is(ev1('greceipt', \@gr, $id[30], $B, 'd', $ttl, 2), 'moved',
   'GRECEIPT of an older entry with a higher seq: moved (the seq)');
is_deeply([ cli('HGET', $gr[1], $B), cli('HGET', $gr[3], $B) ],
          [ $n{31}, 2 ], '... the position stays, the seq moves');
is(ev1('greceipt', \@gr, $id[31], $B, 'r', $ttl, 1), 'moved',
   'GRECEIPT read of a delivered message: moved');
is(cli('HGET', $gr[2], $B), $n{31}, '... the read position');
is(ev1('greceipt', \@gr, $id[34], $B, 'r', $ttl, 4), 'moved',
   'GRECEIPT read of a message not delivered: moved');
is_deeply([ map { cli('HGET', $_, $B) } @gr[1 .. 3] ],
          [ $n{34}, $n{34}, 4 ], '... both positions (read moves delivered '
          . 'too) and the seq');
ok(cli('TTL', $gr[2]) > $ttl - 100, 'GRECEIPT: the read positions expire');
is(ev1('greceipt', \@gr, $id[30], $B, 'd', $ttl, 2), 'same',
   'GRECEIPT delivered of an older one after all that: same');
is_deeply(evb('greceipt', [\@gr, $id[33], $A, 'd', $ttl, 5],
                          [\@gr, $id[33], $A, 'r', $ttl, 5],
                          [\@gr, $id[39], $A, 'r', $ttl, 0]),
          [ 'moved', 'moved', 'same' ],
          'GRECEIPT batch: a reply per item, in order');
is(ev1('greceipt', \@gr, $id[33], $A, 'r', $ttl, 5), 'same',
   '... read is there');
sleep 0.3;
is(scalar @{ pubs($live) }, $q1,
   'GRECEIPT without the sender\'s keys: nothing published');

# the sender's keys on this server: the frame to its channels in the run
my @rs = (@gr, "chat:routes:{$A}", "chat:rbox:{$A}");
$p1 = @{ pubs($live) };
$p2 = @{ pubs($live2) };
is_deeply(evb('greceipt', [\@rs, $id[34], $C, 'r', $ttl, 4, $A, 'RF1', 2],
                          [\@rs, $id[33], $C, 'd', $ttl, 5, $A, 'RF2', 2]),
          [ 'moved', 'moved' ], 'GRECEIPT with the sender\'s keys: moved');
is_deeply(heard($live, $p1, 1), [[ "$A 0 0 RF1", "$A 0 0 RF2" ]],
          '... one PUBLISH on the sender\'s channel for the call, '
          . '"<sender> 0 0 <frame>" per receipt (once, two connections)');
sleep 0.3;
is(scalar @{ pubs($live) }, $p1 + 1, '... and only one');
is(scalar @{ pubs($live2) }, $p2, '... nothing elsewhere');
is(cli('EXISTS', "chat:rbox:{$A}"), '0', '... and nothing kept');
is(ev1('greceipt', \@rs, $id[33], $C, 'd', $ttl, 5, $A, 'RF3', 2), 'same',
   'GRECEIPT that moves nothing: same');
is_deeply(heard($live, $p1 + 1, 1), [[ "$A 0 0 RF3" ]],
          '... the sender is told all the same');

# none of the sender's connections reached: kept in its rbox
route($D, $dead, 6);
my @rd = (@gr, "chat:routes:{$D}", "chat:rbox:{$D}");
is_deeply(evb('greceipt', map { [\@rd, $id[34], 5110 + $_, 'd', $ttl, 4, $D,
                                 "R$_", 2] } 1 .. 3),
          [ 'moved', 'moved', 'moved' ], 'GRECEIPT to a sender nobody hears');
is_deeply(r('LRANGE', "chat:rbox:{$D}", 0, -1), [ 'R2', 'R3' ],
          '... the frames in its rbox, the rbox-max (2) newest');
ok(cli('TTL', "chat:rbox:{$D}") > $ttl - 100, '... which expires');
is(cli('EXISTS', "chat:routes:{$D}"), '0', '... the dead route went');

# odd input
cli('SET', gk('gpos', 7022), 'not a hash');
$out = evb_raw('greceipt',
               [[$gr[0], gk('gpos', 7022), gk('gread', 7022),
                 gk('gspos', 7022)], $id[34], $B, 'd', $ttl, 4],
               [\@gr, $id[34], 5120, 'd', $ttl, 4]);
like($out, qr/\A.*WRONGTYPE.*\nmoved\z/s,
     'GRECEIPT batch: an item whose positions are not a hash is an error, '
     . 'the next one done') or diag $out;
$out = evb_raw('greceipt', [\@gr, $id[34], 5121, 'd', $ttl, 'x'],
               [\@gr, $id[34], 5122, 'd', $ttl, 4]);
like($out, qr/\A[^\n]*(?:ERR|rror|attempt|number)[^\n]*\n\n?moved\z/s,
     'GRECEIPT batch: an item with a seq that is not a number is an error, '
     . 'the next one done') or diag $out;
is(cli('HEXISTS', $gr[1], 5121) + cli('HEXISTS', $gr[3], 5121), 0,
   '... and the bad one moved nothing');
$out = evb_raw('greceipt', [\@gr, $id[34], 5123, 'd', 'soon', 4],
               [\@gr, $id[34], 5124, 'd', $ttl, 4]);
like($out, qr/\A[^\n]*(?:ERR|rror|attempt|number)[^\n]*\n\n?moved\z/s,
     'GRECEIPT batch: an item with a ttl that is not a number is an error, '
     . 'the next one done') or diag $out;
is(cli('HEXISTS', $gr[1], 5123), 0, '... and the bad one moved nothing');
$out = evb_raw('greceipt', [\@rd, $id[34], 5125, 'd', $ttl, 4, $D, 'R9',
                            'many'],
               [\@gr, $id[34], 5126, 'd', $ttl, 4]);
like($out, qr/\A[^\n]*(?:ERR|rror|attempt|number)[^\n]*\n\n?moved\z/s,
     'GRECEIPT batch: an item with an rbox-max that is not a number is an '
     . 'error, the next one done') or diag $out;
is_deeply(r('LRANGE', "chat:rbox:{$D}", 0, -1), [ 'R2', 'R3' ],
          '... and nothing kept for it');
ok(cli('TTL', $gr[1]) > $ttl - 100, 'GRECEIPT: the positions still expire');
is(cli('PING'), 'PONG', 'Redis is fine');

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');
ChatTest::stop_nginx();
done_testing();
