# The web client in a real browser (issue #19): the test stack's own nginx
# serves web/ at CHAT_WEB (lua-free-conf/single-node.conf), and Debian's
# chromium, driven by playwright-core (t/web/suite.mjs), chats through it
# the way people would, through the client's data-test hooks only:
#
#   - the static files: 200, the headers (CSP, nosniff, Referrer-Policy,
#     ETag and a 304, index.html never cached), unknown paths get
#     index.html, the API is not shadowed;
#   a) three people register; A and B become friends and chat 1:1 until
#      A's message shows data-status=read; B online in A's view, and, when
#      B's tab closes (the last scenario), offline;
#   b) a group of three: each sees the others' messages;
#   c) A attaches a PNG made here, B sees the image loaded;
#   d) B searches the encrypted chat for a word A sent and finds it;
#   e) typing shows on the peer; after 55 more messages, load-older brings
#      older ones than the first page's;
#   g) B signs in from a new browser (a new key): A sees B online again and
#      a key-warning; A logs out;
#   the wire: the pages sent only e2e messages, no marker word in any
#      request or WebSocket frame, and the search as blind-index tokens;
#   f) the plaintext scan: the marker words of the e2e messages of a), b)
#      and d) are in no text of PostgreSQL (pg_dump), no value of Redis
#      (every key, by its type) and no record of any Kafka topic (kcat),
#      while a control marker sent in plain over the WebSocket from here is
#      found in all three: the scan can find what is there.
#
# Screenshots of the key screens go to VAR/log/web/ (printed at the end).
# Fails, never skips, when chromium, playwright-core (t/web/node_modules,
# `make test` runs npm ci) or the client (CHAT_WEB_ROOT) is missing.

use strict;
use warnings;
use Test::More;
use IO::Socket::INET ();
use IO::Select ();
use JSON::PP qw(decode_json encode_json);
use POSIX ();
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatWS;
use ChatPersist ();

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

my $t0 = time;
my $web = ChatPersist::stack_env('CHAT_WEB');
my $port = ChatPersist::stack_env('CHAT_HTTP_PORT');
my $var = ChatPersist::stack_env('CHAT_VAR');
my $root = ChatPersist::stack_env('CHAT_WEB_ROOT') // '(not in stack.env)';
my $chromium = $ENV{WEB_CHROMIUM} // '/usr/bin/chromium';
my $tdir = "$ChatTest::Root/t/web";
my $art = "$var/log/web";
# unique per run: two passes of make test run at once on two stacks
my $run = sprintf '%x%x', int(time * 1000) % 2**40, $$ % 4096;

# --- what the suite needs: missing is a failure, not a skip ---------------

ok(defined $web && $web =~ m{^http://127\.0\.0\.1:\d+/$},
   'stack.env has CHAT_WEB') or diag 'scripts/stack up writes it';
ok(-x $chromium, "chromium is installed ($chromium)")
    or diag 'make test installs it (scripts/setup-deps)';
ok(-f "$tdir/node_modules/playwright-core/package.json",
   'playwright-core is installed in t/web/node_modules')
    or diag 'make test installs it (npm ci in t/web)';
my ($st, $h, $index) = ChatTest::http_get('/', undef, port => $port);
is($st, 200, "GET $web: the client's index.html")
    or diag "the web client is missing? CHAT_WEB_ROOT=$root; got $st";
unless (Test::More->builder->is_passing) {
    diag 'the browser suite cannot run: see the failures above';
    done_testing();
    exit 1;
}


# --- the static files --------------------------------------------------------

like($h->{'content-type'} // '', qr{^text/html}, 'index.html: text/html');
is($h->{'content-security-policy'},
   q{default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' }
   . q{blob: data:; object-src 'none'; base-uri 'none'; }
   . q{frame-ancestors 'none'},
   '... Content-Security-Policy');
is($h->{'x-content-type-options'}, 'nosniff', '... X-Content-Type-Options');
is($h->{'referrer-policy'}, 'no-referrer', '... Referrer-Policy');
is($h->{'cache-control'}, 'no-cache', '... Cache-Control: no-cache');
ok(my $etag = $h->{etag}, '... an ETag');
($st) = ChatTest::http_get('/', { 'If-None-Match' => $etag }, port => $port);
is($st, 304, '... If-None-Match with it: 304');
my ($st2, $h2, $b2) = ChatTest::http_get('/some/client/route', undef,
                                         port => $port);
ok($st2 == 200 && $b2 eq $index, 'an unknown path gets index.html');
is($h2->{'cache-control'}, 'no-cache', '... not cached either');
my ($asset) = $index =~ m{<script[^>]+src="/?([^":?#]+)"};
ok(defined $asset, 'index.html loads a script') or diag $index;
my ($sa, $ha) = ChatTest::http_get('/' . ($asset // 'app.js'), undef,
                                   port => $port);
is($sa, 200, 'GET /' . ($asset // 'app.js'));
like($ha->{'content-type'} // '', qr{javascript}, '... JavaScript');
is($ha->{'cache-control'}, 'max-age=300', '... cached 5 minutes');
($st) = ChatTest::http_get('/v1/me', undef, port => $port);
is($st, 401, 'GET /v1/me without a token: still the API\'s 401');


# --- the browser scenarios --------------------------------------------------

my (@markers, @shots);
my $done;
{
    local $ENV{CHAT_WEB} = $web;
    local $ENV{WEB_RUN} = $run;
    local $ENV{WEB_ARTIFACTS} = $art;
    local $ENV{WEB_CHROMIUM} = $chromium;
    my $b0 = time;
    my $pid = open(my $out, '-|') // die "060: fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        chdir $tdir or POSIX::_exit(126);
        # its own process group, so that a timeout kills chromium too
        POSIX::setpgid(0, 0);
        exec 'node', 'suite.mjs' or POSIX::_exit(127);
    }
    my $sel = IO::Select->new($out);
    my $end = time + 240;
    my $buf = '';
    while (1) {
        my $left = $end - time;
        if ($left <= 0 || !$sel->can_read($left)) {
            fail('the browser suite finished within 240 s');
            kill 'KILL', -$pid;
            last;
        }
        my $n = sysread $out, $buf, 65536, length $buf;
        last unless $n;
        while ($buf =~ s/^(.*)\n//) {
            my $line = $1;
            my $o = eval { decode_json($line) };
            if (!$o) {
                note("suite: $line");
            } elsif (exists $o->{ok}) {
                ok($o->{ok}, "browser: $o->{name}")
                    or diag($o->{diag} // '');
                note("  ($o->{diag})") if $o->{ok} && $o->{diag};
            } elsif ($o->{marker}) {
                push @markers, $o->{marker};
            } elsif ($o->{screenshot}) {
                push @shots, $o->{screenshot};
            } elsif (exists $o->{done}) {
                $done = $o->{done};
            } elsif ($o->{note}) {
                note("suite: $o->{note}");
            }
        }
    }
    close $out;
    my $rc = $? >> 8;
    ok(defined $done && $rc == 0, 'the browser suite ran to its end')
        or diag "node t/web/suite.mjs exit $rc";
    note(sprintf 'the browser part took %.1f s', time - $b0);
}


# --- f) the plaintext scan --------------------------------------------------

cmp_ok(scalar @markers, '>=', 3,
       'the e2e scenarios named their marker words')
    or diag "markers: @markers";

# the control: a plain (not e2e) message, straight over the WebSocket, to
# a user who never connects, so it also waits in Redis (the inbox)
my $control = "mkplain$run";
{
    my ($sx, undef, $bx) = ChatTest::http_request(POST => '/v1/users',
        { 'Content-Type' => 'application/json' },
        encode_json({ username => "wx_$run", password => 'web-test-password' }),
        port => $port);
    my ($sr, undef, $br) = ChatTest::http_request(POST => '/v1/users',
        { 'Content-Type' => 'application/json' },
        encode_json({ username => "wy_$run", password => 'web-test-password' }),
        port => $port);
    my $to = eval { decode_json($br)->{user_id} };
    my ($sl, undef, $bl) = ChatTest::http_request(POST => '/v1/sessions',
        { 'Content-Type' => 'application/json' },
        encode_json({ username => "wx_$run", password => 'web-test-password' }),
        port => $port);
    my $token = eval { decode_json($bl)->{token} };
    ok($sx == 201 && $sr == 201 && $to && $token,
       'the control\'s users registered') or diag "$sx $bx / $sr $br / $sl $bl";
    my $ws = ChatWS->new(port => $port);
    my ($s) = $ws->handshake('/v1/ws', Authorization => "Bearer $token");
    is($s, 101, 'the control\'s WebSocket');
    $ws->send_text(encode_json({ type => 'send', to => $to + 0,
                                 client_id => 'ctl1',
                                 body => "plain $control text" }));
    my $ack;
    my $end = time + 15;
    while (!$ack && time < $end) {
        my $f = $ws->read_text(15) // last;
        my $o = eval { decode_json($f) } or next;
        $ack = $o if ($o->{type} // '') eq 'ack';
    }
    ok($ack, 'the control message is acked') or diag 'no ack in 15 s';
    $ws->close;
}

# PostgreSQL: every column of every table, as pg_dump writes them (text;
# bytea as hex, so a marker is also looked for in hex)
sub pg_text {
    my $dsn = $ENV{TEST_NGINX_PG_DSN} // ChatPersist::stack_env('PG_DSN');
    my %kv = $dsn =~ /(\w+)=(\S+)/g;
    local $ENV{PGPASSWORD} = $kv{password};
    open my $dump, '-|', 'pg_dump', '--data-only', '--no-owner',
         '-h', $kv{hostaddr}, '-p', $kv{port}, '-U', $kv{user}, $kv{dbname}
        or die "060: pg_dump: $!\n";
    my $text = do { local $/; <$dump> } // '';
    close $dump or die "060: pg_dump failed (exit " . ($? >> 8) . ")\n";
    return $text;
}

# Redis: every key's value by its type, over one connection, pipelined
sub redis_text {
    my ($addr) = split /[\s,]+/,
        $ENV{TEST_NGINX_REDIS} // ChatPersist::stack_env('REDIS');
    my $pw = $ENV{REDISCLI_AUTH} // ChatPersist::stack_env('REDIS_PASSWORD');
    my $r = IO::Socket::INET->new(PeerAddr => $addr, Timeout => 5)
        or die "060: redis $addr: $!\n";
    binmode $r;
    my $rbuf = '';
    my $fill = sub {
        my $n = sysread $r, $rbuf, 1 << 20, length $rbuf;
        die "060: redis closed the connection\n" unless $n;
    };
    my $line = sub {
        $fill->() until $rbuf =~ /\r\n/;
        $rbuf =~ s/^(.*?)\r\n//s;
        return $1;
    };
    my $reply;
    $reply = sub {
        my $l = $line->();
        my ($t, $v) = (substr($l, 0, 1), substr($l, 1));
        return $v if $t eq '+' || $t eq ':';
        die "060: redis: $v\n" if $t eq '-';
        if ($t eq '$') {
            return undef if $v < 0;
            $fill->() while length $rbuf < $v + 2;
            my $s = substr $rbuf, 0, $v;
            substr($rbuf, 0, $v + 2) = '';
            return $s;
        }
        return [map { $reply->() } 1 .. ($v < 0 ? 0 : $v)] if $t eq '*';
        die "060: redis: unexpected reply $l\n";
    };
    my $cmds = sub {    # [cmd...], ... -> replies, pipelined
        my $req = join '', map {
            '*' . @$_ . "\r\n"
                . join '', map { '$' . length($_) . "\r\n$_\r\n" } @$_
        } @_;
        my $off = 0;
        while ($off < length $req) {
            my $n = syswrite $r, $req, length($req) - $off, $off;
            die "060: redis write: $!\n" unless $n;
            $off += $n;
        }
        return map { $reply->() } @_;
    };
    $cmds->(['AUTH', $pw]) if defined $pw && length $pw;
    my (@keys, $cursor);
    $cursor = 0;
    do {
        my ($page) = $cmds->(['SCAN', $cursor, 'COUNT', 1000]);
        ($cursor, my $ks) = @$page;
        push @keys, @$ks;
    } while ($cursor ne '0');
    my %get = (string => sub { ['GET', $_[0]] },
               list => sub { ['LRANGE', $_[0], 0, -1] },
               hash => sub { ['HGETALL', $_[0]] },
               set => sub { ['SMEMBERS', $_[0]] },
               zset => sub { ['ZRANGE', $_[0], 0, -1, 'WITHSCORES'] },
               stream => sub { ['XRANGE', $_[0], '-', '+'] });
    my @types = $cmds->(map { ['TYPE', $_] } @keys);
    my @unknown = grep { !$get{$types[$_]} && $types[$_] ne 'none' }
                  0 .. $#keys;
    die "060: redis: keys of types the scan cannot read: "
        . join(', ', map { "$keys[$_] ($types[$_])" } @unknown) . "\n"
        if @unknown;
    my @want = grep { $get{$types[$_]} } 0 .. $#keys;
    my $flat;
    $flat = sub { map { ref $_ ? $flat->(@$_) : ($_ // '') } @_ };
    my $text = join "\n", @keys,
        $flat->($cmds->(map { $get{$types[$_]}->($keys[$_]) } @want));
    close $r;
    return (scalar @keys, $text);
}

# Kafka: every record (key, value, headers) of every topic the broker has
sub kafka_text {
    my $brokers = ChatPersist::brokers();
    my $meta = `kcat -b '$brokers' -L -m 10 2>&1`;
    die "060: kcat -L failed: $meta\n" if $?;
    my @topics = $meta =~ /^\s*topic "([^"]+)" with/mg;
    my $text = '';
    for my $t (@topics) {
        $text .= join '', ChatPersist::consume($t, '%t %k %s %h\n');
    }
    return (\@topics, $text);
}

sub found {   # (text, word) -> where it was seen: raw or in hex
    my ($text, $w) = @_;
    return index($text, $w) >= 0
        || index(lc $text, unpack('H*', $w)) >= 0;
}

# the control must be in each store before the scan means anything: the
# persist worker stores it within seconds
my ($pg, $redis_keys, $redis, $topics, $kafka) = ('', 0, '', [], '');
# a reader that fails is a failed assertion below, with its reason
sub reading {
    my ($what, $code) = @_;
    my @r = eval { $code->() };
    diag("060: reading $what: $@") if $@;
    return @r;
}
ok(ChatTest::wait_until(sub {
       ($pg) = reading(PostgreSQL => \&pg_text);
       found($pg // '', $control);
   }, timeout => 30, interval => 0.5),
   'PostgreSQL: the plain control marker is found (the scan finds things)');
($redis_keys, $redis) = reading(Redis => \&redis_text);
ok(found($redis // '', $control),
   'Redis: ... found too (' . ($redis_keys // 0) . ' keys read)');
($topics, $kafka) = reading(Kafka => \&kafka_text);
$topics //= [];
ok(found($kafka // '', $control),
   'Kafka: ... found too (topics: ' . join(', ', @$topics) . ')');
ok((grep { $_ eq 'chat.messages' } @$topics), '... chat.messages among them');

# the e2e messages are there, as ciphertext: the scan reads them
my $stored = ChatPersist::sql(<<'SQL', run => "%\\_$run");
SELECT count(*) FROM messages m JOIN users u ON u.id = m.sender
 WHERE u.username LIKE :'run' AND m.e2e
SQL
cmp_ok($stored, '>=', 3, "PostgreSQL holds the run's e2e messages ($stored)");
for my $m (@markers) {
    # (read, and not found)
    ok(length($pg // '') && !found($pg, $m),
       "PostgreSQL: no plaintext of the e2e '$m'");
    ok(length($redis // '') && !found($redis, $m), 'Redis: ... nor there');
    ok(length($kafka // '') && !found($kafka, $m), 'Kafka: ... nor there');
}


# --- artifacts ---------------------------------------------------------------

my %shot = map { (m{([^/]+)\.png$})[0] => 1 } @shots;
for my $want (qw(sign-in direct-read group image search)) {
    ok($shot{$want}, "screenshot $want.png");
}
diag("screenshots in $art: " . join(' ', sort keys %shot)) if @shots;
diag(sprintf 't/060-web.t: %.1f s', time - $t0);

done_testing();
