# Receipts for several messages in one frame (CONTRACT v1.1):
# {"type":"receipt","ids":[...],"status":...} is answered as if each id had
# come in a receipt of its own:
#
#   - the sender gets a delivered, then a read receipt for every id, in
#     order; the recipient's inbox moves as with single receipts, and
#     chat.receipts holds one record per change;
#   - an id that changes nothing is not sent on, an unknown one gets an
#     error frame carrying its id, the others of the frame go on;
#   - "id" and "ids" together, an empty "ids", more than 100, items that
#     are not message ids, the same id twice: bad_request, nothing done;
#   - the frame is metered once (chat_ws_frame_rate), but each id counts
#     towards the 1024 receipts a connection may have under way.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatJWT;
use ChatWS;
use ChatClient qw(register_users ws_connect frame frames quiet);

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

ChatTest::start_nginx(
    workers     => 1,
    http_config => <<'CONF',
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_redis_timeout 20s;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_kafka_brokers $TEST_NGINX_KAFKA_BROKERS;
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
CONF
    config      => <<'CONF',
    location /v1/ {
        chat_api;
    }
    location = /v1/ws {
        chat_send_rate off;
        chat_websocket;
    }
    location = /v1/ws-slow {
        chat_ws_frame_rate 1r/m burst=2;
        chat_websocket;
    }
CONF
);

my $run = sprintf '%x%x', $$, time;
my %uid = register_users('ri', qw(ann ben));

my ($rhost, $rport) = split /:/, $ENV{TEST_NGINX_REDIS};
sub redis { my $out = `redis-cli -h $rhost -p $rport @_ 2>&1`; chomp $out;
            return $out }

# the state of message id in ben's inbox: u(ndelivered), d(elivered), r(ead)
sub state_of { (split / /, redis("HGET chat:inbox:{$uid{ben}} $_[0]"))[0]
               // '' }

sub receipt { $_[0]->send_text(encode_json({ type => 'receipt', @_[1 .. $#_] })) }

my $ann = ws_connect(ChatTest::port(), $uid{ann});
my $ben = ws_connect(ChatTest::port(), $uid{ben});

my $N = 30;
$ann->send_text(encode_json({ type => 'send', to => $uid{ben},
                              client_id => "m$_-$run", body => "msg $_" }))
    for 1 .. $N;
my @acks = frames($ann, 'ack', $N, 30);
is(scalar @acks, $N, "ann sends ben $N messages");
my @ids = map { $_->{id} } @acks;
is(scalar(frames($ben, 'message', $N, 30)), $N, '... and he gets them');
my @before = map { state_of($_) } @ids;
is(scalar(grep { $_ eq 'u' } @before), $N, '... undelivered in his inbox')
    or diag "@before";

# --- delivered for all in one frame, read for some in another ----------------

receipt($ben, ids => \@ids, status => 'delivered');
my @dr = frames($ann, 'receipt', $N, 30);
is(scalar @dr, $N, "one frame of $N ids: ann gets $N delivered receipts");
is_deeply([ map { $_->{id} } @dr ], \@ids, '... one per id, in order');
is(scalar(grep { $_->{by} == $uid{ben} && $_->{status} eq 'delivered' }
          @dr), $N, '... by ben, delivered');
is(scalar(grep { state_of($_) eq 'd' } @ids), $N,
   "... and ben's inbox has them delivered");

my @read = @ids[0 .. 9];
receipt($ben, ids => \@read, status => 'read');
my @rr = frames($ann, 'receipt', 10, 30);
is_deeply([ map { $_->{id} } @rr ], \@read, 'read for 10: 10 read receipts');
is(scalar(grep { $_->{status} eq 'read' } @rr), 10, '... as read');
is(join('', map { state_of($_) } @ids), ('r' x 10) . ('d' x ($N - 10)),
   '... the inbox moves for those 10 only');

# what changes nothing is not sent on; an unknown id gets its own error,
# the rest of the frame goes on
receipt($ben, ids => [ $ids[0], "nope-$run", $ids[10] ], status => 'read');
my ($e) = frames($ben, 'error', 1, 10);
is($e && $e->{code}, 'unknown_message', 'an unknown id: unknown_message')
    or diag explain $e;
is($e && $e->{id}, "nope-$run", '... naming that id');
my @one = frames($ann, 'receipt', 1, 10);
is($one[0] && $one[0]{id}, $ids[10], '... the new one of the frame is read')
    or diag explain \@one;
ok(quiet($ann, 'receipt', 1), '... the one read already is not sent on');
is(state_of($ids[10]), 'r', '... and is read in the inbox');

# ann's receipts for her own messages: each id its error
receipt($ann, ids => [ @ids[20, 21] ], status => 'read');
my @own = frames($ann, 'error', 2, 10);
# (each id is looked up on its own: their answers come in either order)
is_deeply([ sort map { "$_->{code} $_->{id}" } @own ],
          [ sort map { "unknown_message $_" } @ids[20, 21] ],
          "the sender's receipts for her own messages: an error per id");

# chat.receipts: one record per change
my @k = grep { /"by":$uid{ben}\b/ }
        `kcat -b "$ENV{TEST_NGINX_KAFKA_BROKERS}" -C -t chat.receipts -o beginning -e -q 2>&1`;
is(scalar(grep { /"status":"delivered"/ } @k), $N,
   "chat.receipts holds $N delivered");
is(scalar(grep { /"status":"read"/ } @k), 11, '... and 11 read');

# --- bad frames: bad_request, nothing done ------------------------------------

my @left = @ids[20 .. 29];          # delivered, not read
for my $c (
    [ '"id" and "ids" together',
      { id => $left[0], ids => [ $left[1] ] } ],
    [ 'an empty "ids"', { ids => [] } ],
    [ '101 ids', { ids => [ @left, map { "x$_" } 1 .. 91 ] } ],
    [ 'an id that is not a string', { ids => [ $left[0], 5 ] } ],
    [ 'an empty id', { ids => [ $left[0], '' ] } ],
    [ 'an id over 64 bytes', { ids => [ $left[0], 'x' x 65 ] } ],
    [ '"ids" not an array', { ids => $left[0] } ],
    [ 'the same id twice', { ids => [ $left[0], $left[1], $left[0] ] } ],
) {
    my ($name, $r) = @$c;
    receipt($ben, %$r, status => 'read', client_id => "c-$run");
    my ($err) = frames($ben, 'error', 1, 10);
    is($err && $err->{code}, 'bad_request', "$name: bad_request")
        or diag explain $err;
    is($err && $err->{client_id}, "c-$run", '... with the client_id');
}
ok(quiet($ann, 'receipt', 1), '... and the sender hears of none of them');
is(join('', map { state_of($_) } @left), 'd' x 10,
   '... nor does the inbox move');

# --- metering: the frame once, the receipts under way each -------------------

# chat_ws_frame_rate 1r/m burst=2 on /v1/ws-slow: 50 ids in a frame are
# one frame, the fourth frame is one too many
{
    my $ws = ChatWS->new(port => ChatTest::port());
    my ($st) = $ws->handshake('/v1/ws-slow', Authorization => 'Bearer '
                              . ChatJWT::token(sub => $uid{ben}));
    is($st, 101, 'a connection with chat_ws_frame_rate 1r/m burst=2');
    $ws->send_all(join '', map {
        my $f = $_;
        ChatWS::frame_bytes(1, encode_json({
            type => 'receipt', status => 'read',
            ids => [ map { "s$f-$_-$run" } 1 .. 50 ] }))
    } 1 .. 4);
    my %c;
    my $end = time + 30;
    while (($c{total} // 0) < 151 && time < $end) {
        my $f = frame($ws, $end - time) // last;
        next unless ($f->{type} // '') eq 'error';
        $c{ $f->{code} }++;
        $c{total}++;
        $c{first}++ if ($f->{id} // '') =~ /^s1-/;
    }
    is($c{first}, 50, 'the first frame of 50 ids: 50 answers')
        or diag explain \%c;
    is($c{unknown_message}, 150, '... three frames of 50 checked')
        or diag explain \%c;
    is($c{rate_limited}, 1, '... the fourth frame rate_limited, once')
        or diag explain \%c;
    $ws->close;
}

# 11 frames of 100 unknown ids while Redis holds every client: 1024 are
# under way, the other 76 are busy, each with its id; then the 1024 are
# answered
{
    my $ws = ws_connect(ChatTest::port(), $uid{ben});
    my @x = map { sprintf 'x%04d-%s', $_, $run } 1 .. 1100;
    is(redis('CLIENT', 'PAUSE', 3000, 'ALL'), 'OK',
       'Redis holds every client for 3 s');
    $ws->send_all(join '', map {
        ChatWS::frame_bytes(1, encode_json({
            type => 'receipt', status => 'delivered',
            ids => [ @x[$_ * 100 .. $_ * 100 + 99] ] }))
    } 0 .. 10);
    my (@busy, %c);
    my $end = time + 40;
    while (@busy + ($c{unknown_message} // 0) < 1100 && time < $end) {
        my $f = frame($ws, $end - time) // last;
        next unless ($f->{type} // '') eq 'error';
        $c{ $f->{code} }++;
        push @busy, $f->{id} if $f->{code} eq 'busy';
    }
    is_deeply(\@busy, [ @x[1024 .. 1099] ],
              '1100 ids at once: the last 76 busy, each naming its id')
        or diag explain \%c;
    is($c{unknown_message}, 1024, '... the 1024 under way are answered')
        or diag explain \%c;
    $ws->close;
}

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');

done_testing();
