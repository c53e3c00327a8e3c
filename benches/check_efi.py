"""Independent check of the eFI model: recomputes every person's electronic
Frailty Index deficits and category in DuckDB SQL straight from the input
Parquet and the code list, and compares them with strata's
OUT/patients.parquet, person by person.

Usage: python3 benches/check_efi.py DATA_DIR STRATA_OUT AS_OF
(STRATA_OUT from a run that includes models/efi.toml; needs duckdb:
benches/checks.sh installs the pinned version into benches/.venv and runs
this check). Exits non-zero on any difference.

Events dated before 1900-01-01 are not used (the data contract skips them
as impossible dates), nor those after the as-of date.
"""

import os
import sys

import duckdb

data, out, as_of = sys.argv[1], sys.argv[2], sys.argv[3]
codes = os.path.join(os.path.dirname(__file__), "..", "models", "codelists", "efi_clegg2016_snomed.csv")


def table(name):
    path = os.path.join(data, name + ".parquet")
    return f"'{path}'" if os.path.exists(path) else f"'{os.path.join(data, name)}/*.parquet'"


con = duckdb.connect()
con.sql(
    f"""
    create view deficits as
    with coded as (
        select g.person_id, count(distinct l.deficit) as n
        from read_parquet({table('gp_events')}) g
        join read_csv('{codes}', header = true, all_varchar = true) l on l.code = trim(g.snomed_code)
        where g.event_date >= date '1900-01-01' and g.event_date <= date '{as_of}'
        group by g.person_id
    ),
    medicines as (
        select person_id, count(distinct trim(dmd_code)) as n
        from read_parquet({table('medications')})
        where issue_date > date '{as_of}' - interval 12 month and issue_date <= date '{as_of}'
        group by person_id
    )
    select p.person_id,
           coalesce(c.n, 0) + case when coalesce(m.n, 0) >= 5 then 1 else 0 end as deficits
    from read_parquet({table('patients')}) p
    left join coded c using (person_id)
    left join medicines m using (person_id)
    """
)
expected = dict(con.sql("select person_id, deficits from deficits").fetchall())
actual = dict(
    con.sql(f"select person_id, efi_deficits from read_parquet('{out}/patients.parquet')").fetchall()
)
differ = {p for p in expected.keys() | actual.keys() if expected.get(p) != actual.get(p)}
# Categories on whole counts, for those with an eFI (65+ on the as-of date).
bands = con.sql(
    f"""
    select count(*) filter (where (case when d.deficits <= 4 then 'fit' when d.deficits <= 8 then 'mild'
                                        when d.deficits <= 12 then 'moderate' else 'severe' end)
                                  is distinct from s.efi_category)
    from deficits d join read_parquet('{out}/patients.parquet') s using (person_id)
    where s.efi is not null
    """
).fetchall()[0][0]
nonzero = sum(1 for v in expected.values() if v > 0)
print(f"DuckDB: {nonzero} persons with an eFI deficit; differing deficit counts: {len(differ)}; differing categories (65+): {bands}")
sys.exit(0 if not differ and bands == 0 else 1)
