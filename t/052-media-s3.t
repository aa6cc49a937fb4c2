# Images in an S3-compatible store (issue #15): chat_media_s3 against a
# real S3-compatible server, s3rver (npm), started and stopped here.
#
# s3rver 3.7.1 checks the access key id of a SigV4 request but NOT its
# signature (lib/middleware/authentication.js: "Signature version 4
# calculation is unimplemeneted"; an altered signature gets a 200, which
# this suite shows).  So the signatures are checked here, by SigV4 written
# again in Perl: the presigned URL's as the client sends it, the PUT's from
# the values the gateway gave the proxy (logged by the test's own
# log_format in the S3 location).
#
#   - s3rver refuses an unknown access key, and takes an altered signature;
#   - a PNG is uploaded (201, as with the local store): the object lands
#     in the bucket at <2 hex>/<sha256>.png with identical bytes, nothing
#     in the local directory;
#   - a download by token, or by the gateway's signed URL, is a 302 to a
#     presigned s3rver URL (Cache-Control: private, no-store, at most 1h)
#     that returns the bytes as image/png; a stranger still gets 404;
#   - a bad access key: the upload is refused (502, "unavailable", the
#     store's 403 named), no row, no temporary file;
#   - s3rver down: 503 at once, no row, no temporary file.
#
# s3rver is installed with npm into build/s3rver (or CHAT_S3RVER_DIR)
# when it is not there; the suite is skipped when that fails (offline).

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json);
use Time::HiRes qw(time sleep);
use Digest::SHA qw(sha256_hex hmac_sha256 hmac_sha256_hex);
use File::Path qw(make_path remove_tree);
use File::Find qw(find);
use FindBin;
use Fcntl ();
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use ChatTest;
use ChatJWT;
use ChatClient qw(register_users);
use ChatMedia qw(png);

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

# --- s3rver --------------------------------------------------------------------

my $s3dir = $ENV{CHAT_S3RVER_DIR} // "$FindBin::Bin/../build/s3rver";
my $s3bin = "$s3dir/node_modules/.bin/s3rver";

# make test runs two passes at once: one installs, the other waits for it
make_path($s3dir);
open my $lock, '>', "$s3dir.lock" or die "$s3dir.lock: $!";
flock $lock, Fcntl::LOCK_EX() or die "flock $s3dir.lock: $!";
unless (-x $s3bin) {
    my $out = `cd '$s3dir' && timeout 180 npm install --no-audit --no-fund \\
               --loglevel=error s3rver\@3.7.1 2>&1`;
    plan skip_all => "npm cannot install s3rver (offline?): "
                     . (split /\n/, $out // '')[-1] // ''
        unless -x $s3bin;
}
close $lock;

my $tmp = "/tmp/chat-media-s3-$$";
remove_tree($tmp);
make_path("$tmp/media", "$tmp/s3");
my $s3pid;
END {
    if ($s3pid) { kill 'TERM', $s3pid; waitpid $s3pid, 0 }
    remove_tree($tmp) if $tmp;
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1, ReuseAddr => 1)
        or die "free_port: $!";
    return $s->sockport;
}

my $s3port = free_port();
my $bucket = 'chat-media';

sub start_s3rver {
    $s3pid = fork // die "fork: $!";
    if (!$s3pid) {
        open STDOUT, '>', "$tmp/s3rver.log";
        open STDERR, '>&', \*STDOUT;
        exec $s3bin, '-d', "$tmp/s3", '-a', '127.0.0.1', '-p', $s3port,
             '--configure-bucket', $bucket;
        die "exec $s3bin: $!";
    }
    ok(ChatTest::wait_until(sub {
           IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                 PeerPort => $s3port) }, timeout => 20),
       "s3rver listens on $s3port")
        or BAIL_OUT('s3rver did not start: ' . ChatTest::slurp("$tmp/s3rver.log"));
}

sub stop_s3rver {
    kill 'TERM', $s3pid;
    my $end = time + 10;
    sleep 0.05 while waitpid($s3pid, WNOHANG) == 0 && time < $end;
    undef $s3pid;
}

start_s3rver();

# --- the gateway ------------------------------------------------------------

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();

sub creds {
    my ($name, $key) = @_;
    my $f = "$tmp/$name";
    open my $fh, '>', $f or die "$f: $!";
    print $fh "$key\nS3RVER\n";
    close $fh;
    chmod 0600, $f;
    return $f;
}

sub gateway {
    my ($name, $creds, $port) = @_;
    return ChatTest::start_nginx(
        name        => $name,
        ($port ? (port => $port) : ()),
        http_config => <<"CONF",
    chat_redis \$TEST_NGINX_REDIS;
    chat_redis_password_file \$TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "\$TEST_NGINX_PG_DSN";
    chat_kafka_brokers \$TEST_NGINX_KAFKA_BROKERS;
    chat_jwt_secret_file \$TEST_NGINX_JWT_SECRET_FILE;
    chat_media_path $tmp/media;
    chat_media_s3 http://127.0.0.1:$s3port $bucket us-east-1;
    chat_media_s3_credentials_file $creds;
    log_format s3put '\$chat_media_s3_date|\$chat_media_s3_content_sha256|'
                     '\$chat_media_s3_content_type|\$chat_media_s3_host|'
                     '\$chat_media_s3_content_length|'
                     '\$chat_media_s3_authorization|\$uri';
CONF
        config      => <<"CONF",
    location /v1/ {
        chat_api;
    }
    # as docs/DIRECTIVES.md has it
    location /_chat_s3/ {
        internal;
        proxy_pass http://127.0.0.1:$s3port/;
        proxy_pass_request_headers off;
        proxy_set_header Host \$chat_media_s3_host;
        proxy_set_header Content-Type \$chat_media_s3_content_type;
        proxy_set_header Content-Length \$chat_media_s3_content_length;
        proxy_set_header x-amz-date \$chat_media_s3_date;
        proxy_set_header x-amz-content-sha256 \$chat_media_s3_content_sha256;
        proxy_set_header Authorization \$chat_media_s3_authorization;
        proxy_connect_timeout 2s;
        proxy_send_timeout 10s;
        proxy_read_timeout 10s;
        # the test's own: what the PUT was given, to check its signature
        log_subrequest on;
        access_log $tmp/s3put-$name.log s3put;
    }
CONF
    );
}

my $good = creds('good', 'S3RVER');
my $port = gateway('', $good);

my %u = register_users('s3media', qw(a b c));
my %tok = map { $_ => 'Bearer ' . ChatJWT::token(sub => $u{$_}) } keys %u;

sub upload {
    my ($who, $body, %o) = @_;
    my ($st, $hd, $resp) = ChatTest::http_request(
        POST => '/v1/media',
        { Authorization => $tok{$who}, 'Content-Type' => 'image/png' },
        $body, timeout => 30, ($o{port} ? (port => $o{port}) : ()));
    return ($st, eval { decode_json($resp) } // $resp, $hd);
}

sub get {
    my ($path, $who) = @_;
    return ChatTest::http_request(
        GET => $path, { ($who ? (Authorization => $tok{$who}) : ()) },
        undef, timeout => 30);
}

# an absolute URL (s3rver's), with nothing but Host
sub get_url {
    my ($url) = @_;
    my ($hostport, $path) = $url =~ m{^http://([^/]+)(/.*)$}
        or return (0, {}, '');
    my ($h, $p) = split /:/, $hostport;
    my $s = IO::Socket::INET->new(PeerAddr => $h, PeerPort => $p)
        or return (0, {}, '');
    print $s "GET $path HTTP/1.1\r\nHost: $hostport\r\nConnection: close"
             . "\r\n\r\n";
    local $/;
    my $resp = <$s> // '';
    return ChatTest::parse_response($resp, 0);
}

sub object_file {
    my ($sha) = @_;
    my $found;
    find(sub { $found = $File::Find::name
                   if $_ eq "$sha.png._S3rver_object" }, "$tmp/s3");
    return $found;
}

sub rows {
    my ($sha) = @_;
    my $out = `psql -X -A -t -q -d "$ENV{TEST_NGINX_PG_DSN}" -c "SELECT count(*) FROM media_blobs WHERE sha256 = '$sha'" 2>&1`;
    chomp $out;
    return $out;
}

sub tmp_empty {
    return ChatTest::wait_until(sub { !(() = glob "$tmp/media/.tmp/*") },
                                timeout => 5);
}

# SigV4 again, from AWS's documentation, for the checks below
sub sigv4_signature {
    my ($secret, $amz_date, $region, $creq) = @_;
    my $scope = substr($amz_date, 0, 8) . "/$region/s3/aws4_request";
    my $sts = "AWS4-HMAC-SHA256\n$amz_date\n$scope\n" . sha256_hex($creq);
    my $k = hmac_sha256(substr($amz_date, 0, 8), "AWS4$secret");
    $k = hmac_sha256($_, $k) for $region, 's3', 'aws4_request';
    return hmac_sha256_hex($sts, $k);
}

# a presigned GET URL's signature, as the client's request has it
sub presigned_ok {
    my ($url) = @_;
    my ($hostport, $path, $q) = $url =~ m{^http://([^/]+)(/[^?]*)\?(.*)$}
        or return 0;
    my %q = map { split /=/, $_, 2 } split /&/, $q;
    my $sig = delete $q{'X-Amz-Signature'} // return 0;
    my $cq = join '&', map { "$_=$q{$_}" } sort keys %q;
    my $creq = "GET\n$path\n$cq\nhost:$hostport\n\nhost\nUNSIGNED-PAYLOAD";
    return sigv4_signature('S3RVER', $q{'X-Amz-Date'}, 'us-east-1', $creq)
           eq $sig;
}

# --- upload --------------------------------------------------------------------

my $png = png(4, 3, 11 + $$ % 200);
my $sha = sha256_hex($png);
my ($st, $up) = upload('a', $png);
is($st, 201, 'a uploads a PNG to the S3 store: 201') or diag explain $up;
my $id = $up->{media_id} // '';
like($id, qr/^[0-9A-Z]{26}$/, '... a media id');
is_deeply([ @$up{qw(type size width height)} ], [ 'image/png', length $png,
                                                   4, 3 ],
          '... its type, size and dimensions');
like($up->{url} // '', qr{^/v1/media/\Q$id\E\?exp=\d+&sig=[0-9a-f]{64}$},
     '... and the gateway\'s signed URL');
my $obj = object_file($sha);
ok($obj && $obj =~ m{/\Q$bucket\E/\Q@{[substr $sha, 0, 2]}\E/\Q$sha\E\.png\._S3rver_object$},
   "the object is in the bucket at <2 hex>/<sha256>.png")
    or diag `find $tmp/s3`;
ok($obj && ChatTest::slurp($obj) eq $png, '... with identical bytes');
ok(!(() = glob "$tmp/media/*/$sha.*"), '... and not in the local directory');
is(rows($sha), 1, '... and recorded');
ok(tmp_empty(), 'no temporary file left');

my ($put) = grep { /\Q$sha\E\.png$/ }
            split /\n/, ChatTest::slurp("$tmp/s3put-.log");
my ($pdate, $psha, $ptype, $phost, $plen, $pauth, $puri) =
    split /\|/, $put // '';
is_deeply([ $psha, $ptype, $phost, $plen, $puri ],
          [ $sha, 'image/png', "127.0.0.1:$s3port", length $png,
            "/_chat_s3/$bucket/" . substr($sha, 0, 2) . "/$sha.png" ],
          'the PUT\'s payload hash, type, host, length and URI')
    or diag $put;
my ($psig) = ($pauth // '') =~ /^AWS4-HMAC-SHA256 Credential=S3RVER\/\d{8}\/us-east-1\/s3\/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, Signature=([0-9a-f]{64})$/;
my $creq = "PUT\n/$bucket/" . substr($sha, 0, 2) . "/$sha.png\n\n"
           . "content-type:image/png\nhost:127.0.0.1:$s3port\n"
           . "x-amz-content-sha256:$sha\nx-amz-date:" . ($pdate // '')
           . "\n\ncontent-type;host;x-amz-content-sha256;x-amz-date\n$sha";
ok($psig && $pdate
   && $psig eq sigv4_signature('S3RVER', $pdate, 'us-east-1', $creq),
   '... and its Authorization: the SigV4 signature of those, by S3RVER\'s '
   . 'secret') or diag $pauth;

# --- download --------------------------------------------------------------------

my ($gs, $gh) = get("/v1/media/$id", 'a');
is($gs, 302, 'the uploader downloads it by token: 302');
my $loc = $gh->{location} // '';
like($loc, qr{^http://127\.0\.0\.1:$s3port/\Q$bucket\E/\Q@{[substr $sha, 0, 2]}\E/\Q$sha\E\.png\?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=S3RVER%2F\d{8}%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=\d{8}T\d{6}Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=[0-9a-f]{64}$},
     '... to a URL presigned for 1h') or diag $loc;
is($gh->{'cache-control'}, 'private, no-store', '... private, no-store');
my ($ss, $sh, $sb) = get_url($loc);
is($ss, 200, 's3rver serves the presigned URL');
ok($sb eq $png, '... identical bytes');
is($sh->{'content-type'}, 'image/png', '... as image/png (its PUT\'s type)');
ok(presigned_ok($loc), '... and its signature is SigV4\'s for S3RVER\'s '
   . 'secret (checked here: s3rver does not)');

# what s3rver checks, and what it does not
(my $bad = $loc) =~ s/Credential=S3RVER/Credential=NOTME/;
my ($bs, undef, $bb) = get_url($bad);
is($bs, 403, 's3rver refuses an unknown access key: 403');
like($bb, qr/InvalidAccessKeyId/, '... InvalidAccessKeyId');
($bad = $loc) =~ s/(X-Amz-Signature=)(.)/$1 . ($2 eq 'a' ? 'b' : 'a')/e;
($bs) = get_url($bad);
ok(!presigned_ok($bad), 'an altered signature fails the check here');
is($bs, 200, '... but s3rver 3.7.1 takes it (no SigV4 check of its own)');

($gs, $gh) = get($up->{url});
is($gs, 302, 'the gateway\'s signed URL: 302 too');
($ss, undef, $sb) = get_url($gh->{location} // '');
ok($ss == 200 && $sb eq $png, '... to the bytes');
my ($ns) = get("/v1/media/$id", 'c');
is($ns, 404, 'a stranger: 404, no redirect');

my ($st2, $up2) = upload('a', $png);
is("$st2 " . ($up2->{media_id} // ''), "201 $id",
   'the same image again: 201, the same id');

# --- a bad access key --------------------------------------------------------------

my $png2 = png(2, 2, 200 + $$ % 50);
my $sha2 = sha256_hex($png2);
my $port2 = gateway('bad', creds('bad', 'NOTTHEKEY'), free_port());
my ($rs, $rb) = upload('a', $png2, port => $port2);
is($rs, 502, 'a wrong access key: the upload is refused, 502')
    or diag explain $rb;
is(ref $rb && $rb->{error}, 'unavailable', '... "unavailable"');
like(ref $rb && $rb->{message} // '', qr/refused the image \(HTTP 403\)/,
     '... naming the store\'s 403');
is(rows($sha2), 0, '... no row');
ok(!object_file($sha2), '... no object');
ok(tmp_empty(), '... no temporary file left');
like(ChatTest::error_log('bad'), qr/chat: media: S3 PUT \/\Q$bucket\E\/\S+: 403/,
     '... the error log says which PUT');
ChatTest::stop_nginx('bad');

# --- collection: chat-worker cleanup deletes the objects ------------------------

# the images of this test were never sent: older than the grace, their rows
# go and their objects with them (a DELETE signed like the gateway's PUT)
my $worker = $ENV{CHAT_WORKER_BIN} // "$FindBin::Bin/../build/chat-worker";
sub cleanup_with {
    my ($creds) = @_;
    local $ENV{PG_DSN} = $ENV{TEST_NGINX_PG_DSN};
    my $out = `$worker cleanup --retention ephemeral --once --media-grace 1s \\
               --s3-endpoint http://127.0.0.1:$s3port --s3-bucket $bucket \\
               --s3-region us-east-1 --s3-credentials-file $creds 2>&1`;
    return ($? >> 8, $out);
}
sleep 1.2;
my ($crc, $cout) = cleanup_with(creds('worker-bad', 'NOTTHEKEY'));
is($crc, 1, 'cleanup with a key the store refuses: exit 1 (--once gives up)')
    or diag $cout;
like($cout, qr/event=s3_delete_failed .*status=403/, '... saying the store '
     . 'refused the DELETE') or diag $cout;
unlike($cout, qr/S3RVER|Signature=/, '... no secret, no signature in its log');
ok(object_file($sha) && rows($sha) == 1, '... the object and its rows stay '
   . '(the transaction rolled back)');
($crc, $cout) = cleanup_with($good);
is($crc, 0, 'cleanup with the right key: exit 0') or diag $cout;
like($cout, qr/media=s3 .*\n.*event=pass .*media=[1-9]/s,
     '... its pass counts what it removed') or diag $cout;
ok(!object_file($sha), '... the object of the image never sent is deleted '
   . 'from the bucket');
is(rows($sha), 0, '... and its rows');

# --- s3rver down ----------------------------------------------------------------

stop_s3rver();
my $t0 = time;
($rs, $rb) = upload('a', $png2);
my $took = time - $t0;
is($rs, 503, 's3rver down: 503') or diag explain $rb;
is(ref $rb && $rb->{error}, 'unavailable', '... "unavailable"');
ok($took < 3, sprintf('... at once (%.2f s)', $took));
is(rows($sha2), 0, '... no row');
ok(tmp_empty(), '... no temporary file left');

unlike(ChatTest::error_log(), qr/\[(alert|crit|emerg)\]/, 'no alerts');
unlike(ChatTest::error_log(), qr/Signature=[0-9a-f]{64}/,
       'no signature in the error log');
ChatTest::stop_nginx();
done_testing();
