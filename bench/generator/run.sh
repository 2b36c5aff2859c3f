#!/usr/bin/env bash
# Generator throughput, ours vs a Python port of the original generator, in one run on the same
# stack: sessions/s to a JSON-lines file and to the Kafka-protocol broker.
#
#   bench/generator/run.sh [RUST_SESSIONS] [PYTHON_SESSIONS]     (defaults 200000 and 10000)
#
# Pins both to one core (taskset -c 0) so the figures are per core.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
N=${1:-200000}
PN=${2:-10000}
rust_version=$(rustc --version | awk '{print $2}')
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/shopstream/target-$rust_version}
dev/stack up >/dev/null
eval "$(dev/stack env)"
cargo build --release --locked -q -p shopstream
bin=$CARGO_TARGET_DIR/release/shopstream
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pin="taskset -c 0"

rate() { # rate SESSIONS COMMAND...: sessions per second of the command's wall time
  local n=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  t1=$(date +%s.%N)
  python3 -c "print(f'{$n / ($t1 - $t0):.0f}')"
}
py() { # python reference: its own timing of the loop
  $pin "$SHOPSTREAM_PYTHON" bench/generator/original.py "$@" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["per_second"]))'
}

suffix=$RANDOM$RANDOM
rust_file=$(rate "$N" $pin "$bin" generate --seed 7 --count "$N" --output "$tmp/rust.jsonl")
rust_kafka=$(rate "$N" $pin "$bin" generate --seed 7 --count "$N" --topic "bench-gen-rust-$suffix" --create-topic-partitions 3)
py_file=$(py --count "$PN" --output "$tmp/py.jsonl")
py_kafka=$(py --count "$PN" --topic "bench-gen-py-$suffix" --bootstrap "$SHOPSTREAM_KAFKA")

printf '\n%-8s %16s %16s %8s\n' output "shopstream (/s)" "python orig (/s)" ratio
printf '%-8s %16s %16s %7.0fx\n' file "$rust_file" "$py_file" "$(python3 -c "print($rust_file/$py_file)")"
printf '%-8s %16s %16s %7.0fx\n' kafka "$rust_kafka" "$py_kafka" "$(python3 -c "print($rust_kafka/$py_kafka)")"
echo "(one core each; Rust $N sessions, Python $PN sessions; Rust timing includes process start and flush)"
