"""Independent check of the HFRS model: recomputes every person's Hospital
Frailty Risk Score in DuckDB SQL straight from the input Parquet and the
published points table, and compares it with strata's OUT/patients.parquet.

Usage: python3 benches/check_hfrs.py DATA_DIR STRATA_OUT AS_OF
(needs `pip install duckdb`; STRATA_OUT from `strata run --rules models/hfrs.toml`).
Exits non-zero on any difference.
"""

import os
import sys

import checklib
import duckdb

data, out, as_of = sys.argv[1], sys.argv[2], sys.argv[3]
points = os.path.join(os.path.dirname(__file__), "..", "models", "codelists", "hfrs_gilbert2018.csv")


con = duckdb.connect()
# Points in tenths as integers: exact, like strata's decimal sums.
expected = dict(
    con.sql(
        f"""
        with codes as (
            select distinct a.person_id,
                   left(upper(regexp_replace(d.code, '[^A-Za-z0-9]', '', 'g')), 3) as code3
            from read_parquet({checklib.table(data, 'admissions')}) a, unnest(a.diagnoses) as d(code)
            where a.admission_date > date '{as_of}' - interval 2 year
              and a.admission_date <= date '{as_of}'
        ),
        points as (
            select code, cast(round(points * 10) as bigint) as tenths
            from read_csv('{points}', header = true, all_varchar = false)
        )
        select c.person_id, sum(p.tenths) from codes c join points p on p.code = c.code3
        group by c.person_id
        """
    ).fetchall()
)
actual = dict(
    con.sql(
        f"select person_id, cast(round(hfrs * 10) as bigint) from read_parquet('{out}/patients.parquet') where hfrs > 0"
    ).fetchall()
)
# A direct-care run leaves people with a type 1 opt-out out of every output.
withheld = checklib.type1_opt_outs(con, data)
expected = {p: v for p, v in expected.items() if p not in withheld}
differ = {p for p in expected.keys() | actual.keys() if expected.get(p) != actual.get(p)}
print(f"DuckDB: {len(expected)} persons with HFRS > 0; strata: {len(actual)}; differing: {len(differ)}")
high = sum(1 for v in expected.values() if v > 150)
print(f"DuckDB: {high} persons with HFRS > 15")
sys.exit(0 if not differ else 1)
