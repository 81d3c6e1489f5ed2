#!/usr/bin/env bash
# Runs every cargo-fuzz target for a while, then minimizes its corpus, and prints a line per target:
# runs, seconds, crashes. Needs the nightly toolchain; installs cargo-fuzz from crates.io if missing.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 300 s, every target)
#
# A crash leaves its input in fuzz/artifacts/<target>/: fix the bug, then move the input to
# fuzz/regressions/<target>/, where `make test` replays it on stable from then on.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-300}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(ingest upload_form body_forms)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build -O

summary=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    before=$(find "artifacts/$target" -type f | wc -l)
    log=$(mktemp)
    # -rss_limit_mb: ingestion must stay small whatever the input; a leak or a bomb shows here.
    cargo +nightly fuzz run -O "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1 || true
    runs=$(grep -oP '^stat::number_of_executed_units:\s*\K\d+' "$log" || echo "?")
    after=$(find "artifacts/$target" -type f | wc -l)
    tail -n 3 "$log"
    cargo +nightly fuzz cmin -O "$target" "corpus/$target" >/dev/null 2>&1 || true
    kept=$(find "corpus/$target" -type f | wc -l)
    summary+=("$(printf '%-12s runs %-10s seconds %-6s crashes %-3s corpus %s' \
        "$target" "$runs" "$seconds" "$((after - before))" "$kept")")
    rm -f "$log"
done
printf '%s\n' "${summary[@]}"
