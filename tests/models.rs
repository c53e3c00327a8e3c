//! Every bundled model passes its own assurance tests (`strata test`), and a
//! failing assurance test is reported with the person, expected and actual
//! value, and exit code 1.

mod util;

use std::path::{Path, PathBuf};
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

/// Issue-level check of the default model on the bundled data: its main
/// cohorts have members and every person has exactly one segment.
#[test]
fn the_default_model_on_the_sample_data_fills_its_cohorts_and_segments_everyone() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run_quietly(
        &repo_path("models/core.toml"),
        &repo_path("sample-data"),
        &out,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let p = read_parquet(&out.join("patients.parquet"));
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    let alive = p.column_by_name("alive").unwrap().as_boolean().clone();
    for cohort in ["hiu", "frailty", "last_years_of_life"] {
        let flags = p.column_by_name(cohort).unwrap().as_boolean();
        let members = (0..p.num_rows())
            .filter(|&i| flags.value(i) && alive.value(i))
            .count();
        assert!(members > 20, "{cohort}: {members} members");
    }
    let segment = p.column_by_name("segment").unwrap();
    assert_eq!(segment.null_count(), 0, "everyone has a segment");
    let segments = strata::output::previous::ids_as_text(segment.as_ref());
    let distinct: std::collections::BTreeSet<&str> = segments.iter().map(String::as_str).collect();
    assert!(distinct.len() >= 6, "{distinct:?}");
}

/// Runs the core model on the sample data and on a copy without optional
/// `table`, checks the second says the table was absent, and returns the
/// two output folders (with, without).
fn core_with_and_without(dir: &Path, table: &str) -> (PathBuf, PathBuf) {
    let data = sample_data_copy(dir, &[&format!("{table}.parquet")]);
    let (with, without) = (dir.join("with"), dir.join("without"));
    let core = repo_path("models/core.toml");
    let o = run_quietly(&core, &repo_path("sample-data"), &with, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_printed(&core, &data, &without, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("Optional table `{table}` is absent")),
        "{}",
        stdout(&o)
    );
    (with, without)
}

/// The medications table is optional (as the data contract says): without
/// it the eFI is scored on its coded deficits, polypharmacy is unknown, and
/// the run says the table was absent.
#[test]
fn the_core_model_runs_without_a_medications_table() {
    let tmp = tempfile::tempdir().unwrap();
    let (with, without) = core_with_and_without(tmp.path(), "medications");
    let m = manifest(&without);
    assert_eq!(m["absent_optional_tables"][0]["table"], "medications");
    // Each table read is listed once, though the eFI's seven measures read
    // `observations` and two sources `admissions`; the registrations and
    // the PCNs' names are read too.
    let tables: Vec<&str> = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["table"].as_str().unwrap())
        .collect();
    assert_eq!(
        tables,
        [
            "patients",
            "registrations",
            "pcns",
            "ae_attendances",
            "admissions",
            "gp_events",
            "observations"
        ]
    );
    assert!(
        std::fs::read_to_string(without.join("report.html"))
            .unwrap()
            .contains("absent (optional)")
    );

    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    let (a, b) = (
        read_parquet(&with.join("patients.parquet")),
        read_parquet(&without.join("patients.parquet")),
    );
    let medicines = b.column_by_name("medicines_12m").unwrap();
    assert_eq!(medicines.null_count(), b.num_rows(), "unknown, not zero");
    let deficits = |p: &arrow_array::RecordBatch, name: &str| {
        p.column_by_name(name)
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone()
    };
    let (coded_a, coded_b) = (
        deficits(&a, "efi_coded_deficits"),
        deficits(&b, "efi_coded_deficits"),
    );
    let (all_a, all_b) = (deficits(&a, "efi_deficits"), deficits(&b, "efi_deficits"));
    let measured_b = deficits(&b, "efi_measured_deficits");
    let polypharmacy = a.column_by_name("polypharmacy").unwrap().as_boolean();
    let mut lowered = 0;
    for i in 0..a.num_rows() {
        assert_eq!(coded_a.value(i), coded_b.value(i));
        assert_eq!(
            all_b.value(i),
            coded_b.value(i) + measured_b.value(i),
            "no polypharmacy counted"
        );
        if polypharmacy.value(i) {
            assert_eq!(all_a.value(i), all_b.value(i) + 1);
            lowered += 1;
        }
    }
    assert!(lowered > 100, "{lowered} persons had polypharmacy");
}

/// The observations table is optional too: without it the eFI's deficits
/// from measured values are not scored (none is), the coded ones are as
/// before, and the run says the table was absent; with it, measured values
/// add deficits to some people and never take one away.
#[test]
fn the_core_model_runs_without_an_observations_table() {
    let tmp = tempfile::tempdir().unwrap();
    let (with, without) = core_with_and_without(tmp.path(), "observations");
    let m = manifest(&without);
    let absent: Vec<&str> = m["absent_optional_tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["table"].as_str())
        .collect();
    assert!(absent.contains(&"observations"), "{absent:?}");

    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    let (a, b) = (
        read_parquet(&with.join("patients.parquet")),
        read_parquet(&without.join("patients.parquet")),
    );
    let int = |p: &arrow_array::RecordBatch, name: &str| {
        p.column_by_name(name)
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone()
    };
    let (measured_a, measured_b) = (
        int(&a, "efi_measured_deficits"),
        int(&b, "efi_measured_deficits"),
    );
    let (all_a, all_b) = (int(&a, "efi_deficits"), int(&b, "efi_deficits"));
    let mut raised = 0;
    for i in 0..a.num_rows() {
        assert_eq!(measured_b.value(i), 0, "nothing measured without the table");
        assert_eq!(all_a.value(i), all_b.value(i) + measured_a.value(i));
        raised += usize::from(measured_a.value(i) > 0);
    }
    assert!(raised > 100, "{raised} persons had a deficit from a value");
    // The sample's unusable values are rejected and counted, by reason.
    let rejected = &manifest(&with)["rejected"]["haemoglobin"];
    for reason in ["null_value", "unknown_unit", "implausible_value"] {
        assert!(
            rejected[reason].as_u64().unwrap() > 0,
            "{reason}: {rejected}"
        );
    }
    // Each rejected value names its row of the file as read, though a
    // measure's task sees only its own codes' rows: the row it names holds
    // that person, that date and a haemoglobin code.
    let hb: std::collections::HashSet<String> =
        csv::Reader::from_path(repo_path("models/codelists/efi_haemoglobin_snomed.csv"))
            .unwrap()
            .records()
            .map(|r| r.unwrap()[0].to_string())
            .collect();
    let observations = read_parquet(&repo_path("sample-data/observations.parquet"));
    let file = std::fs::File::open(repo_path("sample-data/observations.parquet")).unwrap();
    let groups: Vec<usize> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows() as usize)
            .collect();
    let column = |name: &str| text_column(&observations, name);
    let (persons, dates, codes) = (column("person_id"), column("date"), column("code"));
    let mut rejects = csv::Reader::from_path(with.join("rejects/haemoglobin.csv")).unwrap();
    let mut checked = 0;
    for r in rejects.records() {
        let r = r.unwrap();
        let group: usize = r[2].parse().unwrap();
        let row = groups[..group].iter().sum::<usize>() + r[3].parse::<usize>().unwrap();
        assert_eq!(value_text(&persons, row), &r[4], "{r:?}");
        assert_eq!(value_text(&dates, row), &r[5], "{r:?}");
        assert!(hb.contains(&value_text(&codes, row)), "{r:?}");
        checked += 1;
    }
    assert!(checked > 100, "{checked} rejected values checked");
}

/// A `min` or `max` of an optional source takes its type from a column:
/// when the table is absent that type is unknown, and the run says so
/// where the feature is written, rather than fail later in a comparison.
#[test]
fn min_or_max_of_an_absent_optional_table_is_refused_where_it_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[model]
name = "t"
title = "t"
source = "test"

[sources.labs]
table = "labs"
date = "test_date"
optional = true

[features.highest]
source = "labs"
aggregate = "max"
column = "value"

[cohorts.c]
title = "c"
description = "c"
when = "highest >= 5"
"#,
    )
    .unwrap();
    let o = run_rules(
        &rules,
        &repo_path("sample-data"),
        &tmp.path().join("out"),
        "2026-03-31",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("rules.toml:") && err.contains("optional table is absent"),
        "{err}"
    );
    assert!(err.contains("help: supply the table"), "{err}");
}

/// The values a parameter is moved to, one step each side of its default:
/// a test suite that pins the boundary the parameter sets fails on both.
fn neighbours(value: &strata::rules::expr::Literal) -> Vec<String> {
    use strata::rules::expr::Literal;
    match value {
        // Integer parameters are counts, days, ages and limits: 0 is the
        // bottom (an age floor of 0 is no floor, and -1 is no different).
        Literal::Int(n) => [n + 1, n - 1]
            .iter()
            .filter(|m| **m >= 0)
            .map(|m| m.to_string())
            .collect(),
        Literal::Float(f) => {
            let step = (f.abs() * 1e-6).max(1e-6);
            vec![format!("{:?}", f + step), format!("{:?}", f - step)]
        }
        Literal::Bool(b) => vec![(!b).to_string()],
        Literal::Date(d) => vec![
            (*d + chrono::Days::new(1)).to_string(),
            (*d - chrono::Days::new(1)).to_string(),
        ],
        Literal::Str(_) | Literal::Null => vec![],
    }
}

/// Every parameter a bundled model declares is pinned by its assurance
/// tests: moved one step either way (a threshold 5 to 6 and to 4, a window
/// of 365 days to 366 and 364, a flag flipped), some test of the model must
/// fail. A parameter whose every move passes every test is a boundary no
/// test checks. A move the model refuses to load is reported too: every
/// move must be checked.
#[test]
fn every_parameter_of_every_bundled_model_is_pinned_by_an_assurance_test() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for path in toml_files("models") {
        let path = std::path::PathBuf::from(path);
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: toml::Table = text.parse().unwrap();
        let Some(params) = doc.get("params").and_then(|p| p.as_table()) else {
            continue;
        };
        let model = strata::rules::load(&path).unwrap();
        for name in params.keys() {
            let (_, value) = model.params.iter().find(|(n, _)| n == name).unwrap();
            let moves = neighbours(value);
            assert!(!moves.is_empty(), "{}: {name} has no moves", path.display());
            for moved in moves {
                let set = [(name.clone(), moved.clone())];
                let what = format!("{}: {name} = {moved} (default {value})", path.display());
                let changed = match strata::rules::load_all(std::slice::from_ref(&path), &set) {
                    Ok(m) => m,
                    Err(e) => {
                        problems.push(format!("{what} is refused: {e}"));
                        continue;
                    }
                };
                let outcomes = strata::commands::test::run(&changed)
                    .unwrap_or_else(|e| panic!("{what}: the tests cannot run: {e}"));
                checked += 1;
                if outcomes.iter().all(|o| o.failures.is_empty()) {
                    problems.push(format!("{what} passes every assurance test"));
                }
            }
        }
    }
    assert!(checked > 40, "only {checked} parameter moves were checked");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A run as of a past date counts only the population of that date: people
/// born after it (the generator's newborns), or not registered then (the
/// sample's registrations: joiners and leavers), are not in it, are on no
/// list, and the alive count and every segment total leave them out.
#[test]
fn a_past_as_of_date_leaves_out_people_not_yet_born() {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Date32Type;
    let as_of = "2024-03-31";
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run_quietly(
        &repo_path("models/core.toml"),
        &repo_path("sample-data"),
        &out,
        &["--as-of", as_of, "--suppression", "none"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let input = read_parquet(&repo_path("sample-data/patients.parquet"));
    let p = read_parquet(&out.join("patients.parquet"));
    let births = input
        .column_by_name("birth_date")
        .unwrap()
        .as_primitive::<Date32Type>();
    let deaths = input
        .column_by_name("date_of_death")
        .unwrap()
        .as_primitive::<Date32Type>();
    let ids = input.column_by_name("person_id").unwrap();
    // Registered on the as-of date: a registration started on or before it
    // and not ended before it.
    let registrations = read_parquet(&repo_path("sample-data/registrations.parquet"));
    let date_column = |name: &str| {
        registrations
            .column_by_name(name)
            .unwrap()
            .as_primitive::<Date32Type>()
            .clone()
    };
    let (starts, ends) = (date_column("start_date"), date_column("end_date"));
    let registered: std::collections::HashSet<String> = strata::output::previous::ids_as_text(
        registrations.column_by_name("person_id").unwrap().as_ref(),
    )
    .into_iter()
    .enumerate()
    .filter(|&(r, _)| {
        starts.value(r) <= day(as_of) && (ends.is_null(r) || ends.value(r) >= day(as_of))
    })
    .map(|(_, id)| id)
    .collect();
    let in_population: std::collections::HashMap<String, bool> =
        strata::output::previous::ids_as_text(ids.as_ref())
            .into_iter()
            .enumerate()
            .map(|(i, id)| {
                let born = births.value(i) <= day(as_of);
                let dead = !deaths.is_null(i) && deaths.value(i) <= day(as_of);
                let on_list = registered.contains(&id);
                (id, born && !dead && on_list)
            })
            .collect();
    let unborn = (0..input.num_rows())
        .filter(|&i| births.value(i) > day(as_of))
        .count();
    assert!(
        unborn > 50,
        "the sample has newborns after {as_of}: {unborn}"
    );

    let alive = p.column_by_name("alive").unwrap().as_boolean();
    let out_ids =
        strata::output::previous::ids_as_text(p.column_by_name("person_id").unwrap().as_ref());
    for (row, id) in out_ids.iter().enumerate() {
        assert_eq!(alive.value(row), in_population[id], "person {id}");
    }
    // Counts leave out people with an opt-out (a direct-care run keeps them
    // on the lists only).
    let flag = |name: &str| input.column_by_name(name).unwrap().as_boolean().clone();
    let (type1, national) = (flag("type1_opt_out"), flag("national_data_opt_out"));
    let ids_in = strata::output::previous::ids_as_text(ids.as_ref());
    let expected_alive = (0..input.num_rows())
        .filter(|&i| in_population[&ids_in[i]] && !type1.value(i) && !national.value(i))
        .count();
    let m = manifest(&out);
    assert_eq!(m["counts"]["alive"], expected_alive.to_string());
    let segment_total: u64 = m["counts"]["segments"][0]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[1].as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(segment_total, expected_alive as u64);
    for cohort in ["hiu", "frailty", "last_years_of_life"] {
        let flags = p.column_by_name(cohort).unwrap().as_boolean();
        assert!(
            (0..p.num_rows()).all(|i| !flags.value(i) || alive.value(i)),
            "{cohort} holds someone not in the population"
        );
    }
}
