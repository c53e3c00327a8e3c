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
