#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS]: build every libFuzzer harness with clang and run
# each for SECONDS (default 60) from its seed corpus. Fails on any crash,
# leak or invariant failure. Corpora and artifacts go to a temp dir, never
# into the repository.
#   tests/fuzz/run.sh 600        # a longer run
set -euo pipefail
seconds=${1:-60}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d /tmp/ringcast-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
cflags=(-std=gnu17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
	-I"$root/include" -I"$root/src/base" -I"$root/src/io" -I"$root/src/proto" -I"$root/src/chat"
	-I"$root/src/server" -I"$root/src/cluster")

# harness: sources and libraries
declare -A sources=(
	[http]="src/proto/http.c src/proto/origin.c"
	[ws_frame]="src/proto/utf8.c src/proto/ws_frame.c"
	[jwt]="src/proto/jwt.c"
	[chat]="src/base/thread.c src/chat/chat_away.c src/chat/chat.c src/chat/chat_op.c src/chat/sequencer.c src/chat/room_quota.c src/chat/roster.c src/base/log.c src/chat/chat_room.c src/chat/chat_event.c src/chat/chat_name.c src/chat/rate_limit.c src/chat/json_out.c src/base/buf.c src/proto/ws_frame.c src/proto/utf8.c src/chat/store.c"
	[tls]="src/io/tls.c src/base/log.c"
	[cluster_wire]="src/cluster/cluster_wire.c"
	[http_cache]="src/proto/http_cache.c src/proto/guest_token.c src/proto/jwt.c src/proto/utf8.c"
	[sse_event]="src/proto/sse_event.c src/base/buf.c"
	[ws_deflate]="src/proto/ws_deflate.c src/proto/ws_deflate_offer.c src/proto/ws_frame.c src/proto/utf8.c src/base/buf.c"
)
declare -A libs=(
	[http]=""
	[ws_frame]=""
	[jwt]="-lcrypto -ljansson"
	[chat]="-ljansson -lsqlite3 -lpthread"
	[tls]="-lssl -lcrypto"
	[cluster_wire]=""
	[http_cache]="-lcrypto -ljansson"
	[sse_event]=""
	[ws_deflate]="-lz"
)

failed=0
for name in http ws_frame jwt chat tls cluster_wire http_cache sse_event ws_deflate; do
	src=()
	for f in ${sources[$name]}; do src+=("$root/$f"); done
	# shellcheck disable=SC2086
	clang "${cflags[@]}" "${src[@]}" "$root/tests/fuzz/fuzz_$name.c" ${libs[$name]} -o "$work/fuzz_$name"
	mkdir -p "$work/corpus_$name" "$work/artifacts_$name"
	cp "$root/tests/fuzz/seeds/$name"/* "$work/corpus_$name/"
	echo "fuzz: $name for ${seconds}s"
	if ! "$work/fuzz_$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$work/artifacts_$name/" -print_final_stats=1 "$work/corpus_$name" \
		>"$work/log_$name" 2>&1; then
		echo "fuzz: $name FAILED"
		tail -n 60 "$work/log_$name"
		failed=1
	else
		grep -E '^stat::number_of_executed_units' "$work/log_$name" | sed "s/^/fuzz: $name /"
	fi
done
exit $failed
