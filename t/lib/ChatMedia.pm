package ChatMedia;

# Images as bytes for the media suites (t/038, t/051, t/052): real PNGs
# (zlib-compressed pixels, CRCs) and the header of a JPEG, made here so
# that no test carries binary files.

use strict;
use warnings;

use Exporter 'import';
use Compress::Zlib qw(compress crc32);

our @EXPORT_OK = qw(png jpeg);

sub chunk {
    my ($type, $data) = @_;
    return pack('N', length $data) . $type . $data
           . pack('N', crc32($type . $data));
}

# a w x h RGB PNG whose pixels depend on $seed
sub png {
    my ($w, $h, $seed) = @_;
    my $raw = join '', map { "\0" . join '', map { chr(($seed + $_) % 256) x 3 }
                             1 .. $w } 1 .. $h;
    return "\x89PNG\r\n\x1a\n"
           . chunk('IHDR', pack('NNCCCCC', $w, $h, 8, 2, 0, 0, 0))
           . chunk('IDAT', compress($raw)) . chunk('IEND', '');
}

# the header of a JPEG: SOI, APP0 (JFIF), SOF0 (w x h), EOI
sub jpeg {
    my ($w, $h) = @_;
    return "\xff\xd8" . "\xff\xe0" . pack('n', 16)
           . "JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
           . "\xff\xc0" . pack('nCnnC', 11, 8, $h, $w, 1) . "\x01\x11\0"
           . "\xff\xd9";
}

1;
