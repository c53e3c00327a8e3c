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

/// Writes the rows of `batch` that `keep` marks (all of them with `None`)
/// as one Parquet file with strata's settings, encoding the columns of each
/// row group in parallel (the parquet crate's `ArrowWriter` encodes them one
/// after another). Rows are chosen column by column as each is encoded, not
/// by copying the whole table first: at 1M persons the copy doubled the
/// default model's peak memory. They are chosen by one filter per row
/// group that every column shares, which copies runs of kept rows whole
/// when most rows are kept (gathering them one index at a time was 3.5% of
/// the default model's CPU at 1M). Text held as a dictionary is written as
/// plain text, and counts held in 32 bits (`UInt32`) as the 64-bit whole
/// numbers they are in the rules.
pub fn write_batch(
    path: &std::path::Path,
    batch: &RecordBatch,
    keep: Option<&arrow_array::BooleanArray>,
) -> crate::Result<()> {
    write_held(path, std::slice::from_ref(batch), keep, ROW_GROUP_ROWS)
}

/// [`write_batch`] of several batches of one schema, one after another,
/// without joining them: batch `k`, of `rows[k]` rows, is made by
/// `make(k)` when the first row group holding its rows is written, and
/// dropped after the last. The file is the one [`write_batch`] writes of
/// the batches joined. `strata evaluate` writes a batch per as-of date this
/// way: 12 dates' batches made together had raised its peak memory at 5M
/// persons by about 0.9 GiB.
pub fn write_batches(
    path: &std::path::Path,
    rows: &[usize],
    make: &(dyn Fn(usize) -> crate::Result<RecordBatch> + Sync),
) -> crate::Result<()> {
    write_groups(path, rows, make, None, ROW_GROUP_ROWS)
}

/// [`write_groups`] of batches already made.
fn write_held(
    path: &std::path::Path,
    batches: &[RecordBatch],
    keep: Option<&arrow_array::BooleanArray>,
    group_rows: usize,
) -> crate::Result<()> {
    let rows: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
    write_groups(path, &rows, &|k| Ok(batches[k].clone()), keep, group_rows)
}

/// [`write_batch`] of the batches `make` makes, `rows[k]` rows each, one
/// after another (`keep` marks rows of them all), with row groups of
/// `group_rows` rows. Each batch is made in time for the first row group
/// that holds its rows (several at once in parallel) and dropped once a
/// row group starts past its end.
fn write_groups(
    path: &std::path::Path,
    rows: &[usize],
    make: &(dyn Fn(usize) -> crate::Result<RecordBatch> + Sync),
    keep: Option<&arrow_array::BooleanArray>,
    group_rows: usize,
) -> crate::Result<()> {
    use arrow_schema::{DataType, Field, Schema};
    use arrow_select::filter::{FilterBuilder, prep_null_mask_filter};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_writer::{ArrowColumnChunk, compute_leaves};
    use rayon::prelude::*;
    use std::sync::Arc;

    let fail = |e| crate::Error::io(path, "cannot write", parquet_io(e));
    if rows.is_empty() {
        return Err(crate::Error::Internal(format!(
            "writing {}: no batch to write",
            path.display()
        )));
    }
    let first = make(0)?;
    let schema = first.schema();
    // The file's schema is the first batch's: every batch must have its
    // columns' types, its number of rows, and no nulls where it has none.
    let fits = |k: usize, b: &RecordBatch| -> crate::Result<()> {
        let same = b.num_columns() == schema.fields().len()
            && b.num_rows() == rows[k]
            && schema.fields().iter().zip(b.columns()).all(|(f, c)| {
                f.data_type() == c.data_type()
                    && (f.is_nullable() || arrow_array::Array::null_count(c.as_ref()) == 0)
            });
        if same {
            Ok(())
        } else {
            Err(crate::Error::Internal(format!(
                "writing {}: batch {k} of {} rows does not fit the first's schema ({} and {})",
                path.display(),
                b.num_rows(),
                schema,
                b.schema()
            )))
        }
    };
    fits(0, &first)?;
    // Text held as a dictionary (the population's practice and PCN codes)
    // is written as plain text: the file's Arrow type, which pyarrow,
    // pandas and polars read, does not change with how the run held the
    // codes. The encoder reads a dictionary's values as it reads plain
    // text, so the file is the same, byte for byte, with no plain copy of
    // the column made (a cast of each whole code column had added about
    // 20 MiB to the default model's peak at 1M persons).
    // Likewise counts a run holds in 32 bits are written as `Int64`, each
    // row group's widened as it is encoded, not the whole column at once.
    let plain: Vec<Arc<Field>> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, values) if **values == DataType::Utf8 => {
                Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8))
            }
            DataType::UInt32 => Arc::new(f.as_ref().clone().with_data_type(DataType::Int64)),
            _ => f.clone(),
        })
        .collect();
    let file_schema = Arc::new(Schema::new(plain));
    let file =
        std::fs::File::create(path).map_err(|e| crate::Error::io(path, "cannot create", e))?;
    let writer = ArrowWriter::try_new(file, file_schema.clone(), Some(writer_properties().build()))
        .map_err(fail)?;
    let (mut file_writer, factory) = writer.into_serialized_writer().map_err(fail)?;
    // Where each batch starts among all rows, and where they end.
    let offsets: Vec<usize> = std::iter::once(0)
        .chain(rows.iter().scan(0, |end, &r| {
            *end += r;
            Some(*end)
        }))
        .collect();
    let batches = rows.len();
    let total = offsets[batches];
    // The batches made and not yet dropped; `made` is the first not made.
    let mut held: Vec<Option<RecordBatch>> = vec![None; batches];
    held[0] = Some(first);
    let mut made = 1;
    // Makes the batches `made..upto`, in parallel, and checks them.
    let make_upto =
        |held: &mut [Option<RecordBatch>], made: &mut usize, upto: usize| -> crate::Result<()> {
            let new = (*made..upto)
                .into_par_iter()
                .map(|k| make(k).and_then(|b| fits(k, &b).map(|()| b)))
                .collect::<crate::Result<Vec<_>>>()?;
            for (k, b) in (*made..upto).zip(new) {
                held[k] = Some(b);
            }
            *made = upto.max(*made);
            Ok(())
        };
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
        None => (0..total).step_by(group_rows).collect(),
        Some(keep) => keep.values().set_indices().step_by(group_rows).collect(),
    };
    // Column `c` of rows `start..end`: a slice of one batch, or the pieces
    // of several joined.
    let rows_of = |held: &[Option<RecordBatch>],
                   c: usize,
                   start: usize,
                   end: usize|
     -> parquet::errors::Result<ArrayRef> {
        let pieces: Vec<ArrayRef> = held
            .iter()
            .zip(offsets.windows(2))
            .filter(|(_, at)| at[0] < end && start < at[1])
            .map(|(b, at)| {
                let b = b.as_ref().expect("a batch of the group is made");
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
        let end = starts.get(group + 1).copied().unwrap_or(total);
        // Batches wholly before the group are done with; those starting
        // before its end are needed (and made, to be checked, if none of
        // their rows are kept).
        let passed = |held: &mut [Option<RecordBatch>]| {
            for (b, at) in held.iter_mut().zip(offsets.windows(2)) {
                if at[1] <= start {
                    *b = None;
                }
            }
        };
        passed(&mut held);
        let upto = offsets[..batches].partition_point(|&at| at < end);
        make_upto(&mut held, &mut made, upto)?;
        passed(&mut held);
        let held = &held;
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
            .zip(file_schema.fields().par_iter())
            .enumerate()
            .map(
                |(c, (mut writer, field))| -> parquet::errors::Result<ArrowColumnChunk> {
                    let array = rows_of(held, c, start, end)?;
                    let array = match &predicate {
                        Some(predicate) => predicate.filter(array.as_ref())?,
                        None => array,
                    };
                    let array = crate::engine::aggregate::widened(array);
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
    // Batches after the last group's rows (empty, or none of their rows
    // kept) are made too, to be checked like the others.
    held.iter_mut().for_each(|b| *b = None);
    while made < batches {
        let k = made;
        make_upto(&mut held, &mut made, k + 1)?;
        held[k] = None;
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
    fn batches_are_made_once_each_when_needed_and_dropped_when_passed() {
        // Row groups of 3 over batches of 4, 1, 0, 1 and 4 rows: batches
        // 1 to 3 are needed by the second group, batch 4 by the third,
        // which starts after batches 0 to 3 end.
        let sizes = [4usize, 1, 0, 1, 4];
        let mut next = 0;
        let ids: Vec<ArrayRef> = sizes
            .iter()
            .map(|&n| {
                next += n as i64;
                Arc::new(Int64Array::from_iter_values(next - n as i64..next)) as ArrayRef
            })
            .collect();
        // (batch made, earlier batches the writer still held then)
        let made = std::sync::Mutex::new(Vec::new());
        let make = |k: usize| {
            let held: Vec<usize> = (0..k).filter(|&j| Arc::strong_count(&ids[j]) > 1).collect();
            made.lock().unwrap().push((k, held));
            Ok(RecordBatch::try_from_iter([("id", ids[k].clone())]).unwrap())
        };
        let dir = tempfile::tempdir().unwrap();
        let (lazy, joined) = (dir.path().join("lazy"), dir.path().join("joined"));
        super::write_groups(&lazy, &sizes, &make, None, 3).unwrap();
        let mut made = made.into_inner().unwrap();
        made.sort();
        let order: Vec<usize> = made.iter().map(|(k, _)| *k).collect();
        assert_eq!(order, [0, 1, 2, 3, 4], "each batch made once");
        // Batches 1 to 3 are made (in parallel) while batch 0 is held;
        // batch 4 once the others are dropped.
        assert!(made[1..4].iter().all(|(_, held)| held.contains(&0)));
        assert_eq!(made[4].1, Vec::<usize>::new());
        let all: Vec<RecordBatch> = (0..sizes.len())
            .map(|k| RecordBatch::try_from_iter([("id", ids[k].clone())]).unwrap())
            .collect();
        super::write_held(&joined, &all, None, 3).unwrap();
        assert_eq!(std::fs::read(lazy).unwrap(), std::fs::read(joined).unwrap());
        // A batch with no rows kept is made and checked all the same; one
        // of other rows than announced is refused.
        let none = BooleanArray::from(vec![false; 10]);
        let bad = dir.path().join("bad");
        assert!(super::write_held(&bad, &all, Some(&none), 3).is_ok());
        let short = |k: usize| Ok(all[k.min(1)].clone());
        assert!(super::write_groups(&bad, &[4, 4], &short, None, 3).is_err());
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
