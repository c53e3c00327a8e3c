//! Data at the edges of what both backends must read alike: codes with
//! tabs and newlines around them, a float column with NaN, ICD-10 codes
//! with the `X` filler and non-ASCII bytes. The native engine's values are
//! pinned here; where CI has DuckDB (`STRATA_DUCKDB_PYTHON`), the compiled
//! SQL must give the same table.

mod util;

use std::sync::Arc;

use arrow_array::{Date32Array, Float64Array, Int64Array, StringArray};
use util::*;

const AS_OF: &str = "2025-03-31";

#[test]
fn both_engines_read_awkward_values_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let people: Vec<Person> = (1..=4).map(|id| person(id, "1950-01-01", "P1")).collect();
    write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
    write_parquet(
        &data.join("gp_events.parquet"),
        &[gp_batch(&[
            (1, "2025-01-01", "\t123456"),
            (1, "2025-01-02", "123456\n"),
            (2, "2025-01-01", " 123456\r"),
            (3, "2025-01-01", "999999\u{a0}"),
        ])],
    );
    write_parquet(
        &data.join("admissions.parquet"),
        &[admissions_batch(&[
            (1, "2025-01-01", "emergency", &["R54X"]),
            (2, "2025-01-01", "emergency", &["É1X"]),
            (3, "2025-01-01", "emergency", &["r54.x"]),
        ])],
    );
    write_parquet(
        &data.join("labs.parquet"),
        &[batch(vec![
            ("person_id", Arc::new(Int64Array::from(vec![1, 1, 2, 4]))),
            (
                "lab_date",
                Arc::new(Date32Array::from(vec![day("2025-01-01"); 4])),
            ),
            (
                "value",
                Arc::new(Float64Array::from(vec![5.0, f64::NAN, f64::NAN, 0.285])),
            ),
            (
                "note",
                Arc::new(StringArray::from(vec!["a", "b", "c", "d"])),
            ),
        ])],
    );
    // A measure whose codes are a list of ICD-10 prefixes (odd, but the
    // compiled SQL tests a row's code against the list before converting
    // its value, and a list of prefixes is tested by each prefix length).
    write_parquet(
        &data.join("obs.parquet"),
        &[batch(vec![
            (
                "person_id",
                Arc::new(Int64Array::from(vec![
                    1, 1, 2, 3, 3, 4, 2, 2, 3, 1, 2, 3, 4,
                ])),
            ),
            (
                "obs_date",
                Arc::new(Date32Array::from(vec![day("2025-01-01"); 13])),
            ),
            (
                "code",
                Arc::new(StringArray::from(vec![
                    "r54.1", " E12 ", "R5", "X99", "R54", "R54X", "R54", "R54", "R54", "é12",
                    "AB91", "é", "ab91",
                ])),
            ),
            (
                "value",
                Arc::new(Float64Array::from(vec![
                    10.0, 2.05, 10.0, 10.0, 1000.0, 5.0, 3.0, 4.0, 1.0000005, 1.5, 2.5, 9.0, 3.5,
                ])),
            ),
            (
                "unit",
                Arc::new(StringArray::from(vec![
                    "g/L", " G/DL ", "g/L", "g/L", "g/L", "mg", "ÅG/L", "åg/l", "g/L", "g/L",
                    "g/L", "g/L", "g/L",
                ])),
            ),
        ])],
    );
    std::fs::write(tmp.path().join("sn.csv"), "code,term\n123456,a code\n").unwrap();
    std::fs::write(
        tmp.path().join("oth.csv"),
        "code,term\né1,two characters\nAB9,three\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("icd.csv"),
        "code,term\nR54,frailty\nE12,other\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("exact.csv"),
        "code,term\nR54,frailty\nE12,other\n1,odd\n",
    )
    .unwrap();
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[model]
name = "edges"
title = "Edges"
source = "test"

[sources.gp]
table = "gp_events"
date = "event_date"
code = "snomed_code"

[sources.adm]
table = "admissions"
date = "admission_date"
code = "diagnoses"

[sources.labs]
table = "labs"
date = "lab_date"

[sources.obs]
table = "obs"
date = "obs_date"
code = "code"

[sources.obs.measure]
codelist = "icd"
canonical = "g/L"
units = { "g/L" = 1, "g/dL" = 10, "Åg/L" = 2 }
bounds = [0, 100]

[sources.obs2]
table = "obs"
date = "obs_date"
code = "code"

[sources.obs2.measure]
codelist = "oth"
canonical = "g/L"
units = { "g/L" = 1 }
bounds = [0, 100]

[codelists.oth]
file = "oth.csv"
system = "other"
match = "prefix"

[codelists.sn]
file = "sn.csv"
system = "snomed"

[codelists.icd]
file = "icd.csv"
system = "icd10"
match = "prefix"

[features.listed]
description = "Events with a listed code"
source = "gp"
aggregate = "count"
codelist = "sn"

[features.distinct_codes]
description = "Distinct codes"
source = "gp"
aggregate = "count_distinct_codes"

[features.frail]
description = "Admissions with a listed diagnosis"
source = "adm"
aggregate = "count"
codelist = "icd"

[codelists.exact]
file = "exact.csv"
system = "icd10"

[features.exact]
description = "Admissions with a code of the exact list"
source = "adm"
aggregate = "count"
codelist = "exact"

[features.lab_max]
description = "Highest lab value"
source = "labs"
aggregate = "max"
column = "value"

[features.obs_count]
description = "Readings of the measure"
source = "obs"
aggregate = "count"

[features.obs_max]
description = "Highest reading of the measure, in g/L"
source = "obs"
aggregate = "max"

[features.obs2_count]
description = "Readings of the second measure"
source = "obs2"
aggregate = "count"

[features.obs2_max]
description = "Highest reading of the second measure"
source = "obs2"
aggregate = "max"

[features.lab_rounded]
description = "Highest lab value to 2 places"
expr = "round(lab_max, 2)"

[cohorts.on_list]
title = "Listed"
description = "Has a listed code"
when = "listed >= 1"
rank = ["lab_max desc"]
"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = run_rules(&rules, &data, &out, AS_OF);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p = read_parquet(&out.join("patients.parquet"));
    let column = |name: &str| -> Vec<String> {
        (0..p.num_rows())
            .map(|r| value_text(p.column_by_name(name).unwrap(), r))
            .collect()
    };
    // ASCII whitespace around a code is trimmed; a no-break space is not.
    assert_eq!(column("listed"), vec!["2", "1", "0", "0"]);
    assert_eq!(column("distinct_codes"), vec!["1", "1", "1", "0"]);
    // R54X is R54 with the filler, any case and punctuation; a code of four
    // bytes ending in X loses it whatever its characters (É1X is 1).
    assert_eq!(column("frail"), vec!["1", "0", "1", "0"]);
    assert_eq!(column("exact"), vec!["1", "1", "0", "0"]);
    // The measure's rows are its list's codes, prefixes of the normalised
    // code (R541, E12; not R5 or X99); 2.05 g/dL is 20.5 g/L; a value out of
    // bounds (1000 g/L) or in a unit not listed (mg) is rejected. Units
    // match ignoring ASCII case only: ÅG/L is Åg/L (3 is 6 g/L), åg/l is not.
    // A half at the 7th place rounds up on the value's decimal form,
    // though the double below 1.0000005 is nearer 1.0 (1.000001 g/L).
    assert_eq!(column("obs_count"), vec!["2", "1", "1", "0"]);
    assert_eq!(column("obs_max"), vec!["20.5", "6.0", "1.000001", "null"]);
    // Prefixes of two lengths, one of them non-ASCII (é1: 2 characters, 3
    // bytes), matched case-sensitively for a list of other codes.
    assert_eq!(column("obs2_count"), vec!["1", "1", "0", "0"]);
    assert_eq!(column("obs2_max"), vec!["1.5", "2.5", "null", "null"]);
    // NaN is skipped: no value is null, not NaN.
    assert_eq!(column("lab_max"), vec!["5.0", "null", "null", "0.285"]);
    // round() on the decimal form: 0.285 is 0.29 (binary, 0.28).
    assert_eq!(column("lab_rounded"), vec!["5.0", "null", "null", "0.29"]);
    if let Ok(python) = std::env::var("STRATA_DUCKDB_PYTHON") {
        check_sql(&python, &rules, &data, AS_OF, &p, tmp.path()).unwrap();
    }
}

/// A birth date before 1900-01-01 is unknown to both engines: no age.
#[test]
fn birth_dates_before_1900_have_no_age_in_either_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let people = [
        person(1, "1800-01-01", "P1"),
        person(2, "1899-12-31", "P1"),
        person(3, "1900-01-01", "P1"),
        person(4, "1950-01-01", "P1"),
    ];
    write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[model]
name = "ages"
title = "Ages"
source = "test"

[features.age_years]
description = "Age"
expr = "age"
"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = run_rules(&rules, &data, &out, AS_OF);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("2 rows' birth dates are before 1900-01-01"));
    let p = read_parquet(&out.join("patients.parquet"));
    let ages: Vec<String> = (0..p.num_rows())
        .map(|r| value_text(p.column_by_name("age_years").unwrap(), r))
        .collect();
    assert_eq!(ages, vec!["null", "null", "125", "75"]);
    if let Ok(python) = std::env::var("STRATA_DUCKDB_PYTHON") {
        check_sql(&python, &rules, &data, AS_OF, &p, tmp.path()).unwrap();
    }
}

/// A feature the rules type as null (`expr = "null"`) read by other
/// features, a cohort's rank and its reasons, as a bare `null` would be
/// there: `round(nothing)` panicked and `nothing + 1` failed in Arrow's
/// kernels (exit 3 and 2) while `round(null)` ran. Both engines agree.
#[test]
fn a_feature_typed_as_null_reads_as_a_bare_null() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        NULL_FEATURE_RULES.to_string()
            + r#"
[features.rounded]
expr = "round(nothing)"

[features.plus_one]
expr = "nothing + 1"

[features.size]
expr = "abs(nothing)"

[features.either]
expr = "case when ae_12m >= 1 then nothing else 1 end"

[features.text]
expr = "concat_ws(', ', nothing, 'a')"

[features.unknown]
expr = "coalesce(nothing, nothing)"

[features.later]
expr = "nothing > date '2025-01-01'"

[features.latest]
expr = "greatest(nothing, date '2025-01-01')"

[features.mixed]
expr = "case when ae_12m >= 1 then nothing else 'a' end"

[features.flag]
expr = "case when nothing then 1 else 0 end"

[features.shifted]
expr = "date '2025-01-01' - nothing"

[features.days]
expr = "nothing - date '2025-01-01'"

[cohorts.any_ae]
title = "Any A&E"
description = "Anyone with an A&E attendance in 12 months."
when = "ae_12m >= 1 and (nothing or true)"
rank = ["nothing desc", "ae_12m desc"]
reasons = ["ae_12m", "nothing", "rounded"]
columns = ["nothing", "ae_12m"]

[[tests]]
name = "one attendance: the null features null, the rest as a bare null gives"
as_of = 2025-03-31
person = { birth_date = 1980-01-01 }
events.ae = [{ date = 2025-01-01 }]
expect = { nothing = "null", rounded = "null", unknown = "null", either = "null", mixed = "null", flag = 0, latest = 2025-01-01, shifted = "null", days = "null", any_ae = true }
"#,
    )
    .unwrap();
    let sample = repo_path("sample-data");
    let out = tmp.path().join("out");
    let o = run_rules(&rules, &sample, &out, AS_OF);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p = read_parquet(&out.join("patients.parquet"));
    let ae = p
        .column_by_name("ae_12m")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .clone();
    let typed = |name: &str| p.column_by_name(name).unwrap().data_type().clone();
    use arrow_array::Array;
    use arrow_schema::DataType;
    assert_eq!(typed("nothing"), DataType::Null);
    assert_eq!(typed("rounded"), DataType::Float64);
    assert_eq!(typed("plus_one"), DataType::Int64);
    assert_eq!(typed("size"), DataType::Int64);
    assert_eq!(typed("either"), DataType::Int64);
    // Beside a date, `nothing` is a number of days; taken from one, a date.
    assert_eq!(typed("shifted"), DataType::Date32);
    assert_eq!(typed("days"), DataType::Int64);
    for name in ["rounded", "plus_one", "size", "shifted", "days"] {
        assert_eq!(p.column_by_name(name).unwrap().null_count(), p.num_rows());
    }
    let column = |name: &str| -> Vec<String> {
        (0..p.num_rows())
            .map(|r| value_text(p.column_by_name(name).unwrap(), r))
            .collect()
    };
    // `case` picks the null branch for those with an attendance, 1 for the
    // rest; `concat_ws` skips the null; `coalesce` of nulls is null.
    let some = (0..p.num_rows()).filter(|&r| ae.value(r) >= 1).count();
    assert!(some > 0 && some < p.num_rows(), "both sides of the `case`");
    for (r, either) in column("either").iter().enumerate() {
        let expected = if ae.value(r) >= 1 { "null" } else { "1" };
        assert_eq!(either, expected, "row {r}");
    }
    assert!(column("text").iter().all(|t| t == "a"));
    for name in ["unknown", "later"] {
        assert!(column(name).iter().all(|t| t == "null"), "{name}");
    }
    assert!(column("latest").iter().all(|t| t == "2025-01-01"));
    assert!(column("flag").iter().all(|t| t == "0"));
    for (r, mixed) in column("mixed").iter().enumerate() {
        let expected = if ae.value(r) >= 1 { "null" } else { "a" };
        assert_eq!(mixed, expected, "row {r}");
    }
    // `null or true` is true: everyone with an attendance is in the
    // cohort, ranked by `nothing` (all tied) and then their attendances.
    let member = column("any_ae");
    let members: Vec<usize> = (0..p.num_rows()).filter(|&r| member[r] == "true").collect();
    assert!(!members.is_empty());
    assert!(members.iter().all(|&r| ae.value(r) >= 1));
    // Within each PCN, ranked by attendances, most first, then by id.
    let (rank, pcn, id) = (
        column("any_ae_rank"),
        column("pcn_code"),
        column("person_id"),
    );
    let mut by_pcn: std::collections::BTreeMap<&str, Vec<(i64, i64, i64)>> = Default::default();
    for &r in &members {
        let rank = rank[r].parse::<i64>().expect("a member is ranked");
        by_pcn.entry(pcn[r].as_str()).or_default().push((
            -ae.value(r),
            id[r].parse().unwrap(),
            rank,
        ));
    }
    for ranked in by_pcn.values_mut() {
        ranked.sort_unstable();
        let ranks: Vec<i64> = ranked.iter().map(|&(_, _, rank)| rank).collect();
        assert_eq!(ranks, (1..=ranked.len() as i64).collect::<Vec<_>>());
    }
    // In the PCNs' workbooks the null column is blank, as any null.
    use calamine::Reader;
    let mut blank = 0;
    for pcn in std::fs::read_dir(out.join("pcn")).unwrap() {
        let pcn = pcn.unwrap().path();
        let name = pcn.file_name().unwrap().to_str().unwrap().to_string();
        let mut book: calamine::Xlsx<_> =
            calamine::open_workbook(pcn.join(format!("{name}.xlsx"))).unwrap();
        let range = book.worksheet_range("any_ae").unwrap();
        let header: Vec<String> = range
            .rows()
            .next()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let at = header
            .iter()
            .position(|h| h == "nothing")
            .expect("a `nothing` column");
        for row in range.rows().skip(1) {
            assert_eq!(row[at], calamine::Data::Empty, "{name}");
            blank += 1;
        }
    }
    assert_eq!(blank, members.len());
    // The rule file's own test expects nulls of the null-typed features.
    let o = strata(&["test", rules.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    if let Ok(python) = std::env::var("STRATA_DUCKDB_PYTHON") {
        check_sql(&python, &rules, &sample, AS_OF, &p, tmp.path()).unwrap();
    }
}

/// A sex column the rules cannot read (`female`, `2`): both engines stop.
#[test]
fn sex_values_outside_the_contract_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = &tmp.path().join("data");
    std::fs::create_dir(data).unwrap();
    std::fs::create_dir(tmp.path().join("sql")).unwrap();
    write_parquet(
        &data.join("ae_attendances.parquet"),
        &[ae_batch(&[(1, Some("2025-01-01"))])],
    );
    write_parquet(
        &data.join("admissions.parquet"),
        &[admissions_batch(&[(1, "2020-01-01", "elective", &[])])],
    );
    let people: Vec<Person> = (1..=12).map(|i| person(i, "1980-01-01", "U1")).collect();
    let patients = patients_batch(&people);
    let with_sex = |values: Vec<String>| {
        let sexes: arrow_array::ArrayRef = Arc::new(StringArray::from(values));
        write_parquet(
            &data.join("patients.parquet"),
            &[replacing_column(&patients, "sex", sexes)],
        );
    };
    // F, M and U, and empty for unknown, are the contract's.
    let sexes = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
    with_sex(sexes(&[
        "F", "U", "", "M", "F", "F", "M", "U", "F", "M", "F", "F",
    ]));
    let o = run_printed(
        &repo_path("models/hiu.toml"),
        data,
        &data.join("out"),
        &["--as-of", AS_OF],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // A value many rows hold is named (a sex column's own category); one
    // on a few rows is not (it may be one person's: an id in the wrong
    // column), only the first row holding it.
    let mut values = vec!["female"; 8];
    values.extend(["F", "F", "9434765919", "U"]);
    with_sex(sexes(&values));
    let o = run_printed(
        &repo_path("models/hiu.toml"),
        data,
        &data.join("out2"),
        &["--as-of", AS_OF],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("patients.parquet")
            && err.contains("sex column `sex`")
            && err.contains("`female`")
            && err.contains("a value on fewer than 8 rows each, the first on row 11")
            && !err.contains("9434765919")
            && !err.contains("`F`"),
        "{err}"
    );
    assert!(!data.join("out2").exists());
    // The compiled SQL stops there too (where CI has DuckDB).
    if let Ok(python) = std::env::var("STRATA_DUCKDB_PYTHON") {
        let err = check_sql(
            &python,
            &repo_path("models/hiu.toml"),
            data,
            AS_OF,
            &patients,
            &tmp.path().join("sql"),
        )
        .unwrap_err();
        assert!(
            err.contains("DuckDB failed") && err.contains("other than F, M and U"),
            "{err}"
        );
    }
}
