//! `OUT/pcn/<PCN_CODE>/<PCN_CODE>.xlsx`: the workbook a PCN lead opens.
//!
//! A cover sheet (the PCN, the run and as-of dates, the models with their
//! versions, and for each cohort its definition and how many are on it),
//! then one sheet per cohort delivered to the PCN, holding the
//! same columns as its CSV list: ranked, the header frozen and filtered,
//! columns as wide as their values, dates as Excel dates, numbers as
//! numbers, identifiers as text (exactly as in the CSV).

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int32Type, Int64Type, UInt32Type};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use chrono::Datelike;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, Worksheet, XlsxError};

use crate::dates;
use crate::error::{Error, Result};

/// What the cover sheet says about the run.
pub struct Cover<'a> {
    pub pcn_code: &'a str,
    pub pcn_name: Option<&'a str>,
    pub run_date: chrono::NaiveDate,
    pub as_of: chrono::NaiveDate,
    /// (name, title, version) of each model file.
    pub models: Vec<(String, String, Option<String>)>,
}

/// One cohort's sheet: its columns (name, values by person row), the rows
/// of its members in order, and the cover sheet's words for it.
pub struct Sheet<'a> {
    pub name: &'a str,
    pub title: &'a str,
    pub definition: String,
    pub columns: Vec<(&'a str, &'a ArrayRef)>,
    pub members: &'a [u32],
    /// The reason text of each member, in member order.
    pub reasons: &'a [String],
}

/// Builds the workbook in memory, then writes it: a full disk then fails
/// one plain write with the system's error, not the zip writer half-way.
/// `named` is how an error names it: where it would have been in the
/// output folder (`path` is in the staging folder, gone once the run
/// fails).
pub fn write(path: &Path, named: &Path, cover: &Cover, sheets: &[Sheet]) -> Result<()> {
    let bytes = build(cover, sheets).map_err(|BuildError { at, error }| {
        let place = at.map_or(String::new(), |(sheet, column)| {
            format!(" (sheet `{sheet}`, column `{column}`)")
        });
        Error::data(named, format!("cannot build the workbook{place}: {error}")).with_help(
            "a value may exceed what Excel holds (32,767 characters a cell, 1,048,576 rows a sheet): list fewer or shorter columns",
        )
    })?;
    std::fs::write(path, bytes).map_err(|e| Error::io(path, "cannot write the workbook", e))
}

fn build(cover: &Cover, sheets: &[Sheet]) -> std::result::Result<Vec<u8>, BuildError> {
    let mut workbook = Workbook::new();
    // Fast deflate: the lists are small, and a run writes one workbook per PCN.
    workbook.set_zip_compression_level(1);
    let bold = Format::new().set_bold();
    let wrap = Format::new().set_text_wrap();
    let date = Format::new().set_num_format("yyyy-mm-dd");

    let front = workbook.add_worksheet();
    front.set_name("Cover")?;
    front.set_column_width(0, 28)?;
    front.set_column_width(1, 90)?;
    let mut row = 0;
    let pcn = match cover.pcn_name {
        Some(name) => format!("{name} ({})", cover.pcn_code),
        None => cover.pcn_code.to_string(),
    };
    front.write_string_with_format(row, 0, "Cohort lists for", &bold)?;
    front.write_string_with_format(row, 1, &pcn, &bold)?;
    row += 2;
    front.write_string(row, 0, "Run date")?;
    write_date(front, row, 1, cover.run_date, &date)?;
    row += 1;
    front.write_string(row, 0, "Data as of")?;
    write_date(front, row, 1, cover.as_of, &date)?;
    row += 1;
    for (name, title, version) in &cover.models {
        front.write_string(row, 0, "Model")?;
        let v = version
            .as_deref()
            .map_or(String::new(), |v| format!(", version {v}"));
        front.write_string(row, 1, format!("{title} ({name}{v})"))?;
        row += 1;
    }
    row += 1;
    front.write_string_with_format(row, 0, "Cohort", &bold)?;
    front.write_string_with_format(row, 1, "Definition", &bold)?;
    front.write_string_with_format(row, 2, "People", &bold)?;
    row += 1;
    for sheet in sheets {
        front.write_string(row, 0, sheet.title)?;
        front.write_string_with_format(row, 1, &sheet.definition, &wrap)?;
        // Exact: the sheet behind it lists every one of these people, so
        // suppressing the count would hide nothing and only confuse.
        front.write_number(row, 2, sheet.members.len() as f64)?;
        row += 1;
    }
    row += 1;
    front.write_string(row, 0, "Counts")?;
    front.write_string_with_format(
        row,
        1,
        "Exact: each counts this PCN's own list, which its sheet holds in full. \
         Counts that describe more than this PCN's lists (the report, the summary) \
         are suppressed.",
        &wrap,
    )?;
    row += 1;
    front.write_string(row, 0, "Lists")?;
    front.write_string_with_format(
        row,
        1,
        "Each sheet lists this PCN's registered patients in one cohort, ranked; \
         the reason column says why each person is on it. Patient-level: handle \
         under your organisation's information governance.",
        &wrap,
    )?;

    let mut used: Vec<String> = vec!["Cover".to_string()];
    for sheet in sheets {
        let ws = workbook.add_worksheet();
        let tab = sheet_name(sheet.name, &mut used);
        ws.set_name(&tab)?;
        list(ws, sheet, &tab, &bold, &date)?;
    }
    Ok(workbook.save_to_buffer()?)
}

/// One cohort's sheet, its tab named `tab` (as errors name it).
fn list(
    ws: &mut Worksheet,
    sheet: &Sheet,
    tab: &str,
    bold: &Format,
    date: &Format,
) -> std::result::Result<(), BuildError> {
    let reason_col = sheet.columns.len() as u16;
    // Each column's formatter, made once: it sizes the column, and writes
    // the identifiers as text (made per cell, it took about a seventh of
    // the lists' time).
    let options = arrow_cast::display::FormatOptions::default();
    let formatters: Vec<Option<arrow_cast::display::ArrayFormatter>> = sheet
        .columns
        .iter()
        .map(|(_, array)| {
            arrow_cast::display::ArrayFormatter::try_new(array.as_ref(), &options).ok()
        })
        .collect();
    for (c, ((name, _), f)) in sheet.columns.iter().zip(&formatters).enumerate() {
        ws.write_string_with_format(0, c as u16, *name, bold)?;
        // Wide enough for the header and the longest of the first values.
        let widest = f.as_ref().map_or(0, |f| {
            sheet
                .members
                .iter()
                .take(WIDTH_SAMPLE)
                .map(|&m| f.value(m as usize).to_string().chars().count())
                .max()
                .unwrap_or(0)
        });
        let width = name.len().max(widest) as f64 + 2.0;
        ws.set_column_width(c as u16, width.clamp(8.0, 60.0))?;
    }
    ws.write_string_with_format(0, reason_col, "reason", bold)?;
    ws.set_column_width(reason_col, 80)?;
    // Which columns are identifiers, found once, not per cell.
    let identifier: Vec<bool> = sheet
        .columns
        .iter()
        .map(|(name, _)| IDENTIFIERS.contains(name))
        .collect();
    for (i, &m) in sheet.members.iter().enumerate() {
        let r = i as u32 + 1;
        let columns = sheet.columns.iter().zip(&formatters).zip(&identifier);
        for (c, (((name, array), text), &is_identifier)) in columns.enumerate() {
            let row = m as usize;
            let written = if is_identifier {
                // One value as text, exactly as the CSV list has it;
                // nothing for null.
                match text {
                    Some(f) if array.is_valid(row) => ws
                        .write_string(r, c as u16, f.value(row).to_string())
                        .map(|_| ()),
                    _ => Ok(()),
                }
            } else {
                cell(ws, r, c as u16, array, row, date)
            };
            written.map_err(|e| at(tab, name, e))?;
        }
        ws.write_string(r, reason_col, &sheet.reasons[i])
            .map_err(|e| at(tab, "reason", e))?;
    }
    ws.set_freeze_panes(1, 0)?;
    ws.autofilter(0, 0, sheet.members.len() as u32, reason_col)?;
    Ok(())
}

/// Why a workbook could not be built, and, for a cell of a list, the sheet
/// and column it is in (its row and value are a person's: never named).
struct BuildError {
    at: Option<(String, String)>,
    error: XlsxError,
}

impl From<XlsxError> for BuildError {
    fn from(error: XlsxError) -> Self {
        BuildError { at: None, error }
    }
}

fn at(sheet: &str, column: &str, error: XlsxError) -> BuildError {
    BuildError {
        at: Some((sheet.to_string(), column.to_string())),
        error,
    }
}

/// Rows whose values set a column's width (the top of the list, which is
/// what a reader sees first).
const WIDTH_SAMPLE: usize = 1000;

/// Columns that identify rather than measure: always text, so Excel never
/// shows a pseudonymised id as `3.25667E+18` or rounds it to 15 digits
/// (a 64-bit id has up to 19), and a re-identification lookup matches.
const IDENTIFIERS: [&str; 2] = ["person_id", "practice_code"];

/// Excel keeps 15 significant digits: integers beyond this are written as
/// text so that no digit is lost.
const EXACT_IN_EXCEL: i64 = 999_999_999_999_999;

/// One value, as its Excel type: numbers as numbers (integers too long for
/// Excel's precision as text), dates as dates, true/false as Excel's, text
/// as text; nothing for null.
fn cell(
    ws: &mut Worksheet,
    r: u32,
    c: u16,
    array: &ArrayRef,
    row: usize,
    date: &Format,
) -> std::result::Result<(), XlsxError> {
    if array.is_null(row) {
        return Ok(());
    }
    match array.data_type() {
        DataType::Int64 => {
            let v = array.as_primitive::<Int64Type>().value(row);
            if v.unsigned_abs() > EXACT_IN_EXCEL as u64 {
                ws.write_string(r, c, v.to_string())?;
            } else {
                ws.write_number(r, c, v as f64)?;
            }
        }
        DataType::Int32 => {
            ws.write_number(
                r,
                c,
                f64::from(array.as_primitive::<Int32Type>().value(row)),
            )?;
        }
        // A count a run holds in 32 bits.
        DataType::UInt32 => {
            ws.write_number(
                r,
                c,
                f64::from(array.as_primitive::<UInt32Type>().value(row)),
            )?;
        }
        DataType::Float64 => {
            ws.write_number(r, c, array.as_primitive::<Float64Type>().value(row))?;
        }
        DataType::Date32 => {
            let day = array.as_primitive::<Date32Type>().value(row);
            if let Some(d) = dates::from_day(day) {
                write_date(ws, r, c, d, date)?;
            }
        }
        DataType::Boolean => {
            ws.write_boolean(r, c, array.as_boolean().value(row))?;
        }
        DataType::Utf8 => {
            ws.write_string(r, c, array.as_string::<i32>().value(row))?;
        }
        _ => {
            let options = arrow_cast::display::FormatOptions::default();
            if let Ok(f) = arrow_cast::display::ArrayFormatter::try_new(array.as_ref(), &options) {
                ws.write_string(r, c, f.value(row).to_string())?;
            }
        }
    }
    Ok(())
}

/// A date as an Excel date, or as `YYYY-MM-DD` text where Excel has none
/// (its dates run from 1900 to 9999).
fn write_date(
    ws: &mut Worksheet,
    r: u32,
    c: u16,
    d: chrono::NaiveDate,
    format: &Format,
) -> std::result::Result<(), XlsxError> {
    if (1900..=9999).contains(&d.year()) {
        let excel = ExcelDateTime::from_ymd(d.year() as u16, d.month() as u8, d.day() as u8)?;
        ws.write_date_with_format(r, c, excel, format)?;
    } else {
        ws.write_string(r, c, d.to_string())?;
    }
    Ok(())
}

/// A sheet name Excel accepts: at most 31 characters, none of `[]:*?/\`,
/// unique in the workbook (case-insensitively).
fn sheet_name(cohort: &str, used: &mut Vec<String>) -> String {
    let clean: String = cohort
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
        .collect();
    let mut name: String = clean.chars().take(31).collect();
    let mut n = 2;
    while used.iter().any(|u| u.eq_ignore_ascii_case(&name)) {
        let suffix = format!("~{n}");
        name = clean.chars().take(31 - suffix.len()).collect::<String>() + &suffix;
        n += 1;
    }
    used.push(name.clone());
    name
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, StringArray};

    use super::{Cover, Sheet, sheet_name, write};

    /// A cell longer than Excel holds is told with its sheet and column,
    /// not only "the workbook", and never with its value.
    #[test]
    fn a_cell_too_long_for_excel_names_its_sheet_and_column() {
        let long = "x".repeat(40_000);
        let ids: ArrayRef = Arc::new(StringArray::from(vec!["1", "2"]));
        let notes: ArrayRef = Arc::new(StringArray::from(vec!["short", long.as_str()]));
        let day = chrono::NaiveDate::from_ymd_opt(2025, 3, 31).unwrap();
        let cover = Cover {
            pcn_code: "P1",
            pcn_name: None,
            run_date: day,
            as_of: day,
            models: vec![],
        };
        let reasons = vec!["a".to_string(), "b".to_string()];
        let sheets = [Sheet {
            name: "hiu",
            title: "High intensity users",
            definition: "a test".to_string(),
            columns: vec![("person_id", &ids), ("notes", &notes)],
            members: &[0, 1],
            reasons: &reasons,
        }];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("P1.xlsx");
        let err = write(&path, &path, &cover, &sheets)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sheet `hiu`, column `notes`"), "{err}");
        assert!(err.contains("32,767"), "{err}");
        assert!(!err.contains("xxxxxxxx"), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn sheet_names_are_short_clean_and_unique() {
        let mut used = vec!["Cover".to_string()];
        assert_eq!(sheet_name("hiu", &mut used), "hiu");
        let long = "a_very_long_cohort_name_that_goes_on_and_on";
        let first = sheet_name(long, &mut used);
        assert_eq!(first.len(), 31);
        let second = sheet_name(long, &mut used);
        assert_eq!(second.len(), 31);
        assert!(second.ends_with("~2"));
        assert_eq!(sheet_name("cover", &mut used), "cover~2");
        assert_eq!(sheet_name("a/b", &mut used), "a_b");
    }
}
