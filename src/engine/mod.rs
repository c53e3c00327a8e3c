//! The engine: from a checked model and a data folder to per-person results.
//!
//! Stages, in order: [`plan`] (open tables, type every expression), [`scan`]
//! (one parallel pass over the event tables into per-person aggregates),
//! derived features ([`eval`], vectorised over all persons), then
//! [`cohorts`] (membership and ranking). Writing the results is the
//! [`crate::output`] module's job.

pub mod aggregate;
pub mod cohorts;
pub mod eval;
pub mod opt_outs;
pub mod outcomes;
pub mod plan;
pub mod published;
pub mod registrations;
pub mod scan;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, BooleanArray, Int64Array, new_null_array};
use chrono::NaiveDate;
use indicatif::ProgressBar;

use crate::dates;
use crate::error::Result;
use crate::input;
use crate::rules::Model;
pub use cohorts::CohortResult;
pub use plan::Plan;

pub struct Results<'m> {
    pub plan: Plan<'m>,
    /// Person-level columns: age, sex, attributes, then every feature.
    pub slots: Vec<ArrayRef>,
    pub alive: BooleanArray,
    /// Who the run's purpose keeps out of which outputs.
    pub opt_outs: opt_outs::OptOuts,
    /// One per cohort of the model.
    pub cohorts: Vec<CohortResult>,
    /// Rows each event source skipped, by reason.
    pub rejected: Vec<(String, Vec<(&'static str, u64)>)>,
    /// Per source: up to [`scan::REJECTS_KEPT`] of those rows, in order.
    pub rejected_rows: Vec<(String, Vec<crate::input::RejectedRow>)>,
    /// Wall time per stage.
    pub timings: Vec<(&'static str, Duration)>,
    /// The per-person table the results were read from, when they were
    /// computed elsewhere (`strata publish`); `None` for a run.
    pub computed_elsewhere: Option<input::Table>,
    /// Whether the data's `registrations` said who was registered on the
    /// as-of date (else everyone in the population table is taken as
    /// registered throughout).
    pub registrations: bool,
}

impl Results<'_> {
    /// The column of feature `i`.
    pub fn feature(&self, i: usize) -> &ArrayRef {
        &self.slots[self.plan.features[i].slot]
    }

    /// Whether person `row` counts in aggregate outputs (counts, the
    /// report): in the population on the as-of date, with no opt-out.
    pub fn counted(&self, row: usize) -> bool {
        self.alive.value(row) && !self.opt_outs.withheld_from_aggregates.value(row)
    }

    /// How many persons count in aggregate outputs.
    pub fn counted_total(&self) -> u64 {
        (0..self.alive.len()).filter(|&r| self.counted(r)).count() as u64
    }
}

/// Hooks for progress display; the engine itself never prints.
pub trait Progress: Sync {
    /// A progress bar for the scan, which will read `rows` rows.
    fn scan_bar(&self, rows: u64) -> Option<ProgressBar>;
    /// A spinner for a stage with no row count to show (`label` says what
    /// is being done); `None` where progress is not shown.
    fn stage(&self, label: &str) -> Option<ProgressBar>;
}

pub fn run<'m>(
    model: &'m Model,
    data: &Path,
    as_of: Option<NaiveDate>,
    progress: &dyn Progress,
) -> Result<Results<'m>> {
    run_traced(model, data, as_of, progress, None).map(|(results, _)| results)
}

/// One person's row and the events that fed their features.
pub struct Explained {
    pub row: usize,
    pub events: Vec<scan::Traced>,
}

/// [`run`], also recording the events behind one person's features (the
/// person given by their id as text), for `strata explain`.
pub fn run_traced<'m>(
    model: &'m Model,
    data: &Path,
    as_of: Option<NaiveDate>,
    progress: &dyn Progress,
    person: Option<&str>,
) -> Result<(Results<'m>, Option<Explained>)> {
    let mut timings = Vec::new();
    let started = Instant::now();
    let spinner = progress.stage("loading the population");
    let mut plan = plan::plan(model, data, as_of)?;
    let registered = registrations::apply(&mut plan.population, data, dates::to_day(plan.as_of))?;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    timings.push(("load population and plan", started.elapsed()));
    let as_of_day = dates::to_day(plan.as_of);
    let trace = match person {
        Some(id) => Some(scan::Trace {
            person: plan.population.index.find(id).ok_or_else(|| {
                crate::error::Error::usage(format!(
                    "no person with id `{id}` in {}",
                    plan.population.table.location.display()
                ))
                .with_help("give a person_id as it appears in the population table")
            })?,
            events: Default::default(),
        }),
        None => None,
    };

    let started = Instant::now();
    let rows: u64 = plan.sources.iter().map(|s| s.table.rows()).sum();
    let bar = progress.scan_bar(rows);
    let scanned = scan::scan(&plan, bar.as_ref(), trace.as_ref())?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    timings.push(("scan events", started.elapsed()));

    let started = Instant::now();
    let persons = plan.population.len();
    let population = &plan.population;
    let ages = ages(population.column("birth_date"), plan.as_of);
    let mut slots: Vec<ArrayRef> = vec![ages, population.column("sex").clone()];
    for attribute in &plan.attributes {
        slots.push(
            population
                .column(&input::population::attribute_column(attribute))
                .clone(),
        );
    }
    for (i, column) in scanned.features.into_iter().enumerate() {
        slots.push(
            column.unwrap_or_else(|| new_null_array(&plan.features[i].ty.data_type(), persons)),
        );
    }
    for (fi, expr) in &plan.derived {
        let feature = &model.features[*fi];
        let column = eval::evaluate_parallel(expr, &slots, persons).map_err(|e| {
            model.error_at(
                feature.offset,
                format!("computing feature `{}`: {e}", feature.name),
            )
        })?;
        slots[plan.features[*fi].slot] = column;
    }
    timings.push(("derive features", started.elapsed()));

    let started = Instant::now();
    let alive = cohorts::alive(
        population.column("birth_date"),
        population.column("date_of_death"),
        as_of_day,
    );
    let alive = registrations::registered_only(alive, registered.as_ref())?;
    let (purpose, purpose_from) = model.purpose();
    let opt_outs = opt_outs::OptOuts::new(population, purpose, purpose_from)?;
    // Members are people in the population whom the purpose lets a list hold.
    let eligible = arrow_arith::boolean::and_not(&alive, &opt_outs.withheld_from_lists)
        .map_err(|e| crate::error::Error::Internal(format!("applying opt-outs: {e}")))?;
    let pcn = population.column("pcn_code");
    let cohort_results = plan
        .cohorts
        .iter()
        .zip(&model.cohorts)
        .map(|(c, m)| {
            cohorts::evaluate(c, m, &slots, &eligible, pcn, |e| {
                model.expr_error(
                    &m.condition,
                    m.condition.expr.span,
                    format!("computing cohort `{}`: {e}", m.name),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    timings.push(("cohorts", started.elapsed()));

    let rejected = plan
        .sources
        .iter()
        .zip(&scanned.rejected)
        .map(|(s, r)| (s.name.clone(), r.counts()))
        .collect();
    let rejected_rows = plan
        .sources
        .iter()
        .zip(&scanned.rejected)
        .map(|(s, r)| (s.name.clone(), r.take_rows()))
        .collect();
    let explained = trace.map(|t| {
        let mut events = t
            .events
            .into_inner()
            .expect("no task panics while holding the lock");
        events.sort_by_key(|e| (e.feature, e.day));
        Explained {
            row: t.person as usize,
            events,
        }
    });
    let results = Results {
        plan,
        slots,
        alive,
        opt_outs,
        cohorts: cohort_results,
        rejected,
        rejected_rows,
        timings,
        computed_elsewhere: None,
        registrations: registered.is_some(),
    };
    Ok((results, explained))
}

/// Age in completed years on `as_of`; null where the birth date is null or
/// after `as_of` (a person not yet born has no age).
fn ages(birth_dates: &ArrayRef, as_of: NaiveDate) -> ArrayRef {
    use arrow_array::cast::AsArray;
    let births = birth_dates.as_primitive::<arrow_array::types::Date32Type>();
    Arc::new(Int64Array::from_iter(births.iter().map(|b| {
        b.and_then(dates::from_day)
            .filter(|b| *b <= as_of)
            .map(|b| dates::age_on(b, as_of))
    })))
}
