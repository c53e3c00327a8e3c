"""Independent check of the segmentation model (models/segmentation.toml,
with the eFI, last-years-of-life and register models it includes):
recomputes every person's Bridges to Health segment, long-term conditions
and organ failure in DuckDB SQL straight from the input Parquet and the code
lists, and compares them with strata's OUT/patients.parquet, person by
person, with every register they are built from.

Usage: python3 benches/check_segmentation.py DATA_DIR STRATA_OUT AS_OF
(STRATA_OUT from a run that includes models/segmentation.toml; needs duckdb:
benches/checks.sh installs the pinned version into benches/.venv and runs
this check). The SQL is in benches/checklib.py. Exits non-zero on any
difference.

What is checked, from the model's definitions:
- the 18 registers (models/registers.toml): a cluster code and, where the
  register has an exit, no exit code after the latest one (an exit on the
  same day takes the person off the AF, asthma, depression, epilepsy, SMI
  and COPD registers and leaves them on the others); CKD 3-5 exited by a later stage 1-2 or
  resolved code; stroke/TIA from either cluster; asthma aged 6+ with an
  ASTTRT_COD medicine in 12 calendar months; age floors (diabetes 17, CKD,
  epilepsy and depression 18, rheumatoid arthritis 16); palliative care
  last coded on or after 2008-04-01, depression on or after 2006-04-01;
- organ_failure: CKD stage 5 coded, or end-stage renal disease, dialysis or
  a kidney transplant in an admission; CKD 4-5 with 4+ emergency admissions
  in 365 days; heart failure or COPD on its register with an emergency
  admission for it in 365 days; or moderate/severe liver disease in an
  admission in 2 years;
- long_term_condition_count and long_term_conditions: the 15 condition
  registers and a malignancy (Quan 2005) in an admission in 2 years, named
  in the model's order;
- segment, for everyone, alive or not: the first of end of life,
  frailty/dementia (dementia register, moderate or severe eFI at 65+, or
  severe frailty coded), organ failure, learning disability, long-term
  conditions, acutely ill (an emergency admission in 365 days), else healthy.
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
        # the registers
        "palliative_care_register", "severe_mental_illness_register", "asthma_treated_12m", "asthma_register",
        "hypertension_register", "diabetes_register", "chd_register", "stroke_tia_register",
        "atrial_fibrillation_register", "heart_failure_register", "copd_register", "ckd_3_5_register",
        "epilepsy_register", "depression_register", "dementia_register", "osteoporosis_diagnosed",
        "rheumatoid_arthritis_register", "peripheral_arterial_disease_register", "learning_disability_register",
        "diabetes_diagnosed", "ckd_3_5_diagnosed", "epilepsy_diagnosed", "depression_diagnosed",
        "rheumatoid_arthritis_diagnosed",
        # organ failure and its parts
        "ckd_stage_5", "end_stage_renal_admission", "ckd_4_5", "unplanned_admissions_12m",
        "heart_failure_emergency_admissions_12m", "copd_emergency_admissions_12m", "severe_liver_disease_2y",
        "organ_failure",
        # long-term conditions, the other segments' inputs, the segment
        "cancer_2y", "long_term_condition_count", "long_term_conditions",
        "metastatic_cancer_2y", "severe_frailty", "efi_deficits", "efi_category",
        "segment",
    ],
    "segmentation",
)
sys.exit(0 if differing == 0 else 1)
