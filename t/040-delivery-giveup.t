# Store-and-forward survives a Redis outage longer than
# chat_delivery_timeout: a message acknowledged while the recipient's Redis
# server is down is given up by the worker after that time, but the
# recipient's inbox is then no longer taken for complete (its marker,
# chat:inboxok:{user}, which survived the outage with Redis's data, is
# deleted as soon as the server is back), so the recipient's next
# connection reads it from PostgreSQL: once, in order.
#
# Two Redis servers (the second one started here, with its data saved on
# shutdown and loaded at start): the sender and the conversation's counter
# on the first, the recipient on the second, which goes down.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use ChatTest;
use ChatJWT;
use ChatPersist;
use ChatClient qw(ws_connect frames quiet);

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

my ($rhost, $rport) = split /:/, $ENV{TEST_NGINX_REDIS};
my $port2 = ($ENV{TEST_NGINX_PORT} || 1984) + 160;
my $dir = "/tmp/chat-redis-giveup-$$";
mkdir $dir;

sub redis2_up {
    ChatTest::wait_until(sub { !IO::Socket::INET->new(
                                   PeerAddr => '127.0.0.1',
                                   PeerPort => $port2) });
    system('redis-server', ChatTest::redis_auth_conf($dir),
           '--port', $port2, '--bind', '127.0.0.1',
           '--save', '', '--appendonly', 'no', '--daemonize', 'yes',
           '--pidfile', "$dir/redis.pid", '--dir', $dir,
           '--dbfilename', 'dump.rdb', '--logfile', "$dir/redis.log") == 0
        or BAIL_OUT('cannot start a second redis-server');
    return ChatTest::wait_until(sub {
        `redis-cli -p $port2 PING 2>&1` =~ /PONG/ });
}

END {
    if (open my $fh, '<', "$dir/redis.pid") {
        my $pid = <$fh>;
        kill 'TERM', $pid if $pid && $pid =~ /^\d+$/;
    }
    system('rm', '-rf', $dir);
}

sub r1 { my $o = `redis-cli -h $rhost -p $rport @_ 2>&1`; chomp $o; $o }
sub r2 { my $o = `redis-cli -h 127.0.0.1 -p $port2 @_ 2>&1`; chomp $o; $o }

ok(redis2_up(), 'a second Redis');

ChatTest::start_nginx(
    workers     => 1,
    http_config => <<"CONF",
    chat_redis $ENV{TEST_NGINX_REDIS} 127.0.0.1:$port2;
    chat_redis_password_file \$TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_redis_timeout 300ms;
    chat_delivery_timeout 2s;
    chat_postgres "\$TEST_NGINX_PG_DSN";
    chat_kafka_brokers \$TEST_NGINX_KAFKA_BROKERS;
    chat_jwt_secret_file \$TEST_NGINX_JWT_SECRET_FILE;
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

ChatTest::stack_svc('persist', 'start');

my $run = sprintf '%x%x', $$, time;
my @uids = map { ChatPersist::register("g${_}_$run") } 1 .. 20;

# which server holds whom: where its route is once it connected
my %ws = map { $_ => ws_connect(ChatTest::port(), $_) } @uids;
my %on;
ChatTest::wait_until(sub {
    %on = map { $_ => (r1("EXISTS chat:routes:{$_}") ? 1
                       : r2("EXISTS chat:routes:{$_}") ? 2 : 0) } @uids;
    !grep { !$_ } values %on });
$_->close for values %ws;

# the recipient on the second server, a sender on the first with a lower id
# (the conversation's counter is with the lower id: it stays reachable)
my ($to) = grep { $on{$_} == 2 } sort { $b <=> $a } @uids;
my ($from) = grep { $on{$_} == 1 && $_ < ($to // 0) } @uids;
ok($to && $from, 'a sender on the first server, a recipient on the second')
    or BAIL_OUT('no such pair: ' . explain(\%on));

ok(ChatTest::wait_until(sub { r2("ZCARD chat:routes:{$to}") eq '0' }),
   'the recipient is offline');

# its inbox is complete, as Redis says (the marker survives the outage)
r2("SET chat:inboxok:{$to} 1 EX 3600");
r2('SAVE');

# the recipient's server goes down (its data saved), two messages are sent
r2('SHUTDOWN SAVE');
ok(ChatTest::wait_until(sub { r2('PING') !~ /PONG/ }),
   "the recipient's Redis is down");

my $s = ChatPersist::ws_connect($from);
my @acks = map {
    ChatPersist::ws_send($s, to => $to, client_id => "lost$_-$run",
                         body => "lost $_")
} 1 .. 2;
is(scalar(grep { ($_->{type} // '') eq 'ack' } @acks), 2,
   'two messages are acked while it is down') or diag explain \@acks;

ok(ChatTest::wait_until(sub {
       (() = ChatTest::error_log() =~ /is in Kafka but not in the inbox/g)
           >= 2 }, timeout => 15),
   'the worker gives up their delivery after chat_delivery_timeout');
ok(ChatPersist::wait_caught_up(60), 'they are in PostgreSQL');

# back, with its data: the marker is there again, and then goes
ok(redis2_up(), "the recipient's Redis is back");
ok(ChatTest::wait_until(sub { r2("EXISTS chat:inboxok:{$to}") eq '0' },
                        timeout => 10),
   "the recipient's inbox is no longer marked complete");

# the recipient connects: both, from PostgreSQL, in order, once
my $t = ChatPersist::ws_connect($to);
my @got = frames($t, 'message', 2, 15);
is_deeply([ map { $_->{body} } @got ], [ 'lost 1', 'lost 2' ],
          'the recipient gets both messages, in order')
    or diag explain \@got;
is_deeply([ map { $_->{seq} } @got ], [ map { $_->{seq} } @acks ],
          '... with the seq of their acks');
ok(quiet($t, 'message', 1), '... once');

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');

done_testing();
