# Bad input to the HTTP API never gets a 500, a crash or silence: every
# route that takes a JSON body is fed broken JSON, non-objects, missing and
# mistyped fields, strings one byte too short or too long, invalid UTF-8,
# deep nesting, duplicate keys, NULs and bodies over chat_api_max_body (with
# Content-Length and chunked); paths get ids that are not ids, routes that do
# not exist, wrong methods and no token.  Each answer must be the status of
# CONTRACT.md section 2 with a JSON error body
# {"error":"<code>","message":"<text>"} (the exact code and text the module
# gives), Content-Type application/json and X-Chat-Node; and nginx must log
# no [alert], [crit] or (where the failure is the client's alone) [error].
# Every block runs twice against one nginx, so state leaking from one
# request into the next shows.
#
# Most blocks are tables: "--- cases eval" holds one case per line,
#     [WHO, "METHOD /path", BODY, STATUS, ERROR_CODE, MESSAGE]
# WHO: undef (no token), 'me' (user A below), 'other' (user B), 'outsider'
# (user C), 'ghost' (a valid token of a user id that does not exist),
# header lines of its own, or a list of these; BODY: undef for none; MESSAGE: the exact text, or
# a qr// on the JSON-escaped text.  For a success, ERROR_CODE is undef and
# MESSAGE a qr// on the whole body (empty when undef).  The preprocessor
# below turns each table into the request / more_headers / error_code /
# response_headers / response_body_like arrays of the block format, and
# gives blocks without a config of their own the default one.  Blocks that
# make no slow request have "--- timeout: 1": a request left hanging costs
# one second there, not three.
#
# Fixtures (made with psql, as t/010 does, so that no password hashing is
# spent on them; their password hash is unusable, so nobody logs in as
# them): users A (32-character username), B and C, a group made by A with B
# in it, and the user "in3" (kept across runs; it is only ever a taken
# name).  Besides them a run stores only A's public key and three devices
# of A: the last three tests check that nothing refused was stored.

# Each request here is answered, and its error.log lines written, before
# nginx closes the connection; the runner's default pause before reading
# the log after each request (3 x 15 ms) would make these ~900 requests
# slow.  (Before the runner is loaded, which reads it once.)
BEGIN { $ENV{TEST_NGINX_SLEEP} //= 0.002 }

use Test::Nginx::Socket 'no_plan';
use ChatJWT;
use JSON::PP ();
use File::Temp ();

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

our $Run = sprintf '%x%x', $$, time;
our $NameA = substr("ia_${Run}_" . ('a' x 32), 0, 32);
# The one valid username of the refused registrations and logins: no
# account of that name may exist at the end (checked after the blocks).
our $Free = "r_$Run";
our ($A, $B, $C, $Gid) = fixtures();
our $Missing = '9223372036854775807';    # INT64_MAX: a valid id, no user
our $Any = qr/(?:[^"\\]|\\.)+/;           # any JSON string's text

our %Token = (
    me       => ChatJWT::token(sub => $A),
    other    => ChatJWT::token(sub => $B),
    outsider => ChatJWT::token(sub => $C),
    ghost    => ChatJWT::token(sub => '9000000000000000000'),
);

# Runs an SQL script with psql; returns its unaligned output (fields
# separated by one space).  Only values made here go into the SQL text.
sub psql {
    my ($script) = @_;
    my $dsn = $ENV{TEST_NGINX_PG_DSN}
        or die "TEST_NGINX_PG_DSN is not set (the PG_DSN of "
               . "var-test/stack.env)\n";
    # the password goes to psql through the environment, not its arguments
    my $password;
    $password = $2 if $dsn =~ s/(^|\s)password=(\S*)/$1/;
    local $ENV{PGPASSWORD} = $password // $ENV{PGPASSWORD};
    local $ENV{PGCONNECT_TIMEOUT} = 10;
    my $sql = File::Temp->new(SUFFIX => '.sql');
    print $sql $script;
    $sql->flush;
    my @cmd = ('psql', '-X', '-q', '-A', '-t', '-w', '-F', ' ',
               '-v', 'ON_ERROR_STOP=1', '-d', $dsn, '-f', $sql->filename);
    open my $out, '-|', @cmd or die "cannot run psql: $!\n";
    my $text = do { local $/; <$out> } // '';
    close $out;
    die "psql failed (exit $?): $text\n" if $?;
    return $text;
}

sub fixtures {
    my ($nb, $nc) = ("ib_$Run", "ic_$Run");
    my $text = psql(<<"SQL");
INSERT INTO users (username, display_name, password_hash)
    VALUES ('in3', 'in3', '!') ON CONFLICT (username) DO NOTHING;
INSERT INTO users (username, display_name, password_hash)
    VALUES ('$NameA', 'A', '!') RETURNING id AS a \\gset
INSERT INTO users (username, display_name, password_hash)
    VALUES ('$nb', 'B', '!') RETURNING id AS b \\gset
INSERT INTO users (username, display_name, password_hash)
    VALUES ('$nc', 'C', '!') RETURNING id AS c \\gset
SELECT :a, :b, :c,
       chat_group_create(:a, 'input fixture', ARRAY[:b]::bigint[], 1024)
           ->> 'group_id';
SQL
    my @ids = $text =~ /^(\d+) (\d+) (\d+) (\d+)$/m
        or die "the fixtures could not be made with psql: $text\n";
    return @ids;
}

# --- the case tables ---------------------------------------------------------

my $Json = JSON::PP->new->allow_nonref;

sub who {
    my $who = shift;
    return '' unless defined $who;
    return join "\n", map { who($_) } @$who if ref $who eq 'ARRAY';
    return "Authorization: Bearer $Token{$who}" if $Token{$who};
    return $who;
}

# ERROR_CODE and MESSAGE may be qr// (on the JSON text between the quotes)
sub expect_body {
    my ($status, $err, $msg) = @_;
    if (defined $err) {
        my $e = ref $err ? $err : quotemeta $err;
        my $m = ref $msg ? "\"$msg\"" : quotemeta $Json->encode($msg);
        return qr/\A\{"error":"$e","message":$m\}\n\z/;
    }
    return $msg // qr/\A\z/;
}

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->config) {
        $block->set_value(http_config => <<'CONF')
    chat_node_name input;
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_group_max_members 4;
CONF
            unless defined $block->http_config;
        $block->set_value(config => <<'CONF');
    location /v1/ {
        chat_api;
    }
CONF
    }

    my $cases = $block->cases or return;
    ref $cases eq 'ARRAY'
        or die $block->name . ": --- cases did not eval to an array: $cases\n";
    my (@req, @hdr, @code, @rh, @body);
    for my $c (@$cases) {
        my ($who, $line, $body, $status, $err, $msg) = @$c;
        push @req, defined $body ? "$line\n$body" : $line;
        push @hdr, who($who);
        push @code, $status;
        push @rh, $status == 204 ? "X-Chat-Node: input"
                 : "Content-Type: application/json\nX-Chat-Node: input";
        push @body, expect_body($status, $err, $msg);
    }
    $block->set_value(request => \@req);
    $block->set_value(more_headers => \@hdr);
    $block->set_value(error_code => \@code);
    $block->set_value(response_headers => \@rh);
    $block->set_value(response_body_like => \@body);
});

# A body of exactly $len bytes: $head (an unclosed JSON object) padded with
# one more string member.
sub sized {
    my ($len, $head) = @_;
    my $s = $head . '"pad":"';
    $s .= 'x' x ($len - length($s) - 2) . '"}';
    die "sized: $len is too small for $head\n" unless length $s == $len;
    return $s;
}

# What every route with a JSON body must refuse before it looks at a field.
sub not_an_object {
    my ($who, $line, $all) = @_;
    my $e = sub { [$who, $line, $_[0], 400, 'bad_request', $_[1]] };
    my @cases = (
        $e->('{"username":', 'body is not valid JSON'),
        $e->('', 'a JSON body is required'),
        $e->('[]', 'body must be a JSON object'),
        $e->('"a string"', 'body must be a JSON object'),
        $e->('42', 'body must be a JSON object'),
        $e->('null', 'body must be a JSON object'),
        $e->('{"a":' . ('[' x 8) . (']' x 8) . '}', 'JSON nested too deeply'),
        $e->('{"a":1,"a":2}', 'duplicate key in JSON object'),
        $e->('{"a":"x\u0000y"}', 'body is not valid JSON'),
        $e->("{\"a\":\"\xff\"}", 'body is not valid UTF-8'),
    );
    return @cases unless $all;
    return @cases, (
        $e->("{'a':'b'}", 'body is not valid JSON'),
        $e->('{"a":1,}', 'body is not valid JSON'),
        $e->('{"a":1}}', 'body is not valid JSON'),
        $e->('{"a":1} {"b":2}', 'body is not valid JSON'),
        $e->('{"a":"unterminated}', 'body is not valid JSON'),
        $e->('nope', 'body is not valid JSON'),
        $e->('[{"username":"abc"}]', 'body must be a JSON object'),
        $e->('-1.5e3', 'body must be a JSON object'),
        $e->('true', 'body must be a JSON object'),
        $e->(('[' x 200) . (']' x 200), 'JSON nested too deeply'),
        $e->('{"a":{"b":1,"b":2}}', 'duplicate key in JSON object'),
        $e->("{\"a\":\"x\0y\"}", 'body is not valid JSON'),
        $e->('{"a":"\ud800"}', 'body is not valid JSON'),
        $e->("\xef\xbb\xbf{}", 'body is not valid JSON'),
        $e->("{\"a\":\"\xc0\xaf\"}", 'body is not valid UTF-8'),
        $e->("{\"a\":\"\xed\xa0\x80\"}", 'body is not valid UTF-8'),
        $e->("{\"a\":\"\xe2\x82\"}", 'body is not valid UTF-8'),
        $e->("{\"a\":\"\xf4\x90\x80\x80\"}", 'body is not valid UTF-8'),
        $e->("{\"a\xff\":1}", 'body is not valid UTF-8'),
    );
}

repeat_each(2);
no_shuffle();
run_tests();

# What was refused changed nothing: no account of the refused registrations,
# no group but the fixture, and only the three devices registered above.
{
    my ($users, $groups, $devices) = split ' ', psql(<<"SQL");
SELECT (SELECT count(*) FROM users WHERE username = '$Free'),
       (SELECT count(*) FROM groups WHERE created_by = $A),
       (SELECT count(*) FROM devices WHERE user_id = $A);
SQL
    is($users, 0, "no account \"$Free\" was made by a refused request");
    is($groups, 1, 'no group was made by a refused request');
    is($devices, 3, 'no device was registered by a refused request');
}

__DATA__

=== TEST 1: POST /v1/users: bodies that are not one JSON object
--- cases eval
[ ::not_an_object(undef, 'POST /v1/users', 1) ]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 2: the other routes with a body refuse the same before any field
--- cases eval
[ ::not_an_object(undef, 'POST /v1/sessions'),
  ::not_an_object('me', 'POST /v1/groups'),
  ::not_an_object('me', 'PUT /v1/keys'),
  ::not_an_object('me', "PUT /v1/devices/tok-$::Run") ]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 3: POST /v1/users: missing fields, wrong types, bad lengths and characters
--- timeout: 1
--- cases eval
my $u = 'POST /v1/users';
my $req = sub { [undef, $u, $_[0], 400, 'bad_request', $_[1]] };
my $p = '"password":"password1"';
[
 $req->('{}', '"username" is required'),
 $req->("{$p}", '"username" is required'),
 $req->(qq({"username":"$::Free"}), '"password" is required'),
 $req->(qq({"username":5,$p}), '"username" must be a string'),
 $req->(qq({"username":null,$p}), '"username" must be a string'),
 $req->(qq({"username":true,$p}), '"username" must be a string'),
 $req->(qq({"username":["$::Free"],$p}), '"username" must be a string'),
 $req->(qq({"username":{"a":"$::Free"},$p}), '"username" must be a string'),
 $req->(qq({"username":"$::Free","password":12345678}), '"password" must be a string'),
 $req->(qq({"username":"$::Free","password":null}), '"password" must be a string'),
 $req->(qq({"username":"$::Free",$p,"display_name":7}), '"display_name" must be a string'),
 $req->(qq({"username":"$::Free",$p,"display_name":null}), '"display_name" must be a string'),
 $req->(qq({"username":"$::Free",$p,"display_name":["A"]}), '"display_name" must be a string'),
 $req->(qq({"username":"",$p}), '"username" must be 3 to 32 bytes long'),
 $req->(qq({"username":"ab",$p}), '"username" must be 3 to 32 bytes long'),
 $req->(qq({"username":"@{['a' x 33]}",$p}), '"username" must be 3 to 32 bytes long'),
 $req->(qq({"username":"$::Free","password":"1234567"}), '"password" must be 8 to 128 bytes long'),
 $req->(qq({"username":"$::Free","password":"@{['p' x 129]}"}), '"password" must be 8 to 128 bytes long'),
 # 129 bytes in 65 characters: the limit is bytes
 $req->(qq({"username":"$::Free","password":"@{['\u00e9' x 64]}x"}), '"password" must be 8 to 128 bytes long'),
 $req->(qq({"username":"$::Free",$p,"display_name":""}), '"display_name" must be 1 to 64 bytes long'),
 $req->(qq({"username":"$::Free",$p,"display_name":"@{['d' x 65]}"}), '"display_name" must be 1 to 64 bytes long'),
 $req->(qq({"username":"Alice",$p}), '"username" must match [a-z0-9_]{3,32}'),
 $req->(qq({"username":"al ice",$p}), '"username" must match [a-z0-9_]{3,32}'),
 $req->(qq({"username":"al-ice",$p}), '"username" must match [a-z0-9_]{3,32}'),
 $req->(qq({"username":"al'ice",$p}), '"username" must match [a-z0-9_]{3,32}'),
 $req->(qq({"username":"al\\"ice",$p}), '"username" must match [a-z0-9_]{3,32}'),
 $req->(qq({"username":"jos\xc3\xa9",$p}), '"username" must match [a-z0-9_]{3,32}'),
 $req->(qq({"username":"jos\\u00e9",$p}), '"username" must match [a-z0-9_]{3,32}'),
 $req->(qq({"username":"abc\\n",$p}), '"username" must match [a-z0-9_]{3,32}'),
 $req->(qq({"username":"abc\\u0000",$p}), 'body is not valid JSON'),
 $req->(qq({"username":"ab\xff",$p}), 'body is not valid UTF-8'),
 $req->(qq({"username":"$::Free","username":"abd",$p}), 'duplicate key in JSON object'),
 # 8 levels are allowed: the body is parsed, then the username is missing
 $req->('{"a":' . ('[' x 7) . (']' x 7) . '}', '"username" is required'),
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 4: POST /v1/users: the longest and shortest valid values pass (the names are taken: 409)
The fixture user A has a 32-character name and "in3" three; each request
costs one password hash.
--- cases eval
my $u = 'POST /v1/users';
my $taken = [409, 'username_taken', 'this username is taken'];
[
 [undef, $u, qq({"username":"in3","password":"12345678"}), @$taken],
 [undef, $u, qq({"username":"$::NameA","password":"@{['p' x 128]}",
                 "display_name":"@{['d' x 64]}"}), @$taken],
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 5: POST /v1/sessions: missing fields, wrong types, bad lengths; an unknown user is just a wrong login
--- timeout: 1
--- cases eval
my $s = 'POST /v1/sessions';
my $req = sub { [undef, $s, $_[0], 400, 'bad_request', $_[1]] };
[
 $req->('{}', '"username" is required'),
 $req->('{"password":"password1"}', '"username" is required'),
 $req->(qq({"username":"$::Free"}), '"password" is required'),
 $req->('{"username":1,"password":"password1"}', '"username" must be a string'),
 $req->('{"username":null,"password":"password1"}', '"username" must be a string'),
 $req->(qq({"username":"$::Free","password":["password1"]}), '"password" must be a string'),
 $req->('{"username":"","password":"password1"}', '"username" must be 1 to 64 bytes long'),
 $req->(qq({"username":"@{['u' x 65]}","password":"password1"}), '"username" must be 1 to 64 bytes long'),
 $req->(qq({"username":"$::Free","password":""}), '"password" must be 1 to 128 bytes long'),
 $req->(qq({"username":"$::Free","password":"@{['p' x 129]}"}), '"password" must be 1 to 128 bytes long'),
 [undef, $s, qq({"username":"nobody_$::Run","password":"password1"}),
  401, 'invalid_credentials', 'wrong username or password'],
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 6: POST /v1/groups: name and members of the wrong type, length or value
--- timeout: 1
--- cases eval
my $g = 'POST /v1/groups';
my $req = sub { ['me', $g, $_[0], 400, 'bad_request', $_[1]] };
my $ids = '"members" must be an array of user ids';
my $n = '"name":"grp"';
[
 $req->('{}', '"name" is required'),
 $req->('{"members":[]}', '"name" is required'),
 $req->('{"name":5}', '"name" must be a string'),
 $req->('{"name":null}', '"name" must be a string'),
 $req->('{"name":["grp"]}', '"name" must be a string'),
 $req->('{"name":""}', '"name" must be 1 to 400 bytes long'),
 $req->(qq({"name":"@{['n' x 101]}"}), '"name" must be 1 to 100 characters long'),
 $req->(qq({$n,"members":"1,2"}), $ids),
 $req->(qq({$n,"members":7}), $ids),
 $req->(qq({$n,"members":null}), $ids),
 $req->(qq({$n,"members":{"0":7}}), $ids),
 $req->(qq({$n,"members":["$::B"]}), $ids),
 $req->(qq({$n,"members":[$::B,"$::C"]}), $ids),
 $req->(qq({$n,"members":[0]}), $ids),
 $req->(qq({$n,"members":[-1]}), $ids),
 $req->(qq({$n,"members":[-9223372036854775808]}), $ids),
 $req->(qq({$n,"members":[1.5]}), $ids),
 $req->(qq({$n,"members":[1.0]}), $ids),
 $req->(qq({$n,"members":[1e3]}), $ids),
 $req->(qq({$n,"members":[null]}), $ids),
 $req->(qq({$n,"members":[true]}), $ids),
 $req->(qq({$n,"members":[[$::B]]}), $ids),
 $req->(qq({$n,"members":[{"user_id":$::B}]}), $ids),
 $req->(qq({$n,"members":[99999999999999999999]}), 'body is not valid JSON'),
 # chat_group_max_members 4 counts the creator: 4 more are too many
 ['me', $g, qq({$n,"members":[1,2,3,4]}), 400, 'too_many_members',
  'more members than chat_group_max_members'],
 # what passes the module goes to chat_group_create, which trims the name
 ['me', $g, '{"name":"   "}', 400, 'invalid_name',
  'group name must be 1 to 100 characters, not blank, without control characters'],
 ['me', $g, '{"name":"a\u0001b"}', 400, 'invalid_name',
  'group name must be 1 to 100 characters, not blank, without control characters'],
 ['me', $g, '{"name":"a\nb"}', 400, 'invalid_name',
  'group name must be 1 to 100 characters, not blank, without control characters'],
 # members that do not exist: 404 naming them (no group is made)
 ['me', $g, qq({$n,"members":[$::Missing]}), 404, 'not_found',
  "no such user: $::Missing"],
 ['me', $g, qq({"name":"@{['n' x 100]}","members":[$::B,$::Missing,$::Missing]}),
  404, 'not_found', "no such user: $::Missing"],
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 7: PUT /v1/keys: missing, mistyped, too short, too long, not base64; the longest key is stored
--- timeout: 1
--- cases eval
my $k = 'PUT /v1/keys';
my $req = sub { ['me', $k, $_[0], 400, 'bad_request', $_[1]] };
my $len = '"public_key" must be 4 to 8192 bytes long';
my $b64 = '"public_key" must be base64';
[
 $req->('{}', '"public_key" is required'),
 $req->('{"key":"QUJD"}', '"public_key" is required'),
 $req->('{"public_key":1234}', '"public_key" must be a string'),
 $req->('{"public_key":null}', '"public_key" must be a string'),
 $req->('{"public_key":["QUJD"]}', '"public_key" must be a string'),
 $req->('{"public_key":""}', $len),
 $req->('{"public_key":"QUJ"}', $len),
 $req->(qq({"public_key":"@{['A' x 8193]}"}), $len),
 $req->('{"public_key":"not base64!"}', $b64),
 $req->('{"public_key":"QUJD RA=="}', $b64),
 $req->('{"public_key":"QUJD\nRA=="}', $b64),
 $req->(qq({"public_key":"QUJD\xc3\xa9"}), $b64),
 ['me', $k, '{"public_key":"QUJDREVGR0g="}', 204],
 ['me', $k, qq({"public_key":"@{['A' x 8192]}"}), 204],
 ['me', "GET /v1/users/$::A/keys", undef, 200, undef,
  qr/\A\{"user_id":$::A,"public_key":"A{8192}"\}\n\z/],
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 8: PUT /v1/keys: base64 characters that are not padded standard base64 are refused by the database (400)
What the module lets through, the CHECK constraint of user_keys refuses.
The module logs the failed query at "error" level: not checked here.
--- cases eval
my $k = 'PUT /v1/keys';
[
 ['me', $k, '{"public_key":"QUJDR"}', 400, 'bad_request', 'invalid value'],
 ['me', $k, '{"public_key":"QUJ-RA__"}', 400, 'bad_request', 'invalid value'],
 ['me', $k, '{"public_key":"=QUJD"}', 400, 'bad_request', 'invalid value'],
]
--- no_error_log
[alert]
[crit]



=== TEST 9: PUT /v1/devices/{token}: platform missing, mistyped or unknown; token lengths
--- timeout: 1
--- cases eval
my $d = "PUT /v1/devices/tok-$::Run";
my $req = sub { ['me', $d, $_[0], 400, 'bad_request', $_[1]] };
my $plat = '"platform" must be fcm, apns or webhook';
my $tok4096 = substr("t-$::Run-" . ('t' x 4096), 0, 4096);
[
 $req->('{}', '"platform" is required'),
 $req->('{"Platform":"fcm"}', '"platform" is required'),
 $req->('{"platform":1}', '"platform" must be a string'),
 $req->('{"platform":null}', '"platform" must be a string'),
 $req->('{"platform":["fcm"]}', '"platform" must be a string'),
 $req->('{"platform":""}', '"platform" must be 1 to 16 bytes long'),
 $req->(qq({"platform":"@{['w' x 17]}"}), '"platform" must be 1 to 16 bytes long'),
 $req->('{"platform":"android"}', $plat),
 $req->('{"platform":"FCM"}', $plat),
 $req->('{"platform":"fcm "}', $plat),
 $req->('{"platform":"webhooks"}', $plat),
 ['me', 'PUT /v1/devices/' . ('t' x 4097), '{"platform":"fcm"}', 400,
  'bad_request', 'the device token must be 1 to 4096 bytes of UTF-8'],
 ['me', "PUT /v1/devices/$tok4096", '{"platform":"fcm"}', 204],
 ['me', "PUT /v1/devices/tok-$::Run", '{"platform":"apns"}', 204],
 ['me', "PUT /v1/devices/tok%20$::Run", '{"platform":"webhook"}', 204],
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 10: PUT /v1/devices/{token}: a token that is not UTF-8 after percent-decoding is bad input (400), not a server error
--- cases eval
[
 ['me', 'PUT /v1/devices/tok%FF', '{"platform":"fcm"}', 400, 'bad_request',
  $::Any],
 ['me', 'PUT /v1/devices/tok%C3%28', '{"platform":"fcm"}', 400, 'bad_request',
  $::Any],
]
--- no_error_log
[alert]
[crit]



=== TEST 11: chat_api_max_body 1k: one byte over is 413 on every route with a body, whatever the body; exactly the limit is read
--- http_config
    chat_node_name input;
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_api_max_body 1k;
--- cases eval
my @big = (413, 'too_large', 'request body too large');
[
 [undef, 'POST /v1/users', ::sized(1025, '{"username":"ab",'), @big],
 [undef, 'POST /v1/users', 'x' x 1025, @big],
 [undef, 'POST /v1/users', ::sized(1024, '{"username":"ab",'), 400,
  'bad_request', '"username" must be 3 to 32 bytes long'],
 [undef, 'POST /v1/sessions', ::sized(1025, '{'), @big],
 ['me', 'POST /v1/groups', ::sized(1025, '{'), @big],
 ['me', 'PUT /v1/keys', ::sized(1025, '{'), @big],
 ['me', "PUT /v1/devices/tok-$::Run", ::sized(1025, '{'), @big],
 ['me', 'PUT /v1/keys', ::sized(200000, '{'), @big],
 # the token is checked first
 [undef, 'PUT /v1/keys', ::sized(1025, '{'), 401, 'unauthorized',
  'no bearer token'],
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 12: chat_api_max_body 1k, chunked: 1025 bytes in chunks are 413
--- http_config
    chat_node_name input;
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_api_max_body 1k;
--- config
    location /v1/ {
        chat_api;
    }
--- raw_request eval
my $body = ::sized(1025, '{"username":"ab",');
"POST /v1/users HTTP/1.1\r
Host: localhost\r
Connection: close\r
Transfer-Encoding: chunked\r
\r
" . sprintf("%x\r\n%s\r\n", 25, substr($body, 0, 25))
  . sprintf("%x\r\n%s\r\n", 1000, substr($body, 25)) . "0\r\n\r\n"
--- error_code: 413
--- response_headers
Content-Type: application/json
X-Chat-Node: input
--- response_body
{"error":"too_large","message":"request body too large"}
--- no_error_log
[alert]
[crit]
[error]



=== TEST 13: chat_api_max_body 1k, chunked: 100 KiB (past nginx's body buffer, so in a temp file) is 413
--- http_config
    chat_node_name input;
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_api_max_body 1k;
--- config
    location /v1/ {
        chat_api;
    }
--- raw_request eval
my $chunk = 'x' x 1024;
"POST /v1/users HTTP/1.1\r
Host: localhost\r
Connection: close\r
Transfer-Encoding: chunked\r
\r
" . ("400\r\n$chunk\r\n" x 100) . "0\r\n\r\n"
--- error_code: 413
--- response_body
{"error":"too_large","message":"request body too large"}
--- no_error_log
[alert]
[crit]
[error]



=== TEST 14: chat_api_max_body 1k, chunked: a small body in three chunks is read like any other
--- http_config
    chat_node_name input;
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_api_max_body 1k;
--- config
    location /v1/ {
        chat_api;
    }
--- raw_request eval
"POST /v1/users HTTP/1.1\r
Host: localhost\r
Connection: close\r
Transfer-Encoding: chunked\r
\r
5\r
{\"use\r
c\r
rname\":\"ab\",\r
16\r
\"password\":\"password\"}\r
0\r
\r
"
--- error_code: 400
--- response_body
{"error":"bad_request","message":"\"username\" must be 3 to 32 bytes long"}
--- no_error_log
[alert]
[crit]
[error]



=== TEST 15: an empty body, chunked or with Content-Length: 0, is "body is empty"
(Without either header there is no body at all: "a JSON body is required",
as in TEST 1.)
--- cases eval
[
 ['Transfer-Encoding: chunked', 'POST /v1/users', "0\r\n\r\n", 400,
  'bad_request', 'body is empty'],
 ['Content-Length: 0', 'POST /v1/users', undef, 400, 'bad_request',
  'body is empty'],
 [['Content-Length: 0', 'me'], 'PUT /v1/keys', undef, 400, 'bad_request',
  'body is empty'],
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 16: a broken chunked encoding is a 400 with a JSON error, on every kind of route
Where the module reads the body and where it discards it (unknown route,
wrong method, no token, a route without a body).  nginx itself logs the
broken body at "error" level: not checked here.
--- cases eval
my $te = 'Transfer-Encoding: chunked';
my $broken = "zz\r\n{}\r\n0\r\n\r\n";
my @bad = (400, 'bad_request', $::Any);
[
 [$te, 'POST /v1/users', $broken, @bad],
 [[$te, 'me'], 'PUT /v1/keys', $broken, @bad],
 [$te, 'PUT /v1/keys', $broken, @bad],
 [$te, 'POST /v1/nope', $broken, @bad],
 [$te, 'POST /v1/me', $broken, @bad],
 [$te, 'GET /v1/me', $broken, @bad],
 [[$te, 'me'], 'GET /v1/me', $broken, @bad],
 [[$te, 'me'], "DELETE /v1/friends/$::Missing", $broken, @bad],
]
--- no_error_log
[alert]
[crit]



=== TEST 17: the default chat_api_max_body (64k): bodies under it are read, whatever nginx's client_body_buffer_size
A 20000-byte body is a third of the limit: it must get the answer to its
content (here: the username is too short), not 413; over 64 KiB is 413.
--- cases eval
[
 [undef, 'POST /v1/users', ::sized(20000, '{"username":"ab",'), 400,
  'bad_request', '"username" must be 3 to 32 bytes long'],
 [undef, 'POST /v1/users', ::sized(65536, '{"username":"ab",'), 400,
  'bad_request', '"username" must be 3 to 32 bytes long'],
 [undef, 'POST /v1/users', ::sized(65537, '{"username":"ab",'), 413,
  'too_large', 'request body too large'],
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 18: ids in paths must be positive decimal integers up to 2^63-1 without a leading zero: anything else is no route (404)
--- cases eval
my @nf = (404, 'not_found', 'no such resource');
[
 map({ ['me', $_, undef, @nf] }
  'PUT /v1/friends/0', 'PUT /v1/friends/-1', 'PUT /v1/friends/abc',
  'PUT /v1/friends/01', 'PUT /v1/friends/1.5', 'PUT /v1/friends/+1',
  'PUT /v1/friends/1e3', 'PUT /v1/friends/0x10',
  'PUT /v1/friends/99999999999999999999',
  'PUT /v1/friends/9223372036854775808',
  'DELETE /v1/friends/18446744073709551617',
  'PUT /v1/friends/%2D1', 'PUT /v1/friends/',
  'DELETE /v1/friends/1/', 'DELETE /v1/friends/1/x',
  'GET /v1/groups/0', 'GET /v1/groups/-5', 'GET /v1/groups/g1',
  'PUT /v1/groups/0/members/1', 'PUT /v1/groups/1/members/0',
  'DELETE /v1/groups/abc/members/1', 'DELETE /v1/groups/1/members/-1',
  'PUT /v1/groups/1/members/', 'PUT /v1/groups//members/1',
  'GET /v1/users/0/keys', 'GET /v1/users/abc/keys',
  'GET /v1/users/01/keys', 'GET /v1/users/1/keys/'),
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 19: unknown routes are 404 with a JSON error, with or without a token, whatever the method
--- cases eval
my @nf = (404, 'not_found', 'no such resource');
[
 map({ [$_->[0], $_->[1], $_->[2], @nf] }
  ['me', 'GET /v1/'], [undef, 'GET /v1/nope'], ['me', 'POST /v1/nope', '{}'],
  ['me', 'GET /v1/users/1'], ['me', 'GET /v1/ME'], ['me', 'GET /v1/me/'],
  ['me', 'GET /v1/me.json'], [undef, 'POST /v1/users/', '{}'],
  ['me', 'GET /v1/friends/1/keys'], ['me', 'PUT /v1/devices/'],
  ['me', 'GET /v1/groups/1/members'],
  # later work (CONTRACT.md): not there yet
  ['me', 'GET /v1/messages/1'], ['me', 'GET /v1/ws'],
  ['me', 'GET /v1/search/1']),
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 19b: the media routes without chat_media_path: 503 in JSON, whatever the body
--- cases eval
my @un = (503, 'unavailable', 'no media store is configured');
[
 ['me', 'POST /v1/media', 'GIF89a', @un],
 ['me', 'GET /v1/media/abc', undef, @un],
 [undef, 'GET /v1/media/abc?exp=1&sig=00', undef, @un],
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 20: a known path with another method is 405 with a JSON error, before any token check
--- cases eval
my @na = (405, 'method_not_allowed', 'this method is not allowed here');
[
 map({ [undef, $_, undef, @na] }
  'GET /v1/users', 'PUT /v1/users', 'DELETE /v1/users',
  'GET /v1/sessions', 'DELETE /v1/sessions',
  'POST /v1/me', 'PUT /v1/me', 'DELETE /v1/me', 'PATCH /v1/me',
  'OPTIONS /v1/me', 'BREW /v1/me',
  'POST /v1/friends', 'DELETE /v1/friends',
  'POST /v1/search', 'DELETE /v1/search',
  'GET /v1/friends/1', 'POST /v1/friends/1',
  'GET /v1/groups', 'PUT /v1/groups',
  'POST /v1/groups/1', 'DELETE /v1/groups/1',
  'GET /v1/groups/1/members/2', 'POST /v1/groups/1/members/2',
  'GET /v1/keys', 'POST /v1/keys', 'DELETE /v1/keys',
  'PUT /v1/users/1/keys', 'DELETE /v1/users/1/keys',
  'GET /v1/devices/abc', 'POST /v1/devices/abc',
  'POST /v1/messages', 'PUT /v1/messages', 'DELETE /v1/messages'),
 ['me', 'POST /v1/sessions/', '{}', 404, 'not_found', 'no such resource'],
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 21: HEAD on a GET route
--- request
HEAD /v1/me
--- error_code: 405
--- response_headers
X-Chat-Node: input
--- response_body
--- no_error_log
[alert]
[crit]
[error]



=== TEST 22: ids of things that do not exist are 404 (or 204 for a removal that has nothing to remove); others' things are 403
--- cases eval
[
 ['me', "PUT /v1/friends/$::Missing", undef, 404, 'not_found', 'no such user'],
 ['me', "DELETE /v1/friends/$::Missing", undef, 204],
 ['me', "PUT /v1/friends/$::A", undef, 400, 'bad_request',
  'you cannot befriend yourself'],
 ['me', "GET /v1/groups/$::Missing", undef, 404, 'not_found',
  'no such resource'],
 ['me', "PUT /v1/groups/$::Missing/members/$::B", undef, 404, 'not_found',
  'no such group'],
 ['me', "DELETE /v1/groups/$::Missing/members/$::B", undef, 404,
  'not_found', 'no such group'],
 ['me', "PUT /v1/groups/$::Gid/members/$::Missing", undef, 404, 'not_found',
  'no such user'],
 ['me', "DELETE /v1/groups/$::Gid/members/$::Missing", undef, 404,
  'not_found', 'not a member of this group'],
 ['me', "DELETE /v1/groups/$::Gid/members/$::C", undef, 404, 'not_found',
  'not a member of this group'],
 ['me', "GET /v1/users/$::Missing/keys", undef, 404, 'not_found',
  'this user has no public key'],
 ['me', "GET /v1/users/$::C/keys", undef, 404, 'not_found',
  'this user has no public key'],
 ['outsider', "GET /v1/groups/$::Gid", undef, 403, 'forbidden',
  'not a member of this group'],
 ['other', "PUT /v1/groups/$::Gid/members/$::C", undef, 403, 'forbidden',
  'only group admins may do this'],
 ['other', "DELETE /v1/groups/$::Gid/members/$::A", undef, 403, 'forbidden',
  'only group admins may do this'],
 ['outsider', "PUT /v1/groups/$::Gid/members/$::C", undef, 403,
  'forbidden', 'only group admins may do this'],
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 23: every route that needs a token answers 401 with a JSON error without one, a request body or not
--- cases eval
my @no = (401, 'unauthorized', 'no bearer token');
[
 map({ [undef, $_->[0], $_->[1], @no] }
  ['GET /v1/me'], ['GET /v1/friends'], ["PUT /v1/friends/$::B"],
  ["DELETE /v1/friends/$::B"], ['POST /v1/groups', '{"name":"x"}'],
  ['POST /v1/groups', '{"name":'], ["GET /v1/groups/$::Gid"],
  ["PUT /v1/groups/$::Gid/members/$::C"],
  ["DELETE /v1/groups/$::Gid/members/$::B"],
  ['PUT /v1/keys', '{"public_key":"QUJDREVGR0g="}'],
  ['PUT /v1/keys', "\xff"], ["GET /v1/users/$::A/keys"],
  ['PUT /v1/devices/abc', '{"platform":"fcm"}']),
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 24: bad tokens are 401 with the reason; a token of an account that does not exist too
--- cases eval
my $me = 'GET /v1/me';
[
 ['Authorization: Bearer not.a.token', $me, undef, 401, 'unauthorized',
  'malformed token'],
 ['Authorization: Bearer ' . ('A' x 5000), $me, undef, 401, 'unauthorized',
  'malformed token'],
 ['Authorization: Bearer', $me, undef, 401, 'unauthorized',
  'no bearer token'],
 ['Authorization: Basic dXNlcjpwYXNz', $me, undef, 401, 'unauthorized',
  'no bearer token'],
 ['Authorization: Bearer ' . ChatJWT::token(sub => $::A, exp => time - 1),
  $me, undef, 401, 'unauthorized', 'token expired'],
 ['Authorization: Bearer ' . ChatJWT::token(sub => $::A, secret => 'x' x 48),
  $me, undef, 401, 'unauthorized', 'bad signature'],
 ['Authorization: Bearer '
  . ChatJWT::token(sub => $::A, header => '{"alg":"none"}', sig => ''),
  $me, undef, 401, 'unauthorized', 'unsupported algorithm'],
 ['Authorization: Bearer ' . ChatJWT::token(sub => 0), $me, undef, 401,
  'unauthorized', 'bad claims'],
 ['Authorization: Bearer ' . ChatJWT::token(sub => '-1'), $me, undef, 401,
  'unauthorized', 'bad claims'],
 ['Authorization: Bearer ' . ChatJWT::token(sub => '9223372036854775808'),
  $me, undef, 401, 'unauthorized', 'bad claims'],
 ['ghost', $me, undef, 401, 'unauthorized', 'no such user'],
 # ?access_token= is for the WebSocket route only: ignored here
 [undef, "$me?access_token=$::Token{ghost}", undef, 401, 'unauthorized',
  'no bearer token'],
 [undef, "$me?access_token=garbage", undef, 401, 'unauthorized',
  'no bearer token'],
 [undef, "$me?access_token=", undef, 401, 'unauthorized', 'no bearer token'],
 ['Authorization: Basic dXNlcjpwYXNz', "$me?access_token=$::Token{me}",
  undef, 401, 'unauthorized', 'no bearer token'],
 ['me', $me, undef, 200, undef, qr/\A\{"user_id":$::A,"username":"$::NameA",/],
 [undef, "$me?access_token=$::Token{me}", undef, 401, 'unauthorized',
  'no bearer token'],
]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 25: a valid token of an account that does not exist cannot write anything: 401, not a server error
The module logs the refused statement at "error" level: not checked here.
--- cases eval
my @gone = (401, 'unauthorized', 'no such user');
[
 ['ghost', 'PUT /v1/keys', '{"public_key":"QUJDREVGR0g="}', @gone],
 ['ghost', "PUT /v1/devices/ghost-$::Run", '{"platform":"fcm"}', @gone],
 ['ghost', 'POST /v1/groups', '{"name":"ghost town"}', @gone],
 ['ghost', "PUT /v1/friends/$::A", undef, @gone],
]
--- no_error_log
[alert]
[crit]



=== TEST 26: bodies of refused requests are discarded, not read as the next request on the connection
--- timeout: 1
--- pipelined_requests eval
["PUT /v1/keys\n{\"public_key\":\"GET /v1/me HTTP/1.1\"}",
 "POST /v1/nope\nGET /v1/me HTTP/1.1\r\n\r\n",
 "GET /v1/users\n{\"username\":\"abc\"}",
 "POST /v1/users\n{\"username\":\"ab\",\"password\":\"password1\"}",
 "GET /v1/me"]
--- error_code eval
[401, 404, 405, 400, 401]
--- response_body_like eval
[qr/"error":"unauthorized"/, qr/"error":"not_found"/,
 qr/"error":"method_not_allowed"/, qr/"username\\" must be 3 to 32 bytes long"/,
 qr/"error":"unauthorized"/]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 27: a body over chat_api_max_body is discarded too, and the connection goes on
--- http_config
    chat_node_name input;
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
    chat_api_max_body 1k;
--- config
    location /v1/ {
        chat_api;
    }
--- pipelined_requests eval
["POST /v1/users\n" . ::sized(1025, '{"x":"GET /v1/me HTTP/1.1",'),
 "GET /v1/me"]
--- error_code eval
[413, 401]
--- response_body_like eval
[qr/"error":"too_large"/, qr/"error":"unauthorized"/]
--- no_error_log
[alert]
[crit]
[error]



=== TEST 28: GET /v1/me with a Host header that is not UTF-8 still answers with the contract's fields
--- more_headers eval
"Authorization: Bearer $::Token{me}\nHost: h\xff"
--- request
GET /v1/me
--- error_code: 200
--- response_body_like: ^\{"user_id":\d+,.*"ws_url":"ws://[^"]*/v1/ws"\}$
--- no_error_log
[alert]
[crit]
[error]
