#!/usr/bin/env bash
# scripts/bench.d/persist.sh — messages/s that chat-worker persist writes
# into PostgreSQL (synchronous_commit as the stack sets it: on), and its
# memory over the run.
#
# On a running stack (`make run`, or --profile test): the stack's own
# persist worker drains and stops, then --workers fresh ones (group
# chat-persist, so they start where it stopped) are started with the
# batch settings given, build/chat-bench-produce writes --count message
# records to chat.messages (keeping the group's commits at most 8,000
# records behind the end of each partition: the local broker keeps only
# ~5 MiB per partition and drops older records, read or not), and the
# run ends when the group has committed everything.  Afterwards the rows are
# counted (each message exactly once), deleted again (unless --keep), and
# the stack's worker is started again.
#
#   scripts/bench.d/persist.sh [--profile run|test] [--count 1000000]
#       [--batch-size 10000] [--batch-wait 500] [--writers 2] [--workers 1]
#       [--keep]
#
# --writers: PostgreSQL connections (and threads) of one worker process;
# --workers: worker processes.
#
# Prints one table; the workers' logs, the RSS samples and the producer's
# line are kept in VAR/bench-persist/.
set -euo pipefail

LOG_PREFIX=bench-persist
. "$(dirname "$0")/../lib.sh"

PROFILE=run
COUNT=1000000
BATCH=10000
WAIT=500
NWORKERS=1
WRITERS=2
KEEP=
while [ $# -gt 0 ]; do
    case "$1" in
    --profile) PROFILE=$2; shift 2 ;;
    --count) COUNT=$2; shift 2 ;;
    --batch-size) BATCH=$2; shift 2 ;;
    --batch-wait) WAIT=$2; shift 2 ;;
    --workers) NWORKERS=$2; shift 2 ;;
    --writers) WRITERS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) die "usage: $0 [--profile run|test] [--count N] [--batch-size N]" \
           "[--batch-wait MS] [--writers N] [--workers N] [--keep]" ;;
    esac
done

chat_profile "$PROFILE"
[ -s "$STACK_ENV" ] || die "no $STACK_ENV: bring the stack up first (make run)"
BIN=$CHAT_TOP/build
for b in chat-worker chat-bench-produce; do
    [ -x "$BIN/$b" ] || die "$BIN/$b missing: run 'make'"
done

DSN=$(env_get "$STACK_ENV" PG_DSN)
export KAFKA_BROKERS PG_DSN
KAFKA_BROKERS=$(env_get "$STACK_ENV" KAFKA_BROKERS)
PG_DSN=$DSN
STACK=("$CHAT_TOP/scripts/stack" --profile "$PROFILE")
DIR=$VAR/bench-persist
rm -rf "$DIR"
mkdir -p "$DIR"

psql_q() {   # SQL -> rows; the password through the environment
    PGPASSWORD=${DSN##*password=} psql -X -q -A -t -w -v ON_ERROR_STOP=1 \
        -d "${DSN% password=*}" -c "$1"
}

lag() { "$BIN/chat-worker" lag | sed -n 's/^total lag=//p'; }

busy_jiffies() {   # "busy total" of all CPUs, from /proc/stat
    awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i
                   print t - $5 - $6, t }' /proc/stat
}

stack_jiffies() {   # CPU used so far by this stack's PostgreSQL and broker
    local pg kafka pids p sum=0

    pg=$(pid_read "$VAR/pg/data/postmaster.pid" || true)
    kafka=$(pid_read "$VAR/run/kafka-broker.pid" || true)
    pids="$pg $kafka"
    [ -z "$pg" ] || pids+=" $(pid_children "$pg")"
    for p in $pids; do
        sum=$((sum + $(awk '{ print $14 + $15 + $16 + $17 }' \
                           "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$sum"
}

proc_jiffies() {   # PID: utime + stime
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

cpu_sample() {   # N: sets BUSYn, TOTALn, STACKn, WORKERn
    local p b t w=0

    read -r b t < <(busy_jiffies)
    for p in "${PIDS[@]}"; do
        w=$((w + $(proc_jiffies "$p")))
    done
    printf -v "BUSY$1" %s "$b"
    printf -v "TOTAL$1" %s "$t"
    printf -v "STACK$1" %s "$(stack_jiffies)"
    printf -v "WORKER$1" %s "$w"
}

PIDS=()
SAMPLER=
cleanup() {
    local p

    [ -z "$SAMPLER" ] || kill "$SAMPLER" 2>/dev/null || true
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait_gone "$p" 60 || kill -KILL "$p" 2>/dev/null || true
    done
    "${STACK[@]}" svc persist start > /dev/null || warn "could not restart the stack's worker"
}

say "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
SYNC=$(psql_q "SHOW synchronous_commit")
"${STACK[@]}" svc persist stop > /dev/null
trap cleanup EXIT
[ "$(lag)" = 0 ] || warn "the group is $(lag) records behind before the run"

for ((i = 1; i <= NWORKERS; i++)); do
    "$BIN/chat-worker" persist --batch-size "$BATCH" --batch-wait "$WAIT" \
        --writers "$WRITERS" \
        > "$DIR/worker-$i.log" 2>&1 &
    PIDS+=($!)
done
for ((i = 1; i <= NWORKERS; i++)); do
    for _ in $(seq 300); do
        grep -q 'event=assigned' "$DIR/worker-$i.log" && break
        sleep 0.1
    done
done
# every member has its partitions once nobody is waiting for a rebalance
sleep 2

( while :; do
      for p in "${PIDS[@]}"; do
          printf '%s %s %s\n' "$(date +%s.%N)" "$p" \
              "$(awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null)"
      done
      sleep 1
  done ) > "$DIR/rss.log" &
SAMPLER=$!

cpu_sample 0
T0=$(date +%s.%N)
/usr/bin/time -f '%U %S' -o "$DIR/produce.time" \
    "$BIN/chat-bench-produce" --count "$COUNT" --max-lag 8000 \
    > "$DIR/produce.log" || die "the producer failed: $(cat "$DIR/produce.log")"
T_PRODUCED=$(date +%s.%N)
while [ "$(lag)" != 0 ]; do
    sleep 0.2
done
T1=$(date +%s.%N)
cpu_sample 1
kill "$SAMPLER" 2>/dev/null || true
SAMPLER=

# CPU of the run, in % of one core: everything, ours, everyone else's
HZ=$(getconf CLK_TCK)
CPU=$(awk -v b="$((BUSY1 - BUSY0))" -v t="$((TOTAL1 - TOTAL0))" \
          -v n="$(nproc)" -v w="$((WORKER1 - WORKER0))" \
          -v s="$((STACK1 - STACK0))" -v hz="$HZ" \
          -v pt="$(awk '{ print $1 + $2 }' "$DIR/produce.time")" '
      BEGIN { all = 100 * n * b / t; el = t / n / hz
              w = 100 * w / hz / el; s = 100 * s / hz / el
              p = 100 * pt / el
              printf "%.0f %.0f %.0f %.0f %.0f", all, w, s, p,
                     all - w - s - p }')

BASE=$(sed -n 's/.* user_base=\([0-9]*\).*/\1/p' "$DIR/produce.log")
ROWS=$(psql_q "SELECT count(*), count(DISTINCT id) FROM messages
               WHERE sender BETWEEN $BASE AND $BASE + 1000000")
DELIV=$(psql_q "SELECT count(*) FROM deliveries
                WHERE recipient BETWEEN $BASE AND $BASE + 1000000")

# from the workers' logs: rows stored, and the span from the first batch
# to the last one (the steady rate, without the producer's start)
perl -e '
    my ($first, $last, $stored, $batches, $ms) = (undef, 0, 0, 0, 0);
    for my $f (@ARGV) {
        open my $in, "<", $f or next;
        while (<$in>) {
            next unless /event=batch / && /stored=(\d+)/;
            my $s = $1;
            my ($h, $m, $sec) = /ts=\S+T(\d+):(\d+):([\d.]+)Z/;
            my $t = $h * 3600 + $m * 60 + $sec;
            $first = $t if !defined $first || $t < $first;
            $last = $t if $t > $last;
            $stored += $s;
            $batches++;
            $ms += $1 if /\bms=(\d+)/;
        }
    }
    printf "%d %.2f %d %.1f\n", $stored, $last - ($first // $last),
           $batches, $batches ? $ms / $batches : 0;
' "$DIR"/worker-*.log > "$DIR/batches"
read -r STORED SPAN BATCHES BATCH_MS < "$DIR/batches"

RSS=$(awk 'NR == 1 { first = $3 } { if ($3 > max) max = $3; last = $3 }
           END { printf "%d %d %d", first / 1024, max / 1024, last / 1024 }' \
      "$DIR/rss.log")

perl -e '
    my ($count, $t0, $tp, $t1, $rows, $deliv, $stored, $span, $batches,
        $batch_ms, $rss, $sync, $batch, $wait, $workers, $cpu,
        $writers) = @ARGV;
    my ($first, $max, $last) = split / /, $rss;
    my ($all, $w, $s, $p, $other) = split / /, $cpu;
    my $total = $t1 - $t0;
    printf "%-40s %s\n", "messages produced", $count;
    printf "%-40s %s\n", "rows in messages (count, distinct ids)", $rows;
    printf "%-40s %s\n", "rows in deliveries", $deliv;
    printf "%-40s %s\n", "synchronous_commit", $sync;
    printf "%-40s %s x (writers %s, batch-size %s, batch-wait %s ms)\n",
           "workers", $workers, $writers, $batch, $wait;
    printf "%-40s %.1f s (producer done after %.1f s)\n",
           "first record to all committed", $total, $tp - $t0;
    printf "%-40s %.0f messages/s\n", "end to end", $count / $total;
    printf "%-40s %.0f messages/s (%d batches, %.0f ms each)\n",
           "first batch to last", $span > 0 ? $stored / $span : 0,
           $batches, $batch_ms;
    printf "%-40s %d MiB at start, %d MiB max, %d MiB at the end\n",
           "worker RSS", $first, $max, $last;
    printf "%-40s %d%% of %d%%: worker %d%%, PostgreSQL + broker %d%%, "
           . "producer %d%%, everything else %d%%\n",
           "CPU during the run (100% = one core)", $all,
           100 * `nproc`, $w, $s, $p, $other;
' "$COUNT" "$T0" "$T_PRODUCED" "$T1" "$ROWS" "$DELIV" "$STORED" "$SPAN" \
  "$BATCHES" "$BATCH_MS" "$RSS" "$SYNC" "$BATCH" "$WAIT" "$NWORKERS" "$CPU" \
  "$WRITERS" \
  | tee "$DIR/result"
say "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$ROWS" = "$COUNT|$COUNT" ] \
    || warn "PostgreSQL holds $ROWS rows of $COUNT: look for 'Offset out of" \
            "range' in $DIR/worker-*.log (records the broker dropped unread)"

if [ -z "$KEEP" ]; then
    psql_q "DELETE FROM messages WHERE sender BETWEEN $BASE AND $BASE + 1000000;
            DELETE FROM deliveries WHERE recipient BETWEEN $BASE AND $BASE + 1000000" \
        > /dev/null
    # so that the next run does not start on dead rows
    psql_q "VACUUM messages, deliveries" > /dev/null
fi
