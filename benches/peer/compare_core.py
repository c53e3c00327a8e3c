"""Checks that strata's patients.parquet and the compiled SQL's table hold
the same persons and values (every column the SQL writes; floats within
1e-9 relative), then prints the timing table and the ratio.

Usage: python compare_core.py STRATA_OUT SQL.parquet TIMINGS.tsv
TIMINGS.tsv: one line per run: tool, wall seconds, CPU seconds, peak KiB.
"""

import sys

import duckdb
from medians import medians

strata_out, sql_out, timings = sys.argv[1:4]
con = duckdb.connect()
con.execute(f"create view n as select * from read_parquet('{strata_out}/patients.parquet')")
con.execute(f"create view s as select * from read_parquet('{sql_out}')")
native = [r[0] for r in con.execute("describe n").fetchall()]
compiled = con.execute("describe s").fetchall()
ok = [r[0] for r in compiled] == native
if not ok:
    print("the columns differ: " + ", ".join(sorted(set(native) ^ {r[0] for r in compiled})))
else:
    def differs(name, kind):
        a, b = f'n."{name}"', f's."{name}"'
        if kind in ("DOUBLE", "FLOAT") or kind.startswith("DECIMAL"):
            return f"(({a} is null) <> ({b} is null) or abs({a} - {b}) > 1e-9 * greatest(abs({a}), 1))"
        return f"{a} is distinct from {b}"

    counts = con.execute(
        "select count(*), count(s.person_id), count(n.person_id), "
        + ", ".join(f"count(*) filter (where {differs(name, kind)})" for name, kind, *_ in compiled)
        + " from n full join s on n.person_id = s.person_id"
    ).fetchone()
    persons, in_sql, in_native, per_column = counts[0], counts[1], counts[2], counts[3:]
    bad = [(c[0], k) for c, k in zip(compiled, per_column) if k]
    ok = in_sql == in_native == persons and not bad
    if ok:
        print(f"DuckDB (compiled SQL): identical per-person table ({persons:,} persons, {len(compiled)} columns)")
    else:
        print(f"DuckDB (compiled SQL): {persons:,} persons joined ({in_native:,} native, {in_sql:,} SQL); "
              f"columns differing: {bad[:10]}")

figures = medians(timings, ["strata", "duckdb"])
speed = figures["duckdb"][0] / figures["strata"][0]
memory = figures["strata"][2] / figures["duckdb"][2]
print(f"strata core vs DuckDB compiled: {speed:.2f}x faster, peak memory {memory:.2f}x")
sys.exit(0 if ok else 1)
