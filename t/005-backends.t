# The per-worker backend clients seen from the backends' side: the
# PostgreSQL pool opens chat_postgres_pool_size connections per worker, the
# Kafka producer's messages really are in the broker (read back with kcat),
# and a graceful stop flushes them without complaint.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json);
use ChatTest;

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

done_testing();
