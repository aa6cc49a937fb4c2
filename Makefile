# ngx_chat — build, run and test.  See README.md.
#
#   make            dynamic module (build/ngx_http_chat_module.so), tools
#                   and the worker daemons (build/chat-worker)
#   make asan       the module and tools with ASan/UBSan (build/asan/)
#   make unit       C unit tests (cmocka)
#   make run/stop   the local stack under ./var
#   make test       everything, against services of its own under ./var-test
#   make test-faults  the fault matrix alone (t/057-faults.t, RELIABILITY.md)

SHELL     := /bin/bash
NGX_SRC   ?= /usr/share/nginx/src
B         := build
CC        ?= gcc
TOP       := $(CURDIR)

WARN      := -Wall -Wextra -Werror
CFLAGS    ?= -O2 -g
CHAT_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) -Isrc/common -D_GNU_SOURCE
SAN       := -fsanitize=address,undefined -fno-omit-frame-pointer \
             -fno-sanitize-recover=undefined

COMMON_SRCS := $(wildcard src/common/*.c)
COMMON_HDRS := $(wildcard src/common/*.h)
COMMON_LIBS := -lcmocka -ljansson -lcrypto
MODULE_SRCS := $(wildcard src/*.c src/*.h src/store/*.c src/store/*.h) \
               $(COMMON_SRCS) $(COMMON_HDRS) config
LUA_SRCS    := $(wildcard src/store/lua/*.lua) src/store/lua/gen.sh
LUA_TABLE   := nginx-src/objs/ngx_chat_lua_scripts.h
UNIT_SRCS   := $(wildcard tests/unit/test_*.c)
UNIT_BINS   := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRCS))
UNIT_ASAN   := $(patsubst tests/unit/%.c,$(B)/asan/tests/%,$(UNIT_SRCS))

WORKER_SRCS := $(wildcard src/workers/*.c)
WORKER_HDRS := $(wildcard src/workers/*.h)
WORKER_LIBS := -lrdkafka -lpq -ljansson -lcrypto -lcurl -lhiredis -lpthread
PG_INC      := -I$(shell pg_config --includedir 2>/dev/null || \
                         echo /usr/include/postgresql)

TOOLS       := $(B)/chat-kafka-broker $(B)/chat-bench $(B)/chat-worker \
               $(B)/chat-bench-produce $(B)/chat-push-sink

# the load generator's and the push sink's parts that have unit tests of
# their own
BENCH_SRCS  := src/tools/bench_hist.c src/tools/bench_proto.c \
               src/tools/bench_http.c
BENCH_HDRS  := src/tools/bench_hist.h src/tools/bench_proto.h \
               src/tools/bench_http.h

.PHONY: all module tools asan unit unit-asan deps run stop test test-faults clean \
        style browser-deps

all: module tools

deps:
	@scripts/setup-deps

# --- the dynamic module, against Debian's nginx-dev ------------------------

module: $(B)/ngx_http_chat_module.so

$(B)/nginx-src/.configured: config $(NGX_SRC)/conf_flags \
                            scripts/build-module
	scripts/build-module --step configure --src $(NGX_SRC) \
	    --build $(B)/nginx-src

# the Lua scripts' C table: made by config at ./configure time, and again
# here when a script changes
$(B)/$(LUA_TABLE): $(B)/nginx-src/.configured $(LUA_SRCS)
	sh src/store/lua/gen.sh src/store/lua $@

$(B)/ngx_http_chat_module.so: $(B)/nginx-src/.configured $(MODULE_SRCS) \
                              $(B)/$(LUA_TABLE)
	+scripts/build-module --step make --build $(B)/nginx-src --out $@

# --- the same module with ASan/UBSan ----------------------------------------
# nginx-dev ships headers only, so the sanitized module is loaded into the
# stock binary with the sanitizer runtimes preloaded (build/asan/nginx).

asan: $(B)/asan/ngx_http_chat_module.so $(B)/asan/nginx \
      $(B)/asan/chat-kafka-broker $(B)/asan/chat-worker

$(B)/asan/nginx-src/.configured: config $(NGX_SRC)/conf_flags \
                                 scripts/build-module
	scripts/build-module --step configure --src $(NGX_SRC) \
	    --build $(B)/asan/nginx-src --cc-opt "$(SAN)" --ld-opt "$(SAN)"

$(B)/asan/$(LUA_TABLE): $(B)/asan/nginx-src/.configured $(LUA_SRCS)
	sh src/store/lua/gen.sh src/store/lua $@

$(B)/asan/ngx_http_chat_module.so: $(B)/asan/nginx-src/.configured \
                                   $(MODULE_SRCS) $(B)/asan/$(LUA_TABLE)
	+scripts/build-module --step make --build $(B)/asan/nginx-src --out $@

$(B)/asan/nginx: Makefile
	@mkdir -p $(B)/asan
	printf '#!/bin/sh\n%s\nexec /usr/sbin/nginx "$$@"\n' \
	    'LD_PRELOAD="$(shell $(CC) -print-file-name=libasan.so) $(shell $(CC) -print-file-name=libubsan.so)" export LD_PRELOAD' \
	    > $@
	chmod +x $@

# --- tools and daemons ------------------------------------------------------

tools: $(TOOLS)

$(B)/chat-kafka-broker: src/tools/chat_kafka_broker.c
	@mkdir -p $(B)
	$(CC) $(CHAT_CFLAGS) -o $@ $< -lrdkafka -ldl -lpthread

# the benchmark's load generator (scripts/bench): no nginx headers
$(B)/chat-bench: src/tools/chat_bench.c $(BENCH_SRCS) $(BENCH_HDRS) \
                 $(COMMON_SRCS) $(COMMON_HDRS)
	@mkdir -p $(B)
	$(CC) $(CHAT_CFLAGS) -Isrc/tools -o $@ src/tools/chat_bench.c \
	    $(BENCH_SRCS) $(COMMON_SRCS) -ljansson -lcrypto

# the push workload's provider (scripts/bench.d/push.sh): no nginx headers
$(B)/chat-push-sink: src/tools/chat_push_sink.c $(BENCH_SRCS) $(BENCH_HDRS)
	@mkdir -p $(B)
	$(CC) $(CHAT_CFLAGS) -Isrc/tools -o $@ src/tools/chat_push_sink.c \
	    $(BENCH_SRCS)

$(B)/asan/chat-kafka-broker: src/tools/chat_kafka_broker.c
	@mkdir -p $(B)/asan
	$(CC) $(CHAT_CFLAGS) $(SAN) -o $@ $< -lrdkafka -ldl -lpthread

$(B)/chat-bench-produce: src/tools/chat_bench_produce.c src/common/chat_id.c \
                         src/common/chat_id.h src/tools/bench_hist.c \
                         src/tools/bench_hist.h
	@mkdir -p $(B)
	$(CC) $(CHAT_CFLAGS) -Isrc/tools -o $@ $< src/common/chat_id.c \
	    src/tools/bench_hist.c -lrdkafka -lm

# the worker daemons: src/workers/ and the shared code, no nginx headers
$(B)/chat-worker: $(WORKER_SRCS) $(WORKER_HDRS) $(COMMON_SRCS) $(COMMON_HDRS)
	@mkdir -p $(B)
	$(CC) $(CHAT_CFLAGS) $(PG_INC) -Isrc/workers -o $@ $(WORKER_SRCS) \
	    $(COMMON_SRCS) $(WORKER_LIBS)

$(B)/asan/chat-worker: $(WORKER_SRCS) $(WORKER_HDRS) $(COMMON_SRCS) \
                       $(COMMON_HDRS)
	@mkdir -p $(B)/asan
	$(CC) $(CHAT_CFLAGS) $(SAN) $(PG_INC) -Isrc/workers -o $@ \
	    $(WORKER_SRCS) $(COMMON_SRCS) $(WORKER_LIBS)

# --- unit tests ---------------------------------------------------------------

unit: $(UNIT_BINS) $(UNIT_ASAN)
	@set -e; for t in $(UNIT_BINS) $(UNIT_ASAN); do \
	    echo "== $$t"; $$t; done

# The shared code is compiled once per build into an archive that every
# test links (not once per test binary: that was ~900 compiles per run).
UNIT_OBJS = $(patsubst src/common/%.c,$(1)/obj/common/%.o,$(COMMON_SRCS)) \
            $(patsubst src/tools/%.c,$(1)/obj/tools/%.o,$(BENCH_SRCS))
UNIT_LIB      := $(B)/obj/libchat_unit.a
UNIT_LIB_ASAN := $(B)/asan/obj/libchat_unit.a

$(B)/obj/common/%.o: src/common/%.c $(COMMON_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CHAT_CFLAGS) -c -o $@ $<

$(B)/obj/tools/%.o: src/tools/%.c $(BENCH_HDRS) $(COMMON_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CHAT_CFLAGS) -Isrc/tools -c -o $@ $<

$(B)/asan/obj/common/%.o: src/common/%.c $(COMMON_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CHAT_CFLAGS) $(SAN) -c -o $@ $<

$(B)/asan/obj/tools/%.o: src/tools/%.c $(BENCH_HDRS) $(COMMON_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CHAT_CFLAGS) $(SAN) -Isrc/tools -c -o $@ $<

$(UNIT_LIB): $(call UNIT_OBJS,$(B))
	rm -f $@ && ar rcs $@ $^

$(UNIT_LIB_ASAN): $(call UNIT_OBJS,$(B)/asan)
	rm -f $@ && ar rcs $@ $^

$(B)/tests/%: tests/unit/%.c tests/unit/chat_test.h $(UNIT_LIB) \
              $(COMMON_HDRS) $(BENCH_HDRS)
	@mkdir -p $(B)/tests
	$(CC) $(CHAT_CFLAGS) -Isrc/tools -o $@ $< $(UNIT_LIB) $(COMMON_LIBS)

$(B)/asan/tests/%: tests/unit/%.c tests/unit/chat_test.h $(UNIT_LIB_ASAN) \
                   $(COMMON_HDRS) $(BENCH_HDRS)
	@mkdir -p $(B)/asan/tests
	$(CC) $(CHAT_CFLAGS) $(SAN) -Isrc/tools -o $@ $< $(UNIT_LIB_ASAN) \
	    $(COMMON_LIBS)

# the push worker's credentials (src/workers/chat_push_auth.c) need libcurl
PUSH_AUTH_SRCS := src/workers/chat_push_auth.c
PUSH_AUTH_DEPS := tests/unit/test_chat_push_auth.c tests/unit/chat_test.h \
                  $(PUSH_AUTH_SRCS) src/workers/chat_push_auth.h \
                  $(COMMON_HDRS)

$(B)/tests/test_chat_push_auth: $(PUSH_AUTH_DEPS) $(UNIT_LIB)
	@mkdir -p $(B)/tests
	$(CC) $(CHAT_CFLAGS) -Isrc/workers -o $@ $< $(PUSH_AUTH_SRCS) \
	    $(UNIT_LIB) $(COMMON_LIBS) -lcurl -lpthread

$(B)/asan/tests/test_chat_push_auth: $(PUSH_AUTH_DEPS) $(UNIT_LIB_ASAN)
	@mkdir -p $(B)/asan/tests
	$(CC) $(CHAT_CFLAGS) $(SAN) -Isrc/workers -o $@ $< $(PUSH_AUTH_SRCS) \
	    $(UNIT_LIB_ASAN) $(COMMON_LIBS) -lcurl -lpthread

# --- the stack and the test run -------------------------------------------

run: deps all
	scripts/stack up

# the browser suite (t/060-web.t): Debian's chromium and node when missing
# (setup-deps --browser), and its driver, playwright-core from npm as
# t/web/package-lock.json pins it, in t/web/node_modules
WEB_TEST_DEPS := t/web/node_modules/.package-lock.json

browser-deps:
	@scripts/setup-deps --browser

$(WEB_TEST_DEPS): t/web/package.json t/web/package-lock.json | browser-deps
	cd t/web && npm ci --no-audit --no-fund
	touch $@

stop:
	scripts/stack down

test: deps browser-deps $(WEB_TEST_DEPS)
	scripts/run-tests

# the fault matrix alone (docs/RELIABILITY.md), on a test stack of its own
test-faults: deps all
	scripts/run-tests --faults

style:
	../shared/tools/ngx-style-check

clean:
	rm -rf $(B)

# --- Debian packages (make deb, make deb-check) -----------------------------
# build/deb/libnginx-mod-http-chat_*.deb and build/deb/chat-workers_*.deb
# (scripts/build-deb, packaging/deb/, docs/DEPLOYMENT.md): the module and
# chat-worker built again with Debian's hardening flags (dpkg-buildflags),
# in build/deb/ so that `make all` stays as it is.  deb-check runs lintian
# on them (installed there when missing).

DEB       := $(B)/deb
DEB_FLAGS  = DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get
DEB_CFLAGS = $(shell $(DEB_FLAGS) CFLAGS) $(shell $(DEB_FLAGS) CPPFLAGS)
DEB_LDFLAGS = $(shell $(DEB_FLAGS) LDFLAGS)

.PHONY: deb deb-check

deb: $(DEB)/ngx_http_chat_module.so $(DEB)/chat-worker scripts/build-deb
	scripts/build-deb --module $(DEB)/ngx_http_chat_module.so \
	    --worker $(DEB)/chat-worker --out $(DEB)

$(DEB)/nginx-src/.configured: config $(NGX_SRC)/conf_flags \
                              scripts/build-module
	scripts/build-module --step configure --src $(NGX_SRC) \
	    --build $(DEB)/nginx-src --cc-opt "$(DEB_CFLAGS)" \
	    --ld-opt "$(DEB_LDFLAGS)"

$(DEB)/$(LUA_TABLE): $(DEB)/nginx-src/.configured $(LUA_SRCS)
	sh src/store/lua/gen.sh src/store/lua $@

$(DEB)/ngx_http_chat_module.so: $(DEB)/nginx-src/.configured $(MODULE_SRCS) \
                                $(DEB)/$(LUA_TABLE)
	+scripts/build-module --step make --build $(DEB)/nginx-src --out $@

$(DEB)/chat-worker: $(WORKER_SRCS) $(WORKER_HDRS) $(COMMON_SRCS) \
                    $(COMMON_HDRS)
	@mkdir -p $(DEB)
	$(CC) $(CHAT_CFLAGS) $(DEB_CFLAGS) $(PG_INC) -Isrc/workers -o $@ \
	    $(WORKER_SRCS) $(COMMON_SRCS) $(DEB_LDFLAGS) $(WORKER_LIBS)

deb-check: deb
	scripts/build-deb --lintian $(DEB)

# --- docker/ without a Docker engine (make docker-check) --------------------
# docker/check: the Dockerfile's build script (docker/build) outside
# Docker, the image's entrypoint rendering the node and edge configs
# (nginx -t), and docker/compose.yaml against the compose spec's schema
# (docker-compose config -q; installed there when missing).  Seconds once
# `make all` has built.

.PHONY: docker-check

docker-check:
	docker/check

# --- fuzzing (clang's libFuzzer) ---------------------------------------------
# `make fuzz` runs each target in turn for its share of FUZZ_SECONDS (split
# evenly between the FUZZ_TARGETS) and fails when one finds a crash (the
# input lands in build/fuzz/<target>-crash-*).  `make fuzz-<target>` runs
# one of them, e.g. `make fuzz-record FUZZ_SECONDS=60`.
#
#   ws      the WebSocket frame parser (chat_ws.c)
#   proto   the client message decoder (chat_proto.c)
#   record  the message record: acked by the gateway => stored by the
#           worker (chat_record.c)
#   json    the JSON body guard (chat_json.c) and the UTF-8 validator
#           (chat_utf8.c)
#   jwt     the JWT parser and verifier (chat_jwt.c)
#   image   the image type and size probe of uploads (chat_image.c)
#   push    the push providers' answers, the OAuth2 token answer, previews
#           and Retry-After (chat_push_wire.c)

FUZZ_TARGETS := ws proto record json jwt image push query
FUZZ_SECONDS ?= 60
FUZZ_EACH     = $(shell n=$(words $(FUZZ_TARGETS)); \
                        echo $$(( ($(FUZZ_SECONDS) + n - 1) / n )))
FUZZ_CC      := clang -g -O1 -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -Isrc/common -D_GNU_SOURCE

# per target: the longest input, a dictionary if any, the sources
FUZZ_LEN_ws      := 4096
FUZZ_LEN_proto   := 20480
FUZZ_LEN_record  := 20480
FUZZ_LEN_json    := 8192
FUZZ_LEN_jwt     := 4096
FUZZ_LEN_image   := 65536
FUZZ_LEN_push    := 20480
FUZZ_LEN_query   := 4096
FUZZ_DICT_proto  := tests/fuzz/proto.dict
FUZZ_DICT_record := tests/fuzz/record.dict
FUZZ_DICT_json   := tests/fuzz/proto.dict
FUZZ_DICT_jwt    := tests/fuzz/jwt.dict
FUZZ_DICT_image  := tests/fuzz/image.dict
FUZZ_SRCS_ws     := src/common/chat_ws.c src/common/chat_utf8.c \
                    src/common/chat_base64.c
FUZZ_SRCS_proto  := src/common/chat_proto.c src/common/chat_json.c \
                    src/common/chat_utf8.c src/common/chat_record.c \
                    src/common/chat_id.c src/common/chat_media_id.c
FUZZ_SRCS_record := $(FUZZ_SRCS_proto)
FUZZ_SRCS_json   := src/common/chat_json.c src/common/chat_utf8.c
FUZZ_SRCS_jwt    := src/common/chat_jwt.c src/common/chat_json.c \
                    src/common/chat_utf8.c src/common/chat_base64.c
FUZZ_SRCS_image  := src/common/chat_image.c
FUZZ_SRCS_query  := src/common/chat_search_query.c src/common/chat_query.c \
                    src/common/chat_json.c src/common/chat_utf8.c \
                    src/common/chat_base64.c src/common/chat_hex.c
FUZZ_SRCS_push   := src/common/chat_push_wire.c src/common/chat_json.c \
                    src/common/chat_utf8.c src/common/chat_base64.c \
                    src/common/chat_sigv4.c src/common/chat_hex.c

.PHONY: fuzz $(addprefix fuzz-,$(FUZZ_TARGETS))

# one fuzzer at a time, also under make -j
fuzz: $(addprefix $(B)/fuzz/fuzz_,$(FUZZ_TARGETS))
	@set -e; for t in $(FUZZ_TARGETS); do \
	    $(MAKE) --no-print-directory fuzz-$$t; done

$(addprefix fuzz-,$(FUZZ_TARGETS)): fuzz-%: $(B)/fuzz/fuzz_%
	mkdir -p $(B)/fuzz/corpus-$*
	$(B)/fuzz/fuzz_$* -max_total_time=$(FUZZ_EACH) \
	    -max_len=$(FUZZ_LEN_$*) \
	    $(if $(FUZZ_DICT_$*),-dict=$(FUZZ_DICT_$*)) \
	    -artifact_prefix=$(B)/fuzz/$*- $(B)/fuzz/corpus-$* \
	    tests/fuzz/seeds/$*

.SECONDEXPANSION:
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/chat_fuzz.h \
                  $$(FUZZ_SRCS_$$*) $$(subst .c,.h,$$(FUZZ_SRCS_$$*))
	@mkdir -p $(B)/fuzz
	$(FUZZ_CC) -o $@ $< $(FUZZ_SRCS_$*) -ljansson -lcrypto
