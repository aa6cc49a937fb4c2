# Redis AUTH: the test stack's Redis requires a password (requirepass), which
# chat_redis_password_file gives the module, alone or with an ACL user
# (chat_redis_user, Redis 6+ "AUTH user password").  A wrong password is an
# [error] line naming the server, never the password, and /healthz answers
# 503 naming redis.  Neither password ever reaches the error log.  Also:
# the stack's Redis refuses a client without AUTH, and nginx -t rejects a
# bad password configuration.  Also: a unix socket (chat_redis unix:PATH,
# the test stack's REDIS_SOCKET).

use Test::Nginx::Socket 'no_plan';
use File::Temp ();
use ChatJWT;

our ($Password, $AclPassword, $WrongPassword, $AclUser);

my $redis = $ENV{TEST_NGINX_REDIS} // '';
my ($rhost, $rport) = split /:/, $redis;
my $pwfile = $ENV{TEST_NGINX_REDIS_PASSWORD_FILE};

if (!$rport || !$pwfile || !defined $ENV{REDISCLI_AUTH}) {
    Test::More::plan(skip_all => 'needs the test stack (TEST_NGINX_REDIS, '
                     . 'TEST_NGINX_REDIS_PASSWORD_FILE, REDISCLI_AUTH, as '
                     . 'scripts/run-tests sets them)');
}

open my $in, '<', $pwfile or die "$pwfile: $!";
chomp($Password = <$in> // '');
close $in;

my $dir = File::Temp->newdir('chat-t036-XXXXXX', TMPDIR => 1);

sub secret_file {
    my ($name, $text) = @_;
    my $old = umask 077;
    open my $out, '>', "$dir/$name" or die "$dir/$name: $!";
    print $out "$text\n";
    close $out;
    umask $old;
    return "$dir/$name";
}

sub hex_password { join '', map { sprintf '%02x', int rand 256 } 1 .. 24 }

$WrongPassword = hex_password();
$AclPassword = hex_password();
$AclUser = "chat_t036_$$";

$ENV{TEST_NGINX_WRONG_PASSWORD_FILE} = secret_file('wrong', $WrongPassword);
$ENV{TEST_NGINX_ACL_PASSWORD_FILE} = secret_file('acl', $AclPassword);
$ENV{TEST_NGINX_EMPTY_PASSWORD_FILE} = secret_file('empty', '');
$ENV{TEST_NGINX_ACL_USER} = $AclUser;
$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

sub redis_cli {
    my ($env, $stdin, @args) = @_;
    my $cmd = join ' ', $env, map { "'$_'" } 'redis-cli', '-h', $rhost,
                        '-p', $rport, $stdin ? '-x' : (), @args;
    my $out = $stdin ? `printf '%s' '$stdin' | $cmd 2>&1` : `$cmd 2>&1`;
    chomp $out;
    return $out;
}

# Redis itself: no AUTH, no commands.
Test::More::like(redis_cli('env -u REDISCLI_AUTH', undef, 'PING'),
                 qr/^NOAUTH\b/, 'redis-cli without AUTH gets NOAUTH');
Test::More::is(redis_cli('', undef, 'PING'), 'PONG',
               'redis-cli with REDISCLI_AUTH gets PONG');

# An ACL user of our own for the blocks below, with the rights
# docs/DIRECTIVES.md (chat_redis_user) gives (its password through stdin,
# not on a command line); gone again at the end.
Test::More::is(redis_cli('', ">$AclPassword", 'ACL', 'SETUSER', $AclUser,
                         'reset', 'on', '~chat:*', '&chat:*', '+@all',
                         '-@dangerous'),
               'OK', "ACL SETUSER $AclUser");
END { redis_cli('', undef, 'ACL', 'DELUSER', $AclUser) if $AclUser }

repeat_each(2);
# a refused AUTH is logged once per connection attempt (with backoff), not
# per request: each request checks the block's whole log
check_accum_error_log();
no_shuffle();
run_tests();

__DATA__

=== TEST 1: the right password: healthy, and the password is not logged
--- http_config
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
--- config
    location = /healthz {
        chat_healthz;
    }
--- request
GET /healthz
--- response_body_like: "redis":"ok"
--- error_code: 200
--- no_error_log eval
["[error]", qr/\Q$::Password\E/]



=== TEST 2: no password: every command is refused (NOAUTH), 503
--- http_config
    chat_redis $TEST_NGINX_REDIS;
--- config
    location = /healthz {
        chat_healthz;
    }
--- request
GET /healthz
--- response_body_like: "redis":"error".*"message":"redis 127\.0\.0\.1:\d+: error"
--- error_code: 503
--- error_log eval
qr/\[error\] .*chat: redis 127\.0\.0\.1:\d+: NOAUTH/



=== TEST 3: a wrong password: 503 naming redis, an [error] naming the server, never the password
--- http_config
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_WRONG_PASSWORD_FILE;
    chat_redis_timeout 500ms;
--- config
    location = /healthz {
        chat_healthz;
    }
--- request
GET /healthz
--- response_body_like: "redis":"down".*"error":"backend_unavailable","message":"redis 127\.0\.0\.1:\d+: down"
--- error_code: 503
--- error_log eval
qr/\[error\] .*chat: redis 127\.0\.0\.1:\d+: AUTH refused: WRONGPASS/
--- no_error_log eval
[qr/\Q$::WrongPassword\E/, qr/\Q$::Password\E/, "[alert]"]



=== TEST 4: an ACL user and its password: healthy, scripts and subscription allowed
--- http_config
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_user $TEST_NGINX_ACL_USER;
    chat_redis_password_file $TEST_NGINX_ACL_PASSWORD_FILE;
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /v1/ws {
        chat_websocket;
    }
    location = /healthz {
        chat_healthz;
    }
--- request
GET /healthz
--- response_body_like: "redis":"ok"
--- error_code: 200
--- wait: 0.5
--- no_error_log eval
["[error]", "NOPERM", qr/\Q$::AclPassword\E/]



=== TEST 5: the ACL user with the default user's password: refused, so the user name is sent
--- http_config
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_user $TEST_NGINX_ACL_USER;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
--- config
    location = /healthz {
        chat_healthz;
    }
--- request
GET /healthz
--- response_body_like: "redis":"down"
--- error_code: 503
--- error_log eval
qr/\[error\] .*chat: redis 127\.0\.0\.1:\d+: AUTH as chat_t036_\d+ refused: WRONGPASS/
--- no_error_log eval
[qr/\Q$::Password\E/, qr/\Q$::AclPassword\E/]



=== TEST 6: WebSocket delivery's subscription connection authenticates too
--- http_config
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /v1/ws {
        chat_websocket;
    }
    location = /healthz {
        chat_healthz;
    }
--- request
GET /healthz
--- response_body_like: "redis":"ok"
--- error_code: 200
--- wait: 0.5
--- no_error_log eval
["[error]", "cannot subscribe", "NOAUTH", qr/\Q$::Password\E/]



=== TEST 7: chat_redis_user needs chat_redis_password_file
--- http_config
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_user someone;
--- config
--- must_die
--- error_log
"chat_redis_user" needs "chat_redis_password_file"



=== TEST 8: chat_redis_password_file must exist
--- http_config
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file /nonexistent/chat-redis.password;
--- config
--- must_die
--- error_log
chat_redis_password_file: cannot open "/nonexistent/chat-redis.password"



=== TEST 9: chat_redis_password_file must not be empty
--- http_config
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_EMPTY_PASSWORD_FILE;
--- config
--- must_die
--- error_log eval
qr/chat_redis_password_file: "[^"]+" is empty/



=== TEST 10: chat_redis_password_file only once
--- http_config
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
--- config
--- must_die
--- error_log
"chat_redis_password_file" directive is duplicate



=== TEST 11: a unix socket (chat_redis unix:PATH): healthy, a token's deny-list lookup answered through it
Keep-alive for TCP only: hiredis's TCP_KEEPIDLE fails on a unix socket
and left the connection in error ("connection lost: Operation not
supported") before the fix.
--- skip_eval: 4: !$ENV{TEST_NGINX_REDIS_SOCKET} || !-S $ENV{TEST_NGINX_REDIS_SOCKET}
--- http_config
    chat_redis unix:$TEST_NGINX_REDIS_SOCKET;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
--- config
    location = /healthz {
        chat_healthz;
    }
    location = /t {
        chat_auth on;
        add_header X-User $chat_user_id;
        stub_status;
    }
--- request eval
["GET /healthz", "GET /t"]
--- more_headers eval
["", "Authorization: Bearer " . ChatJWT::token(sub => 42)]
--- response_body_like eval
['"redis":"ok"', '^Active connections']
--- error_code eval
[200, 200]
--- wait: 0.3
--- no_error_log eval
["[error]", "Operation not supported", qr/\Q$::Password\E/]
