# A password hash outlives its request (issue #12, defect 9): requests
# torn down while their Argon2 task runs in the thread pool or waits for
# it -- here by a graceful reload whose worker_shutdown_timeout ends them
# -- must not leave the thread or the completion event with freed memory.
# The task owns its memory; the request cancels it.  Meant to run under
# the ASan build too (scripts/run-tests does), where a use after free
# aborts the worker: "exited on signal" in the error log.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(encode_json);
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatJWT;

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

ChatTest::start_nginx(
    workers     => 1,
    main_config => 'worker_shutdown_timeout 1s;',
    http_config => <<'CONF',
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_password_concurrency 1;
    chat_login_limit off;
CONF
    config      => <<'CONF',
    location /v1/ {
        chat_api;
    }
CONF
);

my $port = ChatTest::port();
my $run = sprintf '%x%x', $$, int(time * 1000) % 1000000;
my $pidfile = ChatTest::servroot() . '/logs/nginx.pid';
my ($master) = ChatTest::slurp($pidfile) =~ /(\d+)/;

sub register_req {
    my ($name) = @_;
    my $body = encode_json({ username => $name, password => 'long-enough' });
    return "POST /v1/users HTTP/1.1\r\nHost: localhost\r\n"
         . "Content-Type: application/json\r\n"
         . "Content-Length: " . length($body) . "\r\n\r\n$body";
}

sub workers {
    my @w;
    for my $d (glob '/proc/[0-9]*') {
        my $stat = ChatTest::slurp("$d/stat") // next;
        my ($pid, $ppid) = $stat =~ /^(\d+) \(.*?\) \S+ (\d+)/s or next;
        push @w, $pid if $ppid == $master;
    }
    return @w;
}

# One round: hashes running and waiting in the worker when its shutdown
# timer ends their requests; the clients may also go away first.
for my $round (1 .. 2) {
    my @old = workers();
    is(scalar @old, 1, "round $round: one worker");

    my @socks;
    for my $i (1 .. 16) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp')
            or die "connect: $!";
        print $s register_req("pl${round}_${i}_$run");
        push @socks, $s;
    }

    # a request still sending its body keeps the old worker alive (its
    # read timer) until worker_shutdown_timeout ends every request
    my $slow = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Proto => 'tcp')
        or die "connect: $!";
    print $slow "POST /v1/users HTTP/1.1\r\nHost: localhost\r\n"
              . "Content-Type: application/json\r\n"
              . "Content-Length: 100\r\n\r\n{\"user";
    push @socks, $slow;

    # a few clients give up while their hash waits or runs
    sleep 0.3;
    close $_ for splice @socks, 0, 4;

    kill 'HUP', $master;

    ok(ChatTest::wait_until(sub { !grep { kill 0, $_ } @old },
                            timeout => 15),
       "round $round: the old worker exits (worker_shutdown_timeout)");
    close $_ for @socks;

    # the hashes it left behind finish in the pool meanwhile
    sleep 1;

    my ($st) = ChatTest::http_request(POST => '/v1/users',
        { 'Content-Type' => 'application/json' },
        encode_json({ username => "plok${round}_$run",
                      password => 'long-enough' }), timeout => 10);
    is($st, 201, "round $round: the new worker registers a user");
}

my $log = ChatTest::error_log();
unlike($log, qr/exited on signal/, 'no worker crashed');
unlike($log, qr/AddressSanitizer|runtime error:/,
       'no sanitizer report in the error log');

done_testing();
