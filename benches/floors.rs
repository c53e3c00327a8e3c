//! The floors under `strata run`'s time on given data, printed as figures:
//!
//! - **reading**: every column of every Parquet table in the data folder
//!   (a table's folder of parts included) decoded and nothing done with it,
//!   text kept as dictionaries where the file stores it so (as the scan
//!   keeps it), the row groups shared over all cores. A run that reads
//!   every column of those tables (the default model reads nearly all)
//!   cannot decode them for less CPU.
//! - **writing**: a `patients.parquet` a run has written, read back and
//!   encoded again with strata's writer settings, a row group at a time
//!   over all cores. The bench says whether the bytes came out as the
//!   run's: when they do, this is the encoding the run itself does (the
//!   run also filters and widens its columns first), and the file's bytes
//!   are fixed (outputs stay byte for byte the same from one build to the
//!   next), so its CPU seconds over the cores are the least a run that
//!   writes the file can spend. (The wall time is not: five row groups
//!   share two cores unevenly, where the run encodes a column of a row
//!   group at a time.)
//!
//! `cargo bench --bench floors -- DATA PATIENTS_PARQUET [RUNS]`, e.g. after
//! `strata generate --patients 5000000 --out DATA` and `strata run --data
//! DATA --out OUT`, with `OUT/patients.parquet` (OUT outside DATA). For a
//! workload that reads only some tables, give a folder of links to those.
//! Each floor is run RUNS times (default 3) and the median printed, in
//! wall seconds and in CPU seconds (user and system, the whole process).
//! Without DATA and PATIENTS_PARQUET (a plain `cargo bench`) it only says
//! how it is used.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::Encoding;
use rayon::prelude::*;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let [data, patients, rest @ ..] = args.as_slice() else {
        // A plain `cargo bench` runs every bench without arguments: this
        // one then only says how it is used.
        eprintln!("floors: cargo bench --bench floors -- DATA PATIENTS_PARQUET [RUNS]");
        return;
    };
    let runs: usize = rest
        .first()
        .map_or(3, |r| r.parse().expect("RUNS is a number"));
    let files = parquet_files(Path::new(data));
    // Each file's footer read once, before the timing, as a run reads it
    // once; its text columns read as dictionaries where it stores them so.
    let groups: Vec<(&PathBuf, ArrowReaderMetadata, usize)> = files
        .iter()
        .flat_map(|f| {
            let metadata = reader_metadata(f);
            let n = metadata.metadata().num_row_groups();
            (0..n).map(move |g| (f, metadata.clone(), g))
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
            .map(|(f, metadata, g)| read_group(f, metadata, *g))
            .sum::<usize>();
    });
    println!(
        "reading  every column of every table ({rows} rows): {:.2} s, {}",
        reading.0,
        cpu(reading.1)
    );

    let original = std::fs::read(patients).expect("PATIENTS_PARQUET is readable");
    let patients = Path::new(patients);
    let written_groups = builder(patients).metadata().num_row_groups();
    let schema = builder(patients).schema().clone();
    // A batch a row group (none has more rows than the batch size).
    let batches: Vec<RecordBatch> = (0..written_groups)
        .flat_map(|g| {
            builder(patients)
                .with_row_groups(vec![g])
                .with_batch_size(strata::output::parquet::ROW_GROUP_ROWS)
                .build()
                .expect("readable")
                .map(|b| b.expect("readable"))
        })
        .collect();
    assert_eq!(batches.len(), written_groups, "a batch a row group");
    let writing = median(runs, || {
        batches.par_iter().for_each(|b| {
            std::hint::black_box(encode(&schema, std::slice::from_ref(b)));
        });
    });
    let same = encode(&schema, &batches) == original;
    println!(
        "writing  {} again ({} rows, {written_groups} row groups): {:.2} s, {}; \
         the same bytes as the run's: {}",
        patients.display(),
        batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        writing.0,
        cpu(writing.1),
        if same { "yes" } else { "no" }
    );
}

/// Every `.parquet` file in `dir` and in its folders (a table's parts),
/// in order. A table is a file or a folder of files, so folders are
/// followed one level down only.
fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    fn files(dir: &Path, depth: usize) -> Vec<PathBuf> {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{} is not a readable folder: {e}", dir.display()));
        let mut found = Vec::new();
        for entry in entries {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() && depth > 0 {
                found.extend(files(&path, depth - 1));
            } else if path.is_file() && path.extension().is_some_and(|e| e == "parquet") {
                found.push(path);
            }
        }
        found
    }
    let mut found = files(dir, 1);
    found.sort();
    found
}

fn builder(path: &Path) -> ParquetRecordBatchReaderBuilder<File> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap_or_else(|e| panic!("{} is not a Parquet file: {e}", path.display()))
}

/// `path`'s footer, with its plain text columns read as dictionaries
/// where its first row group stores them dictionary-encoded.
fn reader_metadata(path: &Path) -> ArrowReaderMetadata {
    let plain = builder(path);
    let dictionary_encoded = |column: &str| {
        plain.metadata().row_groups().first().is_some_and(|g| {
            g.columns().iter().any(|c| {
                c.column_path().string() == column
                    && c.encodings()
                        .any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY))
            })
        })
    };
    let fields: Vec<Field> = plain
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 if dictionary_encoded(f.name()) => f.as_ref().clone().with_data_type(
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            ),
            _ => f.as_ref().clone(),
        })
        .collect();
    let options = ArrowReaderOptions::new().with_schema(Arc::new(Schema::new(fields)));
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ArrowReaderMetadata::load(&file, options)
        .unwrap_or_else(|e| panic!("{} is not a Parquet file: {e}", path.display()))
}

/// One row group of `path` decoded.
fn read_group(path: &Path, metadata: &ArrowReaderMetadata, group: usize) -> usize {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata.clone())
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

/// CPU seconds as printed: unknown where they are not measured.
fn cpu(seconds: f64) -> String {
    if cfg!(target_os = "linux") {
        format!("{seconds:.2} CPU-s")
    } else {
        "CPU-s not measured on this system".to_string()
    }
}

/// The process's user and system CPU seconds so far, all its threads (0
/// where not Linux).
fn cpu_seconds() -> f64 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `rusage` is a plain C struct of integers, for which all
        // zero bytes are a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage writes only into the struct it is given, which
        // lives for the call.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        secs(usage.ru_utime) + secs(usage.ru_stime)
    }
    #[cfg(not(target_os = "linux"))]
    0.0
}
