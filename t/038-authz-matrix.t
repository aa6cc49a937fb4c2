# The authorization matrix: every HTTP route the API's router serves (read
# from its route table in src/ngx_chat_api.c), /healthz, the WebSocket
# handshake and every WebSocket frame type (read from chat_proto.c), each
# asked by every kind of caller, against the test stack's real PostgreSQL,
# Redis and Kafka-protocol broker:
#
#   owner     the user whose resource the row asks for (friends with
#             "friend", a member of the group, holds the device token)
#   friend    the owner's friend, not in the group
#   member    a member of the group (not an admin), not the owner's friend
#   admin     the group's admin (its creator), not the owner's friend
#   stranger  no relation to anyone
#   none      no token at all
#   expired   the owner's token, signed with the right secret, expired
#   revoked   a token of the owner's after DELETE /v1/sessions/current
#   query     the owner's valid token as ?access_token= and no header: the
#             contract accepts it on /v1/ws only
#
# One data table (@MATRIX), one loop.  Each cell states what
# ../shared/CONTRACT.md v1.1 (sections 2 and 3) and docs/API.md,
# docs/PROTOCOL.md say: the status and "error" code of an HTTP answer, the
# 101/401 of a handshake, or what a frame gets (an ack, an error frame's
# code, a receipt at the sender, a typing frame at the owner).  A route the
# router serves without a row in the table, or a row for a route it does
# not serve, fails the test.
#
# The locations are laid out as in lua-free-conf/single-node.conf (chat_auth
# on for /v1/, /v1/users and /v1/sessions on their own), without its
# limit_req, which this many registrations and logins would trip.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use IO::Select ();
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatJWT;
use ChatWS;
use ChatPersist ();
use ChatMedia ();

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();


# --- the matrix --------------------------------------------------------------

my @CALLERS = qw(owner friend member admin stranger none expired revoked
                 query);

# shorthands for the cells
my $U   = '401 unauthorized';   # refused token (HTTP), refused handshake (WS)
my $F   = '403 forbidden';
my @NOT = ($U, $U, $U);         # none, expired, revoked

# [ route as the router declares it ('#' an id, '*' a string),
#   the request ({owner} {gid} {extra} {device} {unknown} {msg} are
#   filled in),
#   the body (a hash, or code that makes one), options,
#   [ owner friend member admin stranger none expired revoked query ] ]
#
# Options: fresh: each caller with a valid token uses a new one from
# POST /v1/sessions (the row revokes what it uses); mutates: the fixture is
# put back before each cell; keep => 'what:callers': what must still hold
# after the cell of every other caller (%KEEP), whatever it was answered.
#
# WebSocket rows ("WS <type>"): the caller connects (none, expired and
# revoked get the handshake's answer), sends the frame and the cell is what
# came of it: "ack", "pong", "error:<code>", "receipt>sender" (the
# message's sender got the caller's receipt), "typing>owner" (the owner's
# device got the caller's typing), "synced" (no error before the pong that
# follows), "silence" (nothing within 3 s).

my @MATRIX = (

    # -- no token needed: a token, good or bad, changes nothing ------------
    [ 'GET /healthz', 'GET /healthz', undef, {},
      [ (200) x 9 ] ],

    [ 'POST /v1/users', 'POST /v1/users',
      sub { { username => uniq('mx'), password => 'long-enough-pw' } }, {},
      [ (201) x 9 ] ],

    [ 'POST /v1/sessions', 'POST /v1/sessions',
      sub { { username => $::Name{owner}, password => $::Pass } }, {},
      [ (200) x 9 ] ],

    # -- the caller's own things ---------------------------------------------
    [ 'DELETE /v1/sessions/current', 'DELETE /v1/sessions/current', undef,
      { fresh => 1 },
      [ (204) x 5, @NOT, $U ] ],

    [ 'GET /v1/me', 'GET /v1/me', undef, {},
      [ (200) x 5, @NOT, $U ] ],

    [ 'GET /v1/friends', 'GET /v1/friends', undef, {},
      [ (200) x 5, @NOT, $U ] ],

    [ 'POST /v1/groups', 'POST /v1/groups',
      sub { { name => 'matrix', members => [ $::Uid{owner} ] } }, {},
      [ (201) x 5, @NOT, $U ] ],

    [ 'PUT /v1/keys', 'PUT /v1/keys', { public_key => 'bWF0cml4' }, {},
      [ (204) x 5, @NOT, $U ] ],

    # -- the owner as a person: anyone may ask or read --------------------
    # befriending oneself is a bad request; a friend's PUT keeps "friends"
    [ 'PUT /v1/friends/#', 'PUT /v1/friends/{owner}', undef,
      { mutates => 1 },
      [ '400 bad_request', (200) x 4, @NOT, $U ] ],

    [ 'DELETE /v1/friends/#', 'DELETE /v1/friends/{owner}', undef,
      { mutates => 1 },
      [ (204) x 5, @NOT, $U ] ],

    [ 'GET /v1/users/#/keys', 'GET /v1/users/{owner}/keys', undef, {},
      [ (200) x 5, @NOT, $U ] ],

    # a username's account: anyone with a token
    [ 'GET /v1/users/lookup', 'GET /v1/users/lookup?username={ownername}',
      undef, {},
      [ (200) x 5, @NOT, $U ] ],

    # presence: friends (and oneself) only
    [ 'GET /v1/users/#/presence', 'GET /v1/users/{owner}/presence', undef,
      {},
      [ 200, 200, $F, $F, $F, @NOT, $U ] ],

    # history: one's own conversation with anyone; a group's for members
    [ 'GET /v1/messages', 'GET /v1/messages?with={owner}', undef, {},
      [ (200) x 5, @NOT, $U ] ],

    [ 'GET /v1/messages', 'GET /v1/messages?group={gid}', undef, {},
      [ 200, $F, 200, 200, $F, @NOT, $U ] ],

    # a message's receipts: its sender only (the owner's group message),
    # not the group's other members or admin
    [ 'GET /v1/messages/*/receipts', 'GET /v1/messages/{msg}/receipts',
      undef, {},
      [ 200, $F, $F, $F, $F, @NOT, $U ] ],

    # search (issue #17): everyone signed in searches, and finds only
    # what is theirs (t/055); bad input is a 400 for everyone signed in
    [ 'GET /v1/search', 'GET /v1/search?q=matrix', undef, {},
      [ (200) x 5, @NOT, $U ] ],

    [ 'GET /v1/search', 'GET /v1/search?q=', undef, {},
      [ ('400 bad_request') x 5, @NOT, $U ] ],

    # -- the group: members see it, admins change it ---------------------
    [ 'GET /v1/groups/#', 'GET /v1/groups/{gid}', undef, {},
      [ 200, $F, 200, 200, $F, @NOT, $U ] ],

    [ 'PUT /v1/groups/#/members/#', 'PUT /v1/groups/{gid}/members/{extra}',
      undef, { mutates => 1, keep => 'extra_out:admin' },
      [ $F, $F, $F, 200, $F, @NOT, $U ] ],

    # an admin removes anyone, a member only itself
    [ 'DELETE /v1/groups/#/members/#',
      'DELETE /v1/groups/{gid}/members/{owner}', undef,
      { mutates => 1, keep => 'owner_in:owner,admin' },
      [ 204, $F, $F, 204, $F, @NOT, $U ] ],

    # -- images (issue #15): anyone signed in uploads; by token, the
    # owner's image (sent nowhere) is the owner's alone, and everyone else
    # gets the 404 of an id that does not exist (signed URLs: t/051)
    [ 'POST /v1/media', 'POST /v1/media', \$::Png, {},
      [ (201) x 5, @NOT, $U ] ],

    [ 'GET /v1/media/*', 'GET /v1/media/{media}', undef, {},
      [ 200, ('404 not_found') x 4, @NOT, $U ] ],

    [ 'HEAD /v1/media/*', 'HEAD /v1/media/{media}', undef, {},
      [ 200, (404) x 4, (401) x 4 ] ],

    # -- the owner's device token: nobody else takes or drops it ----------
    [ 'PUT /v1/devices/*', 'PUT /v1/devices/{device}',
      { platform => 'fcm' }, { mutates => 1, keep => 'device_owned:owner' },
      [ 204, ('409 conflict') x 4, @NOT, $U ] ],

    # 204 for everyone (a retry succeeds, nobody learns who holds a
    # token), but only the owner's removes it
    [ 'DELETE /v1/devices/*', 'DELETE /v1/devices/{device}', undef,
      { mutates => 1, keep => 'device_owned:owner' },
      [ (204) x 5, @NOT, $U ] ],

    # -- the WebSocket -----------------------------------------------------
    [ 'GET /v1/ws', 'WS handshake', undef, {},
      [ (101) x 5, @NOT, 101 ] ],

    [ 'WS ping', 'WS ping', undef, {},
      [ ('pong') x 5, @NOT, 'pong' ] ],

    # anyone may message any existing user (contract section 4)
    [ 'WS send', 'WS send to {owner}', undef, {},
      [ ('ack') x 5, @NOT, 'ack' ] ],

    [ 'WS send', 'WS send to {unknown}', undef, {},
      [ ('error:not_found') x 5, @NOT, 'error:not_found' ] ],

    # group sends: members only (issue #14; contract section 3)
    [ 'WS send', 'WS send to group {gid}', undef, {},
      [ 'ack', 'error:forbidden', 'ack', 'ack', 'error:forbidden', @NOT,
        'ack' ] ],

    # a receipt only from the recipient of the message
    [ 'WS receipt', 'WS receipt for a message to {owner}', undef, {},
      [ 'receipt>sender', ('error:unknown_message') x 4, @NOT,
        'receipt>sender' ] ],

    [ 'WS typing', 'WS typing to {owner}', undef, {},
      [ ('typing>owner') x 5, @NOT, 'typing>owner' ] ],

    # contract v1.1: an unknown user gets an error frame
    [ 'WS typing', 'WS typing to {unknown}', undef, {},
      [ ('error:not_found') x 5, @NOT, 'error:not_found' ] ],

    # group typing: members only; it goes to the other members (the
    # owner's own typing does not come back to the owner's other device)
    [ 'WS typing', 'WS typing to group {gid}', undef, {},
      [ 'silence', 'error:forbidden', 'typing>owner', 'typing>owner',
        'error:forbidden', @NOT, 'silence' ] ],

    [ 'WS sync', 'WS sync', undef, {},
      [ ('synced') x 5, @NOT, 'synced' ] ],
);


# --- what the server serves --------------------------------------------------

sub slurp_src {
    my ($rel) = @_;
    open my $in, '<', "$ChatTest::Root/$rel" or die "$rel: $!\n";
    local $/;
    return scalar <$in>;
}

# "METHOD /path" for every entry of ngx_chat_api_routes[]
sub router_routes {
    my $src = slurp_src('src/ngx_chat_api.c');
    my ($table) = $src =~ /ngx_chat_api_routes\[\]\s*=\s*\{(.*?)\n\};/s
        or die "no ngx_chat_api_routes[] in src/ngx_chat_api.c\n";
    my @r;
    while ($table =~ /\{\s*((?:NGX_HTTP_\w+\s*\|?\s*)+),\s*"([^"]*)"/g) {
        my ($methods, $path) = ($1, $2);
        push @r, map { "$_ $path" } $methods =~ /NGX_HTTP_(\w+)/g;
    }
    return @r;
}

# "WS <type>" for every frame type chat_proto_decode() knows
sub frame_types {
    my $src = slurp_src('src/common/chat_proto.c');
    my ($list) = $src =~ /chat_proto_types\[\]\s*=\s*\{(.*?)\};/s
        or die "no chat_proto_types[] in src/common/chat_proto.c\n";
    return map { "WS $_" } $list =~ /"([^"]+)"/g;
}

my @served = (router_routes(),
              'GET /healthz',    # chat_healthz
              'GET /v1/ws',      # chat_websocket
              frame_types());
my %has_row = map { $_->[0] => 1 } @MATRIX;
my %served = map { $_ => 1 } @served;

cmp_ok(scalar router_routes(), '>=', 15, 'the router\'s table was read');
cmp_ok(scalar frame_types(), '>=', 5, 'the frame types were read');
ok($has_row{$_}, "served, so in the matrix: $_") for @served;
ok($served{$_->[0]}, "in the matrix, so served: $_->[0] ($_->[1])")
    for @MATRIX;
is(scalar @{ $_->[4] }, scalar @CALLERS, "a cell per caller: $_->[1]")
    for @MATRIX;


# --- the gateway and the world around it -------------------------------------

$ENV{TEST_NGINX_MEDIA_DIR} = "/tmp/chat-media-matrix-$$";
mkdir $ENV{TEST_NGINX_MEDIA_DIR};
END { system('rm', '-rf', $ENV{TEST_NGINX_MEDIA_DIR}) }

# a 1x1 PNG: what POST /v1/media takes
our $Png = ChatMedia::png(1, 1, 0);

ChatTest::start_nginx(
    workers     => 1,
    http_config => <<'CONF',
    chat_node_name matrix;
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_kafka_brokers $TEST_NGINX_KAFKA_BROKERS;
    chat_kafka_timeout 5s;
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_jwt_ttl 1h;
    chat_media_path $TEST_NGINX_MEDIA_DIR;
CONF
    config      => <<'CONF',
    location = /healthz {
        chat_healthz;
    }
    location /v1/ {
        chat_auth on;
        chat_api;
    }
    location = /v1/ws {
        chat_websocket;
    }
    location = /v1/users {
        chat_api;
    }
    location = /v1/sessions {
        chat_api;
    }
    location /_chat_media/ {
        internal;
        alias $TEST_NGINX_MEDIA_DIR/;
    }
CONF
);

my $run = sprintf '%x%x', $$, time * 1000 % 0xffffff;
my $seq = 0;
our $Pass = 'matrix-password';
our (%Uid, %Name, %Tok);

sub uniq { sprintf '%s%s_%d', $_[0], $run, ++$seq }

# ($status, $json, $text)
sub api {
    my ($method, $path, $token, $body, %o) = @_;
    my %h;
    $h{Authorization} = "Bearer $token" if defined $token;
    $h{'Content-Type'} = 'application/json' if defined $body;
    # raw bytes: an image
    $h{'Content-Type'} = 'image/png' if ref $body eq 'SCALAR';
    my ($st, undef, $text) = ChatTest::http_request(
        $method, $path, \%h,
        ref $body eq 'SCALAR' ? $$body
        : defined $body ? encode_json($body) : undef,
        timeout => 15);
    return ($st, eval { decode_json($text) }, $text);
}

sub login {
    my ($who) = @_;
    my ($st, $j, $t) = api(POST => '/v1/sessions', undef,
                           { username => $Name{$who}, password => $Pass });
    die "log in $who: $st $t\n" unless $st == 200;
    return $j->{token};
}

for my $who (qw(owner friend member admin stranger peer extra)) {
    $Name{$who} = uniq(substr $who, 0, 3);
    my ($st, $j, $t) = api(POST => '/v1/users', undef,
                           { username => $Name{$who}, password => $Pass });
    is($st, 201, "register $who") or BAIL_OUT("cannot register: $t");
    $Uid{$who} = $j->{user_id};
    $Tok{$who} = login($who);
}

$Tok{expired} = ChatJWT::token(sub => $Uid{owner}, exp => time - 60);
$Tok{revoked} = login('owner');
isnt($Tok{revoked}, $Tok{owner}, 'a second session of the owner');
{
    my ($st, $j, $t) = api(DELETE => '/v1/sessions/current', $Tok{revoked});
    is($st, 204, 'the second session logs out') or diag $t;
}

my ($st0, $g) = api(POST => '/v1/groups', $Tok{admin},
                    { name => 'matrix',
                      members => [ @Uid{qw(owner member)} ] });
is($st0, 201, 'the admin makes the group, with the owner and the member');
our $Gid = $g->{group_id};
our $Device = uniq('device-');
our $Unknown = '9000000000000000000';

{
    my ($st) = api(PUT => '/v1/keys', $Tok{owner},
                   { public_key => 'bWF0cml4' });
    is($st, 204, 'the owner has a key');
}

# the world each cell starts from (idempotent)
sub fixture {
    my @steps = (
        [ owner  => PUT => "/v1/friends/$Uid{friend}", 200 ],
        [ friend => PUT => "/v1/friends/$Uid{owner}", 200 ],
        (map { [ $_ => DELETE => "/v1/friends/$Uid{owner}", 204 ] }
             qw(member admin stranger)),
        [ admin  => PUT => "/v1/groups/$Gid/members/$Uid{owner}", 200 ],
        [ admin  => PUT => "/v1/groups/$Gid/members/$Uid{member}", 200 ],
        [ admin  => DELETE => "/v1/groups/$Gid/members/$Uid{extra}",
          qr/^(204|404)$/ ],
        [ owner  => PUT => "/v1/devices/$Device", 204,
          { platform => 'fcm' } ],
    );
    for my $s (@steps) {
        my ($who, $m, $path, $want, $body) = @$s;
        my ($st, undef, $t) = api($m, $path, $Tok{$who}, $body);
        next if ref $want ? $st =~ $want : $st == $want;
        fail("fixture: $who $m $path: $st $t");
    }
}

fixture();

# a group message of the owner's, stored (a record as the gateway writes
# it), for its receipts
our $Msg = ChatPersist::new_id();
ChatPersist::produce('chat.messages', ChatPersist::message_record(
    id => $Msg, seq => 1, from => $Uid{owner}, group => $Gid,
    body => 'matrix'));
ok(ChatTest::wait_until(sub {
       ChatPersist::sql("SELECT count(*) FROM messages WHERE id = :'id'",
                        id => $Msg) == 1 }, timeout => 60, interval => 0.3),
   'the owner\'s group message is stored');

my ($fst, $fj) = api(GET => '/v1/friends', $Tok{owner});
my ($frow) = grep { $_->{user_id} == $Uid{friend} } @{ $fj->{friends} };
is($frow && $frow->{state}, 'friends', 'the owner and the friend are friends');

# what must still hold after the cells of those who may not change it
my %KEEP = (
    device_owned => sub {
        ChatPersist::sql('SELECT user_id FROM devices WHERE token = '
                         . ":'t'", t => $Device) eq $Uid{owner};
    },
    owner_in => sub { in_group($Uid{owner}) },
    extra_out => sub { !in_group($Uid{extra}) },
);

sub in_group {
    my ($uid) = @_;
    my ($st, $j) = api(GET => "/v1/groups/$Gid", $Tok{admin});
    return scalar grep { $_->{user_id} == $uid } @{ $j->{members} || [] };
}


# --- WebSocket helpers -------------------------------------------------------

# ($status, $ws, $error code of a refusal)
sub ws_open {
    my ($token, $query) = @_;
    my $ws = ChatWS->new(port => ChatTest::port());
    my $path = '/v1/ws';
    my %h;
    if ($query) {
        $path .= "?access_token=$token";
    } elsif (defined $token) {
        $h{Authorization} = "Bearer $token";
    }
    my ($st, undef, $body) = $ws->handshake($path, %h);
    my $err = eval { decode_json($body)->{error} };
    return ($st, $ws, $err);
}

# Frames from several connections until $done returns a result or the time
# is up: $done->($which, $frame) gets each frame with the name it came on.
sub watch {
    my ($conns, $timeout, $done) = @_;
    my $end = time + $timeout;
    my %by = map { fileno($conns->{$_}{sock}) => $_ } keys %$conns;
    while (1) {
        # whatever is buffered first, then what the sockets have
        for my $name (sort keys %$conns) {
            my $ws = $conns->{$name};
            while (length $ws->{buf}) {
                my $t = $ws->read_text(5) // last;
                my $r = $done->($name, eval { decode_json($t) } || {});
                return $r if defined $r;
            }
        }
        my $left = $end - time;
        return undef if $left <= 0;
        my $sel = IO::Select->new(map { $_->{sock} } values %$conns);
        for my $sock ($sel->can_read($left < 0.2 ? $left : 0.2)) {
            my $name = $by{fileno $sock};
            my $t = $conns->{$name}->read_text(5);
            if (!defined $t) {
                return 'closed' if $name eq 'caller';
                next;
            }
            my $r = $done->($name, eval { decode_json($t) } || {});
            return $r if defined $r;
        }
    }
}

# the owner's device that watches for typing and messages, and the peer
# who sends the owner messages to make receipts of
my ($wst, $watch) = ws_open($Tok{owner});
is($wst, 101, 'the owner\'s watching device connects');
my ($pst, $peer) = ws_open($Tok{peer});
is($pst, 101, 'the peer connects');

# an image of the owner's, sent nowhere
my ($mst, $mj, $mt) = api(POST => '/v1/media', $Tok{owner}, \$Png);
is($mst, 201, 'the owner uploads an image') or diag $mt;
our $Media = $mj->{media_id} // 'none';

sub fill {
    my ($s) = @_;
    $s =~ s/\{owner\}/$Uid{owner}/g;
    $s =~ s/\{ownername\}/$::Name{owner}/g;
    $s =~ s/\{extra\}/$Uid{extra}/g;
    $s =~ s/\{gid\}/$Gid/g;
    $s =~ s/\{device\}/$Device/g;
    $s =~ s/\{unknown\}/$Unknown/g;
    $s =~ s/\{msg\}/$Msg/g;
    $s =~ s/\{media\}/$Media/g;
    return $s;
}

my %Typed;    # user id -> when it last sent a typing frame

# what comes of one frame (row $what) on the caller's connection $ws
sub ws_cell {
    my ($what, $ws, $me) = @_;
    my $cid = uniq('c');

    if ($what eq 'WS handshake') {
        return 101;
    }

    if ($what eq 'WS ping') {
        $ws->send_text('{"type":"ping"}');
        return watch({ caller => $ws }, 10, sub {
            my ($on, $f) = @_;
            my $t = $f->{type} // '';
            return $t eq 'pong' ? 'pong'
                 : $t eq 'error' ? "error:$f->{code}" : undef;
        }) // 'silence';
    }

    if ($what =~ /^WS send to (group )?(\S+)$/) {
        my %m = (type => 'send', client_id => $cid, body => 'matrix');
        if ($1) { $m{group} = 0 + fill($2) } else { $m{to} = 0 + fill($2) }
        $ws->send_text(encode_json(\%m));
        return watch({ caller => $ws }, 15, sub {
            my ($on, $f) = @_;
            return undef unless ($f->{client_id} // '') eq $cid;
            return $f->{type} eq 'ack' ? 'ack' : "error:$f->{code}";
        }) // 'silence';
    }

    if ($what =~ /^WS receipt/) {
        # the peer sends the owner a message; once the owner's device has
        # it (so it is in the owner's inbox), the caller says "read"
        $peer->send_text(encode_json({ type => 'send', to => $Uid{owner},
                                       client_id => $cid,
                                       body => 'read me' }));
        my $id = watch({ peer => $peer }, 15, sub {
            my ($on, $f) = @_;
            return ($f->{client_id} // '') eq $cid && $f->{type} eq 'ack'
                   ? $f->{id} : undef;
        }) // return 'no ack for the message';
        watch({ watch => $watch }, 15, sub {
            ($_[1]{type} // '') eq 'message' && $_[1]{id} eq $id ? 1 : undef
        }) // return 'the message did not reach the owner';
        $ws->send_text(encode_json({ type => 'receipt', id => $id,
                                     status => 'read' }));
        return watch({ caller => $ws, peer => $peer }, 5, sub {
            my ($on, $f) = @_;
            my $t = $f->{type} // '';
            return "error:$f->{code}" if $on eq 'caller' && $t eq 'error';
            return 'receipt>sender' if $on eq 'peer' && $t eq 'receipt'
                                       && $f->{id} eq $id
                                       && $f->{by} == $me;
            return undef;
        }) // 'silence';
    }

    if ($what =~ /^WS typing to (group )?(\S+)$/) {
        my %m = (type => 'typing');
        # one typing a second is passed on: a user's next one waits
        my $wait = ($Typed{$me} // 0) + 1.1 - time;
        sleep $wait if $wait > 0;
        $Typed{$me} = time;
        if ($1) { $m{group} = 0 + fill($2) } else { $m{to} = 0 + fill($2) }
        $ws->send_text(encode_json(\%m));
        return watch({ caller => $ws, watch => $watch }, 3, sub {
            my ($on, $f) = @_;
            my $t = $f->{type} // '';
            return "error:$f->{code}" if $on eq 'caller' && $t eq 'error';
            return 'typing>owner' if $on eq 'watch' && $t eq 'typing'
                                     && ($f->{from} // 0) == $me;
            return undef;
        }) // 'silence';
    }

    if ($what eq 'WS sync') {
        $ws->send_text('{"type":"sync"}');
        $ws->send_text('{"type":"ping"}');
        return watch({ caller => $ws }, 10, sub {
            my ($on, $f) = @_;
            my $t = $f->{type} // '';
            return $t eq 'pong' ? 'synced'
                 : $t eq 'error' ? "error:$f->{code}" : undef;
        }) // 'silence';
    }

    die "no way to ask \"$what\"\n";
}


# --- the loop ----------------------------------------------------------------

# the token a caller uses in a cell (undef: none)
sub token_of {
    my ($caller, $row) = @_;
    return undef if $caller eq 'none';
    my $who = $caller eq 'query' ? 'owner' : $caller;
    return $Tok{$who} unless $row->[3]{fresh} && $Uid{$who};
    return login($who);
}

# "403 forbidden" wants that status and error code, "200" the status
sub matches {
    my ($want, $got) = @_;
    return $want eq $got || ($want =~ /^\d+$/ && $got =~ /^$want(?: |$)/);
}

my @grid;

for my $row (@MATRIX) {
    my ($route, $what, $body, $opt, $want) = @$row;
    my @line;

    for my $i (0 .. $#CALLERS) {
        my $caller = $CALLERS[$i];
        fixture() if $opt->{mutates};
        my $token = token_of($caller, $row);
        # expired, revoked and query are tokens of the owner's
        my $me = $Uid{$caller} // $Uid{owner};
        my $got;

        if ($what =~ /^WS /) {
            my ($st, $ws, $err) = ws_open($token, $caller eq 'query');
            if ($st != 101) {
                $got = $st . ($err ? " $err" : '');
            } else {
                # what waited for the caller comes first: not the answer
                $got = eval { ws_cell($what, $ws, $me) } // "died: $@";
            }
            $ws->close;

        } else {
            my ($method, $path) = split / /, fill($what), 2;
            if ($caller eq 'query') {
                $path .= ($path =~ /\?/ ? '&' : '?') . "access_token=$token";
                undef $token;
            }
            my $b = ref $body eq 'CODE' ? $body->() : $body;
            my ($st, $j, $t) = api($method, $path, $token, $b);
            $got = $st . (ref $j eq 'HASH' && $j->{error}
                          ? " $j->{error}" : '');
        }

        ok(matches($want->[$i], $got),
           sprintf('%-45s %-8s wants %s', $what, $caller, $want->[$i]))
            or diag "got $got";

        # the others left the owner's things as they were
        if ($opt->{keep}) {
            my ($check, $may) = split /:/, $opt->{keep};
            ok($KEEP{$check}->(), "$what $caller: $check still holds")
                unless grep { $_ eq $caller } split /,/, $may;
        }

        push @line, $got;
    }

    push @grid, sprintf '%-42s %s', $what, join ' | ', @line;
}

note "the matrix as answered (", join(', ', @CALLERS), "):\n",
     join "\n", @grid;

$watch->close;
$peer->close;

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');

# none of the tokens of this run in the error log (contract section 3; the
# query column puts the owner's in request lines)
my $log = ChatTest::error_log();
for my $who (qw(owner friend stranger expired revoked)) {
    my ($sig) = $Tok{$who} =~ /\.([^.]+)$/;
    unlike($log, qr/\Q$sig\E/, "the $who token is not in the error log");
}

done_testing();
