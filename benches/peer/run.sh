#!/usr/bin/env bash
# strata against its peers, on PERSONS generated people, each run RUNS
# times, interleaved; checks that they agree person by person, and prints
# whole-process wall time, CPU time and peak memory (medians) and ratios:
#
# 1. the peer workload (see workload.toml) against DuckDB and Polars queries
#    written by hand, ending with
#      strata vs best peer: <R>x faster, peak memory <M>x
# 2. the default model (models/core.toml, what `strata run` runs) against
#    the same rule files compiled to DuckDB SQL by `strata compile` (not
#    timed), ending with
#      strata core vs DuckDB compiled: <R>x faster, peak memory <M>x
#    strata's run also writes the PCN lists, workbooks and report; DuckDB's
#    only the per-person table.
#
# Usage: benches/peer/run.sh [PERSONS (1000000)] [RUNS (5)] [WHICH (both)]
# WHICH: peer, core or both. The compiled core script takes DuckDB about
# 18 s and 5.3 GiB at 1M persons on 2 cores (5M would not fit in 24 GiB).
# Needs python3 with venv and pip (DuckDB and Polars are installed into
# benches/peer/.venv) and GNU time (/usr/bin/time). Data is kept in
# target/peer/ for later runs; set STRATA_PEER_DATA to use another folder.
set -euo pipefail
persons="${1:-1000000}"
runs="${2:-5}"
which="${3:-both}"
as_of="2026-03-31"
cd "$(dirname "$0")/../.."
here=benches/peer

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet duckdb==2.0.0 polars==2.1.0
fi
py="$venv/bin/python"

cargo build --release --quiet
strata=target/release/strata
data="${STRATA_PEER_DATA:-target/peer/data-$persons}"
if [ ! -f "$data/patients.parquet" ]; then
    "$strata" generate --patients "$persons" --seed 1 --out "$data" --quiet
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
timings="$work/timings.tsv"

measure() { # tool, command...
    local tool="$1"
    shift
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >/dev/null
    read -r wall user sys peak <"$work/time"
    printf '%s\t%s\t%s\t%s\n' "$tool" "$wall" "$(echo "$user + $sys" | bc)" "$peak" >>"$timings"
}

status=0
if [ "$which" != core ]; then
echo "strata, DuckDB and Polars on $persons persons ($(nproc) cores), $runs runs each, interleaved"
for i in $(seq "$runs"); do
    # A different tool goes first each round, so none always meets a cold cache.
    order=(strata duckdb polars)
    order=("${order[@]:$((i % 3))}" "${order[@]:0:$((i % 3))}")
    for tool in "${order[@]}"; do
        case "$tool" in
            strata)
                rm -rf "$work/strata-out"
                measure strata "$strata" run --rules "$here/workload.toml" --data "$data" \
                    --out "$work/strata-out" --as-of "$as_of" --quiet ;;
            duckdb) measure duckdb "$py" "$here/duckdb_query.py" "$data" "$as_of" "$work/duckdb.parquet" ;;
            polars) measure polars "$py" "$here/polars_query.py" "$data" "$as_of" "$work/polars.parquet" ;;
        esac
    done
done
"$py" "$here/compare.py" "$work/strata-out" "$work/duckdb.parquet" "$work/polars.parquet" "$timings" || status=1
echo
fi
[ "$which" != peer ] || exit "$status"

echo "The default model (core) against its rule files compiled to DuckDB SQL, $runs runs each, interleaved"
"$strata" compile --target duckdb core --data "$data" --as-of "$as_of" --out "$work/core.sql" --quiet
: >"$timings"
for i in $(seq "$runs"); do
    order=(strata duckdb)
    order=("${order[@]:$((i % 2))}" "${order[@]:0:$((i % 2))}")
    for tool in "${order[@]}"; do
        case "$tool" in
            strata)
                rm -rf "$work/strata-core"
                measure strata "$strata" run --rules core --data "$data" \
                    --out "$work/strata-core" --as-of "$as_of" --quiet ;;
            duckdb) measure duckdb "$py" "$here/duckdb_compiled.py" "$work/core.sql" "$work/core.parquet" ;;
        esac
    done
done
"$py" "$here/compare_core.py" "$work/strata-core" "$work/core.parquet" "$timings" || status=1
exit "$status"
