#!/usr/bin/env bash
# Do two builds of strata write the same outputs? For a change meant to
# make strata faster and nothing else: every bundled model is run by both
# on one generated population, and `evaluate` of the core model over 12
# as-of dates (the several-dates path) too; each pair of output folders
# must be byte-identical apart from run times, their own path and workbook
# creation times (see same_outputs.py). Exits 1 on any difference.
#
#   benches/same_outputs.sh BASE [NEW=target/release/strata] [PERSONS=200000]
#
# BASE is a strata binary, or a git revision to build (a release build in
# a worktree under target/same-outputs: minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

base=${1:?usage: benches/same_outputs.sh BASE [NEW] [PERSONS]}
new=${2:-target/release/strata}
persons=${3:-200000}
work="$PWD/target/same-outputs"
mkdir -p "$work"

source benches/strata_build.sh
base=$(strata_build "$base" "$work")
[ "$new" != target/release/strata ] || cargo build --release --quiet

data="$work/data-$persons"
[ -d "$data" ] || "$new" generate --patients "$persons" --seed 1 --out "$data" --quiet

failed=0
compare() { # name, arguments...
    local name=$1
    shift
    rm -rf "$work/base" "$work/new"
    "$base" "$@" --out "$work/base" --quiet
    "$new" "$@" --out "$work/new" --quiet
    echo "== $name"
    python3 benches/same_outputs.py "$work/base" "$work/new" || failed=1
}

models=$("$new" models | sed -n 's/^  \([a-z0-9_-]*\) (.*/\1/p')
for model in $models; do
    compare "$model" run --rules "$model" --data "$data" --as-of 2026-03-31
done
dates=()
for d in 2025-03-31 2025-02-28 2025-01-31 2024-12-31 2024-11-30 2024-10-31 \
         2024-09-30 2024-08-31 2024-07-31 2024-06-30 2024-05-31 2024-04-30; do
    dates+=(--as-of "$d")
done
compare "evaluate core, 12 dates" evaluate --rules core --rules outcomes --data "$data" \
    "${dates[@]}" --outcome emergency_admission_365d --outcome death_365d \
    --outcome acsc_emergency_admission_365d --score efi --score hfrs

if [ "$failed" = 0 ]; then
    echo "same outputs: every model and the 12-date evaluation"
else
    echo "outputs differ (above)"
fi
exit "$failed"
