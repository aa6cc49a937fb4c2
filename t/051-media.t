# Images (issue #15): POST /v1/media and GET /v1/media/{id} against the
# test stack, with the local media store.
#
#   - a PNG is uploaded (201, its type and dimensions from its bytes, a
#     signed url); the uploader downloads identical bytes by token and by
#     the signed URL (sendfile through the internal location: ETag, Range);
#   - the same image uploaded again is stored once (one file), the same
#     uploader gets the same id, another user an id of its own;
#   - a stranger gets 404, the same as for an id that does not exist; no
#     token and no signature: 401; an altered or expired signature: 403;
#   - a message carrying the image reaches its recipient with a signed url
#     beside the media id (made as the frame goes out), history has a fresh
#     one too, and the recipient (1:1) and the group's members download it
#     by token once it is stored, and nobody else;
#   - only the uploader sends an image: another user's media id, or one that
#     does not exist, is refused (forbidden), never acked;
#   - limits: text sent as image/png, a JPEG sent as image/png, a type that
#     is not an image: 415; over chat_media_max_size with a Content-Length
#     (413 before the body) and chunked (413 as it arrives); the worker's
#     memory does not grow with the body: it goes to a file.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use Digest::SHA qw(sha256_hex hmac_sha256 hmac_sha256_hex);
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use ChatTest;
use ChatJWT;
use ChatWS;
use ChatClient qw(register_users ws_connect frames collect api_as);
use ChatPersist ();
use ChatMedia qw(png jpeg);

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

my $media = "/tmp/chat-media-$$";
remove_tree($media);
make_path($media);
END { remove_tree($media) if $media }

ChatTest::start_nginx(
    workers     => 2,
    listen      => 'reuseport',
    http_config => <<"CONF",
    chat_redis \$TEST_NGINX_REDIS;
    chat_redis_password_file \$TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "\$TEST_NGINX_PG_DSN";
    chat_kafka_brokers \$TEST_NGINX_KAFKA_BROKERS;
    chat_jwt_secret_file \$TEST_NGINX_JWT_SECRET_FILE;
    chat_media_path $media;
    chat_media_max_size 16m;
CONF
    config      => <<"CONF",
    location /v1/ {
        chat_api;
    }
    location = /v1/ws {
        chat_websocket;
    }
    location /_chat_media/ {
        internal;
        alias $media/;
    }
    # as lua-free-conf/single-node.conf: nginx's own 413 (a Content-Length
    # over client_max_body_size, which chat_media_max_size sets) in JSON
    error_page 413 = \@chat_413;
    location \@chat_413 {
        default_type application/json;
        return 413 '{"error":"too_large","message":"request body too large"}\n';
    }
CONF
);
my $port = ChatTest::port();
my $run = sprintf '%x%x', $$, time;

my %u = register_users('media', qw(a b c d));
my %tok = map { $_ => 'Bearer ' . ChatJWT::token(sub => $u{$_}) } keys %u;

sub upload {
    my ($who, $type, $body, %h) = @_;
    my ($st, $hd, $resp) = ChatTest::http_request(
        POST => '/v1/media',
        { ($who ? (Authorization => $tok{$who}) : ()),
          ($type ? ('Content-Type' => $type) : ()), %h }, $body,
        timeout => 30);
    return ($st, eval { decode_json($resp) } // $resp, $hd);
}

sub get {
    my ($path, $who, %h) = @_;
    return ChatTest::http_request(
        GET => $path, { ($who ? (Authorization => $tok{$who}) : ()), %h },
        undef, timeout => 30);
}

# --- upload and download -----------------------------------------------------

my $png = png(3, 2, 7);
my ($st, $up) = upload('a', 'image/png', $png);
is($st, 201, 'a uploads a PNG: 201') or diag explain $up;
my $id = $up->{media_id} // '';
like($id, qr/^[0-9A-Z]{26}$/, '... a media id');
is_deeply([ @$up{qw(type size width height)} ], [ 'image/png', length $png,
                                                   3, 2 ],
          '... its type, size and dimensions, read from its bytes');
like($up->{url} // '', qr{^/v1/media/\Q$id\E\?exp=(\d+)&sig=[0-9a-f]{64}$},
     '... and a signed URL');
my ($exp) = ($up->{url} // '') =~ /exp=(\d+)/;
ok($exp && $exp > time + 3500 && $exp <= time + 3601,
   '... good for chat_media_url_ttl (1h by default)');

my $sha = sha256_hex($png);
ok(-f "$media/" . substr($sha, 0, 2) . "/$sha.png",
   'the store holds it under its SHA-256');

my ($gs, $gh, $gb) = get("/v1/media/$id", 'a');
is($gs, 200, 'the uploader downloads it by token');
ok($gb eq $png, '... identical bytes');
is($gh->{'content-type'}, 'image/png', '... as image/png');
like($gh->{etag} // '', qr/^"/, '... with an ETag');
is($gh->{'cache-control'}, 'private, max-age=31536000, immutable',
   '... cached for good (the content of an id never changes)');
is($gh->{'x-content-type-options'}, 'nosniff', '... nosniff');

($gs, $gh, $gb) = get($up->{url});
is($gs, 200, 'anyone downloads it with the signed URL');
ok($gb eq $png, '... identical bytes');

($gs, $gh, $gb) = get($up->{url}, undef, Range => 'bytes=0-7');
is($gs, 206, 'a Range request: 206');
ok($gb eq substr($png, 0, 8), '... the first 8 bytes');

($gs, $gh) = get($up->{url}, undef, 'If-None-Match' => $gh->{etag} // 'x');
is($gs, 304, 'If-None-Match with its ETag: 304');

# --- one content, stored once ------------------------------------------------

my ($st2, $up2) = upload('a', 'image/png', $png);
is($st2, 201, 'a uploads the same PNG again: 201');
is($up2->{media_id}, $id, '... the same id');
my ($st3, $up3) = upload('b', 'image/png', $png);
is($st3, 201, 'b uploads it too: 201');
isnt($up3->{media_id}, $id, '... with an id of its own');
my @files = glob "$media/*/$sha.*";
is(scalar @files, 1, 'one file for the three uploads');
ok(ChatTest::wait_until(sub { !(() = glob "$media/.tmp/*") },
                        timeout => 5),
   "no temporary file left (removed as each request ends)");

# --- who may download --------------------------------------------------------

my ($ns, undef, $nb) = get("/v1/media/$id", 'c');
is($ns, 404, 'a stranger: 404');
my ($xs, undef, $xb) = get('/v1/media/01HZZZZZZZZZZZZZZZZZZZZZZZ', 'c');
is($xs, 404, 'an id that does not exist: 404');
is($nb, $xb, '... the same answer');
($xs) = get('/v1/media/not%20an%20id', 'a');
is($xs, 404, 'a path that is no media id: 404');
($xs) = get("/v1/media/$id");
is($xs, 401, 'no token, no signature: 401');

my $key = hmac_sha256('ngx_chat media URL key v1', ChatJWT::secret());
sub signed {
    my ($mid, $e) = @_;
    return "/v1/media/$mid?exp=$e&sig=" . hmac_sha256_hex("$mid\n$e", $key);
}
($xs, undef, $xb) = get(signed($id, int(time) + 60));
is($xs, 200, 'a URL signed with the derived key: 200 (the test signs as '
   . 'the gateway does)');
($xs, undef, $xb) = get(signed($id, int(time) - 10));
is($xs, 403, 'an expired signature: 403');
like($xb, qr/expired/, '... saying so');
(my $alt = $up->{url}) =~ s/exp=(\d+)/'exp=' . ($1 + 1)/e;
($xs, undef, $xb) = get($alt);
is($xs, 403, 'an altered expiry: 403');
like($xb, qr/bad signature/, '... a bad signature');
($alt = $up->{url}) =~ s/sig=(.)/'sig=' . ($1 eq 'a' ? 'b' : 'a')/e;
($xs) = get($alt);
is($xs, 403, 'an altered signature: 403');
($xs) = get("/v1/media/$up3->{media_id}?" . (split /\?/, $up->{url})[1]);
is($xs, 403, 'a signature for another id: 403');
($xs) = get("/v1/media/$id?sig=abc");
is($xs, 403, 'a signature without an expiry: 403');

# the message path: a 1:1 message and a group message carry it
my ($gst, $g) = api_as($u{a}, POST => '/v1/groups',
                       { name => "media-$run", members => [ $u{d} ] });
is($gst, 201, 'a makes a group with d');
my $wa = ws_connect($port, $u{a});
$wa->send_text(encode_json({ type => 'send', to => $u{b}, media => $id,
                             client_id => "m1-$run", body => 'a picture' }));
$wa->send_text(encode_json({ type => 'send', group => $g->{group_id},
                             media => $id, client_id => "m2-$run",
                             body => 'for the group' }));
my $acks = collect($wa, { ack => 2 }, 20);
is(scalar @{ $acks->{ack} }, 2, 'a sends it to b and to the group: acked');

# b, online, gets the message with the id and a signed URL of its own
my $wb = ws_connect($port, $u{b});
my ($bm) = frames($wb, 'message', 1, 20);
is($bm && $bm->{media}, $id, 'b gets the message with the media id');
like($bm && $bm->{url} // '', qr{^/v1/media/\Q$id\E\?exp=\d+&sig=[0-9a-f]{64}$},
     '... and a signed URL beside it');
my ($us, undef, $ub) = get($bm && $bm->{url} // '/v1/media/x');
ok($us == 200 && $ub eq $png, '... that downloads the image, no token '
   . 'needed');
$wb->close;
my ($bs, $ds, $bb, $db) = (0, 0, '', '');
ok(ChatTest::wait_until(sub {
       ($bs, undef, $bb) = get("/v1/media/$id", 'b');
       ($ds, undef, $db) = get("/v1/media/$id", 'd');
       $bs == 200 && $ds == 200 }, timeout => 20),
   'once stored, b (its recipient) and d (a member of the group) download '
   . 'it by token') or diag "b $bs, d $ds";
ok($bb eq $png && $db eq $png, '... identical bytes');
($ns) = get("/v1/media/$id", 'c');
is($ns, 404, '... c still gets 404');

# history: the URL is made when the page is read
my ($hs, $hist) = api_as($u{b}, GET => "/v1/messages?with=$u{a}");
my ($hm) = grep { ($_->{client_id} // '') eq "m1-$run" }
           @{ ref $hist eq 'HASH' ? $hist->{messages} // [] : [] };
is($hm && $hm->{media}, $id, 'b\'s history has the message with the media');
my ($hexp) = ($hm && $hm->{url} // '') =~ /exp=(\d+)&sig=[0-9a-f]{64}$/;
ok($hexp && $hexp > time + 3500, '... and a fresh signed URL');
($us, undef, $ub) = get($hm && $hm->{url} // '/v1/media/x');
ok($us == 200 && $ub eq $png, '... that downloads it');
$wa->close;

# only its uploader sends an image: c naming a's media id (to d, or to a
# group), or an id that does not exist, is refused and never acked
my ($dst, $dg) = api_as($u{d}, POST => '/v1/groups',
                        { name => "media2-$run", members => [ $u{c} ] });
is($dst, 201, 'd makes a group with c');
my $wc = ws_connect($port, $u{c});
$wc->send_text(encode_json({ type => 'send', to => $u{d}, media => $id,
                             client_id => "m3-$run", body => 'not mine' }));
$wc->send_text(encode_json({ type => 'send', group => $dg->{group_id},
                             media => $id, client_id => "m4-$run",
                             body => 'not mine' }));
$wc->send_text(encode_json({ type => 'send', to => $u{d},
                             media => '01HZZZZZZZZZZZZZZZZZZZZZZZ',
                             client_id => "m5-$run", body => 'none' }));
$wc->send_text(encode_json({ type => 'send', to => $u{d}, media => $up3->{media_id},
                             client_id => "m6-$run", body => 'b\'s' }));
my $cr = collect($wc, { error => 4 }, 20);
# (each answered when its check is: not necessarily in the order sent)
is_deeply([ sort map { "$_->{client_id} $_->{code}" } @{ $cr->{error} } ],
          [ map { "$_-$run forbidden" } qw(m3 m4 m5 m6) ],
          'c sends a\'s and b\'s media ids, and one that does not exist: '
          . 'each refused, forbidden');
is(scalar @{ $cr->{ack} // [] } + scalar(grep { ($_->{type} // '') eq 'ack' }
                                          @{ $wc->{other} // [] }), 0,
   '... none acked');
my ($cs) = get("/v1/media/$id", 'c');
my ($ds2) = get("/v1/media/$up3->{media_id}", 'd');
is("$cs $ds2", '404 404', '... and neither c nor d can download them');
$wc->close;

# --- refused uploads ---------------------------------------------------------

my ($rs, $rb) = upload('a', 'image/png', "hello, this is text\n" x 10);
is($rs, 415, 'text sent as image/png: 415') or diag explain $rb;
($rs, $rb) = upload('a', 'image/png', jpeg(4, 5));
is($rs, 415, 'a JPEG sent as image/png: 415');
like($rb->{message} // '', qr{image/jpeg, not image/png}, '... saying what '
     . 'it is');
($rs, $rb) = upload('a', 'image/jpeg', jpeg(4, 5));
is($rs, 201, 'the same JPEG as image/jpeg: 201');
is_deeply([ @$rb{qw(type width height)} ], [ 'image/jpeg', 4, 5 ],
          '... 4x5');
($rs, $rb) = upload('a', 'text/plain', $png);
is($rs, 415, 'Content-Type text/plain: 415 before the body');
($rs, $rb) = upload('a', undef, $png);
is($rs, 415, 'no Content-Type: 415');
($rs, $rb) = upload(undef, 'image/png', $png);
is($rs, 401, 'no token: 401');
($rs, $rb) = upload('a', 'image/png', '');
is($rs, 400, 'an empty body: 400');
ok(ChatTest::wait_until(sub { !(() = glob "$media/.tmp/*") },
                        timeout => 5),
   "no temporary file left (removed as each request ends)");

# --- size limits and memory --------------------------------------------------

sub worker_rss {
    my $pid = ChatTest::slurp(ChatTest::servroot() . '/logs/nginx.pid');
    chomp $pid;
    my $kb = 0;
    for my $w (split ' ', `pgrep -P $pid`) {
        my ($r) = ChatTest::slurp("/proc/$w/status") =~ /VmRSS:\s+(\d+)/;
        $kb += $r // 0;
    }
    return $kb;
}

# announced too large: refused before the body (17 MB are never sent)
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port)
    or die "connect: $!";
print $sock "POST /v1/media HTTP/1.1\r\nHost: localhost\r\n"
          . "Authorization: $tok{a}\r\nContent-Type: image/png\r\n"
          . "Content-Length: " . 17 * 1024 * 1024 . "\r\n\r\n";
my $resp = '';
my $end = time + 10;
while (time < $end && $resp !~ /\r\n\r\n.*\}/s) {
    my $n = sysread $sock, my $buf, 4096;
    last unless $n;
    $resp .= $buf;
}
like($resp, qr{^HTTP/1\.1 413 }, 'a 17 MB Content-Length: 413 before the '
     . 'body') or diag $resp;
like($resp, qr/"too_large"/, '... in JSON (error_page, as the example '
     . 'config has it)');
close $sock;

my $before = worker_rss();

# a 15 MB image is taken (to a file), a 17 MB chunked one is stopped
my $big = png(16, 16, 3) . ("\0" x (15 * 1024 * 1024));
($rs, $rb) = upload('a', 'image/png', $big);
is($rs, 201, 'a 15 MB PNG: 201');
is($rb->{size}, length $big, '... all of it');
my $bsha = sha256_hex($big);
is(-s "$media/" . substr($bsha, 0, 2) . "/$bsha.png", length $big,
   '... stored whole');

$sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port)
    or die "connect: $!";
local $SIG{PIPE} = 'IGNORE';
print $sock "POST /v1/media HTTP/1.1\r\nHost: localhost\r\n"
          . "Authorization: $tok{a}\r\nContent-Type: image/png\r\n"
          . "Transfer-Encoding: chunked\r\n\r\n";
my $piece = png(16, 16, 4) . ("\1" x (1024 * 1024 - length png(16, 16, 4)));
my $sent = 0;
for (1 .. 17) {
    my $c = sprintf("%x\r\n", length $piece) . $piece . "\r\n";
    last unless defined syswrite $sock, $c;
    $sent++;
    $piece = "\1" x (1024 * 1024);
}
syswrite $sock, "0\r\n\r\n";
$resp = '';
$end = time + 10;
while (time < $end) {
    my $n = sysread $sock, my $buf, 4096;
    last unless $n;
    $resp .= $buf;
}
like($resp, qr{^HTTP/1\.1 413 }, "17 MB chunked ($sent MB written): 413")
    or diag substr($resp, 0, 300);
close $sock;

my $after = worker_rss();
ok($after - $before < 8 * 1024, 'the workers\' memory did not grow with '
   . 'the bodies (' . ($after - $before) . ' KB)') or diag "$before -> $after";
ok(ChatTest::wait_until(sub { !(() = glob "$media/.tmp/*") },
                        timeout => 5),
   "no temporary file left (removed as each request ends)");

# --- collection: chat-worker cleanup --retention ephemeral --media-path -----

# the JPEG and the 15 MB PNG were never sent, b's upload of a's PNG neither:
# once older than the grace, their rows go, and the files of the contents
# no upload names any more; a's PNG stays while a stored message carries it
sleep 1.2;
my $worker = $ENV{CHAT_WORKER_BIN} // "$ChatTest::Root/build/chat-worker";
my $jsha = sha256_hex(jpeg(4, 5));
my $cout = do {
    local $ENV{PG_DSN} = ChatPersist::stack_env('PG_DSN');
    `$worker cleanup --retention ephemeral --once --media-path $media --media-grace 1s 2>&1`;
};
is($? >> 8, 0, 'chat-worker cleanup --media-path --once: exit 0')
    or diag $cout;
my ($gone) = $cout =~ /event=pass .*\bmedia=(\d+)/;
cmp_ok($gone // 0, '>=', 2, '... its pass counts the contents it removed')
    or diag $cout;
ok(!-e "$media/" . substr($jsha, 0, 2) . "/$jsha.jpg"
   && !-e "$media/" . substr($bsha, 0, 2) . "/$bsha.png",
   '... the files of the two images never sent are gone');
is(ChatPersist::sql("SELECT count(*) FROM media_blobs WHERE sha256 IN "
                    . "(:'a', :'b')", a => $jsha, b => $bsha), '0',
   '... and their rows');
is(ChatPersist::sql("SELECT count(*) FROM media WHERE id = :'i'",
                    i => $up3->{media_id}), '0',
   'b\'s upload of a\'s PNG, never sent, is gone');
my $carried = ChatPersist::sql("SELECT count(*) FROM messages WHERE media "
                               . "= :'i'", i => $id);
is((-e "$media/" . substr($sha, 0, 2) . "/$sha.png" ? 1 : 0) . ' '
   . ChatPersist::sql("SELECT count(*) FROM media WHERE id = :'i'", i => $id),
   $carried > 0 ? '1 1' : '0 0',
   "a's PNG, carried by $carried stored message(s): kept exactly while "
   . 'one carries it');
($rs, $rb) = upload('a', 'image/jpeg', jpeg(4, 5));
is($rs, 201, 'the JPEG uploaded again: 201');
ok(-f "$media/" . substr($jsha, 0, 2) . "/$jsha.jpg", '... stored again');
($gs, undef, $gb) = get("/v1/media/$rb->{media_id}", 'a');
ok($gs == 200 && $gb eq jpeg(4, 5), '... and downloads');

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');
ChatTest::stop_nginx();
done_testing();
