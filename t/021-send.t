# {"type":"send"} over a real WebSocket, against the test stack's real
# PostgreSQL, Redis and Kafka-protocol broker: the ack comes only once the
# broker has the message (read back with kcat), a retried client_id gets
# the same ack and writes nothing twice, and with the broker down the
# sender gets an error frame, never an ack.  A reload while a send waits
# for the broker: the old worker keeps the ack for the client's retry.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatJWT;
use ChatWS;

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

ChatTest::start_nginx(
    workers     => 2,
    http_config => <<'CONF',
    chat_node_name send-node;
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_kafka_brokers $TEST_NGINX_KAFKA_BROKERS;
    chat_kafka_timeout 2s;
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
CONF
    config      => <<'CONF',
    location /v1/ {
        chat_api;
    }
    location = /v1/ws {
        chat_websocket;
    }
CONF
);

my $run = sprintf '%x%x', $$, time;
my %uid;
for my $name (qw(ann ben)) {
    my ($st, undef, $body) = ChatTest::http_request(
        POST => '/v1/users', {},
        encode_json({ username => "${name}_$run",
                      password => 'long-enough' }));
    is($st, 201, "register $name") or diag $body;
    $uid{$name} = decode_json($body)->{user_id};
}

my $ws = ChatWS->new(port => ChatTest::port());
my ($st) = $ws->handshake('/v1/ws', Authorization => 'Bearer '
                          . ChatJWT::token(sub => $uid{ann}));
is($st, 101, 'ann connects');

sub send_msg {
    my (%m) = @_;
    $ws->send_text(encode_json({ type => 'send', %m }));
    my $t = $ws->read_text(20);
    return eval { decode_json($t // '') } || { raw => $t };
}

my $t0 = time;
my $a1 = send_msg(to => $uid{ben}, client_id => "c1-$run", body => 'hello');
is($a1->{type}, 'ack', 'the first send is acknowledged') or diag explain $a1;
is($a1->{client_id}, "c1-$run", '... for its client_id');
like($a1->{id} // '', qr/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/, '... with an id');
ok($a1->{ts} > 1.7e12, '... and a wall-clock ts in ms');
my $a2 = send_msg(to => $uid{ben}, client_id => "c2-$run", body => 'again');
is($a2->{seq}, $a1->{seq} + 1, 'seq goes up by one in the conversation');
isnt($a2->{id}, $a1->{id}, 'ids differ');
my $again = send_msg(to => $uid{ben}, client_id => "c1-$run",
                     body => 'hello');
is_deeply($again, $a1, 'the same client_id again: the same ack');

# what the broker holds: each message once, keyed by conversation
my $conv = sprintf 'd:%d:%d', sort { $a <=> $b } @uid{qw(ann ben)};
my @lines = `kcat -b "$ENV{TEST_NGINX_KAFKA_BROKERS}" -C -t chat.messages -o beginning -e -q -f '%k %s\\n' 2>&1`;
my @ours = grep { /^\Q$conv\E / } @lines;
is(scalar @ours, 2, 'two messages in Kafka for three sends') or diag @ours;
my $m = decode_json((split / /, $ours[0], 2)[1]);
is($m->{id}, $a1->{id}, 'the message in Kafka has the acked id');
is($m->{body}, 'hello', '... its body');
is($m->{from}, $uid{ann}, '... from');
is($m->{to}, $uid{ben}, '... to');
is($m->{seq}, $a1->{seq}, '... seq');

for my $c (
    [ 'an unknown recipient', { to => 999999999, client_id => 'x1',
                                body => 'x' }, 'not_found' ],
    [ 'no to', { client_id => 'x2', body => 'x' }, 'bad_request' ],
    [ 'no client_id', { to => $uid{ben}, body => 'x' }, 'bad_request' ],
    [ 'a body that is not a string', { to => $uid{ben}, client_id => 'x3',
                                       body => [1] }, 'bad_request' ],
    [ 'a body over 16 KiB', { to => $uid{ben}, client_id => 'x4',
                              body => 'b' x 16385 }, 'bad_request' ],
    [ 'e2e not a boolean', { to => $uid{ben}, client_id => 'x5',
                             body => 'x', e2e => 'yes' }, 'bad_request' ],
    [ 'a group that does not exist', { group => 999999999, client_id => 'x6',
                                       body => 'x' }, 'not_found' ],
) {
    my ($name, $msg, $code) = @$c;
    my $r = send_msg(%$msg);
    is($r->{type}, 'error', "$name: an error frame");
    is($r->{code}, $code, "$name: $code");
}

# --- the broker down: an error, never an ack ------------------------------

ChatTest::stack_svc('kafka', 'down');
my $t1 = time;
my $r = send_msg(to => $uid{ben}, client_id => "c3-$run", body => 'lost?');
is($r->{type}, 'error', 'broker down: an error frame') or diag explain $r;
is($r->{code}, 'unavailable', '... unavailable');
is($r->{client_id}, "c3-$run", '... naming the client_id');
# librdkafka finds timed-out messages on a periodic scan, and an
# idempotent producer whose broker vanished takes some seconds more
cmp_ok(time - $t1, '<', 12,
       '... within chat_kafka_timeout (2 s) and librdkafka\'s own delays');
ChatTest::stack_svc('kafka', 'up');

my $ok;
for (1 .. 20) {
    $r = send_msg(to => $uid{ben}, client_id => "c3-$run", body => 'lost?');
    last if ($ok = ($r->{type} // '') eq 'ack');
    sleep 1;
}
ok($ok, 'broker back: the same client_id is acknowledged now')
    or diag explain $r;
@lines = `kcat -b "$ENV{TEST_NGINX_KAFKA_BROKERS}" -C -t chat.messages -o beginning -e -q -f '%k %s\\n' 2>&1`;
my @acked = grep { /"client_id":"c3-\Q$run\E"/ } @lines;
ok(scalar @acked >= 1, 'and its message is in Kafka');

$ws->send_text('{"type":"ping"}');
is($ws->read_text, '{"type":"pong"}', 'the connection lived through it');

# --- a reload with a send in flight ----------------------------------------
#
# The broker is paused, so the record waits in librdkafka; a reload closes
# the WebSocket (1001) and the old worker's exit waits for the broker
# (chat_kafka_timeout at most), which is resumed meanwhile.  The report
# that comes during that wait keeps the ack under the client_id, so the
# retry through a new worker gets that ack at once: not in_progress until
# the claim expires, and then a second copy of the message.

ChatTest::stack_svc('kafka', 'pause');
$ws->send_text(encode_json({ type => 'send', to => $uid{ben},
                             client_id => "c4-$run", body => 'in flight' }));
# claimed and handed to librdkafka: the record waits for the broker
sleep 0.5;
my $master = ChatTest::slurp(ChatTest::servroot() . '/logs/nginx.pid');
chomp $master;
my @old = split ' ', `pgrep -P $master`;
ok(kill('HUP', $master), 'nginx reloads');
# the close frame (1001), then the old worker waits for the broker
$ws->read_text(5);
sleep 0.5;
ChatTest::stack_svc('kafka', 'resume');
ok(ChatTest::wait_until(sub { !grep { kill 0, $_ } @old }, timeout => 10),
   'the old workers exit');
my $ws2 = ChatWS->new(port => ChatTest::port());
($st) = $ws2->handshake('/v1/ws', Authorization => 'Bearer '
                        . ChatJWT::token(sub => $uid{ann}));
is($st, 101, 'ann connects again, to a new worker');
$ws2->send_text(encode_json({ type => 'send', to => $uid{ben},
                              client_id => "c4-$run", body => 'in flight' }));
$r = eval { decode_json($ws2->read_text(10) // '') } || {};
is($r->{type}, 'ack', 'the retry gets the ack the old worker kept')
    or diag explain $r;
is($r->{client_id}, "c4-$run", '... for its client_id');
@lines = `kcat -b "$ENV{TEST_NGINX_KAFKA_BROKERS}" -C -t chat.messages -o beginning -e -q -f '%k %s\\n' 2>&1`;
my @c4 = grep { /"client_id":"c4-\Q$run\E"/ } @lines;
is(scalar @c4, 1, 'the message is in Kafka once') or diag @c4;
is(eval { decode_json((split / /, $c4[0] // '', 2)[1])->{id} }, $r->{id},
   '... with the acked id');

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');

done_testing();
