# Group chat with two Redis servers (issue #14): the group's keys (seq,
# member list, log) live on one server, its members' routes on both, so a
# message is logged once where the group is (GDELIVER answers with the
# members) and published on each server to the members whose routes are
# there (GPUB, ngx_chat_group_publish).  The second Redis is started by
# this test (the test stack has one), as in t/025-redis-shards.t.
#
#   - a group of six, three members' routes on each server; five online
#     on the two workers send 20 messages each at once: every member gets
#     every message once, with the seq its sender was acked with, each
#     sender's in the order sent;
#   - typing reaches the other members on both servers;
#   - the sixth, offline, gets all of them on connect, in seq order;
#   - receipts reach a sender whose routes are on the other server;
#   - a membership change holds from the next message, on both servers.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use ChatTest;
use ChatJWT;
use ChatWS;
use ChatClient qw(register_users ws_connect frame frames quiet collect
                  api_as);

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

my ($rhost, $rport) = split /:/, $ENV{TEST_NGINX_REDIS};
my $port2 = ($ENV{TEST_NGINX_PORT} || 1984) + 152;
my $dir = "/tmp/chat-redis2-g-$$";
mkdir $dir;
ChatTest::wait_until(sub { !IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                                  PeerPort => $port2) });
system('redis-server', ChatTest::redis_auth_conf($dir), '--port', $port2,
       '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
       '--daemonize', 'yes', '--pidfile', "$dir/redis.pid", '--dir', $dir,
       '--logfile', "$dir/redis.log") == 0
    or BAIL_OUT('cannot start a second redis-server');
END {
    if (open my $fh, '<', "$dir/redis.pid") {
        my $pid = <$fh>;
        kill 'TERM', $pid if $pid && $pid =~ /^\d+$/;
    }
    system('rm', '-rf', $dir);
}
ok(ChatTest::wait_until(sub {
       `redis-cli -p $port2 PING 2>&1` =~ /PONG/ }), 'a second Redis');

sub r1 { my $o = `redis-cli -h $rhost -p $rport @_ 2>&1`; chomp $o; $o }
sub r2 { my $o = `redis-cli -h 127.0.0.1 -p $port2 @_ 2>&1`; chomp $o; $o }

ChatTest::start_nginx(
    workers     => 2,
    listen      => 'reuseport',
    http_config => <<"CONF",
    chat_redis $ENV{TEST_NGINX_REDIS} 127.0.0.1:$port2;
    chat_redis_password_file \$TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "\$TEST_NGINX_PG_DSN";
    chat_kafka_brokers \$TEST_NGINX_KAFKA_BROKERS;
    chat_jwt_secret_file \$TEST_NGINX_JWT_SECRET_FILE;
CONF
    config      => <<'CONF',
    location /v1/ {
        chat_api;
    }
    location = /v1/ws {
        chat_send_rate off;
        chat_websocket;
    }
CONF
);
my $port = ChatTest::port();
my $run = sprintf '%x%x', $$, time;

# which server a user's routes are on: 1 or 2 (0: none yet)
sub server_of {
    my $uid = shift;
    return r1("EXISTS chat:routes:{$uid}") ? 1
         : r2("EXISTS chat:routes:{$uid}") ? 2 : 0;
}

# users until three have their routes on each server, and two more
my (%uid, %srv, %ws, @on);
my $k = 0;
while ((@{ $on[1] // [] } < 3 || @{ $on[2] // [] } < 3) && $k < 40) {
    my $name = 'u' . $k++;
    my %u = register_users('gs', $name);
    my $ws = ws_connect($port, $u{$name});
    my $s = 0;
    ChatTest::wait_until(sub { $s = server_of($u{$name}) }, timeout => 5);
    $ws->close;
    next unless $s && @{ $on[$s] // [] } < 3;
    push @{ $on[$s] }, $name;
    $uid{$name} = $u{$name};
    $srv{$name} = $s;
}
is(scalar(@{ $on[1] // [] }) . ' ' . scalar(@{ $on[2] // [] }), '3 3',
   'six users, three with their routes on each server')
    or BAIL_OUT('no three users per server');
# a b c d e f: a, c, e on server 1 and b, d, f on server 2 (or so)
my %name;
@name{qw(a c e)} = @{ $on[1] };
@name{qw(b d f)} = @{ $on[2] };
$uid{$_} = $uid{ $name{$_} }, $srv{$_} = $srv{ $name{$_} } for keys %name;
my %more = register_users('gs', qw(x y));
@uid{qw(x y)} = @more{qw(x y)};

sub api { api_as($uid{ $_[0] }, @_[1 .. $#_]) }

sub send_msg { $_[0]->send_text(encode_json({ type => 'send', @_[1 .. $#_] })) }

my ($st, $g) = api('a', POST => '/v1/groups',
                   { name => "gs-$run", members => [ @uid{qw(b c d e f)} ] });
is($st, 201, 'a makes a group of six') or diag explain $g;
my $gid = $g->{group_id};

# --- five online, on both servers and both workers ---------------------------

my @online = qw(a b c d e);
$ws{$_} = ws_connect($port, $uid{$_}) for @online;
ok(ChatTest::wait_until(sub { !grep { server_of($uid{$_}) != $srv{$_} }
                                    @online }),
   'five members online, their routes on their servers');
sub worker_of {
    my $who = shift;
    my @p = ChatTest::error_log()
        =~ /\[info\] (\d+)#\d+: \*\d+ chat: ws: user $uid{$who} connected/g;
    return $p[-1] // 0;
}
# senders on both workers: their GPUBs race each other to a server
for my $who (qw(b c d e)) {
    last if grep { worker_of($_) != worker_of('a') } @online;
    for (1 .. 20) {
        $ws{$who}->close;
        $ws{$who} = ws_connect($port, $uid{$who});
        sleep 0.1;
        last if worker_of($who) != worker_of('a');
    }
}
ok(scalar(grep { worker_of($_) != worker_of('a') } @online),
   '... on both workers');
ok(ChatTest::wait_until(sub { !grep { r1("ZCARD chat:routes:{$uid{$_}}")
                                      + r2("ZCARD chat:routes:{$uid{$_}}")
                                      != 1 } @online }),
   '... one route each');

my $N = 20;
for my $i (1 .. $N) {
    for my $who (@online) {
        send_msg($ws{$who}, group => $gid, client_id => "$who$i-$run",
                 body => "$who says $i");
    }
}

my (%seq_of, %in);
for my $who (@online) {
    $in{$who} = collect($ws{$who}, { ack => $N, message => 4 * $N }, 60);
    my @acks = @{ $in{$who}{ack} };
    is(scalar @acks, $N, "$who (server $srv{$who}): $N acks");
    $seq_of{ $_->{id} } = $_->{seq} for @acks;
}
is(scalar(keys %seq_of), 5 * $N, '100 messages');
my %one;
$one{$_}++ for values %seq_of;
is(scalar(keys %one), 5 * $N, '... 100 different seqs');

my $glog = "chat:glog:{g:$gid}";
is(r1("EXISTS $glog") + r2("EXISTS $glog"), 1,
   'the group\'s log is on one server');
my $gs = r1("EXISTS $glog") ? 1 : 2;
is((split /\n/, $gs == 1 ? r1("HLEN $glog") : r2("HLEN $glog"))[0], 5 * $N,
   '... with the 100 messages, once each');

for my $who (@online) {
    my @m = @{ $in{$who}{message} };
    is(scalar @m, 4 * $N, "$who (server $srv{$who}) gets the others' "
       . 4 * $N) or diag scalar(@m) . ' messages';
    my %ids;
    $ids{ $_->{id} }++ for @m;
    is(scalar(grep { $ids{$_} != 1 } keys %ids), 0, '... each once');
    is(scalar(grep { !defined $seq_of{ $_->{id} }
                     || $seq_of{ $_->{id} } != $_->{seq} } @m), 0,
       '... each with the seq its sender was acked with');
    for my $from (grep { $_ ne $who } @online) {
        my @b = map { $_->{body} } grep { $_->{from} == $uid{$from} } @m;
        is_deeply(\@b, [ map { "$from says $_" } 1 .. $N ],
                  "... $from\'s (server $srv{$from}) in the order sent")
            or last;
    }
    ok(quiet($ws{$who}, 'message', 0.3), '... and nothing more');
}

# --- typing ------------------------------------------------------------------

$ws{b}->send_text(encode_json({ type => 'typing', group => $gid }));
for my $who (qw(a c d e)) {
    my ($t) = frames($ws{$who}, 'typing', 1, 10);
    is($t && "$t->{from} $t->{group}", "$uid{b} $gid",
       "$who (server $srv{$who}) sees b typing");
}
ok(quiet($ws{b}, 'typing', 0.5), '... b does not');

# --- the offline member ------------------------------------------------------

my $f = ws_connect($port, $uid{f});
my @fm = frames($f, 'message', 5 * $N, 30);
is(scalar @fm, 5 * $N, "f (server $srv{f}), offline meanwhile, gets all 100 "
   . 'on connect');
is_deeply([ map { $_->{seq} } @fm ], [ sort { $a <=> $b } values %seq_of ],
          '... in seq order');
ok(quiet($f, 'message', 0.5), '... once');

# --- receipts across servers -------------------------------------------------

# a's last message, read by everyone: a on server 1, half of them on 2
my ($last) = grep { $_->{body} eq "a says $N" } @{ $in{b}{message} };
for my $who (qw(b c d e)) {
    $ws{$who}->send_text(encode_json({ type => 'receipt', id => $last->{id},
                                       status => 'read' }));
}
$f->send_text(encode_json({ type => 'receipt', id => $last->{id},
                            status => 'read' }));
my @rr = frames($ws{a}, 'receipt', 5, 20);
is_deeply([ sort { $a <=> $b } map { $_->{by} } @rr ],
          [ sort { $a <=> $b } @uid{qw(b c d e f)} ],
          'a gets the read receipts of the five others, from both servers');

# --- membership changes ------------------------------------------------------

my $x = ws_connect($port, $uid{x});
my $y = ws_connect($port, $uid{y});
send_msg($y, group => $gid, client_id => "y-$run", body => 'me too');
my ($ye) = frames($y, 'error', 1, 10);
is($ye && $ye->{code}, 'forbidden', 'a non-member sends: forbidden');

# d (server 2) goes, x comes
($st) = api('a', DELETE => "/v1/groups/$gid/members/$uid{d}");
is($st, 204, 'a removes d');
($st) = api('a', PUT => "/v1/groups/$gid/members/$uid{x}");
is($st, 200, 'a adds x');
send_msg($ws{c}, group => $gid, client_id => "after-$run",
         body => 'after the change');
ok(scalar frames($ws{c}, 'ack', 1, 10), 'c sends right after the change');
for my $who (qw(a b e)) {
    my ($m) = frames($ws{$who}, 'message', 1, 10);
    is($m && $m->{body}, 'after the change', "$who (server $srv{$who}) gets "
       . 'it');
}
my ($fm2) = frames($f, 'message', 1, 10);
is($fm2 && $fm2->{body}, 'after the change', "f (server $srv{f}) too");
my ($xm) = frames($x, 'message', 1, 10);
is($xm && $xm->{body}, 'after the change', 'x, just added, gets it');
ok(quiet($x, 'message', 0.5), '... and none of the earlier history');
ok(quiet($ws{d}, 'message', 1), 'd, just removed, gets nothing');

# --- a large group: one line to every worker, from the group's server ---------

# with at least twice as many members as worker channels on the group's
# server, GDELIVER publishes there to every channel (lib.lua's gbroadcast):
# every worker subscribes on both servers, so no GPUB goes to the other
# (t/048 checks that GDELIVER then answers {n} alone, the reply on which
# ngx_chat_gdeliver.c publishes nothing more; the other server's PUBLISH
# count cannot show it here: the workers' subscription pings go there too)
my $rg = $gs == 1 ? \&r1 : \&r2;
my @chs = grep { /^chat:w:/ } split /\n/, $rg->("PUBSUB CHANNELS 'chat:w:*'");
my $need = 2 * @chs - 6;                  # a b c e f x are members
my %crowd = register_users('gs', map { "m$_" } 1 .. $need);
for my $m (sort keys %crowd) {
    ($st) = api('a', PUT => "/v1/groups/$gid/members/$crowd{$m}");
    $st == 200 or last;
}
is($st, 200, "the group grows to 2 x $#chs + 2 members, offline ones added");
send_msg($ws{e}, group => $gid, client_id => "big-$run", body => 'to all');
ok(scalar frames($ws{e}, 'ack', 1, 10), 'e sends to the large group');
for my $who (qw(a b c)) {
    my ($m) = frames($ws{$who}, 'message', 1, 10);
    is($m && $m->{body}, 'to all', "$who (server $srv{$who}) gets it");
}
my ($fb) = frames($f, 'message', 1, 10);
is($fb && $fb->{body}, 'to all', "f (server $srv{f}) too");
($xm) = frames($x, 'message', 1, 10);
is($xm && $xm->{body}, 'to all', 'x too');
ok(quiet($_, 'message', 0.3), '... once') for $ws{a}, $f, $x;
ok(quiet($ws{e}, 'message', 0.3), '... not to the sending connection');
$ws{c}->send_text(encode_json({ type => 'typing', group => $gid }));
for my $who (qw(a b e)) {
    my ($t) = frames($ws{$who}, 'typing', 1, 10);
    is($t && "$t->{from} $t->{group}", "$uid{c} $gid",
       "$who (server $srv{$who}) sees c typing in the large group");
}
ok(quiet($ws{c}, 'typing', 0.5), '... c does not');

$_->close for values %ws;
$_->close for $f, $x, $y;

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');
ChatTest::stop_nginx();
done_testing();
