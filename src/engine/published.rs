//! Results from a per-person table computed elsewhere (by the compiled SQL
//! on Spark, say), so that `strata publish` can write every output of
//! `strata run` from it: PCN lists with reasons, workbooks, the report,
//! suppression and the manifest.
//!
//! The table must be the one `strata run` writes as `patients.parquet` for
//! the same rule files and as-of date: the same columns with the same types
//! (checked against the typed model), and the same people (everyone in the
//! population except those the purpose withholds, who have no row). The
//! population table is read from the data folder as for a run (ages, sex,
//! attributes, opt-outs); the event tables are not read at all.

use std::path::Path;
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, Int32Array, RecordBatch, UInt32Array};
use arrow_schema::DataType;
use chrono::NaiveDate;

use crate::dates;
use crate::engine::plan::{FeaturePlan, Plan};
use crate::engine::{CohortResult, Results, cohorts, opt_outs};
use crate::error::{Error, Result};
use crate::input::Population;
use crate::input::population::Person;
use crate::input::table::{self, Table};
use crate::rules::check::Type;
use crate::rules::{FeatureKind, Model, RESERVED_COLUMNS, typing};

/// Reads the per-person table at `path` (a Parquet file or a folder of part
/// files) as the results of `model` as of `as_of`, with the population of
/// `data`.
pub fn results<'m>(
    model: &'m Model,
    data: &Path,
    path: &Path,
    as_of: NaiveDate,
) -> Result<Results<'m>> {
    let started = Instant::now();
    let population = Population::load(data, &model.population)?;
    let attribute_types = Population::attribute_types(&model.population, &population.table)?;
    let (table, batch) = read(path)?;
    let problem = |message: String| {
        Error::data(&table.location, message).with_help(
            "give the table the SQL compiled from the same rule files (strata compile) wrote, for the same --as-of date",
        )
    };

    // Columns and their types, against the typed model.
    let mut expected: Vec<&str> = RESERVED_COLUMNS.to_vec();
    expected.extend(model.features.iter().map(|f| f.name.as_str()));
    expected.extend(model.cohorts.iter().map(|c| c.name.as_str()));
    let ranks: Vec<String> = model
        .cohorts
        .iter()
        .map(|c| format!("{}_rank", c.name))
        .collect();
    expected.extend(ranks.iter().map(String::as_str));
    let found: Vec<&str> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    if found != expected {
        let missing: Vec<&str> = expected
            .iter()
            .filter(|c| !found.contains(c))
            .copied()
            .collect();
        let extra: Vec<&str> = found
            .iter()
            .filter(|c| !expected.contains(c))
            .copied()
            .collect();
        return Err(problem(format!(
            "the per-person table's columns are not those the rule files define{}{}{}",
            if missing.is_empty() {
                String::new()
            } else {
                format!("; missing: {}", missing.join(", "))
            },
            if extra.is_empty() {
                String::new()
            } else {
                format!("; not defined: {}", extra.join(", "))
            },
            if missing.is_empty() && extra.is_empty() {
                "; the order differs"
            } else {
                ""
            }
        )));
    }
    let column_type = |name: &str| -> Option<Type> {
        table::canonical_type(
            batch
                .column_by_name(name)
                .expect("checked above")
                .data_type(),
        )
    };
    let mut column_types = vec![None; model.features.len()];
    for (fi, f) in model.features.iter().enumerate() {
        if let FeatureKind::Aggregate {
            column: Some(_), ..
        } = &f.kind
        {
            column_types[fi] = column_type(&f.name);
        }
    }
    let typed = typing::person_level(model, &attribute_types, &column_types, Some(as_of))?;
    let first_feature = typing::FIRST_ATTRIBUTE_SLOT + typed.attributes.len();
    for (fi, f) in model.features.iter().enumerate() {
        let want = typed.slot_types[first_feature + fi];
        let got = batch.column_by_name(&f.name).expect("checked above");
        let same = match column_type(&f.name) {
            Some(t) => t == want,
            // An all-null column may come without a type.
            None => got.data_type() == &DataType::Null,
        };
        if !same && want != Type::Null {
            return Err(problem(format!(
                "column `{}` holds {}, but the rule files define it as {}",
                f.name,
                got.data_type(),
                want.a()
            )));
        }
    }

    // Each row of the table at its person's place in the population.
    let ids = table::canonical(
        batch.column_by_name("person_id").expect("checked"),
        path,
        "person_id",
    )?
    .0;
    let column = population.index.column(&ids, path, "person_id")?;
    let mut place: Vec<Option<u32>> = vec![None; population.len()];
    for row in 0..batch.num_rows() {
        match population.index.lookup(&column, row) {
            Person::Found(p) if place[p as usize].is_none() => place[p as usize] = Some(row as u32),
            Person::Found(_) => {
                return Err(problem(
                    "the per-person table has a person_id more than once".into(),
                ));
            }
            Person::NullId | Person::Unknown => {
                return Err(problem(format!(
                    "row {} of the per-person table is not a person of the population table",
                    row + 1
                )));
            }
        }
    }
    let take = |array: &ArrayRef| -> Result<ArrayRef> {
        let indices = UInt32Array::from(place.clone());
        arrow_select::take::take(array, &indices, None)
            .map_err(|e| Error::Internal(format!("placing the per-person table's rows: {e}")))
    };

    let as_of_day = dates::to_day(as_of);
    let alive = cohorts::alive(
        population.column("birth_date"),
        population.column("date_of_death"),
        as_of_day,
    );
    let (purpose, purpose_from) = model.purpose();
    let opt_outs = opt_outs::OptOuts::new(&population, purpose, purpose_from)?;
    let written = take(batch.column_by_name("alive").expect("checked"))?;
    let written = written.as_boolean();
    for (p, row) in place.iter().enumerate() {
        let withheld = opt_outs.withheld_from_lists.value(p);
        if row.is_none() != withheld {
            return Err(problem(format!(
                "the per-person table {} a person the {} purpose {}",
                if withheld { "has" } else { "lacks" },
                purpose.name(),
                if withheld {
                    "withholds from patient-level outputs"
                } else {
                    "keeps"
                }
            )));
        }
        if row.is_some() && written.value(p) != alive.value(p) {
            return Err(problem(format!(
                "the per-person table's `alive` differs from the population's as of {as_of}: was it computed for another date?"
            )));
        }
    }

    let mut slots: Vec<ArrayRef> = vec![
        super::ages(population.column("birth_date"), as_of),
        population.column("sex").clone(),
    ];
    for attribute in &typed.attributes {
        slots.push(
            population
                .column(&crate::input::population::attribute_column(attribute))
                .clone(),
        );
    }
    for (fi, f) in model.features.iter().enumerate() {
        let column = take(batch.column_by_name(&f.name).expect("checked"))?;
        // In the types the engine evaluates (a SQL engine may write an
        // INT where strata writes a BIGINT, or a column of nulls untyped).
        let want = typed.slot_types[first_feature + fi];
        slots.push(if column.data_type() == &DataType::Null {
            arrow_array::new_null_array(&want.data_type(), column.len())
        } else {
            table::canonical(&column, path, &f.name)?.0
        });
    }
    let pcn = population.column("pcn_code").clone();
    let mut cohort_results = Vec::new();
    for c in &model.cohorts {
        let flags = take(batch.column_by_name(&c.name).expect("checked"))?;
        let flags: BooleanArray = flags
            .as_boolean()
            .iter()
            .map(|f| Some(f == Some(true)))
            .collect();
        let rank = take(
            batch
                .column_by_name(&format!("{}_rank", c.name))
                .expect("checked"),
        )?;
        let rank = arrow_cast::cast(&rank, &DataType::Int32).map_err(|e| {
            problem(format!(
                "column `{}_rank` is not a whole number: {e}",
                c.name
            ))
        })?;
        let rank: Int32Array = rank.as_primitive::<arrow_array::types::Int32Type>().clone();
        cohort_results.push(members(flags, rank, &pcn)?);
    }

    let features = model
        .features
        .iter()
        .enumerate()
        .map(|(fi, _)| FeaturePlan {
            ty: typed.slot_types[first_feature + fi],
            slot: first_feature + fi,
        })
        .collect();
    let plan = Plan {
        model,
        as_of,
        as_of_inferred: false,
        population,
        sources: Vec::new(),
        absent: Vec::new(),
        slot_types: typed.slot_types,
        attributes: typed.attributes,
        features,
        derived: typed.derived,
        cohorts: typed.cohorts,
    };
    Ok(Results {
        plan,
        slots,
        alive,
        opt_outs,
        cohorts: cohort_results,
        rejected: Vec::new(),
        rejected_rows: Vec::new(),
        timings: vec![("read the per-person table", started.elapsed())],
        computed_elsewhere: Some(table),
    })
}

/// A cohort's members in output order (by PCN, then rank), from its flags
/// and ranks.
fn members(flags: BooleanArray, rank: Int32Array, pcn: &ArrayRef) -> Result<CohortResult> {
    let by_pcn = arrow_ord::ord::make_comparator(
        pcn.as_ref(),
        pcn.as_ref(),
        arrow_schema::SortOptions {
            descending: false,
            nulls_first: false,
        },
    )
    .map_err(|e| Error::Internal(format!("ordering by PCN: {e}")))?;
    let mut members: Vec<u32> = (0..flags.len())
        .filter(|&p| flags.value(p))
        .map(|p| p as u32)
        .collect();
    members.sort_by(|&a, &b| {
        by_pcn(a as usize, b as usize)
            .then(rank.value(a as usize).cmp(&rank.value(b as usize)))
            .then(a.cmp(&b))
    });
    Ok(CohortResult {
        flags,
        rank,
        members,
    })
}

/// The whole table at `path` (a `.parquet` file or a folder of parts) in
/// one batch.
fn read(path: &Path) -> Result<(Table, RecordBatch)> {
    let (dir, name) = match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(dir), Some(name)) => (dir, name.strip_suffix(".parquet").unwrap_or(name)),
        _ => {
            return Err(Error::usage(format!(
                "{} is not a Parquet file or folder",
                path.display()
            ))
            .with_help("give the per-person table as a .parquet file or a folder of part files"));
        }
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let table = Table::open(dir, name, "--patients-table")?;
    let mut batches = Vec::new();
    for group in table.row_groups() {
        let columns: Vec<&str> = table
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        for batch in table.reader(group, &columns, &[])? {
            batches.push(batch.map_err(|e| {
                Error::data(
                    &table.location,
                    format!("cannot read the per-person table: {e}"),
                )
                .with_help("the file may be corrupt or truncated; write it again")
            })?);
        }
    }
    let batch = arrow_select::concat::concat_batches(&table.schema, &batches)
        .map_err(|e| Error::Internal(format!("joining the per-person table's batches: {e}")))?;
    Ok((table, batch))
}
