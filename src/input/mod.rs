//! The input side: finding Parquet tables in the data folder and loading the
//! registered population that every other table is keyed on.
//!
//! The data contract (`docs/data-contract.md`) is enforced here: which
//! physical types are accepted for each role, how part-file folders are read,
//! and what happens to rows that break it.

pub mod events;
pub mod pcns;
pub mod population;
pub mod table;

pub use population::Population;

/// The optional table of practice registrations (see
/// `engine::registrations` and docs/data-contract.md).
pub const REGISTRATIONS: &str = "registrations";

/// Refuses a `--data` that is not a folder: missing, or a file (one table
/// given where the folder of them is wanted).
pub fn data_folder(data: &std::path::Path) -> crate::error::Result<()> {
    let problem = match data.is_file() {
        true => "--data names a file, not the folder of tables",
        false if !data.is_dir() => "data folder not found",
        false => return Ok(()),
    };
    Err(crate::error::Error::data(data, problem)
        .with_help("give --data the folder that holds the extract's Parquet tables (NAME.parquet files or NAME/ folders of parts)"))
}
pub use table::Table;

/// `manifest.json` counts skipped rows by source name, beside those of the
/// population's table and of [`REGISTRATIONS`]: a source named as one of
/// them would hide its counts (and `--strict` would miss them). Checked by
/// every command that reads a rule file's sources: a run, `check` (with or
/// without data) and `compile`.
pub fn unshadowed(model: &crate::rules::Model) -> crate::error::Result<()> {
    let taken = [model.population.table.as_str(), REGISTRATIONS];
    match model.sources.iter().find(|s| taken.contains(&s.name.as_str())) {
        Some(s) => Err(crate::error::Error::usage(format!(
            "source `{}` has the name of a table whose skipped rows manifest.json counts under that name",
            s.name
        ))
        .with_help(format!(
            "rename [sources.{}] in {} (its `table` may stay)",
            s.name,
            model.path.display()
        ))),
        None => Ok(()),
    }
}

/// A row skipped for a problem in the data, and where it is, for
/// `OUT/rejects/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RejectedRow {
    pub part: usize,
    pub row_group: usize,
    /// Row within the row group.
    pub row: u64,
    pub reason: &'static str,
    /// The person id as stored, if any.
    pub person_id: Option<String>,
    /// The person's row in the population, where the id is registered
    /// there: found when the row is kept, so that the outputs can leave
    /// out a withheld person's rows (an opt-out) without the person index,
    /// which a run frees before them ([`population::Population::release_index`]).
    pub person: Option<u32>,
    pub date: Option<i32>,
}

/// Rejected rows written per table; the counts are always complete.
pub const REJECTS_KEPT: usize = 10_000;
