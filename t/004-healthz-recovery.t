# One nginx keeps running while each backend of the test stack is stopped,
# started, paused (hung) and resumed: /healthz names the backend that is
# gone, within its timeout, and answers 200 again once the backend is
# back, without restarting nginx.  The stack's workers, whose consumer
# groups the broker's restart and outages broke up, have their partitions
# again within 90 s (scripts/stack's max.poll.interval.ms for the local
# broker: it took up to five minutes and more).

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json);
use Time::HiRes qw(time);
use ChatTest;
use ChatPersist;

plan skip_all => 'changes the test stack: run by make test '
                 . '(CHAT_STACK_PROFILE=test)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

my $HEALTHZ_TIMEOUT = 1.5;

ChatTest::start_nginx(
    workers     => 2,
    http_config => <<'CONF',
    chat_node_name recovery;
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_redis_timeout 500ms;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_postgres_timeout 1s;
    chat_kafka_brokers $TEST_NGINX_KAFKA_BROKERS;
CONF
    config      => <<'CONF',
    location = /healthz {
        chat_healthz;
        chat_healthz_timeout 1500ms;
    }
CONF
);

sub health {
    my $t0 = time;
    my ($status, undef, $body) = ChatTest::http_get('/healthz', {},
                                                    timeout => 10);
    my $json = eval { decode_json($body) } || {};
    return ($status, $json, time - $t0, $body);
}

# Both workers must be healthy: several answers in a row.
sub healthy_again {
    my ($what, $timeout) = @_;
    my $streak = 0;
    my $ok = ChatTest::wait_until(sub {
        my ($status) = health();
        $streak = $status == 200 ? $streak + 1 : 0;
        return $streak >= 6;
    }, timeout => $timeout, interval => 0.25);
    ok($ok, "$what: 200 again without restarting nginx");
    my ($status, $json, undef, $body) = health();
    is($status, 200, "$what: still 200") or diag $body;
}

ok(ChatTest::wait_until(sub { (health())[0] == 200 }, timeout => 15),
   'all backends up at the start');

# the broker first: its workers rejoin their groups meanwhile (below)
my @cases = (
    # service,   break,  mend,     states when broken,  recover within
    [ 'kafka',    'stop',  'start',  qr/^(down|timeout)$/, 30 ],
    [ 'kafka',    'down',  'up',     qr/^(down|timeout)$/, 30 ],
    [ 'kafka',    'pause', 'resume', qr/^(timeout|down)$/, 30 ],
    [ 'redis',    'stop',  'start',  qr/^down$/,          15 ],
    [ 'redis',    'pause', 'resume', qr/^(timeout|down)$/, 15 ],
    [ 'postgres', 'stop',  'start',  qr/^down$/,          20 ],
    [ 'postgres', 'pause', 'resume', qr/^(timeout|down)$/, 20 ],
);

# the consuming workers' logs
my @workers = qw(persist presence index);

# a worker's last "assigned" or "revoked" event, and its log's last lines
sub wlast {
    my ($w) = @_;
    my $f = ChatPersist::stack_env('CHAT_VAR') . "/log/worker-$w.log";
    my ($last, @tail) = ('');
    open my $in, '<', $f or return ('');
    while (my $line = <$in>) {
        $last = $1 if $line =~ /event=(assigned|revoked)\b/;
        push @tail, $line;
        shift @tail if @tail > 10;
    }
    return ($last, join '', @tail);
}

for my $case (@cases) {
    my ($svc, $break, $mend, $states, $recover) = @$case;
    my $what = "$svc $break";

    ChatTest::stack_svc($svc, $break);

    # every worker notices, each within the healthz timeout
    for my $i (1 .. 4) {
        my ($status, $json, $elapsed, $body) = health();
        is($status, 503, "$what: 503 (request $i)") or diag $body;
        like($json->{$svc} // '', $states,
             "$what: $svc reported as $json->{$svc}") or diag $body;
        like($json->{message} // '', qr/\b\Q$svc\E\b/,
             "$what: the message names $svc");
        for my $other (grep { $_ ne $svc } qw(redis postgres kafka)) {
            is($json->{$other}, 'ok', "$what: $other still ok");
        }
        cmp_ok($elapsed, '<', $HEALTHZ_TIMEOUT + 0.5,
               "$what: answered in time (" . sprintf('%.2f', $elapsed)
               . ' s)');
    }

    ChatTest::stack_svc($svc, $mend);
    healthy_again($what, $recover);
}

# each worker's last word on its partitions is "assigned" (a session lost
# in the broker's last outage has timed out by now: session.timeout.ms is
# 6 s, the other cases take longer)
for my $w (@workers) {
    ok(ChatTest::wait_until(sub { (wlast($w))[0] eq 'assigned' },
                            timeout => 90, interval => 1),
       "worker $w has its partitions again")
        or diag((wlast($w))[1]);
}

like(ChatTest::error_log(), qr/chat: redis 127\.0\.0\.1:\d+: connected/,
     'the error log tells when Redis came back');
unlike(ChatTest::error_log(), qr/password=/,
       'no connection string in the error log');

done_testing();
