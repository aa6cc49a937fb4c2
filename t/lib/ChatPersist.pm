package ChatPersist;

# Helpers for the tests of the persistence path (t/030-persist.t,
# t/031-history.t) against the real test stack: SQL through psql with
# psql variables (never pasted into the SQL text), Kafka records made and
# read with kcat, the persist worker's committed offsets (chat-worker lag)
# and its log, and users, tokens and WebSocket sends through a ChatTest
# nginx.

use strict;
use warnings;

use File::Temp ();
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);

use ChatTest;
use ChatJWT;
use ChatWS;

our $Json = JSON::PP->new->utf8->canonical;

sub Json { $Json }

my %Env;

# VAR/stack.env of the test stack (CHAT_STACK_ENV, as scripts/run-tests
# sets it; else where CHAT_TEST_PORT_OFFSET puts it)
sub stack_env {
    my ($name) = @_;
    unless (%Env) {
        my $o = $ENV{CHAT_TEST_PORT_OFFSET} // 0;
        my $file = $ENV{CHAT_STACK_ENV}
            // "$ChatTest::Root/var-test" . ($o ? "-$o" : '') . '/stack.env';
        open my $in, '<', $file or die "ChatPersist: $file: $!\n";
        while (<$in>) {
            chomp;
            my ($k, $v) = split /=/, $_, 2;
            $Env{$k} = $v if defined $v;
        }
    }
    return $Env{$name};
}

# forget what stack_env read: `scripts/stack up` wrote the file again
sub stack_env_reload { %Env = () }

sub brokers { $ENV{TEST_NGINX_KAFKA_BROKERS} // stack_env('KAFKA_BROKERS') }

sub worker_log { stack_env('CHAT_VAR') . '/log/worker-persist.log' }

# the worker's log from byte $off on
sub log_since {
    my ($off) = @_;
    open my $in, '<', worker_log() or return '';
    seek $in, $off // 0, 0;
    local $/;
    return scalar(<$in>) // '';
}

sub log_size { -s worker_log() // 0 }

# the counts of the worker's "event=batch" lines from byte $off on, added
sub batch_sums {
    my ($off) = @_;
    my %sum;
    for (grep { /event=batch / } split /\n/, log_since($off)) {
        $sum{$1} += $2 while /\b(\w+)=(\d+)\b/g;
    }
    return \%sum;
}

sub wait_log {
    my ($off, $re, $timeout) = @_;
    return ChatTest::wait_until(sub { log_since($off) =~ $re },
                                timeout => $timeout // 30, interval => 0.2);
}


# --- PostgreSQL ---------------------------------------------------------------

my $Dsn;

# Rows of SQL, columns |-separated, one row per line; VARS become psql
# variables (:'name' in the SQL).  Dies on an error.
sub sql {
    my ($sql, %vars) = @_;
    unless (defined $Dsn) {
        $Dsn = $ENV{TEST_NGINX_PG_DSN} // stack_env('PG_DSN');
        # the password goes to psql through the environment
        $ENV{PGPASSWORD} = $2 if $Dsn =~ s/(^|\s)password=(\S*)/$1/;
        $ENV{PGCONNECT_TIMEOUT} = 10;
        $ENV{PGCLIENTENCODING} = 'UTF8';
        $ENV{PGOPTIONS} = '-c client_min_messages=warning';
    }
    my $script = File::Temp->new(SUFFIX => '.sql');
    binmode $script, ':raw';
    print $script $sql;
    $script->flush;
    my $err = File::Temp->new(SUFFIX => '.err');
    my @cmd = ('psql', '-X', '-q', '-A', '-t', '-w', '-v', 'ON_ERROR_STOP=1',
               (map { ('-v', "$_=$vars{$_}") } sort keys %vars),
               '-d', $Dsn, '-f', $script->filename);
    my $pid = open(my $out, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>', $err->filename or POSIX::_exit(126);
        exec @cmd or POSIX::_exit(127);
    }
    my $text = do { local $/; <$out> } // '';
    close $out;
    my $rc = $? >> 8;
    die "ChatPersist: psql failed ($rc): "
        . do { local $/; open my $e, '<', $err->filename; <$e> // '' }
        . "SQL: $sql\n" if $rc;
    chomp $text;
    return $text;
}


# --- Kafka ----------------------------------------------------------------------

# produce($topic, [$key, $value], ...): with kcat, acks=all; keys and
# values must not hold a tab or a newline (compact JSON does not)
sub produce {
    my ($topic, @recs) = @_;
    my $file = File::Temp->new(SUFFIX => '.kcat');
    binmode $file, ':raw';
    print $file "$_->[0]\t$_->[1]\n" for @recs;
    $file->flush;
    my $out = `kcat -b '@{[brokers()]}' -P -t '$topic' -K '\t' -l '@{[$file->filename]}' 2>&1`;
    die "ChatPersist: kcat -P $topic failed: $out\n" if $?;
    return scalar @recs;
}

# every record of a topic, as kcat prints them with FORMAT
sub consume {
    my ($topic, $format) = @_;
    my @lines = `kcat -b '@{[brokers()]}' -C -t '$topic' -o beginning -e -q -f '$format' 2>&1`;
    return @lines;
}

# (total lag, { "topic/partition" => [committed, end] }) of group
# chat-persist, from chat-worker lag (which does not join the group)
sub lag {
    local $ENV{KAFKA_BROKERS} = brokers();
    my @out = `$ChatTest::Root/build/chat-worker lag 2>&1`;
    my ($total, %parts);
    for (@out) {
        $parts{"$1/$2"} = [$3, $4]
            if /^topic=(\S+) partition=(\d+) committed=(-?\d+) end=(\d+)/;
        $total = $1 if /^total lag=(\d+)/;
    }
    return (defined $total ? $total : -1, \%parts);
}

# the lag of a consumer group that reads chat.messages only (push,
# index): chat-worker lag lists chat.receipts too; -1 when it says nothing
sub messages_lag {
    my ($group) = @_;
    local $ENV{KAFKA_BROKERS} = brokers();
    my @out = `$ChatTest::Root/build/chat-worker lag --group $group 2>&1`;
    my ($lag, $parts) = (0, 0);
    for (@out) {
        next unless /^topic=chat\.messages partition=\d+ .*lag=(\d+)/;
        $lag += $1;
        $parts++;
    }
    return $parts ? $lag : -1;
}

# waits until such a group committed everything the broker holds
sub messages_caught_up {
    my ($group, $timeout) = @_;
    return ChatTest::wait_until(sub { messages_lag($group) == 0 },
                                timeout => $timeout // 60, interval => 0.3);
}

# waits until the worker committed everything the broker holds
sub wait_caught_up {
    my ($timeout) = @_;
    return ChatTest::wait_until(sub { (lag())[0] == 0 },
                                timeout => $timeout // 60,
                                interval => 0.3);
}

# a message id as the gateway makes them (chat_id: 26 characters of
# Crockford base32, time first)
my @Alphabet = split //, '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
my $Counter = 0;
sub new_id {
    my $ms = int(time * 1000);
    my $id = '';
    # 48 bits of time in the first 10 characters (the top 3 bits of 130 are 0)
    for my $i (reverse 0 .. 9) {
        $id .= $Alphabet[($ms >> (5 * $i)) & 31];
    }
    $Counter++;
    $id .= $Alphabet[int(rand(32))] for 1 .. 10;
    $id .= $Alphabet[($Counter >> (5 * $_)) & 31] for reverse 0 .. 5;
    return $id;
}

sub conv {
    my ($a, $b) = @_;
    return $a < $b ? "d:$a:$b" : "d:$b:$a";
}

# a chat.messages record as src/ngx_chat_send.c writes it: [key, value]
sub message_record {
    my (%m) = @_;
    my $key = $m{group} ? "g:$m{group}" : conv($m{from}, $m{to});
    my $v = sprintf '{"id":"%s","seq":%d,"from":%d,%s,"body":%s,'
                    . '"client_id":"%s","ts":%d}',
                    $m{id}, $m{seq}, $m{from},
                    $m{group} ? qq("group":$m{group}) : qq("to":$m{to}),
                    JSON::PP->new->ascii->allow_nonref->encode($m{body}),
                    $m{client_id} // "k-$m{id}", $m{ts} // int(time * 1000);
    return [$key, $v];
}

# a chat.receipts record as the gateway will write it: [key, value]
sub receipt_record {
    my (%r) = @_;
    my $conv = $r{conv} // conv($r{from}, $r{by});
    return [$conv, sprintf('{"type":"receipt","id":"%s","conv":"%s",'
                           . '"seq":%d,"from":%d,"by":%d,"status":"%s",'
                           . '"ts":%d}', $r{id}, $conv, $r{seq}, $r{from},
                           $r{by}, $r{status}, $r{ts} // int(time * 1000))];
}


# --- users and the gateway ------------------------------------------------------

# a ChatTest nginx with the API and the WebSocket on the test stack's
# backends, tokens signed with ChatJWT's secret; %o: more http-level
# directives (http_extra), more locations (config_extra), and what else
# ChatTest::start_nginx takes (workers, listen, ...)
sub start_gateway {
    my ($node, %o) = @_;
    my $extra = delete $o{http_extra} // '';
    my $locations = delete $o{config_extra} // '';
    $ENV{TEST_NGINX_JWT_SECRET_FILE} = ChatJWT::secret_file();
    ChatTest::start_nginx(
        %o,
        http_config => <<"CONF",
    chat_node_name $node;
    chat_redis \$TEST_NGINX_REDIS;
    chat_redis_password_file \$TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "\$TEST_NGINX_PG_DSN";
    chat_kafka_brokers \$TEST_NGINX_KAFKA_BROKERS;
    chat_jwt_secret_file \$TEST_NGINX_JWT_SECRET_FILE;
$extra
CONF
        config      => <<'CONF' . $locations,
    location /v1/ {
        chat_api;
    }
    location = /v1/ws {
        chat_websocket;
    }
CONF
    );
}

# registers NAME_RUN through the ChatTest nginx; its user id
sub register {
    my ($name) = @_;
    my ($st, undef, $body) = ChatTest::http_request(
        POST => '/v1/users', {},
        $Json->encode({ username => $name, password => 'long-enough' }));
    die "ChatPersist: register $name: $st $body\n" unless $st == 201;
    return $Json->decode($body)->{user_id};
}

sub ws_connect {
    my ($uid) = @_;
    my $ws = ChatWS->new(port => ChatTest::port());
    my ($st) = $ws->handshake('/v1/ws', Authorization => 'Bearer '
                              . ChatJWT::token(sub => $uid));
    die "ChatPersist: WebSocket of $uid: $st\n" unless $st == 101;
    return $ws;
}

# sends one message over $ws; the decoded answer (an ack, hopefully)
sub ws_send {
    my ($ws, %m) = @_;
    $ws->send_text($Json->encode({ type => 'send', %m }));
    my $t = $ws->read_text(20);
    return eval { $Json->decode($t // '') } || { raw => $t };
}

# GET $path as user $uid: (status, decoded body or undef, raw body)
sub api_get {
    my ($uid, $path) = @_;
    my ($st, undef, $body) = ChatTest::http_get(
        $path, { Authorization => 'Bearer ' . ChatJWT::token(sub => $uid) });
    return ($st, eval { $Json->decode($body) }, $body);
}

1;
