//! Putting events in date order and writing every table as Parquet.
//!
//! Extracts arrive in date order, and date-ordered files let a reader skip
//! row groups by their statistics, so event tables are written that way.
//! Days are few (about 1,100) and rows many (tens of millions), so a
//! counting sort over days puts them in order in linear time; within a day,
//! rows keep generation order (chunk by chunk), which keeps the output
//! independent of the thread count.
//!
//! Large tables are split into part files, each a contiguous range of whole
//! days, and every file is written by its own task so that files encode in
//! parallel. Batches are built one row group at a time from the compact
//! in-memory rows, so Arrow arrays never hold a whole table at once.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, DictionaryArray, Float64Array, Int8Array, Int32Array,
    Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;

use super::GenerateError;
use super::activity::{Admission, Attendance, CodedEvent};
use super::observations::{self, Observation};
use super::population::{City, PCNS, Person, Window};
use super::registrations::{Registration, id_hash};
use super::vocabulary::Vocabulary;

/// How tables are cut into row groups and files.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub row_group_rows: usize,
    /// A table with more rows than this is written as a folder of parts.
    pub split_above_rows: usize,
    /// Rows aimed at per part (parts end on day boundaries).
    pub part_rows: usize,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            row_group_rows: crate::output::parquet::ROW_GROUP_ROWS,
            split_above_rows: 8_000_000,
            part_rows: 4_000_000,
        }
    }
}

/// Event rows that know their day.
pub(crate) trait Dated {
    fn day(&self) -> u16;
}

impl Dated for Attendance {
    fn day(&self) -> u16 {
        self.day
    }
}

impl Dated for CodedEvent {
    fn day(&self) -> u16 {
        self.day
    }
}

impl Dated for Observation {
    fn day(&self) -> u16 {
        self.day
    }
}

impl Dated for Admission {
    fn day(&self) -> u16 {
        self.admitted
    }
}

/// Rows in date order, with where each day starts.
pub(crate) struct DayOrdered<T> {
    pub rows: Vec<T>,
    /// Rows of day `d` are `rows[day_start[d]..day_start[d + 1]]`.
    pub day_start: Vec<usize>,
}

/// Counting sort of the chunks' rows by day; stable, so rows of one day stay
/// in chunk order. Chunks are consumed one at a time to bound peak memory.
pub(crate) fn order_by_day<T: Dated + Copy + Default>(
    chunks: Vec<Vec<T>>,
    days: u16,
) -> DayOrdered<T> {
    let days = usize::from(days);
    let mut day_start = vec![0usize; days + 1];
    for row in chunks.iter().flatten() {
        day_start[usize::from(row.day()) + 1] += 1;
    }
    for d in 0..days {
        day_start[d + 1] += day_start[d];
    }
    let mut next = day_start.clone();
    let mut rows = vec![T::default(); day_start[days]];
    for chunk in chunks {
        for row in chunk {
            let slot = &mut next[usize::from(row.day())];
            rows[*slot] = row;
            *slot += 1;
        }
    }
    DayOrdered { rows, day_start }
}

/// Everything the tables are written from.
pub(crate) struct Dataset<'a> {
    pub window: Window,
    pub city: &'a City,
    pub vocabulary: &'a Vocabulary,
    pub persons: Vec<Person>,
    /// `persons[i].id`, packed for the random lookups of event rows.
    pub ids: Vec<i64>,
    pub attendances: DayOrdered<Attendance>,
    pub admissions: DayOrdered<Admission>,
    pub gp: DayOrdered<CodedEvent>,
    pub prescriptions: DayOrdered<CodedEvent>,
    pub observations: DayOrdered<Observation>,
    /// By person, then start.
    pub registrations: Vec<Registration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    Patients,
    Pcns,
    Attendances,
    Admissions,
    GpEvents,
    Medications,
    Observations,
    Registrations,
}

impl Table {
    const ALL: [Table; 8] = [
        Table::Patients,
        Table::Pcns,
        Table::Attendances,
        Table::Admissions,
        Table::GpEvents,
        Table::Medications,
        Table::Observations,
        Table::Registrations,
    ];

    fn name(self) -> &'static str {
        match self {
            Table::Patients => "patients",
            Table::Pcns => "pcns",
            Table::Attendances => "ae_attendances",
            Table::Admissions => "admissions",
            Table::GpEvents => "gp_events",
            Table::Medications => "medications",
            Table::Observations => "observations",
            Table::Registrations => "registrations",
        }
    }
}

/// Names of every table the generator writes.
pub(crate) fn table_names() -> impl Iterator<Item = &'static str> {
    Table::ALL.into_iter().map(Table::name)
}

/// One file to write: which table, where, and which rows.
struct FileJob {
    table: Table,
    path: PathBuf,
    rows: Range<usize>,
}

/// Writes all tables under `out`; returns rows written per table.
pub(crate) fn write_all(
    data: &Dataset,
    out: &Path,
    layout: &Layout,
) -> Result<Vec<(String, u64)>, GenerateError> {
    let mut jobs = Vec::new();
    let mut summary = Vec::new();
    for table in Table::ALL {
        let (rows, day_start) = match table {
            Table::Patients => (data.persons.len(), None),
            Table::Pcns => (PCNS.len(), None),
            Table::Attendances => (
                data.attendances.rows.len(),
                Some(&data.attendances.day_start),
            ),
            Table::Admissions => (data.admissions.rows.len(), Some(&data.admissions.day_start)),
            Table::GpEvents => (data.gp.rows.len(), Some(&data.gp.day_start)),
            Table::Medications => (
                data.prescriptions.rows.len(),
                Some(&data.prescriptions.day_start),
            ),
            Table::Observations => (
                data.observations.rows.len(),
                Some(&data.observations.day_start),
            ),
            Table::Registrations => (data.registrations.len(), None),
        };
        let file = out.join(format!("{}.parquet", table.name()));
        match day_start {
            Some(day_start) if rows > layout.split_above_rows => {
                let folder = out.join(table.name());
                std::fs::create_dir(&folder).map_err(|source| GenerateError::Io {
                    path: folder.clone(),
                    action: "create the part folder",
                    source,
                })?;
                for (i, range) in part_ranges(day_start, layout.part_rows)
                    .into_iter()
                    .enumerate()
                {
                    let path = folder.join(format!("part-{i:05}.parquet"));
                    jobs.push(FileJob {
                        table,
                        path,
                        rows: range,
                    });
                }
            }
            _ => jobs.push(FileJob {
                table,
                path: file,
                rows: 0..rows,
            }),
        }
        summary.push((table, rows));
    }

    // Biggest files first so the pool is not left waiting on one at the end.
    jobs.sort_by_key(|job| std::cmp::Reverse(job.rows.len()));
    jobs.par_iter()
        .try_for_each(|job| write_file(data, job, layout))?;

    let mut written = Vec::new();
    for (table, rows) in summary {
        let files = jobs.iter().filter(|j| j.table == table).count();
        tracing::info!(table = table.name(), rows, files, out = %out.display(), "table written");
        written.push((table.name().to_string(), rows as u64));
    }
    Ok(written)
}

/// Splits date-ordered rows into parts of about equal size, at most a few
/// rows over `part_rows` each (parts end on day boundaries, so a part takes
/// a whole day even when that runs over).
fn part_ranges(day_start: &[usize], part_rows: usize) -> Vec<Range<usize>> {
    let total = day_start[day_start.len() - 1];
    // Even sizes keep the parallel writers busy to the end.
    let target = total.div_ceil(total.div_ceil(part_rows).max(1));
    let mut parts = Vec::new();
    let mut begin = 0;
    for &boundary in &day_start[1..] {
        if boundary - begin >= target || (boundary == total && boundary > begin) {
            parts.push(begin..boundary);
            begin = boundary;
        }
    }
    parts
}

fn write_file(data: &Dataset, job: &FileJob, layout: &Layout) -> Result<(), GenerateError> {
    let start = data.window.start;
    let ids = &data.ids;
    match job.table {
        Table::Patients => {
            let rows = &data.persons[job.rows.clone()];
            write_parquet(job, layout, patients_schema(), None, |r| {
                patients_batch(&rows[r], data.city, start)
            })
        }
        Table::Registrations => {
            let rows = &data.registrations[job.rows.clone()];
            let schema = registrations_schema();
            write_parquet(job, layout, schema.clone(), None, |r| {
                let rows = &rows[r];
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(Int64Array::from_iter_values(
                            rows.iter().map(|g| ids[g.person as usize]),
                        )),
                        Arc::new(StringArray::from_iter_values(
                            rows.iter()
                                .map(|g| data.city.practices[usize::from(g.practice)].code),
                        )),
                        Arc::new(Date32Array::from_iter_values(rows.iter().map(|g| g.start))),
                        Arc::new(Date32Array::from_iter(rows.iter().map(|g| g.end))),
                    ],
                )
            })
        }
        Table::Pcns => write_parquet(job, layout, pcns_schema(), None, |r| {
            let pcns = &PCNS[r];
            RecordBatch::try_new(
                pcns_schema(),
                vec![
                    Arc::new(StringArray::from_iter_values(pcns.iter().map(|p| p.code))),
                    Arc::new(StringArray::from_iter_values(pcns.iter().map(|p| p.name))),
                ],
            )
        }),
        Table::Attendances => {
            let rows = &data.attendances.rows[job.rows.clone()];
            let schema = attendances_schema();
            write_parquet(job, layout, schema.clone(), Some(1), |r| {
                let rows = &rows[r];
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(Int64Array::from_iter_values(
                            rows.iter().map(|e| ids[e.person as usize]),
                        )),
                        Arc::new(Date32Array::from_iter_values(
                            rows.iter().map(|e| start + i32::from(e.day)),
                        )),
                    ],
                )
            })
        }
        Table::Admissions => {
            let rows = &data.admissions.rows[job.rows.clone()];
            write_parquet(job, layout, admissions_schema(), Some(1), |r| {
                admissions_batch(&rows[r], ids, start, data.vocabulary)
            })
        }
        Table::Observations => {
            let rows = &data.observations.rows[job.rows.clone()];
            let schema = observations_schema();
            let codes: ArrayRef = Arc::new(StringArray::from_iter_values(observations::CODES));
            let units: ArrayRef = Arc::new(StringArray::from(observations::UNITS.to_vec()));
            write_parquet(job, layout, schema.clone(), Some(1), |r| {
                let rows = &rows[r];
                let code_keys =
                    Int32Array::from_iter_values(rows.iter().map(|o| i32::from(o.code)));
                // A missing unit is a null, not an empty string.
                let unit_keys =
                    Int32Array::from_iter(rows.iter().map(|o| {
                        observations::UNITS[usize::from(o.unit)].map(|_| i32::from(o.unit))
                    }));
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(Int64Array::from_iter_values(
                            rows.iter().map(|o| ids[o.person as usize]),
                        )),
                        Arc::new(Date32Array::from_iter_values(
                            rows.iter().map(|o| start + i32::from(o.day)),
                        )),
                        Arc::new(DictionaryArray::<Int32Type>::try_new(
                            code_keys,
                            codes.clone(),
                        )?),
                        Arc::new(Float64Array::from_iter(
                            rows.iter().map(|o| (!o.value.is_nan()).then_some(o.value)),
                        )),
                        Arc::new(DictionaryArray::<Int32Type>::try_new(
                            unit_keys,
                            units.clone(),
                        )?),
                    ],
                )
            })
        }
        Table::GpEvents | Table::Medications => {
            let (rows, values, schema) = if job.table == Table::GpEvents {
                (
                    &data.gp.rows,
                    &data.vocabulary.snomed,
                    coded_schema("event_date", "snomed_code"),
                )
            } else {
                (
                    &data.prescriptions.rows,
                    &data.vocabulary.dmd,
                    coded_schema("issue_date", "dmd_code"),
                )
            };
            let rows = &rows[job.rows.clone()];
            write_parquet(job, layout, schema.clone(), Some(1), |r| {
                let rows = &rows[r];
                let keys = Int32Array::from_iter_values(rows.iter().map(|e| i32::from(e.code)));
                let codes =
                    DictionaryArray::<Int32Type>::try_new(keys, values.clone() as ArrayRef)?;
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(Int64Array::from_iter_values(
                            rows.iter().map(|e| ids[e.person as usize]),
                        )),
                        Arc::new(Date32Array::from_iter_values(
                            rows.iter().map(|e| start + i32::from(e.day)),
                        )),
                        Arc::new(codes),
                    ],
                )
            })
        }
    }
}

/// Writes one file, building one batch per row group with `batch`.
fn write_parquet(
    job: &FileJob,
    layout: &Layout,
    schema: SchemaRef,
    sorted_by: Option<i32>,
    batch: impl Fn(Range<usize>) -> Result<RecordBatch, ArrowError>,
) -> Result<(), GenerateError> {
    let path = &job.path;
    let parquet_error = |source| GenerateError::Parquet {
        path: path.clone(),
        source,
    };
    let file = std::fs::File::create(path).map_err(|source| GenerateError::Io {
        path: path.clone(),
        action: "create",
        source,
    })?;
    let props = writer_properties(layout, sorted_by);
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(parquet_error)?;
    let n = job.rows.len();
    let mut begin = 0;
    while begin < n {
        let end = (begin + layout.row_group_rows).min(n);
        let batch = batch(begin..end).map_err(|source| GenerateError::Arrow {
            path: path.clone(),
            source,
        })?;
        writer.write(&batch).map_err(parquet_error)?;
        begin = end;
    }
    writer.close().map_err(parquet_error)?;
    Ok(())
}

/// strata's shared settings, with this layout's row groups and the table's
/// date order recorded as its sorting column.
fn writer_properties(layout: &Layout, sorted_by: Option<i32>) -> WriterProperties {
    crate::output::parquet::writer_properties()
        .set_max_row_group_row_count(Some(layout.row_group_rows))
        .set_sorting_columns(sorted_by.map(|column_idx| {
            vec![SortingColumn {
                column_idx,
                descending: false,
                nulls_first: false,
            }]
        }))
        .build()
}

fn patients_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("person_id", DataType::Int64, false),
        Field::new("birth_date", DataType::Date32, false),
        Field::new("sex", DataType::Utf8, false),
        Field::new("practice_code", DataType::Utf8, false),
        Field::new("pcn_code", DataType::Utf8, false),
        Field::new("lsoa_code", DataType::Utf8, false),
        Field::new("imd_decile", DataType::Int8, false),
        Field::new("care_home", DataType::Boolean, false),
        Field::new("date_of_death", DataType::Date32, true),
        Field::new("type1_opt_out", DataType::Boolean, false),
        Field::new("national_data_opt_out", DataType::Boolean, false),
    ]))
}

/// Whether a person has an opt-out, drawn from their id alone (so adding
/// the flags moved no other generated value), at `per_thousand`:
/// illustrative rates, about 5% for the National Data Opt-out (the share
/// NHS Digital reported in the early 2020s) and 3% for type 1.
fn opted_out(id: i64, salt: u64, per_thousand: u64) -> bool {
    id_hash(id, salt) % 1000 < per_thousand
}

/// One row per registration (as ehrQL's `practice_registrations`):
/// `end_date` inclusive, null while registered.
fn registrations_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("person_id", DataType::Int64, false),
        Field::new("practice_code", DataType::Utf8, false),
        Field::new("start_date", DataType::Date32, false),
        Field::new("end_date", DataType::Date32, true),
    ]))
}

fn pcns_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pcn_code", DataType::Utf8, false),
        Field::new("pcn_name", DataType::Utf8, false),
    ]))
}

fn attendances_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("person_id", DataType::Int64, false),
        Field::new("arrival_date", DataType::Date32, false),
    ]))
}

fn diagnosis_field() -> Field {
    Field::new_list_field(DataType::Utf8, true)
}

fn admissions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("person_id", DataType::Int64, false),
        Field::new("admission_date", DataType::Date32, false),
        Field::new("discharge_date", DataType::Date32, true),
        Field::new("admission_method", DataType::Utf8, false),
        Field::new(
            "diagnoses",
            DataType::List(Arc::new(diagnosis_field())),
            false,
        ),
    ]))
}

fn observations_schema() -> SchemaRef {
    let text = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    Arc::new(Schema::new(vec![
        Field::new("person_id", DataType::Int64, false),
        Field::new("date", DataType::Date32, false),
        Field::new("code", text.clone(), false),
        Field::new("value", DataType::Float64, true),
        Field::new("unit", text, true),
    ]))
}

fn coded_schema(date: &str, code: &str) -> SchemaRef {
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    Arc::new(Schema::new(vec![
        Field::new("person_id", DataType::Int64, false),
        Field::new(date, DataType::Date32, false),
        Field::new(code, dictionary, false),
    ]))
}

fn patients_batch(persons: &[Person], city: &City, start: i32) -> Result<RecordBatch, ArrowError> {
    let practice = |p: &Person| &city.practices[usize::from(p.practice)];
    let lsoa = |p: &Person| &city.lsoas[p.lsoa as usize];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(persons.iter().map(|p| p.id))),
        Arc::new(Date32Array::from_iter_values(
            persons.iter().map(|p| p.birth),
        )),
        Arc::new(StringArray::from_iter_values(
            persons.iter().map(|p| p.sex.code()),
        )),
        Arc::new(StringArray::from_iter_values(
            persons.iter().map(|p| practice(p).code),
        )),
        Arc::new(StringArray::from_iter_values(
            persons.iter().map(|p| PCNS[practice(p).pcn].code),
        )),
        Arc::new(StringArray::from_iter_values(
            persons.iter().map(|p| lsoa(p).code.as_str()),
        )),
        Arc::new(Int8Array::from_iter_values(
            persons.iter().map(|p| lsoa(p).imd_decile),
        )),
        Arc::new(BooleanArray::from_iter(
            persons.iter().map(|p| Some(p.care_home)),
        )),
        Arc::new(Date32Array::from_iter(
            persons
                .iter()
                .map(|p| p.death.map(|d| start + i32::from(d))),
        )),
        Arc::new(BooleanArray::from_iter(
            persons.iter().map(|p| Some(opted_out(p.id, 0x7E1, 30))),
        )),
        Arc::new(BooleanArray::from_iter(
            persons.iter().map(|p| Some(opted_out(p.id, 0x4D0, 50))),
        )),
    ];
    RecordBatch::try_new(patients_schema(), columns)
}

fn admissions_batch(
    rows: &[Admission],
    ids: &[i64],
    start: i32,
    vocabulary: &Vocabulary,
) -> Result<RecordBatch, ArrowError> {
    let mut diagnoses = ListBuilder::new(StringBuilder::new()).with_field(diagnosis_field());
    for a in rows {
        for &code in &a.diagnoses[..usize::from(a.n_diagnoses)] {
            diagnoses
                .values()
                .append_value(&vocabulary.icd10[usize::from(code)]);
        }
        diagnoses.append(true);
    }
    let method = |a: &Admission| if a.emergency { "emergency" } else { "elective" };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|a| ids[a.person as usize]),
        )),
        Arc::new(Date32Array::from_iter_values(
            rows.iter().map(|a| start + i32::from(a.admitted)),
        )),
        Arc::new(Date32Array::from_iter(
            rows.iter()
                .map(|a| a.discharged.map(|d| start + i32::from(d))),
        )),
        Arc::new(StringArray::from_iter_values(rows.iter().map(method))),
        Arc::new(diagnoses.finish()),
    ];
    RecordBatch::try_new(admissions_schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_sort_orders_by_day_and_keeps_chunk_order_within_a_day() {
        let e = |person, day| Attendance { person, day };
        let chunks = vec![
            vec![e(0, 2), e(1, 0), e(2, 2)],
            vec![e(3, 1), e(4, 2), e(5, 0)],
        ];
        let ordered = order_by_day(chunks, 3);
        let people: Vec<u32> = ordered.rows.iter().map(|r| r.person).collect();
        assert_eq!(people, vec![1, 5, 3, 0, 2, 4]);
        assert_eq!(ordered.day_start, vec![0, 2, 3, 6]);
    }

    #[test]
    fn parts_cover_all_rows_and_end_on_day_boundaries() {
        // Days of 3, 0, 5, 1, 4 rows.
        let day_start = vec![0, 3, 3, 8, 9, 13];
        let parts = part_ranges(&day_start, 4);
        assert_eq!(parts, vec![0..8, 8..13]);
        let parts = part_ranges(&day_start, 100);
        assert_eq!(parts, vec![0..13]);
    }
}
