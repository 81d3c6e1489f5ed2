#!/usr/bin/env bash
# Runs one stage of `make test` (or any target) and prints how long it took, pass or fail:
#   scripts/stage.sh NAME COMMAND [ARG...]
set -uo pipefail
name=$1
shift
started=$(date +%s)
"$@"
status=$?
echo "stage $name: $(( $(date +%s) - started )) s$([ $status = 0 ] || echo " (failed, exit $status)")"
exit $status
