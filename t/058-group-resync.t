# A group message published while a worker's subscription is down reaches
# that worker's members once the subscription is back (issue #18, the
# fault matrix's "Redis restart", docs/RELIABILITY.md finding 2).
#
# Node a (one worker) reaches Redis through a proxy of this test that can
# hold what a's subscriber connection sends (so its SUBSCRIBE stays
# unanswered: the subscription is down for as long as the test wants) and
# what a's other connections send (so the inbox sync that a resubscription
# starts, and the group sync after it, wait).  Node b talks to Redis
# directly.  r (a member) is on a, s (the sender) on b:
#
#   - a's subscriber is cut and held: s sends m1..m3, acked, in the log;
#     they reach no one on a.
#   - the SUBSCRIBE goes through, a's commands are held: a resyncs.  s
#     sends m4: a hears it live before its resync has read the group's
#     log.  Before the fix m4 went out at once (r acknowledged it, which
#     moved r's position past m1..m3), and the group read after the
#     resync started from m4: m1..m3 never came, also not after a sync.
#   - a's commands go through: r gets m1..m4, each once, in seq order.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use IO::Select;
use POSIX ();
use ChatTest;
use ChatJWT;
use ChatClient qw(register_users ws_connect frame frames);

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

my ($rhost, $rport) = split /:/, $ENV{TEST_NGINX_REDIS};
my $ctl = "/tmp/chat-058-proxy-$$";

sub redis {
    my $out = `redis-cli -h $rhost -p $rport @_ 2>&1`;
    chomp $out;
    return $out;
}

sub mode {
    open my $fh, '>', "$ctl.new" or die "058: $ctl: $!\n";
    print $fh "$_[0]\n";
    close $fh;
    rename "$ctl.new", $ctl or die "058: $ctl: $!\n";
    sleep 0.1;      # the proxy looks every 20 ms
}

# --- the proxy: modes "pass", "nosub" (a subscriber connection is cut
# once, and what one sends is held: its SUBSCRIBE waits), "cmdhold" (what
# Redis answers on the other connections is held: their commands run, the
# node hears nothing of it); held bytes go on, in order, once the mode
# lets them ----------------------------------------------------------------

sub proxy {
    my ($listen) = @_;
    my (%pair, $mode, $cut);
    my $parent = getppid();
    my $sel = IO::Select->new($listen);
    $mode = 'pass';

    my $drop = sub {
        my $p = shift;
        for my $s ($p->{c}, $p->{s}) {
            $sel->remove($s);
            delete $pair{ fileno($s) // -1 };
            close $s;
        }
    };
    # the direction to (from $p->{c} to $p->{s}) or from Redis is held
    my $holds = sub {
        my ($p, $up) = @_;
        return $up ? $p->{sub} && $mode eq 'nosub'
                   : !$p->{sub} && $mode eq 'cmdhold';
    };
    my $pass = sub {
        my ($p, $up, $buf) = @_;
        my $k = $up ? 'up' : 'down';
        $p->{$k} .= $buf;
        return if $holds->($p, $up) || $p->{$k} eq '';
        syswrite $up ? $p->{s} : $p->{c}, $p->{$k};
        $p->{$k} = '';
    };

    while (1) {
        POSIX::_exit(0) unless kill 0, $parent;
        if (open my $fh, '<', $ctl) {
            my $m = <$fh> // '';
            chomp $m;
            if ($m ne '' && $m ne $mode) {
                $mode = $m;
                $cut = $mode eq 'nosub';
            }
        }
        my %seen;
        for my $p (grep { !$seen{$_}++ } values %pair) {
            if ($cut && $p->{sub}) {
                $drop->($p);
                next;
            }
            $pass->($p, 1, '');
            $pass->($p, 0, '');
        }
        $cut = 0;

        for my $s ($sel->can_read(0.02)) {
            if ($s == $listen) {
                my $c = $listen->accept or next;
                my $r = IO::Socket::INET->new(PeerAddr => $rhost,
                                              PeerPort => $rport,
                                              Proto => 'tcp');
                if (!$r) { close $c; next }
                my $p = { c => $c, s => $r, up => '', down => '', sub => 0 };
                $pair{ fileno $c } = $p;
                $pair{ fileno $r } = $p;
                $sel->add($c, $r);
                next;
            }
            my $p = $pair{ fileno $s } or next;
            my $n = sysread $s, my $buf, 65536;
            if (!$n) {
                $drop->($p);
                next;
            }
            my $up = $s == $p->{c};
            $p->{sub} = 1 if $up && $buf =~ /\$9\r\nSUBSCRIBE\r\n/i;
            $pass->($p, $up, $buf);
        }
    }
}

my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                   Listen => 64, ReuseAddr => 1,
                                   Proto => 'tcp')
    or die "058: cannot listen: $!\n";
my $pport = $listen->sockport;
mode('pass');
my $proxy = fork // die "058: fork: $!\n";
if ($proxy == 0) {
    $SIG{PIPE} = 'IGNORE';
    proxy($listen);
    POSIX::_exit(0);
}
close $listen;

END {
    local $?;
    if ($proxy) {
        kill 'TERM', $proxy;
        waitpid $proxy, 0;
    }
    unlink $ctl, "$ctl.new";
}

my $run = sprintf '%x%x', $$, time;
my $node = "gra$run";

sub conf {
    my ($name, $redis) = @_;
    return <<"CONF";
    chat_node_name $name;
    chat_redis $redis;
    chat_redis_password_file \$TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_redis_timeout 10s;
    chat_postgres "\$TEST_NGINX_PG_DSN";
    chat_kafka_brokers \$TEST_NGINX_KAFKA_BROKERS;
    chat_jwt_secret_file \$TEST_NGINX_JWT_SECRET_FILE;
CONF
}

my $locations = <<'CONF';
    location /v1/ {
        chat_api;
    }
    location = /v1/ws {
        chat_websocket;
    }
CONF

my $pa = ChatTest::start_nginx(workers => 1, log_level => 'info',
                               http_config => conf($node,
                                                   "127.0.0.1:$pport"),
                               config => $locations);
my $pb = ChatTest::start_nginx(name => 'b', workers => 1,
                               port => $pa + 1,
                               http_config => conf("grb$run",
                                                   '$TEST_NGINX_REDIS'),
                               config => $locations);

sub subscribed { redis("PUBSUB CHANNELS 'chat:w:$node:*'") =~ /\S/ }

ok(ChatTest::wait_until(\&subscribed, timeout => 15),
   "node a is subscribed (through the proxy)");

my %uid = register_users('grs', qw(s r));
my ($st, $g) = ChatClient::api_as($uid{s}, POST => '/v1/groups',
                                  { name => "grs-$run",
                                    members => [ $uid{r} ] });
is($st, 201, 'a group of s and r') or diag explain $g;
my $gid = ref $g ? $g->{group_id} : 0;

my $r = ws_connect($pa, $uid{r});
my $s = ws_connect($pb, $uid{s});
ok(ChatTest::wait_until(sub {
       redis("ZCARD chat:routes:{$uid{r}}") eq '1'
       && redis("ZCARD chat:routes:{$uid{s}}") eq '1' }, timeout => 15),
   'r on node a, s on node b');
sleep 1;    # their group syncs are done

my $k = 0;
my %seq_of;
sub send_g {
    $k++;
    $s->send_text(encode_json({ type => 'send', group => $gid,
                                client_id => "c$k-$run", body => "m$k" }));
    my ($ack) = frames($s, 'ack', 1, 15);
    $seq_of{$ack->{id}} = $ack->{seq} if $ack && $ack->{id};
    return $ack ? $ack->{id} : undef;
}

# what r gets within $wait s, acknowledged as it comes
my %got;
my @order;
sub take {
    my ($wait, $want) = @_;
    my $end = time + $wait;
    while (time < $end && (!$want || grep { !$got{$_} } @$want)) {
        my $f = frame($r, ($end - time) > 0.01 ? $end - time : 0.01)
            // last;
        next unless ($f->{type} // '') eq 'message' && $f->{id};
        $got{ $f->{id} }++;
        push @order, $f->{id};
        $r->send_text(encode_json({ type => 'receipt', id => $f->{id},
                                    status => 'delivered' }));
    }
}

# a one-to-one message first: r's connection has an inbox position, so
# the resync's inbox read registers its route in its first call (from 0
# it may first ask PostgreSQL, whose answer waits behind the held ones)
$s->send_text(encode_json({ type => 'send', to => $uid{r},
                            client_id => "d-$run", body => 'direct' }));
my ($d) = frames($s, 'ack', 1, 15);
take(10, [$d ? $d->{id} : 'none']);
ok($d && $got{ $d->{id} }, 'r gets a one-to-one message');

my $m0 = send_g();
ok($m0, 'm0 acked');
take(10, [$m0]);
is($got{$m0} // 0, 1, 'r gets m0 live');

# --- a's subscription is cut and held --------------------------------------

mode('nosub');
ok(ChatTest::wait_until(sub { !subscribed() }, timeout => 10),
   "a's subscription is gone");
ok(ChatTest::wait_until(sub { ChatTest::error_log()
                                  =~ /subscription lost/ }, timeout => 10),
   'a knows it');

my @lost = map { send_g() } 1 .. 3;
is(scalar(grep { defined } @lost), 3, 'm1..m3 acked while it is down');
take(1);
is(scalar(grep { $got{$_} } @lost), 0, 'they reach no one on a');

# --- it comes back; a's resync waits: a live message comes first ----------

ok(!ChatTest::wait_until(sub { redis("ZCARD chat:routes:{$uid{r}}") ne '0' },
                         timeout => 0.5),
   "r's route went with m1 (no one heard it)");
@order = ();
mode('cmdhold');
ok(ChatTest::wait_until(\&subscribed, timeout => 10),
   'a subscribed again');
ok(ChatTest::wait_until(sub { redis("ZCARD chat:routes:{$uid{r}}") eq '1' },
                        timeout => 10),
   "its resync's inbox read registered r's route again (a does not hear "
   . 'the answer yet)');
my $m4 = send_g();
ok($m4, 'm4 acked');
take(1.5);
my %name = ($m4 => 'm4', map { ($lost[$_] => 'm' . ($_ + 1)) } 0 .. 2);
note('r got before the resync read the log: '
     . (join(' ', map { $name{$_} // $_ } @order) || 'nothing'));
is(scalar(grep { $got{$_} } @lost), 0, 'm1..m3 not yet');

# --- the resync goes on -------------------------------------------------------

mode('pass');
take(15, [@lost, $m4]);

for my $i (0 .. 2) {
    is($got{ $lost[$i] } // 0, 1, 'r gets m' . ($i + 1) . ' once');
}
is($got{$m4} // 0, 1, 'r gets m4 once');
my @seen = grep { my $id = $_; grep { $_ eq $id } @lost, $m4 } @order;
is(join(' ', map { $name{$_} } @seen), 'm1 m2 m3 m4', 'in seq order');

# nothing more: a sync brings nothing twice once they are acknowledged
# (r's receipts have moved its delivered seq to m4's: a sync before that
# sends them again, as the protocol says)
ok(ChatTest::wait_until(sub {
       (redis("HGET chat:gspos:{g:$gid} $uid{r}") || 0) >= ($seq_of{$m4} // 1e18) },
       timeout => 15, interval => 0.1),
   "r's receipts counted: its delivered seq is m4's");
$r->send_text(encode_json({ type => 'sync' }));
take(2);
is(scalar(grep { $got{$_} > 1 } keys %got), 0, 'nothing came twice');

ChatTest::stop_nginx('b');
ChatTest::stop_nginx();

done_testing();
