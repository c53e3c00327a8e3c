//! Per-person aggregate state, shared by all scan tasks.
//!
//! State lives in dense arrays indexed by person (see
//! [`crate::input::population`]) and is updated with relaxed atomics: every
//! update (add, min, max) is commutative, so the result does not depend on
//! which task saw an event first, and no merge step is needed. Distinct
//! counts over short code lists set bits per person; over long lists they
//! collect `(person, item)` pairs, deduplicated within each row group and
//! again at the end (memory grows with the distinct matches of each row
//! group, not with all events). Distinct codes without a list (medicines)
//! are kept in a small set per person (with up to 64 as-of dates), and
//! noted only where it is full (see [`CodeSets`]).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, UInt32Array};

use crate::rules::Aggregate;
use crate::rules::check::Type;
use crate::rules::codelist::WEIGHT_SCALE;

pub enum State {
    Count(Vec<AtomicU32>),
    /// One bit per slot (`exists`, see [`flag`]). A 32-bit count per
    /// person for the default model's nearly fifty yes/no answers was about
    /// 100 of the 500 MB the scan held at 1M persons.
    Flags(Vec<AtomicU64>),
    /// Sums of whole numbers (`total_days`), 0 for no events.
    Sum(Vec<AtomicI64>),
    /// A small bitset per person (`words` u64 each): for distinct
    /// aggregates over at most [`MAX_BITS`] codes or categories, memory
    /// bounded by persons whatever the number of events. `masks[item]` is
    /// the bits an entry of the list sets.
    Bits {
        words: usize,
        masks: Vec<Vec<u64>>,
        bits: Vec<AtomicU64>,
    },
    /// Sorted, deduplicated `person << 32 | item` keys gathered from tasks.
    Distinct(Mutex<Vec<u64>>),
    /// `person << 32 | month` keys (calendar months) or `person << 32 |
    /// day` keys (any 30 days), one per event.
    Monthly(Mutex<Vec<u64>>),
    /// [`State::Monthly`] of a scan for several dates: one entry per event
    /// and run of dates whose windows hold it, `(person, month or day,
    /// first date, end date)`, rather than a key per person and date. With
    /// 12 monthly dates and a year's window, each event was noted and
    /// sorted up to 12 times.
    MonthlyRuns(Mutex<Vec<CodeSeen>>),
    /// Distinct codes counted without a code list (medicines, for
    /// polypharmacy). Each person's first [`CODES_PER_SET`] codes are kept
    /// in a set of their own (`sets`, updated in place like a count); codes
    /// beyond those are noted in `runs` by run of dates (see
    /// [`CodeSeen`]): one sorted run per row group and source scanned.
    /// Noting every code was the default model's largest sort (at 1M
    /// persons, 6.6M notes a year, about 10% of its CPU).
    DistinctValues {
        sets: CodeSets,
        runs: Mutex<Runs>,
    },
    MinDay(Vec<AtomicI32>),
    MaxDay(Vec<AtomicI32>),
    MinInt(Vec<AtomicI64>),
    MaxInt(Vec<AtomicI64>),
    /// f64 bits; updated by compare-and-swap.
    MinFloat(Vec<AtomicU64>),
    MaxFloat(Vec<AtomicU64>),
    /// (slot, day, value) of every event, for `latest` and `mean`: the
    /// events of a measure are few (a handful of readings a year).
    Values {
        /// `latest`: which value, counting back from the latest (1).
        nth: usize,
        values: Mutex<Vec<(u32, i32, f64)>>,
    },
    /// A last date whose window has no start (a register's latest code
    /// or exit), in a scan for several dates: each person's latest day on
    /// or before the earliest date's last day (`first_until`), and a key
    /// ([`later_key`]) for each event after it (up to the last date's),
    /// rather than a day per person and date. Each date's column
    /// is made when the date is worked out ([`LaterDays::column`]), not
    /// all of them at the scan's end: the default model's 14 such dates
    /// were 56 bytes a person and date of the scan's state, and as many
    /// of its columns, all made at once.
    LaterDays {
        latest: Vec<AtomicI32>,
        first_until: i32,
        later: Mutex<Vec<u64>>,
        /// The scan's dates: [`State::prefetch`] is given slots.
        copies: usize,
    },
    /// A count, or a bitset's count or weights, in a scan for several
    /// dates over a table whose rows are few for its persons (admissions,
    /// A&E attendances): each event any date's window holds noted once
    /// ([`Note`]), and each date's column made from the notes when the
    /// date is worked out ([`Noted::column`]), rather than a count or
    /// bitset per person and date. With 12 dates, the default model's
    /// HFRS and three counts had been about 28 of the 51 bytes a person
    /// and date its state held (the scan chooses it where the table's
    /// rows, read from its metadata, cannot outweigh the state it
    /// replaces: `engine::scan`).
    ///
    /// A bitset whose window has no start, over a table with many rows a
    /// person (the eFI's deficits ever coded, over GP events), keeps each
    /// person's bits from the events up to the earliest date's last day in
    /// place (`before`), and notes only the events after it: 8 bytes a
    /// person, not 8 a person and date.
    Noted {
        /// The bitset's width in words and each code-list entry's bits;
        /// None for a count.
        masks: Option<(usize, Vec<Vec<u64>>)>,
        before: Option<Before>,
        /// Each task's notes as it handed them over, joined once when
        /// the scan is done: one vector grown by every task's would have
        /// held up to twice its notes, three times as it grew.
        notes: Mutex<Vec<Vec<Note>>>,
    },
}

/// Each person's bits from the events up to `first_until`, the earliest
/// date's last day, of a [`State::Noted`] bitset with no window start.
pub struct Before {
    first_until: i32,
    bits: Vec<AtomicU64>,
    /// The scan's dates: [`State::prefetch`] is given slots.
    copies: usize,
}

/// An event noted by [`State::Noted`]: whose, its day and, for a bitset,
/// the code-list entry it matched (one note a match).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    pub person: u32,
    pub day: i32,
    pub item: u32,
}

/// A [`State::Noted`] once the scan is done: any date's column of it.
pub struct Noted {
    /// Every note, sorted (by person first).
    notes: Vec<Note>,
    masks: Option<(usize, Vec<Vec<u64>>)>,
    /// Each person's bits before the notes, where kept ([`Before`]).
    before: Option<Vec<u64>>,
    /// Each code-list entry's weight (`sum_distinct_weights`).
    weights: Vec<i64>,
    persons: usize,
}

impl Noted {
    /// The column of `aggregate` on the date whose window is the days
    /// after `after` (if any) up to `until`: the same values, and type, as
    /// [`State::finish_dates`] gives of a count or bitset.
    pub fn column(&self, aggregate: Aggregate, after: Option<i32>, until: i32) -> ArrayRef {
        let held = |n: &&Note| after.is_none_or(|a| n.day > a) && n.day <= until;
        let Some((words, masks)) = &self.masks else {
            let mut counts = vec![0u32; self.persons];
            for n in self.notes.iter().filter(held) {
                counts[n.person as usize] += 1;
            }
            return Arc::new(UInt32Array::from(counts));
        };
        let none = vec![0u64; *words];
        match aggregate {
            Aggregate::SumDistinctWeights => {
                let load = |b: &[u64]| weight_of(b, &self.weights);
                let mut values = vec![load(&none); self.persons];
                self.each_person(held, masks, &mut values, load);
                Arc::new(Float64Array::from(values))
            }
            _ => {
                let mut values = vec![set_count(&none); self.persons];
                self.each_person(held, masks, &mut values, set_count);
                Arc::new(UInt32Array::from(values))
            }
        }
    }

    /// Each noted person's bits on a date (of the notes `held` takes),
    /// made into their value by `load`; the others' values left as they
    /// are (those of no bits).
    fn each_person<T>(
        &self,
        held: impl Fn(&&Note) -> bool,
        masks: &[Vec<u64>],
        values: &mut [T],
        load: impl Fn(&[u64]) -> T,
    ) {
        let words = masks.first().map_or(1, Vec::len);
        let mut bits = vec![0u64; words];
        let add = |bits: &mut [u64], run: &[Note]| {
            for n in run.iter().filter(&held) {
                for (w, m) in bits.iter_mut().zip(&masks[n.item as usize]) {
                    *w |= m;
                }
            }
        };
        let mut runs = self.notes.chunk_by(|a, b| a.person == b.person).peekable();
        let Some(before) = &self.before else {
            for run in runs {
                bits.fill(0);
                add(&mut bits, run);
                values[run[0].person as usize] = load(&bits);
            }
            return;
        };
        // Every person's bits before the notes, and their notes.
        for (p, (value, base)) in values
            .iter_mut()
            .zip(before.chunks_exact(words))
            .enumerate()
        {
            bits.copy_from_slice(base);
            if let Some(run) = runs.next_if(|run| run[0].person as usize == p) {
                add(&mut bits, run);
            }
            *value = load(&bits);
        }
    }
}

/// A [`State::LaterDays`] once the scan is done: any date's column of it.
pub struct LaterDays {
    /// Each person's latest day on or before the earliest date's last day;
    /// `i32::MIN` for none.
    latest: Vec<i32>,
    /// Each event after it ([`later_key`]), sorted: by day.
    later: Vec<u64>,
}

/// The key of `person`'s event on `day`, noted after the earliest date:
/// the day first, its sign bit flipped so that keys sort by day (days
/// before 1970 are negative), then the person; sorted in place once the
/// scan is done.
fn later_key(person: u32, day: i32) -> u64 {
    (u64::from(day as u32 ^ 0x8000_0000) << 32) | u64::from(person)
}

/// The (day, person) of a [`later_key`].
fn later_event(key: u64) -> (i32, u32) {
    ((((key >> 32) as u32) ^ 0x8000_0000) as i32, key as u32)
}

impl LaterDays {
    /// The column of the date whose last day is `until` (on or after the
    /// earliest date's): each person's latest day up to it, null for none.
    pub fn column(&self, until: i32) -> ArrayRef {
        let mut days = self.latest.clone();
        let taken = self
            .later
            .partition_point(|&key| later_event(key).0 <= until);
        for &key in &self.later[..taken] {
            let (day, person) = later_event(key);
            let latest = &mut days[person as usize];
            *latest = (*latest).max(day);
        }
        let valid = arrow_buffer::BooleanBuffer::collect_bool(days.len(), |p| days[p] != i32::MIN);
        days.iter_mut()
            .filter(|d| **d == i32::MIN)
            .for_each(|d| *d = 0);
        let nulls = arrow_buffer::NullBuffer::new(valid);
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        Arc::new(arrow_array::Date32Array::new(days.into(), nulls))
    }
}

/// A code an event of a person carried, for counting distinct codes without
/// a code list: (person, code number, first date, end date), the event falling
/// in the windows of the as-of dates `first..end` (`0..1` with one date).
/// One entry per run of dates, not per date, so that several dates cost
/// about what one does in the sorts that count them. With several dates,
/// the busiest month's events take the same form, the month or day in
/// place of the code ([`State::MonthlyRuns`]).
pub type CodeSeen = (u32, u32, u16, u16);

// Smaller than the (slot, code) pair it replaced.
const _: () = assert!(std::mem::size_of::<CodeSeen>() == 12);

/// The codes (numbers) kept for one person in place: enough for most
/// people (at 1M generated persons, 98% have at most 8 distinct medicines
/// a year), in half a cache line.
pub const CODES_PER_SET: usize = 8;

/// Up to this many as-of dates keep sets of codes by date
/// ([`DatedCodeSet`]); a scan of more notes every code.
pub const MOST_DATES_IN_SETS: usize = 64;

/// Up to this many as-of dates, a person's set of codes by date fits in
/// one cache line ([`DatedCodeSet`] with 32-bit dates).
const MOST_DATES_IN_A_LINE: usize = 32;
const FEWEST_DATES_IN_TWO_LINES: usize = MOST_DATES_IN_A_LINE + 1;

/// Each person's set of distinct codes, by the number of as-of dates.
pub enum CodeSets {
    /// One date: half a cache line a person.
    One(Vec<CodeSet>),
    /// 2 to [`MOST_DATES_IN_A_LINE`] dates: a cache line a person.
    Dated(DatedSets<AtomicU32>),
    /// Up to [`MOST_DATES_IN_SETS`] dates: two cache lines a person.
    Dated64(DatedSets<AtomicU64>),
    /// More dates than [`MOST_DATES_IN_SETS`]: every code is noted.
    None,
}

/// A person's set of up to [`CODES_PER_SET`] code numbers, 0 where free.
#[repr(align(32))]
#[derive(Default)]
pub struct CodeSet([AtomicU32; CODES_PER_SET]);

/// A person's codes as [`CodeSet`], each with the as-of dates (a bit each)
/// whose windows hold an event of it: in 32-bit words, one cache line,
/// up to [`MOST_DATES_IN_A_LINE`] dates (64-bit words had taken two for 12
/// dates: 320 MB more of fresh memory at 5M persons, and a second line
/// fetched for every prescription in a window).
#[repr(align(64))]
#[derive(Default)]
pub struct DatedCodeSet<B> {
    codes: [AtomicU32; CODES_PER_SET],
    dates: [B; CODES_PER_SET],
}

const _: () = assert!(size_of::<DatedCodeSet<AtomicU32>>() == 64);
const _: () = assert!(size_of::<DatedCodeSet<AtomicU64>>() == 128);

/// The word of a [`DatedCodeSet`]'s dates, a bit each.
pub trait DateBits: Default + Send + Sync {
    fn get(&self) -> u64;
    /// Adds `dates` (bits that fit the word).
    fn add(&self, dates: u64);
}

impl DateBits for AtomicU32 {
    #[inline]
    fn get(&self) -> u64 {
        u64::from(self.load(Relaxed))
    }
    #[inline]
    fn add(&self, dates: u64) {
        self.fetch_or(dates as u32, Relaxed);
    }
}

impl DateBits for AtomicU64 {
    #[inline]
    fn get(&self) -> u64 {
        self.load(Relaxed)
    }
    #[inline]
    fn add(&self, dates: u64) {
        self.fetch_or(dates, Relaxed);
    }
}

/// Each person's [`DatedCodeSet`] over `dates` dates.
pub struct DatedSets<B> {
    sets: Vec<DatedCodeSet<B>>,
    dates: usize,
}

impl<B: DateBits> DatedSets<B> {
    fn new(persons: usize, dates: usize) -> DatedSets<B> {
        DatedSets {
            sets: filled(persons, DatedCodeSet::default),
            dates,
        }
    }

    #[inline]
    fn add(&self, person: u32, code: u32, dates: u64) -> bool {
        self.sets.get(person as usize).is_some_and(|set| {
            claim(&set.codes, code).is_some_and(|i| {
                let held = &set.dates[i];
                // Most events repeat dates already held: a plain load
                // spares the locked update.
                if held.get() & dates != dates {
                    held.add(dates);
                }
                true
            })
        })
    }

    #[inline]
    fn prefetch(&self, slot: usize) {
        use crate::input::population::prefetch;
        if let Some(set) = self.sets.get(slot / self.dates) {
            prefetch(&set.codes);
            if size_of::<DatedCodeSet<B>>() > 64 {
                prefetch(&set.dates);
            }
        }
    }

    fn count<C: Count>(&self, first_person: usize, copies: usize, counts: &mut [C]) {
        for (counts, set) in counts.chunks_mut(copies).zip(&self.sets[first_person..]) {
            for (code, dates) in set.codes.iter().zip(&set.dates) {
                if code.load(Relaxed) != 0 {
                    each_run(dates.get(), |first, end| {
                        counts[usize::from(first)..usize::from(end)]
                            .iter_mut()
                            .for_each(|c| *c += C::ONE)
                    });
                }
            }
        }
    }
}

/// Where `code` is in `slots` (0 where free), put in the first free slot
/// if it is not there yet; None if every slot holds another code (or
/// `code` is 0, which marks a free slot). A slot is written once (0 to a
/// code, by compare-and-swap) and never again, so a code is in at most
/// one slot whatever the tasks' order: a task puts a code in slot k only
/// after finding every slot before it holding another code.
#[inline]
fn claim(slots: &[AtomicU32; CODES_PER_SET], code: u32) -> Option<usize> {
    if code == 0 {
        return None;
    }
    for (i, slot) in slots.iter().enumerate() {
        let mut held = slot.load(Relaxed);
        if held == 0 {
            // Free when looked at; taken by another task since unless the
            // swap succeeds.
            match slot.compare_exchange(0, code, Relaxed, Relaxed) {
                Ok(_) => return Some(i),
                Err(now) => held = now,
            }
        }
        if held == code {
            return Some(i);
        }
    }
    None
}

impl CodeSets {
    fn new(persons: usize, dates: usize) -> CodeSets {
        match dates {
            1 => CodeSets::One(filled(persons, CodeSet::default)),
            2..=MOST_DATES_IN_A_LINE => CodeSets::Dated(DatedSets::new(persons, dates)),
            FEWEST_DATES_IN_TWO_LINES..=MOST_DATES_IN_SETS => {
                CodeSets::Dated64(DatedSets::new(persons, dates))
            }
            _ => CodeSets::None,
        }
    }

    /// The bytes a person's set takes with `dates` dates.
    pub fn bytes_per_person(dates: usize) -> usize {
        match dates {
            1 => size_of::<CodeSet>(),
            2..=MOST_DATES_IN_A_LINE => size_of::<DatedCodeSet<AtomicU32>>(),
            FEWEST_DATES_IN_TWO_LINES..=MOST_DATES_IN_SETS => size_of::<DatedCodeSet<AtomicU64>>(),
            _ => 0,
        }
    }

    /// Adds `code` for `person` on the dates of `dates` (bits; 1 with one
    /// date); false if it must be noted instead.
    #[inline]
    fn add(&self, person: u32, code: u32, dates: u64) -> bool {
        match self {
            CodeSets::One(sets) => sets
                .get(person as usize)
                .is_some_and(|set| claim(&set.0, code).is_some()),
            CodeSets::Dated(sets) => sets.add(person, code, dates),
            CodeSets::Dated64(sets) => sets.add(person, code, dates),
            CodeSets::None => false,
        }
    }

    /// Starts fetching the set of slot `slot`'s person.
    #[inline]
    fn prefetch(&self, slot: usize) {
        use crate::input::population::prefetch;
        match self {
            CodeSets::One(sets) => {
                sets.get(slot).map(prefetch);
            }
            CodeSets::Dated(sets) => sets.prefetch(slot),
            CodeSets::Dated64(sets) => sets.prefetch(slot),
            CodeSets::None => {}
        }
    }

    /// Adds the codes each person's set holds to their counts (`copies`
    /// per person, from `first_person` on).
    fn count<C: Count>(&self, first_person: usize, copies: usize, counts: &mut [C]) {
        match self {
            CodeSets::One(sets) => {
                for (count, set) in counts.iter_mut().zip(&sets[first_person..]) {
                    for _ in set.0.iter().filter(|s| s.load(Relaxed) != 0) {
                        *count += C::ONE;
                    }
                }
            }
            CodeSets::Dated(sets) => sets.count(first_person, copies, counts),
            CodeSets::Dated64(sets) => sets.count(first_person, copies, counts),
            CodeSets::None => {}
        }
    }
}

/// `n` values made by `f` (atomics cannot be cloned into a `vec!`), made
/// in parallel: the default model's states are about 1.3 GB at 5M
/// persons, each page written (and faulted in) once here, and one core
/// had done it all while the other waited.
fn filled<T: Send>(n: usize, f: impl Fn() -> T + Sync + Send) -> Vec<T> {
    use rayon::prelude::*;
    (0..n)
        .into_par_iter()
        .with_min_len(1 << 16)
        .map(|_| f())
        .collect()
}

/// Calls `f(first, end)` for each run of set bits of `bits`, lowest first.
#[inline]
pub fn each_run(mut bits: u64, mut f: impl FnMut(u16, u16)) {
    while bits != 0 {
        let first = bits.trailing_zeros();
        let len = (bits >> first).trailing_ones();
        f(first as u16, (first + len) as u16);
        bits &= !((u64::MAX >> (64 - len)) << first);
    }
}

/// Sorted runs, one per row group and source scanned, end to end in one
/// allocation: kept as one (the default model's largest) rather than a
/// vector per run, which at 5M persons left the allocator holding about
/// 450 MiB more in some runs.
#[derive(Default)]
pub struct Runs {
    seen: Vec<CodeSeen>,
    /// Where each run ends in `seen`.
    ends: Vec<usize>,
}

impl Runs {
    fn runs(&self) -> impl Iterator<Item = &[CodeSeen]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| &self.seen[start..end])
    }
}

/// Persons whose distinct codes are counted together: a part of every
/// task's run, merged and counted in parallel with the other parts.
const PERSONS_PER_PART: usize = 1 << 12;

const NO_FLOAT: u64 = u64::MAX; // a NaN pattern never produced by the data path

/// Distinct aggregates over at most this many codes (or categories) keep a
/// bitset per person; larger lists collect (person, item) keys instead.
pub const MAX_BITS: usize = 256;

/// The bits each code-list entry sets for a distinct aggregate, when the
/// aggregate is small enough for a bitset: a category aggregate sets the
/// entry's (filtered) categories, the others the entry's own bit.
pub fn bit_masks(aggregate: Aggregate, item_categories: &[Vec<u32>]) -> Option<Vec<Vec<u64>>> {
    let by_category = matches!(
        aggregate,
        Aggregate::CountDistinctCategories | Aggregate::ListCategories
    );
    if !by_category
        && !matches!(
            aggregate,
            Aggregate::CountDistinctCodes | Aggregate::SumDistinctWeights
        )
    {
        return None;
    }
    let width = if by_category {
        item_categories
            .iter()
            .flatten()
            .map(|&c| c as usize + 1)
            .max()
            .unwrap_or(1)
    } else {
        item_categories.len().max(1)
    };
    if width > MAX_BITS {
        return None;
    }
    let words = width.div_ceil(64);
    let masks = item_categories
        .iter()
        .enumerate()
        .map(|(item, categories)| {
            let mut mask = vec![0u64; words];
            let mut set = |bit: usize| mask[bit / 64] |= 1 << (bit % 64);
            if by_category {
                categories.iter().for_each(|&c| set(c as usize));
            } else {
                set(item);
            }
            mask
        })
        .collect();
    Some(masks)
}

/// What a scan for several dates holds of one aggregate, roughly, in bits
/// per person and as-of date: its state, and the columns the scan's finish
/// makes of it (with, where a column is built whole and then split by
/// date, the copy); and bytes per person, not per date (the sets of
/// distinct codes, [`CodeSets`], whose size steps with the number of dates:
/// [`Footprint::bytes_per_person`]). States that grow with the events
/// rather than the persons (the keys of long lists, the busiest month's
/// events, measured values) count only their columns. It follows
/// [`State::new`] and [`State::finish_dates`]: `words` is the bitset's size
/// where [`bit_masks`] gives one.
pub struct Footprint {
    pub state: usize,
    pub columns: usize,
    /// Bytes a person whatever the number of dates, sets of codes aside.
    pub per_person: usize,
    /// Whether it holds a set of distinct codes a person ([`CodeSets`]).
    pub code_sets: bool,
}

impl Footprint {
    /// The bytes a person it holds in a scan for `dates` dates.
    pub fn bytes_per_person(&self, dates: usize) -> usize {
        self.per_person
            + if self.code_sets {
                CodeSets::bytes_per_person(dates)
            } else {
                0
            }
    }
}

/// The [`Footprint`] of an aggregate.
pub fn footprint(
    aggregate: Aggregate,
    column: Option<Type>,
    codelist: bool,
    words: Option<usize>,
) -> Footprint {
    // A column built whole and copied out date by date: twice its width,
    // a list of categories about 16 bytes of text and offset a person.
    let split = match aggregate {
        Aggregate::ListCategories => 2 * 16 * 8,
        _ => 2 * 64,
    };
    // A bitset's column split straight from it: a count, or a weight.
    let bitset = match aggregate {
        Aggregate::ListCategories => split,
        Aggregate::SumDistinctWeights => 64,
        _ => 32,
    };
    // A day: 32 bits of state; 32 of column and its validity bit.
    let day = (32, 33);
    // Counts: 32-bit columns until their date is worked out (see
    // [`widened`]).
    let (state, columns) = match (words, aggregate) {
        (Some(words), _) => (words * 64, bitset),
        (None, Aggregate::Exists) => (1, 1),
        (None, Aggregate::Count) => (32, 32),
        (None, Aggregate::TotalDays) => (64, 64),
        // Each date's column of counts, made straight from the sets.
        (None, Aggregate::CountDistinctCodes) if !codelist => {
            return Footprint {
                state: 0,
                columns: 32,
                per_person: 0,
                code_sets: true,
            };
        }
        (
            None,
            Aggregate::CountDistinctCodes
            | Aggregate::CountDistinctCategories
            | Aggregate::ListCategories
            | Aggregate::SumDistinctWeights
            | Aggregate::Latest
            | Aggregate::Mean,
        ) => (0, split),
        (None, Aggregate::MaxInAMonth | Aggregate::MaxIn30Days) => (0, 32),
        (None, Aggregate::FirstDate | Aggregate::LastDate) => day,
        (None, Aggregate::Min | Aggregate::Max) => match column {
            Some(Type::Date) => day,
            Some(Type::Float) => (64, split + 1),
            _ => (64, 65),
        },
    };
    Footprint {
        state,
        columns,
        per_person: 0,
        code_sets: false,
    }
}

impl State {
    /// State for `aggregate` over `persons` and `dates` as-of dates, each
    /// person's dates side by side (slot `person * dates + date`); `column`
    /// is the type of the reduced column for `min`/`max`. With several
    /// dates, the busiest month's events are noted by run of dates
    /// ([`State::MonthlyRuns`]); distinct codes without a list are kept in
    /// sets up to [`MOST_DATES_IN_SETS`] dates ([`CodeSets`]), and noted by
    /// run of dates beyond.
    pub fn new(
        aggregate: Aggregate,
        column: Option<Type>,
        codelist: bool,
        bit_masks: Option<Vec<Vec<u64>>>,
        persons: usize,
        dates: usize,
    ) -> State {
        let slots = persons * dates;
        if let Some(masks) = bit_masks {
            let words = masks.first().map_or(1, Vec::len);
            return State::Bits {
                words,
                masks,
                bits: filled(slots * words, || AtomicU64::new(0)),
            };
        }
        match aggregate {
            Aggregate::Exists => State::Flags(filled(slots.div_ceil(64), || AtomicU64::new(0))),
            Aggregate::Count => State::Count(filled(slots, || AtomicU32::new(0))),
            Aggregate::CountDistinctCodes if !codelist => State::DistinctValues {
                sets: CodeSets::new(persons, dates),
                runs: Mutex::default(),
            },
            Aggregate::CountDistinctCodes
            | Aggregate::CountDistinctCategories
            | Aggregate::ListCategories
            | Aggregate::SumDistinctWeights => State::Distinct(Mutex::new(Vec::new())),
            Aggregate::MaxInAMonth | Aggregate::MaxIn30Days if dates == 1 => {
                State::Monthly(Mutex::new(Vec::new()))
            }
            Aggregate::MaxInAMonth | Aggregate::MaxIn30Days => State::MonthlyRuns(Mutex::default()),
            Aggregate::TotalDays => State::Sum(filled(slots, || AtomicI64::new(0))),
            Aggregate::Latest | Aggregate::Mean => State::Values {
                nth: 1,
                values: Mutex::new(Vec::new()),
            },
            Aggregate::FirstDate => State::MinDay(filled(slots, || AtomicI32::new(i32::MAX))),
            Aggregate::LastDate => State::MaxDay(filled(slots, || AtomicI32::new(i32::MIN))),
            Aggregate::Min | Aggregate::Max => {
                let min = aggregate == Aggregate::Min;
                match column {
                    Some(Type::Date) if min => {
                        State::MinDay(filled(slots, || AtomicI32::new(i32::MAX)))
                    }
                    Some(Type::Date) => State::MaxDay(filled(slots, || AtomicI32::new(i32::MIN))),
                    Some(Type::Float) if min => {
                        State::MinFloat(filled(slots, || AtomicU64::new(NO_FLOAT)))
                    }
                    Some(Type::Float) => {
                        State::MaxFloat(filled(slots, || AtomicU64::new(NO_FLOAT)))
                    }
                    _ if min => State::MinInt(filled(slots, || AtomicI64::new(i64::MAX))),
                    _ => State::MaxInt(filled(slots, || AtomicI64::new(i64::MIN))),
                }
            }
        }
    }

    /// A [`State::LaterDays`] for `persons` over `copies` dates, the
    /// earliest ending on `first_until`.
    pub fn later_days(persons: usize, copies: usize, first_until: i32) -> State {
        State::LaterDays {
            latest: filled(persons, || AtomicI32::new(i32::MIN)),
            first_until,
            later: Mutex::default(),
            copies,
        }
    }

    /// A [`State::Noted`]: of a bitset with these masks, or of a count.
    pub fn noted(bit_masks: Option<Vec<Vec<u64>>>) -> State {
        State::Noted {
            masks: bit_masks.map(|m| (m.first().map_or(1, Vec::len), m)),
            before: None,
            notes: Mutex::default(),
        }
    }

    /// A [`State::Noted`] bitset with no window start for `persons` over
    /// `copies` dates, the earliest ending on `first_until`: each person's
    /// bits up to it kept in place ([`Before`]).
    pub fn noted_after(
        bit_masks: Vec<Vec<u64>>,
        persons: usize,
        copies: usize,
        first_until: i32,
    ) -> State {
        let words = bit_masks.first().map_or(1, Vec::len);
        State::Noted {
            masks: Some((words, bit_masks)),
            before: Some(Before {
                first_until,
                bits: filled(persons * words, || AtomicU64::new(0)),
                copies,
            }),
            notes: Mutex::default(),
        }
    }

    /// Takes `person`'s match of code-list entry `item` on `day` into a
    /// [`State::Noted`] bitset: into their bits before the notes where
    /// it is kept and the day is on or before the earliest date's last,
    /// else noted in `notes` (a task's, handed over by
    /// [`State::merge_notes`]).
    #[inline]
    pub fn note_bits(&self, person: u32, day: i32, item: u32, notes: &mut Vec<Note>) {
        if let State::Noted {
            masks: Some((words, masks)),
            before: Some(before),
            ..
        } = self
            && day <= before.first_until
        {
            let at = person as usize * words;
            for (w, &m) in masks[item as usize].iter().enumerate() {
                // As [`State::set_bits`]: most matches repeat a code the
                // person already has.
                if m != 0 && before.bits[at + w].load(Relaxed) & m != m {
                    before.bits[at + w].fetch_or(m, Relaxed);
                }
            }
        } else {
            notes.push(Note { person, day, item });
        }
    }

    /// Whether this is a [`State::Noted`]: fed one [`Note`] an event (a
    /// match, for a bitset) through the scan's tasks, whatever the dates
    /// whose windows hold it.
    pub fn is_noted(&self) -> bool {
        matches!(self, State::Noted { .. })
    }

    /// Adds one task's notes.
    pub fn merge_notes(&self, notes: Vec<Note>) {
        if let State::Noted { notes: all, .. } = self {
            all.lock()
                .expect("no task panics while holding the lock")
                .push(notes);
        }
    }

    /// A [`State::Noted`] finished, once the scan is done; `weights` are
    /// its code list's entries' (`sum_distinct_weights`).
    pub fn into_noted(self, weights: Vec<i64>, persons: usize) -> Option<Noted> {
        let State::Noted {
            masks,
            before,
            notes,
        } = self
        else {
            return None;
        };
        let before = before.map(|b| b.bits.into_iter().map(AtomicU64::into_inner).collect());
        let tasks = notes
            .into_inner()
            .expect("no task panics while holding the lock");
        let mut notes = Vec::with_capacity(tasks.iter().map(Vec::len).sum());
        for task in tasks {
            notes.extend(task);
        }
        // In one order whatever the order the tasks handed them over.
        notes.sort_unstable();
        Some(Noted {
            notes,
            masks,
            before,
            weights,
            persons,
        })
    }

    /// Whether this is a [`State::LaterDays`]: fed by [`State::last_day`],
    /// once an event whatever the dates whose windows hold it.
    pub fn is_later_days(&self) -> bool {
        matches!(self, State::LaterDays { .. })
    }

    /// Takes `person`'s event on `day` into a [`State::LaterDays`]: into
    /// their latest day, or noted in `noted` (a task's keys, handed over by
    /// [`State::merge_keys`]) where it is after the earliest date's.
    #[inline]
    pub fn last_day(&self, person: u32, day: i32, noted: &mut Vec<u64>) {
        if let State::LaterDays {
            latest,
            first_until,
            ..
        } = self
        {
            if day <= *first_until {
                let v = &latest[person as usize];
                if day > v.load(Relaxed) {
                    v.fetch_max(day, Relaxed);
                }
            } else {
                noted.push(later_key(person, day));
            }
        }
    }

    /// A [`State::LaterDays`] finished, once the scan is done.
    pub fn into_later_days(self) -> Option<LaterDays> {
        let State::LaterDays { latest, later, .. } = self else {
            return None;
        };
        let latest: Vec<i32> = latest.into_iter().map(AtomicI32::into_inner).collect();
        let mut later = later
            .into_inner()
            .expect("no task panics while holding the lock");
        later.sort_unstable();
        later.shrink_to_fit();
        Some(LaterDays { latest, later })
    }

    /// Counts an event of `person` (`count`), or notes that there was
    /// one (`exists`).
    #[inline]
    pub fn count(&self, person: u32) {
        match self {
            State::Count(v) => {
                v[person as usize].fetch_add(1, Relaxed);
            }
            State::Flags(v) => {
                let (word, bit) = flag(person as usize);
                let word = &v[word];
                // Most events repeat what is already known: a plain load
                // spares the locked read-modify-write.
                if word.load(Relaxed) & bit == 0 {
                    word.fetch_or(bit, Relaxed);
                }
            }
            _ => {}
        }
    }

    #[inline]
    pub fn add(&self, person: u32, value: i64) {
        if let State::Sum(v) = self {
            v[person as usize].fetch_add(value, Relaxed);
        }
    }

    #[inline]
    pub fn day(&self, person: u32, day: i32) {
        match self {
            // A plain load first spares the locked update when the event
            // does not move the date: for a first date, most events of an
            // extract in date order.
            State::MinDay(v) => {
                let v = &v[person as usize];
                if day < v.load(Relaxed) {
                    v.fetch_min(day, Relaxed);
                }
            }
            State::MaxDay(v) => {
                let v = &v[person as usize];
                if day > v.load(Relaxed) {
                    v.fetch_max(day, Relaxed);
                }
            }
            _ => {}
        }
    }

    #[inline]
    pub fn int(&self, person: u32, value: i64) {
        match self {
            State::MinInt(v) => {
                v[person as usize].fetch_min(value, Relaxed);
            }
            State::MaxInt(v) => {
                v[person as usize].fetch_max(value, Relaxed);
            }
            _ => {}
        }
    }

    #[inline]
    pub fn float(&self, person: u32, value: f64) {
        let (slot, min) = match self {
            State::MinFloat(v) => (&v[person as usize], true),
            State::MaxFloat(v) => (&v[person as usize], false),
            _ => return,
        };
        if value.is_nan() {
            return;
        }
        let _ = slot.fetch_update(Relaxed, Relaxed, |bits| {
            let better = bits == NO_FLOAT
                || if min {
                    value < f64::from_bits(bits)
                } else {
                    value > f64::from_bits(bits)
                };
            better.then_some(value.to_bits())
        });
    }

    /// Starts fetching the memory an update of `slot` will touch, so that
    /// the scan's updates, random reads across millions of persons, overlap
    /// instead of each waiting for its cache miss. States kept as lists of
    /// keys have nothing to fetch.
    #[inline]
    pub fn prefetch(&self, slot: u32) {
        use crate::input::population::prefetch;
        let at = slot as usize;
        match self {
            State::Count(v) => v.get(at).map(prefetch),
            State::Flags(v) => v.get(flag(at).0).map(prefetch),
            State::Sum(v) | State::MinInt(v) | State::MaxInt(v) => v.get(at).map(prefetch),
            State::Bits { words, bits, .. } => bits.get(at * words).map(prefetch),
            State::MinDay(v) | State::MaxDay(v) => v.get(at).map(prefetch),
            State::LaterDays { latest, copies, .. } => latest.get(at / copies).map(prefetch),
            State::MinFloat(v) | State::MaxFloat(v) => v.get(at).map(prefetch),
            State::DistinctValues { sets, .. } => {
                sets.prefetch(at);
                None
            }
            State::Distinct(_)
            | State::Monthly(_)
            | State::MonthlyRuns(_)
            | State::Values { .. } => None,
            State::Noted {
                masks: Some((words, _)),
                before: Some(before),
                ..
            } => before.bits.get(at / before.copies * words).map(prefetch),
            State::Noted { .. } => None,
        };
    }

    /// Adds code number `code` to `person`'s set of distinct codes, on the
    /// as-of dates of `dates` (a bit each; 1 with one date); false if it
    /// must be noted instead (the set is full without it, or there are no
    /// sets: more than [`MOST_DATES_IN_SETS`] dates).
    #[inline]
    pub fn add_code(&self, person: u32, code: u32, dates: u64) -> bool {
        match self {
            State::DistinctValues { sets, .. } => sets.add(person, code, dates),
            _ => false,
        }
    }

    /// Sets the bits of list entry `item` for `person`; false if this state
    /// keeps keys instead.
    #[inline]
    pub fn set_bits(&self, person: u32, item: u32) -> bool {
        let State::Bits { words, masks, bits } = self else {
            return false;
        };
        let at = person as usize * words;
        for (w, &m) in masks[item as usize].iter().enumerate() {
            // Most matches repeat a code the person already has: a plain
            // load spares the locked read-modify-write.
            if m != 0 && bits[at + w].load(Relaxed) & m != m {
                bits[at + w].fetch_or(m, Relaxed);
            }
        }
        true
    }

    /// Adds one task's `person << 32 | item` keys (deduplicated for
    /// distinct aggregates, every one for monthly counts).
    pub fn merge_keys(&self, mut keys: Vec<u64>) {
        match self {
            State::Distinct(all) => {
                keys.sort_unstable();
                keys.dedup();
                all.lock()
                    .expect("no task panics while holding the lock")
                    .extend(keys);
            }
            State::Monthly(all) | State::LaterDays { later: all, .. } => all
                .lock()
                .expect("no task panics while holding the lock")
                .extend(keys),
            State::MonthlyRuns(_) => {
                unreachable!("with several dates the busiest month is noted by run of dates")
            }
            _ => {}
        }
    }

    /// A copy of a bitset's state, or of its keys, for another aggregate
    /// of the same state to finish (a list of categories beside their
    /// count); once the scan is done.
    pub fn copied(&self) -> State {
        match self {
            State::Bits { words, masks, bits } => State::Bits {
                words: *words,
                masks: masks.clone(),
                bits: bits
                    .iter()
                    .map(|b| AtomicU64::new(b.load(Relaxed)))
                    .collect(),
            },
            State::Distinct(keys) => State::Distinct(Mutex::new(
                keys.lock()
                    .expect("no task panics while holding the lock")
                    .clone(),
            )),
            _ => unreachable!("only categories' states are shared by two aggregates"),
        }
    }

    /// For `latest`: the N-th latest value rather than the latest.
    pub fn with_nth(self, n: usize) -> State {
        match self {
            State::Values { values, .. } => State::Values { nth: n, values },
            other => other,
        }
    }

    /// Adds one task's (slot, day, value) events.
    pub fn merge_values(&self, values: Vec<(u32, i32, f64)>) {
        if let State::Values { values: all, .. } = self {
            all.lock()
                .expect("no task panics while holding the lock")
                .extend(values);
        }
    }

    /// Adds the codes one task saw, as one sorted run; or the events, for
    /// monthly counts by run of dates.
    pub fn merge_distinct_values(&self, mut seen: Vec<CodeSeen>) {
        if let State::MonthlyRuns(all) = self {
            all.lock()
                .expect("no task panics while holding the lock")
                .extend(seen);
            return;
        }
        assert!(
            !matches!(self, State::Monthly(_)),
            "with one date the busiest month is noted by key"
        );
        if let State::DistinctValues { runs, .. } = self {
            seen.sort_unstable();
            seen.dedup();
            let mut runs = runs.lock().expect("no task panics while holding the lock");
            runs.seen.extend(seen);
            let end = runs.seen.len();
            runs.ends.push(end);
        }
    }

    /// [`State::finish`] of a state holding `copies` dates side by side
    /// (slot `person * copies + date`): each date's column, with counts
    /// (`count`, distinct codes without a list or in a bitset, distinct
    /// categories, the busiest month) as `UInt32` until their date is
    /// worked out (see [`widened`]). Counts, sums, dates, whole-number
    /// min/max, distinct codes without a list and a bitset's counts and
    /// weights split the state into dates in one pass (see [`split_dates`],
    /// [`split_slots`]); the busiest month's events, noted by run of dates,
    /// are counted into every date's column at once ([`most_by_date`]);
    /// flags 64 persons at a time ([`flags_by_date`]); distinct codes
    /// without a list straight into each date's column
    /// ([`distinct_code_counts`]); the others (a list of
    /// categories, the keys of a long list, latest, mean, float min/max)
    /// are finished whole, then each date's slots taken.
    pub fn finish_dates(
        self,
        aggregate: Aggregate,
        weights: &[i64],
        categories: (&[Vec<u32>], &[String]),
        persons: usize,
        copies: usize,
    ) -> crate::error::Result<Vec<ArrayRef>> {
        let slots = |date: usize| (0..persons).map(move |p| p * copies + date);
        let int64s = |columns: Vec<Vec<i64>>| -> Vec<ArrayRef> {
            columns
                .into_iter()
                .map(|c| Arc::new(Int64Array::from(c)) as ArrayRef)
                .collect()
        };
        let uint32s = |columns: Vec<Vec<u32>>| -> Vec<ArrayRef> {
            columns
                .into_iter()
                .map(|c| Arc::new(UInt32Array::from(c)) as ArrayRef)
                .collect()
        };
        if let State::DistinctValues { sets, runs } = self {
            return Ok(uint32s(distinct_code_counts::<u32>(
                &sets, runs, persons, copies,
            )));
        }
        if let State::MonthlyRuns(events) = self {
            let events = events
                .into_inner()
                .expect("no task panics while holding the lock");
            return Ok(uint32s(most_by_date(aggregate, events, persons, copies)));
        }
        // A bitset's counts and weights split straight into each date's
        // column, not made whole and then copied out date by date (a list
        // of categories, text, still is).
        if aggregate != Aggregate::ListCategories
            && let State::Bits { words, bits, .. } = self
        {
            let bits: Vec<u64> = bits.into_iter().map(AtomicU64::into_inner).collect();
            return Ok(match aggregate {
                Aggregate::SumDistinctWeights => {
                    split_slots(&bits, words, persons, copies, |s| weight_of(s, weights))
                        .into_iter()
                        .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef)
                        .collect()
                }
                _ => uint32s(split_slots(&bits, words, persons, copies, set_count)),
            });
        }
        Ok(match &self {
            State::Flags(v) => flags_by_date(v, persons, copies)
                .into_iter()
                .map(|words| {
                    let bits = arrow_buffer::BooleanBuffer::new(words.into(), 0, persons);
                    Arc::new(BooleanArray::new(bits, None)) as ArrayRef
                })
                .collect(),
            State::Count(v) => uint32s(split_dates(v, persons, copies, |c| c.load(Relaxed))),
            State::Sum(v) => int64s(split_dates(v, persons, copies, |x| x.load(Relaxed))),
            State::MinDay(v) => days(v, persons, copies, i32::MAX),
            State::MaxDay(v) => days(v, persons, copies, i32::MIN),
            State::MinInt(v) => ints(v, persons, copies, i64::MAX),
            State::MaxInt(v) => ints(v, persons, copies, i64::MIN),
            _ => {
                let all = self.finish(aggregate, weights, categories, persons * copies);
                (0..copies)
                    .map(|d| {
                        let slots =
                            arrow_array::UInt32Array::from_iter_values(slots(d).map(|i| i as u32));
                        arrow_select::take::take(&all, &slots, None).map_err(|e| {
                            crate::error::Error::Internal(format!(
                                "splitting the dates' columns: {e}"
                            ))
                        })
                    })
                    .collect::<crate::error::Result<_>>()?
            }
        })
    }

    /// The per-person result column. `weights` and `categories` (each
    /// item's category ids, and the category names) describe the code
    /// list's items for distinct aggregates.
    pub fn finish(
        self,
        aggregate: Aggregate,
        weights: &[i64],
        (categories, names): (&[Vec<u32>], &[String]),
        persons: usize,
    ) -> ArrayRef {
        match self {
            // Counts stay in 32 bits (see [`widened`]).
            State::Count(v) => Arc::new(arrow_array::UInt32Array::from_iter_values(
                v.into_iter().map(AtomicU32::into_inner),
            )),
            State::Flags(v) => {
                // Arrow's booleans are bits in the same order, least
                // significant first: the words, little-endian, are the
                // array's buffer.
                let words: Vec<u64> = v.into_iter().map(|w| w.into_inner().to_le()).collect();
                let bits = arrow_buffer::BooleanBuffer::new(words.into(), 0, persons);
                Arc::new(BooleanArray::new(bits, None))
            }
            State::Distinct(keys) => {
                let mut keys = keys
                    .into_inner()
                    .expect("no task panics while holding the lock");
                if matches!(
                    aggregate,
                    Aggregate::CountDistinctCategories | Aggregate::ListCategories
                ) {
                    // Map codes to every category they score, then
                    // deduplicate again.
                    keys = keys
                        .into_iter()
                        .flat_map(|k| {
                            let person = k & !0xFFFF_FFFF;
                            categories[(k & 0xFFFF_FFFF) as usize]
                                .iter()
                                .map(move |&c| person | u64::from(c))
                        })
                        .collect();
                }
                // Each task's keys arrive sorted: a stable sort merges the
                // runs rather than sorting from scratch.
                keys.sort();
                keys.dedup();
                if aggregate == Aggregate::ListCategories {
                    // Keys are sorted by person, then category id (the
                    // order categories first appear in the list).
                    let mut lists: Vec<Option<String>> = vec![None; persons];
                    for k in keys {
                        let name = names[(k & 0xFFFF_FFFF) as usize].replace('_', " ");
                        match &mut lists[(k >> 32) as usize] {
                            Some(list) => {
                                list.push_str(", ");
                                list.push_str(&name);
                            }
                            empty => *empty = Some(name),
                        }
                    }
                    Arc::new(StringArray::from(lists))
                } else if aggregate == Aggregate::SumDistinctWeights {
                    // Exact decimal sums (millionths), so 5.0 is 5.0; the one
                    // rounding is the final division.
                    let mut sums = vec![0i64; persons];
                    for k in keys {
                        sums[(k >> 32) as usize] += weights[(k & 0xFFFF_FFFF) as usize];
                    }
                    Arc::new(Float64Array::from_iter_values(
                        sums.into_iter().map(|s| s as f64 / WEIGHT_SCALE as f64),
                    ))
                } else {
                    let mut counts = vec![0u32; persons];
                    for k in keys {
                        counts[(k >> 32) as usize] += 1;
                    }
                    Arc::new(arrow_array::UInt32Array::from(counts))
                }
            }
            State::Bits { words, bits, .. } => {
                let bits: Vec<u64> = bits.into_iter().map(AtomicU64::into_inner).collect();
                let person_bits = |p: usize| items_of(&bits[p * words..(p + 1) * words]);
                match aggregate {
                    Aggregate::ListCategories => {
                        let shown: Vec<String> =
                            names.iter().map(|n| n.replace('_', " ")).collect();
                        let mut list = arrow_array::builder::StringBuilder::new();
                        let mut text = String::new();
                        for p in 0..persons {
                            text.clear();
                            for c in person_bits(p) {
                                if !text.is_empty() {
                                    text.push_str(", ");
                                }
                                text.push_str(&shown[c]);
                            }
                            if text.is_empty() {
                                list.append_null();
                            } else {
                                list.append_value(&text);
                            }
                        }
                        Arc::new(list.finish())
                    }
                    Aggregate::SumDistinctWeights => Arc::new(Float64Array::from_iter_values(
                        (0..persons).map(|p| weight_of(&bits[p * words..(p + 1) * words], weights)),
                    )),
                    _ => Arc::new(arrow_array::UInt32Array::from_iter_values(
                        (0..persons).map(|p| set_count(&bits[p * words..(p + 1) * words])),
                    )),
                }
            }
            State::Monthly(keys) => {
                let mut keys = keys
                    .into_inner()
                    .expect("no task panics while holding the lock");
                keys.sort_unstable();
                let mut most = vec![0u32; persons];
                if aggregate == Aggregate::MaxIn30Days {
                    busiest_30_days(&keys, &mut most);
                } else {
                    for run in keys.chunk_by(|a, b| a == b) {
                        let person = (run[0] >> 32) as usize;
                        most[person] = most[person].max(run.len() as u32);
                    }
                }
                Arc::new(arrow_array::UInt32Array::from(most))
            }
            State::DistinctValues { sets, runs } => {
                let mut columns = distinct_code_counts::<u32>(&sets, runs, persons, 1);
                Arc::new(arrow_array::UInt32Array::from(columns.remove(0)))
            }
            State::MonthlyRuns(_) => {
                unreachable!("made only for several dates, which finish_dates finishes")
            }
            State::Sum(v) => Arc::new(Int64Array::from_iter_values(
                v.into_iter().map(AtomicI64::into_inner),
            )),
            State::LaterDays { .. } => {
                unreachable!("a scan's later days are finished date by date (`into_later_days`)")
            }
            State::Noted { .. } => {
                unreachable!("a scan's notes are finished date by date (`into_noted`)")
            }
            State::Values { nth, values } => {
                let mut values = values
                    .into_inner()
                    .expect("no task panics while holding the lock");
                values_column(aggregate, nth, &mut values, persons)
            }
            State::MinDay(v) => days(&v, persons, 1, i32::MAX).remove(0),
            State::MaxDay(v) => days(&v, persons, 1, i32::MIN).remove(0),
            State::MinInt(v) => ints(&v, persons, 1, i64::MAX).remove(0),
            State::MaxInt(v) => ints(&v, persons, 1, i64::MIN).remove(0),
            State::MinFloat(v) | State::MaxFloat(v) => Arc::new(Float64Array::from_iter(
                v.into_iter()
                    .map(|b| b.into_inner())
                    .map(|b| (b != NO_FLOAT).then(|| f64::from_bits(b))),
            )),
        }
    }
}

/// `latest` (the `nth` latest) or `mean` of each slot's values. Latest is
/// by date; of several values on one day the lowest counts as the later,
/// so that the order never depends on the order of the data.
fn values_column(
    aggregate: Aggregate,
    nth: usize,
    values: &mut [(u32, i32, f64)],
    persons: usize,
) -> ArrayRef {
    // The values (0 where null, as Arrow's builders leave a null's) and
    // their validity: 65 bits a slot, not an `Option`'s 128 and then the
    // column's 65 beside it.
    let mut out = vec![0.0f64; persons];
    let mut valid = arrow_buffer::BooleanBufferBuilder::new(persons);
    valid.append_n(persons, false);
    let mut set = |slot: u32, value: f64| {
        out[slot as usize] = value;
        valid.set_bit(slot as usize, true);
    };
    if aggregate == Aggregate::Mean {
        values.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.2.total_cmp(&b.2)));
        for run in values.chunk_by(|a, b| a.0 == b.0) {
            // Summed in value order: the same mean whatever the scan order.
            let sum: f64 = run.iter().map(|v| v.2).sum();
            set(run[0].0, sum / run.len() as f64);
        }
    } else {
        values.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.total_cmp(&b.2)));
        for run in values.chunk_by(|a, b| a.0 == b.0) {
            if let Some(v) = run.get(nth - 1) {
                set(run[0].0, v.2);
            }
        }
    }
    let nulls = arrow_buffer::NullBuffer::new(valid.finish());
    Arc::new(Float64Array::new(out.into(), Some(nulls)))
}

/// Distinct codes per person, a column each date: those kept in each
/// person's set, each on the dates it holds, and those noted, each once
/// for each date of the union of its runs of dates.
///
/// The persons are counted a part at a time ([`PERSONS_PER_PART`]), the
/// parts in parallel: each takes its persons' share of every sorted run
/// (found by binary search) and merges them. Merging all the runs whole
/// kept one core busy while the other waited. A part's counts (slot
/// `person * copies + date`, small enough to stay in the cache) are then
/// written into each date's column: a whole state of slots split into the
/// columns afterwards had been twice the columns' memory, all of it new, at
/// the scan's finish (480 MB for 12 dates at 5M persons).
fn distinct_code_counts<C: Count>(
    sets: &CodeSets,
    runs: Mutex<Runs>,
    persons: usize,
    copies: usize,
) -> Vec<Vec<C>> {
    use rayon::prelude::*;
    let runs = runs
        .into_inner()
        .expect("no task panics while holding the lock");
    // Zeros: a fresh mapping without being written (each page then
    // written once, below, by the part that holds it); a kept one, which
    // `evaluate` reuses, by a write.
    let mut columns: Vec<Vec<C>> = (0..copies).map(|_| vec![C::default(); persons]).collect();
    // Each part's share of every date's column.
    let mut parts: Vec<Vec<&mut [C]>> = Vec::new();
    for column in &mut columns {
        let chunks = column.chunks_mut(PERSONS_PER_PART);
        for (part, chunk) in chunks.enumerate() {
            if part == parts.len() {
                parts.push(Vec::with_capacity(copies));
            }
            parts[part].push(chunk);
        }
    }
    parts
        .into_par_iter()
        .enumerate()
        .for_each_init(Vec::new, |counts, (part, mut dates)| {
            let first_person = part * PERSONS_PER_PART;
            let part_len = dates.first().map_or(0, |d| d.len());
            counts.clear();
            counts.resize(part_len * copies, C::default());
            // The codes kept in place: none of them is also noted, as a
            // code is noted only when its person's set is full without it.
            sets.count(first_person, copies, counts);
            let part_persons = first_person as u64..(first_person + PERSONS_PER_PART) as u64;
            let mut seen: Vec<CodeSeen> = Vec::new();
            for run in runs.runs() {
                let from = run.partition_point(|s| u64::from(s.0) < part_persons.start);
                let to = run.partition_point(|s| u64::from(s.0) < part_persons.end);
                seen.extend_from_slice(&run[from..to]);
            }
            // Sorted runs: merged by a stable sort.
            seen.sort();
            seen.dedup();
            for code in seen.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
                let person = (code[0].0 as usize - first_person) * copies;
                // Runs sorted by first date: the dates not yet counted
                // start at `from`.
                let mut from = 0;
                for &(_, _, first, end) in code {
                    let (first, end) = (usize::from(first).max(from), usize::from(end));
                    counts[person + first.min(end)..person + end]
                        .iter_mut()
                        .for_each(|c| *c += C::ONE);
                    from = from.max(end);
                }
            }
            for (date, column) in dates.iter_mut().enumerate() {
                for (value, slot) in column.iter_mut().zip(counts.chunks_exact(copies)) {
                    *value = slot[date];
                }
            }
        });
    columns
}

/// A count's type: `i64` for one date's column, `u32` for the columns of
/// several dates, held until their date is worked out (see [`widened`]).
trait Count: Copy + Default + Send + std::ops::AddAssign {
    const ONE: Self;
}

impl Count for i64 {
    const ONE: i64 = 1;
}

impl Count for u32 {
    const ONE: u32 = 1;
}

/// A column as expressions read it: counts held as `UInt32` made `Int64`
/// (the type the rules give a whole number), other columns as they are.
/// Counts are held in half the bytes while a scan's dates wait their turn,
/// and a scan for several dates is as many dates as its state and columns
/// fit in a budget (`dates_per_scan`): with 12 dates at 2M persons, the
/// default model's `Int64` counts had split them over two scans. A run of
/// one date ([`State::finish`]) keeps its counts in 32 bits to the end:
/// they were 8 bytes a person each at its peak, in the outputs. Expressions
/// widen them a chunk at a time as they read them (`eval`), and the Parquet
/// writer a row group at a time (`output::parquet`).
pub fn widened(column: ArrayRef) -> ArrayRef {
    use arrow_array::cast::AsArray;
    match column.as_primitive_opt::<arrow_array::types::UInt32Type>() {
        Some(counts) => Arc::new(counts.unary::<_, arrow_array::types::Int64Type>(i64::from)),
        None => column,
    }
}

/// Each date's values of a state holding `copies` dates side by side (slot
/// `person * copies + date`), in one pass over it. Taking one date at a time
/// went through the whole state once per date (a person's dates share cache
/// lines, so each date's pass read every line): with 12 dates, 12 reads of
/// every state.
fn split_dates<A, T: Copy + Default>(
    v: &[A],
    persons: usize,
    copies: usize,
    load: impl Fn(&A) -> T,
) -> Vec<Vec<T>> {
    split_slots(v, 1, persons, copies, |slot| load(&slot[0]))
}

/// [`split_dates`] of a state of `width` values a slot (a bitset's words).
///
/// A block of [`SPLIT_BLOCK`] persons at a time (a few KiB of the state,
/// which stays in the cache), each date's values of the block written in
/// place into its column: pushing each person's dates onto as many
/// vectors, a length and capacity test per value, had been the larger
/// part of splitting 12 dates.
fn split_slots<A, T: Copy + Default>(
    v: &[A],
    width: usize,
    persons: usize,
    copies: usize,
    load: impl Fn(&[A]) -> T,
) -> Vec<Vec<T>> {
    let mut dates: Vec<Vec<T>> = (0..copies).map(|_| vec![T::default(); persons]).collect();
    let stride = copies * width;
    for (b, block) in v[..persons * stride]
        .chunks(SPLIT_BLOCK * stride)
        .enumerate()
    {
        let first = b * SPLIT_BLOCK;
        for (date, column) in dates.iter_mut().enumerate() {
            let slots = block
                .chunks_exact(stride)
                .map(|p| &p[date * width..][..width]);
            for (value, slot) in column[first..].iter_mut().zip(slots) {
                *value = load(slot);
            }
        }
    }
    dates
}

/// Persons split at a time by [`split_slots`] and [`split_dates_unless`]:
/// a word of validity each date.
const SPLIT_BLOCK: usize = 64;

/// The set bits of a slot's words, lowest first.
fn items_of(words: &[u64]) -> impl Iterator<Item = usize> + '_ {
    words.iter().enumerate().flat_map(|(w, &word)| {
        std::iter::successors((word != 0).then_some(word), |&rest| {
            let rest = rest & (rest - 1);
            (rest != 0).then_some(rest)
        })
        .map(move |rest| w * 64 + rest.trailing_zeros() as usize)
    })
}

/// How many bits a slot's words have set: its distinct codes or categories.
fn set_count(words: &[u64]) -> u32 {
    words.iter().map(|w| w.count_ones()).sum()
}

/// The sum of the weights of a slot's items (`sum_distinct_weights`).
fn weight_of(words: &[u64], weights: &[i64]) -> f64 {
    let sum: i64 = items_of(words).map(|item| weights[item]).sum();
    sum as f64 / WEIGHT_SCALE as f64
}

/// [`split_dates`] with `none` (no event) as null (its value 0, as Arrow's
/// builders leave a null's), and no null buffer in a column where nothing
/// is null: the values and their validity in one pass, with one date too
/// (the values, then their validity, then a copy with the nulls' values
/// zeroed had taken three passes).
fn split_dates_unless<A, T: arrow_array::ArrowPrimitiveType>(
    v: &[A],
    persons: usize,
    copies: usize,
    load: impl Fn(&A) -> T::Native,
    none: T::Native,
) -> Vec<ArrayRef> {
    let zero = T::Native::default();
    let column = |values: Vec<T::Native>, valid: arrow_buffer::BooleanBuffer| {
        let nulls = arrow_buffer::NullBuffer::new(valid);
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        Arc::new(arrow_array::PrimitiveArray::<T>::new(values.into(), nulls)) as ArrayRef
    };
    if copies == 1 {
        // One date: the values, then their validity 64 at a time, each a
        // plain pass the compiler can do several values at once.
        let v = &v[..persons];
        let values = v
            .iter()
            .map(|slot| {
                let x = load(slot);
                if x != none { x } else { zero }
            })
            .collect();
        let valid = arrow_buffer::BooleanBuffer::collect_bool(persons, |p| load(&v[p]) != none);
        return vec![column(values, valid)];
    }
    // A block of persons at a time, each date's values and its word of
    // validity written in place (as `split_slots`).
    let mut values: Vec<Vec<T::Native>> = (0..copies).map(|_| vec![zero; persons]).collect();
    let mut valid: Vec<Vec<u64>> = (0..copies)
        .map(|_| vec![0u64; persons.div_ceil(SPLIT_BLOCK)])
        .collect();
    for (b, block) in v[..persons * copies]
        .chunks(SPLIT_BLOCK * copies)
        .enumerate()
    {
        let first = b * SPLIT_BLOCK;
        for (date, (column, valid)) in values.iter_mut().zip(&mut valid).enumerate() {
            let mut word = 0u64;
            let slots = block.chunks_exact(copies).map(|p| &p[date]);
            for (bit, (value, slot)) in column[first..].iter_mut().zip(slots).enumerate() {
                let x = load(slot);
                let present = x != none;
                word |= u64::from(present) << bit;
                *value = if present { x } else { zero };
            }
            valid[b] = word.to_le();
        }
    }
    values
        .into_iter()
        .zip(valid)
        .map(|(values, valid)| {
            column(
                values,
                arrow_buffer::BooleanBuffer::new(valid.into(), 0, persons),
            )
        })
        .collect()
}

/// Where slot `slot`'s flag is: its word, and the bit within it (least
/// significant first, as Arrow orders booleans).
#[inline]
fn flag(slot: usize) -> (usize, u64) {
    (slot / 64, 1 << (slot % 64))
}

/// Each date's flags, as the words of its column (Arrow's bit order, least
/// significant first), from flags kept a bit a slot (slot `person *
/// copies + date`). 64 persons' slots are `copies` whole words: each set
/// bit of them is put in its date's word for those persons. Flags are
/// mostly unset, so this reads each word once and does little more;
/// testing each person's bit for each date in turn had been most of the
/// scan's finish for 12 dates (20 flags a person).
fn flags_by_date(v: &[AtomicU64], persons: usize, copies: usize) -> Vec<Vec<u64>> {
    let blocks = persons.div_ceil(64);
    let mut dates: Vec<Vec<u64>> = (0..copies).map(|_| vec![0u64; blocks]).collect();
    for block in 0..blocks {
        let words = &v[(block * copies).min(v.len())..((block + 1) * copies).min(v.len())];
        for (i, word) in words.iter().enumerate() {
            let mut bits = word.load(Relaxed);
            while bits != 0 {
                let slot = i * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                dates[slot % copies][block] |= 1 << (slot / copies);
            }
        }
    }
    for word in dates.iter_mut().flatten() {
        *word = word.to_le();
    }
    dates
}

/// Each date's column of first/last dates, `none` (no event) as null.
fn days(v: &[AtomicI32], persons: usize, copies: usize, none: i32) -> Vec<ArrayRef> {
    split_dates_unless::<_, arrow_array::types::Date32Type>(
        v,
        persons,
        copies,
        |x| x.load(Relaxed),
        none,
    )
}

/// Each date's column of whole-number minima/maxima, `none` as null.
fn ints(v: &[AtomicI64], persons: usize, copies: usize, none: i64) -> Vec<ArrayRef> {
    split_dates_unless::<_, arrow_array::types::Int64Type>(
        v,
        persons,
        copies,
        |x| x.load(Relaxed),
        none,
    )
}

/// `max_in_a_month` or `max_in_30_days` of each person and date from
/// the events noted by run of dates ([`State::MonthlyRuns`]): each date's
/// column, 0 where a person had no event in that date's window.
fn most_by_date(
    aggregate: Aggregate,
    mut events: Vec<CodeSeen>,
    persons: usize,
    copies: usize,
) -> Vec<Vec<u32>> {
    use rayon::prelude::*;
    // By person, then month or day.
    events.par_sort_unstable();
    let mut most = vec![vec![0u32; persons]; copies];
    // Per date, the person's events of the month (or the 30 days) so far.
    let mut counts = vec![0u32; copies];
    let mut window: Vec<u32> = Vec::new();
    for person in events.chunk_by(|a, b| a.0 == b.0) {
        let p = person[0].0 as usize;
        if aggregate == Aggregate::MaxInAMonth {
            for month in person.chunk_by(|a, b| a.1 == b.1) {
                counts.fill(0);
                for &(_, _, first, end) in month {
                    counts[usize::from(first)..usize::from(end)]
                        .iter_mut()
                        .for_each(|c| *c += 1);
                }
                for (date, &c) in counts.iter().enumerate() {
                    most[date][p] = most[date][p].max(c);
                }
            }
        } else {
            for (date, most) in most.iter_mut().enumerate() {
                let date = date as u16;
                window.clear();
                window.extend(
                    person
                        .iter()
                        .filter(|e| e.2 <= date && date < e.3)
                        .map(|e| e.1),
                );
                // Each event is noted in memory (12 bytes): a person's
                // cannot number 2^32.
                most[p] = u32::try_from(busiest_30_days_of(&window))
                    .expect("fewer than 2^32 events a person");
            }
        }
    }
    most
}

/// For sorted `person << 32 | day` keys (days offset so they are not
/// negative), each person's most events within any 30 consecutive days
/// (a day and the 29 after it): a sliding window over each person's dates.
fn busiest_30_days(keys: &[u64], most: &mut [u32]) {
    let mut days: Vec<u32> = Vec::new();
    for events in keys.chunk_by(|a, b| a >> 32 == b >> 32) {
        days.clear();
        days.extend(events.iter().map(|&k| k as u32));
        // Each event is noted in memory (8 bytes): a person's cannot
        // number 2^32.
        most[(events[0] >> 32) as usize] =
            u32::try_from(busiest_30_days_of(&days)).expect("fewer than 2^32 events a person");
    }
}

/// The most of `days` (sorted) within any 30 consecutive days (a day and
/// the 29 after it): a sliding window.
fn busiest_30_days_of(days: &[u32]) -> i64 {
    let (mut start, mut most) = (0, 0);
    for (end, &day) in days.iter().enumerate() {
        while day - days[start] >= 30 {
            start += 1;
        }
        most = most.max((end - start + 1) as i64);
    }
    most
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_schema::DataType;

    /// A [`State::LaterDays`] of `persons` whose first date ends on
    /// `first_until`, given `events` (person, day), finished; and how many
    /// of them were noted.
    fn later_days_of(
        persons: usize,
        first_until: i32,
        events: &[(u32, i32)],
    ) -> (LaterDays, usize) {
        let state = State::later_days(persons, 3, first_until);
        assert!(state.is_later_days());
        let mut noted = Vec::new();
        for &(person, day) in events {
            state.last_day(person, day, &mut noted);
        }
        let count = noted.len();
        // Noted in two tasks, in any order.
        let second = noted.split_off(count / 2);
        state.merge_keys(second);
        state.merge_keys(noted);
        (state.into_later_days().expect("later days"), count)
    }

    /// A date's column of later days, as days.
    fn days_to(days: &LaterDays, until: i32) -> Vec<Option<i32>> {
        days.column(until)
            .as_primitive::<arrow_array::types::Date32Type>()
            .iter()
            .collect()
    }

    /// A last date over every earlier day, kept once a person for several
    /// dates, gives each date the latest day up to that date's last: the
    /// days on or before the first date's in place, later days noted, a
    /// day on a date's last day taken, a day after it not, null for none.
    #[test]
    fn later_days_give_each_date_its_latest_day_up_to_it() {
        // (person, day): 0 before the first date only; 1 on the first
        // date's last day and then between the second and third; 2 only
        // after the first; 3 on the last date's last day; 4 none.
        let events = [(0, 50), (0, 20), (1, 100), (1, 250), (2, 150), (3, 300)];
        let (persons, untils) = (5, [100, 200, 300]);
        let (days, noted) = later_days_of(persons, untils[0], &events);
        assert_eq!(noted, 3, "the days after the first date's are noted");
        assert_eq!(days_to(&days, 100), [Some(50), Some(100), None, None, None]);
        assert_eq!(
            days_to(&days, 200),
            [Some(50), Some(100), Some(150), None, None]
        );
        assert_eq!(
            days_to(&days, 249),
            [Some(50), Some(100), Some(150), None, None]
        );
        assert_eq!(
            days_to(&days, 300),
            [Some(50), Some(250), Some(150), Some(300), None]
        );
        // Each date's column the same as a day kept per person and date.
        for until in untils {
            let apart = State::MaxDay(filled(persons, || AtomicI32::new(i32::MIN)));
            for &(person, day) in events.iter().filter(|(_, day)| *day <= until) {
                apart.day(person, day);
            }
            let apart = apart.finish(Aggregate::LastDate, &[], (&[], &[]), persons);
            assert_eq!(days.column(until).to_data(), apart.to_data(), "{until}");
        }
        // Days before 1970 (negative), the day after the first date's, an
        // event noted twice.
        let events = [(0, -5000), (1, -99), (1, -99), (2, -150), (2, -40)];
        let (days, noted) = later_days_of(3, -100, &events);
        assert_eq!(noted, 3);
        assert_eq!(days_to(&days, -100), [Some(-5000), None, Some(-150)]);
        assert_eq!(days_to(&days, -99), [Some(-5000), Some(-99), Some(-150)]);
        assert_eq!(days_to(&days, -41), [Some(-5000), Some(-99), Some(-150)]);
        assert_eq!(days_to(&days, 0), [Some(-5000), Some(-99), Some(-40)]);
    }

    /// Three code-list entries' bits over two words: entry 0 sets bit 0,
    /// 1 bit 65, 2 bit 1; and the weight of each bit (the weight of the
    /// entry of its number).
    fn two_word_masks() -> (Vec<Vec<u64>>, Vec<i64>) {
        let mut weights = vec![0; 128];
        (weights[0], weights[65], weights[1]) = (1_000_000, 2_500_000, 500_000);
        (vec![vec![1, 0], vec![0, 2], vec![2, 0]], weights)
    }

    /// Each date's column of `aggregate` (a count, or a bitset of `masks`)
    /// from a state per person and date fed the `events` (person, day,
    /// entry) its `windows` (after, until) hold.
    fn dense_columns(
        aggregate: Aggregate,
        (masks, weights): (&[Vec<u64>], &[i64]),
        events: &[(u32, i32, u32)],
        windows: &[(Option<i32>, i32)],
        persons: usize,
    ) -> Vec<ArrayRef> {
        let bits = aggregate != Aggregate::Count;
        let dense = State::new(
            aggregate,
            None,
            true,
            bits.then(|| masks.to_vec()),
            persons,
            windows.len(),
        );
        for (date, (after, until)) in windows.iter().enumerate() {
            for &(person, day, item) in events {
                if after.is_none_or(|a| day > a) && day <= *until {
                    let slot = person * windows.len() as u32 + date as u32;
                    if bits {
                        assert!(dense.set_bits(slot, item));
                    } else {
                        dense.count(slot);
                    }
                }
            }
        }
        let categories = vec![vec![0], vec![1], vec![2]];
        dense
            .finish_dates(
                aggregate,
                weights,
                (&categories, &[]),
                persons,
                windows.len(),
            )
            .expect("columns")
    }

    /// Counts and bitsets kept as notes give each date the column a state
    /// per person and date gives: the window's edges (an event on a
    /// window's first day is out, on its last day in), a person noted in
    /// no window, several tasks' notes in any order, an entry noted twice,
    /// days before 1970, and a person with no notes.
    #[test]
    fn notes_give_each_date_the_column_of_a_state_per_date() {
        let (masks, weights) = two_word_masks();
        // (person, day, entry); person 4 has none.
        let events = [
            (0, 100, 0),
            (0, 100, 0),
            (0, 150, 2),
            (1, -300, 1),
            (1, 200, 0),
            (2, 201, 1),
            (3, 50, 2),
            (5, 300, 1),
        ];
        let persons = 6;
        // Each date's window: the days after the first, up to the last.
        let windows = [
            (Some(0), 100),
            (Some(100), 200),
            (None, 300),
            (Some(-301), 250),
        ];
        for aggregate in [
            Aggregate::Count,
            Aggregate::CountDistinctCategories,
            Aggregate::SumDistinctWeights,
        ] {
            let bits = aggregate != Aggregate::Count;
            let noted = State::noted(bits.then(|| masks.clone()));
            assert!(noted.is_noted());
            let notes: Vec<Note> = events
                .iter()
                .map(|&(person, day, item)| Note { person, day, item })
                .collect();
            // Two tasks' notes, the later task's first.
            noted.merge_notes(notes[4..].to_vec());
            noted.merge_notes(notes[..4].to_vec());
            let noted = noted.into_noted(weights.clone(), persons).expect("notes");
            let dense = dense_columns(aggregate, (&masks, &weights), &events, &windows, persons);
            for (date, &(after, until)) in windows.iter().enumerate() {
                let column = noted.column(aggregate, after, until);
                assert_eq!(
                    column.to_data(),
                    dense[date].to_data(),
                    "{aggregate:?} on date {date}"
                );
            }
        }
        // What the columns hold, by hand: counts on the second date (days
        // 101 to 200), weights on the third (to day 300).
        let noted = State::noted(None);
        noted.merge_notes(
            events
                .iter()
                .map(|&(person, day, item)| Note { person, day, item })
                .collect(),
        );
        let noted = noted.into_noted(Vec::new(), persons).expect("notes");
        let counts = noted.column(Aggregate::Count, Some(100), 200);
        let counts: Vec<u32> = counts
            .as_primitive::<arrow_array::types::UInt32Type>()
            .values()
            .to_vec();
        assert_eq!(counts, [1, 1, 0, 0, 0, 0]);
        let noted = State::noted(Some(masks.clone()));
        noted.merge_notes(
            events
                .iter()
                .map(|&(person, day, item)| Note { person, day, item })
                .collect(),
        );
        let noted = noted.into_noted(weights.clone(), persons).expect("notes");
        let weighed = noted.column(Aggregate::SumDistinctWeights, None, 300);
        let weighed: Vec<f64> = weighed
            .as_primitive::<arrow_array::types::Float64Type>()
            .values()
            .to_vec();
        // Person 0: entries 0 and 2; 1: entries 1 and 0; 2 and 5: entry 1;
        // 3: entry 2.
        assert_eq!(weighed, [1.5, 3.5, 2.5, 0.5, 0.0, 2.5]);
    }

    /// A bitset with no window start, kept as each person's bits up to the
    /// earliest date's last day and notes after it, gives each date the
    /// column of a state per person and date: an event on that last day
    /// kept in place, the day after it noted, days before 1970, persons
    /// with bits only before, only after, both, or none.
    #[test]
    fn bits_up_to_the_first_date_and_notes_after_give_each_date_its_column() {
        let (masks, weights) = two_word_masks();
        // (person, day, entry): 0 before and after; 1 before 1970 and
        // after; 2 and 6 only after; 3 the day after the first date's
        // last; 4 none; 5 on the first date's last day.
        let events = [
            (0, 100, 0),
            (0, 150, 2),
            (1, -300, 1),
            (1, 200, 0),
            (2, 201, 1),
            (3, 101, 2),
            (5, 100, 1),
            (6, 300, 0),
        ];
        let persons = 7;
        let windows = [(None, 100), (None, 200), (None, 300)];
        for aggregate in [
            Aggregate::CountDistinctCategories,
            Aggregate::SumDistinctWeights,
        ] {
            let state = State::noted_after(masks.clone(), persons, windows.len(), windows[0].1);
            let mut notes = Vec::new();
            for &(person, day, item) in &events {
                state.note_bits(person, day, item, &mut notes);
            }
            assert_eq!(notes.len(), 5, "the events after day 100 are noted");
            state.merge_notes(notes);
            let noted = state.into_noted(weights.clone(), persons).expect("notes");
            let dense = dense_columns(aggregate, (&masks, &weights), &events, &windows, persons);
            for (date, &(after, until)) in windows.iter().enumerate() {
                assert_eq!(
                    noted.column(aggregate, after, until).to_data(),
                    dense[date].to_data(),
                    "{aggregate:?} on date {date}"
                );
            }
        }
    }

    /// Counts are held in 32 bits after the scan, one date's as several
    /// dates' are, and are each slot's count once widened to the `Int64`
    /// expressions read.
    #[test]
    fn counts_of_several_dates_are_held_in_32_bits() {
        // Persons in a first block of 64 and a part second one.
        let (persons, copies) = (70, 3);
        let state = State::new(Aggregate::Count, None, false, None, persons, copies);
        let one = State::new(Aggregate::Count, None, false, None, persons * copies, 1);
        let mut expected = vec![0i64; persons * copies];
        for slot in [0u32, 4, 4, 7, 14, 14, 14, 9, 191, 192, 192, 209] {
            state.count(slot);
            one.count(slot);
            expected[slot as usize] += 1;
        }
        let columns = state
            .finish_dates(Aggregate::Count, &[], (&[], &[]), persons, copies)
            .unwrap();
        let whole = one.finish(Aggregate::Count, &[], (&[], &[]), persons * copies);
        assert_eq!(
            whole.data_type(),
            &DataType::UInt32,
            "one date's in 32 bits"
        );
        assert_eq!(
            widened(whole)
                .as_primitive::<arrow_array::types::Int64Type>()
                .values()
                .to_vec(),
            expected
        );
        assert_eq!(columns.len(), copies);
        for (date, column) in columns.into_iter().enumerate() {
            assert_eq!(column.data_type(), &DataType::UInt32, "held in 32 bits");
            let column = widened(column);
            assert_eq!(column.data_type(), &DataType::Int64, "widened");
            let want: Vec<i64> = (0..persons).map(|p| expected[p * copies + date]).collect();
            let got = column.as_primitive::<arrow_array::types::Int64Type>();
            assert_eq!(got.values().to_vec(), want, "date {date}");
        }
        // Other columns pass as they are.
        let days: ArrayRef = Arc::new(arrow_array::Date32Array::from(vec![1, 2]));
        assert!(Arc::ptr_eq(&widened(days.clone()), &days));
    }

    #[test]
    fn distinct_counts_codes_and_categories_once() {
        // Items 0 and 1 share category 0; item 2 is category 1.
        let cats = [vec![0], vec![0], vec![1]];
        let weights = [1_500_000, 2_000_000, 100_000];
        for (agg, expect) in [
            (Aggregate::CountDistinctCodes, vec![3.0, 1.0]),
            (Aggregate::CountDistinctCategories, vec![2.0, 1.0]),
            (Aggregate::SumDistinctWeights, vec![3.6, 2.0]),
        ] {
            let s = State::new(agg, None, true, None, 2, 1);
            s.merge_keys(vec![0, 1, 2, (1 << 32) | 1]);
            s.merge_keys(vec![1, (1 << 32) | 1]);
            let out = s.finish(agg, &weights, (&cats, &[]), 2);
            let got: Vec<f64> = if agg == Aggregate::SumDistinctWeights {
                out.as_primitive::<arrow_array::types::Float64Type>()
                    .values()
                    .to_vec()
            } else {
                out.as_primitive::<arrow_array::types::UInt32Type>()
                    .values()
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect()
            };
            for (g, e) in got.iter().zip(&expect) {
                assert!((g - e).abs() < 1e-9, "{agg:?}: {got:?} != {expect:?}");
            }
        }
    }

    /// A distinct-codes state without a list, and an empty set of codes
    /// per slot to check it against ([`counts_as_sets`]).
    fn distinct_codes(
        persons: usize,
        copies: usize,
    ) -> (State, Vec<std::collections::BTreeSet<u32>>) {
        let state = State::new(
            Aggregate::CountDistinctCodes,
            None,
            false,
            None,
            persons,
            copies,
        );
        (
            state,
            vec![std::collections::BTreeSet::new(); persons * copies],
        )
    }

    /// Checks a distinct-codes state's count for each person and date
    /// against `naive`, a set of codes per slot.
    fn counts_as_sets(
        state: State,
        naive: &[std::collections::BTreeSet<u32>],
        persons: usize,
        copies: usize,
        what: &str,
    ) {
        let columns = state
            .finish_dates(
                Aggregate::CountDistinctCodes,
                &[],
                (&[], &[]),
                persons,
                copies,
            )
            .unwrap();
        assert_eq!(columns.len(), copies);
        for (d, column) in columns.into_iter().enumerate() {
            assert_eq!(column.data_type(), &DataType::UInt32, "held in 32 bits");
            let column = widened(column);
            let got = column.as_primitive::<arrow_array::types::Int64Type>();
            assert_eq!(got.len(), persons);
            for p in 0..persons {
                let want = naive[p * copies + d].len() as i64;
                assert_eq!(got.value(p), want, "{what}person {p}, date {d}");
            }
        }
    }

    /// Each date's flags, finished, are the flags set for that date, for
    /// numbers of dates that do and do not divide a word, and persons that
    /// do not fill the last word.
    #[test]
    fn flags_are_split_into_each_dates_column() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
        for (persons, copies) in [
            (1, 1),
            (130, 1),
            (64, 12),
            (1_000, 12),
            (777, 5),
            (200, 64),
            (129, 65),
        ] {
            let state = State::new(Aggregate::Exists, None, false, None, persons, copies);
            let mut set = vec![false; persons * copies];
            for _ in 0..persons * copies / 3 {
                let slot = rng.random_range(0..persons * copies);
                set[slot] = true;
                state.count(slot as u32);
            }
            let columns = state
                .finish_dates(Aggregate::Exists, &[], (&[], &[]), persons, copies)
                .unwrap();
            assert_eq!(columns.len(), copies);
            for (d, column) in columns.iter().enumerate() {
                let column = column.as_boolean();
                assert_eq!(column.len(), persons);
                for p in 0..persons {
                    assert_eq!(
                        column.value(p),
                        set[p * copies + d],
                        "{persons} {copies} {p} {d}"
                    );
                }
                // Nothing beyond the last person.
                assert_eq!(
                    column.true_count(),
                    (0..persons).filter(|&p| set[p * copies + d]).count()
                );
            }
        }
    }

    #[test]
    fn distinct_codes_without_a_list_count_each_code_once_per_date() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(5);
        // Persons on both sides of the edges of the parts counted
        // together, and the last.
        let (persons, copies) = (2 * PERSONS_PER_PART + 3, 12usize);
        let edge = PERSONS_PER_PART as u32;
        let people = [
            0,
            1,
            edge - 1,
            edge,
            edge + 1,
            2 * edge - 1,
            2 * edge,
            persons as u32 - 1,
        ];
        for _ in 0..200 {
            // Runs of dates that overlap, touch, repeat and leave gaps,
            // handed over by several tasks, against a set per slot.
            let (state, mut naive) = distinct_codes(persons, copies);
            for _task in 0..3 {
                let mut seen = Vec::new();
                for _ in 0..rng.random_range(0..40) {
                    let person = people[rng.random_range(0..people.len())];
                    let code = rng.random_range(0..5u32);
                    let first = rng.random_range(0..copies as u16);
                    let end = rng.random_range(first + 1..=copies as u16);
                    seen.push((person, code, first, end));
                    for d in first..end {
                        naive[person as usize * copies + usize::from(d)].insert(code);
                    }
                }
                state.merge_distinct_values(seen);
            }
            counts_as_sets(state, &naive, persons, copies, "");
        }
        // One date: the runs are all `0..1`.
        let state = State::new(Aggregate::CountDistinctCodes, None, false, None, 2, 1);
        state.merge_distinct_values(vec![(1, 9, 0, 1), (1, 8, 0, 1), (1, 9, 0, 1)]);
        state.merge_distinct_values(vec![(1, 9, 0, 1), (0, 9, 0, 1)]);
        let out = state.finish(Aggregate::CountDistinctCodes, &[], (&[], &[]), 2);
        assert_eq!(
            out.as_primitive::<arrow_array::types::UInt32Type>()
                .values(),
            &[1, 2]
        );
    }

    #[test]
    fn distinct_codes_kept_in_place_or_noted_count_once_per_date() {
        use rand::{RngExt, SeedableRng};
        // Persons with fewer codes than a set holds, as many, and more;
        // code 0 (never kept in place); events in windows of one date, of
        // runs of dates and of scattered dates (bit 63 too); several tasks
        // at once, each noting what its person's set could not keep, as
        // the scan does. One date, several, the most kept in sets, and
        // more (every code noted).
        // Persons in the first part counted together and the next (the
        // sets' counts are read a part at a time).
        let edge = PERSONS_PER_PART as u32;
        let people = [0, 1, 2, 3, edge - 1, edge, edge + 1, edge + 2];
        let persons = PERSONS_PER_PART + 3;
        for copies in [
            1,
            3,
            12,
            MOST_DATES_IN_A_LINE,
            MOST_DATES_IN_A_LINE + 1,
            MOST_DATES_IN_SETS,
            MOST_DATES_IN_SETS + 1,
        ] {
            // Some person had more codes than a set holds.
            let mut overflowed = false;
            for seed in 0..30 {
                let (state, mut naive) = distinct_codes(persons, copies);
                let tasks: Vec<Vec<(u32, u32, Vec<usize>)>> = (0..4)
                    .map(|task| {
                        let mut rng =
                            rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed * 8 + task);
                        (0..rng.random_range(0..60))
                            .map(|_| {
                                // The k-th of `people` draws from 4 * (k % 4) + 1
                                // codes.
                                let k = rng.random_range(0..people.len());
                                let person = people[k];
                                let code = rng.random_range(0..=4 * (k as u32 % 4));
                                let dates = match rng.random_range(0..3) {
                                    0 => vec![rng.random_range(0..copies)],
                                    1 => {
                                        let first = rng.random_range(0..copies);
                                        (first..rng.random_range(first + 1..=copies)).collect()
                                    }
                                    _ => (0..copies).filter(|_| rng.random_bool(0.3)).collect(),
                                };
                                (person, code, dates)
                            })
                            .filter(|(_, _, dates)| !dates.is_empty())
                            .collect()
                    })
                    .collect();
                for (person, code, dates) in tasks.iter().flatten() {
                    for d in dates {
                        naive[*person as usize * copies + d].insert(*code);
                    }
                }
                std::thread::scope(|scope| {
                    for events in &tasks {
                        let state = &state;
                        scope.spawn(move || {
                            let mut noted = Vec::new();
                            for (person, code, dates) in events {
                                let (person, code) = (*person, *code);
                                let bits = dates.iter().fold(0u64, |b, &d| b | 1 << (d % 64));
                                if copies <= MOST_DATES_IN_SETS
                                    && state.add_code(person, code, bits)
                                {
                                    continue;
                                }
                                // Noted by run of dates.
                                for run in dates.chunk_by(|a, b| a + 1 == *b) {
                                    let (first, end) = (run[0], run[run.len() - 1] + 1);
                                    noted.push((person, code, first as u16, end as u16));
                                }
                            }
                            noted.sort_unstable();
                            state.merge_distinct_values(noted);
                        });
                    }
                });
                let what = format!("{copies} dates, seed {seed}, ");
                counts_as_sets(state, &naive, persons, copies, &what);
                let codes = |p: usize| {
                    let dates = naive[p * copies..(p + 1) * copies].iter();
                    dates
                        .flatten()
                        .collect::<std::collections::BTreeSet<_>>()
                        .len()
                };
                overflowed |= people.iter().any(|&p| codes(p as usize) > CODES_PER_SET);
            }
            assert!(overflowed, "{copies} dates: no set was ever full");
        }
        // More dates than sets take: every code is noted.
        let state = State::new(
            Aggregate::CountDistinctCodes,
            None,
            false,
            None,
            2,
            MOST_DATES_IN_SETS + 1,
        );
        assert!(!state.add_code(0, 7, 1));
    }

    #[test]
    fn each_run_of_bits_lowest_first() {
        let runs = |bits: u64| {
            let mut got = Vec::new();
            each_run(bits, |first, end| got.push((first, end)));
            got
        };
        assert_eq!(runs(0), vec![]);
        assert_eq!(runs(1), vec![(0, 1)]);
        assert_eq!(runs(0b1110_1101), vec![(0, 1), (2, 4), (5, 8)]);
        assert_eq!(runs(u64::MAX), vec![(0, 64)]);
        assert_eq!(runs(1 << 63 | 1 << 61), vec![(61, 62), (63, 64)]);
    }

    #[test]
    fn list_categories_names_each_category_once_in_list_order() {
        // Item 0 scores both categories; item 1 only the second.
        let cats = [vec![0, 1], vec![1]];
        let names = ["heart_failure".to_string(), "falls".to_string()];
        let s = State::new(Aggregate::ListCategories, None, true, None, 3, 1);
        s.merge_keys(vec![1, 0, (2 << 32) | 1]);
        s.merge_keys(vec![(2 << 32) | 1]);
        let out = s.finish(Aggregate::ListCategories, &[], (&cats, &names), 3);
        let got: Vec<_> = out.as_string::<i32>().iter().collect();
        assert_eq!(got, vec![Some("heart failure, falls"), None, Some("falls")]);
    }

    #[test]
    fn bitsets_give_the_same_results_as_keys() {
        // Items 0 and 1 share category 0; item 2 is categories 0 and 1.
        let cats = [vec![0], vec![0], vec![0, 1]];
        let names = ["a".to_string(), "b".to_string()];
        let weights = [1_500_000, 2_000_000, 100_000];
        let events = [(0u32, 0u32), (0, 1), (0, 2), (1, 1), (1, 1), (2, 2)];
        for agg in [
            Aggregate::CountDistinctCodes,
            Aggregate::CountDistinctCategories,
            Aggregate::ListCategories,
            Aggregate::SumDistinctWeights,
        ] {
            let keys = State::new(agg, None, true, None, 3, 1);
            keys.merge_keys(
                events
                    .iter()
                    .map(|&(p, i)| (u64::from(p) << 32) | u64::from(i))
                    .collect(),
            );
            let masks = bit_masks(agg, &cats).expect("small enough for bits");
            let bits = State::new(agg, None, true, Some(masks), 3, 1);
            for &(p, i) in &events {
                assert!(bits.set_bits(p, i));
            }
            let a = keys.finish(agg, &weights, (&cats, &names), 3);
            let b = bits.finish(agg, &weights, (&cats, &names), 3);
            assert_eq!(a.to_data(), b.to_data(), "{agg:?}");
        }
        assert!(bit_masks(Aggregate::CountDistinctCodes, &vec![vec![]; MAX_BITS + 1]).is_none());
        assert!(bit_masks(Aggregate::Count, &cats).is_none());
    }

    /// `latest` and `mean` give each slot's value, null where a slot has
    /// none (or fewer than `nth`), as a column built from options would.
    #[test]
    fn latest_and_mean_of_each_slot() {
        // (slot, day, value): slot 0 three values, slot 2 one, slot 1 none.
        let values = [
            (0u32, 10, 2.0),
            (0, 12, 5.0),
            (2, 3, 7.5),
            (0, 12, 4.0),
            (0, 11, 1.0),
        ];
        for (aggregate, nth, want) in [
            (Aggregate::Latest, 1, vec![Some(4.0), None, Some(7.5)]),
            (Aggregate::Latest, 2, vec![Some(5.0), None, None]),
            (Aggregate::Mean, 1, vec![Some(3.0), None, Some(7.5)]),
        ] {
            let got = values_column(aggregate, nth, &mut values.clone(), 3);
            let want = Float64Array::from(want);
            assert_eq!(got.to_data(), want.to_data(), "{aggregate:?} {nth}");
        }
    }

    /// A bitset of several dates splits into each date's column (counts
    /// held in 32 bits until widened) what one date's bitset of as many
    /// slots gives each slot.
    #[test]
    fn bitsets_of_several_dates_split_into_each_date() {
        // 70 items: a code's bitset two words a slot.
        let mut cats = vec![vec![0], vec![0], vec![0, 1]];
        cats.resize(70, vec![1]);
        let names = ["a".to_string(), "b".to_string()];
        let weights: Vec<i64> = (0..70).map(|i| 100_000 * (i + 1)).collect();
        let copies = 2;
        // (slot, item), slot = person * copies + date: persons in one part
        // block of the split, and in the second and third blocks of 64.
        let events = [
            (0u32, 0u32),
            (0, 1),
            (1, 2),
            (1, 69),
            (2, 1),
            (3, 1),
            (3, 0),
            (3, 64),
            (5, 2),
            (129, 64),
            (256, 1),
            (259, 69),
            (259, 0),
        ];
        for (agg, persons) in [
            Aggregate::CountDistinctCodes,
            Aggregate::CountDistinctCategories,
            Aggregate::ListCategories,
            Aggregate::SumDistinctWeights,
        ]
        .into_iter()
        .flat_map(|agg| [(agg, 3), (agg, 130)])
        {
            let events = events.iter().filter(|e| (e.0 as usize) < persons * copies);
            let masks = bit_masks(agg, &cats).expect("small enough for bits");
            let dated = State::new(agg, None, true, Some(masks.clone()), persons, copies);
            let slots = State::new(agg, None, true, Some(masks), persons * copies, 1);
            for &(slot, item) in events {
                assert!(dated.set_bits(slot, item));
                assert!(slots.set_bits(slot, item));
            }
            let whole = slots.finish(agg, &weights, (&cats, &names), persons * copies);
            let columns = dated
                .finish_dates(agg, &weights, (&cats, &names), persons, copies)
                .unwrap();
            assert_eq!(columns.len(), copies);
            // Counts held in 32 bits; weights as numbers; a list of
            // categories (made whole, then taken) as text.
            let held = match agg {
                Aggregate::SumDistinctWeights => DataType::Float64,
                Aggregate::ListCategories => DataType::Utf8,
                _ => DataType::UInt32,
            };
            for (date, column) in columns.into_iter().enumerate() {
                assert_eq!(column.data_type(), &held, "{agg:?}");
                let at = (0..persons).map(|p| (p * copies + date) as u32);
                let at = UInt32Array::from_iter_values(at);
                let want = arrow_select::take::take(&whole, &at, None).unwrap();
                assert_eq!(column.to_data(), want.to_data(), "{agg:?}, date {date}");
            }
        }
    }

    #[test]
    fn max_in_a_month_counts_every_event_of_the_busiest_month() {
        // Person 0: 2 events in month 10, 3 in month 11 (sent by two tasks);
        // person 2: 1 event.
        let s = State::new(Aggregate::MaxInAMonth, None, false, None, 3, 1);
        s.merge_keys(vec![10, 11, 10, 11]);
        s.merge_keys(vec![11, (2 << 32) | 10]);
        let out = s.finish(Aggregate::MaxInAMonth, &[], (&[], &[]), 3);
        let got: Vec<_> = out
            .as_primitive::<arrow_array::types::UInt32Type>()
            .values()
            .to_vec();
        assert_eq!(got, vec![3, 0, 1]);
    }

    #[test]
    fn max_in_30_days_slides_over_consecutive_days() {
        // Person 0: days 100, 110, 129 (within 30 days: 3), then 130 (the
        // window 101..=130 holds 110, 129, 130: 3); person 1: 100 and 130
        // (30 days apart: never together), twice on day 200 (2).
        let s = State::new(Aggregate::MaxIn30Days, None, false, None, 2, 1);
        s.merge_keys(vec![130, 100, 129]);
        s.merge_keys(vec![110, (1 << 32) | 100, (1 << 32) | 130]);
        s.merge_keys(vec![(1 << 32) | 200, (1 << 32) | 200]);
        let out = s.finish(Aggregate::MaxIn30Days, &[], (&[], &[]), 2);
        let got: Vec<_> = out
            .as_primitive::<arrow_array::types::UInt32Type>()
            .values()
            .to_vec();
        assert_eq!(got, vec![3, 2]);
    }

    /// The reference for [`split_dates_unless`]: `values` with `none` (no
    /// event) as null, a null's value 0 (as Arrow's builders leave it),
    /// and no null buffer where nothing is null.
    fn unless<T: arrow_array::ArrowPrimitiveType>(
        values: impl Iterator<Item = T::Native>,
        none: T::Native,
    ) -> arrow_array::PrimitiveArray<T> {
        let values: Vec<T::Native> = values.collect();
        if !values.contains(&none) {
            return arrow_array::PrimitiveArray::new(values.into(), None);
        }
        values
            .into_iter()
            .map(|v| (v != none).then_some(v))
            .collect()
    }

    /// `got` is `alone`: the same values under the nulls too, and no null
    /// buffer where nothing is null.
    fn same_as<T: arrow_array::ArrowPrimitiveType>(
        got: &ArrayRef,
        alone: arrow_array::PrimitiveArray<T>,
        what: &str,
    ) {
        let got = got.as_primitive::<T>();
        assert_eq!(got.values(), alone.values(), "{what}");
        assert_eq!(got.nulls(), alone.nulls(), "{what}");
    }

    #[test]
    fn dates_split_with_nulls_as_each_date_alone() {
        use arrow_array::types::{Date32Type, Int64Type};
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let kinds = [
            (Aggregate::LastDate, None),
            (Aggregate::FirstDate, None),
            (Aggregate::Max, Some(Type::Int)),
            (Aggregate::Min, Some(Type::Int)),
        ];
        // Persons across several words of validity, and a last part word;
        // one date (finished as one) and several.
        for (persons, copies) in [(1, 1), (70, 1), (63, 2), (64, 3), (130, 12)] {
            for (aggregate, column) in kinds {
                let new = || State::new(aggregate, column, false, None, persons, copies);
                let (state, one) = (new(), new());
                for _ in 0..persons {
                    let slot = rng.random_range(0..(persons * copies) as u32);
                    let value = rng.random_range(-3..3);
                    for s in [&state, &one] {
                        s.day(slot, value);
                        s.int(slot, i64::from(value));
                    }
                }
                let slots: Vec<i64> = match &state {
                    State::MinDay(v) | State::MaxDay(v) => {
                        v.iter().map(|d| i64::from(d.load(Relaxed))).collect()
                    }
                    State::MinInt(v) | State::MaxInt(v) => {
                        v.iter().map(|d| d.load(Relaxed)).collect()
                    }
                    _ => unreachable!("dates and whole numbers"),
                };
                let mut got = state
                    .finish_dates(aggregate, &[], (&[], &[]), persons, copies)
                    .unwrap();
                if copies == 1 {
                    got.push(one.finish(aggregate, &[], (&[], &[]), persons));
                }
                for (k, got) in got.iter().enumerate() {
                    let date = k % copies;
                    let what = format!("{aggregate:?}, {persons} persons, date {date}");
                    let values = (0..persons).map(|p| slots[p * copies + date]);
                    match aggregate {
                        Aggregate::LastDate | Aggregate::FirstDate => {
                            let none = if aggregate == Aggregate::LastDate {
                                i32::MIN
                            } else {
                                i32::MAX
                            };
                            let alone = unless::<Date32Type>(values.map(|v| v as i32), none);
                            same_as(got, alone, &what);
                        }
                        _ => {
                            let none = if aggregate == Aggregate::Max {
                                i64::MIN
                            } else {
                                i64::MAX
                            };
                            same_as(got, unless::<Int64Type>(values, none), &what);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn monthly_counts_by_run_of_dates_match_a_key_per_date() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
        let (persons, copies) = (5usize, 12usize);
        for aggregate in [Aggregate::MaxInAMonth, Aggregate::MaxIn30Days] {
            for _ in 0..200 {
                // Events on few months or days (repeats, neighbours, 29 and
                // 30 days apart), each in a run of dates, from several
                // tasks; against the one-date state fed a key per date.
                let runs = State::new(aggregate, None, false, None, persons, copies);
                let keys = State::new(aggregate, None, false, None, persons * copies, 1);
                for _task in 0..3 {
                    let mut seen = Vec::new();
                    let mut per_date = Vec::new();
                    for _ in 0..rng.random_range(0..30) {
                        let person = rng.random_range(0..persons as u32);
                        let value: u32 = [5, 6, 7, 35, 36, 37][rng.random_range(0..6)];
                        let first = rng.random_range(0..copies as u16);
                        let end = rng.random_range(first + 1..=copies as u16);
                        seen.push((person, value, first, end));
                        for date in first..end {
                            let slot = person as u64 * copies as u64 + u64::from(date);
                            per_date.push((slot << 32) | u64::from(value));
                        }
                    }
                    runs.merge_distinct_values(seen);
                    keys.merge_keys(per_date);
                }
                let got = runs
                    .finish_dates(aggregate, &[], (&[], &[]), persons, copies)
                    .unwrap();
                let all = widened(keys.finish(aggregate, &[], (&[], &[]), persons * copies));
                let all = all.as_primitive::<arrow_array::types::Int64Type>();
                for (date, column) in got.into_iter().enumerate() {
                    assert_eq!(column.data_type(), &DataType::UInt32, "held in 32 bits");
                    let column = widened(column);
                    let column = column.as_primitive::<arrow_array::types::Int64Type>();
                    assert_eq!(column.null_count(), 0);
                    let expected: Vec<i64> =
                        (0..persons).map(|p| all.value(p * copies + date)).collect();
                    assert_eq!(
                        column.values().to_vec(),
                        expected,
                        "{aggregate:?}, date {date}"
                    );
                }
            }
        }
    }

    #[test]
    fn min_max_leave_null_for_persons_without_events() {
        let s = State::new(Aggregate::Max, Some(Type::Float), false, None, 3, 1);
        s.float(0, 1.0);
        s.float(0, 3.0);
        s.float(2, -2.0);
        let out = s.finish(Aggregate::Max, &[], (&[], &[]), 3);
        let got: Vec<_> = out
            .as_primitive::<arrow_array::types::Float64Type>()
            .iter()
            .collect();
        assert_eq!(got, vec![Some(3.0), None, Some(-2.0)]);
        let s = State::new(Aggregate::FirstDate, None, false, None, 2, 1);
        s.day(1, 10);
        s.day(1, 5);
        let out = s.finish(Aggregate::FirstDate, &[], (&[], &[]), 2);
        let got: Vec<_> = out
            .as_primitive::<arrow_array::types::Date32Type>()
            .iter()
            .collect();
        assert_eq!(got, vec![None, Some(5)]);
        let s = State::new(Aggregate::Min, Some(Type::Int), false, None, 3, 1);
        s.int(1, 7);
        s.int(1, -3);
        let out = s.finish(Aggregate::Min, &[], (&[], &[]), 3);
        let got: Vec<_> = out
            .as_primitive::<arrow_array::types::Int64Type>()
            .iter()
            .collect();
        assert_eq!(got, vec![None, Some(-3), None]);
        // Everyone with an event: no nulls.
        let s = State::new(Aggregate::LastDate, None, false, None, 2, 1);
        s.day(0, -4);
        s.day(1, 0);
        let out = s.finish(Aggregate::LastDate, &[], (&[], &[]), 2);
        assert_eq!(out.null_count(), 0);
        let got = out
            .as_primitive::<arrow_array::types::Date32Type>()
            .values();
        assert_eq!(got.to_vec(), vec![-4, 0]);
    }

    #[test]
    fn exists_is_one_bit_per_slot_across_words_and_dates() {
        // 130 slots span three words; events on both sides of each word's
        // edge, some repeated.
        let slots = 130;
        let events = [0u32, 63, 63, 64, 127, 128, 129, 129];
        let s = State::new(Aggregate::Exists, None, false, None, slots, 1);
        events.iter().for_each(|&e| s.count(e));
        let expect: Vec<bool> = (0..slots as u32).map(|i| events.contains(&i)).collect();
        let whole = s.finish(Aggregate::Exists, &[], (&[], &[]), slots);
        assert_eq!(whole.len(), slots);
        let got: Vec<bool> = whole.as_boolean().iter().map(Option::unwrap).collect();
        assert_eq!(got, expect);
        // The same slots read as 65 persons of 2 dates (slot person * 2 + date).
        let s = State::new(Aggregate::Exists, None, false, None, slots, 1);
        events.iter().for_each(|&e| s.count(e));
        let dates = s
            .finish_dates(Aggregate::Exists, &[], (&[], &[]), slots / 2, 2)
            .unwrap();
        for (d, column) in dates.iter().enumerate() {
            let got: Vec<bool> = column.as_boolean().iter().map(Option::unwrap).collect();
            let want: Vec<bool> = (0..slots / 2).map(|p| expect[p * 2 + d]).collect();
            assert_eq!(got, want, "date {d}");
        }
    }
}
