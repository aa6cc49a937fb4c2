# The Debian packages (make deb) installed into this machine's nginx:
# `apt-get install ./build/deb/*.deb`, then nginx -t with the module
# enabled by its modules-enabled link, systemd-analyze verify on the
# worker unit, the chat flow through the stock /usr/sbin/nginx loading the
# installed module (a private config that includes
# /etc/nginx/modules-enabled/*.conf), and the installed chat-worker
# persisting the message, run as the package's system user with its
# conffile.  Both packages are purged at the end, also when a check fails:
# the machine is as before.
#
# It installs packages, so it runs only when asked (CHAT_DEB_TEST=1, as
# root, on the test stack): scripts/run-tests runs it in a stage of its
# own after the t/ passes, when nothing else runs against this machine's
# nginx.  Build the packages first (make deb).

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use POSIX ();
use Time::HiRes qw(sleep time);
use ChatTest;
use ChatJWT;
use ChatWS;
use ChatClient qw(next_of);
use ChatPersist;

plan skip_all => 'installs packages: CHAT_DEB_TEST=1 (scripts/run-tests '
                 . 'sets it in its deb stage)'
    unless $ENV{CHAT_DEB_TEST};
plan skip_all => 'needs root (apt-get install)' unless $> == 0;
plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

my @PKGS = qw(libnginx-mod-http-chat chat-workers);
my $Root = $ChatTest::Root;
my @debs = map { (glob "$Root/build/deb/${_}_*.deb")[0] // () } @PKGS;
BAIL_OUT("build/deb/*.deb missing: make deb") unless @debs == 2;

sub installed {
    my $st = `dpkg-query -W -f='\${db:Status-Abbrev}' $_[0] 2>/dev/null`;
    return $st =~ /^i/;
}

# a command's exit status and its output (stdout and stderr)
sub run {
    my $out = `@_ 2>&1`;
    return ($? >> 8, $out);
}

for my $p (@PKGS) {
    BAIL_OUT("$p is installed already: not this test's to purge")
        if installed($p);
}

# The test stack's nginx configs must not load what this installs: its
# module is build/'s (a second copy would fail to load)
my $var = ChatPersist::stack_env('CHAT_VAR');
my ($grc) = run('grep', '-rqs', 'modules-enabled', "$var/nginx*/",
                "$var/nginx*.conf");
isnt($grc, 0, "the test stack's nginx configs include no modules-enabled");

# Debian starts (or reloads) nginx from package scripts; keep the
# machine's nginx service as it is, as scripts/setup-deps does
my $policy = '/usr/sbin/policy-rc.d';
my $our_policy;
unless (-e $policy) {
    open my $p, '>', $policy or die "$policy: $!";
    print $p "#!/bin/sh\n# temporary, from ngx_chat t/064-deb.t\nexit 101\n";
    close $p;
    chmod 0755, $policy;
    $our_policy = 1;
}

my $persist_stopped;
my $worker_pid;
# the system user postinst makes stays on purge (Debian's practice); the
# test removes it when it was not there before, so that each run starts
# from the same machine
my $had_user = defined getpwnam('chat-worker');

sub purge {
    my ($rc, $out) = run('DEBIAN_FRONTEND=noninteractive', 'apt-get',
                         'purge', '-y', '-qq', @PKGS);
    run('deluser', '--system', '--quiet', 'chat-worker') unless $had_user;
    return ($rc, $out);
}

END {
    local $?;
    kill 'KILL', $worker_pid if $worker_pid;
    ChatTest::stop_nginx();
    if (grep { installed($_) } @PKGS) {
        my ($rc, $out) = purge();
        print STDERR "# purge failed: $out" if $rc;
    }
    unlink $policy if $our_policy;
    ChatTest::stack_svc('persist', 'start') if $persist_stopped;
}

# --- install --------------------------------------------------------------------

my $t0 = time;
my ($rc, $out) = run('DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install',
                     '-y', '-qq', '--no-install-recommends',
                     map { "'$_'" } @debs);
is($rc, 0, 'apt-get install ./build/deb/*.deb') or diag $out;
ok(installed($_), "$_ is installed") for @PKGS;
diag(sprintf 'installed in %.1f s', time - $t0);

ok(-f '/usr/lib/nginx/modules/ngx_http_chat_module.so',
   'the module is in /usr/lib/nginx/modules');
is(readlink('/etc/nginx/modules-enabled/50-mod-http-chat.conf'),
   '/usr/share/nginx/modules-available/mod-http-chat.conf',
   'postinst enabled it: modules-enabled/50-mod-http-chat.conf');

($rc, $out) = run('/usr/sbin/nginx', '-t');
is($rc, 0, 'nginx -t: the stock nginx.conf with the module enabled')
    or diag $out;
($rc, $out) = run('/usr/sbin/nginx', '-T');
like($out, qr{^load_module modules/ngx_http_chat_module\.so;}m,
     '... and it is the package\'s snippet that loads it');

ok(scalar getpwnam('chat-worker'), 'postinst made the system user');
my @st = stat '/etc/chat-workers/chat-workers.env';
is(sprintf('%o', $st[2] & 07777), '640', 'chat-workers.env is mode 640');
is(scalar getgrgid($st[5]), 'chat-worker', '... group chat-worker');

# --- the unit ---------------------------------------------------------------------

# systemd-analyze comes with systemd: installed here when missing (the
# unit is verified, not run: no systemd runs on the CI machine)
run('DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-qq',
    '--no-install-recommends', 'systemd')
    unless -x '/usr/bin/systemd-analyze';
SKIP: {
    skip 'no systemd-analyze (apt-get install systemd failed)', 2
        unless -x '/usr/bin/systemd-analyze';
    # the template and an instance of it: the directives, the user, the
    # ExecStart binary
    ($rc, $out) = run('systemd-analyze', 'verify',
                      '/usr/lib/systemd/system/chat-worker@.service',
                      'chat-worker@persist.service');
    is($rc, 0, 'systemd-analyze verify chat-worker@.service') or diag $out;
    unlike($out, qr/chat-worker/, '... without a word about it')
        or diag $out;
}

# --- the chat flow through the installed module ----------------------------------

$ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();
$ENV{TEST_NGINX_LOAD_MODULES} = '';
$ENV{TEST_NGINX_BINARY} = '/usr/sbin/nginx';

ChatTest::start_nginx(
    workers     => 2,
    # the snippets name modules/x.so, relative to the prefix: Debian's
    # prefix /usr/share/nginx has that link too
    links       => { modules => '/usr/lib/nginx/modules' },
    main_config => 'include /etc/nginx/modules-enabled/*.conf;',
    http_config => <<'CONF',
    chat_node_name deb-node;
    chat_redis $TEST_NGINX_REDIS;
    chat_redis_password_file $TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "$TEST_NGINX_PG_DSN";
    chat_kafka_brokers $TEST_NGINX_KAFKA_BROKERS;
    chat_jwt_secret_file $TEST_NGINX_JWT_SECRET_FILE;
CONF
    config      => <<'CONF',
    location = /healthz {
        chat_healthz;
    }
    location /v1/ {
        chat_api;
    }
    location = /v1/ws {
        chat_websocket;
    }
CONF
);

my ($hst, undef, $hbody) = ChatTest::http_get('/healthz');
is($hst, 200, '/healthz through the installed module') or diag $hbody;

# the stack's persist worker stops, so that the row is the installed one's
ChatTest::stack_svc('persist', 'stop');
$persist_stopped = 1;

# register and log in: the tokens are the module's own
my $run = sprintf '%x%x', $$, time * 1000;
my (%uid, %token);
for my $name (qw(ann ben)) {
    my %cred = (username => "deb${name}_$run", password => 'long-enough');
    my ($rst, undef, $rbody) = ChatTest::http_request(
        POST => '/v1/users', {}, encode_json(\%cred));
    is($rst, 201, "register $name") or diag $rbody;
    my ($lst, undef, $lbody) = ChatTest::http_request(
        POST => '/v1/sessions', {}, encode_json(\%cred));
    is($lst, 200, "$name logs in") or diag $lbody;
    my $login = eval { decode_json($lbody) } // {};
    ($uid{$name}, $token{$name}) = @$login{qw(user_id token)};
}

my %ws;
for my $name (qw(ann ben)) {
    $ws{$name} = ChatWS->new(port => ChatTest::port());
    my ($wst) = $ws{$name}->handshake('/v1/ws', Authorization => 'Bearer '
                                      . ($token{$name} // ''));
    is($wst, 101, "$name connects with her token");
}
my ($ann, $ben) = @ws{qw(ann ben)};
$ann->send_text(encode_json({ type => 'send', to => $uid{ben},
                              client_id => "deb-$run", body => 'from a deb' }));
my $ack = next_of($ann, 'ack', 20);
is($ack->{client_id}, "deb-$run", 'ann sends: ack') or diag explain $ack;
my $msg = next_of($ben, 'message', 20);
is($msg->{body}, 'from a deb', 'ben receives it') or diag explain $msg;
is($msg->{id}, $ack->{id}, '... with the acked id');

my $id = $ack->{id} // 'none';
my $q = "SELECT count(*) FROM messages WHERE id = :'id'";
is(ChatPersist::sql($q, id => $id), '0',
   'not in PostgreSQL while no persist worker runs');

# --- the installed chat-worker --------------------------------------------------

my $log = "$var/log/worker-deb.log";
$worker_pid = fork // die "fork: $!";
if (!$worker_pid) {
    open STDOUT, '>>', $log or POSIX::_exit(126);
    open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
    $ENV{PG_DSN} = $ENV{TEST_NGINX_PG_DSN}
        // ChatPersist::stack_env('PG_DSN');
    $ENV{KAFKA_BROKERS} = ChatPersist::brokers();
    # setpriv execs the worker (runuser would stay its parent, and answer
    # SIGTERM itself)
    exec 'setpriv', '--reuid=chat-worker', '--regid=chat-worker',
        '--init-groups', '--', '/usr/bin/chat-worker',
        'persist', '--config', '/etc/chat-workers/persist.conf'
        or POSIX::_exit(127);
}
ok(ChatTest::wait_until(sub { ChatPersist::sql($q, id => $id) eq '1' },
                        timeout => 60),
   'the installed chat-worker persist, as user chat-worker, wrote the row')
    or diag ChatTest::tail(ChatTest::slurp($log), 20);
kill 'TERM', $worker_pid;
my ($end, $status) = (time + 90, -1);
until (waitpid($worker_pid, POSIX::WNOHANG()) == $worker_pid
       and ($status = $?, 1)) {
    last if time > $end;
    sleep 0.1;
}
is($status, 0, '... and drained and exited 0 on SIGTERM')
    or diag ChatTest::tail(ChatTest::slurp($log), 20);
$worker_pid = undef;

# --- the modules-enabled link across remove, reinstall, an admin's choice -------

ChatTest::stop_nginx();
my $link = '/etc/nginx/modules-enabled/50-mod-http-chat.conf';
($rc, $out) = run('dpkg', '-r', 'libnginx-mod-http-chat');
is($rc, 0, 'dpkg -r the module package') or diag $out;
ok(!-l $link && -l "$link.removed",
   '... its link becomes a .removed note (as dh_nginx does)');
($rc, $out) = run('dpkg', '-i', "'$debs[0]'");
is($rc, 0, 'installed again') or diag $out;
ok(-l $link && !-l "$link.removed", '... and enabled again');
unlink $link;
($rc, $out) = run('dpkg', '-i', "'$debs[0]'");
is($rc, 0, 'the administrator removed the link, then a reinstall')
    or diag $out;
ok(!-l $link, '... leaves it disabled');

# --- purge: the machine as before -------------------------------------------------

($rc, $out) = purge();
is($rc, 0, 'apt-get purge both') or diag $out;
ok(!installed($_), "$_ is gone") for @PKGS;
ok(!-e '/usr/lib/nginx/modules/ngx_http_chat_module.so'
   && !-l '/etc/nginx/modules-enabled/50-mod-http-chat.conf'
   && !-l '/etc/nginx/modules-enabled/50-mod-http-chat.conf.removed',
   '... the module and its modules-enabled link with them');
ok(!-e '/etc/chat-workers', '... and /etc/chat-workers');
($rc, $out) = run('/usr/sbin/nginx', '-t');
is($rc, 0, 'nginx -t passes without the module again') or diag $out;

done_testing();
