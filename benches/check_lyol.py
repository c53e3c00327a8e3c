"""Independent check of the last-years-of-life model
(models/last-years-of-life.toml, with the registers of models/registers.toml
it reads): recomputes every person's six triggers, their count and names and
the cohort in DuckDB SQL straight from the input Parquet and the code lists,
and compares them with strata's OUT/patients.parquet, person by person.

Usage: python3 benches/check_lyol.py DATA_DIR STRATA_OUT AS_OF
(STRATA_OUT from a run that includes models/last-years-of-life.toml; needs
duckdb: benches/checks.sh installs the pinned version into benches/.venv and
runs this check). The SQL is in benches/checklib.py. Exits non-zero on any
difference.

What is checked, from the model's definitions:
- palliative_care_register: a PALCARE_COD code, the latest on or after
  2008-04-01, and no PALCARENI_COD code after it (the register's rules in
  models/registers.toml);
- metastatic_cancer_2y: ICD-10 C78, C79 or C80.0 in an admission in the
  last 2 calendar years;
- organ_failure_with_admissions: on the heart failure or COPD register, CKD
  stage 4-5 ever coded, or moderate/severe liver disease (Quan 2005) in an
  admission in 2 years, and 2+ emergency admissions in 365 days;
- severe_frailty: the latest frailty category coded is severe (a tie with a
  milder one counts as severe; null, not false, if severe was never coded);
- dementia_with_decline: on the dementia register, and in a care home or an
  emergency admission in 365 days;
- care_home_older: in a care home and aged 85+;
- lyol_trigger_count, lyol_triggers (names in the model's order), and the
  cohort last_years_of_life: alive on the as-of date with a trigger.
"""

import sys

import checklib
import duckdb

data, out, as_of = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
checklib.build(con, data, as_of)
differing = checklib.compare(
    con,
    out,
    [
        "alive",
        # inputs of the triggers
        "heart_failure_register", "copd_register", "dementia_register", "ckd_4_5",
        "severe_liver_disease_2y", "unplanned_admissions_12m",
        # the triggers, their count and names, the cohort
        "palliative_care_register", "metastatic_cancer_2y", "organ_failure_with_admissions",
        "severe_frailty", "dementia_with_decline", "care_home_older",
        "lyol_trigger_count", "lyol_triggers", "last_years_of_life",
    ],
    "last years of life",
)
sys.exit(0 if differing == 0 else 1)
