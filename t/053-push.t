# Push notifications (issue #16): chat-worker push against the test stack,
# with a local HTTP receiver (t/lib/push_receiver.py) as the webhook
# provider.
#
#   - B offline with two device tokens: A's twenty messages become one
#     notification per token (collapsed: count 20, the newest message's id
#     and preview), with the contract's fields;
#   - B online: nothing;
#   - the receiver answering 500 twice, then 200: each token delivered
#     exactly once (the 500s retried);
#   - 410 for a token: the token is gone from devices, nothing retried;
#   - the receiver down for 30 s: the worker stays up, retries, says so,
#     stops (its drain bounded) without committing the batch in the air,
#     and delivers it once started again with the receiver back;
#   - the worker SIGKILLed while a batch is in flight: after its restart
#     the uncommitted batch is delivered, nothing of a committed batch is
#     sent again;
#   - an e2e message's notification has no preview;
#   - a message older than --push-max-age is skipped, an unreadable record
#     goes to chat.push.dlq;
#   - FCM end to end against the receiver: the service account's OAuth2
#     token (a JWT bearer assertion), the v1 request with the access token,
#     a 404 UNREGISTERED removes the token;
#   - a group message notifies each offline member (not the sender, not an
#     online member), with "group" instead of "to";
#   - without CHAT_PUSH_WEBHOOK_URL the worker runs and says it drops.

use strict;
use warnings;
use Test::More;
use JSON::PP qw(decode_json encode_json);
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use POSIX ();
use ChatTest;
use ChatJWT;
use ChatClient qw(register_users ws_connect frames next_of api_as);
use ChatPersist ();

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';

ChatPersist::start_gateway('node1');
my $port = ChatTest::port();

my $dir = "/tmp/chat-push-$$";
mkdir $dir or die "$dir: $!";
my $log = "$dir/received.jsonl";
my $control = "$dir/control.json";
my $WINDOW = 1000;

# a free port for the receiver
my $rport = do {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1, ReuseAddr => 1) or die $!;
    my $p = $s->sockport;
    close $s;
    $p;
};

my $receiver;
sub receiver_start {
    unlink "$dir/ready";
    $receiver = fork // die "fork: $!";
    if ($receiver == 0) {
        exec('python3', "$ChatTest::Root/t/lib/push_receiver.py",
             '--port', $rport, '--log', $log, '--control', $control,
             '--ready', "$dir/ready") or POSIX::_exit(127);
    }
    ChatTest::wait_until(sub { -e "$dir/ready" && receiver_up() },
                         timeout => 10)
        or die "the receiver did not start\n";
}
sub receiver_stop {
    return unless $receiver;
    kill 'TERM', $receiver;
    waitpid $receiver, 0;
    undef $receiver;
}
sub control { my %c = @_; open my $f, '>', $control or die; print $f encode_json(\%c); close $f }

sub receiver_up {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$rport",
                                  Timeout => 1) or return 0;
    close $s;
    return 1;
}

# whether the gateway has the user online (its heartbeat in Redis)
sub online {
    my ($uid) = @_;
    my ($host, $rp) = split /:/, $ENV{TEST_NGINX_REDIS}
                                 // ChatPersist::stack_env('REDIS');
    open my $pf, '<', $ENV{TEST_NGINX_REDIS_PASSWORD_FILE}
                      // ChatPersist::stack_env('REDIS_PASSWORD_FILE')
        or die "the Redis password file: $!";
    chomp(my $pw = <$pf> // '');
    local $ENV{REDISCLI_AUTH} = $pw;
    my $score = `redis-cli -h $host -p $rp ZSCORE chat:presence:live $uid 2>/dev/null`;
    chomp $score;
    return $score =~ /^\d/ ? 1 : 0;
}

sub received {
    open my $in, '<', $log or return ();
    return map { decode_json($_) } grep { /\S/ } <$in>;
}
sub for_message {
    my ($id, @recs) = @_;
    return grep { ref $_->{body} && ($_->{body}{message_id} // '') eq $id }
           (@recs ? @recs : received());
}
sub for_message_fcm {
    my ($id) = @_;
    return grep { ref $_->{body} && ref $_->{body}{message}
                  && ($_->{body}{message}{data}{message_id} // '') eq $id }
           received();
}
sub wait_received {
    my ($what, $timeout) = @_;
    my @got;
    ChatTest::wait_until(sub { @got = $what->(); scalar @got },
                         timeout => $timeout // 20, interval => 0.2);
    return @got;
}

my $worker_log = ChatPersist::stack_env('CHAT_VAR') . '/log/worker-push.log';
sub log_size { -s $worker_log // 0 }
sub log_since {
    my ($off) = @_;
    open my $in, '<', $worker_log or return '';
    seek $in, $off, 0;
    local $/;
    return scalar(<$in>) // '';
}

sub caught_up { ChatPersist::messages_caught_up('chat-push', @_) }

sub worker_restart {
    my (%env) = @_;
    ChatTest::stack_svc('push', 'stop');
    local @ENV{keys %env} = values %env;
    ChatTest::stack_svc('push', 'start');
}

my $opts = "--push-window $WINDOW --push-retry-min 300 --push-retry-max 2000 "
         . "--push-timeout 2000 --push-give-up 120000 --drain-timeout 2000";

control(default => 200);
receiver_start();
worker_restart(CHAT_PUSH_WEBHOOK_URL => "http://127.0.0.1:$rport/push",
               CHAT_PUSH_OPTS => $opts);
ok(caught_up(90), 'the push worker started and caught up');

END {
    receiver_stop();
    # the stack's worker as it was: no webhook
    eval { worker_restart(CHAT_PUSH_WEBHOOK_URL => '', CHAT_PUSH_OPTS => '') };
    system 'rm', '-rf', $dir if $dir;
}

my %u = register_users('push', qw(a b c d));
my ($A, $B, $C, $D) = @u{qw(a b c d)};
my $run = sprintf '%x', int(time * 1000);
my ($tb1, $tb2, $tc, $td) = map { "$_-$run" } qw(tok-b1 tok-b2 tok-c tok-d);

for ([$B, $tb1], [$B, $tb2], [$C, $tc], [$D, $td]) {
    my ($st) = api_as($_->[0], PUT => "/v1/devices/$_->[1]",
                      { platform => 'webhook' });
    is($st, 204, "device $_->[1] registered");
}

my $wa = ws_connect($port, $A);
my $n = 0;
sub send_msg {
    my ($ws, %m) = @_;
    my $cid = 'p' . $run . '-' . ++$n;
    $ws->send_text(encode_json({ type => 'send', client_id => $cid, %m }));
    my ($ack) = grep { $_->{client_id} eq $cid } frames($ws, 'ack', 1, 20);
    return $ack;
}


# --- 1. B offline, two tokens: twenty messages collapse into one each --------

my @acks = map { send_msg($wa, to => $B, body => "hello $_") } 1 .. 20;
is(scalar(grep { $_ && $_->{id} } @acks), 20, 'twenty messages to B acked');
my $last = $acks[-1]{id};

my @got = wait_received(sub {
    my @r = grep { ($_->{body}{user_id} // 0) == $B } received();
    my %tok = map { $_->{body}{token} => 1 } @r;
    return keys %tok == 2 ? @r : ();
});
my %by_token;
push @{ $by_token{$_->{body}{token}} }, $_ for @got;
is_deeply([sort keys %by_token], [sort $tb1, $tb2],
          'a notification for each of B\'s tokens');
for my $t ($tb1, $tb2) {
    my @n = @{ $by_token{$t} // [] };
    is(scalar @n, 1, "$t: one notification for the burst (collapsed)");
    my $b = $n[0]{body};
    is($b->{count}, 20, "$t: it counts the twenty messages");
    is($b->{message_id}, $last, "$t: it names the newest message");
    is($b->{preview}, 'hello 20', "$t: with the newest one's preview");
    is($b->{from}, $A, "$t: from A");
    is($b->{to}, $B, "$t: to B");
    is($b->{platform}, 'webhook', "$t: platform");
    ok(!exists $b->{group}, "$t: no group for a 1:1 message");
    like($b->{ts}, qr/^\d{13}$/, "$t: ts in ms");
    is($n[0]{path}, '/push', "$t: posted to the configured URL");
}
ok(!grep({ ($_->{body}{user_id} // 0) == $A } received()),
   'the sender is not notified');


# --- 2. B online: nothing ------------------------------------------------------

my $wb = ws_connect($port, $B);
ok(ChatTest::wait_until(sub { online($B) }, timeout => 10), 'B is online');
my $ack = send_msg($wa, to => $B, body => 'you are here');
# first what B missed (the twenty above), then this one
my ($live) = grep { $_->{id} eq $ack->{id} } frames($wb, 'message', 21, 20);
ok($live, 'B got the message live');
ok(caught_up(30), 'the worker consumed it');
sleep(0.5);
ok(!for_message($ack->{id}), 'no notification while B is online');
$wb->close;
undef $wb;


# --- 3. 500 twice, then 200: delivered once each ------------------------------

ok(ChatTest::wait_until(sub { !online($B) }, timeout => 15),
   'B is offline again');
control(statuses => [500, 500], default => 200);
$ack = send_msg($wa, to => $B, body => 'retry me');
@got = wait_received(sub {
    my @r = for_message($ack->{id});
    return (grep { $_->{status} == 200 } @r) == 2 ? @r : ();
}, 30);
is(scalar(grep { $_->{status} == 500 } @got), 2, 'two answers of 500');
my %ok;
$ok{$_->{body}{token}}++ for grep { $_->{status} == 200 } @got;
is_deeply(\%ok, { $tb1 => 1, $tb2 => 1 },
          'each token delivered exactly once after the retries');
ok(caught_up(30), 'committed');
sleep(1);
is(scalar(grep { $_->{status} == 200 } for_message($ack->{id})), 2,
   'no duplicate after the commit');


# --- 4. 410: the token is gone --------------------------------------------------

control(statuses => [410], default => 200);
my $off = log_size();
$ack = send_msg($wa, to => $C, body => 'gone phone');
@got = wait_received(sub { for_message($ack->{id}) });
is(scalar @got, 1, 'C\'s one device asked once');
is($got[0]{status}, 410, '... and answered 410');
ok(ChatTest::wait_until(sub {
       ChatPersist::sql("SELECT count(*) FROM devices WHERE token = '$tc'")
           == 0 }, timeout => 20),
   'the token is gone from devices');
sleep(1.5);
is(scalar(for_message($ack->{id})), 1, 'a 410 is not retried');
like(log_since($off), qr/event=devices_removed tokens=1/,
     'the worker says it removed the token');


# --- 5. the receiver down for 30 s ---------------------------------------------

control(default => 200);
receiver_stop();
$off = log_size();
my $down_at = time;
my $ack1 = send_msg($wa, to => $B, body => 'while down 1');
sleep(10);
my $ack2 = send_msg($wa, to => $D, body => 'while down 2');
sleep(30 - (time - $down_at));
like(log_since($off), qr/event=push_retrying pending=\d+ failures=\d+ status=0 /,
     'the worker says it is retrying meanwhile')
    or diag(log_since($off));
like(ChatTest::stack_svc('push', 'start'), qr/already running/,
     'the worker still runs after 30 s without its provider');
# a stop while notifications wait for their provider: the drain ends
# (--drain-timeout 2 s, then the loop's 15 s of grace), the batch is given
# up uncommitted, and read again after the start
my $t0 = time;
ChatTest::stack_svc('push', 'stop');
ok(time - $t0 < 60, sprintf('the worker stopped in %.0f s, its batch in '
                            . 'the air', time - $t0));
like(log_since($off), qr/event=batch_abandoned/,
     '... giving up the batch, uncommitted');
receiver_start();
{
    local $ENV{CHAT_PUSH_WEBHOOK_URL} = "http://127.0.0.1:$rport/push";
    local $ENV{CHAT_PUSH_OPTS} = $opts;
    ChatTest::stack_svc('push', 'start');
}
@got = wait_received(sub {
    my @a = grep { $_->{status} == 200 } for_message($ack1->{id});
    my @b = grep { $_->{status} == 200 } for_message($ack2->{id});
    return @a == 2 && @b == 1 ? (@a, @b) : ();
}, 40);
is(scalar @got, 3, 'both messages delivered once the receiver is back');
ok(caught_up(30), 'and committed');
sleep(1);
is(scalar(grep { $_->{status} == 200 }
          for_message($ack1->{id}), for_message($ack2->{id})), 3,
   '... each device once');


# --- 6. SIGKILL mid-batch -------------------------------------------------------

my @before = received();
my %seen_before = map { ($_->{body}{message_id} // '') . ' ' . ($_->{body}{token} // '') => 1 } @before;
control(default => 200, delay_ms => 1500);
$ack = send_msg($wa, to => $D, body => 'in flight');
ok(wait_received(sub { for_message($ack->{id}) }, 20),
   'the receiver got the request (its answer held 1.5 s)');
ChatTest::stack_svc('push', 'kill');
control(default => 200);
{
    local $ENV{CHAT_PUSH_WEBHOOK_URL} = "http://127.0.0.1:$rport/push";
    local $ENV{CHAT_PUSH_OPTS} = $opts;
    ChatTest::stack_svc('push', 'start');
}
ok(caught_up(60), 'the restarted worker caught up');
sleep(1);
my @after = received();
my @again = grep {
    my $k = ($_->{body}{message_id} // '') . ' ' . ($_->{body}{token} // '');
    $seen_before{$k} && ($_->{at} // 0) > 0
} @after[scalar(@before) .. $#after];
is(scalar(grep { ($_->{body}{message_id} // '') ne $ack->{id} } @again), 0,
   'nothing of a committed batch was sent again');
ok(scalar(grep { $_->{status} == 200 } for_message($ack->{id}, @after)) >= 1,
   'the killed batch was delivered after the restart');


# --- 7. e2e: no preview --------------------------------------------------------

$ack = send_msg($wa, to => $D, body => 'Y2lwaGVydGV4dA==', e2e => JSON::PP::true);
@got = wait_received(sub { for_message($ack->{id}) });
is(scalar @got, 1, 'an e2e message notifies');
ok(!exists $got[0]{body}{preview}, '... without a preview');
unlike(encode_json($got[0]{body}), qr/Y2lwaGVydGV4dA/,
       '... and nothing of its body');


# --- 8. a group message: each offline member ------------------------------------

my ($st, $g) = api_as($A, POST => '/v1/groups',
                      { name => "push-$run", members => [$B, $C, $D] });
is($st, 201, 'group created');
my $gid = $g->{group_id};
my $wd = ws_connect($port, $D);    # D online: nothing for D
ok(ChatTest::wait_until(sub { online($D) }, timeout => 10), 'D is online');
$ack = send_msg($wa, group => $gid, body => 'to the group');
ok($ack && $ack->{id}, 'group message acked');
@got = wait_received(sub {
    my @r = for_message($ack->{id});
    return @r >= 2 ? @r : ();
});
sleep(1.5);
@got = for_message($ack->{id});
is_deeply([sort map { $_->{body}{token} } @got], [sort $tb1, $tb2],
          'B\'s two devices notified (C has none left, D is online, '
          . 'A sent it)');
is($got[0]{body}{group}, $gid, 'the notification names the group');
ok(!exists $got[0]{body}{to}, '... and no "to"');
is($got[0]{body}{preview}, 'to the group', '... with the preview');


# --- 9. records: an old message is skipped, an unreadable one dead-lettered -

$off = log_size();
my $old_id = ChatPersist::new_id();
my $new_id = ChatPersist::new_id();
ChatPersist::produce('chat.messages',
    ChatPersist::message_record(id => $old_id, seq => 1, from => $A,
                                to => $B, body => 'ancient',
                                ts => int(time * 1000) - 2 * 3600 * 1000),
    ['d:1:2', 'not a record'],
    ChatPersist::message_record(id => $new_id, seq => 2, from => $A,
                                to => $B, body => 'fresh'));
@got = wait_received(sub {
    my @r = grep { $_->{status} == 200 } for_message($new_id);
    return @r == 2 ? @r : ();
});
is(scalar @got, 2, 'a record produced now notifies B\'s two devices');
ok(caught_up(30), 'committed');
ok(!for_message($old_id), 'a message older than --push-max-age does not');
like(log_since($off), qr/event=batch .*old=1 /, '... and is counted');
ok(scalar(grep { /not a record/ }
          ChatPersist::consume('chat.push.dlq', "%s\n")),
   'an unreadable record goes to chat.push.dlq');


# --- 10. FCM: the service account's token, the v1 request, UNREGISTERED ------

my ($E) = values %{{ register_users('pushfcm', 'e') }};
my $ftok = "fcm:$run-AbC_d-1";
is((api_as($E, PUT => "/v1/devices/$ftok", { platform => 'fcm' }))[0], 204,
   'an fcm device registered');
system("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
       . "-out $dir/sa.key 2>/dev/null") == 0 or die "openssl genpkey failed";
my $pem = do { local (@ARGV, $/) = "$dir/sa.key"; <> };
{
    open my $f, '>', "$dir/sa.json" or die;
    print $f encode_json({ type => 'service_account',
                           project_id => 'chat-test',
                           private_key_id => 'k1', private_key => $pem,
                           client_email => 'push@chat-test.iam.example',
                           token_uri => 'https://oauth2.example/token' });
    close $f;
    chmod 0600, "$dir/sa.json";
}
worker_restart(CHAT_PUSH_WEBHOOK_URL => "http://127.0.0.1:$rport/push",
               CHAT_PUSH_OPTS => "$opts --fcm-credentials $dir/sa.json "
                   . "--fcm-endpoint http://127.0.0.1:$rport "
                   . "--fcm-token-uri http://127.0.0.1:$rport/token");
$ack = send_msg($wa, to => $E, body => 'to a phone');
@got = wait_received(sub { for_message_fcm($ack->{id}) });
is(scalar @got, 1, 'one FCM request');
is($got[0]{path}, '/v1/projects/chat-test/messages:send',
   '... to the project\'s messages:send');
my ($tokreq) = grep { $_->{path} eq '/token' } received();
ok($tokreq, 'the worker asked the token endpoint first');
like($tokreq->{body} // '', qr/^grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=[\w-]+\.[\w-]+\.[\w-]+$/,
     '... with a JWT bearer assertion');
like($got[0]{auth} // '', qr/^Bearer ya29\.test-\d+$/,
     'the request carries the access token');
my $m = $got[0]{body}{message};
is($m->{token}, $ftok, 'the device token in the body');
is($m->{notification}{body}, 'to a phone', 'the preview as the body');
is($m->{data}{message_id}, $ack->{id}, 'data: message_id');
is($m->{data}{from}, "$A", 'data: from, as a string');
control(statuses => [{ status => 404, body => encode_json({ error => {
    code => 404, status => 'NOT_FOUND', details => [{
        '@type' => 'type.googleapis.com/google.firebase.fcm.v1.FcmError',
        errorCode => 'UNREGISTERED' }] } }) }], default => 200);
$ack = send_msg($wa, to => $E, body => 'phone gone');
ok(wait_received(sub { for_message_fcm($ack->{id}) }), 'FCM asked again');
ok(ChatTest::wait_until(sub {
       ChatPersist::sql("SELECT count(*) FROM devices WHERE token = '$ftok'")
           == 0 }, timeout => 20),
   'UNREGISTERED: the token is gone from devices');
control(default => 200);


# --- 11. no webhook URL: the worker runs and says it drops ----------------------

$off = log_size();
worker_restart(CHAT_PUSH_WEBHOOK_URL => '', CHAT_PUSH_OPTS => $opts);
like(log_since($off), qr/event=webhook url=none/,
     'without CHAT_PUSH_WEBHOOK_URL the log says notifications are dropped');
$ack = send_msg($wa, to => $B, body => "nobody hears");
ok(caught_up(30), 'the worker consumed it');
like(log_since($off), qr/event=dropped .*no webhook provider configured/,
     '... and the dropped notification is logged');
ok(!for_message($ack->{id}), 'nothing posted');

done_testing();
