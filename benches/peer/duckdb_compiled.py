"""Runs a script from `strata compile --target duckdb` on DuckDB and writes
its per-person table as Parquet: the default model's peer, the same rule
files written as SQL by the compiler (see docs/sql.md).

Usage: python duckdb_compiled.py SCRIPT.sql OUT.parquet
"""

import sys

import duckdb

script, out = sys.argv[1], sys.argv[2]
statements = [s for s in open(script).read().split(";\n") if s.strip() and not all(
    line.startswith("--") or not line.strip() for line in s.splitlines())]
con = duckdb.connect()
for s in statements[:-1]:
    con.execute(s)
final = statements[-1].rstrip().rstrip(";")
con.execute(f"COPY ({final}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
