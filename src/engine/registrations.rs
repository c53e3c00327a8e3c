//! Registrations: the population on the as-of date is the people registered
//! with a practice then, and each belongs to the PCN of that practice.
//!
//! A run as of a past date (a back-test above all) must count the people
//! who were registered on that date: not those who joined a practice
//! later, nor those who had left; and a person who moved belongs, on each
//! date, to the practice (and PCN) they were with then. The optional
//! `registrations` table (one row per registration: `person_id`,
//! `practice_code`, `start_date`, `end_date`, null while registered, as
//! ehrQL's `practice_registrations`) says so. A person is registered on the
//! as-of date when a registration started on or before it and had not
//! ended before it; of several, the latest started counts (then the first
//! practice code). The PCN of a practice is the one the population table
//! gives it. Without the table, everyone in the population table is taken
//! as registered throughout, at the practice it gives, and the run says so.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayRef, BooleanArray, DictionaryArray, Int32Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use rayon::prelude::*;

use crate::dates::Day;
use crate::error::{Error, Result};
use crate::input::population::{Person, Population, TextColumn};
use crate::input::table::{self, RowGroup, Table};
use crate::rules::check::Type;

use crate::input::REGISTRATIONS as TABLE;

/// Applies the registrations of `data` (if it has the table) on `as_of`:
/// each person's practice and PCN become those of their registration then
/// (null when not registered), and the result says who was registered.
/// `None` without the table.
pub fn apply(population: &mut Population, data: &Path, as_of: Day) -> Result<Option<Applied>> {
    match Registrations::read(data, population)? {
        Some((r, table)) => Ok(Some(Applied {
            registered: r.apply(population, as_of)?,
            rejected: r.rejected,
            table,
        })),
        None => Ok(None),
    }
}

/// Who was registered on the as-of date, the rows of the table no date
/// could use, by why (for `manifest.json`'s rejected counts), and the table.
pub struct Applied {
    pub registered: BooleanArray,
    pub rejected: Vec<(&'static str, u64)>,
    pub table: Table,
}

/// The registrations table, read once (several as-of dates apply it to
/// their own copy of the population): every usable row, by population row,
/// with practice codes numbered.
pub struct Registrations {
    /// (population row, start, end or None while registered, practice),
    /// by row group of the table as read (kept apart: joining them cost a
    /// copy of every row on one core).
    rows: Vec<Vec<Row>>,
    /// Practice codes by number, in code order (so a smaller number is a
    /// smaller code): the values of every date's practice column, a
    /// dictionary whose keys are the numbers.
    practices: ArrayRef,
    /// The PCN codes the practices have, in code order: the values of
    /// every date's PCN column, a dictionary.
    pcns: ArrayRef,
    /// The PCN of each practice (by number), as the population table gives
    /// it: its place in `pcns`.
    pcn_of: Vec<Option<i32>>,
    /// Rows no date can use, by why: a person not in the population (one
    /// who has left it), and rows with no practice, no start or an end
    /// before their start.
    pub rejected: Vec<(&'static str, u64)>,
}

/// One usable registration: (population row, start, end or None while
/// registered, practice number).
type Row = (u32, Day, Option<Day>, u32);

impl Registrations {
    /// Reads `data`'s registrations for the people of `population`, and
    /// the table read (for the manifest's inputs); `None` without it.
    pub fn read(data: &Path, population: &Population) -> Result<Option<(Registrations, Table)>> {
        let Some(table) = Table::find(data, TABLE)? else {
            return Ok(None);
        };
        let mut groups = read_rows(&table, population)?;
        if groups.iter().all(|g| g.rows.is_empty()) {
            return Err(unusable(&table, population, &groups));
        }
        // Not every row need be usable (a person who has left the
        // population is not in it), but rows that no date can use for a
        // fault of their own are said, not passed over.
        let [unknown, no_practice, no_start, backwards] = dropped(&groups);
        if no_practice + no_start + backwards > 0 {
            tracing::warn!(
                table = %table.location.display(),
                no_practice_code = no_practice,
                no_start_date = no_start,
                end_before_start = backwards,
                "registrations skipped: no one is registered by them on any date"
            );
        }
        // Numbered in code order; each row group's own numbers are then
        // mapped to these.
        let mut practices: Vec<String> = groups.iter().flat_map(|g| g.codes.clone()).collect();
        practices.sort_unstable();
        practices.dedup();
        let number: HashMap<&str, u32> = practices
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i as u32))
            .collect();
        groups.par_iter_mut().for_each(|group| {
            let renumber: Vec<u32> = group.codes.iter().map(|c| number[c.as_str()]).collect();
            for row in &mut group.rows {
                row.3 = renumber[row.3 as usize];
            }
        });
        let pcn_of = pcn_of_practices(population, &practices, &number)?;
        let (pcns, pcn_of) = numbered(&pcn_of);
        Ok(Some((
            Registrations {
                rows: groups.into_iter().map(|g| g.rows).collect(),
                practices: Arc::new(StringArray::from_iter_values(&practices)),
                pcns,
                pcn_of,
                rejected: vec![
                    ("unknown_person", unknown),
                    ("null_practice_code", no_practice),
                    ("null_start_date", no_start),
                    ("end_before_start", backwards),
                ],
            },
            table,
        )))
    }

    /// Sets each person's practice and PCN in `population` to those of
    /// their registration on `as_of` (null when not registered then) and
    /// says who was registered.
    pub fn apply(&self, population: &mut Population, as_of: Day) -> Result<BooleanArray> {
        let practice = self.on_date(population.len(), as_of);
        let registered = BooleanArray::new(
            match practice.nulls() {
                Some(nulls) => nulls.inner().clone(),
                None => arrow_buffer::BooleanBuffer::new_set(practice.len()),
            },
            None,
        );
        let pcn = keyed(&practice, |p| self.pcn_of[p as usize], &self.pcns)?;
        let practice = dictionary(practice, &self.practices)?;
        population.batch = replaced(
            &population.batch,
            &[("practice_code", practice), ("pcn_code", pcn)],
        )?;
        Ok(registered)
    }

    /// Each person's practice (by number) on `as_of`, by population row;
    /// null when not registered then. Of several registrations the
    /// latest started counts, then the smallest practice code.
    ///
    /// The rows are taken in parallel, each person's best so far one
    /// 64-bit word (start, then the practice number reversed) that a
    /// later start or a smaller code raises: the largest word wins
    /// whatever the order the rows are met in, as the rule above says.
    /// The numbers come out as the keys of the date's practice column,
    /// with no copy between (a date's columns are new memory, and this
    /// runs once a date).
    fn on_date(&self, persons: usize, as_of: Day) -> Int32Array {
        use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
        // 0 is no registration: a practice number indexes `practices`, so
        // it is below u32::MAX and every word made here is larger.
        let word = |from: Day, code: u32| -> u64 {
            let from = (from as u32) ^ (1 << 31); // i32 order as u32 order
            (u64::from(from) << 32) | u64::from(u32::MAX - code)
        };
        let best: Vec<AtomicU64> = (0..persons)
            .into_par_iter()
            .with_min_len(1 << 16)
            .map(|_| AtomicU64::new(0))
            .collect();
        self.rows
            .par_iter()
            .flat_map(|group| group.par_chunks(1 << 16))
            .for_each(|rows| {
                for &(p, from, to, code) in rows {
                    if from > as_of || to.is_some_and(|to| to < as_of) {
                        continue;
                    }
                    best[p as usize].fetch_max(word(from, code), Relaxed);
                }
            });
        let best: Vec<u64> = best.into_iter().map(AtomicU64::into_inner).collect();
        let registered = arrow_buffer::BooleanBuffer::collect_bool(best.len(), |p| best[p] != 0);
        // A practice number is below i32::MAX: `practices` holds them.
        let numbers: Vec<i32> = best
            .par_iter()
            .with_min_len(1 << 16)
            .map(|&w| {
                if w == 0 {
                    0
                } else {
                    (u32::MAX - w as u32) as i32
                }
            })
            .collect();
        Int32Array::new(numbers.into(), Some(registered.into()))
    }
}

/// Each person's PCN (or other code the practice has), as a dictionary of
/// `values`: the key `key` gives for their practice (by number, null where
/// not registered), null where it gives `None`.
fn keyed(
    practice: &Int32Array,
    key: impl Fn(i32) -> Option<i32> + Sync,
    values: &ArrayRef,
) -> Result<ArrayRef> {
    let numbers = practice.values();
    // Only a registered person's number is a practice's: `key` is not asked
    // of the others (with no usable registration there is no practice 0).
    let of = |p: usize| practice.is_valid(p).then(|| key(numbers[p])).flatten();
    let nulls = arrow_buffer::BooleanBuffer::collect_bool(practice.len(), |p| of(p).is_some());
    let keys: Vec<i32> = (0..practice.len())
        .into_par_iter()
        .with_min_len(1 << 16)
        .map(|p| of(p).unwrap_or(0))
        .collect();
    dictionary(Int32Array::new(keys.into(), Some(nulls.into())), values)
}

/// `keys` (null where there is no code) as a dictionary of `values`. The
/// population's loader holds practice and PCN codes as dictionaries too;
/// plain text per date had taken a string a person for each, and every
/// reader hashed them again.
fn dictionary(keys: Int32Array, values: &ArrayRef) -> Result<ArrayRef> {
    let dictionary = DictionaryArray::<Int32Type>::try_new(keys, values.clone())
        .map_err(|e| Error::Internal(format!("applying registrations: {e}")))?;
    Ok(Arc::new(dictionary))
}

/// The distinct codes of `codes` in code order, and each one's place
/// among them.
fn numbered(codes: &[Option<&str>]) -> (ArrayRef, Vec<Option<i32>>) {
    let mut distinct: Vec<&str> = codes.iter().flatten().copied().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let place = |c: &str| distinct.binary_search(&c).ok().map(|i| i as i32);
    let places = codes.iter().map(|c| c.and_then(place)).collect();
    (Arc::new(StringArray::from_iter_values(distinct)), places)
}

/// In the population on the as-of date: alive (born, not dead) and, where
/// the data has registrations, registered.
pub fn registered_only(
    alive: BooleanArray,
    registered: Option<&BooleanArray>,
) -> Result<BooleanArray> {
    match registered {
        Some(r) => arrow_arith::boolean::and(&alive, r)
            .map_err(|e| Error::Internal(format!("applying registrations: {e}"))),
        None => Ok(alive),
    }
}

/// The usable rows of the registrations table, by row group: (population
/// row, start, end, practice numbered within the group), and the practice
/// codes each group met. Rows with a null start or practice, or a person
/// not in the population, are ignored.
/// An error if `data`'s registrations table has no usable row for the
/// people of `population`, read only as far as the batch of its first
/// usable row. `strata evaluate` reads the table whole after its first scan
/// (held through the scan, its rows would raise the scan's peak) and
/// checks this before it, so that a table that registers nobody stops it
/// at once, not after the scan.
pub fn check(data: &Path, population: &Population) -> Result<()> {
    let Some(table) = Table::find(data, TABLE)? else {
        return Ok(());
    };
    check_columns(&table)?;
    one_pcn_each(population)?;
    let mut groups = Vec::new();
    for group in table.row_groups() {
        let rows = read_group(&table, group, population, true)?;
        if !rows.rows.is_empty() {
            return Ok(());
        }
        groups.push(rows);
    }
    Err(unusable(&table, population, &groups))
}

fn read_rows(table: &Table, population: &Population) -> Result<Vec<GroupRows>> {
    check_columns(table)?;
    // Row groups are read in parallel, each numbering the practices it
    // meets (which may include codes of rows it then drops);
    // `Registrations::read` renumbers them in code order, so neither the
    // order met nor an unused code changes a result.
    table
        .row_groups()
        .into_par_iter()
        .map(|group| read_group(table, group, population, false))
        .collect()
}

/// The table's columns, of the types the data contract allows.
fn check_columns(table: &Table) -> Result<()> {
    for (column, role) in [
        ("person_id", "the person id"),
        ("practice_code", "the practice"),
        ("start_date", "the registration's start"),
        ("end_date", "the registration's end"),
    ] {
        let ty = table.column_type(column, role).map_err(|e| {
            // Its column names are fixed: no rule file maps them.
            e.with_help("export the table with columns person_id, practice_code, start_date and end_date (see `registrations` in docs/data-contract.md)")
        })?;
        let ok = match column {
            "start_date" | "end_date" => table::is_date_type(ty),
            "person_id" => matches!(table::canonical_type(ty), Some(Type::Int | Type::Str)),
            _ => table::canonical_type(ty) == Some(Type::Str),
        };
        if !ok {
            return Err(Error::data(
                &table.location,
                format!("column `{column}` ({role}) has type {ty}, which the data contract does not allow"),
            )
            .with_help("see `registrations` in docs/data-contract.md for the accepted types"));
        }
    }
    Ok(())
}

/// One row group's usable rows (with `first_only`, those of its first
/// batch that has any), with the practices it met numbered, and how many
/// of the rows read were not usable, by why.
struct GroupRows {
    rows: Vec<Row>,
    codes: Vec<String>,
    /// Rows of a person not in the population (or with a null id),
    /// without a practice code, without a start date, and ending before
    /// they start (never open on any date).
    dropped: [u64; 4],
}

/// The PCN of each of `practices` (numbered by `number`), as the
/// population table gives it; `None` for a practice it gives none.
fn pcn_of_practices<'p>(
    population: &'p Population,
    practices: &[String],
    number: &HashMap<&str, u32>,
) -> Result<Vec<Option<&'p str>>> {
    let mut pcn_of: Vec<Option<&str>> = vec![None; practices.len()];
    for (p, n) in one_pcn_each(population)? {
        if let Some(&i) = number.get(p) {
            pcn_of[i as usize] = Some(n);
        }
    }
    Ok(pcn_of)
}

/// The (practice, PCN) pairs of the population table, in practice order,
/// where it gives every practice one PCN. A practice it gives under two
/// is an error, not a guess: with a registrations table every registered
/// patient of the practice goes to one PCN's lists, and a single row with
/// an old PCN (a person who died before the practice moved) had sent
/// them all to the wrong one.
fn one_pcn_each(population: &Population) -> Result<Vec<(&str, &str)>> {
    let in_population = TextColumn::new(population.column("practice_code"));
    let pcns = TextColumn::new(population.column("pcn_code"));
    // In (practice, PCN) order: a practice's PCNs one after another.
    let pairs: Vec<(&str, &str)> = in_population.distinct_pairs(&pcns).into_iter().collect();
    let two: Vec<String> = pairs
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|pcns| pcns.len() > 1)
        .map(|pcns| {
            let names: Vec<&str> = pcns.iter().map(|(_, n)| *n).collect();
            format!("{} under {}", pcns[0].0, names.join(" and "))
        })
        .collect();
    if two.is_empty() {
        return Ok(pairs);
    }
    let more = match two.len() {
        n if n > 3 => format!(" and {} more", n - 3),
        _ => String::new(),
    };
    Err(Error::data(
        &population.table.location,
        format!(
            "with a registrations table each practice's patients go to the PCN the population \
             table gives the practice, but it gives some practices more than one: {}{more}",
            two[..two.len().min(3)].join("; ")
        ),
    )
    .with_help(
        "give every row of a practice the same pcn_code (the practice's PCN now; a row kept \
         from before a practice moved PCN, such as a person who has died, may hold the old one)",
    ))
}

/// The rows of `groups` not used, by why (as [`GroupRows::dropped`]).
fn dropped(groups: &[GroupRows]) -> [u64; 4] {
    groups.iter().fold([0; 4], |mut sum, g| {
        for (s, d) in sum.iter_mut().zip(g.dropped) {
            *s += d;
        }
        sum
    })
}

/// The error for a registrations table with no usable row. Such a table
/// registers nobody, so every list would be empty and, published, would
/// replace the last good ones: an extract that lost its rows, or one from
/// another population (pseudonymised with another key), is stopped here.
fn unusable(table: &Table, population: &Population, groups: &[GroupRows]) -> Error {
    let [unknown, no_practice, no_start, backwards] = dropped(groups);
    let rows = unknown + no_practice + no_start + backwards;
    let why = if rows == 0 {
        "it has no rows".to_string()
    } else {
        let reasons: Vec<String> = [
            (
                unknown,
                format!(
                    "no id of a person in {}",
                    population.table.location.display()
                ),
            ),
            (no_practice, "no practice code".to_string()),
            (no_start, "no start date".to_string()),
            (backwards, "an end before its start".to_string()),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} with {what}"))
        .collect();
        let rows = if rows == 1 {
            "its one row".to_string()
        } else {
            format!("its {rows} rows")
        };
        format!("of {rows}, {}", reasons.join(", "))
    };
    let mut help = Vec::new();
    if unknown > 0 {
        help.push(
            "export the registrations with the population table they belong to (the same person ids)",
        );
    }
    if no_practice + no_start + backwards > 0 {
        help.push("give every registration its practice_code and start_date, and an end_date (if any) on or after it");
    }
    if help.is_empty() {
        help.push("export the registrations again");
    }
    Error::data(
        &table.location,
        format!("no usable registration ({why}): nobody would be registered on any date"),
    )
    .with_help(format!(
        "{}; or remove the registrations table to take each person's practice and PCN from \
         the population table",
        help.join("; ")
    ))
}

fn read_group(
    table: &Table,
    group: RowGroup,
    population: &Population,
    first_only: bool,
) -> Result<GroupRows> {
    let path = &table.parts[group.part].path;
    let columns = ["person_id", "practice_code", "start_date", "end_date"];
    let mut out = GroupRows {
        rows: Vec::new(),
        codes: Vec::new(),
        dropped: [0; 4],
    };
    let mut number: HashMap<String, u32> = HashMap::new();
    let mut code_of = |code: &str, codes: &mut Vec<String>| -> u32 {
        if let Some(&n) = number.get(code) {
            return n;
        }
        let n = codes.len() as u32;
        codes.push(code.to_string());
        number.insert(code.to_string(), n);
        n
    };
    for batch in table.reader(group, &columns, &["practice_code"])? {
        let batch = batch.map_err(|e| table.read_error(group, &columns, &e))?;
        let ids = table::canonical(table::column(&batch, "person_id"), path, "person_id")?.0;
        let persons = population.index().column(&ids, path, "person_id")?;
        // Each row's practice, numbered once per distinct code.
        let practice = table::column(&batch, "practice_code");
        let practices: Vec<Option<u32>> = match practice.data_type() {
            DataType::Dictionary(key, _) if key.as_ref() == &DataType::Int32 => {
                let dict = practice.as_dictionary::<arrow_array::types::Int32Type>();
                let values = table::canonical(dict.values(), path, "practice_code")?.0;
                let numbers: Vec<Option<u32>> = values
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.map(|v| code_of(v, &mut out.codes)))
                    .collect();
                dict.keys()
                    .iter()
                    .map(|k| k.and_then(|k| numbers[k as usize]))
                    .collect()
            }
            _ => {
                let text = table::canonical(practice, path, "practice_code")?.0;
                text.as_string::<i32>()
                    .iter()
                    .map(|v| v.map(|v| code_of(v, &mut out.codes)))
                    .collect()
            }
        };
        let start = table::to_dates(table::column(&batch, "start_date"), path, "start_date")?;
        let end = table::to_dates(table::column(&batch, "end_date"), path, "end_date")?;
        let all: Vec<u32> = (0..batch.num_rows() as u32).collect();
        let people = population.index().resolve(&persons, &all);
        for (row, person) in people.into_iter().enumerate() {
            let Person::Found(p) = person else {
                out.dropped[0] += 1;
                continue;
            };
            let Some(code) = practices[row] else {
                out.dropped[1] += 1;
                continue;
            };
            if start.is_null(row) {
                out.dropped[2] += 1;
                continue;
            }
            let to = (!end.is_null(row)).then(|| end.value(row));
            if to.is_some_and(|to| to < start.value(row)) {
                out.dropped[3] += 1;
                continue;
            }
            out.rows.push((p, start.value(row), to, code));
        }
        if first_only && !out.rows.is_empty() {
            break;
        }
    }
    Ok(out)
}

/// `batch` with the named columns replaced.
fn replaced(batch: &RecordBatch, with: &[(&str, ArrayRef)]) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        match with.iter().find(|(n, _)| n == field.name()) {
            Some((name, array)) => {
                fields.push(Field::new(*name, array.data_type().clone(), true));
                columns.push(array.clone());
            }
            None => {
                fields.push(field.as_ref().clone());
                columns.push(batch.column(i).clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::Internal(format!("applying registrations: {e}")))
}

#[cfg(test)]
mod tests {
    use super::{Registrations, Row};
    use crate::dates::Day;

    /// The rule as written: of the registrations open on `as_of`, the
    /// latest started, then the smallest practice number.
    fn one_by_one(rows: &[Row], persons: usize, as_of: Day) -> Vec<Option<u32>> {
        let mut best: Vec<Option<(Day, u32)>> = vec![None; persons];
        for &(p, from, to, code) in rows {
            if from > as_of || to.is_some_and(|to| to < as_of) {
                continue;
            }
            let slot = &mut best[p as usize];
            if slot.is_none_or(|(f, c)| from > f || (from == f && code < c)) {
                *slot = Some((from, code));
            }
        }
        best.into_iter().map(|b| b.map(|(_, c)| c)).collect()
    }

    #[test]
    fn practice_columns_read_as_the_texts_row_by_row() {
        use arrow_array::{Array, StringArray};
        use std::sync::Arc;
        // No registration, and a practice with no PCN, are null; an empty
        // code is not. The PCNs numbered in code order, each once.
        let codes = ["", "A1", "B22", "C333"];
        let pcn_of = [Some("X"), Some("W"), Some("X"), None];
        let practice: Vec<Option<u32>> = (0..200_003u32)
            .map(|i| (i % 7 != 0).then_some(i % 4))
            .collect();
        let numbers: arrow_array::Int32Array =
            practice.iter().map(|p| p.map(|p| p as i32)).collect();
        let (pcns, places) = super::numbered(&pcn_of);
        assert_eq!(places, [Some(1), Some(0), Some(1), None]);
        let practices: arrow_array::ArrayRef = Arc::new(StringArray::from_iter_values(codes));
        let practice_text = |p: u32| Some(codes[p as usize]);
        let pcn_text = |p: u32| pcn_of[p as usize];
        let cases: [(_, &dyn Fn(u32) -> Option<&'static str>); 2] = [
            (
                super::dictionary(numbers.clone(), &practices).unwrap(),
                &practice_text,
            ),
            (
                super::keyed(&numbers, |p| places[p as usize], &pcns).unwrap(),
                &pcn_text,
            ),
        ];
        for (built, text) in cases {
            let expected: StringArray = practice.iter().map(|p| p.and_then(text)).collect();
            let read = arrow_cast::cast(&built, &arrow_schema::DataType::Utf8).unwrap();
            assert_eq!(read.as_ref(), &expected as &dyn Array);
            assert_eq!(built.null_count(), expected.null_count());
            assert!(expected.null_count() > 0);
        }
        // Keys under nulls are 0, the PCNs' as the practices'.
        let pcn = super::keyed(&numbers, |p| places[p as usize], &pcns).unwrap();
        let pcn = pcn
            .as_any()
            .downcast_ref::<arrow_array::Int32DictionaryArray>()
            .unwrap();
        assert!(
            pcn.keys()
                .iter()
                .zip(pcn.keys().values())
                .all(|(k, v)| k.is_some() || *v == 0)
        );
        // No usable registration (no practice at all): nobody's key asked.
        let nobody = arrow_array::Int32Array::from(vec![None; 3]);
        let none: &[Option<i32>] = &[];
        let empty: arrow_array::ArrayRef = Arc::new(StringArray::from_iter_values([""; 0]));
        let pcn = super::keyed(&nobody, |p| none[p as usize], &empty).unwrap();
        assert_eq!(pcn.null_count(), 3);
        let plain = arrow_cast::cast(
            &super::dictionary(numbers, &practices).unwrap(),
            &arrow_schema::DataType::Utf8,
        )
        .unwrap();
        let plain = arrow_array::cast::AsArray::as_string::<i32>(&plain);
        assert!(plain.iter().any(|t| t == Some("")));
    }

    #[test]
    fn the_registration_on_a_date_is_the_latest_started_then_the_smallest_code() {
        // Overlapping registrations in any order, in several row groups
        // and parts, with starts before 1970 (negative days) and at the
        // extremes of a day number.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let persons = 3_000;
        let mut groups: Vec<Vec<Row>> = Vec::new();
        for _ in 0..3 {
            let group: Vec<Row> = (0..70_000)
                .map(|_| {
                    let from = next(400) as Day - 200;
                    let to = (next(3) > 0).then(|| from + next(300) as Day - 20);
                    (next(persons - 2) as u32, from, to, next(40) as u32)
                })
                .collect();
            groups.push(group);
        }
        // The last two persons have no other registration: a start at
        // the first day there is, and one at the last.
        let (p, q) = (persons as u32 - 2, persons as u32 - 1);
        groups.push(vec![
            (p, Day::MIN, None, 7),
            (p, Day::MIN, None, 3),
            (q, Day::MAX, None, 0),
        ]);
        let codes: Vec<String> = (0..40).map(|i| format!("P{i:02}")).collect();
        let registrations = Registrations {
            rows: groups.clone(),
            practices: std::sync::Arc::new(arrow_array::StringArray::from_iter_values(codes)),
            pcns: std::sync::Arc::new(arrow_array::StringArray::from_iter_values([""; 0])),
            pcn_of: vec![None; 40],
            rejected: Vec::new(),
        };
        let all: Vec<Row> = groups.concat();
        for as_of in [-150, -1, 0, 1, 37, 150, Day::MAX] {
            let expected = one_by_one(&all, persons as usize, as_of);
            let on_date = registrations.on_date(persons as usize, as_of);
            let on_date: Vec<Option<u32>> = on_date.iter().map(|p| p.map(|p| p as u32)).collect();
            assert_eq!(on_date, expected, "{as_of}");
            assert!(expected.iter().flatten().count() > 100, "{as_of}");
            assert_eq!(expected[persons as usize - 2], Some(3), "{as_of}");
            let last = (as_of == Day::MAX).then_some(0);
            assert_eq!(expected[persons as usize - 1], last, "{as_of}");
        }
    }
}
