"""Independent check of the HIU model (models/hiu.toml): recomputes every
person's A&E attendances in 365 days, the busiest calendar month and the
busiest 30 days of them, emergency admissions, and both cohorts (British
Red Cross: 5+ attendances; NHS England: adults, more than 20 in the year or
more than 5 in a calendar month) in DuckDB SQL straight from the input
Parquet, and compares them with strata's OUT/patients.parquet, person by
person.

Usage: python3 benches/check_hiu.py DATA_DIR STRATA_OUT AS_OF [AGE_FLOOR]
(AGE_FLOOR as the run's `hiu_age_floor`, 0 by default as in
models/hiu.toml; needs duckdb: benches/checks.sh installs the pinned version
into benches/.venv and runs this check). The SQL is in benches/checklib.py.
Exits non-zero on any difference.
"""

import sys

import checklib
import duckdb

data, out, as_of = sys.argv[1], sys.argv[2], sys.argv[3]
age_floor = int(sys.argv[4]) if len(sys.argv) > 4 else 0
con = duckdb.connect()
checklib.build(con, data, as_of, hiu_age_floor=age_floor)
differing = checklib.compare(
    con,
    out,
    [
        "alive",
        "ae_attendances_12m", "ae_attendances_max_month", "ae_attendances_max_30_days",
        "emergency_admissions_12m", "hiu", "hiu_nhse",
    ],
    "hiu",
)
sys.exit(0 if differing == 0 else 1)
