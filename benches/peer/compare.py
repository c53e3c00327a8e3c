"""Checks that strata, DuckDB and Polars computed identical per-person
results, then prints the timing table and the ratios.

Usage: python compare.py STRATA_OUT DUCKDB.parquet POLARS.parquet TIMINGS.tsv
TIMINGS.tsv: one line per run: tool, wall seconds, CPU seconds, peak KiB.
"""

import sys

import polars as pl
from medians import medians

strata_out, duckdb_out, polars_out, timings = sys.argv[1:5]
columns = ["person_id", "pcn_code", "ae_12m", "emergency_12m", "efi_deficits", "hfrs", "age_years", "hiu", "frail"]


def normalised(frame):
    return (
        frame.select(columns)
        .with_columns(
            pl.col("person_id").cast(pl.Int64),
            pl.col("pcn_code").cast(pl.String),
            *(pl.col(c).cast(pl.Int64) for c in ["ae_12m", "emergency_12m", "efi_deficits", "age_years"]),
            (pl.col("hfrs") * 10).round(0).cast(pl.Int64),
        )
        .sort("person_id")
    )


strata = normalised(
    pl.read_parquet(f"{strata_out}/patients.parquet").filter(pl.col("alive") & (pl.col("hiu") | pl.col("frail")))
)
ok = True
for name, path in [("DuckDB", duckdb_out), ("Polars", polars_out)]:
    peer = normalised(pl.read_parquet(path))
    if peer.equals(strata):
        print(f"{name}: identical per-person results ({peer.height:,} persons in either cohort)")
    else:
        ok = False
        joined = strata.join(peer, on="person_id", how="full", suffix="_peer")
        differing = joined.filter(
            pl.any_horizontal(
                pl.col(c).ne_missing(pl.col(f"{c}_peer")) for c in columns if c != "person_id"
            )
            | pl.col("person_id").is_null()
            | pl.col("person_id_peer").is_null()
        )
        print(f"{name}: {differing.height} persons differ from strata; first ones:\n{differing.head(5)}")

figures = medians(timings, ["strata", "duckdb", "polars"])

best_wall = min(figures["duckdb"][0], figures["polars"][0])
lower_peak = min(figures["duckdb"][2], figures["polars"][2])
speed = best_wall / figures["strata"][0]
memory = figures["strata"][2] / lower_peak
print(f"strata vs best peer: {speed:.2f}x faster, peak memory {memory:.2f}x")
sys.exit(0 if ok else 1)
