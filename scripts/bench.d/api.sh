#!/usr/bin/env bash
# scripts/bench.d/api.sh — requests/s of the HTTP API, measured with wrk:
# token-authenticated GET /v1/me, and POST /v1/sessions (a login: one
# Argon2id check in the thread pool).  Runs its own nginx on port 18090
# against the backends of the `make run` stack (start that first), with the
# stack's module and the same directives as lua-free-conf/single-node.conf
# but no per-address limit_req (it would measure the limit, not the login).
#
#   scripts/bench.d/api.sh [--duration 10] [--connections 64] [--threads 2]
set -euo pipefail

LOG_PREFIX=bench-api
. "$(dirname "$0")/../lib.sh"

DURATION=10
CONNS=64
THREADS=2
while [ $# -gt 0 ]; do
    case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    *) die "usage: $0 [--duration S] [--connections N] [--threads N]" ;;
    esac
done

command -v wrk > /dev/null || die "wrk is missing: make deps"
chat_profile run
[ -s "$STACK_ENV" ] || die "no $STACK_ENV: run 'make run' first"

PORT=18090
DIR=$VAR/bench-api
mkdir -p "$DIR/logs" "$DIR/tmp"
WORKERS=$(nproc)

cat > "$DIR/nginx.conf" <<CONF
load_module $CHAT_TOP/build/ngx_http_chat_module.so;
user $(id -un) $(id -gn);
worker_processes $WORKERS;
worker_rlimit_nofile 19000;
pid $DIR/nginx.pid;
error_log $DIR/logs/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $DIR/tmp;
    chat_node_name bench;
    chat_redis $(env_get "$STACK_ENV" REDIS);
    chat_redis_password_file $(env_get "$STACK_ENV" REDIS_PASSWORD_FILE);
    chat_postgres "$(env_get "$STACK_ENV" PG_DSN)";
    chat_postgres_pool_size 4;
    chat_jwt_secret_file $(env_get "$STACK_ENV" CHAT_JWT_SECRET_FILE);
    chat_password_concurrency 1;
    chat_login_limit off;
    server {
        listen 127.0.0.1:$PORT;
        location /v1/ { chat_auth on; chat_api; }
        location = /v1/users { chat_api; }
        location = /v1/sessions { chat_api; }
    }
}
CONF

/usr/sbin/nginx -p "$DIR/" -c "$DIR/nginx.conf" -t -q
/usr/sbin/nginx -p "$DIR/" -c "$DIR/nginx.conf"
trap '/usr/sbin/nginx -p "$DIR/" -c "$DIR/nginx.conf" -s quit 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/v1/me" && break
    sleep 0.1
done

USER="bench_$(date +%s)"
PASS="bench-password-1"
curl -sf -X POST "http://127.0.0.1:$PORT/v1/users" \
     -d "{\"username\":\"$USER\",\"password\":\"$PASS\"}" > /dev/null \
    || die "could not register $USER"
TOKEN=$(curl -sf -X POST "http://127.0.0.1:$PORT/v1/sessions" \
             -d "{\"username\":\"$USER\",\"password\":\"$PASS\"}" \
        | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[ -n "$TOKEN" ] || die "could not log in"

cat > "$DIR/login.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"username":"$USER","password":"$PASS"}'
wrk.headers["Content-Type"] = "application/json"
LUA

run_wrk() {   # FILE NAME CONNS ARGS...
    local file=$1 name=$2 conns=$3 out
    shift 3
    out=$(wrk -t "$THREADS" -c "$conns" -d "${DURATION}s" --latency "$@")
    printf '%s\n' "$out" > "$DIR/$file.txt"
    local rps p50 p99 non2xx
    rps=$(awk '/Requests\/sec/ { print $2 }' <<< "$out")
    p50=$(awk '$1 == "50%" { print $2 }' <<< "$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<< "$out")
    non2xx=$(awk '/Non-2xx/ { print $NF }' <<< "$out")
    printf '%-32s %10s %10s %10s %8s\n' "$name" "$rps" "$p50" "$p99" \
        "${non2xx:-0}"
}

printf '%s, %d nginx workers, wrk -t%d, %ds each\n' "$(nproc) cores" \
    "$WORKERS" "$THREADS" "$DURATION"
printf '%-32s %10s %10s %10s %8s\n' workload 'req/s' p50 p99 non-2xx
run_wrk me "GET /v1/me (token)" "$CONNS" \
    -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/me"
run_wrk login "POST /v1/sessions (login)" 8 -s "$DIR/login.lua" \
    "http://127.0.0.1:$PORT/v1/sessions"
echo "raw wrk output in $DIR"
