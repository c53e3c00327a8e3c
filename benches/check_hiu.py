"""Independent check of the HIU cohort: recomputes it in DuckDB SQL straight
from the input Parquet and compares it, person by person, with strata's
OUT/patients.parquet.

Usage: python3 benches/check_hiu.py DATA_DIR STRATA_OUT AS_OF [AGE_FLOOR]
(needs `pip install duckdb`; AGE_FLOOR as the run's `hiu_age_floor`, 0 by
default as in models/hiu.toml). Exits non-zero on any difference.
"""

import sys

import duckdb

data, out, as_of = sys.argv[1], sys.argv[2], sys.argv[3]
age_floor = int(sys.argv[4]) if len(sys.argv) > 4 else 0


def table(name):
    # A table is NAME.parquet or a folder of parts.
    import os

    path = os.path.join(data, name + ".parquet")
    return f"'{path}'" if os.path.exists(path) else f"'{os.path.join(data, name)}/*.parquet'"


con = duckdb.connect()
expected = con.sql(
    f"""
    with ae as (
        select person_id, count(*) as n
        from read_parquet({table('ae_attendances')})
        where arrival_date > date '{as_of}' - interval 365 day
          and arrival_date <= date '{as_of}'
        group by person_id
    )
    select p.person_id
    from read_parquet({table('patients')}) p
    join ae using (person_id)
    where ae.n >= 5
      and date_diff('year', p.birth_date, date '{as_of}')
          - (case when strftime(date '{as_of}', '%m%d') < strftime(p.birth_date, '%m%d') then 1 else 0 end) >= {age_floor}
      and (p.date_of_death is null or p.date_of_death > date '{as_of}')
    order by 1
    """
).fetchall()
actual = con.sql(
    f"select person_id from read_parquet('{out}/patients.parquet') where hiu order by 1"
).fetchall()
expected, actual = {r[0] for r in expected}, {r[0] for r in actual}
print(f"DuckDB: {len(expected)} HIU persons; strata: {len(actual)}")
print(f"only in DuckDB: {len(expected - actual)}; only in strata: {len(actual - expected)}")
sys.exit(0 if expected == actual else 1)
