"""The peer workload in DuckDB SQL, written as an expert would: one query,
code lists joined so the filter can be pushed into the scans.

Usage: python duckdb_query.py DATA AS_OF OUT.parquet
"""

import os
import sys

import duckdb

data, as_of, out = sys.argv[1], sys.argv[2], sys.argv[3]
here = os.path.dirname(os.path.abspath(__file__))
codelists = os.path.join(here, "..", "..", "models", "codelists")


def table(name):
    path = os.path.join(data, name + ".parquet")
    return f"'{path}'" if os.path.exists(path) else f"'{os.path.join(data, name)}/*.parquet'"


duckdb.sql(
    f"""
    copy (
    with
    efi_list as (select code, deficit from read_csv('{codelists}/efi_clegg2016_snomed.csv', all_varchar = true)),
    hfrs_list as (select code, cast(points as decimal(6, 1)) as points
                  from read_csv('{codelists}/hfrs_gilbert2018.csv', all_varchar = true)),
    patients as (select * from read_parquet({table('patients')})),
    -- Registered on the as-of date: the latest registration started by then
    -- and not ended before it (then the first practice code); its PCN is
    -- the one the population table gives the practice.
    registered as (
        select person_id, first(practice_code order by start_date desc, practice_code) as practice_code
        from read_parquet({table('registrations')})
        where start_date <= date '{as_of}' and (end_date is null or end_date >= date '{as_of}')
          and practice_code is not null
        group by person_id
    ),
    practice_pcn as (
        select practice_code, min(pcn_code) as pcn_code from patients
        where practice_code is not null and pcn_code is not null
        group by practice_code
    ),
    people as (
        select p.person_id, pp.pcn_code, p.birth_date
        from patients p
        join registered r using (person_id)
        left join practice_pcn pp on pp.practice_code = r.practice_code
        where (p.date_of_death is null or p.date_of_death > date '{as_of}')
          -- Direct care (strata's default purpose): a type 1 opt-out is in no output.
          and p.type1_opt_out is not true
    ),
    ae as (
        select person_id, count(*) as ae_12m from read_parquet({table('ae_attendances')})
        where arrival_date > date '{as_of}' - 365 and arrival_date <= date '{as_of}'
        group by person_id
    ),
    emergency as (
        select person_id, count(*) as emergency_12m from read_parquet({table('admissions')})
        where admission_method = 'emergency'
          and admission_date > date '{as_of}' - 365 and admission_date <= date '{as_of}'
        group by person_id
    ),
    efi as (
        select g.person_id, count(distinct l.deficit) as efi_deficits
        from read_parquet({table('gp_events')}) g join efi_list l on l.code = g.snomed_code
        where g.event_date <= date '{as_of}'
        group by g.person_id
    ),
    codes as (
        select distinct a.person_id,
               left(upper(regexp_replace(d.code, '[^A-Za-z0-9]', '', 'g')), 3) as code
        from read_parquet({table('admissions')}) a, unnest(a.diagnoses) as d(code)
        where a.admission_date > date '{as_of}' - interval 2 year and a.admission_date <= date '{as_of}'
    ),
    hfrs as (
        select c.person_id, sum(h.points) as hfrs from codes c join hfrs_list h using (code)
        group by c.person_id
    ),
    scored as (
        select p.person_id, p.pcn_code,
               coalesce(ae.ae_12m, 0) as ae_12m,
               coalesce(emergency.emergency_12m, 0) as emergency_12m,
               coalesce(efi.efi_deficits, 0) as efi_deficits,
               cast(coalesce(hfrs.hfrs, 0) as double) as hfrs,
               date_diff('year', p.birth_date, date '{as_of}')
                 - case when strftime(p.birth_date, '%m%d') > strftime(date '{as_of}', '%m%d') then 1 else 0 end
                 as age_years
        from people p
        left join ae using (person_id)
        left join emergency using (person_id)
        left join efi using (person_id)
        left join hfrs using (person_id)
    )
    select *, ae_12m >= 5 as hiu, efi_deficits / 36 >= 0.24 or hfrs > 15 as frail
    from scored
    where ae_12m >= 5 or efi_deficits / 36 >= 0.24 or hfrs > 15
    order by pcn_code, efi_deficits desc, person_id
    ) to '{out}' (format parquet)
    """
)
