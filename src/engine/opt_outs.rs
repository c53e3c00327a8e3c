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

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray};
use arrow_schema::DataType;

use crate::error::{Error, Result};
use crate::input::population::Population;
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
            flags(population.column(internal), population, role).map(Some)
        };
        let type1 = flag("type1_opt_out", "type 1 opt-out")?;
        let national = flag("national_data_opt_out", "National Data Opt-out")?;
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

/// A flag column as true/false: booleans as they are, whole numbers 1 and 0,
/// and text `Y`/`N`, `yes`/`no`, `true`/`false`, `1`/`0` (any case); a null
/// or empty value is no opt-out. Anything else is refused with the column
/// named, since guessing could list someone who objected.
fn flags(array: &ArrayRef, population: &Population, role: &str) -> Result<BooleanArray> {
    let bad = |value: String| {
        Error::data(
            &population.table.location,
            format!("the {role} column holds `{value}`, which is neither yes nor no"),
        )
        .with_help("write true/false, 1/0 or Y/N (a null or empty value means no opt-out)")
    };
    let array = match array.data_type() {
        DataType::Dictionary(..) => arrow_cast::cast(array, &DataType::Utf8)
            .map_err(|e| Error::Internal(format!("reading the {role} column: {e}")))?,
        _ => array.clone(),
    };
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
            .map(|v| match v {
                None | Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                Some(other) => Err(bad(other.to_string())),
            })
            .collect(),
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .map(|v| {
                let text = crate::rules::codelist::trim_code(v.unwrap_or(""));
                match text.to_ascii_lowercase().as_str() {
                    "" | "n" | "no" | "false" | "0" => Ok(Some(false)),
                    "y" | "yes" | "true" | "1" => Ok(Some(true)),
                    _ => Err(bad(text.to_string())),
                }
            })
            .collect(),
        other => Err(Error::data(
            &population.table.location,
            format!("the {role} column has type {other}, which is neither yes nor no"),
        )
        .with_help("store it as a boolean, 1/0 or Y/N")),
    }
}
