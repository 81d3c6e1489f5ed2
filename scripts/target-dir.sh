#!/usr/bin/env bash
# Prints where cargo puts this workspace's build: `CARGO_TARGET_DIR`, a `build.target-dir` in any cargo
# config, or ./target. Scripts ask this instead of assuming ./target.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --no-deps --offline 2>/dev/null \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
