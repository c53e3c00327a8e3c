#!/usr/bin/env bash
# The SQL backend on Spark: every bundled model and golden rule file,
# compiled with `strata compile --target spark` and run on PySpark in local
# mode, must give the same per-person table as strata's native engine, on
# every assurance test's data and on a generated population
# (benches/conformance.py, one Spark session for all of it).
#
# Usage: benches/spark/run.sh [PERSONS (20000)] [SEED (1)]
# Builds nothing: runs ${STRATA:-target/release/strata}. Installs pyspark
# (pinned, benches/spark/setup.sh) on first use; needs Java 17 (or 8/11).
# Data and the native run are kept in target/spark/.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
persons="${1:-20000}"
seed="${2:-1}"
as_of="2026-03-31"

repo="$(cd "$(dirname "$0")/../.." && pwd)"
strata="${STRATA:-$repo/target/release/strata}"
case "$strata" in
    /*) ;;
    */*) strata="$(pwd)/$strata" ;;
    *) strata="$(command -v "$strata" || true)" ;;
esac
cd "$repo"
if [ ! -x "$strata" ]; then
    echo "spark/run.sh: no strata binary at ${strata:-${STRATA}} (run cargo build --release, or set STRATA)" >&2
    exit 2
fi
py="$(benches/spark/setup.sh)"

data="target/spark/data-$persons-$seed"
out="target/spark/out-$persons-$seed"
rules=(models/core.toml models/southampton-one-team.toml models/charlson.toml models/core20plus5.toml)
rm -rf "$data" "$out"
mkdir -p target/spark
"$strata" generate --patients "$persons" --seed "$seed" --out "$data" --quiet
rule_args=()
for r in "${rules[@]}"; do rule_args+=(--rules "$r"); done
"$strata" run "${rule_args[@]}" --data "$data" --out "$out" --as-of "$as_of" --suppression none --quiet

started=$(date +%s)
"$py" benches/conformance.py --engine spark --strata "$strata" --work target/spark/conformance \
    models/*.toml tests/golden/*.toml \
    --generated "$data" "$out" "$as_of" "${rules[@]}"
echo "spark/run.sh: $(($(date +%s) - started)) s on Spark"
