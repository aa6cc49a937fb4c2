package ChatTest;

# Helpers for multi-step scenario tests that Test::Nginx blocks cannot
# express, because every block gets a fresh nginx: here ONE nginx keeps
# running while the test changes the world around it, e.g.
#
#     use Test::More;
#     use ChatTest;
#     ChatTest::start_nginx(config => 'location = /healthz { chat_health; }');
#     is((ChatTest::http_get('/healthz'))[0], 200, 'healthy');
#     ChatTest::stack_svc('redis', 'stop');
#     ok(ChatTest::wait_until(
#            sub { (ChatTest::http_get('/healthz'))[0] == 503 }),
#        '503 without redis');
#     ChatTest::stack_svc('redis', 'start');
#     ...
#     done_testing();
#
# Plain Perl with Test::More; it does not need Test::Nginx.  nginx runs
# from t/servroot-chattest-PID (kept when a test failed, for its logs).

use strict;
use warnings;

use File::Basename ();
use File::Path qw(make_path remove_tree);
use File::Spec ();
use IO::Select ();
use IO::Socket::INET ();
use POSIX ();
use Time::HiRes qw(sleep time);

# The repository root, whatever the current directory.
our $Root = File::Spec->rel2abs(
    File::Spec->catdir(File::Basename::dirname(__FILE__), '..', '..'));
1 while $Root =~ s{/[^/]+/\.\.(?=/|$)}{};

our $StackScript  = "$Root/scripts/stack";
our $StackTimeout = 300;    # seconds for one scripts/stack call
# Default port: away from Test::Nginx's, so both kinds can share a box.
our $PortOffset   = 100;

# The running nginx instances by name: root, port, bin.  The unnamed one
# ('') is the default of every function; a test that needs a second nginx
# (e.g. two nodes sharing Redis and Kafka) names it: start_nginx(name =>
# 'b', ...), port('b'), error_log('b').
my %Inst;

sub inst     { $Inst{$_[0] // ''} //= {} }
sub servroot { inst($_[0])->{root} }
sub port     { inst($_[0])->{port} }

sub find_nginx {
    my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
    return $bin if $bin =~ m{/};
    for my $dir (split(/:/, $ENV{PATH} // ''), '/usr/sbin') {
        return "$dir/$bin" if length $dir && -f "$dir/$bin" && -x _;
    }
    die "ChatTest: cannot find nginx (set TEST_NGINX_BINARY)\n";
}

sub slurp {
    my $f = shift;
    open my $in, '<', $f or return '';
    local $/;
    return scalar(<$in>) // '';
}

sub tail {
    my ($text, $n) = @_;
    my @l = split /\n/, $text;
    splice @l, 0, @l - $n if @l > $n;
    return join '', map { "  $_\n" } @l;
}

# Run @cmd with stdin /dev/null and all output into $file; returns $?.
# A file rather than a pipe: daemons started by @cmd may keep it open.
sub run_to_file {
    my ($file, $limit, @cmd) = @_;
    my $pid = fork // die "ChatTest: fork: $!\n";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $file or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        exec { $cmd[0] } @cmd or do {
            print STDERR "exec $cmd[0]: $!\n";
            POSIX::_exit(127);
        };
    }
    my $end = time + $limit;
    while (waitpid($pid, POSIX::WNOHANG()) == 0) {
        if (time > $end) {
            kill 'TERM', $pid;
            waitpid $pid, 0;
            open my $out, '>>', $file;
            print $out "\n[ChatTest: killed after ${limit}s]\n" if $out;
            return -1;
        }
        sleep 0.05;
    }
    return $?;
}

sub describe_status {
    my $st = shift;
    return 'timed out' if $st == -1;
    return 'killed by signal ' . ($st & 127) if $st & 127;
    return 'exit code ' . ($st >> 8);
}

# Same rule as Test::Nginx: $TEST_NGINX_FOO comes from %ENV and must be
# set.  $TEST_NGINX_SERVER_PORT / _SERVER_ROOT / _HTML_DIR mean this
# nginx's, so config snippets work in both kinds of test.
sub expand {
    my ($text, $vars) = @_;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        $vars->{$1} // $ENV{$1}
            // die "ChatTest: environment variable $1 is not set\n"
    }ge;
    return $text;
}

sub nginx_version_info {
    my ($bin, $root) = @_;
    run_to_file("$root/logs/nginx-V", 30, $bin, '-V');
    my $out = slurp("$root/logs/nginx-V");
    my $ver = $out =~ m{nginx/(\d+)\.(\d+)\.(\d+)}
            ? $1 * 1e6 + $2 * 1e3 + $3 : 0;
    return ($ver, $out);
}

sub write_config {
    my ($o, $root, $port, $configure) = @_;
    my %vars = (TEST_NGINX_SERVER_PORT => $port,
                TEST_NGINX_SERVER_ROOT => $root,
                TEST_NGINX_HTML_DIR    => "$root/html");
    my $modules = join '', map { "load_module $_;\n" } grep { length }
                  split /\s+/, $ENV{TEST_NGINX_LOAD_MODULES} // '';
    # Temp files inside servroot (Debian compiles in /var/lib/nginx/...).
    my $temp = "    client_body_temp_path $root/client_body_temp;\n";
    for my $m (qw(proxy fastcgi uwsgi scgi)) {
        $temp .= "    ${m}_temp_path $root/${m}_temp;\n"
            unless $configure =~ /--without-http_${m}_module/;
    }
    my $main = expand($o->{main_config} // '', \%vars);
    my $http = expand($o->{http_config} // '', \%vars);
    my $server = expand($o->{config} // '', \%vars);
    my $workers = $o->{workers} // 1;
    # e.g. 'reuseport', so that the kernel spreads connections over workers
    my $listen = $o->{listen} ? " $o->{listen}" : '';
    my $level = $o->{log_level} // 'info';
    my $user = $> == 0 ? "user root;\n" : '';

    open my $out, '>', "$root/conf/nginx.conf"
        or die "ChatTest: write $root/conf/nginx.conf: $!\n";
    print $out <<"_EOC_";
${modules}worker_processes $workers;
daemon on;
master_process on;
error_log $root/logs/error.log $level;
pid $root/logs/nginx.pid;
${user}env LD_PRELOAD;
env LD_LIBRARY_PATH;
env ASAN_OPTIONS;

$main

events {
    worker_connections 1024;
}

http {
    access_log $root/logs/access.log;
    default_type text/plain;
$temp
$http

    server {
        listen 127.0.0.1:$port$listen;
        server_name localhost;

$server
    }
}
_EOC_
    close $out;
}

# start_nginx(config => ..., http_config => ..., main_config => ...,
#             workers => 1, port => N, log_level => 'info', timeout => 10,
#             name => '', listen => 'reuseport', links => {...})
# Starts a master+workers daemon and returns once the port answers; dies
# with nginx's own words otherwise.  Restarts if one is already running.
sub start_nginx {
    my %o = @_;
    my $name = $o{name} // '';
    stop_nginx($name) if inst($name)->{port};
    my $port = $o{port} // (($ENV{TEST_NGINX_PORT} || 1984) + $PortOffset);
    my $root = "$Root/t/servroot-chattest-$$";
    $root .= "-$name" if length $name;
    my $bin = find_nginx();
    remove_tree($root);
    make_path(map { "$root/$_" } qw(conf logs html));
    # links => { NAME => TARGET }: e.g. modules => /usr/lib/nginx/modules,
    # where Debian's modules-enabled snippets (modules/x.so) look
    symlink $o{links}{$_}, "$root/$_" or die "ChatTest: symlink $_: $!\n"
        for sort keys %{ $o{links} // {} };
    my ($ver, $configure) = nginx_version_info($bin, $root);
    write_config(\%o, $root, $port, $configure);
    %{inst($name)} = (root => $root, port => $port, bin => $bin);

    # -e (nginx >= 1.19.5): errors from reading the config go to error.log
    # too, not just to stderr.
    my @cmd = ($bin, '-p', "$root/", '-c', "$root/conf/nginx.conf",
               $ver >= 1019005 ? ('-e', "$root/logs/error.log") : ());
    my $status = run_to_file("$root/logs/nginx.stderr", 60, @cmd);
    die "ChatTest: nginx failed to start (" . describe_status($status)
        . "): @cmd\n"
        . tail(slurp("$root/logs/nginx.stderr"), 20)
        . "error.log:\n" . tail(slurp("$root/logs/error.log"), 20)
        if $status != 0;

    my $end = time + ($o{timeout} // 10);
    while (1) {
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                         PeerPort => $port, Proto => 'tcp',
                                         Timeout => 1);
        last if $sock && -s "$root/logs/nginx.pid";
        die "ChatTest: nginx did not answer on port $port\n"
            . tail(slurp("$root/logs/error.log"), 20) if time > $end;
        sleep 0.05;
    }
    return $port;
}

sub running {
    my $pid = shift;
    return 0 unless $pid && kill 0, $pid;
    # nginx is not our child: an exited one may linger as a zombie.
    return slurp("/proc/$pid/stat") !~ /^\d+ \(.*\) Z/s;
}

# Graceful stop (QUIT), then TERM and KILL if it hangs.  error_log()
# still works afterwards.
sub stop_nginx {
    my $S = inst(shift);
    return unless $S->{root};
    my $pid = slurp("$S->{root}/logs/nginx.pid");
    delete $S->{port};
    return unless $pid =~ /^\s*(\d+)\s*$/;
    $pid = $1;
    return unless slurp("/proc/$pid/cmdline") =~ /nginx/;
    for my $sig (qw(QUIT TERM KILL)) {
        last unless running($pid);
        kill $sig, $pid;
        my $end = time + ($sig eq 'QUIT' ? 10 : 2);
        sleep 0.05 while running($pid) && time < $end;
    }
}

# The whole error.log of the current (or last) nginx.
sub error_log {
    my $S = inst(shift);
    die "ChatTest: no nginx started\n" unless $S->{root};
    return slurp("$S->{root}/logs/error.log");
}

sub http_get {
    my ($path, $headers, %o) = @_;
    return http_request('GET', $path, $headers, undef, %o);
}

# ($status, \%headers, $body); header names are lower-cased, repeated
# ones joined with ", ".  Options: timeout (s, default 5), port.  On a
# connection error or timeout the status is 0 and the body says why.
sub http_request {
    my ($method, $path, $headers, $body, %o) = @_;
    my $timeout = $o{timeout} // 5;
    my $port = $o{port} // inst('')->{port}
        // die "ChatTest: no nginx started and no port given\n";
    my %h = (Host => 'localhost', Connection => 'close', %{ $headers || {} });
    $h{'Content-Length'} = length $body
        if defined $body && !grep { lc eq 'content-length' } keys %h;
    my $req = "$method $path HTTP/1.1\r\n"
            . join('', map { "$_: $h{$_}\r\n" } sort keys %h) . "\r\n"
            . ($body // '');

    my $end = time + $timeout;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Proto => 'tcp',
                                     Timeout => $timeout)
        or return (0, {}, "ChatTest: connect to port $port failed: $!");
    local $SIG{PIPE} = 'IGNORE';
    my $sel = IO::Select->new($sock);
    my $off = 0;
    while ($off < length $req) {
        return (0, {}, "ChatTest: timeout writing the request")
            unless $sel->can_write($end - time);
        my $n = syswrite $sock, $req, length($req) - $off, $off;
        last unless defined $n;    # the server may answer early and close
        $off += $n;
    }
    my $resp = '';
    while (1) {
        my $left = $end - time;
        return (0, {}, "ChatTest: timeout after ${timeout}s, got: $resp")
            if $left <= 0 || !$sel->can_read($left);
        my $n = sysread $sock, my $buf, 65536;
        last if !$n;
        $resp .= $buf;
    }
    close $sock;
    return parse_response($resp, $method eq 'HEAD');
}

sub parse_response {
    my ($resp, $head) = @_;
    my ($top, $rest) = split /\r?\n\r?\n/, $resp, 2;
    return (0, {}, "ChatTest: bad response: $resp")
        unless defined $top && $top =~ s{^HTTP/\d\.\d (\d{3})[^\n]*\n?}{};
    my $status = $1;
    my %h;
    for my $line (split /\r?\n/, $top) {
        my ($k, $v) = $line =~ /^([^:]+):\s*(.*?)\s*$/ or next;
        $k = lc $k;
        $h{$k} = defined $h{$k} ? "$h{$k}, $v" : $v;
    }
    $rest //= '';
    my $body = $rest;
    if ($head || $status =~ /^(?:1|204|304)/) {
        $body = '';
    } elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        $body = '';
        while ($rest =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $len = hex $1;
            last if $len == 0;
            $body .= substr $rest, 0, $len, '';
            $rest =~ s/^\r\n//;
        }
    } elsif (defined $h{'content-length'}) {
        $body = substr $rest, 0, $h{'content-length'};
    }
    return ($status, \%h, $body);
}

# Poll $code until it returns true: for states that settle
# asynchronously (a backend noticed down or back up).
sub wait_until {
    my ($code, %o) = @_;
    my $end = time + ($o{timeout} // 10);
    while (1) {
        return 1 if $code->();
        return 0 if time > $end;
        sleep($o{interval} // 0.1);
    }
}

# Runs "scripts/stack svc SERVICE ACTION"; dies with its output when it
# fails, returns the output otherwise.
sub stack_svc {
    my ($service, $action) = @_;
    return stack('svc', $service, $action);
}

# Runs "scripts/stack ARGS..." (e.g. up --nodes 3) the same way
sub stack {
    my (@args) = @_;
    my $file = "/tmp/chattest-stack-$$.out";
    my $status = run_to_file($file, $StackTimeout, $StackScript, @args);
    my $out = slurp($file);
    unlink $file;
    die "ChatTest: scripts/stack @args failed ("
        . describe_status($status) . "):\n$out" if $status != 0;
    return $out;
}

# "scripts/stack up --nodes N", and back to one node however the suite
# ends (the other suites expect one): its output
my $NodesUp;
sub stack_nodes {
    my ($n) = @_;
    $NodesUp = 1;
    return stack('up', '--nodes', $n);
}

END {
    local $?;
    if ($NodesUp) {
        eval { stack('up'); 1 }
            or print STDERR "# ChatTest: could not go back to one node: $@";
    }
    my $ok = eval { Test::Builder->new->is_passing } // 1;
    for my $name (sort keys %Inst) {
        stop_nginx($name);
        my $root = $Inst{$name}{root};
        next unless $root && -d $root;
        if ($ok && !$ENV{TEST_NGINX_NO_CLEAN}) {
            remove_tree($root);
        } else {
            print STDERR "# ChatTest: nginx files kept in $root\n";
        }
    }
}

# A redis.conf in $dir (mode 600) that asks for the stack's password, so
# that a second Redis started by a test takes chat_redis_password_file's
# password too (one file for all servers); its path.  The password stays
# off redis-server's command line.
sub redis_auth_conf {
    my $dir = shift;
    my $file = $ENV{TEST_NGINX_REDIS_PASSWORD_FILE}
        // die "ChatTest: TEST_NGINX_REDIS_PASSWORD_FILE is not set\n";
    open my $in, '<', $file or die "ChatTest: $file: $!\n";
    chomp(my $pw = <$in> // '');
    close $in;
    my $old = umask 077;
    open my $conf, '>', "$dir/redis.conf"
        or die "ChatTest: $dir/redis.conf: $!\n";
    print $conf "requirepass $pw\n";
    close $conf;
    umask $old;
    return "$dir/redis.conf";
}

1;
