# GET /v1/ws: the RFC 6455 handshake with its checks, authentication
# before the upgrade, the chat protocol's ping and error frames, and every
# kind of bad frame answered with the right close code while the worker
# carries on.  Raw frames come from t/lib/ChatWS.pm; a client we did not
# write (python3-websockets) talks to it too.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json);
use Time::HiRes qw(time);
use ChatTest;
use ChatJWT;
use ChatWS;

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();
my $token = ChatJWT::token(sub => 77);

# A server of its own with small socket buffers, so that a client that
# does not read fills them (and then chat_ws_send_queue) in a few hundred
# frames, instead of the megabytes that loopback buffers grow to.
my $slow_port = ($ENV{TEST_NGINX_PORT} || 1984) + 101;
$ENV{TEST_NGINX_SLOW_PORT} = $slow_port;

ChatTest::start_nginx(
    workers     => 2,
    http_config => <<'CONF',
    chat_node_name ws-node;
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    server {
        listen 127.0.0.1:$TEST_NGINX_SLOW_PORT sndbuf=8k rcvbuf=8k;
        location = /v1/ws-slow {
            chat_websocket;
            chat_ws_send_queue 4k;
        }
    }
CONF
    config      => <<'CONF',
    location = /v1/ws {
        chat_websocket;
        chat_ws_max_message 1k;
    }
    location = /v1/ws-origins {
        chat_websocket;
        chat_ws_origins https://chat.example.com http://localhost:3000;
    }
    location = /v1/ws-idle {
        chat_websocket;
        chat_ws_idle_timeout 1s;
    }
CONF
);
my $port = ChatTest::port();

sub ws {
    my ($path, %h) = @_;
    my $ws = ChatWS->new(port => $port);
    my ($st, $hd, $body) = $ws->handshake($path // '/v1/ws',
        Authorization => "Bearer $token", %h);
    return ($ws, $st, $hd, $body);
}

# --- the handshake --------------------------------------------------------

my ($ws, $st, $hd, $body) = ws();
is($st, 101, 'handshake: 101');
is($hd->{'sec-websocket-accept'}, 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=',
   'Sec-WebSocket-Accept per RFC 6455 1.3');
is(lc($hd->{upgrade} // ''), 'websocket', 'Upgrade: websocket');
is(lc($hd->{connection} // ''), 'upgrade', 'Connection: upgrade');
is($hd->{'x-chat-node'}, 'ws-node', 'X-Chat-Node on the upgrade too');
$ws->send_text('{"type":"ping"}');
is($ws->read_text, '{"type":"pong"}', 'ping → pong');
$ws->send_frame(9, 'hello?');
my ($op, $payload) = $ws->read_frame;
is($op, 10, 'a ping frame gets a pong frame');
is($payload, 'hello?', '... with the same payload');
$ws->send_frame(8, pack('n', 1000));
is($ws->read_close, 1000, 'a close frame gets a close frame (1000)');
ok($ws->eof_within(3), '... and the connection is closed');

my @refused = (
    [ 'no token', [ Authorization => undef ], 401, 'unauthorized' ],
    [ 'a bad token', [ Authorization => 'Bearer nope' ], 401,
      'unauthorized' ],
    [ 'no Upgrade', [ Upgrade => undef ], 426, 'upgrade_required' ],
    [ 'version 8', [ 'Sec-WebSocket-Version' => 8 ], 426,
      'upgrade_required' ],
    [ 'no Connection: upgrade', [ Connection => 'keep-alive' ], 400,
      'bad_request' ],
    [ 'no key', [ 'Sec-WebSocket-Key' => undef ], 400, 'bad_request' ],
    [ 'a key that is not 16 bytes', [ 'Sec-WebSocket-Key' => 'c2hvcnQ=' ],
      400, 'bad_request' ],
);
for my $c (@refused) {
    my ($name, $h, $want, $code) = @$c;
    my ($w, $s, $hh, $b) = ws('/v1/ws', @$h);
    is($s, $want, "$name: $want, no upgrade");
    my $j = eval { decode_json($b) } || {};
    is($j->{error}, $code, "$name: JSON error $code");
}
(undef, undef, $hd) = ws('/v1/ws', 'Sec-WebSocket-Version' => 8);
is($hd->{'sec-websocket-version'}, '13', 'a wrong version is told 13');

($ws, $st) = ws("/v1/ws?access_token=$token", Authorization => undef);
is($st, 101, 'the token in ?access_token= (browsers)');
$ws->send_text('{"type":"ping"}');
is($ws->read_text, '{"type":"pong"}', '... works');
$ws->close;

($ws, $st) = ws('/v1/ws-origins', Origin => 'https://evil.example.net');
is($st, 403, 'an Origin not in chat_ws_origins: 403');
($ws, $st) = ws('/v1/ws-origins', Origin => 'https://chat.example.com');
is($st, 101, 'an Origin in the list: 101');
($ws, $st) = ws('/v1/ws-origins');
is($st, 101, 'no Origin (not a browser): 101');

# --- protocol errors are error frames, the connection stays -----------------

($ws, $st) = ws();
for my $c (
    [ 'not JSON', 'hello', 'bad_request' ],
    [ 'a JSON array', '[1,2]', 'bad_request' ],
    [ 'no type', '{"to":1}', 'bad_request' ],
    [ 'type not a string', '{"type":5}', 'bad_request' ],
    [ 'an unknown type', '{"type":"dance"}', 'unknown_type' ],
    [ 'nested too deep', '{"type":"ping","a":' . ('[' x 20) . (']' x 20)
                         . '}', 'bad_request' ],
) {
    my ($name, $text, $code) = @$c;
    $ws->send_text($text);
    my $j = eval { decode_json($ws->read_text // '') } || {};
    is($j->{type}, 'error', "$name: an error frame");
    is($j->{code}, $code, "$name: code $code");
}
$ws->send_text('{"type":"dance","client_id":"c-42"}');
my $j = eval { decode_json($ws->read_text // '') } || {};
is($j->{client_id}, 'c-42', 'an error frame carries the client_id');

# a text message in three fragments, a ping between them
$ws->send_frame(1, '{"type":', fin => 0);
$ws->send_frame(9, 'mid');
$ws->send_frame(0, '"pi', fin => 0);
$ws->send_frame(0, 'ng"}');
($op, $payload) = $ws->read_frame;
is($op, 10, 'a ping between fragments is answered at once');
is($ws->read_text, '{"type":"pong"}', 'the fragmented message is whole');
$ws->send_text('{"type":"ping"}');
is($ws->read_text, '{"type":"pong"}', 'the connection survived it all');
$ws->close;

# --- bad frames: the right close code ------------------------------------

for my $c (
    [ 'an unmasked frame', sub { $_[0]->send_frame(1, '{}', mask => 0) },
      1002 ],
    [ 'RSV1 set', sub { $_[0]->send_frame(1, '{}', rsv => 4) }, 1002 ],
    [ 'opcode 3', sub { $_[0]->send_frame(3, '') }, 1002 ],
    [ 'a 126-byte ping', sub { $_[0]->send_frame(9, 'p' x 126) }, 1002 ],
    [ 'a fragmented ping', sub { $_[0]->send_frame(9, 'p', fin => 0) },
      1002 ],
    [ 'a continuation out of the blue', sub { $_[0]->send_frame(0, 'x') },
      1002 ],
    [ 'invalid UTF-8', sub { $_[0]->send_frame(1, "\xc3\x28") }, 1007 ],
    [ 'a message over chat_ws_max_message',
      sub { $_[0]->send_frame(1, 'x' x 1025) }, 1009 ],
    [ 'fragments over chat_ws_max_message',
      sub { $_[0]->send_frame(1, 'x' x 600, fin => 0);
            $_[0]->send_frame(0, 'x' x 600) }, 1009 ],
    [ 'a binary frame', sub { $_[0]->send_frame(2, "\x00\x01") }, 1003 ],
) {
    my ($name, $send, $code) = @$c;
    my ($w, $s) = ws();
    $send->($w);
    is($w->read_close, $code, "$name: close $code");
    ok($w->eof_within(3), "$name: connection closed");
}

($ws, $st) = ws();
$ws->send_text('{"type":"ping"}');
is($ws->read_text, '{"type":"pong"}', 'the workers are still serving');
$ws->close;

# --- timeouts and slow readers ------------------------------------------------

($ws, $st) = ws('/v1/ws-idle');
my $t0 = time;
is($ws->read_close(5), 1001, 'silent for chat_ws_idle_timeout: close 1001');
cmp_ok(time - $t0, '<', 4, '... after about a second');

$ws = ChatWS->new(port => $slow_port, rcvbuf => 4096);
($st) = $ws->handshake('/v1/ws-slow', Authorization => "Bearer $token");
# each 125-byte ping earns a pong of the same size; the kernel's socket
# buffers take some MB of them first, then the queue fills
my $sent = 0;
my $until = time + 30;
for (1 .. 400000) {
    last unless $ws->send_frame(9, 'p' x 125);
    $sent++;
    last if time > $until;
}
ok($ws->eof_within(10), 'a client that never reads is closed') or
    diag "sent $sent pings";
like(ChatTest::error_log(), qr/reads too slowly, \d+ bytes waiting/,
     '... and the log says why');

# --- a client we did not write ---------------------------------------------

my @out = `/usr/bin/python3 t/lib/ws_client.py ws://127.0.0.1:$port/v1/ws $token 2>&1`;
is($?, 0, 'python3-websockets ran') or diag @out;
is_deeply([ map { s/\s+$//r } @out ],
          [ 'reply {"type":"pong"}', 'ping-frame ok', 'reply {"type":"pong"}',
            'closed 1009' ],
          'python3-websockets: pongs, ping frames, and a 1009 for 4 KiB');

unlike(ChatTest::error_log(), qr/\Q$token\E/, 'no token in the error log');
unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');

done_testing();
