package Test::Nginx::Socket;

# ngx_chat's stand-in for openresty's Test::Nginx::Socket, used only when
# the real one is not installed (see t/lib/ChatTestFallback.pm).  Like the
# real module it is a Test::Base subclass, so a .t file gets blocks(),
# plan, filters (eval, chomp...), ONLY/SKIP/LAST and
# $block->set_value() from Test::Base, and the runner functions from
# Test::Nginx::Util.  All logic lives in Util.pm: "use Test::Base -Base"
# turns on Spiffy's source filter, which is best kept away from real code.

use Test::Base -Base;
use Test::Nginx::Util;

our $VERSION = $Test::Nginx::Util::VERSION;

our @EXPORT = qw(
    env_to_nginx is_str plan run_tests run_test repeat_each config_preamble
    worker_connections master_process_enabled no_long_string workers
    master_on master_off log_level no_shuffle no_root_location server_name
    server_addr server_root html_dir server_port server_port_for_client
    timeout check_accum_error_log add_block_preprocessor bail_out
    add_cleanup_handler add_response_body_check
);

1;
