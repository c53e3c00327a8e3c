//! `OUT/patients.parquet`: one row per registered person, in ascending
//! `person_id` order, with every feature, cohort flag and rank.
//!
//! This is the table BI teams load into their warehouse, so its columns are
//! named exactly as the rule file names features and cohorts. People whom
//! the run's purpose withholds from patient-level outputs (opt-outs, for a
//! secondary use) have no row.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};

use crate::engine::Results;
use crate::error::{Error, Result};

pub fn write(results: &Results, path: &Path) -> Result<()> {
    let model = results.plan.model;
    let population = &results.plan.population;
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    let mut push = |name: &str, array: ArrayRef| {
        fields.push(Field::new(name, array.data_type().clone(), true));
        columns.push(array);
    };
    push("person_id", population.column("person_id").clone());
    // Plain text, however the codes are held (the population's loader and
    // the registrations hold them as dictionaries, to group by key): the
    // writer casts each row group's (`output::parquet::write_batch`), so the
    // table's Arrow type, which pyarrow, pandas and polars read, stays the
    // same whatever the inputs (it had changed with whether a registrations
    // table was given).
    for code in ["practice_code", "pcn_code"] {
        push(code, population.column(code).clone());
    }
    push("alive", Arc::new(results.alive.clone()));
    // Whether the person counts in aggregates: false for people with an
    // opt-out a direct-care run keeps on its lists, so that a dashboard (or
    // `strata diff`) built on this table can leave them out as strata does.
    let counted = arrow_array::BooleanArray::new(results.counted.clone(), None);
    push("counted", Arc::new(counted));
    for (i, feature) in model.features.iter().enumerate() {
        push(&feature.name, results.feature(i).clone());
    }
    for (cohort, result) in model.cohorts.iter().zip(&results.cohorts) {
        push(&cohort.name, Arc::new(result.flags.clone()));
    }
    for (cohort, result) in model.cohorts.iter().zip(&results.cohorts) {
        push(
            &format!("{}_rank", cohort.name),
            Arc::new(result.ranks().clone()),
        );
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::Internal(format!("assembling patients.parquet: {e}")))?;
    // People the purpose withholds from the lists are not written.
    let withheld = &results.opt_outs.withheld_from_lists;
    let keep = if withheld.true_count() > 0 {
        Some(
            arrow_arith::boolean::not(withheld)
                .map_err(|e| Error::Internal(format!("applying opt-outs: {e}")))?,
        )
    } else {
        None
    };
    super::parquet::write_batch(path, &batch, keep.as_ref())
}
