# The fault matrix (issue #18, docs/RELIABILITY.md): a steady load of 1:1
# and group messages over real WebSockets through a 2-worker gateway on the
# test stack (t/lib/ChatFaults.pm), and one fault per row injected while it
# runs: the broker down 10 s, the broker restarted, Redis restarted, Redis
# unreachable 10 s, PostgreSQL restarted, the persist worker SIGKILLed, an
# nginx worker SIGKILLed; then, with `scripts/stack up --nodes 3` (an edge
# in front of three chat nodes), a node reloaded and a node SIGKILLed
# behind the edge, the load going through the edge.  After each row the load stops, drains (every
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
use HTTP::Tiny;
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
my $nodes_up;
END {
    for (@Mend) {
        eval { ChatTest::stack_svc(@$_) };
    }
    # back to one node for the next suites
    eval { ChatTest::stack('up') } if $nodes_up;
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

    # finding 2 (docs/RELIABILITY.md, fixed; t/058 checks it alone): group
    # messages fanned out while a worker resubscribed could miss its members
    { name    => 'Redis restart',
      inject  => [['svc', 'redis', 'stop'], ['hold', 2]],
      recover => [['svc', 'redis', 'start']] },

    # finding 1 (docs/RELIABILITY.md, "Findings", fixed): a CLAIM that
    # timed out while Redis was paused runs when it resumes; its client_id
    # is "pending" until that expires (33 s here), then a retry goes
    { name    => 'Redis unreachable 10 s',
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

# a row of @Rows under $load: the load runs, the fault, the recovery, the
# drain and the checks
sub run_row {
    my ($load, $row) = @_;
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
        return;
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

run_row($load, $_) for @Rows;
$load->close_all;

# --- behind an edge: three nodes (scripts/stack up --nodes 3) -------------
#
# The same load, through the edge's plain HTTP port (TLS is t/056's), its
# users registered and logged in through the edge (the nodes know the
# stack's token secret).  The node with most of them is reloaded, then
# SIGKILLed and started again: its clients reconnect through the edge.

# scripts/stack svc <the busiest node> ACTION, the load going on meanwhile
sub node_svc {
    my ($action) = @_;
    return ['code', sub {
        my ($l) = @_;
        $l->note('svc %s %s', $l->{node}, $action);
        $l->bg($ChatTest::StackScript, 'svc', $l->{node}, $action);
    }];
}

my @NodeRows = (
    { name    => 'node reload',
      inject  => [node_svc('reload')],
      recover => [] },
    { name    => 'node kill behind the edge',
      inject  => [node_svc('kill'), ['hold', 2]],
      recover => [node_svc('start')] },
);
@NodeRows = grep { $_->{name} =~ /\Q$ENV{CHAT_FAULTS_ONLY}\E/i } @NodeRows
    if $ENV{CHAT_FAULTS_ONLY};

if (@NodeRows) {
    $nodes_up = 1;
    ChatTest::stack('up', '--nodes', 3);
    ChatPersist::stack_env_reload();
    my $edge = ChatPersist::stack_env('CHAT_HTTP_PORT');
    my $http = HTTP::Tiny->new(timeout => 10);
    my (@nuid, %tok, %on);
    for my $i (0 .. 4) {
        my $user = "fle${i}_$run";
        my $body = JSON::PP::encode_json({ username => $user,
                                            password => 'long-enough' });
        my $r = $http->post("http://127.0.0.1:$edge/v1/users",
                            { headers => { 'Content-Type' => 'application/json' },
                              content => $body });
        my $uid = eval { decode_json($r->{content})->{user_id} };
        $r = $http->post("http://127.0.0.1:$edge/v1/sessions",
                         { headers => { 'Content-Type' => 'application/json' },
                           content => $body });
        $tok{$uid} = eval { decode_json($r->{content})->{token} } if $uid;
        push @nuid, $uid;
        $r = $http->get("http://127.0.0.1:$edge/v1/me",
                        { headers => { Authorization => "Bearer $tok{$uid}" } })
            if $uid && $tok{$uid};
        $on{$r->{headers}{'x-chat-node'} // '?'}++ if $uid;
    }
    is(scalar(grep { $_ && $tok{$_} } @nuid), 5,
       'behind the edge: 5 users registered and logged in');
    my $r = $http->post("http://127.0.0.1:$edge/v1/groups",
                        { headers => { 'Content-Type' => 'application/json',
                                       Authorization => "Bearer $tok{$nuid[0]}" },
                          content => JSON::PP::encode_json({
                              name => "faults edge $run",
                              members => [@nuid[1 .. 4]] }) });
    my $ng = eval { decode_json($r->{content})->{group_id} };
    ok($ng, 'behind the edge: the group') or diag $r->{content};
    my ($busiest) = sort { $on{$b} <=> $on{$a} || $a cmp $b }
                    grep { /^node\d$/ } keys %on;
    my $nload = ChatFaults->new(users => \@nuid, group => $ng,
                                pairs => [[@nuid[0, 1]], [@nuid[2, 3]]],
                                rate => $ENV{CHAT_FAULTS_RATE} // 5,
                                run => "e$run", port => $edge,
                                tokens => \%tok);
    $nload->{node} = $busiest;
    note('users per node: ' . join(', ', map { "$_ $on{$_}" } sort keys %on)
         . "; the faults hit $busiest");
    run_row($nload, $_) for @NodeRows;
    $nload->close_all;
}

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
