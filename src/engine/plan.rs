//! Planning: binds a checked [`Model`] to the data it will run on.
//!
//! Here every table a rule file names is opened, every column is checked
//! against the data contract, every expression is typed against the real
//! column types, and each source gets the list of aggregates one scan of it
//! will feed. One scan per table, whatever the number of features and
//! cohorts: adding a cohort never adds a pass over the event data.

use std::path::Path;

use chrono::NaiveDate;

use crate::dates::{self, Day};
use crate::error::Result;
use crate::input::Population;
use crate::input::table::{self, Table};
use crate::rules::check::{Type, Typed};
use crate::rules::typing;
use crate::rules::{Aggregate, FeatureKind, Located, MappedColumn, Model, did_you_mean};

/// The coded column of a source.
pub struct CodeColumn {
    pub name: String,
    /// A list of codes per row (e.g. all diagnoses of an admission).
    pub is_list: bool,
    /// Only a list's first N values count (the source's `first_codes`).
    pub first: Option<usize>,
}

#[derive(Clone)]
pub struct AggregatePlan {
    /// The feature of the model this aggregate computes (and those in
    /// `also`, computed alike).
    pub feature: usize,
    /// The scan's output column it fills: the feature's index, or, when one
    /// scan serves several dates ([`Plan::repeat_for_dates`]), one column
    /// per (date, feature).
    pub column: usize,
    pub aggregate: Aggregate,
    /// Index into [`SourcePlan::codelists`].
    pub codelist: Option<usize>,
    /// Only entries in these categories of the code list (sorted ids);
    /// empty = every entry.
    pub category: Vec<u32>,
    /// Events must be strictly after this day (the window's exclusive start).
    pub after: Option<Day>,
    /// Events must be on or before this day: the as-of date (or, for an
    /// outcome, its window's last day).
    pub until: Day,
    /// Typed against [`SourcePlan::filter_columns`].
    pub filter: Option<Typed>,
    /// The reduced column for `min`/`max`: index into
    /// [`SourcePlan::value_columns`], and its type.
    pub value: Option<(usize, Type)>,
    /// `latest`: the N-th latest value (1 = the latest).
    pub nth: usize,
    /// The other features this aggregate's state fills: those computed
    /// alike ([`Plan::share_alike`]).
    pub also: Vec<Fill>,
}

/// A feature's column that an aggregate's state fills, and the aggregate
/// that makes the column of the state: the aggregate's own, or another of
/// the same state (a count of a bitset's categories and their list).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fill {
    pub feature: usize,
    pub column: usize,
    pub aggregate: Aggregate,
}

impl AggregatePlan {
    /// Every feature this aggregate fills: its own, then those computed
    /// alike.
    pub fn fills(&self) -> impl Iterator<Item = Fill> + '_ {
        let own = Fill {
            feature: self.feature,
            column: self.column,
            aggregate: self.aggregate,
        };
        std::iter::once(own).chain(self.also.iter().copied())
    }

    /// The aggregates that make columns of this aggregate's state, each
    /// once: its own first, then any other of the same state.
    pub fn kinds(&self) -> Vec<Aggregate> {
        let mut kinds: Vec<Aggregate> = Vec::new();
        for fill in self.fills() {
            if !kinds.contains(&fill.aggregate) {
                kinds.push(fill.aggregate);
            }
        }
        kinds
    }
}

/// The aggregates whose states are alike: a list of categories is kept
/// as their count is, a bitset of the categories met (or their keys).
fn state_of(aggregate: Aggregate) -> Aggregate {
    match aggregate {
        Aggregate::ListCategories => Aggregate::CountDistinctCategories,
        other => other,
    }
}

/// A measure source's value and unit: rows of its code list whose value
/// cannot be read in the canonical unit are rejected before any aggregate
/// sees them, and every aggregate and `where` reads the converted value.
pub struct MeasurePlan {
    pub measure: crate::rules::Measure,
    /// Index into [`SourcePlan::codelists`].
    pub codelist: usize,
    /// Index into [`SourcePlan::value_columns`] of the value column.
    pub value: usize,
}

pub struct SourcePlan {
    pub name: String,
    pub table: Table,
    pub person_column: String,
    pub date_column: String,
    /// Code columns, matched as one list per row.
    pub codes: Vec<CodeColumn>,
    /// Dates read as missing.
    pub missing_dates: Vec<Day>,
    /// Word columns: (name, from column, raw value -> word).
    pub mapped: Vec<MappedColumn>,
    /// Model code-list indices this source matches against.
    pub codelists: Vec<usize>,
    pub filter_columns: Vec<String>,
    pub value_columns: Vec<String>,
    /// Each aggregate's copies, one per as-of date (1 for a run): the
    /// aggregates are the first `aggregates.len() / dates` repeated, date
    /// by date ([`Plan::repeat_for_dates`]).
    pub dates: usize,
    pub aggregates: Vec<AggregatePlan>,
    pub measure: Option<MeasurePlan>,
}

impl SourcePlan {
    /// The aggregates of one date (copies of them follow).
    pub fn distinct_aggregates(&self) -> usize {
        self.aggregates.len() / self.dates
    }

    /// [`Plan::share_alike`] for this source's aggregates.
    fn share_alike(&mut self, windows: &impl Fn(&AggregatePlan) -> Vec<(Option<Day>, Day)>) {
        assert_eq!(
            self.dates, 1,
            "aggregates are shared before they are repeated"
        );
        // Everything that decides an aggregate's values; a `where` by its
        // checked tree's debug form, which tells a literal -0.0 from 0.0
        // (`==` on the tree does not).
        let keys: Vec<_> = self
            .aggregates
            .iter()
            .map(|a| {
                (
                    state_of(a.aggregate),
                    a.codelist,
                    a.category.clone(),
                    a.filter.as_ref().map(|f| format!("{f:?}")),
                    a.value,
                    a.nth,
                    windows(a),
                )
            })
            .collect();
        // Each aggregate's first alike (itself where none is before it).
        let first: Vec<usize> = (0..keys.len())
            .map(|j| (0..j).find(|&i| keys[i] == keys[j]).unwrap_or(j))
            .collect();
        for (j, &i) in first.iter().enumerate() {
            if i != j {
                let fills: Vec<Fill> = self.aggregates[j].fills().collect();
                self.aggregates[i].also.extend(fills);
            }
        }
        let mut j = 0;
        self.aggregates.retain(|_| {
            j += 1;
            first[j - 1] == j - 1
        });
    }

    /// The stored column behind a name a rule uses: a mapped column's source.
    pub fn stored_column<'a>(&'a self, name: &'a str) -> &'a str {
        self.mapped
            .iter()
            .find(|m| m.name == name)
            .map_or(name, |m| m.from.as_str())
    }

    /// The days some aggregate's window takes, as (exclusive start, last
    /// day): a row dated outside them is no aggregate's. The start is `None`
    /// when some window has none.
    pub fn days_taken(&self) -> (Option<Day>, Day) {
        let starts: Option<Vec<Day>> = self.aggregates.iter().map(|a| a.after).collect();
        let after = starts.and_then(|s| s.into_iter().min());
        let until = self.aggregates.iter().map(|a| a.until).max();
        (after, until.unwrap_or(Day::MAX))
    }

    /// Every column one scan of this source reads.
    pub fn columns(&self) -> Vec<&str> {
        let mut cols: Vec<&str> = vec![&self.person_column, &self.date_column];
        cols.extend(self.codes.iter().map(|c| c.name.as_str()));
        cols.extend(self.filter_columns.iter().map(|c| self.stored_column(c)));
        cols.extend(self.value_columns.iter().map(String::as_str));
        if let Some(m) = &self.measure {
            cols.push(&m.measure.unit);
        }
        cols.sort_unstable();
        cols.dedup();
        cols
    }
}

/// An optional source whose table is not in the data folder.
#[derive(Debug, Clone)]
pub struct AbsentSource {
    pub source: String,
    pub table: String,
}

#[derive(Clone, Copy)]
pub struct FeaturePlan {
    pub ty: Type,
    /// The feature's column among the person-level slots.
    pub slot: usize,
}

/// A cohort's typed condition and rank keys.
pub use crate::rules::typing::TypedCohort as CohortPlan;
pub use crate::rules::typing::{AGE_SLOT, FIRST_ATTRIBUTE_SLOT, SEX_SLOT};

pub struct Plan<'m> {
    pub model: &'m Model,
    pub as_of: NaiveDate,
    /// True when the as-of date was taken from the data.
    pub as_of_inferred: bool,
    pub population: Population,
    pub sources: Vec<SourcePlan>,
    /// Optional sources whose tables the data folder does not have.
    pub absent: Vec<AbsentSource>,
    /// Types of the person-level slots.
    pub slot_types: Vec<Type>,
    pub attributes: Vec<String>,
    pub features: Vec<FeaturePlan>,
    /// Derived features in evaluation order: (feature index, expression).
    pub derived: Vec<(usize, Typed)>,
    pub cohorts: Vec<CohortPlan>,
}

pub fn plan<'m>(model: &'m Model, data: &Path, as_of: Option<NaiveDate>) -> Result<Plan<'m>> {
    plan_needed(model, data, as_of, None)
}

/// [`plan`], with only the features `needed` marks (every one with `None`)
/// scanned and derived; the others are typed but left null. Their
/// sources' tables are still opened and checked, and their event filters
/// typed, so a rule file is refused exactly as by [`plan`]; but a table
/// left with no aggregate is not scanned, so errors in its data are not
/// found.
pub fn plan_needed<'m>(
    model: &'m Model,
    data: &Path,
    as_of: Option<NaiveDate>,
    needed: Option<&[bool]>,
) -> Result<Plan<'m>> {
    let needed = |fi: usize| needed.is_none_or(|n| n[fi]);
    crate::input::unshadowed(model)?;
    crate::input::data_folder(data)?;
    let population = Population::load(data, &model.population)?;
    let attribute_types = Population::attribute_types(&model.population, &population.table)?;

    // Sources that some feature reads, with their aggregates.
    let mut sources: Vec<SourcePlan> = Vec::new();
    let mut source_of: Vec<Option<usize>> = vec![None; model.sources.len()];
    let mut absent: Vec<AbsentSource> = Vec::new();
    for feature in &model.features {
        let FeatureKind::Aggregate { source, .. } = &feature.kind else {
            continue;
        };
        let s = &model.sources[*source];
        if source_of[*source].is_none() && !absent.iter().any(|a| a.source == s.name) {
            let needed_by = format!("source `{}` of {}", s.name, model.path.display());
            let table = match Table::find(data, &s.table)? {
                Some(table) => table,
                None if s.optional => {
                    if !absent.iter().any(|a| a.table == s.table) {
                        tracing::warn!(table = %s.table, "optional table absent: the features of its sources are null");
                    }
                    absent.push(AbsentSource {
                        source: s.name.clone(),
                        table: s.table.clone(),
                    });
                    continue;
                }
                None => Table::open(data, &s.table, &needed_by)?,
            };
            if table.rows() == 0 {
                tracing::warn!(table = %table.location.display(), "table has no rows: every feature read from it is zero, false or null");
            }
            let codes = crate::input::events::check(s, &table)?
                .into_iter()
                .map(|c| CodeColumn {
                    name: c.name,
                    is_list: c.kind == crate::input::events::CodeKind::List,
                    first: s.first_codes,
                })
                .collect();
            // Its columns were checked with the source's (events::check).
            let measure = s.measure.as_ref().map(|m| MeasurePlan {
                measure: m.clone(),
                codelist: 0,
                value: 0,
            });
            source_of[*source] = Some(sources.len());
            sources.push(SourcePlan {
                name: s.name.clone(),
                table,
                person_column: s.person_id.clone(),
                date_column: s.date.clone(),
                codes,
                missing_dates: s.missing_dates.clone(),
                mapped: s.mapped.clone(),
                filter_columns: Vec::new(),
                value_columns: measure
                    .as_ref()
                    .map(|m| vec![m.measure.value.clone()])
                    .unwrap_or_default(),
                dates: 1,
                aggregates: Vec::new(),
                // The measure's list is the source's first.
                codelists: s
                    .measure
                    .iter()
                    .map(|m| {
                        model
                            .codelists
                            .iter()
                            .position(|c| c.name == m.codelist)
                            .expect("checked when loading: a measure's code list is declared")
                    })
                    .collect(),
                measure,
            });
        }
    }

    let as_of_given = as_of;
    let (as_of, as_of_inferred) = match as_of_given {
        Some(d) => (d, false),
        None => {
            let tables = sources
                .iter()
                .map(|s| (&s.table, s.date_column.as_str(), &s.missing_dates[..]));
            let today = chrono::Local::now().date_naive();
            (table::inferred_as_of(tables, &model.path, today)?, true)
        }
    };

    let attributes: Vec<String> = attribute_types.iter().map(|(n, _)| n.clone()).collect();
    let first_feature_slot = FIRST_ATTRIBUTE_SLOT + attributes.len();
    // The type of the column each `min`/`max` reduces, by feature.
    let mut column_types: Vec<Option<Type>> = vec![None; model.features.len()];

    // Aggregates: typed against their source's columns.
    let mut features: Vec<FeaturePlan> = Vec::with_capacity(model.features.len());
    for (fi, feature) in model.features.iter().enumerate() {
        let slot = first_feature_slot + fi;
        let FeatureKind::Aggregate {
            source,
            aggregate,
            codelist,
            category,
            window,
            filter,
            column,
            nth,
        } = &feature.kind
        else {
            // Typed below, once the types of the features it uses are known.
            features.push(FeaturePlan {
                ty: Type::Null,
                slot,
            });
            continue;
        };
        let Some(sp) = source_of[*source] else {
            // An optional table that is absent: null for everyone. A `min`
            // or `max` takes its type from a column that is not there (a
            // measure's value is a number whatever its stored type).
            if model.sources[*source].measure.is_some() {
                let ty = aggregate.result_type(column.as_ref().map(|_| Type::Float));
                column_types[fi] = column.as_ref().map(|_| Type::Float);
                features.push(FeaturePlan { ty, slot });
                continue;
            }
            if column.is_some() {
                return Err(model
                    .error_at(
                        feature.offset,
                        format!(
                            "feature `{}` takes the {} of a column of source `{}`, whose optional table is absent, so its type is unknown",
                            feature.name,
                            aggregate.name(),
                            model.sources[*source].name
                        ),
                    )
                    .with_help("supply the table, or make the source required"));
            }
            let ty = aggregate.result_type(None);
            features.push(FeaturePlan { ty, slot });
            continue;
        };
        let sp = &mut sources[sp];
        // What the source reads so far: a feature not needed is typed and
        // checked as ever, then what it added is taken back.
        let reads = (
            sp.codelists.len(),
            sp.filter_columns.len(),
            sp.value_columns.len(),
        );
        let codelist = codelist.map(|c| {
            sp.codelists
                .iter()
                .position(|&x| x == c)
                .unwrap_or_else(|| {
                    sp.codelists.push(c);
                    sp.codelists.len() - 1
                })
        });
        let filter = match filter {
            Some(f) => Some(event_filter(model, f, sp)?),
            None => None,
        };
        let value = match column {
            Some(c) if sp.measure.as_ref().is_some_and(|m| m.measure.value == *c) => {
                let m = sp.measure.as_ref().expect("checked in the guard");
                column_types[fi] = Some(Type::Float);
                Some((m.value, Type::Float))
            }
            Some(c) => {
                let ty = sp
                    .table
                    .column_type(c, &format!("the column `{}` reduces", feature.name))?;
                let t = table::canonical_type(ty).filter(|t| match aggregate {
                    Aggregate::TotalDays => *t == Type::Date,
                    Aggregate::Latest | Aggregate::Mean => matches!(t, Type::Int | Type::Float),
                    _ => matches!(t, Type::Int | Type::Float | Type::Date),
                });
                if t.is_none() && *aggregate == Aggregate::TotalDays {
                    return Err(model.error_at(feature.offset, format!(
                        "feature `{}` adds up the days from each event to `{c}`, but that column holds {ty}, not dates",
                        feature.name
                    )).with_help("name the column of each event's end date, such as an admission's discharge date"));
                }
                let Some(t) = t else {
                    let wanted = if matches!(aggregate, Aggregate::Latest | Aggregate::Mean) {
                        "numbers"
                    } else {
                        "numbers or dates"
                    };
                    return Err(model.error_at(feature.offset, format!(
                        "feature `{}` takes the {} of `{c}`, but that column holds {ty}, not {wanted}",
                        feature.name,
                        aggregate.name()
                    )));
                };
                let idx = position_or_push(&mut sp.value_columns, c);
                column_types[fi] = Some(t);
                Some((idx, t))
            }
            None => None,
        };
        let ty = aggregate.result_type(value.map(|(_, t)| t));
        features.push(FeaturePlan { ty, slot });
        if !needed(fi) {
            sp.codelists.truncate(reads.0);
            sp.filter_columns.truncate(reads.1);
            sp.value_columns.truncate(reads.2);
            continue;
        }
        sp.aggregates.push(AggregatePlan {
            feature: fi,
            column: fi,
            aggregate: *aggregate,
            codelist,
            category: category.clone(),
            after: window.exclusive_start(as_of),
            until: dates::to_day(as_of),
            filter,
            value,
            nth: *nth,
            also: Vec::new(),
        });
    }
    // Sources left with no aggregate are not read.
    sources.retain(|s| !s.aggregates.is_empty());
    let typing::PersonLevel {
        slot_types,
        mut derived,
        cohorts,
        ..
    } = typing::person_level(model, &attribute_types, &column_types, Some(as_of))?;
    for (fi, typed) in &derived {
        features[*fi].ty = typed.ty;
    }
    derived.retain(|(fi, _)| needed(*fi));
    let derived = fewest_held(model, &features, &absent, derived);

    Ok(Plan {
        model,
        as_of,
        as_of_inferred,
        population,
        sources,
        absent,
        slot_types,
        attributes,
        features,
        derived,
        cohorts,
    })
}

/// The derived features in an order that holds fewer columns at once, each
/// still after the features it reads. A run lets go of a column once the
/// last feature reading it is worked out (`engine::LastRead`), so the
/// order decides how long each is held: in the rule files' order the
/// default model worked out the eFI (its list of deficits, about 40 bytes
/// a person, held for the lists' reasons) while the scan's thirty first
/// and last dates (4 bytes a person each) waited for the registers that
/// read them, which came later. Of the features whose inputs are ready,
/// the next is the one whose columns let go weigh most, less its own
/// column where another derived feature or a cohort reads it; ties in the
/// rule files' order. What the outputs read after the run is not known
/// here, so such a column counts as let go; the order is kept only where
/// its estimated peak ([`held_at_most`]) is below the rule files'. Each
/// feature's expression reads only features worked out before it, so its
/// values do not depend on the order.
fn fewest_held(
    model: &Model,
    features: &[FeaturePlan],
    absent: &[AbsentSource],
    derived: Vec<(usize, Typed)>,
) -> Vec<(usize, Typed)> {
    let n = model.features.len();
    // Bytes a person each column takes, in eighths (a true/false is a bit).
    let weight: Vec<i64> = (0..n)
        .map(|fi| match &model.features[fi].kind {
            // A source without its table gives every feature one null
            // column, shared.
            FeatureKind::Aggregate { source, .. }
                if absent
                    .iter()
                    .any(|a| a.source == model.sources[*source].name) =>
            {
                0
            }
            // The scan holds counts in 32 bits until they are read; sums of
            // days and whole-number minima and maxima in 64.
            FeatureKind::Aggregate { aggregate, .. }
                if features[fi].ty == Type::Int
                    && !matches!(
                        aggregate,
                        Aggregate::TotalDays | Aggregate::Min | Aggregate::Max
                    ) =>
            {
                32
            }
            _ => match features[fi].ty {
                Type::Bool => 1,
                Type::Date => 32,
                Type::Int | Type::Float => 64,
                // Text: about 16 bytes a person, a guess (codes, labels, lists).
                Type::Str => 128,
                Type::Null => 0,
            },
        })
        .collect();
    let mut is_derived = vec![false; n];
    for (fi, _) in &derived {
        is_derived[*fi] = true;
    }
    // What each derived feature reads (features only), as the run lets
    // columns go (`engine::last_reads`).
    let reads: Vec<Vec<usize>> = derived
        .iter()
        .map(|(fi, _)| model.features_named_by(*fi))
        .collect();
    // Read by a cohort: held past the derived features whatever the order.
    let mut kept = vec![false; n];
    for i in model.features_named_by_cohorts() {
        kept[i] = true;
    }
    let mut readers = readers_of(&reads, n);
    let mut done = vec![false; n];
    let mut left: Vec<usize> = (0..derived.len()).collect();
    let mut order = Vec::with_capacity(derived.len());
    while !left.is_empty() {
        let ready = |k: usize| reads[k].iter().all(|&x| !is_derived[x] || done[x]);
        let gain = |k: usize| -> i64 {
            let fi = derived[k].0;
            let freed: i64 = reads[k]
                .iter()
                .filter(|&&x| readers[x] == 1 && !kept[x])
                .map(|&x| weight[x])
                .sum();
            let held = if readers[fi] > 0 || kept[fi] {
                weight[fi]
            } else {
                0
            };
            freed - held
        };
        // The first of the best.
        let at = left
            .iter()
            .enumerate()
            .filter(|&(_, &k)| ready(k))
            .min_by_key(|&(_, &k)| (std::cmp::Reverse(gain(k)), k))
            .map(|(at, _)| at)
            .expect("the rule files' order is one where every feature's inputs come first");
        let k = left.remove(at);
        done[derived[k].0] = true;
        for &x in &reads[k] {
            readers[x] -= 1;
        }
        order.push(k);
    }
    let in_rule_order: Vec<usize> = (0..derived.len()).collect();
    let made: Vec<usize> = derived.iter().map(|(fi, _)| *fi).collect();
    let peak = |order: &[usize]| held_at_most(order, &made, &reads, &weight, &kept);
    let (reordered, as_written) = (peak(&order), peak(&in_rule_order));
    tracing::debug!(
        reordered,
        as_written,
        "derived features' columns at most, estimated (eighths of a byte a person)"
    );
    if reordered >= as_written {
        return derived;
    }
    let mut derived: Vec<Option<(usize, Typed)>> = derived.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|k| derived[k].take().expect("each once"))
        .collect()
}

/// The most the derived features' columns and those they read weigh at
/// once (in [`fewest_held`]'s weights) when worked out in `order`: places
/// in `made`, the feature each derived feature makes, whose reads are
/// `reads` (features). A column is held from the start (read from the
/// scan or the population) or from when it is made, until the last derived
/// feature reading it is done, or to the end where a cohort reads it
/// (`kept`).
fn held_at_most(
    order: &[usize],
    made: &[usize],
    reads: &[Vec<usize>],
    weight: &[i64],
    kept: &[bool],
) -> i64 {
    let mut readers = readers_of(reads, weight.len());
    let mut derived = vec![false; weight.len()];
    for &fi in made {
        derived[fi] = true;
    }
    // At the start: every column a derived feature reads that none makes.
    let mut held: i64 = (0..weight.len())
        .filter(|&x| !derived[x] && readers[x] > 0)
        .map(|x| weight[x])
        .sum();
    let mut most = held;
    for &k in order {
        let fi = made[k];
        if readers[fi] > 0 || kept[fi] {
            held += weight[fi];
        }
        most = most.max(held);
        for &x in &reads[k] {
            readers[x] -= 1;
            if readers[x] == 0 && !kept[x] {
                held -= weight[x];
            }
        }
    }
    most
}

/// How many of `reads` (each derived feature's) name each of `n` features.
fn readers_of(reads: &[Vec<usize>], n: usize) -> Vec<usize> {
    let mut readers = vec![0usize; n];
    for &x in reads.iter().flatten() {
        readers[x] += 1;
    }
    readers
}

fn position_or_push(list: &mut Vec<String>, name: &str) -> usize {
    list.iter().position(|c| c == name).unwrap_or_else(|| {
        list.push(name.to_string());
        list.len() - 1
    })
}

/// Types an event filter: its names are parameters or the source's columns.
fn event_filter(model: &Model, located: &Located, sp: &mut SourcePlan) -> Result<Typed> {
    // Resolve names first (this may add filter columns), then type check.
    for (name, span) in located.expr.names() {
        if model.param(name).is_some() {
            continue;
        }
        if sp.mapped.iter().any(|m| m.name == name) {
            position_or_push(&mut sp.filter_columns, name);
            continue;
        }
        let Ok(field) = sp.table.schema.field_with_name(name) else {
            let columns: Vec<&str> = sp
                .table
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            return Err(model.expr_error(
                located,
                span,
                format!(
                    "table `{}` (source `{}`) has no column `{name}`{}; its columns are: {}",
                    sp.table.name,
                    sp.name,
                    did_you_mean(name, columns.iter().copied()),
                    columns.join(", ")
                ),
            ));
        };
        if table::canonical_type(field.data_type()).is_none() {
            return Err(model.expr_error(
                located,
                span,
                format!(
                    "column `{name}` has type {}, which rules cannot compare",
                    field.data_type()
                ),
            ));
        }
        position_or_push(&mut sp.filter_columns, name);
    }
    let columns: Vec<(String, Type)> = sp
        .filter_columns
        .iter()
        .map(|name| {
            let ty = if sp.mapped.iter().any(|m| &m.name == name) {
                Type::Str
            } else if sp
                .measure
                .as_ref()
                .is_some_and(|m| m.measure.value == *name)
            {
                // Read converted to the canonical unit.
                Type::Float
            } else {
                sp.table
                    .schema
                    .field_with_name(name)
                    .ok()
                    .and_then(|f| table::canonical_type(f.data_type()))
                    .expect("checked above")
            };
            (name.clone(), ty)
        })
        .collect();
    typing::event_filter(model, located, &columns)
}

impl Plan<'_> {
    /// The sources, grouped by the table they read (in order of first
    /// use): the scan reads each table once for all of its sources, so the
    /// seven measures of one observations table cost one pass, not seven.
    pub fn tables(&self) -> Vec<Vec<usize>> {
        let mut tables: Vec<Vec<usize>> = Vec::new();
        for (i, s) in self.sources.iter().enumerate() {
            match tables
                .iter_mut()
                .find(|t| self.sources[t[0]].table.location == s.table.location)
            {
                Some(t) => t.push(i),
                None => tables.push(vec![i]),
            }
        }
        tables
    }

    /// The rows one scan reads: each table's once.
    pub fn scan_rows(&self) -> u64 {
        self.tables()
            .iter()
            .map(|t| self.sources[t[0]].table.rows())
            .sum()
    }

    /// Aggregates of a source computed alike are scanned once, the first
    /// filling the others' columns too: alike is the same state (the same
    /// kind, or a count of categories and their list: one bitset), code
    /// list and categories, `where`, column and `nth`, and the same window
    /// on every date `windows(a)` gives (aggregate `a`'s, date by date:
    /// `evaluate` gives every date still to be scanned, so a later scan's
    /// dates are among them). Models written apart define some features alike under
    /// their own names: the core model counts A&E attendances in a year
    /// twice (the British Red Cross's and NHS England's HIU definitions)
    /// and emergency admissions in a year three times (both HIU
    /// definitions and the last years of life), each count with its own
    /// state, an update per event and, at 5M persons, a column of 40 MB;
    /// the eFI counts its coded deficits and lists them.
    /// Windows are compared as days, date by date, not as written: `12
    /// months` and `365 days` agree on some dates only. Called before
    /// [`Plan::repeat_for_dates`].
    pub fn share_alike(&mut self, windows: impl Fn(&AggregatePlan) -> Vec<(Option<Day>, Day)>) {
        let before: usize = self.sources.iter().map(|s| s.aggregates.len()).sum();
        for source in &mut self.sources {
            source.share_alike(&windows);
        }
        let after: usize = self.sources.iter().map(|s| s.aggregates.len()).sum();
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let names = |fs: &mut dyn Iterator<Item = Fill>| {
            let names: Vec<&str> = fs
                .map(|f| self.model.features[f.feature].name.as_str())
                .collect();
            names.join(" = ")
        };
        let alike: Vec<String> = self
            .sources
            .iter()
            .flat_map(|s| &s.aggregates)
            .filter(|a| !a.also.is_empty())
            .map(|a| names(&mut a.fills()))
            .collect();
        tracing::debug!(
            aggregates = after,
            shared = before - after,
            alike = alike.join(", "),
            "aggregates computed alike are scanned once"
        );
    }

    /// Makes one scan feed `dates` as-of dates: every aggregate is repeated
    /// once per date, copy `k` of feature `f` filling column
    /// `k * features + f` over the window `window(k, f)` gives (exclusive
    /// start, last day). Returns how many columns the scan fills.
    pub fn repeat_for_dates(
        &mut self,
        dates: usize,
        window: impl Fn(usize, usize) -> (Option<Day>, Day),
    ) -> usize {
        let width = self.features.len();
        for source in &mut self.sources {
            assert_eq!(source.dates, 1, "aggregates are repeated once");
            source.dates = dates;
            let once = std::mem::take(&mut source.aggregates);
            source.aggregates = (0..dates)
                .flat_map(|k| once.iter().map(move |a| (k, a)))
                .map(|(k, a)| {
                    let (after, until) = window(k, a.feature);
                    AggregatePlan {
                        column: k * width + a.feature,
                        after,
                        until,
                        also: a
                            .also
                            .iter()
                            .map(|&f| Fill {
                                column: k * width + f.feature,
                                ..f
                            })
                            .collect(),
                        ..a.clone()
                    }
                })
                .collect();
        }
        dates * width
    }

    /// The person-level part of this plan for `model`, whose features are
    /// this plan's first ones, as of `as_of`: derived features and cohorts
    /// typed for that date, the population as loaded, no sources (their
    /// scan is done). For each date of a scan that served several.
    pub fn on_date<'n>(&self, model: &'n Model, as_of: NaiveDate) -> Result<Plan<'n>> {
        let attribute_types: Vec<(String, Type)> = self
            .attributes
            .iter()
            .enumerate()
            .map(|(i, a)| (a.clone(), self.slot_types[FIRST_ATTRIBUTE_SLOT + i]))
            .collect();
        // A `min`/`max` has its column's type (so do the features not
        // needed, which have no aggregate here); for the other aggregates
        // with a column, that type does not matter.
        let column_types: Vec<Option<Type>> = model
            .features
            .iter()
            .zip(&self.features)
            .map(|(f, plan)| match &f.kind {
                FeatureKind::Aggregate {
                    column: Some(_), ..
                } => Some(plan.ty),
                _ => None,
            })
            .collect();
        let typing::PersonLevel {
            slot_types,
            mut derived,
            cohorts,
            ..
        } = typing::person_level(model, &attribute_types, &column_types, Some(as_of))?;
        // Only what this plan derives (all, unless some are not needed).
        let mut derives = vec![false; model.features.len()];
        for (fi, _) in &self.derived {
            derives[*fi] = true;
        }
        derived.retain(|(fi, _)| derives[*fi]);
        Ok(Plan {
            model,
            as_of,
            as_of_inferred: false,
            population: self.population.clone(),
            sources: Vec::new(),
            absent: self.absent.clone(),
            slot_types,
            attributes: self.attributes.clone(),
            features: self.features[..model.features.len()].to_vec(),
            derived,
            cohorts,
        })
    }

    /// Types a person-level expression of the model (a band's score, say)
    /// against this plan's columns, for evaluating outside the run.
    pub fn person_expression(&self, located: &Located) -> Result<Typed> {
        typing::person_expr(
            self.model,
            located,
            &self.slot_types,
            &self.attributes,
            Some(self.as_of),
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::held_at_most;

    /// Features 0 and 1 come from the scan (dates, 32 eighths each), 2 is
    /// text (128) read by a cohort, 3 a bit read by a cohort reading 0 and
    /// 1, 4 a number (64) read by nothing after it, reading 2.
    #[test]
    fn the_columns_held_at_most_follow_the_order() {
        let made = [2, 3, 4];
        let reads = vec![vec![], vec![0, 1], vec![2]];
        let weight = [32, 32, 128, 1, 64];
        let kept = [false, false, true, true, false];
        let peak = |order: &[usize]| held_at_most(order, &made, &reads, &weight, &kept);
        // Dates (64), then the text beside them (192), the bit (193); the
        // dates go; the number is read by nothing and never held.
        assert_eq!(peak(&[0, 1, 2]), 193);
        // The bit first lets the dates go before the text is made.
        assert_eq!(peak(&[1, 0, 2]), 129);
        assert_eq!(peak(&[1, 2, 0]), 129);
    }
}
