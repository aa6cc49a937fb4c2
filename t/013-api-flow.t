# The HTTP API end to end, over real HTTP against the real PostgreSQL and
# Redis of the test stack: register, log in, befriend (both sides), make a
# group of three, read /v1/me and another member's key; then who may do
# what, the login limit, SQL metacharacters stored as plain text, and that
# password hashing does not hold up the event loop.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time);
use POSIX ();
use ChatTest;
use ChatJWT;

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

ChatTest::start_nginx(
    workers     => 1,
    http_config => <<'CONF',
    chat_node_name api-flow;
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_login_limit 3 1m;
    chat_jwt_ttl 1h;
    chat_group_max_members 4;
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Forwarded-For;
CONF
    config      => <<'CONF',
    location = /healthz {
        chat_healthz;
    }
    location /v1/ {
        chat_api;
    }
CONF
);

my $run = sprintf '%x%x', $$, time;    # usernames unique to this run
my %tok;
my %uid;

sub api {
    my ($method, $path, $body, $who, %o) = @_;
    my %h = %{ $o{headers} || {} };
    $h{Authorization} = "Bearer $tok{$who}" if $who && $tok{$who};
    $h{'Content-Type'} = 'application/json' if defined $body;
    my ($status, $headers, $text) = ChatTest::http_request(
        $method, $path, \%h,
        defined $body ? (ref $body ? encode_json($body) : $body) : undef,
        timeout => $o{timeout} // 10);
    my $json = eval { decode_json($text) };
    return ($status, $json, $text, $headers);
}

sub user {
    my ($name) = @_;
    my $username = "${name}_$run";
    my ($st, $j, $t) = api(POST => '/v1/users',
                           { username => $username,
                             password => "pw-$name-secret",
                             display_name => ucfirst $name });
    is($st, 201, "register $name") or diag $t;
    is($j->{username}, $username, "$name: username echoed");
    ok($j->{user_id} =~ /^\d+$/, "$name: numeric user_id");
    $uid{$name} = $j->{user_id};

    ($st, $j, $t) = api(POST => '/v1/sessions',
                        { username => $username,
                          password => "pw-$name-secret" });
    is($st, 200, "log in $name") or diag $t;
    is($j->{user_id}, $uid{$name}, "$name: session for the right user");
    my $ttl = ($j->{expires_at} // 0) / 1000 - time;
    ok($ttl > 3590 && $ttl < 3610,
       "$name: expires_at is chat_jwt_ttl (1h) from now, in ms");
    $tok{$name} = $j->{token};
}

# --- the story of the issue ---------------------------------------------

user($_) for qw(alice bob carol dave);

my ($st, $j, $t) = api(POST => '/v1/users',
                       { username => "alice_$run", password => 'another-pw' });
is($st, 409, 'a taken username: 409') or diag $t;
is($j->{error}, 'username_taken', '... with a JSON error');

($st, $j) = api(PUT => "/v1/friends/$uid{bob}", undef, 'alice');
is($st, 200, 'alice asks bob');
is_deeply($j, { user_id => $uid{bob}, state => 'requested' },
          '... state requested');

($st, $j) = api(GET => '/v1/friends', undef, 'bob');
my ($row) = grep { $_->{user_id} == $uid{alice} } @{ $j->{friends} || [] };
is($row && $row->{state}, 'pending', 'bob sees a pending request');

($st, $j) = api(PUT => "/v1/friends/$uid{alice}", undef, 'bob');
is_deeply($j, { user_id => $uid{alice}, state => 'friends' },
          'bob accepts: friends');

($st, $j) = api(GET => '/v1/friends', undef, 'alice');
($row) = grep { $_->{user_id} == $uid{bob} } @{ $j->{friends} || [] };
is($row && $row->{state}, 'friends', 'alice sees bob as a friend');
is($row && $row->{username}, "bob_$run", '... with his username');

($st, $j, $t) = api(POST => '/v1/groups',
                    { name => 'Three of us',
                      members => [ $uid{bob}, $uid{carol} ] }, 'alice');
is($st, 201, 'alice makes a group of three') or diag $t;
my $gid = $j->{group_id};
is(scalar @{ $j->{members} || [] }, 3, '... three members');
my %role = map { $_->{user_id} => $_->{role} } @{ $j->{members} || [] };
is($role{$uid{alice}}, 'admin', '... alice is admin');
is($role{$uid{carol}}, 'member', '... carol is a member');

($st, $j, $t) = api(GET => '/v1/me', undef, 'alice');
is($st, 200, 'GET /v1/me') or diag $t;
is($j->{user_id}, $uid{alice}, '... me');
is($j->{display_name}, 'Alice', '... display name');
ok(grep({ $_->{user_id} == $uid{bob} && $_->{state} eq 'friends' }
        @{ $j->{friends} || [] }), '... bob among the friends');
ok(grep({ $_->{group_id} == $gid && $_->{role} eq 'admin' }
        @{ $j->{groups} || [] }), '... the group, as admin');
is($j->{ws_url}, 'ws://localhost/v1/ws', '... the WebSocket URL');

($st) = api(PUT => '/v1/keys', { public_key => 'QUJDREVGR0g=' }, 'carol');
is($st, 204, 'carol publishes her public key');
($st, $j) = api(GET => "/v1/users/$uid{carol}/keys", undef, 'alice');
is($st, 200, 'alice reads carol\'s key');
is_deeply($j, { user_id => $uid{carol}, public_key => 'QUJDREVGR0g=' },
          '... the key');
($st, $j) = api(GET => "/v1/users/$uid{dave}/keys", undef, 'alice');
is($st, 404, 'no key published: 404');

($st) = api(PUT => "/v1/devices/tok-$run", { platform => 'webhook' },
            'carol');
is($st, 204, 'carol registers a device');

# --- who may do what ------------------------------------------------------

($st, $j) = api(GET => "/v1/groups/$gid", undef, 'dave');
is($st, 403, 'a non-member cannot read the group');
is($j->{error}, 'forbidden', '... JSON error');
($st, $j) = api(GET => "/v1/groups/$gid", undef, 'carol');
is($st, 200, 'a member can');
($st) = api(PUT => "/v1/groups/$gid/members/$uid{dave}", undef, 'dave');
is($st, 403, 'a non-member cannot add members');
($st) = api(PUT => "/v1/groups/$gid/members/$uid{dave}", undef, 'carol');
is($st, 403, 'a non-admin member cannot add members');
($st) = api(DELETE => "/v1/groups/$gid/members/$uid{bob}", undef, 'carol');
is($st, 403, 'a non-admin cannot remove others');
($st, $j) = api(PUT => "/v1/groups/$gid/members/$uid{dave}", undef, 'alice');
is($st, 200, 'the admin adds dave');
($st, $j) = api(POST => '/v1/groups',
                { name => 'Too big',
                  members => [ @uid{qw(bob carol dave)}, 999999999 ] },
                'alice');
is($st, 400, 'more members than chat_group_max_members: 400');
($st, $j) = api(POST => '/v1/groups',
                { name => "\x{e9}" x 100, members => [] }, 'alice');
is($st, 201, 'a group name of 100 two-byte characters is 100 characters');
($st, $j) = api(POST => '/v1/groups',
                { name => "\x{e9}" x 101, members => [] }, 'alice');
is($st, 400, '... and 101 of them are one too many');
($st, $j) = api(POST => '/v1/groups',
                { name => 'Ghosts', members => [ 999999998 ] }, 'alice');
is($st, 404, 'unknown member ids: 404');
like($j->{message} // '', qr/999999998/, '... naming them');
($st) = api(DELETE => "/v1/groups/$gid/members/$uid{carol}", undef, 'carol');
is($st, 204, 'carol leaves by herself');
($st) = api(GET => "/v1/groups/$gid", undef, 'carol');
is($st, 403, '... and can no longer read it');
($st) = api(GET => '/v1/groups/999999997', undef, 'alice');
is($st, 404, 'an unknown group: 404');
($st) = api(PUT => '/v1/friends/999999996', undef, 'alice');
is($st, 404, 'befriending an unknown user: 404');
($st) = api(PUT => "/v1/friends/$uid{alice}", undef, 'alice');
is($st, 400, 'befriending yourself: 400');
($st) = api(DELETE => "/v1/friends/$uid{bob}", undef, 'alice');
is($st, 204, 'unfriend');
($st, $j) = api(GET => '/v1/friends', undef, 'bob');
ok(!grep({ $_->{user_id} == $uid{alice} } @{ $j->{friends} || [] }),
   '... gone on both sides');

for my $bad (
    [ 'no token', undef ],
    [ 'expired', ChatJWT::token(sub => $uid{alice}, exp => time - 10) ],
    [ 'tampered', do { my $x = $tok{alice}; $x =~ s/.$/$& eq 'A' ? 'B' : 'A'/e; $x } ],
    [ 'unsigned', ChatJWT::token(sub => $uid{alice},
                                 header => '{"alg":"none"}', sig => '') ],
) {
    ($st, $j) = api(GET => '/v1/me', undef, undef,
                    headers => defined $bad->[1]
                               ? { Authorization => "Bearer $bad->[1]" }
                               : {});
    is($st, 401, "$bad->[0] token: 401");
    is($j->{error}, 'unauthorized', "$bad->[0] token: JSON error");
}

# --- SQL metacharacters are data ---------------------------------------------

my $evil = q{Robert'); DROP TABLE users; -- "%_\\};
my $evil_user = "evil_$run";
($st, $j, $t) = api(POST => '/v1/users',
                    { username => $evil_user, password => 'evil-password',
                      display_name => $evil });
is($st, 201, 'a display name full of SQL metacharacters') or diag $t;
($st, $j) = api(POST => '/v1/sessions',
                { username => $evil_user, password => 'evil-password' });
$tok{evil} = $j->{token};
($st, $j) = api(GET => '/v1/me', undef, 'evil');
is($j->{display_name}, $evil, '... comes back exactly');
($st, $j) = api(POST => '/v1/groups', { name => $evil, members => [] },
                'evil');
is($st, 201, 'a group name likewise');
is($j->{name}, $evil, '... stored as text');
($st) = api(POST => '/v1/users',
            { username => "x' OR '1'='1", password => 'password1' });
is($st, 400, 'a username outside [a-z0-9_] is refused');
($st, $j) = api(POST => '/v1/sessions',
                { username => "x' OR '1'='1", password => "' OR '1'='1" });
is($st, 401, 'a login with metacharacters is just a wrong login');
($st) = api(PUT => "/v1/devices/%27%3B%20DROP%20TABLE%20devices%3B--$run",
            { platform => 'fcm' }, 'evil');
is($st, 204, 'a device token with metacharacters');

# --- the login limit (chat_login_limit 3 1m) ----------------------------

for my $i (1 .. 3) {
    ($st) = api(POST => '/v1/sessions',
                { username => "dave_$run", password => "wrong-$i" });
    is($st, 401, "wrong password $i: 401");
}
($st, $j) = api(POST => '/v1/sessions',
                { username => "dave_$run", password => 'pw-dave-secret' });
is($st, 429, 'the 4th attempt is refused, even with the right password');
is($j->{error}, 'rate_limited', '... rate_limited');
($st) = api(POST => '/v1/sessions',
            { username => "bob_$run", password => 'pw-bob-secret' });
is($st, 200, 'other users are not affected');

# --- hashing runs off the event loop -----------------------------------------
# (from 20 addresses: concurrent logins from one address each hold one of
# its chat_login_limit attempts until they are done)

my @kids;
my $t0 = time;
for my $i (1 .. 20) {
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my ($s) = api(POST => '/v1/sessions',
                      { username => "carol_$run",
                        password => 'pw-carol-secret' }, undef,
                      timeout => 60,
                      headers => { 'X-Forwarded-For' => "192.0.2.$i" });
        POSIX::_exit($s == 200 ? 0 : 1);
    }
    push @kids, $pid;
}
my ($worst, $n, $fails) = (0, 0, 0);
my %left = map { $_ => 1 } @kids;
while (%left) {
    my $s0 = time;
    my ($hs) = ChatTest::http_get('/healthz');
    my $dt = time - $s0;
    $worst = $dt if $dt > $worst;
    $n++;
    is($hs, 200, 'healthz during the logins') if $n == 1;
    for my $pid (keys %left) {
        next unless waitpid($pid, POSIX::WNOHANG()) == $pid;
        $fails++ if $?;
        delete $left{$pid};
    }
}
is($fails, 0, 'all 20 logins succeeded');
my $logins = time - $t0;
diag sprintf('20 logins took %.2f s; %d health checks meanwhile, the slowest '
             . '%.3f s', $logins, $n, $worst);
cmp_ok($n, '>=', 3, 'several health checks ran while the logins did');
cmp_ok($worst, '<', $logins / 3,
       'the slowest health check took a fraction of the logins\' time');
cmp_ok($worst, '<', 0.5, 'no health check waited half a second');

done_testing();
