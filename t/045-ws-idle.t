# An idle WebSocket keeps only what it needs: once the 101 is out, the
# handshake's HTTP request is freed as nginx frees a keepalive request
# (logged then, its pool and header buffers gone), and the connection goes
# on without it: frames split anywhere, fragmented and long messages, the
# close handshake, nginx's graceful stop.  And the bytes: nginx's memory
# per idle connection, from the worker's /proc (issue #13: at most 0.4x
# nchan's 14 KB).

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatJWT;
use ChatWS;

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

ChatTest::start_nginx(
    workers     => 1,
    http_config => <<'CONF',
    chat_node_name idle-node;
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
CONF
    config      => <<'CONF',
    location = /v1/ws {
        chat_websocket;
        chat_ws_frame_rate off;
    }
CONF
);
my $port = ChatTest::port();
my $root = ChatTest::servroot();

sub ws {
    my ($user) = @_;
    my $ws = ChatWS->new(port => $port);
    my ($st) = $ws->handshake('/v1/ws',
        Authorization => 'Bearer ' . ChatJWT::token(sub => $user));
    return ($ws, $st);
}

sub slurp {
    open my $fh, '<', $_[0] or return '';
    local $/;
    return scalar <$fh>;
}

sub ping_pong {
    my ($ws, $what) = @_;
    $ws->send_text('{"type":"ping"}');
    is($ws->read_text, '{"type":"pong"}', $what);
}

# --- the request is logged and let go at the upgrade ------------------------

my ($ws, $st) = ws(4401);
is($st, 101, 'handshake: 101');
ping_pong($ws, 'ping -> pong');

my $logged = 0;
for (1 .. 40) {
    $logged = () = slurp("$root/logs/access.log")
                   =~ m{"GET /v1/ws HTTP/1\.1" 101 }g;
    last if $logged;
    sleep 0.05;
}
is($logged, 1, 'the 101 is in the access log while the connection is open '
               . '(its request is freed)');

# --- the connection without its request ----------------------------------

# a frame in three writes, each read on its own
my $frame = ChatWS::frame_bytes(1, '{"type":"ping"}');
for my $part (substr($frame, 0, 1), substr($frame, 1, 5), substr($frame, 6)) {
    $ws->send_raw($part);
    sleep 0.1;
}
is($ws->read_text, '{"type":"pong"}', 'a frame split across reads');

# a message in two fragments, a ping frame between them
$ws->send_frame(1, '{"type":', fin => 0);
$ws->send_frame(9, 'between');
$ws->send_frame(0, '"ping"}');
my ($op, $payload) = $ws->read_frame;
is($op, 10, 'a ping inside a fragmented message gets its pong');
is($payload, 'between', '... with its payload');
is($ws->read_text, '{"type":"pong"}', 'the fragmented message is answered');

# a message longer than the buffer kept between messages, then short ones
$ws->send_text((' ' x 3000) . '{"type":"ping"}');
is($ws->read_text, '{"type":"pong"}', 'a 3 KB message');
ping_pong($ws, 'a short one after it');

$ws->send_frame(8, pack('n', 1000));
is($ws->read_close, 1000, 'close -> close 1000');
ok($ws->eof_within(3), '... and the connection is closed');

# --- bytes per idle connection ---------------------------------------------

SKIP: {
    skip 'memory figures of a sanitizer build mean nothing', 1
        if ($ENV{TEST_NGINX_BINARY} // '') =~ /asan/
           || ($ENV{LD_PRELOAD} // '') =~ /asan/;

    my ($master) = slurp("$root/logs/nginx.pid") =~ /(\d+)/;
    my ($worker) = grep {
            slurp("/proc/$_/stat") =~ /^\d+ \(nginx\) \S+ $master /
        } map { m{/proc/(\d+)$} ? $1 : () } glob '/proc/[0-9]*';
    my $pss = sub {
        my ($kb) = slurp("/proc/$worker/smaps_rollup") =~ /^Pss:\s+(\d+)/m;
        return $kb;
    };

    # a first round warms up what any connection needs once (buffers of
    # Redis and of the worker's tables), then the counted one
    my $n = 400;
    my @conns;
    for my $round (0, 1) {
        my $before = $pss->();
        for my $i (1 .. $n) {
            my ($c, $s) = ws(440000 + $round * $n + $i);
            die "handshake $i: $s\n" unless $s == 101;
            $c->send_text('{"type":"ping"}');
            push @conns, $c;
        }
        for my $c (@conns[$round * $n .. $#conns]) {
            die "no pong\n" unless ($c->read_text // '') eq '{"type":"pong"}';
        }
        sleep 1;
        my $per = ($pss->() - $before) * 1024 / $n;
        next unless $round;
        diag sprintf 'nginx: %.0f bytes per idle WebSocket', $per;
        cmp_ok($per, '<', 5600,
               "$n idle connections: under 5.6 KB of nginx memory each");
    }
    $_->close for @conns;
}

# --- a graceful stop still says goodbye --------------------------------------

($ws, $st) = ws(4402);
is($st, 101, 'another connection');
ping_pong($ws, '... that works');
ChatTest::stop_nginx();
is($ws->read_close(10), 1001, "nginx's graceful stop: close 1001");

my $log = ChatTest::error_log();
unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alerts');

done_testing();
