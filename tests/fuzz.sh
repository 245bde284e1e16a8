#!/usr/bin/env bash
# Coverage-guided fuzzing of the pgrx-free core with cargo-fuzz and libFuzzer (core/fuzz):
# envelope parsing and opening, root key parsing, protected-column payloads. The core has no
# unsafe code, so the fuzz build runs without a sanitizer, which lets stable Rust build it;
# debug assertions (overflow checks included) stay on.
#   tests/fuzz.sh SECONDS_PER_TARGET
# New inputs go to a scratch directory, beside the corpus kept in core/fuzz/corpus; with
# AKKO_FUZZ_KEEP=1 (make fuzz) they are added to that corpus instead.
set -uo pipefail
seconds=${1:-20}
cd "$(dirname "$0")/../core"
cargo fuzz build -O -a -s none 2>&1 | grep -E "^error" && exit 1
status=0
for target in $(cargo fuzz list); do
    scratch=$(mktemp -d)
    if [ "${AKKO_FUZZ_KEEP:-0}" = 1 ]; then dirs=("fuzz/corpus/$target"); else dirs=("$scratch" "fuzz/corpus/$target"); fi
    cargo fuzz run -O -a -s none "$target" "${dirs[@]}" -- -max_total_time="$seconds" >"$scratch.log" 2>&1
    result=$?
    runs=$(grep -oE '^Done [0-9]+ runs in [0-9]+ second' "$scratch.log" | tail -1)
    if [ $result -eq 0 ]; then
        echo "ok - fuzz $target: ${runs:-no summary}, no crash"
    else
        status=1
        echo "not ok - fuzz $target: exit $result"
        grep -E "panicked|ERROR|SUMMARY|Test unit written" "$scratch.log" | head -5
    fi
    rm -rf "$scratch" "$scratch.log"
done
exit $status
