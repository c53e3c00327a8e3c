//! `OUT/patients.parquet`: one row per registered person, in ascending
//! `person_id` order, with every feature, cohort flag and rank.
//!
//! This is the table BI teams load into their warehouse, so its columns are
//! named exactly as the rule file names features and cohorts. People whom
//! the run's purpose withholds from patient-level outputs (opt-outs, for a
//! secondary use) have no row.
//!
//! A run hands the table each feature's column as soon as it is made
//! ([`crate::engine::Sink`]), and the table encodes it there and then
//! ([`Columnwise`]), so the run can let go of every column no other output
//! reads: at 5M persons the default model's columns, held together until
//! this file was written, had been most of the run's peak memory.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use arrow_array::{ArrayRef, BooleanArray};
use arrow_schema::{DataType, Field, Schema};

use super::parquet::Columnwise;
use crate::engine::{Plan, Results};
use crate::error::{Error, Result};

/// `patients.parquet`, encoded a column at a time; written by
/// [`Table::write`].
pub struct Table {
    /// [`super::features_read`] of the model.
    read_after: Vec<bool>,
    columns: OnceLock<Columnwise>,
}

/// The columns before the features: `person_id`, `practice_code`,
/// `pcn_code`, `alive`, `counted`.
const BEFORE_FEATURES: usize = 5;

impl Table {
    pub fn new(model: &crate::rules::Model) -> Table {
        Table {
            read_after: super::features_read(model),
            columns: OnceLock::new(),
        }
    }

    /// The table's columns, made on the first call for `plan`, with the
    /// rows `withheld` does not mark and features of the types `types`
    /// gives.
    fn columns(
        &self,
        plan: &Plan,
        withheld: &BooleanArray,
        types: impl Fn(usize) -> DataType,
    ) -> Result<&Columnwise> {
        if let Some(columns) = self.columns.get() {
            return Ok(columns);
        }
        let model = plan.model;
        let population = &plan.population;
        let field = |name: &str, ty: DataType| Field::new(name, ty, true);
        let mut fields = vec![field(
            "person_id",
            population.column("person_id").data_type().clone(),
        )];
        // Plain text, however the codes are held (the population's loader
        // and the registrations hold them as dictionaries, to group by
        // key): the table's Arrow type, which pyarrow, pandas and polars
        // read, stays the same whatever the inputs (it had changed with
        // whether a registrations table was given).
        for code in ["practice_code", "pcn_code"] {
            fields.push(field(code, population.column(code).data_type().clone()));
        }
        // `counted`: whether the person counts in aggregates: false for
        // people with an opt-out a direct-care run keeps on its lists, so
        // that a dashboard (or `strata diff`) built on this table can leave
        // them out as strata does.
        for flag in ["alive", "counted"] {
            fields.push(field(flag, DataType::Boolean));
        }
        for (i, feature) in model.features.iter().enumerate() {
            fields.push(field(&feature.name, types(i)));
        }
        for cohort in &model.cohorts {
            fields.push(field(&cohort.name, DataType::Boolean));
        }
        for cohort in &model.cohorts {
            fields.push(field(&format!("{}_rank", cohort.name), DataType::Int32));
        }
        // People the purpose withholds from the lists are not written.
        let keep = arrow_arith::boolean::not(withheld)
            .map_err(|e| Error::Internal(format!("applying opt-outs: {e}")))?;
        let columns = Columnwise::new(
            "patients.parquet",
            &Schema::new(fields),
            population.len(),
            (withheld.true_count() > 0).then_some(&keep),
        )?;
        Ok(self.columns.get_or_init(|| columns))
    }

    /// Encodes the columns the run did not hand over (all of them where
    /// the results were computed elsewhere), and writes the file at `path`.
    pub fn write(self, results: &Results, path: &Path) -> Result<()> {
        let model = results.plan.model;
        let population = &results.plan.population;
        // The features' types as held: a table computed elsewhere may hold
        // a feature the rules type as null (`expr = "null"`) as a typed
        // column of nulls, and it is written as it is held.
        let columns = self.columns(&results.plan, &results.opt_outs.withheld_from_lists, |i| {
            results.feature(i).data_type().clone()
        })?;
        let mut rest: Vec<(usize, ArrayRef)> = vec![
            (0, population.column("person_id").clone()),
            (1, population.column("practice_code").clone()),
            (2, population.column("pcn_code").clone()),
            (3, Arc::new(results.alive.clone())),
            (
                4,
                Arc::new(BooleanArray::new(results.counted.clone(), None)),
            ),
        ];
        for i in 0..model.features.len() {
            if !columns.is_encoded(BEFORE_FEATURES + i) {
                rest.push((BEFORE_FEATURES + i, results.feature(i).clone()));
            }
        }
        let flags = BEFORE_FEATURES + model.features.len();
        let cohorts = model.cohorts.len();
        for (j, result) in results.cohorts.iter().enumerate() {
            rest.push((flags + j, Arc::new(result.flags.clone())));
            rest.push((flags + cohorts + j, Arc::new(result.ranks().clone())));
        }
        {
            use rayon::prelude::*;
            rest.par_iter()
                .try_for_each(|(c, column)| columns.encode(*c, column))?;
        }
        self.columns.into_inner().expect("made above").write(path)
    }
}

impl crate::engine::Sink for Table {
    fn read_after(&self) -> &[bool] {
        &self.read_after
    }

    fn start(&self, plan: &Plan, withheld: &BooleanArray) -> Result<()> {
        // As planned: a run's columns have the types the rules give them.
        self.columns(plan, withheld, |i| plan.features[i].ty.data_type())
            .map(|_| ())
    }

    fn feature(&self, i: usize, column: &ArrayRef) -> Result<()> {
        self.columns
            .get()
            .ok_or_else(|| Error::Internal("patients.parquet: a column before the start".into()))?
            .encode(BEFORE_FEATURES + i, column)
    }
}
