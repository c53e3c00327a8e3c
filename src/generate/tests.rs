//! Tests of the generator as its users see it: generate a population, read
//! the Parquet back, and check what a model run relies on (schema, order,
//! referential integrity, no activity outside life) and that the numbers look
//! like a population's. One 20,000-person sample is shared by the read-only
//! tests to keep the suite fast.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Field};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::population::Condition;
use super::vocabulary::Vocabulary;
use super::*;

const END: &str = "2026-03-31";

fn options(patients: usize, seed: u64, out: &Path) -> GenerateOptions {
    GenerateOptions {
        patients,
        seed,
        out: out.to_path_buf(),
        end_date: END.parse().expect("valid date"),
    }
}

/// The table's files: `NAME.parquet`, or the parts of `NAME/` in name order.
fn table_files(out: &Path, name: &str) -> Vec<PathBuf> {
    let file = out.join(format!("{name}.parquet"));
    if file.exists() {
        return vec![file];
    }
    let mut parts: Vec<PathBuf> = std::fs::read_dir(out.join(name))
        .expect("table is a file or a folder")
        .map(|e| e.expect("readable entry").path())
        .collect();
    parts.sort();
    parts
}

fn read_file(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).expect("open parquet");
    ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet metadata")
        .build()
        .expect("reader")
        .collect::<Result<_, _>>()
        .expect("batches")
}

fn read_table(out: &Path, name: &str) -> Vec<RecordBatch> {
    table_files(out, name)
        .iter()
        .flat_map(|p| read_file(p))
        .collect()
}

/// Every file under `out`, by relative path, with its bytes.
fn all_files(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut folders = vec![out.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let name = path
                    .strip_prefix(out)
                    .expect("under out")
                    .display()
                    .to_string();
                files.insert(name, std::fs::read(&path).expect("read"));
            }
        }
    }
    files
}

fn dates(batch: &RecordBatch, column: usize) -> Vec<i32> {
    batch
        .column(column)
        .as_primitive::<Date32Type>()
        .values()
        .to_vec()
}

fn person_ids(batch: &RecordBatch) -> Vec<i64> {
    batch
        .column(0)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

/// (person, date) of every row of an event table.
fn events(out: &Path, name: &str) -> Vec<(i64, i32)> {
    read_table(out, name)
        .iter()
        .flat_map(|b| person_ids(b).into_iter().zip(dates(b, 1)))
        .collect()
}

/// (person, date, code) of every row of a dictionary-coded event table.
fn coded_events(out: &Path, name: &str) -> Vec<(i64, i32, String)> {
    let mut rows = Vec::new();
    for b in read_table(out, name) {
        let codes = b.column(2).as_dictionary::<Int32Type>();
        let values = codes.values().as_string::<i32>();
        for ((id, date), key) in person_ids(&b)
            .into_iter()
            .zip(dates(&b, 1))
            .zip(codes.keys().values())
        {
            rows.push((id, date, values.value(*key as usize).to_string()));
        }
    }
    rows
}

struct PatientRow {
    birth: i32,
    death: Option<i32>,
    care_home: bool,
    imd_decile: i8,
}

struct Sample {
    _dir: tempfile::TempDir,
    out: PathBuf,
    window: Window,
    patients: HashMap<i64, PatientRow>,
}

impl Sample {
    fn age(&self, id: i64) -> f64 {
        f64::from(self.window.end() - self.patients[&id].birth) / 365.25
    }

    fn share(&self, people: &HashSet<i64>) -> f64 {
        people.len() as f64 / self.patients.len() as f64
    }
}

const SAMPLE_PATIENTS: usize = 20_000;

fn sample() -> &'static Sample {
    static SAMPLE: OnceLock<Sample> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out");
        generate(&options(SAMPLE_PATIENTS, 42, &out)).expect("generate sample");
        let mut patients = HashMap::new();
        for b in read_table(&out, "patients") {
            let births = b.column(1).as_primitive::<Date32Type>();
            let imd = b.column(6).as_primitive::<arrow_array::types::Int8Type>();
            let care = b.column(7).as_boolean();
            let deaths = b.column(8).as_primitive::<Date32Type>();
            for (i, id) in person_ids(&b).into_iter().enumerate() {
                let row = PatientRow {
                    birth: births.value(i),
                    death: deaths.is_valid(i).then(|| deaths.value(i)),
                    care_home: care.value(i),
                    imd_decile: imd.value(i),
                };
                assert!(
                    patients.insert(id, row).is_none(),
                    "person_id {id} repeated"
                );
            }
        }
        let window = Window::ending(END.parse().expect("date")).expect("window");
        Sample {
            _dir: dir,
            out,
            window,
            patients,
        }
    })
}

#[test]
fn same_seed_gives_identical_files_whatever_the_thread_count() {
    // Small parts so that the split-table path runs too.
    let layout = Layout {
        row_group_rows: 50_000,
        split_above_rows: 100_000,
        part_rows: 60_000,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |threads: usize, name: &str| {
        let out = dir.path().join(name);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        // Three chunks, so chunks really are spread over threads.
        pool.install(|| generate_with_layout(&options(9_000, 5, &out), &layout))
            .expect("generate");
        out
    };
    let one = all_files(&run(1, "one"));
    let three = all_files(&run(3, "three"));
    assert_eq!(
        one.keys().collect::<Vec<_>>(),
        three.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &one {
        assert!(
            bytes == &three[name],
            "{name} differs between thread counts"
        );
    }

    // The split table: parts cover contiguous, non-overlapping date ranges.
    let parts = table_files(&dir.path().join("one"), "gp_events");
    assert!(parts.len() >= 2, "gp_events should have been split");
    let ranges: Vec<(i32, i32)> = parts
        .iter()
        .map(|p| {
            let d: Vec<i32> = read_file(p).iter().flat_map(|b| dates(b, 1)).collect();
            (d[0], d[d.len() - 1])
        })
        .collect();
    for pair in ranges.windows(2) {
        assert!(
            pair[0].1 < pair[1].0,
            "part date ranges overlap: {ranges:?}"
        );
    }
}

#[test]
fn different_seeds_give_different_populations() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    generate(&options(300, 1, &a)).expect("generate");
    generate(&options(300, 2, &b)).expect("generate");
    let read = |p: &Path| std::fs::read(p.join("patients.parquet")).expect("read");
    assert_ne!(read(&a), read(&b));
}

#[test]
fn schemas_match_the_data_contract() {
    let s = sample();
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    let expected: [(&str, Vec<(&str, DataType)>); 7] = [
        (
            "patients",
            vec![
                ("person_id", DataType::Int64),
                ("birth_date", DataType::Date32),
                ("sex", DataType::Utf8),
                ("practice_code", DataType::Utf8),
                ("pcn_code", DataType::Utf8),
                ("lsoa_code", DataType::Utf8),
                ("imd_decile", DataType::Int8),
                ("care_home", DataType::Boolean),
                ("date_of_death", DataType::Date32),
                ("type1_opt_out", DataType::Boolean),
                ("national_data_opt_out", DataType::Boolean),
            ],
        ),
        (
            "pcns",
            vec![("pcn_code", DataType::Utf8), ("pcn_name", DataType::Utf8)],
        ),
        (
            "ae_attendances",
            vec![
                ("person_id", DataType::Int64),
                ("arrival_date", DataType::Date32),
            ],
        ),
        (
            "admissions",
            vec![
                ("person_id", DataType::Int64),
                ("admission_date", DataType::Date32),
                ("discharge_date", DataType::Date32),
                ("admission_method", DataType::Utf8),
                ("diagnoses", list),
            ],
        ),
        (
            "gp_events",
            vec![
                ("person_id", DataType::Int64),
                ("event_date", DataType::Date32),
                ("snomed_code", dictionary.clone()),
            ],
        ),
        (
            "medications",
            vec![
                ("person_id", DataType::Int64),
                ("issue_date", DataType::Date32),
                ("dmd_code", dictionary),
            ],
        ),
        (
            "registrations",
            vec![
                ("person_id", DataType::Int64),
                ("practice_code", DataType::Utf8),
                ("start_date", DataType::Date32),
                ("end_date", DataType::Date32),
            ],
        ),
    ];
    for (table, columns) in expected {
        let batches = read_table(&s.out, table);
        let schema = batches[0].schema();
        let found: Vec<(&str, DataType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().clone()))
            .collect();
        assert_eq!(found, columns, "schema of {table}");
    }
    let pcns = &read_table(&s.out, "pcns")[0];
    let names = pcns.column(1).as_string::<i32>();
    assert_eq!(pcns.num_rows(), 7);
    assert!(names.iter().flatten().any(|n| n == "Woolston & Chartwell"));
}

#[test]
fn registrations_follow_each_life_and_end_at_the_patients_practice() {
    let s = sample();
    let patients = &read_table(&s.out, "patients");
    let mut practice_of: HashMap<i64, String> = HashMap::new();
    for b in patients {
        let practices = b.column(3).as_string::<i32>();
        for (i, id) in person_ids(b).into_iter().enumerate() {
            practice_of.insert(id, practices.value(i).to_string());
        }
    }
    // (start, end, practice) per person, in file order.
    let mut of: HashMap<i64, Vec<(i32, Option<i32>, String)>> = HashMap::new();
    for b in read_table(&s.out, "registrations") {
        let practices = b.column(1).as_string::<i32>();
        let starts = b.column(2).as_primitive::<Date32Type>();
        let ends = b.column(3).as_primitive::<Date32Type>();
        for (i, id) in person_ids(&b).into_iter().enumerate() {
            of.entry(id).or_default().push((
                starts.value(i),
                ends.is_valid(i).then(|| ends.value(i)),
                practices.value(i).to_string(),
            ));
        }
    }
    assert_eq!(of.len(), s.patients.len(), "everyone has a registration");
    let (mut joined, mut moved, mut left) = (0, 0, 0);
    for (id, rows) in &of {
        let p = &s.patients[id];
        let last = rows.last().unwrap();
        assert_eq!(
            last.2, practice_of[id],
            "{id} ends at the patients table's practice"
        );
        assert!(rows[0].0 >= p.birth, "{id} registered before birth");
        for pair in rows.windows(2) {
            assert_eq!(
                pair[0].1,
                Some(pair[1].0 - 1),
                "{id}: a move leaves no gap or overlap"
            );
            assert_ne!(pair[0].2, pair[1].2, "{id} moved to the same practice");
        }
        for (start, end, _) in rows {
            assert!(
                end.is_none_or(|e| e >= *start),
                "{id} ends before it starts"
            );
        }
        match p.death {
            Some(d) => assert_eq!(last.1, Some(d), "{id} deregistered on death"),
            None => left += usize::from(last.1.is_some()),
        }
        joined += usize::from(rows[0].0 > s.window.start && rows[0].0 != p.birth);
        moved += usize::from(rows.len() > 1);
    }
    // Over three years: about 9% join, 6% move, 6% leave (of the living).
    let share = |n: usize| n as f64 / of.len() as f64;
    assert!(
        (0.06..0.12).contains(&share(joined)),
        "joined {}",
        share(joined)
    );
    assert!(
        (0.04..0.08).contains(&share(moved)),
        "moved {}",
        share(moved)
    );
    assert!((0.04..0.08).contains(&share(left)), "left {}", share(left));
}

#[test]
fn event_tables_are_in_date_order_within_the_window() {
    let s = sample();
    for table in ["ae_attendances", "admissions", "gp_events", "medications"] {
        let rows = events(&s.out, table);
        assert!(!rows.is_empty(), "{table} is empty");
        assert!(
            rows.windows(2).all(|w| w[0].1 <= w[1].1),
            "{table} is not in date order"
        );
        let (first, last) = (rows[0].1, rows[rows.len() - 1].1);
        assert!(
            first >= s.window.start && last <= s.window.end(),
            "{table} outside the window"
        );
    }
}

#[test]
fn activity_belongs_to_known_persons_and_falls_within_their_lives() {
    let s = sample();
    for table in ["ae_attendances", "admissions", "gp_events", "medications"] {
        for (id, date) in events(&s.out, table) {
            let p = s
                .patients
                .get(&id)
                .unwrap_or_else(|| panic!("{table}: unknown person {id}"));
            assert!(date >= p.birth, "{table}: event before birth");
            assert!(
                p.death.is_none_or(|d| date <= d),
                "{table}: event after death"
            );
        }
    }
    for b in read_table(&s.out, "admissions") {
        let admitted = dates(&b, 1);
        let discharged = b.column(2).as_primitive::<Date32Type>();
        for (i, id) in person_ids(&b).into_iter().enumerate() {
            let death = s.patients[&id].death;
            if discharged.is_valid(i) {
                assert!(
                    discharged.value(i) >= admitted[i],
                    "discharged before admission"
                );
                assert!(
                    death.is_none_or(|d| discharged.value(i) <= d),
                    "discharged after death"
                );
            } else {
                // Only those still in hospital on the last day have no discharge.
                assert!(death.is_none(), "a person who died has an open admission");
            }
        }
    }
}

#[test]
fn diagnoses_are_clean_icd10_codes_primary_first() {
    let s = sample();
    for b in read_table(&s.out, "admissions") {
        let methods = b.column(3).as_string::<i32>();
        assert!(
            methods
                .iter()
                .flatten()
                .all(|m| m == "elective" || m == "emergency")
        );
        let lists = b.column(4).as_list::<i32>();
        for i in 0..b.num_rows() {
            let codes = lists.value(i);
            let codes: Vec<&str> = codes
                .as_string::<i32>()
                .iter()
                .map(|c| c.expect("no null codes"))
                .collect();
            assert!((1..=10).contains(&codes.len()), "{} diagnoses", codes.len());
            assert_eq!(
                codes.iter().collect::<HashSet<_>>().len(),
                codes.len(),
                "repeated code in {codes:?}"
            );
            for code in codes {
                let b = code.as_bytes();
                let clean = (code.len() == 3 || code.len() == 4)
                    && b[0].is_ascii_uppercase()
                    && b[1..].iter().all(u8::is_ascii_digit);
                assert!(clean, "diagnosis {code:?} is not a clean ICD-10 code");
            }
        }
    }
}

#[test]
fn rates_look_like_a_population() {
    let s = sample();
    let n = s.patients.len() as f64;
    let years = f64::from(s.window.days) / 365.25;
    let last_year_start = s.window.end() - 364;

    let ae = events(&s.out, "ae_attendances");
    let ae_rate = ae.len() as f64 / n / years;
    assert!(
        (0.3..0.5).contains(&ae_rate),
        "A&E per person-year {ae_rate}"
    );
    let mut last_year: HashMap<i64, u32> = HashMap::new();
    for (id, date) in &ae {
        if *date >= last_year_start {
            *last_year.entry(*id).or_default() += 1;
        }
    }
    let frequent: HashSet<i64> = last_year
        .iter()
        .filter(|(_, c)| **c >= 5)
        .map(|(id, _)| *id)
        .collect();
    let frequent_share = s.share(&frequent);
    assert!(
        (0.003..0.015).contains(&frequent_share),
        "share with 5+ A&E in a year {frequent_share}"
    );

    let admissions = read_table(&s.out, "admissions");
    let total: usize = admissions.iter().map(RecordBatch::num_rows).sum();
    let emergency: usize = admissions
        .iter()
        .map(|b| {
            b.column(3)
                .as_string::<i32>()
                .iter()
                .filter(|m| *m == Some("emergency"))
                .count()
        })
        .sum();
    let admission_rate = total as f64 / n / years;
    assert!(
        (0.12..0.3).contains(&admission_rate),
        "admissions per person-year {admission_rate}"
    );
    let emergency_share = emergency as f64 / total as f64;
    assert!(
        (0.3..0.55).contains(&emergency_share),
        "emergency share {emergency_share}"
    );

    let deaths = s.patients.values().filter(|p| p.death.is_some()).count() as f64 / n / years;
    assert!((0.005..0.014).contains(&deaths), "deaths per year {deaths}");
    let care_home = s.patients.values().filter(|p| p.care_home).count() as f64 / n;
    assert!(
        (0.0025..0.01).contains(&care_home),
        "care home share {care_home}"
    );

    let gp_per_person = events(&s.out, "gp_events").len() as f64 / n;
    assert!(
        (20.0..40.0).contains(&gp_per_person),
        "GP events per person {gp_per_person}"
    );
    let issues = events(&s.out, "medications").len() as f64 / n / years;
    assert!(
        (3.0..9.0).contains(&issues),
        "prescriptions per person-year {issues}"
    );
}

#[test]
fn risk_is_correlated_as_in_life() {
    let s = sample();
    // A&E use is concentrated in the most deprived areas.
    let mut by_quintile = [(0usize, 0usize); 2];
    for p in s.patients.values() {
        match p.imd_decile {
            1 | 2 => by_quintile[0].1 += 1,
            9 | 10 => by_quintile[1].1 += 1,
            _ => {}
        }
    }
    for (id, _) in events(&s.out, "ae_attendances") {
        match s.patients[&id].imd_decile {
            1 | 2 => by_quintile[0].0 += 1,
            9 | 10 => by_quintile[1].0 += 1,
            _ => {}
        }
    }
    let rate = |(events, people): (usize, usize)| events as f64 / people.max(1) as f64;
    assert!(
        rate(by_quintile[0]) > 1.5 * rate(by_quintile[1]),
        "A&E by deprivation {by_quintile:?}"
    );

    // Frailty-related diagnoses rise with age.
    let v = Vocabulary::load();
    let hfrs: HashSet<&str> = v
        .hfrs
        .iter()
        .map(|&i| v.icd10[usize::from(i)].as_str())
        .collect();
    let mut shares = [(0usize, 0usize); 2];
    for b in read_table(&s.out, "admissions") {
        let lists = b.column(4).as_list::<i32>();
        for (i, id) in person_ids(&b).into_iter().enumerate() {
            let group = if s.age(id) >= 80.0 {
                0
            } else if s.age(id) < 50.0 {
                1
            } else {
                continue;
            };
            for code in lists.value(i).as_string::<i32>().iter().flatten() {
                shares[group].1 += 1;
                shares[group].0 += usize::from(hfrs.contains(code));
            }
        }
    }
    assert!(
        rate(shares[0]) > 3.0 * rate(shares[1]),
        "HFRS code shares {shares:?}"
    );

    // Polypharmacy (5+ distinct medicines in 12 months) is common in the old only.
    let last_year_start = s.window.end() - 364;
    let mut medicines: HashMap<i64, HashSet<String>> = HashMap::new();
    for (id, date, code) in coded_events(&s.out, "medications") {
        if date >= last_year_start {
            medicines.entry(id).or_default().insert(code);
        }
    }
    let alive = |lo: f64, hi: f64| -> Vec<i64> {
        s.patients
            .iter()
            .filter(|(id, p)| p.death.is_none() && (lo..hi).contains(&s.age(**id)))
            .map(|(id, _)| *id)
            .collect()
    };
    let polypharmacy = |ids: Vec<i64>| {
        let n = ids
            .iter()
            .filter(|id| medicines.get(id).is_some_and(|m| m.len() >= 5))
            .count();
        n as f64 / ids.len() as f64
    };
    let old = polypharmacy(alive(75.0, 120.0));
    let young = polypharmacy(alive(18.0, 40.0));
    assert!(
        old > 0.4 && young < 0.05,
        "polypharmacy 75+ {old}, 18-39 {young}"
    );

    // Deaths rise steeply with age.
    let death_rate = |lo: f64, hi: f64| {
        let ids: Vec<_> = s
            .patients
            .keys()
            .filter(|id| (lo..hi).contains(&s.age(**id)))
            .collect();
        ids.iter()
            .filter(|id| s.patients[id].death.is_some())
            .count() as f64
            / ids.len() as f64
    };
    assert!(death_rate(85.0, 120.0) > 20.0 * death_rate(0.0, 65.0));
}

#[test]
fn registers_have_plausible_prevalence() {
    let s = sample();
    let v = Vocabulary::load();
    let mut people_with: HashMap<&str, HashSet<i64>> = HashMap::new();
    let mut group_of: HashMap<&str, &str> = HashMap::new();
    let snomed = |i: &u16| v.snomed.value(usize::from(*i));
    for (c, codes) in Condition::ALL.iter().zip(&v.condition_snomed) {
        for code in codes {
            group_of.insert(snomed(code), c.name());
        }
    }
    for code in &v.care_home {
        group_of.insert(snomed(code), "care_home");
    }
    for code in &v.palliative_care {
        group_of.insert(snomed(code), "palliative_care");
    }
    let gp = coded_events(&s.out, "gp_events");
    let tail_start = usize::from(v.snomed_tail_start);
    let tail: HashSet<&str> = (tail_start..v.snomed.len())
        .map(|i| v.snomed.value(i))
        .collect();
    let routine = gp
        .iter()
        .filter(|(_, _, code)| tail.contains(code.as_str()))
        .count();
    assert!(
        routine as f64 > 0.8 * gp.len() as f64,
        "most GP events should match no rule"
    );
    for (id, _, code) in &gp {
        if let Some(group) = group_of.get(code.as_str()) {
            people_with.entry(group).or_default().insert(*id);
        }
    }
    let expected = [
        ("hypertension", 0.06, 0.16),
        ("diabetes", 0.03, 0.09),
        ("heart_failure", 0.005, 0.02),
        ("copd", 0.01, 0.03),
        ("asthma", 0.04, 0.09),
        ("dementia", 0.003, 0.015),
        ("cancer", 0.01, 0.04),
        ("learning_disability", 0.003, 0.01),
        ("severe_mental_illness", 0.005, 0.015),
        ("persistent_pain", 0.01, 0.06),
        ("palliative_care", 0.005, 0.03),
        ("care_home", 0.002, 0.01),
    ];
    for (group, lo, hi) in expected {
        let share = people_with.get(group).map_or(0.0, |p| s.share(p));
        assert!((lo..hi).contains(&share), "{group}: {share}");
    }
    // Care home codes go to care home residents only.
    for id in &people_with["care_home"] {
        assert!(
            s.patients[id].care_home,
            "care home code for a person not in a care home"
        );
    }
}

#[test]
fn output_folder_is_created_reused_or_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("nested").join("out");
    generate(&options(50, 1, &out)).expect("creates a missing folder");

    // An earlier output, including a stale part folder, is replaced.
    std::fs::create_dir(out.join("gp_events")).expect("mkdir");
    std::fs::write(out.join("gp_events").join("part-00000.parquet"), b"stale").expect("write");
    generate(&options(50, 1, &out)).expect("replaces its own output");
    assert!(
        !out.join("gp_events").exists(),
        "stale parts were left beside the new file"
    );

    std::fs::write(out.join("notes.txt"), b"mine").expect("write");
    let err = generate(&options(50, 1, &out))
        .err()
        .expect("refuses a foreign file");
    assert!(matches!(err, GenerateError::ForeignOutput { .. }), "{err}");
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert!(
        out.join("patients.parquet").exists(),
        "nothing is deleted when refusing"
    );

    let file = dir.path().join("file");
    std::fs::write(&file, b"x").expect("write");
    let err = generate(&options(50, 1, &file))
        .err()
        .expect("refuses a file");
    assert!(matches!(err, GenerateError::NotAFolder { .. }), "{err}");
}
