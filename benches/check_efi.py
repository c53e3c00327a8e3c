"""Independent check of the eFI model (models/efi.toml): recomputes every
person's electronic Frailty Index deficits (distinct deficits of the code
list ever coded; the deficits a measured value ever scored and no code did,
units converted and implausible values left out by its own table; plus
polypharmacy: 5+ distinct dm+d codes issued in the 12 calendar months to
the as-of date) and the category of everyone 65+ in
DuckDB SQL straight from the input Parquet and the code list, and compares
them with strata's OUT/patients.parquet, person by person.

Usage: python3 benches/check_efi.py DATA_DIR STRATA_OUT AS_OF
(STRATA_OUT from a run that includes models/efi.toml; needs duckdb:
benches/checks.sh installs the pinned version into benches/.venv and runs
this check). The SQL is in benches/checklib.py. Exits non-zero on any
difference.
"""

import sys

import checklib
import duckdb

data, out, as_of = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
checklib.build(con, data, as_of)
differing = checklib.compare(
    con, out, ["efi_coded_deficits", "efi_measured_deficits", "medicines_12m", "efi_deficits", "efi_category"], "eFI"
)
sys.exit(0 if differing == 0 else 1)
