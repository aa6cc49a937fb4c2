# chat_redis with two servers: users' keys (routes, inboxes, presence,
# dedup, rate) are spread over both by consistent hashing on the user id,
# and messaging, receipts and presence work across them.  The second Redis
# is started by this test (the test stack has one).

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use ChatTest;
use ChatJWT;
use ChatWS;
use ChatClient qw(ws_connect next_of);

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

my ($rhost, $rport) = split /:/, $ENV{TEST_NGINX_REDIS};
my $port2 = ($ENV{TEST_NGINX_PORT} || 1984) + 150;
my $dir = "/tmp/chat-redis2-$$";
mkdir $dir;
# the last run's server may still be on its way out
ChatTest::wait_until(sub { !IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                                  PeerPort => $port2) });
# The same password as the stack's: chat_redis_password_file is one for
# all servers.
my $conf = ChatTest::redis_auth_conf($dir);
system('redis-server', $conf, '--port', $port2,
       '--bind', '127.0.0.1',
       '--save', '', '--appendonly', 'no', '--daemonize', 'yes',
       '--pidfile', "$dir/redis.pid", '--dir', $dir,
       '--logfile', "$dir/redis.log") == 0
    or BAIL_OUT('cannot start a second redis-server');
END {
    if (open my $fh, '<', "$dir/redis.pid") {
        my $pid = <$fh>;
        kill 'TERM', $pid if $pid && $pid =~ /^\d+$/;
    }
    system('rm', '-rf', $dir);
}
ok(ChatTest::wait_until(sub {
       `redis-cli -p $port2 PING 2>&1` =~ /PONG/ }), 'a second Redis');

sub r1 { my $o = `redis-cli -h $rhost -p $rport @_ 2>&1`; chomp $o; $o }
sub r2 { my $o = `redis-cli -h 127.0.0.1 -p $port2 @_ 2>&1`; chomp $o; $o }

ChatTest::start_nginx(
    workers     => 2,
    http_config => <<"CONF",
    chat_redis $ENV{TEST_NGINX_REDIS} 127.0.0.1:$port2;
    chat_redis_password_file \$TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_redis_timeout 500ms;
    chat_postgres "\$TEST_NGINX_PG_DSN";
    chat_kafka_brokers \$TEST_NGINX_KAFKA_BROKERS;
    chat_jwt_secret_file \$TEST_NGINX_JWT_SECRET_FILE;
CONF
    config      => <<'CONF',
    location /v1/ {
        chat_auth on;
        chat_api;
    }
    location = /v1/users {
        chat_api;
    }
    location = /v1/ws {
        chat_websocket;
    }
    location = /healthz {
        chat_healthz;
    }
CONF
);

is((ChatTest::http_get('/healthz'))[0], 200, 'healthy with both servers');

my $run = sprintf '%x%x', $$, time;
my @names = map { "s${_}_$run" } 1 .. 8;
my %uid;
for my $n (@names) {
    my ($st, undef, $body) = ChatTest::http_request(
        POST => '/v1/users', {},
        encode_json({ username => $n, password => 'long-enough' }));
    $uid{$n} = decode_json($body)->{user_id};
}
is(scalar(grep { $_ } values %uid), 8, 'eight users');

sub auth { { Authorization => 'Bearer ' . ChatJWT::token(sub => $_[0]) } }

# the first user befriends everyone
my $hub = $names[0];
for my $n (@names[1 .. 7]) {
    ChatTest::http_request(PUT => "/v1/friends/$uid{$n}", auth($uid{$hub}));
    ChatTest::http_request(PUT => "/v1/friends/$uid{$hub}", auth($uid{$n}));
}

sub connect_as { ws_connect(ChatTest::port(), $uid{$_[0]}) }


my %ws = map { $_ => connect_as($_) } @names;

# where each user's route is: on exactly one server, and both are used
my (%on1, %on2);
ok(ChatTest::wait_until(sub {
       %on1 = map { $_ => r1("EXISTS chat:routes:{$uid{$_}}") } @names;
       %on2 = map { $_ => r2("EXISTS chat:routes:{$uid{$_}}") } @names;
       8 == grep { $on1{$_} + $on2{$_} == 1 } @names }),
   "each user's routes live on exactly one server");
my $n1 = grep { $on1{$_} } @names;
my $n2 = grep { $on2{$_} } @names;
ok($n1 > 0 && $n2 > 0, "both servers hold users ($n1 and $n2)");
is(scalar(grep { r1("ZSCORE chat:presence:live $uid{$_}") =~ /^\d+$/ }
          grep { $on1{$_} } @names), $n1,
   'the online set of server 1 has its users');
my @live2 = split /\n/, r2('ZRANGE chat:presence:live 0 -1');
is_deeply([ sort @live2 ],
          [ sort map { $uid{$_} } grep { $on2{$_} } @names ],
          '... and that of server 2 exactly its own');

# the hub messages everyone; everyone answers with a receipt
for my $n (@names[1 .. 7]) {
    $ws{$hub}->send_text(encode_json({ type => 'send', to => $uid{$n},
                                       client_id => "c-$n", body => $n }));
}
my $acks = 0;
$acks++ while $acks < 7 && next_of($ws{$hub}, 'ack');
is($acks, 7, 'seven acks');
my $got = 0;
for my $n (@names[1 .. 7]) {
    my $m = next_of($ws{$n}, 'message');
    $got++ if $m && $m->{body} eq $n;
    $ws{$n}->send_text(encode_json({ type => 'receipt', id => $m->{id},
                                     status => 'read' })) if $m;
}
is($got, 7, 'every user on either server gets its message');
my $receipts = 0;
$receipts++ while $receipts < 7 && next_of($ws{$hub}, 'receipt');
is($receipts, 7, '... and the hub all the read receipts');

# presence across servers: a user on the other server leaves
my ($other) = grep { ($on1{$_} ? 1 : 2) != ($on1{$hub} ? 1 : 2) } @names;
$ws{$other}->close;
my $p;
do { $p = next_of($ws{$hub}, 'presence') } while $p && $p->{online};
is($p && $p->{user_id}, $uid{$other},
   'the hub hears that a friend on the other server left');
my ($st, undef, $body) = ChatTest::http_get("/v1/users/$uid{$other}/presence",
                                            auth($uid{$hub}));
is(decode_json($body)->{online}, JSON::PP::false,
   '... and GET presence agrees');
ok((r1("EXISTS chat:seen:{$uid{$other}}") + r2("EXISTS chat:seen:{$uid{$other}}")) == 1,
   '... its last_seen on its own server only');

# --- the recipient's server stalls after the ack: the delivery is retried --

# a sender whose claim and seq live on server 1, a recipient on server 2
my ($snd, $rcv);
for my $x (grep { $on1{$_} && $_ ne $other } @names) {
    ($rcv) = grep { $on2{$_} && $uid{$_} > $uid{$x} && $_ ne $other } @names;
    if ($rcv) { $snd = $x; last }
}
SKIP: {
    skip 'no sender/recipient pair across the servers', 4 unless $rcv;

    open my $fh, '<', "$dir/redis.pid" or die;
    chomp(my $pid2 = <$fh>);
    kill 'STOP', $pid2;
    for my $i (1 .. 5) {
        $ws{$snd}->send_text(encode_json({ type => 'send', to => $uid{$rcv},
                                           client_id => "stall$i-$run",
                                           body => "stall $i" }));
    }
    my $n = 0;
    $n++ while $n < 5 && next_of($ws{$snd}, 'ack', 10);
    is($n, 5, 'the recipient\'s Redis stopped: the sender still gets acks');
    sleep 2;
    kill 'CONT', $pid2;
    my %got;
    while (my $m = next_of($ws{$rcv}, 'message', 15)) {
        $got{ $m->{body} }++;
        last if keys %got == 5;
    }
    is_deeply([ sort keys %got ], [ map { "stall $_" } 1 .. 5 ],
              '... and once it is back, the recipient gets them all');
    like(ChatTest::error_log(), qr/Redis did not take a delivery, retrying/,
         '... the deliveries were retried');
    unlike(ChatTest::error_log(), qr/is in Kafka but not in the inbox/,
           '... none given up');
}

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');
ChatTest::stop_nginx();

done_testing();
