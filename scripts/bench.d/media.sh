# shellcheck shell=bash
# scripts/bench.d/media.sh — the images workload of scripts/bench
# (--only media; issue #15).  Sourced by scripts/bench, not run on its own:
# it uses the bench's nginx (127.0.0.1:18091, whose config write_confs
# gives a media store, the API's locations and the static reference), its
# results table and its /proc accounting.
#
# For each size of MEDIA_SIZES (100 KiB, 1 MiB), wrk (MEDIA_THREADS
# threads, MEDIA_CONNS connections, MEDIA_DURATION s per step, the load in
# scripts/bench.d/media.lua):
#   chat    POST /v1/media of distinct images (a PNG signature and IHDR,
#           a tag, random padding: each one new content, stored), the same
#           image again (hashed, found stored, the same id back), then
#           GET /v1/media/{id} by signed URL and by token, cycling through
#           MEDIA_SET images uploaded beforehand
#   nchan   (the table's second column) nginx's own static handler on the
#           same files of the same store: a plain location with alias and
#           sendfile on the same nginx, no module code on the way
# Uploads come from one bench user (the last one, bench_040000); what they
# leave (rows of media and media_blobs, files) is removed after each step
# but the download set, and all of it at the end.

MEDIA_SIZES="102400 1048576"
MEDIA_SET=64
MEDIA_CONNS=16
MEDIA_THREADS=2
MEDIA_LUA=$CHAT_TOP/scripts/bench.d/media.lua
MEDIA_STORE=$OUT/chat/media
MEDIA_READY=
MEDIA_USER=
MEDIA_TOKEN=

media_label() {   # BYTES -> 100 KiB, 1 MiB
    awk -v b="$1" 'BEGIN { if (b >= 1048576) printf "%g MiB", b / 1048576
                           else printf "%g KiB", b / 1024 }'
}

media_psql() {   # SQL
    psql "$PG_DSN" -X -q -At -v ON_ERROR_STOP=1 -c "$1"
}

# COUNT images of SIZE bytes into DIR/PREFIX-<i>.png: a PNG signature and
# IHDR (640x480 RGB, its CRC right), 32 bytes of tag (PREFIX-i), random
# padding; the probe reads only the first 33 bytes
media_make_images() {   # DIR PREFIX SIZE COUNT
    perl -MCompress::Zlib -e '
        my ($dir, $prefix, $size, $count) = @ARGV;
        my $ihdr = pack("NNCCCCC", 640, 480, 8, 2, 0, 0, 0);
        my $head = "\x89PNG\r\n\x1a\n" . pack("N", 13) . "IHDR" . $ihdr
                   . pack("N", crc32("IHDR" . $ihdr));
        open(my $r, "<", "/dev/urandom") or die;
        for my $i (1 .. $count) {
            my $pad;
            read($r, $pad, $size - 65) == $size - 65 or die;
            open(my $f, ">", "$dir/$prefix-$i.png") or die;
            binmode $f;
            print $f $head, sprintf("%-32.32s", "$prefix-$i"), $pad;
            close $f or die;
        }' "$@"
}

# The download set (MEDIA_SET images of each size, uploaded with curl),
# the upload templates, the token; MEDIA_READY=1 when all went well
media_prepare() {
    local dir=$OUT/media-set size i body id url sha n

    MEDIA_READY=0
    MEDIA_USER=$((USER_BASE + USERS_NEEDED - 1))
    MEDIA_TOKEN=$("$BENCH" --jwt-secret "$SECRET" --token "$MEDIA_USER") \
        || { warn "media: could not mint a token"; return 1; }
    command -v wrk > /dev/null || { warn "media: wrk is missing"; return 1; }
    mkdir -p "$dir"
    for size in $MEDIA_SIZES; do
        media_make_images "$dir" "tpl-$size" "$size" 1 \
            && media_make_images "$dir" "dl-$size" "$size" "$MEDIA_SET" \
            || { warn "media: could not make the images"; return 1; }
        : > "$dir/signed-$size" ; : > "$dir/token-$size"
        : > "$dir/static-$size"
        for i in $(seq "$MEDIA_SET"); do
            body=$(curl -s -X POST "http://127.0.0.1:$CHAT_PORT/v1/media" \
                       -H "Authorization: Bearer $MEDIA_TOKEN" \
                       -H 'Content-Type: image/png' \
                       --data-binary "@$dir/dl-$size-$i.png") || body=
            id=$(sed -n 's/.*"media_id":"\([^"]*\)".*/\1/p' <<< "$body")
            url=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' <<< "$body")
            [ -n "$id" ] && [ -n "$url" ] \
                || { warn "media: upload failed: $(head -c 300 <<< "$body")"
                     return 1; }
            sha=$(sha256sum "$dir/dl-$size-$i.png")
            sha=${sha%% *}
            echo "$url" >> "$dir/signed-$size"
            echo "/v1/media/$id" >> "$dir/token-$size"
            echo "/_bench_static/${sha:0:2}/$sha.png" >> "$dir/static-$size"
            echo "$sha" >> "$dir/keep"
        done
        # the three ways give the uploaded bytes back
        for n in signed token static; do
            curl -sf -o "$dir/check" -H "Authorization: Bearer $MEDIA_TOKEN" \
                "http://127.0.0.1:$CHAT_PORT$(head -1 "$dir/$n-$size")" \
                && cmp -s "$dir/check" "$dir/dl-$size-1.png" \
                || { warn "media: $n download of $size bytes differs"
                     return 1; }
        done
        rm -f "$dir/check"
    done
    MEDIA_READY=1
}

MEDIA_CPU_GROUPS="chat-nginx postgres redis"
media_cpu() {
    local g out=

    for g in $MEDIA_CPU_GROUPS; do
        out="$out $g=$(cpu_ticks "$g")"
    done
    echo "$out"
}

media_ms() {   # wrk's 1.23ms, 456.00us, 1.02s -> ms
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) printf "%.3f", v / 1000
        else if (v ~ /ms$/) printf "%.3f", v + 0
        else if (v ~ /m$/) printf "%.1f", v * 60000
        else if (v ~ /s$/) printf "%.1f", v * 1000
        else print v }'
}

media_files() {   # files in the store (not its .tmp)
    find "$MEDIA_STORE" -path "$MEDIA_STORE/.tmp" -prune -o -type f -print \
        | wc -l
}

# One wrk step.  Sets M_RPS M_MIBS M_P50 M_P99 M_N M_BAD (non-2xx +
# socket errors) M_CPU ("total|split" CPU-ms per MiB) M_GEN (wrk's own
# CPU-ms per MiB) M_FILE
media_wrk() {   # NAME SIZE ENV...
    local name=$1 size=$2 out b a g ms total=0 split='' mib TIMEFORMAT='%U %S'
    shift 2

    M_FILE=$OUT/media-$name.txt
    b=$(media_cpu)
    { time env MEDIA_TOKEN="$MEDIA_TOKEN" "$@" \
          timeout $((MEDIA_DURATION + 60)) \
          wrk -t "$MEDIA_THREADS" -c "$MEDIA_CONNS" -d "${MEDIA_DURATION}s" \
          --timeout 10s --latency -s "$MEDIA_LUA" \
          "http://127.0.0.1:$CHAT_PORT" > "$M_FILE" 2>&1; } 2> "$M_FILE.cpu" \
        || warn "media $name: wrk failed (see $M_FILE)"
    a=$(media_cpu)
    out=$(cat "$M_FILE")
    M_RPS=$(awk '/^Requests\/sec:/ { print $2 }' <<< "$out")
    M_N=$(awk '/ requests in / { print $1 }' <<< "$out")
    M_P50=$(media_ms "$(awk '$1 == "50%" { print $2 }' <<< "$out")")
    M_P99=$(media_ms "$(awk '$1 == "99%" { print $2 }' <<< "$out")")
    M_BAD=$(awk '/Non-2xx/ { s += $NF }
                 /Socket errors/ { gsub(/,/, ""); s += $4 + $6 + $8 + $10 }
                 END { print s + 0 }' <<< "$out")
    M_MIBS=$(awk -v r="${M_RPS:-0}" -v s="$size" \
                 'BEGIN { printf "%.1f", r * s / 1048576 }')
    mib=$(awk -v n="${M_N:-0}" -v s="$size" 'BEGIN { print n * s / 1048576 }')
    M_CPU='' M_GEN=''
    awk -v m="$mib" 'BEGIN { exit !(m > 0) }' || return 0
    M_GEN=$(awk -v m="$mib" '{ printf "%.2f", ($1 + $2) * 1000 / m }' \
                "$M_FILE.cpu")
    for g in $MEDIA_CPU_GROUPS; do
        ms=$(cpu_delta_ms "$b" "$a" "$g")
        total=$((total + ms))
        split="$split${split:+, }${g#*-} $(awk -v t="$ms" -v m="$mib" \
            'BEGIN { printf "%.2f", t / m }')"
    done
    M_CPU=$(awk -v t="$total" -v m="$mib" 'BEGIN { printf "%.2f", t / m }')
    M_CPU="$M_CPU|$split"
}

media_step_results() {   # WORKLOAD FIGURE TARGET
    result "$1" "$2: requests/s" "$3" "${M_RPS:-0}" high
    result "$1" "$2: MiB/s" "$3" "$M_MIBS" high
    result "$1" "$2: p50 ms" "$3" "$M_P50" low
    result "$1" "$2: p99 ms" "$3" "$M_P99" low
    [ -n "$M_CPU" ] || return 0
    result "$1" "$2: server CPU-ms per MiB" "$3" "${M_CPU%%|*}" low
    result "$1" "$2:   of which" "$3" "${M_CPU#*|}"
    result "$1" "$2: wrk's own CPU-ms per MiB" "$3" "$M_GEN" low
}

# Removes the bench user's uploads but the download set (KEEP: a file of
# sha256s, or /dev/null for all): rows of media, the media_blobs rows no
# one else refers to, the files
media_prune() {   # KEEP
    local keep

    keep=$(paste -sd, "$1")
    media_psql "BEGIN;
        CREATE TEMP TABLE gone (sha256 text) ON COMMIT DROP;
        WITH d AS (DELETE FROM media WHERE owner = $MEDIA_USER
                      AND sha256 <> ALL ('{${keep}}'::text[])
                   RETURNING sha256)
        INSERT INTO gone SELECT sha256 FROM d;
        DELETE FROM media_blobs b USING gone g
         WHERE b.sha256 = g.sha256
           AND NOT EXISTS (SELECT 1 FROM media m WHERE m.sha256 = b.sha256);
        COMMIT;" > /dev/null \
        || warn "media: could not delete the bench's media rows"
    [ -d "$MEDIA_STORE" ] || return 0
    find "$MEDIA_STORE" -path "$MEDIA_STORE/.tmp" -prune -o -type f \
            -name '*.png' -print \
        | grep -vFf <(sed 's/$/.png/' "$1"; echo /nonesuch/) \
        | xargs -r rm -f
}

media_cleanup() {
    [ -n "$MEDIA_USER" ] || return 0
    media_prune /dev/null
    [ -n "$KEEP" ] || rm -rf "$MEDIA_STORE" "$OUT/media-set"
}

run_media() {   # TARGET RUN
    local t=$1 run=$2 size w dir=$OUT/media-set rows0 rows1 files0 files1
    local pss0 errs0 log=$OUT/chat/logs/error.log

    [ -n "$MEDIA_READY" ] || media_prepare || true
    for size in $MEDIA_SIZES; do
        w="images, $(media_label "$size") ($MEDIA_CONNS connections, wrk"
        w="$w -t$MEDIA_THREADS, $MEDIA_DURATION s a step; the nchan column:"
        w="$w nginx's static handler on the same files)"
        if [ "$MEDIA_READY" != 1 ]; then
            result "$w" "download by signed URL: requests/s" "$t" \
                "n/a (no download set: see the log)"
            continue
        fi
        if [ "$t" != chat ]; then
            media_wrk "static-$size-$run" "$size" MEDIA_MODE=get \
                MEDIA_PATHS="$dir/static-$size" MEDIA_TOKEN=
            media_step_results "$w" "download by signed URL" "$t"
            media_step_results "$w" "download by token" "$t"
            result "$w" "upload, distinct images: requests/s" "$t" \
                "n/a (no upload)"
            result "$w" "non-2xx + socket errors (all steps)" "$t" "$M_BAD" low
            continue
        fi
        pss0=$(mem_kb chat-nginx Pss)
        errs0=$(grep -cE '\[(error|crit|alert|emerg)\]' "$log" || true)
        local bad=0

        rows0=$(media_psql "SELECT count(*) FROM media
                             WHERE owner = $MEDIA_USER")
        files0=$(media_files)
        media_wrk "upload-$size-$run" "$size" MEDIA_MODE=upload \
            MEDIA_FILE="$dir/tpl-$size-1.png" MEDIA_NONCE="r$run-$RANDOM"
        bad=$((bad + M_BAD))
        rows1=$(media_psql "SELECT count(*) FROM media
                             WHERE owner = $MEDIA_USER")
        files1=$(media_files)
        media_step_results "$w" "upload, distinct images" "$t"
        result "$w" "upload, distinct images: 2xx / rows / files added" "$t" \
            "$((${M_N:-0} - M_BAD)) / $((rows1 - rows0)) / $((files1 - files0))"
        media_prune "$dir/keep"
        sleep 1

        media_wrk "same-$size-$run" "$size" MEDIA_MODE=same \
            MEDIA_FILE="$dir/dl-$size-1.png"
        bad=$((bad + M_BAD))
        media_step_results "$w" "upload, the same image again" "$t"

        media_wrk "signed-$size-$run" "$size" MEDIA_MODE=get \
            MEDIA_PATHS="$dir/signed-$size" MEDIA_TOKEN=
        bad=$((bad + M_BAD))
        media_step_results "$w" "download by signed URL" "$t"

        media_wrk "token-$size-$run" "$size" MEDIA_MODE=get \
            MEDIA_PATHS="$dir/token-$size"
        bad=$((bad + M_BAD))
        media_step_results "$w" "download by token" "$t"

        result "$w" "non-2xx + socket errors (all steps)" "$t" "$bad" low
        result "$w" "error log lines [error] and worse (all steps)" "$t" \
            "$(( $(grep -cE '\[(error|crit|alert|emerg)\]' "$log" || true)
                 - errs0 ))" low
        result "$w" "nginx Pss MiB before / after the steps" "$t" \
            "$(awk -v a="$pss0" -v b="$(mem_kb chat-nginx Pss)" \
                   'BEGIN { printf "%.1f / %.1f", a / 1024, b / 1024 }')"
    done
}
