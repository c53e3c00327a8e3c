"""The timing table both peer comparisons print: per tool, the medians of
its runs' wall time, CPU time and peak memory.

TIMINGS.tsv: one line per run: tool, wall seconds, CPU seconds, peak KiB.
"""

import statistics


def medians(timings, tools):
    """Prints and returns {tool: (wall s, CPU s, peak MiB)}."""
    rows = [line.split("\t") for line in open(timings).read().splitlines() if line.strip()]
    out = {}
    for tool in tools:
        runs = [r for r in rows if r[0] == tool]
        wall = statistics.median(float(r[1]) for r in runs)
        cpu = statistics.median(float(r[2]) for r in runs)
        peak = statistics.median(int(r[3]) for r in runs) / 1024
        out[tool] = (wall, cpu, peak)
        print(f"{tool:8} median of {len(runs)}: wall {wall:6.2f} s   CPU {cpu:6.2f} s   peak {peak:7.0f} MiB")
    return out
