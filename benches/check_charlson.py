"""Independent check of the Charlson model: recomputes every person's
Charlson Comorbidity Index (Quan 2005 ICD-10 coding, Quan 2011 weights, the
more severe of each pair only) in DuckDB SQL from the input Parquet and the
code table, and compares it with strata's OUT/patients.parquet.

Usage: python3 benches/check_charlson.py DATA_DIR STRATA_OUT AS_OF [YEARS=5]
(needs `pip install duckdb`; STRATA_OUT from `strata run --rules models/charlson.toml`).
Exits non-zero on any difference.
"""

import os
import sys

import checklib
import duckdb

data, out, as_of = sys.argv[1], sys.argv[2], sys.argv[3]
years = int(sys.argv[4]) if len(sys.argv) > 4 else 5
codes = os.path.join(os.path.dirname(__file__), "..", "models", "codelists", "charlson_quan2005_icd10.csv")
weights = {
    "congestive_heart_failure": 2, "dementia": 2, "chronic_pulmonary_disease": 1, "rheumatic_disease": 1,
    "mild_liver_disease": 2, "moderate_or_severe_liver_disease": 4, "diabetes_with_chronic_complications": 1,
    "hemiplegia_or_paraplegia": 2, "renal_disease": 1, "any_malignancy_incl_leukaemia_lymphoma": 2,
    "metastatic_solid_tumour": 6, "aids_hiv": 4,
}


con = duckdb.connect()
rows = con.sql(
    f"""
    with dx as (
        select distinct a.person_id, upper(regexp_replace(d.code, '[^A-Za-z0-9]', '', 'g')) as code
        from read_parquet({checklib.table(data, 'admissions')}) a, unnest(a.diagnoses) as d(code)
        where a.admission_date > date '{as_of}' - interval {years} year
          and a.admission_date <= date '{as_of}'
    ),
    list as (select code, category from read_csv('{codes}', header = true))
    select distinct dx.person_id, list.category
    from dx join list on starts_with(dx.code, list.code)
    """
).fetchall()
conditions = {}
for person, category in rows:
    conditions.setdefault(person, set()).add(category)
expected = {}
for person, cats in conditions.items():
    if "moderate_or_severe_liver_disease" in cats:
        cats.discard("mild_liver_disease")
    if "metastatic_solid_tumour" in cats:
        cats.discard("any_malignancy_incl_leukaemia_lymphoma")
    score = sum(weights.get(c, 0) for c in cats)
    if score:
        expected[person] = score
actual = dict(con.sql(f"select person_id, charlson from read_parquet('{out}/patients.parquet') where charlson > 0").fetchall())
# A direct-care run leaves people with a type 1 opt-out out of every output.
withheld = checklib.type1_opt_outs(con, data)
expected = {p: v for p, v in expected.items() if p not in withheld}
differ = {p for p in expected.keys() | actual.keys() if expected.get(p) != actual.get(p)}
print(f"DuckDB: {len(expected)} persons with a Charlson score > 0; strata: {len(actual)}; differing: {len(differ)}")
sys.exit(0 if not differ else 1)
