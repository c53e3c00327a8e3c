//! The scan: one parallel pass over every row group of every event table the
//! plan reads, feeding all aggregates of that table at once.
//!
//! Each row group is a rayon task with its own file handle. Within a batch the
//! work per row is kept small and in this order, cheapest first: the date
//! (null? after the as-of date? inside the window?), the event filter (a
//! precomputed mask), the code (looked up once per *dictionary value*, not
//! per row), and only then the person id, whose hash lookup is the most
//! expensive step and is skipped for the many rows no rule wants.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Int32Array, RecordBatch, StringArray,
};
use arrow_buffer::NullBuffer;
use arrow_schema::DataType;
use indicatif::ProgressBar;
use rayon::prelude::*;

use crate::dates::{self, FIRST_PLAUSIBLE_DAY};
use crate::engine::aggregate::{
    CodeSeen, Footprint, LaterDays, MOST_DATES_IN_SETS, Note, Noted, State, each_run,
};
use crate::engine::eval;
use crate::engine::plan::{AggregatePlan, CodeColumn, Plan, SourcePlan};
use crate::error::{Error, Result};
use crate::input::RejectedRow;
use crate::input::population::{Person, PersonIndex};
use crate::input::table::{self, RowGroup};
use crate::rules::check::Typed;
use crate::rules::codelist::CombinedIndex;
use crate::rules::{Aggregate, Codelist, Measure};

/// Rows a source skipped, by reason (see the data contract).
#[derive(Debug, Default)]
pub struct Rejected {
    pub null_date: AtomicU64,
    /// Dates before 1900: no event of a living person's record is that old,
    /// so the date is wrong (a default, a typo, a corrupt value).
    pub date_before_1900: AtomicU64,
    pub after_as_of: AtomicU64,
    pub null_person_id: AtomicU64,
    pub unknown_person: AtomicU64,
    /// A measure's rows whose value cannot be used (see [`Unusable`]);
    /// reported for measure sources only.
    pub measure: Option<[AtomicU64; 3]>,
    /// The first [`REJECTS_KEPT`] rejected rows (by position), for
    /// `OUT/rejects/`; tasks each send their first so many.
    pub rows: std::sync::Mutex<Vec<RejectedRow>>,
}

/// Why a measured value was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unusable {
    NullValue,
    UnknownUnit,
    Implausible,
}

impl Unusable {
    fn reason(self) -> &'static str {
        match self {
            Unusable::NullValue => "null_value",
            Unusable::UnknownUnit => "unknown_unit",
            Unusable::Implausible => "implausible_value",
        }
    }
}

/// A raw value in the measure's canonical unit, given its unit's factor
/// (`None`: a unit the measure does not list), or why not. The product is
/// rounded to 6 decimal places on its shortest decimal form (as SQL's
/// `ROUND` on Spark), so that 1.3 g/dL is exactly 13 g/L.
fn convert(m: &Measure, value: Option<f64>, factor: Option<f64>) -> Result<f64, Unusable> {
    let value = value.filter(|v| v.is_finite()).ok_or(Unusable::NullValue)?;
    let factor = factor.ok_or(Unusable::UnknownUnit)?;
    let canonical = eval::round_half_up(value * factor, 6);
    if canonical < m.low || canonical > m.high {
        return Err(Unusable::Implausible);
    }
    Ok(canonical)
}

/// Why a measured value is not used, in the order of [`Rejected::measure`].
const UNUSABLE: [Unusable; 3] = [
    Unusable::NullValue,
    Unusable::UnknownUnit,
    Unusable::Implausible,
];

pub use crate::input::REJECTS_KEPT;

impl Rejected {
    /// The rejected rows kept, in file order.
    pub fn take_rows(&self) -> Vec<RejectedRow> {
        let mut rows = std::mem::take(
            &mut *self
                .rows
                .lock()
                .expect("no task panics while holding the lock"),
        );
        rows.sort();
        rows.truncate(REJECTS_KEPT);
        rows
    }

    /// Counts for a source; with `measure`, its unusable values too.
    fn new(measure: bool) -> Rejected {
        Rejected {
            measure: measure.then(Default::default),
            ..Default::default()
        }
    }

    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        let mut counts = vec![
            ("null_date", self.null_date.load(Relaxed)),
            ("date_before_1900", self.date_before_1900.load(Relaxed)),
            ("after_as_of", self.after_as_of.load(Relaxed)),
            ("null_person_id", self.null_person_id.load(Relaxed)),
            ("unknown_person", self.unknown_person.load(Relaxed)),
        ];
        if let Some(measure) = &self.measure {
            for (u, n) in UNUSABLE.iter().zip(measure) {
                counts.push((u.reason(), n.load(Relaxed)));
            }
        }
        counts
    }
}

/// One task's rejected rows: where its batches start, and its first
/// [`REJECTS_KEPT`] rejects, each with its person found.
struct Rejects<'a> {
    people: &'a PersonIndex,
    group: RowGroup,
    /// Rows of the row group before the current batch.
    offset: u64,
    /// Where the task sees only some of the batch's rows (a measure's):
    /// each row's number in the batch as read. Empty: all rows, in order.
    seen: Vec<u32>,
    rows: Vec<RejectedRow>,
}

impl Rejects<'_> {
    #[inline]
    fn add(
        &mut self,
        row: usize,
        reason: &'static str,
        person_id: Option<String>,
        date: Option<i32>,
    ) {
        if self.rows.len() < REJECTS_KEPT {
            self.rows.push(RejectedRow {
                part: self.group.part,
                row_group: self.group.index,
                row: self.offset + self.seen.get(row).map_or(row as u64, |&r| u64::from(r)),
                reason,
                person: person_id.as_deref().and_then(|id| self.people.find(id)),
                person_id,
                date,
            });
        }
    }
}

/// What one task gathers per aggregate before handing it to the shared
/// state in one go.
struct Found {
    /// `slot << 32 | item` keys (distinct aggregates, busiest month).
    keys: Vec<Vec<u64>>,
    /// Distinct codes without a code list, and with several dates the
    /// busiest month's events: see [`CodeSeen`].
    codes_seen: Vec<Vec<CodeSeen>>,
    /// (slot, day, value): `latest` and `mean`.
    values: Vec<Vec<(u32, i32, f64)>>,
    /// Events noted for a [`State::Noted`].
    notes: Vec<Vec<Note>>,
}

impl Found {
    fn new(aggregates: usize) -> Found {
        Found {
            keys: vec![Vec::new(); aggregates],
            codes_seen: vec![Vec::new(); aggregates],
            values: vec![Vec::new(); aggregates],
            notes: vec![Vec::new(); aggregates],
        }
    }
}

/// One person's events, recorded as the scan counts them (for `explain`).
pub struct Trace {
    pub person: u32,
    pub events: std::sync::Mutex<Vec<Traced>>,
}

/// An event that fed a feature: the feature, its date, and the code-list
/// entries it matched as (model code-list index, entry).
#[derive(Debug, Clone)]
pub struct Traced {
    pub feature: usize,
    pub day: i32,
    /// (code list, entry) of each code that matched; sorted, each once,
    /// in what `run_traced` returns.
    pub codes: Vec<(usize, u32)>,
}

pub struct ScanOutput {
    /// One column per column an aggregate fills ([`AggregatePlan::fills`]:
    /// one per feature, or per date and feature; features computed alike
    /// share one array); None for derived features and absent sources. With several dates, counts come as `UInt32`:
    /// read each through [`crate::engine::aggregate::widened`].
    pub features: Vec<Option<ArrayRef>>,
    /// Per source plan.
    pub rejected: Vec<Rejected>,
    /// With several dates, the columns made only when their date is
    /// worked out ([`State::LaterDays`]): their `features` are None.
    pub later: Vec<Later>,
}

/// A column of [`ScanOutput::features`] made when its date is worked out.
pub struct Later {
    pub column: usize,
    /// Its date's window: the days after the first (if any) up to the
    /// last.
    pub window: (Option<dates::Day>, dates::Day),
    pub of: LaterOf,
}

/// What a [`Later`] column is made of.
pub enum LaterOf {
    Days(Arc<LaterDays>),
    /// Notes, made into this aggregate's column.
    Notes(Arc<Noted>, Aggregate),
}

impl Later {
    pub fn column(&self) -> ArrayRef {
        let (after, until) = self.window;
        match &self.of {
            LaterOf::Days(days) => days.column(until),
            LaterOf::Notes(notes, aggregate) => notes.column(*aggregate, after, until),
        }
    }
}

/// Whether aggregate `a` of `source` is kept as notes ([`State::Noted`])
/// in a scan for `dates` dates: where the most notes its table could
/// give (a note a row, for a bitset a note a code) take no more memory
/// than the state per person and date they replace, read from the table's
/// metadata before the scan. The bound, not the notes a scan would make:
/// only those in a window are noted, and for a bitset only codes of its
/// list, so the notes are most often far fewer (admissions' HFRS codes at
/// 1M persons, about a tenth).
fn noted(plan: &Plan, source: &SourcePlan, a: &AggregatePlan, dates: usize) -> bool {
    note_bound(plan, source, a).is_some_and(|b| b.holds(plan.population.len(), dates))
}

/// What an aggregate kept as notes could hold, against its state.
#[derive(Clone, Copy)]
struct NoteBound {
    /// The most bytes its notes could take.
    notes: usize,
    /// The bytes its state takes a person and date otherwise.
    per_date: usize,
}

impl NoteBound {
    /// Whether the notes are kept, in a scan of `persons` for `dates`.
    fn holds(self, persons: usize, dates: usize) -> bool {
        dates > 1 && self.notes <= persons.saturating_mul(dates).saturating_mul(self.per_date)
    }
}

/// The bit masks of aggregate `a` of `source` where it is a bitset that
/// could be kept as notes: its count or weights, not a list of its
/// categories.
fn noted_bits(plan: &Plan, source: &SourcePlan, a: &AggregatePlan) -> Option<Vec<Vec<u64>>> {
    a.kinds()
        .iter()
        .all(|k| {
            matches!(
                k,
                Aggregate::CountDistinctCodes
                    | Aggregate::CountDistinctCategories
                    | Aggregate::SumDistinctWeights
            )
        })
        .then(|| bit_masks(plan, source, a))
        .flatten()
}

/// The [`NoteBound`] of an aggregate that could be kept as notes (a
/// count, or a bitset's count or weights).
fn note_bound(plan: &Plan, source: &SourcePlan, a: &AggregatePlan) -> Option<NoteBound> {
    let kinds = a.kinds();
    let note = size_of::<Note>() as u64;
    let (most, per_date) = if kinds.iter().all(|&k| k == Aggregate::Count) {
        (source.table.rows(), size_of::<u32>())
    } else {
        let words = noted_bits(plan, source, a)?.first().map_or(1, Vec::len);
        let codes = source
            .codes
            .iter()
            .map(|c| source.table.values(&c.name))
            .sum::<Option<u64>>()?;
        (codes, words * size_of::<u64>())
    };
    Some(NoteBound {
        notes: usize::try_from(most.saturating_mul(note)).ok()?,
        per_date,
    })
}

/// How a scan for several dates keeps aggregate `a` (of a plan for one
/// date, or any date's copy of it: they differ only in where their
/// windows end), where it is not kept as notes ([`noted`]): decided here
/// for the scan's states and for the estimate of what they hold alike.
enum Dated {
    /// A last date over every earlier day: [`State::LaterDays`].
    LaterDays,
    /// A bitset with no window start: its bits up to the earliest date
    /// kept once a person, the later events noted (`State::noted_after`).
    Before(Vec<Vec<u64>>),
    /// A state per person and date.
    Each,
}

fn dated(plan: &Plan, source: &SourcePlan, a: &AggregatePlan) -> Dated {
    if a.after.is_some() {
        return Dated::Each;
    }
    if a.aggregate == Aggregate::LastDate {
        return Dated::LaterDays;
    }
    noted_bits(plan, source, a).map_or(Dated::Each, Dated::Before)
}

/// The state of aggregate `j` of `source` (holding every date's copy of it)
/// over `persons`.
fn state_of(plan: &Plan, source: &SourcePlan, j: usize, persons: usize) -> State {
    let (a, dates) = (&source.aggregates[j], source.dates);
    // Every date's copy of the aggregate, and the earliest date's last day.
    let copies = || {
        source.aggregates[j..]
            .iter()
            .step_by(source.distinct_aggregates())
    };
    debug_assert!(
        copies().all(|c| c.aggregate == a.aggregate && c.after.is_none() == a.after.is_none())
    );
    let first = || copies().map(|c| c.until).min().expect("a copy a date");
    match (dates > 1).then(|| dated(plan, source, a)) {
        Some(Dated::LaterDays) => return State::later_days(persons, dates, first()),
        _ if noted(plan, source, a, dates) => return State::noted(bit_masks(plan, source, a)),
        Some(Dated::Before(masks)) => {
            return State::noted_after(masks, persons, dates, first());
        }
        _ => {}
    }
    State::new(
        a.aggregate,
        a.value.map(|(_, t)| t),
        a.codelist.is_some(),
        bit_masks(plan, source, a),
        persons,
        dates,
    )
    .with_nth(a.nth)
}

/// Runs every source's aggregates in one parallel pass; with `trace`, also
/// records the events that feed one person's features.
pub fn scan(
    plan: &Plan,
    progress: Option<&ProgressBar>,
    trace: Option<&Trace>,
) -> Result<ScanOutput> {
    let persons = plan.population.len();
    let as_of = dates::to_day(plan.as_of);
    // One state per aggregate, holding every date's copy side by side:
    // slot `person * dates + date`, so that an event's copies for every
    // date land in one cache line rather than in as many arrays.
    let states: Vec<Vec<State>> = plan
        .sources
        .iter()
        .map(|s| {
            (0..s.distinct_aggregates())
                .map(|j| state_of(plan, s, j, persons))
                .collect()
        })
        .collect();
    let rejected: Vec<Rejected> = plan
        .sources
        .iter()
        .map(|s| Rejected::new(s.measure.is_some()))
        .collect();

    // One task per row group of each table, feeding every source that
    // reads the table.
    let tables = plan.tables();
    let tasks = costliest_first(plan, &tables);
    // Each source's code lists, and all of them indexed at once.
    let lists: Vec<Vec<&Codelist>> = plan
        .sources
        .iter()
        .map(|s| {
            s.codelists
                .iter()
                .map(|&c| &plan.model.codelists[c])
                .collect()
        })
        .collect();
    let indexes: Vec<CombinedIndex> = lists.iter().map(|l| CombinedIndex::new(l)).collect();
    let numbers = CodeNumbers::default();
    let started = std::time::Instant::now();
    // Handed out in order, each to the next thread that is free (not split
    // in halves up front), so that the cheapest tasks come last and the
    // threads finish together. When each thread last finished a task is
    // kept: the time from then to the scan's end, summed over the pool's
    // threads (a thread that got no task counts the whole scan), is logged
    // (debug) as `idle_at_end`.
    let last_done = std::sync::Mutex::new(vec![started; rayon::current_num_threads()]);
    let each = |&(sources, group): &(&[usize], RowGroup)| -> Result<()> {
        let tasks: Vec<Task> = sources
            .iter()
            .map(|&si| {
                let source = &plan.sources[si];
                Task::new(
                    source,
                    (&lists[si], &indexes[si]),
                    plan.population.index(),
                    &states[si],
                    &rejected[si],
                    trace,
                    as_of,
                    &numbers,
                )
            })
            .collect();
        scan_row_group(&tasks, group, progress)?;
        if let Some(thread) = rayon::current_thread_index() {
            let mut last = last_done.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(at) = last.get_mut(thread) {
                *at = std::time::Instant::now();
            }
        }
        Ok(())
    };
    each_until_failure(&tasks, each)?;

    let rows_time = started.elapsed();
    let done = started + rows_time;
    let idle: std::time::Duration = last_done
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|at| done.saturating_duration_since(at))
        .sum();
    let started = std::time::Instant::now();
    let columns = plan
        .sources
        .iter()
        .flat_map(|s| &s.aggregates)
        .flat_map(|a| a.fills())
        .map(|f| f.column + 1)
        .fold(plan.features.len(), usize::max);
    // Each aggregate's state finished on its own, in parallel: the
    // distinct aggregates sort their keys, and with several dates each
    // state holds every date's copy. They are handed out in order of the
    // memory finishing frees, most first: in rayon's order the medicine
    // sets (then 64 bytes a person, freed once counted) were still held while
    // the eFI's coded deficits were made into text (about 40 bytes a
    // person), and that set the default model's peak at 5M.
    let mut jobs: Vec<(i64, &crate::engine::plan::SourcePlan, usize, State)> = plan
        .sources
        .iter()
        .zip(states)
        .flat_map(|(source, source_states)| {
            source_states
                .into_iter()
                .enumerate()
                .map(move |(j, state)| (freed(plan, source, j), source, j, state))
        })
        .collect();
    jobs.sort_by_key(|job| std::cmp::Reverse(job.0));
    let finished: Vec<Finished> = jobs
        .into_iter()
        .par_bridge()
        .map(|(_, source, j, state)| finish(plan, source, j, state, persons))
        .collect::<Result<_>>()?;
    let mut features: Vec<Option<ArrayRef>> = vec![None; columns];
    let mut later = Vec::new();
    for f in finished {
        match f {
            Finished::Made(made) => {
                for (column, array) in made {
                    features[column] = Some(array);
                }
            }
            Finished::Later(columns) => later.extend(columns),
        }
    }
    tracing::debug!(rows = ?rows_time, idle_at_end = ?idle, finish = ?started.elapsed(), "scanned");
    Ok(ScanOutput {
        features,
        rejected,
        later,
    })
}

/// Runs `each` on every task, handing them out in order, one at a time, to
/// whichever thread is free. An error stops the threads taking new tasks,
/// and so does a panic (a bug): then the panic is resumed once the running
/// tasks end, rather than after every row group of a large extract.
fn each_until_failure<T: Sync>(tasks: &[T], each: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
    let panicked = AtomicBool::new(false);
    tasks.iter().par_bridge().try_for_each(|task| {
        if panicked.load(Relaxed) {
            return Err(Error::Internal("another task of the scan panicked".into()));
        }
        let _flag = FlagOnPanic(&panicked);
        each(task)
    })
}

/// Sets its flag if dropped while its thread unwinds from a panic.
pub(super) struct FlagOnPanic<'a>(pub(super) &'a AtomicBool);

impl Drop for FlagOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Relaxed);
        }
    }
}

/// Every row group of every table in `tables` (each a list of the sources
/// reading it), costliest first by an estimate: its rows times the sources
/// reading them, and a tenth of that when its date statistics show every
/// row outside every source's windows (such rows are dropped before the
/// person lookup: a row group of old prescriptions took 0.003-0.02 s at 1M
/// persons, of recent ones 0.24-0.27 s). Split in halves up front, as
/// rayon splits a list, the costly row groups of `observations` (seven
/// sources) ran last, and one thread finished 0.03-0.25 s before the other.
fn costliest_first<'a>(plan: &Plan, tables: &'a [Vec<usize>]) -> Vec<(&'a [usize], RowGroup)> {
    let mut tasks: Vec<(u64, &[usize], RowGroup)> = tables
        .iter()
        .flat_map(|t| {
            let sources: Vec<&SourcePlan> = t.iter().map(|&s| &plan.sources[s]).collect();
            let table = &sources[0].table;
            table.row_groups().into_iter().map(move |g| {
                let rows = table.group_rows(g) * sources.len() as u64;
                let outside = sources
                    .iter()
                    .all(|s| outside_windows(s.days_taken(), table.group_days(g, &s.date_column)));
                (if outside { rows / 10 } else { rows }, t.as_slice(), g)
            })
        })
        .collect();
    // Stable: equal estimates keep the tables' order.
    tasks.sort_by_key(|&(cost, ..)| std::cmp::Reverse(cost));
    tasks.into_iter().map(|(_, t, g)| (t, g)).collect()
}

/// Whether every row of a row group dated `group` (first, last day; `None`
/// when unknown) is outside the days `taken` (exclusive start, last day).
fn outside_windows(
    taken: (Option<dates::Day>, dates::Day),
    group: Option<(dates::Day, dates::Day)>,
) -> bool {
    let (after, until) = taken;
    group.is_some_and(|(first, last)| after.is_some_and(|a| last <= a) || first > until)
}

/// Aggregate `j` of `source` from its state: one column, or with several
/// dates each date's column (taken out of the interleaved slots), as
/// (feature column, values).
fn finish(
    plan: &Plan,
    source: &crate::engine::plan::SourcePlan,
    j: usize,
    state: State,
    persons: usize,
) -> Result<Finished> {
    let copies = source.dates;
    let distinct = source.distinct_aggregates();
    // Each date's copy's columns (its own, and those of the aggregates
    // computed alike), as (column, window, aggregate).
    let later = || {
        (0..copies)
            .map(|date| &source.aggregates[date * distinct + j])
            .flat_map(|copy| {
                copy.fills()
                    .map(move |fill| (fill.column, (copy.after, copy.until), fill.aggregate))
            })
    };
    if state.is_later_days() {
        let days = Arc::new(state.into_later_days().expect("later days"));
        let later = later()
            .map(|(column, window, _)| Later {
                column,
                window,
                of: LaterOf::Days(days.clone()),
            })
            .collect();
        return Ok(Finished::Later(later));
    }
    let agg = &source.aggregates[j];
    let list = agg
        .codelist
        .map(|c| &plan.model.codelists[source.codelists[c]]);
    let weights: Vec<i64> = list.map_or_else(Vec::new, |l| {
        l.entries.iter().map(|e| e.weight.unwrap_or(0)).collect()
    });
    if state.is_noted() {
        let notes = Arc::new(state.into_noted(weights, persons).expect("notes"));
        let later = later()
            .map(|(column, window, aggregate)| Later {
                column,
                window,
                of: LaterOf::Notes(notes.clone(), aggregate),
            })
            .collect();
        return Ok(Finished::Later(later));
    }
    let categories: Vec<Vec<u32>> = list.map_or_else(Vec::new, |l| item_categories(l, agg));
    let names = list.map_or(&[][..], |l| &l.categories[..]);
    let columns = |state: State, aggregate: Aggregate| -> Result<Vec<ArrayRef>> {
        if copies == 1 {
            let all = state.finish(aggregate, &weights, (&categories, names), persons);
            return Ok(vec![all]);
        }
        state.finish_dates(aggregate, &weights, (&categories, names), persons, copies)
    };
    // Each aggregate that makes columns of this state (its own, and any
    // other of the same state computed alike, from a copy) and each
    // date's column of it.
    let mut made: Vec<(Aggregate, Vec<ArrayRef>)> = Vec::new();
    for kind in agg.kinds().into_iter().skip(1) {
        made.push((kind, columns(state.copied(), kind)?));
    }
    made.push((agg.aggregate, columns(state, agg.aggregate)?));
    // Each date's copy of the aggregate fills its columns: its own and
    // those of the aggregates computed alike.
    let mut filled = Vec::new();
    for date in 0..copies {
        for fill in source.aggregates[date * distinct + j].fills() {
            let (_, by_date) = made
                .iter()
                .find(|(a, _)| *a == fill.aggregate)
                .expect("every aggregate of the state made its columns");
            filled.push((fill.column, by_date[date].clone()));
        }
    }
    Ok(Finished::Made(filled))
}

/// An aggregate's columns from its state: made, as (column, values), or
/// to be made date by date.
enum Finished {
    Made(Vec<(usize, ArrayRef)>),
    Later(Vec<Later>),
}

/// The bitset masks of aggregate `a` of source `s`, where its state is a
/// bitset per person (see [`crate::engine::aggregate::bit_masks`]).
fn bit_masks(plan: &Plan, s: &SourcePlan, a: &AggregatePlan) -> Option<Vec<Vec<u64>>> {
    let list = &plan.model.codelists[s.codelists[a.codelist?]];
    crate::engine::aggregate::bit_masks(a.aggregate, &item_categories(list, a))
}

/// What a scan of `plan` for `dates` dates holds at most, roughly: bits
/// per person and date, and bytes per person whatever the dates (see
/// [`crate::engine::aggregate::footprint`]). `plan` is planned for one
/// date. The finish turns each aggregate's state into its columns, one
/// aggregate a thread, and frees the state when they are made, those
/// that free the most first ([`freed`]): what is held falls while states
/// larger than their columns are finished, then rises while the others
/// are, so it is at most the larger of every state and every column,
/// and those being finished both. (Each aggregate's larger part, added,
/// had come to about twice what a scan allocated once the registers'
/// last dates were no longer per date.)
pub fn footprint(plan: &Plan, dates: usize) -> (usize, usize) {
    Footprints::of(plan).at(dates)
}

/// Each aggregate's footprint in a scan for several dates, as a state per
/// person and date, and what its notes could take where it may be kept
/// as notes ([`note_bound`]): worked out once, then [`Footprints::at`]
/// any number of dates.
pub struct Footprints {
    /// Each aggregate's footprints kept as a state, and where it may be
    /// kept as notes, their bound ([`note_bound`]).
    each: Vec<(Vec<Footprint>, Option<NoteBound>)>,
    persons: usize,
}

impl Footprints {
    pub fn of(plan: &Plan) -> Footprints {
        let each = plan
            .sources
            .iter()
            .flat_map(|s| s.aggregates.iter().map(move |a| (s, a)))
            .map(|(s, a)| {
                let prints = footprints(plan, s, a, true);
                let bound = note_bound(plan, s, a);
                for f in &prints {
                    tracing::trace!(
                        source = %s.name,
                        feature = %plan.model.features[a.feature].name,
                        aggregate = ?a.aggregate,
                        state_bits = f.state,
                        column_bits = f.columns,
                        bytes_per_person = f.per_person,
                        code_sets = f.code_sets,
                        notes_at_most_bytes = bound.map(|b| b.notes),
                        "an aggregate's footprint in a scan for several dates"
                    );
                }
                (prints, bound)
            })
            .collect();
        Footprints {
            each,
            persons: plan.population.len(),
        }
    }

    /// [`footprint`] of a scan for `dates` dates: an aggregate kept as
    /// notes there ([`noted`]) holds no state per date, only its notes.
    pub fn at(&self, dates: usize) -> (usize, usize) {
        let mut per_person = 0;
        let mut each: Vec<&Footprint> = Vec::new();
        for (prints, bound) in &self.each {
            match bound.filter(|b| b.holds(self.persons, dates)) {
                Some(b) => per_person += b.notes.div_ceil(self.persons.max(1)),
                None => each.extend(prints),
            }
        }
        let states: usize = each.iter().map(|f| f.state).sum();
        let columns: usize = each.iter().map(|f| f.columns).sum();
        let larger = states.max(columns);
        // The smaller parts of the aggregates being finished, the largest
        // first: one a thread.
        let mut smaller: Vec<usize> = each.iter().map(|f| f.state.min(f.columns)).collect();
        smaller.sort_unstable_by(|a, b| b.cmp(a));
        let finishing: usize = smaller.iter().take(rayon::current_num_threads()).sum();
        per_person += each
            .iter()
            .map(|f| f.bytes_per_person(dates))
            .sum::<usize>();
        (larger + finishing, per_person)
    }
}

/// Roughly the bits a person finishing aggregate `j` of `source` frees
/// (its state, less the columns made of it; negative where they are
/// larger), from [`crate::engine::aggregate::footprint`].
fn freed(plan: &Plan, source: &SourcePlan, j: usize) -> i64 {
    let a = &source.aggregates[j];
    if noted(plan, source, a, source.dates) {
        // Sorted where they are; each date's columns made later.
        return 0;
    }
    let prints = footprints(plan, source, a, source.dates > 1);
    // One state (the largest the kinds name), every kind's columns.
    let state = prints
        .iter()
        .map(|f| f.state + 8 * f.bytes_per_person(source.dates))
        .max()
        .unwrap_or(0);
    let columns: usize = prints.iter().map(|f| f.columns).sum();
    state as i64 - columns as i64
}

/// The [`crate::engine::aggregate::Footprint`] of each kind of aggregate
/// `a` of source `s` makes (its own, and those computed alike), in a scan
/// for `several` dates or one, where it is not kept as notes.
fn footprints(
    plan: &Plan,
    s: &SourcePlan,
    a: &AggregatePlan,
    several: bool,
) -> Vec<crate::engine::aggregate::Footprint> {
    // Kept once a person, each date's column made as it is worked out.
    // Not counted: the events noted after the first date (8 bytes each,
    // as many as the dates' span holds, not as the dates are many).
    let once = |bytes| {
        vec![crate::engine::aggregate::Footprint {
            state: 0,
            columns: 0,
            per_person: bytes,
            code_sets: false,
        }]
    };
    match several.then(|| dated(plan, s, a)) {
        Some(Dated::LaterDays) => return once(size_of::<i32>()),
        Some(Dated::Before(masks)) => {
            return once(masks.first().map_or(1, Vec::len) * size_of::<u64>());
        }
        _ => {}
    }
    let words = bit_masks(plan, s, a).map(|m| m.first().map_or(1, Vec::len));
    a.kinds()
        .into_iter()
        .map(|kind| {
            crate::engine::aggregate::footprint(
                kind,
                a.value.map(|(_, t)| t),
                a.codelist.is_some(),
                words,
            )
        })
        .collect()
}

/// The categories each entry of `list` scores for `agg`: those of its
/// `category` filter, or all of them.
fn item_categories(list: &Codelist, agg: &AggregatePlan) -> Vec<Vec<u32>> {
    list.entries
        .iter()
        .map(|e| {
            e.categories
                .iter()
                .copied()
                .filter(|c| agg.category.is_empty() || agg.category.binary_search(c).is_ok())
                .collect()
        })
        .collect()
}

/// A row of a number column (read as Int64 or Float64) as a float; `None`
/// where null.
fn number(column: &ArrayRef, row: usize) -> Option<f64> {
    if column.is_null(row) {
        return None;
    }
    Some(match column.data_type() {
        DataType::Int64 => column.as_primitive::<Int64Type>().value(row) as f64,
        _ => column.as_primitive::<Float64Type>().value(row),
    })
}

/// Each row's unit factor to a measure's canonical unit (None where the
/// measure does not list the unit). A dictionary column's units are matched
/// once per distinct unit, not once per row.
enum UnitFactors {
    Dictionary {
        keys: Int32Array,
        /// Per dictionary value; then the factor of a null unit.
        factors: Vec<Option<f64>>,
    },
    /// A text column: matched row by row, for the measure's rows only.
    Rows(StringArray),
}

impl UnitFactors {
    #[inline]
    fn get(&self, m: &Measure, row: usize) -> Option<f64> {
        match self {
            UnitFactors::Dictionary { keys, factors } => match keys.is_valid(row) {
                true => factors[keys.value(row) as usize],
                false => factors[factors.len() - 1],
            },
            UnitFactors::Rows(units) => m.factor(units.is_valid(row).then(|| units.value(row))),
        }
    }
}

fn unit_factors(m: &Measure, batch: &RecordBatch, path: &std::path::Path) -> Result<UnitFactors> {
    let column = table::column(batch, &m.unit);
    let factor = |unit: Option<&str>| m.factor(unit);
    if let DataType::Dictionary(key, _) = column.data_type()
        && key.as_ref() == &DataType::Int32
    {
        let dict = column.as_dictionary::<Int32Type>();
        let (values, _) = table::canonical(dict.values(), path, &m.unit)?;
        let values = values.as_string::<i32>();
        let mut factors: Vec<Option<f64>> = values.iter().map(factor).collect();
        factors.push(factor(None));
        return Ok(UnitFactors::Dictionary {
            keys: dict.keys().clone(),
            factors,
        });
    }
    let (units, _) = table::canonical(column, path, &m.unit)?;
    Ok(UnitFactors::Rows(units.as_string::<i32>().clone()))
}

/// Does this aggregate count distinct codes without a code list (such as
/// distinct medicines, for polypharmacy)?
fn counts_distinct_values(agg: &AggregatePlan) -> bool {
    agg.aggregate == Aggregate::CountDistinctCodes && agg.codelist.is_none()
}

/// A column a `where` reads: stored, or a word column mapped from codes
/// (values with no word read as null).
fn filter_column(
    source: &SourcePlan,
    batch: &RecordBatch,
    path: &std::path::Path,
    name: &str,
) -> Result<ArrayRef> {
    let stored = source.stored_column(name);
    let (array, _) = table::canonical(table::column(batch, stored), path, stored)?;
    let Some(mapped) = source.mapped.iter().find(|m| m.name == name) else {
        return Ok(array);
    };
    let raw = arrow_cast::cast(&array, &DataType::Utf8).map_err(|e| {
        Error::data(
            path,
            format!("column `{stored}` cannot be read as codes: {e}"),
        )
        .with_help("store the column as text or integers")
    })?;
    let words: StringArray = raw
        .as_string::<i32>()
        .iter()
        .map(|v| {
            v.and_then(|v| mapped.map.get(crate::rules::codelist::trim_code(v)))
                .map(String::as_str)
        })
        .collect();
    Ok(Arc::new(words))
}

/// A dictionary's values, and per code list the entry each value matches.
type DictionaryMatches = (ArrayRef, Arc<DictionaryCodes>);

/// What a task knows of one code column across its batches: the matches of
/// the dictionary it last saw, and of every distinct value of a list column
/// (diagnoses repeat: matching each once, not once per row, matters for
/// prefix lists such as HFRS and Charlson).
#[derive(Default)]
struct ColumnCache {
    dictionary: Option<DictionaryMatches>,
    values: ValueCache,
}

/// The distinct values of a list column (or an integer code column) met so
/// far, each with an id into `codes`; a null value has its own id.
#[derive(Default)]
struct ValueCache {
    ids: foldhash::HashMap<String, u32>,
    /// Integer codes (SNOMED CT ids stored as bigint): matched as the text of
    /// their digits, once per distinct value, never once per row.
    int_ids: foldhash::HashMap<i128, u32>,
    null: Option<u32>,
    codes: Arc<DictionaryCodes>,
}

impl ValueCache {
    /// Adds a value not seen before, matched against every code list (and
    /// numbered where distinct codes are counted); returns its id.
    fn add(&mut self, value: Option<&str>, m: &Matcher) -> u32 {
        let codes = Arc::make_mut(&mut self.codes);
        if codes.listed.is_empty() {
            codes.lists = m.lists.len();
        }
        let id = codes.listed.len() as u32;
        codes.push(value, m);
        id
    }

    /// The id of a null value.
    fn null_id(&mut self, m: &Matcher) -> u32 {
        match self.null {
            Some(id) => id,
            None => {
                let id = self.add(None, m);
                self.null = Some(id);
                id
            }
        }
    }

    /// The id of each integer of `values`, matching the values not seen
    /// before (their digits, as text, against the code lists).
    fn int_ids(&mut self, values: impl Iterator<Item = Option<i128>>, m: &Matcher) -> Vec<u32> {
        values
            .map(|v| match v {
                None => self.null_id(m),
                Some(n) => match self.int_ids.get(&n) {
                    Some(&id) => id,
                    None => {
                        let id = self.add(Some(&n.to_string()), m);
                        self.int_ids.insert(n, id);
                        id
                    }
                },
            })
            .collect()
    }

    /// The id of each of `values`, matching the values not seen before.
    fn ids(&mut self, values: &StringArray, m: &Matcher) -> Vec<u32> {
        values
            .iter()
            .map(|v| match v {
                None => self.null_id(m),
                Some(s) => match self.ids.get(s) {
                    Some(&id) => id,
                    None => {
                        let id = self.add(Some(s), m);
                        self.ids.insert(s.to_string(), id);
                        id
                    }
                },
            })
            .collect()
    }
}

/// What a code is matched against: a source's code lists, and its
/// aggregates (one date's), to route each value to those it feeds.
struct Matcher<'a> {
    lists: &'a [&'a Codelist],
    index: &'a CombinedIndex,
    aggregates: &'a [AggregatePlan],
    /// The run's numbering of codes, where some aggregate of the source
    /// counts distinct codes without a list.
    numbers: Option<&'a CodeNumbers>,
}

impl Matcher<'_> {
    /// Is entry `item` of list `l` one `agg` takes (all, or those in one of
    /// its categories)?
    #[inline]
    fn in_category(&self, agg: &AggregatePlan, l: usize, item: u32) -> bool {
        agg.category.is_empty()
            || self.lists[l].entries[item as usize]
                .categories
                .iter()
                .any(|c| agg.category.binary_search(c).is_ok())
    }
}

/// What is known of each value of a dictionary: the entry it matches in
/// each code list, the aggregates it feeds, and the code's number for
/// counting distinct codes ([`CodeNumbers`]).
#[derive(Clone)]
struct DictionaryCodes {
    /// The entry each listed value matches in each code list: value `v`'s
    /// in list `l` at `listed_at[v] + l`. Only values that match some list
    /// have their row (most codes of a GP extract match none: a row for
    /// every value of every row group's dictionary had been 918 MiB of
    /// fresh memory at 5M persons, most of it empty).
    matched: Vec<Option<u32>>,
    /// Where value `v`'s row starts in `matched`; [`NOT_LISTED`] for none.
    listed_at: Vec<u32>,
    lists: usize,
    /// Per value: does it match an entry of any list?
    listed: Vec<bool>,
    /// Each value's number ([`CodeNumbers`]), where the source counts
    /// distinct codes without a list.
    numbers: Vec<Option<u32>>,
    /// The aggregates (of one date, ascending) whose code list and
    /// categories value `v` matches, `feeds[feed_offsets[v] as usize..]` up
    /// to the next value's offset. A row is offered to these aggregates
    /// only, however many the source has (the core model has over a
    /// hundred on GP events).
    feeds: Vec<u32>,
    feed_offsets: Vec<u32>,
}

impl Default for DictionaryCodes {
    fn default() -> DictionaryCodes {
        DictionaryCodes {
            matched: Vec::new(),
            listed_at: Vec::new(),
            lists: 0,
            listed: Vec::new(),
            numbers: Vec::new(),
            feeds: Vec::new(),
            feed_offsets: vec![0],
        }
    }
}

impl DictionaryCodes {
    /// Adds one value at the end.
    fn push(&mut self, value: Option<&str>, m: &Matcher) {
        let number = m
            .numbers
            .zip(value)
            .map(|(numbers, code)| numbers.number(&mut numbers.lock(), code));
        self.push_numbered(value, number, m);
    }

    /// Adds one value at the end, with its number if it has one.
    fn push_numbered(&mut self, value: Option<&str>, number: Option<u32>, m: &Matcher) {
        // A row for the value, kept only if it matches some list.
        let at = self.matched.len();
        self.matched.resize(at + self.lists, None);
        let mut listed = false;
        if let Some(raw) = value {
            m.index.lookup(m.lists, raw, |l, entry| {
                self.matched[at + l] = Some(entry);
                listed = true;
            });
        }
        if listed {
            self.listed_at
                .push(u32::try_from(at).expect("fewer than 2^32 list entries matched"));
        } else {
            self.matched.truncate(at);
            self.listed_at.push(NOT_LISTED);
        }
        self.listed.push(listed);
        self.numbers.push(number);
        self.route(m);
    }

    /// Matches every value against every code list, and numbers every
    /// value when some aggregate counts distinct codes: all of them under
    /// one lock of the numbering, taken for the numbering alone (the other
    /// tasks of the scan number their codes under it too).
    fn new(values: &StringArray, m: &Matcher) -> DictionaryCodes {
        let mut codes = DictionaryCodes {
            lists: m.lists.len(),
            ..Default::default()
        };
        let numbers: Vec<Option<u32>> = match m.numbers {
            Some(numbers) => {
                let mut held = numbers.lock();
                values
                    .iter()
                    .map(|value| value.map(|code| numbers.number(&mut held, code)))
                    .collect()
            }
            None => vec![None; values.len()],
        };
        for (value, number) in values.iter().zip(numbers) {
            codes.push_numbered(value, number, m);
        }
        codes
    }

    /// Works out the aggregates each value not yet routed feeds.
    fn route(&mut self, m: &Matcher) {
        for v in self.feed_offsets.len() - 1..self.listed.len() {
            // Most values (codes) are in no list, and feed nothing.
            let aggregates = if self.listed[v] { m.aggregates } else { &[] };
            for (j, agg) in aggregates.iter().enumerate() {
                if let Some(l) = agg.codelist
                    && let Some(item) = self.entry(v, l)
                    && m.in_category(agg, l, item)
                {
                    self.feeds.push(j as u32);
                }
            }
            self.feed_offsets.push(self.feeds.len() as u32);
        }
    }

    /// The entry of list `l` that value `v` matches.
    #[inline]
    fn entry(&self, v: usize, l: usize) -> Option<u32> {
        match self.listed_at[v] {
            NOT_LISTED => None,
            at => self.matched[at as usize + l],
        }
    }

    /// The aggregates value `v` feeds.
    #[inline]
    fn feeds(&self, v: usize) -> &[u32] {
        &self.feeds[self.feed_offsets[v] as usize..self.feed_offsets[v + 1] as usize]
    }
}

/// [`DictionaryCodes::listed_at`] of a value that matches no list.
const NOT_LISTED: u32 = u32::MAX;

/// Codes' identities for counting distinct codes without a code list
/// (medicines, for polypharmacy): each code (trimmed) numbered from 1 as
/// the scan first meets it, one numbering for every task of the scan.
/// The numbers are compared only, within one run, never stored or
/// ordered for an output, so the order tasks meet codes in changes
/// nothing. 32 bits, not a 64-bit hash: each person's set of codes
/// ([`crate::engine::aggregate::CodeSets`]) takes half the memory (about
/// 160 MB less at 5M persons), and two codes can never be taken for one.
#[derive(Default)]
struct CodeNumbers(std::sync::Mutex<foldhash::HashMap<Box<str>, u32>>);

/// The numbering, held while codes are numbered.
type Numbered<'a> = std::sync::MutexGuard<'a, foldhash::HashMap<Box<str>, u32>>;

impl CodeNumbers {
    fn lock(&self) -> Numbered<'_> {
        self.0.lock().expect("no task panics while numbering codes")
    }

    /// `code`'s number, given it if it has none yet.
    fn number(&self, held: &mut Numbered, code: &str) -> u32 {
        let code = crate::rules::codelist::trim_code(code);
        if let Some(&n) = held.get(code) {
            return n;
        }
        let n = u32::try_from(held.len() + 1).expect("fewer than 4 billion distinct codes");
        held.insert(code.into(), n);
        n
    }
}

/// One source's share of a row group's scan.
struct Task<'a> {
    source: &'a SourcePlan,
    lists: &'a [&'a Codelist],
    index: &'a CombinedIndex,
    people: &'a PersonIndex,
    states: &'a [State],
    rejected: &'a Rejected,
    trace: Option<&'a Trace>,
    as_of: i32,
    /// The scan's numbering of codes counted without a list.
    numbers: &'a CodeNumbers,
    /// The distinct `where`s of the source's aggregates (many share one,
    /// such as emergency admissions), each evaluated once per batch; two
    /// are one when their checked trees print the same (so a literal -0.0
    /// and 0.0 stay apart).
    filters: Vec<&'a Typed>,
    /// Per aggregate (of one date): its `where`, as an index into `filters`.
    filter_of: Vec<Option<usize>>,
    /// The days some aggregate's window takes: after the first day (when
    /// every window has a start), up to the last. Rows outside are no
    /// aggregate's, and their person is never looked up.
    days: (Option<i32>, i32),
}

/// What a task gathers over one row group.
struct Progress<'a> {
    cached: Vec<ColumnCache>,
    found: Found,
    rejects: Rejects<'a>,
}

/// Reads one row group of a table once, with the columns all of `tasks`
/// (the sources reading the table) need, and feeds each batch to each.
fn scan_row_group(tasks: &[Task], group: RowGroup, progress: Option<&ProgressBar>) -> Result<()> {
    // Fault injection for the test of panics in worker threads; debug
    // builds only (release builds compile it out).
    if cfg!(debug_assertions)
        && std::env::var_os("STRATA_INJECT_PANIC").is_some_and(|v| v == "scan")
    {
        panic!("injected panic in the scan of row group {}", group.index);
    }
    let table = &tasks[0].source.table;
    let path = &table.parts[group.part].path;
    let mut columns: Vec<&str> = tasks.iter().flat_map(|t| t.source.columns()).collect();
    columns.sort_unstable();
    columns.dedup();
    let mut dictionary: Vec<&str> = tasks
        .iter()
        .flat_map(|t| &t.source.codes)
        .filter(|c| !c.is_list)
        .map(|c| c.name.as_str())
        .collect();
    dictionary.sort_unstable();
    dictionary.dedup();
    let reader = table.reader(group, &columns, &dictionary)?;
    let mut gathered: Vec<Progress> = tasks.iter().map(|t| t.start(group)).collect();
    for batch in reader {
        let batch = batch.map_err(|e| table.read_error(group, &columns, &e))?;
        for (task, g) in tasks.iter().zip(&mut gathered) {
            task.batch(&batch, path, &mut g.cached, &mut g.found, &mut g.rejects)?;
            g.rejects.offset += batch.num_rows() as u64;
        }
        if let Some(p) = progress {
            p.inc(batch.num_rows() as u64);
        }
    }
    for (task, g) in tasks.iter().zip(gathered) {
        task.finish(g);
    }
    Ok(())
}

/// One code column of a batch: where each row's codes sit among the
/// column's values, and what is known of each value (the code-list entries
/// it matches, its number), worked out once per value, not once per use.
struct ColumnCodes {
    layout: Layout,
    codes: Arc<DictionaryCodes>,
}

/// Where row `r`'s codes are among a column's values.
enum Layout {
    /// Value `keys[r]` of the column's dictionary.
    Dictionary(Int32Array),
    /// Value `r` (a plain text column).
    Rows,
    /// Values `ids[offsets[r]..offsets[r + 1]]` (a list column).
    List {
        offsets: Vec<usize>,
        valid: Option<NullBuffer>,
        ids: Vec<u32>,
    },
}

impl ColumnCodes {
    /// Calls `f` with the index of each value of row `row`.
    #[inline]
    fn each_value(&self, row: usize, mut f: impl FnMut(usize)) {
        match &self.layout {
            Layout::Dictionary(keys) => {
                if keys.is_valid(row) {
                    f(keys.value(row) as usize);
                }
            }
            Layout::Rows => f(row),
            Layout::List {
                offsets,
                valid,
                ids,
            } => {
                if valid.as_ref().is_none_or(|n| n.is_valid(row)) {
                    ids[offsets[row]..offsets[row + 1]]
                        .iter()
                        .for_each(|&id| f(id as usize));
                }
            }
        }
    }
}

/// The values of an integer code column (any width, signed or not, or a
/// decimal with no fractional digits), or `None` for any other column.
fn integers(array: &ArrayRef) -> Option<Box<dyn Iterator<Item = Option<i128>> + '_>> {
    use arrow_array::types::*;
    fn each<T: arrow_array::ArrowPrimitiveType>(
        array: &ArrayRef,
    ) -> Box<dyn Iterator<Item = Option<i128>> + '_>
    where
        T::Native: Into<i128>,
    {
        Box::new(array.as_primitive::<T>().iter().map(|v| v.map(Into::into)))
    }
    Some(match array.data_type() {
        DataType::Int8 => each::<Int8Type>(array),
        DataType::Int16 => each::<Int16Type>(array),
        DataType::Int32 => each::<Int32Type>(array),
        DataType::Int64 => each::<Int64Type>(array),
        DataType::UInt8 => each::<UInt8Type>(array),
        DataType::UInt16 => each::<UInt16Type>(array),
        DataType::UInt32 => each::<UInt32Type>(array),
        DataType::UInt64 => each::<UInt64Type>(array),
        // Whole-number decimals (Snowflake's NUMBER(38, 0)).
        DataType::Decimal32(_, 0) => each::<Decimal32Type>(array),
        DataType::Decimal64(_, 0) => each::<Decimal64Type>(array),
        DataType::Decimal128(_, 0) => each::<Decimal128Type>(array),
        _ => return None,
    })
}

/// Each row's first `n` values of a list column: new offsets and value ids.
fn first_of_each(offsets: &[usize], ids: &[u32], n: usize) -> (Vec<usize>, Vec<u32>) {
    let mut kept_offsets = Vec::with_capacity(offsets.len());
    let mut kept = Vec::new();
    kept_offsets.push(0);
    for row in offsets.windows(2) {
        let end = row[1].min(row[0] + n);
        kept.extend_from_slice(&ids[row[0]..end]);
        kept_offsets.push(kept.len());
    }
    (kept_offsets, kept)
}

/// Notes the run of dates in `seen`, if any: each code of row `row` (for
/// distinct codes without a list), or the event's month or day (for
/// `max_in_a_month` and `max_in_30_days`).
fn note_run(
    found: &mut Vec<CodeSeen>,
    agg: &AggregatePlan,
    codes: &Codes,
    row: usize,
    day: i32,
    seen: Option<(u32, u16, u16)>,
) {
    let Some((person, first, end)) = seen else {
        return;
    };
    if counts_distinct_values(agg) {
        codes.each_code_number(row, |n| found.push((person, n, first, end)));
    } else {
        found.push((person, monthly_key(agg, day), first, end));
    }
}

/// Adds date `date` of person `person` to the run of dates `seen`, or,
/// where it does not continue the run, notes the run (`note`) and starts
/// another.
#[inline]
fn extend_run(
    seen: &mut Option<(u32, u16, u16)>,
    person: u32,
    date: usize,
    note: impl FnOnce(Option<(u32, u16, u16)>),
) {
    let date = date as u16;
    match seen {
        Some((_, _, end)) if *end == date => *end = date + 1,
        _ => {
            note(*seen);
            *seen = Some((person, date, date + 1));
        }
    }
}

/// What `max_in_a_month` and `max_in_30_days` keep of an event: its month,
/// or its day (the sign bit flipped keeps days before 1970 in order).
#[inline]
fn monthly_key(agg: &AggregatePlan, day: i32) -> u32 {
    if agg.aggregate == Aggregate::MaxInAMonth {
        dates::month_number(day)
    } else {
        day as u32 ^ 0x8000_0000
    }
}

/// All code columns of a batch (most sources have one; HES has twenty),
/// matched as one list per row.
struct Codes(Vec<ColumnCodes>);

impl Codes {
    /// Calls `f` with the number ([`CodeNumbers`]) of each code of row `row`.
    #[inline]
    fn each_code_number(&self, row: usize, mut f: impl FnMut(u32)) {
        for column in &self.0 {
            column.each_value(row, |v| {
                if let Some(n) = column.codes.numbers[v] {
                    f(n);
                }
            });
        }
    }

    /// Calls `f` with each entry of list `l` that row `row` matches.
    #[inline]
    fn each_match(&self, l: usize, row: usize, mut f: impl FnMut(u32)) {
        for column in &self.0 {
            column.each_value(row, |v| {
                if let Some(item) = column.codes.entry(v, l) {
                    f(item);
                }
            });
        }
    }

    /// The keys and the listed-or-not of each dictionary value, when the
    /// batch's codes are one dictionary column without nulls.
    fn single_dictionary(&self) -> Option<(&[i32], &[bool])> {
        match self.0.as_slice() {
            [
                ColumnCodes {
                    layout: Layout::Dictionary(keys),
                    codes,
                },
            ] if keys.null_count() == 0 => Some((keys.values(), &codes.listed)),
            _ => None,
        }
    }

    /// The aggregates row `row` is offered to, ascending, into `out`:
    /// `unlisted` (those without a code list, which take every row) and
    /// those its codes feed, each once however many of its codes match.
    #[inline]
    fn aggregates_of(&self, row: usize, unlisted: &[u32], out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(unlisted);
        let mut parts = usize::from(!unlisted.is_empty());
        for column in &self.0 {
            column.each_value(row, |v| {
                let feeds = column.codes.feeds(v);
                if !feeds.is_empty() {
                    out.extend_from_slice(feeds);
                    parts += 1;
                }
            });
        }
        if parts > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }

    /// Does row `row` match an entry of any code list?
    #[inline]
    fn any_listed(&self, row: usize) -> bool {
        let mut any = false;
        for column in &self.0 {
            column.each_value(row, |v| any |= column.codes.listed[v]);
        }
        any
    }

    /// Does row `row` match an entry of list `l` that `keep` accepts?
    #[inline]
    fn any_match(&self, l: usize, row: usize, keep: impl Fn(u32) -> bool) -> bool {
        let mut any = false;
        self.each_match(l, row, |item| any |= keep(item));
        any
    }
}

impl<'a> Task<'a> {
    /// What this source's codes are matched against.
    fn matcher(&self) -> Matcher<'_> {
        Matcher {
            lists: self.lists,
            index: self.index,
            aggregates: &self.source.aggregates[..self.source.distinct_aggregates()],
            numbers: self
                .source
                .aggregates
                .iter()
                .any(counts_distinct_values)
                .then_some(self.numbers),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        source: &'a SourcePlan,
        (lists, index): (&'a [&'a Codelist], &'a CombinedIndex),
        people: &'a PersonIndex,
        states: &'a [State],
        rejected: &'a Rejected,
        trace: Option<&'a Trace>,
        as_of: i32,
        numbers: &'a CodeNumbers,
    ) -> Task<'a> {
        // Identical as written: compared by their debug form, which tells
        // -0.0 from 0.0 (`==` on the tree does not, and the filters'
        // comparisons do).
        let mut filters: Vec<&Typed> = Vec::new();
        let mut written: Vec<String> = Vec::new();
        let filter_of = source.aggregates[..source.distinct_aggregates()]
            .iter()
            .map(|a| {
                let f = a.filter.as_ref()?;
                let key = format!("{f:?}");
                Some(written.iter().position(|w| *w == key).unwrap_or_else(|| {
                    filters.push(f);
                    written.push(key);
                    filters.len() - 1
                }))
            })
            .collect();
        Task {
            source,
            lists,
            index,
            people,
            states,
            rejected,
            trace,
            as_of,
            numbers,
            filters,
            filter_of,
            days: source.days_taken(),
        }
    }

    /// Nothing gathered yet, for row group `group`.
    fn start(&self, group: RowGroup) -> Progress<'a> {
        Progress {
            cached: self
                .source
                .codes
                .iter()
                .map(|_| ColumnCache::default())
                .collect(),
            found: Found::new(self.states.len()),
            rejects: Rejects {
                people: self.people,
                group,
                offset: 0,
                seen: Vec::new(),
                rows: Vec::new(),
            },
        }
    }

    /// Hands what a row group gathered to the shared state.
    fn finish(&self, gathered: Progress<'_>) {
        let Progress { found, rejects, .. } = gathered;
        for ((((state, keys), values), measured), notes) in self
            .states
            .iter()
            .zip(found.keys)
            .zip(found.codes_seen)
            .zip(found.values)
            .zip(found.notes)
        {
            if !notes.is_empty() {
                state.merge_notes(notes);
            }
            if !keys.is_empty() {
                state.merge_keys(keys);
            }
            if !values.is_empty() {
                state.merge_distinct_values(values);
            }
            if !measured.is_empty() {
                state.merge_values(measured);
            }
        }
        if !rejects.rows.is_empty() {
            self.rejected
                .rows
                .lock()
                .expect("no task panics while holding the lock")
                .extend(rejects.rows);
        }
    }

    /// A measure's values in its canonical unit (null where unusable or not
    /// the measure's code), and why each unusable row of its codes is so.
    fn measured(
        &self,
        m: &crate::engine::plan::MeasurePlan,
        batch: &RecordBatch,
        path: &std::path::Path,
        codes: &Codes,
        values: &[ArrayRef],
    ) -> Result<(ArrayRef, Vec<Option<Unusable>>)> {
        let factors = unit_factors(&m.measure, batch, path)?;
        let raw = &values[m.value];
        let rows = batch.num_rows();
        let mut why = vec![None; rows];
        // Most rows are another measure's (seven share `observations`): the
        // values start null and only this measure's usable rows are set,
        // rather than appending a null row by row.
        let mut converted = vec![0.0; rows];
        let mut valid = arrow_buffer::BooleanBufferBuilder::new(rows);
        valid.append_n(rows, false);
        for (row, why) in why.iter_mut().enumerate() {
            if !codes.any_match(m.codelist, row, |_| true) {
                continue;
            }
            match convert(&m.measure, number(raw, row), factors.get(&m.measure, row)) {
                Ok(v) => {
                    converted[row] = v;
                    valid.set_bit(row, true);
                }
                Err(u) => *why = Some(u),
            }
        }
        let valid = NullBuffer::new(valid.finish());
        let valid = (valid.null_count() > 0).then_some(valid);
        let converted = arrow_array::Float64Array::new(converted.into(), valid);
        Ok((Arc::new(converted), why))
    }

    fn codes(
        &self,
        batch: &RecordBatch,
        path: &std::path::Path,
        cached: &mut [ColumnCache],
    ) -> Result<Codes> {
        let counts_values = self.source.aggregates.iter().any(counts_distinct_values);
        if self.lists.is_empty() && !counts_values {
            return Ok(Codes(Vec::new()));
        }
        let columns = self
            .source
            .codes
            .iter()
            .zip(cached.iter_mut())
            .map(|(code, cached)| self.column_codes(batch, path, code, cached))
            .collect::<Result<_>>()?;
        Ok(Codes(columns))
    }

    fn column_codes(
        &self,
        batch: &RecordBatch,
        path: &std::path::Path,
        code: &CodeColumn,
        cached: &mut ColumnCache,
    ) -> Result<ColumnCodes> {
        let m = self.matcher();
        let array = table::column(batch, &code.name);
        let texts = |values: &ArrayRef| -> Result<StringArray> {
            let (strings, _) = table::canonical(values, path, &code.name)?;
            Ok(strings.as_string::<i32>().clone())
        };
        if code.is_list {
            let (offsets, values, valid): (Vec<usize>, _, _) = match array.data_type() {
                DataType::List(_) => {
                    let l = array.as_list::<i32>();
                    (
                        l.value_offsets().iter().map(|&o| o as usize).collect(),
                        l.values().clone(),
                        l.nulls().cloned(),
                    )
                }
                _ => {
                    let l = array.as_list::<i64>();
                    (
                        l.value_offsets().iter().map(|&o| o as usize).collect(),
                        l.values().clone(),
                        l.nulls().cloned(),
                    )
                }
            };
            let ids = cached.values.ids(&texts(&values)?, &m);
            let (offsets, ids) = match code.first {
                Some(n) => first_of_each(&offsets, &ids, n),
                None => (offsets, ids),
            };
            return Ok(ColumnCodes {
                layout: Layout::List {
                    offsets,
                    valid,
                    ids,
                },
                codes: cached.values.codes.clone(),
            });
        }
        if let Some(values) = integers(array) {
            let ids = cached.values.int_ids(values, &m);
            return Ok(ColumnCodes {
                layout: Layout::List {
                    offsets: (0..=ids.len()).collect(),
                    valid: None,
                    ids,
                },
                codes: cached.values.codes.clone(),
            });
        }
        if let DataType::Dictionary(key, _) = array.data_type()
            && key.as_ref() == &DataType::Int32
        {
            let dict = array.as_dictionary::<Int32Type>();
            let values = dict.values();
            let codes = match &cached.dictionary {
                Some((v, c)) if Arc::ptr_eq(v, values) => c.clone(),
                _ => {
                    let c = Arc::new(DictionaryCodes::new(&texts(values)?, &m));
                    cached.dictionary = Some((values.clone(), c.clone()));
                    c
                }
            };
            return Ok(ColumnCodes {
                layout: Layout::Dictionary(dict.keys().clone()),
                codes,
            });
        }
        let codes = Arc::new(DictionaryCodes::new(&texts(array)?, &m));
        Ok(ColumnCodes {
            layout: Layout::Rows,
            codes,
        })
    }

    /// Gathers what a batch holds for this task's aggregates. A measure
    /// (seven share the eFI's `observations`) takes only its codes' rows,
    /// copied out first: its filters, conversions and row loops then run
    /// on a seventh of the table, not on all of it seven times over.
    fn batch(
        &self,
        batch: &RecordBatch,
        path: &std::path::Path,
        cached: &mut [ColumnCache],
        found: &mut Found,
        rejects: &mut Rejects,
    ) -> Result<()> {
        if self.source.measure.is_none() {
            return self.rows(batch, path, cached, found, rejects);
        }
        let codes = self.codes(batch, path, cached)?;
        let listed: arrow_buffer::BooleanBuffer = match codes.single_dictionary() {
            Some((keys, listed)) => keys.iter().map(|&k| listed[k as usize]).collect(),
            None => (0..batch.num_rows())
                .map(|row| codes.any_listed(row))
                .collect(),
        };
        match listed.count_set_bits() {
            // None of its rows: nothing to do (and an empty filtered batch
            // would bring a new, empty dictionary, replacing the cached one).
            0 => return Ok(()),
            all if all == batch.num_rows() => {
                return self.rows(batch, path, cached, found, rejects);
            }
            _ => {}
        }
        let mine = arrow_select::filter::filter_record_batch(
            batch,
            &BooleanArray::new(listed.clone(), None),
        )
        .map_err(|e| Error::Internal(format!("selecting a measure's rows: {e}")))?;
        rejects.seen = listed.set_indices().map(|r| r as u32).collect();
        let gathered = self.rows(&mine, path, cached, found, rejects);
        rejects.seen.clear();
        gathered
    }

    /// [`Task::batch`] on the rows the task sees.
    fn rows(
        &self,
        batch: &RecordBatch,
        path: &std::path::Path,
        cached: &mut [ColumnCache],
        found: &mut Found,
        rejects: &mut Rejects,
    ) -> Result<()> {
        let Found {
            keys: distinct,
            codes_seen: distinct_values,
            values: measured,
            notes,
        } = found;
        let source = self.source;
        let rows = batch.num_rows();
        let dates: Date32Array = table::to_dates(
            table::column(batch, &source.date_column),
            path,
            &source.date_column,
        )?;
        let persons = self.people.column(
            table::column(batch, &source.person_column),
            path,
            &source.person_column,
        )?;
        let codes = self.codes(batch, path, cached)?;

        let mut filter_slots: Vec<ArrayRef> = source
            .filter_columns
            .iter()
            .map(|c| filter_column(source, batch, path, c))
            .collect::<Result<_>>()?;
        let mut values: Vec<ArrayRef> = source
            .value_columns
            .iter()
            .map(|c| table::canonical(table::column(batch, c), path, c).map(|(a, _)| a))
            .collect::<Result<_>>()?;
        // A measure's value, converted, stands in for the stored one
        // wherever a rule reads it; why each unusable row is so.
        let unusable: Vec<Option<Unusable>> = match &source.measure {
            Some(m) => {
                let (converted, unusable) = self.measured(m, batch, path, &codes, &values)?;
                if let Some(slot) = source
                    .filter_columns
                    .iter()
                    .position(|c| *c == m.measure.value)
                {
                    filter_slots[slot] = converted.clone();
                }
                values[m.value] = converted;
                unusable
            }
            None => Vec::new(),
        };
        // One aggregate's copies (one per date) share its filter and codes.
        let distinct_aggregates = source.distinct_aggregates();
        let copies = source.dates as u32;
        let evaluated: Vec<BooleanArray> = self
            .filters
            .iter()
            .map(|f| {
                eval::evaluate(f, &filter_slots, rows)
                    .map(|m| eval::is_true(m.as_boolean()))
                    .map_err(|e| {
                        Error::data(
                            path,
                            format!("evaluating the `where` of source `{}`: {e}", source.name),
                        )
                        .with_help("check the column's values against the `where` in the rule file")
                    })
            })
            .collect::<Result<_>>()?;
        let masks: Vec<Option<&BooleanArray>> = self
            .filter_of
            .iter()
            .map(|f| f.map(|f| &evaluated[f]))
            .collect();

        // When every aggregate keeps only code-list matches, a row whose codes
        // match no list (most GP events) is done with after one look.
        let all_listed = source.aggregates.iter().all(|a| a.codelist.is_some());
        let (mut null_date, mut after_as_of, mut null_id, mut unknown) = (0u64, 0u64, 0u64, 0u64);
        let mut before_1900 = 0u64;
        let mut candidates: Vec<u32> = Vec::new();
        // The common shape of a GP extract (dates never null, no placeholder
        // dates, one dictionary-encoded code column, every aggregate wanting
        // a code list) takes a tight loop over the raw values: one range
        // test of the date, one look at the code's dictionary entry.
        let simple = (all_listed
            && self.as_of >= FIRST_PLAUSIBLE_DAY
            && dates.null_count() == 0
            && source.missing_dates.is_empty())
        .then(|| codes.single_dictionary())
        .flatten();
        // A measure's rows are its codes' only: the table's other rows are
        // not counted here, whatever their dates (they belong to the other
        // measures that share the table).
        let measure_only = source.measure.is_some();
        if let Some((keys, listed)) = simple {
            let span = (self.as_of - FIRST_PLAUSIBLE_DAY) as u32;
            for (row, (&day, &key)) in dates.values().iter().zip(keys).enumerate() {
                if (day.wrapping_sub(FIRST_PLAUSIBLE_DAY) as u32) > span {
                    if measure_only && !listed[key as usize] {
                        continue;
                    }
                    if day > self.as_of {
                        after_as_of += 1;
                    } else {
                        before_1900 += 1;
                        rejects.add(row, "date_before_1900", persons.text(row), Some(day));
                    }
                } else if listed[key as usize] {
                    candidates.push(row as u32);
                }
            }
        }
        for row in (0..rows).filter(|_| simple.is_none()) {
            if measure_only && !codes.any_listed(row) {
                continue;
            }
            if dates.is_null(row) || source.missing_dates.contains(&dates.value(row)) {
                null_date += 1;
                rejects.add(row, "null_date", persons.text(row), None);
                continue;
            }
            if dates.value(row) < FIRST_PLAUSIBLE_DAY {
                before_1900 += 1;
                rejects.add(
                    row,
                    "date_before_1900",
                    persons.text(row),
                    Some(dates.value(row)),
                );
                continue;
            }
            if dates.value(row) > self.as_of {
                after_as_of += 1;
                continue;
            }
            if all_listed && !codes.any_listed(row) {
                continue;
            }
            candidates.push(row as u32);
        }
        if !unusable.is_empty() {
            let counts = self.rejected.measure.as_ref().expect("a measure source");
            candidates.retain(|&row| {
                let Some(why) = unusable[row as usize] else {
                    return true;
                };
                let at = UNUSABLE.iter().position(|u| *u == why).expect("listed");
                counts[at].fetch_add(1, Relaxed);
                let row = row as usize;
                rejects.add(row, why.reason(), persons.text(row), Some(dates.value(row)));
                false
            });
        }
        let (after, until) = self.days;
        if after.is_some() || until < self.as_of {
            candidates.retain(|&row| {
                let day = dates.value(row as usize);
                after.is_none_or(|a| day > a) && day <= until
            });
        }
        // Looking people up is the scan's costliest step (a random read in
        // an index of millions); done for a whole batch at once, the reads
        // overlap instead of waiting one after another.
        let people = self.people.resolve(&persons, &candidates);
        // The aggregates without a code list take every row; the others only
        // the rows their codes route to them. Worked out for the whole batch
        // first, so that the states a row will update can be fetched a few
        // rows ahead: each update is a random read among millions of
        // persons, and fetched ahead the reads overlap.
        let unlisted: Vec<u32> = (0..distinct_aggregates as u32)
            .filter(|&j| source.aggregates[j as usize].codelist.is_none())
            .collect();
        // Candidate i's aggregates are `routes[bounds[i]..bounds[i + 1]]`.
        let mut routes: Vec<u32> = Vec::new();
        let mut bounds: Vec<usize> = Vec::with_capacity(candidates.len() + 1);
        bounds.push(0);
        let mut offered: Vec<u32> = Vec::new();
        for &row in &candidates {
            codes.aggregates_of(row as usize, &unlisted, &mut offered);
            routes.extend_from_slice(&offered);
            bounds.push(routes.len());
        }
        let route = |i: usize| &routes[bounds[i]..bounds[i + 1]];
        const AHEAD: usize = 8;
        let matcher = self.matcher();
        for (i, (&row, &resolved)) in candidates.iter().zip(&people).enumerate() {
            if let Some(Person::Found(ahead)) = people.get(i + AHEAD) {
                for &j in route(i + AHEAD) {
                    self.states[j as usize].prefetch(*ahead * copies);
                }
            }
            let row = row as usize;
            let day = dates.value(row);
            let mut person: Option<Person> = None;
            // Per aggregate its codes feed: does the row pass its filter?
            // Then, per date, is it in the window? (Copy k of aggregate j is
            // aggregate j + k * distinct_aggregates.)
            'aggregates: for &j in route(i) {
                let j = j as usize;
                if masks[j].as_ref().is_some_and(|m| !m.value(row)) {
                    continue;
                }
                // With several dates, the busiest month (and distinct codes
                // without a list beyond 64 dates): the run of dates whose
                // windows hold the event, as (person, first, end), noted
                // once per run rather than once per date.
                let mut seen: Option<(u32, u16, u16)> = None;
                // Distinct codes without a list, up to 64 dates (one date
                // too): the dates whose windows hold the event, a bit each.
                let mut in_windows = 0u64;
                // Taken once for every date ([`State::LaterDays`]).
                let mut once = false;
                for (date, k) in (j..source.aggregates.len())
                    .step_by(distinct_aggregates)
                    .enumerate()
                {
                    let agg = &source.aggregates[k];
                    if agg.after.is_some_and(|after| day <= after) || day > agg.until {
                        continue;
                    }
                    let found = *person.get_or_insert_with(|| {
                        let p = resolved;
                        match p {
                            Person::NullId => {
                                null_id += 1;
                                rejects.add(row, "null_person_id", None, Some(day));
                            }
                            Person::Unknown => {
                                unknown += 1;
                                rejects.add(row, "unknown_person", persons.text(row), Some(day));
                            }
                            Person::Found(_) => {}
                        }
                        p
                    });
                    let Person::Found(p) = found else {
                        break 'aggregates;
                    };
                    let state = &self.states[j];
                    let slot = p * copies + date as u32;
                    match agg.aggregate {
                        // Noted once, whatever the dates whose windows
                        // hold it ([`State::Noted`]): the row, or each
                        // code of the list it matched.
                        Aggregate::Count if state.is_noted() => {
                            notes[j].push(Note {
                                person: p,
                                day,
                                item: 0,
                            });
                            once = true;
                        }
                        _ if state.is_noted() => {
                            let l = agg.codelist.expect(
                                "checked when loading: distinct aggregates need a code list",
                            );
                            let notes = &mut notes[j];
                            codes.each_match(l, row, |item| {
                                if matcher.in_category(agg, l, item) {
                                    state.note_bits(p, day, item, notes);
                                }
                            });
                            once = true;
                        }
                        Aggregate::Count | Aggregate::Exists => state.count(slot),
                        // Once, whatever the dates whose windows hold it.
                        Aggregate::LastDate if state.is_later_days() => {
                            state.last_day(p, day, &mut distinct[j]);
                            once = true;
                        }
                        Aggregate::FirstDate | Aggregate::LastDate => state.day(slot, day),
                        Aggregate::MaxInAMonth | Aggregate::MaxIn30Days if copies == 1 => distinct
                            [j]
                            .push((u64::from(slot) << 32) | u64::from(monthly_key(agg, day))),
                        // With several dates, the run of dates whose windows
                        // hold the event (or code), noted once per run rather
                        // than once per date.
                        Aggregate::MaxInAMonth | Aggregate::MaxIn30Days => {
                            extend_run(&mut seen, p, date, |run| {
                                note_run(&mut distinct_values[j], agg, &codes, row, day, run)
                            })
                        }
                        // Each code in the person's set, or noted where the
                        // set is full, once for all the dates whose windows
                        // hold the event (below).
                        Aggregate::CountDistinctCodes
                            if agg.codelist.is_none() && copies as usize <= MOST_DATES_IN_SETS =>
                        {
                            in_windows |= 1 << date;
                        }
                        Aggregate::CountDistinctCodes if agg.codelist.is_none() => {
                            extend_run(&mut seen, p, date, |run| {
                                note_run(&mut distinct_values[j], agg, &codes, row, day, run)
                            })
                        }
                        Aggregate::CountDistinctCodes
                        | Aggregate::CountDistinctCategories
                        | Aggregate::ListCategories
                        | Aggregate::SumDistinctWeights => {
                            let l = agg.codelist.expect(
                                "checked when loading: distinct aggregates need a code list",
                            );
                            let keys = &mut distinct[j];
                            codes.each_match(l, row, |item| {
                                if !matcher.in_category(agg, l, item) {
                                    return;
                                }
                                if !state.set_bits(slot, item) {
                                    keys.push((u64::from(slot) << 32) | u64::from(item))
                                }
                            });
                        }
                        Aggregate::TotalDays => {
                            let (v, _) = agg
                                .value
                                .expect("checked when loading: total_days needs a column");
                            let column = &values[v];
                            if column.is_null(row) {
                                continue;
                            }
                            let end = column
                                .as_primitive::<arrow_array::types::Date32Type>()
                                .value(row);
                            // An end before the start is a data error: no days.
                            state.add(slot, i64::from(end.saturating_sub(day).max(0)));
                        }
                        Aggregate::Latest | Aggregate::Mean => {
                            let (v, _) = agg
                                .value
                                .expect("checked when loading: latest/mean need a column");
                            let Some(value) = number(&values[v], row).filter(|v| !v.is_nan())
                            else {
                                continue;
                            };
                            measured[j].push((slot, day, value));
                        }
                        Aggregate::Min | Aggregate::Max => {
                            let (v, _) = agg
                                .value
                                .expect("checked when loading: min/max need a column");
                            let column = &values[v];
                            if column.is_null(row) {
                                continue;
                            }
                            match column.data_type() {
                                DataType::Int64 => {
                                    state.int(slot, column.as_primitive::<Int64Type>().value(row))
                                }
                                DataType::Float64 => state
                                    .float(slot, column.as_primitive::<Float64Type>().value(row)),
                                _ => state.day(
                                    slot,
                                    column
                                        .as_primitive::<arrow_array::types::Date32Type>()
                                        .value(row),
                                ),
                            }
                        }
                    }
                    // Only events the aggregate took are traced (an event whose
                    // `min`/`max` value is null was skipped above).
                    if let Some(trace) = self.trace
                        && trace.person == p
                    {
                        let mut matched = Vec::new();
                        if let Some(l) = agg.codelist {
                            codes.each_match(l, row, |item| {
                                if !matcher.in_category(agg, l, item) {
                                    return;
                                }
                                matched.push((source.codelists[l], item))
                            });
                        }
                        // The event fed every feature the aggregate fills.
                        let events = agg.fills().map(|f| Traced {
                            feature: f.feature,
                            day,
                            codes: matched.clone(),
                        });
                        trace
                            .events
                            .lock()
                            .expect("no task panics while holding the lock")
                            .extend(events);
                    }
                    if once {
                        break;
                    }
                }
                let agg = &source.aggregates[j];
                note_run(&mut distinct_values[j], agg, &codes, row, day, seen);
                if let Some(Person::Found(p)) = person
                    && in_windows != 0
                {
                    let (state, noted) = (&self.states[j], &mut distinct_values[j]);
                    codes.each_code_number(row, |n| {
                        if !state.add_code(p, n, in_windows) {
                            each_run(in_windows, |first, end| noted.push((p, n, first, end)));
                        }
                    });
                }
            }
        }
        let r = self.rejected;
        r.null_date.fetch_add(null_date, Relaxed);
        r.date_before_1900.fetch_add(before_1900, Relaxed);
        r.after_as_of.fetch_add(after_as_of, Relaxed);
        r.null_person_id.fetch_add(null_id, Relaxed);
        r.unknown_person.fetch_add(unknown, Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Codes counted without a list are numbered once for the whole scan:
    /// one code, however it is padded, and in whichever dictionary (or
    /// value met row by row), has one number; two codes never share one;
    /// and no code is 0, which marks a free place in a person's set.
    #[test]
    fn codes_are_numbered_once_for_the_scan_whatever_their_dictionary() {
        use super::{CodeNumbers, DictionaryCodes, Matcher};
        use crate::rules::codelist::CombinedIndex;
        let numbers = CodeNumbers::default();
        let index = CombinedIndex::new(&[]);
        let m = Matcher {
            lists: &[],
            index: &index,
            aggregates: &[],
            numbers: Some(&numbers),
        };
        let first = DictionaryCodes::new(
            &arrow_array::StringArray::from(vec![Some("111"), Some(" 222\t"), None, Some("333")]),
            &m,
        );
        let second = DictionaryCodes::new(
            &arrow_array::StringArray::from(vec![
                Some("333 "),
                Some("444"),
                Some("111"),
                Some("222"),
            ]),
            &m,
        );
        let mut one_by_one = DictionaryCodes::default();
        one_by_one.push(Some("\n444"), &m);
        one_by_one.push(Some("555"), &m);
        assert_eq!(first.numbers, [Some(1), Some(2), None, Some(3)]);
        assert_eq!(second.numbers, [Some(3), Some(4), Some(1), Some(2)]);
        assert_eq!(one_by_one.numbers, [Some(4), Some(5)]);
        // Without an aggregate counting them, codes are not numbered.
        let unnumbered = DictionaryCodes::new(
            &arrow_array::StringArray::from(vec![Some("111")]),
            &Matcher { numbers: None, ..m },
        );
        assert_eq!(unnumbered.numbers, [None]);
    }

    /// Each dictionary value's entry in each code list, kept as a row for
    /// the values that match some list only: the values that match none
    /// take no row, and every lookup answers as a row for every value did.
    #[test]
    fn only_listed_values_keep_a_row_of_matches() {
        use super::{DictionaryCodes, Matcher};
        use crate::rules::codelist::{Codelist, CombinedIndex};
        use arrow_array::Array;
        let dir = tempfile::tempdir().unwrap();
        let list = |name: &str, csv: &str| {
            std::fs::write(dir.path().join(format!("{name}.csv")), csv).unwrap();
            let decl: crate::rules::syntax::Codelist =
                toml::from_str(&format!("file = '{name}.csv'\nsystem = 'snomed'")).unwrap();
            Codelist::load(name, &decl, dir.path()).unwrap()
        };
        let a = list("a", "code,term\n111111,A one\n222222,A two\n");
        let b = list("b", "code,term\n222222,B one\n333333,B two\n");
        let lists = [&a, &b];
        let index = CombinedIndex::new(&lists);
        let m = Matcher {
            lists: &lists,
            index: &index,
            aggregates: &[],
            numbers: None,
        };
        let values = arrow_array::StringArray::from(vec![
            Some("999999"),
            Some("222222"),
            None,
            Some(" 111111"),
            Some("333333"),
            Some("444444"),
        ]);
        let codes = DictionaryCodes::new(&values, &m);
        let entries: Vec<[Option<u32>; 2]> = (0..values.len())
            .map(|v| [codes.entry(v, 0), codes.entry(v, 1)])
            .collect();
        assert_eq!(
            entries,
            [
                [None, None],
                [Some(1), Some(0)],
                [None, None],
                [Some(0), None],
                [None, Some(1)],
                [None, None],
            ]
        );
        assert_eq!(codes.listed, [false, true, false, true, true, false]);
        // Three listed values, a row of two lists each.
        assert_eq!(codes.matched.len(), 3 * 2);
        // Values added one by one answer alike.
        let mut one_by_one = DictionaryCodes {
            lists: 2,
            ..Default::default()
        };
        for v in values.iter() {
            one_by_one.push(v, &m);
        }
        let again: Vec<[Option<u32>; 2]> = (0..values.len())
            .map(|v| [one_by_one.entry(v, 0), one_by_one.entry(v, 1)])
            .collect();
        assert_eq!(again, entries);
    }

    #[test]
    fn a_panic_or_an_error_in_one_task_stops_the_others_taking_more() {
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let tasks: Vec<usize> = (0..1000).collect();
        for panics in [true, false] {
            let calls = AtomicUsize::new(0);
            let outcome = pool.install(|| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    super::each_until_failure(&tasks, |&i| {
                        calls.fetch_add(1, Relaxed);
                        // Slow enough that the other thread runs only a
                        // few while the panic is reported (a test's hook
                        // may print a backtrace first) and unwinds; not
                        // stopped, it would run them all.
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        match (i, panics) {
                            (3, true) => panic!("a bug in task 3"),
                            (3, false) => {
                                Err(crate::error::Error::Internal("task 3 failed".into()))
                            }
                            _ => Ok(()),
                        }
                    })
                }))
            });
            match outcome {
                Err(_) => assert!(panics, "only the panic is resumed"),
                Ok(result) => assert!(!panics && result.is_err()),
            }
            let calls = calls.load(Relaxed);
            assert!(
                (4..500).contains(&calls),
                "panics {panics}: {calls} tasks ran"
            );
        }
    }

    #[test]
    fn the_first_plausible_day_is_1900_01_01() {
        let day = crate::dates::to_day(crate::dates::parse_date("1900-01-01").unwrap());
        assert_eq!(super::FIRST_PLAUSIBLE_DAY, day);
    }

    #[test]
    fn a_row_group_is_outside_the_windows_only_when_all_its_days_are() {
        use super::outside_windows;
        // Days 11 to 20 are taken (after 10, up to 20).
        let taken = (Some(10), 20);
        assert!(outside_windows(taken, Some((1, 10))));
        assert!(!outside_windows(taken, Some((1, 11))));
        assert!(!outside_windows(taken, Some((20, 30))));
        assert!(outside_windows(taken, Some((21, 30))));
        assert!(!outside_windows(taken, Some((1, 30))));
        assert!(!outside_windows(taken, None));
        // A window with no start takes every day up to its end.
        assert!(!outside_windows((None, 20), Some((1, 10))));
        assert!(outside_windows((None, 20), Some((21, 30))));
    }

    #[test]
    fn first_codes_keeps_each_rows_first_values() {
        // Rows [7, 8, 9], [], [5], [1, 2] of a values array that starts at
        // offset 2 (a sliced list).
        let offsets = [2, 5, 5, 6, 8];
        let ids = [0, 0, 7, 8, 9, 5, 1, 2];
        let (o, i) = super::first_of_each(&offsets, &ids, 1);
        assert_eq!((o, i), (vec![0, 1, 1, 2, 3], vec![7, 5, 1]));
        let (o, i) = super::first_of_each(&offsets, &ids, 2);
        assert_eq!((o, i), (vec![0, 2, 2, 3, 5], vec![7, 8, 5, 1, 2]));
    }
}
