//! One input table: a `NAME.parquet` file or a `NAME/` folder of part files.
//!
//! Footers are read once, here; scan tasks reuse the parsed metadata and
//! each opens its own file handle, so row groups can be read in parallel
//! without sharing a reader.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Date32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::file::statistics::Statistics;

use crate::dates::Day;
use crate::error::{Error, Result};
use crate::rules::check::Type;

/// Rows per Arrow batch while scanning: large enough to amortise per-batch
/// work, small enough to stay in cache.
pub const BATCH_ROWS: usize = 64 * 1024;

#[derive(Clone)]
pub struct Part {
    pub path: PathBuf,
    metadata: ArrowReaderMetadata,
}

impl Part {
    pub fn rows(&self) -> u64 {
        self.metadata.metadata().file_metadata().num_rows().max(0) as u64
    }

    pub fn row_group_count(&self) -> usize {
        self.metadata.metadata().num_row_groups()
    }
}

#[derive(Clone)]
pub struct Table {
    pub name: String,
    /// The file or folder the table was found at.
    pub location: PathBuf,
    pub parts: Vec<Part>,
    pub schema: SchemaRef,
}

/// One unit of parallel work: a row group of a part.
#[derive(Debug, Clone, Copy)]
pub struct RowGroup {
    pub part: usize,
    pub index: usize,
}

/// The as-of date a run takes when none is given: the latest date among
/// `tables`' date columns (each with the placeholder dates its source
/// declares missing, which are no event's), where the extract ends.
/// Refused where that is not a real date or is after `today` (with a day
/// of slack: an extract made just after midnight in summer time, on a
/// machine that keeps UTC, holds events of its "tomorrow"), naming the
/// table: one mistyped year (9999) would otherwise become the as-of date
/// and make every age and every window wrong without a word. `rules`
/// names the rule files for a folder that holds no dated event.
pub fn inferred_as_of<'t>(
    tables: impl IntoIterator<Item = (&'t Table, &'t str, &'t [Day])>,
    rules: &Path,
    today: chrono::NaiveDate,
) -> Result<chrono::NaiveDate> {
    let mut latest: Option<(Day, &Table)> = None;
    for (table, column, missing) in tables {
        if let Some(d) = table.max_date_except(column, missing)?
            && latest.is_none_or(|(l, _)| d > l)
        {
            latest = Some((d, table));
        }
    }
    let Some((day, table)) = latest else {
        return Err(Error::usage(format!(
            "cannot infer the as-of date: the tables {} reads hold no dated events",
            rules.display()
        ))
        .with_help("give it with --as-of YYYY-MM-DD"));
    };
    let Some(date) = crate::dates::from_day(day) else {
        return Err(Error::usage(format!(
            "cannot infer the as-of date: the latest event date in {} ({day} days from 1970) is not a real date",
            table.location.display()
        ))
        .with_help("fix the corrupt dates, or give --as-of YYYY-MM-DD"));
    };
    if date > today + chrono::Days::new(1) {
        return Err(Error::usage(format!(
            "cannot infer the as-of date: the latest event date in {} is {date}, after today ({today})",
            table.location.display()
        ))
        .with_help("give --as-of YYYY-MM-DD (events after it are counted as `after_as_of` and left out); fix the future-dated rows, or, if their date is a placeholder, list it in the source's `missing_dates`"));
    }
    Ok(date)
}

impl Table {
    /// Finds table `name` in `dir`; `Ok(None)` if neither form exists.
    pub fn find(dir: &Path, name: &str) -> Result<Option<Table>> {
        let file = dir.join(format!("{name}.parquet"));
        // Spark writes `df.write.parquet(".../NAME.parquet")` as a folder
        // of parts of that name: read as `NAME/` is.
        let folder = match file.is_dir() {
            true => file.clone(),
            false => dir.join(name),
        };
        // Something there that is neither (a pipe, a device, a link to
        // nothing) is not taken for an absent table.
        for path in [&file, &folder] {
            if std::fs::symlink_metadata(path).is_ok() && !path.is_file() && !path.is_dir() {
                return Err(Error::data(path, format!("table `{name}` is neither a file nor a folder"))
                    .with_help("put the table there as a Parquet file or a folder of Parquet parts, or remove what is there"));
            }
        }
        let (location, paths) = match (file.is_file(), folder.is_dir()) {
            (true, true) => {
                return Err(Error::data(
                    &file,
                    format!(
                        "table `{name}` exists both as this file and as the folder {}",
                        folder.display()
                    ),
                )
                .with_help("keep one of them"));
            }
            (true, false) => (file.clone(), vec![file]),
            (false, true) => match dir.join(name).is_dir() && folder == file {
                true => {
                    return Err(Error::data(
                        &file,
                        format!(
                            "table `{name}` exists both as this folder and as the folder {}",
                            dir.join(name).display()
                        ),
                    )
                    .with_help("keep one of them"));
                }
                false => (folder.clone(), part_files(&folder)?),
            },
            (false, false) => return Ok(None),
        };
        let mut parts = Vec::with_capacity(paths.len());
        for path in paths {
            let f = File::open(&path).map_err(|e| Error::io(&path, "cannot open", e))?;
            let metadata =
                ArrowReaderMetadata::load(&f, ArrowReaderOptions::new()).map_err(|e| {
                    Error::data(&path, format!("not a readable Parquet file: {e}"))
                        .with_help("re-export the table; the file may be truncated or not Parquet")
                })?;
            parts.push(Part { path, metadata });
        }
        let schema = parts[0].metadata.schema().clone();
        for part in &parts[1..] {
            let other = part.metadata.schema();
            let same = other.fields().len() == schema.fields().len()
                && other
                    .fields()
                    .iter()
                    .zip(schema.fields())
                    .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
            if !same {
                return Err(Error::data(
                    &part.path,
                    format!(
                        "part file's columns ({}) differ from those of {} ({})",
                        describe(other),
                        parts[0].path.display(),
                        describe(&schema)
                    ),
                )
                .with_help("all part files of a table must share one schema"));
            }
        }
        Ok(Some(Table {
            name: name.to_string(),
            location,
            parts,
            schema,
        }))
    }

    /// Like [`Table::find`], but a missing table is an error.
    pub fn open(dir: &Path, name: &str, needed_by: &str) -> Result<Table> {
        Table::find(dir, name)?.ok_or_else(|| {
            Error::data(&dir.join(format!("{name}.parquet")), format!(
                "table `{name}` not found (looked for {name}.parquet and the folder {name}/); {needed_by} reads it"
            ))
            .with_help("check --data, or map the table name in the rule file")
        })
    }

    pub fn rows(&self) -> u64 {
        self.parts.iter().map(Part::rows).sum()
    }

    pub fn row_groups(&self) -> Vec<RowGroup> {
        self.parts
            .iter()
            .enumerate()
            .flat_map(|(p, part)| {
                (0..part.row_group_count()).map(move |i| RowGroup { part: p, index: i })
            })
            .collect()
    }

    /// Whether the table has `column`.
    pub fn has_column(&self, column: &str) -> bool {
        self.schema.field_with_name(column).is_ok()
    }

    /// The type of `column`, or an error that lists the columns there are.
    pub fn column_type(&self, column: &str, role: &str) -> Result<&DataType> {
        self.schema
            .field_with_name(column)
            .map(Field::data_type)
            .map_err(|_| {
                Error::data(&self.location, format!(
                    "table `{}` has no column `{column}` (wanted as {role}); its columns are: {}",
                    self.name,
                    describe(&self.schema)
                ))
                .with_help("map the column name in the rule file, or fix the extract")
            })
    }

    /// A reader over one row group, decoding only `columns`. Utf8 columns in
    /// `as_dictionary` are decoded as dictionaries, so code lists can be
    /// matched once per distinct value.
    pub fn reader(
        &self,
        group: RowGroup,
        columns: &[&str],
        as_dictionary: &[&str],
    ) -> Result<ParquetRecordBatchReader> {
        let part = &self.parts[group.part];
        let fail = |e: parquet::errors::ParquetError| {
            Error::data(
                &part.path,
                format!("cannot read row group {}: {e}", group.index),
            )
            .with_help("the file may be corrupt or truncated; re-export it")
        };
        let file = File::open(&part.path).map_err(|e| Error::io(&part.path, "cannot open", e))?;
        let metadata = if as_dictionary.is_empty() {
            part.metadata.clone()
        } else {
            let fields: Vec<Field> = self
                .schema
                .fields()
                .iter()
                .map(|f| {
                    let utf8 = matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8);
                    if utf8 && as_dictionary.contains(&f.name().as_str()) {
                        f.as_ref().clone().with_data_type(DataType::Dictionary(
                            Box::new(DataType::Int32),
                            Box::new(f.data_type().clone()),
                        ))
                    } else {
                        f.as_ref().clone()
                    }
                })
                .collect();
            let hinted = Arc::new(Schema::new_with_metadata(
                fields,
                self.schema.metadata().clone(),
            ));
            ArrowReaderMetadata::try_new(
                part.metadata.metadata().clone(),
                ArrowReaderOptions::new().with_schema(hinted),
            )
            .map_err(fail)?
        };
        let indices = columns
            .iter()
            .map(|c| {
                self.schema
                    .index_of(c)
                    .map_err(|_| self.column_type(c, "input").unwrap_err())
            })
            .collect::<Result<Vec<_>>>()?;
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata);
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
        builder
            .with_projection(mask)
            .with_row_groups(vec![group.index])
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(fail)
    }

    /// The error for a batch of `columns` of row group `group` that could
    /// not be read. Text that is not UTF-8 (an export in Windows-1252, say)
    /// is a setting of the export, not a damaged file: the column that
    /// holds it is found, each read alone, and named, never its value.
    pub fn read_error(
        &self,
        group: RowGroup,
        columns: &[&str],
        e: &dyn std::fmt::Display,
    ) -> Error {
        let path = &self.parts[group.part].path;
        if e.to_string().contains("non UTF-8") {
            let unreadable = |column: &&&str| match self.reader(group, &[**column], &[]) {
                Ok(mut batches) => batches.any(|b| b.is_err()),
                Err(_) => true,
            };
            let named = columns.iter().find(unreadable);
            let what = match named {
                Some(c) => format!("column `{c}` holds text that is not UTF-8"),
                None => "a text column holds text that is not UTF-8".to_string(),
            };
            return Error::data(path, format!("{what} (row group {})", group.index)).with_help(
                "export text as UTF-8: an extract in another encoding (Windows-1252, Latin-1) must be converted, or its export set to UTF-8",
            );
        }
        Error::data(path, format!("cannot read row group {}: {e}", group.index))
            .with_help("the file may be corrupt or truncated; re-export it")
    }

    /// The rows of row group `group`.
    pub fn group_rows(&self, group: RowGroup) -> u64 {
        let rg = self.parts[group.part]
            .metadata
            .metadata()
            .row_group(group.index);
        rg.num_rows().max(0) as u64
    }

    /// How many values column `column` holds in all, read from the
    /// Parquet metadata: its rows, or for a list its elements (a null or
    /// empty list counted as one); None where a part has no such column.
    pub fn values(&self, column: &str) -> Option<u64> {
        let mut values = 0u64;
        for part in &self.parts {
            let metadata = part.metadata.metadata();
            let schema = metadata.file_metadata().schema_descr();
            let leaves: Vec<usize> = (0..schema.num_columns())
                .filter(|&i| {
                    schema.column(i).path().parts().first().map(String::as_str) == Some(column)
                })
                .collect();
            if leaves.is_empty() {
                return None;
            }
            for rg in metadata.row_groups() {
                for &leaf in &leaves {
                    values += rg.column(leaf).num_values().max(0) as u64;
                }
            }
        }
        Some(values)
    }

    /// The first and last day of a `Date32` column in row group `group`,
    /// from its statistics; `None` for other types or without statistics.
    pub fn group_days(&self, group: RowGroup, column: &str) -> Option<(Day, Day)> {
        let part = &self.parts[group.part];
        let leaf = self.date_leaf(part, column)?;
        let rg = part.metadata.metadata().row_group(group.index);
        match rg.column(leaf).statistics()? {
            Statistics::Int32(s) => Some((*s.min_opt()?, *s.max_opt()?)),
            _ => None,
        }
    }

    /// Where a `Date32` column's statistics are among a part's Parquet
    /// columns (its leaves): not its position among the table's columns
    /// when a struct column, with several leaves, comes before it.
    fn date_leaf(&self, part: &Part, column: &str) -> Option<usize> {
        let schema = part.metadata.metadata().file_metadata().schema_descr();
        let (leaf, field) = parquet::arrow::parquet_column(schema, &self.schema, column)?;
        (field.data_type() == &DataType::Date32).then_some(leaf)
    }

    /// The latest value of a date column, from row-group statistics where all
    /// row groups have them, else by reading the column.
    pub fn max_date(&self, column: &str) -> Result<Option<Day>> {
        self.max_date_except(column, &[])
    }

    /// [`Table::max_date`] of the dates not in `missing`: from the
    /// statistics where their latest is not one of those, else read.
    pub fn max_date_except(&self, column: &str, missing: &[Day]) -> Result<Option<Day>> {
        let ty = self.column_type(column, "a date")?.clone();
        if ty == DataType::Date32 {
            let mut best: Option<Day> = None;
            let mut complete = true;
            for part in &self.parts {
                let Some(leaf) = self.date_leaf(part, column) else {
                    complete = false;
                    break;
                };
                for rg in part.metadata.metadata().row_groups() {
                    match rg.column(leaf).statistics() {
                        Some(Statistics::Int32(s)) if s.max_opt().is_some() => {
                            let m = *s.max_opt().expect("checked");
                            best = Some(best.map_or(m, |b: Day| b.max(m)));
                        }
                        _ if rg.num_rows() == 0 => {}
                        _ => complete = false,
                    }
                }
            }
            if complete && best.is_none_or(|b| !missing.contains(&b)) {
                return Ok(best);
            }
        }
        let mut best: Option<Day> = None;
        for group in self.row_groups() {
            for batch in self.reader(group, &[column], &[])? {
                let batch = batch.map_err(|e| self.read_error(group, &[column], &e))?;
                let dates = to_dates(batch.column(0), &self.parts[group.part].path, column)?;
                let latest = match missing {
                    [] => arrow_arith::aggregate::max(&dates),
                    _ => dates
                        .iter()
                        .flatten()
                        .filter(|d| !missing.contains(d))
                        .max(),
                };
                if let Some(m) = latest {
                    best = Some(best.map_or(m, |b| b.max(m)));
                }
            }
        }
        Ok(best)
    }
}

/// Where a table's events lie: from its first to its last event, leaving
/// out stray dates at either end (a 2015 before an extract of 2023 on, one
/// November row after an extract that ends in March: typing slips, not the
/// extract's edge), which the latest or earliest date alone had taken for
/// it. The events are counted by 30-day stretch; stretches in a row (no
/// empty stretch between) make a run, and the run with most events is the
/// table's core. A run before or after the core is stray where each of its
/// stretches has fewer events than [`Span::SPARSE_SHARE`] of the median of
/// the core's 12 stretches nearest to it: strays are apart from the data
/// and far sparser than the data next to them, so a partial first or last
/// stretch (an extract that ends on a stretch's first day), a growing or
/// seasonal volume, and a long thin history are all kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub from: Day,
    pub to: Day,
    /// Events in the stray runs left out.
    pub strays: u64,
}

impl Span {
    /// The share of the neighbouring data's events a stray stretch stays
    /// under: a twentieth.
    pub const SPARSE_SHARE: f64 = 0.05;
    const DAYS: i32 = 30;
    /// Stretches of the core that make the reference a run is judged by.
    const NEAR: usize = 12;

    /// The span of `stretches` (30-day stretch -> events, first and last
    /// day); `None` where there are none.
    fn of(stretches: &std::collections::BTreeMap<i32, (u64, Day, Day)>) -> Option<Span> {
        let all: Vec<(i32, (u64, Day, Day))> = stretches.iter().map(|(&k, &v)| (k, v)).collect();
        if all.is_empty() {
            return None;
        }
        // Runs of stretches with no empty stretch between.
        let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
        let mut start = 0;
        for i in 1..all.len() {
            if all[i].0 != all[i - 1].0 + 1 {
                runs.push(start..i);
                start = i;
            }
        }
        runs.push(start..all.len());
        let events = |r: &std::ops::Range<usize>| all[r.clone()].iter().map(|s| s.1.0).sum::<u64>();
        let core = (0..runs.len()).max_by_key(|&i| events(&runs[i]))?;
        let median = |stretches: &[(i32, (u64, Day, Day))]| {
            let mut counts: Vec<u64> = stretches.iter().map(|s| s.1.0).collect();
            counts.sort_unstable();
            counts[counts.len() / 2] as f64
        };
        let c = &all[runs[core].clone()];
        let near = Span::NEAR.min(c.len());
        let (near_start, near_end) = (median(&c[..near]), median(&c[c.len() - near..]));
        let sparse = |r: &std::ops::Range<usize>, reference: f64| {
            all[r.clone()]
                .iter()
                .all(|s| (s.1.0 as f64) < Span::SPARSE_SHARE * reference)
        };
        // Strays are the outermost runs: those kept reach from the first
        // run before the core that is not sparse to the last after it.
        let first = (0..core)
            .find(|&i| !sparse(&runs[i], near_start))
            .unwrap_or(core);
        let last = (core + 1..runs.len())
            .rev()
            .find(|&i| !sparse(&runs[i], near_end))
            .unwrap_or(core);
        let strays = runs[..first]
            .iter()
            .chain(&runs[last + 1..])
            .map(events)
            .sum();
        Some(Span {
            from: all[runs[first].start].1.1,
            to: all[runs[last].end - 1].1.2,
            strays,
        })
    }
}

impl Table {
    /// The [`Span`] of `column`'s dates that are not in `missing` and are
    /// `within` (dates before 1900 or after today are no event's; a row
    /// group holds a count for every 30 days of it, so it is bounded): the
    /// column is read whole, its row groups in parallel.
    pub fn span(
        &self,
        column: &str,
        missing: &[Day],
        within: std::ops::RangeInclusive<Day>,
    ) -> Result<Option<Span>> {
        use rayon::prelude::*;
        use std::collections::BTreeMap;
        type Stretches = BTreeMap<i32, (u64, Day, Day)>;
        let add = |into: &mut Stretches, from: &Stretches| {
            for (&k, &(n, lo, hi)) in from {
                let e = into.entry(k).or_insert((0, lo, hi));
                *e = (e.0 + n, e.1.min(lo), e.2.max(hi));
            }
        };
        // Every stretch `within` may hold, counted in place a row group at a
        // time (about 1,500 stretches from 1900 to today): one pass over
        // each batch's dates.
        let first = within.start().div_euclid(Span::DAYS);
        let stretches = (within.end().div_euclid(Span::DAYS) - first + 1) as usize;
        let parts: Vec<Stretches> = self
            .row_groups()
            .par_iter()
            .map(|&group| -> Result<Stretches> {
                let mut stretch = vec![(0u64, Day::MAX, Day::MIN); stretches];
                let mut count = |d: Day| {
                    if within.contains(&d) && (missing.is_empty() || !missing.contains(&d)) {
                        let s = &mut stretch[(d.div_euclid(Span::DAYS) - first) as usize];
                        *s = (s.0 + 1, s.1.min(d), s.2.max(d));
                    }
                };
                for batch in self.reader(group, &[column], &[])? {
                    let batch = batch.map_err(|e| self.read_error(group, &[column], &e))?;
                    let dates = to_dates(batch.column(0), &self.parts[group.part].path, column)?;
                    match dates.nulls().filter(|n| n.null_count() > 0) {
                        None => dates.values().iter().for_each(|&d| count(d)),
                        Some(nulls) => dates
                            .values()
                            .iter()
                            .zip(nulls.iter())
                            .filter(|&(_, valid)| valid)
                            .for_each(|(&d, _)| count(d)),
                    }
                }
                Ok(stretch
                    .into_iter()
                    .enumerate()
                    .filter(|(_, s)| s.0 > 0)
                    .map(|(k, s)| (first + k as i32, s))
                    .collect())
            })
            .collect::<Result<_>>()?;
        let mut all = Stretches::new();
        for part in &parts {
            add(&mut all, part);
        }
        Ok(Span::of(&all))
    }
}

/// Converts an accepted date column (Date32, Date64, Timestamp) to Date32.
pub fn to_dates(array: &ArrayRef, path: &Path, column: &str) -> Result<Date32Array> {
    match array.data_type() {
        DataType::Date32 => Ok(array
            .as_any()
            .downcast_ref::<Date32Array>()
            .expect("type checked")
            .clone()),
        DataType::Date64 | DataType::Timestamp(_, _) => {
            let cast =
                arrow_cast::cast(&without_time_zone(array), &DataType::Date32).map_err(|e| {
                    Error::data(path, format!("column `{column}`: {e}"))
                        .with_help("store dates as Parquet DATE, or timestamps within years 1-9999")
                })?;
            Ok(cast
                .as_any()
                .downcast_ref::<Date32Array>()
                .expect("cast to Date32")
                .clone())
        }
        other => Err(Error::data(
            path,
            format!("column `{column}` should hold dates but is {other}"),
        )
        .with_help("store it as a Parquet DATE or TIMESTAMP")),
    }
}

/// A timestamp column stores UTC instants whatever its zone; dropping the
/// zone makes a cast give the UTC calendar date (and needs no time-zone
/// database, which a named zone such as "UTC" would).
fn without_time_zone(array: &ArrayRef) -> ArrayRef {
    match array.data_type() {
        DataType::Timestamp(unit, Some(_)) => {
            let naive = DataType::Timestamp(*unit, None);
            let data = array.to_data().into_builder().data_type(naive);
            // Same buffers, same layout: only the zone annotation changes.
            arrow_array::make_array(
                data.build()
                    .expect("a timestamp's buffers fit any timestamp type"),
            )
        }
        _ => array.clone(),
    }
}

/// Brings a column used in expressions to the one Arrow type the engine
/// evaluates for its rule-language type: integers to Int64, floats to
/// Float64, any text (including dictionaries) to Utf8, dates to Date32.
pub fn canonical(array: &ArrayRef, path: &Path, column: &str) -> Result<(ArrayRef, Type)> {
    let ty = canonical_type(array.data_type()).ok_or_else(|| {
        Error::data(
            path,
            format!(
                "column `{column}` has type {}, which rules cannot use",
                array.data_type()
            ),
        )
        .with_help("store it as an integer, float, boolean, text or date column")
    })?;
    let target = ty.data_type();
    if array.data_type() == &target {
        return Ok((array.clone(), ty));
    }
    let cast = arrow_cast::cast(&without_time_zone(array), &target).map_err(|e| {
        Error::data(path, format!("column `{column}`: {e}"))
            .with_help(format!("store it as {}", ty.a()))
    })?;
    Ok((cast, ty))
}

/// The rule-language type a stored column is read as, if any.
pub fn canonical_type(ty: &DataType) -> Option<Type> {
    match ty {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => Some(Type::Int),
        // Warehouse exports write whole numbers as NUMBER(p, 0) / DECIMAL.
        DataType::Decimal32(_, 0)
        | DataType::Decimal64(_, 0)
        | DataType::Decimal128(_, 0)
        | DataType::Decimal256(_, 0) => Some(Type::Int),
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Some(Type::Float),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => Some(Type::Float),
        DataType::Boolean => Some(Type::Bool),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(Type::Str),
        DataType::Dictionary(_, value) => canonical_type(value).filter(|t| *t == Type::Str),
        t if is_date_type(t) => Some(Type::Date),
        _ => None,
    }
}

/// Is `ty` accepted for a date role?
pub fn is_date_type(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
    )
}

/// Reads all of a batch column by name (batches hold projected columns in
/// file order, not in the order asked for).
pub fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("projected column `{name}` missing from batch"))
}

fn part_files(folder: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(folder).map_err(|e| Error::io(folder, "cannot list", e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(folder, "cannot list", e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('_') || name.starts_with('.') || !name.ends_with(".parquet") {
            continue;
        }
        if entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::data(folder, "folder holds no .parquet part files")
            .with_help("a table folder must contain NAME/*.parquet parts"));
    }
    Ok(files)
}

fn describe(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Date32Array, Int32Array, RecordBatch, StructArray};
    use arrow_schema::{DataType, Field};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::{RowGroup, Span, Table};

    /// A few events months or years apart from the rest, and far sparser
    /// than the data next to them, are strays, not the table's edge; a
    /// last stretch of one day, a growing volume and a long thin history
    /// are the data's own.
    #[test]
    fn a_stray_date_is_not_a_tables_edge() {
        use std::collections::BTreeMap;
        let stretch = |k: i32, n: u64| (k, (n, k * 30, k * 30 + 29));
        let mut s: BTreeMap<i32, (u64, i32, i32)> = (0..12).map(|k| stretch(k, 1000)).collect();
        assert_eq!(
            Span::of(&s),
            Some(Span {
                from: 0,
                to: 359,
                strays: 0
            })
        );
        // The extract's last day, alone in its stretch (a thirtieth).
        s.insert(12, (33, 360, 360));
        assert_eq!(Span::of(&s).map(|s| s.to), Some(360));
        // Strays apart from the data, two after it, one long before.
        s.insert(40, (1, 1205, 1205));
        s.insert(45, (2, 1350, 1351));
        s.insert(-50, (2, -1500, -1490));
        assert_eq!(
            Span::of(&s),
            Some(Span {
                from: 0,
                to: 360,
                strays: 5
            })
        );
        // A run apart from the data but as busy as it is kept (a seasonal
        // table's next season); the sparse ones beyond it are not.
        s.insert(30, (900, 900, 929));
        assert_eq!(
            Span::of(&s),
            Some(Span {
                from: 0,
                to: 929,
                strays: 5
            })
        );
        // A long thin history next to the data is the data's: the stray
        // after it is judged against the data's last stretches.
        let mut t: BTreeMap<i32, (u64, i32, i32)> = (-300..0).map(|k| stretch(k, 15)).collect();
        t.extend((0..12).map(|k| stretch(k, 1000)));
        t.insert(20, (1, 600, 600));
        assert_eq!(
            Span::of(&t),
            Some(Span {
                from: -9000,
                to: 359,
                strays: 1
            })
        );
        assert_eq!(Span::of(&Default::default()), None);
    }

    #[test]
    fn row_group_days_are_the_date_columns_own_statistics() {
        // A struct column (two Parquet leaves) before the dates: their
        // statistics are the third leaf, not the second.
        let numbers: ArrayRef = Arc::new(Int32Array::from_iter_values(900..907));
        let nested = StructArray::from(vec![
            (
                Arc::new(Field::new("a", DataType::Int32, true)),
                numbers.clone(),
            ),
            (Arc::new(Field::new("b", DataType::Int32, true)), numbers),
        ]);
        let days = Date32Array::from(vec![
            Some(30),
            Some(10),
            Some(20),
            None,
            Some(50),
            Some(40),
            Some(45),
        ]);
        let batch = RecordBatch::try_from_iter([
            ("s", Arc::new(nested) as ArrayRef),
            ("day", Arc::new(days) as ArrayRef),
        ])
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("t.parquet")).unwrap();
        let groups_of_3 = WriterProperties::builder()
            .set_max_row_group_row_count(Some(3))
            .build();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(groups_of_3)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();

        let table = Table::find(dir.path(), "t").unwrap().unwrap();
        let groups = table.row_groups();
        let days: Vec<_> = groups.iter().map(|&g| table.group_days(g, "day")).collect();
        assert_eq!(days, [Some((10, 30)), Some((40, 50)), Some((45, 45))]);
        let rows: Vec<u64> = groups.iter().map(|&g| table.group_rows(g)).collect();
        assert_eq!(rows, [3, 3, 1]);
        assert_eq!(table.max_date("day").unwrap(), Some(50));
        // Not a date column.
        assert_eq!(table.group_days(RowGroup { part: 0, index: 0 }, "s"), None);
        assert_eq!(table.max_date_except("day", &[50]).unwrap(), Some(45));
        // Days 10 to 50: every 30-day stretch has one or more events.
        assert_eq!(
            table.span("day", &[], 0..=1000).unwrap(),
            Some(Span {
                from: 10,
                to: 50,
                strays: 0
            })
        );
        assert_eq!(
            table.span("day", &[50], 0..=44).unwrap(),
            Some(Span {
                from: 10,
                to: 40,
                strays: 0
            })
        );
        assert_eq!(table.span("day", &[], 100..=200).unwrap(), None);
    }

    fn write_part(path: &std::path::Path, values: &[i32]) {
        let batch = RecordBatch::try_from_iter([(
            "n",
            Arc::new(Int32Array::from(values.to_vec())) as ArrayRef,
        )])
        .unwrap();
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None)
                .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    #[test]
    fn a_table_is_a_file_a_folder_or_a_folder_named_as_the_file() {
        let dir = tempfile::tempdir().unwrap();
        // As Spark writes `df.write.parquet("t.parquet")`.
        let spark = dir.path().join("t.parquet");
        std::fs::create_dir(&spark).unwrap();
        write_part(&spark.join("part-00000-a.snappy.parquet"), &[1, 2]);
        write_part(&spark.join("part-00001-a.snappy.parquet"), &[3]);
        std::fs::write(spark.join("_SUCCESS"), b"").unwrap();
        let table = Table::find(dir.path(), "t").unwrap().unwrap();
        assert_eq!(table.parts.len(), 2);
        assert_eq!(table.location, spark);
        // With a `t/` folder as well, which one is meant is not guessed.
        std::fs::create_dir(dir.path().join("t")).unwrap();
        let e = Table::find(dir.path(), "t").err().unwrap().to_string();
        assert!(e.contains("both as this folder and as the folder"), "{e}");
        // A pipe where a table would be is not an absent table.
        #[cfg(unix)]
        {
            let fifo = dir.path().join("p.parquet");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            if made.is_ok_and(|s| s.success()) {
                let e = Table::find(dir.path(), "p").err().unwrap().to_string();
                assert!(e.contains("neither a file nor a folder"), "{e}");
            }
        }
    }
}
