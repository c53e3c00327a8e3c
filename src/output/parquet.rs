//! The Parquet settings of every file strata writes (its outputs and the
//! generator's tables), so they cannot drift apart: zstd, row groups of about
//! a million rows, dictionaries for codes and labels but not for the random
//! person ids (a dictionary of distinct values only costs), a dictionary page
//! large enough for a 20,000-code vocabulary to stay dictionary-encoded, and
//! page statistics so readers can skip what they don't need.

use arrow_array::{ArrayRef, RecordBatch};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

/// Rows per row group: large enough for fast scans, small enough that
/// readers can parallelise over a city-sized table.
pub const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// strata's writer settings; callers may add to them before `build()`.
pub fn writer_properties() -> WriterPropertiesBuilder {
    WriterProperties::builder()
        // Level 1: nearly the ratio of higher levels at a fraction of the time.
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_enabled(true)
        .set_column_dictionary_enabled(ColumnPath::from("person_id"), false)
        .set_dictionary_page_size_limit(8 << 20)
        .set_statistics_enabled(EnabledStatistics::Page)
}

/// One Parquet file written with strata's settings from batches of one
/// schema pushed one after another, without joining them: each row group
/// is written as soon as its rows have been pushed, and each batch dropped
/// once the row groups written reach its end. The file is the one written of
/// the batches joined. `strata evaluate` pushes a batch per as-of date as
/// each date is worked out: the dates' people held until all dates were
/// worked out had been about 42 bytes a person and date.
pub struct Batches {
    path: std::path::PathBuf,
    /// The first batch's schema, which every batch must have, and the
    /// file's ([`file_schema`]).
    schema: arrow_schema::SchemaRef,
    file_schema: arrow_schema::SchemaRef,
    file_writer: parquet::file::writer::SerializedFileWriter<std::fs::File>,
    factory: parquet::arrow::arrow_writer::ArrowRowGroupWriterFactory,
    /// The batches pushed and not yet dropped, each with its first row
    /// among all rows.
    held: std::collections::VecDeque<(usize, RecordBatch)>,
    /// Batches and rows pushed, row groups written.
    pushed: usize,
    rows: usize,
    groups: usize,
    /// The rows kept (null-free) and each row group's first row, where
    /// rows are left out.
    keep: Option<(arrow_array::BooleanArray, Vec<usize>)>,
    group_rows: usize,
}

impl Batches {
    /// A file at `path` of `first` and the batches pushed after it.
    pub fn create(path: &std::path::Path, first: RecordBatch) -> crate::Result<Batches> {
        Batches::keeping(path, first, None, ROW_GROUP_ROWS)
    }

    /// A file of the rows `keep` marks (all with `None`; a null reads as
    /// not kept), in row groups of `group_rows` kept rows.
    fn keeping(
        path: &std::path::Path,
        first: RecordBatch,
        keep: Option<&arrow_array::BooleanArray>,
        group_rows: usize,
    ) -> crate::Result<Batches> {
        let schema = first.schema();
        let file_schema = file_schema(&schema);
        let file =
            std::fs::File::create(path).map_err(|e| crate::Error::io(path, "cannot create", e))?;
        let (file_writer, factory) = serialized(file, &file_schema)
            .map_err(|e| crate::Error::io(path, "cannot write", parquet_io(e)))?;
        let mut batches = Batches {
            path: path.to_path_buf(),
            schema,
            file_schema,
            file_writer,
            factory,
            held: Default::default(),
            pushed: 0,
            rows: 0,
            groups: 0,
            keep: keep.map(|keep| {
                let keep = kept_rows(keep);
                let starts = group_starts(Some(&keep), keep.len(), group_rows);
                (keep, starts)
            }),
            group_rows,
        };
        batches.push(first)?;
        Ok(batches)
    }

    /// Adds a batch's rows, writing the row groups they complete. A batch
    /// must have the first's columns' types, and no nulls where it has none.
    pub fn push(&mut self, batch: RecordBatch) -> crate::Result<()> {
        let same = batch.num_columns() == self.schema.fields().len()
            && self
                .schema
                .fields()
                .iter()
                .zip(batch.columns())
                .all(|(f, c)| {
                    f.data_type() == c.data_type()
                        && (f.is_nullable() || arrow_array::Array::null_count(c.as_ref()) == 0)
                });
        if !same {
            return Err(crate::Error::Internal(format!(
                "writing {}: batch {} of {} rows does not fit the first's schema ({} and {})",
                self.path.display(),
                self.pushed,
                batch.num_rows(),
                self.schema,
                batch.schema()
            )));
        }
        let rows = batch.num_rows();
        if rows > 0 {
            self.held.push_back((self.rows, batch));
        }
        self.rows += rows;
        self.pushed += 1;
        self.write_groups(false)
    }

    /// Writes the last row group and closes the file.
    pub fn finish(mut self) -> crate::Result<()> {
        if let Some((keep, _)) = &self.keep
            && keep.len() != self.rows
        {
            return Err(crate::Error::Internal(format!(
                "writing {}: {} rows to keep or leave out, but the batches have {}",
                self.path.display(),
                keep.len(),
                self.rows
            )));
        }
        self.write_groups(true)?;
        self.held.clear();
        let fail = |e| crate::Error::io(&self.path, "cannot write", parquet_io(e));
        self.file_writer.close().map_err(fail)?;
        Ok(())
    }

    /// Writes the row groups whose rows have all been pushed (with
    /// `last`, the one the last rows begin too).
    fn write_groups(&mut self, last: bool) -> crate::Result<()> {
        loop {
            let group = self.groups;
            // The group's rows: `group_rows` of them, or (with rows left
            // out) from one group's first kept row to the next's.
            let (start, upto) = match &self.keep {
                None => (group * self.group_rows, (group + 1) * self.group_rows),
                Some((keep, starts)) => match starts.get(group) {
                    Some(&start) => (start, starts.get(group + 1).copied().unwrap_or(keep.len())),
                    None => return Ok(()),
                },
            };
            if self.rows < upto && !last {
                return Ok(());
            }
            let stop = upto.min(self.rows);
            if stop <= start {
                return Ok(());
            }
            // Batches wholly before the group are done with (those
            // before a first kept row).
            while self
                .held
                .front()
                .is_some_and(|(at, b)| at + b.num_rows() <= start)
            {
                self.held.pop_front();
            }
            self.write_group(start, stop)?;
            self.groups += 1;
            // And those wholly in it.
            while self
                .held
                .front()
                .is_some_and(|(at, b)| at + b.num_rows() <= stop)
            {
                self.held.pop_front();
            }
        }
    }

    /// Writes rows `start..stop` as the next row group, its columns
    /// encoded in parallel (the parquet crate's `ArrowWriter` encodes them
    /// one after another); rows are chosen column by column as each is
    /// encoded, not by copying the group's rows first.
    fn write_group(&mut self, start: usize, stop: usize) -> crate::Result<()> {
        use parquet::arrow::arrow_writer::ArrowColumnChunk;
        use rayon::prelude::*;

        let path = &self.path;
        let fail = |e| crate::Error::io(path, "cannot write", parquet_io(e));
        let held = &self.held;
        // Column `c` of the group: a slice of one batch, or the pieces of
        // several joined.
        let rows_of = |c: usize| -> parquet::errors::Result<ArrayRef> {
            let pieces: Vec<ArrayRef> = held
                .iter()
                .filter(|(at, b)| *at < stop && start < at + b.num_rows())
                .map(|(at, b)| {
                    let from = start.max(*at);
                    b.column(c)
                        .slice(from - at, stop.min(at + b.num_rows()) - from)
                })
                .collect();
            match pieces.as_slice() {
                [one] => Ok(one.clone()),
                _ => {
                    let pieces: Vec<&dyn arrow_array::Array> =
                        pieces.iter().map(|p| p.as_ref()).collect();
                    Ok(arrow_select::concat::concat(&pieces)?)
                }
            }
        };
        let predicate = self
            .keep
            .as_ref()
            .map(|(keep, _)| group_filter(keep, start, stop));
        let writers = self
            .factory
            .create_column_writers(self.groups)
            .map_err(fail)?;
        // strata's output columns are flat: one leaf, so one writer, each.
        let chunks = writers
            .into_par_iter()
            .zip(self.file_schema.fields().par_iter())
            .enumerate()
            .map(
                |(c, (writer, field))| -> parquet::errors::Result<ArrowColumnChunk> {
                    encode_chunk(writer, field, rows_of(c)?, predicate.as_ref())
                },
            )
            .collect::<parquet::errors::Result<Vec<_>>>()
            .map_err(fail)?;
        let mut row_group = self.file_writer.next_row_group().map_err(fail)?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group).map_err(fail)?;
        }
        row_group.close().map_err(fail)?;
        Ok(())
    }
}

/// [`Batches`] of batches already made.
#[cfg(test)]
fn write_held(
    path: &std::path::Path,
    batches: &[RecordBatch],
    keep: Option<&arrow_array::BooleanArray>,
    group_rows: usize,
) -> crate::Result<()> {
    let mut file = Batches::keeping(path, batches[0].clone(), keep, group_rows)?;
    for b in &batches[1..] {
        file.push(b.clone())?;
    }
    file.finish()
}

/// The file's schema for columns held as `held` has them. Text held as a
/// dictionary (the population's practice and PCN codes) is written as
/// plain text: the file's Arrow type, which pyarrow, pandas and polars
/// read, does not change with how the run held the codes. The encoder
/// reads a dictionary's values as it reads plain text, so the file is the
/// same, byte for byte, with no plain copy of the column made (a cast of
/// each whole code column had added about 20 MiB to the default model's
/// peak at 1M persons). Likewise counts a run holds in 32 bits are written
/// as `Int64`, each row group's widened as it is encoded, not the whole
/// column at once.
fn file_schema(held: &arrow_schema::Schema) -> arrow_schema::SchemaRef {
    let plain: Vec<arrow_schema::FieldRef> = held
        .fields()
        .iter()
        .map(|f| std::sync::Arc::new(f.as_ref().clone().with_data_type(written(f.data_type()))))
        .collect();
    std::sync::Arc::new(arrow_schema::Schema::new(plain))
}

/// The type a column held as `held` is written as (see [`file_schema`]).
fn written(held: &arrow_schema::DataType) -> arrow_schema::DataType {
    use arrow_schema::DataType;
    match held {
        DataType::Dictionary(_, values) if **values == DataType::Utf8 => DataType::Utf8,
        DataType::UInt32 => DataType::Int64,
        other => other.clone(),
    }
}

/// A file writer on `sink` with strata's settings, and the factory of its
/// row groups' column writers.
fn serialized<W: std::io::Write + Send>(
    sink: W,
    schema: &arrow_schema::SchemaRef,
) -> parquet::errors::Result<(
    parquet::file::writer::SerializedFileWriter<W>,
    parquet::arrow::arrow_writer::ArrowRowGroupWriterFactory,
)> {
    parquet::arrow::ArrowWriter::try_new(sink, schema.clone(), Some(writer_properties().build()))?
        .into_serialized_writer()
}

/// The rows `keep` marks: a null reads as not kept, whatever its value bit.
fn kept_rows(keep: &arrow_array::BooleanArray) -> arrow_array::BooleanArray {
    if arrow_array::Array::null_count(keep) > 0 {
        arrow_select::filter::prep_null_mask_filter(keep)
    } else {
        keep.clone()
    }
}

/// Each row group's first row among `total`: groups of `group_rows` kept
/// rows (`keep`, null-free; `None` keeps all), each group's rows running to
/// the next group's first.
fn group_starts(
    keep: Option<&arrow_array::BooleanArray>,
    total: usize,
    group_rows: usize,
) -> Vec<usize> {
    match keep {
        None => (0..total).step_by(group_rows).collect(),
        Some(keep) => keep.values().set_indices().step_by(group_rows).collect(),
    }
}

/// Which rows of `start..end` are kept: one filter that every column of
/// the row group shares, which copies runs of kept rows whole when most
/// rows are kept (gathering them one index at a time was 3.5% of the
/// default model's CPU at 1M).
fn group_filter(
    keep: &arrow_array::BooleanArray,
    start: usize,
    end: usize,
) -> arrow_select::filter::FilterPredicate {
    arrow_select::filter::FilterBuilder::new(&keep.slice(start, end - start))
        .optimize()
        .build()
}

/// One row group's chunk of one column: `rows` (the group's range of it),
/// less the rows `kept` leaves out, counts widened, encoded and compressed
/// by `writer`.
fn encode_chunk(
    mut writer: parquet::arrow::arrow_writer::ArrowColumnWriter,
    field: &arrow_schema::FieldRef,
    rows: ArrayRef,
    kept: Option<&arrow_select::filter::FilterPredicate>,
) -> parquet::errors::Result<parquet::arrow::arrow_writer::ArrowColumnChunk> {
    let rows = match kept {
        Some(kept) => kept.filter(rows.as_ref())?,
        None => rows,
    };
    let rows = crate::engine::aggregate::widened(rows);
    let step = slice_rows(field, &rows);
    for start in (0..rows.len()).step_by(step) {
        let slice = rows.slice(start, step.min(rows.len() - start));
        for leaf in parquet::arrow::arrow_writer::compute_leaves(field, &slice)? {
            writer.write(&leaf)?;
        }
    }
    writer.close()
}

/// How many of a column's rows to hand its writer at once. The parquet
/// crate lists the rows it is handed that are not null (8 bytes a row):
/// for a whole row group, 8 MiB of fresh memory per column, which Linux
/// zeroes each time. Its writer splits what each call hands it into
/// batches from the call's first row and decides everything (where a page
/// ends, giving up the dictionary, smaller batches for long text) within
/// or at the end of a batch, so slices of whole batches make the same
/// file byte for byte: batches of [`BATCH_ROWS`] where the field cannot be
/// null, of [`PAGE_ROWS`] where it can but this column has no null buffer
/// (or holds only nulls). A column with a null buffer is written in
/// batches of [`BATCH_ROWS`] too, but a slice of it that happened to hold
/// only nulls would be written as such, in the larger batches, so it is
/// handed over whole.
fn slice_rows(field: &arrow_schema::FieldRef, rows: &ArrayRef) -> usize {
    let whole = rows.len().max(1);
    if rows.data_type().is_nested() {
        return whole;
    }
    if !field.is_nullable() {
        return BATCH_ROWS * 64;
    }
    match rows.logical_nulls() {
        Some(nulls) if nulls.null_count() < nulls.len() => whole,
        _ => PAGE_ROWS * 3,
    }
}

/// The parquet crate's batch of a column's rows (its default, which
/// [`writer_properties`] keeps).
const BATCH_ROWS: usize = parquet::file::properties::DEFAULT_WRITE_BATCH_SIZE;

/// The parquet crate's row limit of a data page (its default, which
/// [`writer_properties`] keeps): a nullable column without nulls is
/// written this many rows at a time.
const PAGE_ROWS: usize = parquet::file::properties::DEFAULT_DATA_PAGE_ROW_COUNT_LIMIT;

/// A Parquet file encoded a column at a time, in any order, and written
/// whole by [`Columnwise::write`]: the file [`Batches`] writes of the
/// same columns (tested byte for byte), without the columns ever held
/// together. A run hands `patients.parquet` each feature as soon as it is
/// made ([`crate::output::patients::Table`]) and can let go of the
/// columns nothing later reads; what is held meanwhile is each column's
/// row groups encoded and compressed (about 23 bytes a person for the
/// default model's 130 columns, against some 450 held as Arrow arrays).
pub struct Columnwise {
    /// What the file is, for errors (`patients.parquet`).
    name: String,
    schema: arrow_schema::SchemaRef,
    rows: usize,
    /// Each row group's first row among `rows`, and its kept rows.
    groups: Vec<(usize, Option<arrow_select::filter::FilterPredicate>)>,
    /// Per row group, then column: the column's writer until it is
    /// encoded, then its chunk.
    cells: Vec<std::sync::Mutex<Cell>>,
    /// Per column: whether it has been encoded.
    encoded: Vec<std::sync::atomic::AtomicBool>,
}

enum Cell {
    Waiting(Box<parquet::arrow::arrow_writer::ArrowColumnWriter>),
    Encoding,
    Encoded(Box<parquet::arrow::arrow_writer::ArrowColumnChunk>),
}

impl Columnwise {
    /// A file of columns held as `held` has them (nullable or not), of
    /// `rows` rows, of which those `keep` marks are written (all with
    /// `None`; a null reads as not kept).
    pub fn new(
        name: &str,
        held: &arrow_schema::Schema,
        rows: usize,
        keep: Option<&arrow_array::BooleanArray>,
    ) -> crate::Result<Columnwise> {
        Columnwise::in_groups(name, held, rows, keep, ROW_GROUP_ROWS)
    }

    fn in_groups(
        name: &str,
        held: &arrow_schema::Schema,
        rows: usize,
        keep: Option<&arrow_array::BooleanArray>,
        group_rows: usize,
    ) -> crate::Result<Columnwise> {
        let fail = |e| crate::Error::Internal(format!("encoding {name}: {e}"));
        if keep.is_some_and(|k| k.len() != rows) {
            return Err(crate::Error::Internal(format!(
                "encoding {name}: {rows} rows, a keep mask of {}",
                keep.map_or(0, arrow_array::Array::len)
            )));
        }
        let schema = file_schema(held);
        // The column writers come from a file writer on nothing: the file
        // itself is made by `write`, with the same schema and settings.
        let (_, factory) = serialized(std::io::sink(), &schema).map_err(fail)?;
        let keep = keep.map(kept_rows);
        let starts = group_starts(keep.as_ref(), rows, group_rows);
        let mut cells = Vec::with_capacity(starts.len() * schema.fields().len());
        for group in 0..starts.len() {
            let writers = factory.create_column_writers(group).map_err(fail)?;
            cells.extend(
                writers
                    .into_iter()
                    .map(|w| std::sync::Mutex::new(Cell::Waiting(Box::new(w)))),
            );
        }
        let groups = starts
            .iter()
            .enumerate()
            .map(|(g, &start)| {
                let end = starts.get(g + 1).copied().unwrap_or(rows);
                (
                    start,
                    keep.as_ref().map(|keep| group_filter(keep, start, end)),
                )
            })
            .collect();
        Ok(Columnwise {
            name: name.to_string(),
            encoded: (0..schema.fields().len())
                .map(|_| std::sync::atomic::AtomicBool::new(false))
                .collect(),
            schema,
            rows,
            groups,
            cells,
        })
    }

    /// Whether column `c` has been encoded.
    pub fn is_encoded(&self, c: usize) -> bool {
        self.encoded[c].load(std::sync::atomic::Ordering::Acquire)
    }

    /// Encodes column `c` (its rows kept, by row group in parallel). The
    /// column must have every row, the type the file was made for, and
    /// not have been encoded before.
    pub fn encode(&self, c: usize, column: &ArrayRef) -> crate::Result<()> {
        use rayon::prelude::*;
        let field = &self.schema.fields()[c];
        let internal = |what: String| {
            crate::Error::Internal(format!(
                "encoding {}, column `{}`: {what}",
                self.name,
                field.name()
            ))
        };
        if column.len() != self.rows || written(column.data_type()) != *field.data_type() {
            return Err(internal(format!(
                "{} rows of {}, for {} rows of {}",
                column.len(),
                column.data_type(),
                self.rows,
                field.data_type()
            )));
        }
        if self.encoded[c].swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Err(internal("encoded twice".to_string()));
        }
        let columns = self.schema.fields().len();
        self.groups
            .par_iter()
            .enumerate()
            .try_for_each(|(g, (start, kept))| {
                let cell = &self.cells[g * columns + c];
                let lock = || {
                    cell.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                };
                let Cell::Waiting(writer) = std::mem::replace(&mut *lock(), Cell::Encoding) else {
                    return Err(internal("its writer was taken".to_string()));
                };
                let end = self.groups.get(g + 1).map_or(self.rows, |(next, _)| *next);
                let chunk = encode_chunk(
                    *writer,
                    field,
                    column.slice(*start, end - start),
                    kept.as_ref(),
                )
                .map_err(|e| internal(e.to_string()))?;
                *lock() = Cell::Encoded(Box::new(chunk));
                Ok(())
            })
    }

    /// Writes the file at `path`; every column must have been encoded.
    pub fn write(self, path: &std::path::Path) -> crate::Result<()> {
        let fail = |e| crate::Error::io(path, "cannot write", parquet_io(e));
        let columns = self.schema.fields().len();
        if let Some(c) = (0..columns).find(|&c| !self.is_encoded(c)) {
            return Err(crate::Error::Internal(format!(
                "writing {}: column `{}` was never encoded",
                self.name,
                self.schema.field(c).name()
            )));
        }
        let file =
            std::fs::File::create(path).map_err(|e| crate::Error::io(path, "cannot create", e))?;
        let (mut file_writer, _) = serialized(file, &self.schema).map_err(fail)?;
        let mut cells = self.cells.into_iter();
        for _ in &self.groups {
            let mut row_group = file_writer.next_row_group().map_err(fail)?;
            for cell in cells.by_ref().take(columns) {
                let cell = cell
                    .into_inner()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let Cell::Encoded(chunk) = cell else {
                    return Err(crate::Error::Internal(format!(
                        "writing {}: a column's encoding failed",
                        self.name
                    )));
                };
                chunk.append_to_row_group(&mut row_group).map_err(fail)?;
            }
            row_group.close().map_err(fail)?;
        }
        file_writer.close().map_err(fail)?;
        Ok(())
    }
}

/// A Parquet error as the I/O error behind it where there is one (so a full
/// disk is told as one), or wrapped.
pub fn parquet_io(e: parquet::errors::ParquetError) -> std::io::Error {
    match e {
        parquet::errors::ParquetError::External(inner) => {
            match inner.downcast::<std::io::Error>() {
                Ok(io) => *io,
                Err(other) => std::io::Error::other(other),
            }
        }
        other => std::io::Error::other(other),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    /// Writes ids 0..10 (and a text column with nulls) in row groups of 3,
    /// keeping the rows `keep` marks; returns the row groups' sizes, the ids
    /// and the texts read back.
    fn round_trip(keep: Option<&BooleanArray>) -> (Vec<i64>, Vec<i64>, Vec<Option<String>>) {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..10));
        let texts: ArrayRef = Arc::new(StringArray::from_iter(
            (0..10).map(|i| (i % 4 != 1).then(|| format!("t{i}"))),
        ));
        let batch = RecordBatch::try_from_iter([("id", ids), ("text", texts)]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        super::write_held(&path, &[batch], keep, 3).unwrap();
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap()).unwrap();
        let sizes = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        let (mut got_ids, mut got_texts) = (Vec::new(), Vec::new());
        for batch in reader.build().unwrap() {
            let batch = batch.unwrap();
            got_ids.extend(batch.column(0).as_primitive::<Int64Type>().values());
            got_texts.extend(
                batch
                    .column(1)
                    .as_string::<i32>()
                    .iter()
                    .map(|t| t.map(String::from)),
            );
        }
        (sizes, got_ids, got_texts)
    }

    fn text(i: i64) -> Option<String> {
        (i % 4 != 1).then(|| format!("t{i}"))
    }

    #[test]
    fn every_row_in_groups_of_the_given_size() {
        let (sizes, ids, texts) = round_trip(None);
        assert_eq!(sizes, [3, 3, 3, 1]);
        assert_eq!(ids, (0..10).collect::<Vec<_>>());
        assert_eq!(texts, (0..10).map(text).collect::<Vec<_>>());
    }

    #[test]
    fn several_batches_write_the_file_of_them_joined() {
        let batch = |from: i64, to: i64| {
            let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(from..to));
            let texts: ArrayRef = Arc::new(StringArray::from_iter((from..to).map(text)));
            RecordBatch::try_from_iter([("id", ids), ("text", texts)]).unwrap()
        };
        // Row groups of 3 that begin inside a batch, span three of them,
        // and meet an empty one.
        let parts = [
            batch(0, 4),
            batch(4, 5),
            batch(5, 5),
            batch(5, 6),
            batch(6, 10),
        ];
        let dir = tempfile::tempdir().unwrap();
        let (apart, joined) = (dir.path().join("apart"), dir.path().join("joined"));
        super::write_held(&apart, &parts, None, 3).unwrap();
        let all = arrow_select::concat::concat_batches(&parts[0].schema(), &parts).unwrap();
        super::write_held(&joined, &[all], None, 3).unwrap();
        assert_eq!(
            std::fs::read(&apart).unwrap(),
            std::fs::read(joined).unwrap()
        );
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(apart).unwrap()).unwrap();
        let sizes: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(sizes, [3, 3, 3, 1]);
        // A batch whose column has another type, or nulls where the first
        // has none, is refused.
        let texts: ArrayRef = Arc::new(StringArray::from(vec![Some("t")]));
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        let swapped = RecordBatch::try_from_iter([("id", texts), ("text", ids)]).unwrap();
        let bad = dir.path().join("bad");
        assert!(super::write_held(&bad, &[batch(4, 5), swapped], None, 3).is_err());
        assert!(super::write_held(&bad, &[batch(4, 5), batch(0, 4)], None, 3).is_err());
    }

    #[test]
    fn row_groups_are_written_as_their_rows_come_and_batches_dropped_when_passed() {
        // Row groups of 3 over batches of 4, 1, 0, 1 and 4 rows.
        let sizes = [4usize, 1, 0, 1, 4];
        let mut next = 0;
        let ids: Vec<ArrayRef> = sizes
            .iter()
            .map(|&n| {
                next += n as i64;
                Arc::new(Int64Array::from_iter_values(next - n as i64..next)) as ArrayRef
            })
            .collect();
        let batch = |k: usize| RecordBatch::try_from_iter([("id", ids[k].clone())]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (pushed, joined) = (dir.path().join("pushed"), dir.path().join("joined"));
        let mut file = super::Batches::keeping(&pushed, batch(0), None, 3).unwrap();
        // (row groups written, batches the writer holds) after each push.
        let held = || {
            (0..sizes.len())
                .filter(|&k| Arc::strong_count(&ids[k]) > 1)
                .collect()
        };
        let mut seen: Vec<(usize, Vec<usize>)> = vec![(file.groups, held())];
        for k in 1..sizes.len() {
            file.push(batch(k)).unwrap();
            seen.push((file.groups, held()));
        }
        file.finish().unwrap();
        assert_eq!(
            seen,
            [
                (1, vec![0]),    // rows 0-2 written, row 3 waits
                (1, vec![0, 1]), // rows 3-4
                (1, vec![0, 1]), // no rows: not held
                (2, vec![]),     // rows 3-5 written
                (3, vec![4]),    // rows 6-8 written, row 9 waits
            ]
        );
        let all: Vec<RecordBatch> = (0..sizes.len()).map(batch).collect();
        let whole = arrow_select::concat::concat_batches(&all[0].schema(), &all).unwrap();
        super::write_held(&joined, &[whole], None, 3).unwrap();
        assert_eq!(
            std::fs::read(pushed).unwrap(),
            std::fs::read(joined).unwrap()
        );
        // A batch with no rows kept is checked all the same; a keep mask of
        // other rows than the batches' is refused.
        let none = BooleanArray::from(vec![false; 10]);
        let bad = dir.path().join("bad");
        assert!(super::write_held(&bad, &all, Some(&none), 3).is_ok());
        let fewer = BooleanArray::from(vec![true; 9]);
        assert!(super::write_held(&bad, &all, Some(&fewer), 3).is_err());
    }

    /// Text held as a dictionary is written as plain text: the same file,
    /// byte for byte, as the plain column's, with and without rows left out.
    #[test]
    fn dictionary_text_is_written_as_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let write = |texts: ArrayRef, keep: Option<&BooleanArray>, name: &str| {
            let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..10));
            let batch = RecordBatch::try_from_iter([("id", ids), ("text", texts)]).unwrap();
            let path = dir.path().join(name);
            super::write_held(&path, &[batch], keep, 3).unwrap();
            std::fs::read(path).unwrap()
        };
        let owned: Vec<Option<String>> = (0..10).map(text).collect();
        let texts = || owned.iter().map(|t| t.as_deref());
        let plain: ArrayRef = Arc::new(texts().collect::<StringArray>());
        let dictionary: ArrayRef = Arc::new(
            texts().collect::<arrow_array::DictionaryArray<arrow_array::types::Int32Type>>(),
        );
        let keep = BooleanArray::from((0..10).map(|i| i % 3 != 0).collect::<Vec<_>>());
        for keep in [None, Some(&keep)] {
            assert_eq!(
                write(plain.clone(), keep, "plain.parquet"),
                write(dictionary.clone(), keep, "dictionary.parquet"),
                "kept: {keep:?}"
            );
        }
    }

    /// Columns handed to their writers a slice at a time make the file the
    /// parquet crate's own writer makes of the whole batch, byte for byte:
    /// fields that cannot be null; nullable ones without a null buffer,
    /// with one but no nulls, with a few nulls, with a run of nulls longer
    /// than a slice, all null; integers, floats, true/false, dates, text
    /// (one column past its dictionary's size limit, so written plain from
    /// there) and lists; in row groups of more than one slice and a last
    /// one of less; all rows, and some left out.
    #[test]
    fn columns_written_in_slices_make_the_file_written_whole() {
        use arrow_array::builder::{ListBuilder, StringBuilder};
        use arrow_array::{BooleanArray, Date32Array, Float64Array};
        use arrow_schema::{Field, Schema};
        use parquet::basic::Encoding;
        let n = 300_000usize;
        let group = 128 * 1024;
        let mut list = ListBuilder::new(StringBuilder::new());
        for i in 0..n {
            if i % 7 != 0 {
                list.values().append_value(format!("c{}", i % 13));
                list.append(true);
            } else {
                list.append(i % 2 == 0);
            }
        }
        let all_valid = arrow_buffer::NullBuffer::new_valid(n);
        let columns: Vec<(&str, ArrayRef, bool)> = vec![
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..n as i64)),
                false,
            ),
            (
                "code",
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("C{}", i % 40)),
                )),
                false,
            ),
            (
                "always",
                Arc::new(BooleanArray::from_iter((0..n).map(|i| Some(i % 5 == 0)))),
                false,
            ),
            (
                "flag",
                Arc::new(BooleanArray::from_iter((0..n).map(|i| Some(i % 3 == 0)))),
                true,
            ),
            (
                "count",
                Arc::new(Int64Array::from_iter((0..n).map(|i| Some((i % 17) as i64)))),
                true,
            ),
            (
                "buffered",
                Arc::new(Int64Array::new(
                    (0..n as i64).map(|i| i % 11).collect(),
                    Some(all_valid),
                )),
                true,
            ),
            (
                "score",
                Arc::new(Float64Array::from_iter_values(
                    (0..n).map(|i| (i % 97) as f64 / 7.0),
                )),
                true,
            ),
            (
                "sparse",
                Arc::new(Int64Array::from_iter((0..n).map(|i| {
                    (i % 1000 == 0 && !(100_000..250_000).contains(&i)).then_some(i as i64)
                }))),
                true,
            ),
            (
                "none",
                Arc::new(Int64Array::from_iter((0..n).map(|_| None::<i64>))),
                true,
            ),
            (
                "text",
                Arc::new(StringArray::from_iter_values((0..n).map(|i| {
                    format!("a distinct text long enough to pass the dictionary's limit {i:>12}")
                }))),
                true,
            ),
            (
                "day",
                Arc::new(Date32Array::from_iter(
                    (0..n).map(|i| (i % 5 != 0).then_some(i as i32)),
                )),
                true,
            ),
            ("list", Arc::new(list.finish()), true),
        ];
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(name, a, nullable)| Field::new(*name, a.data_type().clone(), *nullable))
                .collect::<Vec<_>>(),
        ));
        let batch =
            RecordBatch::try_new(schema.clone(), columns.into_iter().map(|c| c.1).collect())
                .unwrap();
        let keep = BooleanArray::from((0..n).map(|i| i % 9 != 4).collect::<Vec<_>>());
        let dir = tempfile::tempdir().unwrap();
        for keep in [None, Some(&keep)] {
            let (sliced, whole) = (dir.path().join("sliced"), dir.path().join("whole"));
            super::write_held(&sliced, std::slice::from_ref(&batch), keep, group).unwrap();
            let kept = match keep {
                Some(keep) => arrow_select::filter::filter_record_batch(&batch, keep).unwrap(),
                None => batch.clone(),
            };
            let props = super::writer_properties()
                .set_max_row_group_row_count(Some(group))
                .build();
            let mut writer = parquet::arrow::ArrowWriter::try_new(
                std::fs::File::create(&whole).unwrap(),
                schema.clone(),
                Some(props),
            )
            .unwrap();
            writer.write(&kept).unwrap();
            writer.close().unwrap();
            assert_eq!(
                std::fs::read(&sliced).unwrap(),
                std::fs::read(&whole).unwrap(),
                "kept: {}",
                keep.is_some()
            );
            // The long text gave up its dictionary within the first group
            // (some of its data pages plain), the short codes did not.
            let file =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&sliced).unwrap())
                    .unwrap();
            let plain = |column: &str| {
                let at = schema.index_of(column).unwrap();
                let chunk = file.metadata().row_group(0).column(at);
                chunk
                    .page_encoding_stats_mask()
                    .unwrap()
                    .is_set(Encoding::PLAIN)
            };
            assert!(plain("text") && !plain("code"));
        }
    }

    /// The batch sizes [`super::slice_rows`] counts on are the writer's.
    #[test]
    fn slices_are_counted_in_the_writers_batches() {
        let props = super::writer_properties().build();
        assert_eq!(props.write_batch_size(), super::BATCH_ROWS);
        let column = parquet::schema::types::ColumnPath::from("any");
        assert_eq!(
            props.column_data_page_row_count_limit(&column),
            super::PAGE_ROWS
        );
    }

    #[test]
    fn only_kept_rows_each_group_full_but_the_last() {
        // Rows 0 and 5 left out, row 4 null (its value bit set: still out).
        let keep = BooleanArray::new(
            [false, true, true, true, true, false, true, true, true, true]
                .into_iter()
                .collect(),
            Some(
                [true, true, true, true, false, true, true, true, true, true]
                    .into_iter()
                    .collect(),
            ),
        );
        let (sizes, ids, texts) = round_trip(Some(&keep));
        let kept = [1, 2, 3, 6, 7, 8, 9];
        assert_eq!(sizes, [3, 3, 1]);
        assert_eq!(ids, kept);
        assert_eq!(texts, kept.map(text));
        // Nothing kept: no row groups.
        let none = BooleanArray::from(vec![false; 10]);
        assert_eq!(round_trip(Some(&none)), (vec![], vec![], vec![]));
    }

    /// Encoded a column at a time, in any order, the file is the one
    /// written of the columns together: with and without rows left out,
    /// text held as a dictionary, counts held in 32 bits.
    #[test]
    fn a_file_encoded_column_by_column_is_the_file_of_the_columns_together() {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..10));
        let texts: ArrayRef = Arc::new(
            (0..10)
                .map(text)
                .collect::<Vec<_>>()
                .iter()
                .map(Option::as_deref)
                .collect::<arrow_array::DictionaryArray<arrow_array::types::Int32Type>>(),
        );
        let counts: ArrayRef = Arc::new(arrow_array::UInt32Array::from_iter(
            (0..10u32).map(|i| (i % 3 != 0).then_some(i * 7)),
        ));
        let batch =
            RecordBatch::try_from_iter([("id", ids), ("text", texts), ("n", counts)]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // Row 4 null (its value bit set: not kept), rows 0 and 5 out.
        let keep = BooleanArray::new(
            (0..10).map(|i| i != 0 && i != 5).collect(),
            Some((0..10).map(|i| i != 4).collect()),
        );
        let none = BooleanArray::from(vec![false; 10]);
        for keep in [None, Some(&keep), Some(&none)] {
            let together = dir.path().join("together");
            super::write_held(&together, std::slice::from_ref(&batch), keep, 3).unwrap();
            let apart = dir.path().join("apart");
            let columns = super::Columnwise::in_groups("t", &batch.schema(), 10, keep, 3).unwrap();
            for c in [2, 0, 1] {
                assert!(!columns.is_encoded(c));
                columns.encode(c, batch.column(c)).unwrap();
                assert!(columns.is_encoded(c));
            }
            columns.write(&apart).unwrap();
            assert_eq!(
                std::fs::read(&together).unwrap(),
                std::fs::read(&apart).unwrap(),
                "kept: {keep:?}"
            );
        }
    }

    #[test]
    fn a_column_encoded_twice_or_never_or_of_another_shape_is_refused() {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..10));
        let batch =
            RecordBatch::try_from_iter([("id", ids.clone()), ("other", ids.clone())]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let columns = super::Columnwise::in_groups("t", &batch.schema(), 10, None, 3).unwrap();
        let short: ArrayRef = Arc::new(Int64Array::from_iter_values(0..9));
        let texts: ArrayRef = Arc::new(StringArray::from_iter((0..10).map(text)));
        assert!(columns.encode(0, &short).is_err());
        assert!(columns.encode(0, &texts).is_err());
        assert!(!columns.is_encoded(0), "a refused column is not encoded");
        columns.encode(0, &ids).unwrap();
        assert!(columns.encode(0, &ids).is_err(), "twice");
        let path = dir.path().join("t");
        let e = columns.write(&path).unwrap_err();
        assert!(e.to_string().contains("`other` was never encoded"), "{e}");
    }
}
