# The admin API (issue #20): chat_admin and chat_admin_token_file on an
# nginx of this suite's own, then on `scripts/stack up --nodes 3` (each
# node serves /admin/ to this machine; CHAT_ADMIN is node1's), everything
# on the test stack's real PostgreSQL, Redis and Kafka-protocol broker.
#
#   - off by default: no chat_admin, no admin API (404); chat_admin needs
#     a token file of 16 bytes or more; no token or a wrong one: 401 with
#     WWW-Authenticate, and neither token reaches a log;
#   - GET /admin/nodes: every node with its workers and their WebSockets,
#     as many as the clients hold on each; GET /admin/users/{id}: the node
#     and worker of each of the user's connections;
#   - drain the node that holds most users under steady 1:1 traffic both
#     ways: its clients get 1012, reconnect through the edge to the other
#     nodes; the drained node refuses upgrades (503) and its /healthz says
#     "draining" (503); /admin/nodes shows it draining with no
#     connections; every acked message reaches its recipient (once, but
#     for one whose receipt the close overtook) and is in PostgreSQL once;
#     undrain: it takes WebSockets again;
#   - POST /admin/users/{id}/disconnect closes all the user's WebSockets,
#     on any node, with 4001; GET /admin/lag: each consumer group's lag
#     per topic, as the worker daemons report it;
#   - back to one node (scripts/stack up) at the end, whatever happened.

use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use IO::Select;
use JSON::PP qw(decode_json encode_json);
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatWS;
use ChatPersist ();

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

my $http = HTTP::Tiny->new(timeout => 10);

# (status, decoded body or text, headers)
sub call {
    my ($method, $url, $token) = @_;
    my $r = $http->request($method, $url,
                           { headers => { $token ? (Authorization =>
                                                    "Bearer $token") : () } });
    return ($r->{status}, eval { decode_json($r->{content}) }
                          // $r->{content}, $r->{headers});
}


# --- 1. the directives, on an nginx of our own ----------------------------------

my $dir = tempdir(CLEANUP => 1);
my $secret = 'a' x 8 . sprintf('%08x', int(rand(2**32))) . 'b' x 16;
my $tokfile = "$dir/admin.token";
{
    open my $o, '>', $tokfile or die "$tokfile: $!";
    print $o "$secret\n";
    close $o;
    chmod 0600, $tokfile;
    open $o, '>', "$dir/short.token" or die "$dir/short.token: $!";
    print $o "short\n";
    close $o;
}

my $jwt = ChatPersist::stack_env('CHAT_JWT_SECRET_FILE');
my $backends = <<"_EOC_";
    chat_node_name adm1;
    chat_jwt_secret_file $jwt;
    chat_redis $ENV{TEST_NGINX_REDIS};
    chat_redis_password_file $ENV{TEST_NGINX_REDIS_PASSWORD_FILE};
    chat_postgres "$ENV{TEST_NGINX_PG_DSN}";
    chat_kafka_brokers $ENV{TEST_NGINX_KAFKA_BROKERS};
_EOC_

my $port = ChatTest::start_nginx(http_config => $backends, config => <<'_EOC_');
        location = /v1/ws {
            chat_websocket;
        }
_EOC_
my ($st, $body) = call(GET => "http://127.0.0.1:$port/admin/nodes", $secret);
is($st, 404, 'no chat_admin: no admin API (404)');

my $died = eval {
    ChatTest::start_nginx(http_config => $backends, config => <<'_EOC_');
        location /admin/ {
            chat_admin;
        }
_EOC_
    1;
} ? '' : "$@";
like($died, qr/chat_admin needs chat_admin_token_file/,
     'chat_admin without chat_admin_token_file: nginx refuses the config');
$died = eval {
    ChatTest::start_nginx(http_config => $backends, config => <<"_EOC_");
        location /admin/ {
            chat_admin;
            chat_admin_token_file $dir/short.token;
        }
_EOC_
    1;
} ? '' : "$@";
like($died, qr/at least 16 are needed/, '... and a token under 16 bytes');

# chat_auth on for the whole server: the admin location asks for its own
# token only
$port = ChatTest::start_nginx(http_config => $backends, config => <<"_EOC_");
        chat_auth on;
        location = /v1/ws {
            chat_websocket;
        }
        location /admin/ {
            chat_admin;
            chat_admin_token_file $tokfile;
        }
_EOC_
my $base = "http://127.0.0.1:$port/admin";
my $h;
($st, $body, $h) = call(GET => "$base/nodes");
is($st, 401, 'no token: 401');
is($body->{error}, 'unauthorized', '... a JSON error like the API\'s');
like($h->{'www-authenticate'} // '', qr/^Bearer/, '... WWW-Authenticate');
my $wrong = substr($secret, 0, -1) . 'x';
($st) = call(GET => "$base/nodes", $wrong);
is($st, 401, 'a wrong token (one byte off): 401');
($st) = call(GET => "$base/nodes", "$secret$secret");
is($st, 401, 'the token twice: 401');
($st, $body) = call(GET => "$base/nodes", $secret);
is($st, 200, 'the token: 200');
ok(ChatTest::wait_until(sub {
       (undef, $body) = call(GET => "$base/nodes", $secret);
       grep { $_->{node} eq 'adm1' } @{ $body->{nodes} || [] } },
       timeout => 10),
   '... /admin/nodes lists this nginx (adm1) once its workers report');
($st, $body) = call(GET => "$base/nope", $secret);
is($st, 404, 'an unknown admin resource: 404');
($st, $body) = call(GET => "$base/nodes/adm1/drain", $secret);
is($st, 405, 'GET on .../drain: 405');
($st, $body) = call(GET => "$base/users/abc", $secret);
is($st, 400, 'a user id that is not one: 400');
($st, $body) = call(POST => "$base/nodes/nosuchnode/drain", $secret);
is("$st $body->{error}", '404 unknown_node', 'draining a node that does not '
   . 'report: 404 unknown_node');

# a user's WebSocket on this nginx: disconnected, then drained
my $chat = ChatPersist::stack_env('CHAT_HTTP');
my $uname = sprintf 'adm_%x', int(time * 1000);
my %json = (headers => { 'Content-Type' => 'application/json' },
            content => encode_json({ username => $uname,
                                     password => 'long-enough' }));
$http->request(POST => "$chat/v1/users", \%json);
my $sess = eval { decode_json($http->request(POST => "$chat/v1/sessions",
                                             \%json)->{content}) } // {};
sub ws_here {
    my $w = ChatWS->new(port => $port);
    my ($s) = $w->handshake('/v1/ws', Authorization => "Bearer $sess->{token}");
    return ($s, $w);
}
my ($ws_st, $ws) = ws_here();
is($ws_st, 101, 'a user\'s WebSocket on adm1');
ok(ChatTest::wait_until(sub {
       (undef, $body) = call(GET => "$base/users/$sess->{user_id}", $secret);
       $body->{online} }, timeout => 10),
   '... /admin/users/{id}: online') or diag explain $body;
ok(($body->{connections}[0]{node} // '') eq 'adm1'
   && ($body->{connections}[0]{worker} // 0) > 0, '... on adm1, a worker\'s pid');
($st, $body) = call(POST => "$base/users/$sess->{user_id}/disconnect", $secret);
is("$st $body->{workers}", '200 1', 'POST .../disconnect reaches its worker');
is($ws->read_close(5), 4001, '... which closes its WebSocket with 4001');
($ws_st, $ws) = ws_here();
($st, $body) = call(POST => "$base/nodes/adm1/drain", $secret);
is("$st $body->{node} $body->{workers}", '200 adm1 1',
   'POST /admin/nodes/adm1/drain');
is($ws->read_close(5), 1012, '... its WebSocket is closed with 1012');
($ws_st) = ws_here();
is($ws_st, 503, '... a new one refused with 503');

# undrain needs no report: it clears what a drain left
($st, $body) = call(POST => "$base/nodes/adm1/undrain", $secret);
is("$st " . ($body->{draining} ? 1 : 0), '200 0', 'undrain adm1: 200');
ok(ChatTest::wait_until(sub { (ws_here())[0] == 101 }, timeout => 5),
   '... WebSockets again');
my $log = ChatTest::error_log();
unlike($log, qr/\Q$secret\E|\Q$wrong\E/, 'neither token is in the error log');
unlike($log, qr/\[(alert|emerg)\]/, 'no alert in the error log');
ChatTest::stop_nginx();


# --- 2. three nodes behind the edge -------------------------------------------

my $up = ChatTest::stack_nodes(3);
like($up, qr/an edge in front of 3 nodes|already up/,
     'scripts/stack up --nodes 3');

ChatPersist::stack_env_reload();
my $admin = ChatPersist::stack_env('CHAT_ADMIN');
is($admin, ChatPersist::stack_env('CHAT_NODE1_HTTP') . '/admin',
   'stack.env: CHAT_ADMIN is node1\'s /admin');
my $token = ChatTest::slurp(ChatPersist::stack_env('CHAT_ADMIN_TOKEN_FILE'));
$token =~ s/\s+\z//;
cmp_ok(length $token, '>=', 32, '... and its token file');
my $cert = ChatPersist::stack_env('CHAT_TLS_CERT');
my $https = ChatPersist::stack_env('CHAT_HTTPS_PORT');
my %nodeport = map {
    my $u = ChatPersist::stack_env("CHAT_NODE${_}_HTTP");
    ("node$_" => ($u =~ /:(\d+)$/)[0]);
} 1 .. 3;

sub admin {
    my ($method, $path) = @_;
    return call($method, "$admin$path", $token);
}

my $edge = HTTP::Tiny->new(timeout => 10, verify_SSL => 1,
                           SSL_options => { SSL_ca_file => $cert,
                                            SSL_hostname => 'localhost' });
sub edge_api {
    my ($method, $path, $body) = @_;
    my $r = $edge->request($method, "https://localhost:$https$path",
                           { headers => { 'Content-Type' => 'application/json' },
                             content => encode_json($body) });
    return ($r->{status}, eval { decode_json($r->{content}) } // {});
}

my $r = $edge->request(GET => "https://localhost:$https/admin/nodes",
                       { headers => { Authorization => "Bearer $token" } });
is($r->{status}, 404, 'the edge has no admin API');
($st) = call(GET => "$admin/nodes");
is($st, 401, 'a node\'s admin API without the token: 401');

my $run = sprintf '%x', int(time * 1000);
my @names = map { "a$_" } 1 .. 9;
my (%uid, %tok);
for my $n (@names) {
    my $user = "${n}_$run";
    edge_api(POST => '/v1/users', { username => $user,
                                    password => 'long-enough' });
    (undef, $body) = edge_api(POST => '/v1/sessions',
                              { username => $user, password => 'long-enough' });
    $uid{$n} = $body->{user_id};
    $tok{$n} = $body->{token};
}
is((grep { $tok{$_} } @names), scalar @names, 'users registered, logged in');

# a client: its WebSocket (through the edge, or to a node's port), the node
# that took it, what it got (id -> times) and when, its acks, its close
sub open_client {
    my ($n, $port) = @_;
    my $ws = $port ? ChatWS->new(port => $port)
                   : ChatWS->new(port => $https, tls => $cert);
    my ($s, $hd, $b) = $ws->handshake('/v1/ws',
                                      Authorization => "Bearer $tok{$n}");
    return { status => $s, body => $b, name => $n,
             node => $hd->{'x-chat-node'} // '', ws => $s == 101 ? $ws : undef,
             got => {}, when => {}, acks => {} };
}

# reads what comes until $until->() or the deadline: messages get a
# "delivered" receipt, acks are kept, a close frame ends the connection
sub pump {
    my ($c, $timeout, $until) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        return 1 if $until && $until->();
        return 0 unless $c->{ws};
        my ($op, $payload) = $c->{ws}->read_frame(0.05);
        next unless defined $op;
        if ($op == 8) {
            $c->{close} = length $payload >= 2 ? unpack('n', $payload) : 0;
            $c->{ws}->close;
            $c->{ws} = undef;
            $c->{closed_at} = time;
            return $until ? $until->() : 0;
        }
        next unless $op == 1;
        my $f = eval { decode_json($payload) } or next;
        if (($f->{type} // '') eq 'message') {
            $c->{got}{ $f->{id} }++;
            $c->{when}{ $f->{id} } //= time;
            $c->{ws}->send_text(encode_json({ type => 'receipt',
                                              id => $f->{id},
                                              status => 'delivered' }));
        } elsif (($f->{type} // '') eq 'ack') {
            $c->{acks}{ $f->{client_id} } = $f->{id};
        }
    }
    return $until ? $until->() : 1;
}

sub send_msg {
    my ($c, $to, $cid) = @_;
    return unless $c->{ws};
    $c->{sent}{$cid} = $to;
    $c->{ws}->send_text(encode_json({ type => 'send', to => $uid{$to},
                                      client_id => $cid, body => $cid }));
}

my %cl = map { ($_ => open_client($_)) } @names;
is((grep { $cl{$_}{status} == 101 } @names), scalar @names,
   'everyone connected through the edge');
my %spread;
$spread{ $cl{$_}{node} }++ for @names;
cmp_ok(scalar(keys %spread), '>=', 2, 'users spread over the nodes ('
       . join(', ', map { "$_: $spread{$_}" } sort keys %spread) . ')');

# /admin/nodes: the WebSockets each node holds, summed over its workers
sub nodes_now {
    my (undef, $b) = admin(GET => '/nodes');
    return { map { ($_->{node} => $_) } @{ $b->{nodes} || [] } };
}
my $nodes;
ok(ChatTest::wait_until(sub {
       $nodes = nodes_now();
       !(grep { ($nodes->{$_}{connections} // -1) != ($spread{$_} // 0) }
         qw(node1 node2 node3)) }, timeout => 10, interval => 0.5),
   '/admin/nodes: each node\'s connections are its clients\'')
    or diag explain $nodes;
my $n1 = $nodes->{node1} // {};
ok(@{ $n1->{workers} || [] } >= 1
   && !(grep { !$_->{pid} || !defined $_->{connections} || !$_->{last_seen} }
        @{ $n1->{workers} }),
   '... per worker: pid, connections, last seen') or diag explain $n1;
ok(!(grep { $nodes->{$_}{draining} } qw(node1 node2 node3)),
   '... none draining');

($st, $body) = admin(GET => "/users/$uid{a1}");
is($st, 200, 'GET /admin/users/{id}');
ok($body->{online} && $body->{devices} == 1
   && ($body->{connections}[0]{node} // '') eq $cl{a1}{node}
   && $body->{connections}[0]{worker} > 0,
   "... online, one device, on $cl{a1}{node} (its worker's pid)")
    or diag explain $body;


# --- 3. drain the node with most users, under traffic ---------------------------

my ($drained) = sort { $spread{$b} <=> $spread{$a} || $a cmp $b } keys %spread;
my @victims = grep { $cl{$_}{node} eq $drained } @names;
my @others = grep { $cl{$_}{node} ne $drained } @names;
# pairs: each victim with a user elsewhere, messages both ways
my %peer = map { ($victims[$_] => $others[$_ % @others]) } 0 .. $#victims;

my ($drain_st, $drain_body);
my $t0 = time;
my $i = 0;
my %moved;
while (time < $t0 + 8) {
    $i++;
    for my $v (@victims) {
        my $o = $peer{$v};
        send_msg($cl{$o}, $v, "d-$o-$v-$i-$run");
        send_msg($cl{$v}, $o, "d-$v-$o-$i-$run") if $cl{$v}{ws};
        pump($cl{$o}, 0.02);
        pump($cl{$v}, 0.02);
    }
    if (!$drain_st && time > $t0 + 1.5) {
        ($drain_st, $drain_body) = admin(POST => "/nodes/$drained/drain");
    }
    for my $v (@victims) {
        next if $cl{$v}{ws} || $moved{$v};
        # closed: connect again through the edge, then send again what
        # was not acked (the same client ids: acked once, stored once)
        my $old = $cl{$v};
        my $new = open_client($v);
        $moved{$v} = $new->{node} || "refused $new->{status}";
        $new->{$_} = $old->{$_} for qw(got when acks sent);
        $new->{old} = $old;
        $cl{$v} = $new;
        for my $cid (grep { !$new->{acks}{$_} } keys %{ $new->{sent} || {} }) {
            send_msg($new, $new->{sent}{$cid}, $cid);
        }
    }
}
is($drain_st, 200, "POST /admin/nodes/$drained/drain ("
   . @victims . ' users on it) under traffic');
is($drain_body->{draining} ? $drain_body->{node} : '', $drained,
   '... the answer names it, draining');
is(join(',', map { $cl{$_}{old} ? $cl{$_}{old}{close} // 'none' : 'open' }
             @victims),
   join(',', map { 1012 } @victims),
   'its clients\' WebSockets were closed with 1012');
ok(!(grep { !$moved{$_} || $moved{$_} eq $drained || $moved{$_} !~ /^node/ }
     @victims),
   'they reconnected through the edge to other nodes ('
   . join(', ', map { "$_: " . ($moved{$_} // 'no') } @victims) . ')');

# new WebSockets straight to the drained node: refused
my $direct = open_client($victims[0], $nodeport{$drained});
is($direct->{status}, 503, 'an upgrade on the drained node: 503');
like($direct->{body}, qr/"error":"draining"/, '... error "draining"');
($st, $body) = call(GET => "http://127.0.0.1:$nodeport{$drained}/healthz");
is($st, 503, 'its /healthz: 503 (out of the edge\'s rotation)');
is($body->{status}, 'draining', '... {"status":"draining"}');
# and through the edge: new clients land elsewhere
my $late = open_client($victims[0]);
isnt($late->{node}, $drained, 'a new connection through the edge lands '
     . 'on another node (' . $late->{node} . ')');
$late->{ws}->close if $late->{ws};

ok(ChatTest::wait_until(sub {
       $nodes = nodes_now();
       my $d = $nodes->{$drained} // {};
       $d->{draining} && $d->{workers_draining} && $d->{connections} == 0 },
       timeout => 10, interval => 0.5),
   "/admin/nodes: $drained draining, its workers too, no connections")
    or diag explain $nodes->{$drained};

# every acked message reaches its recipient
my (%want, @acked);
for my $n (@names) {
    my $c = $cl{$n};
    for my $cid (keys %{ $c->{sent} || {} }) {
        my $id = $c->{acks}{$cid} or next;
        $want{ $c->{sent}{$cid} }{$id} = 1;
        push @acked, $id;
    }
}
for my $n (@names) {
    pump($cl{$_}, 0.3) for @names;
}
my @short;
for my $n (@names) {
    my $c = $cl{$n};
    pump($c, 20, sub { !(grep { !$c->{got}{$_} } keys %{ $want{$n} || {} }) });
    push @short, $n if grep { !$c->{got}{$_} } keys %{ $want{$n} || {} };
}
my $nsent = 0;
$nsent += keys %{ $cl{$_}{sent} || {} } for @names;
is("@short", '', 'every acked message (' . @acked . " of $nsent sent) "
   . 'reached its recipient');
# once; the contract's at-least-once for what the close overtook: a message
# received on the old connection in its last second, whose "delivered"
# receipt may not have reached the node, comes again on the reconnect
my @bad;
for my $v (@victims) {
    my $c = $cl{$v};
    my $closed = $c->{old} ? $c->{old}{closed_at} // 0 : 0;
    push @bad, grep { $c->{got}{$_} > 2
                      || ($c->{got}{$_} == 2
                          && $c->{when}{$_} < $closed - 1) }
               keys %{ $c->{got} };
}
for my $o (@others) {
    push @bad, grep { $cl{$o}{got}{$_} > 1 } keys %{ $cl{$o}{got} };
}
is("@bad", '', '... once (but for a receipt the close overtook)');
ok(ChatTest::wait_until(sub {
       ChatPersist::sql("SELECT count(*) FROM messages WHERE id = ANY "
                        . "(string_to_array(:'ids', ','))",
                        ids => join(',', @acked)) == @acked },
       timeout => 30, interval => 0.5),
   'every acked message is in PostgreSQL once');

($st, $body) = admin(GET => "/users/$uid{$victims[0]}");
is(($body->{connections}[0]{node} // '') . " $body->{devices}",
   "$moved{$victims[0]} 1",
   "/admin/users/{id}: $victims[0] is on $moved{$victims[0]} now");

# undrain: WebSockets again
($st, $body) = admin(POST => "/nodes/$drained/undrain");
is("$st " . ($body->{draining} ? 'draining' : 'not draining'),
   '200 not draining', "POST /admin/nodes/$drained/undrain");
ok(ChatTest::wait_until(sub {
       my ($s) = call(GET => "http://127.0.0.1:$nodeport{$drained}/healthz");
       $s == 200 }, timeout => 10, interval => 0.3),
   '... its /healthz: 200 again');
$direct = open_client($victims[0], $nodeport{$drained});
is($direct->{status}, 101, '... and it takes WebSockets');
ok(ChatTest::wait_until(sub {
       $nodes = nodes_now();
       my $d = $nodes->{$drained} // {};
       !$d->{draining} && !$d->{workers_draining} && $d->{connections} == 1 },
       timeout => 10, interval => 0.5),
   "/admin/nodes: $drained not draining, one connection")
    or diag explain $nodes->{$drained};


# --- 4. disconnect a user; the lag ----------------------------------------------

# $victims[0] has two devices now, on two nodes
($st, $body) = admin(POST => "/users/$uid{$victims[0]}/disconnect");
is($st, 200, 'POST /admin/users/{id}/disconnect');
cmp_ok($body->{workers} // 0, '>=', 2, '... reached the workers of both '
       . 'its connections') or diag explain $body;
my $dev1 = $cl{$victims[0]};
pump($dev1, 5);
pump($direct, 5);
is(($dev1->{close} // 'none') . ' ' . ($direct->{close} // 'none'), '4001 4001',
   '... both of its WebSockets were closed with 4001');
pump($cl{$peer{$victims[0]}}, 1);
ok($cl{$peer{$victims[0]}}{ws}, '... not its peer\'s');
ok(ChatTest::wait_until(sub {
       (undef, $body) = admin(GET => "/users/$uid{$victims[0]}");
       !$body->{online} }, timeout => 10, interval => 0.3),
   '... then /admin/users/{id} says offline, with last_seen')
    or diag explain $body;
ok($body->{last_seen} && $body->{devices} == 0, '... last_seen set')
    or diag explain $body;

($st, $body) = admin(GET => '/lag');
is($st, 200, 'GET /admin/lag');
is(ref $body->{groups}, 'ARRAY', '... {"groups":[...]}');
my ($persist) = grep { ($_->{group} // '') =~ /persist/ }
                @{ $body->{groups} || [] };
ok(ChatTest::wait_until(sub {
       (undef, $body) = admin(GET => '/lag');
       ($persist) = grep { ($_->{group} // '') =~ /persist/ }
                    @{ $body->{groups} || [] };
       $persist && defined $persist->{topics}{'chat.messages'}
       && defined $persist->{lag} && !$persist->{stale} },
       timeout => 15, interval => 0.5),
   '... the persist group\'s lag, per topic, fresh') or diag explain $body;

for my $k (1 .. 3) {
    my $text = ChatTest::slurp(ChatPersist::stack_env('CHAT_VAR')
                               . "/log/nginx-node$k-error.log");
    unlike($text, qr/\[(alert|emerg)\]/, "node$k: no alert in its error log");
    unlike($text, qr/\Q$token\E/, "node$k: the admin token is not logged");
}

done_testing();
