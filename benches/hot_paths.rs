//! criterion benchmarks of the hot paths, on the bundled sample data, so a
//! regression shows up as a number: `cargo bench --bench hot_paths`.
//!
//! - `scan`: the whole engine (population, parallel scan with code-list
//!   matching, per-person aggregation, expressions, cohorts) for the eFI and
//!   HFRS models;
//! - `person_lookup`: resolving a batch of event person ids to rows, at
//!   1M and 5M persons, in each of the person index's two layouts;
//! - `aggregate_bits`: setting per-person distinct-code bits;
//! - `distinct_medicines`: counting distinct codes without a code list
//!   (the eFI's medicines in 12 months) as of one date, with as many
//!   issues as at 1M persons;
//! - `expression`: evaluating a derived feature over every person;
//! - `write_outputs`: patients.parquet, the PCN lists and workbooks, the
//!   report.

use std::hint::black_box;
use std::path::Path;

use arrow_array::Int64Array;
use criterion::{Criterion, criterion_group, criterion_main};
use strata::engine::aggregate::{State, bit_masks};
use strata::input::population::SortedIds;
use strata::rules::Aggregate;

struct Quiet;
impl strata::engine::Progress for Quiet {
    fn scan_bar(&self, _rows: u64) -> Option<indicatif::ProgressBar> {
        None
    }
    fn stage(&self, _label: &str) -> Option<indicatif::ProgressBar> {
        None
    }
}

fn model(files: &[&str]) -> strata::rules::Model {
    let paths: Vec<_> = files.iter().map(|f| Path::new(f).to_path_buf()).collect();
    strata::rules::load_all(&paths, &[]).expect("bundled models load")
}

fn scan(c: &mut Criterion) {
    let model = model(&["models/efi.toml", "models/hfrs.toml"]);
    let mut group = c.benchmark_group("scan");
    group.sample_size(10);
    group.bench_function("efi+hfrs on sample-data", |b| {
        b.iter(|| strata::engine::run(&model, Path::new("sample-data"), None, &Quiet).unwrap())
    });
    group.finish();
}

fn person_lookup(c: &mut Criterion) {
    // Sorted ids spread like hashed pseudonyms, looked up in a random
    // order (the generated events are in date order) 64k at a time: 1M
    // persons, and 5M, where the index no longer fits the cache, in both
    // of the index's layouts.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let rows: Vec<u32> = (0..65_536).collect();
    let mut group = c.benchmark_group("person_lookup");
    for persons in [1_000_000, 5_000_000] {
        let mut ids: Vec<i64> = (0..persons).map(|_| (next() >> 1) as i64).collect();
        ids.sort_unstable();
        ids.dedup();
        let events = Int64Array::from_iter_values(
            (0..65_536).map(|_| ids[(next() % ids.len() as u64) as usize]),
        );
        let layouts = [
            ("lines", SortedIds::new(ids.clone())),
            ("buckets", SortedIds::in_buckets(ids)),
        ];
        assert!(layouts[0].1.in_lines() && !layouts[1].1.in_lines());
        for (layout, index) in layouts {
            group.bench_function(format!("64k of {persons}, {layout}"), |b| {
                b.iter(|| black_box(index.resolve(&events, &rows)))
            });
        }
    }
    group.finish();
}

fn aggregate_bits(c: &mut Criterion) {
    let items: Vec<Vec<u32>> = (0..100).map(|i| vec![i % 35]).collect();
    let masks = bit_masks(Aggregate::CountDistinctCategories, &items).unwrap();
    let state = State::new(
        Aggregate::CountDistinctCategories,
        None,
        true,
        Some(masks),
        1_000_000,
        1,
    );
    c.bench_function("aggregate_bits 64k matches", |b| {
        b.iter(|| {
            for i in 0..65_536u32 {
                state.set_bits(i.wrapping_mul(2_654_435_761) % 1_000_000, i % 100);
            }
        })
    });
}

fn distinct_medicines(c: &mut Criterion) {
    // 6.6M issues among 1M persons, of 2,000 medicines (the generated
    // data's year of prescriptions at 1M), handed over by 8 tasks.
    const PERSONS: usize = 1_000_000;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let tasks: Vec<Vec<(u32, u32)>> = (0..8)
        .map(|_| {
            (0..825_000)
                .map(|_| {
                    let r = next();
                    let person = (r % PERSONS as u64) as u32;
                    (person, ((r >> 40) % 2_000 + 1) as u32)
                })
                .collect()
        })
        .collect();
    let mut group = c.benchmark_group("distinct_medicines");
    group.sample_size(10);
    group.bench_function("6.6M issues, 1M persons", |b| {
        // As the scan does with one as-of date: each issue added to its
        // person's set, or noted where the set is full (the sets' 32 MB
        // made and zeroed in the time, as in a run).
        b.iter(|| {
            let state = State::new(Aggregate::CountDistinctCodes, None, false, None, PERSONS, 1);
            for task in &tasks {
                let noted: Vec<(u32, u32, u16, u16)> = task
                    .iter()
                    .filter(|&&(person, code)| !state.add_code(person, code, 1))
                    .map(|&(person, code)| (person, code, 0, 1))
                    .collect();
                state.merge_distinct_values(noted);
            }
            black_box(state.finish(Aggregate::CountDistinctCodes, &[], (&[], &[]), PERSONS))
        })
    });
    group.finish();
}

fn expression(c: &mut Criterion) {
    let model = model(&["models/efi.toml"]);
    let results = strata::engine::run(&model, Path::new("sample-data"), None, &Quiet).unwrap();
    let feature = model.features.iter().find(|f| f.name == "efi").unwrap();
    let strata::rules::FeatureKind::Derived(located) = &feature.kind else {
        panic!("efi is an expression");
    };
    let typed = results.plan.person_expression(located).unwrap();
    let persons = results.alive.len();
    c.bench_function("expression efi over sample-data", |b| {
        b.iter(|| strata::engine::eval::evaluate_parallel(&typed, &results.slots, persons).unwrap())
    });
}

fn write_outputs(c: &mut Criterion) {
    let model = model(&["models/core.toml"]);
    let results = strata::engine::run(&model, Path::new("sample-data"), None, &Quiet).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("write_outputs");
    group.sample_size(10);
    group.bench_function("core on sample-data", |b| {
        b.iter(|| {
            let info = strata::output::RunInfo {
                data: Path::new("sample-data"),
                threads: 2,
                pcn_names: Default::default(),
                pcns: None,
                suppression: Default::default(),
                run_date: chrono::NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
                previous: None,
                progress: &Quiet,
            };
            // Every column encoded here, as `strata publish` does.
            let patients = strata::output::patients::Table::new(&model);
            strata::output::write(&results, &dir.path().join("out"), &info, patients).unwrap()
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    scan,
    person_lookup,
    aggregate_bits,
    distinct_medicines,
    expression,
    write_outputs
);
criterion_main!(benches);
