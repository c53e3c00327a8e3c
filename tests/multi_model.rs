//! Several rule files in one run: shared definitions computed once, clashing
//! ones refused with the place of the second, and `include`.

mod util;

use std::path::Path;

use arrow_array::cast::AsArray;
use util::*;

const EXTRA: &str = r#"
[model]
name = "extra"
title = "Frequent attenders, any age"
source = "test fixture"

[params]
hiu_window_days = 365

[sources.ae]
table = "ae_attendances"
date = "arrival_date"

[features.ae_attendances_12m]
description = "A&E attendances in the last 365 days"
source = "ae"
aggregate = "count"
window = "hiu_window_days days"

[features.any_ae]
source = "ae"
aggregate = "exists"

[cohorts.frequent]
title = "Frequent attenders"
description = "3 or more attendances, any age"
when = "ae_attendances_12m >= 3"
rank = ["ae_attendances_12m desc"]
reasons = ["ae_attendances_12m"]

[[tests]]
name = "three attendances"
as_of = 2025-03-31
events.ae = [{ date = 2025-01-01 }, { date = 2025-01-02 }, { date = 2025-01-03 }]
expect = { frequent = true, ae_attendances_12m = 3 }
"#;

fn fixture(dir: &Path) {
    let people = vec![person(1, "2010-01-01", "P1"), person(2, "1980-01-01", "P1")];
    write_parquet(&dir.join("patients.parquet"), &[patients_batch(&people)]);
    let mut ae: Vec<(i64, Option<&str>)> = (0..3).map(|_| (1, Some("2025-01-01"))).collect();
    ae.extend((0..5).map(|_| (2, Some("2025-02-01"))));
    write_parquet(&dir.join("ae_attendances.parquet"), &[ae_batch(&ae)]);
    write_parquet(
        &dir.join("admissions.parquet"),
        &[admissions_batch(&[(2, "2025-01-01", "elective", &[])])],
    );
    std::fs::write(dir.join("extra.toml"), EXTRA).unwrap();
}

fn run_many(dir: &Path, rules: &[&Path]) -> std::process::Output {
    let mut args = vec!["run".to_string()];
    for r in rules {
        args.push("--rules".into());
        args.push(r.display().to_string());
    }
    for a in [
        "--data",
        dir.to_str().unwrap(),
        "--out",
        dir.join("out").to_str().unwrap(),
        "--as-of",
        "2025-03-31",
        "--quiet",
    ] {
        args.push(a.to_string());
    }
    strata(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn two_models_run_together_sharing_a_feature() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let o = run_many(
        tmp.path(),
        &[
            &repo_path("models/hiu.toml"),
            &tmp.path().join("extra.toml"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let p = read_parquet(&tmp.path().join("out/patients.parquet"));
    let names: Vec<String> = p
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names.iter().filter(|n| *n == "ae_attendances_12m").count(),
        1,
        "{names:?}"
    );
    assert!(
        names.contains(&"any_ae".to_string()) && names.contains(&"frequent".to_string()),
        "{names:?}"
    );
    use arrow_array::cast::AsArray;
    let hiu: Vec<_> = p
        .column_by_name("hiu")
        .unwrap()
        .as_boolean()
        .iter()
        .collect();
    let frequent: Vec<_> = p
        .column_by_name("frequent")
        .unwrap()
        .as_boolean()
        .iter()
        .collect();
    assert_eq!(hiu, vec![Some(false), Some(true)]);
    assert_eq!(frequent, vec![Some(true), Some(true)]);
    assert!(tmp.path().join("out/pcn/P1/frequent.csv").exists());
    let m: serde_json::Value = manifest(&tmp.path().join("out"));
    assert_eq!(m["model"]["files"].as_array().unwrap().len(), 2);
    assert_eq!(m["model"]["name"], "hiu+extra");
}

#[test]
fn a_shared_name_defined_differently_is_refused_where_it_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let clash = EXTRA.replacen(
        "window = \"hiu_window_days days\"",
        "window = \"730 days\"",
        1,
    );
    std::fs::write(tmp.path().join("extra.toml"), &clash).unwrap();
    let o = run_many(
        tmp.path(),
        &[
            &repo_path("models/hiu.toml"),
            &tmp.path().join("extra.toml"),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let line = clash
        .lines()
        .position(|l| l == "[features.ae_attendances_12m]")
        .unwrap()
        + 1;
    let err = stderr(&o);
    assert!(err.contains(&format!("extra.toml:{line}:")), "{err}");
    assert!(
        err.contains("feature `ae_attendances_12m` is defined differently in"),
        "{err}"
    );

    let clash = EXTRA.replacen("hiu_window_days = 365", "hiu_window_days = 30", 1);
    std::fs::write(tmp.path().join("extra.toml"), &clash).unwrap();
    let o = run_many(
        tmp.path(),
        &[
            &repo_path("models/hiu.toml"),
            &tmp.path().join("extra.toml"),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("parameter `hiu_window_days` has another value in"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn include_runs_and_tests_the_included_models() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    std::fs::copy(repo_path("models/hiu.toml"), tmp.path().join("hiu.toml")).unwrap();
    let combined = EXTRA.replacen("[model]", "include = [\"hiu.toml\"]\n\n[model]", 1);
    std::fs::write(tmp.path().join("combined.toml"), combined).unwrap();
    let o = run_many(tmp.path(), &[&tmp.path().join("combined.toml")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value = manifest(&tmp.path().join("out"));
    assert_eq!(m["model"]["name"], "extra");
    let cohorts: Vec<&str> = m["counts"]["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cohorts, vec!["hiu", "hiu_nhse", "frequent"]);
    // The included model's assurance tests run too.
    let o = strata(&["test", tmp.path().join("combined.toml").to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let hiu_tests = std::fs::read_to_string(repo_path("models/hiu.toml"))
        .unwrap()
        .matches("[[tests]]")
        .count();
    let expected = format!("{} tests, 0 failed", hiu_tests + 1);
    assert!(stdout(&o).contains(&expected), "{}", stdout(&o));

    // A cycle of includes is refused.
    let looped = std::fs::read_to_string(tmp.path().join("hiu.toml"))
        .unwrap()
        .replacen("[model]", "include = [\"combined.toml\"]\n\n[model]", 1);
    std::fs::write(tmp.path().join("hiu.toml"), looped).unwrap();
    let o = run_many(tmp.path(), &[&tmp.path().join("combined.toml")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("include each other in a cycle"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn population_attributes_are_pooled_but_must_name_the_same_column() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let with_attribute = |column: &str| {
        format!(
            "[model]\nname = \"born_{column}\"\ntitle = \"t\"\nsource = \"test\"\n\n\
             [population.attributes]\nborn = \"{column}\"\n\n\
             [features.born_early]\nexpr = \"born < date '2000-01-01'\"\n"
        )
    };
    let a = tmp.path().join("a.toml");
    let b = tmp.path().join("b.toml");
    std::fs::write(&a, with_attribute("birth_date")).unwrap();
    std::fs::write(
        &b,
        with_attribute("date_of_death").replace("born_early", "born_late"),
    )
    .unwrap();
    let extra = tmp.path().join("extra.toml");

    // A file without attributes runs beside one with them.
    let o = run_many(tmp.path(), &[&extra, &a]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = read_parquet(&tmp.path().join("out/patients.parquet"));
    let early: Vec<_> = p
        .column_by_name("born_early")
        .unwrap()
        .as_boolean()
        .iter()
        .collect();
    assert_eq!(early, vec![Some(false), Some(true)]);

    // The same attribute name for two columns is refused, naming both.
    let o = run_many(tmp.path(), &[&a, &b]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("attribute `born` is column `birth_date`") && err.contains("`date_of_death`"),
        "{err}"
    );
}
