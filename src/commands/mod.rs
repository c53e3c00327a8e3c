//! The commands that are not a stage of the pipeline: each file is named
//! after the command it serves (`strata test`, `diff`, `explain`, `init`,
//! `evaluate`),
//! with what `strata run` shows a person at the terminal (`run`: the
//! summary; `progress`: bars and spinners). They use the pipeline
//! (`rules` -> `engine` -> `output`); nothing in the pipeline uses them.

pub mod diff;
pub mod evaluate;
pub mod explain;
pub mod init;
pub mod progress;
pub mod run;
pub mod test;
