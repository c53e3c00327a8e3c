//! Opt-outs, applied as the run's purpose requires.
//!
//! Two objections can be recorded for a person: a type 1 opt-out (made at
//! their GP practice, against their GP data leaving it for purposes other
//! than their care) and the National Data Opt-out (made nationally, against
//! their confidential data being used for research and planning). Risk
//! stratification for case finding runs under rules that require type 1
//! objections to be respected; planning and the aggregate outputs built
//! for it (counts, the report) are secondary uses, to which the National
//! Data Opt-out applies as well. So:
//!
//! - `direct_care` (case finding for the patient's own practice or PCN):
//!   people with a type 1 opt-out are in no output; people with a National
//!   Data Opt-out stay on the lists (and in `patients.parquet`, marked
//!   `counted = false`) but are left out of every count and the report.
//! - `secondary_use`: people with either opt-out are in no output.
//!
//! The flags are optional columns of the population table; where one is
//! absent the run says so (manifest and summary) and cannot apply it.

use arrow_array::BooleanArray;

use crate::error::Result;
use crate::input::population::{OPT_OUTS, Population, opt_out_flags};
use crate::rules::Purpose;

pub struct OptOuts {
    pub purpose: Purpose,
    /// Where the purpose came from: the rule file, `--purpose`, or the
    /// default (direct care).
    pub purpose_from: &'static str,
    /// Per person, where the population table has the column.
    pub type1: Option<BooleanArray>,
    pub national: Option<BooleanArray>,
    /// Persons no patient-level output may hold.
    pub withheld_from_lists: BooleanArray,
    /// Persons left out of every count and the report.
    pub withheld_from_aggregates: BooleanArray,
}

impl OptOuts {
    pub fn new(
        population: &Population,
        purpose: Purpose,
        purpose_from: &'static str,
    ) -> Result<OptOuts> {
        let persons = population.len();
        let flag = |internal: &str, role: &str| -> Result<Option<BooleanArray>> {
            if population
                .batch
                .schema()
                .column_with_name(internal)
                .is_none()
            {
                return Ok(None);
            }
            opt_out_flags(
                population.column(internal),
                &population.table.location,
                role,
            )
            .map(Some)
        };
        let [(type1, type1_role), (national, national_role)] = OPT_OUTS;
        let type1 = flag(type1, type1_role)?;
        let national = flag(national, national_role)?;
        for (present, what) in [
            (type1.is_some(), "type 1 opt-out (column `type1_opt_out`)"),
            (
                national.is_some(),
                "National Data Opt-out (column `national_data_opt_out`)",
            ),
        ] {
            // Said in the summary and the manifest too; a mapped column
            // that is missing stops the run instead.
            if !present {
                tracing::info!(
                    purpose = purpose.name(),
                    "the population table has no {what}: it cannot be applied; add the column, or map it in [population]"
                );
            }
        }
        // Each flag's values' bits (as `value(row)` reads them), none where
        // the table has no such column.
        let bits = |f: &Option<BooleanArray>| match f {
            Some(f) => f.values().clone(),
            None => arrow_buffer::BooleanBuffer::new_unset(persons),
        };
        let either = BooleanArray::new(&bits(&type1) | &bits(&national), None);
        let type1_only = BooleanArray::new(bits(&type1), None);
        let withheld_from_lists = match purpose {
            Purpose::DirectCare => type1_only,
            Purpose::SecondaryUse => either.clone(),
        };
        Ok(OptOuts {
            purpose,
            purpose_from,
            type1,
            national,
            withheld_from_lists,
            withheld_from_aggregates: either,
        })
    }
}
