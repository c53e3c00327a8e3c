"""Shared part of the checks (not a check itself): high intensity users
(models/hiu.toml), the QOF registers (models/registers.toml), the last-years-of-life
triggers (models/last-years-of-life.toml), the eFI category
(models/efi.toml) and the segmentation (models/segmentation.toml),
recomputed in DuckDB SQL straight from the input Parquet and the code lists
in models/codelists/, and a person-by-person comparison with strata's
OUT/patients.parquet.

The SQL is written from what each model means (the published rules as its
rule file's header and descriptions state them, and the semantics of
docs/rules.md and docs/data-contract.md), not translated from the rule
files' expressions:

- a person is alive on the as-of date when not born after it and not dead
  on or before it (an unknown birth date is not a birth after it; it gives
  an unknown age), and, where the data has a `registrations` table,
  registered then: a registration started on or before the date and not
  ended before it; age is in completed years (29 February birthdays fall on
  1 March in other years); a duplicated person_id keeps its first row;
- events dated after the as-of date, before 1900-01-01 or undated, and
  events of persons not in the population, are not used;
- windows end on the as-of date: `365 days` keeps as_of - 365 < date,
  `12 months` and `2 years` step back by calendar months and years;
- SNOMED CT and dm+d codes match exactly after trimming spaces; ICD-10 codes
  ignore case and every character that is not a letter or digit, and a
  3-character code padded with an `X` is the 3-character code; in a prefix
  list the longest listed prefix of a code is its entry;
- on a register: a register code and no exit code after the latest one (an
  exit on the same day as the latest register code takes the person off
  the AF, asthma, depression, epilepsy, SMI and COPD registers and leaves
  them on the others), with the register's own extra conditions (palliative care coded
  since 2008-04-01, depression since 2006-04-01, age floors, asthma
  treatment in 12 months).

The bundled models' parameters are used with their default values.
Needs duckdb (benches/checks.sh installs the pinned version into
benches/.venv).
"""

import os

import duckdb

CODELISTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "codelists")

# Parameter defaults of the bundled rule files.
EFI_AGE_FLOOR = 65
EFI_POLYPHARMACY_MEDICINES = 5
LYOL_ORGAN_FAILURE_ADMISSIONS = 2
HIU_THRESHOLD = 5
HIU_NHSE_AGE_FLOOR = 18
HIU_NHSE_YEAR_MORE_THAN = 20
HIU_NHSE_MONTH_MORE_THAN = 5
LYOL_CARE_HOME_AGE = 85
SEG_CKD4_EMERGENCY_ADMISSIONS = 4

# SNOMED CT code lists of the GP record: name -> (file, category column).
SNOMED_LISTS = {
    "palcare": ("palcare_cod.csv", None),
    "palcareni": ("palcareni_cod.csv", None),
    "mh": ("mh_cod.csv", None),
    "smhres": ("smhres_cod.csv", None),
    "ast": ("ast_cod.csv", None),
    "astres": ("astres_cod.csv", None),
    "hyp": ("hyp_cod.csv", None),
    "hypres": ("hypres_cod.csv", None),
    "dm": ("dm_cod.csv", None),
    "dmres": ("dmres_cod.csv", None),
    "chd": ("chd_cod.csv", None),
    "strk": ("strk_cod.csv", None),
    "tia": ("tia_cod.csv", None),
    "afib": ("afib_cod.csv", None),
    "afibres": ("afibres_cod.csv", None),
    "hf": ("hf_cod.csv", None),
    "hfres": ("hfres_cod.csv", None),
    "copd": ("copd_cod.csv", None),
    "copdres": ("copdres_cod.csv", None),
    "ckd35": ("ckd35_cod.csv", None),
    "ckd1and2": ("ckd1and2_cod.csv", None),
    "ckdres": ("ckdres_cod.csv", None),
    "epil": ("epil_cod.csv", None),
    "epilres": ("epilres_cod.csv", None),
    "depr": ("depr_cod.csv", None),
    "depres": ("depres_cod.csv", None),
    "dem": ("dem_cod.csv", None),
    "osteo": ("osteo_cod.csv", None),
    "rarth": ("rarth_cod.csv", None),
    "pad": ("pad_cod.csv", None),
    "ld": ("ld_cod.csv", None),
    "ckd45": ("ckd45_cod.csv", "stage"),
    "frailty": ("frailty_cod.csv", "level"),
    "efi": ("efi_clegg2016_snomed.csv", "deficit"),
}
# The eFI's deficits from measured values (models/efi.toml), written out
# again here: deficit -> (code list, unit -> factor to the canonical unit
# (units matched trimmed, in lower case; '' is a missing unit), plausible
# bounds (both included), the rule over the converted value `v` and sex).
EFI_MEASURED = {
    "falls": ("efi_falls_number_snomed.csv", {"": 1, "falls": 1}, (0, 100), "v > 0"),
    "atrial_fibrillation": ("efi_chads2_snomed.csv", {"": 1, "score": 1, "points": 1}, (0, 6), "true"),
    "anaemia": ("efi_haemoglobin_snomed.csv",
                {"g/l": 1, "gm/l": 1, "g/dl": 10, "gm/dl": 10, "g/100ml": 10}, (25, 250),
                "case sex when 'M' then v > 25 and v < 130 when 'F' then v > 25 and v < 115 end"),
    "thyroid_disease": ("efi_tsh_snomed.csv",
                        {"mu/l": 1, "miu/l": 1, "uiu/ml": 1, "µiu/ml": 1, "": 1}, (0, 1000),
                        "(v > 0 and v < 0.36) or v > 5.5"),
    "chronic_kidney_disease": ("egfr_pincer.csv",
                               {"ml/min/1.73m2": 1, "ml/min/1.73 m2": 1, "ml/min/1.73m²": 1,
                                "ml/min/{1.73_m2}": 1, "ml/min/1.73m^2": 1, "ml/min/1.73sqm": 1},
                               (1, 200), "v < 60"),
    "osteoporosis": ("efi_hip_dxa_t_score_snomed.csv", {"": 1, "sd": 1}, (-10, 10), "v <= -2.5"),
    "weight_loss_anorexia": ("efi_must_score_snomed.csv", {"": 1, "score": 1}, (0, 6), "v >= 1"),
}

# ICD-10 prefix lists of admissions.
ICD10_LISTS = {
    "metastasis": ("distant_metastasis_icd10.csv", None),
    "charlson": ("charlson_quan2005_icd10.csv", "category"),
    "organ_failure": ("organ_failure_admissions_icd10.csv", "condition"),
}


def table(data, name):
    """A table is NAME.parquet or a folder NAME/ of parts; None if absent."""
    path = os.path.join(data, name + ".parquet")
    if os.path.exists(path):
        return f"'{path}'"
    if os.path.isdir(os.path.join(data, name)):
        return f"'{os.path.join(data, name)}/*.parquet'"
    return None


def type1_opt_outs(con, data):
    """The ids of people with a type 1 opt-out: a direct-care run (the
    default models') holds them in no output."""
    patients = table(data, "patients")
    columns = [r[0] for r in con.execute(f"describe select * from read_parquet({patients})").fetchall()]
    if "type1_opt_out" not in columns:
        return set()
    rows = con.execute(
        f"select person_id from read_parquet({patients}) where coalesce(type1_opt_out, false)"
    ).fetchall()
    return {r[0] for r in rows}


def read_codelist(name, file, category_column):
    path = os.path.join(CODELISTS, file)
    category = f"{category_column}" if category_column else "null"
    return f"""select '{name}' as list, code, {category} as category
               from read_csv('{path}', header = true, all_varchar = true)"""


def build(con, data, as_of, hiu_age_floor=0):
    """Creates the table `expected`: one row per person, every recomputed
    feature of the HIU, registers, eFI, last-years-of-life and segmentation
    models (`hiu_age_floor` as the run's `--set hiu_age_floor`)."""
    d = f"date '{as_of}'"
    con.execute(
        f"""
        create macro icd10_clean(c) as regexp_replace(upper(c), '[^A-Z0-9]', '', 'g');
        create macro icd10(c) as case when length(icd10_clean(c)) = 4 and right(icd10_clean(c), 1) = 'X'
                                      then left(icd10_clean(c), 3) else icd10_clean(c) end;
        create macro completed_years(born, on_day) as
            date_diff('year', born, on_day)
            - case when strftime(on_day, '%m%d') < strftime(born, '%m%d') then 1 else 0 end;
        create macro usable(day) as day >= date '1900-01-01' and day <= {d};
        create macro in_days(day, n) as day > {d} - n and day <= {d};
        create macro in_months(day, n) as day > cast({d} - to_months(n) as date) and day <= {d};
        create macro in_years(day, n) as day > cast({d} - to_years(n) as date) and day <= {d};
        -- on a register: a register code later than any exit code (an exit on
        -- the same day as the latest register code removes: AF, asthma,
        -- depression, epilepsy, SMI, COPD)
        create macro on_register(code, exit) as code is not null and (exit is null or code > exit);
        -- The registers whose exit must be later than the register code
        -- (one on the same day leaves them on).
        create macro on_register_unless_later(code, exit) as code is not null and (exit is null or code >= exit);
        """
    )

    registrations = table(data, "registrations")
    registered = "true" if registrations is None else f"""exists (
                   select 1 from read_parquet({registrations}) r
                   where r.person_id = p.person_id and r.start_date <= {d}
                     and (r.end_date is null or r.end_date >= {d}))"""
    con.execute(
        f"""
        create table persons as
        select person_id, birth_date, date_of_death, care_home, sex,
               completed_years(birth_date, {d}) as age,
               coalesce(birth_date <= {d}, true) and (date_of_death is null or date_of_death > {d})
               and {registered} as alive
        from read_parquet({table(data, 'patients')}, filename = true, file_row_number = true) as p
        where person_id is not null
        qualify row_number() over (partition by person_id order by filename, file_row_number) = 1
        """
    )
    # A direct-care run (the default models') holds no one with a type 1
    # opt-out in any output: leave them out here too.
    columns = [r[0] for r in con.execute(
        f"describe select * from read_parquet({table(data, 'patients')})").fetchall()]
    if "type1_opt_out" in columns:
        con.execute(
            f"""
            delete from persons where person_id in (
                select person_id from read_parquet({table(data, 'patients')})
                where coalesce(type1_opt_out, false))
            """
        )

    snomed = " union all ".join(read_codelist(n, f, c) for n, (f, c) in SNOMED_LISTS.items())
    icd = " union all ".join(read_codelist(n, f, c) for n, (f, c) in ICD10_LISTS.items())
    con.execute(f"create table snomed_lists as select distinct list, trim(code) as code, category from ({snomed})")
    con.execute(f"create table icd10_lists as select distinct list, icd10(code) as code, category from ({icd})")
    con.execute(
        "create table asttrt as select distinct trim(code) as code "
        f"from read_csv('{os.path.join(CODELISTS, 'asttrt_cod.csv')}', header = true, all_varchar = true)"
    )

    # GP record: every code-list hit, then each list's latest date per person.
    con.execute(
        f"""
        create table gp_hits as
        select g.person_id, g.event_date as day, l.list, l.category
        from read_parquet({table(data, 'gp_events')}) g
        join snomed_lists l on l.code = trim(g.snomed_code)
        where usable(g.event_date) and g.person_id is not null
        """
    )
    last = ",\n".join(
        f"max(day) filter (where list = '{n}') as last_{n}" for n in SNOMED_LISTS if n not in ("ckd45", "frailty", "efi")
    )
    con.execute(
        f"""
        create table gp as
        select person_id, {last},
               max(day) filter (where list = 'ckd45' and category = 'stage_4') as last_ckd4,
               max(day) filter (where list = 'ckd45' and category = 'stage_5') as last_ckd5,
               max(day) filter (where list = 'frailty' and category = 'severe') as last_severe_frailty,
               max(day) filter (where list = 'frailty' and category in ('moderate', 'mild')) as last_lesser_frailty,
               count(distinct category) filter (where list = 'efi') as efi_coded_deficits
        from gp_hits group by person_id
        """
    )

    # Admissions: each distinct diagnosis of each admission, its entry in each
    # prefix list (the longest listed prefix), then per-person features.
    con.execute(
        f"""
        create table adm as
        select row_number() over () as adm_id, person_id, admission_date as day,
               admission_method = 'emergency' as emergency, diagnoses
        from read_parquet({table(data, 'admissions')})
        where usable(admission_date) and person_id is not null
        """
    )
    con.execute(
        """
        create table diag as
        select distinct adm_id, icd10(code) as code
        from (select adm_id, unnest(diagnoses) as code from adm)
        where code is not null
        """
    )
    # The primary diagnosis: the first of the list.
    con.execute(
        """
        create table primary_diag as
        select adm_id, icd10(diagnoses[1]) as code from adm where diagnoses[1] is not null
        """
    )
    con.execute(
        """
        create table code_entry as
        select c.code, l.list, l.category
        from (select distinct code from diag) c
        join icd10_lists l on starts_with(c.code, l.code) and l.code <> ''
        qualify length(l.code) = max(length(l.code)) over (partition by c.code, l.list)
        """
    )
    con.execute(
        f"""
        create table adm_hits as
        select distinct a.adm_id, a.person_id, a.day, a.emergency, e.list, e.category
        from adm a join diag using (adm_id) join code_entry e using (code)
        """
    )
    con.execute(
        f"""
        create table primary_hits as
        select distinct a.adm_id, a.person_id, a.day, a.emergency, e.list, e.category
        from adm a join primary_diag using (adm_id) join code_entry e using (code)
        """
    )
    con.execute(
        f"""
        create table admissions as
        with counts as (
            select person_id, count(*) filter (where emergency and in_days(day, 365)) as unplanned_12m
            from adm group by person_id
        ),
        hits as (
            select person_id,
                   bool_or(list = 'metastasis' and in_years(day, 2)) as metastatic_2y,
                   bool_or(list = 'charlson' and category = 'moderate_or_severe_liver_disease'
                           and in_years(day, 2)) as severe_liver_2y,
                   bool_or(list = 'charlson' and category in ('any_malignancy_incl_leukaemia_lymphoma',
                                                               'metastatic_solid_tumour')
                           and in_years(day, 2)) as cancer_2y,
                   bool_or(list = 'organ_failure' and category = 'end_stage_renal') as esrd_admission
            from adm_hits group by person_id
        ),
        -- emergency admissions *for* heart failure or COPD: the primary diagnosis
        primary_hits as (
            select person_id,
                   count(distinct adm_id) filter (where list = 'organ_failure' and category = 'heart_failure'
                                                  and emergency and in_days(day, 365)) as hf_emergency_12m,
                   count(distinct adm_id) filter (where list = 'organ_failure' and category = 'copd'
                                                  and emergency and in_days(day, 365)) as copd_emergency_12m
            from primary_hits group by person_id
        )
        select * from counts full join hits using (person_id) full join primary_hits using (person_id)
        """
    )

    # A&E (models/hiu.toml): attendances in 365 days, the busiest calendar
    # month of them and the busiest 30 days (a day and the 29 after it).
    con.execute(
        f"""
        create table ae as
        select person_id, arrival_date as day
        from read_parquet({table(data, 'ae_attendances')})
        where usable(arrival_date) and in_days(arrival_date, 365) and person_id is not null
        """
    )
    con.execute(
        """
        create table attendances as
        with months as (
            select person_id, max(n) as max_month
            from (select person_id, date_trunc('month', day) as m, count(*) as n from ae group by all)
            group by person_id
        ),
        spans as (
            select a.person_id, max(n) as max_30_days
            from (select a.person_id, a.day, count(*) as n
                  from ae a join ae b on b.person_id = a.person_id and b.day >= a.day and b.day <= a.day + 29
                  group by a.person_id, a.day, a.rowid) a
            group by a.person_id
        )
        select person_id, count(*) as ae_12m, any_value(m.max_month) as max_month,
               any_value(s.max_30_days) as max_30_days
        from ae left join months m using (person_id) left join spans s using (person_id)
        group by person_id
        """
    )

    # Medications (an optional table: when absent, polypharmacy and the
    # asthma register's treatment condition are unknown, so not applied).
    meds = table(data, "medications")
    if meds is None:
        con.execute("create table meds (person_id bigint, medicines_12m bigint, asthma_treated_12m boolean)")
        meds_present = "false"
    else:
        con.execute(
            f"""
            create table meds as
            select person_id,
                   count(distinct trim(dmd_code)) as medicines_12m,
                   bool_or(t.code is not null) as asthma_treated_12m
            from read_parquet({meds}) m
            left join asttrt t on t.code = trim(m.dmd_code)
            where in_months(issue_date, 12) and person_id is not null
            group by person_id
            """
        )
        meds_present = "true"

    # eFI deficits from measured values: each one a person has from a usable
    # value and not from a code (none without an observations table).
    observations = table(data, "observations")
    coded = ", ".join(
        f"bool_or(list = 'efi' and category = '{d}') as coded_{d}" for d in EFI_MEASURED
    )
    con.execute(f"create table efi_coded as select person_id, {coded} from gp_hits group by person_id")
    if observations is None:
        con.execute("create table efi_measured (person_id bigint, efi_measured_deficits bigint)")
    else:
        hits = []
        for deficit, (file, units, (low, high), rule) in EFI_MEASURED.items():
            factors = " ".join(f"when '{u}' then {f}" for u, f in units.items())
            hits.append(
                f"""select person_id, '{deficit}' as deficit from (
                       select o.person_id, pt.sex,
                              round(o.value * case lower(trim(coalesce(o.unit, ''), ' \t\n\r\v\f')) {factors} end, 6) as v
                       from read_parquet({observations}) o
                       join (select distinct trim(code) as code
                             from read_csv('{os.path.join(CODELISTS, file)}', header = true, all_varchar = true)) c
                         on c.code = trim(o.code)
                       left join persons pt using (person_id)
                       where usable(o.date) and o.person_id is not null and not isnan(o.value))
                   where v between {low} and {high} and ({rule})"""
            )
        not_coded = " + ".join(
            f"case when bool_or(h.deficit = '{d}') and not coalesce(any_value(c.coded_{d}), false) then 1 else 0 end"
            for d in EFI_MEASURED
        )
        con.execute(
            f"""
            create table efi_measured as
            select h.person_id, {not_coded} as efi_measured_deficits
            from ({" union all ".join(hits)}) h
            left join efi_coded c using (person_id)
            group by h.person_id
            """
        )

    con.execute(
        f"""
        create table inputs as
        select p.*,
               gp.* exclude (person_id, efi_coded_deficits),
               coalesce(gp.efi_coded_deficits, 0) as efi_coded_deficits,
               coalesce(em.efi_measured_deficits, 0) as efi_measured_deficits,
               coalesce(a.unplanned_12m, 0) as unplanned_admissions_12m,
               coalesce(a.unplanned_12m, 0) as emergency_admissions_12m,
               coalesce(ae.ae_12m, 0) as ae_attendances_12m,
               coalesce(ae.max_month, 0) as ae_attendances_max_month,
               coalesce(ae.max_30_days, 0) as ae_attendances_max_30_days,
               coalesce(a.metastatic_2y, false) as metastatic_cancer_2y,
               coalesce(a.severe_liver_2y, false) as severe_liver_disease_2y,
               coalesce(a.cancer_2y, false) as cancer_2y,
               coalesce(a.esrd_admission, false) as end_stage_renal_admission,
               coalesce(a.hf_emergency_12m, 0) as heart_failure_emergency_admissions_12m,
               coalesce(a.copd_emergency_12m, 0) as copd_emergency_admissions_12m,
               case when {meds_present} then coalesce(m.medicines_12m, 0) end as medicines_12m,
               case when {meds_present} then coalesce(m.asthma_treated_12m, false) end as asthma_treated_12m
        from persons p
        left join gp using (person_id)
        left join admissions a using (person_id)
        left join meds m using (person_id)
        left join attendances ae using (person_id)
        left join efi_measured em using (person_id)
        """
    )

    # Registers (models/registers.toml).
    con.execute(
        """
        create table registers as
        select person_id,
            on_register_unless_later(last_palcare, last_palcareni) and last_palcare >= date '2008-04-01'
                as palliative_care_register,
            on_register(last_mh, last_smhres) as severe_mental_illness_register,
            on_register(last_ast, last_astres) and age >= 6
                and (asthma_treated_12m or asthma_treated_12m is null) as asthma_register,
            on_register_unless_later(last_hyp, last_hypres) as hypertension_register,
            on_register_unless_later(last_dm, last_dmres) as diabetes_diagnosed,
            on_register_unless_later(last_dm, last_dmres) and age >= 17 as diabetes_register,
            last_chd is not null as chd_register,
            last_strk is not null or last_tia is not null as stroke_tia_register,
            on_register(last_afib, last_afibres) as atrial_fibrillation_register,
            on_register_unless_later(last_hf, last_hfres) as heart_failure_register,
            on_register(last_copd, last_copdres) as copd_register,
            on_register_unless_later(last_ckd35, greatest(last_ckd1and2, last_ckdres)) as ckd_3_5_diagnosed,
            on_register_unless_later(last_ckd35, greatest(last_ckd1and2, last_ckdres)) and age >= 18 as ckd_3_5_register,
            -- CKD stage now: the latest CKD 3-5 code is stage 4 or 5 (or 5)
            on_register_unless_later(last_ckd35, greatest(last_ckd1and2, last_ckdres))
                and coalesce(greatest(last_ckd4, last_ckd5) = last_ckd35, false) as ckd_4_5,
            on_register_unless_later(last_ckd35, greatest(last_ckd1and2, last_ckdres))
                and coalesce(last_ckd5 = last_ckd35, false) as ckd_stage_5,
            on_register(last_epil, last_epilres) as epilepsy_diagnosed,
            on_register(last_epil, last_epilres) and age >= 18 as epilepsy_register,
            on_register(last_depr, last_depres) and last_depr >= date '2006-04-01' as depression_diagnosed,
            on_register(last_depr, last_depres) and last_depr >= date '2006-04-01' and age >= 18
                as depression_register,
            last_dem is not null as dementia_register,
            last_osteo is not null as osteoporosis_diagnosed,
            last_rarth is not null as rheumatoid_arthritis_diagnosed,
            last_rarth is not null and age >= 16 as rheumatoid_arthritis_register,
            last_pad is not null as peripheral_arterial_disease_register,
            last_ld is not null as learning_disability_register
        from inputs
        """
    )

    con.execute(
        f"""
        create table expected as
        with base as (
            select i.*, r.* exclude (person_id),
                   -- eFI: coded deficits and polypharmacy; a category at 65+
                   case when i.age >= {EFI_AGE_FLOOR} then
                       case when d.n <= 4 then 'fit' when d.n <= 8 then 'mild'
                            when d.n <= 12 then 'moderate' else 'severe' end
                   end as efi_category,
                   d.n as efi_deficits,
                   -- severe frailty: the latest frailty category coded is severe
                   -- (a tie with a milder one counts as severe); unknown, not
                   -- false, for a person never coded severe
                   case when i.last_severe_frailty is not null
                        then i.last_lesser_frailty is null or i.last_severe_frailty >= i.last_lesser_frailty
                   end as severe_frailty
            from inputs i
            join registers r using (person_id)
            join (
                select person_id, efi_coded_deficits + efi_measured_deficits
                       + case when medicines_12m >= {EFI_POLYPHARMACY_MEDICINES} then 1 else 0 end as n
                from inputs
            ) d using (person_id)
        ),
        triggers as (
            select *,
                (heart_failure_register or copd_register or ckd_4_5 or severe_liver_disease_2y)
                    and unplanned_admissions_12m >= {LYOL_ORGAN_FAILURE_ADMISSIONS} as organ_failure_with_admissions,
                dementia_register and (care_home is true or unplanned_admissions_12m >= 1) as dementia_with_decline,
                case when care_home is not true then false else age >= {LYOL_CARE_HOME_AGE} end as care_home_older,
                -- organ failure with severity (segmentation)
                ckd_stage_5 or end_stage_renal_admission
                    or (ckd_4_5 and not ckd_stage_5
                        and unplanned_admissions_12m >= {SEG_CKD4_EMERGENCY_ADMISSIONS})
                    or (heart_failure_register and heart_failure_emergency_admissions_12m > 0)
                    or (copd_register and copd_emergency_admissions_12m > 0)
                    or severe_liver_disease_2y as organ_failure
            from base
        ),
        named as (
            select *,
                list_filter([
                    case when palliative_care_register then 'on the palliative care register' end,
                    case when metastatic_cancer_2y then 'metastatic cancer in an admission (2 years)' end,
                    case when organ_failure_with_admissions then 'organ failure with repeated emergency admissions' end,
                    case when severe_frailty then 'severe frailty coded' end,
                    case when dementia_with_decline then 'dementia with care home or emergency admission' end,
                    case when care_home_older then 'care home resident aged 85+' end
                ], lambda x: x is not null) as trigger_names,
                list_filter([
                    case when hypertension_register then 'hypertension' end,
                    case when diabetes_diagnosed then 'diabetes' end,
                    case when chd_register then 'coronary heart disease' end,
                    case when stroke_tia_register then 'stroke or TIA' end,
                    case when atrial_fibrillation_register then 'atrial fibrillation' end,
                    case when heart_failure_register then 'heart failure' end,
                    case when copd_register then 'COPD' end,
                    case when asthma_register then 'asthma' end,
                    case when ckd_3_5_diagnosed then 'CKD 3-5' end,
                    case when epilepsy_diagnosed then 'epilepsy' end,
                    case when severe_mental_illness_register then 'severe mental illness' end,
                    case when depression_diagnosed then 'depression' end,
                    case when osteoporosis_diagnosed then 'osteoporosis' end,
                    case when rheumatoid_arthritis_diagnosed then 'rheumatoid arthritis' end,
                    case when peripheral_arterial_disease_register then 'peripheral arterial disease' end,
                    case when cancer_2y then 'cancer (admission in 2 years)' end
                ], lambda x: x is not null) as condition_names
            from triggers
        )
        select *,
            len(trigger_names) as lyol_trigger_count,
            array_to_string(trigger_names, ', ') as lyol_triggers,
            coalesce(alive, false) and len(trigger_names) > 0 as last_years_of_life,
            -- HIU: British Red Cross, and NHS England (a calendar month by default)
            coalesce(alive, false) and age >= {hiu_age_floor}
                and ae_attendances_12m >= {HIU_THRESHOLD} as hiu,
            coalesce(alive, false) and age >= {HIU_NHSE_AGE_FLOOR}
                and (ae_attendances_12m > {HIU_NHSE_YEAR_MORE_THAN}
                     or ae_attendances_max_month > {HIU_NHSE_MONTH_MORE_THAN}) as hiu_nhse,
            len(condition_names) as long_term_condition_count,
            array_to_string(condition_names, ', ') as long_term_conditions,
            case
                when palliative_care_register or metastatic_cancer_2y then 'end_of_life'
                when dementia_register or efi_category in ('moderate', 'severe') or severe_frailty is true
                    then 'frailty_dementia'
                when organ_failure then 'organ_failure'
                when learning_disability_register then 'learning_disability'
                when len(condition_names) > 0 then 'long_term_conditions'
                when unplanned_admissions_12m > 0 then 'acutely_ill'
                else 'healthy'
            end as segment
        from named
        """
    )


def compare(con, out, columns, name):
    """Compares `expected` with OUT/patients.parquet on `columns`, person by
    person (a null on both sides agrees), prints how many agree and the first
    differences, and returns the number of differing values (a person on one
    side only counts as one)."""
    con.execute(f"create view strata as select * from read_parquet('{out}/patients.parquet')")
    have = {r[0] for r in con.execute("describe strata").fetchall()}
    missing = [c for c in columns if c not in have]
    if missing:
        print(f"{name}: strata's output has no column {', '.join(missing)}")
        return len(missing)
    total, only_duckdb, only_strata = con.execute(
        """select count(*), count(*) filter (where s.person_id is null), count(*) filter (where e.person_id is null)
           from expected e full join strata s on s.person_id = e.person_id"""
    ).fetchall()[0]
    print(f"{name}: {total:,} persons; only in DuckDB's: {only_duckdb}; only in strata's: {only_strata}")
    joined = "expected e join strata s on s.person_id = e.person_id"
    differing = 0
    examples = []
    for c in columns:
        diff, agree, true = con.execute(
            f"""select count(*) filter (where e.{c} is distinct from s.{c}),
                       count(*) filter (where e.{c} is not distinct from s.{c}),
                       count(*) filter (where e.{c}::varchar not in ('false', '0', ''))
                from {joined}"""
        ).fetchall()[0]
        differing += diff
        print(f"  {c}: {agree:,} agree, {diff:,} differ ({true:,} true, non-zero or non-empty in DuckDB)")
        if diff and len(examples) < 10:
            examples += con.execute(
                f"""select e.person_id, '{c}', e.{c}::varchar, s.{c}::varchar from {joined}
                    where e.{c} is distinct from s.{c} order by e.person_id limit {10 - len(examples)}"""
            ).fetchall()
    for person, c, here, there in examples:
        print(f"  differs: person {person}: {c}: DuckDB {here!r}, strata {there!r}")
    return differing + only_duckdb + only_strata
