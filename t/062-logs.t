# Logs: the access-log variables $chat_user_id, $chat_node and
# $chat_conn_id (the WebSocket's connection number, the "*N" of its error
# log lines), and one error-log line per abnormal close at
# chat_close_log_level, none for a normal close below debug.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatJWT;
use ChatWS;
use ChatClient qw(register_users ws_connect next_of);
use ChatPersist;

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

ChatPersist::start_gateway(
    'logs-node',
    workers      => 2,
    http_extra   => <<'CONF',
    chat_ws_max_message 1k;
    log_format chat '$remote_addr "$request" $status user=$chat_user_id '
                    'node=$chat_node conn=$chat_conn_id';
    access_log $TEST_NGINX_SERVER_ROOT/logs/chat.log chat;
    chat_close_log_level warn;
CONF
    config_extra => <<'CONF',
    location = /v1/ws-quiet {
        chat_websocket;
        chat_close_log_level error;
    }
    location = /v1/ws-idle {
        chat_websocket;
        chat_ws_idle_timeout 1s;
    }
CONF
);

my $root = ChatTest::servroot();
my %uid = register_users('logs', qw(ann));

sub access_log { ChatTest::slurp("$root/logs/chat.log") }

# the connection number of user's latest connection ("*N ... connected")
sub conn_of {
    my ($user) = @_;
    my ($n) = ChatTest::error_log() =~
        /.*\*(\d+) chat: ws: user \Q$user\E connected/s;
    return $n;
}

# --- the access log -------------------------------------------------------

my $ws = ws_connect(ChatTest::port(), $uid{ann});
my $conn;
ok(ChatTest::wait_until(sub { $conn = conn_of($uid{ann}) }),
   'the connection is in the error log');
my $line;
ok(ChatTest::wait_until(sub {
       ($line) = grep { m{"GET /v1/ws HTTP/1.1"} } split /\n/, access_log();
       $line }),
   'the upgrade is in the access log once the 101 is out')
    or diag access_log();
like($line, qr/ 101 user=$uid{ann} node=logs-node conn=$conn$/,
     '... with the user, the node and the connection\'s number');

my ($st) = ChatTest::http_get('/v1/me', { Authorization => 'Bearer '
                                          . ChatJWT::token(sub => $uid{ann})
                                        });
is($st, 200, 'an API request');
ok(ChatTest::wait_until(sub { access_log() =~ m{"GET /v1/me HTTP/1.1"} }),
   '... logged');
like(access_log(),
     qr{"GET /v1/me HTTP/1\.1" 200 user=$uid{ann} node=logs-node conn=-\n},
     '... with its user, and no connection id');
like(access_log(), qr{"POST /v1/users HTTP/1\.1" 201 user=- node=logs-node},
     'a registration: no user yet');

# --- closes -------------------------------------------------------------

# a new WebSocket of ann at path: (it, the handshake's status, its number)
sub open_ws {
    my ($path, $token) = @_;
    my $old = conn_of($uid{ann}) // 0;
    my $ws = ChatWS->new(port => ChatTest::port());
    my ($st) = $ws->handshake($path, Authorization => 'Bearer '
                              . ($token // ChatJWT::token(sub => $uid{ann})));
    ChatTest::wait_until(sub { (conn_of($uid{ann}) // 0) != $old });
    return ($ws, $st, conn_of($uid{ann}));
}

# the "ws closed" lines of connection conn, once there is one (10 s)
sub close_lines {
    my ($conn) = @_;
    my @lines;
    ChatTest::wait_until(sub {
        @lines = grep { /chat: ws closed user=$uid{ann} conn=$conn / }
                 split /\n/, ChatTest::error_log() });
    return @lines;
}

# connection conn ended, and no "ws closed" line for it: an ordinary end
# is logged at debug
sub ended_quietly {
    my ($conn) = @_;
    ok(ChatTest::wait_until(sub {
           ChatTest::error_log() =~ /\*$conn chat: ws: user \d+ disconnected/
       }), '... the connection ended');
    unlike(ChatTest::error_log(),
           qr/chat: ws closed user=$uid{ann} conn=$conn /,
           '... and no "ws closed" line for it below debug');
}

# a normal close: no line (it is at debug)
$ws->send_frame(8, pack('n', 1000));
is($ws->read_close(5), 1000, 'a normal close');
$ws->close;
ended_quietly($conn);

# too big: one line at warn
($ws, undef, $conn) = open_ws('/v1/ws');
$ws->send_text('x' x 2000);
is($ws->read_close(5), 1009, 'a message over 1k: 1009');
$ws->close;
my @lines = close_lines($conn);
is(scalar @lines, 1, 'an abnormal close is logged once');
like($lines[0] // '',
     qr/\[warn\]\ \d+\#\d+:\ \*$conn\ chat:\ ws\ closed\ user=$uid{ann}
        \ conn=$conn\ code=1009\ reason=too_big\ detail="[^"]+"/x,
     '... at chat_close_log_level (warn), with its code and reason');

# the peer goes without a close frame: dropped, at this location's level
($ws, $st, $conn) = open_ws('/v1/ws-quiet');
is($st, 101, 'a connection where chat_close_log_level is error');
$ws->close;
like((close_lines($conn))[0] // '',
     qr/\[error\] .* code=1006 reason=dropped detail="connection lost"/,
     'a dropped connection: logged at error, as dropped (1006)');

# the reason and code of other ends, each at warn
for my $c (
    [ '/v1/ws-idle', sub { }, 1001, 'timeout', 'idle timeout' ],
    [ '/v1/ws', sub { $_[0]->send_frame(2, 'binary') }, 1003, 'bad_data',
      'only text frames are spoken here' ],
    [ '/v1/ws', sub { $_[0]->send_raw("\x81\x05hello") }, 1002,
      'bad_data', 'frame not masked' ],
) {
    my ($path, $do, $code, $reason, $detail) = @$c;
    ($ws, undef, $conn) = open_ws($path);
    $do->($ws);
    is($ws->read_close(5), $code, "$reason ($detail): closed with $code");
    $ws->close;
    like((close_lines($conn))[0] // '',
         qr/\[warn\] .* code=$code reason=$reason detail="\Q$detail\E"/,
         "... logged at warn, reason=$reason");
}

# a logout closes with 1008: an ordinary end, at debug
my $token = ChatJWT::token(sub => $uid{ann});
($ws, undef, $conn) = open_ws('/v1/ws', $token);
($st) = ChatTest::http_request(DELETE => '/v1/sessions/current',
                               { Authorization => "Bearer $token" });
is($st, 204, 'logout');
is($ws->read_close(10), 1008, '... closes the connection with 1008');
$ws->close;
ended_quietly($conn);

my $port = ChatTest::port();
ChatTest::stop_nginx();

# --- configuration --------------------------------------------------------

my $bad = eval {
    ChatPersist::start_gateway(
        'bad', name => 'bad', port => $port + 7,
        http_extra => '    chat_close_log_level debug;');
    1;
};
ok(!$bad, 'chat_close_log_level debug is refused');
like($@, qr/invalid value "debug"/, '... as an invalid value');

done_testing();
