"""Prints what side_by_side.sh measured: for each build the medians of its
runs' wall time, CPU time (and the system's part of it, much of it the
kernel finding fresh memory: see fresh_memory.py), peak memory and
stages, with new/base ratios;
then each pair's wall-time difference (new less base), which tells a
change that held in every pair from one that only moved the median.

    side_by_side.py WORK RUNS

WORK/times.tsv has one line per run: side, run, wall, user and system
seconds, peak KiB;
WORK/manifest-SIDE-RUN.json is that run's manifest.
"""

import json
import statistics
import sys
from pathlib import Path


def main():
    work, runs = Path(sys.argv[1]), int(sys.argv[2])
    rows = [line.split("\t") for line in (work / "times.tsv").read_text().splitlines() if line]
    figures = {}  # name -> side -> [values, one per run]
    for side, run, wall, user, system, peak in rows:
        put = lambda name, value: figures.setdefault(name, {}).setdefault(side, []).append(value)
        put("wall (s)", float(wall))
        put("CPU (s)", float(user) + float(system))
        put("  of which system (s)", float(system))
        put("peak (MiB)", int(peak) / 1024)
        manifest = json.loads((work / f"manifest-{side}-{run}.json").read_text())
        for stage, seconds in manifest["timings_seconds"]:
            put(f"  {stage} (s)", seconds)
    print(f"medians of {runs} runs each, alternating")
    print(f"{'':34} {'base':>9} {'new':>9} {'new/base':>9}")
    for name, sides in figures.items():
        base, new = (statistics.median(sides.get(s, [float("nan")])) for s in ("base", "new"))
        ratio = new / base if base else float("nan")
        print(f"{name:34} {base:9.2f} {new:9.2f} {ratio:9.3f}")
    walls = figures["wall (s)"]
    differences = [n - b for b, n in zip(walls["base"], walls["new"])]
    print("each pair, new less base wall (s): " + " ".join(f"{d:+.2f}" for d in differences))


if __name__ == "__main__":
    main()
