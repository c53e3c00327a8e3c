//! strata: risk stratification for NHS Population Health Management.
//!
//! The pipeline, one module per stage:
//! [`rules`] (read and check a rule file) -> [`input`] (find the Parquet
//! tables, load the population) -> [`engine`] (plan, scan events in parallel,
//! derive features, decide cohorts) -> [`output`] (write the per-person
//! table, per-PCN lists and manifest, atomically). [`generate`] makes a
//! synthetic population in the same data contract, for trying and testing
//! the rest. [`sql`] is the second backend: it compiles the same typed
//! model to Spark SQL or DuckDB SQL, for data that lives in a warehouse.
//! The commands built on these stages are in [`commands`].

pub mod bundled;
pub mod commands;
pub mod dates;
pub mod engine;
pub mod error;
pub mod generate;
pub mod input;
pub mod output;
pub mod rules;
pub mod sql;
pub mod suppress;

pub use error::{Error, Result};
