//! `strata generate`: a synthetic population with three years of activity,
//! written in the shape of the data contract (`patients`, `pcns`,
//! `ae_attendances`, `admissions`, `gp_events`, `medications`,
//! `observations`, `registrations`).
//!
//! The population looks like an English city's (Southampton's age structure,
//! PCNs and deprivation) and its risk is correlated the way it is in life, so
//! that every bundled model finds a plausible cohort in it: see
//! `population.rs` for persons and places, `registrations.rs` for who was
//! registered where and when, `activity.rs` for events, `observations.rs`
//! for measured values,
//! `vocabulary.rs` for the codes, `tables.rs` for ordering and Parquet.
//!
//! # Determinism
//!
//! The same options give byte-identical files whatever the thread count.
//! Persons are simulated in fixed-size chunks, each with its own random
//! stream seeded from the seed and the chunk's index (never from a thread),
//! chunks are collected in index order, and events are put in date order by
//! a stable counting sort. Places and pseudonymous ids come from a separate
//! stream seeded from the seed alone.
//!
//! # Output folder
//!
//! `--out` may be missing (it is created), empty, or hold an earlier
//! generator output: only `NAME.parquet` files and `NAME/part-NNNNN.parquet`
//! folders for the eight table names. Those are deleted and rewritten, so that
//! a table that changed between a single file and a folder of parts never
//! leaves both behind (which readers reject). Anything else in the folder
//! stops the run before a file is touched: the generator never deletes what
//! it did not write.

mod activity;
mod observations;
mod population;
mod registrations;
mod tables;
#[cfg(test)]
mod tests;
mod vocabulary;

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

use activity::{Activity, Events};
use population::{City, Person, PersonDraw, Window};
use tables::{Dataset, Layout, order_by_day};
use vocabulary::Vocabulary;

/// Activity covers the three years ending on this date by default.
pub const DEFAULT_END_DATE: &str = "2026-03-31";

/// What to generate and where.
pub struct GenerateOptions {
    /// Number of registered persons (including those who die in the window).
    pub patients: usize,
    pub seed: u64,
    /// Output folder for the tables.
    pub out: PathBuf,
    /// Last day of the three years of activity.
    pub end_date: chrono::NaiveDate,
}

/// What was written.
pub struct GenerateSummary {
    /// Table name and rows written, in a fixed order.
    pub tables: Vec<(String, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(
        "cannot generate activity ending on {end_date}: choose an end date between 1900-01-01 and 9999-12-31"
    )]
    EndDate { end_date: chrono::NaiveDate },
    #[error(
        "{patients} patients is more than one run can generate ({max}); generate several populations with different seeds instead"
    )]
    TooManyPatients { patients: usize, max: usize },
    #[error("output path {} exists and is not a folder: give --out a folder path", path.display())]
    NotAFolder { path: PathBuf },
    #[error(
        "output folder {} holds {}, which `strata generate` did not write: choose a new or empty folder for --out (only an earlier generator output is replaced)",
        folder.display(),
        entry.display()
    )]
    ForeignOutput { folder: PathBuf, entry: PathBuf },
    #[error("could not {action} {}: {source}; check that the folder is writable and the disk has space", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("could not write Parquet file {}: {source}; check that the folder is writable and the disk has space", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("internal error building a batch for {}: {source}; this is a bug in the generator, please report it", path.display())]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow_schema::ArrowError,
    },
}

/// Persons per random stream. Fixed, because chunking decides which random
/// numbers each person gets: changing it changes every output.
const CHUNK_PERSONS: usize = 4_096;
/// Odd multiplier spreading chunk indices over the seed space.
const CHUNK_SEED_STRIDE: u64 = 0xD1B5_4A32_D192_ED03;

/// At the library's edge a generator error is a user error (a path, a
/// folder, a disk), except a batch that could not be built, which is a bug.
impl From<GenerateError> for crate::Error {
    fn from(e: GenerateError) -> Self {
        match e {
            GenerateError::Arrow { .. } => crate::Error::Internal(e.to_string()),
            _ => crate::Error::usage(e.to_string()),
        }
    }
}

/// Generates the tables described by `opts` into `opts.out`.
pub fn generate(opts: &GenerateOptions) -> Result<GenerateSummary, GenerateError> {
    generate_with_layout(opts, &Layout::default())
}

fn generate_with_layout(
    opts: &GenerateOptions,
    layout: &Layout,
) -> Result<GenerateSummary, GenerateError> {
    let window = check_options(opts)?;
    prepare_output(&opts.out)?;
    tracing::info!(patients = opts.patients, seed = opts.seed, end_date = %opts.end_date, "generating population");

    let vocabulary = Vocabulary::load();
    let mut population_rng = Xoshiro256PlusPlus::seed_from_u64(opts.seed);
    let city = City::new(opts.patients, &mut population_rng);
    let draw = PersonDraw::new(&city, window);
    let activity = Activity::new(&vocabulary, window);

    let n_chunks = opts.patients.div_ceil(CHUNK_PERSONS);
    let chunks: Vec<(Vec<Person>, Events, Vec<observations::Observation>)> = (0..n_chunks)
        .into_par_iter()
        .map(|chunk| {
            let seed = opts.seed ^ (chunk as u64 + 1).wrapping_mul(CHUNK_SEED_STRIDE);
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let first = chunk * CHUNK_PERSONS;
            let last = (first + CHUNK_PERSONS).min(opts.patients);
            let mut persons = Vec::with_capacity(last - first);
            let mut events = Events::default();
            let mut measured = Vec::new();
            for index in first..last {
                // check_options guarantees indices fit u32.
                let index = index as u32;
                let (person, health) = draw.draw(&mut rng, index);
                activity.simulate(&mut rng, index, &person, &health, &mut events);
                observations::simulate(index, &person, &health, &mut measured);
                persons.push(person);
            }
            (persons, events, measured)
        })
        .collect();

    let mut persons = Vec::with_capacity(opts.patients);
    let (mut attendances, mut admissions, mut gp, mut prescriptions, mut measured) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (chunk_persons, events, chunk_measured) in chunks {
        measured.push(chunk_measured);
        persons.extend(chunk_persons);
        attendances.push(events.attendances);
        admissions.push(events.admissions);
        gp.push(events.gp);
        prescriptions.push(events.prescriptions);
    }
    let ids = persons.iter().map(|p| p.id).collect();
    let registrations = registrations::draw(&persons, &city, window);
    let data = Dataset {
        window,
        city: &city,
        vocabulary: &vocabulary,
        persons,
        ids,
        attendances: order_by_day(attendances, window.days),
        admissions: order_by_day(admissions, window.days),
        gp: order_by_day(gp, window.days),
        prescriptions: order_by_day(prescriptions, window.days),
        observations: order_by_day(measured, window.days),
        registrations,
    };
    let tables = tables::write_all(&data, &opts.out, layout)?;
    Ok(GenerateSummary { tables })
}

fn check_options(opts: &GenerateOptions) -> Result<Window, GenerateError> {
    let max = u32::MAX as usize;
    if opts.patients > max {
        return Err(GenerateError::TooManyPatients {
            patients: opts.patients,
            max,
        });
    }
    let year = chrono::Datelike::year(&opts.end_date);
    if !(1900..=9999).contains(&year) {
        return Err(GenerateError::EndDate {
            end_date: opts.end_date,
        });
    }
    Window::ending(opts.end_date).ok_or(GenerateError::EndDate {
        end_date: opts.end_date,
    })
}

/// Makes `out` an empty folder, removing an earlier generator output and
/// refusing anything else (see the module documentation).
fn prepare_output(out: &Path) -> Result<(), GenerateError> {
    let io = |path: &Path, action: &'static str| {
        let path = path.to_path_buf();
        move |source| GenerateError::Io {
            path,
            action,
            source,
        }
    };
    if !out.exists() {
        return std::fs::create_dir_all(out).map_err(io(out, "create the output folder"));
    }
    if !out.is_dir() {
        return Err(GenerateError::NotAFolder {
            path: out.to_path_buf(),
        });
    }
    let mut ours = Vec::new();
    for entry in std::fs::read_dir(out).map_err(io(out, "list the output folder"))? {
        let entry = entry.map_err(io(out, "list the output folder"))?;
        let path = entry.path();
        let foreign = || GenerateError::ForeignOutput {
            folder: out.to_path_buf(),
            entry: path.clone(),
        };
        let name = entry.file_name();
        let name = name.to_str().ok_or_else(foreign)?;
        let kind = entry.file_type().map_err(io(&path, "inspect"))?;
        let is_table = |n: &str| tables::table_names().any(|t| t == n);
        let recognised = if kind.is_file() {
            name.strip_suffix(".parquet").is_some_and(is_table)
        } else if kind.is_dir() && is_table(name) {
            holds_only_parts(&path)?
        } else {
            false
        };
        if !recognised {
            return Err(foreign());
        }
        ours.push((path, kind.is_dir()));
    }
    for (path, is_dir) in ours {
        if is_dir {
            std::fs::remove_dir_all(&path).map_err(io(&path, "remove earlier output"))?;
        } else {
            std::fs::remove_file(&path).map_err(io(&path, "remove earlier output"))?;
        }
    }
    Ok(())
}

/// Whether a folder holds nothing but `part-NNNNN.parquet` files.
fn holds_only_parts(folder: &Path) -> Result<bool, GenerateError> {
    let io = |source| GenerateError::Io {
        path: folder.to_path_buf(),
        action: "list",
        source,
    };
    for entry in std::fs::read_dir(folder).map_err(io)? {
        let entry = entry.map_err(io)?;
        let is_file = entry.file_type().map_err(io)?.is_file();
        let name = entry.file_name();
        let is_part = name
            .to_str()
            .and_then(|n| n.strip_prefix("part-"))
            .and_then(|n| n.strip_suffix(".parquet"))
            .is_some_and(|n| n.len() == 5 && n.bytes().all(|b| b.is_ascii_digit()));
        if !(is_file && is_part) {
            return Ok(false);
        }
    }
    Ok(true)
}
