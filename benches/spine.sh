#!/usr/bin/env bash
# End-to-end figures for `strata generate` and `strata run` at a given size:
# wall time, CPU time and peak memory (GNU time), median of RUNS runs, plus the
# per-stage timings strata records in its manifest. Prints figures; asserts
# nothing.
#
#   benches/spine.sh [PERSONS=1000000] [RULES=models/hiu.toml] [RUNS=5]
#
# Needs GNU time (/usr/bin/time) and python3 (for the medians).
set -euo pipefail
cd "$(dirname "$0")/.."

persons=${1:-1000000}
rules=${2:-models/hiu.toml}
runs=${3:-5}
work=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$work"
data="$work/data-$persons"
out="$work/out-$persons"

cargo build --release --quiet
bin=target/release/strata

measure() { # label, command...
  local label=$1; shift
  local rows=()
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >/dev/null 2>"$work/stderr" || { cat "$work/stderr"; exit 1; }
    rows+=("$(cat "$work/time")")
  done
  printf '%s\n' "${rows[@]}" | python3 -c '
import statistics, sys
label = sys.argv[1]
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
med = lambda i: statistics.median(r[i] for r in rows)
print(f"{label:10} median of {len(rows)}: wall {med(0):.2f} s, cpu {med(1)+med(2):.2f} s, peak memory {med(3)/1024:.0f} MiB")
' "$label"
}

echo "strata $($bin --version | cut -d" " -f2), $(nproc) cores, $persons persons, $rules"
rm -rf "$data"
measure generate "$bin" --quiet generate --patients "$persons" --seed 1 --out "$data"
du -sh "$data" | awk '{print "input size: " $1}'
measure run "$bin" --quiet run --rules "$rules" --data "$data" --out "$out"
python3 - "$out/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print("stages (last run): " + ", ".join(f"{s} {t:.2f} s" for s, t in m["timings_seconds"]))
print("cohorts: " + ", ".join(f"{c['name']} {c['members']}" for c in m["cohorts"]))
PY
[ -n "${BENCH_DIR:-}" ] || rm -rf "$work"
