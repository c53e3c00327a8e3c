#!/usr/bin/env bash
# Independent checks of the bundled models: generates PERSONS people (seed
# SEED), runs strata on them with the models of docs/models.md, and checks
# every person's HIU, eFI, HFRS, Charlson, last-years-of-life and
# segmentation results against DuckDB SQL recomputed from the input Parquet
# (benches/check_*.py); checks that the same rule files compiled to SQL
# (`strata compile --target duckdb`) give the same per-person table as the
# native engine, on every assurance test's data and on the generated
# population, and that `strata publish` turns the SQL's table into the native
# run's outputs (benches/conformance.py); recomputes `strata evaluate`'s
# figures from its predictions (benches/check_evaluate.py); then prints the
# prevalence figures of docs/models.md (benches/prevalence.py). Exits
# non-zero if any check fails.
#
# Usage: benches/checks.sh [PERSONS (200000)] [SEED (1)]
# Builds nothing: runs ${STRATA:-target/release/strata} (build it first with
# `cargo build --release`). Needs python3 with venv and pip: DuckDB is
# installed, at the pinned version, into benches/.venv. Data is kept in
# target/checks/data-PERSONS-SEED for later runs; the run's output goes to
# target/checks/out-PERSONS-SEED.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ beside the checks
persons="${1:-200000}"
seed="${2:-1}"
as_of="2026-03-31"
duckdb_version="2.0.0"

repo="$(cd "$(dirname "$0")/.." && pwd)"
strata="${STRATA:-$repo/target/release/strata}"
case "$strata" in
    /*) ;;
    */*) strata="$(pwd)/$strata" ;;                # relative to where it was called from
    *) strata="$(command -v "$strata" || true)" ;; # a command on PATH
esac
cd "$repo"
if [ ! -x "$strata" ]; then
    echo "checks.sh: no strata binary at ${strata:-${STRATA}} (run cargo build --release, or set STRATA)" >&2
    exit 2
fi

# DuckDB from PyPI at the pinned version, in a venv made whole or not at
# all (a half-made one, say without pip, is made again).
venv=benches/.venv
py="$venv/bin/python"
if ! "$py" -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$duckdb_version')" 2>/dev/null; then
    rm -rf "$venv" "$venv.tmp"
    python3 -m venv "$venv.tmp"
    "$venv.tmp/bin/python" -m pip install --quiet "duckdb==$duckdb_version"
    mv "$venv.tmp" "$venv"
fi

# Generated data is reused only if this very binary made it (the stamp is
# the binary's SHA-256), and is moved into place only when complete.
data="target/checks/data-$persons-$seed"
out="target/checks/out-$persons-$seed"
stamp="$(sha256sum "$strata" | cut -d' ' -f1)"
if [ "$(cat "$data/.made-by" 2>/dev/null)" != "$stamp" ]; then
    echo "generating $persons persons (seed $seed) into $data"
    rm -rf "$data" "$data.tmp"
    mkdir -p "$(dirname "$data")"
    "$strata" generate --patients "$persons" --seed "$seed" --out "$data.tmp" --quiet
    echo "$stamp" >"$data.tmp/.made-by"
    mv "$data.tmp" "$data"
fi
echo "running the models as of $as_of into $out"
"$strata" run --rules models/core.toml --rules models/southampton-one-team.toml \
    --rules models/charlson.toml --rules models/core20plus5.toml \
    --data "$data" --out "$out" --as-of "$as_of" --suppression none --quiet

checks=(hiu efi hfrs charlson lyol segmentation)
failed=()
for check in "${checks[@]}"; do
    echo
    echo "== check_$check"
    if ! "$py" "benches/check_$check.py" "$data" "$out" "$as_of"; then
        failed+=("$check")
    fi
done

echo
echo "== conformance: the same rule files compiled to SQL (strata compile) and run on DuckDB,"
echo "   and its table published (strata publish) as the native run's outputs"
sample_out=target/checks/sample-core
rm -rf "$sample_out"
"$strata" run --data sample-data --out "$sample_out" --as-of "$as_of" --suppression none --quiet
if ! "$py" benches/conformance.py --engine duckdb --strata "$strata" --work target/checks/conformance \
    models/*.toml tests/golden/*.toml \
    --generated "$data" "$out" "$as_of" models/core.toml models/southampton-one-team.toml \
    models/charlson.toml models/core20plus5.toml \
    --generated sample-data "$sample_out" "$as_of" core; then
    failed+=("conformance (SQL backend)")
fi

echo
echo "== strata evaluate, recomputed independently from predictions.parquet"
# (The eFI is not a probability; given as one, it exercises the calibration
# figures' arithmetic.)
evaluation=target/checks/evaluation-$persons-$seed
rm -rf "$evaluation"
if ! { "$strata" evaluate --rules models/core.toml --rules models/outcomes.toml --data "$data" \
    --as-of 2024-06-30 --as-of 2024-09-30 --as-of 2024-12-31 --as-of 2025-03-31 \
    --outcome emergency_admission_365d --outcome death_365d --outcome acsc_emergency_admission_365d --outcome emergency_bed_days_365d \
    --score hfrs --score ae_attendances_12m --probability efi \
    --compare-set hiu_threshold=4 --compare-set hiu_window_days=180 \
    --suppression none --out "$evaluation" --quiet &&
    "$py" benches/check_evaluate.py "$evaluation"; }; then
    failed+=("evaluate")
fi

echo
echo "== prevalence"
if ! "$py" benches/prevalence.py "$data" "$out" "$as_of"; then
    failed+=("prevalence (the figures)")
fi

echo
if [ "${#failed[@]}" -gt 0 ]; then
    echo "checks.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "checks.sh: all ${#checks[@]} checks and the SQL conformance agree with strata on $persons persons (seed $seed)"
