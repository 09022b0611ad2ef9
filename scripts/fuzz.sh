#!/usr/bin/env bash
# Fuzzing: builds the fuzz targets in fuzz/ (cargo-fuzz, libFuzzer) and runs
# each one for SECONDS (default 30) on a copy of its seeds (fuzz/seeds/TARGET),
# one after the other. Fails on the first crash, hang (one input running over
# 10 s) or out-of-memory (over 2 GB); the input that did it is saved in
# fuzz/artifacts/TARGET/ and the target's log is printed. docs/reliability.md
# ("Fuzzing") says what each target covers and how to reproduce a failure.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]      (from anywhere in the repo)
#   SECONDS 0 only runs each target on its seeds once.
#   FUZZ_TARGET_DIR   build directory (default: ${CARGO_TARGET_DIR:-target}/fuzz)
#   FUZZ_CORPUS_DIR   keep each target's grown corpus in FUZZ_CORPUS_DIR/TARGET
#                     (default: a scratch directory, removed at the end)
#   FUZZ_LOG_DIR      keep each target's libFuzzer log there as TARGET.log
#
# Needs only the stable toolchain: the targets are built without a sanitizer
# (safe Rust: a bug shows as a panic, an endless loop or unbounded memory,
# which libFuzzer catches as they are), so the build takes no nightly-only
# flag; RUSTC_BOOTSTRAP=1 covers cargo-fuzz versions that pass one anyway.
# cargo-fuzz is installed (cargo install) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
shift || true
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

target_dir=${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/fuzz}
# Release with debug assertions and overflow checks (cargo-fuzz's default).
RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer none --target-dir "$target_dir"
bin=$target_dir/x86_64-unknown-linux-gnu/release

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The targets' own temporary files (config files, log files) go here.
export TMPDIR=$work/tmp
mkdir -p "$TMPDIR"

failed=()
for t in "${targets[@]}"; do
    corpus=${FUZZ_CORPUS_DIR:+$FUZZ_CORPUS_DIR/$t}
    corpus=${corpus:-$work/corpus/$t}
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    cp -n fuzz/seeds/"$t"/* "$corpus"/
    log=${FUZZ_LOG_DIR:+$FUZZ_LOG_DIR/$t.log}
    log=${log:-$work/$t.log}
    [ -z "${FUZZ_LOG_DIR:-}" ] || mkdir -p "$FUZZ_LOG_DIR"
    dict=()
    [ ! -f "fuzz/dict/$t.dict" ] || dict=("-dict=fuzz/dict/$t.dict")
    echo "== $t: ${seconds}s"
    length=("-max_total_time=$seconds")
    [ "$seconds" != 0 ] || length=("-runs=0")
    status=0
    "$bin/$t" "$corpus" "${dict[@]}" "${length[@]}" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
        >"$log" 2>&1 || status=$?
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" || true
    if [ "$status" != 0 ]; then
        echo "== $t FAILED (exit $status); the end of its log:" >&2
        tail -n 60 "$log" >&2
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no failures"
