package ChatJWT;

# Tokens for tests: a throw-away HS256 secret file for nginx
# (chat_jwt_secret_file) and tokens signed with it -- or deliberately
# broken ones -- made here in Perl, independently of the module's C code.

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256);
use File::Temp ();
use MIME::Base64 qw(encode_base64url);

my $Secret = join '', map { chr(33 + int(rand(90))) } 1 .. 48;
my $File;

# The path of a file holding the secret (made once per test process).
sub secret_file {
    return $File->filename if $File;
    $File = File::Temp->new(TEMPLATE => '/tmp/chat-jwt-XXXXXX',
                            UNLINK => 1);
    chmod 0600, $File->filename;
    print $File "$Secret\n";
    close $File;
    return $File->filename;
}

sub secret { $Secret }

sub b64 { encode_base64url($_[0]) }

# token(sub => 42, exp => time + 60, header => '{...}', payload => '{...}',
#       secret => '...', sig => '...')
sub token {
    my (%o) = @_;
    my $header = $o{header} // '{"alg":"HS256","typ":"JWT"}';
    my $exp = $o{exp} // time + 3600;
    my $sub = $o{sub} // 1;
    my $payload = $o{payload}
        // sprintf('{"sub":"%s","iat":%d,"exp":%d}', $sub, time, $exp);
    my $input = b64($header) . '.' . b64($payload);
    my $sig = exists $o{sig} ? $o{sig}
            : b64(hmac_sha256($input, $o{secret} // $Secret));
    return "$input.$sig";
}

1;
