package ChatTestFallback;

# Makes "use Test::Nginx::Socket" find ngx_chat's compatible runner
# (t/lib/compat) when, and only when, the real Test::Nginx is not
# installed: the compat directory is APPENDED to @INC, so any
# Test::Nginx on PERL5LIB or in the system perl directories wins.
#
# Loaded into every test perl by ./.proverc (prove --exec); by hand:
#     perl -It/lib -MChatTestFallback t/000-runner.t

use strict;
use warnings;
use File::Basename ();
use File::Spec ();

my $compat = File::Spec->rel2abs(
    File::Spec->catdir(File::Basename::dirname(__FILE__), 'compat'));

push @INC, $compat unless grep { !ref && $_ eq $compat } @INC;

1;
