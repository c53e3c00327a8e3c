//! Every aggregate kind, code-list matching on plain and list code columns,
//! and derived features, checked on hand-made fixtures with a rule file
//! written by the test.

mod util;

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type};
use util::*;

const RULES: &str = r#"
[model]
name = "features_test"
title = "Aggregates under test"
source = "test fixture"

[params]
recent = 2

[sources.gp]
table = "gp_events"
date = "event_date"
code = "snomed_code"

[sources.apc]
table = "admissions"
date = "admission_date"
code = "diagnoses"

[codelists.frailty]
file = "frailty.csv"
system = "snomed"
category_column = "deficit"

[codelists.hfrs]
file = "hfrs.csv"
system = "icd10"
match = "prefix"
weight_column = "points"

[features.frailty_events]
source = "gp"
aggregate = "count"
codelist = "frailty"

[features.deficits]
source = "gp"
aggregate = "count_distinct_categories"
codelist = "frailty"

[features.frailty_codes]
source = "gp"
aggregate = "count_distinct_codes"
codelist = "frailty"

[features.first_frailty]
source = "gp"
aggregate = "first_date"
codelist = "frailty"

[features.any_gp_recent]
source = "gp"
aggregate = "exists"
window = "recent years"

[features.hfrs]
source = "apc"
aggregate = "sum_distinct_weights"
codelist = "hfrs"
window = "2 years"

[features.longest_stay]
source = "apc"
aggregate = "max"
column = "stay"

[features.efi]
expr = "deficits / 36"

[features.frail]
expr = "case when efi >= 0.12 or hfrs > 5 then true else false end"

[cohorts.frail_people]
title = "Frail"
description = "Test cohort"
when = "frail and age >= 65"
rank = ["hfrs desc"]
reasons = ["deficits", "hfrs"]
"#;

fn write_fixture(dir: &Path) {
    std::fs::write(dir.join("rules.toml"), RULES).unwrap();
    std::fs::write(
        dir.join("frailty.csv"),
        "code,term,deficit\n100100,Fall,falls\n100200,Fell,falls\n200100,Walking aid,mobility\n300100,Heart failure,heart_failure\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("hfrs.csv"),
        "code,term,points\nF00,Dementia,7.1\nR54,Senility,2.2\nI50,Heart failure,0.3\n",
    )
    .unwrap();
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    let people = vec![
        person(1, "1940-01-01", "P1"),
        person(2, "1950-01-01", "P1"),
        person(3, "1990-01-01", "P2"),
    ];
    write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
    write_parquet(
        &data.join("gp_events.parquet"),
        &[gp_batch(&[
            (1, "2010-05-01", "100100"),
            (1, "2020-05-01", "100200"), // same deficit, another code
            (1, "2024-01-01", "100100"), // same code again
            (1, "2024-02-01", "200100"),
            (1, "2024-03-01", "300100"),
            (1, "2024-03-02", "999999"), // not in the list
            (2, "2015-01-01", "999999"),
            (3, "2024-01-01", "300100"),
        ])],
    );
    let b = admissions_batch(&[
        // Same 3-character code in two positions and two admissions: once.
        (1, "2024-01-01", "emergency", &["F00.1", "f001", "R54X"]),
        (1, "2024-06-01", "emergency", &["F001", "I509"]),
        (1, "2023-03-31", "emergency", &["I50"]), // exactly 2 years back: out
        (2, "2023-04-01", "elective", &["I501"]), // 2 years less a day: in
        (3, "2024-01-01", "emergency", &["A00", "F00"]),
    ]);
    let stays = arrow_array::Int64Array::from(vec![3, 10, 1, 4, 2]);
    let schema = b.schema();
    let mut cols: Vec<(&str, arrow_array::ArrayRef)> = schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .zip(b.columns().iter().cloned())
        .collect();
    cols.push(("stay", std::sync::Arc::new(stays)));
    write_parquet(&data.join("admissions.parquet"), &[batch(cols)]);
}

#[test]
fn aggregates_match_hand_computed_values() {
    let tmp = tempfile::tempdir().unwrap();
    write_fixture(tmp.path());
    let out = tmp.path().join("out");
    let o = run_rules(
        &tmp.path().join("rules.toml"),
        &tmp.path().join("data"),
        &out,
        "2025-03-31",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let p = read_parquet(&out.join("patients.parquet"));
    // Columns in the order the rule file writes them, not alphabetical,
    // after person_id, practice_code, pcn_code, alive and counted.
    let names: Vec<String> = p
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names[5..],
        [
            "frailty_events",
            "deficits",
            "frailty_codes",
            "first_frailty",
            "any_gp_recent",
            "hfrs",
            "longest_stay",
            "efi",
            "frail",
            "frail_people",
            "frail_people_rank"
        ]
    );
    let ints = |n: &str| -> Vec<Option<i64>> {
        p.column_by_name(n)
            .unwrap()
            .as_primitive::<Int64Type>()
            .iter()
            .collect()
    };
    let floats = |n: &str| -> Vec<f64> {
        p.column_by_name(n)
            .unwrap()
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect()
    };
    let bools = |n: &str| -> Vec<Option<bool>> {
        p.column_by_name(n).unwrap().as_boolean().iter().collect()
    };

    assert_eq!(ints("frailty_events"), vec![Some(5), Some(0), Some(1)]);
    assert_eq!(ints("deficits"), vec![Some(3), Some(0), Some(1)]);
    assert_eq!(ints("frailty_codes"), vec![Some(4), Some(0), Some(1)]);
    let first: Vec<Option<i32>> = p
        .column_by_name("first_frailty")
        .unwrap()
        .as_primitive::<Date32Type>()
        .iter()
        .collect();
    assert_eq!(
        first,
        vec![Some(day("2010-05-01")), None, Some(day("2024-01-01"))]
    );
    assert_eq!(
        bools("any_gp_recent"),
        vec![Some(true), Some(false), Some(true)]
    );
    // F00 7.1 + R54 2.2 + I50 0.3, each once.
    let hfrs = floats("hfrs");
    assert!((hfrs[0] - 9.6).abs() < 1e-9, "{hfrs:?}");
    assert!((hfrs[1] - 0.3).abs() < 1e-9, "{hfrs:?}");
    assert!((hfrs[2] - 7.1).abs() < 1e-9, "{hfrs:?}");
    assert_eq!(ints("longest_stay"), vec![Some(10), Some(4), Some(2)]);
    let efi = floats("efi");
    assert!((efi[0] - 3.0 / 36.0).abs() < 1e-12);
    assert_eq!(bools("frail"), vec![Some(true), Some(false), Some(true)]);
    // Person 3 is frail by the rule but 35 years old.
    assert_eq!(
        bools("frail_people"),
        vec![Some(true), Some(false), Some(false)]
    );
}

/// `strata explain` of person `id` on the fixture written in `dir`.
fn explain(dir: &Path, id: &str, extra: &[&str]) -> std::process::Output {
    let (rules, data) = (dir.join("rules.toml"), dir.join("data"));
    let mut args = vec![
        "explain",
        "--person",
        id,
        "--rules",
        rules.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--as-of",
        "2025-03-31",
    ];
    args.extend_from_slice(extra);
    strata(&args)
}

#[test]
fn explain_lists_the_events_and_codes_behind_each_feature() {
    let tmp = tempfile::tempdir().unwrap();
    write_fixture(tmp.path());
    let o = explain(tmp.path(), "1", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with(
            "Person 1, practice P1-GP, PCN P1, as of 2025-03-31: age 85, sex F, alive."
        ),
        "{text}"
    );
    assert!(text.contains("  hfrs = 9.6\n      sum_distinct_weights of `apc` events from 2023-04-01 to 2025-03-31, code in `hfrs`:"), "{text}");
    // The same code in two positions is shown once; R54X matched R54.
    assert!(
        text.contains("        2024-01-01  F00 Dementia; R54 Senility\n"),
        "{text}"
    );
    assert!(
        text.contains("        2024-06-01  F00 Dementia; I50 Heart failure\n"),
        "{text}"
    );
    assert!(text.contains("  deficits = 3"), "{text}");
    assert!(
        text.contains("        2024-03-01  300100 Heart failure\n"),
        "{text}"
    );
    assert!(
        text.contains("  efi = 0.08333333333333333\n      computed from: deficits / 36"),
        "{text}"
    );
    assert!(
        text.contains("  frail_people: IN (rank 1 in their PCN)\n      when frail and age >= 65"),
        "{text}"
    );

    let o = explain(tmp.path(), "42", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no person with id `42`"),
        "{}",
        stderr(&o)
    );
}

/// Events on one day from different row groups are listed in one order
/// (by the code-list entries they matched), whatever order the scan took
/// the row groups in: here the costlier first group, on one thread or two.
#[test]
fn explain_lists_same_day_events_in_a_fixed_order() {
    let tmp = tempfile::tempdir().unwrap();
    write_fixture(tmp.path());
    let data = tmp.path().join("data");
    write_parquet(
        &data.join("gp_events.parquet"),
        &[
            gp_batch(&[
                (1, "2024-03-01", "300100"),
                (2, "2015-01-01", "999999"),
                (3, "2024-01-01", "300100"),
            ]),
            gp_batch(&[(1, "2024-03-01", "200100")]),
        ],
    );
    for threads in ["1", "2"] {
        let o = explain(tmp.path(), "1", &["--threads", threads]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o);
        assert!(
            text.contains(
                "        2024-03-01  200100 Walking aid\n        2024-03-01  300100 Heart failure\n"
            ),
            "threads {threads}: {text}"
        );
    }
}

/// Aggregates whose `where`s are the same share one evaluation per batch;
/// `value = 0.0` and `value = -0.0` are not the same (the comparison tells
/// the zeros apart), and neither are two rules on two columns.
#[test]
fn aggregates_with_different_wheres_are_not_merged() {
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    let rules = r#"
[model]
name = "wheres"
title = "Wheres that look alike"
source = "test fixture"

[sources.labs]
table = "labs"
date = "event_date"

[features.positive_zero]
source = "labs"
aggregate = "count"
where = "value = 0.0"

[features.negative_zero]
source = "labs"
aggregate = "count"
where = "value = -0.0"

[features.positive_zero_again]
source = "labs"
aggregate = "count"
where = "value = 0.0"

[features.other_column]
source = "labs"
aggregate = "count"
where = "other = 0.0"
"#;
    std::fs::write(tmp.path().join("rules.toml"), rules).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let people = vec![person(1, "1940-01-01", "P1"), person(2, "1950-01-01", "P1")];
    write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
    let labs = batch(vec![
        (
            "person_id",
            Arc::new(arrow_array::Int64Array::from(vec![1, 2, 2])),
        ),
        (
            "event_date",
            Arc::new(arrow_array::Date32Array::from(vec![
                day("2024-01-01"),
                day("2024-01-01"),
                day("2024-02-01"),
            ])),
        ),
        (
            "value",
            Arc::new(arrow_array::Float64Array::from(vec![0.0, -0.0, -0.0])),
        ),
        (
            "other",
            Arc::new(arrow_array::Float64Array::from(vec![1.0, 0.0, 0.0])),
        ),
    ]);
    write_parquet(&data.join("labs.parquet"), &[labs]);
    let out = tmp.path().join("out");
    let o = run_rules(&tmp.path().join("rules.toml"), &data, &out, "2025-03-31");
    assert!(o.status.success(), "{}", stderr(&o));
    let p = read_parquet(&out.join("patients.parquet"));
    let counts = |name: &str| -> Vec<i64> {
        let c = p.column_by_name(name).unwrap();
        let c = arrow_cast::cast(c, &arrow_schema::DataType::Int64).unwrap();
        c.as_primitive::<Int64Type>().values().to_vec()
    };
    assert_eq!(counts("positive_zero"), [1, 0]);
    assert_eq!(counts("negative_zero"), [0, 2]);
    assert_eq!(counts("positive_zero_again"), [1, 0]);
    assert_eq!(counts("other_column"), [0, 2]);
}

/// Aggregates computed alike (here three counts of one year of lab
/// events, one of them twice over under other names) are scanned once,
/// the first filling the others' columns, and `strata explain` shows the
/// events behind each. A year as `12 months` and as `365 days` agree on
/// 2025-03-31 but not on 2024-03-31 (2024 has a 29 February): they are
/// shared only for dates where every window agrees.
#[test]
fn aggregates_computed_alike_are_scanned_once() {
    use std::sync::Arc;
    use strata::engine::plan::AggregatePlan;
    let tmp = tempfile::tempdir().unwrap();
    let rules = r#"
[model]
name = "alike"
title = "Features computed alike"
source = "test fixture"

[sources.labs]
table = "labs"
date = "event_date"

[features.a_year_in_days]
source = "labs"
aggregate = "count"
window = "365 days"

[features.a_year_in_days_again]
source = "labs"
aggregate = "count"
window = "365 days"

[features.a_year_in_months]
source = "labs"
aggregate = "count"
window = "12 months"

[features.a_year_of_zeros]
source = "labs"
aggregate = "count"
window = "365 days"
where = "value = 0.0"

[features.highest]
source = "labs"
aggregate = "max"
column = "value"

[features.highest_other]
source = "labs"
aggregate = "max"
column = "other"

[features.latest_value]
source = "labs"
aggregate = "latest"
column = "value"

[features.second_latest_value]
source = "labs"
aggregate = "latest"
column = "value"
nth = 2
"#;
    let path = tmp.path().join("rules.toml");
    std::fs::write(&path, rules).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let people = vec![person(1, "1940-01-01", "P1"), person(2, "1950-01-01", "P1")];
    write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
    // 2023-04-01 is in 12 months back from 2024-03-31, not in 365 days.
    let labs = batch(vec![
        (
            "person_id",
            Arc::new(arrow_array::Int64Array::from(vec![1, 1, 1, 2])),
        ),
        (
            "event_date",
            Arc::new(arrow_array::Date32Array::from(vec![
                day("2023-04-01"),
                day("2024-01-01"),
                day("2024-12-01"),
                day("2024-06-01"),
            ])),
        ),
        (
            "value",
            Arc::new(arrow_array::Float64Array::from(vec![0.0, 1.0, 0.0, 0.0])),
        ),
        (
            "other",
            Arc::new(arrow_array::Float64Array::from(vec![2.0, 1.0, 0.0, 0.0])),
        ),
    ]);
    write_parquet(&data.join("labs.parquet"), &[labs]);

    let model = strata::rules::load_all(std::slice::from_ref(&path), &[]).unwrap();
    let feature = |name: &str| model.feature_index(name).unwrap();
    let date = |s: &str| strata::dates::parse_date(s).unwrap();
    let windows = |dates: Vec<chrono::NaiveDate>| {
        let model = &model;
        move |a: &AggregatePlan| -> Vec<(Option<i32>, i32)> {
            let strata::rules::FeatureKind::Aggregate { window, .. } =
                &model.features[a.feature].kind
            else {
                unreachable!("only aggregates are scanned")
            };
            dates
                .iter()
                .map(|&d| (window.exclusive_start(d), strata::dates::to_day(d)))
                .collect()
        }
    };
    // Each aggregate scanned, with the features it fills, as of `dates`.
    let shared = |dates: Vec<chrono::NaiveDate>| -> Vec<Vec<usize>> {
        let mut plan = strata::engine::plan::plan(&model, &data, Some(dates[0])).unwrap();
        plan.share_alike(windows(dates));
        plan.sources[0]
            .aggregates
            .iter()
            .map(|a| a.fills().map(|f| f.feature).collect())
            .collect()
    };
    let (days, again, months, zeros) = (
        feature("a_year_in_days"),
        feature("a_year_in_days_again"),
        feature("a_year_in_months"),
        feature("a_year_of_zeros"),
    );
    // Not alike: another column, another `nth`.
    let apart = [
        vec![feature("highest")],
        vec![feature("highest_other")],
        vec![feature("latest_value")],
        vec![feature("second_latest_value")],
    ];
    let with_apart = |groups: Vec<Vec<usize>>| -> Vec<Vec<usize>> {
        groups.into_iter().chain(apart.iter().cloned()).collect()
    };
    assert_eq!(
        shared(vec![date("2025-03-31")]),
        with_apart(vec![vec![days, again, months], vec![zeros]])
    );
    assert_eq!(
        shared(vec![date("2024-03-31")]),
        with_apart(vec![vec![days, again], vec![months], vec![zeros]])
    );
    assert_eq!(
        shared(vec![date("2025-03-31"), date("2024-03-31")]),
        with_apart(vec![vec![days, again], vec![months], vec![zeros]])
    );

    // Every feature's column, shared or not.
    for (as_of, want) in [
        ("2025-03-31", [[1, 1], [1, 1], [1, 1], [1, 1]]),
        ("2024-03-31", [[1, 0], [1, 0], [2, 0], [0, 0]]),
    ] {
        let out = tmp.path().join(format!("out-{as_of}"));
        let o = run_rules(&path, &data, &out, as_of);
        assert!(o.status.success(), "{}", stderr(&o));
        let p = read_parquet(&out.join("patients.parquet"));
        let names = [
            "a_year_in_days",
            "a_year_in_days_again",
            "a_year_in_months",
            "a_year_of_zeros",
        ];
        for (name, want) in names.iter().zip(want) {
            let c = arrow_cast::cast(
                p.column_by_name(name).unwrap(),
                &arrow_schema::DataType::Int64,
            )
            .unwrap();
            assert_eq!(
                c.as_primitive::<Int64Type>().values().to_vec(),
                want,
                "{name} as of {as_of}"
            );
        }
    }
    // The event behind a shared feature is shown under it too.
    let o = explain(tmp.path(), "1", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for name in ["a_year_in_days", "a_year_in_days_again", "a_year_in_months"] {
        // The feature's line, then its events, indented further.
        let section: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with(&format!("  {name} = 1")))
            .skip(1)
            .take_while(|l| l.starts_with("    "))
            .collect();
        assert!(
            section.iter().any(|l| l.contains("2024-12-01")),
            "{name}'s event: {text}"
        );
    }
}

/// A count of the categories met and their list keep one state (a bitset
/// of categories a person): scanned once, each made of it, the list from
/// a copy; a count over another window is not alike.
#[test]
fn categories_counted_and_listed_share_one_state() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = r#"
[model]
name = "categories"
title = "Categories counted and listed"
source = "test fixture"

[sources.gp]
table = "gp_events"
date = "event_date"
code = "snomed_code"

[codelists.frailty]
file = "frailty.csv"
system = "snomed"
category_column = "deficit"

[features.deficits]
source = "gp"
aggregate = "count_distinct_categories"
codelist = "frailty"

[features.deficit_list]
source = "gp"
aggregate = "list_categories"
codelist = "frailty"

[features.recent_deficits]
source = "gp"
aggregate = "count_distinct_categories"
codelist = "frailty"
window = "365 days"

[features.falls]
source = "gp"
aggregate = "list_categories"
codelist = "frailty"
category = "falls"

[features.frailty_codes]
source = "gp"
aggregate = "count_distinct_codes"
codelist = "frailty"
"#;
    let path = tmp.path().join("rules.toml");
    std::fs::write(&path, rules).unwrap();
    std::fs::write(
        tmp.path().join("frailty.csv"),
        "code,term,deficit\n100100,Fall,falls\n200100,Walking aid,mobility\n300100,Heart failure,heart_failure\n",
    )
    .unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let people = vec![person(1, "1940-01-01", "P1"), person(2, "1950-01-01", "P1")];
    write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
    write_parquet(
        &data.join("gp_events.parquet"),
        &[gp_batch(&[
            (1, "2010-05-01", "300100"),
            (1, "2024-06-01", "100100"),
            (1, "2024-07-01", "100100"),
            (2, "2024-08-01", "999999"),
        ])],
    );
    let model = strata::rules::load_all(std::slice::from_ref(&path), &[]).unwrap();
    let mut plan = strata::engine::plan::plan(
        &model,
        &data,
        Some(strata::dates::parse_date("2025-03-31").unwrap()),
    )
    .unwrap();
    plan.share_alike(|a| vec![(a.after, a.until)]);
    let kinds: Vec<Vec<(String, strata::rules::Aggregate)>> = plan.sources[0]
        .aggregates
        .iter()
        .map(|a| {
            a.fills()
                .map(|f| (model.features[f.feature].name.clone(), f.aggregate))
                .collect()
        })
        .collect();
    use strata::rules::Aggregate::{CountDistinctCategories, CountDistinctCodes, ListCategories};
    let named = |n: &str, a| (n.to_string(), a);
    assert_eq!(
        kinds,
        [
            vec![
                named("deficits", CountDistinctCategories),
                named("deficit_list", ListCategories)
            ],
            vec![named("recent_deficits", CountDistinctCategories)],
            vec![named("falls", ListCategories)],
            vec![named("frailty_codes", CountDistinctCodes)],
        ]
    );
    let out = tmp.path().join("out");
    let o = run_rules(&path, &data, &out, "2025-03-31");
    assert!(o.status.success(), "{}", stderr(&o));
    let p = read_parquet(&out.join("patients.parquet"));
    let ints = |name: &str| -> Vec<i64> {
        let c = arrow_cast::cast(
            p.column_by_name(name).unwrap(),
            &arrow_schema::DataType::Int64,
        )
        .unwrap();
        c.as_primitive::<Int64Type>().values().to_vec()
    };
    assert_eq!(ints("deficits"), [2, 0]);
    assert_eq!(ints("recent_deficits"), [1, 0]);
    let list = text_column(&p, "deficit_list");
    assert_eq!(value_text(&list, 0), "falls, heart failure");
    assert_eq!(value_text(&list, 1), "null");
}
