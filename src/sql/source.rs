//! One event source as SQL: the rows strata reads, its codes matched
//! against every code list once per distinct code, and its features
//! aggregated per person.
//!
//! A source's CTEs, in order: `SOURCE__events` (the rows, with the columns
//! rules use), `SOURCE__codes` (one row per code, for a list of codes per
//! event), `SOURCE__distinct_codes`, `SOURCE__entries` (each distinct
//! code's entry in each list, `_list` numbering the list),
//! `SOURCE__matched` (rows whose code is in a list, once per list) and
//! `SOURCE__LIST__categories`, then the aggregates: features over the same
//! rows share one `STREAM__by_person` (a list's features say `_list = N`);
//! those that need two steps (distinct weights, category names, busiest
//! month or 30 days) have their own `feature__NAME`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use super::{Script, Target, described, expr};
use crate::dates;
use crate::error::Result;
use crate::input::events;
use crate::input::table::{self, Table};
use crate::rules::check::Type;
use crate::rules::syntax::{CodingSystem, MatchMode};
use crate::rules::{Aggregate, Codelist, Feature, FeatureKind, Model, Source, typing};

/// The first plausible date: earlier event dates are skipped, earlier birth
/// dates read as unknown (see the data contract).
pub(super) const FIRST_PLAUSIBLE: &str = "DATE '1900-01-01'";

/// One event source bound to its table: the columns the script reads and
/// how.
pub(super) struct Bound {
    /// Index into the model's sources.
    pub index: usize,
    pub table: Table,
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

/// The rows a source's features aggregate: CTE names and the columns every
/// row carries.
struct Streams {
    events: String,
    codes: String,
    carried: Vec<String>,
}

/// How one feature is aggregated.
enum Aggregated {
    /// A column of the source's `STREAM__by_person` CTE.
    Grouped {
        stream: String,
        line: String,
        default: Option<String>,
    },
    /// A CTE of its own.
    Own {
        body: String,
        about: String,
        default: Option<String>,
    },
}

/// The per-person CTEs a source writes, each with its features and the
/// value a person with no rows gets (none: null).
pub(super) type Aggregates = Vec<(String, Vec<(usize, Option<String>)>)>;

impl Bound {
    pub fn new(
        model: &Model,
        index: usize,
        table: Table,
        target: Target,
        tables: &[(String, String)],
    ) -> Result<Bound> {
        let spec = &model.sources[index];
        let checked = crate::input::events::check(spec, &table)?;
        let codes = Bound::code_columns(spec, &checked, target);
        let (filter_columns, value_columns) = Bound::rule_columns(model, index, &table)?;
        let from = match tables.iter().find(|(n, _)| n == &spec.table) {
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

    /// The code columns as text, or a list of text per row (`first_codes`
    /// keeps a list's first values; of several columns, [`events::check`]
    /// kept the first).
    fn code_columns(spec: &Source, checked: &[events::CodeColumn], target: Target) -> Codes {
        let mut texts = Vec::new();
        let mut list = None;
        for c in checked {
            let col = target.ident(&c.name);
            match c.kind {
                events::CodeKind::List => {
                    list = Some(match spec.first_codes {
                        Some(n) => target.first_of(&col, n),
                        None => col,
                    });
                }
                events::CodeKind::Text => texts.push(col),
                // Integer codes match as the text of their digits.
                events::CodeKind::Integer => {
                    texts.push(format!("CAST({col} AS {})", target.text_type()))
                }
            }
        }
        match (list, texts.len()) {
            (Some(l), _) => Codes::Many(l),
            (None, 0) => Codes::None,
            (None, 1) => Codes::One(texts.remove(0)),
            (None, _) => Codes::Many(target.list(&texts)),
        }
    }

    /// The columns the source's `where`s read and its `min`/`max` reduce,
    /// with their types.
    #[allow(clippy::type_complexity)]
    fn rule_columns(
        model: &Model,
        index: usize,
        table: &Table,
    ) -> Result<(Vec<(String, Type)>, Vec<(String, Type)>)> {
        let spec = &model.sources[index];
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
                    } else if spec.measure.as_ref().is_some_and(|m| m.value == name) {
                        Type::Float
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
                && spec.measure.as_ref().is_some_and(|m| m.value == *c)
            {
                value_columns.push((c.clone(), Type::Float));
            } else if let Some(c) = column
                && !value_columns.iter().any(|(n, _)| n == c)
            {
                let ty = table::canonical_type(table.column_type(c, "a reduced column")?)
                    .unwrap_or(Type::Float);
                value_columns.push((c.clone(), ty));
            }
        }
        Ok((filter_columns, value_columns))
    }

    fn multi(&self) -> bool {
        matches!(self.codes, Codes::Many(_))
    }

    fn features<'m>(&self, model: &'m Model) -> impl Iterator<Item = (usize, &'m Feature)> {
        let index = self.index;
        model.features.iter().enumerate().filter(move |(_, f)| {
            matches!(&f.kind, FeatureKind::Aggregate { source, .. } if *source == index)
        })
    }

    /// Writes this source's CTEs into `script`; returns its per-person
    /// CTEs. `lists_used` collects the code lists the script must hold.
    pub fn emit(
        &self,
        model: &Model,
        as_of: NaiveDate,
        script: &mut Script,
        lists_used: &mut BTreeSet<usize>,
    ) -> Result<Aggregates> {
        let target = script.target;
        let streams = self.events(model, as_of, script);
        let mut groups: BTreeMap<String, Vec<(usize, String, Option<String>)>> = BTreeMap::new();
        let mut own = Script::new(target);
        let mut out: Aggregates = Vec::new();
        // (list, with categories)
        let mut matched: BTreeMap<usize, bool> = BTreeMap::new();
        for (fi, feature) in self.features(model) {
            if let FeatureKind::Aggregate {
                codelist: Some(l),
                aggregate,
                ..
            } = &feature.kind
            {
                lists_used.insert(*l);
                *matched.entry(*l).or_default() |= by_category(*aggregate);
            }
            match self.aggregate(model, as_of, feature, &streams, target)? {
                Aggregated::Grouped {
                    stream,
                    line,
                    default,
                } => groups.entry(stream).or_default().push((fi, line, default)),
                Aggregated::Own {
                    body,
                    about,
                    default,
                } => {
                    let cte = format!("feature__{}", feature.name);
                    own.cte(&cte, &about, body);
                    out.push((cte, vec![(fi, default)]));
                }
            }
        }
        // The matches come before the aggregates that read them.
        if !matched.is_empty() {
            self.matches(model, &matched, &streams, script);
        }
        script.ctes.extend(own.ctes);
        let name = &model.sources[self.index].name;
        for (stream, features) in groups {
            let cte = format!("{stream}__by_person");
            let lines: Vec<&str> = features.iter().map(|(_, l, _)| l.as_str()).collect();
            script.cte(
                &cte,
                &format!("Source `{name}`: features over `{stream}`, per person."),
                format!(
                    "SELECT\n    _person,\n    {}\n  FROM {}\n  GROUP BY _person",
                    lines.join(",\n    "),
                    target.ident(&stream)
                ),
            );
            out.push((
                cte,
                features.into_iter().map(|(fi, _, d)| (fi, d)).collect(),
            ));
        }
        Ok(out)
    }

    /// `SOURCE__events`, and `SOURCE__codes` where events carry several
    /// codes and some feature reads them.
    fn events(&self, model: &Model, as_of: NaiveDate, script: &mut Script) -> Streams {
        let target = script.target;
        let spec = &model.sources[self.index];
        let name = &spec.name;
        let id = |s: &str| target.ident(s);
        let date = format!("CAST({} AS DATE)", id(&spec.date));
        let person = id(&spec.person_id);
        let mut columns = vec![format!("{person} AS _person"), format!("{date} AS _day")];
        if self.multi() {
            columns.push(format!("{} AS _event", target.row_id()));
        }
        match &self.codes {
            Codes::None => {}
            Codes::One(c) => columns.push(format!("{c} AS _code")),
            Codes::Many(l) => columns.push(format!("{l} AS _codes")),
        }
        // A measure's value in its canonical unit (null if its unit is not
        // listed), as strata reads it.
        let measured = spec.measure.as_ref().map(|m| {
            // ASCII case only, as strata matches units: `lower` where the
            // unit is all ASCII (as many bytes as characters), `translate`
            // (about 20 times slower on DuckDB) only where it is not.
            let trimmed = target.trim_code(&format!(
                "coalesce(CAST({} AS {}), '')",
                id(&m.unit),
                target.text_type()
            ));
            let unit = format!(
                "CASE WHEN {} = length({trimmed}) THEN lower({trimmed}) ELSE translate({trimmed}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') END",
                target.byte_length(&trimmed)
            );
            let whens: String = m
                .units
                .iter()
                .map(|(u, f)| {
                    let product =
                        format!("CAST({} AS DOUBLE) * {}", id(&m.value), target.double(*f));
                    format!(
                        " WHEN {} THEN {}",
                        target.string(u),
                        target.round(&product, 6)
                    )
                })
                .collect();
            (m, format!("CASE {unit}{whens} END"))
        });
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
                        "CASE {}{whens} END",
                        target.trim_code(&format!(
                            "CAST({} AS {})",
                            id(&m.from),
                            target.text_type()
                        ))
                    )
                }
                None => match &measured {
                    Some((m, value)) if m.value == *c => value.clone(),
                    _ => format!("CAST({} AS {})", id(c), expr::sql_type(target, *ty)),
                },
            };
            columns.push(format!("{value} AS {}", id(c)));
        }
        for (i, (c, ty)) in self.value_columns.iter().enumerate() {
            match &measured {
                Some((m, value)) if m.value == *c => columns.push(format!("{value} AS _v{i}")),
                _ => {
                    let ty = expr::sql_type(target, *ty);
                    columns.push(format!("CAST({} AS {ty}) AS _v{i}", id(c)));
                }
            }
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
        if let Some((m, value)) = &measured {
            // Only the measure's codes are its rows: tested first, so that the
            // conversion below (a costly exact rounding) is not worked out
            // for the many rows of a shared table that other measures own.
            let list = model.codelists.iter().find(|l| l.name == m.codelist);
            if let (Some(list), Codes::One(code)) = (list, &self.codes) {
                conditions.push(listed(target, list, code));
            }
            // Rows whose value is unusable are rejected (features read the
            // measure's codes only, so other codes' rows do not matter).
            conditions.push(format!(
                "{value} BETWEEN {} AND {}",
                target.double(m.low),
                target.double(m.high)
            ));
        }
        let events = format!("{name}__events");
        script.cte(
            &events,
            &format!(
                "Source `{name}`: the rows of table `{}` strata reads (a person, a plausible date on or before the as-of date{}).",
                spec.table,
                if spec.missing_dates.is_empty() {
                    ""
                } else {
                    ", not a placeholder date"
                }
            ),
            format!(
                "SELECT\n    {}\n  FROM {}\n  WHERE {}",
                columns.join(",\n    "),
                self.from,
                conditions.join("\n    AND ")
            ),
        );
        let mut carried = vec!["_person".to_string(), "_day".to_string()];
        if self.multi() {
            carried.push("_event".into());
        }
        carried.extend(self.filter_columns.iter().map(|(n, _)| id(n)));
        carried.extend((0..self.value_columns.len()).map(|i| format!("_v{i}")));
        let reads_codes = self.features(model).any(|(_, f)| {
            matches!(&f.kind, FeatureKind::Aggregate { codelist, aggregate, .. }
                if codelist.is_some() || *aggregate == Aggregate::CountDistinctCodes)
        });
        let codes = if self.multi() && reads_codes {
            let codes = format!("{name}__codes");
            script.cte(
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
        Streams {
            events,
            codes,
            carried,
        }
    }

    /// The SQL of one aggregate feature.
    fn aggregate(
        &self,
        model: &Model,
        as_of: NaiveDate,
        feature: &Feature,
        streams: &Streams,
        target: Target,
    ) -> Result<Aggregated> {
        let FeatureKind::Aggregate {
            aggregate,
            codelist,
            category,
            window,
            filter,
            column,
            nth,
            ..
        } = &feature.kind
        else {
            unreachable!("only aggregates are asked for");
        };
        let id = |s: &str| target.ident(s);
        let source = &model.sources[self.index].name;
        // Which rows, and which of them count.
        let mut cond: Vec<String> = Vec::new();
        if let Some(after) = window.exclusive_start(as_of).and_then(dates::from_day) {
            cond.push(format!("_day > DATE '{after}'"));
        }
        if let Some(f) = filter {
            let typed = typing::event_filter(model, f, &self.filter_columns)?;
            cond.push(expr::sql(target, &typed, &|slot, _| {
                id(&self.filter_columns[slot].0)
            }));
        }
        let stream = match codelist {
            Some(l) => {
                let list = &model.codelists[*l];
                if by_category(*aggregate) {
                    if !category.is_empty() {
                        cond.push(format!("_category IN ({})", join_ids(category)));
                    }
                    format!("{source}__{}__categories", list.name)
                } else {
                    cond.insert(0, format!("_list = {l}"));
                    if !category.is_empty() {
                        let items = items_in(list, category);
                        cond.push(format!("_item IN ({})", join_ids(&items)));
                    }
                    format!("{source}__matched")
                }
            }
            None if *aggregate == Aggregate::CountDistinctCodes => streams.codes.clone(),
            None => streams.events.clone(),
        };
        // A row of a list's matches is a code of an event: events with
        // several codes count once.
        let per_code = codelist.is_some() && self.multi();
        let when = |value: &str| -> String {
            if cond.is_empty() {
                value.to_string()
            } else {
                format!("CASE WHEN {} THEN {value} END", cond.join(" AND "))
            }
        };
        let count = if per_code {
            format!("count(DISTINCT {})", when("_event"))
        } else if cond.is_empty() {
            "count(*)".to_string()
        } else {
            format!("count({})", when("1"))
        };
        let zero = Some("0".to_string());
        let grouped = |value: String, default: Option<String>| Aggregated::Grouped {
            stream: stream.clone(),
            line: described(
                &feature.description,
                format!("{value} AS {}", id(&feature.name)),
            ),
            default,
        };
        let filtered = if cond.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", cond.join(" AND "))
        };
        let about = format!("Feature `{}`: {}", feature.name, feature.description);
        let name = id(&feature.name);
        let rows = id(&stream);
        // The `_vN` of the column `min`, `max` and `total_days` read.
        let value_column = || {
            let c = column
                .as_ref()
                .expect("checked when loading: the aggregate names a column");
            self.value_columns
                .iter()
                .position(|(n, _)| n == c)
                .expect("collected when bound")
        };
        Ok(match aggregate {
            Aggregate::Count => grouped(count, zero),
            Aggregate::Exists => grouped(format!("{count} > 0"), Some("FALSE".into())),
            Aggregate::FirstDate => grouped(format!("min({})", when("_day")), None),
            Aggregate::LastDate => grouped(format!("max({})", when("_day")), None),
            Aggregate::Min | Aggregate::Max => {
                let v = value_column();
                let f = if *aggregate == Aggregate::Min {
                    "min"
                } else {
                    "max"
                };
                // strata skips NaN; SQL engines would order it above every number.
                let value = match self.value_columns[v].1 {
                    Type::Float => format!("CASE WHEN NOT isnan(_v{v}) THEN _v{v} END"),
                    _ => format!("_v{v}"),
                };
                grouped(format!("{f}({})", when(&value)), None)
            }
            Aggregate::Mean => {
                let v = value_column();
                let value = format!("CAST(_v{v} AS DOUBLE)");
                let value = format!("CASE WHEN NOT isnan({value}) THEN {value} END");
                if per_code {
                    Aggregated::Own {
                        body: format!(
                            "SELECT _person, avg(_x) AS {name}\n  FROM (SELECT DISTINCT _person, _event, {value} AS _x FROM {rows}{filtered}) AS e\n  GROUP BY _person"
                        ),
                        about,
                        default: None,
                    }
                } else {
                    grouped(format!("avg({})", when(&value)), None)
                }
            }
            Aggregate::Latest => {
                let v = value_column();
                let value = format!("CAST(_v{v} AS DOUBLE)");
                let mut kept = cond.clone();
                kept.push(format!("_v{v} IS NOT NULL"));
                kept.push(format!("NOT isnan({value})"));
                // Latest first; of one day's values, the lowest first (as
                // strata orders them); each event once.
                let distinct = if per_code { "DISTINCT " } else { "" };
                Aggregated::Own {
                    body: format!(
                        "SELECT _person, _x AS {name}\n  FROM (SELECT _person, _x, row_number() OVER (PARTITION BY _person ORDER BY _day DESC, _x ASC) AS _rank\n    FROM (SELECT {distinct}_person, {}_day, {value} AS _x FROM {rows} WHERE {}) AS e) AS r\n  WHERE _rank = {nth}",
                        if per_code { "_event, " } else { "" },
                        kept.join(" AND ")
                    ),
                    about,
                    default: None,
                }
            }
            Aggregate::TotalDays => {
                let v = value_column();
                // An end before the start counts no days, as in strata.
                let days = format!(
                    "greatest({}, 0)",
                    target.days_between(&format!("_v{v}"), "_day")
                );
                if per_code {
                    // One row per matching code: each event once.
                    Aggregated::Own {
                        body: format!(
                            "SELECT _person, sum(_days) AS {name}\n  FROM (SELECT DISTINCT _person, _event, {days} AS _days FROM {rows}{filtered}) AS e\n  GROUP BY _person"
                        ),
                        about,
                        default: zero,
                    }
                } else {
                    grouped(format!("coalesce(sum({}), 0)", when(&days)), zero)
                }
            }
            Aggregate::CountDistinctCodes if codelist.is_none() => grouped(
                format!("count(DISTINCT {})", when(&target.trim_code("_code"))),
                zero,
            ),
            Aggregate::CountDistinctCodes => {
                grouped(format!("count(DISTINCT {})", when("_item")), zero)
            }
            Aggregate::CountDistinctCategories => {
                grouped(format!("count(DISTINCT {})", when("_category")), zero)
            }
            Aggregate::ListCategories => Aggregated::Own {
                body: format!(
                    "SELECT _person, {} AS {name}\n  FROM (SELECT DISTINCT _person, _category, _name FROM {rows}{filtered}) AS c\n  GROUP BY _person",
                    target.joined("_name", "_category"),
                ),
                about,
                default: None,
            },
            Aggregate::SumDistinctWeights => Aggregated::Own {
                body: format!(
                    "SELECT _person, CAST(sum(_weight) AS DOUBLE) / {} AS {name}\n  FROM (SELECT DISTINCT _person, _item, _weight FROM {rows}{filtered}) AS w\n  GROUP BY _person",
                    target.double(crate::rules::codelist::WEIGHT_SCALE as f64),
                ),
                about: format!("{about} (weights summed exactly, in millionths, each code once)"),
                default: Some(target.double(0.0)),
            },
            Aggregate::MaxInAMonth | Aggregate::MaxIn30Days => {
                let events = if per_code {
                    format!("SELECT DISTINCT _person, _event, _day FROM {rows}{filtered}")
                } else {
                    format!("SELECT _person, _day FROM {rows}{filtered}")
                };
                let body = if *aggregate == Aggregate::MaxInAMonth {
                    format!(
                        "SELECT _person, max(_n) AS {name}\n  FROM (SELECT _person, year(_day) * 12 + month(_day) AS _month, count(*) AS _n\n    FROM ({events}) AS e\n    GROUP BY 1, 2) AS m\n  GROUP BY _person"
                    )
                } else {
                    format!(
                        "SELECT _person, max(_n) AS {name}\n  FROM (SELECT _person, count(*) OVER (PARTITION BY _person ORDER BY _daynumber RANGE BETWEEN CURRENT ROW AND 29 FOLLOWING) AS _n\n    FROM (SELECT _person, {} AS _daynumber FROM ({events}) AS e) AS d) AS w\n  GROUP BY _person",
                        target.day_number("_day")
                    )
                };
                Aggregated::Own {
                    body,
                    about,
                    default: zero,
                }
            }
        })
    }

    /// The rows of the source's codes that some code list holds, for all
    /// its lists at once: `SOURCE__distinct_codes` (each code once),
    /// `SOURCE__entries` (each distinct code's entry in each list, matched
    /// once per code), `SOURCE__matched` (each row once per list its code
    /// is in, with the list's number as `_list`) and, for category
    /// aggregates, `SOURCE__LIST__categories`. One pass over the events and
    /// one join, whatever the number of lists: with a CTE and a join per
    /// list, a SQL engine read the GP events once per list (33 times for
    /// the default model).
    fn matches(
        &self,
        model: &Model,
        lists: &BTreeMap<usize, bool>,
        streams: &Streams,
        script: &mut Script,
    ) {
        let target = script.target;
        let id = |s: &str| target.ident(s);
        let name = &model.sources[self.index].name;
        let distinct = format!("{name}__distinct_codes");
        script.cte(
            &distinct,
            &format!("Source `{name}`: each of its codes once."),
            format!("SELECT DISTINCT _code FROM {}", id(&streams.codes)),
        );
        let distinct = id(&distinct);
        let weights = lists.keys().any(|&l| has_weights(&model.codelists[l]));
        let weight = |list: &Codelist, of: &str| match (weights, has_weights(list)) {
            (false, _) => String::new(),
            (true, true) => format!(", CAST({of}weight AS BIGINT) AS weight"),
            (true, false) => ", CAST(NULL AS BIGINT) AS weight".into(),
        };
        // On Spark the exact lists of one coding system are stacked and
        // joined to the distinct codes once (a join per list had Spark, which
        // computes a CTE again for each reader, find the distinct codes once
        // per list). DuckDB keeps the distinct codes and takes a join per
        // list: stacked, its script took 22.3 s against 17.5 s at 1M persons.
        // A list of prefixes takes its own join.
        let mut exact: Vec<(CodingSystem, Vec<usize>)> = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        for &l in lists.keys() {
            let list = &model.codelists[l];
            match list.match_mode {
                MatchMode::Exact => match exact
                    .iter_mut()
                    .find(|(s, _)| target == Target::Spark && *s == list.system)
                {
                    Some((_, ls)) => ls.push(l),
                    None => exact.push((list.system, vec![l])),
                },
                MatchMode::Prefix => {
                    // Every prefix of each code, joined on equality; the
                    // longest listed one wins.
                    let longest = list.entries.iter().map(|e| e.code.len()).max().unwrap_or(1);
                    let lengths: Vec<String> = (1..=longest).map(|n| format!("({n})")).collect();
                    prefixes.push(format!(
                        "  -- code list `{}` (the longest listed prefix)\n  SELECT _code, {l} AS _list, item{w}\n  FROM (SELECT d._code, e.item{}, row_number() OVER (PARTITION BY d._code ORDER BY p._length DESC) AS _n\n    FROM (SELECT _code, {} AS _normal FROM {distinct}) AS d\n    JOIN (VALUES {}) AS p(_length) ON p._length <= length(d._normal)\n    JOIN {} AS e ON e.code = substr(d._normal, 1, p._length)) AS m\n  WHERE _n = 1",
                        list.name,
                        weight(list, "e."),
                        normalise(target, list.system, "_code"),
                        lengths.join(", "),
                        id(&format!("codelist__{}", list.name)),
                        w = if weights { ", weight" } else { "" },
                    ));
                }
            }
        }
        let mut entries: Vec<String> = Vec::new();
        for (system, ls) in exact {
            let names: Vec<String> = ls
                .iter()
                .map(|&l| format!("`{}`", model.codelists[l].name))
                .collect();
            let stacked: Vec<String> = ls
                .iter()
                .map(|&l| {
                    let list = &model.codelists[l];
                    format!(
                        "SELECT code, {l} AS _list, item{} FROM {}",
                        weight(list, ""),
                        id(&format!("codelist__{}", list.name))
                    )
                })
                .collect();
            entries.push(format!(
                    "  -- code lists {}\n  SELECT d._code, e._list, e.item{}\n  FROM {distinct} AS d\n  JOIN (\n    {}\n  ) AS e ON e.code = {}",
                    names.join(", "),
                    if weights { ", e.weight" } else { "" },
                    stacked.join("\n    UNION ALL\n    "),
                    normalise(target, system, "d._code")
            ));
        }
        entries.extend(prefixes);
        let entries_of = format!("{name}__entries");
        script.cte(
            &entries_of,
            &format!("Source `{name}`: the entry each distinct code matches in each code list."),
            entries.join("\n  UNION ALL\n"),
        );
        let rows = format!("{name}__matched");
        let carried: Vec<String> = streams.carried.iter().map(|c| format!("c.{c}")).collect();
        script.cte(
            &rows,
            &format!(
                "Source `{name}`: rows whose code is in a code list, once per list (`_list`)."
            ),
            format!(
                "SELECT {}, m._list, m.item AS _item{}\n  FROM {} AS c\n  JOIN {} AS m ON m._code = c._code",
                carried.join(", "),
                if weights { ", m.weight AS _weight" } else { "" },
                id(&streams.codes),
                id(&entries_of)
            ),
        );
        for (&l, _) in lists.iter().filter(|(_, categories)| **categories) {
            let list = &model.codelists[l];
            script.cte(
                &format!("{name}__{}__categories", list.name),
                &format!(
                    "Source `{name}`: rows whose code is in code list `{}`, once per category their entry scores.",
                    list.name
                ),
                format!(
                    "SELECT r.*, k.category AS _category, k.name AS _name\n  FROM {} AS r\n  JOIN {} AS k ON k.item = r._item\n  WHERE r._list = {l}",
                    id(&rows),
                    id(&format!("codelist__{}__categories", list.name))
                ),
            );
        }
    }
}

/// Does the aggregate count or name categories (one row per category)?
pub(super) fn by_category(aggregate: Aggregate) -> bool {
    matches!(
        aggregate,
        Aggregate::CountDistinctCategories | Aggregate::ListCategories
    )
}

/// The entries of `list` in any of `categories`.
fn items_in(list: &Codelist, categories: &[u32]) -> Vec<u32> {
    list.entries
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            e.categories
                .iter()
                .any(|c| categories.binary_search(c).is_ok())
        })
        .map(|(i, _)| i as u32)
        .collect()
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

pub(super) fn has_weights(list: &Codelist) -> bool {
    list.entries.iter().any(|e| e.weight.is_some())
}

/// Is `code` (a raw code) in `list`: one of its codes, or for a list of
/// prefixes, starting with one? A condition on the row itself, without the
/// join [`Bound::matches`] uses to find each code's entry. Prefixes are
/// grouped by their length in characters, as SQL's `substr` counts.
fn listed(target: Target, list: &Codelist, code: &str) -> String {
    let code = normalise(target, list.system, code);
    let mut by_length: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for e in &list.entries {
        let length = match list.match_mode {
            MatchMode::Exact => 0,
            MatchMode::Prefix => e.code.chars().count(),
        };
        by_length
            .entry(length)
            .or_default()
            .push(target.string(&e.code));
    }
    let tests: Vec<String> = by_length
        .into_iter()
        .map(|(length, codes)| {
            let codes = codes.join(", ");
            match length {
                0 => format!("{code} IN ({codes})"),
                n => format!("substr({code}, 1, {n}) IN ({codes})"),
            }
        })
        .collect();
    match tests.len() {
        0 => "FALSE".into(),
        1 => tests.into_iter().next().expect("one"),
        _ => format!("({})", tests.join(" OR ")),
    }
}

/// A raw code in the form the code list holds it (see
/// [`crate::rules::codelist::normalise`]).
fn normalise(target: Target, system: CodingSystem, code: &str) -> String {
    match system {
        // The `X` filler of 3-character codes padded to 4, then letters and
        // digits only, upper case.
        // (Four bytes, as strata counts them, whatever the characters.)
        CodingSystem::Icd10 => format!(
            "upper({})",
            target.alphanumeric(&format!(
                "CASE WHEN {} = 4 AND upper(right({code}, 1)) = 'X' THEN left({code}, length({code}) - 1) ELSE {code} END",
                target.byte_length(code)
            ))
        ),
        CodingSystem::Snomed | CodingSystem::Dmd | CodingSystem::Other => target.trim_code(code),
    }
}
