#!/usr/bin/env bash
# perf/peers/uws/build.sh: build the uWebSockets broadcast peer.
#
#   perf/peers/uws/build.sh UWS_SRC OUT_DIR    -> OUT_DIR/uws-broadcast
#
# UWS_SRC is a uWebSockets checkout with its uSockets submodule
# (git clone --recursive https://github.com/uNetworking/uWebSockets). The
# checkout is only read: objects go to OUT_DIR. No TLS (LIBUS_NO_SSL) and no
# compression (UWS_NO_ZLIB): the benchmark measures neither. Needs a C and a
# C++20 compiler (Debian: build-essential).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 2 ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
src=$1
out=$2

[ -f "$src/src/App.h" ] || { echo "uws build: $src/src/App.h not found: UWS_SRC is not a uWebSockets checkout" >&2; exit 1; }
[ -f "$src/uSockets/src/libusockets.h" ] ||
	{ echo "uws build: $src/uSockets is empty: clone with --recursive (git submodule update --init)" >&2; exit 1; }
mkdir -p "$out/obj"
cc=${CC:-cc}
cxx=${CXX:-c++}

# uSockets, as its own Makefile builds it without TLS, one object per file.
for f in "$src"/uSockets/src/*.c "$src"/uSockets/src/eventing/*.c "$src"/uSockets/src/crypto/*.c; do
	o="$out/obj/$(basename "$(dirname "$f")")-$(basename "$f" .c).o"
	"$cc" -std=c11 -O3 -DLIBUS_NO_SSL -I"$src/uSockets/src" -c "$f" -o "$o"
done
"$cxx" -std=c++2b -O3 -DLIBUS_NO_SSL -DUWS_NO_ZLIB -I"$src/src" -I"$src/uSockets/src" \
	"$here/server.cpp" "$out"/obj/*.o -o "$out/uws-broadcast"
echo "uws build: $out/uws-broadcast (uWebSockets $(git -C "$src" describe --tags --always 2>/dev/null || echo 'version unknown'))"
