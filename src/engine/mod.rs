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
use rayon::prelude::*;

use crate::dates;
use crate::error::Result;
use crate::input;
use crate::rules::{FeatureKind, Model};
pub use cohorts::CohortResult;
pub use plan::Plan;

pub struct Results<'m> {
    pub plan: Plan<'m>,
    /// Person-level columns: age, sex, attributes, then every feature. A
    /// feature's slot holds nulls of no type once its column was let go
    /// ([`Results::released`]): read features through [`Results::feature`],
    /// which says so; an expression evaluated over the slots must read
    /// only features a [`Sink`]'s `read_after` (or, over several dates,
    /// [`Dates::reading`]) names.
    pub slots: Vec<ArrayRef>,
    pub alive: BooleanArray,
    /// Who the run's purpose keeps out of which outputs.
    pub opt_outs: opt_outs::OptOuts,
    /// Who counts in aggregate outputs, worked out once from `alive` and
    /// `opt_outs` ([`counted_mask`]): counts, the report and the lists
    /// ask it of every person. Neither changes once the results are made;
    /// whatever changed them would have to make this again.
    pub counted: arrow_buffer::BooleanBuffer,
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
    /// The data's `registrations` table, where it said who was registered
    /// on the as-of date (`None`: everyone in the population table is
    /// taken as registered throughout).
    pub registrations: Option<input::Table>,
    /// Per feature: whether its column was let go once nothing more read it
    /// (handed to a [`Sink`], or not among the features a run of several
    /// dates reads after, [`Dates::reading`]); its slot then holds a column
    /// of nulls of no type.
    pub released: Vec<bool>,
}

impl Results<'_> {
    /// The column of feature `i`.
    ///
    /// # Panics
    /// If the column was let go: handed to a [`Sink`] that did not ask for
    /// it to be held ([`Sink::read_after`]), or not among the features a
    /// run of several dates was asked to read ([`Dates::reading`]); a bug
    /// of the caller.
    pub fn feature(&self, i: usize) -> &ArrayRef {
        assert!(
            !self.released[i],
            "feature `{}` was let go once nothing more read it: `read_after` or `reading` must name it",
            self.plan.model.features[i].name
        );
        &self.slots[self.plan.features[i].slot]
    }

    /// Whether person `row` counts in aggregate outputs (counts, the
    /// report): in the population on the as-of date, with no opt-out.
    pub fn counted(&self, row: usize) -> bool {
        self.counted.value(row)
    }

    /// How many persons count in aggregate outputs.
    pub fn counted_total(&self) -> u64 {
        self.counted.count_set_bits() as u64
    }
}

/// Who counts in aggregate outputs: in the population on the as-of date
/// (`alive`), with no opt-out that keeps them out of aggregates.
pub fn counted_mask(
    alive: &BooleanArray,
    opt_outs: &opt_outs::OptOuts,
) -> arrow_buffer::BooleanBuffer {
    // The values' bits, as `value(row)` reads them, nulls or not.
    alive.values() & &!opt_outs.withheld_from_aggregates.values()
}

/// Where a run hands each feature's column as soon as it is made: `strata
/// run` encodes it into `patients.parquet` there and then
/// (`output::patients::Table`), so the run need hold a column only while a
/// derived feature, a cohort or a later output still reads it. At 5M
/// persons the default model's columns, all held until the outputs were
/// written, had been most of its peak memory.
pub trait Sink: Sync {
    /// Per feature: whether something reads its column once the run is
    /// done (the lists, their reasons, the report); those are held.
    fn read_after(&self) -> &[bool];
    /// Called once, before any column: the run's plan, and who the lists
    /// withhold (`opt_outs`).
    fn start(&self, plan: &Plan, withheld: &BooleanArray) -> Result<()>;
    /// Feature `i`'s column, one value per person; called once per feature,
    /// possibly from several threads at once.
    fn feature(&self, i: usize, column: &ArrayRef) -> Result<()>;
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

/// [`run`], handing each feature's column to `sink` as soon as it is made
/// and letting go of those nothing later reads ([`Sink`]).
pub fn run_into<'m>(
    model: &'m Model,
    data: &Path,
    as_of: Option<NaiveDate>,
    progress: &dyn Progress,
    sink: &dyn Sink,
) -> Result<Results<'m>> {
    run_with(model, data, as_of, progress, None, Some(sink)).map(|(results, _)| results)
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
    run_with(model, data, as_of, progress, person, None)
}

/// Who in `population` is alive on `as_of` (registered or not).
pub(crate) fn alive_on(population: &crate::input::Population, as_of: NaiveDate) -> BooleanArray {
    cohorts::alive(
        population.column("birth_date"),
        population.column("date_of_death"),
        dates::to_day(as_of),
    )
}

/// Refuses a run with no one alive (and registered) on its as-of date:
/// every list empty and every count nought would replace a good run's
/// output without a word, and the data, or the date, is wrong.
pub fn someone_alive(
    alive: &BooleanArray,
    population: &crate::input::Population,
    as_of: NaiveDate,
) -> Result<()> {
    if alive.true_count() > 0 {
        return Ok(());
    }
    Err(crate::error::Error::data(
        &population.table.location,
        format!("no one in the population is alive and registered on the as-of date {as_of}"),
    )
    .with_help("check --as-of against the extract's dates, and the registrations table's start and end dates if there is one"))
}

fn run_with<'m>(
    model: &'m Model,
    data: &Path,
    as_of: Option<NaiveDate>,
    progress: &dyn Progress,
    person: Option<&str>,
    sink: Option<&dyn Sink>,
) -> Result<(Results<'m>, Option<Explained>)> {
    let mut timings = Vec::new();
    let started = Instant::now();
    let spinner = progress.stage("loading the population");
    let mut plan = plan::plan(model, data, as_of)?;
    plan.share_alike(|a| vec![(a.after, a.until)]);
    let (registered, registrations_read) =
        match registrations::apply(&mut plan.population, data, dates::to_day(plan.as_of))? {
            Some(applied) => (
                Some(applied.registered),
                Some((applied.rejected, applied.table)),
            ),
            None => (None, None),
        };
    // Before the scan: who is alive and registered depends on nothing it
    // reads.
    someone_alive(
        &registrations::registered_only(
            alive_on(&plan.population, plan.as_of),
            registered.as_ref(),
        )?,
        &plan.population,
        plan.as_of,
    )?;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    timings.push(("load population and plan", started.elapsed()));
    let trace = match person {
        Some(id) => Some(scan::Trace {
            person: plan.population.index().find(id).ok_or_else(|| {
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
    let rows = plan.scan_rows();
    let bar = progress.scan_bar(rows);
    let scanned = scan::scan(&plan, bar.as_ref(), trace.as_ref())?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    timings.push(("scan events", started.elapsed()));
    // Nothing looks a person up after the scan: the index's memory is
    // given back before the person-level columns are made.
    plan.population.release_index();

    let reads = sink.map_or(Reads::All, Reads::Sink);
    let person_level = person_level(&plan, scanned.features, registered.as_ref(), true, reads)?;
    timings.extend(person_level.timings);

    let mut rejected: Vec<_> = plan
        .sources
        .iter()
        .zip(&scanned.rejected)
        .map(|(s, r)| (s.name.clone(), r.counts()))
        .collect();
    let registrations_table = registrations_read.map(|(counts, table)| {
        rejected.push((table.name.clone(), counts));
        table
    });
    // Each source's kept rows sorted into file order, side by side.
    let rejected_rows = plan
        .sources
        .par_iter()
        .zip(&scanned.rejected)
        .map(|(s, r)| (s.name.clone(), r.take_rows()))
        .collect();
    let explained = trace.map(|t| {
        let mut events = t
            .events
            .into_inner()
            .expect("no task panics while holding the lock");
        // In a fixed order whatever order the row groups were scanned in
        // (costliest first, over several threads): by feature, day, then
        // the code-list entries each matched, each entry once.
        for e in &mut events {
            e.codes.sort_unstable();
            e.codes.dedup();
        }
        events.sort_unstable_by(|a, b| {
            (a.feature, a.day, &a.codes).cmp(&(b.feature, b.day, &b.codes))
        });
        Explained {
            row: t.person as usize,
            events,
        }
    });
    let results = Results {
        plan,
        counted: counted_mask(&person_level.alive, &person_level.opt_outs),
        slots: person_level.slots,
        alive: person_level.alive,
        opt_outs: person_level.opt_outs,
        cohorts: person_level.cohorts,
        rejected,
        rejected_rows,
        timings,
        computed_elsewhere: None,
        registrations: registrations_table,
        released: person_level.released,
    };
    Ok((results, explained))
}

/// What a run computes per person once the scan is done.
struct PersonLevel {
    slots: Vec<ArrayRef>,
    alive: BooleanArray,
    opt_outs: opt_outs::OptOuts,
    cohorts: Vec<CohortResult>,
    timings: Vec<(&'static str, Duration)>,
    /// Per feature: let go once nothing more read it.
    released: Vec<bool>,
}

/// The last stage of a run to read a feature's column, where the run lets
/// its columns go ([`Reads`]): the column is let go once that stage is
/// done.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum LastRead {
    /// Nothing reads it: let go as soon as it is made (and the sink, if
    /// any, has it).
    Never,
    /// The derived feature worked out `k`th (`Plan::derived`).
    Derived(usize),
    Cohorts,
    /// What reads the run's results ([`Sink::read_after`],
    /// [`Dates::reading`]).
    After,
}

/// [`LastRead`] of every feature: derived features and segments read the
/// names in their expressions (every name, even in a branch a constant
/// never takes: the evaluator may still read it), cohorts their
/// conditions' and their ranking's.
fn last_reads(plan: &Plan, after: &[bool]) -> Vec<LastRead> {
    let model = plan.model;
    let mut last = vec![LastRead::Never; model.features.len()];
    for (k, (fi, _)) in plan.derived.iter().enumerate() {
        for i in model.features_named_by(*fi) {
            last[i] = last[i].max(LastRead::Derived(k));
        }
    }
    for i in model.features_named_by_cohorts() {
        last[i] = last[i].max(LastRead::Cohorts);
    }
    for (i, _) in after.iter().enumerate().filter(|(_, a)| **a) {
        last[i] = LastRead::After;
    }
    last
}

/// Feature columns handed to a [`Sink`] as they are made, or only made
/// where nothing takes them (`strata evaluate`, which reads a few features
/// after the run), and let go once the last stage that reads each is done
/// (handed to a sink, once handed: a few at a time, below): with 12 dates
/// of `evaluate` worked out several at once, each date had held every
/// feature it computed until its people were taken from them.
struct Handed<'s> {
    /// Where the columns go; None where they are only let go.
    sink: Option<&'s dyn Sink>,
    last: Vec<LastRead>,
    handed: Vec<bool>,
    released: Vec<bool>,
    /// What stands in a let-go column's slot: nulls, of no type.
    gone: ArrayRef,
}

impl<'s> Handed<'s> {
    /// `read_after`: per feature, whether it is read once the run is done
    /// (the sink's [`Sink::read_after`], where there is a sink).
    fn new(sink: Option<&'s dyn Sink>, read_after: &[bool], plan: &Plan) -> Handed<'s> {
        let features = plan.model.features.len();
        Handed {
            sink,
            last: last_reads(plan, read_after),
            handed: vec![false; features],
            released: vec![false; features],
            gone: Arc::new(arrow_array::NullArray::new(plan.population.len())),
        }
    }

    /// Hands features `which` to the sink, if any, side by side;
    /// [`Handed::mark`] them afterwards.
    fn give(&self, plan: &Plan, slots: &[ArrayRef], which: &[usize]) -> Result<()> {
        let Some(sink) = self.sink else {
            return Ok(());
        };
        which
            .par_iter()
            .try_for_each(|&i| sink.feature(i, &slots[plan.features[i].slot]))
    }

    /// Notes that features `which` were made (and given to the sink).
    fn mark(&mut self, which: &[usize]) {
        for &i in which {
            self.handed[i] = true;
        }
    }

    /// Lets go of the columns handed over whose last reader is `done` or
    /// came before it.
    fn let_go(&mut self, plan: &Plan, slots: &mut [ArrayRef], done: LastRead) {
        for i in 0..self.last.len() {
            if self.handed[i] && !self.released[i] && self.last[i] <= done {
                slots[plan.features[i].slot] = self.gone.clone();
                self.released[i] = true;
            }
        }
    }
}

/// Which features a run reads once its person-level work is done, and who
/// takes its columns as they are made.
#[derive(Clone, Copy)]
enum Reads<'a> {
    /// Every feature: each column is held.
    All,
    /// Those the sink says ([`Sink::read_after`]); each column is handed to
    /// it as soon as it is made, and let go once nothing more reads it.
    Sink(&'a dyn Sink),
    /// Those marked: each other column is let go once nothing more reads
    /// it.
    Only(&'a [bool]),
}

/// From the scan's columns for `plan`'s features (in order; `None` where
/// a feature is derived or its source absent) to every person-level slot,
/// who is in the population, and the cohorts, as of `plan.as_of`; their
/// members ranked if `ranked`. What is held of the features' columns is
/// what `reads` says.
fn person_level(
    plan: &Plan,
    features: Vec<Option<ArrayRef>>,
    registered: Option<&BooleanArray>,
    ranked: bool,
    reads: Reads,
) -> Result<PersonLevel> {
    let model = plan.model;
    let mut timings = Vec::new();
    let started = Instant::now();
    let persons = plan.population.len();
    let population = &plan.population;
    let (purpose, purpose_from) = model.purpose();
    let opt_outs = opt_outs::OptOuts::new(population, purpose, purpose_from)?;
    let mut handed = match reads {
        Reads::All => None,
        Reads::Sink(sink) => {
            sink.start(plan, &opt_outs.withheld_from_lists)?;
            Some(Handed::new(Some(sink), sink.read_after(), plan))
        }
        Reads::Only(after) => Some(Handed::new(None, after, plan)),
    };
    let ages = ages(population.column("birth_date"), plan.as_of);
    let mut slots: Vec<ArrayRef> = vec![ages, population.column("sex").clone()];
    for attribute in &plan.attributes {
        slots.push(
            population
                .column(&input::population::attribute_column(attribute))
                .clone(),
        );
    }
    // A feature the scan did not give (a derived one, until it is worked
    // out below) is all null: one such column per type, shared, not one
    // per feature (each filled with zeros took a core about 40 ms at 5M).
    let mut nulls: Vec<ArrayRef> = Vec::new();
    for (i, column) in features.into_iter().enumerate() {
        let column = column.unwrap_or_else(|| {
            let ty = plan.features[i].ty.data_type();
            match nulls.iter().find(|n| n.data_type() == &ty) {
                Some(n) => n.clone(),
                None => {
                    let n = new_null_array(&ty, persons);
                    nulls.push(n.clone());
                    n
                }
            }
        });
        slots.push(column);
    }
    drop(nulls);
    if let Some(handed) = &mut handed {
        let scanned: Vec<usize> = (0..model.features.len())
            .filter(|i| !plan.derived.iter().any(|(fi, _)| fi == i))
            .collect();
        handed.give(plan, &slots, &scanned)?;
        handed.mark(&scanned);
        handed.let_go(plan, &mut slots, LastRead::Never);
    }
    // Derived columns are handed over a few at a time (side by side),
    // while the next is worked out: a row group of a column is encoded on
    // one core, and at 1M persons (one row group) handing each column on
    // its own left the other core idle much of the stage. At most 8: a
    // column is let go only once handed, so these are held a little
    // longer (at 5M, 5 to 160 MB each).
    let at_once = (2 * rayon::current_num_threads()).min(8);
    let mut made: Vec<usize> = Vec::new();
    for (k, (fi, expr)) in plan.derived.iter().enumerate() {
        let feature = &model.features[*fi];
        let batch = if made.len() >= at_once {
            std::mem::take(&mut made)
        } else {
            Vec::new()
        };
        let (given, column) = rayon::join(
            || match &handed {
                Some(handed) => handed.give(plan, &slots, &batch),
                None => Ok(()),
            },
            || eval::evaluate_parallel(expr, &slots, persons),
        );
        given?;
        let column = column.map_err(|e| {
            model.error_at(
                feature.offset,
                format!("computing feature `{}`: {e}", feature.name),
            )
        })?;
        slots[plan.features[*fi].slot] = column;
        if let Some(handed) = &mut handed {
            handed.mark(&batch);
            // With no sink, nothing waits to be handed over.
            match handed.sink {
                Some(_) => made.push(*fi),
                None => handed.mark(&[*fi]),
            }
            handed.let_go(plan, &mut slots, LastRead::Derived(k));
        }
    }
    if let Some(handed) = &mut handed {
        handed.give(plan, &slots, &made)?;
        handed.mark(&made);
        if let Some(last) = plan.derived.len().checked_sub(1) {
            handed.let_go(plan, &mut slots, LastRead::Derived(last));
        }
    }
    timings.push(("derive features", started.elapsed()));

    let started = Instant::now();
    let alive = registrations::registered_only(alive_on(population, plan.as_of), registered)?;
    // Members are people in the population whom the purpose lets a list hold.
    let eligible = arrow_arith::boolean::and_not(&alive, &opt_outs.withheld_from_lists)
        .map_err(|e| crate::error::Error::Internal(format!("applying opt-outs: {e}")))?;
    let pcn = population.column("pcn_code");
    // The cohorts are independent, so they are worked out side by side
    // (gathering a cohort's members and numbering their ranks run on one
    // core). Of several that fail, the first in the rule files is told,
    // whichever thread finished first.
    let cohorts: Vec<Result<CohortResult>> = plan
        .cohorts
        .par_iter()
        .zip(&model.cohorts)
        .map(|(c, m)| {
            cohorts::evaluate(c, m, &slots, &eligible, pcn, ranked, |e| {
                model.expr_error(
                    &m.condition,
                    m.condition.expr.span,
                    format!("computing cohort `{}`: {e}", m.name),
                )
            })
        })
        .collect();
    let cohorts = cohorts.into_iter().collect::<Result<Vec<_>>>()?;
    timings.push(("cohorts", started.elapsed()));
    let released = match handed {
        Some(mut handed) => {
            handed.let_go(plan, &mut slots, LastRead::Cohorts);
            let held = handed.released.iter().filter(|r| !**r).count();
            tracing::debug!(held, "feature columns held for the outputs");
            handed.released
        }
        None => vec![false; model.features.len()],
    };
    Ok(PersonLevel {
        slots,
        alive,
        opt_outs,
        cohorts,
        timings,
        released,
    })
}

/// One date of [`run_dates`]: the run as of that date, and each outcome
/// asked for after it (in the order asked for). The scan served several
/// dates, so its results say nothing of rejected rows (`rejected` is
/// empty; the run of one date reports them), and the load and scan times
/// in `timings` are the scan's shared out over its dates.
pub struct Dated<'m> {
    pub results: Results<'m>,
    pub outcomes: Vec<(String, ArrayRef)>,
}

/// What [`run_dates`] computes: as of which dates, and which outcomes.
pub struct Dates<'a> {
    /// Ascending.
    pub dates: &'a [NaiveDate],
    /// Outcomes of the rule files, by name.
    pub outcomes: &'a [String],
    /// Refuse a date on which no one is alive and registered (an
    /// evaluation of nobody); `strata test`'s tables of a few test persons
    /// may hold no one alive on purpose.
    pub someone_each_date: bool,
    /// Roughly the bytes of per-person state one scan may hold (see
    /// [`STATE_BUDGET`]).
    pub state_budget: usize,
    /// `Some(features)`: only the cohorts' members and these features are
    /// read, so the cohorts are not ranked (but where `top_per_pcn` chooses
    /// by rank), and only what the rest needs is scanned and derived (see
    /// [`Model::features_needed`]); every other feature is left null. The
    /// columns of the features computed but not among these are let go
    /// once nothing more reads them ([`Results::released`]).
    /// `None`: every feature is computed and every cohort ranked.
    pub reading: Option<&'a [String]>,
}

impl<'a> Dates<'a> {
    /// `dates` and `outcomes`, within [`STATE_BUDGET`]. Whether the data
    /// cover the outcomes' windows is the caller's to check
    /// ([`outcomes::check_data_reaches`]).
    pub fn new(dates: &'a [NaiveDate], outcomes: &'a [String]) -> Dates<'a> {
        Dates {
            dates,
            outcomes,
            someone_each_date: true,
            state_budget: STATE_BUDGET,
            reading: None,
        }
    }
}

/// Runs `model` as of each date of `request` and computes the outcomes
/// named after each, from one scan of each table rather than one run per
/// date and per outcome window: every aggregate is fed once per date, over
/// its window placed on that date, and each outcome over its forward
/// window (see [`outcomes`]). Returns what `each` makes of each date, in
/// the order of the dates; dates are finished (derived features, cohorts,
/// `each`) in parallel.
///
/// The per-person state of every date is held at once, so dates are taken
/// in groups whose state fits the request's budget: one scan per group.
pub fn run_dates<'m, T: Send>(
    model: &'m Model,
    data: &Path,
    request: &Dates,
    progress: &dyn Progress,
    each: impl Fn(Dated<'m>) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let dates = request.dates;
    let mut all = Vec::with_capacity(dates.len());
    let outcome_names = request.outcomes;
    let forward = outcomes::windows(model, outcome_names)?;
    let ends: Vec<NaiveDate> = dates
        .iter()
        .map(|&d| outcomes::last_day(&forward, d))
        .collect::<Result<_>>()?;
    // The features, then the outcomes: one model for the scan.
    let mut scanned_model = model.clone();
    scanned_model
        .features
        .extend(forward.iter().map(|(f, _)| f.clone()));
    let width = scanned_model.features.len();
    // What is read needs only some features: the others are neither
    // scanned nor derived. The outcomes are always read.
    let needed: Option<Vec<bool>> = request.reading.map(|wanted| {
        let mut needed = model.features_needed(wanted);
        needed.resize(width, true);
        tracing::debug!(
            needed = needed.iter().filter(|&&n| n).count(),
            of = width,
            "features scanned and derived"
        );
        needed
    });
    // The features read after each date's work (those asked for): every
    // other column computed is let go once nothing more reads it. Those
    // not computed are held: nulls of their type, one column a type.
    let read_after: Option<Vec<bool>> =
        request
            .reading
            .zip(needed.as_ref())
            .map(|(wanted, needed)| {
                (model.features.iter().zip(needed))
                    .map(|(f, &needed)| !needed || wanted.contains(&f.name))
                    .collect()
            });
    let reads = read_after.as_deref().map_or(Reads::All, Reads::Only);
    let mut first = 0;
    while first < dates.len() {
        let started = Instant::now();
        let spinner = progress.stage("loading the population");
        let last_end = *ends.iter().max().expect("at least one date");
        let mut plan = plan::plan_needed(&scanned_model, data, Some(last_end), needed.as_deref())?;
        if first == 0 {
            // Read whole after the scan; a table that registers nobody
            // stops the run before it.
            registrations::check(data, &plan.population)?;
        }
        if let Some(s) = spinner {
            s.finish_and_clear();
        }
        // Feature (or outcome) `f`'s window on date `d`.
        let features = model.features.len();
        let window = |d: NaiveDate, f: usize| match f.checked_sub(features) {
            None => {
                let FeatureKind::Aggregate { window, .. } = &model.features[f].kind else {
                    unreachable!("only aggregates are scanned");
                };
                (window.exclusive_start(d), dates::to_day(d))
            }
            Some(o) => (
                Some(dates::to_day(d)),
                outcomes::window_end(&forward[o].1, d),
            ),
        };
        // Alike on every date left, so on those of any scan of them.
        let left = &dates[first..];
        plan.share_alike(|a| left.iter().map(|&d| window(d, a.feature)).collect());
        let group = dates_per_scan(&plan, left.len(), request.state_budget);
        let chosen = &dates[first..first + group];
        let columns = plan.repeat_for_dates(group, |k, f| window(chosen[k], f));
        let load = started.elapsed();
        let started = Instant::now();
        let rows = plan.scan_rows();
        let bar = progress.scan_bar(rows);
        let scan::ScanOutput {
            features: mut scanned,
            later,
            ..
        } = scan::scan(&plan, bar.as_ref(), None)?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        // (Derived features at the end have no column of the scan.)
        scanned.resize(columns, None);
        let scan_time = started.elapsed();
        tracing::debug!(?load, scan = ?scan_time, dates = group, "one scan for several dates");
        // Each date's columns, then each date finished in parallel.
        let mut per_date: Vec<Vec<Option<ArrayRef>>> = Vec::with_capacity(group);
        for k in (0..group).rev() {
            per_date.push(scanned.split_off(k * width));
        }
        per_date.reverse();
        // The columns made as their date is worked out, by date.
        let mut later_by_date: Vec<Vec<scan::Later>> = (0..group).map(|_| Vec::new()).collect();
        for l in later {
            later_by_date[l.column / width].push(l);
        }
        let timings = [
            ("load population and plan", load / group as u32),
            ("scan events", scan_time / group as u32),
        ];
        // Read once, applied on each date.
        let registrations = registrations::Registrations::read(data, &plan.population)?;
        let work: Vec<_> = chosen
            .iter()
            .copied()
            .zip(per_date)
            .zip(later_by_date)
            .collect();
        let finished: Vec<T> = in_order(work, |((as_of, mut columns), later)| {
            for l in later {
                columns[l.column % width] = Some(l.column());
            }
            let dated = on_date(
                &plan,
                model,
                registrations.as_ref(),
                as_of,
                columns,
                &forward,
                reads,
            )?;
            // A date with no one in the population would give figures of
            // nobody (the people of a date are the alive and registered).
            if request.someone_each_date {
                someone_alive(&dated.results.alive, &dated.results.plan.population, as_of)?;
            }
            let mut dated = dated;
            dated.results.timings.splice(0..0, timings);
            each(dated)
        })?;
        all.extend(finished);
        first += group;
    }
    Ok(all)
}

/// `work` done on each item, in parallel, the items handed out in order,
/// each to the first of the pool's threads to come free (as the scan hands
/// out its row groups); the results in the items' order, or the first
/// error in that order. Rayon's own split gives the second thread the
/// second half from the start: here the items are finished nearly in
/// order, so `strata evaluate`, which writes each date's predictions in
/// date order as the date is finished, holds few finished dates waiting
/// for those before them. A failed item (or a panic) stops the rest from
/// being started.
fn in_order<I: Send, T: Send>(
    items: Vec<I>,
    work: impl Fn(I) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let n = items.len();
    let done: Vec<Mutex<Option<Result<T>>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let stopped = AtomicBool::new(false);
    items
        .into_iter()
        .enumerate()
        .par_bridge()
        .for_each(|(k, item)| {
            if stopped.load(Relaxed) {
                return;
            }
            let _flag = scan::FlagOnPanic(&stopped);
            let result = work(item);
            if result.is_err() {
                stopped.store(true, Relaxed);
            }
            *done[k].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        });
    let mut all = Vec::with_capacity(n);
    for d in done {
        match d.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(result) => all.push(result?),
            // Not started: an earlier or concurrent item failed (and is
            // the error returned).
            None => continue,
        }
    }
    if all.len() < n {
        return Err(crate::Error::Internal(
            "a date was not worked out, and no error says why".into(),
        ));
    }
    Ok(all)
}

/// One date of a scan that served several: `columns` are the scan's for
/// that date (the model's features, then the outcomes of `forward`). The
/// cohorts are ranked where every feature is read ([`Dates::reading`]).
fn on_date<'m>(
    plan: &Plan,
    model: &'m Model,
    registrations: Option<&(registrations::Registrations, input::Table)>,
    as_of: NaiveDate,
    mut columns: Vec<Option<ArrayRef>>,
    forward: &[(crate::rules::Feature, dates::Window)],
    reads: Reads,
) -> Result<Dated<'m>> {
    let ranked = matches!(reads, Reads::All);
    let started = Instant::now();
    let mut on_date = plan.on_date(model, as_of)?;
    let copied = started.elapsed();
    let registered = registrations
        .map(|(r, _)| r.apply(&mut on_date.population, dates::to_day(as_of)))
        .transpose()?;
    tracing::debug!(?copied, registrations = ?(started.elapsed() - copied), "date {as_of}");
    // The features' counts stay in 32 bits, as a run's do (expressions
    // widen them as they read them: `aggregate::widened`); the outcomes'
    // are widened, as `evaluate` reads them as whole numbers.
    let outcome_columns = columns.split_off(model.features.len());
    let outcomes = forward
        .iter()
        .zip(outcome_columns)
        .map(|((f, _), c)| {
            let column = c.map(aggregate::widened).unwrap_or_else(|| {
                let FeatureKind::Aggregate { aggregate, .. } = &f.kind else {
                    unreachable!("outcomes are aggregates");
                };
                new_null_array(
                    &aggregate.result_type(None).data_type(),
                    on_date.population.len(),
                )
            });
            (f.name.clone(), column)
        })
        .collect();
    let level = person_level(&on_date, columns, registered.as_ref(), ranked, reads)?;
    tracing::debug!(timings = ?level.timings, "date {as_of}");
    Ok(Dated {
        results: Results {
            plan: on_date,
            counted: counted_mask(&level.alive, &level.opt_outs),
            slots: level.slots,
            alive: level.alive,
            opt_outs: level.opt_outs,
            cohorts: level.cohorts,
            rejected: Vec::new(),
            rejected_rows: Vec::new(),
            timings: level.timings,
            computed_elsewhere: None,
            registrations: registrations.map(|(_, table)| table.clone()),
            released: level.released,
        },
        outcomes,
    })
}

/// Roughly the bytes of per-person state one scan may hold for
/// [`run_dates`] (see [`dates_per_scan`] for what a person and date take):
/// beyond it, the dates are split over several scans, each of which reads
/// every table again. The default; `strata evaluate --scan-memory` sets
/// another where the machine has the memory, or less where it has not
/// (12 dates of the default model take one scan with this up to about
/// 10M persons).
pub const STATE_BUDGET: usize = 4 << 30;

/// How many of `left` dates the next scan of `plan` (planned for one
/// date) serves within `budget`: at least one, and where they do not fit
/// one scan, as even a share of them as the fewest scans allow (12 dates
/// of which 10 fit: 6 and 6, not 10 and 2, each scan's state smaller for
/// the same reads). What a person and date take is
/// [`scan::footprint`]: the larger of each aggregate's state and columns
/// (both for those being finished), as they really are (a 4-byte day or
/// count, a 1-bit `exists`). A flat size per kind of aggregate, state and column
/// added, had overstated the default model's about twice over and split
/// 12 dates at 1M persons into two scans (11 dates, then a whole scan for
/// one).
fn dates_per_scan(plan: &Plan, left: usize, budget: usize) -> usize {
    let prints = scan::Footprints::of(plan);
    let persons = plan.population.len().max(1);
    // How many dates fit the budget at what a scan for `n` dates holds a
    // person and date (with more dates, more aggregates may be kept as
    // notes, their size not growing with the dates).
    let fits = |n: usize| {
        let (bits, bytes) = prints.at(n);
        (budget / persons).saturating_sub(bytes) / bits.div_ceil(8).max(1)
    };
    // Slots (person, date) are numbered in 32 bits, and a scan's dates in
    // 16 (see `aggregate::CodeSeen`).
    let most = left
        .min(u32::MAX as usize / persons)
        .min(usize::from(u16::MAX))
        .max(1);
    // The most dates a scan of that many holds within the budget.
    let n = (1..=most).rev().find(|&n| fits(n) >= n).unwrap_or(1);
    // An even share of them; a scan of fewer dates may keep fewer
    // aggregates as notes, and a state per date can take more than the
    // notes it replaces (its columns too): fewer again where it must.
    let mut group = even_share(left, n);
    while group > 1 && fits(group) < group {
        group -= 1;
    }
    let (bits, bytes) = prints.at(group);
    tracing::debug!(
        bytes_per_person_and_date = bits.div_ceil(8),
        bytes_per_person = bytes,
        dates = group,
        "state a scan for several dates holds"
    );
    if n < most {
        // Said once a scan, without patient-level values: what one scan
        // of every date left would take, for a larger budget where the
        // machine has the memory.
        let (bits, bytes) = prints.at(left);
        let whole = persons * (bytes + left * bits.div_ceil(8));
        tracing::info!(
            dates = left,
            this_scan = group,
            budget_mib = budget >> 20,
            one_scan_mib = whole.div_ceil(1 << 20),
            "the dates' state passes the scan's memory budget: split over scans, each reading every table"
        );
    }
    group
}

/// The dates the next scan takes of `left` (at least one) when at most
/// `most` fit one: an even share over the fewest scans, at least one.
fn even_share(left: usize, most: usize) -> usize {
    debug_assert!(left > 0, "a scan is planned only for dates left");
    left.div_ceil(left.div_ceil(most.clamp(1, left)))
}

/// Age in completed years on `as_of`; null where the birth date is null or
/// after `as_of` (a person not yet born has no age).
fn ages(birth_dates: &ArrayRef, as_of: NaiveDate) -> ArrayRef {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    let births = birth_dates.as_primitive::<arrow_array::types::Date32Type>();
    let on = dates::AgesOn::new(as_of);
    // The ages straight into the column's values, no age (an unknown
    // birth date, or one after the date) marked by a value no age takes:
    // not a list of options copied into the column after (at 5M persons,
    // 80 MB less memory made for it, once a date).
    const NO_AGE: i64 = i64::MIN;
    let ages: Vec<i64> = (0..births.len())
        .into_par_iter()
        .with_min_len(1 << 16)
        .map(|r| {
            births
                .is_valid(r)
                .then(|| on.age(births.value(r)))
                .flatten()
                .unwrap_or(NO_AGE)
        })
        .collect();
    let known = arrow_buffer::BooleanBuffer::collect_bool(ages.len(), |r| ages[r] != NO_AGE);
    let nulls = Some(arrow_buffer::NullBuffer::new(known)).filter(|n| n.null_count() > 0);
    Arc::new(Int64Array::new(ages.into(), nulls))
}

#[cfg(test)]
mod tests {
    use super::{even_share, in_order};

    /// Items start in order, whichever thread is free; results come in
    /// order; the first failure in order is the error, and items after it
    /// are not started once it is seen.
    #[test]
    fn items_are_started_in_order_and_the_first_error_wins() {
        use std::sync::Mutex;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let started = Mutex::new(Vec::new());
        let work = |k: usize| {
            started.lock().unwrap().push(k);
            // Early items take longer: later ones would overtake them.
            std::thread::sleep(std::time::Duration::from_millis(if k < 2 { 20 } else { 1 }));
            if k == 5 || k == 7 {
                Err(crate::Error::Internal(format!("item {k}")))
            } else {
                Ok(k * 10)
            }
        };
        let fine = pool.install(|| in_order((0..5).collect(), work)).unwrap();
        assert_eq!(fine, [0, 10, 20, 30, 40]);
        let order = std::mem::take(&mut *started.lock().unwrap());
        // Two threads: 0 and 1 first (rayon's split of 0..5 would start 0,
        // then 2, 3 and 4 while 0 takes long, and 1 last).
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2, 3, 4]);
        assert!(order[..2].contains(&1), "{order:?}");
        let failed = pool.install(|| in_order((0..40).collect(), work));
        let Err(crate::Error::Internal(e)) = failed else {
            panic!("an error expected: {failed:?}");
        };
        assert_eq!(e, "item 5");
        // Stopped soon after item 5 failed: at most the item the other
        // thread had started (and 7) besides.
        let started = started.into_inner().unwrap();
        assert!(started.iter().all(|&k| k <= 7), "{started:?}");
    }

    #[test]
    fn dates_are_shared_evenly_over_the_fewest_scans() {
        // Each scan's share until no date is left.
        let shares = |mut left: usize, most: usize| {
            let mut taken = Vec::new();
            while left > 0 {
                let share = even_share(left, most);
                taken.push(share);
                left -= share;
            }
            taken
        };
        assert_eq!(shares(12, 12), [12]);
        assert_eq!(shares(12, 100), [12]);
        assert_eq!(shares(12, 10), [6, 6]);
        assert_eq!(shares(12, 5), [4, 4, 4]);
        assert_eq!(shares(7, 3), [3, 2, 2]);
        assert_eq!(shares(3, 1), [1, 1, 1]);
        // None fit: one a scan.
        assert_eq!(shares(3, 0), [1, 1, 1]);
    }
}
