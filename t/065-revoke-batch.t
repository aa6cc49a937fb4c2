# One deny-list lookup per token per event-loop round (issue #15's token
# downloads): requests that carry the same token and whose Redis EXISTS is
# still queued, not yet written, share it; later ones send their own.
# Against the test stack's real Redis, with one nginx process:
#
#   - a burst of requests with one token, all read in one round (nginx is
#     stopped while the clients send, SIGSTOP/SIGCONT): all answered, and
#     Redis (MONITOR) sees fewer EXISTS for the token than requests; two
#     tokens in one burst: each its own EXISTS, never one for both;
#   - logout, then a burst with the logged-out token and another token of
#     the same user: 401 "token revoked" for each of the first (each one
#     logged), 200 for each of the others;
#   - clients that go away while they wait: an HTTP/2 connection whose
#     streams join the lookup and that closes in the same round (the last
#     of them gone before the command is written), HTTP/1.1 clients that
#     close while Redis is paused: the others still get their answer, and
#     nginx goes on;
#   - Redis paused for longer than chat_redis_timeout: every waiter 503,
#     after the timeout.
#
# The result of each burst is written to a file that the block's request
# then fetches, so the checks are the block format's own.

use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;
use IO::Select;
use POSIX ();
use Time::HiRes qw(time sleep);
use ChatJWT;

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();
$ENV{TEST_NGINX_H2_PORT} = server_port() + 2;

our ($RHost, $RPort) = split /:/, $ENV{TEST_NGINX_REDIS};
our $Run = sprintf '%x%x', $$, int(time * 1000) % 1000000;
our $Uid = 700000000 + int(rand(100000000));

# a token with a "jti" of its own: its deny-list key names it
sub token {
    my ($jti) = @_;
    return ChatJWT::token(payload => sprintf(
        '{"sub":"%d","iat":%d,"exp":%d,"jti":"%s"}',
        $Uid, time, time + 600, "${jti}_$Run"));
}

our %Tok = map { $_ => token($_) } qw(one two gone paused);

sub redis_password {
    my $f = $ENV{TEST_NGINX_REDIS_PASSWORD_FILE} or return;
    open my $fh, '<', $f or die "$f: $!";
    my $p = <$fh>;
    chomp $p;
    return $p;
}

sub redis_cmd {
    my ($sock, @args) = @_;
    print $sock '*' . @args . "\r\n"
                . join('', map { '$' . length($_) . "\r\n$_\r\n" } @args);
}

# a connection to Redis, AUTH done
sub redis_conn {
    my $sock = IO::Socket::INET->new(PeerAddr => $RHost, PeerPort => $RPort,
                                     Timeout => 5)
        or die "redis: $!";
    $sock->autoflush(1);
    if (defined(my $p = redis_password())) {
        redis_cmd($sock, 'AUTH', $p);
        my $l = <$sock>;
        die "redis AUTH: $l" unless $l =~ /^\+OK/;
    }
    return $sock;
}

sub redis_do {
    my $sock = redis_conn();
    redis_cmd($sock, @_);
    my $l = <$sock> // '';
    close $sock;
    $l =~ s/\r?\n\z//;
    return $l;
}

# MONITOR: every command Redis runs from now on
sub monitor_start {
    my $sock = redis_conn();
    redis_cmd($sock, 'MONITOR');
    my $l = <$sock>;
    die "MONITOR: $l" unless $l =~ /^\+OK/;
    return $sock;
}

# the EXISTS of the deny-list keys of this run's user, per token id
sub monitor_exists {
    my ($sock) = @_;
    my ($buf, %n) = ('');
    my $sel = IO::Select->new($sock);
    while ($sel->can_read(0.5)) {
        sysread($sock, $buf, 65536, length $buf) or last;
    }
    close $sock;
    while ($buf =~ /"EXISTS" "chat:revoked:\{$Uid\}:j([^"]+)_$Run"/gi) {
        $n{$1}++;
    }
    Test::More::note('EXISTS seen: '
                     . join(', ', map { "$_ $n{$_}" } sort keys %n));
    return \%n;
}

sub nginx_pid {
    open my $fh, '<', server_root() . '/logs/nginx.pid' or die "pid: $!";
    my $pid = <$fh>;
    chomp $pid;
    return $pid;
}

sub stop_and_wait {
    my ($pid) = @_;
    kill 'STOP', $pid or die "SIGSTOP: $!";
    for (1 .. 200) {
        open my $fh, '<', "/proc/$pid/stat" or last;
        my $st = <$fh>;
        return if $st =~ /^\d+ \(.*\) [Tt] /;
        sleep 0.01;
    }
    die "nginx $pid did not stop";
}

sub h1_request {
    my ($path, $tok) = @_;
    return "GET $path HTTP/1.1\r\nHost: localhost\r\n"
           . "Authorization: Bearer $tok\r\nConnection: close\r\n\r\n";
}

# HPACK: an integer with an N-bit prefix
sub hpack_int {
    my ($v, $bits, $first) = @_;
    my $max = (1 << $bits) - 1;
    return chr($first | $v) if $v < $max;
    my $s = chr($first | $max);
    $v -= $max;
    while ($v >= 128) {
        $s .= chr(($v & 127) | 128);
        $v >>= 7;
    }
    return $s . chr($v);
}

sub h2_frame {
    my ($type, $flags, $sid, $payload) = @_;
    return substr(pack('N', length $payload), 1, 3)
           . pack('CCN', $type, $flags, $sid) . $payload;
}

# the client preface, SETTINGS and n GET streams (HPACK without indexing)
sub h2_requests {
    my ($n, $path, $tok) = @_;
    my $lit = sub { hpack_int($_[0], 4, 0) . hpack_int(length $_[1], 7, 0)
                    . $_[1] };
    my $block = "\x82\x86" . $lit->(4, $path) . $lit->(1, 'localhost')
                . $lit->(23, "Bearer $tok");
    my $out = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" . h2_frame(4, 0, 0, '');
    # END_STREAM | END_HEADERS
    $out .= h2_frame(1, 5, 2 * $_ - 1, $block) for 1 .. $n;
    return $out;
}

# Each HTTP/1.1 request (path, token) on a connection of its own: the
# connections are made first, then nginx is stopped while all requests
# are sent (and h2 streams, on a connection that closes at once), so that
# it reads them in one round.  gone: how many of the HTTP/1.1 clients go
# away (close) after the given delay, while they wait.  spread: the
# requests are sent this many seconds apart instead, nginx running.
# -> { status => [...], bodies => [...], exists => {jti => n}, time => s }
sub burst {
    my (%o) = @_;
    my $pid = nginx_pid();
    my @reqs = @{ $o{requests} };
    my $mon = monitor_start();
    my @socks = map {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                              PeerPort => server_port(), Timeout => 5)
            or die "connect: $!"
    } @reqs;
    # accepted, one per round
    sleep 0.3;
    # Redis holds every client (the monitor's answers wait too)
    my $pause = $o{pause} ? redis_do('CLIENT', 'PAUSE', $o{pause}, 'ALL')
                          : '';

    stop_and_wait($pid) unless $o{spread};
    my $t0 = time;
    for my $i (0 .. $#reqs) {
        sleep $o{spread} if $o{spread} && $i;
        syswrite $socks[$i], h1_request(@{ $reqs[$i] });
    }
    if ($o{h2}) {
        my $h2 = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                       PeerPort => $ENV{TEST_NGINX_H2_PORT},
                                       Timeout => 5)
            or die "connect h2: $!";
        syswrite $h2, h2_requests(@{ $o{h2} });
        close $h2;
    }
    kill 'CONT', $pid unless $o{spread};

    if ($o{gone}) {
        sleep $o{gone_after};
        close $socks[$_] for 0 .. $o{gone} - 1;
    }

    my (%buf, %done);
    my $sel = IO::Select->new(@socks[($o{gone} // 0) .. $#socks]);
    my $deadline = time + 15;
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(0.5)) {
            my $n = sysread $s, $buf{$s}, 65536, length($buf{$s} // '');
            if (!$n) {
                $done{$s} = time - $t0;
                $sel->remove($s);
            }
        }
    }

    my (@status, @bodies, @times);
    for my $i (0 .. $#socks) {
        if ($i < ($o{gone} // 0)) {
            push @status, 'gone';
            push @bodies, '';
            next;
        }
        my $raw = $buf{$socks[$i]} // '';
        my ($st) = $raw =~ m{\AHTTP/1\.1 (\d+)};
        my (undef, $body) = split /\r\n\r\n/, $raw, 2;
        push @status, $st // 'none';
        push @bodies, $body // '';
        push @times, $done{$socks[$i]} // 99;
        close $socks[$i];
    }
    return { status => \@status, bodies => \@bodies, pause => $pause,
             exists => monitor_exists($mon), times => \@times };
}

# "200 x5, 401 x3": the statuses of these requests, in the order seen
sub tally {
    my (@st) = @_;
    my (@order, %n);
    for (@st) {
        push @order, $_ unless $n{$_}++;
    }
    return join(', ', map { "$_ x$n{$_}" } @order);
}

sub result {
    my ($text) = @_;
    open my $fh, '>', html_dir() . '/result.txt' or die "result: $!";
    print $fh $text;
    close $fh;
}

sub err_log_size { -s server_root() . '/logs/error.log' // 0 }

sub err_log_since {
    my ($off) = @_;
    open my $fh, '<', server_root() . '/logs/error.log' or return '';
    seek $fh, $off, 0;
    local $/;
    return <$fh> // '';
}

# a request of its own, answered (the status)
sub get_status {
    my ($path, $tok, $method) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => server_port(), Timeout => 5)
        or die "connect: $!";
    my $req = h1_request($path, $tok);
    $req =~ s/^GET/$method/ if $method;
    print $s $req;
    my $raw = do { local $/; <$s> } // '';
    close $s;
    my ($st) = $raw =~ m{\AHTTP/1\.1 (\d+)};
    return $st // 'none';
}

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value(http_config => <<'CONF' . ($block->http_config // ''));
    chat_node_name revoke;
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    server {
        listen 127.0.0.1:$TEST_NGINX_H2_PORT http2;
        location /img/ {
            chat_auth on;
        }
    }
CONF
    $block->set_value(config => <<'CONF');
    location /img/ {
        chat_auth on;
    }
    location /v1/ {
        chat_api;
    }
CONF
    $block->set_value(user_files => <<'FILES');
>>> img/pic.txt
a picture
FILES
    $block->set_value(request => "GET /result.txt\n");
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: one token, 20 requests in one round: all 200, fewer EXISTS
--- init
my $r = ::burst(requests => [ map { [ '/img/pic.txt', $::Tok{one} ] }
                                  1 .. 20 ]);
my $n = $r->{exists}{one} // 0;
my @bad = grep { $_ ne "a picture\n" } @{ $r->{bodies} };
::result(::tally(@{ $r->{status} }) . "\n"
         . (@bad ? "other bodies: @bad\n" : "each the file\n")
         . ($n >= 1 && $n < 20 ? "fewer EXISTS than requests\n"
                                : "$n EXISTS for 20 requests\n"));
--- response_body
200 x20
each the file
fewer EXISTS than requests



=== TEST 2: two tokens in one round: each its own EXISTS, shared
--- init
my $r = ::burst(requests => [ map { [ '/img/pic.txt',
                                      $::Tok{$_ % 2 ? 'one' : 'two'} ] }
                                  1 .. 20 ]);
my ($n1, $n2) = map { $r->{exists}{$_} // 0 } qw(one two);
::result(::tally(@{ $r->{status} }) . "\n"
         . ($n1 >= 1 && $n2 >= 1 ? "an EXISTS for each token\n"
                                 : "EXISTS: $n1 and $n2\n")
         . ($n1 + $n2 < 20 ? "fewer EXISTS than requests\n"
                           : "$n1 + $n2 EXISTS for 20 requests\n"));
--- response_body
200 x20
an EXISTS for each token
fewer EXISTS than requests



=== TEST 3: a request after the command went out sends its own
While Redis holds every client, a request's EXISTS is written and waits;
a second one with the same token, 0.3 s later, must not take its answer.
--- http_config
    chat_redis_timeout 5s;
--- init
my $r = ::burst(requests => [ map { [ '/img/pic.txt', $::Tok{two} ] }
                                  1 .. 2 ],
                pause => 1200, spread => 0.3);
::result(::tally(@{ $r->{status} }) . "\n"
         . 'EXISTS: ' . ($r->{exists}{two} // 0) . "\n");
--- response_body
200 x2
EXISTS: 2
--- timeout: 20



=== TEST 4: logout, then a burst: 401 for the logged-out token, each logged
--- init
my $out = ::get_status('/v1/sessions/current', $::Tok{one}, 'DELETE');
my $off = ::err_log_size();
my $r = ::burst(requests => [ map { [ '/img/pic.txt',
                                      $::Tok{$_ % 2 ? 'one' : 'two'} ] }
                                  1 .. 20 ]);
my @st = @{ $r->{status} };
my @one = map { $st[$_] } grep { $_ % 2 == 0 } 0 .. $#st;
my @two = map { $st[$_] } grep { $_ % 2 } 0 .. $#st;
my @why = grep { /token revoked/ }
          map { $r->{bodies}[$_] } grep { $_ % 2 == 0 } 0 .. $#st;
my @logged = ::err_log_since($off)
             =~ /chat: auth: token revoked \(user $::Uid\)/g;
::result("logout: $out\n"
         . 'logged out: ' . ::tally(@one) . ', "token revoked" x'
         . @why . "\n"
         . 'other token: ' . ::tally(@two) . "\n"
         . 'logged: ' . @logged . "\n");
--- response_body
logout: 204
logged out: 401 x10, "token revoked" x10
other token: 200 x10
logged: 10



=== TEST 5: clients that go away while they wait: the others answered
An HTTP/2 connection with 5 streams that closes in the same round (its
waiters leave before the command is written), 4 HTTP/1.1 clients that
close while Redis holds the command: the 6 others get 200; then a
burst of HTTP/2 streams only (the last waiter gone cancels the command)
and nginx still answers.
--- http_config
    chat_redis_timeout 5s;
--- init
my $r = ::burst(requests => [ map { [ '/img/pic.txt', $::Tok{gone} ] }
                                  1 .. 10 ],
                pause => 1500,
                h2 => [ 5, '/img/pic.txt', $::Tok{gone} ],
                gone => 4, gone_after => 0.5);
my @st = @{ $r->{status} };
my $h2only = ::burst(requests => [], h2 => [ 8, '/img/pic.txt',
                                             $::Tok{two} ]);
my $after = ::get_status('/img/pic.txt', $::Tok{two});
my $log = ::err_log_since(0);
my @gone = $log =~ /client prematurely closed connection/g;
::result("pause: $r->{pause}\n"
         . ::tally(@st) . "\n"
         . 'closed while waiting: ' . (@gone >= 4 ? "4 or more\n"
                                                  : @gone . "\n")
         . "then: $after\n");
--- response_body
pause: +OK
gone x4, 200 x6
closed while waiting: 4 or more
then: 200
--- no_error_log
[alert]
[emerg]
--- timeout: 20



=== TEST 6: Redis paused past chat_redis_timeout: every waiter 503
--- http_config
    chat_redis_timeout 600ms;
--- init
my $r = ::burst(requests => [ map { [ '/img/pic.txt', $::Tok{paused} ] }
                                  1 .. 10 ],
                pause => 2000);
my @late = grep { $_ < 0.55 || $_ > 1.9 } @{ $r->{times} };
my @why = grep { /"error":"unavailable"/ } @{ $r->{bodies} };
sleep 1.5;
my $after = ::get_status('/img/pic.txt', $::Tok{paused});
::result("pause: $r->{pause}\n"
         . ::tally(@{ $r->{status} }) . ', "unavailable" x' . @why . "\n"
         . (@late ? "answered at @late s\n"
                  : "after chat_redis_timeout, before Redis went on\n")
         . "then: $after\n");
--- response_body
pause: +OK
503 x10, "unavailable" x10
after chat_redis_timeout, before Redis went on
then: 200
--- timeout: 20
