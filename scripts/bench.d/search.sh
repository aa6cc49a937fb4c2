# shellcheck shell=bash
# scripts/bench.d/search.sh — the search workload of scripts/bench (--only
# search; issue #17).  Sourced by scripts/bench, not run on its own: it
# uses the bench's chat nginx (127.0.0.1:18091, GET /v1/search), its
# results table, and the stack's index and persist workers (stopped by
# scripts/bench for the other workloads: started here, given the time to
# read what those sent, up to 600 s, and stopped again after it).
#
# SEARCH_COUNT one-to-one messages (1,000,000; --quick 100,000) are
# written to chat.messages in the gateway's format by
# build/chat-bench-produce, over SEARCH_CONVS conversations of users of
# their own (ids from SEARCH_BASE, made from the clock: no rows in users),
# bodies of 100 bytes of words w0..w<SEARCH_WORDS-1> drawn log-uniformly
# (w0 in about two messages of three, w4000 in about one of 200).  The
# producer holds back while the persist group lags 8,000 records behind:
# the local broker keeps ~5 MiB per partition and drops older records
# read or not, and the persist worker is the slower of the two consumers
# (a first full run held back on the index group: the index got all
# 1,000,000, the persist worker lost 178,000 to the broker).  Indexing: messages/s
# from the first record produced to the last row in message_search.  The
# persist worker stores them too (a search result is the stored message).
#
# Then, for a frequent and a rare word, one user's search (user
# SEARCH_BASE: one conversation of SEARCH_COUNT / SEARCH_CONVS messages,
# like everyone here): GET /v1/search?q=<word> with wrk (8 connections,
# SEARCH_DURATION s, the user's token), and the same query, `SELECT
# chat_search_json(...)`, straight in PostgreSQL with pgbench (8 clients,
# the same time) as the reference: requests/s and latency p50/p99 of
# each.  The rows are deleted afterwards (message_search, messages,
# deliveries of those users).

SEARCH_CONVS=10000
SEARCH_WORDS=5000
SEARCH_DURATION=10
if [ -n "$QUICK" ]; then
    SEARCH_COUNT=100000
else
    SEARCH_COUNT=1000000
fi
SEARCH_COUNT=${CHAT_BENCH_SEARCH_COUNT:-$SEARCH_COUNT}
SEARCH_BASE=
SEARCH_RAN=

search_psql() {   # SQL
    psql "$PG_DSN" -X -q -At -v ON_ERROR_STOP=1 -c "$1"
}


search_rows() {   # TABLE -> rows of the bench's users
    search_psql "SELECT count(*) FROM $1 WHERE sender BETWEEN $SEARCH_BASE
                   AND $SEARCH_BASE + 2 * $SEARCH_CONVS - 1"
}

search_drop() {
    [ -n "$SEARCH_BASE" ] || return 0
    search_psql "
        DELETE FROM message_search WHERE sender BETWEEN $SEARCH_BASE
            AND $SEARCH_BASE + 2 * $SEARCH_CONVS - 1;
        DELETE FROM deliveries WHERE recipient BETWEEN $SEARCH_BASE
            AND $SEARCH_BASE + 2 * $SEARCH_CONVS - 1;
        DELETE FROM messages WHERE sender BETWEEN $SEARCH_BASE
            AND $SEARCH_BASE + 2 * $SEARCH_CONVS - 1" \
        || warn "search: could not delete the bench rows"
}

search_cleanup() {
    if [ -n "$SEARCH_RAN" ]; then
        search_drop
        worker_svc index stop
        worker_svc persist stop
    fi
}

# percentile P (0..100) of the numbers on stdin
search_pct() {
    sort -n | awk -v p="$1" '{ v[NR] = $1 }
        END { if (NR) { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1;
                        print v[i] } }'
}

run_search() {   # TARGET RUN
    local w="search, $SEARCH_COUNT messages (chat only)"
    local t0 t1 n i ms word token out hits

    if [ "$1" != chat ]; then
        result "$w" "indexing msgs/s (produced to indexed)" nchan \
            "n/a (no equivalent)"
        return 0
    fi

    SEARCH_RAN=1
    SEARCH_BASE=$(( $(date +%s) * 1000 ))
    worker_svc index start
    worker_svc persist start
    # Both ran only during their own workloads: they read what the others
    # sent first, so that indexing is timed from a group that has nothing
    # else to read (the producer holds back on the persist group's lag).
    groups_caught_up 600 chat-index chat-persist \
        || warn "search: the index and persist workers still lag after 600 s"

    # indexing: the first record produced to the last row indexed
    t0=$(date +%s%3N)
    KAFKA_BROKERS=$KAFKA "$CHAT_TOP/build/chat-bench-produce" \
        --count "$SEARCH_COUNT" --conversations "$SEARCH_CONVS" \
        --words "$SEARCH_WORDS" --body-size 100 \
        --user-base "$SEARCH_BASE" --group chat-persist --max-lag 8000 \
        > "$OUT/search-produce-$2.out" 2>&1 \
        || { warn "search: chat-bench-produce failed"; return 0; }
    for ((i = 0; i < 600; i++)); do
        n=$(search_rows message_search)
        [ "$n" -ge "$SEARCH_COUNT" ] && break
        sleep 0.5
    done
    t1=$(date +%s%3N)
    result "$w" "messages indexed (of $SEARCH_COUNT)" chat "$n" -
    result "$w" "indexing msgs/s (produced to indexed)" chat \
        "$(awk -v n="$n" -v ms=$((t1 - t0)) 'BEGIN { printf "%.0f", n * 1000 / ms }')" high

    # a result is the stored message: the persist worker must have them
    for ((i = 0; i < 600; i++)); do
        [ "$(search_rows messages)" -ge "$SEARCH_COUNT" ] && break
        sleep 0.5
    done
    search_psql "ANALYZE message_search; ANALYZE messages" || true

    token=$("$BENCH" --jwt-secret "$SECRET" --token "$SEARCH_BASE")
    for word in w0 w4000; do
        out=$OUT/search-$word-$2
        hits=$(curl -s -H "Authorization: Bearer $token" \
                   "http://127.0.0.1:$CHAT_PORT/v1/search?q=$word&limit=50" \
               | python3 -c 'import json, sys
print(len(json.load(sys.stdin)["results"]))' 2>/dev/null || echo '?')
        wrk -t2 -c8 -d"${SEARCH_DURATION}s" --latency \
            -H "Authorization: Bearer $token" \
            "http://127.0.0.1:$CHAT_PORT/v1/search?q=$word" \
            > "$out.wrk" 2>&1 || warn "search: wrk failed"
        result "$w" "q=$word: hits on the first page (limit 50)" chat "$hits" -
        result "$w" "q=$word: GET /v1/search req/s" chat \
            "$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' "$out.wrk")" high
        result "$w" "q=$word: GET /v1/search p50 / p99 ms" chat \
            "$(awk '$1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
                    function ms(v) { if (v ~ /us$/) return v / 1000;
                                     if (v ~ /ms$/) return v + 0;
                                     if (v ~ /s$/) return v * 1000; return v }
                    END { printf "%.2f / %.2f", ms(p50), ms(p99) }' "$out.wrk")" -

        # the same query in PostgreSQL alone
        printf "SELECT chat_search_json(%s, '%s', NULL, 20, NULL, NULL, NULL, NULL);\n" \
            "$SEARCH_BASE" "$word" > "$out.sql"
        rm -f "$out".pgb.*
        (cd "$OUT" && pgbench "$PG_DSN" -n -c8 -j2 -T"$SEARCH_DURATION" \
             -f "$out.sql" -l --log-prefix="$(basename "$out").pgb" \
             > "$out.pgbench" 2>&1) || warn "search: pgbench failed"
        result "$w" "q=$word: the query in psql (pgbench) tps" chat \
            "$(awk '/^tps =/ { printf "%.0f", $3 }' "$out.pgbench")" high
        ms=$(cat "$OUT/$(basename "$out")".pgb.* 2>/dev/null \
                 | awk '{ print $3 / 1000 }')
        result "$w" "q=$word: the query in psql p50 / p99 ms" chat \
            "$(printf '%s\n' "$ms" | search_pct 50) / $(printf '%s\n' "$ms" | search_pct 99)" -
    done
    search_drop
    # like every consumer of chat.messages, they run only during their
    # workload (scripts/bench, persist_svc); scripts/bench's cleanup starts
    # the ones that were up before it
    worker_svc index stop
    worker_svc persist stop
}
