# The worker's verified tokens (src/ngx_chat_auth_cache.c): a token
# checked once is known by its bytes until its exp, so the next requests
# with it skip the signature check.  What must not change with it, one
# nginx worker (the table is per worker), the test stack's Redis:
#
#   - only the same bytes are known: a token that differs from a known one
#     in one byte of its signature or payload is checked, and refused;
#   - a known token stops working when its exp passes (401 "expired");
#   - a known token stops working when its deny-list key appears (what a
#     logout sets): the deny-list is asked on every request, known or not;
#   - tokens of two users stay apart ($chat_user_id of each).
#
# Each block runs its requests in --- init and writes what it saw to a
# file that the block's request then fetches.

use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use ChatJWT;

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

our ($RHost, $RPort) = split /:/, $ENV{TEST_NGINX_REDIS};
our $Run = sprintf '%x%x', $$, int(time * 1000) % 1000000;
our $Uid = 710000000 + int(rand(10000000));

sub token {
    my ($jti, %o) = @_;
    return ChatJWT::token(payload => sprintf(
        '{"sub":"%d","iat":%d,"exp":%d,"jti":"%s"}',
        $o{uid} // $Uid, time, $o{exp} // time + 600, "${jti}_$Run"));
}

# the token with one character of part N (1 payload, 2 signature) changed
sub altered {
    my ($tok, $part) = @_;
    my @p = split /\./, $tok;
    my $c = substr($p[$part], 2, 1);
    substr($p[$part], 2, 1) = $c eq 'A' ? 'B' : 'A';
    return join '.', @p;
}

# redis-cli, the password from REDISCLI_AUTH (scripts/run-tests sets it)
sub redis_do {
    my $out = `redis-cli -h '$RHost' -p '$RPort' @{[ map { "'$_'" } @_ ]} 2>&1`;
    chomp $out;
    return $out;
}

# GET with a token: "status user message" (message: the 401's JSON
# "message", user: the X-User header)
sub get {
    my ($tok) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => server_port(), Timeout => 5)
        or die "connect: $!";
    print $s "GET /img/pic.txt HTTP/1.1\r\nHost: localhost\r\n"
             . "Authorization: Bearer $tok\r\nConnection: close\r\n\r\n";
    my $raw = do { local $/; <$s> } // '';
    close $s;
    my ($st) = $raw =~ m{\AHTTP/1\.1 (\d+)};
    my ($user) = $raw =~ m{\r\nX-User: (\d+)\r\n}i;
    my ($msg) = $raw =~ m{"message":"([^"]*)"};
    return join ' ', $st // 'none', ($user ? $user == $Uid ? 'uid'
                                                     : "user $user" : ()),
                     $msg // ();
}

sub result {
    my ($text) = @_;
    open my $fh, '>', html_dir() . '/result.txt' or die "result: $!";
    print $fh $text;
    close $fh;
}

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value(http_config => <<'CONF');
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
CONF
    $block->set_value(config => <<'CONF');
    location /img/ {
        chat_auth on;
        add_header X-User $chat_user_id always;
    }
CONF
    $block->set_value(user_files => <<'FILES');
>>> img/pic.txt
a picture
FILES
    $block->set_value(request => "GET /result.txt\n");
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a known token's bytes, not its slot: one byte off is checked and refused
--- init
my $t = ::token('bytes');
::result(join "\n", ::get($t), ::get(::altered($t, 2)),
                    ::get(::altered($t, 1)), ::get($t . 'A'), ::get($t), '');
--- response_body
200 uid
401 bad signature
401 bad signature
401 bad signature
200 uid



=== TEST 2: a known token stops working when its exp passes
--- init
my $exp = int(time) + 2;
my $t = ::token('exp', exp => $exp);
my @seen = (::get($t), ::get($t));
sleep 0.05 while time < $exp + 0.2;
push @seen, ::get($t);
::result(join "\n", @seen, '');
--- response_body
200 uid
200 uid
401 token expired
--- timeout: 10



=== TEST 3: a known token stops working when its deny-list key appears
--- init
my $t = ::token('denied');
my @seen = (::get($t), ::get($t));
my $key = "chat:revoked:{$::Uid}:jdenied_$::Run";
push @seen, ::redis_do('SET', $key, '1', 'EX', '60');
push @seen, ::get($t);
::redis_do('DEL', $key);
push @seen, ::get($t);
::result(join "\n", @seen, '');
--- response_body
200 uid
200 uid
OK
401 token revoked
200 uid



=== TEST 4: two users' tokens stay apart
--- init
my $a = ::token('a');
my $b = ::token('b', uid => $::Uid + 1);
::result(join "\n", ::get($a), ::get($b), ::get($a), ::get($b), '');
--- response_body eval
"200 uid\n200 user " . ($::Uid + 1) . "\n200 uid\n200 user "
. ($::Uid + 1) . "\n"
