//! The Parquet settings of every file strata writes (its outputs and the
//! generator's tables), so they cannot drift apart: zstd, row groups of about
//! a million rows, dictionaries for codes and labels but not for the random
//! person ids (a dictionary of distinct values only costs), a dictionary page
//! large enough for a 20,000-code vocabulary to stay dictionary-encoded, and
//! page statistics so readers can skip what they don't need.

use arrow_array::ArrayRef;
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

/// Writes the rows of `batch` that `keep` marks (all of them with `None`)
/// as one Parquet file with strata's settings, encoding the columns of each
/// row group in parallel (the parquet crate's `ArrowWriter` encodes them one
/// after another). Rows are chosen column by column as each is encoded, not
/// by copying the whole table first: at 1M persons the copy doubled the
/// default model's peak memory. They are chosen by one filter per row
/// group that every column shares, which copies runs of kept rows whole
/// when most rows are kept (gathering them one index at a time was 3.5% of
/// the default model's CPU at 1M).
pub fn write_batch(
    path: &std::path::Path,
    batch: &arrow_array::RecordBatch,
    keep: Option<&arrow_array::BooleanArray>,
) -> crate::Result<()> {
    write_groups(path, std::slice::from_ref(batch), keep, ROW_GROUP_ROWS)
}

/// [`write_batch`] of several batches of one schema, one after another,
/// without joining them first: each row group's column is joined from the
/// batches' pieces as it is encoded, in parallel. The file is the one
/// [`write_batch`] writes of the batches joined.
pub fn write_batches(
    path: &std::path::Path,
    batches: &[arrow_array::RecordBatch],
) -> crate::Result<()> {
    write_groups(path, batches, None, ROW_GROUP_ROWS)
}

/// [`write_batch`] of `batches` one after another (`keep` marks rows of
/// them all), with row groups of `group_rows` rows.
fn write_groups(
    path: &std::path::Path,
    batches: &[arrow_array::RecordBatch],
    keep: Option<&arrow_array::BooleanArray>,
    group_rows: usize,
) -> crate::Result<()> {
    use arrow_select::filter::{FilterBuilder, prep_null_mask_filter};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_writer::{ArrowColumnChunk, compute_leaves};
    use rayon::prelude::*;

    let fail = |e| crate::Error::io(path, "cannot write", parquet_io(e));
    let Some(first) = batches.first() else {
        return Err(crate::Error::Internal(format!(
            "writing {}: no batch to write",
            path.display()
        )));
    };
    let schema = first.schema();
    // The file's schema is the first batch's: every batch must have its
    // columns' types, and no nulls where it has none.
    let fits = |b: &arrow_array::RecordBatch| {
        b.num_columns() == schema.fields().len()
            && schema.fields().iter().zip(b.columns()).all(|(f, c)| {
                f.data_type() == c.data_type()
                    && (f.is_nullable() || arrow_array::Array::null_count(c.as_ref()) == 0)
            })
    };
    if let Some(other) = batches.iter().find(|b| !fits(b)) {
        return Err(crate::Error::Internal(format!(
            "writing {}: batches of two schemas ({} and {})",
            path.display(),
            schema,
            other.schema()
        )));
    }
    let file =
        std::fs::File::create(path).map_err(|e| crate::Error::io(path, "cannot create", e))?;
    let writer = ArrowWriter::try_new(file, schema.clone(), Some(writer_properties().build()))
        .map_err(fail)?;
    let (mut file_writer, factory) = writer.into_serialized_writer().map_err(fail)?;
    // Where each batch starts among all rows, and where they end.
    let offsets: Vec<usize> = std::iter::once(0)
        .chain(batches.iter().scan(0, |end, b| {
            *end += b.num_rows();
            Some(*end)
        }))
        .collect();
    let rows = offsets[batches.len()];
    // A null reads as not kept, whatever its value bit.
    let keep = keep.map(|keep| {
        if arrow_array::Array::null_count(keep) > 0 {
            prep_null_mask_filter(keep)
        } else {
            keep.clone()
        }
    });
    // Each row group's rows: the range holding its kept rows (the first of
    // them to the next group's first).
    let starts: Vec<usize> = match &keep {
        None => (0..rows).step_by(group_rows).collect(),
        Some(keep) => keep.values().set_indices().step_by(group_rows).collect(),
    };
    // Column `c` of rows `start..end`: a slice of one batch, or the pieces
    // of several joined.
    let rows_of = |c: usize, start: usize, end: usize| -> parquet::errors::Result<ArrayRef> {
        let pieces: Vec<ArrayRef> = batches
            .iter()
            .zip(offsets.windows(2))
            .filter(|(_, at)| at[0] < end && start < at[1])
            .map(|(b, at)| {
                let from = start.max(at[0]);
                b.column(c).slice(from - at[0], end.min(at[1]) - from)
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
    for (group, &start) in starts.iter().enumerate() {
        let end = starts.get(group + 1).copied().unwrap_or(rows);
        // Which rows of the range are kept (`None`: all of them).
        let predicate = keep.as_ref().map(|keep| {
            FilterBuilder::new(&keep.slice(start, end - start))
                .optimize()
                .build()
        });
        let writers = factory.create_column_writers(group).map_err(fail)?;
        // strata's output columns are flat: one leaf, so one writer, each.
        let chunks = writers
            .into_par_iter()
            .zip(schema.fields().par_iter())
            .enumerate()
            .map(
                |(c, (mut writer, field))| -> parquet::errors::Result<ArrowColumnChunk> {
                    let array = rows_of(c, start, end)?;
                    let array = match &predicate {
                        Some(predicate) => predicate.filter(array.as_ref())?,
                        None => array,
                    };
                    for leaf in compute_leaves(field, &array)? {
                        writer.write(&leaf)?;
                    }
                    writer.close()
                },
            )
            .collect::<parquet::errors::Result<Vec<_>>>()
            .map_err(fail)?;
        let mut row_group = file_writer.next_row_group().map_err(fail)?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group).map_err(fail)?;
        }
        row_group.close().map_err(fail)?;
    }
    file_writer.close().map_err(fail)?;
    Ok(())
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
        super::write_groups(&path, &[batch], keep, 3).unwrap();
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
        super::write_groups(&apart, &parts, None, 3).unwrap();
        let all = arrow_select::concat::concat_batches(&parts[0].schema(), &parts).unwrap();
        super::write_groups(&joined, &[all], None, 3).unwrap();
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
        assert!(super::write_groups(&bad, &[batch(4, 5), swapped], None, 3).is_err());
        assert!(super::write_groups(&bad, &[batch(4, 5), batch(0, 4)], None, 3).is_err());
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
}
