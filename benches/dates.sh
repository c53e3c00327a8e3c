#!/usr/bin/env bash
# What several as-of dates cost against one in `strata evaluate`: the
# default model (core) with the bundled outcomes, as of 1, 4 and 12
# month-ends, runs interleaved, medians of RUNS whole-process timings (wall,
# CPU, peak memory with GNU time) and the ratios to one date. Prints
# figures; asserts nothing. With BASE (a strata binary, or a git revision
# to build, as benches/side_by_side.sh takes), each run alternates BASE
# and this checkout's build, and both are printed, with the ratios
# between them.
#
#   benches/dates.sh [PERSONS=200000] [RUNS=3] [BASE]
#
# Needs GNU time (/usr/bin/time) and python3 (for the medians).
set -euo pipefail
cd "$(dirname "$0")/.."

persons=${1:-200000}
runs=${2:-3}
work=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$work"
data="$work/data-$persons"

cargo build --release --quiet
bin=target/release/strata
# (label, binary) of each build compared: this checkout's, and BASE's.
builds=("new $bin")
if [ $# -ge 3 ]; then
  source benches/strata_build.sh
  builds=("base $(strata_build "$3" "$work")" "new $bin")
fi
[ -d "$data" ] || "$bin" generate --patients "$persons" --seed 7 --out "$data" --quiet

# Month-ends a year before the generated extract ends, and earlier.
all=(2025-03-31 2025-02-28 2025-01-31 2024-12-31 2024-11-30 2024-10-31
     2024-09-30 2024-08-31 2024-07-31 2024-06-30 2024-05-31 2024-04-30)
evaluate() { # binary, number of dates
  local args=()
  for d in "${all[@]:0:$2}"; do args+=(--as-of "$d"); done
  rm -rf "$work/evaluation"
  "$1" evaluate --rules models/core.toml --rules models/outcomes.toml --data "$data" \
    "${args[@]}" --outcome emergency_admission_365d --outcome death_365d \
    --score efi --score hfrs --out "$work/evaluation" --quiet
}

counts=(1 4 12)
: >"$work/times"
for _ in $(seq "$runs"); do
  for n in "${counts[@]}"; do
    for build in "${builds[@]}"; do
      read -r label exe <<<"$build"
      /usr/bin/time -f "$label $n %e %U %S %M" -a -o "$work/times" bash -c "$(declare -f evaluate); $(declare -p all work data); evaluate $exe $n" \
        || { echo "evaluate ($label) with $n dates failed"; exit 1; }
    done
  done
done

echo "strata $($bin --version | cut -d" " -f2), $(nproc) cores, $persons persons, models/core.toml + models/outcomes.toml, 2 outcomes"
python3 - "$work/times" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = {}
for label, n, wall, user, sys_, peak in rows:
    by.setdefault(label, {}).setdefault(int(n), []).append(
        (float(wall), float(user) + float(sys_), float(peak) / 1024, float(sys_)))
med = lambda runs, i: statistics.median(r[i] for r in runs)
for label in sorted(by, key=lambda l: l != "base"):
    if len(by) > 1:
        print(label)
    one = med(by[label][1], 0)
    for n in sorted(by[label]):
        runs = by[label][n]
        print(f"{n:2} dates: wall {med(runs, 0):6.2f} s ({med(runs, 0) / one:4.1f}x one date), cpu {med(runs, 1):6.2f} s (system {med(runs, 3):5.2f} s), peak memory {med(runs, 2):5.0f} MiB  (median of {len(runs)})")
if "base" in by:
    print("new/base")
    for n in sorted(by["new"]):
        b, w = by["base"][n], by["new"][n]
        print(f"{n:2} dates: wall {med(w, 0) / med(b, 0):5.3f}, cpu {med(w, 1) / med(b, 1):5.3f}, peak memory {med(w, 2) / med(b, 2):5.3f}")
PY
