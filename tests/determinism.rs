//! The same data gives byte-identical outputs whatever the thread count,
//! the number of part files and row groups it is split into, and the order
//! of its rows.

mod util;

use std::path::Path;

use arrow_array::{RecordBatch, UInt32Array};
use util::*;

/// Every table of `from`, its rows shuffled (a fixed permutation per
/// `seed`) and written to `to` as `parts` part files of small row groups.
fn reshaped(from: &Path, to: &Path, seed: u64, parts: usize) {
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
        // Row groups of a few thousand rows: many tasks per table.
        let small = |b: &RecordBatch| -> Vec<RecordBatch> {
            (0..b.num_rows())
                .step_by(3000)
                .map(|s| b.slice(s, 3000.min(b.num_rows() - s)))
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

fn run(data: &Path, out: &Path, threads: &str) -> Vec<u8> {
    let o = strata(&[
        "run",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--as-of",
        "2026-03-31",
        "--threads",
        threads,
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::read(out.join("patients.parquet")).unwrap()
}

#[test]
fn outputs_do_not_depend_on_threads_splits_or_row_order() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = strata(&[
        "generate",
        "--patients",
        "3000",
        "--seed",
        "11",
        "--out",
        data.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let reference = run(&data, &tmp.path().join("ref"), "1");
    let lists = |out: &Path| std::fs::read(out.join("pcn/U47158/hiu.csv")).unwrap();
    let reference_list = lists(&tmp.path().join("ref"));
    for threads in ["2", "8"] {
        let out = tmp.path().join(format!("t{threads}"));
        assert!(
            run(&data, &out, threads) == reference,
            "--threads {threads}"
        );
        assert_eq!(lists(&out), reference_list);
    }
    for (seed, parts) in [(1, 1), (2, 3), (3, 7)] {
        let shaped = tmp.path().join(format!("data-{seed}-{parts}"));
        reshaped(&data, &shaped, seed, parts);
        let out = tmp.path().join(format!("out-{seed}-{parts}"));
        assert!(
            run(&shaped, &out, "2") == reference,
            "rows shuffled (seed {seed}) into {parts} part file(s)"
        );
        assert_eq!(lists(&out), reference_list);
    }
}
