//! The Parquet settings of every file strata writes (its outputs and the
//! generator's tables), so they cannot drift apart: zstd, row groups of about
//! a million rows, dictionaries for codes and labels but not for the random
//! person ids (a dictionary of distinct values only costs), a dictionary page
//! large enough for a 20,000-code vocabulary to stay dictionary-encoded, and
//! page statistics so readers can skip what they don't need.

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
/// default model's peak memory.
pub fn write_batch(
    path: &std::path::Path,
    batch: &arrow_array::RecordBatch,
    keep: Option<&arrow_array::BooleanArray>,
) -> crate::Result<()> {
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_writer::{ArrowColumnChunk, compute_leaves};
    use rayon::prelude::*;

    let fail = |e| crate::Error::io(path, "cannot write", parquet_io(e));
    let file =
        std::fs::File::create(path).map_err(|e| crate::Error::io(path, "cannot create", e))?;
    let schema = batch.schema();
    let writer = ArrowWriter::try_new(file, schema.clone(), Some(writer_properties().build()))
        .map_err(fail)?;
    let (mut file_writer, factory) = writer.into_serialized_writer().map_err(fail)?;
    // The rows written, as indices into `batch` where some are left out.
    let kept: Option<arrow_array::UInt32Array> = keep.map(|keep| {
        (0..keep.len() as u32)
            .filter(|&row| keep.value(row as usize))
            .collect()
    });
    let rows = kept.as_ref().map_or(batch.num_rows(), |k| k.len());
    for (group, start) in (0..rows).step_by(ROW_GROUP_ROWS).enumerate() {
        let len = ROW_GROUP_ROWS.min(rows - start);
        let indices = kept.as_ref().map(|k| k.slice(start, len));
        let writers = factory.create_column_writers(group).map_err(fail)?;
        // strata's output columns are flat: one leaf, so one writer, each.
        let chunks = writers
            .into_par_iter()
            .zip(batch.columns().par_iter())
            .zip(schema.fields().par_iter())
            .map(
                |((mut writer, column), field)| -> parquet::errors::Result<ArrowColumnChunk> {
                    let array = match &indices {
                        Some(indices) => arrow_select::take::take(column.as_ref(), indices, None)?,
                        None => column.slice(start, len),
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
