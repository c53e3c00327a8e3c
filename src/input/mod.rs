//! The input side: finding Parquet tables in the data folder and loading the
//! registered population that every other table is keyed on.
//!
//! The data contract (`docs/data-contract.md`) is enforced here: which
//! physical types are accepted for each role, how part-file folders are read,
//! and what happens to rows that break it.

pub mod pcns;
pub mod population;
pub mod table;

pub use population::Population;
pub use table::Table;
