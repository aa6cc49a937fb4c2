package ChatFaults;

# The fault matrix (t/057-faults.t, docs/RELIABILITY.md): a steady load of
# real WebSocket clients through a ChatTest nginx on the test stack, faults
# injected into the stack while it runs, and the checks of what came out.
#
#   my $load = ChatFaults->new(users => [...], group => $gid,
#                              pairs => [[a, b], ...], rate => 5);
#   $load->row_begin('broker down 10 s');
#   $load->pump(3);                          # the load runs 3 s
#   $load->steps(['svc', 'kafka', 'down'], ['hold', 10]);
#   $load->fault_over;                       # from here on: recovery
#   $load->steps(['svc', 'kafka', 'up']);
#   ...
#   my $res = $load->row_end;                # drain, then check
#
# One process, one event loop over every client's socket (select, 10 ms):
# each user is one device; it sends at `rate` messages a second (1:1 to
# its peer, or to the group, alternately; a user without a peer sends to
# the group only), each with a unique client_id; a send that got no ack
# (error `unavailable`, `busy`, `in_progress`, `rate_limited`, no answer
# within 15 s, or the WebSocket closed) is sent again with the SAME
# client_id; every `message` frame is answered with a `delivered` receipt
# (batched, `ids`), sent again when it got an error; a client whose
# WebSocket closed reconnects with backoff (0.2 s doubling to 2 s) and
# gets what waited on connect.  Fault steps run as child processes while
# the loop keeps going.
#
# What counts (docs/RELIABILITY.md, "What the checks mean"):
#   lost       an acked message not stored in PostgreSQL, or not received
#              by a recipient's device
#   dup        the same id stored twice; one (sender, client_id) stored
#              twice; one client_id acked under two ids; a device that got
#              two ids for one (sender, client_id); a device that got the
#              same id twice on one connection without asking (sync); a
#              device that got an id again after it acknowledged it for
#              good (its receipt went out, no error came back, and its
#              connection stayed open SETTLE s after it)
#   resent     (legitimate, counted, not an error) an id got again on a
#              later connection or after a sync, when the receipt had not
#              settled (the connection closed, or the receipt got an error)

use strict;
use warnings;

use IO::Select ();
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);

use ChatTest;
use ChatJWT;
use ChatWS;
use ChatPersist;

my $J = JSON::PP->new->utf8->canonical;

our $SETTLE = 10;       # s a receipt needs to count as acknowledged for good
our $ACK_WAIT = 15;     # s without an answer before a send goes again
our $INFLIGHT = 8;      # sends of one client waiting for their ack at most

# a ChatTest nginx with 2 workers (reuseport: both get connections) on the
# test stack's backends; chat_kafka_timeout short so that a send to a
# broker that is down fails (and is retried) within seconds
sub start_gateway {
    my (%o) = @_;
    return ChatPersist::start_gateway('faults',
        workers    => $o{workers} // 2,
        listen     => 'reuseport',
        http_extra => '    chat_kafka_timeout 3s;');
}

# the pids of the ChatTest nginx's worker processes (children of its master)
sub nginx_workers {
    my $root = ChatTest::servroot();
    my ($master) = ChatTest::slurp("$root/logs/nginx.pid") =~ /(\d+)/
        or return ();
    my @w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = ChatTest::slurp($stat);
        push @w, $1 if $s =~ /^(\d+) \(nginx\) \S (\d+)/ && $2 == $master;
    }
    return sort { $a <=> $b } @w;
}

sub new {
    my ($class, %o) = @_;
    my $self = bless {
        port    => $o{port} // ChatTest::port(),
        # uid => bearer token (an edge's nodes know the stack's secret, not
        # ChatJWT's); without it, ChatJWT signs one
        tokens  => $o{tokens},
        rate    => $o{rate} // 5,
        group   => $o{group},
        members => [ @{ $o{users} } ],
        run     => $o{run} // sprintf('%x%x', $$, time),
        clients => {},
        log     => [],
        sending => 1,
    }, $class;
    my %peer;
    for my $p (@{ $o{pairs} || [] }) {
        $peer{$p->[0]} = $p->[1];
        $peer{$p->[1]} = $p->[0];
    }
    for my $u (@{ $o{users} }) {
        $self->{clients}{$u} = {
            uid => $u, peer => $peer{$u}, ws => undef, gen => 0,
            next_conn => 0, backoff => 0.2, n => 0, turn => 0,
            next_send => time + rand(1 / $self->{rate}),
            pending => {},      # cid => sent at (on this connection)
            retry => {},        # cid => due
            rq => [],           # receipts to send: ids
            rretry => {},       # id => due: receipts that got an error
            rsent => {},        # id => [gen, sent at, closed at]
            got => {},          # id => frames of it
            conn_got => {},     # id => 1, this connection (since a sync)
            by_cid => {},       # "from/cid" => { id => 1 }
        };
    }
    return $self;
}

sub note {
    my ($self, $fmt, @a) = @_;
    my $line = sprintf "%.3f $fmt", time, @a;
    push @{ $self->{log} }, $line;
    splice @{ $self->{log} }, 0, 10000 if @{ $self->{log} } > 40000;
}


# --- one row ---------------------------------------------------------------------

sub row_begin {
    my ($self, $name) = @_;
    $self->{row} = {
        name => $name, start => time, msgs => {}, acks => {},
        dup => [], fault_end => undef, first_ack => undef,
        resent => 0, conns => 0, errors => {},
    };
    $self->{sending} = 1;
}

# the fault is over (its last step done): time to recover counts from here
sub fault_over {
    my ($self) = @_;
    $self->{row}{fault_end} = time;
    $self->{row}{first_ack} = undef;
}

sub dup {
    my ($self, $what) = @_;
    push @{ $self->{row}{dup} }, $what;
    $self->note('DUP %s', $what);
}


# --- the event loop ----------------------------------------------------------------

# runs the load for $secs, or until $until->() is true
sub pump {
    my ($self, $secs, $until) = @_;
    my $end = time + $secs;
    while (time < $end) {
        $self->step;
        return 1 if $until && $until->();
    }
    return $until ? 0 : 1;
}

# fault steps: ['svc', SERVICE, ACTION] (scripts/stack svc, a child
# process), ['hold', S] (the load runs S s), ['kill9', PID], ['code', SUB]
sub steps {
    my ($self, @steps) = @_;
    for my $s (@steps) {
        my ($kind, @a) = @$s;
        if ($kind eq 'hold') {
            $self->pump($a[0]);
        } elsif ($kind eq 'svc') {
            $self->note('svc %s %s', @a);
            $self->bg($ChatTest::StackScript, 'svc', @a);
        } elsif ($kind eq 'kill9') {
            $self->note('kill -9 %d', $a[0]);
            kill 'KILL', $a[0] or die "ChatFaults: kill -9 $a[0]: $!\n";
        } elsif ($kind eq 'code') {
            $a[0]->($self);
        } else {
            die "ChatFaults: unknown step $kind\n";
        }
    }
}

# runs @cmd in a child while the load goes on; dies when it fails
sub bg {
    my ($self, @cmd) = @_;
    my $out = "/tmp/chatfaults-$$.out";
    my $pid = fork // die "ChatFaults: fork: $!\n";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    my $st;
    $self->pump(300, sub {
        my $r = waitpid $pid, POSIX::WNOHANG();
        $st = $? if $r == $pid;
        return $r == $pid;
    }) or die "ChatFaults: @cmd: still running after 300 s\n";
    my $text = ChatTest::slurp($out);
    unlink $out;
    die "ChatFaults: @cmd failed ($st):\n$text" if $st;
    return $text;
}

sub step {
    my ($self) = @_;
    my $now = time;
    my @socks;
    for my $c (values %{ $self->{clients} }) {
        if (!$c->{ws}) {
            next if $now < $c->{next_conn};
            $self->connect($c) or next;
        }
        $self->sends($c, $now);
        $self->flush_receipts($c);
        push @socks, $c->{ws}{sock} if $c->{ws};
    }
    my %by = map { ($_->{ws} ? (fileno($_->{ws}{sock}) => $_) : ()) }
             values %{ $self->{clients} };
    my @ready = @socks ? IO::Select->new(@socks)->can_read(0.01)
                       : do { sleep 0.01; () };
    for my $s (@ready) {
        my $c = $by{fileno $s} or next;
        my $n = sysread $s, my $chunk, 65536;
        if (!$n) {
            $self->disconnect($c, defined $n ? 'eof' : "read: $!");
            next;
        }
        $c->{ws}{buf} .= $chunk;
        $self->frames($c);
    }
}

sub connect {
    my ($self, $c) = @_;
    my $ws = eval { ChatWS->new(port => $self->{port}) };
    my ($st) = $ws ? eval {
        $ws->handshake('/v1/ws', Authorization => 'Bearer '
                       . ($self->{tokens} ? $self->{tokens}{$c->{uid}}
                                          : ChatJWT::token(sub => $c->{uid})))
    } : ();
    if (!$ws || !$st || $st != 101) {
        $self->note('user %d: connect failed (%s)', $c->{uid}, $st // $@);
        $c->{next_conn} = time + $c->{backoff};
        $c->{backoff} = $c->{backoff} * 2 > 2 ? 2 : $c->{backoff} * 2;
        return 0;
    }
    $c->{ws} = $ws;
    $c->{gen}++;
    $c->{backoff} = 0.2;
    $c->{conn_got} = {};
    $self->{row}{conns}++ if $self->{row} && $c->{gen} > 1;
    $self->note('user %d: connected (gen %d)', $c->{uid}, $c->{gen});
    # what waited for an ack goes again, the same client_id
    $c->{retry}{$_} = 0 for keys %{ $c->{pending} };
    $c->{pending} = {};
    return 1;
}

sub disconnect {
    my ($self, $c, $why) = @_;
    my $now = time;
    $self->note('user %d: disconnected (%s)', $c->{uid}, $why);
    eval { $c->{ws}->close };
    $c->{ws} = undef;
    $c->{next_conn} = $now + $c->{backoff};
    $c->{retry}{$_} = 0 for keys %{ $c->{pending} };
    $c->{pending} = {};
    for my $r (values %{ $c->{rsent} }) {
        $r->[2] //= $now if $r->[0] == $c->{gen};
    }
}

sub send_json {
    my ($self, $c, $obj) = @_;
    return 1 if $c->{ws}->send_text($J->encode($obj));
    $self->disconnect($c, 'write failed');
    return 0;
}

sub sends {
    my ($self, $c, $now) = @_;
    # retries first, the same client_id
    for my $cid (sort keys %{ $c->{retry} }) {
        last unless $c->{ws};
        next if $c->{retry}{$cid} > $now;
        delete $c->{retry}{$cid};
        $self->send_msg($c, $cid);
    }
    # sends without an answer for ACK_WAIT go again
    for my $cid (keys %{ $c->{pending} }) {
        if ($now - $c->{pending}{$cid} > $ACK_WAIT) {
            $self->note('user %d: no answer for %s', $c->{uid}, $cid);
            delete $c->{pending}{$cid};
            $c->{retry}{$cid} = 0;
        }
    }
    return unless $self->{sending} && $self->{row};
    while ($c->{ws} && $now >= $c->{next_send}
           && keys %{ $c->{pending} } < $INFLIGHT) {
        $c->{next_send} += 1 / $self->{rate};
        $c->{next_send} = $now if $c->{next_send} < $now - 1;
        my $cid = sprintf 'f%s-%d-%d', $self->{run}, $c->{uid}, ++$c->{n};
        my %m = (from => $c->{uid}, cid => $cid, row => $self->{row});
        if ($c->{peer} && $c->{turn}++ % 2 == 0) {
            $m{to} = $c->{peer};
        } else {
            $m{group} = $self->{group};
        }
        $self->{row}{msgs}{$cid} = \%m;
        $self->{msgs}{$cid} = \%m;
        $self->send_msg($c, $cid);
    }
}

sub send_msg {
    my ($self, $c, $cid) = @_;
    my $m = $self->{msgs}{$cid};
    return if $m->{id} && !$m->{again};
    $m->{tries}++;
    $c->{pending}{$cid} = time;
    $self->send_json($c, { type => 'send', client_id => $cid,
                           body => "fault load $cid",
                           ($m->{to} ? (to => $m->{to})
                                     : (group => $m->{group})) });
}

sub flush_receipts {
    my ($self, $c) = @_;
    my $now = time;
    for my $id (keys %{ $c->{rretry} }) {
        next if $c->{rretry}{$id} > $now;
        delete $c->{rretry}{$id};
        push @{ $c->{rq} }, $id;
    }
    return unless @{ $c->{rq} };
    my %seen;
    my @ids = grep { !$seen{$_}++ } @{ $c->{rq} };
    $c->{rq} = [];
    while (@ids && $c->{ws}) {
        my @batch = splice @ids, 0, 100;
        my $now = time;
        $c->{rsent}{$_} = [$c->{gen}, $now, undef] for @batch;
        $self->send_json($c, { type => 'receipt', ids => \@batch,
                               status => 'delivered' }) or last;
    }
    push @{ $c->{rq} }, @ids;
}

# complete frames in the client's buffer
sub frames {
    my ($self, $c) = @_;
    while ($c->{ws}) {
        my $buf = \$c->{ws}{buf};
        last if length $$buf < 2;
        my ($b0, $b1) = unpack 'CC', $$buf;
        my ($len, $off) = ($b1 & 0x7f, 2);
        if ($len == 126) {
            last if length $$buf < 4;
            ($len, $off) = (unpack('x2 n', $$buf), 4);
        } elsif ($len == 127) {
            last if length $$buf < 10;
            ($len, $off) = (unpack('x2 Q>', $$buf), 10);
        }
        last if length $$buf < $off + $len;
        my $payload = substr $$buf, $off, $len;
        substr($$buf, 0, $off + $len) = '';
        my $op = $b0 & 0x0f;
        if ($op == 8) {
            my $code = length $payload >= 2 ? unpack('n', $payload) : 0;
            $self->disconnect($c, "close $code");
            return;
        }
        if ($op == 9) {
            $c->{ws}->send_frame(10, $payload);
            next;
        }
        next unless $op == 1;
        my $f = eval { $J->decode($payload) };
        if (!$f) {
            $self->note('user %d: not JSON: %s', $c->{uid}, $payload);
            next;
        }
        $self->frame($c, $f);
    }
}

sub frame {
    my ($self, $c, $f) = @_;
    my $type = $f->{type} // '';
    my $row = $self->{row};
    if ($type eq 'ack') {
        my $cid = $f->{client_id} // '';
        my $m = $self->{msgs}{$cid};
        delete $c->{pending}{$cid};
        delete $c->{retry}{$cid};
        return $self->note('user %d: ack of unknown %s', $c->{uid}, $cid)
            unless $m;
        if ($m->{id} && $m->{id} ne $f->{id}) {
            $self->dup("client_id $cid acked as $m->{id} and $f->{id}");
            return;
        }
        if (!$m->{id}) {
            $self->note('user %d: ack %s %s seq %s', $c->{uid}, $cid,
                        $f->{id}, $f->{seq} // '?');
            $m->{id} = $f->{id};
            $m->{acked} = time;
            $m->{row}{acks}{$cid} = 1;
            $m->{row}{first_ack} //= $m->{acked}
                if $m->{row}{fault_end};
        }
    } elsif ($type eq 'error') {
        my $code = $f->{code} // '?';
        $row->{errors}{$code}++ if $row;
        if (defined $f->{client_id} && $self->{msgs}{$f->{client_id}}) {
            my $cid = $f->{client_id};
            delete $c->{pending}{$cid};
            # backoff per message: 0.25 s doubling to 4 s
            my $tries = $self->{msgs}{$cid}{tries} // 1;
            my $wait = $tries > 5 ? 4 : 0.125 * 2 ** $tries;
            $wait = ($f->{retry_after} // 1000) / 1000
                if $code eq 'rate_limited';
            $self->note('user %d: send %s: %s (try %d)', $c->{uid}, $cid,
                        $code, $tries);
            if ($code =~ /^(?:unavailable|busy|in_progress|rate_limited)$/) {
                $c->{retry}{$cid} = time + $wait;
            } else {
                $self->note('user %d: send %s: %s', $c->{uid}, $cid,
                            $J->encode($f));
            }
        } elsif (defined $f->{id}) {
            # a receipt that did not go through: again, later
            delete $c->{rsent}{$f->{id}};
            $c->{rretry}{$f->{id}} = time + 1
                if $code ne 'unknown_message';
            $self->note('user %d: receipt %s: %s', $c->{uid}, $f->{id},
                        $code);
        } else {
            $self->note('user %d: error %s', $c->{uid}, $J->encode($f));
        }
    } elsif ($type eq 'message') {
        my $id = $f->{id};
        my $key = "$f->{from}/" . ($f->{client_id} // '');
        $c->{by_cid}{$key}{$id} = 1;
        if (keys %{ $c->{by_cid}{$key} } > 1) {
            $self->dup("user $c->{uid} got $key as "
                       . join(' and ', sort keys %{ $c->{by_cid}{$key} }))
                if keys %{ $c->{by_cid}{$key} } == 2;
        }
        if ($c->{conn_got}{$id} && ($c->{synced} // 0) != $c->{gen}) {
            $self->dup("user $c->{uid} got $id twice on one connection");
        } elsif ($c->{got}{$id}) {
            my $r = $c->{rsent}{$id};
            my $until = $r ? ($r->[2] // time) : 0;
            if ($r && $until - $r->[1] >= $SETTLE) {
                $self->dup(sprintf 'user %d got %s again, %.1f s after '
                           . 'its receipt', $c->{uid}, $id,
                           time - $r->[1]);
            } else {
                $row->{resent}++ if $row;
            }
        }
        $self->note('user %d: got %s %s seq %s', $c->{uid}, $id, $key,
                    $f->{seq} // '?') unless $c->{got}{$id};
        $c->{got}{$id}++;
        $c->{conn_got}{$id} = 1;
        push @{ $c->{rq} }, $id;
    }
}

# asks every connected client for what is still undelivered
sub sync_all {
    my ($self) = @_;
    for my $c (values %{ $self->{clients} }) {
        next unless $c->{ws};
        $c->{synced} = $c->{gen};
        $self->send_json($c, { type => 'sync' });
    }
}


# --- the end of a row: drain, then the checks ------------------------------------

# recipients of a message: the peer, or the group's members but the sender
sub recipients {
    my ($self, $m) = @_;
    return ($m->{to}) if $m->{to};
    return grep { $_ != $m->{from} } @{ $self->{members} };
}

sub unacked {
    my ($self) = @_;
    return grep { !$_->{id} } values %{ $self->{row}{msgs} };
}

sub undelivered {
    my ($self) = @_;
    my @u;
    for my $m (values %{ $self->{row}{msgs} }) {
        next unless $m->{id};
        for my $r ($self->recipients($m)) {
            push @u, [$m, $r] unless $self->{clients}{$r}{got}{$m->{id}};
        }
    }
    return @u;
}

# rows of PostgreSQL for the row's acked messages:
# ({ id => count }, { "sender/cid" => count })
sub stored {
    my ($self) = @_;
    my @m = grep { $_->{id} } values %{ $self->{row}{msgs} };
    my (%by_id, %by_cid);
    return (\%by_id, \%by_cid) unless @m;
    my $out = ChatPersist::sql(<<'SQL',
SELECT 'i', id, count(*) FROM messages
 WHERE id = ANY (string_to_array(:'ids', ',')) GROUP BY id
UNION ALL
SELECT 'c', sender || '/' || client_id, count(*) FROM messages
 WHERE client_id = ANY (string_to_array(:'cids', ','))
 GROUP BY sender, client_id;
SQL
        ids => join(',', map { $_->{id} } @m),
        cids => join(',', map { $_->{cid} } @m));
    for (split /\n/, $out) {
        my ($k, $v, $n) = split /\|/;
        ($k eq 'i' ? \%by_id : \%by_cid)->{$v} = $n;
    }
    return (\%by_id, \%by_cid);
}

# stops new sends, waits until every send is acked, delivered and stored
# (up to $timeout s), then checks; the row's results
sub row_end {
    my ($self, %o) = @_;
    my $row = $self->{row};
    my $timeout = $o{timeout} // 60;
    $self->{sending} = 0;
    $row->{load_end} = time;
    my $t0 = time;
    $self->pump($timeout, sub { !$self->unacked });
    # the receipts of the last messages settle; a sync now and then fetches
    # what a device still lacks
    my $synced = time;
    $self->pump($timeout - (time - $t0), sub {
        if (time - $synced > 5) {
            $self->sync_all;
            $synced = time;
        }
        return !$self->undelivered;
    });
    my ($by_id, $by_cid) = ({}, {});
    my @acked = grep { $_->{id} } values %{ $row->{msgs} };
    $self->pump($timeout, sub {
        ($by_id, $by_cid) = $self->stored;
        return @acked == grep { $by_id->{$_->{id}} } @acked;
    }) if @acked;
    $self->pump(1);     # late frames: a duplicate would come now
    $row->{drained} = time - $t0;

    my %res = (name => $row->{name}, sent => scalar keys %{ $row->{msgs} },
               acked => scalar @acked, unacked => scalar $self->unacked,
               resent => $row->{resent}, reconnects => $row->{conns},
               errors => $row->{errors}, drain => $row->{drained});
    my (@lost, @dups);
    for my $m (@acked) {
        my $n = $by_id->{$m->{id}} // 0;
        push @lost, "$m->{cid} ($m->{id}) not in PostgreSQL" unless $n;
        push @dups, "$m->{id} stored $n times" if $n > 1;
        my $nc = $by_cid->{"$m->{from}/$m->{cid}"} // 0;
        push @dups, "($m->{from}, $m->{cid}) stored $nc times" if $nc > 1;
    }
    my @und = $self->undelivered;
    push @lost, sprintf('%s (%s) never reached user %d', $_->[0]{cid},
                        $_->[0]{id}, $_->[1])
        for @und;
    my %seen;
    $res{words} = [ grep { !$seen{$_}++ }
                    (map { ($_->[0]{cid}, $_->[0]{id}) } @und),
                    (map { /^(\S+) \((\S+)\) not in/ ? ($1, $2) : () }
                     @lost),
                    (map { $_->{cid} } $self->unacked) ];
    push @dups, @{ $row->{dup} };
    $res{lost} = \@lost;
    $res{dups} = \@dups;
    # what is still unacked is not sent again in the next rows
    for my $c (values %{ $self->{clients} }) {
        for my $h ($c->{retry}, $c->{pending}) {
            delete @$h{ grep { $row->{msgs}{$_} } keys %$h };
        }
    }
    $res{ttr} = $row->{fault_end} && $row->{first_ack}
              ? $row->{first_ack} - $row->{fault_end} : undef;
    $self->{row} = undef;
    return \%res;
}

sub table_head {
    return sprintf "%-28s %6s %5s %4s %6s %7s %7s %6s\n", 'row', 'acked',
                   'lost', 'dup', 'resent', 'reconn', 'recover', 'drain';
}

sub table_line {
    my ($r) = @_;
    return sprintf "%-28s %6d %5d %4d %6d %7d %7s %5.1fs\n", $r->{name},
                   $r->{acked}, scalar @{ $r->{lost} }, scalar @{ $r->{dups} },
                   $r->{resent}, $r->{reconnects},
                   defined $r->{ttr} ? sprintf('%.2fs', $r->{ttr}) : '-',
                   $r->{drain};
}

sub close_all {
    my ($self) = @_;
    for my $c (values %{ $self->{clients} }) {
        next unless $c->{ws};
        eval { $c->{ws}->send_frame(8, pack('n', 1000)); $c->{ws}->close };
        $c->{ws} = undef;
    }
}

# the log lines that name any of @words
sub log_grep {
    my ($self, @words) = @_;
    my $re = join '|', map { quotemeta } grep { defined } @words;
    return '' unless length $re;
    my @l = grep { /$re/ } @{ $self->{log} };
    splice @l, 40, @l - 60, '...' if @l > 60;
    return join '', map { "  $_\n" } @l;
}

sub log_tail {
    my ($self, $n) = @_;
    my @l = @{ $self->{log} };
    splice @l, 0, @l - $n if @l > $n;
    return join '', map { "  $_\n" } @l;
}

1;
