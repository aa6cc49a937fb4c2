# The presence worker (chat-worker presence, started by scripts/stack)
# against the test stack's real PostgreSQL, Redis and Kafka-protocol
# broker:
#
#   - records made with kcat for two users, newer and older last_seen in
#     mixed order: PostgreSQL's presence.last_seen is the newest of each,
#     and an older one coming later changes nothing; a record for an
#     unknown user changes nothing; corrupt records go to chat.dlq and the
#     worker goes on;
#   - end to end: a user connects and disconnects over WebSocket, the
#     gateway produces the offline transition, and PostgreSQL has its
#     last_seen within seconds; with its Redis chat:seen:{uid} key deleted,
#     GET /v1/users/{id}/presence by a friend answers that last_seen from
#     PostgreSQL.

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatJWT;
use ChatPersist;

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

ChatPersist::start_gateway('presence-node');

my $run = sprintf '%x%x', $$, time;
my %uid = map { $_ => ChatPersist::register("${_}_$run") } qw(ann ben dan eve);

ChatTest::stack_svc('presence', 'start');

my $log = ChatPersist::stack_env('CHAT_VAR') . '/log/worker-presence.log';

sub log_size { -s $log // 0 }

# the records=N of the worker's "event=batch" lines from byte $off on
sub batched {
    my ($off) = @_;
    open my $in, '<', $log or return 0;
    seek $in, $off, 0;
    my $n = 0;
    while (<$in>) {
        $n += $1 if /event=batch .*\brecords=(\d+)/;
    }
    return $n;
}

sub wait_batched {
    my ($off, $n) = @_;
    return ChatTest::wait_until(sub { batched($off) >= $n },
                                timeout => 30, interval => 0.2);
}

# presence.last_seen of a user in ms, '' when it has no row
sub last_seen {
    my ($id) = @_;
    return ChatPersist::sql(
        "SELECT floor(extract(epoch FROM last_seen) * 1000)::bigint "
        . "FROM presence WHERE user_id = :'id'", id => $id);
}

sub record {
    my ($id, $seen) = @_;
    return [$id, qq({"user_id":$id,"online":false,"last_seen":$seen})];
}


# --- 1. records made with kcat --------------------------------------------------

my $t0 = int(time * 1000) - 3_600_000;
my $unknown = 8_000_000_000_000 + ($$ % 100_000);
my $off = log_size();

my $n = ChatPersist::produce('chat.presence',
    record($uid{ann}, $t0 + 3000),
    record($uid{ben}, $t0 + 500),
    record($uid{ann}, $t0 + 1000),
    [$uid{ann}, "not json $run"],
    record($uid{ben}, $t0 + 9000),
    record($unknown, $t0 + 7000),
    [$uid{ben}, qq({"user_id":$uid{ann},"online":false,"last_seen":1,)
                . qq("run":"$run"})],
    record($uid{ann}, $t0 + 2000),
    record($uid{ben}, $t0 + 4000));

ok(wait_batched($off, $n), "the worker has written the $n records")
    or diag `tail -20 $log`;
is(last_seen($uid{ann}), $t0 + 3000, 'ann: the newest last_seen');
is(last_seen($uid{ben}), $t0 + 9000, 'ben: the newest last_seen');
is(last_seen($unknown), '', 'the unknown user got no row');
is(ChatPersist::sql("SELECT count(*) FROM users WHERE id = :'id'",
                    id => $unknown), 0, '... nor an account');

my @dlq = grep { /\Q$run\E/ }
          ChatPersist::consume('chat.dlq', '%k\t%s\t%h\n');
is(scalar @dlq, 2, 'two records in chat.dlq') or diag @dlq;
like(join('', @dlq), qr/^\Q$uid{ann}\E\tnot json \Q$run\E\tchat-error=value is not valid JSON,chat-source=chat\.presence\/\d+\/\d+$/m,
     'the corrupt one, as it came, with its reason and source');
like(join('', @dlq), qr/chat-error=key is not the user of the record,chat-source=chat\.presence\//,
     'the one whose key is another user');

# the worker goes on; older last_seen coming later change nothing
$off = log_size();
$n = ChatPersist::produce('chat.presence',
    record($uid{ann}, $t0 + 100),
    record($uid{ben}, $t0 + 8999),
    record($uid{ben}, $t0 + 20000),
    record($uid{ann}, $t0 + 2999));
ok(wait_batched($off, $n), 'the worker went on after the dead letters');
is(last_seen($uid{ann}), $t0 + 3000, 'ann: an older last_seen changes nothing');
is(last_seen($uid{ben}), $t0 + 20000, 'ben: a newer one moves it forward');


# --- 2. end to end: WebSocket, gateway, Kafka, worker, PostgreSQL -----------------

my $api = sub {
    my ($method, $path, $who) = @_;
    my ($st, undef, $body) = ChatTest::http_request(
        $method => $path,
        { Authorization => 'Bearer ' . ChatJWT::token(sub => $uid{$who}) });
    return ($st, eval { ChatPersist::Json->decode($body) } // $body);
};

is(($api->(PUT => "/v1/friends/$uid{eve}", 'dan'))[0], 200, 'dan asks eve');
is(($api->(PUT => "/v1/friends/$uid{dan}", 'eve'))[0], 200, 'eve accepts');

is(last_seen($uid{dan}), '', 'dan has no last_seen in PostgreSQL yet');

my $before = int(time * 1000);
my $ws = ChatPersist::ws_connect($uid{dan});
sleep 0.5;
$ws->close;

my $seen = '';
ok(ChatTest::wait_until(sub { ($seen = last_seen($uid{dan})) ne '' },
                        timeout => 10, interval => 0.2),
   "dan's disconnect reaches PostgreSQL within seconds")
    or diag `tail -20 $log`;
cmp_ok($seen || 0, '>=', $before, '... with a last_seen after the connect');
cmp_ok($seen || 0, '<=', int(time * 1000), '... and not in the future');

my $redis = ChatPersist::stack_env('REDIS');
my ($rhost, $rport) = split /:/, $redis;
my $redis_seen = `redis-cli -h $rhost -p $rport GET 'chat:seen:{$uid{dan}}'`;
chomp $redis_seen;
is($redis_seen, $seen, 'Redis held the same last_seen');

my $del = `redis-cli -h $rhost -p $rport DEL 'chat:seen:{$uid{dan}}'`;
chomp $del;
is($del, 1, "dan's chat:seen key deleted from Redis");

my ($st, $j) = $api->(GET => "/v1/users/$uid{dan}/presence", 'eve');
is($st, 200, "eve may see dan's presence");
is(ref $j && $j->{last_seen}, $seen,
   'the last_seen comes from PostgreSQL')
    or diag explain $j;
ok(ref $j && !$j->{online}, '... offline');

done_testing();
