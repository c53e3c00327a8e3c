//! The data contract of an event table, for every backend: the columns a
//! source names must be there with types strata can read (a date, a person
//! id of integers or text, codes as text, whole numbers or a list of text).
//! The native engine and the SQL compiler both bind a source through here,
//! so a table one refuses the other refuses too, with the same words.

use arrow_schema::DataType;

use super::table::{self, Table};
use crate::error::{Error, Result};
use crate::rules::Source;
use crate::rules::check::Type;

/// How a code column stores its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeKind {
    Text,
    /// Whole numbers (SNOMED CT ids as bigint), matched as their digits.
    Integer,
    /// A list of text per row (all diagnoses of an admission).
    List,
}

/// A code column a source reads.
#[derive(Debug, Clone)]
pub struct CodeColumn {
    pub name: String,
    pub kind: CodeKind,
}

/// Checks the columns `source` names in `table`; returns the code columns
/// it reads (with `first_codes` over several columns, the first ones).
pub fn check(source: &Source, table: &Table) -> Result<Vec<CodeColumn>> {
    let date_ty = table.column_type(&source.date, "the event date")?;
    if !table::is_date_type(date_ty) {
        return Err(Error::data(
            &table.location,
            format!(
                "column `{}` (the event date of source `{}`) has type {date_ty}, not a date",
                source.date, source.name
            ),
        )
        .with_help(
            "store dates as Parquet DATE or TIMESTAMP, or name the right column in the rule file",
        ));
    }
    if let Some(m) = &source.measure {
        check_measure(source, m, table)?;
    }
    let person_ty = table.column_type(&source.person_id, "the person id")?;
    if !matches!(
        table::canonical_type(person_ty),
        Some(Type::Int | Type::Str)
    ) {
        return Err(Error::data(
            &table.location,
            format!(
                "column `{}` (person id) has type {person_ty}; ids must be integers or text",
                source.person_id
            ),
        )
        .with_help("store person ids as integers or text, as the population table does"));
    }
    let columns = source
        .first_codes
        .map_or(source.codes.len(), |n| n.min(source.codes.len()));
    let mut codes = Vec::new();
    for c in &source.codes[..columns] {
        let ty = table.column_type(c, "a code column")?;
        let list = match ty {
            DataType::List(f) | DataType::LargeList(f) => {
                table::canonical_type(f.data_type()) == Some(Type::Str)
            }
            _ => false,
        };
        let whole_number = ty.is_integer()
            || matches!(
                ty,
                DataType::Decimal32(_, 0) | DataType::Decimal64(_, 0) | DataType::Decimal128(_, 0)
            );
        let kind = if list {
            CodeKind::List
        } else if table::canonical_type(ty) == Some(Type::Str) {
            CodeKind::Text
        } else if whole_number {
            CodeKind::Integer
        } else {
            return Err(Error::data(
                &table.location,
                format!(
                    "code column `{c}` has type {ty}; codes must be text, integers (SNOMED CT ids as bigint) or a list of text"
                ),
            )
            .with_help(
                "store codes as UTF-8 text (a Parquet string column), whole numbers, or a list of text",
            ));
        };
        codes.push(CodeColumn {
            name: c.clone(),
            kind,
        });
    }
    for m in &source.mapped {
        table.column_type(&m.from, &format!("the codes of column `{}`", m.name))?;
    }
    Ok(codes)
}

/// A measure's value column must hold numbers and its unit column text.
fn check_measure(source: &Source, m: &crate::rules::Measure, table: &Table) -> Result<()> {
    let role = format!("the value of measure `{}`", source.name);
    let ty = table.column_type(&m.value, &role)?;
    if !matches!(table::canonical_type(ty), Some(Type::Int | Type::Float)) {
        return Err(Error::data(
            &table.location,
            format!(
                "column `{}` holds {ty}, but source `{}` reads it as a measured value (a number)",
                m.value, source.name
            ),
        )
        .with_help("give the value column as a number (integer, double or decimal); cast text values in the extract"));
    }
    let role = format!("the unit of measure `{}`", source.name);
    let ty = table.column_type(&m.unit, &role)?;
    if table::canonical_type(ty) != Some(Type::Str) {
        return Err(Error::data(
            &table.location,
            format!(
                "column `{}` holds {ty}, but source `{}` reads it as the unit (text)",
                m.unit, source.name
            ),
        )
        .with_help("give units as text, such as g/L"));
    }
    Ok(())
}
