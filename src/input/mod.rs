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
pub use table::Table;

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
