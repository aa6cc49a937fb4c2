# The fault matrix (issue #18, docs/RELIABILITY.md): a steady load of 1:1
# and group messages over real WebSockets through a 2-worker gateway on the
# test stack (t/lib/ChatFaults.pm), and one fault per row injected while it
# runs: the broker down 10 s, the broker restarted, Redis restarted, Redis
# unreachable 10 s, PostgreSQL restarted, the persist worker SIGKILLed, an
# nginx worker SIGKILLed.  After each row the load stops, drains (every
# send acked, delivered and stored) and is checked: nothing acked lost,
# nothing duplicated (what counts as what: ChatFaults.pm and
# RELIABILITY.md).  One line per row in a table at the end (diag).
#
# A row is one entry of @Rows: a name, the steps that inject the fault and
# the steps that end it (ChatFaults::steps: ['svc', SERVICE, ACTION],
# ['hold', S], ['kill9', PID], ['code', SUB]); time to recover counts from
# the end of the last of them to the first ack after it.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json);
use Time::HiRes qw(time);
use ChatTest;
use ChatPersist;
use ChatClient qw(api_as);
use ChatFaults;

our $TODO;

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

# whatever a failed row left broken is mended for the next suites
my @Mend = (['kafka', 'up'], ['kafka', 'start'], ['redis', 'resume'],
            ['redis', 'start'], ['postgres', 'start'], ['persist', 'start']);
END {
    for (@Mend) {
        eval { ChatTest::stack_svc(@$_) };
    }
}

for (@Mend) {
    ChatTest::stack_svc(@$_);
}
ChatFaults::start_gateway();

my $run = sprintf '%x%x', $$, time;
my @uid = map { ChatPersist::register("flt${_}_$run") } 0 .. 4;
my ($st, $g) = api_as($uid[0], POST => '/v1/groups',
                      { name => "faults $run", members => [@uid[1 .. 4]] });
is($st, 201, 'the group') or BAIL_OUT("POST /v1/groups: $st");

my $load = ChatFaults->new(users => \@uid, group => $g->{group_id},
                           pairs => [[@uid[0, 1]], [@uid[2, 3]]],
                           rate => $ENV{CHAT_FAULTS_RATE} // 5, run => $run);

my $HOLD = 10;      # s of the faults that last ("down 10 s")

my @Rows = (
    { name    => 'broker down 10 s',
      inject  => [['svc', 'kafka', 'down'], ['hold', $HOLD]],
      recover => [['svc', 'kafka', 'up']] },

    # The local broker keeps its log in memory (docs/ARCHITECTURE.md, "The
    # local stack and its Kafka"): what the persist worker has not read
    # when it stops is gone, which Apache Kafka's disk would have kept.
    # So the sends pause until the worker has read everything, then the
    # broker stops; the load goes on against the stopped broker.
    { name    => 'broker restart',
      inject  => [['code', sub {
                       my ($l) = @_;
                       $l->{sending} = 0;
                       $l->pump(30, sub { (ChatPersist::lag())[0] == 0 })
                           or die "the persist worker did not catch up\n";
                   }],
                  ['svc', 'kafka', 'stop'],
                  ['code', sub { $_[0]{sending} = 1 }],
                  ['hold', 2]],
      recover => [['svc', 'kafka', 'start']] },

    # finding 2 (docs/RELIABILITY.md): group messages fanned out while a
    # worker's subscription is not back yet may never reach its members
    # (sometimes: a race of the restart with the resubscription)
    { name    => 'Redis restart',
      known   => { lost => 'finding 2: a group message published while '
                               . 'a worker resubscribes may miss members' },
      inject  => [['svc', 'redis', 'stop'], ['hold', 2]],
      recover => [['svc', 'redis', 'start']] },

    # finding 1 (docs/RELIABILITY.md, "Findings"): a CLAIM that timed
    # out while Redis was paused runs when it resumes and leaves the
    # client_id "pending" for 24 h: its retries get in_progress forever
    { name    => 'Redis unreachable 10 s',
      known   => { unacked => 'finding 1: a timed-out CLAIM leaves its '
                                  . 'client_id pending for 24 h' },
      inject  => [['svc', 'redis', 'pause'], ['hold', $HOLD]],
      recover => [['svc', 'redis', 'resume']] },

    { name    => 'PostgreSQL restart',
      inject  => [['svc', 'postgres', 'stop'], ['hold', 2]],
      recover => [['svc', 'postgres', 'start']] },

    { name    => 'persist worker SIGKILL',
      inject  => [['svc', 'persist', 'kill'], ['hold', 2]],
      recover => [['svc', 'persist', 'start']] },

    # one worker of the gateway; its master starts another
    { name    => 'nginx worker SIGKILL',
      inject  => [['code', sub {
                       my ($l) = @_;
                       my @w = ChatFaults::nginx_workers();
                       die "no nginx workers\n" unless @w;
                       $l->{killed} = $w[0];
                       $l->steps(['kill9', $w[0]]);
                   }]],
      recover => [['code', sub {
                       my ($l) = @_;
                       $l->pump(10, sub {
                           my @w = ChatFaults::nginx_workers();
                           @w == 2 && !grep { $_ == $l->{killed} } @w;
                       }) or die "the master did not start a worker\n";
                   }]] },
);

# a row to run alone: CHAT_FAULTS_ONLY=<part of its name>
@Rows = grep { $_->{name} =~ /\Q$ENV{CHAT_FAULTS_ONLY}\E/i } @Rows
    if $ENV{CHAT_FAULTS_ONLY};

my @results;
my $t0 = time;
for my $row (@Rows) {
    $load->row_begin($row->{name});
    $load->pump(3);
    my $res = eval {
        $load->steps(@{ $row->{inject} });
        $load->steps(@{ $row->{recover} });
        $load->fault_over;
        $load->pump(4);
        $load->row_end;
    };
    if (!$res) {
        fail("$row->{name}: $@");
        diag($load->log_tail(40));
        next;
    }
    push @results, $res;
    my $n = $row->{name};
    # a check with a known, reported defect runs and prints as TODO
    # (prove says "TODO passed" when it passes: then drop the "known")
    my %known = %{ $row->{known} || {} };
    ok($res->{acked} > 0, "$n: messages acked ($res->{acked})");
    { local $TODO = $known{unacked};
      is($res->{unacked}, 0, "$n: every send acked in the end"); }
    { local $TODO = $known{lost};
      is(scalar @{ $res->{lost} }, 0, "$n: nothing acked lost")
          or diag(join "\n", grep { defined } @{ $res->{lost} }[0 .. 19]); }
    is(scalar @{ $res->{dups} }, 0, "$n: nothing duplicated")
        or diag(join "\n", grep { defined } @{ $res->{dups} }[0 .. 19]);
    if (@{ $res->{lost} } || @{ $res->{dups} } || $res->{unacked}) {
        my @w = @{ $res->{words} };
        splice @w, 6 if @w > 6;
        diag("the story of @w:\n" . $load->log_grep(@w));
    }
}
$load->close_all;

sub errors_of {
    my ($r) = @_;
    my $e = $r->{errors};
    return "$r->{name}: "
        . (join(' ', map { "$_=$e->{$_}" } sort keys %$e) || 'none');
}

diag(sprintf("\nfault matrix (%s, %d users at %s msgs/s each, %.0f s):\n",
             scalar(localtime), scalar @uid, $load->{rate}, time - $t0)
     . ChatFaults::table_head()
     . join('', map { ChatFaults::table_line($_) } @results)
     . "errors the clients got:\n"
     . join('', map { '  ' . errors_of($_) . "\n" } @results));

done_testing();
