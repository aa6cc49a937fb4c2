# Scale-out (issue #18): `scripts/stack up --nodes 3` puts an edge nginx
# (lua-free-conf/edge-and-nodes.conf: TLS, chat_auth, hash $chat_user_id
# consistent) in front of three chat nodes on the test stack's real
# PostgreSQL, Redis and Kafka-protocol broker; everything here goes over
# TLS through the edge, as clients would.
#
#   - the edge answers a request without a token itself (401, no node
#     named); HTTP/2, TLS 1.2 and 1.3 only; GET /v1/me names its node and
#     gives the edge's wss:// URL; the node sees the client's address, not
#     an X-Forwarded-For the client wrote;
#   - users spread over the nodes; a user's devices and API calls meet on
#     one node (the WebSocket upgrade names it too);
#   - everyone messages everyone once: every message acked and delivered,
#     to both devices of a user with two;
#   - one node SIGKILLed: its users' WebSockets drop, what is sent to them
#     meanwhile is acked, they reconnect through the edge to other nodes
#     and get it, their routes and presence move, and new messages reach
#     them live there;
#   - a node reloaded (nginx -s reload) while a sender streams to a user
#     on it: the user's WebSocket is closed with 1001, it reconnects, and
#     every acked message reaches it, once (but for one whose receipt the
#     close overtook: sent again, as the contract says);
#   - a fourth node (scripts/stack up --nodes 4) takes about a quarter of
#     the users, every one that moves going to it; back to 3, they return;
#   - back to one node (scripts/stack up) at the end, whatever happened.

use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use JSON::PP qw(decode_json encode_json);
use POSIX ();
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatWS;
use ChatJWT;
use ChatPersist ();

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

my $up = ChatTest::stack_nodes(3);
like($up, qr/an edge in front of 3 nodes|already up/,
     'scripts/stack up --nodes 3');

ChatPersist::stack_env_reload();     # stack.env was written again
my $cert = ChatPersist::stack_env('CHAT_TLS_CERT');
my $https = ChatPersist::stack_env('CHAT_HTTPS_PORT');
is(ChatPersist::stack_env('CHAT_NODES'), 3, 'stack.env: CHAT_NODES=3');
like(ChatPersist::stack_env('CHAT_NODE2_HTTP'), qr{^http://127\.0\.0\.1:\d+$},
     '... and each node\'s address');

my $http = HTTP::Tiny->new(timeout => 10, verify_SSL => 1,
                           SSL_options => { SSL_ca_file => $cert,
                                            SSL_hostname => 'localhost' });

# (status, decoded body, headers) of a request to the edge over TLS
sub api {
    my ($method, $path, $token, $body) = @_;
    my %h = (defined $body ? ('Content-Type' => 'application/json') : (),
             $token ? (Authorization => "Bearer $token") : ());
    my $r = $http->request($method, "https://localhost:$https$path",
                           { headers => \%h,
                             defined $body ? (content => encode_json($body))
                                           : () });
    return ($r->{status}, eval { decode_json($r->{content}) }
                          // $r->{content}, $r->{headers});
}


# --- 1. the edge itself --------------------------------------------------------

my ($st, $body, $h) = api(GET => '/v1/me');
is($st, 401, 'GET /v1/me without a token: 401 at the edge');
ok(!exists $h->{'x-chat-node'}, '... no node named: it never reached one');
like($h->{'www-authenticate'} // '', qr/Bearer/, '... WWW-Authenticate');
($st, $body) = api(GET => '/v1/me', 'not.a.token');
is($st, 401, 'a bad token: 401 at the edge');
($st, $body) = api(GET => '/healthz');
is($body->{role}, 'edge', '/healthz: the edge\'s own');

# HTTP/2 for the API, modern TLS only (curl and openssl as clients)
my $h2 = `curl -s --cacert $cert --http2 -o /dev/null -w '%{http_version}' https://localhost:$https/healthz`;
is($h2, '2', 'the edge speaks HTTP/2 (ALPN h2)');
sub tls_ok {   # the protocol the edge agreed on with only $flag offered
    my ($flag) = @_;
    my $out = `echo | timeout 10 openssl s_client -connect 127.0.0.1:$https $flag -servername localhost 2>&1`;
    return $out =~ /^New, (TLSv1\.\d), Cipher is (?!\(NONE\))/m ? $1 : '';
}
is(tls_ok('-tls1_3'), 'TLSv1.3', 'TLS 1.3 accepted');
is(tls_ok('-tls1_2'), 'TLSv1.2', 'TLS 1.2 accepted');
is(tls_ok(q{-tls1_1 -cipher 'DEFAULT@SECLEVEL=0'}), '',
   'TLS 1.1 refused (by the edge: the client offers it)');


# --- 2. users over the nodes -----------------------------------------------

my $run = sprintf '%x', int(time * 1000);
my @names = map { "e$_" } 1 .. 9;
my (%uid, %tok, %node);
for my $n (@names) {
    my $user = "${n}_$run";
    ($st, $body) = api(POST => '/v1/users', undef,
                    { username => $user, password => 'long-enough' });
    is($st, 201, "register $n through the edge") or diag explain $body;
    $uid{$n} = $body->{user_id};
    ($st, $body) = api(POST => '/v1/sessions', undef,
                    { username => $user, password => 'long-enough' });
    $tok{$n} = $body->{token};
}
ok((grep { $tok{$_} } @names) == @names, 'all logged in through the edge');

($st, $body, $h) = api(GET => '/v1/me', $tok{e1});
is($st, 200, 'GET /v1/me with a token: 200');
like($h->{'x-chat-node'} // '', qr/^node[123]$/, '... from a node');
is($body->{ws_url}, "wss://127.0.0.1:$https/v1/ws",
   '... ws_url is the edge\'s (chat_public_url), not the node\'s');

# a WebSocket through the edge; (socket, node), or dies
sub connect_ws {
    my ($n) = @_;
    my $ws = ChatWS->new(port => $https, tls => $cert);
    my ($s, $hd) = $ws->handshake('/v1/ws',
                                  Authorization => "Bearer $tok{$n}");
    die "056: $n: WebSocket through the edge: $s\n" unless $s == 101;
    return ($ws, $hd->{'x-chat-node'} // '');
}

my %ws;
for my $n (@names) {
    ($ws{$n}, $node{$n}) = connect_ws($n);
}
ok(!(grep { $node{$_} !~ /^node[123]$/ } @names),
   'every upgrade names its node (X-Chat-Node on the 101)');
my %spread;
$spread{$node{$_}}++ for @names;
cmp_ok(scalar(keys %spread), '>=', 2, 'users spread over the nodes ('
       . join(', ', map { "$_: $spread{$_}" } sort keys %spread) . ')');
my @apart = grep {
    my (undef, undef, $hh) = api(GET => '/v1/me', $tok{$_});
    ($hh->{'x-chat-node'} // '') ne $node{$_};
} @names;
is("@apart", '', 'each user\'s API calls go to its WebSocket\'s node');
# the node sees the client's address as the edge saw it, never one the
# client wrote into X-Forwarded-For
{
    my $log = ChatPersist::stack_env('CHAT_VAR') . "/log/nginx-$node{e1}-access.log";
    my $off = -s $log // 0;
    my $r = $http->request(GET => "https://localhost:$https/v1/me?xff=$run",
                           { headers => { Authorization => "Bearer $tok{e1}",
                                          'X-Forwarded-For' => '203.0.113.7' } });
    is($r->{status}, 200, 'GET /v1/me with a forged X-Forwarded-For');
    ChatTest::wait_until(sub { (-s $log // 0) > $off }, timeout => 5);
    my $text = do { open my $in, '<', $log or die "$log: $!"; seek $in, $off, 0;
                    local $/; <$in> };
    like($text, qr{^127\.0\.0\.1 .*"GET /v1/me }m,
         '... the node logs the client\'s real address');
    unlike($text, qr/203\.0\.113\.7/, '... not the forged one');
}

my ($ws1b, $node1b) = connect_ws('e1');
is($node1b, $node{e1}, 'a second device of e1 lands on the same node');


# frames: reads what comes on $ws until $until->() or the deadline; every
# message into $got->{id}, acks into $acks->{client_id}; a close frame's
# code into $ws->{close}.  Each message gets a "delivered" receipt.
sub pump {
    my ($ws, $got, $acks, $timeout, $until) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        return 1 if $until && $until->();
        my ($op, $payload) = $ws->read_frame(0.2);
        if (!defined $op) {
            next unless $ws->{eof} = eof_now($ws);
            return 0;
        }
        if ($op == 8) {
            $ws->{close} = length $payload >= 2 ? unpack('n', $payload) : 0;
            return 0;
        }
        next unless $op == 1;
        my $f = eval { decode_json($payload) } or next;
        my $t = $f->{type} // '';
        if ($t eq 'message' && $got) {
            $got->{$f->{id}}++;
            push @{ $ws->{log} }, sprintf('%.3f %s', time, $f->{id});
            $ws->send_text(encode_json({ type => 'receipt', id => $f->{id},
                                         status => 'delivered' }));
        } elsif ($t eq 'ack' && $acks) {
            $acks->{$f->{client_id}} = $f->{id};
        }
    }
    return $until ? $until->() : 1;
}

# 1 when the server has closed the connection (nothing to read but EOF)
sub eof_now {
    my ($ws) = @_;
    my $sock = $ws->{sock};
    return 0 unless IO::Select->new($sock)->can_read(0);
    my $n = sysread $sock, my $chunk, 65536;
    if ($n) { $ws->{buf} .= $chunk; return 0 }
    return 1;
}

sub send_to {
    my ($ws, $to, $cid, $body) = @_;
    return $ws->send_text(encode_json({ type => 'send', to => $uid{$to},
                                        client_id => $cid,
                                        body => $body }));
}


# --- 3. everyone messages everyone once --------------------------------------

my (%acks, %got);
for my $s (@names) {
    for my $r (grep { $_ ne $s } @names) {
        send_to($ws{$s}, $r, "x-$s-$r-$run", "from $s to $r");
    }
}
for my $s (@names) {
    $acks{$s} = {};
    pump($ws{$s}, $got{$s} //= {}, $acks{$s}, 30,
         sub { keys %{ $acks{$s} } == @names - 1 });
}
is((grep { keys %{ $acks{$_} } == @names - 1 } @names), scalar @names,
   'every send acked (' . @names * (@names - 1) . ')');
my %want;   # recipient -> ids sent to it
for my $s (@names) {
    for my $r (grep { $_ ne $s } @names) {
        $want{$r}{ $acks{$s}{"x-$s-$r-$run"} // 'none' } = 1;
    }
}
my $got1b = {};
for my $r (@names) {
    pump($ws{$r}, $got{$r}, undef, 30,
         sub { !(grep { !$got{$r}{$_} } keys %{ $want{$r} }) });
}
pump($ws1b, $got1b, undef, 30,
     sub { !(grep { !$got1b->{$_} } keys %{ $want{e1} }) });
is((grep { my $r = $_; !(grep { !$got{$r}{$_} } keys %{ $want{$r} }) }
    @names), scalar @names,
   'every message delivered across the nodes');
ok(!(grep { !$got1b->{$_} } keys %{ $want{e1} }),
   '... and to e1\'s second device');


# --- 4. a node killed ------------------------------------------------------------

# the node with most users, and the users elsewhere
my ($dead) = sort { $spread{$b} <=> $spread{$a} || $a cmp $b } keys %spread;
my @victims = grep { $node{$_} eq $dead } @names;
my @alive = grep { $node{$_} ne $dead } @names;
like(ChatTest::stack_svc($dead, 'kill'), qr/killed \(SIGKILL/,
     "svc $dead kill (" . @victims . ' users on it)');
my @still = grep {
    my $w = $ws{$_};
    pump($w, undef, undef, 10, sub { $w->{eof} || defined $w->{close} });
    !($w->{eof} || defined $w->{close});
} @victims;
is("@still", '', '... its users\' WebSockets drop');

# meanwhile each user elsewhere sends each victim one message
my %sent;   # victim -> client ids
my %macks;
for my $s (@alive) {
    for my $v (@victims) {
        my $cid = "k-$s-$v-$run";
        send_to($ws{$s}, $v, $cid, "while $v was away");
        push @{ $sent{$v} }, $cid;
    }
    $macks{$s} = {};
    pump($ws{$s}, $got{$s}, $macks{$s}, 20,
         sub { keys %{ $macks{$s} } == @victims });
}
is((grep { keys %{ $macks{$_} } == @victims } @alive), scalar @alive,
   'what is sent to them meanwhile is acked');

my $t0 = time;
my %moved;
for my $v (@victims) {
    my $ok = eval { ($ws{$v}, $moved{$v}) = connect_ws($v); 1 };
    ok($ok, "$v reconnects through the edge") or diag $@;
}
ok(!(grep { ($moved{$_} // $dead) eq $dead } @victims),
   sprintf('... to other nodes (%s) in %.2f s',
           join(', ', map { "$_: $moved{$_}" } grep { $moved{$_} } @victims),
           time - $t0));
my %later;
for my $v (@victims) {
    my %ids = map { my $s = (split /-/, $_)[1]; ($macks{$s}{$_} // 'none') => 1 }
              @{ $sent{$v} };
    $later{$v} = {};
    pump($ws{$v}, $later{$v}, undef, 30,
         sub { !(grep { !$later{$v}{$_} } keys %ids) });
    ok(!(grep { !$later{$v}{$_} } keys %ids),
       "$v gets the " . keys(%ids) . ' messages sent while it was away');
}
# live on the new node: one more message to the first victim
my $v = $victims[0];
my $s = $alive[0];
my %la;
send_to($ws{$s}, $v, "live-$run", 'live again');
pump($ws{$s}, undef, \%la, 10, sub { $la{"live-$run"} });
my %lg;
pump($ws{$v}, \%lg, undef, 10, sub { $la{"live-$run"} && $lg{$la{"live-$run"}} });
ok($la{"live-$run"} && $lg{$la{"live-$run"}},
   "a new message reaches $v live on $moved{$v}");

# the route and presence moved with it: its routes (chat:routes:{uid},
# "channel conn" members) name a channel of its new node; it is online
my ($rh, $rp) = split /:/, ChatPersist::stack_env('REDIS');
my @routes = split /\n/, `redis-cli -h $rh -p $rp ZRANGE 'chat:routes:{$uid{$v}}' 0 -1`;
ok((grep { /^chat:w:\Q$moved{$v}\E:/ } @routes),
   "$v: its route is on $moved{$v} now") or diag "routes: @routes";
($st, $body) = api(GET => "/v1/users/$uid{$v}/presence", $tok{$v});
is($st == 200 && $body->{online} ? 'online' : "$st", 'online',
   "$v: online, as its new node says");

like(ChatTest::stack_svc($dead, 'start'), qr/started/, "svc $dead start");


# --- 5. a reload under traffic ---------------------------------------------------

# a receiver and a sender on different nodes, as they are now
my %now;
for my $n (@names) {
    my (undef, undef, $hh) = api(GET => '/v1/me', $tok{$n});
    $now{$n} = $hh->{'x-chat-node'} // '';
}
my ($rcv) = grep { $now{$_} eq ($moved{$_} // $node{$_}) } @names;
my ($snd) = grep { $now{$_} ne $now{$rcv}
                   && $now{$_} eq ($moved{$_} // $node{$_}) } @names;
ok($rcv && $snd, "receiver $rcv on $now{$rcv}, sender $snd on "
                 . ($snd ? $now{$snd} : '?'));
my $rnode = $now{$rcv};

my $reload = fork // die "fork: $!";
if (!$reload) {
    sleep 1;
    my $out = eval { ChatTest::stack_svc($rnode, 'reload') } // "$@";
    POSIX::_exit($out =~ /reloaded/ ? 0 : 1);
}
my (%racks, %rgot, @rcids, $closed, $rt0, $old_rcv);
my $end = time + 6;
my $i = 0;
while (time < $end) {
    my $cid = "r-" . ++$i . "-$run";
    push @rcids, $cid;
    send_to($ws{$snd}, $rcv, $cid, "stream $i");
    pump($ws{$snd}, $got{$snd}, \%racks, 0.05);
    next if $closed;
    pump($ws{$rcv}, \%rgot, undef, 0.05);
    if (defined $ws{$rcv}{close} || $ws{$rcv}{eof}) {
        $closed = $ws{$rcv}{close} // 'eof';
        $rt0 = time;
        $old_rcv = $ws{$rcv};
        my $ok = eval { ($ws{$rcv}) = connect_ws($rcv); 1 };
        diag "reconnect: $@" unless $ok;
        $closed .= $ok ? '' : ' (no reconnect)';
    }
}
waitpid $reload, 0;
is($? >> 8, 0, "svc $rnode reload while $i messages streamed");
is($closed, 1001, "the receiver's WebSocket was closed with 1001 (going away)");
pump($ws{$snd}, $got{$snd}, \%racks, 20, sub { keys %racks == @rcids });
is(scalar(keys %racks), scalar @rcids, 'every message of the stream acked');
pump($ws{$rcv}, \%rgot, undef, 30,
     sub { !(grep { !$rgot{$racks{$_} // 'none'} } @rcids) });
my @lost = grep { !$rgot{$racks{$_} // 'none'} } @rcids;
is(scalar @lost, 0, 'the receiver, reconnected, has every acked message')
    or diag "lost: @lost";
# At least once: a message whose "delivered" receipt was still on its way
# when the close came is sent again on the reconnect (clients de-duplicate
# by id, CONTRACT.md section 4).  Only those: received on the old
# connection within its last second.
my %late = map { (split / /)[1] => 1 }
           grep { (split / /)[0] >= ($rt0 // 0) - 1 } @{ $old_rcv->{log} || [] };
my @twice = grep { $rgot{$_} > 1 } keys %rgot;
my @bad = grep { $rgot{$_} > 2 || !$late{$_} } @twice;
is("@bad", '', '... each once, but for ' . @twice . ' whose receipt the '
               . 'close overtook (sent again, as the contract says)');

# every acked message of the suite stored once
my @all = ((map { values %{ $acks{$_} } } @names),
           (map { values %{ $macks{$_} } } @alive), values %racks);
ok(ChatTest::wait_until(sub {
       ChatPersist::sql("SELECT count(*) FROM messages WHERE id = ANY "
                        . "(string_to_array(:'ids', ','))",
                        ids => join(',', @all)) == @all },
       timeout => 30, interval => 0.5),
   'every acked message (' . @all . ') is in PostgreSQL once');

unlike(ChatTest::slurp(ChatPersist::stack_env('CHAT_VAR')
                       . "/log/nginx-$_-error.log"), qr/\[(alert|emerg)\]/,
       "$_: no alert in its error log")
    for qw(node1 node2 node3);



# --- 6. a fourth node moves about a quarter of the users --------------------
#
# 40 users' API calls name their node with 3 nodes, then with 4: the ones
# that move all go to the new node, about 1/4 of them (consistent hashing).
# Tokens signed with the stack's secret for user ids nobody has: the node
# that gets one answers 401 "no such user", and says its name.

my $secret = ChatTest::slurp(ChatPersist::stack_env('CHAT_JWT_SECRET_FILE'));
$secret =~ s/\s+\z//;
my @many = map { ChatJWT::token(sub => 4_000_000_000 + $_, secret => $secret) }
           1 .. 40;
sub where { map { my (undef, undef, $hh) = api(GET => '/v1/me', $_);
                  $hh->{'x-chat-node'} // '?' } @_ }
# the reload above may have had the edge mark a node failed for its
# fail_timeout (10 s: its users go to the next node meanwhile)
sleep 11;
my @before = where(@many);
like(ChatTest::stack('up', '--nodes', 4), qr/nginx-node4: started/,
     'scripts/stack up --nodes 4: a fourth node');
my @after = where(@many);
my @moved = grep { $before[$_] ne $after[$_] } 0 .. $#many;
ok(!(grep { $after[$_] ne 'node4' } @moved),
   'every user that moved went to the new node');
cmp_ok(scalar @moved, '>=', 3, 'some users moved (' . @moved . ' of 40)')
    or diag "before: @before\nafter: @after";
cmp_ok(scalar @moved, '<=', 20, '... not most of them (1/4 expected)');
like(ChatTest::stack('up', '--nodes', 3), qr/nginx-node4: stopped/,
     'back to 3 nodes: node4 stopped');
is_deeply([where(@many)], \@before, '... and every user on its node again');

done_testing();
