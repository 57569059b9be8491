#!/usr/bin/env bash
# Runs every ferrule fuzz target for a bounded time: `fuzz/run.sh [SECONDS]` (default 60 each).
#
# - Installs cargo-fuzz when it is missing (`cargo install cargo-fuzz --locked`).
# - Works on a stable toolchain: RUSTC_BOOTSTRAP=1 lets stable rustc accept the `-Zsanitizer`
#   flag cargo-fuzz passes (the AddressSanitizer runtime ships with stable's rust-std).
#   FUZZ_SANITIZER=none builds without ASan (faster, finds panics/hangs/OOM only).
# - Replays fuzz/regressions/<target>/* first (each must pass), then fuzzes each target with the
#   kept corpus fuzz/corpus/<target>/ (read only: new inputs go to target/fuzz-run/<target>/),
#   -rss_limit_mb=512 (memory growth shows up as an OOM report) and -timeout=5 (a hang).
#   FUZZ_MERGE=1 merges the new inputs that add coverage into fuzz/corpus/<target>/ afterwards.
# - Exits non-zero when any target fails (crash, panic, leak, OOM, hang) or a regression still
#   fails; findings are saved under fuzz/artifacts/<target>/ (git-ignored).
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
TARGETS=(parse_head chunked environ proxy_protocol uwsgi forwarded)
RSS_LIMIT_MB=512
TIMEOUT_SECS=5
SANITIZER="${FUZZ_SANITIZER:-address}"

if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -lt 1 ]; then
    echo "usage: fuzz/run.sh [SECONDS]   (seconds per target, default 60)" >&2
    exit 2
fi

cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# Harmless on nightly; on stable it unlocks the -Z flags cargo-fuzz needs.
export RUSTC_BOOTSTRAP=1

echo "== building fuzz targets (sanitizer: $SANITIZER)"
cargo fuzz build --sanitizer "$SANITIZER"

# The lines of a libFuzzer log that say what went wrong.
findings() {
    grep -E -A1 "panicked at" "$1" | head -n 4 || true
    grep -E "ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|Test unit written" "$1" \
        | head -n 4 || true
}

host="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="target/$host/release"
failed=()

for t in "${TARGETS[@]}"; do
    bin="$bin_dir/$t"
    mkdir -p "artifacts/$t" "target/fuzz-run/$t" "corpus/$t"

    if compgen -G "regressions/$t/*" >/dev/null; then
        for r in regressions/"$t"/*; do
            if ! "$bin" -rss_limit_mb="$RSS_LIMIT_MB" -timeout="$TIMEOUT_SECS" "$r" \
                >"target/fuzz-run/$t.regression.log" 2>&1; then
                echo "!! $t: regression $r still fails:"
                findings "target/fuzz-run/$t.regression.log"
                failed+=("$t:$r")
            fi
        done
    fi

    echo "== fuzzing $t for ${SECONDS_PER_TARGET}s"
    log="target/fuzz-run/$t.log"
    status=0
    "$bin" \
        -max_total_time="$SECONDS_PER_TARGET" \
        -rss_limit_mb="$RSS_LIMIT_MB" \
        -timeout="$TIMEOUT_SECS" \
        -artifact_prefix="artifacts/$t/" \
        -print_final_stats=1 \
        "target/fuzz-run/$t" "corpus/$t" >"$log" 2>&1 || status=$?
    grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -n 1 || true
    if [ "$status" -ne 0 ]; then
        echo "!! $t: finding (exit $status), full log: fuzz/$log"
        findings "$log"
        failed+=("$t")
    elif [ "${FUZZ_MERGE:-0}" = 1 ]; then
        "$bin" -merge=1 -rss_limit_mb="$RSS_LIMIT_MB" -timeout="$TIMEOUT_SECS" \
            "corpus/$t" "target/fuzz-run/$t" >"target/fuzz-run/$t.merge.log" 2>&1
        tail -n 1 "target/fuzz-run/$t.merge.log"
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "FAILED: ${failed[*]}"
    echo "reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>  (in fuzz/)"
    exit 1
fi
echo "OK: ${TARGETS[*]}: no crash, hang or memory growth in ${SECONDS_PER_TARGET}s each"
