# One slow Redis command fails only itself (issue #12, defect 3): while the
# test stack's Redis holds every client (CLIENT PAUSE, as a slow script or
# a long fork would), a /healthz PING times out after chat_redis_timeout,
# and a login whose Redis GET went out on the same connection later still
# gets its answer once Redis goes on: the connection is kept, the late PONG
# thrown away.  A server that answers nothing at all (a hung listener) is
# given up after four timeouts, and reconnected.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use POSIX ();
use ChatTest;
use ChatJWT;

plan skip_all => 'pauses the test stack\'s Redis: run by make test '
                 . '(CHAT_STACK_PROFILE=test)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

my ($rhost, $rport) = split /:/, $ENV{TEST_NGINX_REDIS};

sub redis {
    my $out = `redis-cli -h $rhost -p $rport @_ 2>&1`;
    chomp $out;
    return $out;
}

my $TIMEOUT = 2;        # chat_redis_timeout, s
my $PAUSE = 2.6;        # how long Redis holds every client, s

ChatTest::start_nginx(
    workers     => 1,
    http_config => <<"CONF",
    chat_node_name slow-redis;
    chat_redis \$TEST_NGINX_REDIS;
    chat_redis_password_file \$TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_redis_timeout ${TIMEOUT}s;
    chat_postgres "\$TEST_NGINX_PG_DSN";
    chat_jwt_secret_file \$TEST_NGINX_JWT_SECRET_FILE;
CONF
    config      => <<'CONF',
    location = /healthz {
        chat_healthz;
        chat_healthz_timeout 10s;
    }
    location /v1/ {
        chat_api;
    }
CONF
);

ok(ChatTest::wait_until(sub { (ChatTest::http_get('/healthz'))[0] == 200 },
                        timeout => 15),
   'healthy at the start');

my $run = sprintf '%x%x', $$, time;

sub login {
    my ($name) = @_;
    return ChatTest::http_request(
        POST => '/v1/sessions', { 'Content-Type' => 'application/json' },
        encode_json({ username => "${name}_$run",
                      password => 'not-the-password' }),
        timeout => 10);
}

# The answer for an unknown user while Redis answers, for comparison.
my ($st0, undef, $body0) = login('nobody0');
isnt($st0, 503, "a login while Redis answers: $st0") or diag $body0;

# --- a slow Redis: one command times out, the next one on the connection
# --- still succeeds ----------------------------------------------------------

is(redis('CLIENT', 'PAUSE', int($PAUSE * 1000), 'ALL'), 'OK',
   "Redis holds every client for $PAUSE s");
my $t0 = time;

# A: /healthz's PING, at once; it times out at $TIMEOUT s.
pipe my $rd, my $wr or die "pipe: $!";
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    close $rd;
    my ($st, undef, $body) = ChatTest::http_get('/healthz', {},
                                                timeout => 10);
    print $wr sprintf("%d %.3f %s", $st, time - $t0, $body);
    close $wr;
    POSIX::_exit(0);
}
close $wr;

# B: a login's GET, sent while A waits; Redis goes on before B's own
# timeout ($TIMEOUT s after it was sent).
sleep 1;
my ($st_b, undef, $body_b) = login('slow');
my $t_b = time - $t0;

my $a_out = do { local $/; <$rd> } // '';
waitpid $pid, 0;
my ($st_a, $t_a, $body_a) = split / /, $a_out, 3;

is($st_a, 503, 'A: /healthz answers 503') or diag $a_out;
like($body_a // '', qr/"redis":"timeout"/, 'A: redis timed out')
    or diag $body_a;
cmp_ok($t_a, '>=', $TIMEOUT - 0.1, "A: after chat_redis_timeout ($t_a s)");
cmp_ok($t_a, '<', $PAUSE, 'A: before Redis went on');

is($st_b, $st0, "B: the login behind it gets its answer ($st_b), not 503")
    or diag $body_b;
cmp_ok($t_b, '>=', $PAUSE - 0.1,
       sprintf('B: once Redis went on (%.2f s)', $t_b));

my ($st_c, undef, $body_c) = ChatTest::http_get('/healthz');
is($st_c, 200, 'C: /healthz is 200 again at once') or diag $body_c;

my $log = ChatTest::error_log();
like($log, qr/chat: redis \Q$ENV{TEST_NGINX_REDIS}\E: no reply in 2000 ms/,
     'the timeout is logged');
my @connected = $log =~ /chat: redis \S+: connected/g;
is(scalar @connected, 1, 'the connection was never given up')
    or diag join "\n", grep { /chat: redis/ } split /\n/, $log;
unlike($log, qr/reconnecting/, 'no reconnect');

ChatTest::stop_nginx();

# --- a dead server: nothing at all for four timeouts -----------------------

my $hung = IO::Socket::INET->new(Listen => 64, LocalAddr => '127.0.0.1',
                                 LocalPort => 0, Proto => 'tcp')
    or die "cannot listen: $!";
my $hung_addr = '127.0.0.1:' . $hung->sockport;

ChatTest::start_nginx(
    workers     => 1,
    http_config => <<"CONF",
    chat_redis $hung_addr;
    chat_redis_timeout 200ms;
CONF
    config      => <<'CONF',
    location = /healthz {
        chat_healthz;
        chat_healthz_timeout 2s;
    }
CONF
);

my ($st_h, undef, $body_h) = ChatTest::http_get('/healthz');
is($st_h, 503, 'a hung Redis: 503') or diag $body_h;
like($body_h, qr/"redis":"timeout"/, '... redis timed out');

ok(ChatTest::wait_until(sub {
       ChatTest::error_log() =~ /chat: redis \Q$hung_addr\E: no reply at all in (\d+) ms, 1 commands waiting, reconnecting/
   }, timeout => 5),
   'given up after no reply at all for four timeouts');
my ($silent) = ChatTest::error_log() =~ /no reply at all in (\d+) ms/;
cmp_ok($silent, '>=', 800, "... $silent ms, not before");

ChatTest::stop_nginx();

done_testing();
