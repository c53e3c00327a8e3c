//! The same data gives identical outputs whatever the thread count, the
//! number of part files and row groups it is split into, and the order of
//! its rows: a property test over random splits, row orders and thread
//! counts, comparing every output a run writes (byte for byte where the
//! output holds no run-specific facts such as timings).

mod util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arrow_array::{RecordBatch, UInt32Array};
use proptest::prelude::*;
use util::*;

/// Every table of `from`, its rows shuffled (a fixed permutation per
/// `seed`) and written to `to` as `parts` part files of row groups of
/// `group_rows` rows.
fn reshaped(from: &Path, to: &Path, seed: u64, parts: usize, group_rows: usize) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let batch = if path.is_dir() {
            let batches: Vec<RecordBatch> = std::fs::read_dir(&path)
                .unwrap()
                .map(|p| read_parquet(&p.unwrap().path()))
                .collect();
            arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap()
        } else {
            read_parquet(&path)
        };
        let rows = batch.num_rows();
        let mut order: Vec<u32> = (0..rows as u32).collect();
        let mut x = seed | 1;
        for i in (1..rows).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let shuffled =
            arrow_select::take::take_record_batch(&batch, &UInt32Array::from(order)).unwrap();
        let small = |b: &RecordBatch| -> Vec<RecordBatch> {
            (0..b.num_rows())
                .step_by(group_rows)
                .map(|s| b.slice(s, group_rows.min(b.num_rows() - s)))
                .collect()
        };
        if name == "patients" || name == "pcns" || parts == 1 {
            write_parquet(&to.join(format!("{name}.parquet")), &small(&shuffled));
        } else {
            let folder = to.join(&name);
            std::fs::create_dir_all(&folder).unwrap();
            let per = rows.div_ceil(parts).max(1);
            for (i, start) in (0..rows).step_by(per).enumerate() {
                let part = shuffled.slice(start, per.min(rows - start));
                write_parquet(&folder.join(format!("part-{i}.parquet")), &small(&part));
            }
        }
    }
}

/// Everything a run wrote that does not depend on how it ran: file by
/// file, the bytes of `patients.parquet` and of every CSV list; each
/// workbook's cells (the file itself records when it was made); the counts
/// of the manifest; the report without its run facts (timings, input
/// files).
fn outputs(out: &Path) -> BTreeMap<String, Vec<u8>> {
    use calamine::Reader;
    let mut files = BTreeMap::new();
    files.insert(
        "patients.parquet".to_string(),
        std::fs::read(out.join("patients.parquet")).unwrap(),
    );
    for pcn in std::fs::read_dir(out.join("pcn")).unwrap() {
        let pcn = pcn.unwrap();
        for file in std::fs::read_dir(pcn.path()).unwrap() {
            let path = file.unwrap().path();
            let name = format!(
                "pcn/{}/{}",
                pcn.file_name().to_string_lossy(),
                path.file_name().unwrap().to_string_lossy()
            );
            if path.extension().is_some_and(|e| e == "xlsx") {
                let mut book: calamine::Xlsx<_> = calamine::open_workbook(&path).unwrap();
                let mut cells = String::new();
                for sheet in book.sheet_names() {
                    let range = book.worksheet_range(&sheet).unwrap();
                    for (r, c, v) in range.cells() {
                        // The run date on the cover sheet is today's.
                        if sheet == "Cover" && r == 2 {
                            continue;
                        }
                        cells.push_str(&format!("{sheet}!{r},{c}={v:?}\n"));
                    }
                }
                files.insert(name, cells.into_bytes());
            } else {
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    let manifest = manifest(out);
    files.insert(
        "manifest.json:counts".to_string(),
        manifest["counts"].to_string().into_bytes(),
    );
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    let charts = report.split("<h2>Run</h2>").next().unwrap().to_string();
    files.insert("report.html (charts)".to_string(), charts.into_bytes());
    files
}

fn run(data: &Path, out: &Path, threads: usize) -> BTreeMap<String, Vec<u8>> {
    let threads = threads.to_string();
    let o = strata(&[
        "run",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--as-of",
        "2026-03-31",
        "--threads",
        &threads,
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    outputs(out)
}

/// A generated city and its outputs from one thread, made once for every
/// case.
struct Reference {
    dir: tempfile::TempDir,
    data: PathBuf,
    outputs: BTreeMap<String, Vec<u8>>,
}

fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        generate(&data, 3000, 11);
        let outputs = run(&data, &dir.path().join("ref"), 1);
        assert!(outputs.len() > 10, "{:?}", outputs.keys());
        Reference { dir, data, outputs }
    })
}

fn differing(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .cloned()
        .collect()
}

#[test]
fn outputs_do_not_depend_on_the_thread_count() {
    let r = reference();
    for threads in [2, 8] {
        let out = r.dir.path().join(format!("t{threads}"));
        let got = run(&r.data, &out, threads);
        assert_eq!(
            differing(&got, &r.outputs),
            Vec::<String>::new(),
            "--threads {threads}"
        );
        // The same data in the same files: the rejected rows too.
        let rejects = |o: &Path| {
            std::fs::read_dir(o.join("rejects"))
                .map(|d| d.count())
                .unwrap_or(0)
        };
        assert_eq!(rejects(&out), rejects(&r.dir.path().join("ref")));
    }
}

/// An extract sorted by person (the population loader keeps such a table
/// as it is, where it reorders any other) gives the same outputs.
#[test]
fn outputs_do_not_depend_on_the_population_being_in_id_order() {
    let r = reference();
    let case = tempfile::tempdir_in(r.dir.path()).unwrap();
    let data = case.path().join("data");
    reshaped(&r.data, &data, 7, 1, 1 << 20);
    let patients = data.join("patients.parquet");
    let batch = read_parquet(&patients);
    let order =
        arrow_ord::sort::sort_to_indices(batch.column_by_name("person_id").unwrap(), None, None)
            .unwrap();
    write_parquet(
        &patients,
        &[arrow_select::take::take_record_batch(&batch, &order).unwrap()],
    );
    let got = run(&data, &case.path().join("out"), 2);
    assert_eq!(differing(&got, &r.outputs), Vec::<String>::new());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn outputs_do_not_depend_on_splits_row_groups_or_row_order(
        seed in any::<u64>(),
        parts in 1usize..8,
        group_rows in prop::sample::select(vec![300usize, 1000, 3000, 1 << 20]),
        threads in 1usize..5,
    ) {
        let r = reference();
        let case = tempfile::tempdir_in(r.dir.path()).unwrap();
        let shaped = case.path().join("data");
        reshaped(&r.data, &shaped, seed, parts, group_rows);
        let got = run(&shaped, &case.path().join("out"), threads);
        prop_assert_eq!(
            differing(&got, &r.outputs),
            Vec::<String>::new(),
            "rows shuffled (seed {}) into {} part file(s) of row groups of {} rows, {} threads",
            seed, parts, group_rows, threads
        );
    }
}
