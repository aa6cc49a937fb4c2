# scripts/lib.sh — shell helpers shared by scripts/stack, scripts/migrate and
# scripts/run-tests.  Source it; it defines functions and a few variables and
# runs nothing else.
#
# Set LOG_PREFIX before sourcing (default: the script's name) so messages say
# which script is talking.

CHAT_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
LOG_PREFIX=${LOG_PREFIX:-$(basename "$0")}

say()  { printf '%s: %s\n' "$LOG_PREFIX" "$*"; }
warn() { printf '%s: warning: %s\n' "$LOG_PREFIX" "$*" >&2; }
die()  { printf '%s: error: %s\n' "$LOG_PREFIX" "$*" >&2; exit 1; }


# --- profiles ---------------------------------------------------------------
#
# Two profiles with disjoint ports and var dirs, so that `make test` (profile
# test) passes while the `make run` stack (profile run) is up.

chat_profile() {
    CHAT_PROFILE=$1

    case "$CHAT_PROFILE" in
    run)
        VAR=$CHAT_TOP/var
        HTTP_PORT=8080 HTTPS_PORT=8443
        PG_PORT=55432 REDIS_PORT=56379 KAFKA_PORT=59092
        ;;
    test)
        # CHAT_TEST_PORT_OFFSET moves every port (and the var dir), so that
        # several checkouts can each run their test stack on one machine
        local o=${CHAT_TEST_PORT_OFFSET:-0}
        case "$o" in ''|*[!0-9]*) die "CHAT_TEST_PORT_OFFSET: not a number" ;;
        esac
        VAR=$CHAT_TOP/var-test
        [ "$o" = 0 ] || VAR=$CHAT_TOP/var-test-$o
        HTTP_PORT=$((18080 + o)) HTTPS_PORT=$((18443 + o))
        PG_PORT=$((55433 + o)) REDIS_PORT=$((56380 + o))
        KAFKA_PORT=$((59093 + o))
        ;;
    *)
        die "unknown profile '$CHAT_PROFILE' (run or test)"
        ;;
    esac

    STACK_ENV=$VAR/stack.env
}


# --- stack.env --------------------------------------------------------------
#
# NAME=value lines, one per line, value taken verbatim up to the end of the
# line (no shell quoting: PG_DSN holds spaces).  Not meant to be sourced by a
# shell; read it with env_get.

env_get() {   # FILE NAME -> value on stdout; 1 when absent
    local file=$1 name=$2 k v

    [ -r "$file" ] || return 1
    while IFS='=' read -r k v; do
        if [ "$k" = "$name" ]; then
            printf '%s\n' "$v"
            return 0
        fi
    done < "$file"
    return 1
}


# --- processes --------------------------------------------------------------

pid_read() {   # FILE -> pid on stdout when the file holds a live pid
    local pid

    [ -r "$1" ] || return 1
    read -r pid < "$1" 2>/dev/null || return 1
    case "$pid" in
    ''|*[!0-9]*) return 1 ;;
    esac
    kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

pid_cmdline_has() {   # PID STRING: the process's argv contains STRING
    local args

    args=$(tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null) || return 1
    case "$args" in
    *"$2"*) return 0 ;;
    esac
    return 1
}

pid_cwd_is() {   # PID DIR: the process runs in DIR (resolved)
    local cwd

    cwd=$(readlink "/proc/$1/cwd" 2>/dev/null) || return 1
    [ "$cwd" = "$(readlink -f "$2")" ]
}

pid_state() {   # PID -> its state letter (R, S, T stopped, Z zombie, ...)
    # Field 3 of /proc/PID/stat; the command name before it is in
    # parentheses and may hold spaces, so cut after the last ')'.
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1
}

pid_stopped() {   # PID: stopped by a signal (SIGSTOP)
    [ "$(pid_state "$1")" = T ]
}

pid_gone() {   # PID: no such process, or only a zombie left of it
    kill -0 "$1" 2>/dev/null || return 0
    [ "$(pid_state "$1")" = Z ]
}

wait_gone() {   # PID SECONDS: 0 once the process is gone, 1 on timeout
    local i

    for ((i = 0; i <= $2 * 10; i++)); do
        pid_gone "$1" && return 0
        sleep 0.1
    done
    return 1
}

pid_children() {   # PID -> direct children, one per line
    pgrep -P "$1" 2>/dev/null || true
}


# --- ports ------------------------------------------------------------------

port_holder() {   # PORT -> "name (pid N)" of the TCP listener; 1 when free
    local line

    line=$(ss -ltnpH "sport = :$1" 2>/dev/null | head -n 1)
    [ -n "$line" ] || return 1
    case "$line" in
    *users:*)
        # users:(("nginx",pid=123,fd=6),...) -> nginx (pid 123)
        printf '%s\n' "$line" | sed -E \
            's/.*users:\(\("([^"]*)",pid=([0-9]+).*/\1 (pid \2)/'
        ;;
    *)
        echo "an unknown process"
        ;;
    esac
}

port_pids() {   # PORT -> pids of the processes holding the listener
    ss -ltnpH "sport = :$1" 2>/dev/null | grep -oE 'pid=[0-9]+' \
        | cut -d= -f2 | sort -u
}
