//! A deliberately simple reference evaluator, compared with the engine on
//! random populations, events, code lists and rule files: row by row, no
//! parallelism, no dictionaries, no bitsets, no prefetching. Every
//! aggregate kind, with and without a code list, a category of it and a
//! `where` filter; a derived feature; a cohort whose condition mixes
//! integers, booleans, dates and nulls (SQL's three-valued logic), ranked,
//! with and without a top N. The engine's fast paths must never disagree
//! with it.
//!
//! A third party joins when `STRATA_DUCKDB_PYTHON` names a Python with
//! DuckDB (CI sets it to the pinned one of benches/checks.sh): the same
//! rule file compiled to SQL (`strata compile --target duckdb`) must give
//! the engine's per-person table, every column of every person.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Date32Array, Int64Array};
use chrono::{Months, NaiveDate};
use proptest::prelude::*;
use util::*;

const AS_OF: &str = "2025-03-31";
const CODES: [&str; 8] = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8"];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy)]
enum Window {
    Ever,
    Days(u32),
    Months(u32),
}

impl Window {
    fn text(self) -> String {
        match self {
            Window::Ever => "ever".into(),
            Window::Days(n) => format!("{n} days"),
            Window::Months(n) => format!("{n} months"),
        }
    }
    /// Keeps `date`? (`date` on or before the as-of date is checked apart.)
    fn keeps(self, date: NaiveDate, as_of: NaiveDate) -> bool {
        match self {
            Window::Ever => true,
            Window::Days(n) => date > as_of - chrono::Days::new(u64::from(n)),
            Window::Months(n) => date > as_of.checked_sub_months(Months::new(n)).unwrap(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Count,
    Exists,
    DistinctCodes,
    DistinctCategories,
    SumWeights,
    FirstDate,
    LastDate,
    MaxInAMonth,
    MaxIn30Days,
}

struct Feature {
    kind: Kind,
    listed: bool,
    /// Only the code list's entries in `cat_a` (with `listed`).
    category_a: bool,
    /// `where = "kind = 'a'"` (Some(true)), `"kind <> 'a'"` (Some(false)).
    filter: Option<bool>,
    window: Window,
}

/// A cohort condition, written as the rule file has it and evaluated by
/// the reference in SQL's three-valued logic (None = null).
#[derive(Debug, Clone)]
enum Cond {
    IntAtLeast(usize, i64),
    AgeAtLeast(i64),
    IsTrue(usize),
    DateIsNull(usize),
    DateAfter(usize, NaiveDate),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
}

impl Cond {
    fn text(&self) -> String {
        match self {
            Cond::IntAtLeast(f, k) => format!("f{f} >= {k}"),
            Cond::AgeAtLeast(a) => format!("age >= {a}"),
            Cond::IsTrue(f) => format!("f{f}"),
            Cond::DateIsNull(f) => format!("f{f} is null"),
            Cond::DateAfter(f, d) => format!("f{f} > date '{d}'"),
            Cond::And(a, b) => format!("({} and {})", a.text(), b.text()),
            Cond::Or(a, b) => format!("({} or {})", a.text(), b.text()),
            Cond::Not(a) => format!("not ({})", a.text()),
        }
    }

    /// `values[f]` is feature f's reference value for the person, as text.
    fn eval(&self, values: &[String], age: i64) -> Option<bool> {
        match self {
            Cond::IntAtLeast(f, k) => Some(values[*f].parse::<i64>().unwrap() >= *k),
            Cond::AgeAtLeast(a) => Some(age >= *a),
            Cond::IsTrue(f) => Some(values[*f] == "true"),
            Cond::DateIsNull(f) => Some(values[*f] == "null"),
            Cond::DateAfter(f, d) => (values[*f] != "null")
                .then(|| NaiveDate::parse_from_str(&values[*f], "%Y-%m-%d").unwrap() > *d),
            Cond::And(a, b) => match (a.eval(values, age), b.eval(values, age)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Cond::Or(a, b) => match (a.eval(values, age), b.eval(values, age)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Cond::Not(a) => a.eval(values, age).map(|v| !v),
        }
    }
}

/// A random condition over the case's features, `depth` levels deep.
fn condition(r: &mut Rng, features: &[Feature], depth: u32) -> Cond {
    if depth > 0 && r.below(3) != 0 {
        let a = Box::new(condition(r, features, depth - 1));
        let b = Box::new(condition(r, features, depth - 1));
        return match r.below(5) {
            0 | 1 => Cond::And(a, b),
            2 | 3 => Cond::Or(a, b),
            _ => Cond::Not(a),
        };
    }
    let i = r.below(features.len() as u64) as usize;
    match features[i].kind {
        Kind::Count
        | Kind::DistinctCodes
        | Kind::DistinctCategories
        | Kind::MaxInAMonth
        | Kind::MaxIn30Days => Cond::IntAtLeast(i, r.below(4) as i64),
        Kind::Exists => Cond::IsTrue(i),
        Kind::FirstDate | Kind::LastDate => match r.below(2) {
            0 => Cond::DateIsNull(i),
            _ => Cond::DateAfter(i, date(r.below(2000))),
        },
        Kind::SumWeights => Cond::AgeAtLeast(60 + r.below(10) as i64),
    }
}

struct Case {
    /// (id, birth, death)
    people: Vec<(i64, NaiveDate, Option<NaiveDate>)>,
    /// (person id, date, code, kind)
    events: Vec<(i64, Option<NaiveDate>, String, Option<&'static str>)>,
    /// code -> (categories, weight in tenths)
    list: BTreeMap<String, (Vec<&'static str>, i64)>,
    features: Vec<Feature>,
    /// `d = f_i + 2 * f_j` over two integer features, if there are any.
    derived: Option<(usize, usize)>,
    cohort: Cond,
    /// Rank by this integer feature, descending (else by person id).
    rank: Option<usize>,
    top: Option<usize>,
}

fn date(days_from_2020: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + chrono::Days::new(days_from_2020)
}

fn case(seed: u64) -> Case {
    let mut r = Rng(seed | 1);
    let n = 5 + r.below(40) as i64;
    let people = (0..n)
        .map(|i| {
            let death = (r.below(6) == 0).then(|| date(r.below(2200)));
            // Some are born after the as-of date: not in its population.
            let birth = if r.below(8) == 0 {
                date(r.below(2200))
            } else {
                date(r.below(300)) - chrono::Days::new(365 * 60)
            };
            (1000 + i * 7, birth, death)
        })
        .collect();
    let events = (0..r.below(400))
        .map(|_| {
            let person = if r.below(15) == 0 {
                5
            } else {
                1000 + 7 * r.below(n as u64) as i64
            };
            // A few events either side of 1970-01-01, where day numbers
            // turn negative.
            let day = (r.below(25) != 0).then(|| match r.below(12) {
                0 => NaiveDate::from_ymd_opt(1969, 12, 1).unwrap() + chrono::Days::new(r.below(62)),
                _ => date(r.below(2200)),
            });
            let code = if r.below(10) == 0 {
                "Z9".to_string()
            } else {
                CODES[r.below(8) as usize].to_string()
            };
            let kind = match r.below(5) {
                0 => None,
                1 | 2 => Some("a"),
                _ => Some("b"),
            };
            (person, day, code, kind)
        })
        .collect();
    let mut list = BTreeMap::new();
    for code in CODES {
        if r.below(3) != 0 {
            let mut cats = Vec::new();
            if r.below(2) == 0 {
                cats.push("cat_a");
            }
            if r.below(2) == 0 || cats.is_empty() {
                cats.push("cat_b");
            }
            list.insert(code.to_string(), (cats, 1 + r.below(50) as i64));
        }
    }
    if list.is_empty() {
        list.insert("C1".to_string(), (vec!["cat_a"], 5));
    }
    let kinds = [
        Kind::Count,
        Kind::Exists,
        Kind::DistinctCodes,
        Kind::DistinctCategories,
        Kind::SumWeights,
        Kind::FirstDate,
        Kind::LastDate,
        Kind::MaxInAMonth,
        Kind::MaxIn30Days,
    ];
    let has_a = list.values().any(|(cats, _)| cats.contains(&"cat_a"));
    let features = (0..1 + r.below(6))
        .map(|_| {
            let kind = kinds[r.below(kinds.len() as u64) as usize];
            let needs_list = matches!(kind, Kind::DistinctCategories | Kind::SumWeights);
            let window = match r.below(3) {
                0 => Window::Ever,
                1 => Window::Days(1 + r.below(900) as u32),
                _ => Window::Months(1 + r.below(30) as u32),
            };
            let listed = needs_list || r.below(2) == 0;
            Feature {
                kind,
                listed,
                category_a: listed && has_a && r.below(3) == 0,
                filter: match r.below(4) {
                    0 => Some(true),
                    1 => Some(false),
                    _ => None,
                },
                window,
            }
        })
        .collect::<Vec<_>>();
    let ints: Vec<usize> = features
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            matches!(
                f.kind,
                Kind::Count
                    | Kind::DistinctCodes
                    | Kind::DistinctCategories
                    | Kind::MaxInAMonth
                    | Kind::MaxIn30Days
            )
        })
        .map(|(i, _)| i)
        .collect();
    let pick = |r: &mut Rng| ints[r.below(ints.len() as u64) as usize];
    let derived = (!ints.is_empty()).then(|| (pick(&mut r), pick(&mut r)));
    let cohort = condition(&mut r, &features, 2);
    let rank = (!ints.is_empty() && r.below(3) != 0).then(|| pick(&mut r));
    let top = (rank.is_some() && r.below(3) == 0).then(|| 1 + r.below(5) as usize);
    Case {
        people,
        events,
        list,
        features,
        derived,
        cohort,
        rank,
        top,
    }
}

fn write_case(case: &Case, dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let day = |d: NaiveDate| strata::dates::to_day(d);
    let people: Vec<Person> = case
        .people
        .iter()
        .map(|(id, _, _)| person(*id, "1960-01-01", "P1"))
        .collect();
    let patients = patients_batch(&people);
    let patients = with_column(
        &patients,
        "birth_date",
        Arc::new(Date32Array::from_iter_values(
            case.people.iter().map(|p| day(p.1)),
        )),
    );
    let patients = with_column(
        &patients,
        "date_of_death",
        Arc::new(Date32Array::from_iter(
            case.people.iter().map(|p| p.2.map(day)),
        )),
    );
    write_parquet(&data.join("patients.parquet"), &[patients]);
    let mut codes = StringBuilder::new();
    case.events.iter().for_each(|e| codes.append_value(&e.2));
    let kinds = arrow_array::StringArray::from_iter(case.events.iter().map(|e| e.3));
    let events = batch(vec![
        (
            "person_id",
            Arc::new(Int64Array::from_iter_values(
                case.events.iter().map(|e| e.0),
            )) as ArrayRef,
        ),
        (
            "event_date",
            Arc::new(Date32Array::from_iter(
                case.events.iter().map(|e| e.1.map(day)),
            )),
        ),
        ("snomed_code", Arc::new(codes.finish())),
        ("kind", Arc::new(kinds)),
    ]);
    // Two row groups, so events of one person meet in different tasks.
    let half = events.num_rows() / 2;
    write_parquet(
        &data.join("gp_events.parquet"),
        &[
            events.slice(0, half),
            events.slice(half, events.num_rows() - half),
        ],
    );

    let mut csv = String::from("code,term,category,points\n");
    for (code, (cats, tenths)) in &case.list {
        for cat in cats {
            csv.push_str(&format!(
                "{code},term,{cat},{}.{}\n",
                tenths / 10,
                tenths % 10
            ));
        }
    }
    std::fs::write(dir.join("list.csv"), csv).unwrap();
    let mut rules = String::from(
        "[model]\nname = \"diff\"\ntitle = \"t\"\nsource = \"test\"\n\n\
         [sources.gp]\ntable = \"gp_events\"\ndate = \"event_date\"\ncode = \"snomed_code\"\n\n\
         [codelists.l]\nfile = \"list.csv\"\nsystem = \"other\"\ncategory_column = \"category\"\nweight_column = \"points\"\n\n",
    );
    for (i, f) in case.features.iter().enumerate() {
        let aggregate = match f.kind {
            Kind::Count => "count",
            Kind::Exists => "exists",
            Kind::DistinctCodes => "count_distinct_codes",
            Kind::DistinctCategories => "count_distinct_categories",
            Kind::SumWeights => "sum_distinct_weights",
            Kind::FirstDate => "first_date",
            Kind::LastDate => "last_date",
            Kind::MaxInAMonth => "max_in_a_month",
            Kind::MaxIn30Days => "max_in_30_days",
        };
        rules.push_str(&format!(
            "[features.f{i}]\nsource = \"gp\"\naggregate = \"{aggregate}\"\nwindow = \"{}\"\n{}{}{}\n",
            f.window.text(),
            if f.listed { "codelist = \"l\"\n" } else { "" },
            if f.category_a { "category = \"cat_a\"\n" } else { "" },
            match f.filter {
                Some(true) => "where = \"kind = 'a'\"\n",
                Some(false) => "where = \"kind <> 'a'\"\n",
                None => "",
            }
        ));
    }
    if let Some((a, b)) = case.derived {
        rules.push_str(&format!("[features.d]\nexpr = \"f{a} + 2 * f{b}\"\n\n"));
    }
    rules.push_str(&format!(
        "[cohorts.c]\ntitle = \"c\"\ndescription = \"c\"\nwhen = \"{}\"\n",
        case.cohort.text()
    ));
    if let Some(k) = case.rank {
        rules.push_str(&format!("rank = [\"f{k} desc\"]\n"));
    }
    if let Some(n) = case.top {
        rules.push_str(&format!("top_per_pcn = {n}\n"));
    }
    let path = dir.join("rules.toml");
    std::fs::write(&path, rules).unwrap();
    path
}

/// What the reference computes for one feature and person, as text.
fn reference(case: &Case, f: &Feature, id: i64, as_of: NaiveDate) -> String {
    // The categories of code c that this feature scores.
    let categories = |c: &str| -> Vec<&'static str> {
        case.list[c]
            .0
            .iter()
            .copied()
            .filter(|k| !f.category_a || *k == "cat_a")
            .collect()
    };
    let events: Vec<(NaiveDate, &str)> = case
        .events
        .iter()
        .filter(|e| e.0 == id)
        .filter(|e| match f.filter {
            // `kind = 'a'` and `kind <> 'a'` are both null, so false, on a
            // null kind.
            Some(want) => e.3.is_some_and(|k| (k == "a") == want),
            None => true,
        })
        .filter_map(|e| e.1.map(|d| (d, e.2.as_str())))
        .filter(|(d, _)| *d <= as_of && f.window.keeps(*d, as_of))
        .filter(|(_, c)| !f.listed || (case.list.contains_key(*c) && !categories(c).is_empty()))
        .collect();
    match f.kind {
        Kind::Count => events.len().to_string(),
        Kind::Exists => (!events.is_empty()).to_string(),
        Kind::DistinctCodes => events
            .iter()
            .map(|e| e.1)
            .collect::<BTreeSet<_>>()
            .len()
            .to_string(),
        Kind::DistinctCategories => events
            .iter()
            .flat_map(|e| categories(e.1))
            .collect::<BTreeSet<_>>()
            .len()
            .to_string(),
        Kind::SumWeights => {
            let codes: BTreeSet<&str> = events.iter().map(|e| e.1).collect();
            let tenths: i64 = codes.iter().map(|c| case.list[*c].1).sum();
            format!("{:.1}", tenths as f64 / 10.0)
        }
        Kind::FirstDate => events
            .iter()
            .map(|e| e.0)
            .min()
            .map_or("null".into(), |d| d.to_string()),
        Kind::LastDate => events
            .iter()
            .map(|e| e.0)
            .max()
            .map_or("null".into(), |d| d.to_string()),
        Kind::MaxInAMonth => {
            let mut months: BTreeMap<(i32, u32), usize> = BTreeMap::new();
            for (d, _) in &events {
                *months
                    .entry((chrono::Datelike::year(d), chrono::Datelike::month(d)))
                    .or_default() += 1;
            }
            months.values().max().copied().unwrap_or(0).to_string()
        }
        Kind::MaxIn30Days => {
            // For each event's day, the events from that day to 29 days on.
            let days: Vec<NaiveDate> = events.iter().map(|e| e.0).collect();
            days.iter()
                .map(|&d| {
                    days.iter()
                        .filter(|&&e| e >= d && e <= d + chrono::Days::new(29))
                        .count()
                })
                .max()
                .unwrap_or(0)
                .to_string()
        }
    }
}

fn engine_value(column: &ArrayRef, row: usize) -> String {
    if column.is_null(row) {
        return "null".into();
    }
    match column.data_type() {
        arrow_schema::DataType::Int64 => column.as_primitive::<Int64Type>().value(row).to_string(),
        arrow_schema::DataType::Float64 => {
            format!("{:.1}", column.as_primitive::<Float64Type>().value(row))
        }
        arrow_schema::DataType::Boolean => column.as_boolean().value(row).to_string(),
        arrow_schema::DataType::Date32 => {
            strata::dates::from_day(column.as_primitive::<Date32Type>().value(row))
                .unwrap()
                .to_string()
        }
        other => panic!("unexpected type {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_agrees_with_a_row_by_row_reference(seed in any::<u64>()) {
        let case = case(seed);
        let tmp = tempfile::tempdir().unwrap();
        let rules = write_case(&case, tmp.path());
        let out = tmp.path().join("out");
        let o = run_rules(&rules, &tmp.path().join("data"), &out, AS_OF);
        prop_assert!(o.status.success(), "{}", stderr(&o));
        let p = read_parquet(&out.join("patients.parquet"));
        if let Ok(python) = std::env::var("STRATA_DUCKDB_PYTHON") {
            let checked = check_sql(&python, &rules, &tmp.path().join("data"), AS_OF, &p, tmp.path());
            prop_assert!(checked.is_ok(), "the compiled SQL disagrees: {}", checked.unwrap_err());
        }
        let ids = p.column_by_name("person_id").unwrap().as_primitive::<Int64Type>().clone();
        let as_of = NaiveDate::parse_from_str(AS_OF, "%Y-%m-%d").unwrap();
        // Per person row: every feature's reference value.
        let values: Vec<Vec<String>> = (0..p.num_rows())
            .map(|row| {
                let id = ids.value(row);
                case.features.iter().map(|f| reference(&case, f, id, as_of)).collect()
            })
            .collect();
        for (i, f) in case.features.iter().enumerate() {
            let column = p.column_by_name(&format!("f{i}")).unwrap();
            for (row, v) in values.iter().enumerate() {
                prop_assert_eq!(
                    &engine_value(column, row),
                    &v[i],
                    "feature f{} ({:?}, listed {}, category_a {}, filter {:?}, window {}) for person {}",
                    i, f.kind, f.listed, f.category_a, f.filter, f.window.text(), ids.value(row)
                );
            }
        }
        if let Some((a, b)) = case.derived {
            let column = p.column_by_name("d").unwrap();
            for (row, v) in values.iter().enumerate() {
                let expected = v[a].parse::<i64>().unwrap() + 2 * v[b].parse::<i64>().unwrap();
                prop_assert_eq!(engine_value(column, row), expected.to_string());
            }
        }

        // The cohort: condition true (not null) and alive, ranked by the
        // key (descending) then person id, the first N kept.
        let mut members: Vec<(i64, i64)> = Vec::new(); // (key, id)
        for (row, v) in values.iter().enumerate() {
            let (id, birth, death) = case.people.iter().find(|p| p.0 == ids.value(row)).copied().unwrap();
            let mut age = chrono::Datelike::year(&as_of) as i64 - chrono::Datelike::year(&birth) as i64;
            if (chrono::Datelike::month(&as_of), chrono::Datelike::day(&as_of))
                < (chrono::Datelike::month(&birth), chrono::Datelike::day(&birth))
            {
                age -= 1;
            }
            let alive = birth <= as_of && death.is_none_or(|d| d > as_of);
            if alive && case.cohort.eval(v, age) == Some(true) {
                let key = case.rank.map_or(0, |k| v[k].parse::<i64>().unwrap());
                members.push((key, id));
            }
        }
        members.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        members.truncate(case.top.unwrap_or(usize::MAX));
        let flags = p.column_by_name("c").unwrap().as_boolean().clone();
        let ranks = p.column_by_name("c_rank").unwrap().as_primitive::<arrow_array::types::Int32Type>().clone();
        for row in 0..p.num_rows() {
            let id = ids.value(row);
            let expected = members.iter().position(|m| m.1 == id);
            prop_assert_eq!(
                (flags.value(row), ranks.is_valid(row).then(|| ranks.value(row) as usize)),
                (expected.is_some(), expected.map(|r| r + 1)),
                "cohort `{}` (rank {:?}, top {:?}) for person {}",
                case.cohort.text(), case.rank, case.top, id
            );
        }
    }
}
