package ChatLua;

# What the suites of the Redis Lua scripts (t/042-lua-scripts.t,
# t/048-group-scripts.t) share: a Redis server of their own with the test
# stack's AUTH, redis-cli calls with JSON replies, the scripts' SHA1s as
# src/store/lua/gen.sh -s prints them (and the module loads them), EVALSHA
# of single and multi-item scripts (ngx_chat_batch.c's ARGV: "<n>", then
# "<nkeys> <nargs> <args...>" per item), and subscribers to worker channels
# with what they heard.

use strict;
use warnings;

use Exporter 'import';
use JSON::PP qw(decode_json);
use IO::Socket::INET;
use Digest::SHA qw(sha1_hex);
use POSIX ();
use ChatTest;

our @EXPORT_OK = qw(cli r is_err ev evb ev1 evb_raw now_ms subscribe pubs);

my ($Port, $Dir, $Lua, %Sha, @Subs, %Heard);

# start(port => P, dir => D, lua => src/store/lua): a redis-server on P
sub start {
    my (%o) = @_;
    ($Port, $Dir, $Lua) = @o{qw(port dir lua)};
    mkdir $Dir;
    ChatTest::wait_until(sub {
        !IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $Port) });
    system('redis-server', ChatTest::redis_auth_conf($Dir), '--port', $Port,
           '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
           '--daemonize', 'yes', '--pidfile', "$Dir/redis.pid",
           '--dir', $Dir, '--logfile', "$Dir/redis.log") == 0
        or Test::More::BAIL_OUT('cannot start redis-server');
    return $Port;
}

END {
    kill 'TERM', $_ for @Subs;
    if ($Dir && open my $fh, '<', "$Dir/redis.pid") {
        my $pid = <$fh>;
        kill 'TERM', $pid if $pid && $pid =~ /^\d+$/;
    }
    system('rm', '-rf', $Dir) if $Dir;
}

sub port { $Port }

# the scripts' SHA1s by name (gen.sh -s: the source as loaded)
sub scripts {
    for my $name (@_) {
        my $src = `sh $Lua/gen.sh -s $Lua $name`;
        die "gen.sh -s $name failed" if $? || $src eq '';
        $Sha{$name} = sha1_hex($src);
    }
    return map { ($_ => $Sha{$_}) } @_;
}

# nginx with the chat module on this Redis: it loads every script
sub start_nginx {
    return ChatTest::start_nginx(
        workers     => 1,
        http_config => <<"CONF",
    chat_redis 127.0.0.1:$Port;
    chat_redis_password_file \$TEST_NGINX_REDIS_PASSWORD_FILE;
    chat_postgres "\$TEST_NGINX_PG_DSN";
    chat_kafka_brokers \$TEST_NGINX_KAFKA_BROKERS;
    chat_jwt_secret_file \$TEST_NGINX_JWT_SECRET_FILE;
CONF
        config      => <<'CONF',
    location = /v1/ws {
        chat_websocket;
    }
CONF
    );
}

sub cli {
    my @cmd = ('redis-cli', '-h', '127.0.0.1', '-p', $Port, @_);
    open my $fh, '-|', @cmd or die "redis-cli: $!";
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    $out =~ s/\n\z//;
    return $out;
}

# a command's reply as Perl data (redis-cli --json), errors as {err => ...}
sub r {
    my $out = cli('--json', @_);
    return { err => $out } if $out =~ /^\(error\)|^error:|^ERR|^WRONGTYPE/;
    return decode_json("[$out]")->[0];
}

# an error reply (a whole call, or one item of a batch)
sub is_err {
    my $r = shift;
    return ref $r eq 'HASH' && defined $r->{err};
}

# EVALSHA name, [keys], args...
sub ev {
    my ($name, $keys, @args) = @_;
    die "no script $name" unless $Sha{$name};
    return r('EVALSHA', $Sha{$name}, scalar @$keys, @$keys, @args);
}

sub batch_argv {
    my ($name, @items) = @_;
    die "no script $name" unless $Sha{$name};
    my (@k, @a);
    for my $it (@items) {
        my ($keys, @args) = @$it;
        push @k, @$keys;
        push @a, scalar @$keys, scalar @args, @args;
    }
    return ('EVALSHA', $Sha{$name}, scalar @k, @k, scalar @items, @a);
}

# a multi-item script: [[keys], args...] per item
sub evb { r(batch_argv(@_)) }

# one item of a multi-item script: its reply
sub ev1 {
    my $r = evb($_[0], [@_[1 .. $#_]]);
    return ref $r eq 'ARRAY' ? $r->[0] : $r;
}

# a batch's items as redis-cli prints them without --json: for replies
# that mix errors and data (--json cannot say which element failed)
sub evb_raw { cli(batch_argv(@_)) }

sub now_ms {
    my $t = r('TIME');
    return $t->[0] * 1000 + int($t->[1] / 1000);
}

# a subscriber to a worker channel, from now on
sub subscribe {
    my $ch = shift;
    my $file = "$Dir/sub-" . scalar(@Subs);
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', $file or POSIX::_exit(1);
        { exec 'redis-cli', '-h', '127.0.0.1', '-p', $Port, 'SUBSCRIBE',
               $ch };
        POSIX::_exit(1);
    }
    push @Subs, $pid;
    $Heard{$ch} = $file;
    ChatTest::wait_until(sub {
        (r('PUBSUB', 'NUMSUB', $ch)->[1] // 0) > 0 })
        or Test::More::BAIL_OUT("cannot subscribe to $ch");
}

# the PUBLISHes heard on a channel: each a list of its lines (a batch's
# "*" line gone; a single frame is a list of one)
sub pubs {
    my $ch = shift;
    open my $fh, '<', $Heard{$ch} or return [];
    my @l = <$fh>;
    chomp @l;
    my @p;
    for (my $i = 0; $i + 2 < @l; $i++) {
        next unless $l[$i] eq 'message' && $l[$i + 1] eq $ch;
        $i += 2;
        my @m = ($l[$i]);
        if ($l[$i] eq '*') {
            @m = ();
            while ($i + 1 < @l
                   && !($l[$i + 1] eq 'message'
                        && ($l[$i + 2] // '') eq $ch))
            {
                push @m, $l[++$i];
            }
        }
        push @p, \@m;
    }
    return \@p;
}

1;
