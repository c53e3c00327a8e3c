//! Several as-of dates from one scan (`engine::run_dates`, what `strata
//! evaluate` runs on): each date's results are exactly those of a run of
//! its own, whether the dates share one scan or are split over several,
//! and the outcomes do not depend on how the dates are grouped.

mod util;

use std::path::PathBuf;

use arrow_array::{Array, ArrayRef};
use chrono::NaiveDate;
use strata::commands::progress::Terminal;
use strata::engine;
use util::*;

fn date(s: &str) -> NaiveDate {
    strata::dates::parse_date(s).unwrap()
}

fn same(a: &ArrayRef, b: &ArrayRef) -> bool {
    a.to_data() == b.to_data()
}

/// Each date's results and outcomes, from `run_dates` within `budget`;
/// with `Some(features)`, reading only the cohorts and those features, as
/// `strata evaluate` does.
fn by_dates(
    model: &strata::rules::Model,
    data: &std::path::Path,
    dates: &[NaiveDate],
    outcomes: &[String],
    budget: usize,
    reading: Option<&[String]>,
) -> Vec<engine::Dated<'static>> {
    // The model outlives the test: leaked on purpose, once per call.
    let model: &'static strata::rules::Model = Box::leak(Box::new(model.clone()));
    engine::run_dates(
        model,
        data,
        &engine::Dates {
            state_budget: budget,
            reading,
            ..engine::Dates::new(dates, outcomes)
        },
        &Terminal::new(true),
        Ok,
    )
    .unwrap()
}

#[test]
fn each_date_of_one_scan_is_the_run_of_that_date() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, 3000, 11);
    let paths: Vec<PathBuf> = ["core", "outcomes"]
        .iter()
        .map(|m| strata::rules::bundled::model_path(std::path::Path::new(m)).unwrap())
        .collect();
    // NHS England's HIU list keeps each PCN's most frequent attender (of
    // more than 3 a year, so that this population has some): a cohort that
    // ranks to choose its members even when nothing reads the ranks. The
    // British Red Cross list keeps everyone.
    let set = |name: &str, value: &str| (name.to_string(), value.to_string());
    let top = [
        set("hiu_nhse_top_per_pcn", "1"),
        set("hiu_nhse_year_more_than", "3"),
    ];
    let model = strata::rules::load_all(&paths, &top).unwrap();
    let limited = model
        .cohorts
        .iter()
        .position(|c| c.top_per_pcn.is_some())
        .expect("a cohort with a limit");
    let dates = [date("2024-09-30"), date("2024-12-31"), date("2025-03-31")];
    let outcomes: Vec<String> = model.outcomes.iter().map(|o| o.name.clone()).collect();
    assert!(outcomes.len() >= 3, "the bundled outcomes");

    let one_scan = by_dates(&model, &data, &dates, &outcomes, usize::MAX, None);
    let scan_each = by_dates(&model, &data, &dates, &outcomes, 1, None);
    assert_eq!(one_scan.len(), dates.len());
    assert_eq!(scan_each.len(), dates.len());
    // What `strata evaluate` reads: the cohorts and a score.
    let scores = ["efi".to_string()];
    let cohorts_and_efi = by_dates(&model, &data, &dates, &outcomes, usize::MAX, Some(&scores));
    let needed = model.features_needed(&scores);
    let unneeded = needed.iter().filter(|n| !**n).count();
    assert!(
        unneeded > 0 && unneeded < needed.len(),
        "the lists' reasons are not needed, the cohorts' features are"
    );
    // Reading every feature needed holds each (reading only the score
    // lets go of those that only the derived features and cohorts read).
    let needed_names: Vec<String> = (model.features.iter().zip(&needed))
        .filter(|(_, n)| **n)
        .map(|(f, _)| f.name.clone())
        .collect();
    assert_eq!(model.features_needed(&needed_names), needed);
    let all_needed = by_dates(
        &model,
        &data,
        &dates,
        &outcomes,
        usize::MAX,
        Some(&needed_names),
    );

    let mut differ_between_dates = false;
    for (k, as_of) in dates.iter().enumerate() {
        let single = engine::run(&model, &data, Some(*as_of), &Terminal::new(true)).unwrap();
        assert!(
            !single.cohorts[limited].members.is_empty(),
            "{as_of}: the limited cohort has members"
        );
        for dated in [&one_scan[k], &scan_each[k]] {
            let r = &dated.results;
            assert_eq!(r.slots.len(), single.slots.len());
            for (s, (a, b)) in r.slots.iter().zip(&single.slots).enumerate() {
                assert!(
                    same(a, b),
                    "{as_of}: slot {s} differs from a run of its own"
                );
            }
            assert_eq!(r.alive, single.alive, "{as_of}: who is in the population");
            for (c, (a, b)) in r.cohorts.iter().zip(&single.cohorts).enumerate() {
                assert_eq!(a.flags, b.flags, "{as_of}: cohort {c}");
                assert_eq!(a.rank, b.rank, "{as_of}: cohort {c}'s ranks");
                assert_eq!(a.members, b.members, "{as_of}: cohort {c}'s order");
            }
        }
        // Reading less computes less, and changes nothing of what is read;
        // what is computed but not read after the run is let go once
        // nothing more reads it (its values are compared from the run that
        // reads every feature needed); what is not computed is held, nulls
        // typed as a run types them.
        let read = &cohorts_and_efi[k];
        let held = &all_needed[k];
        let released = &read.results.released;
        for (fi, feature) in model.features.iter().enumerate() {
            assert!(!held.results.released[fi], "{as_of}: {} held", feature.name);
            assert_eq!(
                released[fi],
                needed[fi] && !scores.contains(&feature.name),
                "{as_of}: {} let go when only a score is read",
                feature.name
            );
            let read = if released[fi] { held } else { read };
            let (a, b) = (read.results.feature(fi), single.feature(fi));
            if needed[fi] {
                assert!(
                    same(a, b),
                    "{as_of}: {} differs when reading less",
                    feature.name
                );
            } else {
                assert_eq!(
                    a.logical_null_count(),
                    a.len(),
                    "{as_of}: {} computed",
                    feature.name
                );
                // As expressions read them: a count a run holds in 32 bits
                // is a whole number.
                let read = |c: &ArrayRef| engine::aggregate::widened(c.clone());
                assert_eq!(
                    read(a).data_type(),
                    read(b).data_type(),
                    "{as_of}: {}'s type",
                    feature.name
                );
            }
        }
        // Cohorts are ranked only where the ranks choose the members.
        let cohorts = read.results.cohorts.iter().zip(&single.cohorts);
        for ((a, b), spec) in cohorts.zip(&model.cohorts) {
            let c = &spec.name;
            assert_eq!(a.flags, b.flags, "{as_of}: cohort {c} when reading less");
            if spec.top_per_pcn.is_some() {
                assert_eq!(a.rank, b.rank, "{as_of}: {c}'s ranks when reading less");
                assert_eq!(a.members, b.members, "{as_of}: {c}'s members");
            } else {
                assert!(a.rank.is_none(), "{as_of}: {c} ranked when reading less");
                let mut members = b.members.clone();
                members.sort_unstable();
                assert_eq!(a.members, members, "{as_of}: {c}'s members, in row order");
            }
        }
        for ((n1, a), (n2, b)) in read.outcomes.iter().zip(&one_scan[k].outcomes) {
            assert_eq!(n1, n2);
            assert!(same(a, b), "{as_of}: outcome {n1} when reading less");
        }
        for ((n1, a), (n2, b)) in one_scan[k].outcomes.iter().zip(&scan_each[k].outcomes) {
            assert_eq!(n1, n2);
            assert!(same(a, b), "{as_of}: outcome {n1} depends on the grouping");
        }
        assert_eq!(
            one_scan[k]
                .outcomes
                .iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>(),
            outcomes.iter().collect::<Vec<_>>(),
            "outcomes in the order asked for"
        );
        if k > 0 {
            differ_between_dates |= one_scan[k]
                .outcomes
                .iter()
                .zip(&one_scan[k - 1].outcomes)
                .any(|((_, a), (_, b))| !same(a, b));
        }
    }
    // Each outcome is what the same aggregate over a backward window gives
    // as of the forward window's last day: `as_of < date <= as_of + 365`.
    let backward = std::fs::read_to_string(repo_path("models/outcomes.toml"))
        .unwrap()
        .replace("[outcomes.", "[features.")
        .replace("window = \"next 365 days\"", "window = \"365 days\"")
        .replace("part_of = ", "# part_of = ")
        .replace("at_least = ", "# at_least = ")
        .replace("[[tests]]", "[[ignored]]");
    let backward = backward[..backward.find("[[ignored]]").unwrap()].to_string();
    let path = dir.path().join("backward.toml");
    std::fs::write(&path, backward).unwrap();
    let codelists = dir.path().join("codelists");
    std::fs::create_dir_all(&codelists).unwrap();
    for f in std::fs::read_dir(repo_path("models/codelists")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), codelists.join(f.file_name())).unwrap();
    }
    let backward = strata::rules::load_all(&[path], &[]).unwrap();
    for (k, as_of) in dates.iter().enumerate() {
        let end = as_of.checked_add_days(chrono::Days::new(365)).unwrap();
        let run = engine::run(&backward, &data, Some(end), &Terminal::new(true)).unwrap();
        for (name, column) in &one_scan[k].outcomes {
            let i = backward.feature_index(name).unwrap();
            // Outcomes are read as whole numbers; the run holds its counts
            // in 32 bits.
            let feature = engine::aggregate::widened(run.feature(i).clone());
            assert!(
                same(column, &feature),
                "{as_of}: outcome {name} differs from a backward window as of {end}"
            );
        }
    }
    // Otherwise the windows would not be placed on each date.
    assert!(differ_between_dates, "outcomes identical on every date");
    // And some outcome happened at all.
    assert!(
        one_scan[0]
            .outcomes
            .iter()
            .any(|(_, a)| a.len() > a.null_count()),
    );
}

/// A&E counts over two windows and a derived feature from both, for the
/// small rule files below.
const AE_COUNTS: &str = r#"
[sources.ae]
table = "ae_attendances"
date = "arrival_date"

[features.ae_90d]
description = "A&E attendances in 90 days"
source = "ae"
aggregate = "count"
window = "90 days"

[features.ae_365d]
description = "A&E attendances in 365 days"
source = "ae"
aggregate = "count"
window = "365 days"

[features.older_visits]
description = "Attendances before the last 90 days"
expr = "ae_365d - ae_90d"
"#;

#[test]
fn a_derived_feature_last_keeps_every_date_in_its_place() {
    // The scan fills no column for a derived feature: with one last, each
    // date's columns must still be that date's.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, 2000, 5);
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            r#"
[model]
name = "derived-last"
title = "Derived last"
source = "test"

{AE_COUNTS}
[cohorts.frequent]
title = "Frequent"
description = "Two or more earlier attendances"
when = "older_visits >= 2"
rank = ["older_visits desc"]
"#
        ),
    )
    .unwrap();
    let model = strata::rules::load_all(&[rules], &[]).unwrap();
    let dates = [date("2025-01-31"), date("2025-06-30")];
    let both = by_dates(&model, &data, &dates, &[], usize::MAX, None);
    for (k, as_of) in dates.iter().enumerate() {
        let single = engine::run(&model, &data, Some(*as_of), &Terminal::new(true)).unwrap();
        for (s, (a, b)) in both[k].results.slots.iter().zip(&single.slots).enumerate() {
            assert!(same(a, b), "{as_of}: slot {s}");
        }
        assert_eq!(both[k].results.cohorts[0].flags, single.cohorts[0].flags);
    }
}

#[test]
fn what_the_cohorts_and_wanted_features_need_is_all_that_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            r#"
[model]
name = "needs"
title = "Needs"
source = "test"

[params]
floor = 2
places = 0

{AE_COUNTS}
[features.last_ae]
description = "Last attendance (a reason only)"
source = "ae"
aggregate = "last_date"
window = "365 days"

[features.first_ae]
description = "First attendance (ranks the cohort)"
source = "ae"
aggregate = "first_date"
window = "365 days"

[features.ae_ever]
description = "Attended in 5 years (read as a score only)"
source = "ae"
aggregate = "count"
window = "1825 days"

[features.label]
description = "Words for the list (a reason only)"
expr = "case when older_visits >= floor then 'frequent' end"

[cohorts.frequent]
title = "Frequent"
description = "Two or more earlier attendances"
when = "older_visits >= floor"
rank = ["first_ae", "age desc"]
top_per_pcn = "places"
reasons = ["label", "last_ae"]
"#
        ),
    )
    .unwrap();
    let model = strata::rules::load_all(std::slice::from_ref(&rules), &[]).unwrap();
    let needed = |model: &strata::rules::Model, wanted: &[&str]| -> Vec<String> {
        let wanted: Vec<String> = wanted.iter().map(|w| w.to_string()).collect();
        model
            .features_needed(&wanted)
            .iter()
            .zip(&model.features)
            .filter(|(n, _)| **n)
            .map(|(_, f)| f.name.clone())
            .collect()
    };
    // The condition through a derived feature; not the ranking (nothing
    // reads the order of a cohort with no limit), not the reasons.
    assert_eq!(needed(&model, &[]), ["ae_90d", "ae_365d", "older_visits"]);
    assert_eq!(
        needed(&model, &["ae_ever", "label"]),
        ["ae_90d", "ae_365d", "older_visits", "ae_ever", "label"]
    );
    // Each PCN's first two by rank: the ranking chooses who is in.
    let places = [("places".to_string(), "2".to_string())];
    let limited = strata::rules::load_all(&[rules], &places).unwrap();
    assert_eq!(
        needed(&limited, &[]),
        ["ae_90d", "ae_365d", "older_visits", "first_ae"]
    );
}

/// A `case` branch that a constant condition never takes reads nothing:
/// with `recent = false` the cohort reads a year's attendances only, with
/// `recent = true` 90 days' only, and `not recent` turns it round; a
/// condition on the data reads both. What is read is what a run of its
/// own gives.
#[test]
fn a_case_branch_a_constant_never_takes_needs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, 2000, 5);
    let rules = dir.path().join("rules.toml");
    let write = |when: &str| {
        std::fs::write(
            &rules,
            format!(
                r#"
[model]
name = "constant-branches"
title = "Constant branches"
source = "test"

[params]
recent = false

{AE_COUNTS}
[features.attendances]
description = "Attendances in the window the parameter chooses"
expr = "case when {when} then ae_90d else ae_365d end"

[cohorts.frequent]
title = "Frequent"
description = "Two or more attendances"
when = "attendances >= 2"
"#
            ),
        )
        .unwrap();
    };
    let needed = |set: &[(&str, &str)]| -> Vec<String> {
        let set: Vec<(String, String)> = set
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let model = strata::rules::load_all(std::slice::from_ref(&rules), &set).unwrap();
        model
            .features_needed(&[])
            .iter()
            .zip(&model.features)
            .filter(|(n, _)| **n)
            .map(|(_, f)| f.name.clone())
            .collect()
    };
    write("recent");
    assert_eq!(needed(&[]), ["ae_365d", "attendances"]);
    assert_eq!(needed(&[("recent", "true")]), ["ae_90d", "attendances"]);
    write("not recent");
    assert_eq!(needed(&[]), ["ae_90d", "attendances"]);
    write("older_visits > 0");
    assert_eq!(
        needed(&[]),
        ["ae_90d", "ae_365d", "older_visits", "attendances"]
    );

    write("recent");
    let model = strata::rules::load_all(std::slice::from_ref(&rules), &[]).unwrap();
    let dates = [date("2025-01-31"), date("2025-06-30")];
    let attendances_read = ["attendances".to_string()];
    let read = by_dates(
        &model,
        &data,
        &dates,
        &[],
        usize::MAX,
        Some(&attendances_read),
    );
    let attendances = model.feature_index("attendances").unwrap();
    for (k, as_of) in dates.iter().enumerate() {
        let single = engine::run(&model, &data, Some(*as_of), &Terminal::new(true)).unwrap();
        let (a, b) = (
            read[k].results.feature(attendances),
            single.feature(attendances),
        );
        assert!(same(a, b), "{as_of}: the attendances read");
        assert_eq!(read[k].results.cohorts[0].flags, single.cohorts[0].flags);
        assert!(
            single.cohorts[0].members.len() > 10,
            "{as_of}: the cohort has members"
        );
    }
}

/// Features alike on one date but not another (a year as `12 months` and
/// as `365 days` keep different days as of 2024-03-31, 2024 having a 29
/// February, and the same as of 2025-03-31) are shared by a scan only
/// where they agree on every date it serves: each date's values are a run
/// of its own.
#[test]
fn features_alike_on_one_date_only_are_not_shared_across_dates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, 5000, 5);
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[model]
name = "years"
title = "A year two ways"
source = "test"

[sources.ae]
table = "ae_attendances"
date = "arrival_date"

[features.ae_365_days]
source = "ae"
aggregate = "count"
window = "365 days"

[features.ae_12_months]
source = "ae"
aggregate = "count"
window = "12 months"

[cohorts.attended]
title = "Attended"
description = "An attendance in 12 months"
when = "ae_12_months > 0"
"#,
    )
    .unwrap();
    let model = strata::rules::load_all(std::slice::from_ref(&rules), &[]).unwrap();
    let (days, months) = (
        model.feature_index("ae_365_days").unwrap(),
        model.feature_index("ae_12_months").unwrap(),
    );
    let dates = [date("2025-03-31"), date("2024-03-31")];
    let both = by_dates(&model, &data, &dates, &[], usize::MAX, None);
    for (k, as_of) in dates.iter().enumerate() {
        let single = engine::run(&model, &data, Some(*as_of), &Terminal::new(true)).unwrap();
        for f in [days, months] {
            assert!(
                same(both[k].results.feature(f), single.feature(f)),
                "{as_of}: feature {f}"
            );
        }
        // The two differ as of 2024-03-31 (attendances on 2023-04-01).
        let differ = !same(single.feature(days), single.feature(months));
        assert_eq!(differ, k == 1, "{as_of}: the years differ");
    }
}
