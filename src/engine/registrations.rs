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
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::dates::Day;
use crate::error::{Error, Result};
use crate::input::population::{Person, Population, TextColumn};
use crate::input::table::{self, Table};
use crate::rules::check::Type;

use crate::input::REGISTRATIONS as TABLE;

/// Applies the registrations of `data` (if it has the table) on `as_of`:
/// each person's practice and PCN become those of their registration then
/// (null when not registered), and the result says who was registered.
/// `None` without the table.
pub fn apply(population: &mut Population, data: &Path, as_of: Day) -> Result<Option<BooleanArray>> {
    let Some(table) = Table::find(data, TABLE)? else {
        return Ok(None);
    };
    let practice = on_date(&table, population, as_of)?;
    let registered: BooleanArray = practice.iter().map(|p| Some(p.is_some())).collect();
    // The PCN of each practice, as the population table gives it (the
    // first PCN in code order, should a practice appear under two).
    let mut pcn_of: HashMap<String, String> = HashMap::new();
    let practices = TextColumn::new(population.column("practice_code"));
    let pcns = TextColumn::new(population.column("pcn_code"));
    for row in 0..population.len() {
        if let (Some(p), Some(n)) = (practices.get(row), pcns.get(row)) {
            let entry = pcn_of.entry(p.to_string()).or_insert_with(|| n.to_string());
            if n < entry.as_str() {
                *entry = n.to_string();
            }
        }
    }
    let pcn: StringArray = practice
        .iter()
        .map(|p| p.as_ref().and_then(|p| pcn_of.get(p)).map(String::as_str))
        .collect();
    let practice: StringArray = practice.iter().map(|p| p.as_deref()).collect();
    population.batch = replaced(
        &population.batch,
        &[
            ("practice_code", Arc::new(practice)),
            ("pcn_code", Arc::new(pcn)),
        ],
    )?;
    Ok(Some(registered))
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

/// Each person's practice on `as_of`, by population row; `None` when not
/// registered then.
fn on_date(table: &Table, population: &Population, as_of: Day) -> Result<Vec<Option<String>>> {
    for (column, role) in [
        ("person_id", "the person id"),
        ("practice_code", "the practice"),
        ("start_date", "the registration's start"),
        ("end_date", "the registration's end"),
    ] {
        let ty = table.column_type(column, role)?;
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
    let mut best: Vec<Option<(Day, String)>> = vec![None; population.len()];
    let columns = ["person_id", "practice_code", "start_date", "end_date"];
    for group in table.row_groups() {
        let path = &table.parts[group.part].path;
        for batch in table.reader(group, &columns, &[])? {
            let batch = batch.map_err(|e| {
                Error::data(path, format!("cannot read the registrations: {e}"))
                    .with_help("the file may be corrupt or truncated; re-export it")
            })?;
            let ids = table::canonical(table::column(&batch, "person_id"), path, "person_id")?.0;
            let persons = population.index.column(&ids, path, "person_id")?;
            let practice = table::canonical(
                table::column(&batch, "practice_code"),
                path,
                "practice_code",
            )?
            .0;
            let practice = practice.as_string::<i32>();
            let start = table::to_dates(table::column(&batch, "start_date"), path, "start_date")?;
            let end = table::to_dates(table::column(&batch, "end_date"), path, "end_date")?;
            for row in 0..batch.num_rows() {
                let Person::Found(p) = population.index.lookup(&persons, row) else {
                    continue;
                };
                if start.is_null(row) || practice.is_null(row) {
                    continue;
                }
                let (from, code) = (start.value(row), practice.value(row));
                let current = from <= as_of && (end.is_null(row) || end.value(row) >= as_of);
                if !current {
                    continue;
                }
                let slot = &mut best[p as usize];
                let better = match slot {
                    None => true,
                    Some((f, c)) => from > *f || (from == *f && code < c.as_str()),
                };
                if better {
                    *slot = Some((from, code.to_string()));
                }
            }
        }
    }
    Ok(best.into_iter().map(|b| b.map(|(_, c)| c)).collect())
}

/// `batch` with the named columns replaced.
fn replaced(batch: &RecordBatch, with: &[(&str, ArrayRef)]) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        match with.iter().find(|(n, _)| n == field.name()) {
            Some((name, array)) => {
                fields.push(Field::new(*name, DataType::Utf8, true));
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
