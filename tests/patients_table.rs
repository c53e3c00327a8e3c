//! `patients.parquet` encoded as the run makes each column
//! (`output::patients::Table`, an `engine::Sink`): the file is the one
//! written from the finished results, byte for byte, and the run lets go
//! of the columns that no other output reads, and only those.

mod util;

use strata::commands::progress::Terminal;
use strata::engine;
use strata::output::patients::Table;
use strata::rules::Purpose;
use util::*;

#[test]
fn handed_over_as_made_the_table_is_the_same_and_unread_columns_are_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, 3000, 5);
    for (name, purpose) in [
        ("core", Purpose::DirectCare),
        // Type 1 and National Data Opt-outs withheld: rows left out.
        ("core", Purpose::SecondaryUse),
        ("segmentation", Purpose::DirectCare),
    ] {
        let path = strata::rules::bundled::model_path(std::path::Path::new(name)).unwrap();
        let mut model = strata::rules::load_all(&[path], &[]).unwrap();
        model.purpose_set = Some(purpose);
        let progress = Terminal::new(true);
        let after = engine::run(&model, &data, None, &progress).unwrap();
        assert!(
            after.released.iter().all(|r| !r),
            "a run with no sink holds all"
        );
        let at_end = dir.path().join("at_end.parquet");
        Table::new(&model).write(&after, &at_end).unwrap();

        let table = Table::new(&model);
        let handed = engine::run_into(&model, &data, None, &progress, &table).unwrap();
        let as_made = dir.path().join("as_made.parquet");
        table.write(&handed, &as_made).unwrap();
        assert_eq!(
            std::fs::read(&at_end).unwrap(),
            std::fs::read(&as_made).unwrap(),
            "{name}, {purpose:?}"
        );

        // What the lists, reasons, report and counts read is held, and
        // the same as a run that held everything; the rest is let go.
        let read = strata::output::features_read(&model);
        let mut let_go = 0;
        for (i, feature) in model.features.iter().enumerate() {
            if read[i] {
                assert!(!handed.released[i], "{} is read by an output", feature.name);
                assert_eq!(handed.feature(i).to_data(), after.feature(i).to_data());
            }
            let_go += usize::from(handed.released[i]);
        }
        assert!(
            let_go > model.features.len() / 2,
            "{name}: most columns are read only by patients.parquet ({let_go} of {} let go)",
            model.features.len()
        );
        // A cohort reads what it reads before anything is let go.
        for (a, b) in handed.cohorts.iter().zip(&after.cohorts) {
            assert_eq!(a.flags, b.flags);
            assert_eq!(a.rank, b.rank);
        }
    }
}

#[test]
#[should_panic(expected = "was let go once nothing more read it")]
fn reading_a_column_that_was_let_go_is_a_bug_told_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate(&data, 300, 5);
    let path = strata::rules::bundled::model_path(std::path::Path::new("core")).unwrap();
    let model = strata::rules::load_all(&[path], &[]).unwrap();
    let table = Table::new(&model);
    let results = engine::run_into(&model, &data, None, &Terminal::new(true), &table).unwrap();
    let gone = results
        .released
        .iter()
        .position(|r| *r)
        .expect("one let go");
    let _ = results.feature(gone);
}
