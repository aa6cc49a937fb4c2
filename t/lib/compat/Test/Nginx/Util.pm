package Test::Nginx::Util;

# ngx_chat's small stand-in for openresty's Test::Nginx::Util.
#
# Loaded only when the real Test::Nginx is not installed (see
# t/lib/ChatTestFallback.pm).  It implements the subset of the block
# format our suites use, with the real runner's semantics and -- above
# all -- its test counting, so a "plan tests => repeat_each() * ..." line
# holds under both.  Anything the real runner supports but this one does
# not makes the run bail out loudly instead of passing silently.

use strict;
use warnings;

use Carp ();
use Exporter 'import';
use File::Path qw(make_path remove_tree);
use File::Spec ();
use IO::Select ();
use IO::Socket::INET ();
use List::Util qw(shuffle);
use POSIX ();
use Scalar::Util qw(looks_like_number);
use Time::HiRes qw(sleep time);
use HTTP::Response ();
use Test::More ();
use Test::LongString ();

our $VERSION = '0.29_compat';

# --- settings (same names and defaults as the real module) ------------------

our $RepeatEach           = 1;
our $NoShuffle            = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $Workers              = 1;
our $WorkerConnections    = 64;
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $DaemonEnabled        = 'on';
our $LogLevel             = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $Timeout              = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $TestNginxSleep       = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $ServerAddr           = '127.0.0.1';
our $ServerName           = 'localhost';
our $ServerPort           = $ENV{TEST_NGINX_SERVER_PORT}
                            || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient  = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
our $NoRootLocation       = 0;
our $NoLongString;
our $CheckAccumErrLog     = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $ConfigPreamble       = '';
our $LoadModules          = $ENV{TEST_NGINX_LOAD_MODULES};
our $WorkerUser           = $ENV{TEST_NGINX_WORKER_USER};
our $NginxBinary          = $ENV{TEST_NGINX_BINARY} || 'nginx';

our (@EnvToNginx, @BlockPreprocessors, @CleanupHandlers, @ResponseBodyChecks);

our $Randomize = $ENV{TEST_NGINX_RANDOMIZE};
our $ServRoot;
if ($Randomize) {
    # A free port and t/servroot_PORT, so parallel runs (prove -j, or two
    # people in one checkout) do not collide; removed again at exit.
    $ServerPort = $ServerPortForClient = free_port();
    $ServRoot = File::Spec->rel2abs("t/servroot_$ServerPort");
} else {
    $ServRoot = $ENV{TEST_NGINX_SERVROOT}
                || File::Spec->rel2abs('t/servroot');
}
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;    # the real one exports it too

our $LogDir     = "$ServRoot/logs";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $HtmlDir    = "$ServRoot/html";
our $ConfDir    = "$ServRoot/conf";
our $ConfFile   = "$ConfDir/nginx.conf";
our $PidFile    = "$LogDir/nginx.pid";
# nginx's own stdout/stderr while starting; shown when it fails to start.
our $StderrFile = "$LogDir/nginx.stderr";

our ($NginxVersion, $NginxRawVersion, $NginxConfigureArgs);
our $ErrLogFilePos = 0;
our $PrevConfig;
our $InSubprocess;
our $NginxStarted;    # we launched an nginx whose pid file may still come

# Sections the real runner knows but this one does not implement.
my @Unsupported = qw(
    shutdown_error_log no_shutdown_error_log stap stap_out stap_out_like
    stap_out_unlike tcp_listen tcp_reply tcp_query tcp_query_len
    tcp_shutdown tcp_shutdown_delay tcp_no_close tcp_reply_delay udp_listen
    udp_reply udp_query udp_reply_delay http2 http3 curl curl_error
    curl_options curl_protocol http09 response_body_filters reload_fails
    skip_nginx2 skip_openssl skip_slave request_eval response_body_eval
    charset server_addr_for_client quic_max_idle_timeout
);

our @EXPORT = qw(
    env_to_nginx is_str no_long_string server_addr server_name timeout
    no_shuffle repeat_each worker_connections no_root_location workers
    log_level check_accum_error_log master_on master_off
    master_process_enabled config_preamble add_block_preprocessor
    add_cleanup_handler add_response_body_check html_dir server_root
    server_port server_port_for_client bail_out run_tests run_test
    error_log_data access_log_data parse_time
    $ServerPort $ServerPortForClient $ServRoot $ConfFile $PidFile
    $NginxVersion $RepeatEach $NoLongString $ServerAddr $ServerName
);

# --- module-level settings --------------------------------------------------

sub repeat_each (@)      { $RepeatEach = shift if @_; return $RepeatEach }
sub no_shuffle ()        { $NoShuffle = 1 }
sub workers (@)          { return $Workers unless @_; $Workers = shift }
sub worker_connections (@) {
    return $WorkerConnections unless @_;
    $WorkerConnections = shift;
}
sub master_on ()         { $MasterProcessEnabled = 'on' }
sub master_off ()        { $MasterProcessEnabled = 'off' }
sub master_process_enabled (@) {
    return $MasterProcessEnabled unless @_;
    $MasterProcessEnabled = shift() ? 'on' : 'off';
}
sub log_level (@)        { return $LogLevel unless @_; $LogLevel = shift }
sub no_long_string ()    { $NoLongString = 1 }
sub no_root_location ()  { $NoRootLocation = 1 }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub config_preamble ($)  { $ConfigPreamble = shift }
sub timeout (@)          { return $Timeout unless @_; $Timeout = shift }
sub server_addr (@)      { return $ServerAddr unless @_; $ServerAddr = shift }
sub server_name (@)      { return $ServerName unless @_; $ServerName = shift }
sub server_port (@)      { return $ServerPort unless @_; $ServerPort = shift }
sub server_port_for_client (@) {
    return $ServerPortForClient unless @_;
    $ServerPortForClient = shift;
}
sub html_dir ()          { $HtmlDir }
sub server_root ()       { $ServRoot }

# Later-added preprocessors run first, as in the real one (unshift).
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($)    { unshift @CleanupHandlers, shift }
sub add_response_body_check ($) { push @ResponseBodyChecks, shift }

sub env_to_nginx (@) {
    Carp::croak("env_to_nginx: no arguments specified") unless @_;
    for my $v (@_) {
        Carp::croak("env_to_nginx: bad argument value: $v\n")
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

# String comparison honouring no_long_string() and qr// expectations.
sub is_str (@) {
    my ($got, $expected, $desc) = @_;
    return Test::More::like($got, $expected, $desc)
        if ref $expected && ref $expected eq 'Regexp';
    return Test::Base::is($got, $expected, $desc) if $NoLongString;
    return Test::LongString::is_string($got, $expected, $desc);
}

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(join '', @_);
}

# "--- timeout: 50ms" / "1.5" / "2s" -> seconds
sub parse_time ($) {
    my $t = shift;
    return undef unless defined $t;
    $t =~ s/^\s+|\s+$//g;
    return $1 / 1000 if $t =~ /^(\d+(?:\.\d+)?)ms$/;
    return $1        if $t =~ /^(\d+(?:\.\d+)?)s$/;
    return $t;
}

# --- nginx binary -----------------------------------------------------------

# Like the real one: TEST_NGINX_BINARY or "nginx" from PATH; we also fall
# back to /usr/sbin/nginx since non-root PATHs often lack /usr/sbin.
sub find_nginx_binary {
    my $bin = $NginxBinary;
    if ($bin =~ m{/}) {
        return -f $bin && -x _ ? $bin : undef;
    }
    for my $dir (split(/:/, $ENV{PATH} // ''), '/usr/sbin') {
        next unless length $dir;
        return "$dir/$bin" if -f "$dir/$bin" && -x _;
    }
    return undef;
}

sub canon_version { sprintf '%d.%03d%03d', @_[0 .. 2] }

sub detect_nginx {
    my $path = find_nginx_binary()
        or bail_out("Cannot find the nginx executable \"$NginxBinary\""
                    . " (set TEST_NGINX_BINARY or PATH)");
    $NginxBinary = $path;
    my ($status, $out) = run_capture(undef, $NginxBinary, '-V');
    bail_out("Failed to run \"$NginxBinary -V\": $out") if $status != 0;
    $out =~ m{(?:nginx|openresty)[^/]*/(\d+)\.(\d+)\.(\d+)}
        or bail_out("Failed to parse the output of \"nginx -V\": $out");
    $NginxRawVersion = "$1.$2.$3";
    $NginxVersion = canon_version($1, $2, $3);
    $NginxConfigureArgs = $out =~ /configure arguments:(.*)/ ? $1 : '';
}

# nginx >= 1.19.5 takes "-e file": startup errors (bad directives...)
# then land in error.log, as they do with nginx builds whose default
# error log is prefix-relative (OpenResty, upstream defaults), which is
# what the real runner's must_die + error_log relies on.
sub have_dash_e { $NginxVersion >= canon_version(1, 19, 5) }

# Run a command with stdin from /dev/null and stdout+stderr appended to
# $file (or captured when $file is undef).  Returns ($?, output).  A file,
# not a pipe, because a daemonizing nginx keeps its stderr open.
sub run_capture {
    my ($file, @cmd) = @_;
    my $tmp;
    if (!defined $file) {
        require File::Temp;
        $tmp = File::Temp->new;
        $file = $tmp->filename;
    }
    my $pid = fork;
    bail_out("fork() failed: $!") unless defined $pid;
    if ($pid == 0) {
        $InSubprocess = 1;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $file or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        exec { $cmd[0] } @cmd or do {
            print STDERR "exec $cmd[0] failed: $!\n";
            POSIX::_exit(127);
        };
    }
    waitpid $pid, 0;
    my $status = $?;
    return ($status, slurp($file) // '');
}

sub slurp {
    my $f = shift;
    open my $in, '<', $f or return undef;
    local $/;
    my $s = <$in>;
    return $s // '';
}

sub tail_lines {
    my ($text, $n) = @_;
    my @l = split /\n/, $text // '';
    splice @l, 0, @l - $n if @l > $n;
    return join '', map { "  $_\n" } @l;
}

# --- $TEST_NGINX_* expansion ------------------------------------------------

# Same rule as the real one: every $TEST_NGINX_FOO must be set in %ENV
# (a missing one aborts the run); $TEST_NGINX_RAND_PORT_N gets a free
# port, the same one throughout the block.
sub expand_env_in_text {
    my ($text, $name, $rand_ports) = @_;
    return undef unless defined $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        if ($var =~ /^TEST_NGINX_RAND_PORT_\d+$/) {
            $rand_ports->{$var} //= free_port();
        } else {
            defined $ENV{$var}
                or bail_out("$name - No environment $var defined.\n");
            $ENV{$var};
        }
    }ge;
    return $text;
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => $ServerAddr, LocalPort => 0,
                                  Proto => 'tcp', Listen => 1)
        or bail_out("cannot find a free port: $!");
    my $port = $s->sockport;
    close $s;
    return $port;
}

# The real runner expands variables only in the config-building sections;
# point out the ones left literal elsewhere, since that is a common slip.
sub warn_unexpanded {
    my $block = shift;
    for my $sec (qw(request more_headers raw_request response_body
                    response_body_like response_headers error_log
                    no_error_log)) {
        my $v = $block->$sec;
        next unless defined $v && !ref $v && $v =~ /\$(TEST_NGINX_\w+)/;
        Test::More::diag($block->name . " - \$$1 in --- $sec is not"
            . " expanded by Test::Nginx (only config sections are);"
            . " use \"--- $sec eval\" with \$ENV{$1}");
    }
}

# --- server root and nginx.conf ---------------------------------------------

sub setup_server_root {
    if (-d $ServRoot) {
        # Remove only what we create, in case TEST_NGINX_SERVROOT points
        # somewhere that holds other data.
        remove_tree($ConfDir, $HtmlDir, $LogDir, glob("$ServRoot/*_temp"),
                    glob("$ServRoot/*_cache"));
        rmdir $ServRoot
            or bail_out("Can't remove $ServRoot (not empty?): $!");
    }
    make_path($ServRoot, $LogDir, $HtmlDir, $ConfDir);
    -d $ConfDir or bail_out("Failed to create $ServRoot: $!");
    open my $out, '>', "$HtmlDir/index.html"
        or bail_out("Can't open $HtmlDir/index.html for writing: $!");
    print $out '<html><head><title>It works!</title></head>'
             . '<body>It works!</body></html>';
    close $out;
}

# "--- user_files": ">>> name [touch -t date]" chunks, or an eval'ed
# [[name, body, date], ...]; relative names go under html/.
sub write_user_files {
    my ($block, $rand_ports) = @_;
    my $files = $block->user_files;
    return unless $files;
    my $name = $block->name;
    if (!ref $files) {
        my (@list, $cur);
        for my $line (split /^/, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+))?/) {
                push @list, $cur = [$1, '', $2];
            } elsif ($cur) {
                $cur->[1] .= $line;
            }
        }
        $files = \@list;
    }
    ref $files eq 'ARRAY'
        or bail_out("$name - --- user_files must be a string or an ARRAY");
    for my $f (@$files) {
        my ($fname, $body, $date) = @$f;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        (my $dir = $path) =~ s{/[^/]*$}{};
        make_path($dir) unless -d $dir;
        open my $out, '>', $path
            or bail_out("$name - Cannot open $path for writing: $!");
        binmode $out;
        print $out expand_env_in_text($body // '', $name, $rand_ports);
        close $out;
        if ($date) {
            local $ENV{TZ} = 'GMT';
            system('touch', '-t', $date, $path) == 0
                or bail_out("$name - touch -t $date $path failed");
        }
    }
}

# Debian's nginx has absolute /var/lib/nginx temp paths compiled in; keep
# the temp files inside servroot like a default build does.
sub temp_path_config {
    my $conf = "    client_body_temp_path $ServRoot/client_body_temp;\n";
    for my $m (qw(proxy fastcgi uwsgi scgi)) {
        next if $NginxConfigureArgs =~ /--without-http_${m}_module/;
        $conf .= "    ${m}_temp_path $ServRoot/${m}_temp;\n";
    }
    return $conf;
}

sub write_config_file {
    my ($block, $config, $rand_ports) = @_;
    my $name = $block->name;
    my $main_config = $block->main_config // '';
    # Same place as the real one: after main_config, before http {}.
    if ($LoadModules) {
        $main_config .= join ' ', map { "load_module $_;" }
                                  grep { length } split /\s+/, $LoadModules;
    }
    $main_config = expand_env_in_text($main_config, $name, $rand_ports);
    my $http_config = expand_env_in_text($block->http_config // '', $name,
                                         $rand_ports);
    my $post_main = expand_env_in_text($block->post_main_config // '', $name,
                                       $rand_ports);
    my $err_log = $block->error_log_file || $ErrLogFile;
    my $server_name = $block->server_name // $ServerName;
    my $log_level = $block->log_level || $LogLevel;
    my $env = join '', map { my $v = /\s/ ? "'$_'" : $_; "env $v;\n" }
                           @EnvToNginx;
    my $root_location = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_
    my $temp_paths = temp_path_config();
    my $user = defined $WorkerUser ? "user $WorkerUser;\n"
             : $> == 0             ? "user root;\n"
             :                       '';

    open my $out, '>', $ConfFile
        or bail_out("Can't open $ConfFile for writing: $!");
    # Same layout as the real runner's nginx.conf.
    print $out <<"_EOC_";
worker_processes  $Workers;
daemon $DaemonEnabled;
master_process $MasterProcessEnabled;
error_log $err_log $log_level;
pid       $PidFile;
env LD_PRELOAD;
env LD_LIBRARY_PATH;
${env}
$main_config

http {
    access_log $AccLogFile;

    default_type text/plain;
    keepalive_timeout  68;
$temp_paths
$http_config

    server {
        listen          $ServerPort;
        server_name     '$server_name';

        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root_location    }
}

$post_main

events {
    accept_mutex off;

    worker_connections  $WorkerConnections;
}
env ASAN_OPTIONS;
$user
_EOC_
    close $out;
}

# --- starting and stopping nginx --------------------------------------------

sub nginx_cmd {
    return ($NginxBinary, '-p', "$ServRoot/", '-c', $ConfFile,
            have_dash_e() ? ('-e', $ErrLogFile) : ());
}

# Returns the exit status of the (daemonizing) nginx command.
sub launch_nginx {
    unlink $StderrFile;
    my ($status, $out) = run_capture($StderrFile, nginx_cmd());
    if ($status != 0 && !have_dash_e() && length $out) {
        # Without -e, startup errors only reach stderr: file them in
        # error.log so error_log patterns still see them.
        open my $log, '>>', $ErrLogFile;
        print $log $out if $log;
    }
    return $status;
}

sub start_nginx {
    my ($name) = @_;
    my $deadline = time + 10;
    my $status;
    while (1) {
        $status = launch_nginx();
        return $NginxStarted = 1 if $status == 0;
        # An old nginx may still hold the port for a moment.
        last unless (slurp($StderrFile) // '') =~ /Address already in use/
                    && time < $deadline;
        sleep 0.3;
    }
    my $cmd = join ' ', nginx_cmd();
    Test::More::diag("$name - nginx failed to start (status $status):\n"
        . "  command: $cmd\n  nginx said:\n"
        . tail_lines(slurp($StderrFile), 20)
        . "  tail of $ErrLogFile:\n"
        . tail_lines(slurp($ErrLogFile), 20)
        . "  config: $ConfFile\n");
    bail_out("$name - Cannot start nginx using command \"$cmd\""
             . " (status code $status).");
}

# A daemonized nginx is not our child: once it exits it may linger as a
# zombie until init reaps it (slowly, in some containers); count that as
# gone.
sub is_running {
    my $pid = shift;
    return 0 unless $pid && kill(0, $pid);
    my $stat = slurp("/proc/$pid/stat");
    return !(defined $stat && $stat =~ /^\d+ \(.*\) Z/s);
}

# Only signal a pid from the pid file if it still is an nginx process.
sub read_nginx_pid {
    my $pid = slurp($PidFile);
    return undef unless defined $pid && $pid =~ /^\s*(\d+)\s*$/;
    $pid = $1;
    my $cmdline = slurp("/proc/$pid/cmdline");
    return undef if defined $cmdline && $cmdline !~ /nginx/;
    return $pid;
}

sub wait_gone {
    my ($pid, $secs) = @_;
    my $end = time + $secs;
    while (time < $end) {
        return 1 unless is_running($pid);
        sleep 0.02;
    }
    return !is_running($pid);
}

sub stop_nginx {
    # A freshly daemonized nginx writes its pid file just after the
    # starting command returns.
    my $end = time + ($NginxStarted ? 2 : 0);
    sleep 0.02 while !-s $PidFile && time < $end;
    undef $NginxStarted;
    my $pid = read_nginx_pid() or return;
    return unless is_running($pid);
    kill 'QUIT', $pid;
    return if wait_gone($pid, $Timeout);
    warn "WARNING: nginx $pid did not quit in ${Timeout}s; terminating\n";
    kill 'TERM', $pid;
    return if wait_gone($pid, 1);
    kill 'KILL', $pid;
    wait_gone($pid, 1);
}

sub cleanup {
    return if $InSubprocess;
    $_->() for @CleanupHandlers;
    stop_nginx() unless $ENV{TEST_NGINX_NO_CLEAN};
}

END {
    local $?;
    return if $InSubprocess;
    cleanup();
    remove_tree($ServRoot)
        if $Randomize && !$ENV{TEST_NGINX_NO_CLEAN}
           && $ServRoot =~ m{/t/servroot_\d+$};
}

# --- log readers ------------------------------------------------------------

# Lines added to error.log since the previous read of this block (or all
# of it with check_accum_error_log()).
sub error_log_data () {
    # Let nginx finish the log phase, which runs after it answered us.
    sleep $TestNginxSleep * 3;
    open my $in, '<', $ErrLogFile or return [];
    seek $in, $ErrLogFilePos, 0 if !$CheckAccumErrLog && $ErrLogFilePos > 0;
    my @lines = <$in>;
    $ErrLogFilePos = tell $in unless $CheckAccumErrLog;
    close $in;
    return \@lines;
}

sub access_log_data () {
    sleep $TestNginxSleep * 3;
    open my $in, '<', $AccLogFile or return [];
    my @lines = <$in>;
    return \@lines;
}

# --- the run ----------------------------------------------------------------

sub run_tests () {
    detect_nginx();
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;
    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $NoShuffle;
    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;
        $block->set_value('name', "$0 " . $block->name);
        run_test($block);
    }
    cleanup();
}

sub check_supported {
    my $block = shift;
    for my $sec (@Unsupported) {
        next unless defined $block->$sec;
        bail_out($block->name . " - section \"--- $sec\" is supported by"
            . " the real Test::Nginx but not by ngx_chat's compat runner"
            . " (t/lib/compat); install Test::Nginx or avoid it");
    }
}

# skip_nginx / skip_eval / todo: returns (count, reason, skip?, todo?)
sub skip_spec {
    my $block = shift;
    my $name = $block->name;
    if (defined(my $spec = $block->skip_nginx)) {
        $spec =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)
                  (?:\s*:\s*(.*?))?\s*$/x
            or bail_out("$name - Invalid --- skip_nginx spec: $spec");
        my ($n, $op, $reason) = ($1, $2, $6);
        my $ver = canon_version($3, $4, $5);
        my $skip = eval "$NginxVersion $op $ver";
        return ($n, $reason || "nginx version $op $3.$4.$5", $skip, 0);
    }
    if (defined(my $spec = $block->skip_eval)) {
        $spec =~ /^\s*(\d+)\s*:\s*(.*)/s
            or bail_out("$name - Invalid --- skip_eval spec: $spec");
        my ($n, $code) = ($1, $2);
        my $skip = eval $code;
        bail_out("$name - skip_eval - failed to eval \"$code\": $@") if $@;
        return ($n, 'skip_eval', $skip, 0);
    }
    if (defined(my $spec = $block->todo)) {
        $spec =~ /^\s*(\d+)\s*:\s*(.*)/s
            or bail_out("$name - Invalid --- todo spec: $spec");
        return ($1, $2, 0, 1);
    }
    return;
}

sub run_test ($) {
    my $block = shift;
    return if defined $block->SKIP;
    my $name = $block->name;
    check_supported($block);
    warn_unexpanded($block);

    my $rand_ports = {};
    # Block accessors return an empty list for absent sections: always
    # take them in scalar context.
    my $config = $block->config;
    $config = expand_env_in_text($config, $name, $rand_ports);
    my ($n_skip, $reason, $should_skip, $should_todo) = skip_spec($block);

    if (defined $block->must_die) {
        return if $should_skip && run_skipped($block, $n_skip, $reason);
        return run_must_die($block, $config // '', $rand_ports);
    }

    if (!$should_skip) {
        if (defined $config) {
            # The real one restarts nginx for every block with a config.
            stop_nginx();
            setup_server_root();
            write_user_files($block, $rand_ports);
            write_config_file($block, $config, $rand_ports);
            start_nginx($name);
            $PrevConfig = $config;
        } elsif (!defined $PrevConfig) {
            bail_out("$name - No '--- config' section specified and could"
                     . " not get previous one.");
        }
        # else: no config -- keep talking to the previous block's nginx.
    }

    if (defined(my $init = $block->init)) {
        eval $init;
        bail_out("$name - init failed: $@") if $@;
    }

    $ErrLogFilePos = 0;
    for my $i (0 .. $RepeatEach - 1) {
        write_user_files($block, $rand_ports) if $i > 0;
        if ($should_skip && defined $n_skip) {
            SKIP: {
                Test::More::skip("$name - $reason", $n_skip);
            }
        } elsif ($should_todo) {
            TODO: {
                Test::More::todo_skip("$name - $reason", $n_skip);
            }
        } else {
            run_test_helper($block, $i);
        }
    }
}

sub run_skipped {
    my ($block, $n, $reason) = @_;
    return 0 unless defined $n;
    for (1 .. $RepeatEach) {
        SKIP: { Test::More::skip($block->name . " - $reason", $n) }
    }
    return 1;
}

# "--- must_die": nginx has to refuse to start; no request is sent.
# Per repetition: one test for the death (or the exit code when the
# section has a number), then the error_log/no_error_log checks.
sub run_must_die {
    my ($block, $config, $rand_ports) = @_;
    my $name = $block->name;
    my $must_die = $block->must_die;
    stop_nginx();
    setup_server_root();
    write_user_files($block, $rand_ports);
    write_config_file($block, $config, $rand_ports);
    undef $PrevConfig;
    $ErrLogFilePos = 0;
    for my $i (0 .. $RepeatEach - 1) {
        my $status = launch_nginx();
        my $exit = $status >> 8;
        if ($status == -1 || $exit == 127) {
            Test::More::fail("$name - failed to execute the nginx command"
                             . " line: " . (slurp($StderrFile) // ''));
        } elsif ($status & 128) {
            Test::More::fail("$name - nginx core dumped");
        } elsif (looks_like_number($must_die)) {
            Test::More::is($exit, $must_die,
                           "$name - die with the expected exit code");
        } else {
            Test::More::isnt($status, 0, "$name - die as expected");
        }
        check_error_log($block, undef, $i, 0);
        if ($status == 0) {
            warn "WARNING: $name - nginx must die but it does not;"
                 . " killing it (req $i)\n";
            $NginxStarted = 1;
            stop_nginx();
        }
    }
}

# --- requests ---------------------------------------------------------------

# "--- more_headers" text -> ("Key: val\r\n"..., is_chunked)
sub parse_more_headers {
    my $in = shift;
    my ($out, $chunked) = ('', 0);
    for my $h (split /\n+/, $in) {
        next if $h =~ /^\s*#/;
        my ($k, $v) = split /:\s*/, $h, 2;
        $v //= '';
        $chunked = 1 if lc $k eq 'transfer-encoding' && $v eq 'chunked';
        $out .= "$k: $v\r\n";
    }
    return ($out, $chunked);
}

# "METHOD [URI [VERSION]]\nbody" (split in packets or not) -> the wire
# request as packets.  Host and Connection are added unless given, and
# Content-Length for a body (which is then trimmed, like the real one).
sub build_request {
    my ($name, $more, $chunked, $conn, $packets) = @_;
    my $full = join '', @$packets;
    my ($line, $body) = $full =~ /\A([^\n]*\n?)(.*)\z/s;
    $line =~ /^\s*(\S+) *(?:(\S+) *)?(?:(\S+) *)?\s*$/
        or bail_out("$name - Request line is not valid. Should be"
                    . " 'meth [url [version]]' but got \"$line\".");
    my $req_line = "$1 " . ($2 // '/') . ' ' . ($3 // 'HTTP/1.1') . "\r\n";

    my ($hdrs, $skipped) = ('', 0);
    if (!$chunked && $body ne '' && $more !~ /(?:^|\n)Content-Length:/) {
        $body =~ s/^(\s+)// and $skipped = length $1;
        $body =~ s/\s+$//;
        $hdrs = 'Content-Length: ' . length($body) . "\r\n";
    }
    $more =~ s/(?<!\r)\n/\r\n/g;
    my $head = $req_line;
    $head .= "Host: $ServerName\r\n" if $more !~ /(?:^|\n)Host:/i;
    $head .= "Connection: $conn\r\n" if $more !~ /(?:^|\n)Connection/i;
    $head .= "$more$hdrs\r\n";
    my $wire = $head . $body;
    return [$wire] if @$packets <= 1;

    # Keep the caller's packet boundaries: map each one from the original
    # text onto the rewritten request (headers go after the request line).
    my @out;
    my ($pos, $prev) = (0, 0);
    for my $p (@$packets[0 .. $#$packets - 1]) {
        $pos += length $p;
        my $at = $pos < length $line ? $pos
               : length($head) + $pos - length($line) - $skipped;
        $at = $prev if $at < $prev;
        $at = length $wire if $at > length $wire;
        push @out, substr($wire, $prev, $at - $prev);
        $prev = $at;
    }
    push @out, substr($wire, $prev);
    return \@out;
}

sub headers_for {
    my ($name, $more, $i) = @_;
    return parse_more_headers($more) unless ref $more eq 'ARRAY';
    defined $more->[$i]
        or bail_out("$name - --- more_headers lacks data for request $i");
    return parse_more_headers($more->[$i]);
}

# -> [ request, ... ], each request a list of { value, delay_before }
sub get_requests {
    my $block = shift;
    my $name = $block->name;
    if (defined(my $raw = $block->raw_request)) {
        my @bits = ref $raw eq 'ARRAY' ? @$raw : ($raw);
        return [[ map { { value => $_ } } @bits ]];
    }
    my $more = $block->more_headers || '';
    if (my $reqs = $block->pipelined_requests) {
        ref $reqs eq 'ARRAY'
            or bail_out("$name - invalid entries in --- pipelined_requests");
        my $all = '';
        for my $i (0 .. $#$reqs) {
            my $conn = $i == $#$reqs ? 'close' : 'keep-alive';
            $all .= build_request($name, headers_for($name, $more, $i),
                                  $conn, [$reqs->[$i]])->[0];
        }
        return [[{ value => $all }]];
    }
    my $req = $block->request;
    bail_out("$name - no --- request section") unless defined $req;
    if (!ref $req) {
        # Leading blank lines and "# comment" lines are allowed.
        1 while $req =~ s/^\s*#[^\n]+\s+|^\s+//s;
        return [[{ value => build_request($name, headers_for($name, $more, 0),
                                          'close', [$req])->[0] }]];
    }
    ref $req eq 'ARRAY'
        or bail_out("$name - invalid --- request: MUST be string or array"
                    . " of requests");
    my @list;
    for my $i (0 .. $#$req) {
        my $one = $req->[$i];
        my @h = headers_for($name, $more, $i);
        if (!ref $one) {
            push @list, [{ value => build_request($name, @h, 'close',
                                                  [$one])->[0] }];
        } elsif (ref $one eq 'ARRAY') {
            my @p = map { ref $_ eq 'HASH' ? $_->{value} : $_ } @$one;
            my $built = build_request($name, @h, 'close', \@p);
            push @list, [ map {
                { value => $built->[$_],
                  delay_before => ref $one->[$_] eq 'HASH'
                                  ? $one->[$_]{delay_before} : undef }
            } 0 .. $#$built ];
        } else {
            bail_out("$name - Invalid syntax. $one should be a string or"
                     . " an array of packets.");
        }
    }
    return \@list;
}

sub connect_server {
    my ($timeout) = @_;
    # nginx was just (re)started: retry refused connections for a while.
    my $end = time + ($timeout > 5 ? $timeout : 5);
    my $wait = $TestNginxSleep;
    while (1) {
        my $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr,
                                         PeerPort => $ServerPortForClient,
                                         Proto => 'tcp', Timeout => $timeout);
        return ($sock) if $sock;
        my $err = "$!";
        return (undef, $err) if time >= $end;
        sleep $wait;
        $wait *= 2 if $wait < 0.25;
    }
}

# Send one request (a list of packets) and read until the server closes
# the connection or $timeout passes without any I/O, like the real one.
sub send_request {
    my ($bits, $middle_delay, $timeout, $block) = @_;
    my $name = $block->name;
    my $head_req = (join '', map { $_->{value} } @$bits) =~ /^\s*HEAD\s+/;

    my ($sock, $err) = connect_server($timeout);
    if (!$sock) {
        Test::More->builder->no_ending(1);
        Test::More::fail("$name - Can't connect to $ServerAddr:"
                         . "$ServerPortForClient: $err (aborted)");
        return ('', $head_req);
    }
    $sock->blocking(0);
    local $SIG{PIPE} = 'IGNORE';

    my @todo = @$bits;
    my $cur = shift @todo;
    my ($buf, $off, $writing, $resp) = ($cur->{value}, 0, 1, '');
    my $sel = IO::Select->new($sock);
    while (1) {
        my ($r, $w) = IO::Select->select($sel, $writing ? $sel : undef,
                                         undef, $timeout);
        if (!$r && !$w) {
            if (!defined $block->abort) {
                Test::More->builder->no_ending(1);
                Test::More::fail("ERROR: client socket timed out - $name");
            }
            last;
        }
        if ($w && @$w) {
            if ($off < length $buf) {
                my $n = syswrite $sock, $buf, length($buf) - $off, $off;
                if (defined $n) {
                    $off += $n;
                } elsif (!$!{EAGAIN}) {
                    warn "WARNING: $name - write failed: $!\n";
                    $writing = 0;
                }
            }
            if ($writing && $off >= length $buf) {
                if (my $next = shift @todo) {
                    my $delay = $next->{delay_before} // $middle_delay;
                    sleep $delay if $delay;
                    ($buf, $off) = ($next->{value}, 0);
                } else {
                    $writing = 0;
                    my $how = $block->shutdown;
                    if (defined $how) {
                        shutdown $sock, ($how =~ /^\s*$/ ? 1 : $how);
                    }
                }
            }
        }
        if ($r && @$r) {
            my $n = sysread $sock, my $chunk, 65536;
            if (!defined $n) {
                next if $!{EAGAIN};
                warn "WARNING: $name - HTTP response read failure: $!\n";
                last;
            }
            last if $n == 0;
            $resp .= $chunk;
        }
    }
    close $sock;
    return ($resp, $head_req);
}

# --- responses --------------------------------------------------------------

# -> ($res, $raw_headers, $left): $left is what follows the first
# response (the next pipelined one).
sub parse_response {
    my ($name, $raw, $head_req) = @_;
    my $raw_headers = $raw =~ /^(.*?\r\n)\r\n/s ? $1 : '';
    my $res = HTTP::Response->parse($raw);
    my $code = $res->code;
    if (defined $code && $code !~ /^\d+$/) {
        $res->code(undef);
        undef $code;
    }
    return ($res, $raw_headers) if $code && ($code == 304 || $code == 101);

    my $te = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');
    my $content = $res->content // '';
    my $left;
    if (defined $te && $te eq 'chunked') {
        my $decoded = '';
        pos($content) = 0;
        while (1) {
            if ($content =~ /\G0[ \t]*\r\n\r\n/gc) {
                $left = substr $content, pos $content;
                last;
            }
            my $err;
            if ($content =~ /\G[ \t]*([A-Fa-f0-9]+)[ \t]*\r\n/gc) {
                my $size = hex $1;
                if (length($content) - pos($content) < $size) {
                    $err = 'invalid chunked data received (not enough'
                         . ' octets for the data section)';
                } else {
                    $decoded .= substr $content, pos($content), $size;
                    pos($content) += $size;
                    $err = 'invalid chunked data received (expected CRLF).'
                        unless $content =~ /\G\r\n/gc;
                }
            } else {
                $err = $content =~ /\G(.+)/gcs
                     ? "invalid chunked body received: $1"
                     : "no last chunk found - $content";
            }
            if ($err) {
                Test::More->builder->no_ending(1);
                Test::More::fail("$name - $err");
                return;
            }
        }
        $res->content($decoded);
    } elsif (defined $len && $len =~ /^\d+$/) {
        if (length $content < $len) {
            warn "WARNING: $name - response body truncated: $len expected,"
                 . " but got " . length($content) . "\n" unless $head_req;
        } elsif (length $content > $len) {
            $left = substr $content, $len;
            $res->content(substr $content, 0, $len);
        }
    }
    return ($res, $raw_headers, $left);
}

# A section value for request number $idx: multi-request blocks need an
# array (one entry per request).
sub get_indexed_value {
    my ($name, $value, $idx, $need_array) = @_;
    if ($need_array) {
        return $value->[$idx] if ref $value eq 'ARRAY';
        bail_out("$name - You asked for many requests, the expected results"
                 . " should be arrays as well.");
    }
    return ref $value eq 'ARRAY' ? $value->[0] : $value;
}

sub check_error_code {
    my ($block, $res, $idx, $need_array) = @_;
    my $name = $block->name;
    my $got = ($res && $res->code) || '';
    if (defined $block->error_code_like) {
        my $pat = get_indexed_value($name, $block->error_code_like, $idx,
                                    $need_array);
        Test::More::like($got, qr/$pat/sm, "$name - status code ok");
    } else {
        my $want = defined $block->error_code
                 ? get_indexed_value($name, $block->error_code, $idx,
                                     $need_array)
                 : 200;
        Test::More::is($got, $want, "$name - status code ok");
    }
}

sub check_raw_response_headers {
    my ($block, $raw_headers, $idx, $need_array) = @_;
    my $name = $block->name;
    if (defined $block->raw_response_headers_like) {
        my $pat = get_indexed_value($name, $block->raw_response_headers_like,
                                    $idx, $need_array);
        Test::More::like($raw_headers, qr/$pat/s,
                         "$name - raw resp headers like");
    }
    if (defined $block->raw_response_headers_unlike) {
        my $pat = get_indexed_value($name,
                                    $block->raw_response_headers_unlike,
                                    $idx, $need_array);
        Test::More::unlike($raw_headers, qr/$pat/s,
                           "$name - raw resp headers unlike");
    }
}

# "Name: value" lines; "! Name" means the header must be absent.
sub parse_expected_headers {
    my %h;
    for my $line (split /\n/, shift // '') {
        $line =~ s/^\s+|\s+$//g;
        next unless length $line;
        if ($line =~ s/^!\s*//) {
            $h{$line} = undef;
        } else {
            my ($k, $v) = split /\s*:\s*/, $line, 2;
            $h{$k} = $v // '';
        }
    }
    return \%h;
}

sub subst_server_port {
    my $v = shift;
    $v =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
    $v =~ s/\$ServerPort\b/$ServerPort/g;
    return $v;
}

# One test per listed header; response_headers_like only counts when
# response_headers is absent (as in the real one).
sub check_response_headers {
    my ($block, $res, $raw_headers, $idx, $need_array) = @_;
    my $name = $block->name;
    if (defined $block->response_headers) {
        my $h = parse_expected_headers(get_indexed_value(
            $name, $block->response_headers, $idx, $need_array));
        for my $k (sort keys %$h) {
            if (!defined $h->{$k}) {
                Test::More::unlike($raw_headers, qr/^\s*\Q$k\E\s*:/ms,
                    "$name - header $k not present in the raw headers");
                next;
            }
            my $got = $res ? $res->header($k) : undef;
            Test::More::is($got // '', subst_server_port($h->{$k}),
                           "$name - header $k ok");
        }
    } elsif (defined $block->response_headers_like) {
        my $h = parse_expected_headers(get_indexed_value(
            $name, $block->response_headers_like, $idx, $need_array));
        for my $k (sort keys %$h) {
            my $got = $res ? $res->header($k) : undef;
            my $pat = $h->{$k} // '';
            Test::More::like($got // '', qr/^$pat$/,
                             "$name - header $k like ok");
        }
    }
}

sub check_response_body {
    my ($block, $res, $idx, $repeat_idx, $need_array) = @_;
    my $name = $block->name;
    my $content = $res ? $res->content : undef;
    if (defined $block->response_body) {
        my $want = get_indexed_value($name, $block->response_body, $idx,
                                     $need_array);
        $want = subst_server_port($want) if defined $want && !ref $want;
        my $desc = "$name - response_body - response is expected"
                 . " (repeated req $repeat_idx, req $idx)";
        if (ref $want) {
            Test::More::like($content, $want, $desc);
        } else {
            is_str($content, $want, $desc);
        }
    } elsif (defined $block->response_body_like
             || defined $block->response_body_unlike) {
        my $like = defined $block->response_body_like;
        my $pat = get_indexed_value($name,
            $like ? $block->response_body_like : $block->response_body_unlike,
            $idx, $need_array);
        $pat = subst_server_port($pat) unless ref $pat;
        (my $summary = $content // '') =~ s/\s+/ /g;
        $summary = substr($summary, 0, 60) . '...' if length $summary > 63;
        my $type = $like ? 'like' : 'unlike';
        my $desc = "$name - response_body_$type - response is expected"
                 . " ($summary)";
        $like ? Test::More::like($content, qr/$pat/s, $desc)
              : Test::More::unlike($content, qr/$pat/s, $desc);
    }
    $_->($block, $content, $idx, $repeat_idx, 0) for @ResponseBodyChecks;
}

# --- log checks -------------------------------------------------------------

sub pattern_list {
    my $pats = shift;
    if (!ref $pats) {
        chomp $pats;
        return [ split /\n+/, $pats ];
    }
    return [$pats] if ref $pats eq 'Regexp';
    return [@$pats];
}

sub line_matches {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ $pat : index($line, $pat) >= 0;
}

sub mentions {
    my ($pats, $s) = @_;
    return 0 unless defined $pats;
    return scalar grep { !ref $_ && index($_, $s) >= 0 }
                       (ref $pats eq 'ARRAY' ? @$pats : ($pats));
}

sub show { my $s = shift; chomp $s; $s =~ s/\r/\\r/g; $s =~ s/\n/\\n/g; $s }

# Every pattern must match some line: one test per pattern.
sub expect_lines {
    my ($name, $file, $pats, $lines, $idx) = @_;
    my @left = @{ pattern_list($pats) };
    for my $line (@$lines) {
        for my $p (@left) {
            next unless defined $p && line_matches($line, $p);
            Test::More::pass("$name - pattern \"$p\" matches a line in"
                             . " $file (req $idx)");
            undef $p;
        }
    }
    for my $p (grep { defined } @left) {
        Test::More::fail("$name - pattern \"$p\" should match a line in"
                         . " $file (req $idx)");
        Test::More::diag(@$lines
            ? "the lines of $file checked (last 20):\n"
              . tail_lines(join('', @$lines), 20)
            : "no new lines in $file");
    }
}

# No pattern may match: a failure per matching line, else a pass per
# pattern.
sub reject_lines {
    my ($name, $file, $pats, $lines, $idx) = @_;
    my @pats = @{ pattern_list($pats) };
    my %found;
    for my $line (@$lines) {
        for my $p (@pats) {
            next unless defined $p && line_matches($line, $p);
            Test::More->builder->no_ending(1) if $found{$p}++;
            Test::More::fail("$name - pattern \"" . show($p) . "\" should"
                . " not match any line in $file but matches line \""
                . show($line) . "\" (req $idx)");
        }
    }
    for my $p (grep { defined && !$found{$_} } @pats) {
        Test::More::pass("$name - pattern \"" . show($p) . "\" does not"
                         . " match a line in $file (req $idx)");
    }
}

sub check_error_log {
    my ($block, $res, $idx, $need_array) = @_;
    my $name = $block->name;
    # Every check reads (and so moves past) the new lines, whether or not
    # the block has log sections.
    my $lines = error_log_data();

    if (defined(my $gpats = $block->grep_error_log)) {
        my $gpat = ref $gpats eq 'ARRAY' ? $gpats->[$idx] : $gpats;
        my $want = $block->grep_error_log_out;
        bail_out("$name - No --- grep_error_log_out defined but"
                 . " --- grep_error_log is defined") unless defined $want;
        $want = $want->[$idx] if ref $want eq 'ARRAY';
        my $got = '';
        for my $line (@$lines) {
            my $m = ref $gpat ? ($line =~ $gpat ? $& : undef)
                  : index($line, $gpat) >= 0 ? $gpat : undef;
            $got .= "$m\n" if defined $m && $m !~ /\n/;
        }
        is_str($got, $want, "$name - grep_error_log_out (req $idx)");
    }

    my $pats = $block->error_log;
    my $nopats = $block->no_error_log;
    expect_lines($name, 'error.log', $pats, $lines, $idx) if defined $pats;
    reject_lines($name, 'error.log', $nopats, $lines, $idx)
        if defined $nopats;

    # Serious messages nobody asked about still deserve a warning.
    for my $level (qw(alert crit emerg)) {
        next if mentions($pats, "[$level") || mentions($nopats, "[$level");
        warn "WARNING: $name - " . show($_) . "\n"
            for grep { /\[$level\]/ } @$lines;
    }
    for my $line (@$lines) {
        next unless $line =~ /\bAssertion .*?failed\b/;
        Test::More->builder->no_ending(1);
        Test::More::fail("$name - " . show($line));
    }
}

sub check_access_log {
    my ($block, $idx) = @_;
    my $name = $block->name;
    my $pats = $block->access_log;
    my $nopats = $block->no_access_log;
    return unless defined $pats || defined $nopats;
    my $lines = access_log_data();
    expect_lines($name, 'access.log', $pats, $lines, $idx) if defined $pats;
    reject_lines($name, 'access.log', $nopats, $lines, $idx)
        if defined $nopats;
}

# One repetition of a block: send each request, check each response; the
# logs are checked after every request, as the real runner does.
sub run_test_helper {
    my ($block, $repeat_idx) = @_;
    my $name = $block->name;
    my $reqs = get_requests($block);
    my $timeout = parse_time($block->timeout) // $Timeout;
    my $wait = parse_time($block->wait);
    my $n_piped = $block->pipelined_requests
                ? scalar @{ $block->pipelined_requests } : 0;
    my $need_array = $n_piped ? 1 : @$reqs > 1;
    my $ignore = defined $block->ignore_response;
    my $res;
    my $req_idx = 0;

    for my $ri (0 .. $#$reqs) {
        my ($raw, $head_req) = send_request($reqs->[$ri],
            parse_time($block->raw_request_middle_delay), $timeout, $block);
        my $n_resp = $n_piped || 1;
        for my $k (1 .. $n_resp) {
            my ($raw_headers, $left);
            if (!$ignore) {
                ($res, $raw_headers, $left) =
                    parse_response($name, $raw // '', $head_req);
                if ($n_piped) {
                    $raw = $left;
                } elsif ($left) {
                    warn "WARNING: $name - unexpected extra bytes after the"
                         . " response: \"" . show($left) . "\"\n";
                }
                check_error_code($block, $res, $req_idx, $need_array);
                check_raw_response_headers($block, $raw_headers // '',
                                           $req_idx, $need_array);
                check_response_headers($block, $res, $raw_headers // '',
                                       $req_idx, $need_array);
                check_response_body($block, $res, $req_idx, $repeat_idx,
                                    $need_array);
            }
            if ($k < $n_resp || $ri < $#$reqs) {
                sleep $wait if $wait;
                check_error_log($block, $res, $repeat_idx, $need_array);
                check_access_log($block, $repeat_idx) unless $ignore;
            }
            $req_idx++;
        }
    }
    sleep $wait if $wait;
    check_error_log($block, $res, $repeat_idx, $need_array);
    check_access_log($block, $repeat_idx) unless $ignore;
}

1;
