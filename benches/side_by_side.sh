#!/usr/bin/env bash
# Is one build of strata faster than another? Both run `strata run` (the
# default model, or the arguments given after `--`) in turn on one
# generated population, RUNS times each, and side_by_side.py prints the
# medians next to each other: wall and CPU time, peak memory and each
# stage (the manifest's `timings_seconds`), and every pair's difference in
# wall time. A shared machine's speed drifts from minute to minute: runs
# alternate so that drift falls on both builds, and only figures from one
# such run compare. The last pair's outputs are compared too
# (same_outputs.py; same_outputs.sh covers every model).
#
#   benches/side_by_side.sh BASE [NEW=target/release/strata] [PERSONS=1000000] [RUNS=5] [-- RUN ARGUMENTS]
#
# BASE and NEW are strata binaries or git revisions to build (see
# strata_build.sh). The run arguments default to `--as-of 2026-03-31`.
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: benches/side_by_side.sh BASE [NEW] [PERSONS] [RUNS] [-- RUN ARGUMENTS]"
positional=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    positional+=("$1")
    shift
done
[ $# -eq 0 ] || shift
base=${positional[0]:?$usage}
new=${positional[1]:-target/release/strata}
persons=${positional[2]:-1000000}
runs=${positional[3]:-5}
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--as-of 2026-03-31)

work="$PWD/target/side-by-side"
mkdir -p "$work"
source benches/strata_build.sh
base=$(strata_build "$base" "$work")
[ "$new" != target/release/strata ] || cargo build --release --quiet
new=$(strata_build "$new" "$work")

data="$work/data-$persons"
[ -d "$data" ] || "$new" generate --patients "$persons" --seed 7 --out "$data" --quiet

: >"$work/times.tsv"
for run in $(seq "$runs"); do
    for side in base new; do
        bin=$base
        [ "$side" = base ] || bin=$new
        rm -rf "$work/out-$side"
        /usr/bin/time -f "%e %U %S %M" -o "$work/time" \
            "$bin" run --data "$data" --out "$work/out-$side" --quiet "${args[@]}"
        read -r wall user sys peak <"$work/time"
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$side" "$run" "$wall" "$user" "$sys" "$peak" \
            >>"$work/times.tsv"
        cp "$work/out-$side/manifest.json" "$work/manifest-$side-$run.json"
    done
done
python3 benches/side_by_side.py "$work" "$runs"
python3 benches/same_outputs.py "$work/out-base" "$work/out-new"
