#!/usr/bin/env bash
# Runs every cargo-fuzz target of the workspace for a given time each, one after the other.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s; `scripts/fuzz.sh 600` = 10 min each)
#
# Targets: core/tlv, core/response (iotsafe-core/fuzz), vcard/dispatch (iotsafe-vcard/fuzz), and any
# further target found in those folders' fuzz_targets/ (core/at_line, core/cert_files once their
# branches are on main). Name a subset as `core/tlv vcard/dispatch`.
#
# Toolchain: cargo-fuzz passes nightly-only flags (-Zsanitizer=address, -Cpasses=sancov-module…).
# Only the stable toolchain exists on our machines and none can be fetched, so this script sets
# RUSTC_BOOTSTRAP=1, which lets the stable compiler accept them. Install cargo-fuzz from crates.io
# with `cargo install cargo-fuzz --locked` (this script does it when it is missing).
#
# Each target runs as one single-threaded libFuzzer process (its default; `-jobs=1` would move the
# output into fuzz-0.log) under `nice`, so that other work on a small machine keeps its CPU. Corpora stay in <crate>/fuzz/corpus/<target> (git-ignored) and grow from run to
# run; a crash leaves its input in <crate>/fuzz/artifacts/<target>/ and makes this script fail. The
# last libFuzzer status line of each run (`#N DONE cov: … ft: … exec/s …`) is printed in a summary
# and kept in target/fuzz-logs/.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECONDS_EACH=${1:-60}
shift || true
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

declare -A DIRS=([core]=iotsafe-core/fuzz [vcard]=iotsafe-vcard/fuzz)
targets=("$@")
if ((${#targets[@]} == 0)); then
    for crate in core vcard; do
        for f in "${DIRS[$crate]}"/fuzz_targets/*.rs; do
            targets+=("$crate/$(basename "$f" .rs)")
        done
    done
fi

LOGS="$ROOT/target/fuzz-logs"
mkdir -p "$LOGS"
summary=()
failed=0
for t in "${targets[@]}"; do
    crate=${t%%/*}
    name=${t#*/}
    dir=${DIRS[$crate]:?unknown crate in $t (expected core/… or vcard/…)}
    log="$LOGS/${crate}-${name}.log"
    echo "== fuzzing $t for ${SECONDS_EACH}s (log: $log)"
    mkdir -p "$dir/corpus/$name"
    if (cd "$dir" && nice -n 15 cargo fuzz run "$name" -- \
            -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
            >"$log" 2>&1); then
        status=ok
    else
        status=FAILED
        failed=1
        tail -n 40 "$log" >&2
    fi
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    summary+=("$t [$status] $last")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
