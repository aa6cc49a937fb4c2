# sql/0002_accounts.sql against the test stack's real PostgreSQL, through
# psql: friends (both sides' states, idempotency, removal, crossing requests
# at the same moment), /v1/me, the group life cycle (errors, limits,
# permissions, admin hand-over, the group going with its last member, also
# when accounts are deleted), keys, devices, and the CHECK constraints.
#
# Every value reaches SQL as a psql variable quoted with :'name', never
# pasted into the SQL text.  The database keeps what earlier runs left, so
# every name made here carries a suffix unique to this run.

use strict;
use warnings;
use Test::More;
use JSON::PP ();
use File::Temp ();
use POSIX ();
use Time::HiRes qw(time);

plan skip_all => 'needs the test stack (CHAT_STACK_PROFILE=test, as make '
                 . 'test sets)'
    unless ($ENV{CHAT_STACK_PROFILE} // '') eq 'test';
plan skip_all => 'TEST_NGINX_PG_DSN is not set (the PG_DSN of var-test/stack.env)'
    unless $ENV{TEST_NGINX_PG_DSN};

# The password goes to psql through the environment, not the process list.
my $Dsn = $ENV{TEST_NGINX_PG_DSN};
if ($Dsn =~ s/(^|\s)password=(\S*)/$1/) {
    $ENV{PGPASSWORD} = $2;
}
$ENV{PGCONNECT_TIMEOUT} = 10;
$ENV{PGCLIENTENCODING}  = 'UTF8';
$ENV{PGOPTIONS}         = '-c client_min_messages=warning';

my $Json = JSON::PP->new->utf8->canonical;


# --- psql ---------------------------------------------------------------------

# Starts psql on SQL (a script, which may use :'var'), with VARS as psql
# variables; returns a handle for psql_wait.
sub psql_start {
    my ($sql, %vars) = @_;

    my $script = File::Temp->new(SUFFIX => '.sql');
    print $script $sql;
    $script->flush;
    my $err = File::Temp->new(SUFFIX => '.err');

    my @cmd = ('psql', '-X', '-q', '-A', '-t', '-w',
               '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
               (map { ('-v', "$_=$vars{$_}") } sort keys %vars),
               '-d', $Dsn, '-f', $script->filename);
    my $pid = open(my $out, '-|');
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open(STDERR, '>', $err->filename) or POSIX::_exit(126);
        exec(@cmd) or POSIX::_exit(127);
    }
    return { out => $out, err => $err, script => $script };
}

# -> (exit code, stdout, stderr) of a psql_start.
sub psql_wait {
    my ($h) = @_;

    my $stdout = do { local $/; readline($h->{out}) } // '';
    close $h->{out};
    my $rc = $? >> 8;
    my $stderr = do {
        open(my $in, '<', $h->{err}->filename) or die "$h->{err}: $!";
        local $/;
        <$in> // '';
    };
    chomp $stdout;
    return ($rc, $stdout, $stderr);
}

# The output of SQL (rows one per line, columns |-separated); dies on error.
sub sql {
    my ($sql, %vars) = @_;
    my ($rc, $out, $err) = psql_wait(psql_start($sql, %vars));
    die "psql failed (exit $rc): $err\nSQL: $sql\n" if $rc;
    return $out;
}

# SQL's output as JSON (undef for SQL NULL).
sub jsql {
    my $out = sql(@_);
    return length $out ? $Json->decode($out) : undef;
}

# The error message of SQL, which must fail; '' when it did not.
sub sql_error {
    my ($sql, %vars) = @_;
    my ($rc, $out, $err) = psql_wait(psql_start($sql, %vars));
    return $rc ? ($err || "exit $rc") : '';
}

my $Suffix = sprintf '%x%x', int(time), $$;
my %Name;    # user id -> username
my $Users = 0;

# A new user named t10<tag><n>_<suffix> (n counts the users made); its id.
sub user {
    my ($tag) = @_;
    my $name = "t10$tag" . ++$Users . "_$Suffix";
    my $id = sql(q{INSERT INTO users (username, password_hash)
                   VALUES (:'name', 'x') RETURNING id}, name => $name);
    $Name{$id} = $name;
    return $id;
}

# N new users t10<tag><n>_<suffix> made by one statement; their ids.
sub users {
    my ($tag, $n) = @_;
    my @names = map { "t10$tag" . ++$Users . "_$Suffix" } 1 .. $n;
    my %id = reverse map { split /\|/ } split /\n/,
        sql(q{INSERT INTO users (username, password_hash)
              SELECT n, 'x' FROM unnest(string_to_array(:'names', ',')) n
              RETURNING id, username}, names => join(',', @names));
    $Name{$id{$_}} = $_ for @names;
    return map { $id{$_} } @names;
}

# The id a user had before its account was deleted.
sub gone_user {
    my $id = user(@_);
    sql(q{DELETE FROM users WHERE id = :'id'}, id => $id);
    return $id;
}

sub friend_request {
    sql(q{SELECT chat_friend_request(:'me', :'other')},
        me => $_[0], other => $_[1]);
}
sub friend_remove {
    sql(q{SELECT chat_friend_remove(:'me', :'other')},
        me => $_[0], other => $_[1]);
}
sub friends   { jsql(q{SELECT chat_friends_json(:'me')}, me => $_[0]) }
sub me_json   { jsql(q{SELECT chat_me_json(:'me')}, me => $_[0]) }
sub group_get { jsql(q{SELECT chat_group_get(:'me', :'gid')},
                     me => $_[0], gid => $_[1]) }

# {user id => state} of someone's friends list.
sub states {
    my ($me) = @_;
    return { map { ($_->{user_id} => $_->{state}) } @{friends($me)->{friends}} };
}

# chat_group_create(me, name, [ids], max) as JSON; name undef: SQL NULL.
sub group_create {
    my ($me, $name, $members, $max) = @_;
    my %v = (me => $me, members => '{' . join(',', @$members) . '}',
             max => $max // '');
    return jsql(q{SELECT chat_group_create(:'me', NULL, :'members',
                                           NULLIF(:'max', '')::int)},
                %v)
        unless defined $name;
    return jsql(q{SELECT chat_group_create(:'me', :'name', :'members',
                                           NULLIF(:'max', '')::int)},
                %v, name => $name);
}

sub add_member {
    my ($me, $gid, $uid, $max) = @_;
    sql(q{SELECT chat_group_add_member(:'me', :'gid', :'uid', :'max')},
        me => $me, gid => $gid, uid => $uid, max => $max);
}
sub remove_member {
    my ($me, $gid, $uid) = @_;
    sql(q{SELECT chat_group_remove_member(:'me', :'gid', :'uid')},
        me => $me, gid => $gid, uid => $uid);
}

# {user id => role} of a group, read from the table.
sub roles {
    my ($gid) = @_;
    my %r = map { split /\|/ }
            split /\n/, sql(q{SELECT user_id, role FROM group_members
                              WHERE group_id = :'gid'}, gid => $gid);
    return \%r;
}

sub group_exists {
    sql(q{SELECT count(*) FROM groups WHERE id = :'gid'}, gid => $_[0]);
}


# Runs SQL statements (each [sql, vars...]) in as many psql sessions at the
# same moment, to provoke races: each statement first waits for a shared
# advisory lock that a control session holds until all of them are
# waiting, then releases.  -> ([exit code, stdout, stderr], ...) in order.
my $Barrier = 1_010_000_000 + $$;    # < 2^31: pg_locks shows it as objid
sub at_once {
    my @jobs = @_;
    my $locks = sub {
        sql(q{SELECT count(*) FILTER (WHERE granted) || ','
                     || count(*) FILTER (WHERE NOT granted)
              FROM pg_locks WHERE locktype = 'advisory' AND classid = 0
               AND objid = :'k'::bigint::oid AND objsubid = 1}, k => $Barrier);
    };
    my $wait_for = sub {
        my ($want) = @_;
        my $deadline = time + 20;
        while ((my $got = $locks->()) ne $want) {
            die "at_once: barrier locks $got, want $want\n" if time > $deadline;
            Time::HiRes::sleep(0.02);
        }
    };

    open(my $ctl, '|-', 'psql', '-X', '-q', '-w', '-o', '/dev/null',
                '-v', 'ON_ERROR_STOP=1', '-v', "barrier=$Barrier", '-d', $Dsn)
        or die "psql: $!";
    $ctl->autoflush(1);
    print $ctl "SELECT pg_advisory_lock(:'barrier'::bigint);\n";
    $wait_for->('1,0');

    my @h = map {
        my ($sql, %vars) = @$_;
        psql_start(qq{WITH barrier AS MATERIALIZED (
                          SELECT pg_advisory_xact_lock_shared(:'barrier'::bigint))
                      $sql FROM barrier;}, %vars, barrier => $Barrier);
    } @jobs;
    $wait_for->('1,' . scalar @jobs);
    close $ctl;    # psql ends, its session's lock goes: all start at once
    return map { [psql_wait($_)] } @h;
}

# --- the schema is there --------------------------------------------------------

is(sql(q{SELECT count(*) FROM schema_migrations WHERE version = '0002'}), 1,
   '0002 is applied')
    or BAIL_OUT('sql/0002_accounts.sql is not applied: scripts/migrate '
                . '--profile test');


# --- friends --------------------------------------------------------------------

subtest 'friend requests, both sides' => sub {
    my $ua = user('fa');
    my $ub = user('fb');

    is(friend_request($ua, $ua), 'self', 'asking oneself: self');
    is(friend_request($ua, gone_user('fx')), 'not_found',
       'asking a deleted user: not_found');
    is(friend_request($ua, -1), 'not_found', 'asking no user: not_found');

    is(friend_request($ua, $ub), 'requested', 'A asks B: requested');
    is(friend_request($ua, $ub), 'requested', 'asking again: still requested');
    is_deeply(friends($ua),
              { friends => [{ user_id => $ub, username => $Name{$ub},
                              state => 'requested', last_seen => undef }] },
              "A's list: B requested");
    is_deeply(friends($ub),
              { friends => [{ user_id => $ua, username => $Name{$ua},
                              state => 'pending', last_seen => undef }] },
              "B's list: A pending");
    is(sql(q{SELECT count(*) FROM friends
             WHERE :'a' IN (user_id, friend_id)}, a => $ua),
       1, 'one row for a request');

    is(friend_request($ub, $ua), 'friends', 'B asks A back: friends');
    is(sql(q{SELECT string_agg(status || ':' || (accepted_at IS NOT NULL),
                               ',')
             FROM friends WHERE :'a' IN (user_id, friend_id)}, a => $ua),
       'accepted:true,accepted:true', 'two accepted rows');
    is(friend_request($ua, $ub), 'friends', 'A asks again: friends');
    is(friend_request($ub, $ua), 'friends', 'B asks again: friends');
    is_deeply(states($ua), { $ub => 'friends' }, "A's list: B friends");
    is_deeply(states($ub), { $ua => 'friends' }, "B's list: A friends");

    # Raw text: compact, keys in the contract's order, ids as numbers.
    is(sql(q{SELECT chat_friends_json(:'a')}, a => $ua),
       qq({"friends":[{"user_id":$ub,"username":"$Name{$ub}","state":"friends",)
       . qq("last_seen":null}]}),
       'chat_friends_json: compact JSON in the contract\'s shape');
    is(sql(q{SELECT chat_friends_json(:'me')}, me => gone_user('fy')),
       '{"friends":[]}', 'nobody: an empty list');
};

subtest 'last_seen is shown to friends only' => sub {
    my $ua = user('la');
    my $ub = user('lb');    # friend of a
    my $c = user('lc');    # a asked c
    my $d = user('ld');    # d asked a
    friend_request($ua, $ub);
    friend_request($ub, $ua);
    friend_request($ua, $c);
    friend_request($d, $ua);
    sql(q{INSERT INTO presence (user_id, last_seen)
          VALUES (:'b', '2024-01-02 03:04:05.678+00'),
                 (:'c', now()), (:'d', now()), (:'a', now())},
        a => $ua, b => $ub, c => $c, d => $d);

    my %f = map { ($_->{user_id} => $_) } @{friends($ua)->{friends}};
    is($f{$ub}{state}, 'friends', 'B: friends');
    is($f{$ub}{last_seen}, 1704164645678, 'B: last_seen in ms since the epoch');
    is($f{$c}{state}, 'requested', 'C: requested');
    is($f{$c}{last_seen}, undef, 'C: no last_seen (not a friend)');
    is($f{$d}{state}, 'pending', 'D: pending');
    is($f{$d}{last_seen}, undef, 'D: no last_seen (not a friend)');

    sql(q{DELETE FROM presence WHERE user_id = :'b'}, b => $ub);
    %f = map { ($_->{user_id} => $_) } @{friends($ua)->{friends}};
    is_deeply($f{$ub}, { user_id => $ub, username => $Name{$ub},
                         state => "friends", last_seen => undef },
              "a friend never seen: last_seen null");
};

subtest 'friends are ordered by username' => sub {
    my $me = user('oa');
    my @others = map { user($_) } qw(oz om ob o_ o9);
    friend_request($me, $_) for @others;
    friend_request($_, $me) for @others[0, 2];
    my @got = map { $_->{username} } @{friends($me)->{friends}};
    is_deeply(\@got, [sort map { $Name{$_} } @others], 'sorted by username');
    is_deeply([map { $_->{username} } @{me_json($me)->{friends}}],
              \@got, 'the same order in /v1/me');
};

subtest 'removing requests and friendships' => sub {
    my $ua = user('ra');
    my $ub = user('rb');
    my $c = user('rc');
    my $d = user('rd');
    my $rows = sub {
        sql(q{SELECT count(*) FROM friends
              WHERE :'x' IN (user_id, friend_id)}, x => $_[0]);
    };

    friend_request($ua, $ub);
    friend_request($ub, $ua);
    friend_remove($ua, $ub);
    is($rows->($ua), 0, 'a friendship removed by one side: both rows gone');
    is_deeply(states($ub), {}, "gone from the other side's list too");
    is(friend_request($ua, $ub), 'requested',
       'asking again after removal starts over: requested');

    friend_request($c, $ua);
    friend_remove($ua, $c);
    is($rows->($c), 0, 'declining a pending request removes it');
    is_deeply(states($c), {}, "gone from the asker's list");

    friend_request($ua, $d);
    friend_remove($ua, $d);
    is($rows->($d), 0, 'withdrawing my request removes it');
    is_deeply(states($d), {}, "gone from the other's list");

    is(eval { friend_remove($ua, $d); 1 }, 1,
       'removing what is not there is fine');
    is(eval { friend_remove($ua, -1); 1 }, 1, 'so is removing no user');
};

subtest 'crossing friend requests end as friends' => sub {
    my @ids = users('x', 40);
    my @pairs = map { [@ids[2 * $_, 2 * $_ + 1]] } 0 .. 19;
    my $ask = q{SELECT chat_friend_request(:'me', :'other')};

    while (my @batch = splice(@pairs, 0, 10)) {
        my @r = at_once(map { my ($x, $y) = @$_;
                              ([$ask, me => $x, other => $y],
                               [$ask, me => $y, other => $x]) } @batch);
        # Per pair: both rows, and each side's friends list.
        my @end = split /\n/, sql(q{
            SELECT (SELECT string_agg(f.status, ',') FROM friends f
                    WHERE (f.user_id, f.friend_id) IN ((x, y), (y, x))),
                   chat_friends_json(x), chat_friends_json(y)
            FROM unnest(:'xs'::bigint[], :'ys'::bigint[]) WITH ORDINALITY
                 AS p(x, y, i)
            ORDER BY i},
            xs => '{' . join(',', map { $_->[0] } @batch) . '}',
            ys => '{' . join(',', map { $_->[1] } @batch) . '}');
        for my $pair (@batch) {
            my ($x, $y) = @$pair;
            my ($r1, $r2) = splice(@r, 0, 2);
            my ($rows, $fx, $fy) = split /\|/, shift(@end) // '';
            is("$r1->[0]$r2->[0]", '00', 'both requests ran')
                or diag "$r1->[2]$r2->[2]";
            is(join(',', sort $r1->[1], $r2->[1]), 'friends,requested',
               'one asked, the other accepted');
            is($rows, 'accepted,accepted', 'both rows accepted');
            is_deeply([map { [map { "$_->{user_id} $_->{state}" }
                              @{$Json->decode($_ || '{}')->{friends} || []}] }
                       $fx, $fy],
                      [["$y friends"], ["$x friends"]],
                      'friends on both sides');
        }
    }
};


# --- /v1/me ------------------------------------------------------------------------

subtest 'chat_me_json' => sub {
    my $me = user('ma');
    my $f = user('mb');
    my $p = user('mc');
    sql(q{UPDATE users SET display_name = :'dn', avatar_url = :'av'
          WHERE id = :'id'},
        id => $me, dn => "M\x{c3}\x{a9} \"quoted\"", av => 'https://x.test/a.png');
    friend_request($me, $f);
    friend_request($f, $me);
    friend_request($p, $me);
    my $g1 = group_create($me, 'Zeta', [$f], 10)->{group_id};
    my $g2 = group_create($f, 'Alpha', [$me], 10)->{group_id};

    my $raw = sql(q{SELECT chat_me_json(:'me')}, me => $me);
    like($raw, qr/^\{"user_id":$me,"username":"$Name{$me}","display_name":/,
         'compact, keys in order, user_id a number');
    is_deeply($Json->decode($raw), {
        user_id      => $me,
        username     => $Name{$me},
        display_name => "M\x{e9} \"quoted\"",
        avatar_url   => 'https://x.test/a.png',
        friends      => [
            { user_id => $f, username => $Name{$f}, state => 'friends' },
            { user_id => $p, username => $Name{$p}, state => 'pending' },
        ],
        groups       => [
            { group_id => $g1, name => 'Zeta',  role => 'admin' },
            { group_id => $g2, name => 'Alpha', role => 'member' },
        ],
    }, 'profile, friends with states, groups with roles');

    my $lone = user('md');
    is_deeply(me_json($lone),
              { user_id => $lone, username => $Name{$lone},
                display_name => undef, avatar_url => undef,
                friends => [], groups => [] },
              'a new user: nulls and empty lists');
    is(me_json(gone_user('me')), undef, 'a deleted account: NULL');
};


# --- groups ------------------------------------------------------------------------

subtest 'creating groups' => sub {
    my ($ua, $ub, $c, $d) = map { user("c$_") } qw(a b c d);
    my ($x1, $x2) = sort { $a <=> $b } (gone_user('cx'), gone_user('cy'));

    for my $case (['', 'empty'], ['   ', 'blank'], ["\t \n", 'white space'],
                  ['x' x 101, '101 characters'], ["a\tb", 'a control character'],
                  [undef, 'NULL']) {
        is_deeply(group_create($ua, $case->[0], [$ub], 10),
                  { error => 'invalid_name',
                    message => 'group name must be 1 to 100 characters, '
                               . 'not blank, without control characters' },
                  "name $case->[1]: invalid_name");
    }

    is_deeply(group_create($ua, 'T', [$ub, $x2, $x1, $x2], 10),
              { error => 'not_found', message => "no such user: $x1, $x2" },
              'missing members: not_found naming them');
    is_deeply(group_create($ua, 'T', [$ub, $c, $d], 3),
              { error => 'too_many_members',
                message => 'a group has at most 3 members, creator included' },
              'creator + 3 > 3: too_many_members');

    my $raw = sql(q{SELECT chat_group_create(:'me', :'name', :'m', 3)},
                  me => $ua, name => "  Team \x{c3}\x{a9}  ",
                  m => "{$c,$ub,$ub,$ua,$c}");
    like($raw, qr/^\{"group_id":\d+,"name":"Team \x{c3}\x{a9}","members":\[\{"user_id":$ua,/,
         'compact, keys in order, ids as numbers');
    my $g = $Json->decode($raw);
    is_deeply($g, {
        group_id => $g->{group_id},
        name     => "Team \x{e9}",
        members  => [
            { user_id => $ua, username => $Name{$ua}, role => 'admin' },
            { user_id => $ub, username => $Name{$ub}, role => 'member' },
            { user_id => $c, username => $Name{$c}, role => 'member' },
        ],
    }, 'trimmed name; creator admin; duplicates and the creator ignored; '
       . 'at the limit exactly');

    my $hundred = "\x{c3}\x{a9}" x 100;
    is(length(group_create($ua, $hundred, [], 1)->{name} // ''), 100,
       '100 characters (200 bytes) is a valid name; alone is within max 1');
    ok(group_create($ua, 'Solo', [], undef)->{group_id},
       'max_members NULL: no limit');
};

subtest 'reading a group' => sub {
    my ($ua, $ub, $out) = map { user("g$_") } qw(a b o);
    my $gid = group_create($ua, 'Readers', [$ub], 10)->{group_id};

    is(sql(q{SELECT chat_group_get(:'me', :'gid')}, me => $ub, gid => $gid),
       qq({"group_id":$gid,"name":"Readers","created_by":$ua,"members":[)
       . qq({"user_id":$ua,"username":"$Name{$ua}","role":"admin"},)
       . qq({"user_id":$ub,"username":"$Name{$ub}","role":"member"}]}),
       'a member gets the group, members by user id');
    is_deeply(group_get($out, $gid),
              { error => 'forbidden', message => 'not a member of this group' },
              'a non-member: forbidden');
    is(group_get($ua, -1), undef, 'no such group: NULL');
};

subtest 'adding members' => sub {
    my ($ua, $ub, $c, $d, $e) = map { user("a$_") } qw(a b c d e);
    my $gid = group_create($ua, 'Adders', [$ub], 4)->{group_id};

    is(add_member($ua, -1, $c, 4), 'not_found', 'no such group: not_found');
    is(add_member($ub, $gid, $c, 4), 'forbidden', 'a plain member: forbidden');
    is(add_member($e, $gid, $c, 4), 'forbidden', 'a non-member: forbidden');
    is(add_member($ub, $gid, -1, 4), 'forbidden',
       'forbidden is decided before looking at the user');
    is(add_member($ua, $gid, -1, 4), 'user_not_found', 'no such user');
    is(add_member($ua, $gid, $ub, 4), 'already_member', 'already a member');
    is(add_member($ua, $gid, $c, 4), 'added', 'added');
    is(add_member($ua, $gid, $d, 4), 'added', 'added up to the limit');
    is(add_member($ua, $gid, $e, 4), 'too_many_members', 'beyond max: refused');
    is(add_member($ua, $gid, $c, 4), 'already_member',
       'a member again while full: already_member');
    is_deeply(roles($gid), { $ua => 'admin', $ub => 'member', $c => 'member',
                             $d => 'member' }, 'the members');
    is_deeply(me_json($d)->{groups},
              [{ group_id => $gid, name => 'Adders', role => 'member' }],
              "in the new member's /v1/me");
};

subtest 'concurrent adds cannot pass max_members' => sub {
    my ($admin, @new) = users("z", 11);
    my @in = splice(@new, 0, 2);
    my $gid = group_create($admin, 'Race', \@in, 5)->{group_id};
    my %got;
    $got{$_->[1] || $_->[2]}++
        for at_once(map { [q{SELECT chat_group_add_member(:'me', :'gid', :'uid', 5)},
                           me => $admin, gid => $gid, uid => $_] } @new);
    is_deeply(\%got, { added => 2, too_many_members => 6 },
              '8 adds at once for 2 free places: 2 added');
    is(scalar keys %{roles($gid)}, 5, 'five members');
};

subtest 'removing members, admin hand-over, the last one out' => sub {
    my ($ua, $ub, $c, $d, $e) = map { user("d$_") } qw(a b c d e);
    my $gid = group_create($ua, 'Leavers', [$ub, $c, $d], 10)->{group_id};

    is(remove_member($ua, -1, $ub), 'not_found', 'no such group: not_found');
    is(remove_member($ub, $gid, $c), 'forbidden',
       'a member removing another: forbidden');
    is(remove_member($e, $gid, $ub), 'forbidden',
       'a non-member removing a member: forbidden');
    is(remove_member($e, $gid, $e), 'not_member',
       'a non-member removing itself: not_member');
    is(remove_member($ua, $gid, $e), 'not_member',
       'an admin removing a non-member: not_member');
    is(remove_member($c, $gid, $c), 'removed', 'a member leaves');
    is(remove_member($ua, $gid, $d), 'removed', 'the admin removes a member');
    is_deeply(roles($gid), { $ua => 'admin', $ub => 'member' }, 'two left');
    is(add_member($ua, $gid, $e, 10), 'added', 'someone joins later');

    is(remove_member($ua, $gid, $ua), 'removed', 'the only admin leaves');
    is_deeply(roles($gid), { $ub => 'admin', $e => 'member' },
              'the longest-standing member is admin now');
    is(group_get($ub, $gid)->{created_by}, $ua,
       'created_by still names the creator');
    is(remove_member($e, $gid, $ub), 'forbidden',
       'the remaining member cannot remove the new admin');
    is(remove_member($ub, $gid, $ub), 'removed', 'the new admin leaves too');
    is_deeply(roles($gid), { $e => 'admin' }, 'the last member is admin');
    is(remove_member($e, $gid, $e), 'removed', 'the last member leaves');
    is(group_exists($gid), 0, 'the group is gone');
    is(group_get($e, $gid), undef, 'chat_group_get: NULL');
    is(add_member($e, $gid, $ua, 10), 'not_found', 'adding to it: not_found');
    is(remove_member($e, $gid, $e), 'not_found', 'removing from it: not_found');
    is_deeply(me_json($e)->{groups}, [], 'not in /v1/me any more');
};

subtest 'hand-over follows joining time, not user id' => sub {
    my $ua = user('ha');
    my $lo = user('hl');
    my $hi = user('hh');
    my $gid = group_create($ua, 'Order', [], 10)->{group_id};
    add_member($ua, $gid, $hi, 10);
    sql(q{SELECT pg_sleep(0.01)});
    add_member($ua, $gid, $lo, 10);
    remove_member($ua, $gid, $ua);
    is_deeply(roles($gid), { $hi => 'admin', $lo => 'member' },
              'the earlier joiner (higher id) became admin');
};

subtest 'no hand-over while another admin remains' => sub {
    my ($ua, $ub, $c) = map { user("k$_") } qw(a b c);
    my $gid = group_create($ua, 'Two admins', [$ub, $c], 10)->{group_id};
    sql(q{UPDATE group_members SET role = 'admin'
          WHERE group_id = :'g' AND user_id = :'u'}, g => $gid, u => $c);
    is(remove_member($c, $gid, $ua), 'removed', 'one admin removes the other');
    is_deeply(roles($gid), { $ub => 'member', $c => 'admin' },
              'nobody promoted');
};

subtest 'deleted accounts leave groups the same way' => sub {
    my ($ua, $ub, $c) = map { user("e$_") } qw(a b c);
    my $gid = group_create($ua, 'Orphans', [$c, $ub], 10)->{group_id};
    sql(q{DELETE FROM users WHERE id = :'id'}, id => $ua);
    is_deeply(roles($gid), { $ub => 'admin', $c => 'member' },
              'the deleted admin handed over (same joining time: lower id)');
    is(group_get($ub, $gid)->{created_by}, undef, 'created_by is null now');

    my $l = user('el');
    my $lone = group_create($l, 'Lonely', [], 10)->{group_id};
    sql(q{DELETE FROM users WHERE id = :'id'}, id => $l);
    is(group_exists($lone), 0, "a deleted account's own group is gone");
};


# --- keys ----------------------------------------------------------------------------

subtest 'public keys' => sub {
    my $ua = user('pa');
    my $ub = user('pb');

    is(sql(q{SELECT chat_get_key(:'u')}, u => $ua), '', 'no key yet: NULL');
    sql(q{SELECT chat_put_key(:'me', :'k')}, me => $ua, k => 'QUJDRA==');
    is(sql(q{SELECT chat_get_key(:'u')}, u => $ua),
       qq({"user_id":$ua,"public_key":"QUJDRA=="}), 'stored, read back');
    my $t1 = sql(q{SELECT updated_at FROM user_keys WHERE user_id = :'u'},
                 u => $ua);
    my $long = ('A' x 8188) . 'AA==';
    sql(q{SELECT chat_put_key(:'me', :'k')}, me => $ua, k => $long);
    is_deeply(jsql(q{SELECT chat_get_key(:'u')}, u => $ua),
              { user_id => $ua, public_key => $long },
              'replaced (8 KiB is allowed)');
    is(sql(q{SELECT count(*) FROM user_keys WHERE user_id = :'u'}, u => $ua), 1,
       'one row per user');
    is(sql(q{SELECT updated_at > :'t1' FROM user_keys WHERE user_id = :'u'},
           u => $ua, t1 => $t1), 't', 'updated_at moved');
    is(sql(q{SELECT chat_get_key(:'u')}, u => $ub), '', "B's key: still NULL");

    for my $bad (['not base64!', 'not base64'], ['QUJ', 'bad length'],
                 ['', 'empty'], ['QU=D', 'padding inside'],
                 ['A' x 8196, 'over 8 KiB']) {
        like(sql_error(q{SELECT chat_put_key(:'me', :'k')},
                       me => $ua, k => $bad->[0]),
             qr/23514: .*user_keys_public_key_check/, "$bad->[1]: rejected");
    }
    is(jsql(q{SELECT chat_get_key(:'u')}, u => $ua)->{public_key}, $long,
       'the stored key is untouched');
};


# --- devices ------------------------------------------------------------------------

subtest 'devices' => sub {
    my $ua = user('va');
    my $ub = user('vb');
    my $tok = "t010:$Suffix:" . ('x' x 200);
    my $dev = sub {
        sql(q{SELECT user_id || ',' || platform FROM devices
              WHERE token = :'t'}, t => $tok);
    };
    my $put = sub {
        sql(q{SELECT chat_put_device(:'me', :'t', :'p')},
            me => $_[0], t => $tok, p => $_[1]);
    };

    is($put->($ua, 'fcm'), 't', 'registered: true');
    is($dev->(), "$ua,fcm", 'registered');
    $put->($ua, 'fcm');
    is($put->($ua, 'apns'), 't', 'registered again: true');
    is($dev->(), "$ua,apns", 'registered again: one row, platform updated');
    is($put->($ub, 'webhook'), 'f', 'registered by another user: false');
    is($dev->(), "$ua,apns", '... and it stays with the first user');
    is(sql(q{SELECT chat_delete_device(:'me', :'t')}, me => $ub, t => $tok),
       'f', 'another user cannot delete it');
    is($dev->(), "$ua,apns", '... it is still there');
    is(sql(q{SELECT chat_delete_device(:'me', :'t')}, me => $ua, t => $tok),
       't', 'its holder deletes it');
    is($dev->(), '', '... gone');
    is($put->($ub, 'webhook'), 't', 'a free token can be registered');
    is($dev->(), "$ub,webhook", '... by the other user now');
    is(sql(q{SELECT count(*) FROM devices WHERE user_id = :'u'}, u => $ua), 0,
       'the first user has no device left');

    my $t2 = "t010b:$Suffix";
    sql(q{SELECT chat_put_device(:'me', :'t', 'webhook')}, me => $ub, t => $t2);
    is(sql(q{SELECT count(*) FROM devices WHERE user_id = :'u'}, u => $ub), 2,
       'a user may have several devices');

    like(sql_error(q{SELECT chat_put_device(:'me', :'t', 'sms')},
                   me => $ua, t => "t010c:$Suffix"),
         qr/23514: .*devices_platform_check/, 'unknown platform: rejected');
    like(sql_error(q{SELECT chat_put_device(:'me', '', 'fcm')}, me => $ua),
         qr/23514: .*devices_token_check/, 'empty token: rejected');
    like(sql_error(q{SELECT chat_put_device(:'me', :'t', 'fcm')},
                   me => $ua, t => 'x' x 4097),
         qr/23514: .*devices_token_check/, 'token over 4096: rejected');
    sql(q{DELETE FROM devices WHERE token IN (:'a', :'b')}, a => $tok, b => $t2);
};


# --- constraints ------------------------------------------------------------------------

subtest 'CHECK constraints' => sub {
    my $ua = user('ca');
    my $ub = user('cb');

    for my $name ('Bad_Name', "t10 sp$Suffix", 'ab', 'x' x 33, "t10\x{c3}\x{a9}$Suffix") {
        like(sql_error(q{INSERT INTO users (username, password_hash)
                         VALUES (:'n', 'x')}, n => $name),
             qr/23514: .*users_username_format/, "username '$name': rejected");
    }
    like(sql_error(q{INSERT INTO groups (name) VALUES (' ')}),
         qr/23514: .*groups_name_check/, 'blank group name: rejected');
    like(sql_error(q{INSERT INTO groups (name) VALUES (:'n')}, n => 'y' x 101),
         qr/23514: .*groups_name_check/, 'long group name: rejected');
    like(sql_error(q{INSERT INTO friends (user_id, friend_id, status)
                     VALUES (:'a', :'a', 'requested')}, a => $ua),
         qr/23514: .*friends_not_self/, 'friend of oneself: rejected');
    like(sql_error(q{INSERT INTO friends (user_id, friend_id, status)
                     VALUES (:'a', :'b', 'blocked')}, a => $ua, b => $ub),
         qr/23514: .*friends_status_check/, 'unknown friend status: rejected');
    my $gid = group_create($ua, 'Roles', [], 10)->{group_id};
    like(sql_error(q{INSERT INTO group_members (group_id, user_id, role)
                     VALUES (:'g', :'u', 'owner')}, g => $gid, u => $ub),
         qr/23514: .*group_members_role_check/, 'unknown role: rejected');
};

# What this run made goes (all of it hangs off its users), unless something
# failed and the rows may help to see why.
if (Test::More->builder->is_passing) {
    sql(q{DELETE FROM users WHERE username LIKE :'pattern'},
        pattern => "t10%\\_$Suffix");
    is(sql(q{SELECT count(*) FROM users WHERE username LIKE :'pattern'},
           pattern => "t10%\\_$Suffix"), 0, "this run's users deleted");
}

done_testing();
