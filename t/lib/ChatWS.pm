package ChatWS;

# A deliberately small WebSocket client for tests, on a raw socket, so
# that tests can send what a well-behaved client never would: unmasked
# frames, reserved bits, bad opcodes, oversized control frames, invalid
# UTF-8.  Frames it reads back are checked just enough to report them.

use strict;
use warnings;

use IO::Socket::INET ();
use Socket ();
use IO::Select ();
use Time::HiRes qw(time);

sub new {
    my ($class, %o) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $o{port}, Proto => 'tcp',
                                     Timeout => 5)
        or die "ChatWS: connect: $!";
    binmode $sock;
    # a write that the server does not take within 10 s fails instead of
    # hanging the test
    setsockopt($sock, Socket::SOL_SOCKET(), Socket::SO_SNDTIMEO(),
               pack('l!l!', 10, 0));
    # a client that means not to read keeps its window small: a receive
    # buffer left to grow to tens of MB on loopback ends in both sides
    # dropping and retransmitting with backoff, not in flow control
    setsockopt($sock, Socket::SOL_SOCKET(), Socket::SO_RCVBUF(), $o{rcvbuf})
        if $o{rcvbuf};
    # tls => CA file: TLS on the socket, the server's certificate checked
    # against it for "localhost" (an edge's wss://)
    if ($o{tls}) {
        require IO::Socket::SSL;
        IO::Socket::SSL->start_SSL($sock, SSL_ca_file => $o{tls},
                                   SSL_hostname => 'localhost',
                                   SSL_verifycn_name => 'localhost',
                                   SSL_verifycn_scheme => 'http',
                                   SSL_verify_mode => 1,
                                   Timeout => 5)
            or die "ChatWS: TLS: " . IO::Socket::SSL::errstr() . "\n";
    }
    my $self = bless { sock => $sock, buf => '' }, $class;
    return $self;
}

# handshake(path, headers) -> (status, \%headers, body)
sub handshake {
    my ($self, $path, %h) = @_;
    my %hd = (Host => 'localhost', Upgrade => 'websocket',
              Connection => 'Upgrade', 'Sec-WebSocket-Version' => 13,
              'Sec-WebSocket-Key' => 'dGhlIHNhbXBsZSBub25jZQ==', %h);
    delete $hd{$_} for grep { !defined $hd{$_} } keys %hd;
    my $req = "GET $path HTTP/1.1\r\n"
            . join('', map { "$_: $hd{$_}\r\n" } sort keys %hd) . "\r\n";
    syswrite $self->{sock}, $req;
    my $head = $self->_read_until("\r\n\r\n", 5) // return (0, {}, '');
    my ($status) = $head =~ m{^HTTP/1\.1 (\d+)};
    my %rh;
    for (split /\r\n/, $head) {
        $rh{lc $1} = $2 if /^([^:]+):\s*(.*)$/;
    }
    my $body = '';
    if ($status != 101 && $rh{'content-length'}) {
        $body = $self->_read_n($rh{'content-length'}, 5) // '';
    }
    return ($status, \%rh, $body);
}

sub _fill {
    my ($self, $deadline) = @_;
    my $sel = IO::Select->new($self->{sock});
    my $left = $deadline - time;
    # TLS: what is decrypted already is not on the socket for select
    my $pending = $self->{sock}->can('pending') && $self->{sock}->pending;
    return 0 if !$pending && ($left <= 0 || !$sel->can_read($left));
    my $n = sysread $self->{sock}, my $chunk, 65536;
    return 0 unless $n;
    $self->{buf} .= $chunk;
    return 1;
}

sub _read_until {
    my ($self, $mark, $timeout) = @_;
    my $deadline = time + $timeout;
    while (1) {
        my $i = index $self->{buf}, $mark;
        if ($i >= 0) {
            return substr $self->{buf}, 0, $i + length($mark), '';
        }
        $self->_fill($deadline) or return undef;
    }
}

sub _read_n {
    my ($self, $n, $timeout) = @_;
    my $deadline = time + $timeout;
    while (length $self->{buf} < $n) {
        $self->_fill($deadline) or return undef;
    }
    return substr $self->{buf}, 0, $n, '';
}

# send_frame(opcode, payload, fin => 1, mask => 1, rsv => 0, len => override)
sub send_frame {
    my ($self, $op, $payload, %o) = @_;
    $payload //= '';
    my $fin = $o{fin} // 1;
    my $mask = $o{mask} // 1;
    my $b0 = ($fin ? 0x80 : 0) | (($o{rsv} // 0) << 4) | $op;
    my $len = length $payload;
    my $hdr = chr($b0);
    my $m = $mask ? 0x80 : 0;
    if ($len < 126) {
        $hdr .= chr($m | $len);
    } elsif ($len < 65536) {
        $hdr .= chr($m | 126) . pack('n', $len);
    } else {
        $hdr .= chr($m | 127) . pack('Q>', $len);
    }
    if ($mask) {
        my $key = pack 'N', int(rand(2**32));
        $hdr .= $key;
        my $k = $key x (int($len / 4) + 1);
        $payload = $payload ^ substr($k, 0, $len);
    }
    local $SIG{PIPE} = 'IGNORE';
    my $data = $hdr . $payload;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite $self->{sock}, $data, length($data) - $off, $off;
        return 0 unless defined $n;
        $off += $n;
    }
    return 1;
}

sub send_text { $_[0]->send_frame(1, $_[1]) }

# frame_bytes(opcode, payload): a masked, final frame as a client sends it,
# for tests that pipeline many frames in one write (send_raw)
sub frame_bytes {
    my ($op, $payload) = @_;
    my $len = length $payload;
    my $hdr = chr(0x80 | $op);
    if ($len < 126) {
        $hdr .= chr(0x80 | $len);
    } elsif ($len < 65536) {
        $hdr .= chr(0x80 | 126) . pack('n', $len);
    } else {
        $hdr .= chr(0x80 | 127) . pack('Q>', $len);
    }
    my $key = pack 'N', int(rand(2**32));
    my $k = $key x (int($len / 4) + 1);
    return $hdr . $key . ($payload ^ substr($k, 0, $len));
}

# send_all(bytes): all of them, however many writes that takes
sub send_all {
    my ($self, $data) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite $self->{sock}, $data, length($data) - $off, $off;
        return 0 unless defined $n;
        $off += $n;
    }
    return 1;
}

sub send_raw {
    my ($self, $bytes) = @_;
    local $SIG{PIPE} = 'IGNORE';
    return syswrite($self->{sock}, $bytes) // 0;
}

# read_frame(timeout) -> (opcode, payload), or () when nothing came
sub read_frame {
    my ($self, $timeout) = @_;
    $timeout //= 5;
    my $h = $self->_read_n(2, $timeout) // return ();
    my ($b0, $b1) = map { ord } split //, $h;
    my $len = $b1 & 0x7f;
    die "ChatWS: the server masked a frame\n" if $b1 & 0x80;
    if ($len == 126) {
        $len = unpack 'n', $self->_read_n(2, $timeout) // return ();
    } elsif ($len == 127) {
        $len = unpack 'Q>', $self->_read_n(8, $timeout) // return ();
    }
    my $payload = $len ? ($self->_read_n($len, $timeout) // return ()) : '';
    return ($b0 & 0x0f, $payload);
}

# the next text frame, skipping pings and pongs
sub read_text {
    my ($self, $timeout) = @_;
    while (1) {
        my ($op, $payload) = $self->read_frame($timeout);
        return undef unless defined $op;
        return $payload if $op == 1;
        return undef if $op == 8;
    }
}

# the close code of the server's close frame (0 if the payload was empty)
sub read_close {
    my ($self, $timeout) = @_;
    while (1) {
        my ($op, $payload) = $self->read_frame($timeout);
        return undef unless defined $op;
        next unless $op == 8;
        return length $payload >= 2 ? unpack('n', $payload) : 0;
    }
}

# 1 when the server closed the TCP connection
sub eof_within {
    my ($self, $timeout) = @_;
    my $deadline = time + $timeout;
    while (1) {
        my $sel = IO::Select->new($self->{sock});
        my $left = $deadline - time;
        return 0 if $left <= 0 || !$sel->can_read($left);
        my $n = sysread $self->{sock}, my $chunk, 65536;
        return 1 if !$n;
    }
}

sub close { close $_[0]{sock} }

1;
