//! The registered population: one row per person, sorted by `person_id`,
//! and the index that maps an id found in an event table to that row.
//!
//! Every per-person array in the engine is indexed by this row number, so
//! per-person state is dense (a `Vec` slot per person) and memory grows with
//! persons, never with events.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use foldhash::fast::FixedState;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::input::table::{self, Table, to_dates};
use crate::rules::check::Type;
use crate::rules::syntax;

type FastMap<K> = HashMap<K, u32, FixedState>;

/// Maps a person id to the person's row in [`Population::batch`].
pub enum PersonIndex {
    Int(FastMap<i64>),
    Str(FastMap<Box<str>>),
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
            PersonIndex::Int(map) => map.get(&id.trim().parse::<i64>().ok()?).copied(),
            PersonIndex::Str(map) => map.get(id).copied(),
        }
    }

    #[inline]
    pub fn lookup(&self, column: &PersonColumn, row: usize) -> Person {
        match (self, column) {
            (PersonIndex::Int(map), PersonColumn::Int(ids)) => {
                if ids.is_null(row) {
                    Person::NullId
                } else {
                    map.get(&ids.value(row))
                        .map_or(Person::Unknown, |&i| Person::Found(i))
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

pub struct Population {
    /// One row per person, ascending `person_id`; columns named
    /// `person_id`, `practice_code`, `pcn_code`, `sex`, `birth_date`,
    /// `date_of_death`, then each attribute as [`attribute_column`] names it.
    pub batch: RecordBatch,
    pub index: PersonIndex,
    pub table: Table,
    /// Rows skipped, by reason.
    pub rejected: Vec<(&'static str, u64)>,
}

impl Population {
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.num_rows() == 0
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
        let groups = table.row_groups();
        let batches = groups
            .par_iter()
            .map(|&g| -> Result<Vec<RecordBatch>> {
                let path = &table.parts[g.part].path;
                let mut out = Vec::new();
                for batch in table.reader(g, &columns, &[])? {
                    let batch =
                        batch.map_err(|e| Error::data(path, format!("cannot read: {e}")))?;
                    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(wanted.len());
                    for (internal, column) in &wanted {
                        let raw = table::column(&batch, column);
                        let array = match *internal {
                            "birth_date" | "date_of_death" => {
                                Arc::new(to_dates(raw, path, column)?) as ArrayRef
                            }
                            _ => table::canonical(raw, path, column)?.0,
                        };
                        arrays.push(array);
                    }
                    out.push(arrays_to_batch(&wanted, arrays));
                }
                Ok(out)
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
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
        let all = arrow_select::concat::concat_batches(&schema, &batches)
            .map_err(|e| Error::Internal(format!("concatenating population batches: {e}")))?;
        let ids = all.column(0).clone();

        // Stable sort by id so that among duplicates the first in file order
        // comes first and is the one kept.
        let mut order: Vec<u32> = (0..all.num_rows() as u32)
            .filter(|&r| ids.is_valid(r as usize))
            .collect();
        let null_ids = all.num_rows() as u64 - order.len() as u64;
        let (kept, index) = match ids.data_type() {
            DataType::Int64 => {
                let ids = ids.as_primitive::<Int64Type>();
                order.par_sort_by_key(|&r| ids.value(r as usize));
                order.dedup_by_key(|r| ids.value(*r as usize));
                let mut map = FastMap::with_capacity_and_hasher(order.len(), FixedState::default());
                for (i, &r) in order.iter().enumerate() {
                    map.insert(ids.value(r as usize), i as u32);
                }
                (order, PersonIndex::Int(map))
            }
            _ => {
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
        let duplicates = all.num_rows() as u64 - null_ids - kept.len() as u64;
        let take = UInt32Array::from(kept);
        let batch = arrow_select::take::take_record_batch(&all, &take)
            .map_err(|e| Error::Internal(format!("ordering the population: {e}")))?;
        if duplicates > 0 || null_ids > 0 {
            tracing::warn!(
                table = %table.location.display(),
                duplicates,
                null_ids,
                "population rows skipped (see manifest.json)"
            );
        }
        Ok(Population {
            batch,
            index,
            table,
            rejected: vec![
                ("null_person_id", null_ids),
                ("duplicate_person_id", duplicates),
            ],
        })
    }
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
