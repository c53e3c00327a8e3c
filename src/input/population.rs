//! The registered population: one row per person, sorted by `person_id`,
//! and the index that maps an id found in an event table to that row.
//!
//! Every per-person array in the engine is indexed by this row number, so
//! per-person state is dense (a `Vec` slot per person) and memory grows with
//! persons, never with events.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema};
use foldhash::fast::FixedState;
use rayon::prelude::*;

use crate::dates::FIRST_PLAUSIBLE_DAY;
use crate::error::{Error, Result};
use crate::input::table::{self, Table, to_dates};
use crate::input::{REJECTS_KEPT, RejectedRow};
use crate::rules::check::Type;
use crate::rules::syntax;

type FastMap<K> = HashMap<K, u32, FixedState>;

/// Asks the CPU to bring `value`'s cache line in, without waiting for it.
#[inline]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults or changes memory,
    // and `value` is a valid reference anyway.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Maps a person id to the person's row in [`Population::batch`].
#[derive(Clone)]
pub enum PersonIndex {
    Int(SortedIds),
    Str(FastMap<Box<str>>),
}

/// Integer ids, each mapped to its place in ascending order (the person's
/// row). Every event row's id is looked up here, so at millions of persons
/// it is one of the scan's largest costs: the table no longer fits the
/// cache and each lookup waits on memory.
///
/// Ids are kept in [`Lines`] where they lie evenly enough (hashed
/// pseudonyms, consecutive numbers): a lookup mostly reads one cache line
/// (a few where full lines have sent ids on), where
/// [`Buckets`] read two, one after the other (the bucket's start, then its
/// ids). At 5M persons that is about 27 ns a lookup against 34 (`cargo
/// bench --bench hot_paths -- person_lookup`), and the default model's
/// scan about 5% faster; the lines take about 18 bytes a person, the
/// buckets 12 to 16. Ids bunched so that lines would overflow far past
/// where their ids belong (numbering schemes in disjoint ranges) are kept
/// in [`Buckets`], whose lookup is a binary search however they lie.
#[derive(Clone)]
pub struct SortedIds(Layout);

#[derive(Clone)]
enum Layout {
    Lines(Lines),
    Buckets(Buckets),
}

impl SortedIds {
    /// `ids` must be sorted and distinct.
    pub fn new(ids: Vec<i64>) -> SortedIds {
        match Lines::new(&ids) {
            Some(lines) => SortedIds(Layout::Lines(lines)),
            None => SortedIds(Layout::Buckets(Buckets::new(ids))),
        }
    }

    /// [`SortedIds::new`] in the layout that bunched ids get, whatever
    /// their spread: for `benches/hot_paths.rs` to compare the two.
    pub fn in_buckets(ids: Vec<i64>) -> SortedIds {
        SortedIds(Layout::Buckets(Buckets::new(ids)))
    }

    /// Whether the ids are kept in lines (evenly spread enough), not
    /// buckets: for `benches/hot_paths.rs` to check what it measures.
    pub fn in_lines(&self) -> bool {
        matches!(self.0, Layout::Lines(_))
    }

    /// The person of each row of `rows` in `ids`: the same answers as
    /// [`SortedIds::get`] one by one, but where each id is looked up is
    /// fetched into the cache a few rows ahead, so the memory reads overlap.
    pub fn resolve(&self, ids: &Int64Array, rows: &[u32]) -> Vec<Person> {
        match &self.0 {
            Layout::Lines(lines) => {
                resolve_with(ids, rows, |id| lines.fetch(id), |_| (), |id| lines.get(id))
            }
            Layout::Buckets(buckets) => resolve_with(
                ids,
                rows,
                |id| buckets.fetch_start(id),
                |id| buckets.fetch_ids(id),
                |id| buckets.get(id),
            ),
        }
    }

    /// The position of `id` among the sorted ids.
    #[inline]
    pub fn get(&self, id: i64) -> Option<u32> {
        match &self.0 {
            Layout::Lines(lines) => lines.get(id),
            Layout::Buckets(buckets) => buckets.get(id),
        }
    }
}

/// [`SortedIds::resolve`] by `get`, with what it will read asked for
/// ahead: `far(id)` [`FAR`] rows ahead, `near(id)` [`NEAR`] rows ahead (for
/// a second read that needs the first's answer).
fn resolve_with(
    ids: &Int64Array,
    rows: &[u32],
    far: impl Fn(i64),
    near: impl Fn(i64),
    get: impl Fn(i64) -> Option<u32>,
) -> Vec<Person> {
    // Asks `fetch` for row `i`'s id, if there is one.
    #[inline(always)]
    fn at(ids: &Int64Array, rows: &[u32], i: usize, fetch: &impl Fn(i64)) {
        if let Some(&r) = rows.get(i)
            && ids.is_valid(r as usize)
        {
            fetch(ids.value(r as usize));
        }
    }
    (0..FAR).for_each(|i| at(ids, rows, i, &far));
    (0..NEAR).for_each(|i| at(ids, rows, i, &near));
    // Extracts are mostly grouped by person: a row with the previous
    // row's id has its answer already.
    let mut last: Option<(i64, Person)> = None;
    rows.iter()
        .enumerate()
        .map(|(i, &r)| {
            let r = r as usize;
            if ids.is_null(r) {
                return Person::NullId;
            }
            let id = ids.value(r);
            if let Some((previous, person)) = last
                && previous == id
            {
                return person;
            }
            at(ids, rows, i + FAR, &far);
            at(ids, rows, i + NEAR, &near);
            let person = get(id).map_or(Person::Unknown, Person::Found);
            last = Some((id, person));
            person
        })
        .collect()
}

/// How many rows ahead the first read of a lookup is asked for: for
/// [`Lines`], 16 was the fastest of 8, 16 and 32 at 5M persons (a
/// standalone test, 2026-12-06).
const FAR: usize = 16;

/// How many rows ahead a second read (needing the first) is asked for.
const NEAR: usize = 8;

/// Ids in a line, with their persons: as many as fit 64 bytes with the count.
const LINE_IDS: usize = 5;

/// Up to [`LINE_IDS`] ids and their persons, ascending: one cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line {
    ids: [i64; LINE_IDS],
    persons: [u32; LINE_IDS],
    len: u32,
}

// Five ids and persons and the count fill one 64-byte line exactly.
const _: () = assert!(size_of::<Line>() == 64);

impl Line {
    const EMPTY: Line = Line {
        ids: [0; LINE_IDS],
        persons: [0; LINE_IDS],
        len: 0,
    };

    fn full(&self) -> bool {
        self.len as usize == LINE_IDS
    }
}

/// Ids in lines of [`LINE_IDS`], in ascending order from line to line,
/// each id in its home line (its place in the id range, as if ids were
/// spread evenly; 3.5 ids a line on average) or, where that is full, in
/// the first line after it with room. A lookup reads the home line, and the
/// next only where a full line has sent ids on: every line from an id's
/// home to the line holding it is full, so a line with room ends the
/// search.
#[derive(Clone)]
struct Lines {
    lines: Vec<Line>,
    min: i64,
    /// An id's home line: `(id - min) * scale / 2^64`.
    scale: u64,
}

impl Lines {
    /// Lines are given up on for [`Buckets`] where an id would be placed
    /// more than this many lines past its home. Evenly spread ids go at
    /// most 4 or 5 past (5M and 20M hashed pseudonyms), consecutive ones
    /// none.
    const MOST_PAST_HOME: usize = 16;

    /// `ids` sorted and distinct; None where they bunch (see
    /// [`Lines::MOST_PAST_HOME`]). One pass in order, on one core: about
    /// 35 ms at 5M persons.
    fn new(ids: &[i64]) -> Option<Lines> {
        let min = ids.first().copied().unwrap_or(0);
        let span = ids.last().map_or(0, |&max| max.wrapping_sub(min) as u64);
        // 3.5 ids a home line: 2 in 7 lines.
        let homes = (ids.len() * 2).div_ceil(7).max(1);
        // The largest id's home is `span * scale / 2^64 < homes`.
        let scale = ((homes as u128) << 64) / (u128::from(span) + 1);
        let mut lines = Lines {
            lines: vec![Line::EMPTY; homes],
            min,
            scale: u64::try_from(scale).unwrap_or(u64::MAX),
        };
        // The line being filled: lines fill in order, as the ids ascend.
        let mut at = 0;
        for (person, &id) in ids.iter().enumerate() {
            let home = lines.home(id);
            at = at.max(home);
            if lines.lines[at].full() {
                at += 1;
                if at == lines.lines.len() {
                    lines.lines.push(Line::EMPTY);
                }
            }
            if at - home > Lines::MOST_PAST_HOME {
                return None;
            }
            let line = &mut lines.lines[at];
            line.ids[line.len as usize] = id;
            line.persons[line.len as usize] = person as u32;
            line.len += 1;
        }
        Some(lines)
    }

    /// `id`'s home line (any id from `min` up).
    #[inline]
    fn home(&self, id: i64) -> usize {
        ((u128::from(id.wrapping_sub(self.min) as u64) * u128::from(self.scale)) >> 64) as usize
    }

    /// Brings `id`'s home line into the cache.
    #[inline]
    fn fetch(&self, id: i64) {
        if id >= self.min
            && let Some(line) = self.lines.get(self.home(id))
        {
            prefetch(line);
        }
    }

    #[inline]
    fn get(&self, id: i64) -> Option<u32> {
        if id < self.min {
            return None;
        }
        for line in self.lines.get(self.home(id)..)? {
            for (&held, &person) in line.ids.iter().zip(&line.persons).take(line.len as usize) {
                if held >= id {
                    return (held == id).then_some(person);
                }
            }
            if !line.full() {
                return None;
            }
        }
        None
    }
}

/// Integer ids in ascending order, with a table of where each bucket of
/// the id range starts: a lookup goes straight to its id's bucket (its place
/// in the range, as if ids were spread evenly) and searches only that. It
/// is built in sequential passes over parts of the sorted ids, the parts
/// in parallel, and needs 8 bytes per person plus 4 per bucket.
#[derive(Clone)]
struct Buckets {
    ids: Vec<i64>,
    min: i64,
    /// Right shift that turns `id - min` into a bucket number.
    shift: u32,
    /// `starts[b]..starts[b + 1]`: the ids of bucket `b`.
    starts: Vec<u32>,
}

impl Buckets {
    /// `ids` must be sorted and distinct.
    fn new(ids: Vec<i64>) -> Buckets {
        let min = ids.first().copied().unwrap_or(0);
        let span = ids.last().map_or(0, |&max| max.wrapping_sub(min) as u64);
        // About one bucket per id, as a power of two.
        let bucket_bits = (ids.len().max(1) as u64)
            .next_power_of_two()
            .trailing_zeros();
        let span_bits = 64 - span.leading_zeros();
        let shift = span_bits.saturating_sub(bucket_bits);
        let buckets = (span >> shift) as usize + 1;
        // `starts[b]`: the first id in bucket `b` or later. The ids are
        // sorted, so buckets never go down: each part of the buckets finds
        // its first id by binary search and walks on from there, the parts
        // in parallel (one walk was a serial 70 ms at 5M persons).
        let bucket = |id: i64| (id.wrapping_sub(min) as u64 >> shift) as usize;
        const PART: usize = 1 << 16;
        let mut starts = vec![0u32; buckets + 1];
        starts
            .par_chunks_mut(PART)
            .enumerate()
            .for_each(|(part, starts)| {
                let first = part * PART;
                let mut i = ids.partition_point(|&id| bucket(id) < first);
                for (b, start) in (first..).zip(starts) {
                    while i < ids.len() && bucket(ids[i]) < b {
                        i += 1;
                    }
                    *start = i as u32;
                }
            });
        Buckets {
            ids,
            min,
            shift,
            starts,
        }
    }

    #[inline]
    fn bucket(&self, id: i64) -> Option<usize> {
        (id >= self.min).then(|| (id.wrapping_sub(self.min) as u64 >> self.shift) as usize)
    }

    /// Brings the start of `id`'s bucket into the cache.
    #[inline]
    fn fetch_start(&self, id: i64) {
        if let Some(b) = self.bucket(id)
            && let Some(start) = self.starts.get(b)
        {
            prefetch(start);
        }
    }

    /// Brings the first of `id`'s bucket's ids into the cache (reading the
    /// bucket's start, fetched [`FAR`] rows ahead).
    #[inline]
    fn fetch_ids(&self, id: i64) {
        if let Some(b) = self.bucket(id)
            && let Some(&start) = self.starts.get(b)
            && let Some(first) = self.ids.get(start as usize)
        {
            prefetch(first);
        }
    }

    /// The position of `id` among the sorted ids.
    #[inline]
    fn get(&self, id: i64) -> Option<u32> {
        let b = self.bucket(id)?;
        let (&start, &end) = (self.starts.get(b)?, self.starts.get(b + 1)?);
        let bucket = &self.ids[start as usize..end as usize];
        bucket.binary_search(&id).ok().map(|i| start + i as u32)
    }
}

/// What an event row's person id resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Person {
    Found(u32),
    NullId,
    Unknown,
}

/// An event table's person column, ready for lookups.
pub enum PersonColumn {
    Int(Int64Array),
    Str(StringArray),
}

impl PersonColumn {
    /// Row `row`'s id as text; `None` if null.
    pub fn text(&self, row: usize) -> Option<String> {
        match self {
            PersonColumn::Int(ids) => ids.is_valid(row).then(|| ids.value(row).to_string()),
            PersonColumn::Str(ids) => ids.is_valid(row).then(|| ids.value(row).to_string()),
        }
    }
}

impl PersonIndex {
    /// Prepares a batch's person column, checking it has the population's kind
    /// of id.
    pub fn column(&self, array: &ArrayRef, path: &Path, column: &str) -> Result<PersonColumn> {
        let (canonical, ty) = table::canonical(array, path, column)?;
        match (self, ty) {
            (PersonIndex::Int(_), Type::Int) => Ok(PersonColumn::Int(
                canonical.as_primitive::<Int64Type>().clone(),
            )),
            (PersonIndex::Str(_), Type::Str) => {
                Ok(PersonColumn::Str(canonical.as_string::<i32>().clone()))
            }
            _ => Err(Error::data(
                path,
                format!(
                    "person id column `{column}` is {}, but the population's ids are {}",
                    array.data_type(),
                    match self {
                        PersonIndex::Int(_) => "integers",
                        PersonIndex::Str(_) => "text",
                    }
                ),
            )
            .with_help("every table must use the same kind of person id")),
        }
    }

    /// The row of the person whose id is `id` as text.
    pub fn find(&self, id: &str) -> Option<u32> {
        match self {
            PersonIndex::Int(ids) => ids.get(id.trim().parse::<i64>().ok()?),
            PersonIndex::Str(map) => map.get(id).copied(),
        }
    }

    /// Looks up the person of each of `rows`, in order.
    pub fn resolve(&self, column: &PersonColumn, rows: &[u32]) -> Vec<Person> {
        match (self, column) {
            (PersonIndex::Int(index), PersonColumn::Int(ids)) => index.resolve(ids, rows),
            _ => rows
                .iter()
                .map(|&r| self.lookup(column, r as usize))
                .collect(),
        }
    }

    #[inline]
    pub fn lookup(&self, column: &PersonColumn, row: usize) -> Person {
        match (self, column) {
            (PersonIndex::Int(index), PersonColumn::Int(ids)) => {
                if ids.is_null(row) {
                    Person::NullId
                } else {
                    index
                        .get(ids.value(row))
                        .map_or(Person::Unknown, Person::Found)
                }
            }
            (PersonIndex::Str(map), PersonColumn::Str(ids)) => {
                if ids.is_null(row) {
                    Person::NullId
                } else {
                    map.get(ids.value(row))
                        .map_or(Person::Unknown, |&i| Person::Found(i))
                }
            }
            _ => unreachable!("PersonIndex::column checks the kinds match"),
        }
    }
}

/// Row-wise reading of a text column stored plain or as a dictionary
/// (practice and PCN codes are held as dictionaries).
pub enum TextColumn<'a> {
    Plain(&'a StringArray),
    Dictionary(arrow_array::TypedDictionaryArray<'a, arrow_array::types::Int32Type, StringArray>),
}

impl<'a> TextColumn<'a> {
    /// `array` must be utf8, or a dictionary of utf8 with 32-bit keys.
    pub fn new(array: &'a ArrayRef) -> TextColumn<'a> {
        match array.data_type() {
            DataType::Dictionary(_, _) => TextColumn::Dictionary(
                array
                    .as_dictionary::<arrow_array::types::Int32Type>()
                    .downcast_dict::<StringArray>()
                    .expect("population dictionaries hold utf8"),
            ),
            _ => TextColumn::Plain(array.as_string::<i32>()),
        }
    }

    #[inline]
    pub fn get(&self, row: usize) -> Option<&'a str> {
        match self {
            TextColumn::Plain(a) => a.is_valid(row).then(|| a.value(row)),
            TextColumn::Dictionary(d) => d
                .is_valid(row)
                .then(|| arrow_array::ArrayAccessor::value(d, row)),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TextColumn::Plain(a) => a.len(),
            TextColumn::Dictionary(d) => d.len(),
        }
    }

    /// The distinct values that occur: for a dictionary, its values that
    /// some row uses (one pass over the keys, no string per row); for
    /// plain text, gathered in a hash set before they are ordered (putting
    /// every row's text into the ordered set, to keep a few PCN codes,
    /// took 0.3 s at 5M persons).
    pub fn distinct(&self) -> std::collections::BTreeSet<&'a str> {
        match self {
            TextColumn::Plain(a) => a
                .iter()
                .flatten()
                .collect::<foldhash::HashSet<&str>>()
                .into_iter()
                .collect(),
            TextColumn::Dictionary(d) => {
                let values = d.values();
                let mut used = vec![false; values.len()];
                for k in d.keys().iter().flatten() {
                    used[k as usize] = true;
                }
                (0..values.len())
                    .filter(|&v| used[v] && values.is_valid(v))
                    .map(|v| values.value(v))
                    .collect()
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The distinct pairs of this column's and `other`'s values that occur
    /// in one row (rows where either is null left out), gathered by part
    /// in parallel; for two dictionaries, as pairs of keys (no text read
    /// per row). `other` has as many rows.
    pub fn distinct_pairs(
        &self,
        other: &TextColumn<'a>,
    ) -> std::collections::BTreeSet<(&'a str, &'a str)> {
        debug_assert_eq!(self.len(), other.len(), "two columns of one table");
        const PART: usize = 1 << 16;
        let starts: Vec<usize> = (0..self.len()).step_by(PART).collect();
        let rows = |start: usize| start..(start + PART).min(self.len());
        fn union<T: Eq + std::hash::Hash>(
            mut a: foldhash::HashSet<T>,
            b: foldhash::HashSet<T>,
        ) -> foldhash::HashSet<T> {
            a.extend(b);
            a
        }
        if let (TextColumn::Dictionary(a), TextColumn::Dictionary(b)) = (self, other) {
            let keys = starts
                .par_iter()
                .map(|&start| {
                    rows(start)
                        .filter(|&r| a.is_valid(r) && b.is_valid(r))
                        .map(|r| (a.keys().value(r), b.keys().value(r)))
                        .collect::<foldhash::HashSet<(i32, i32)>>()
                })
                .reduce(foldhash::HashSet::default, union);
            let (va, vb) = (a.values(), b.values());
            return keys
                .into_iter()
                .map(|(x, y)| (va.value(x as usize), vb.value(y as usize)))
                .collect();
        }
        starts
            .par_iter()
            .map(|&start| {
                rows(start)
                    .filter_map(|r| Some((self.get(r)?, other.get(r)?)))
                    .collect::<foldhash::HashSet<(&str, &str)>>()
            })
            .reduce(foldhash::HashSet::default, union)
            .into_iter()
            .collect()
    }
}

#[derive(Clone)]
pub struct Population {
    /// One row per person, ascending `person_id`; columns named
    /// `person_id`, `practice_code`, `pcn_code`, `sex`, `birth_date`,
    /// `date_of_death`, then each attribute as [`attribute_column`] names it.
    pub batch: RecordBatch,
    /// Shared, not copied, by each date's plan of a scan for several dates
    /// (about 18 bytes a person); `None` once released
    /// ([`Population::release_index`]).
    index: Option<Arc<PersonIndex>>,
    pub table: Table,
    /// Rows skipped, by reason.
    pub rejected: Vec<(&'static str, u64)>,
    /// The first of those rows, in file order, for `OUT/rejects/`.
    pub rejected_rows: Vec<RejectedRow>,
    /// Values read as unknown (null) for a problem in the data, by
    /// reason: rows, not skipped (the person stays).
    pub read_as_unknown: Vec<(&'static str, u64)>,
}

impl Population {
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.num_rows() == 0
    }

    /// The index from person ids to rows.
    ///
    /// # Panics
    ///
    /// After [`Population::release_index`]: looking a person up then is a
    /// bug in strata, not something a user's input can cause.
    pub fn index(&self) -> &PersonIndex {
        self.index
            .as_deref()
            .expect("the person index is released once the scan is done")
    }

    /// Frees the person index once nothing will look a person up (a run
    /// frees it when the scan is done). A run holds its population to the
    /// end, and the index is about 18 bytes a person (90 MB at 5M persons)
    /// that nothing after the scan reads: the rejected rows the outputs
    /// write carry their person's row ([`RejectedRow::person`]).
    pub fn release_index(&mut self) {
        self.index = None;
    }

    /// A column of [`Population::batch`] by its internal name.
    pub fn column(&self, name: &str) -> &ArrayRef {
        table::column(&self.batch, name)
    }

    /// The type each attribute is read as.
    pub fn attribute_types(
        spec: &syntax::Population,
        table: &Table,
    ) -> Result<Vec<(String, Type)>> {
        spec.attributes
            .iter()
            .map(|(name, column)| {
                let column = column.get_ref();
                let ty = table.column_type(column, &format!("attribute `{name}`"))?;
                let t = table::canonical_type(ty).ok_or_else(|| {
                    Error::data(&table.location, format!(
                        "column `{column}` (attribute `{name}`) has type {ty}, which rules cannot use"
                    ))
                    .with_help("store it as an integer, float, boolean, text or date column")
                })?;
                Ok((name.clone(), t))
            })
            .collect()
    }

    pub fn load(dir: &Path, spec: &syntax::Population) -> Result<Population> {
        let table = Table::open(dir, &spec.table, "the population")?;
        // (internal name, column in the table); attributes are kept under
        // a prefix so no rule-file name can clash with an internal one.
        let attributes: Vec<(String, &str)> = spec
            .attributes
            .iter()
            .map(|(name, column)| (attribute_column(name), column.get_ref().as_str()))
            .collect();
        let mut wanted: Vec<(&str, &str)> = vec![
            ("person_id", &spec.person_id),
            ("practice_code", &spec.practice),
            ("pcn_code", &spec.pcn),
            ("sex", &spec.sex),
            ("birth_date", &spec.birth_date),
            ("date_of_death", &spec.date_of_death),
        ];
        // Opt-out flags: read when the table has the canonical column; a
        // column the rule file names must be there (a misspelt name must
        // not silently apply no opt-outs).
        for (internal, named) in [
            ("type1_opt_out", &spec.type1_opt_out),
            ("national_data_opt_out", &spec.national_data_opt_out),
        ] {
            match named {
                Some(column) => wanted.push((internal, column.as_str())),
                None if table.has_column(internal) => wanted.push((internal, internal)),
                None => {}
            }
        }
        for (name, column) in &attributes {
            wanted.push((name, column));
        }
        for (internal, column) in &wanted {
            let ty = table.column_type(column, internal)?;
            let ok = match *internal {
                "birth_date" | "date_of_death" => table::is_date_type(ty),
                "person_id" => matches!(table::canonical_type(ty), Some(Type::Int | Type::Str)),
                "practice_code" | "pcn_code" | "sex" => {
                    table::canonical_type(ty) == Some(Type::Str)
                }
                _ => table::canonical_type(ty).is_some(),
            };
            if !ok {
                return Err(Error::data(&table.location, format!(
                    "column `{column}` ({internal}) has type {ty}, which the data contract does not allow"
                ))
                .with_help("see docs/data-contract.md for the accepted types"));
            }
        }

        let mut columns: Vec<&str> = wanted.iter().map(|(_, c)| *c).collect();
        columns.sort_unstable();
        columns.dedup();
        // Codes are read as dictionaries (see below).
        let codes: Vec<&str> = [&spec.practice, &spec.pcn, &spec.sex]
            .iter()
            .map(|c| c.as_str())
            .collect();
        let groups = table.row_groups();
        let births_before_1900 = AtomicU64::new(0);
        let per_group = groups
            .par_iter()
            .map(|&g| -> Result<Vec<RecordBatch>> {
                let path = &table.parts[g.part].path;
                let mut out = Vec::new();
                for batch in table.reader(g, &columns, &codes)? {
                    let batch = batch.map_err(|e| table.read_error(g, &columns, &e))?;
                    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(wanted.len());
                    for (internal, column) in &wanted {
                        let raw = table::column(&batch, column);
                        let array = match *internal {
                            "birth_date" => {
                                let (dates, early) =
                                    before_1900_unknown(to_dates(raw, path, column)?);
                                births_before_1900.fetch_add(early, Relaxed);
                                Arc::new(dates) as ArrayRef
                            }
                            "date_of_death" => Arc::new(to_dates(raw, path, column)?) as ArrayRef,
                            // Codes stay dictionary-encoded until the rows
                            // are in order: reordering keys is much cheaper
                            // than reordering strings.
                            _ if is_text_dictionary(raw) => {
                                arrow_cast::cast(raw, &text_dictionary()).map_err(|e| {
                                    Error::data(path, format!("column `{column}`: {e}")).with_help(
                                        "store it as text with at most 2^31 distinct values",
                                    )
                                })?
                            }
                            _ => table::canonical(raw, path, column)?.0,
                        };
                        arrays.push(array);
                    }
                    out.push(arrays_to_batch(&wanted, arrays));
                }
                Ok(out)
            })
            .collect::<Result<Vec<_>>>()?;
        // Where each row group starts among all rows, to say where a
        // rejected row is.
        let starts: Vec<u64> = per_group
            .iter()
            .scan(0u64, |start, batches| {
                let here = *start;
                *start += batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                Some(here)
            })
            .collect();
        let batches: Vec<RecordBatch> = per_group.into_iter().flatten().collect();
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => {
                return Err(
                    Error::data(&table.location, "the population table has no rows").with_help(
                        "check that the extract ran; strata needs at least one registered person",
                    ),
                );
            }
        };
        // Each column joined from the batches, the columns in parallel.
        let columns = (0..schema.fields().len())
            .into_par_iter()
            .map(|c| {
                let pieces: Vec<&dyn Array> =
                    batches.iter().map(|b| b.column(c).as_ref()).collect();
                arrow_select::concat::concat(&pieces)
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .and_then(|columns| RecordBatch::try_new(schema.clone(), columns));
        let all = columns
            .map_err(|e| Error::Internal(format!("concatenating population batches: {e}")))?;
        drop(batches);
        let ids = all.column(0).clone();

        // Stable sort by id so that among duplicates the first in file order
        // comes first and is the one kept.
        let valid = |r: &u32| ids.is_valid(*r as usize);
        let null_ids = ids.null_count() as u64;
        let (kept, index) = match ids.data_type() {
            DataType::Int64 => {
                let ids = ids.as_primitive::<Int64Type>();
                // (id, row) pairs sort without chasing each row's id, and
                // the row breaks ties as a stable sort would.
                let pair = |r: u32| (ids.value(r as usize), r);
                let rows = 0..all.num_rows() as u32;
                // Without nulls, collected straight into place: a filter
                // collects in pieces, then copies them together (90 ms of
                // the load at 5M persons).
                let mut keyed: Vec<(i64, u32)> = if null_ids == 0 {
                    rows.into_par_iter().map(pair).collect()
                } else {
                    rows.into_par_iter().filter(valid).map(pair).collect()
                };
                keyed.par_sort_unstable();
                keyed.dedup_by_key(|(id, _)| *id);
                let (sorted, order) = keyed.into_par_iter().unzip();
                (order, PersonIndex::Int(SortedIds::new(sorted)))
            }
            _ => {
                let mut order: Vec<u32> = (0..all.num_rows() as u32)
                    .into_par_iter()
                    .filter(valid)
                    .collect();
                let ids = ids.as_string::<i32>();
                order.par_sort_by(|&a, &b| ids.value(a as usize).cmp(ids.value(b as usize)));
                order.dedup_by(|a, b| ids.value(*a as usize) == ids.value(*b as usize));
                let mut map = FastMap::with_capacity_and_hasher(order.len(), FixedState::default());
                for (i, &r) in order.iter().enumerate() {
                    map.insert(ids.value(r as usize).into(), i as u32);
                }
                (order, PersonIndex::Str(map))
            }
        };
        let rows = Rows {
            table: &table,
            groups: &groups,
            starts: &starts,
        };
        check_opt_outs(&all, &wanted, &rows)?;
        // Before the rows are put in order: text is still dictionaries
        // where the file stores it so, each value looked at once.
        for (i, (internal, column)) in wanted.iter().enumerate() {
            match *internal {
                "pcn_code" => check_pcn_codes(all.column(i), &rows)?,
                "sex" => check_sex(all.column(i), column, &rows)?,
                _ => {}
            }
        }
        let duplicates = all.num_rows() as u64 - null_ids - kept.len() as u64;
        let rejected_rows = if duplicates + null_ids > 0 {
            rejected_rows(&ids, &kept, &groups, &starts, &index)
        } else {
            Vec::new()
        };
        // Each column put in id order, the columns in parallel (one after
        // another, reordering was a tenth of the load at 5M persons). Text
        // read as dictionaries becomes plain text, as expressions expect,
        // now that it is in order; practice and PCN codes stay dictionaries
        // (see [`TextColumn`]), as registrations also give them, and
        // `patients.parquet` holds them as plain text.
        // A table already in id order, without nulls or duplicates (an
        // extract sorted by person), is kept as it is.
        let in_order = kept.len() == all.num_rows()
            && kept.par_iter().enumerate().all(|(i, &r)| i == r as usize);
        let take = (!in_order).then(|| UInt32Array::from(kept));
        let columns = all
            .columns()
            .par_iter()
            .zip(all.schema().fields().par_iter())
            .map(|(c, field)| {
                let ordered = match &take {
                    Some(take) => arrow_select::take::take(c.as_ref(), take, None)
                        .map_err(|e| Error::Internal(format!("ordering the population: {e}")))?,
                    None => c.clone(),
                };
                let code = matches!(field.name().as_str(), "practice_code" | "pcn_code");
                if is_text_dictionary(&ordered) && !code {
                    arrow_cast::cast(&ordered, &DataType::Utf8)
                        .map_err(|e| Error::Internal(format!("decoding population text: {e}")))
                } else {
                    Ok(ordered)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let columns = match &take {
            Some(kept) if duplicates > 0 => {
                opt_outs_of_copies(&all, &wanted, columns, kept, &index, &table.location)?
            }
            _ => columns,
        };
        let batch = arrays_to_batch(&wanted, columns);
        if duplicates > 0 || null_ids > 0 {
            tracing::warn!(
                table = %table.location.display(),
                duplicates,
                null_ids,
                "population rows skipped (see manifest.json)"
            );
        }
        let births_before_1900 = births_before_1900.into_inner();
        if births_before_1900 > 0 {
            // Rows as read, before duplicated ids are dropped (as
            // `read_as_unknown` in manifest.json counts them).
            let whose = if births_before_1900 == 1 {
                "row's birth date is"
            } else {
                "rows' birth dates are"
            };
            tracing::warn!(
                table = %table.location.display(),
                column = %spec.birth_date,
                "{births_before_1900} {whose} before 1900-01-01 (a placeholder, a typo or a corrupt value): read as unknown, so they have no age and no cohort that tests age takes them; set placeholder birth dates to null in the extract"
            );
        }
        Ok(Population {
            batch,
            index: Some(Arc::new(index)),
            table,
            rejected: vec![
                ("null_person_id", null_ids),
                ("duplicate_person_id", duplicates),
            ],
            rejected_rows,
            read_as_unknown: vec![("birth_date_before_1900", births_before_1900)],
        })
    }
}

/// Birth dates before 1900-01-01 made unknown (null), and how many there
/// were: no one alive was born then, and an age of 225 from a placeholder
/// would put a person in every cohort of the old.
fn before_1900_unknown(dates: Date32Array) -> (Date32Array, u64) {
    let early = dates
        .iter()
        .filter(|d| d.is_some_and(|d| d < FIRST_PLAUSIBLE_DAY))
        .count() as u64;
    if early == 0 {
        return (dates, 0);
    }
    let kept = dates
        .iter()
        .map(|d| d.filter(|&d| d >= FIRST_PLAUSIBLE_DAY))
        .collect();
    (kept, early)
}

/// The first [`REJECTS_KEPT`] rows of the population not kept (null ids,
/// and every copy of a duplicated id but the first), in file order.
fn rejected_rows(
    ids: &ArrayRef,
    kept: &[u32],
    groups: &[table::RowGroup],
    starts: &[u64],
    index: &PersonIndex,
) -> Vec<RejectedRow> {
    let mut is_kept = vec![false; ids.len()];
    for &r in kept {
        is_kept[r as usize] = true;
    }
    let text = |r: usize| match ids.data_type() {
        DataType::Int64 => ids.as_primitive::<Int64Type>().value(r).to_string(),
        _ => ids.as_string::<i32>().value(r).to_string(),
    };
    (0..ids.len())
        .filter(|&r| !is_kept[r])
        .take(REJECTS_KEPT)
        .map(|r| {
            // The row group holding row r: the last that starts at or before it.
            let g = starts.partition_point(|&s| s <= r as u64) - 1;
            let id = ids.is_valid(r).then(|| text(r));
            RejectedRow {
                part: groups[g].part,
                row_group: groups[g].index,
                row: r as u64 - starts[g],
                reason: if id.is_some() {
                    "duplicate_person_id"
                } else {
                    "null_person_id"
                },
                // A duplicate's id is the copy kept.
                person: id.as_deref().and_then(|id| index.find(id)),
                person_id: id,
                date: None,
            }
        })
        .collect()
}

/// A PCN code that can name a folder (each PCN's lists, a diff's changes)
/// and means the same on every file system: letters, digits, `_` and `-`,
/// starting with a letter or digit; no path, no `..`.
pub fn is_plain_code(code: &str) -> bool {
    let mut chars = code.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// Where the rows of the population table, joined in file order, come
/// from: for naming a row in an error.
struct Rows<'a> {
    table: &'a Table,
    groups: &'a [table::RowGroup],
    /// Where each row group starts among all rows.
    starts: &'a [u64],
}

impl Rows<'_> {
    /// Row `r`'s file, and its row there (counted from 1).
    fn at(&self, r: usize) -> (&Path, u64) {
        // The row group holding row r, and where its file starts.
        let g = self.starts.partition_point(|&s| s <= r as u64) - 1;
        let part = self.groups[g].part;
        let first = self
            .groups
            .iter()
            .position(|h| h.part == part)
            .expect("its own");
        (
            &self.table.parts[part].path,
            r as u64 - self.starts[first] + 1,
        )
    }
}

/// Rows a value must be on to be named in an error. A value on fewer may
/// be one person's: another column's (an id, a date) in the wrong place.
const NAMED_FROM_ROWS: u64 = 8;

/// The rows holding each text value of `column`.
fn value_counts(column: &ArrayRef) -> std::collections::BTreeMap<&str, u64> {
    let mut counts = std::collections::BTreeMap::new();
    match TextColumn::new(column) {
        TextColumn::Dictionary(d) => {
            let mut by_key = vec![0u64; d.values().len()];
            for k in d.keys().iter().flatten() {
                by_key[k as usize] += 1;
            }
            for (k, n) in by_key.into_iter().enumerate() {
                if n > 0 && d.values().is_valid(k) {
                    *counts.entry(d.values().value(k)).or_insert(0) += n;
                }
            }
        }
        TextColumn::Plain(a) => {
            let mut hashed: foldhash::HashMap<&str, u64> = Default::default();
            for v in a.iter().flatten() {
                *hashed.entry(v).or_insert(0) += 1;
            }
            counts.extend(hashed);
        }
    }
    counts
}

/// The error for the values of `column` that `bad` says are bad (none:
/// `None`): those on [`NAMED_FROM_ROWS`] rows or more by their text, the
/// others by the first row holding one, in its file.
fn bad_values(
    column: &ArrayRef,
    counts: &std::collections::BTreeMap<&str, u64>,
    bad: impl Fn(&str) -> bool,
    rows: &Rows,
    what: &str,
) -> Option<Error> {
    let (named, hidden): (Vec<_>, Vec<_>) = counts
        .iter()
        .map(|(&v, &n)| (v, n))
        .filter(|(v, _)| bad(v))
        .partition(|(_, n)| *n >= NAMED_FROM_ROWS);
    if named.is_empty() && hidden.is_empty() {
        return None;
    }
    let mut told: Vec<String> = named.iter().map(|(v, _)| format!("`{v}`")).collect();
    let mut file = rows.table.location.as_path();
    if !hidden.is_empty() {
        let text = TextColumn::new(column);
        let first = (0..column.len())
            .find(|&r| {
                text.get(r)
                    .is_some_and(|v| hidden.iter().any(|(h, _)| *h == v))
            })
            .expect("a counted value is on a row");
        let (path, row) = rows.at(first);
        file = path;
        told.push(format!(
            "{} on fewer than {NAMED_FROM_ROWS} rows each, the first on row {row} (not shown: it may be one person's)",
            match hidden.len() {
                1 => "a value".to_string(),
                n => format!("{n} values"),
            }
        ));
    }
    Some(Error::data(file, format!("{what}: {}", told.join(", "))))
}

/// Refuses PCN codes that cannot name a PCN's folder of lists, or that
/// differ only in case (on Windows, macOS and most shares `U1` and `u1`
/// are one folder, which would hold two PCNs' lists): read with the
/// population, so a run stops before its scan, and `strata check --data`
/// says so, rather than after hours.
fn check_pcn_codes(column: &ArrayRef, rows: &Rows) -> Result<()> {
    let counts = value_counts(column);
    let not_plain = |c: &str| !c.is_empty() && !is_plain_code(c);
    if let Some(e) = bad_values(
        column,
        &counts,
        not_plain,
        rows,
        "pcn_code values that cannot be used as a folder name",
    ) {
        return Err(e.with_help(
            "PCN codes must be letters, digits, `_` or `-`, starting with a letter or digit (ODS codes are)",
        ));
    }
    // Case-insensitive order puts codes that differ only in case side by side.
    let mut pcns: Vec<&str> = counts.keys().copied().filter(|c| !c.is_empty()).collect();
    pcns.sort_by_cached_key(|c| c.to_ascii_uppercase());
    if let Some(pair) = pcns.windows(2).find(|p| p[0].eq_ignore_ascii_case(p[1])) {
        let both = pair.iter().all(|c| counts[c] >= NAMED_FROM_ROWS);
        let mut e = match both {
            true => Error::data(
                &rows.table.location,
                format!(
                    "pcn_codes `{}` and `{}` differ only in case, so their folders could mix",
                    pair[0], pair[1]
                ),
            ),
            false => {
                let bad = *pair
                    .iter()
                    .find(|c| counts[*c] < NAMED_FROM_ROWS)
                    .expect("one is rare");
                bad_values(
                    column,
                    &counts,
                    |c| c == bad,
                    rows,
                    "two pcn_codes differ only in case, so their folders could mix",
                )
                .expect("it is on a row")
            }
        };
        e = e.with_help("make PCN codes consistent in case (ODS codes are upper case)");
        return Err(e);
    }
    Ok(())
}

/// The values the data contract gives `sex`; null or empty is unknown too.
pub const SEXES: [&str; 3] = ["F", "M", "U"];

/// Refuses a sex column with values other than `F`, `M` and `U`: the rules
/// compare with those (`sex = 'F'`), so `female` or `2` would silently
/// read as neither. A value is named only where many rows hold it (see
/// [`NAMED_FROM_ROWS`]).
fn check_sex(column: &ArrayRef, name: &str, rows: &Rows) -> Result<()> {
    let counts = value_counts(column);
    let other = |v: &str| !v.is_empty() && !SEXES.contains(&v);
    let what = format!("the sex column `{name}` holds values other than F, M and U");
    match bad_values(column, &counts, other, rows, &what) {
        Some(e) => Err(e.with_help("map them to F, M or U (U for unknown; NHS sex codes 1, 2 and 9 are M, F and U), or leave unknown ones empty")),
        None => Ok(()),
    }
}

/// A flag column as true/false: booleans as they are, whole numbers 1 and 0,
/// and text `Y`/`N`, `yes`/`no`, `true`/`false`, `1`/`0` (any case); a null
/// or empty value is no opt-out. Anything else is refused with the column
/// named, since guessing could list someone who objected. The population's
/// load refuses it first, naming the row ([`check_opt_outs`]); the value
/// itself is never told (a person id or a date may be in the wrong column).
pub fn opt_out_flags(array: &ArrayRef, location: &Path, role: &str) -> Result<BooleanArray> {
    flags(array, role).map_err(|problem| match problem {
        FlagProblem::Row(_) => Error::data(
            location,
            format!("the {role} column holds a value that is neither yes nor no"),
        )
        .with_help(FLAG_HELP),
        problem => problem.error(location),
    })
}

const FLAG_HELP: &str = "write true/false, 1/0 or Y/N (a null or empty value means no opt-out)";

/// Why a column is not a flag.
enum FlagProblem {
    /// A value (this row's, the first) is neither yes nor no.
    Row(usize),
    /// The column's type cannot be one: what to say.
    Type(String),
    /// Reading it failed.
    Internal(String),
}

impl FlagProblem {
    /// The error for a column's type or a failed read; a row is told by
    /// the caller, which knows where it is.
    fn error(self, location: &Path) -> Error {
        match self {
            FlagProblem::Row(_) => Error::Internal("a flag's row told as its type".into()),
            FlagProblem::Type(message) => {
                Error::data(location, message).with_help("store it as a boolean, 1/0 or Y/N")
            }
            FlagProblem::Internal(message) => Error::Internal(message),
        }
    }
}

fn flags(array: &ArrayRef, role: &str) -> std::result::Result<BooleanArray, FlagProblem> {
    let array = match array.data_type() {
        DataType::Dictionary(..) => arrow_cast::cast(array, &DataType::Utf8)
            .map_err(|e| FlagProblem::Internal(format!("reading the {role} column: {e}")))?,
        _ => array.clone(),
    };
    let each = |flag: Option<bool>, row: usize| flag.ok_or(FlagProblem::Row(row));
    match array.data_type() {
        // A null is false: the values' bits where valid, a word at a time.
        DataType::Boolean => {
            let flags = array.as_boolean();
            let bits = match flags.nulls() {
                Some(valid) => flags.values() & valid.inner(),
                None => flags.values().clone(),
            };
            Ok(BooleanArray::new(bits, None))
        }
        DataType::Int64 => array
            .as_primitive::<arrow_array::types::Int64Type>()
            .iter()
            .enumerate()
            .map(|(row, v)| {
                let flag = match v {
                    None | Some(0) => Some(false),
                    Some(1) => Some(true),
                    Some(_) => None,
                };
                each(flag, row).map(Some)
            })
            .collect(),
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .enumerate()
            .map(|(row, v)| {
                let text = crate::rules::codelist::trim_code(v.unwrap_or(""));
                let is = |words: &[&str]| words.iter().any(|w| text.eq_ignore_ascii_case(w));
                let flag = if is(&["", "n", "no", "false", "0"]) {
                    Some(false)
                } else if is(&["y", "yes", "true", "1"]) {
                    Some(true)
                } else {
                    None
                };
                each(flag, row).map(Some)
            })
            .collect(),
        other => Err(FlagProblem::Type(format!(
            "the {role} column has type {other}, which is neither yes nor no"
        ))),
    }
}

/// Refuses an opt-out column that is not yes or no on every row, naming
/// the file, the column and the row (within its file, counted from 1), as
/// read before the rows are put in id order.
fn check_opt_outs(all: &RecordBatch, wanted: &[(&str, &str)], rows: &Rows) -> Result<()> {
    for (i, (internal, column)) in wanted.iter().enumerate() {
        let Some((_, role)) = OPT_OUTS.iter().find(|(name, _)| name == internal) else {
            continue;
        };
        match flags(all.column(i), role) {
            Ok(_) => {}
            Err(FlagProblem::Row(r)) => {
                let (path, row) = rows.at(r);
                return Err(Error::data(
                    path,
                    format!(
                        "the {role} column `{column}` holds a value on row {row} that is neither yes nor no (the value is not shown: it may be another column's, such as a person id)"
                    ),
                )
                .with_help(FLAG_HELP));
            }
            Err(problem) => return Err(problem.error(&rows.table.location)),
        }
    }
    Ok(())
}

/// `columns` (the population's, in id order, one row kept of each id:
/// `kept`, rows of `all`) with each opt-out flag set where any row of the
/// person's sets it, not only the row kept: an opt-out recorded on a later
/// copy of a person's row must not be lost with the copy. The flags become
/// true/false (a null is no opt-out), as they are read after.
fn opt_outs_of_copies(
    all: &RecordBatch,
    wanted: &[(&str, &str)],
    mut columns: Vec<ArrayRef>,
    kept: &UInt32Array,
    index: &PersonIndex,
    location: &Path,
) -> Result<Vec<ArrayRef>> {
    let ids = all.column(0);
    let mut is_kept = vec![false; all.num_rows()];
    for &r in kept.values() {
        is_kept[r as usize] = true;
    }
    let id_text = |r: usize| match ids.data_type() {
        DataType::Int64 => ids.as_primitive::<Int64Type>().value(r).to_string(),
        _ => ids.as_string::<i32>().value(r).to_string(),
    };
    for (i, (internal, _)) in wanted.iter().enumerate() {
        let Some((_, role)) = OPT_OUTS.iter().find(|(name, _)| name == internal) else {
            continue;
        };
        let every = opt_out_flags(all.column(i), location, role)?;
        let mut flags: Vec<bool> = kept
            .values()
            .iter()
            .map(|&r| every.value(r as usize))
            .collect();
        for r in (0..all.num_rows()).filter(|&r| !is_kept[r] && ids.is_valid(r) && every.value(r)) {
            if let Some(person) = index.find(&id_text(r)) {
                flags[person as usize] = true;
            }
        }
        columns[i] = Arc::new(BooleanArray::from(flags));
    }
    Ok(columns)
}

/// The opt-out flag columns (as named inside strata) and what each is
/// called in messages.
pub const OPT_OUTS: [(&str, &str); 2] = [
    ("type1_opt_out", "type 1 opt-out"),
    ("national_data_opt_out", "National Data Opt-out"),
];

/// `Dictionary(Int32, Utf8)`: how text codes are held while loading.
fn text_dictionary() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn is_text_dictionary(array: &ArrayRef) -> bool {
    matches!(array.data_type(), DataType::Dictionary(_, v)
        if matches!(v.as_ref(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View))
}

fn arrays_to_batch(wanted: &[(&str, &str)], arrays: Vec<ArrayRef>) -> RecordBatch {
    let fields: Vec<Field> = wanted
        .iter()
        .zip(&arrays)
        .map(|((name, _), a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .expect("arrays built to match their fields")
}

/// The name an attribute's column has in [`Population::batch`].
pub fn attribute_column(name: &str) -> String {
    format!("attribute:{name}")
}

#[cfg(test)]
mod tests {
    use super::{Buckets, LINE_IDS, Line, Lines, SortedIds};
    use arrow_array::Array;

    /// Every id found at its place and every absent one not, by each
    /// layout that takes `ids` and by the one [`SortedIds`] chooses;
    /// whether that is [`Lines`].
    fn check(ids: Vec<i64>, absent: &[i64]) -> bool {
        let buckets = Buckets::new(ids.clone());
        // The bucket starts as one sequential pass finds them: each
        // bucket's first id, pushed as the ids are walked.
        let mut starts: Vec<u32> = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let b = buckets.bucket(id).expect("no id below the first");
            while starts.len() <= b {
                starts.push(i as u32);
            }
        }
        starts.resize(starts.len().max(buckets.starts.len()), ids.len() as u32);
        assert_eq!(buckets.starts, starts);
        let lines = Lines::new(&ids);
        let chosen = SortedIds::new(ids.clone());
        type Lookup<'a> = Box<dyn Fn(i64) -> Option<u32> + 'a>;
        let mut each: Vec<(&str, Lookup)> = vec![
            ("buckets", Box::new(|id| buckets.get(id))),
            ("chosen", Box::new(|id| chosen.get(id))),
        ];
        if let Some(lines) = &lines {
            each.push(("lines", Box::new(|id| lines.get(id))));
        }
        for (name, get) in each {
            for (i, &id) in ids.iter().enumerate() {
                assert_eq!(get(id), Some(i as u32), "{name}: {id}");
            }
            for &id in absent {
                assert_eq!(get(id), None, "{name}: {id}");
            }
        }
        assert_eq!(
            chosen.in_lines(),
            lines.is_some(),
            "lines are chosen where they take the ids"
        );
        lines.is_some()
    }

    #[test]
    fn sorted_ids_find_every_id_whatever_their_spread() {
        // Consecutive, as in fixtures.
        assert!(check(
            (1..=1000).collect(),
            &[0, 1001, -5, i64::MIN, i64::MAX]
        ));
        // Spread over the whole range, as hashed pseudonyms are.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut spread: Vec<i64> = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as i64
            })
            .collect();
        spread.sort_unstable();
        spread.dedup();
        assert!(check(spread, &[3, -3]));
        // Enough ids that their buckets' starts are found in several parts,
        // and lines fill and send ids on to the next.
        let mut many: Vec<i64> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 1) as i64 - (1 << 40)
            })
            .collect();
        many.sort_unstable();
        many.dedup();
        let gaps: Vec<i64> = many
            .windows(2)
            .filter(|w| w[1] - w[0] > 1)
            .map(|w| w[0] + 1)
            .take(1000)
            .collect();
        assert!(check(many, &gaps));
        // Clustered: most ids in one bucket, and the extremes of i64.
        let mut clustered: Vec<i64> = (0..500).map(|i| 1_000_000 + i).collect();
        clustered.extend([i64::MIN, -1, i64::MAX]);
        clustered.sort_unstable();
        assert!(!check(clustered, &[0, 999_999, 1_000_500, i64::MAX - 1]));
        assert!(check(vec![], &[0, 1]));
        assert!(check(vec![42], &[41, 43]));
        assert!(check(
            vec![i64::MIN, i64::MAX],
            &[0, i64::MIN + 1, i64::MAX - 1]
        ));
    }

    /// Ids bunched at the start of the range, so that the bunch's last is
    /// placed `past` lines after its home (the first line), followed by
    /// ids spread far enough on to have homes past the bunch's lines.
    fn bunched(past: usize) -> Vec<i64> {
        let bunch = (past * LINE_IDS + 1) as i64;
        (0..bunch)
            .chain((400..1400).map(|k| k * 1_000_000_000_000))
            .collect()
    }

    #[test]
    fn ids_bunched_at_the_top_go_on_past_the_last_home_line() {
        // Spread ids, then a run at the very top: the run's home is the
        // last line, and it fills lines added after it.
        let mut ids: Vec<i64> = (0..1000).map(|k| k * 1_000_000).collect();
        ids.extend((1..=40).map(|k| 999_000_000 + k));
        let homes = (ids.len() * 2).div_ceil(7);
        let lines = Lines::new(&ids).expect("the run lands at most 8 lines past home");
        assert!(lines.lines.len() > homes, "{} lines", lines.lines.len());
        assert!(check(ids, &[999_000_000 + 41, 999_000_001 - 2, i64::MAX]));
    }

    #[test]
    fn lines_take_ids_placed_up_to_their_limit_past_home_and_no_further() {
        let most = Lines::MOST_PAST_HOME;
        let absent = [-1, 1000, 400_000_000_000_001];
        assert!(check(bunched(most), &absent));
        assert!(!check(bunched(most + 1), &absent));
        // In a full line's run, an id between two held ones is absent.
        let lines = Lines::new(&bunched(3)).unwrap();
        assert!(lines.lines[..3].iter().all(Line::full));
        assert_eq!(lines.get(7), Some(7));
        assert_eq!(lines.get(16), None);
        assert_eq!(lines.get(400_000_000_000_000), Some(16));
    }

    #[test]
    fn distinct_pairs_are_the_same_from_plain_text_and_dictionaries() {
        use arrow_array::{ArrayRef, DictionaryArray, StringArray, types::Int32Type};
        use std::sync::Arc;
        // Enough rows for several parts; nulls on either side are left out.
        let rows = 200_000;
        let a: Vec<Option<String>> = (0..rows)
            .map(|i| (i % 11 != 0).then(|| format!("P{}", i % 7)))
            .collect();
        let b: Vec<Option<String>> = (0..rows)
            .map(|i| (i % 13 != 0).then(|| format!("N{}", (i % 7) / 3 + (i % 5 == 0) as usize)))
            .collect();
        let plain = |v: &[Option<String>]| -> ArrayRef { Arc::new(StringArray::from(v.to_vec())) };
        let dictionary = |v: &[Option<String>]| -> ArrayRef {
            Arc::new(
                v.iter()
                    .map(|s| s.as_deref())
                    .collect::<DictionaryArray<Int32Type>>(),
            )
        };
        let expected: std::collections::BTreeSet<(&str, &str)> = a
            .iter()
            .zip(&b)
            .filter_map(|(x, y)| Some((x.as_deref()?, y.as_deref()?)))
            .collect();
        assert!(expected.len() > 7, "{expected:?}");
        let (pa, pb, da, db) = (plain(&a), plain(&b), dictionary(&a), dictionary(&b));
        for (x, y) in [(&pa, &pb), (&da, &db), (&pa, &db), (&da, &pb)] {
            let pairs = super::TextColumn::new(x).distinct_pairs(&super::TextColumn::new(y));
            assert_eq!(pairs, expected);
        }
    }

    #[test]
    fn resolving_rows_answers_as_one_lookup_each() {
        // Runs of one id (as in extracts grouped by person), a null between
        // two rows of one id, unknown ids repeated, and rows taken out of
        // order and twice; then the same rows many times over, so that
        // ids are fetched ahead past the first rows; in both layouts.
        for index in [
            SortedIds::new(vec![3, 5, 8, 13]),
            SortedIds::in_buckets(vec![3, 5, 8, 13]),
        ] {
            let ids = arrow_array::Int64Array::from(vec![
                Some(5),
                Some(5),
                None,
                Some(5),
                Some(7),
                Some(7),
                Some(13),
                Some(3),
                None,
                Some(3),
            ]);
            let rows: Vec<u32> = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 6, 6, 0, 4];
            let many: Vec<u32> = rows.iter().cycle().take(50 * rows.len()).copied().collect();
            for rows in [rows, many] {
                let expected: Vec<super::Person> = rows
                    .iter()
                    .map(|&r| match ids.is_null(r as usize) {
                        true => super::Person::NullId,
                        false => index
                            .get(ids.value(r as usize))
                            .map_or(super::Person::Unknown, super::Person::Found),
                    })
                    .collect();
                assert_eq!(index.resolve(&ids, &rows), expected);
                assert_eq!(expected[3], super::Person::Found(1));
                assert_eq!(expected[4], super::Person::Unknown);
            }
        }
    }
}
