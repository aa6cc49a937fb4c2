# The Redis Lua scripts (src/store/lua/*.lua), each called against a real
# Redis the way the module calls it: its keys, its arguments, the reply and
# the keys it leaves.  The Redis is this test's own, so that the module is
# the only one to load scripts there: every call is an EVALSHA of the SHA1
# of what src/store/lua/gen.sh -s prints, which works only if the module
# loaded exactly that text (gen.sh made the module's table too).

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
use ChatLua qw(cli r ev evb ev1 now_ms subscribe pubs);

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';
plan skip_all => 'needs redis-cli --json (Redis 7)'
    unless `redis-cli --json --version 2>&1` =~ /^redis-cli 7/;

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

my $lua = "$FindBin::Bin/../src/store/lua";
ChatLua::start(port => ($ENV{TEST_NGINX_PORT} || 1984) + 190,
               dir => "/tmp/chat-redis-lua-$$", lua => $lua);

ok(ChatTest::wait_until(sub { cli('PING') eq 'PONG' }), 'a Redis of our own');

# the scripts: every NAME.lua but the shared lib.lua
opendir my $dh, $lua or die "$lua: $!";
my @names = sort grep { $_ ne 'lib' } map { /^(.+)\.lua$/ ? $1 : () }
            readdir $dh;
closedir $dh;
my %sha = ChatLua::scripts(@names);
is(scalar @names, 21, '21 scripts (t/048-group-scripts.t tests the group ones)');

ChatLua::start_nginx();

ok(ChatTest::wait_until(sub {
       my $e = r('SCRIPT', 'EXISTS', map { $sha{$_} } @names);
       ref $e eq 'ARRAY' && !grep { !$_ } @$e;
   }), 'the module loaded every script, as gen.sh -s prints it')
    or diag explain r('SCRIPT', 'EXISTS', map { $sha{$_} } @names);

# the next n lines published on a channel (a batch's PUBLISH counts each)
my %got;
sub heard {
    my ($ch, $n) = @_;
    my @m;
    $n += $got{$ch} //= 0;
    ChatTest::wait_until(sub { @m = map { @$_ } @{ pubs($ch) }; @m >= $n });
    @m = @m[$got{$ch} .. $#m];
    $got{$ch} += @m;
    return \@m;
}

my $live = 'chat:w:node1:4242.1765000000';    # a worker's channel
my $dead = 'chat:w:node1:4243.1765000000';    # nobody listens there
subscribe($live);

my $ttl = 2592000;
my ($A, $B) = (4201, 4202);
my $conv = "d:$A:$B";
sub keys_of {
    my $u = shift;
    return map { "chat:$_:{$u}" } @_;
}
sub frame {
    my ($id, $seq, $body) = @_;
    return encode_json({ type => 'message', id => $id, seq => $seq,
                         from => $A, to => $B, body => $body,
                         client_id => "c$seq", ts => 1765000000000 + $seq,
                         status => 'sent' });
}
my @id = map { sprintf '01M8HGZ2HMB05GCZR%09d', $_ } 0 .. 20;


# --- CLAIM and SEQ (ngx_chat_send.c) ---------------------------------------

my @claim = ("chat:rate:{$A}", "chat:dedup:{$A}:c1", "chat:seq:{$conv}");
is_deeply(ev1('claim', \@claim, 0, 0, 86400), ['seed'],
          'CLAIM: no counter for the conversation: seed, nothing taken');
is(cli('EXISTS', $claim[1]), '0', 'CLAIM seed: no dedup key');
cli('SET', $claim[2], 41);
is_deeply(ev1('claim', \@claim, 1000000, 1, 86400), ['new', 42],
          'CLAIM: new, with the next seq');
is(cli('GET', $claim[1]), 'pending', 'CLAIM: the dedup key is pending');
ok(cli('TTL', $claim[1]) > 86000, 'CLAIM: the dedup key expires');
ok(cli('GET', $claim[0]) > 0, 'CLAIM: the rate key holds the arrival time');
is_deeply(ev1('claim', \@claim, 0, 1, 86400), ['dup', 'pending'],
          'CLAIM: the same client_id again is a dup');
is(cli('GET', $claim[2]), '42', 'CLAIM dup: no seq taken');
cli('SET', $claim[1], '{"type":"ack"}');
is_deeply(ev1('claim', \@claim, 0, 1, 86400),
          ['dup', '{"type":"ack"}'], 'CLAIM dup: the stored ack');
is_deeply(ev1('claim', ["chat:rate:{$A}", "chat:dedup:{$A}:c2"],
             1000000, 1, 86400),
          ['new'], 'CLAIM without the counter: new (burst 1: the second '
          . 'in a row; interval 0 is not metered)');
my $rate = ev1('claim', ["chat:rate:{$A}", "chat:dedup:{$A}:c3"],
              1000000, 1, 86400);
is($rate->[0], 'rate', 'CLAIM: the third in a second is over the rate');
ok($rate->[1] > 0 && $rate->[1] <= 1000, 'CLAIM rate: retry after ms')
    or diag explain $rate;
is(cli('EXISTS', "chat:dedup:{$A}:c3"), '0', 'CLAIM rate: nothing claimed');

# a batch: the user's sends share one rate reading; seq in item order
my $E = 4205;
cli('SET', "chat:seq:{d:$E:$E}", 7);
my $cb = evb('claim',
             map { [["chat:rate:{$E}", "chat:dedup:{$E}:b$_",
                     "chat:seq:{d:$E:$E}"], 1000000, 1, 86400] } 1 .. 4);
is_deeply([@$cb[0 .. 1]], [['new', 8], ['new', 9]],
          'CLAIM batch: in burst, new with seq in item order');
is_deeply([map { $_->[0] } @$cb[2 .. 3]], ['rate', 'rate'],
          'CLAIM batch: past the burst, rate (one reading for the call)');
is(cli('GET', "chat:seq:{d:$E:$E}"), '9', 'CLAIM batch: two seqs taken');
my $tat = cli('GET', "chat:rate:{$E}");
ok($tat > now_ms() * 1000 + 1000000, 'CLAIM batch: the arrival time moved '
   . 'by two intervals') or diag $tat;

is(ev('seq', ["chat:seq:{d:1:2}"]), -1, 'SEQ: no counter: -1');
is(cli('EXISTS', 'chat:seq:{d:1:2}'), '0', 'SEQ: none made');
is(ev('seq', [$claim[2]]), 43, 'SEQ: the next seq');


# --- DELIVER, RELAY, SYNC, RECEIPT (ngx_chat_deliver.c) ---------------------

my @inbox = keys_of($B, qw(routes inbox inboxq inboxn inboxok));
cli('ZADD', "chat:routes:{$B}", now_ms() + 3600000, "$live 7");
cli('ZADD', "chat:routes:{$B}", now_ms() + 3600000, "$dead 8");
cli('ZADD', "chat:routes:{$B}", now_ms() - 1000, "$live 9");
cli('SET', "chat:inboxok:{$B}", 1);
my $us = now_ms() * 1000;
my $f1 = frame($id[1], 1, 'hi');
is(ev1('deliver', \@inbox, $B, $id[1], "$A 1 $conv", $f1, 10000, $ttl), 1,
   'DELIVER: one channel reached');
my $n1 = cli('GET', "chat:inboxn:{$B}");
ok($n1 =~ /^\d{16}$/ && $n1 >= $us, 'DELIVER: inbox positions start at '
   . "Redis's clock in microseconds") or diag $n1;
is_deeply(heard($live, 1), ["$B 0 $n1 $f1"],
          'DELIVER: published "<uid> 0 <n> <frame>" to the route\'s worker');
is(cli('HGET', "chat:inbox:{$B}", $id[1]), "u $A 1 $conv $f1",
   'DELIVER: the inbox entry, undelivered');
is(cli('ZSCORE', "chat:inboxq:{$B}", $id[1]), $n1,
   'DELIVER: queued at its position');
is_deeply(r('ZRANGE', "chat:routes:{$B}", 0, -1), ["$live 7"],
          'DELIVER: the expired route and the dead worker\'s route went');
ok(cli('TTL', $_) > $ttl - 100, "DELIVER: $_ expires")
    for @inbox[1 .. 4];
is(ev1('deliver', \@inbox, $B, $id[1], "$A 1 $conv", $f1, 10000, $ttl), -1,
   'DELIVER: the same message again: -1');
is(cli('GET', "chat:inboxn:{$B}"), $n1, 'DELIVER again: no position taken');

# with the sender's routes on the same server: its other devices too
cli('ZADD', "chat:routes:{$A}", now_ms() + 3600000, "$live 3");
cli('ZADD', "chat:routes:{$A}", now_ms() + 3600000, "$live 4");
my $f2 = frame($id[2], 2, 'two');
is(ev1('deliver', [@inbox, "chat:routes:{$A}"], $B, $id[2], "$A 2 $conv",
      $f2, 10000, $ttl, $A, $live, 3), 1,
   'DELIVER with the sender\'s routes: the recipient\'s channels reached');
my $n2 = cli('GET', "chat:inboxn:{$B}");
is($n2, $n1 + 1, 'DELIVER: the next position');
is_deeply(heard($live, 2), ["$A 3 0 $f2", "$B 0 $n2 $f2"],
          'DELIVER: once per channel to the sender (except its own '
          . 'connection 3), then to the recipient');

# an inbox over its limit is no longer complete
my $f3 = frame($id[3], 3, 'three');
is(ev1('deliver', \@inbox, $B, $id[3], "$A 3 $conv", $f3, 2, $ttl), 1,
   'DELIVER over the limit (2)');
heard($live, 1);
is_deeply(r('ZRANGE', "chat:inboxq:{$B}", 0, -1), [@id[2, 3]],
          'DELIVER over the limit: the oldest undelivered dropped');
is(cli('HEXISTS', "chat:inbox:{$B}", $id[1]), '0',
   'DELIVER over the limit: and its entry');
is(cli('EXISTS', "chat:inboxok:{$B}"), '0',
   'DELIVER over the limit: the inbox is no longer known complete');

# a batch (ngx_chat_batch.c): several items in one call, one PUBLISH per
# channel with all of their lines, in item order
my ($B2, $B3, $B4) = (4212, 4213, 4214);
cli('ZADD', "chat:routes:{$_}", now_ms() + 3600000, "$live 2$_")
    for $B2, $B3, $B4;
sub npubs {     # the PUBLISHes heard on a channel so far
    return scalar @{ pubs($_[0]) };
}
my $p0 = npubs($live);
my @fb = map { frame($id[11 + $_], 11 + $_, "batch $_") } 0 .. 2;
is_deeply(evb('deliver',
              [[keys_of($B2, qw(routes inbox inboxq inboxn inboxok))], $B2,
               $id[11], "$A 11 $conv", $fb[0], 10000, $ttl],
              [[keys_of($B3, qw(routes inbox inboxq inboxn inboxok))], $B3,
               $id[12], "$A 12 $conv", $fb[1], 10000, $ttl],
              [[keys_of($B2, qw(routes inbox inboxq inboxn inboxok))], $B2,
               $id[13], "$A 13 $conv", $fb[2], 10000, $ttl]),
          [1, 1, 1], 'DELIVER batch: a reply per item');
my $nB2 = cli('GET', "chat:inboxn:{$B2}");
is_deeply(heard($live, 3),
          ["$B2 0 " . ($nB2 - 1) . " $fb[0]",
           "$B3 0 " . cli('GET', "chat:inboxn:{$B3}") . " $fb[1]",
           "$B2 0 $nB2 $fb[2]"],
          'DELIVER batch: every frame, in item order');
is(npubs($live) - $p0, 1, 'DELIVER batch: one PUBLISH for the channel');
is_deeply(r('ZRANGE', "chat:inboxq:{$B2}", 0, -1), [@id[11, 13]],
          'DELIVER batch: the inbox in order');

# one item fails (its inbox is not a hash): the others go on
cli('SET', "chat:inbox:{$B4}", 'not a hash');
my $out = cli('EVALSHA', $sha{deliver}, 10,
              keys_of($B4, qw(routes inbox inboxq inboxn inboxok)),
              keys_of($B3, qw(routes inbox inboxq inboxn inboxok)),
              2, 5, 6, $B4, $id[14], "$A 14 $conv", 'f14', 10000, $ttl,
              5, 6, $B3, $id[15], "$A 15 $conv", 'f15', 10000, $ttl);
like($out, qr/\A.*WRONGTYPE.*\n1\z/s,
     'DELIVER batch: the failed item an error, the next one done')
    or diag $out;
is(cli('ZSCORE', "chat:inboxq:{$B3}", $id[15]) ne '', 1,
   'DELIVER batch: the item after the failed one is in its inbox');
is_deeply(heard($live, 1), ["$B3 0 " . cli('GET', "chat:inboxn:{$B3}")
                            . " f15"],
          'DELIVER batch: and published; nothing for the failed one');

# the sender's only connection is the sending one: no echo
cli('DEL', "chat:routes:{$A}");
cli('ZADD', "chat:routes:{$A}", now_ms() + 3600000, "$live 3");
$p0 = npubs($live);
is(ev1('deliver', [keys_of($B3, qw(routes inbox inboxq inboxn inboxok)),
                   "chat:routes:{$A}"], $B3, $id[16], "$A 16 $conv", 'f16',
       10000, $ttl, $A, $live, 3), 1,
   'DELIVER, the sender with no other connection');
is_deeply(heard($live, 1), ["$B3 0 " . cli('GET', "chat:inboxn:{$B3}")
                            . " f16"],
          'DELIVER: no echo to the sending connection');
is(npubs($live) - $p0, 1, 'DELIVER: one PUBLISH, the recipient\'s');
cli('ZADD', "chat:routes:{$A}", now_ms() + 3600000, "$live 4");

# RELAY: a receipt to the sender, kept when no device of it is online
my $rf = '{"type":"receipt","id":"' . $id[2] . '","by":' . $B
         . ',"status":"delivered","ts":1}';
is(ev('relay', [keys_of($A, qw(routes rbox))], $A, $rf, $live, 4, 1, 1000,
      $ttl), 1, 'RELAY: one channel reached');
is_deeply(heard($live, 1), ["$A 4 0 $rf"],
   'RELAY: "<uid> <except-conn> 0 <frame>" on the excepted channel');
is(cli('EXISTS', "chat:rbox:{$A}"), '0', 'RELAY reached: nothing kept');
cli('DEL', "chat:routes:{$A}");
is(ev('relay', [keys_of($A, qw(routes rbox))], $A, "$rf-1", '-', 0, 1, 2,
      $ttl), 0, 'RELAY: no route: 0');
ev('relay', [keys_of($A, qw(routes rbox))], $A, "$rf-$_", '-', 0, 1, 2, $ttl)
    for 2, 3;
is_deeply(r('LRANGE', "chat:rbox:{$A}", 0, -1), ["$rf-2", "$rf-3"],
          'RELAY with store: kept in rbox, the newest 2');
ok(cli('TTL', "chat:rbox:{$A}") > $ttl - 100, 'RELAY: rbox expires');
is(ev('relay', [keys_of($A, qw(routes rbox))], $A, "$rf-4", '-', 0, 0, 2,
      $ttl), 0, 'RELAY without store: 0');
is(cli('LLEN', "chat:rbox:{$A}"), '2', 'RELAY without store: not kept');

# SYNC
my @sync = (keys_of($B, qw(routes inbox inboxq rbox inboxok)),
            "chat:revoked:{$B}:jt1");
cli('RPUSH', "chat:rbox:{$B}", 'r1', 'r2');
is_deeply(ev1('sync', \@sync, "$live 11", 3600000, 0, 200, 1, 1),
          [-1, '0', [], []], 'SYNC with check, inbox not known complete: -1');
is(cli('ZSCORE', "chat:routes:{$B}", "$live 11"), '',
   'SYNC -1: no route registered');
cli('SET', "chat:inboxok:{$B}", 1);
cli('SET', "chat:revoked:{$B}:jt1", 1);
is_deeply(ev1('sync', \@sync, "$live 11", 3600000, 0, 200, 1, 0),
          [-2, '0', [], []],
          'SYNC registering a connection whose token was logged out: -2');
is(cli('ZSCORE', "chat:routes:{$B}", "$live 11"), '',
   'SYNC -2: no route registered');
is(cli('LLEN', "chat:rbox:{$B}"), '2', 'SYNC -2: nothing drained');
cli('DEL', "chat:revoked:{$B}:jt1");
my $t0 = now_ms();
is_deeply(ev1('sync', \@sync, "$live 11", 3600000, 0, 200, 1, 1),
          [2, $n2 + 1, [$n2, "u $A 2 $conv $f2", $n2 + 1, "u $A 3 $conv $f3"],
           ['r1', 'r2']],
          'SYNC: the undelivered in order, with the receipts waiting');
my $exp = cli('ZSCORE', "chat:routes:{$B}", "$live 11");
ok($exp >= $t0 + 3600000 && $exp < $t0 + 3700000,
   'SYNC: the route registered until now + ttl') or diag $exp;
ok(cli('PTTL', "chat:routes:{$B}") > 3500000, 'SYNC: the routes expire');
is(cli('EXISTS', "chat:rbox:{$B}"), '0', 'SYNC: the receipts drained');
is_deeply(ev1('sync', \@sync, '', 3600000, $n2, 1, 0, 0),
          [1, $n2 + 1, [$n2 + 1, "u $A 3 $conv $f3"], []],
          'SYNC: after a position, limited');
is_deeply(ev1('sync', \@sync, '', 3600000, $n2 + 1, 200, 0, 0),
          [0, $n2 + 1, [], []], 'SYNC: nothing after the last');
is_deeply(evb('sync', [\@sync, '', 3600000, $n2, 1, 0, 0],
              [[keys_of(4303, qw(routes inbox inboxq rbox inboxok)),
                "chat:revoked:{4303}:jt2"],
               "$live 12", 3600000, 0, 200, 1, 1]),
          [[1, $n2 + 1, [$n2 + 1, "u $A 3 $conv $f3"], []],
           [-1, '0', [], []]],
          'SYNC batch: two connections in one call, each its own answer');

# RECEIPT
my @rcpt = keys_of($B, qw(inbox inboxq inboxd));
is(ev1('receipt', \@rcpt, $id[2], 'd', 5000, $ttl), 1,
   'RECEIPT delivered: moved forward');
is(cli('HGET', "chat:inbox:{$B}", $id[2]), "d $A 2 $conv",
   'RECEIPT: the entry is delivered, without its frame');
is(cli('ZSCORE', "chat:inboxq:{$B}", $id[2]), '',
   'RECEIPT: out of the undelivered');
is(cli('ZSCORE', "chat:inboxd:{$B}", $id[2]), $n2,
   'RECEIPT: in the delivered, at its position');
ok(cli('TTL', "chat:inboxd:{$B}") > $ttl - 100, 'RECEIPT: inboxd expires');
is(ev1('receipt', \@rcpt, $id[2], 'd', 5000, $ttl), 0,
   'RECEIPT delivered again: 0');
is(ev1('receipt', \@rcpt, $id[9], 'd', 5000, $ttl), 0,
   'RECEIPT of a message not in the inbox: 0');
is(ev1('receipt', [@rcpt, keys_of($A, qw(routes rbox))], $id[2], 'r', 5000,
      $ttl, $A, "$rf-r", 1000), 2,
   'RECEIPT read with the sender\'s keys: 2');
is(cli('HGET', "chat:inbox:{$B}", $id[2]), "r $A 2 $conv",
   'RECEIPT: the entry is read');
is(cli('ZSCORE', "chat:inboxd:{$B}", $id[2]), $n2,
   'RECEIPT read: still at its position');
is_deeply(r('LRANGE', "chat:rbox:{$A}", -1, -1), ["$rf-r"],
          'RECEIPT: the sender has no route: the frame kept in its rbox');
is(ev1('receipt', \@rcpt, $id[2], 'd', 5000, $ttl), 0,
   'RECEIPT delivered after read: 0');
cli('ZADD', "chat:routes:{$A}", now_ms() + 3600000, "$live 5");
is(ev1('receipt', [@rcpt, keys_of($A, qw(routes rbox))], $id[3], 'r', 5000,
      $ttl, $A, "$rf-3r", 1000), 2, 'RECEIPT read, unread before: 2');
is_deeply(heard($live, 1), ["$A 0 0 $rf-3r"],
   'RECEIPT: the frame published to the sender');
is(cli('ZSCORE', "chat:inboxd:{$B}", $id[3]), $n2 + 1,
   'RECEIPT read straight from undelivered: at its position');

# a batch of receipts: the sender's frames in one PUBLISH per channel
ev1('deliver', \@inbox, $B, $id[$_], "$A $_ $conv", "f$_", 10000, $ttl)
    for 17, 18;
heard($live, 2);
my $pr = npubs($live);
is_deeply(evb('receipt',
              map { [[@rcpt, keys_of($A, qw(routes rbox))], $id[$_], 'r',
                     5000, $ttl, $A, "rframe-$_", 4] } 17, 18),
          [2, 2], 'RECEIPT batch: a reply per item');
is_deeply(heard($live, 2), ["$A 0 0 rframe-17", "$A 0 0 rframe-18"],
          'RECEIPT batch: both frames to the sender, in order');
is(npubs($live) - $pr, 1, 'RECEIPT batch: one PUBLISH');


# --- REFRESH (routes) -----------------------------------------------------

cli('ZADD', "chat:routes:{$A}", 1, "$live 6");
$t0 = now_ms();
is(ev('refresh', ["chat:routes:{$A}", "chat:routes:{$B}"], 3600000,
      "$live 6", "$live 12"), 2, 'REFRESH: two connections in one call');
for (["chat:routes:{$A}", "$live 6"], ["chat:routes:{$B}", "$live 12"]) {
    my $s = cli('ZSCORE', @$_);
    ok($s >= $t0 + 3600000 && $s < $t0 + 3700000,
       "REFRESH: $_->[1] in $_->[0] until now + ttl") or diag $s;
    ok(cli('PTTL', $_->[0]) > 3500000, "REFRESH: $_->[0] expires");
}


# --- REFILL (ngx_chat_refill.c) -------------------------------------------

my $C = 4203;
my @refill = (keys_of($C, qw(inbox inboxq inboxn inboxok)), 'chat:epoch');
my $fC = frame($id[10], 10, 'ten');
ev1('deliver', [keys_of($C, qw(routes inbox inboxq inboxn inboxok))], $C,
   $id[10], "$A 10 $conv", $fC, 10000, $ttl);
my $nC = cli('GET', "chat:inboxn:{$C}");
is(ev('refill', \@refill, $ttl, 1000000000, 1,
      $id[8], "$A 8 $conv", 'f8', $id[9], "$A 9 $conv", 'f9',
      $id[10], "$A 10 $conv", 'f10'), 2,
   'REFILL: the two the inbox lacks added');
is_deeply([map { ($_, cli('ZSCORE', "chat:inboxq:{$C}", $_)) }
           split /\n/, cli('ZRANGE', "chat:inboxq:{$C}", 0, -1)],
          [$id[8], $nC - 2, $id[9], $nC - 1, $id[10], $nC],
          'REFILL: below what the inbox has, oldest first');
is(cli('HGET', "chat:inbox:{$C}", $id[8]), "u $A 8 $conv f8",
   'REFILL: the entry, undelivered');
is(cli('HGET', "chat:inbox:{$C}", $id[10]), "u $A 10 $conv $fC",
   'REFILL: what the inbox had is kept');
ok(cli('TTL', "chat:inbox:{$C}") > $ttl - 100, 'REFILL: the inbox expires');
ok(cli('GET', 'chat:epoch') > 0, 'REFILL complete: the epoch is set');
is(cli('EXISTS', "chat:inboxok:{$C}"), '0',
   'REFILL complete within the grace: not yet known complete');
is(ev('refill', \@refill, $ttl, 0, 1, $id[8], "$A 8 $conv", 'f8'), 0,
   'REFILL again: nothing added');
is(cli('GET', "chat:inboxok:{$C}"), '1',
   'REFILL complete after the grace: known complete');
ok(cli('TTL', "chat:inboxok:{$C}") > $ttl - 100, 'REFILL: inboxok expires');
my $D = 4204;
is(ev('refill', [keys_of($D, qw(inbox inboxq inboxn inboxok)), 'chat:epoch'],
      $ttl, 0, 0, $id[11], "$A 11 d:$A:$D", 'f11'), 1,
   'REFILL of an empty inbox, incomplete');
my $nD = cli('GET', "chat:inboxn:{$D}");
ok($nD =~ /^\d{16}$/, 'REFILL: the position counter is started') or diag $nD;
is(cli('ZSCORE', "chat:inboxq:{$D}", $id[11]), $nD,
   'REFILL: at the counter, below the next DELIVER');
is(cli('EXISTS', "chat:inboxok:{$D}"), '0',
   'REFILL incomplete: not known complete');


# --- an inbox's TTLs (DELIVER, RECEIPT, REFILL) ----------------------------
# Refreshed together at every 16th position and when the counter is made;
# a key made again (inboxq that receipts emptied, inboxd) at once.  The
# marker inboxok must never outlive the entries it vouches for.

my $T = 4290;
my @tk = keys_of($T, qw(routes inbox inboxq inboxn inboxok));
my @tr = keys_of($T, qw(inbox inboxq inboxd));
my @tall = keys_of($T, qw(inbox inboxq inboxn inboxok inboxd));
my $tn = 0;
my (%tstate, @tids);
my $tdeliver = sub {
    my $id = 'ttl' . ++$tn;
    my $r = ev1('deliver', \@tk, $T, $id, "$A $tn d:$A:$T", "f$id", 10000,
                $ttl);
    push @tids, $id;
    $tstate{$id} = 'u';
    return $r;
};
my $treceipt = sub {
    my ($id, $st) = @_;
    $tstate{$id} = $st if $tstate{$id} ne 'r';
    return ev1('receipt', \@tr, $id, $st, 5000, $ttl);
};
# every key's PTTL (or with PEXPIRETIME its expiry, Redis's absolute time)
# in one script run: name -> ms (-1: no expiry, -2: no key)
my $ttls_by = sub {
    my $cmd = shift // 'PTTL';
    my $p = r('EVAL', "local r = {} for i, k in ipairs(KEYS) do "
              . "r[i] = redis.call(ARGV[1], k) end return r",
              scalar @tall, @tall, $cmd);
    my %t;
    @t{qw(inbox inboxq inboxn inboxok inboxd)} = @$p;
    return \%t;
};
my $pttls = sub { $ttls_by->('PTTL') };
my $expat = sub { $ttls_by->('PEXPIRETIME') };
# time passing: every key's expiry sooner by the same ms, to the ms
my $tage = sub {
    my $ms = shift;
    r('EVAL', "for _, k in ipairs(KEYS) do "
      . "local at = redis.call('PEXPIRETIME', k) "
      . "if at > 0 then redis.call('PEXPIREAT', k, at - ARGV[1]) end end "
      . "return 0", scalar @tall, @tall, $ms);
};
# the next DELIVER's position: just past (or at) a multiple of 16
my $tposition = sub {
    my $at = shift;
    my $n = cli('GET', $tk[3]);
    cli('SET', $tk[3], $n - $n % 16 + 16 + $at - 1, 'KEEPTTL');
};
my $day = 86400000;

is($tdeliver->(), 0, 'TTL: DELIVER to a new inbox');
cli('SET', $tk[4], 1, 'EX', $ttl);
my $t = $pttls->();
ok(!grep({ $t->{$_} < ($ttl - 100) * 1000 } qw(inbox inboxq inboxn)),
   'TTL: the counter made: inbox, inboxq and inboxn get theirs')
    or diag explain $t;

$tage->($day);
$tposition->(3);
$tdeliver->();
$t = $pttls->();
ok($t->{inboxok} < ($ttl - 86000) * 1000
   && $t->{inbox} < ($ttl - 86000) * 1000
   && $t->{inboxn} < ($ttl - 86000) * 1000,
   'TTL: a DELIVER at an ordinary position refreshes none')
    or diag explain $t;

$tposition->(16);
$tdeliver->();
$t = $pttls->();
ok(!grep({ $t->{$_} < ($ttl - 100) * 1000 } qw(inbox inboxq inboxn inboxok)),
   'TTL: a DELIVER at a 16th position refreshes all four together')
    or diag explain $t;

$treceipt->($_, 'd') for grep { $tstate{$_} eq 'u' } @tids;
is(cli('EXISTS', $tr[1]), '0', 'TTL: the receipts emptied inboxq');
$t = $pttls->();
ok($t->{inboxd} > ($ttl - 100) * 1000, 'TTL: inboxd made: it gets its TTL')
    or diag explain $t;
$tage->($day);
$tposition->(5);
$tdeliver->();
$t = $pttls->();
ok($t->{inboxq} > ($ttl - 100) * 1000 && $t->{inbox} > ($ttl - 100) * 1000,
   'TTL: inboxq made again: it and the hash get theirs at once')
    or diag explain $t;
ok($t->{inboxok} < ($ttl - 86000) * 1000 && $t->{inboxn} < $t->{inboxq},
   'TTL: ... and inboxok does not') or diag explain $t;

$tage->($day);
$tposition->(16);
$tdeliver->();
my $t16 = $tids[-1];
$tage->($day);
$treceipt->($t16, 'd');
$t = $pttls->();
ok($t->{inbox} > ($ttl - 100) * 1000 && $t->{inboxd} > ($ttl - 100) * 1000
   && $t->{inboxok} < ($ttl - 86000) * 1000,
   'TTL: a RECEIPT at a 16th position refreshes the hash and inboxd, '
   . 'never inboxok') or diag explain $t;

# a random walk: deliveries, receipts, time passing (now and then long
# enough for the keys to expire), refills; after every step no inbox key
# lives without a TTL and inboxok outlives none of the entries' keys
srand(42);
my ($steps, $bad) = (0, undef);
for my $i (1 .. 200) {
    my $op = rand;
    if ($op < 0.4) {
        $tdeliver->();
    } elsif ($op < 0.75) {
        my @open = grep { $tstate{$_} ne 'r' } @tids;
        $treceipt->($open[rand @open], rand() < 0.5 ? 'd' : 'r') if @open;
    } elsif ($op < 0.93) {
        $tage->(int(rand(3 * $day)));
    } elsif ($op < 0.97) {
        $tage->(40 * $day);
        %tstate = ();
        @tids = ();
    } else {
        ev('refill', [@tk[1 .. 4], 'chat:epoch'], $ttl, 0, 1);
    }
    $steps++;
    $t = $expat->();
    my @none = grep { $t->{$_} == -1 } keys %$t;
    my @short = grep { $t->{inboxok} > 0 && $t->{$_} > 0
                       && $t->{$_} < $t->{inboxok} }
                qw(inbox inboxq inboxn);
    if (@none || @short) {
        $bad = { step => $i, op => $op, none => \@none, short => \@short,
                 expires_at => $t };
        last;
    }
}
ok(!$bad && $steps == 200,
   'TTL: 200 random steps: every key has a TTL, inboxok outlives none')
    or diag explain $bad;
ok($tn > 60, "TTL: the walk delivered $tn messages");


# --- ONLINE, OFFLINE, BEAT, STATE, SWEEP (ngx_chat_presence.c) --------------

my $pl = 'chat:presence:live';
my ($P, $Q, $R, $S) = (4301, 4302, 4303, 4304);
$t0 = now_ms();
is(ev1('online', [$pl], $P), 1, 'ONLINE: a user new online: 1');
ok(cli('ZSCORE', $pl, $P) >= $t0, 'ONLINE: the heartbeat is now');
is(ev1('online', [$pl], $P), 0, 'ONLINE again: 0');
is_deeply(evb('online', [[$pl], 4311], [[$pl], $P], [[$pl], 4311]),
          [1, 0, 0], 'ONLINE batch: a reply per connection, in order');
cli('ZREM', $pl, 4311);

is_deeply(ev('beat', [$pl], $P, $Q, $R), [$Q, $R],
          'BEAT: the users new online');
ok(cli('ZSCORE', $pl, $_) >= $t0, "BEAT: $_ has a heartbeat") for $P, $Q, $R;
is_deeply(ev('beat', [$pl], $P, $Q), [], 'BEAT again: none new');

my @off = ("chat:routes:{$P}", $pl, "chat:seen:{$P}");
cli('ZADD', $off[0], now_ms() + 3600000, "$live 1");
cli('ZADD', $off[0], now_ms() + 3600000, "$live 2");
cli('ZADD', $off[0], now_ms() + 3600000, "$dead 3");
is(ev('offline', \@off, "$live 1", $P, 2592000), 0,
   'OFFLINE with another live route: 0');
is_deeply(r('ZRANGE', $off[0], 0, -1), ["$live 2"],
          'OFFLINE: the route and the dead worker\'s went');
ok(cli('ZSCORE', $pl, $P) ne '', 'OFFLINE: still online');
$t0 = now_ms();
my $seen = ev('offline', \@off, "$live 2", $P, 2592000);
ok($seen >= $t0 && $seen < $t0 + 5000,
   'OFFLINE of the last route: last_seen') or diag $seen;
is(cli('ZSCORE', $pl, $P), '', 'OFFLINE: no longer online');
is(cli('GET', "chat:seen:{$P}"), $seen, 'OFFLINE: last_seen kept');
ok(cli('TTL', "chat:seen:{$P}") > 2592000 - 100, 'OFFLINE: and expires');
is(ev('offline', \@off, "$live 2", $P, 2592000), 0,
   'OFFLINE of a user not online: 0');

my $hbQ = cli('ZSCORE', $pl, $Q);
is_deeply(ev('state', [$pl], $Q, $P, $S),
          [$hbQ, '', '', $seen, '', ''],
          'STATE: heartbeat, last_seen, or neither');

cli('ZADD', $pl, 1000, $S);
is_deeply(ev('sweep', [$pl], 60000, 256, 2592000), [$S, '1000'],
          'SWEEP: who has had no heartbeat for the ttl, with it');
is(cli('ZSCORE', $pl, $S), '', 'SWEEP: taken out');
is(cli('GET', "chat:seen:{$S}"), '1000', 'SWEEP: its last_seen kept');
ok(cli('TTL', "chat:seen:{$S}") > 2592000 - 100, 'SWEEP: and expires');
ok(cli('ZSCORE', $pl, $Q) ne '', 'SWEEP: the others stay');
cli('ZADD', $pl, 1000, 4401, 1001, 4402, 1002, 4403);
is(scalar @{ev('sweep', [$pl], 60000, 2, 2592000)}, 4,
   'SWEEP: at most limit users a call');
is(cli('ZCARD', $pl), 3, 'SWEEP limited: the rest stay for the next');

ChatTest::stop_nginx();
done_testing();
