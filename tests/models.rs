//! Every bundled model passes its own assurance tests (`strata test`), and a
//! failing assurance test is reported with the person, expected and actual
//! value, and exit code 1.

mod util;

use util::*;

#[test]
fn every_bundled_model_passes_its_assurance_tests() {
    let models = toml_files("models");
    assert!(!models.is_empty());
    assert_all_pass(&models);
}

#[test]
fn a_failing_assurance_test_says_what_was_expected() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_path("models/hiu.toml")).unwrap();
    let wrong = text.replacen(
        "expect = { ae_attendances_12m = 4, hiu = false }",
        "expect = { ae_attendances_12m = 5, hiu = false }",
        1,
    );
    assert_ne!(text, wrong);
    let path = tmp.path().join("hiu.toml");
    std::fs::write(&path, wrong).unwrap();
    let o = strata(&["test", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("FAILED"), "{out}");
    assert!(out.contains("exactly 365 days back"), "{out}");
    assert!(
        out.contains("`ae_attendances_12m`: expected 5, got 4"),
        "{out}"
    );
    let passed = text.matches("[[tests]]").count() - 1;
    assert!(out.contains(&format!("{passed} passed, 1 failed")), "{out}");
}

#[test]
fn malformed_tests_are_rule_file_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_path("models/hiu.toml")).unwrap();
    for (from, to, message) in [
        (
            "events.ae = [",
            "events.aee = [",
            "`aee` is not a source of this model (did you mean `ae`?)",
        ),
        (
            "person = { birth_date = 1980-01-01 }",
            "person = { birthdate = 1980-01-01 }",
            "`birthdate` is not a population column",
        ),
        (
            "as_of = 2025-03-31",
            "as_of = \"2025-03-31\"",
            "`as_of` must be a date",
        ),
    ] {
        let path = tmp.path().join("hiu.toml");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        let o = strata(&["test", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{to}");
        assert!(stderr(&o).contains(message), "{to}: {}", stderr(&o));
    }
}

#[test]
fn tests_on_different_dates_share_column_types_and_events_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = r#"
[model]
name = "typed"
title = "Types across test dates"
source = "test"

[population.attributes]
care_home = "care_home"

[sources.ae]
table = "ae_attendances"
date = "arrival_date"

[features.n]
source = "ae"
aggregate = "count"

[cohorts.resident]
title = "Care home"
description = "x"
when = "care_home and n >= 0"

[[tests]]
name = "says care_home"
as_of = 2025-03-31
person = { care_home = true }
expect = { resident = true }

[[tests]]
name = "another date, no care_home: still a boolean column"
as_of = 2024-03-31
events.ae = [{ date = 2024-01-01 }]
expect = { resident = false, n = 1 }
"#;
    let path = tmp.path().join("typed.toml");
    std::fs::write(&path, rules).unwrap();
    let o = strata(&["test", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("2 passed, 0 failed"), "{}", stdout(&o));

    std::fs::write(
        &path,
        rules.replace(
            "[{ date = 2024-01-01 }]",
            "[{ date = 2024-01-01, arrival_date = 2024-01-02 }]",
        ),
    )
    .unwrap();
    let o = strata(&["test", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("gives column `arrival_date` twice"),
        "{}",
        stderr(&o)
    );
}
