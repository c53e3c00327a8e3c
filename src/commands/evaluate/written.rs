//! `predictions.parquet`, written as `strata evaluate` finishes each
//! date: the dates in order, each date's people let go once written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Date32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use chrono::NaiveDate;

use super::people::Held;
use crate::error::{Error, Result};
use crate::output::parquet::Batches;
use crate::output::publish::{Kind, Staging};

/// `predictions.parquet`, written a date at a time in date order as the
/// dates are finished, by whichever of the pool's threads finishes the
/// date it waits for: each date's people are let go once written. (On a
/// thread of its own, the writer ran beside the pool's two: 12 dates at 1M
/// persons took about 5% more CPU.)
///
/// Written beside the output, then renamed: a failed, interrupted or
/// panicking evaluation leaves nothing, the staging folder (made when the
/// first date is written) and the predictions in it removed when it is
/// dropped uncommitted. Once the file cannot be written (a full disk),
/// each date given is refused, so that the dates not yet started are not
/// worked out for nothing.
pub(super) struct Written {
    out: PathBuf,
    /// Whether `file` holds an error.
    failed: std::sync::atomic::AtomicBool,
    /// The dates finished and not yet written.
    waiting: std::sync::Mutex<Waiting>,
    /// The staging folder and the file, from the first date on; or why
    /// they could not be written.
    file: std::sync::Mutex<Result<Option<(Staging, Batches)>>>,
}

struct Waiting {
    dates: Vec<Option<(NaiveDate, Held)>>,
    /// The first date not yet written.
    next: usize,
}

impl Written {
    pub(super) fn new(out: &Path, dates: usize) -> Written {
        Written {
            out: out.to_path_buf(),
            failed: Default::default(),
            waiting: std::sync::Mutex::new(Waiting {
                dates: (0..dates).map(|_| None).collect(),
                next: 0,
            }),
            file: std::sync::Mutex::new(Ok(None)),
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Date `k`'s people, written with any dates after it that wait, if
    /// the dates before are written; else left to wait for them. An error
    /// once the file could not be written ([`Written::failed`]; why is
    /// [`Written::finish`]'s error).
    pub(super) fn give(&self, k: usize, as_of: NaiveDate, held: Held) -> Result<()> {
        self.waiting().dates[k] = Some((as_of, held));
        // Whichever thread holds the file writes what waits; a date given
        // while it was writing, and found waiting once it let the file go,
        // is written by this thread.
        while let Ok(mut file) = self.file.try_lock() {
            loop {
                let next = {
                    let mut waiting = self.waiting();
                    let n = waiting.next;
                    let Some(date) = waiting.dates.get_mut(n).and_then(Option::take) else {
                        break;
                    };
                    waiting.next += 1;
                    date
                };
                let (as_of, held) = next;
                if let Ok(open) = file.as_mut()
                    && let Err(e) = held.batch(as_of).and_then(|batch| match open {
                        Some((_, file)) => file.push(batch),
                        None => {
                            let staging = Staging::new(&self.out, Kind::Evaluation)?;
                            let path = staging.dir.join("predictions.parquet");
                            *open = Some((staging, Batches::create(&path, batch)?));
                            Ok(())
                        }
                    })
                {
                    *file = Err(e);
                    self.failed
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            drop(file);
            let waiting = self.waiting();
            if !waiting.dates.get(waiting.next).is_some_and(Option::is_some) {
                break;
            }
        }
        if self.failed() {
            return Err(Error::Internal(format!(
                "the predictions in {} could not be written",
                self.out.display()
            )));
        }
        Ok(())
    }

    /// Whether the file could not be written: no more dates are needed.
    pub(super) fn failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The file finished, every date written; the staging folder that
    /// holds it.
    pub(super) fn finish(self) -> Result<Staging> {
        let waiting = self.waiting.into_inner().unwrap_or_else(|e| e.into_inner());
        let file = self.file.into_inner().unwrap_or_else(|e| e.into_inner())?;
        match file {
            Some((staging, file)) if waiting.next == waiting.dates.len() => {
                file.finish()?;
                Ok(staging)
            }
            _ => Err(Error::Internal(format!(
                "writing the predictions in {}: {} of {} dates written",
                self.out.display(),
                waiting.next,
                waiting.dates.len()
            ))),
        }
    }
}

impl Held {
    /// The date's rows of `predictions.parquet`, each cohort's and
    /// outcome's column straight from its bits.
    fn batch(&self, as_of: NaiveDate) -> Result<RecordBatch> {
        let people = &self.people;
        let n = people.rows.len();
        let rows = arrow_array::UInt32Array::new(people.rows.clone(), None);
        let ids = arrow_select::take::take(&people.population_ids, &rows, None)
            .map_err(|e| Error::Internal(format!("taking the evaluated people's ids: {e}")))?;
        let mut fields = vec![
            Field::new("person_id", ids.data_type().clone(), true),
            Field::new("as_of", DataType::Date32, false),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            ids,
            Arc::new(Date32Array::from(vec![crate::dates::to_day(as_of); n])),
        ];
        for (name, groups) in &people.groups {
            let text = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
            fields.push(Field::new(*name, text, true));
            columns.push(Arc::new(groups.texts()));
        }
        for (name, flags) in &self.cohorts {
            fields.push(Field::new(name, DataType::Boolean, false));
            columns.push(Arc::new(BooleanArray::new(flags.clone(), None)));
        }
        for (name, values) in &people.scores {
            fields.push(Field::new(name, DataType::Float64, true));
            columns.push(Arc::new(values.clone()));
        }
        if let Some(b) = &people.compared {
            for (name, flags) in &b.cohorts {
                fields.push(Field::new(
                    format!("compare_{name}"),
                    DataType::Boolean,
                    false,
                ));
                columns.push(Arc::new(BooleanArray::from(flags.clone())));
            }
            for (name, values) in &b.scores {
                fields.push(Field::new(
                    format!("compare_{name}"),
                    DataType::Float64,
                    true,
                ));
                columns.push(Arc::new(values.clone()));
            }
        }
        for (name, happened) in &self.outcomes {
            fields.push(Field::new(
                format!("outcome_{name}"),
                DataType::Boolean,
                false,
            ));
            columns.push(Arc::new(BooleanArray::new(happened.clone(), None)));
        }
        for (name, counts) in &people.counts {
            fields.push(Field::new(
                format!("outcome_{name}_count"),
                DataType::Int64,
                true,
            ));
            columns.push(Arc::new(counts.clone()));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| Error::Internal(format!("assembling predictions: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch};

    use super::super::groups::Groups;
    use super::super::people::People;
    use super::*;

    /// Dates given in any order, from several threads, are written in
    /// date order, each date's rows whole; a date never given is an error,
    /// and the staging folder goes with it.
    #[test]
    fn dates_given_in_any_order_are_written_in_date_order() {
        let ids: ArrayRef = Arc::new(arrow_array::Int64Array::from_iter_values(100..110));
        // Date k's people: rows k to k + 2, the second on the cohort.
        let held = |k: u32| {
            Held::new(People {
                rows: (k..k + 3).collect::<Vec<u32>>().into(),
                population_ids: ids.clone(),
                cohorts: vec![("c".into(), vec![false, true, false])],
                scores: vec![(
                    "s".into(),
                    Float64Array::from(vec![Some(f64::from(k)), None, Some(0.5)]),
                )],
                outcomes: vec![("o".into(), vec![true, false, false])],
                counts: vec![],
                pcn: Groups::numbered(&["P"], [Some(0); 3].into_iter()),
                groups: vec![("pcn", Groups::numbered(&["P"], [Some(0); 3].into_iter()))],
                compared: None,
            })
        };
        let dates: Vec<NaiveDate> = (1..=5)
            .map(|d| NaiveDate::from_ymd_opt(2024, 1, d).unwrap())
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("evaluation");
        let written = Written::new(&out, dates.len());
        std::thread::scope(|s| {
            for order in [vec![4, 1, 3], vec![2, 0]] {
                let (written, dates, held) = (&written, &dates, &held);
                s.spawn(move || {
                    for k in order {
                        written.give(k, dates[k], held(k as u32)).unwrap();
                    }
                });
            }
        });
        let staging = written.finish().unwrap();
        let file = std::fs::File::open(staging.dir.join("predictions.parquet")).unwrap();
        let batches: Vec<RecordBatch> =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
                .map(|b| b.unwrap())
                .collect();
        let all = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap();
        let column = |name: &str| all.column_by_name(name).unwrap().clone();
        let as_of: Vec<i32> = column("as_of")
            .as_primitive::<arrow_array::types::Date32Type>()
            .values()
            .to_vec();
        let want: Vec<i32> = dates
            .iter()
            .flat_map(|&d| [crate::dates::to_day(d); 3])
            .collect();
        assert_eq!(as_of, want);
        let people: Vec<i64> = column("person_id")
            .as_primitive::<arrow_array::types::Int64Type>()
            .values()
            .to_vec();
        let want: Vec<i64> = (0..5).flat_map(|k| 100 + k..100 + k + 3).collect();
        assert_eq!(people, want);
        let listed: Vec<bool> = column("c")
            .as_boolean()
            .iter()
            .map(Option::unwrap)
            .collect();
        assert_eq!(listed, [false, true, false].repeat(5));
        let scores = column("s");
        let scores = scores.as_primitive::<arrow_array::types::Float64Type>();
        assert_eq!(
            (0..5).map(|k| scores.value(3 * k)).collect::<Vec<_>>(),
            [0.0, 1.0, 2.0, 3.0, 4.0]
        );
        assert!(scores.is_null(1));
        // Date 1 never given: an error, and no staging folder left.
        let out = dir.path().join("stopped");
        let written = Written::new(&out, 3);
        written.give(0, dates[0], held(0)).unwrap();
        written.give(2, dates[2], held(2)).unwrap();
        assert!(written.finish().is_err());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains("stopped"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // A file that cannot be written (its folder's parent is a file):
        // the date that found it so, and every date after, refused; the
        // error the file's own.
        let blocked = dir.path().join("a file");
        std::fs::write(&blocked, "").unwrap();
        let written = Written::new(&blocked.join("evaluation"), 3);
        assert!(
            written.give(1, dates[1], held(1)).is_ok(),
            "waits for date 0"
        );
        assert!(!written.failed());
        assert!(written.give(0, dates[0], held(0)).is_err());
        assert!(written.failed());
        assert!(written.give(2, dates[2], held(2)).is_err());
        let error = written
            .finish()
            .err()
            .expect("the file's error")
            .to_string();
        assert!(error.contains("a file"), "{error}");
        assert!(!error.contains("could not be written"), "{error}");
    }
}
