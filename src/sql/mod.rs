//! The SQL backend: a rule file compiled to one SQL script that computes,
//! on a SQL engine (Spark on Databricks or the Federated Data Platform,
//! DuckDB), the same per-person table as `OUT/patients.parquet` of
//! `strata run`: every feature, derived feature, band, segment, cohort flag
//! and rank, with the same names, types and null rules.
//!
//! It shares everything up to the typed model with the native engine: the
//! rule files are read, resolved and typed by [`crate::rules`] (the data's
//! Parquet footers give the column types, as they do for a run), and only
//! the last step differs: where the engine scans, this writes SQL. The
//! script reads like the rule file: a CTE per source's events, per code
//! list, per aggregate group, named after the rule file's names, with the
//! descriptions as comments. A source's codes are matched against all its
//! lists in one join, so that an engine reads each event table once, not
//! once per list.
//!
//! What SQL engines would decide differently from strata is written out to
//! mean strata's: event rows strata skips (null or placeholder dates, dates
//! before 1900 or after the as-of date, null ids) are filtered; code
//! normalisation and longest-prefix matching are spelt out per coding
//! system; weights are summed as exact integers (millionths); division,
//! `ln` and `round` follow strata ([`expr`]); ranks break ties by
//! `person_id` with nulls last. Data strata would refuse (a duplicated
//! `person_id`, an opt-out flag that is neither yes nor no, a sex other
//! than F, M or U) stops the query
//! with a message, rather than giving different people.

pub mod dialect;
mod expr;
mod person;
mod source;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use arrow_schema::DataType;
use chrono::NaiveDate;

use crate::error::{Error, Result};
use crate::input::Population;
use crate::input::table::{self, Table};
use crate::rules::check::Type;
use crate::rules::syntax::MatchMode;
use crate::rules::typing;
use crate::rules::{Codelist, FeatureKind, Model};
pub use dialect::Target;
use source::{Bound, has_weights};

/// How to compile.
pub struct Options {
    pub target: Target,
    /// The as-of date; `None` takes the latest event date in the data, as
    /// `strata run` does.
    pub as_of: Option<NaiveDate>,
    /// Table name -> what the script reads for it (a table or view such as
    /// `catalog.schema.patients`); other tables are read from the data
    /// folder's Parquet files.
    pub tables: Vec<(String, String)>,
}

/// A compiled script.
pub struct Compiled {
    pub sql: String,
    pub as_of: NaiveDate,
    pub as_of_inferred: bool,
}

/// Compiles `model` for `options.target`. `data` is a folder in the data
/// contract whose tables have the columns and types the script will read
/// (the extract itself, or a sample of it: only the Parquet footers are
/// read, and the as-of date when it is not given).
pub fn compile(model: &Model, data: &Path, options: &Options) -> Result<Compiled> {
    crate::input::unshadowed(model)?;
    check_options(model, data, options)?;
    let target = options.target;
    let population = Table::open(data, &model.population.table, "the population")?;
    let attribute_types = Population::attribute_types(&model.population, &population)?;
    let sources = bind_sources(model, data, options)?;
    let (as_of, as_of_inferred) = match options.as_of {
        Some(d) => (d, false),
        None => {
            let tables = sources.iter().map(|b| {
                let source = &model.sources[b.index];
                (&b.table, source.date.as_str(), &source.missing_dates[..])
            });
            let today = chrono::Local::now().date_naive();
            (table::inferred_as_of(tables, &model.path, today)?, true)
        }
    };
    let column_types = reduced_column_types(model, &sources)?;
    let typed = typing::person_level(model, &attribute_types, &column_types, Some(as_of))?;

    let mut events = Script::new(target);
    let mut lists_used: BTreeSet<usize> = BTreeSet::new();
    let mut aggregates = Vec::new();
    for b in &sources {
        aggregates.extend(b.emit(model, as_of, &mut events, &mut lists_used)?);
    }
    let mut persons = Script::new(target);
    let from = match options
        .tables
        .iter()
        .find(|(n, _)| n == &model.population.table)
    {
        Some((_, reference)) => reference.clone(),
        None => target.parquet(&population.location, population.location.is_dir()),
    };
    let purpose = model.purpose().0;
    // The population as registered on the as-of date, where the data says.
    let registrations_table = Table::find(data, crate::input::REGISTRATIONS)?;
    let registrations = match options
        .tables
        .iter()
        .find(|(n, _)| n == crate::input::REGISTRATIONS)
    {
        Some((_, reference)) => Some(reference.clone()),
        None => registrations_table
            .as_ref()
            .map(|t| target.parquet(&t.location, t.location.is_dir())),
    };
    person::population_ctes(
        model,
        &population,
        &attribute_types,
        as_of,
        purpose,
        person::Reads {
            population: &from,
            registrations: registrations.as_deref(),
        },
        &mut persons,
    )?;
    person::persons_cte(model, &typed, &aggregates, &mut persons);
    let last = person::derived_ctes(model, &typed, &mut persons);
    let last = person::cohort_ctes(model, &typed, last, &mut persons);

    let mut sql = header(model, target, as_of, as_of_inferred);
    sql.push_str(target.preamble());
    if reads_zoned_timestamps(model, &population, &sources, registrations_table.as_ref()) {
        sql.push_str(match target {
            // Timestamps are read as their UTC calendar date, as strata does.
            Target::DuckDb => "SET TimeZone = 'UTC';\n\n",
            Target::Spark => "SET spark.sql.session.timeZone = UTC;\n\n",
        });
    }
    // Code lists first: the sources' CTEs read them.
    let ctes: Vec<String> = code_lists(model, &lists_used, target)
        .ctes
        .into_iter()
        .chain(events.ctes)
        .chain(persons.ctes)
        .collect();
    let _ = write!(sql, "WITH\n{}\n", ctes.join(",\n"));
    sql.push_str(&person::final_select(model, target, &last));
    Ok(Compiled {
        sql,
        as_of,
        as_of_inferred,
    })
}

fn check_options(model: &Model, data: &Path, options: &Options) -> Result<()> {
    crate::input::data_folder(data)?;
    for (name, _) in &options.tables {
        let known = name == &model.population.table
            || name == crate::input::REGISTRATIONS
            || model.sources.iter().any(|s| &s.table == name);
        if !known {
            return Err(Error::usage(format!(
                "--table {name}=...: the rule files read no table called `{name}`"
            ))
            .with_help(
                "name a table the rule files read: the population table or a source's `table`",
            ));
        }
    }
    Ok(())
}

/// The sources some feature reads whose tables `data` has; an optional
/// source's absent table leaves its features null, a required one's stops.
fn bind_sources(model: &Model, data: &Path, options: &Options) -> Result<Vec<Bound>> {
    let mut sources: Vec<Bound> = Vec::new();
    let mut absent: BTreeSet<usize> = BTreeSet::new();
    for feature in &model.features {
        let FeatureKind::Aggregate { source, column, .. } = &feature.kind else {
            continue;
        };
        let spec = &model.sources[*source];
        let table = if absent.contains(source) || sources.iter().any(|b| b.index == *source) {
            None
        } else {
            Table::find(data, &spec.table)?
        };
        let now_absent = table.is_none() && !sources.iter().any(|b| b.index == *source);
        // A measure's value is a number whatever its stored type.
        if now_absent && spec.optional && column.is_some() && spec.measure.is_none() {
            return Err(model
                .error_at(
                    feature.offset,
                    format!(
                        "feature `{}` reduces a column of source `{}`, whose optional table is absent, so its type is unknown",
                        feature.name, spec.name
                    ),
                )
                .with_help("supply the table (a sample with its columns will do), or make the source required"));
        }
        match table {
            Some(table) => sources.push(Bound::new(
                model,
                *source,
                table,
                options.target,
                &options.tables,
            )?),
            None if !now_absent || absent.contains(source) => {}
            None if spec.optional => {
                absent.insert(*source);
            }
            None => {
                let needed_by = format!("source `{}` of {}", spec.name, model.path.display());
                Table::open(data, &spec.table, &needed_by)?;
            }
        }
    }
    Ok(sources)
}

/// The type of the column each `min`/`max` feature reduces, by feature.
fn reduced_column_types(model: &Model, sources: &[Bound]) -> Result<Vec<Option<Type>>> {
    let mut column_types = vec![None; model.features.len()];
    for (fi, feature) in model.features.iter().enumerate() {
        let FeatureKind::Aggregate {
            source,
            column: Some(c),
            aggregate,
            ..
        } = &feature.kind
        else {
            continue;
        };
        if model.sources[*source]
            .measure
            .as_ref()
            .is_some_and(|m| m.value == *c)
        {
            // Read converted to the canonical unit, present or not.
            column_types[fi] = Some(Type::Float);
            continue;
        }
        let Some(b) = sources.iter().find(|b| b.index == *source) else {
            continue;
        };
        let ty = b
            .table
            .column_type(c, &format!("the column `{}` reduces", feature.name))?;
        let numbers_only = matches!(
            aggregate,
            crate::rules::Aggregate::Latest | crate::rules::Aggregate::Mean
        );
        let t =
            table::canonical_type(ty)
                .filter(|t| {
                    matches!(t, Type::Int | Type::Float) || (*t == Type::Date && !numbers_only)
                })
                .ok_or_else(|| {
                    model.error_at(
                    feature.offset,
                    format!(
                        "feature `{}` takes the {} of `{c}`, but that column holds {ty}, not {}",
                        feature.name,
                        aggregate.name(),
                        if numbers_only { "numbers" } else { "numbers or dates" }
                    ),
                )
                })?;
        column_types[fi] = Some(t);
    }
    Ok(column_types)
}

/// Does the script read a timestamp with a time zone as a date?
fn reads_zoned_timestamps(
    model: &Model,
    population: &Table,
    sources: &[Bound],
    registrations: Option<&Table>,
) -> bool {
    let p = &model.population;
    [p.birth_date.as_str(), p.date_of_death.as_str()]
        .into_iter()
        .map(|c| (population, c))
        .chain(
            sources
                .iter()
                .map(|b| (&b.table, model.sources[b.index].date.as_str())),
        )
        .chain(
            registrations
                .into_iter()
                .flat_map(|t| [(t, "start_date"), (t, "end_date")]),
        )
        .any(|(t, c)| {
            matches!(
                t.schema.field_with_name(c).map(|f| f.data_type()),
                Ok(DataType::Timestamp(_, Some(_)))
            )
        })
}

/// The code lists the sources match against, as literal rows.
fn code_lists(model: &Model, used: &BTreeSet<usize>, target: Target) -> Script {
    let mut script = Script::new(target);
    for &l in used {
        let categories = model.features.iter().any(|f| {
            matches!(&f.kind, FeatureKind::Aggregate { codelist: Some(c), aggregate, .. }
                if *c == l && source::by_category(*aggregate))
        });
        code_list(&model.codelists[l], &mut script, categories);
    }
    script
}

/// CTEs in the order written.
struct Script {
    target: Target,
    ctes: Vec<String>,
}

impl Script {
    fn new(target: Target) -> Script {
        Script {
            target,
            ctes: Vec::new(),
        }
    }

    fn cte(&mut self, name: &str, about: &str, body: String) {
        let mut text = String::new();
        for line in wrap(about, 76) {
            let _ = writeln!(text, "-- {line}");
        }
        let _ = write!(text, "{} AS (\n  {body}\n)", self.target.ident(name));
        self.ctes.push(text);
    }
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && line.len() + word.len() + 1 > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

/// A select-list item with its description as a comment line above it
/// (items are indented by four spaces).
fn described(description: &str, item: String) -> String {
    let one_line: String = description.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        item
    } else {
        format!("-- {one_line}\n    {item}")
    }
}

fn header(model: &Model, target: Target, as_of: NaiveDate, inferred: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "-- {} ({}), compiled by strata {} for {}.",
        model.meta.title,
        model.meta.name,
        env!("CARGO_PKG_VERSION"),
        target.name()
    );
    for file in &model.files {
        let _ = writeln!(
            out,
            "-- Rule file: {} (sha256 {})",
            file.path.display(),
            &file.sha256
        );
    }
    for (name, value) in &model.overrides {
        let _ = writeln!(out, "-- With --set {name}={value}");
    }
    let _ = writeln!(
        out,
        "-- As of {as_of}{}. The result is the per-person table of `strata run`",
        if inferred {
            " (the latest event date in the data the script was compiled against)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "-- (OUT/patients.parquet): the same people, columns, types and values.\n"
    );
    out
}

/// A code list as literal rows: `codelist__NAME` (code, item[, weight])
/// and, for category aggregates, `codelist__NAME__categories` (item,
/// category, name as lists show it).
fn code_list(list: &Codelist, script: &mut Script, categories: bool) {
    let target = script.target;
    let weights = has_weights(list);
    let rows: Vec<String> = list
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut row = format!("({}, {i}", target.string(&e.code));
            if weights {
                let _ = write!(
                    row,
                    ", {}",
                    e.weight.map_or("NULL".to_string(), |w| w.to_string())
                );
            }
            row.push(')');
            row
        })
        .collect();
    let mut columns = vec!["code", "item"];
    if weights {
        columns.push("weight");
    }
    script.cte(
        &format!("codelist__{}", list.name),
        &format!(
            "Code list `{}` ({} entries, {}{}{}).",
            list.name,
            list.entries.len(),
            list.path
                .file_name()
                .map_or(String::new(), |f| f.to_string_lossy().into_owned()),
            if list.match_mode == MatchMode::Prefix {
                ", matched by prefix"
            } else {
                ""
            },
            if weights {
                ", weights in millionths"
            } else {
                ""
            }
        ),
        format!("SELECT * FROM {}", target.values(&rows, "t", &columns)),
    );
    if categories {
        let rows: Vec<String> = list
            .entries
            .iter()
            .enumerate()
            .flat_map(|(i, e)| {
                e.categories.iter().map(move |&c| {
                    format!(
                        "({i}, {c}, {})",
                        target.string(&list.categories[c as usize].replace('_', " "))
                    )
                })
            })
            .collect();
        script.cte(
            &format!("codelist__{}__categories", list.name),
            &format!(
                "The categories each entry of code list `{}` scores.",
                list.name
            ),
            format!(
                "SELECT * FROM {}",
                target.values(&rows, "t", &["item", "category", "name"])
            ),
        );
    }
}
