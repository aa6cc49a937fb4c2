# Self-test of the Test::Nginx runner (ours in t/lib/compat, or the real
# one where installed) against stock nginx only -- no chat module.
#
#   cd /work/main && prove -r t/000-runner.t
#
# The plan counts tests the way the real Test::Nginx::Socket does: per
# repetition and per request, one for the status code, one per listed
# header, one for the body, one per error_log/no_error_log pattern (the
# logs are checked after every request); a must_die block has one for the
# death plus its log patterns.

use Test::Nginx::Socket;
use IO::Socket::INET;

repeat_each(2);

# Tests per repetition, block by block (SKIP'ed blocks are not counted).
my %per_block = (
    'hello'                 => 3,  # status, body, no_error_log
    'headers'               => 5,  # status, 3 headers, body
    'headers like, 404'     => 4,  # status, 2 headers, body_like
    'more_headers'          => 2,
    'error_log strings'     => 4,  # status, 2 error_log, no_error_log
    'error_log eval'        => 4,  # status, body, 2 error_log
    'must_die'              => 3,  # died, 2 error_log
    'must_die exit code'    => 4,  # exit code, 2 error_log, no_error_log
    'request array'         => 6,  # 2 x (status, body, no_error_log)
    'POST body'             => 2,
    'chunked'               => 3,  # status, raw headers, body
    'close-delimited'       => 3,
    'env expansion'         => 3,  # status, header, body
    'user_files'            => 2,
    'init'                  => 2,
    'pipelined'             => 4,  # 2 x (status, body)
    'raw_request'           => 2,
    'skip_nginx'            => 2,  # skipped
    'timeout + abort'       => 0,  # ignore_response: nothing to check
    'response_body_unlike'  => 2,
);
my $per_repeat = 0;
$per_repeat += $_ for values %per_block;

plan tests => repeat_each() * $per_repeat;

$ENV{TEST_NGINX_CHAT_GREETING} = 'howdy';

# An upstream that accepts connections and never answers (TEST 19).
my $blackhole = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => 0, Listen => 8)
    or die "blackhole listener: $!";
$ENV{TEST_NGINX_BLACKHOLE_PORT} = $blackhole->sockport;
env_to_nginx('CHAT_RUNNER_SELFTEST=1');

run_tests();

__DATA__

=== TEST 1: hello
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- response_body
hello
--- no_error_log
[error]



=== TEST 2: headers
--- config
    location = /h {
        add_header X-Chat-Test yes;
        add_header X-Other "a b";
        return 200 "ok\n";
    }
--- request
GET /h
--- response_headers
X-Chat-Test: yes
X-Other: a b
! X-Absent
--- response_body
ok



=== TEST 3: headers like, 404
--- config
    location = /missing {
        return 404;
    }
--- request
GET /missing
--- error_code: 404
--- response_headers_like
Content-Type: text/html.*
Server: nginx(/[\d.]+)?
--- response_body_like: 404 Not Found



=== TEST 4: more_headers
--- config
    location = /echo {
        return 200 "foo=$http_x_foo\n";
    }
--- more_headers
X-Foo: bar baz
--- request
GET /echo
--- response_body
foo=bar baz



=== TEST 5: error_log strings
A missing static file makes nginx log an [error] line.
--- config
--- request
GET /no-such-file.html
--- error_code: 404
--- error_log
open() "
(2: No such file or directory)
--- no_error_log
[alert]



=== TEST 6: error_log eval
rewrite_log logs at notice level, which the default debug level keeps.
--- config
    rewrite_log on;
    location /r/ {
        rewrite ^/r/(.*)$ /t last;
    }
    location = /t {
        return 200 "rewritten\n";
    }
--- request
GET /r/abc
--- response_body
rewritten
--- error_log eval
[qr{"\^/r/\(\.\*\)\$" matches "/r/abc"}, 'rewritten data: "/t"']



=== TEST 7: must_die
nginx must refuse the config; error_log sees what it said while failing.
Listing "[emerg]" also silences the runner's warning about such lines.
--- config
    location = /t {
        chat_no_such_directive on;
    }
--- must_die
--- error_log
[emerg]
unknown directive "chat_no_such_directive"



=== TEST 8: must_die exit code
--- config
    location = /t {
        return abc;
    }
--- must_die: 1
--- error_log
[emerg]
invalid return code "abc"
--- no_error_log
[alert]



=== TEST 9: request array
--- config
    location = /a { return 200 "a\n"; }
    location = /b { return 200 "b\n"; }
--- request eval
["GET /a", "GET /b"]
--- error_code eval
[200, 200]
--- response_body eval
["a\n", "b\n"]
--- no_error_log
[error]



=== TEST 10: POST body
The body is trimmed and gets a Content-Length, as with the real runner.
--- config
    location = /post {
        return 200 "len=$http_content_length\n";
    }
--- request
POST /post
hello world
--- response_body
len=11



=== TEST 11: chunked
sub_filter drops Content-Length, so HTTP/1.1 responses are chunked.
--- config
    location = /c {
        sub_filter 'hello' 'HELLO';
        sub_filter_types text/plain;
        return 200 "hello world\n";
    }
--- request
GET /c
--- raw_response_headers_like: Transfer-Encoding: chunked\r\n
--- response_body
HELLO world



=== TEST 12: close-delimited
The same over HTTP/1.0: no length at all, the body ends with the
connection.
--- config
    location = /c {
        sub_filter 'hello' 'HELLO';
        sub_filter_types text/plain;
        return 200 "hello world\n";
    }
--- request
GET /c HTTP/1.0
--- raw_response_headers_unlike: (?i)(Transfer-Encoding|Content-Length)
--- response_body
HELLO world



=== TEST 13: env expansion
$TEST_NGINX_* is expanded in config sections; "$ServerPort" in expected
bodies and headers.
--- main_config
worker_rlimit_nofile 1024;
--- http_config
    map $uri $chat_greeting {
        default "$TEST_NGINX_CHAT_GREETING";
    }
--- config
    location = /env {
        add_header X-Port $TEST_NGINX_SERVER_PORT;
        return 200 "$chat_greeting from $TEST_NGINX_SERVER_ROOT\n";
    }
--- request
GET /env
--- response_headers
X-Port: $ServerPort
--- response_body eval
"howdy from $ENV{TEST_NGINX_SERVER_ROOT}\n"



=== TEST 14: user_files
--- config
--- user_files
>>> hello.txt
Hi from a file
--- request
GET /hello.txt
--- response_body
Hi from a file



=== TEST 15: init
Runs once, after nginx started and before the requests.
--- config
--- init
open my $fh, '>', html_dir() . '/init.txt' or die $!;
print $fh "from init\n";
close $fh;
--- request
GET /init.txt
--- response_body
from init



=== TEST 16: pipelined
--- config
    location = /a { return 200 "a\n"; }
    location = /b { return 200 "b\n"; }
--- pipelined_requests eval
["GET /a", "GET /b"]
--- response_body eval
["a\n", "b\n"]



=== TEST 17: raw_request
--- config
    location = /a { return 200 "a\n"; }
--- raw_request eval
"GET /a HTTP/1.0\r\nHost: localhost\r\n\r\n"
--- response_body
a



=== TEST 18: skip_nginx
--- skip_nginx: 2: < 999.0.0
--- config
    location = /t { return 500; }
--- request
GET /t
--- response_body
never checked



=== TEST 19: timeout + abort
The upstream never answers: the client gives up after 300ms, and --- abort
makes that no failure.
--- config
    location = /slow {
        proxy_read_timeout 2s;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BLACKHOLE_PORT;
    }
--- request
GET /slow
--- timeout: 300ms
--- abort
--- ignore_response



=== TEST 20: response_body_unlike
--- config
    location = /t { return 200 "fine\n"; }
--- request
GET /t
--- response_body_unlike: error



=== TEST 21: SKIP
Never run, never counted.
--- SKIP
--- config
    this is not a valid config;
--- request
GET /
