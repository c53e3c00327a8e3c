//! The floors under `strata run`'s time on given data, printed as figures:
//!
//! - **reading**: every column of every Parquet table in the data folder
//!   decoded and nothing done with it (text kept as dictionaries where the
//!   file has them, as the scan keeps it), the row groups shared over all
//!   cores. No run that reads those tables can take less.
//! - **writing**: a `patients.parquet` a run has written, read back and
//!   encoded again with strata's writer settings, its row groups shared over
//!   all cores. The file's bytes are fixed (outputs stay byte for byte the
//!   same from one build to the next), so this is the least a run that
//!   writes it can spend; the bench says whether the bytes came out the
//!   same as the run's.
//!
//! `cargo bench --bench floors -- DATA PATIENTS_PARQUET [RUNS]`, e.g. after
//! `strata generate --patients 5000000 --out DATA` and `strata run --data
//! DATA --out OUT`, with `OUT/patients.parquet`. Each floor is run RUNS
//! times (default 3) and the median printed, in wall seconds and in CPU
//! seconds (user and system, the whole process) over the cores used.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use rayon::prelude::*;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let [data, patients, rest @ ..] = args.as_slice() else {
        eprintln!("usage: cargo bench --bench floors -- DATA PATIENTS_PARQUET [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = rest
        .first()
        .map_or(3, |r| r.parse().expect("RUNS is a number"));
    let files = parquet_files(Path::new(data));
    let groups: Vec<(PathBuf, usize)> = files
        .iter()
        .flat_map(|f| {
            let n = builder(f).metadata().num_row_groups();
            (0..n).map(move |g| (f.clone(), g))
        })
        .collect();
    let threads = rayon::current_num_threads();
    println!(
        "floors on {data}: {} files, {} row groups; {threads} threads, median of {runs}",
        files.len(),
        groups.len()
    );

    let mut rows = 0;
    let reading = median(runs, || {
        rows = groups
            .par_iter()
            .map(|(f, g)| read_group(f, *g))
            .sum::<usize>();
    });
    println!(
        "reading  every column of every table ({rows} rows): {:.2} s, {:.2} CPU-s",
        reading.0, reading.1
    );

    let original = std::fs::read(patients).expect("PATIENTS_PARQUET is readable");
    let file = File::open(patients).expect("PATIENTS_PARQUET opens");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("a Parquet file");
    let written_groups = reader.metadata().num_row_groups();
    let schema = reader.schema().clone();
    let batches: Vec<RecordBatch> = reader
        .with_batch_size(strata::output::parquet::ROW_GROUP_ROWS)
        .build()
        .expect("readable")
        .collect::<Result<_, _>>()
        .expect("readable");
    let writing = median(runs, || {
        batches.par_iter().for_each(|b| {
            std::hint::black_box(encode(&schema, std::slice::from_ref(b)));
        });
    });
    let same = encode(&schema, &batches) == original;
    println!(
        "writing  {patients} again ({} rows, {written_groups} row groups): {:.2} s, {:.2} CPU-s; \
         the same bytes as the run's: {}",
        batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        writing.0,
        writing.1,
        if same { "yes" } else { "no" }
    );
}

/// Every `.parquet` file under `dir`, a table's parts included, in order.
fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("DATA is a readable folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            found.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn builder(path: &Path) -> ParquetRecordBatchReaderBuilder<File> {
    let file = File::open(path).expect("a table opens");
    ParquetRecordBatchReaderBuilder::try_new(file).expect("a Parquet file")
}

/// One row group of `path` decoded, its text read as dictionaries where
/// the column is plain text (a list of text stays as it is).
fn read_group(path: &Path, group: usize) -> usize {
    let schema = builder(path).schema().clone();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::Utf8),
            )),
            _ => f.as_ref().clone(),
        })
        .collect();
    let options = ArrowReaderOptions::new().with_schema(Arc::new(Schema::new(fields)));
    let file = File::open(path).expect("a table opens");
    ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
        .expect("a Parquet file")
        .with_row_groups(vec![group])
        .with_batch_size(64 * 1024)
        .build()
        .expect("readable")
        .map(|b| b.expect("readable").num_rows())
        .sum()
}

/// `batches` as one Parquet file in memory, with strata's settings.
fn encode(schema: &Arc<Schema>, batches: &[RecordBatch]) -> Vec<u8> {
    let properties = strata::output::parquet::writer_properties().build();
    let mut writer =
        ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties)).expect("a writer");
    for b in batches {
        writer.write(b).expect("encodes");
    }
    writer.into_inner().expect("finishes")
}

/// The median wall seconds and CPU seconds of `runs` runs of `work`.
fn median(runs: usize, mut work: impl FnMut()) -> (f64, f64) {
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..runs.max(1) {
        let (start, cpu_start) = (Instant::now(), cpu_seconds());
        work();
        wall.push(start.elapsed().as_secs_f64());
        cpu.push(cpu_seconds() - cpu_start);
    }
    let middle = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (middle(&mut wall), middle(&mut cpu))
}

/// The process's user and system CPU seconds so far (0 where not Linux).
fn cpu_seconds() -> f64 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getrusage writes only into the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        secs(usage.ru_utime) + secs(usage.ru_stime)
    }
    #[cfg(not(target_os = "linux"))]
    0.0
}
