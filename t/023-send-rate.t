# chat_send_rate over real WebSockets against the test stack: a user's
# messages over the rate get rate_limited error frames (with the client_id
# and retry_after), counted across the user's connections and workers;
# other users are not affected; after retry_after the user may send again.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatJWT;
use ChatWS;
use ChatClient qw(register_users ws_connect);

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

ChatTest::start_nginx(
    workers     => 2,
    listen      => 'reuseport',
    http_config => <<'CONF',
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_kafka_brokers $TEST_NGINX_KAFKA_BROKERS;
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
CONF
    config      => <<'CONF',
    location /v1/ {
        chat_api;
    }
    location = /v1/ws {
        chat_send_rate 2r/s burst=3;
        chat_websocket;
    }
CONF
);

my $run = sprintf '%x%x', $$, time;
my %uid = register_users('r', qw(eve fay));

sub connect_as { ws_connect(ChatTest::port(), $uid{$_[0]}) }

# the answers (ack or error) to $n sends
sub answers {
    my ($ws, $n) = @_;
    my @a;
    while (@a < $n) {
        my $t = $ws->read_text(10) // last;
        my $f = decode_json($t);
        push @a, $f if $f->{type} eq 'ack' || $f->{type} eq 'error';
    }
    return @a;
}

# two connections of eve, 5 sends each at once: 1 + burst 3 pass
my @eve = (connect_as('eve'), connect_as('eve'));
for my $i (0, 1) {
    $eve[$i]->send_text(encode_json({ type => 'send', to => $uid{fay},
                                      client_id => "e$i-$_-$run",
                                      body => 'x' })) for 1 .. 5;
}
my @a = map { answers($_, 5) } @eve;
is(scalar @a, 10, 'ten answers');
my @acks = grep { $_->{type} eq 'ack' } @a;
my @limited = grep { ($_->{code} // '') eq 'rate_limited' } @a;
cmp_ok(scalar @acks, '>=', 4, 'at least the burst goes through');
cmp_ok(scalar @acks, '<=', 5, '... and not much more, across connections')
    or diag explain \@a;
is(scalar @acks + scalar @limited, 10, 'the rest is rate_limited');
like($limited[0]{client_id} // '', qr/^e[01]-\d-/,
     '... naming the client_id');
cmp_ok($limited[0]{retry_after}, '>', 0, '... with retry_after in ms');
cmp_ok($limited[0]{retry_after}, '<=', 2500, '... within a few intervals');

# another user is not affected
my $fay = connect_as('fay');
$fay->send_text(encode_json({ type => 'send', to => $uid{eve},
                              client_id => "f-$run", body => 'y' }));
my ($fa) = answers($fay, 1);
is($fa->{type}, 'ack', 'fay sends meanwhile');

# a rate-limited client_id is free: the same one goes through later
sleep(($limited[0]{retry_after} + 50) / 1000);
$eve[0]->send_text(encode_json({ type => 'send', to => $uid{fay},
                                 client_id => $limited[0]{client_id},
                                 body => 'x' }));
my ($again) = answers($eve[0], 1);
is($again->{type}, 'ack', 'after retry_after the same client_id is acked')
    or diag explain $again;

# sends whose connection is gone before their claim are metered all the
# same: 150 sends and a close frame in one write store about the burst
{
    my %u = register_users('p', qw(gil hal));
    my ($rhost, $rport) = split /:/, $ENV{TEST_NGINX_REDIS};
    my ($lo, $hi) = sort { $a <=> $b } @u{qw(gil hal)};
    my $seq = sub {
        my $o = `redis-cli -h $rhost -p $rport GET chat:seq:{d:$lo:$hi}`;
        chomp $o;
        return $o =~ /^\d+$/ ? $o : 0;
    };
    my $gil = ws_connect(ChatTest::port(), $u{gil});
    my $bytes = join '', map {
        ChatWS::frame_bytes(1, encode_json({ type => 'send', to => $u{hal},
                                             client_id => "p$_-$run",
                                             body => "p$_" }))
    } 1 .. 150;
    $gil->send_all($bytes . ChatWS::frame_bytes(8, pack('n', 1000)));
    ok($gil->eof_within(10), 'the connection closes after the pipeline');
    my $last = -1;
    ChatTest::wait_until(sub { my $n = $seq->(); my $same = $n == $last;
                               $last = $n; $same && $n > 0 },
                         timeout => 15, interval => 1);
    cmp_ok($last, '>=', 1, 'some of the pipelined sends are stored');
    cmp_ok($last, '<=', 3 + 1 + 2,
           '... no more than the burst (and what the rate adds meanwhile)');
}

like(ChatTest::error_log(), qr/user $uid{eve} sends too fast/,
     'refusals are logged at info');
unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');

done_testing();
