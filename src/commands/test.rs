//! Assurance tests: synthetic persons written inside a rule file, with the
//! values the model must compute for them (as ehrQL's assurance tests do).
//!
//! `strata test` builds a tiny data folder from a rule file's tests, in the
//! rule file's own table and column names, runs the real engine on it (one
//! run per as-of date, every test person at once) and compares. Nothing is
//! mocked: a test passes only if the same code that runs on a whole ICS
//! gives the expected value.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int32Type, Int64Type, UInt32Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, Field, Schema};
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use toml::Spanned;

use crate::commands::progress;
use crate::dates;
use crate::engine;
use crate::error::{Error, Result};
use crate::rules::{FeatureKind, Model, did_you_mean, syntax};

/// A value written in a test.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    Date(NaiveDate),
    Codes(Vec<String>),
    Null,
}

impl Value {
    fn from_toml(v: &toml::Value) -> Option<Value> {
        Some(match v {
            toml::Value::Integer(i) => Value::Int(*i),
            toml::Value::Float(f) => Value::Float(*f),
            toml::Value::Boolean(b) => Value::Bool(*b),
            toml::Value::String(s) if s == "null" => Value::Null,
            toml::Value::String(s) => Value::Text(s.clone()),
            toml::Value::Datetime(_) => Value::Date(crate::rules::toml_date(v)?),
            toml::Value::Array(items) => Value::Codes(
                items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string))
                    .collect::<Option<_>>()?,
            ),
            toml::Value::Table(_) => return None,
        })
    }

    /// The Arrow type a column of such values is written as.
    fn data_type(&self) -> Option<DataType> {
        Some(match self {
            Value::Int(_) => DataType::Int64,
            Value::Float(_) => DataType::Float64,
            Value::Bool(_) => DataType::Boolean,
            Value::Text(_) => DataType::Utf8,
            Value::Date(_) => DataType::Date32,
            Value::Codes(_) => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            Value::Null => return None,
        })
    }
}

/// The result of one test.
pub struct Outcome {
    pub name: String,
    /// Empty when the test passed.
    pub failures: Vec<String>,
}

/// A column being built for a test table: its name and one value per row.
struct Column {
    name: String,
    values: Vec<Value>,
    /// Type when no row gives a value.
    fallback: DataType,
}

/// What tests that run together share: the as-of date and the parameters
/// set, as (name, value) pairs.
type RunKey = (NaiveDate, Vec<(String, String)>);

/// Runs every test of `model`; `Err` only when the tests themselves are
/// malformed or cannot run.
pub fn run(model: &Model) -> Result<Vec<Outcome>> {
    run_keeping(model, None)
}

/// [`run`], also keeping each run's data folder under `keep` (as
/// `keep/N/`, with `run.json` giving its as-of date and `--set` values), so
/// that another engine can be checked on the very data the tests use.
pub fn run_keeping(model: &Model, keep: Option<&Path>) -> Result<Vec<Outcome>> {
    // Tests run together when they share an as-of date and parameters.
    let mut by_run: BTreeMap<RunKey, Vec<usize>> = BTreeMap::new();
    for (i, (start, test)) in model.tests.iter().enumerate() {
        let as_of = test.get_ref().as_of.get_ref();
        let date = match Value::from_toml(as_of) {
            Some(Value::Date(d)) => d,
            _ => {
                return Err(model.error_at(
                    start + test.get_ref().as_of.span().start,
                    "`as_of` must be a date, written as 2025-03-31 (no quotes)",
                ));
            }
        };
        let set = test
            .get_ref()
            .set
            .iter()
            .map(|(name, v)| {
                let text = match v.get_ref() {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Table(_) | toml::Value::Array(_) => {
                        return Err(model.error_at(
                            start + v.span().start,
                            format!("`set.{name}`: write a number, text, true/false or a date"),
                        ));
                    }
                    other => other.to_string(),
                };
                Ok((name.clone(), text))
            })
            .collect::<Result<Vec<_>>>()?;
        by_run.entry((date, set)).or_default().push(i);
    }
    // Every test person, with every event, in one set of tables: column
    // types come from all tests, so tests that share a date cannot change
    // each other's types. Person ids are the test numbers, from 1.
    let tables = build_tables(model)?;
    let mut outcomes: Vec<Option<Outcome>> = model.tests.iter().map(|_| None).collect();
    for ((as_of, set), tests) in by_run {
        // A test with parameters runs on the model read again with them, as
        // `strata run --set` would read it, keeping any parameter the model
        // itself was given (`--set`) that the test does not set.
        let reloaded = if set.is_empty() {
            None
        } else {
            let (start, test) = &model.tests[tests[0]];
            let at = start + test.span().start;
            let mut all: Vec<(String, String)> = model
                .overrides
                .iter()
                .filter(|(name, _)| !set.iter().any(|(n, _)| n == name))
                .cloned()
                .collect();
            all.extend(set.iter().cloned());
            Some(
                crate::rules::load_all(std::slice::from_ref(&model.path), &all).map_err(|e| {
                    model.error_at(at, format!("test `{}`: {e}", test.get_ref().name))
                })?,
            )
        };
        let model = reloaded.as_ref().unwrap_or(model);
        let dir = tempfile::tempdir().map_err(|e| {
            Error::io(
                &std::env::temp_dir(),
                "cannot create a folder for test data",
                e,
            )
        })?;
        let ids: Vec<i64> = tests.iter().map(|&t| t as i64 + 1).collect();
        for (name, (person_column, columns)) in &tables {
            write(
                &dir.path().join(format!("{name}.parquet")),
                columns,
                person_column,
                &ids,
                model,
            )?;
        }
        // The test tables are tiny and often empty on purpose: the engine's
        // warnings about them would only bury the test report. Outcomes,
        // which tests may expect too (what happened after as_of), come from
        // the same scan.
        let names: Vec<String> = model.outcomes.iter().map(|o| o.name.clone()).collect();
        let dated = tracing::subscriber::with_default(
            tracing::subscriber::NoSubscriber::default(),
            || {
                engine::run_dates(
                    model,
                    dir.path(),
                    &engine::Dates {
                        someone_each_date: false,
                        ..engine::Dates::new(&[as_of], &names)
                    },
                    &progress::Terminal::new(true),
                    Ok,
                )
            },
        )?;
        let engine::Dated {
            results,
            outcomes: after,
        } = dated.into_iter().next().expect("one date was run");
        if let Some(keep) = keep {
            keep_run(keep, dir.path(), &results, as_of, &set)?;
        }
        // Persons sort by id, and ids follow test order: row i is tests[i].
        for (row, &t) in tests.iter().enumerate() {
            let (start, test) = &model.tests[t];
            outcomes[t] = Some(check(model, *start, test, &results, &after, row)?);
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every test ran"))
        .collect())
}

/// A test value; `start` is the offset of the test's rule file.
/// Keeps one run in the next free `keep/N/`: its tables in `data/`, the
/// engine's per-person table as `patients.parquet` (as `strata run` writes
/// it), and `run.json`.
fn keep_run(
    keep: &Path,
    tables: &Path,
    results: &engine::Results,
    as_of: NaiveDate,
    set: &[(String, String)],
) -> Result<()> {
    let io = |path: &Path, e: std::io::Error| Error::io(path, "cannot keep the test data", e);
    std::fs::create_dir_all(keep).map_err(|e| io(keep, e))?;
    let n = std::fs::read_dir(keep).map_err(|e| io(keep, e))?.count();
    let root = keep.join(n.to_string());
    let dir = root.join("data");
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    crate::output::patients::Table::new(results.plan.model)
        .write(results, &root.join("patients.parquet"))?;
    let rules = &results.plan.model.path;
    for entry in std::fs::read_dir(tables).map_err(|e| io(tables, e))? {
        let path = entry.map_err(|e| io(tables, e))?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, dir.join(name)).map_err(|e| io(&path, e))?;
        }
    }
    let run = serde_json::json!({
        "rules": rules.display().to_string(),
        "as_of": as_of.to_string(),
        "set": set.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>(),
    });
    let path = root.join("run.json");
    std::fs::write(&path, run.to_string()).map_err(|e| io(&path, e))
}

fn value_at(model: &Model, start: usize, v: &Spanned<toml::Value>, what: &str) -> Result<Value> {
    Value::from_toml(v.get_ref()).ok_or_else(|| {
        model.error_at(
            start + v.span().start,
            format!(
                "{what}: write a number, text, true/false, a date (2025-03-31) or a list of codes"
            ),
        )
    })
}

/// Table name -> (its person id column, its columns).
type Tables = BTreeMap<String, (String, Vec<Column>)>;

/// The population and every source table the model reads, holding every
/// test's person and events.
fn build_tables(model: &Model) -> Result<Tables> {
    let spec = &model.population;
    let roles: [(&str, &str, DataType); 5] = [
        ("birth_date", &spec.birth_date, DataType::Date32),
        ("date_of_death", &spec.date_of_death, DataType::Date32),
        ("sex", &spec.sex, DataType::Utf8),
        ("practice", &spec.practice, DataType::Utf8),
        ("pcn", &spec.pcn, DataType::Utf8),
    ];
    let mut columns: Vec<(String, Column)> = roles
        .iter()
        .map(|(role, column, ty)| (role.to_string(), new_column(column, ty.clone())))
        .collect();
    for (name, column) in &spec.attributes {
        columns.push((name.clone(), new_column(column.get_ref(), DataType::Int64)));
    }
    for (start, test) in &model.tests {
        let person = &test.get_ref().person;
        if let Some((key, v)) = person
            .iter()
            .find(|(k, _)| !columns.iter().any(|(c, _)| c == *k))
        {
            let known: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
            return Err(model.error_at(
                start + v.span().start,
                format!(
                    "`{key}` is not a population column{} (known: {})",
                    did_you_mean(key, known.iter().copied()),
                    known.join(", ")
                ),
            ));
        }
        for (role, column) in &mut columns {
            let value = match person.get(role.as_str()) {
                Some(v) => value_at(model, *start, v, &format!("person `{role}`"))?,
                None => match role.as_str() {
                    "birth_date" => {
                        Value::Date(NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid"))
                    }
                    "sex" => Value::Text("U".into()),
                    "practice" => Value::Text("TEST_GP".into()),
                    "pcn" => Value::Text("TEST_PCN".into()),
                    _ => Value::Null,
                },
            };
            column.values.push(value);
        }
    }
    let mut population: Vec<Column> = vec![Column {
        name: spec.person_id.clone(),
        values: (1..=model.tests.len() as i64).map(Value::Int).collect(),
        fallback: DataType::Int64,
    }];
    population.extend(columns.into_iter().map(|(_, c)| c));
    let mut tables: Tables = BTreeMap::new();
    tables.insert(spec.table.clone(), (spec.person_id.clone(), population));

    // Event tables: every table a source names, with every column a rule
    // reads from it, so a table no test gives events for still exists.
    for (s, source) in model.sources.iter().enumerate() {
        let (_, table) = tables
            .entry(source.table.clone())
            .or_insert_with(|| (source.person_id.clone(), Vec::new()));
        let mut ensure = |name: &str, fallback: DataType| {
            if !table.iter().any(|c| c.name == name) {
                table.push(new_column(name, fallback));
            }
        };
        ensure(&source.person_id, DataType::Int64);
        ensure(&source.date, DataType::Date32);
        for code in &source.codes {
            ensure(code, DataType::Utf8);
        }
        if let Some(m) = &source.measure {
            ensure(&m.value, DataType::Float64);
            ensure(&m.unit, DataType::Utf8);
        }
        for feature in &model.features {
            let FeatureKind::Aggregate {
                source: fs,
                filter,
                column,
                ..
            } = &feature.kind
            else {
                continue;
            };
            if *fs != s {
                continue;
            }
            for (name, _) in filter.iter().flat_map(|f| f.expr.names()) {
                if model.param(name).is_some() {
                    continue;
                }
                // A mapped column is stored as its codes.
                match source.mapped.iter().find(|m| m.name == name) {
                    Some(m) => ensure(&m.from, DataType::Utf8),
                    None => ensure(name, DataType::Utf8),
                }
            }
            if let Some(c) = column {
                ensure(c, DataType::Int64);
            }
        }
    }
    for (t, (start, test)) in model.tests.iter().enumerate() {
        for (source_name, events) in &test.get_ref().events {
            let Some(source) = model.sources.iter().find(|s| &s.name == source_name) else {
                return Err(model.error_at(
                    start + events.span().start,
                    format!(
                        "`{source_name}` is not a source of this model{}",
                        did_you_mean(source_name, model.sources.iter().map(|s| s.name.as_str()))
                    ),
                ));
            };
            let (_, table) = tables
                .get_mut(&source.table)
                .expect("every source's table was added");
            for event in events.get_ref() {
                let mut row: Vec<(String, Value)> =
                    vec![(source.person_id.clone(), Value::Int(t as i64 + 1))];
                for (key, v) in event {
                    let column = match key.as_str() {
                        "date" => source.date.clone(),
                        "code" => source.codes.first().cloned().ok_or_else(|| {
                            model.error_at(
                                start + v.span().start,
                                format!("source `{source_name}` has no `code` column"),
                            )
                        })?,
                        other => other.to_string(),
                    };
                    if row.iter().any(|(c, _)| *c == column) {
                        return Err(model.error_at(
                            start + v.span().start,
                            format!("this event gives column `{column}` twice (`date` and `code` name the source's date and first code column)"),
                        ));
                    }
                    row.push((
                        column,
                        value_at(model, *start, v, &format!("event `{key}`"))?,
                    ));
                }
                if !row.iter().any(|(c, _)| *c == source.date) {
                    return Err(model.error_at(
                        start + events.span().start,
                        format!("an event of `{source_name}` has no `date`"),
                    ));
                }
                let rows = table.first().map_or(0, |c| c.values.len());
                for (name, value) in row {
                    let index = match table.iter().position(|c| c.name == name) {
                        Some(i) => i,
                        None => {
                            table.push(Column {
                                name: name.clone(),
                                values: vec![Value::Null; rows],
                                fallback: DataType::Utf8,
                            });
                            table.len() - 1
                        }
                    };
                    table[index].values.push(value);
                }
                for c in table.iter_mut() {
                    c.values.resize(rows + 1, Value::Null);
                }
            }
        }
    }
    Ok(tables)
}

fn new_column(name: &str, fallback: DataType) -> Column {
    Column {
        name: name.to_string(),
        values: Vec::new(),
        fallback,
    }
}

/// Writes the rows of `columns` whose person is one of `ids`; each column's
/// type comes from all its values.
fn write(
    path: &Path,
    columns: &[Column],
    person_column: &str,
    ids: &[i64],
    model: &Model,
) -> Result<()> {
    let keep: Vec<bool> = columns
        .iter()
        .find(|c| c.name == person_column)
        .map(|c| {
            c.values
                .iter()
                .map(|v| matches!(v, Value::Int(i) if ids.contains(i)))
                .collect()
        })
        .unwrap_or_default();
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for column in columns {
        let types: Vec<DataType> = column.values.iter().filter_map(Value::data_type).collect();
        let mut ty = types.first().cloned().unwrap_or(column.fallback.clone());
        // Whole numbers and decimals in one column (a value of 13 beside
        // 12.9) make a column of numbers.
        if types
            .iter()
            .all(|t| matches!(t, DataType::Int64 | DataType::Float64))
            && types.contains(&DataType::Float64)
        {
            ty = DataType::Float64;
        }
        if types
            .iter()
            .any(|t| *t != ty && !(ty == DataType::Float64 && *t == DataType::Int64))
        {
            return Err(Error::rules(
                &model.path,
                None,
                format!("the tests give column `{}` values of different types", column.name),
            )
            .with_help("write every value of a column the same way (all numbers, all text, all dates, ...)"));
        }
        let kept: Vec<Value> = column
            .values
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(v, _)| v.clone())
            .collect();
        fields.push(Field::new(&column.name, ty.clone(), true));
        arrays.push(array(&ty, &kept));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| Error::Internal(format!("building test table {}: {e}", path.display())))?;
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, "cannot create", e))?;
    let fail = |e: parquet::errors::ParquetError| {
        Error::io(path, "cannot write", std::io::Error::other(e))
    };
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).map_err(fail)?;
    writer.write(&batch).map_err(fail)?;
    writer.close().map_err(fail)?;
    Ok(())
}

fn array(ty: &DataType, values: &[Value]) -> ArrayRef {
    match ty {
        DataType::Int64 => Arc::new(Int64Array::from_iter(values.iter().map(|v| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }))),
        DataType::Float64 => Arc::new(Float64Array::from_iter(values.iter().map(|v| match v {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }))),
        DataType::Boolean => Arc::new(BooleanArray::from_iter(values.iter().map(|v| match v {
            Value::Bool(b) => Some(*b),
            _ => None,
        }))),
        DataType::Date32 => Arc::new(Date32Array::from_iter(values.iter().map(|v| match v {
            Value::Date(d) => Some(dates::to_day(*d)),
            _ => None,
        }))),
        DataType::List(_) => {
            let mut builder = ListBuilder::new(StringBuilder::new());
            for v in values {
                match v {
                    Value::Codes(codes) => {
                        for c in codes {
                            builder.values().append_value(c);
                        }
                        builder.append(true);
                    }
                    _ => builder.append(false),
                }
            }
            Arc::new(builder.finish())
        }
        _ => Arc::new(StringArray::from_iter(values.iter().map(|v| match v {
            Value::Text(s) => Some(s.as_str()),
            _ => None,
        }))),
    }
}

/// Compares one test person's results with what the test expects.
/// One test's expectations against its row of the results and of the
/// outcomes (`after`: each outcome's column).
fn check(
    model: &Model,
    start: usize,
    test: &Spanned<syntax::TestCase>,
    results: &engine::Results,
    after: &[(String, ArrayRef)],
    row: usize,
) -> Result<Outcome> {
    let case = test.get_ref();
    let mut failures = Vec::new();
    for (name, expected) in &case.expect {
        let column: ArrayRef = if let Some(i) = model.feature_index(name) {
            results.feature(i).clone()
        } else if let Some(c) = model.cohorts.iter().position(|c| &c.name == name) {
            Arc::new(results.cohorts[c].flags.clone())
        } else if let Some((_, column)) = after.iter().find(|(n, _)| n == name) {
            column.clone()
        } else {
            let known = model
                .features
                .iter()
                .map(|f| f.name.as_str())
                .chain(model.cohorts.iter().map(|c| c.name.as_str()))
                .chain(model.outcomes.iter().map(|o| o.name.as_str()));
            return Err(model.error_at(
                start + expected.span().start,
                format!(
                    "`{name}` is not a feature, cohort or outcome of this model{}",
                    did_you_mean(name, known)
                ),
            ));
        };
        let want = value_at(model, start, expected, &format!("expected `{name}`"))?;
        if !matches(&column, row, &want) {
            let shown = ArrayFormatter::try_new(
                column.as_ref(),
                &FormatOptions::default().with_null("null"),
            )
            .map(|f| f.value(row).to_string())
            .unwrap_or_else(|_| "?".into());
            failures.push(format!("`{name}`: expected {}, got {shown}", show(&want)));
        }
    }
    Ok(Outcome {
        name: case.name.clone(),
        failures,
    })
}

fn show(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Text(s) => format!("'{s}'"),
        Value::Date(d) => d.to_string(),
        Value::Codes(c) => format!("{c:?}"),
        Value::Null => "null".into(),
    }
}

fn matches(column: &ArrayRef, row: usize, want: &Value) -> bool {
    // A feature typed as null is held as Arrow's typeless nulls, which
    // have no validity of their own to read.
    if column.is_null(row) || column.data_type() == &DataType::Null {
        return *want == Value::Null;
    }
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
    match (column.data_type(), want) {
        (DataType::Boolean, Value::Bool(b)) => column.as_boolean().value(row) == *b,
        (DataType::Int64, Value::Int(i)) => column.as_primitive::<Int64Type>().value(row) == *i,
        (DataType::Int64, Value::Float(f)) => {
            close(column.as_primitive::<Int64Type>().value(row) as f64, *f)
        }
        (DataType::Int32, Value::Int(i)) => {
            i64::from(column.as_primitive::<Int32Type>().value(row)) == *i
        }
        // A count a run holds in 32 bits.
        (DataType::UInt32, Value::Int(i)) => {
            i64::from(column.as_primitive::<UInt32Type>().value(row)) == *i
        }
        (DataType::UInt32, Value::Float(f)) => close(
            f64::from(column.as_primitive::<UInt32Type>().value(row)),
            *f,
        ),
        (DataType::Float64, Value::Float(f)) => {
            close(column.as_primitive::<Float64Type>().value(row), *f)
        }
        (DataType::Float64, Value::Int(i)) => {
            close(column.as_primitive::<Float64Type>().value(row), *i as f64)
        }
        (DataType::Utf8, Value::Text(s)) => column.as_string::<i32>().value(row) == s,
        (DataType::Date32, Value::Date(d)) => {
            column.as_primitive::<Date32Type>().value(row) == dates::to_day(*d)
        }
        _ => false,
    }
}
