# The per-worker backend clients seen from the backends' side: the
# PostgreSQL pool opens chat_postgres_pool_size connections per worker, the
# Kafka producer's messages really are in the broker (read back with kcat),
# and a graceful stop flushes them without complaint.  The local broker
# answers without Nagle's delay, and build/chat-bench-produce reports the
# broker's acknowledgement times.  The stack's Redis persists through its
# AOF and never forks for an RDB snapshot (scripts/stack: a fork stalls
# Redis for tens of ms).

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json);
use IO::Socket::INET;
use POSIX ();
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use ChatTest;
use ChatPersist;

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

my $app = "ngx_chat_t005_$$";
my $node = "backends-$$";

sub psql {
    my ($sql) = @_;
    my $out = `psql -X -A -t -q -d "$ENV{TEST_NGINX_PG_DSN}" -c "$sql" 2>&1`;
    die "psql: $out" if $?;
    chomp $out;
    return $out;
}

ChatTest::start_nginx(
    workers     => 2,
    http_config => <<"CONF",
    chat_node_name $node;
    chat_redis \$TEST_NGINX_REDIS;
    chat_redis_password_file \$TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "\$TEST_NGINX_PG_DSN application_name=$app";
    chat_postgres_pool_size 3;
    chat_kafka_brokers \$TEST_NGINX_KAFKA_BROKERS;
CONF
    config      => 'location = /healthz { chat_healthz; }',
);

my $count = sub {
    psql("SELECT count(*) FROM pg_stat_activity "
         . "WHERE application_name = '$app'");
};

ok(ChatTest::wait_until(sub { $count->() == 6 }, timeout => 10),
   '2 workers x chat_postgres_pool_size 3 = 6 connections')
    or diag 'connections: ' . $count->();

# Every health check sends one message to chat.health, keyed by node name.
my %pids;
for (1 .. 10) {
    my ($status, undef, $body) = ChatTest::http_get('/healthz');
    is($status, 200, 'healthz 200') or diag $body;
}

my @lines = `kcat -b "$ENV{TEST_NGINX_KAFKA_BROKERS}" -C -t chat.health -o beginning -e -q -f '%k %s\\n' 2>&1`;
is($?, 0, 'kcat read chat.health') or diag @lines;

my @ours = grep { /^\Q$node\E / } @lines;
cmp_ok(scalar @ours, '>=', 1,
       'the health probes are in the broker, keyed by node name');
for my $line (@ours) {
    my ($json) = $line =~ /^\S+ (.*)$/;
    my $msg = eval { decode_json($json) };
    ok($msg && $msg->{pid} && $msg->{ts} > 1.7e12,
       "probe message is JSON with a wall-clock ts: $json");
    $pids{$msg->{pid}} = 1 if $msg;
}

ChatTest::stop_nginx();

ok(ChatTest::wait_until(sub { $count->() == 0 }, timeout => 10),
   'the pool closes its connections when nginx stops');

my $log = ChatTest::error_log();
unlike($log, qr/not delivered at exit/, 'nothing left undelivered at exit');
unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert in the error log');
like($log, qr/chat: postgres: connected, server 15/,
     'the pool logs its connections');


# --- the local broker's connections have TCP_NODELAY ---------------------
#
# Without it, a response the broker writes while its previous one is
# still unacknowledged waits for the client's delayed ACK (about 40 ms),
# and so does a sender's ack.  The option is read off the broker's own
# end of a connection of ours, taken with pidfd_getfd(2).

my ($bhost, $bport) = split /:/, (split /,/, $ENV{TEST_NGINX_KAFKA_BROKERS})[0];
my $conn = IO::Socket::INET->new(PeerAddr => $bhost, PeerPort => $bport,
                                 Proto => 'tcp')
    or die "connect to the broker $bhost:$bport: $!";
my $lport = $conn->sockport;

# the broker's end: local port $bport, remote port $lport
my $inode;
ChatTest::wait_until(sub {
    open my $fh, '<', '/proc/net/tcp' or return 0;
    while (<$fh>) {
        my @f = split;
        next unless ($f[1] // '') =~ /:([0-9A-F]{4})$/ && hex($1) == $bport;
        next unless ($f[2] // '') =~ /:([0-9A-F]{4})$/ && hex($1) == $lport;
        $inode = $f[9];
    }
    return $inode;
}, timeout => 5);
ok($inode, "the broker accepted our connection (port $lport)");

my $bpid = do {
    my $file = ChatPersist::stack_env('CHAT_VAR') . '/run/kafka-broker.pid';
    open my $fh, '<', $file or die "$file: $!";
    my $p = <$fh>;
    chomp $p;
    $p;
};
my $bfd;
if (opendir my $dh, "/proc/$bpid/fd") {
    for my $fd (readdir $dh) {
        my $target = readlink "/proc/$bpid/fd/$fd" // next;
        $bfd = $fd if $inode && $target eq "socket:[$inode]";
    }
}
ok(defined $bfd, "the broker (pid $bpid) holds that socket");

SKIP: {
    # pidfd_open(2) and pidfd_getfd(2): the same numbers on every Linux
    # architecture since 5.6
    my $pidfd = syscall(434, $bpid + 0, 0);
    my $fd = $pidfd >= 0 && defined $bfd ? syscall(438, $pidfd, $bfd + 0, 0)
                                         : -1;
    skip "pidfd_getfd: $! (needs CAP_SYS_PTRACE or the broker's uid)", 1
        if $fd < 0;
    open my $sock, '+<&=', $fd or die "fdopen $fd: $!";
    my $v = getsockopt($sock, IPPROTO_TCP, TCP_NODELAY);
    is(defined $v ? unpack('i', $v) : -1, 1,
       'the broker set TCP_NODELAY on the connection it accepted');
    close $sock;
    POSIX::close($pidfd) if $pidfd >= 0;
}
close $conn;


# --- build/chat-bench-produce reports the broker's ack times -------------

my $out = `$ChatTest::Root/build/chat-bench-produce --brokers $ENV{TEST_NGINX_KAFKA_BROKERS} --count 300 --rate 300 --linger 1 --idempotence --max-lag 0 --conversations 10 --user-base @{[ int(time) * 1000 + 5 ]} 2>&1`;
is($?, 0, 'chat-bench-produce with the gateway\'s settings ran') or diag $out;
my %kv = $out =~ /(\w+)=([\d.]+)/g;
is($kv{produced}, 300, '300 records produced');
is($kv{failed}, 0, 'none failed');
ok(defined $kv{ack_p50_ms} && $kv{ack_p50_ms} > 0
   && $kv{ack_p50_ms} <= $kv{ack_p99_ms}
   && $kv{ack_p99_ms} <= $kv{ack_p999_ms}
   && $kv{ack_p999_ms} <= $kv{ack_max_ms}
   && $kv{ack_max_ms} < 10000,
   'its ack times are ordered, above 0 and below the message timeout')
    or diag $out;


# --- the stack's Redis: AOF on, no RDB snapshots -----------------------------

{
    my ($host, $port) = split /:/, $ENV{TEST_NGINX_REDIS};
    my %conf = `redis-cli -h $host -p $port --raw CONFIG GET appendonly save auto-aof-rewrite-min-size 2>&1` =~ /^(\S+)\n(.*)$/mg;
    is($conf{appendonly}, 'yes', 'the stack\'s Redis writes an AOF');
    is($conf{save}, '', 'and takes no RDB snapshots (no fork a minute)');
    is($conf{'auto-aof-rewrite-min-size'}, 512 * 1024 * 1024,
       'and rewrites the AOF past 512 MB');
}

done_testing();
