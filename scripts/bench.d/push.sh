# shellcheck shell=bash
# scripts/bench.d/push.sh — the push notifications workload of scripts/bench
# (--only push; issue #16).  Sourced by scripts/bench, not run on its own:
# it uses the bench's chat nginx (127.0.0.1:18091), its results table and
# its /proc accounting, and the stack's push worker (scripts/stack svc
# push), restarted for the workload and restored afterwards.
#
# PUSH_PAIRS pairs of users of their own (benchn_000001..., consecutive
# ids): the even one of each pair connects and sends (build/chat-bench
# --mode pair --offline-receivers 1), the odd one never connects, so the
# push worker finds it offline and notifies its two devices (rows of
# `devices`, 'bench-<id>-a' and '-b', platform webhook, made for the
# workload and deleted after it).  The provider is build/chat-push-sink
# on 127.0.0.1:PUSH_PORT (the worker's CHAT_PUSH_WEBHOOK_URL); the worker
# runs with CHAT_PUSH_OPTS="--push-window W" for each W of PUSH_WINDOWS
# (CHAT_BENCH_PUSH_WINDOWS and CHAT_BENCH_PUSH_RATES override the lists,
# space-separated).
# Each rate of PUSH_RATES sends for PUSH_DURATION s, then the bench waits
# until the sink has every message (acked x 2 devices, the sum of the
# notifications' count) or nothing came for PUSH_SETTLE s.
#
# The figures: offered and acked msgs/s, notifications/s received (from
# the start of the sends to the last one), messages covered (the sum of
# count) against acked x 2, duplicates (a token given the same message_id
# twice), send->notification p50/p99 (the sink's clock at receipt minus
# the notification's ts: the gateway's clock when the newest message it
# stands for arrived), the worker's CPU per 1,000 notifications (from
# /proc, over the send and the wait), and the worker's own counts from
# its log's batch lines (sent, failed, retried, dropped, dlq; batches and
# their mean ms) with the connections the sink accepted.

PUSH_PORT=18093
PUSH_PAIRS=200
PUSH_SETTLE=10
PUSH_DEVICES=2
PUSH_SINK=$CHAT_TOP/build/chat-push-sink
PUSH_BASE=
PUSH_WAS_UP=
PUSH_SINK_PID=
PUSH_RAN=
# windows: a short one (each message its own notification at these
# rates) and the worker's default; rates: within what one worker process
# keeps up with on two shared cores, and past it
PUSH_WINDOWS="50 2000"
if [ -n "$QUICK" ]; then
    PUSH_RATES="200"
    PUSH_DURATION=5
else
    PUSH_RATES="200 1000"
    PUSH_DURATION=10
fi
# the defaults may be overridden from the environment
PUSH_WINDOWS=${CHAT_BENCH_PUSH_WINDOWS:-$PUSH_WINDOWS}
PUSH_RATES=${CHAT_BENCH_PUSH_RATES:-$PUSH_RATES}

push_psql() {   # SQL
    psql "$PG_DSN" -X -q -At -v ON_ERROR_STOP=1 -c "$1"
}

push_worker_pid() { pid_read "$VAR/run/worker-push.pid"; }

push_svc() {   # start|stop [ENV...]: the stack's push worker
    local op=$1

    shift
    env "$@" "$CHAT_TOP/scripts/stack" --profile "$CHAT_PROFILE" svc push "$op" \
        > /dev/null || { warn "scripts/stack svc push $op failed"; return 1; }
}

# Like persist, the stack's push worker runs only during its workload: a
# consumer reading along makes the local broker's fetches cost more and
# more (scripts/bench, persist_svc).  scripts/bench stops it at the start
# and push_cleanup starts it again at the end when it was running.
if push_worker_pid > /dev/null 2>&1; then
    PUSH_WAS_UP=1
fi

# the receivers' devices: two each, platform webhook; none of anyone else
# named bench-...
push_devices() {   # make|drop
    [ -n "$PUSH_BASE" ] || return 0
    push_psql "DELETE FROM devices WHERE token LIKE 'bench-%'
                 AND user_id BETWEEN $PUSH_BASE
                                 AND $PUSH_BASE + 2 * $PUSH_PAIRS - 1" \
        || warn "push: could not delete the bench devices"
    [ "$1" = make ] || return 0
    push_psql "
        INSERT INTO devices (token, user_id, platform)
        SELECT format('bench-%s-%s', u, d), u, 'webhook'
          FROM generate_series($PUSH_BASE + 1,
                               $PUSH_BASE + 2 * $PUSH_PAIRS - 1, 2) u,
               unnest(ARRAY['a', 'b']) d
        ON CONFLICT DO NOTHING"
}

# what the receivers' inboxes and the senders' routes hold in Redis (every
# message to an offline user waits in its inbox)
push_reset_state() {
    [ -n "$PUSH_BASE" ] || return 0
    redis-cli -h "${REDIS%:*}" -p "${REDIS##*:}" EVAL "
        for u = tonumber(ARGV[1]), tonumber(ARGV[2]) do
          local t = '{' .. u .. '}'
          redis.call('DEL', 'chat:inbox:' .. t, 'chat:inboxq:' .. t,
                     'chat:inboxd:' .. t, 'chat:inboxn:' .. t,
                     'chat:rbox:' .. t, 'chat:routes:' .. t)
        end
        return 1" 0 "$PUSH_BASE" "$((PUSH_BASE + 2 * PUSH_PAIRS - 1))" \
        > /dev/null || warn "push: could not clear the bench users' inboxes"
}

push_sink_stop() {   # -> the sink's last line on stdout
    local pid=$PUSH_SINK_PID

    [ -n "$pid" ] || return 0
    PUSH_SINK_PID=
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

push_cleanup() {
    push_sink_stop
    if [ -n "$PUSH_RAN" ]; then
        push_devices drop
        push_reset_state
        push_svc stop || true
    fi
    # the worker as it was: stopped, or started with the caller's settings
    [ -z "$PUSH_WAS_UP" ] || push_svc start || true
}

# sums KEY= over the worker's batch lines from byte OFFSET of its log
push_log_sum() {   # LOG OFFSET KEY...
    local log=$1 off=$2

    shift 2
    tail -c +"$((off + 1))" "$log" 2>/dev/null \
        | grep 'event=batch ' \
        | awk -v keys="$*" 'BEGIN { n = split(keys, k, " ") }
            { for (i = 1; i <= NF; i++) { p = index($i, "=")
                  s[substr($i, 1, p - 1)] += substr($i, p + 1) } }
            END { for (i = 1; i <= n; i++)
                      printf "%s%s", (i > 1 ? " " : ""), s[k[i]] + 0 }'
}

push_workload() {   # WINDOW RATE -> the table's workload name
    printf 'push, --push-window %s ms, %s msgs/s to %s offline users x %s' \
        "$1" "$2" "$PUSH_PAIRS" "$PUSH_DEVICES"
    printf ' devices (webhook to a local receiver)'
}

run_push() {   # TARGET RUN
    local t=$1 run=$2 window rate why= wwhy

    if [ "$t" != chat ]; then
        why="n/a (no equivalent)"
    elif [ ! -x "$PUSH_SINK" ]; then
        why="n/a (no build/chat-push-sink: make)"
    fi
    if [ -z "$why" ]; then
        PUSH_RAN=1
        [ -n "$PUSH_BASE" ] \
            || PUSH_BASE=$(ensure_named_users benchn_ $((2 * PUSH_PAIRS)))
        push_devices make || why="n/a (could not make the devices)"
    fi
    for window in $PUSH_WINDOWS; do
        wwhy=$why
        if [ -z "$wwhy" ]; then
            push_svc stop || true
            push_start "$window" || wwhy="n/a (the push worker did not start)"
        fi
        for rate in $PUSH_RATES; do
            if [ -n "$wwhy" ]; then
                result "$(push_workload "$window" "$rate")" "msgs acked/s" \
                    "$t" "$wwhy"
            else
                push_step "$(push_workload "$window" "$rate")" "$run" \
                    "$window" "$rate"
            fi
        done
    done
    [ "$t" = chat ] || return 0
    push_svc stop || true
    push_devices drop
    push_reset_state
    PUSH_RAN=
}

# the stack's worker with the sink as its provider, once it has its
# partitions (messages sent before would wait for the group's rebalance)
push_start() {   # WINDOW
    local log=$VAR/log/worker-push.log off i

    off=$(stat -c %s "$log" 2>/dev/null || echo 0)
    push_svc start "CHAT_PUSH_WEBHOOK_URL=http://127.0.0.1:$PUSH_PORT/push" \
        "CHAT_PUSH_OPTS=--push-window $1" || return 1
    for i in $(seq 300); do
        tail -c +"$((off + 1))" "$log" | grep -q 'event=assigned' && break
        sleep 0.1
    done
    tail -c +"$((off + 1))" "$log" | grep -q 'event=assigned' \
        || warn "push: the worker has no partitions after 30 s"
}

push_step() {   # WORKLOAD RUN WINDOW RATE
    local w=$1 run=$2 window=$3 rate=$4 tag out line sline i
    local since before after pid log off ms msgs acked want got prev quiet
    local n

    tag=push-w$window-r$rate-$run
    out=$OUT/$tag.out
    log=$VAR/log/worker-push.log

    # the worker first reads what the other workloads sent (no devices:
    # no notifications)
    groups_caught_up 120 chat-push \
        || warn "push: the worker lags ($(group_lag chat-push)) before the run"
    push_reset_state
    since=$(date +%s%3N)
    port_free_or_die "$PUSH_PORT"
    rm -f "$OUT/$tag.ready"
    "$PUSH_SINK" --port "$PUSH_PORT" --since "$since" \
        --ready-file "$OUT/$tag.ready" --out "$OUT/$tag.jsonl" \
        > "$OUT/$tag.sink" 2>&1 &
    PUSH_SINK_PID=$!
    for i in $(seq 50); do
        [ -e "$OUT/$tag.ready" ] && break
        sleep 0.1
    done
    [ -e "$OUT/$tag.ready" ] || { push_sink_stop
        result "$w" "msgs acked/s" chat "n/a (the sink did not start)"
        return 0; }

    pid=$(push_worker_pid) || pid=
    off=$(stat -c %s "$log" 2>/dev/null || echo 0)
    before=$(cpu_ticks_pid "$pid")
    timeout 300 "$BENCH" $(bench_args chat) --user-base "$PUSH_BASE" \
        --mode pair --pairs "$PUSH_PAIRS" --offline-receivers 1 --procs 2 \
        --rates "$rate" --warmup 0 --duration "$PUSH_DURATION" --drain 1 \
        > "$out" 2> "$OUT/$tag.err" \
        || warn "push: chat-bench exited non-zero (see $out)"
    line=$(grep '^phase=step' "$out" || true)
    acked=$(kv "$line" acked)
    want=$(( ${acked:-0} * PUSH_DEVICES ))

    # until every message is covered, or nothing came for PUSH_SETTLE s
    prev=-1 quiet=0
    for i in $(seq 120); do
        sline=$(curl -s "http://127.0.0.1:$PUSH_PORT/stats" || true)
        got=$(kv "$sline" messages)
        [ "${got:-0}" -ge "$want" ] && break
        if [ "${got:-0}" = "$prev" ]; then
            quiet=$((quiet + 1))
            [ "$quiet" -ge "$PUSH_SETTLE" ] && break
        else
            quiet=0
        fi
        prev=${got:-0}
        sleep 1
    done
    # a moment for what would come twice
    sleep 1
    after=$(cpu_ticks_pid "$pid")
    push_sink_stop
    sline=$(tail -1 "$OUT/$tag.sink")
    msgs=$(kv "$sline" messages)

    n=$(kv "$sline" notifications)
    result "$w" "msgs acked/s" chat \
        "$(awk -v a="${acked:-0}" -v d="$PUSH_DURATION" \
               'BEGIN { printf "%.0f", a / d }')" high
    result "$w" "send->ack p99 ms" chat "$(kv "$line" ack_p99_ms)" low
    result "$w" "notifications/s at the receiver (first send to last)" chat \
        "$(kv "$sline" rate)" high
    result "$w" "messages x devices covered/s (sum of count, same span)" chat \
        "$(awk -v m="${msgs:-0}" -v s="$(kv "$sline" span_s)" \
               'BEGIN { printf "%.0f", (s > 0 ? m / s : 0) }')" high
    result "$w" "notifications / messages covered / acked x $PUSH_DEVICES" \
        chat "${n:-0} / ${msgs:-0} / $want" -
    result "$w" "missing (acked x $PUSH_DEVICES - covered)" chat \
        "$(( want > ${msgs:-0} ? want - ${msgs:-0} : 0 ))" low
    result "$w" "duplicates / bad / stale" chat \
        "$(kv "$sline" dup) / $(kv "$sline" bad) / $(kv "$sline" stale)" low
    result "$w" "send->notification p50 ms" chat "$(kv "$sline" p50_ms)" low
    result "$w" "send->notification p99 ms" chat "$(kv "$sline" p99_ms)" low
    result "$w" "send->notification max ms" chat "$(kv "$sline" max_ms)" low
    ms=$(( (${after:-0} - ${before:-0}) * 1000 / CLK_TCK ))
    [ "${n:-0}" -gt 0 ] \
        && result "$w" "worker CPU-ms per 1k notifications" chat \
            "$(awk -v m="$ms" -v n="$n" \
                   'BEGIN { printf "%.1f", m * 1000 / n }')" low
    result "$w" "worker log: sent/failed/retried/dropped/dlq" chat \
        "$(push_log_sum "$log" "$off" sent failed retried dropped dlq \
           | tr ' ' /)" -
    result "$w" "worker log: batches, their mean ms; receiver connections" \
        chat "$(tail -c +"$((off + 1))" "$log" 2>/dev/null \
                | grep 'event=batch ' | awk '{ for (i = 1; i <= NF; i++)
                      if ($i ~ /^ms=/) s += substr($i, 4); n++ }
                  END { printf "%d, %.0f", n, n ? s / n : 0 }'); $(
           kv "$sline" conns)" -
}

cpu_ticks_pid() {   # PID -> utime + stime in ticks (0 when gone)
    local s

    [ -n "$1" ] || { echo 0; return 0; }
    s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || { echo 0; return 0; }
    set -- $s
    echo $(( ${12} + ${13} ))
}
