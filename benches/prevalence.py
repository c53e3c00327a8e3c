"""The figures of docs/models.md: each bundled model's cohorts on generated
data, beside which the published figures are quoted there.

Usage:
  strata generate --patients 200000 --seed 1 --out DATA
  strata run --rules models/core.toml --rules models/southampton-one-team.toml \
      --rules models/charlson.toml --rules models/core20plus5.toml \
      --data DATA --out OUT --as-of 2026-03-31 --suppression none
  python3 benches/prevalence.py DATA OUT 2026-03-31

Needs duckdb: benches/checks.sh installs the pinned version into
benches/.venv, runs the checks and then this script.
Prints exact counts: run it on generated data only.
"""

import os
import sys

import checklib
import duckdb

data, out, as_of = sys.argv[1], sys.argv[2], sys.argv[3]


def table(name):
    return checklib.table(data, name)


con = duckdb.connect()
con.sql(
    f"""
    create view people as
    select o.*, p.birth_date, p.imd_decile, p.date_of_death,
           date_diff('year', p.birth_date, date '{as_of}')
             - case when strftime(p.birth_date, '%m%d') > strftime(date '{as_of}', '%m%d') then 1 else 0 end
             as age
    from read_parquet('{out}/patients.parquet') o
    join read_parquet({table('patients')}) p using (person_id)
    """
)


def rows(sql):
    return con.execute(sql).fetchall()


def one(sql):
    return rows(sql)[0]


def pct(n, d):
    return f"{100 * n / d:.2f}%" if d else "-"


alive, alive65, alive75 = one(
    "select count(*), count(*) filter (age >= 65), count(*) filter (age >= 75) from people where alive"
)
print(f"alive {alive:,}; aged 65+ {alive65:,}; aged 75+ {alive75:,}")

# Deaths in the year to the as-of date, of those alive a year before.
deaths, at_risk = one(
    f"""select count(*) filter (date_of_death > date '{as_of}' - 365 and date_of_death <= date '{as_of}'),
               count(*) filter (date_of_death is null or date_of_death > date '{as_of}' - 365)
        from read_parquet({table('patients')})"""
)
print(f"deaths in the year to {as_of}: {deaths:,}, {pct(deaths, at_risk)} of those alive a year before")

columns = [d[0] for d in con.execute("select * from people limit 0").description]
cohorts = [c for c in columns if f"{c}_rank" in columns]
for c in cohorts:
    (n,) = one(f"select count(*) from people where alive and {c}")
    print(f"cohort {c}: {n:,}, {pct(n, alive)} of those alive")

hiu_ae, all_ae = one(
    f"""select count(*) filter (h.person_id is not null), count(*)
        from read_parquet({table('ae_attendances')}) a
        left join (select person_id from people where hiu and alive) h using (person_id)
        where a.arrival_date > date '{as_of}' - 365 and a.arrival_date <= date '{as_of}'"""
)
hiu_em, all_em = one(
    f"""select count(*) filter (h.person_id is not null), count(*)
        from read_parquet({table('admissions')}) a
        left join (select person_id from people where hiu and alive) h using (person_id)
        where a.admission_method = 'emergency'
          and a.admission_date > date '{as_of}' - 365 and a.admission_date <= date '{as_of}'"""
)
print(f"hiu share: {pct(hiu_ae, all_ae)} of attendances, {pct(hiu_em, all_em)} of emergency admissions")

for category, n in rows(
    "select efi_category, count(*) from people where alive and age >= 65 group by 1 order by 1"
):
    print(f"efi {category}: {n:,}, {pct(n, alive65)} of those 65+")
for band, n in rows(
    "select hfrs_band, count(*) from people where alive and age >= 75 group by 1 order by 1"
):
    print(f"hfrs {band}: {n:,}, {pct(n, alive75)} of those 75+")
for segment, n in rows("select segment, count(*) from people where alive group by 1 order by 2 desc"):
    print(f"segment {segment}: {n:,}, {pct(n, alive)}")
for name, sql in [
    ("charlson > 0", "charlson > 0"),
    ("core20", "core20"),
]:
    (n,) = one(f"select count(*) from people where alive and {sql}")
    print(f"{name}: {n:,}, {pct(n, alive)} of those alive")
registers = [c for c in columns if c.endswith("_register") or c == "osteoporosis_diagnosed"]
for c in registers:
    (n,) = one(f"select count(*) from people where alive and {c}")
    print(f"register {c.removesuffix('_register').removesuffix('_diagnosed').replace('_', ' ')}: {n:,}, {pct(n, alive)} of those alive")
