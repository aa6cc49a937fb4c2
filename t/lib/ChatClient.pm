package ChatClient;

# What the scenario tests of the chat protocol share: users registered
# through the API, WebSocket connections with a token, and reading JSON
# frames by type with deadlines.

use strict;
use warnings;

use Exporter 'import';
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time);
use Test::More ();
use ChatTest;
use ChatJWT;
use ChatWS;

our @EXPORT_OK = qw(register_users ws_connect frame frames next_of quiet
                    collect api_as);

# register_users(prefix, name...) -> (name => user id); one test per user
sub register_users {
    my ($prefix, @names) = @_;
    my $run = sprintf '%x%x', $$, time * 1000;
    my %uid;
    for my $name (@names) {
        my ($st, undef, $body) = ChatTest::http_request(
            POST => '/v1/users', {},
            encode_json({ username => "$prefix${name}_$run",
                          password => 'long-enough' }));
        Test::More::is($st, 201, "register $name")
            or Test::More::diag($body);
        $uid{$name} = eval { decode_json($body)->{user_id} };
    }
    return %uid;
}

# a WebSocket to /v1/ws of the nginx on port, as user id; dies unless 101
sub ws_connect {
    my ($port, $uid) = @_;
    my $ws = ChatWS->new(port => $port);
    my ($st) = $ws->handshake('/v1/ws', Authorization => 'Bearer '
                              . ChatJWT::token(sub => $uid));
    die "ChatClient: user $uid on port $port: $st\n" unless $st == 101;
    return $ws;
}

# the next text frame as JSON ({raw => text} if it is not), undef if none
sub frame {
    my ($ws, $timeout) = @_;
    my $t = $ws->read_text($timeout // 10);
    return undef unless defined $t;
    return eval { decode_json($t) } || { raw => $t };
}

# the next $n frames of a type within $timeout s (others go to
# $ws->{other})
sub frames {
    my ($ws, $type, $n, $timeout) = @_;
    my @got;
    my $end = time + ($timeout // 30);
    while (@got < $n && time < $end) {
        my $f = frame($ws, $end - time) // last;
        if (($f->{type} // '') eq $type) { push @got, $f }
        else { push @{ $ws->{other} }, $f }
    }
    return @got;
}

sub next_of {
    my ($ws, $type, $timeout) = @_;
    my ($f) = frames($ws, $type, 1, $timeout // 10);
    return $f;
}

# 1 when no frame of a type comes within $wait s
sub quiet {
    my ($ws, $type, $wait) = @_;
    my $end = time + $wait;
    while (time < $end) {
        my $f = frame($ws, $end - time) // return 1;
        return 0 if ($f->{type} // '') eq $type;
    }
    return 1;
}

# frames of several types at once: type => count, within $timeout s;
# what else comes goes to $ws->{other}
sub collect {
    my ($ws, $want, $timeout) = @_;
    my %got = map { $_ => [] } keys %$want;
    my $end = time + $timeout;
    while (time < $end && grep { @{ $got{$_} } < $want->{$_} } keys %$want) {
        my $f = frame($ws, $end - time) // last;
        my $t = $f->{type} // '';
        if ($got{$t}) { push @{ $got{$t} }, $f }
        else { push @{ $ws->{other} }, $f }
    }
    return \%got;
}

# an API call as user id $uid: (status, decoded JSON body or the raw one)
sub api_as {
    my ($uid, $method, $path, $body) = @_;
    my ($st, undef, $resp) = ChatTest::http_request(
        $method => $path,
        { Authorization => 'Bearer ' . ChatJWT::token(sub => $uid) },
        defined $body ? encode_json($body) : undef);
    return ($st, eval { decode_json($resp) } // $resp);
}

1;
