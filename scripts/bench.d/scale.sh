# shellcheck shell=bash
# scripts/bench.d/scale.sh — the scale-out workload of scripts/bench (--only
# scale; issue #18).  Sourced by scripts/bench, not run on its own: it uses
# the bench's results table, /proc sampling, bench users and chat-bench,
# and renders and starts nginx of its own, all on the stack's backends
# (PostgreSQL, Redis, the broker, the JWT secret and the TLS certificate):
#
#   nodeK  127.0.0.1:SCALE_PORT+K (K = 1..3): the chat module as the
#          bench's chat nginx (/v1/ws, /v1/, /healthz), `chat_node_name
#          nodeK`, the client address from the edge (real_ip)
#   edge   the chat module for `chat_auth` only, stock proxying with
#          `upstream { hash $chat_user_id consistent; keepalive; }`:
#            SCALE_PORT+10  plain HTTP to node1 alone
#            SCALE_PORT+11  plain HTTP to node1..3
#            SCALE_PORT+12  TLS (1.2, 1.3; HTTP/2 for the API) to node1..3
#   ref    SCALE_PORT+13: stock nginx, no module, the same TLS settings,
#          `return 200`: the reference for the handshakes
#
# 1:1 traffic (chat-bench --mode pair, PAIRS pairs) at one fixed rate,
# SCALE_RATE msgs/s, twice (the figures are the second step's: the first
# one warms the set-up up: new connections, producers, pools), then the
# highest rate kept up with (doubling from 1,000, bisected), in three
# set-ups: (a) straight to node1, (b) through the edge to node1, (c)
# through the edge to the three nodes (a user's devices on one node, a
# pair's two users on two nodes about 2 times in 3, so most messages
# cross nodes through Redis).  chat-bench speaks no
# TLS: (b) and (c) reach the edge over plain HTTP and the TLS cost is
# measured apart, as handshakes.  Nodes 2 and 3 run only during (c).
# CPU from /proc as for the 1:1 workload: the nginx of the set-up (node1;
# edge + node1; edge + nodes) and the stack's backends, over the second
# fixed step (its warm-up, measure and drain), per 1,000 messages sent in
# it.  The stack's index worker is stopped meanwhile like persist and push
# (scripts/bench, persist_svc: a consumer reading along makes the local
# broker's fetches cost more and more, which would weigh on the later
# set-ups more than the earlier ones).
#
# TLS handshakes/s: `openssl s_time -new` (a full handshake per
# connection, no request, no resumption; one at a time per process),
# SCALE_TLS_CLIENTS processes at once for SCALE_TLS_SECS s each, TLS 1.3
# then TLS 1.2 (ECDSA P-256 certificate, X25519), at the edge and at the
# reference; with the
# server's CPU per 1,000 handshakes from /proc, and its inverse,
# handshakes/s per core of the server's CPU (what the clients and the
# machine's other load do not move).

SCALE_NODES=3
SCALE_RATE=${CHAT_BENCH_SCALE_RATE:-2000}
SCALE_PORT=$((18100 + BENCH_PORT_SHIFT))
SCALE_DIR=$OUT/scale
SCALE_TLS_CLIENTS=4
if [ -n "$QUICK" ]; then
    SCALE_ARGS=(--warmup 0.5 --duration 2 --drain 1 --bisect 0)
    SCALE_TLS_SECS=3
else
    SCALE_ARGS=(--warmup 1 --duration 5 --drain 2 --bisect 1)
    SCALE_TLS_SECS=10
fi
SCALE_TLS_CERT=$(env_get "$STACK_ENV" CHAT_TLS_CERT) || SCALE_TLS_CERT=
SCALE_TLS_KEY=${SCALE_TLS_CERT%/*}/key.pem
SCALE_CIPHERS=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384
SCALE_CIPHERS=$SCALE_CIPHERS:ECDHE-ECDSA-CHACHA20-POLY1305
SCALE_CIPHERS=$SCALE_CIPHERS:ECDHE-RSA-AES128-GCM-SHA256
SCALE_CIPHERS=$SCALE_CIPHERS:ECDHE-RSA-AES256-GCM-SHA384
SCALE_CIPHERS=$SCALE_CIPHERS:ECDHE-RSA-CHACHA20-POLY1305
SCALE_INDEX_STOPPED=


scale_port() {   # nodeK|edge1|edge3|edgetls|ref -> port
    case "$1" in
    node*) echo $((SCALE_PORT + ${1#node})) ;;
    edge1) echo $((SCALE_PORT + 10)) ;;
    edge3) echo $((SCALE_PORT + 11)) ;;
    edgetls) echo $((SCALE_PORT + 12)) ;;
    ref) echo $((SCALE_PORT + 13)) ;;
    esac
}

# the TLS settings of the edge and the reference
scale_tls_conf() {
    cat <<CONF
        ssl_certificate     $SCALE_TLS_CERT;
        ssl_certificate_key $SCALE_TLS_KEY;
        ssl_protocols       TLSv1.2 TLSv1.3;
        ssl_ciphers         $SCALE_CIPHERS;
        ssl_prefer_server_ciphers off;
        ssl_ecdh_curve      X25519:prime256v1;
        ssl_session_cache   shared:SSL:10m;
        ssl_session_timeout 1h;
CONF
}

# Mode 600: the configs hold the database and Redis passwords.
scale_write_confs() (
    local k name up3=

    umask 077
    for name in node1 node2 node3 edge ref; do
        mkdir -p "$SCALE_DIR/$name/logs" "$SCALE_DIR/$name/tmp"
    done
    for k in $(seq "$SCALE_NODES"); do
        up3="$up3        server 127.0.0.1:$(scale_port node$k)"
        up3="$up3 max_fails=1 fail_timeout=10s;
"
        { echo "load_module $MODULE;"
          nginx_common "$SCALE_DIR/node$k"
          cat <<CONF
events { worker_connections 19900; }
http {
    access_log off;
    client_body_temp_path $SCALE_DIR/node$k/tmp;
    chat_node_name           node$k;
    chat_redis               $REDIS;
    chat_redis_timeout       1s;
    chat_redis_password_file $REDIS_PASSWORD_FILE;
    chat_postgres            "$PG_DSN";
    chat_postgres_pool_size  2;
    chat_postgres_timeout    5s;
    chat_kafka_brokers       $KAFKA;
    chat_kafka_timeout       10s;
${CHAT_BENCH_KAFKA_OPTION:+    chat_kafka_option        $CHAT_BENCH_KAFKA_OPTION;}
    chat_jwt_secret_file     $SECRET;
    # the client's address from the edge, for the per-address limits
    set_real_ip_from 127.0.0.0/8;
    real_ip_header   X-Forwarded-For;
    server {
        listen 127.0.0.1:$(scale_port node$k) reuseport backlog=4096;
        location = /healthz { chat_healthz; }
        location /v1/ { chat_auth on; chat_api; }
        # the benchmark measures the gateway, not the per-user limits
        location = /v1/ws {
            chat_send_rate off;
            chat_ws_frame_rate off;
            chat_websocket;
        }
    }
}
CONF
        } > "$SCALE_DIR/node$k/nginx.conf"
    done

    { echo "load_module $MODULE;"
      nginx_common "$SCALE_DIR/edge"
      cat <<CONF
events { worker_connections 19900; }
http {
    access_log off;
    client_body_temp_path $SCALE_DIR/edge/tmp;
    # chat_auth only: the token's signature, expiry and deny-list
    chat_redis               $REDIS;
    chat_redis_timeout       1s;
    chat_redis_password_file $REDIS_PASSWORD_FILE;
    chat_jwt_secret_file     $SECRET;
    upstream chat_one {
        hash \$chat_user_id consistent;
        server 127.0.0.1:$(scale_port node1) max_fails=1 fail_timeout=10s;
        keepalive 64;
    }
    upstream chat_nodes {
        hash \$chat_user_id consistent;
$up3        keepalive 64;
    }
    map \$http_upgrade \$chat_connection {
        default upgrade;
        ''      '';
    }
    # every proxy_set_header here, none in a location: a location with
    # one of its own inherits none of these (lua-free-conf/edge-and-nodes.conf)
    proxy_http_version    1.1;
    proxy_set_header      Host \$host;
    proxy_set_header      X-Forwarded-For \$remote_addr;
    proxy_set_header      X-Forwarded-Proto \$scheme;
    proxy_set_header      Upgrade \$http_upgrade;
    proxy_set_header      Connection \$chat_connection;
    proxy_read_timeout    1h;
    proxy_send_timeout    1h;
    proxy_connect_timeout 2s;
    proxy_next_upstream   error timeout;
    proxy_buffering       off;
    server {
        listen 127.0.0.1:$(scale_port edge1) reuseport backlog=4096;
        location = /healthz { return 200 "ok\n"; }
        location = /v1/ws {
            chat_auth on;
            proxy_pass http://chat_one;
        }
    }
    server {
        listen 127.0.0.1:$(scale_port edge3) reuseport backlog=4096;
        listen 127.0.0.1:$(scale_port edgetls) reuseport backlog=4096
               ssl http2;
$(scale_tls_conf)
        location = /healthz { return 200 "ok\n"; }
        location = /v1/ws {
            chat_auth on;
            proxy_pass http://chat_nodes;
        }
        location /v1/ {
            chat_auth on;
            proxy_pass http://chat_nodes;
        }
    }
}
CONF
    } > "$SCALE_DIR/edge/nginx.conf"

    { nginx_common "$SCALE_DIR/ref"
      cat <<CONF
events { worker_connections 19900; }
http {
    access_log off;
    client_body_temp_path $SCALE_DIR/ref/tmp;
    server {
        listen 127.0.0.1:$(scale_port ref) reuseport backlog=4096 ssl http2;
$(scale_tls_conf)
        location / { return 200 "ok\n"; }
    }
}
CONF
    } > "$SCALE_DIR/ref/nginx.conf"
)

scale_start() {   # NAME URL
    local dir=$SCALE_DIR/$1 i

    pid_read "$dir/nginx.pid" > /dev/null && return 0
    /usr/sbin/nginx -p "$dir/" -c "$dir/nginx.conf" -q -t \
            2> "$dir/logs/t.log" \
        || { cat "$dir/logs/t.log" >&2; warn "scale: $1: nginx -t failed"
             return 1; }
    /usr/sbin/nginx -p "$dir/" -c "$dir/nginx.conf" 2>> "$dir/logs/t.log" \
        || { warn "scale: $1 did not start (see $dir/logs)"; return 1; }
    for i in $(seq 100); do
        curl -skf -o /dev/null "$2" && return 0
        sleep 0.1
    done
    warn "scale: $1 does not answer $2 (see $dir/logs)"
    return 1
}

scale_stop() {   # NAME
    local dir=$SCALE_DIR/$1 pid

    pid=$(pid_read "$dir/nginx.pid") || return 0
    kill -QUIT "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
}

scale_cleanup() {
    local name

    if [ -d "$SCALE_DIR" ]; then
        for name in edge ref node1 node2 node3; do
            scale_stop "$name"
        done
    fi
    if [ -n "$SCALE_INDEX_STOPPED" ]; then
        worker_svc index start
        SCALE_INDEX_STOPPED=
    fi
}

scale_ticks() {   # NAME... -> utime + stime of their nginx, in ticks
    local name pid s t=0

    for name in "$@"; do
        for pid in $(nginx_pids "$SCALE_DIR/$name"); do
            s=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
            set -- $s
            t=$((t + ${12} + ${13}))
        done
    done
    echo "$t"
}

# "edge=T nodes=T redis=T ..." for the nginx NAMEs (nodes: every nodeK)
scale_sample() {   # NAME...
    local g nodes=() out

    for g in "$@"; do
        [ "$g" = edge ] || nodes+=("$g")
    done
    out="edge=$(scale_ticks edge) nodes=$(scale_ticks "${nodes[@]}")"
    for g in redis postgres broker workers; do
        out="$out $g=$(cpu_ticks "$g")"
    done
    echo "$out"
}

# One set-up: the fixed step, then the search; SCALE_FIG[KEY.figure] for
# the ratios.
declare -A SCALE_FIG=()
scale_pair() {   # KEY LABEL RUN PORT NGINX_NAMES...
    local key=$1 label=$2 run=$3 port=$4 w out line b= a= g ms n total=0
    local nginx=0 split= spread=
    shift 4
    w="scale-out 1:1, $PAIRS pairs, $SCALE_RATE msgs/s"
    out=$SCALE_DIR/pair-$key-$run.out
    : > "$out"

    chat_reset_bench_state
    while IFS= read -r line; do
        printf '%s\n' "$line" >> "$out"
        case "$line" in
        phase=connect*) b=$(scale_sample "$@") ;;
        phase=step*step=0\ *)
            b=$(scale_sample "$@")
            spread=$(scale_spread "$@")
            ;;
        phase=step*step=1\ *) a=$(scale_sample "$@") ;;
        esac
    done < <(timeout 600 "$BENCH" --target chat --port "$port" \
                 --payload "$PAYLOAD" --jwt-secret "$SECRET" \
                 --user-base "$USER_BASE" --mode pair --pairs "$PAIRS" \
                 --procs 2 --src-addrs 4 --inflight 128 \
                 --rates "$SCALE_RATE,$SCALE_RATE" --search 1000 \
                 --search-max 16000 \
                 --slo rcv --slo-ms 1000 "${SCALE_ARGS[@]}" \
                 2> "${out%.out}.err")
    wait $! || warn "scale $label: chat-bench exited non-zero (see $out)"

    line=$(grep '^phase=step.* step=1 ' "$out" || true)
    if [ -z "$line" ]; then
        result "$w" "$label: kept up (none lost, p99 < 1 s)" chat \
            "n/a (see $out)"
        return 0
    fi
    n=$(kv "$line" sent)
    result "$w" "$label: kept up (none lost, p99 < 1 s)" chat \
        "$([ "$(kv "$line" tp_ok)" = 1 ] && echo yes || echo no)"
    result "$w" "$label: sent / acked / received" chat \
        "$n / $(kv "$line" acked) / $(kv "$line" received)"
    result "$w" "$label: lost / dup / reordered" chat \
        "$(kv "$line" lost) / $(kv "$line" dup) / $(kv "$line" reordered)"
    [ -z "$spread" ] || result "$w" "$label: WebSockets per node" chat \
        "$spread"
    SCALE_FIG[$key.p50]=$(kv "$line" rcv_p50_ms)
    SCALE_FIG[$key.p99]=$(kv "$line" rcv_p99_ms)
    result "$w" "$label: send->receive p50 ms" chat \
        "${SCALE_FIG[$key.p50]}" low
    result "$w" "$label: send->receive p99 ms" chat \
        "${SCALE_FIG[$key.p99]}" low
    result "$w" "$label: send->ack p50 / p99 ms" chat \
        "$(kv "$line" ack_p50_ms) / $(kv "$line" ack_p99_ms)"

    # CPU over the fixed step (warmup, measure and drain), per 1k sent
    if [ -n "$b" ] && [ -n "$a" ] && [ "${n:-0}" -gt 0 ]; then
        for g in edge nodes redis postgres broker workers; do
            ms=$(cpu_delta_ms "$b" "$a" "$g")
            total=$((total + ms))
            case "$g" in edge|nodes) nginx=$((nginx + ms)) ;; esac
            split="$split${split:+, }$g $(awk -v m="$ms" -v n="$n" \
                'BEGIN { printf "%.1f", m * 1000 / n }')"
        done
        SCALE_FIG[$key.nginx]=$(awk -v m="$nginx" -v n="$n" \
            'BEGIN { printf "%.1f", m * 1000 / n }')
        SCALE_FIG[$key.total]=$(awk -v m="$total" -v n="$n" \
            'BEGIN { printf "%.1f", m * 1000 / n }')
        result "$w" "$label: nginx CPU-ms per 1k msgs (edge + nodes)" \
            chat "${SCALE_FIG[$key.nginx]}" low
        result "$w" "$label: server CPU-ms per 1k msgs (all)" chat \
            "${SCALE_FIG[$key.total]}" low
        result "$w" "$label:   of which" chat "$split"
    fi
    line=$(grep '^phase=summary' "$out" || true)
    SCALE_FIG[$key.max]=$(kv "$line" max_tp_rate)
    result "$w" "$label: highest msgs/s kept up with (searched)" chat \
        "${SCALE_FIG[$key.max]:-0}" high
}

# the WebSockets each node holds (established, from ss), when several
scale_spread() {   # NAME...
    local name out=

    [ $# -gt 2 ] || return 0
    for name in "$@"; do
        [ "$name" != edge ] || continue
        out="$out${out:+ / }$name $(ss -tnH state established \
            "sport = :$(scale_port "$name")" | wc -l)"
    done
    echo "$out"
}

scale_ratio() {   # A B -> A / B to 2 places, or -
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b + 0 > 0)
            printf "%.2f", a / b; else print "-" }'
}

# TLS handshakes: SCALE_TLS_CLIENTS s_time at once
scale_tls() {   # LABEL RUN PORT NAME PROTO(1.2|1.3)
    local label=$1 run=$2 port=$3 name=$4 proto=$5 i b a n=0 ms t0 t1
    local pids=()
    local w="scale-out: TLS $proto full handshakes (openssl s_time -new)"
    local out=$SCALE_DIR/tls-$name-$proto-$run

    b=$(scale_ticks "$name")
    t0=$(date +%s%3N)
    for i in $(seq "$SCALE_TLS_CLIENTS"); do
        timeout $((SCALE_TLS_SECS + 30)) openssl s_time \
            -connect "127.0.0.1:$port" -new "-tls${proto/./_}" \
            -time "$SCALE_TLS_SECS" > "$out.$i" 2>&1 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do
        wait "$i" || warn "scale: openssl s_time failed (see $out.*)"
    done
    t1=$(date +%s%3N)
    a=$(scale_ticks "$name")
    # "N connections in T real seconds, ..." per client (whole seconds:
    # the rate is over the wall time of all of them instead)
    for i in $(seq "$SCALE_TLS_CLIENTS"); do
        n=$((n + $(awk '/connections in [0-9]+ real seconds/ { c = $1 }
                        END { print c + 0 }' "$out.$i")))
    done
    ms=$(( (a - b) * 1000 / CLK_TCK ))
    SCALE_FIG[tls.$name.$proto]=$(awk -v n="$n" -v ms=$((t1 - t0)) \
        'BEGIN { if (ms > 0) printf "%.0f", n * 1000 / ms; else print 0 }')
    result "$w" "$label: handshakes/s ($SCALE_TLS_CLIENTS clients)" chat \
        "${SCALE_FIG[tls.$name.$proto]}" high
    [ "$n" -gt 0 ] || return 0
    result "$w" "$label: server CPU-ms per 1k handshakes" chat \
        "$(awk -v m="$ms" -v n="$n" \
               'BEGIN { printf "%.0f", m * 1000 / n }')" low
    if [ "$ms" -gt 0 ]; then
        result "$w" "$label: handshakes/s per core of nginx CPU" chat \
            "$(awk -v m="$ms" -v n="$n" \
                   'BEGIN { printf "%.0f", n * 1000 / m }')" high
    fi
}

run_scale() {   # TARGET RUN
    local run=$2 w="scale-out 1:1, $PAIRS pairs, $SCALE_RATE msgs/s" k
    local wr="scale-out: ratios (fixed step; (b), (c) over (a))" proto

    if [ "$1" != chat ]; then
        result "$w" "(a) 1 node: kept up (none lost, p99 < 1 s)" nchan \
            "n/a (chat only)"
        return 0
    fi
    SCALE_FIG=()
    if pid_read "$VAR/run/worker-index.pid" > /dev/null 2>&1; then
        SCALE_INDEX_STOPPED=1
        worker_svc index stop
    fi
    scale_write_confs
    scale_start node1 "http://127.0.0.1:$(scale_port node1)/healthz" \
        && scale_start edge "http://127.0.0.1:$(scale_port edge1)/healthz" \
        || { result "$w" "(a) 1 node: kept up (none lost, p99 < 1 s)" \
                 chat "n/a (the nginx did not start: see the log)"
             scale_cleanup; return 0; }
    scale_pair a "(a) 1 node" "$run" "$(scale_port node1)" node1
    scale_pair b "(b) edge -> 1 node" "$run" "$(scale_port edge1)" edge node1
    for k in $(seq 2 "$SCALE_NODES"); do
        scale_start "node$k" "http://127.0.0.1:$(scale_port node$k)/healthz" \
            || { scale_cleanup; return 0; }
    done
    scale_pair c "(c) edge -> 3 nodes" "$run" "$(scale_port edge3)" \
        edge node1 node2 node3
    local f key
    for k in b c; do
        for f in "send->receive p50=p50" "send->receive p99=p99" \
                 "nginx CPU per msg=nginx" "server CPU per msg (all)=total" \
                 "highest msgs/s kept up with=max"; do
            key=${f##*=}
            result "$wr" "($k)/(a) ${f%=*}" chat \
                "$(scale_ratio "${SCALE_FIG[$k.$key]:-}" \
                                "${SCALE_FIG[a.$key]:-}")" -
        done
    done
    # the nodes are idle for the handshakes: only the edge and ref work
    for k in $(seq "$SCALE_NODES"); do
        scale_stop "node$k"
    done

    if [ -z "$SCALE_TLS_CERT" ] || [ ! -r "$SCALE_TLS_KEY" ]; then
        result "scale-out: TLS full handshakes" "handshakes/s" chat \
            "n/a (no CHAT_TLS_CERT in $STACK_ENV)"
    elif scale_start ref "https://127.0.0.1:$(scale_port ref)/"; then
        for proto in 1.3 1.2; do
            scale_tls "edge (chat_auth module loaded)" "$run" \
                "$(scale_port edgetls)" edge "$proto"
            scale_tls "stock nginx, return 200" "$run" \
                "$(scale_port ref)" ref "$proto"
            result \
                "scale-out: TLS $proto full handshakes (openssl s_time -new)" \
                "edge / stock nginx handshakes/s" chat \
                "$(scale_ratio "${SCALE_FIG[tls.edge.$proto]:-}" \
                               "${SCALE_FIG[tls.ref.$proto]:-}")" -
        done
    fi
    scale_cleanup
}
