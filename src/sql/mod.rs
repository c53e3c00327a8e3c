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
//! descriptions as comments.
//!
//! What SQL engines would decide differently from strata is written out to
//! mean strata's: event rows strata skips (null or placeholder dates, dates
//! before 1900 or after the as-of date, null ids) are filtered; code
//! normalisation and longest-prefix matching are spelt out per coding
//! system; weights are summed as exact integers (millionths); division,
//! `ln` and `round` follow strata ([`expr`]); ranks break ties by
//! `person_id` with nulls last. Data strata would refuse (a duplicated
//! `person_id`, an opt-out flag that is neither yes nor no) stops the query
//! with a message, rather than giving different people.

pub mod dialect;
mod expr;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use arrow_schema::DataType;
use chrono::{Datelike, NaiveDate};

use crate::dates;
use crate::error::{Error, Result};
use crate::input::Population;
use crate::input::table::{self, Table};
use crate::rules::check::{Node, Type, Typed};
use crate::rules::syntax::{CodingSystem, MatchMode};
use crate::rules::typing::{self, AGE_SLOT, FIRST_ATTRIBUTE_SLOT, SEX_SLOT};
use crate::rules::{Aggregate, Codelist, FeatureKind, Model, Purpose};
pub use dialect::Target;

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

/// The first plausible event date; earlier ones are skipped (see the data
/// contract).
const FIRST_PLAUSIBLE: &str = "DATE '1900-01-01'";

/// Compiles `model` for `options.target`. `data` is a folder in the data
/// contract whose tables have the columns and types the script will read
/// (the extract itself, or a sample of it: only the Parquet footers are
/// read, and the as-of date when it is not given).
pub fn compile(model: &Model, data: &Path, options: &Options) -> Result<Compiled> {
    if !data.is_dir() {
        return Err(Error::data(data, "data folder not found").with_help(
            "give a folder holding the tables (or a sample of them with the same columns) with --data",
        ));
    }
    for (name, _) in &options.tables {
        let known =
            name == &model.population.table || model.sources.iter().any(|s| &s.table == name);
        if !known {
            return Err(Error::usage(format!(
                "--table {name}=...: the rule files read no table called `{name}`"
            ))
            .with_help(
                "name a table the rule files read: the population table or a source's `table`",
            ));
        }
    }
    let target = options.target;
    let population = Table::open(data, &model.population.table, "the population")?;
    let attribute_types = Population::attribute_types(&model.population, &population)?;

    let mut sources: Vec<Bound> = Vec::new();
    let mut absent: BTreeSet<usize> = BTreeSet::new();
    for feature in &model.features {
        let FeatureKind::Aggregate { source, .. } = &feature.kind else {
            continue;
        };
        if absent.contains(source) || sources.iter().any(|b| b.index == *source) {
            continue;
        }
        let spec = &model.sources[*source];
        match Table::find(data, &spec.table)? {
            Some(table) => sources.push(Bound::new(model, *source, table, options)?),
            None if spec.optional => {
                absent.insert(*source);
            }
            None => {
                let needed_by = format!("source `{}` of {}", spec.name, model.path.display());
                Table::open(data, &spec.table, &needed_by)?;
            }
        }
    }

    let (as_of, as_of_inferred) = match options.as_of {
        Some(d) => (d, false),
        None => (infer_as_of(model, &sources)?, true),
    };

    // The type of each `min`/`max` column, by feature.
    let mut column_types = vec![None; model.features.len()];
    for b in &sources {
        for (fi, feature) in model.features.iter().enumerate() {
            if let FeatureKind::Aggregate {
                source,
                column: Some(c),
                aggregate,
                ..
            } = &feature.kind
                && *source == b.index
            {
                let ty = b
                    .table
                    .column_type(c, &format!("the column `{}` reduces", feature.name))?;
                let t = table::canonical_type(ty)
                    .filter(|t| matches!(t, Type::Int | Type::Float | Type::Date))
                    .ok_or_else(|| {
                        model.error_at(
                            feature.offset,
                            format!(
                                "feature `{}` takes the {} of `{c}`, but that column holds {ty}, not numbers or dates",
                                feature.name,
                                aggregate.name()
                            ),
                        )
                    })?;
                column_types[fi] = Some(t);
            }
        }
    }
    for fi in &absent {
        let spec = &model.sources[*fi];
        if let Some(f) = model.features.iter().find(|f| {
            matches!(&f.kind, FeatureKind::Aggregate { source, column: Some(_), .. } if source == fi)
        }) {
            return Err(model
                .error_at(
                    f.offset,
                    format!(
                        "feature `{}` reduces a column of source `{}`, whose optional table is absent, so its type is unknown",
                        f.name, spec.name
                    ),
                )
                .with_help("supply the table (a sample with its columns will do), or make the source required"));
        }
    }
    let typed = typing::person_level(model, &attribute_types, &column_types, Some(as_of))?;

    let mut script = Script::new(target);
    let header = header(model, target, as_of, as_of_inferred);
    let timestamps_with_zone = std::iter::once((&population, model.population.birth_date.as_str()))
        .chain(std::iter::once((
            &population,
            model.population.date_of_death.as_str(),
        )))
        .chain(
            sources
                .iter()
                .map(|b| (&b.table, model.sources[b.index].date.as_str())),
        )
        .any(|(t, c)| {
            matches!(
                t.schema.field_with_name(c).map(|f| f.data_type()),
                Ok(DataType::Timestamp(_, Some(_)))
            )
        });

    let mut lists_used: BTreeSet<usize> = BTreeSet::new();
    let mut joins: Vec<String> = Vec::new();
    let mut feature_sql: BTreeMap<usize, String> = BTreeMap::new();
    for b in &sources {
        let aggregates = b.emit(model, as_of, &mut script, &mut lists_used)?;
        for (cte, features) in aggregates {
            let alias = format!("a{}", joins.len() + 1);
            joins.push(format!(
                "LEFT JOIN {} AS {alias} ON {alias}._person = p.person_id",
                target.ident(&cte)
            ));
            for (fi, default) in features {
                let col = format!("{alias}.{}", target.ident(&model.features[fi].name));
                feature_sql.insert(
                    fi,
                    match default {
                        Some(d) => format!("coalesce({col}, {d})"),
                        None => col,
                    },
                );
            }
        }
    }
    // Code lists go first in the script: the source CTEs read them.
    let mut code_lists = Script::new(target);
    for &l in &lists_used {
        code_list(&model.codelists[l], &mut code_lists, model.features.iter().any(|f| {
            matches!(&f.kind, FeatureKind::Aggregate { codelist: Some(c), aggregate: Aggregate::CountDistinctCategories | Aggregate::ListCategories, .. } if *c == l)
        }));
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
    population_ctes(
        model,
        &population,
        &attribute_types,
        as_of,
        &from,
        &mut persons,
    )?;
    let mut select = vec!["p.*".to_string()];
    for (fi, feature) in model.features.iter().enumerate() {
        let FeatureKind::Aggregate { aggregate, .. } = &feature.kind else {
            continue;
        };
        let value = feature_sql.remove(&fi).unwrap_or_else(|| {
            // An optional table that is absent: null for everyone.
            format!(
                "CAST(NULL AS {})",
                expr::sql_type(target, aggregate.result_type(None))
            )
        });
        select.push(described(
            &feature.description,
            format!("{value} AS {}", target.ident(&feature.name)),
        ));
    }
    persons.cte(
        "persons",
        "Everyone in the population, with the aggregates of every source (zero, false or null where a person has no event).",
        format!(
            "SELECT\n    {}\n  FROM {} AS p\n  {}",
            select.join(",\n    "),
            target.ident("people"),
            joins.join("\n  ")
        ),
    );
    let last = derived_ctes(model, &typed, &mut persons);
    let last = cohort_ctes(model, &typed, last, &mut persons);
    let out = final_select(model, target, &last);

    let mut sql = header;
    sql.push_str(target.preamble());
    if timestamps_with_zone {
        sql.push_str(match target {
            // Timestamps are read as their UTC calendar date, as strata does.
            Target::DuckDb => "SET TimeZone = 'UTC';\n\n",
            Target::Spark => "SET spark.sql.session.timeZone = UTC;\n\n",
        });
    }
    sql.push_str("WITH\n");
    let all: Vec<String> = code_lists
        .ctes
        .into_iter()
        .chain(script.ctes)
        .chain(persons.ctes)
        .collect();
    sql.push_str(&all.join(",\n"));
    sql.push('\n');
    sql.push_str(&out);
    Ok(Compiled {
        sql,
        as_of,
        as_of_inferred,
    })
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

/// One event source bound to its table: the columns the script reads and
/// how.
struct Bound {
    /// Index into the model's sources.
    index: usize,
    table: Table,
    /// What the script reads for the table.
    from: String,
    /// The code columns as SQL text values, or one list.
    codes: Codes,
    /// Columns `where`s read, with their types (a word column is text).
    filter_columns: Vec<(String, Type)>,
    /// Columns `min`/`max` reduce, each read as `_v{i}`.
    value_columns: Vec<(String, Type)>,
}

enum Codes {
    None,
    /// One code per row.
    One(String),
    /// A list of codes per row (a list column, or several columns).
    Many(String),
}

impl Bound {
    fn new(model: &Model, index: usize, table: Table, options: &Options) -> Result<Bound> {
        let target = options.target;
        let spec = &model.sources[index];
        let date_ty = table.column_type(&spec.date, "the event date")?;
        if !table::is_date_type(date_ty) {
            return Err(Error::data(
                &table.location,
                format!(
                    "column `{}` (the event date of source `{}`) has type {date_ty}, not a date",
                    spec.date, spec.name
                ),
            )
            .with_help("store dates as Parquet DATE or TIMESTAMP, or name the right column in the rule file"));
        }
        table.column_type(&spec.person_id, "the person id")?;
        let columns = spec
            .first_codes
            .map_or(spec.codes.len(), |n| n.min(spec.codes.len()));
        let mut texts = Vec::new();
        let mut list = None;
        for c in &spec.codes[..columns] {
            let ty = table.column_type(c, "a code column")?;
            let col = target.ident(c);
            match ty {
                DataType::List(_) | DataType::LargeList(_) => {
                    list = Some(match spec.first_codes {
                        Some(n) => target.first_of(&col, n),
                        None => col,
                    });
                }
                t if table::canonical_type(t) == Some(Type::Str) => texts.push(col),
                _ => texts.push(format!("CAST({col} AS {})", target.text_type())),
            }
        }
        let codes = match (list, texts.len()) {
            (Some(l), _) => Codes::Many(l),
            (None, 0) => Codes::None,
            (None, 1) => Codes::One(texts.remove(0)),
            (None, _) => Codes::Many(target.list(&texts)),
        };
        let mut filter_columns: Vec<(String, Type)> = Vec::new();
        let mut value_columns: Vec<(String, Type)> = Vec::new();
        for feature in &model.features {
            let FeatureKind::Aggregate {
                source,
                filter,
                column,
                ..
            } = &feature.kind
            else {
                continue;
            };
            if *source != index {
                continue;
            }
            if let Some(f) = filter {
                for (name, span) in f.expr.names() {
                    if model.param(name).is_some() || filter_columns.iter().any(|(n, _)| n == name)
                    {
                        continue;
                    }
                    let ty = if spec.mapped.iter().any(|m| m.name == name) {
                        Type::Str
                    } else {
                        let field = table.schema.field_with_name(name).map_err(|_| {
                            model.expr_error(
                                f,
                                span,
                                format!(
                                    "table `{}` (source `{}`) has no column `{name}`",
                                    table.name, spec.name
                                ),
                            )
                        })?;
                        table::canonical_type(field.data_type()).ok_or_else(|| {
                            model.expr_error(
                                f,
                                span,
                                format!(
                                    "column `{name}` has type {}, which rules cannot compare",
                                    field.data_type()
                                ),
                            )
                        })?
                    };
                    filter_columns.push((name.to_string(), ty));
                }
            }
            if let Some(c) = column
                && !value_columns.iter().any(|(n, _)| n == c)
            {
                let ty = table::canonical_type(table.column_type(c, "a reduced column")?)
                    .unwrap_or(Type::Float);
                value_columns.push((c.clone(), ty));
            }
        }
        let from = match options.tables.iter().find(|(n, _)| n == &spec.table) {
            Some((_, reference)) => reference.clone(),
            None => target.parquet(&table.location, table.location.is_dir()),
        };
        Ok(Bound {
            index,
            table,
            from,
            codes,
            filter_columns,
            value_columns,
        })
    }

    fn multi(&self) -> bool {
        matches!(self.codes, Codes::Many(_))
    }

    /// Writes this source's CTEs; returns the CTEs that hold per-person
    /// aggregates, each with its features and their defaults.
    #[allow(clippy::type_complexity)]
    fn emit(
        &self,
        model: &Model,
        as_of: NaiveDate,
        script: &mut Script,
        lists_used: &mut BTreeSet<usize>,
    ) -> Result<Vec<(String, Vec<(usize, Option<String>)>)>> {
        let target = script.target;
        let spec = &model.sources[self.index];
        let name = &spec.name;
        let id = |s: &str| target.ident(s);
        let date = format!("CAST({} AS DATE)", id(&spec.date));
        let person = id(&spec.person_id);

        // Events: the rows strata reads, with the columns rules use.
        let mut columns = vec![format!("{person} AS _person"), format!("{date} AS _day")];
        if self.multi() {
            columns.push(format!("{} AS _event", target.row_id()));
        }
        match &self.codes {
            Codes::None => {}
            Codes::One(c) => columns.push(format!("{c} AS _code")),
            Codes::Many(l) => columns.push(format!("{l} AS _codes")),
        }
        for (c, ty) in &self.filter_columns {
            let value = match spec.mapped.iter().find(|m| &m.name == c) {
                Some(m) => {
                    let mut keys: Vec<(&String, &String)> = m.map.iter().collect();
                    keys.sort();
                    let whens: String = keys
                        .iter()
                        .map(|(k, w)| {
                            format!(" WHEN {} THEN {}", target.string(k), target.string(w))
                        })
                        .collect();
                    format!(
                        "CASE trim(CAST({} AS {})){whens} END",
                        id(&m.from),
                        target.text_type()
                    )
                }
                None => format!("CAST({} AS {})", id(c), expr::sql_type(target, *ty)),
            };
            columns.push(format!("{value} AS {}", id(c)));
        }
        for (i, (c, ty)) in self.value_columns.iter().enumerate() {
            columns.push(format!(
                "CAST({} AS {}) AS _v{i}",
                id(c),
                expr::sql_type(target, *ty)
            ));
        }
        let mut conditions = vec![
            format!("{person} IS NOT NULL"),
            format!("{date} >= {FIRST_PLAUSIBLE}"),
            format!("{date} <= DATE '{as_of}'"),
        ];
        if !spec.missing_dates.is_empty() {
            let missing: Vec<String> = spec
                .missing_dates
                .iter()
                .filter_map(|d| dates::from_day(*d))
                .map(|d| format!("DATE '{d}'"))
                .collect();
            conditions.push(format!("{date} NOT IN ({})", missing.join(", ")));
        }
        let mut head = Script::new(target);
        let mut tail = Script::new(target);
        let events = format!("{name}__events");
        head.cte(
            &events,
            &format!(
                "Source `{name}`: the rows of table `{}` strata reads (a person, a plausible date on or before the as-of date{}).",
                spec.table,
                if spec.missing_dates.is_empty() { "" } else { ", not a placeholder date" }
            ),
            format!(
                "SELECT\n    {}\n  FROM {}\n  WHERE {}",
                columns.join(",\n    "),
                self.from,
                conditions.join("\n    AND ")
            ),
        );
        let carried: Vec<String> = {
            let mut c = vec!["_person".to_string(), "_day".to_string()];
            if self.multi() {
                c.push("_event".into());
            }
            c.extend(self.filter_columns.iter().map(|(n, _)| id(n)));
            c.extend((0..self.value_columns.len()).map(|i| format!("_v{i}")));
            c
        };
        // One row per code, where some feature reads codes.
        let reads_codes = model.features.iter().any(|f| {
            matches!(&f.kind, FeatureKind::Aggregate { source, codelist, aggregate, .. }
                if *source == self.index && (codelist.is_some() || *aggregate == Aggregate::CountDistinctCodes))
        });
        let codes = if self.multi() && reads_codes {
            let codes = format!("{name}__codes");
            head.cte(
                &codes,
                &format!("Source `{name}`: one row per code of each event."),
                format!(
                    "SELECT {}, {} AS _code FROM {}",
                    carried.join(", "),
                    target.unnest("_codes"),
                    id(&events)
                ),
            );
            codes
        } else {
            events.clone()
        };

        // Features, by the rows they aggregate.
        let mut groups: BTreeMap<String, Vec<(usize, String, Option<String>)>> = BTreeMap::new();
        let mut separate: Vec<(String, Vec<(usize, Option<String>)>)> = Vec::new();
        let mut matched_lists: BTreeSet<usize> = BTreeSet::new();
        let mut category_lists: BTreeSet<usize> = BTreeSet::new();
        for (fi, feature) in model.features.iter().enumerate() {
            let FeatureKind::Aggregate {
                source,
                aggregate,
                codelist,
                category,
                window,
                filter,
                column,
            } = &feature.kind
            else {
                continue;
            };
            if *source != self.index {
                continue;
            }
            let mut cond: Vec<String> = Vec::new();
            if let Some(after) = window.exclusive_start(as_of).and_then(dates::from_day) {
                cond.push(format!("_day > DATE '{after}'"));
            }
            if let Some(f) = filter {
                let typed = typing::event_filter(model, f, &self.filter_columns)?;
                cond.push(expr::sql(target, &typed, &|slot| {
                    id(&self.filter_columns[slot].0)
                }));
            }
            let by_category = matches!(
                aggregate,
                Aggregate::CountDistinctCategories | Aggregate::ListCategories
            );
            let stream = match codelist {
                Some(l) => {
                    lists_used.insert(*l);
                    matched_lists.insert(*l);
                    let list = &model.codelists[*l];
                    if by_category {
                        category_lists.insert(*l);
                        if !category.is_empty() {
                            cond.push(format!("_category IN ({})", join_ids(category)));
                        }
                        format!("{name}__{}__categories", list.name)
                    } else {
                        if !category.is_empty() {
                            let items: Vec<u32> = list
                                .entries
                                .iter()
                                .enumerate()
                                .filter(|(_, e)| {
                                    e.categories
                                        .iter()
                                        .any(|c| category.binary_search(c).is_ok())
                                })
                                .map(|(i, _)| i as u32)
                                .collect();
                            cond.push(format!("_item IN ({})", join_ids(&items)));
                        }
                        format!("{name}__{}", list.name)
                    }
                }
                None if *aggregate == Aggregate::CountDistinctCodes => codes.clone(),
                None => events.clone(),
            };
            let listed_multi = codelist.is_some() && self.multi();
            let when = |value: &str| -> String {
                if cond.is_empty() {
                    value.to_string()
                } else {
                    format!("CASE WHEN {} THEN {value} END", cond.join(" AND "))
                }
            };
            let count = if listed_multi {
                when("_event")
            } else {
                when("1")
            };
            let count = if listed_multi {
                format!("count(DISTINCT {count})")
            } else if cond.is_empty() {
                "count(*)".to_string()
            } else {
                format!("count({count})")
            };
            let zero = Some("0".to_string());
            let (value, default) = match aggregate {
                Aggregate::Count => (count, zero),
                Aggregate::Exists => (format!("{count} > 0"), Some("FALSE".into())),
                Aggregate::FirstDate => (format!("min({})", when("_day")), None),
                Aggregate::LastDate => (format!("max({})", when("_day")), None),
                Aggregate::Min | Aggregate::Max => {
                    let c = column
                        .as_ref()
                        .expect("checked when loading: min/max name a column");
                    let v = self
                        .value_columns
                        .iter()
                        .position(|(n, _)| n == c)
                        .expect("collected above");
                    let f = if *aggregate == Aggregate::Min {
                        "min"
                    } else {
                        "max"
                    };
                    (format!("{f}({})", when(&format!("_v{v}"))), None)
                }
                Aggregate::CountDistinctCodes if codelist.is_none() => {
                    (format!("count(DISTINCT {})", when("trim(_code)")), zero)
                }
                Aggregate::CountDistinctCodes => {
                    (format!("count(DISTINCT {})", when("_item")), zero)
                }
                Aggregate::CountDistinctCategories => {
                    (format!("count(DISTINCT {})", when("_category")), zero)
                }
                Aggregate::ListCategories => {
                    let cte = format!("feature__{}", feature.name);
                    let filter = if cond.is_empty() {
                        String::new()
                    } else {
                        format!(" WHERE {}", cond.join(" AND "))
                    };
                    tail.cte(
                        &cte,
                        &format!("Feature `{}`: {}", feature.name, feature.description),
                        format!(
                            "SELECT _person, {} AS {}\n  FROM (SELECT DISTINCT _person, _category, _name FROM {}{filter}) AS c\n  GROUP BY _person",
                            target.joined("_name", "_category"),
                            id(&feature.name),
                            id(&stream)
                        ),
                    );
                    separate.push((cte, vec![(fi, None)]));
                    continue;
                }
                Aggregate::SumDistinctWeights => {
                    let cte = format!("feature__{}", feature.name);
                    let filter = if cond.is_empty() {
                        String::new()
                    } else {
                        format!(" WHERE {}", cond.join(" AND "))
                    };
                    tail.cte(
                        &cte,
                        &format!("Feature `{}`: {} (weights summed exactly, in millionths, each code once)", feature.name, feature.description),
                        format!(
                            "SELECT _person, CAST(sum(_weight) AS DOUBLE) / {} AS {}\n  FROM (SELECT DISTINCT _person, _item, _weight FROM {}{filter}) AS w\n  GROUP BY _person",
                            target.double(crate::rules::codelist::WEIGHT_SCALE as f64),
                            id(&feature.name),
                            id(&stream)
                        ),
                    );
                    separate.push((cte, vec![(fi, Some(target.double(0.0)))]));
                    continue;
                }
                Aggregate::MaxInAMonth | Aggregate::MaxIn30Days => {
                    let cte = format!("feature__{}", feature.name);
                    let filter = if cond.is_empty() {
                        String::new()
                    } else {
                        format!(" WHERE {}", cond.join(" AND "))
                    };
                    let events_of = if listed_multi {
                        format!(
                            "SELECT DISTINCT _person, _event, _day FROM {}{filter}",
                            id(&stream)
                        )
                    } else {
                        format!("SELECT _person, _day FROM {}{filter}", id(&stream))
                    };
                    let body = if *aggregate == Aggregate::MaxInAMonth {
                        format!(
                            "SELECT _person, max(_n) AS {}\n  FROM (SELECT _person, year(_day) * 12 + month(_day) AS _month, count(*) AS _n\n    FROM ({events_of}) AS e\n    GROUP BY 1, 2) AS m\n  GROUP BY _person",
                            id(&feature.name)
                        )
                    } else {
                        format!(
                            "SELECT _person, max(_n) AS {}\n  FROM (SELECT _person, count(*) OVER (PARTITION BY _person ORDER BY _daynumber RANGE BETWEEN CURRENT ROW AND 29 FOLLOWING) AS _n\n    FROM (SELECT _person, {} AS _daynumber FROM ({events_of}) AS e) AS d) AS w\n  GROUP BY _person",
                            id(&feature.name),
                            target.day_number("_day")
                        )
                    };
                    tail.cte(
                        &cte,
                        &format!("Feature `{}`: {}", feature.name, feature.description),
                        body,
                    );
                    separate.push((cte, vec![(fi, zero)]));
                    continue;
                }
            };
            let line = described(
                &feature.description,
                format!("{value} AS {}", id(&feature.name)),
            );
            groups.entry(stream).or_default().push((fi, line, default));
        }

        // Matches: each distinct code against each list, once.
        let mut matched = Script::new(target);
        for &l in &matched_lists {
            let list = &model.codelists[l];
            let codes_of = format!("{name}__{}__codes", list.name);
            let normal = normalise(target, list.system, "_code");
            let cl = id(&format!("codelist__{}", list.name));
            let weight = if has_weights(list) { ", e.weight" } else { "" };
            let body = match list.match_mode {
                MatchMode::Exact => format!(
                    "SELECT d._code, e.item{weight}\n  FROM (SELECT DISTINCT _code FROM {}) AS d\n  JOIN {cl} AS e ON e.code = {}",
                    id(&codes),
                    normalise(target, list.system, "d._code")
                ),
                MatchMode::Prefix => {
                    let longest = list.entries.iter().map(|e| e.code.len()).max().unwrap_or(1);
                    let lengths: Vec<String> = (1..=longest).map(|n| format!("({n})")).collect();
                    format!(
                        "SELECT _code, item{w}\n  FROM (SELECT d._code, e.item{weight}, row_number() OVER (PARTITION BY d._code ORDER BY p._length DESC) AS _n\n    FROM (SELECT DISTINCT _code, {normal} AS _normal FROM {}) AS d\n    JOIN (VALUES {}) AS p(_length) ON p._length <= length(d._normal)\n    JOIN {cl} AS e ON e.code = substr(d._normal, 1, p._length)) AS m\n  WHERE _n = 1",
                        id(&codes),
                        lengths.join(", "),
                        w = if has_weights(list) { ", weight" } else { "" },
                    )
                }
            };
            matched.cte(
                &codes_of,
                &format!(
                    "Source `{name}`: the entry of code list `{}` each distinct code matches{}.",
                    list.name,
                    if list.match_mode == MatchMode::Prefix {
                        " (the longest listed prefix)"
                    } else {
                        ""
                    }
                ),
                body,
            );
            let rows = format!("{name}__{}", list.name);
            let weight_col = if has_weights(list) {
                ", m.weight AS _weight"
            } else {
                ""
            };
            matched.cte(
                &rows,
                &format!("Source `{name}`: rows whose code is in code list `{}`.", list.name),
                format!(
                    "SELECT {}, m.item AS _item{weight_col}\n  FROM {} AS c\n  JOIN {} AS m ON m._code = c._code",
                    carried.iter().map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", "),
                    id(&codes),
                    id(&codes_of)
                ),
            );
            if category_lists.contains(&l) {
                matched.cte(
                    &format!("{rows}__categories"),
                    &format!("Source `{name}`: those rows once per category their entry scores."),
                    format!(
                        "SELECT r.*, k.category AS _category, k.name AS _name\n  FROM {} AS r\n  JOIN {} AS k ON k.item = r._item",
                        id(&rows),
                        id(&format!("codelist__{}__categories", list.name))
                    ),
                );
            }
        }
        // The matches come before the aggregates that read them.
        script.ctes.extend(head.ctes);
        script.ctes.extend(matched.ctes);
        script.ctes.extend(tail.ctes);

        let mut out = separate;
        for (stream, features) in groups {
            let cte = format!("{stream}__by_person");
            script.cte(
                &cte,
                &format!("Source `{name}`: features over `{stream}`, per person."),
                format!(
                    "SELECT\n    _person,\n    {}\n  FROM {}\n  GROUP BY _person",
                    features
                        .iter()
                        .map(|(_, l, _)| l.as_str())
                        .collect::<Vec<_>>()
                        .join(",\n    "),
                    id(&stream)
                ),
            );
            out.push((
                cte,
                features.into_iter().map(|(fi, _, d)| (fi, d)).collect(),
            ));
        }
        Ok(out)
    }
}

fn join_ids(ids: &[u32]) -> String {
    if ids.is_empty() {
        return "NULL".into();
    }
    ids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn has_weights(list: &Codelist) -> bool {
    list.entries.iter().any(|e| e.weight.is_some())
}

/// A raw code in the form the code list holds it (see
/// [`crate::rules::codelist::normalise`]).
fn normalise(target: Target, system: CodingSystem, code: &str) -> String {
    match system {
        // The `X` filler of 3-character codes padded to 4, then letters and
        // digits only, upper case.
        CodingSystem::Icd10 => format!(
            "upper({})",
            target.alphanumeric(&format!(
                "CASE WHEN length({code}) = 4 AND upper(substr({code}, 4, 1)) = 'X' THEN substr({code}, 1, 3) ELSE {code} END"
            ))
        ),
        CodingSystem::Snomed | CodingSystem::Dmd | CodingSystem::Other => format!("trim({code})"),
    }
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

/// `population`: one row per person, with age, presence and opt-outs.
fn population_ctes(
    model: &Model,
    table: &Table,
    attribute_types: &[(String, Type)],
    as_of: NaiveDate,
    from: &str,
    script: &mut Script,
) -> Result<()> {
    let target = script.target;
    let spec = &model.population;
    let id = |s: &str| target.ident(s);
    let text = target.text_type();
    let person_ty = table.column_type(&spec.person_id, "person_id")?;
    let person = match table::canonical_type(person_ty) {
        Some(Type::Int) => format!("CAST({} AS BIGINT)", id(&spec.person_id)),
        _ => id(&spec.person_id),
    };
    let mut columns = vec![
        format!("{person} AS person_id"),
        format!("CAST({} AS {text}) AS practice_code", id(&spec.practice)),
        format!("CAST({} AS {text}) AS pcn_code", id(&spec.pcn)),
        format!("CAST({} AS {text}) AS sex", id(&spec.sex)),
        format!("CAST({} AS DATE) AS _birth", id(&spec.birth_date)),
        format!("CAST({} AS DATE) AS _death", id(&spec.date_of_death)),
    ];
    for ((name, ty), column) in attribute_types.iter().zip(spec.attributes.values()) {
        columns.push(format!(
            "CAST({} AS {}) AS {}",
            id(column.get_ref()),
            expr::sql_type(target, *ty),
            id(name)
        ));
    }
    for (internal, named, role) in [
        ("_type1", &spec.type1_opt_out, "type1_opt_out"),
        (
            "_national",
            &spec.national_data_opt_out,
            "national_data_opt_out",
        ),
    ] {
        let column = match named {
            Some(c) => Some(c.as_str()),
            None if table.has_column(role) => Some(role),
            None => None,
        };
        let value = match column {
            Some(c) => {
                let ty = table.column_type(c, role)?;
                flag(target, &id(c), ty, role).ok_or_else(|| {
                    Error::data(
                        &table.location,
                        format!(
                            "the {role} column `{c}` has type {ty}, which is neither yes nor no"
                        ),
                    )
                    .with_help("store it as a boolean, 1/0 or Y/N")
                })?
            }
            None => "FALSE".to_string(),
        };
        columns.push(format!("{value} AS {internal}"));
    }
    columns.push(format!(
        "CASE WHEN count(*) OVER (PARTITION BY {person}) > 1 THEN {} ELSE TRUE END AS _unique",
        target.fail(&format!(
            "the population table `{}` has a person_id more than once; strata run keeps the first row in file order, which SQL cannot tell: remove the duplicates",
            spec.table
        ))
    ));
    let as_of_sql = format!("DATE '{as_of}'");
    let (purpose, _) = model.purpose();
    let withheld_from_lists = match purpose {
        Purpose::DirectCare => "_type1",
        Purpose::SecondaryUse => "(_type1 OR _national)",
    };
    let (y, m, d) = (as_of.year(), as_of.month(), as_of.day());
    script.cte(
        "population",
        &format!(
            "The population table `{}`: one row per person (null ids skipped), with their opt-out flags.",
            spec.table
        ),
        format!(
            "SELECT\n    {}\n  FROM {}\n  WHERE {} IS NOT NULL",
            columns.join(",\n    "),
            from,
            id(&spec.person_id)
        ),
    );
    script.cte(
        "people",
        &format!(
            "Age in completed years on {as_of} (a 29 February birthday falls on 1 March), presence on that date, and who the {} purpose keeps out of lists and counts.",
            purpose.name()
        ),
        format!(
            "SELECT\n    person_id, practice_code, pcn_code, sex,\n    CASE WHEN _birth IS NULL OR _birth > {as_of_sql} THEN NULL\n      ELSE CAST({y} - year(_birth) - CASE WHEN month(_birth) > {m} OR (month(_birth) = {m} AND day(_birth) > {d}) THEN 1 ELSE 0 END AS BIGINT) END AS age,\n    {}\n    (_birth IS NULL OR _birth <= {as_of_sql}) AND (_death IS NULL OR _death > {as_of_sql}) AS _alive,\n    {withheld_from_lists} AS _withheld,\n    (_type1 OR _national) AS _not_counted,\n    _unique\n  FROM {}",
            attribute_types
                .iter()
                .map(|(n, _)| format!("{},\n    ", id(n)))
                .collect::<String>(),
            id("population")
        ),
    );
    Ok(())
}

/// An opt-out flag column as true/false, as strata reads it: booleans,
/// 1/0, and Y/N, yes/no, true/false, 1/0 as text (any case); null or empty
/// is no opt-out; anything else stops the query.
fn flag(target: Target, column: &str, ty: &DataType, role: &str) -> Option<String> {
    let fail = target.fail(&format!(
        "the {role} column holds a value that is neither yes nor no: write true/false, 1/0 or Y/N"
    ));
    Some(match table::canonical_type(ty)? {
        Type::Bool => format!("coalesce({column}, FALSE)"),
        Type::Int => format!(
            "CASE WHEN {column} IS NULL OR {column} = 0 THEN FALSE WHEN {column} = 1 THEN TRUE ELSE {fail} END"
        ),
        Type::Str => {
            let v = format!("lower(trim(coalesce({column}, '')))");
            format!(
                "CASE WHEN {v} IN ('', 'n', 'no', 'false', '0') THEN FALSE WHEN {v} IN ('y', 'yes', 'true', '1') THEN TRUE ELSE {fail} END"
            )
        }
        _ => return None,
    })
}

/// Derived features, in CTEs by dependency level: each level's features
/// read only the levels before it. Returns the last CTE's name.
fn derived_ctes(model: &Model, typed: &typing::PersonLevel, script: &mut Script) -> String {
    let target = script.target;
    let first_feature = FIRST_ATTRIBUTE_SLOT + typed.attributes.len();
    let mut level: BTreeMap<usize, usize> = BTreeMap::new();
    for (fi, t) in &typed.derived {
        let mut deepest = 0;
        visit_slots(t, &mut |slot| {
            if slot >= first_feature
                && let Some(l) = level.get(&(slot - first_feature))
            {
                deepest = deepest.max(*l);
            }
        });
        level.insert(*fi, deepest + 1);
    }
    let column = |slot: usize| column_of(model, typed, target, slot);
    let mut last = "persons".to_string();
    let levels = level.values().copied().max().unwrap_or(0);
    for l in 1..=levels {
        let lines: Vec<String> = typed
            .derived
            .iter()
            .filter(|(fi, _)| level[fi] == l)
            .map(|(fi, t)| {
                let f = &model.features[*fi];
                described(
                    &f.description,
                    format!(
                        "{} AS {}",
                        expr::sql(target, t, &column),
                        target.ident(&f.name)
                    ),
                )
            })
            .collect();
        let name = format!("derived_{l}");
        script.cte(
            &name,
            &format!(
                "Derived features{}.",
                if l == 1 {
                    " from the aggregates"
                } else {
                    " that use the ones before"
                }
            ),
            format!(
                "SELECT\n    *,\n    {}\n  FROM {}",
                lines.join(",\n    "),
                target.ident(&last)
            ),
        );
        last = name;
    }
    last
}

fn visit_slots(t: &Typed, f: &mut impl FnMut(usize)) {
    match &t.node {
        Node::Slot(s) => f(*s),
        Node::Literal(_) => {}
        Node::ToFloat(a) | Node::Not(a) | Node::Neg(a) | Node::IsNull(a, _) => visit_slots(a, f),
        Node::And(a, b) | Node::Or(a, b) | Node::Compare(_, a, b) | Node::Arith(_, a, b) => {
            visit_slots(a, f);
            visit_slots(b, f);
        }
        Node::Case(whens, otherwise) => {
            for (c, v) in whens {
                visit_slots(c, f);
                visit_slots(v, f);
            }
            if let Some(o) = otherwise {
                visit_slots(o, f);
            }
        }
        Node::Call(_, args) => args.iter().for_each(|a| visit_slots(a, f)),
    }
}

/// The column of a person-level slot.
fn column_of(model: &Model, typed: &typing::PersonLevel, target: Target, slot: usize) -> String {
    let first_feature = FIRST_ATTRIBUTE_SLOT + typed.attributes.len();
    match slot {
        AGE_SLOT => "age".into(),
        SEX_SLOT => "sex".into(),
        s if s < first_feature => target.ident(&typed.attributes[s - FIRST_ATTRIBUTE_SLOT]),
        s => target.ident(&model.features[s - first_feature].name),
    }
}

/// Cohort flags and ranks. Returns the last CTE's name.
fn cohort_ctes(
    model: &Model,
    typed: &typing::PersonLevel,
    last: String,
    script: &mut Script,
) -> String {
    if model.cohorts.is_empty() {
        return last;
    }
    let target = script.target;
    let column = |slot: usize| column_of(model, typed, target, slot);
    let flags: Vec<String> = model
        .cohorts
        .iter()
        .zip(&typed.cohorts)
        .map(|(c, t)| {
            let mut flag = format!(
                "coalesce({}, FALSE) AND _alive AND NOT _withheld",
                expr::sql(target, &t.condition, &column)
            );
            if let Some(pcns) = &c.pcns {
                let codes: Vec<String> = pcns.iter().map(|(p, _)| target.string(p)).collect();
                let _ = write!(
                    flag,
                    " AND coalesce(pcn_code IN ({}), FALSE)",
                    codes.join(", ")
                );
            }
            described(
                &c.title,
                format!("{flag} AS {}", target.ident(&format!("_in_{}", c.name))),
            )
        })
        .collect();
    script.cte(
        "cohort_members",
        "Cohort members: the condition holds (null is not true), the person was in the population on the as-of date, and the purpose lets a list hold them.",
        format!("SELECT\n    *,\n    {}\n  FROM {}", flags.join(",\n    "), target.ident(&last)),
    );
    let ranks: Vec<String> = model
        .cohorts
        .iter()
        .zip(&typed.cohorts)
        .map(|(c, t)| {
            let member = target.ident(&format!("_in_{}", c.name));
            let mut keys: Vec<String> = t
                .rank
                .iter()
                .map(|(slot, desc)| {
                    format!("{} {} NULLS LAST", column(*slot), if *desc { "DESC" } else { "ASC" })
                })
                .collect();
            keys.push("person_id".into());
            format!(
                "CASE WHEN {member} THEN row_number() OVER (PARTITION BY {member}, pcn_code ORDER BY {}) END AS {}",
                keys.join(", "),
                target.ident(&format!("_rank_{}", c.name))
            )
        })
        .collect();
    script.cte(
        "cohort_ranks",
        "Ranks within each PCN: by the cohort's rank keys (nulls last), ties broken by person_id.",
        format!(
            "SELECT\n    *,\n    {}\n  FROM {}",
            ranks.join(",\n    "),
            target.ident("cohort_members")
        ),
    );
    "cohort_ranks".into()
}

/// The per-person table, as `patients.parquet` holds it.
fn final_select(model: &Model, target: Target, last: &str) -> String {
    let id = |s: &str| target.ident(s);
    let mut columns = vec![
        "person_id".to_string(),
        "practice_code".into(),
        "pcn_code".into(),
        "_alive AS alive".into(),
        "(_alive AND NOT _not_counted) AS counted".into(),
    ];
    columns.extend(model.features.iter().map(|f| id(&f.name)));
    for c in &model.cohorts {
        let rank = id(&format!("_rank_{}", c.name));
        columns.push(match c.top_per_pcn {
            Some(n) => format!("coalesce({rank} <= {n}, FALSE) AS {}", id(&c.name)),
            None => format!("{} AS {}", id(&format!("_in_{}", c.name)), id(&c.name)),
        });
    }
    for c in &model.cohorts {
        let rank = id(&format!("_rank_{}", c.name));
        let kept = match c.top_per_pcn {
            Some(n) => format!("CASE WHEN {rank} <= {n} THEN {rank} END"),
            None => rank,
        };
        columns.push(format!(
            "CAST({kept} AS INT) AS {}",
            id(&format!("{}_rank", c.name))
        ));
    }
    format!(
        "-- The per-person table: people the purpose withholds from patient-level\n-- outputs are left out, as in patients.parquet.\nSELECT\n  {}\nFROM {}\nWHERE NOT _withheld AND _unique\nORDER BY person_id;\n",
        columns.join(",\n  "),
        id(last)
    )
}

/// The latest event date across the sources the model reads (as
/// `strata run` infers it).
fn infer_as_of(model: &Model, sources: &[Bound]) -> Result<NaiveDate> {
    let mut latest: Option<dates::Day> = None;
    for b in sources {
        if let Some(d) = b.table.max_date(&model.sources[b.index].date)? {
            latest = Some(latest.map_or(d, |l| l.max(d)));
        }
    }
    latest.and_then(dates::from_day).ok_or_else(|| {
        Error::usage(format!(
            "cannot infer the as-of date: the tables {} reads hold no dated events",
            model.path.display()
        ))
        .with_help("give it with --as-of YYYY-MM-DD")
    })
}
