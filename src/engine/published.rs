//! Results from a per-person table computed elsewhere (by the compiled SQL
//! on Spark, say), so that `strata publish` can write every output of
//! `strata run` from it: PCN lists with reasons, workbooks, the report,
//! suppression and the manifest.
//!
//! The table must be the one `strata run` writes as `patients.parquet` for
//! the same rule files and as-of date: the same columns with the same types
//! (checked against the typed model), and the same people (everyone in the
//! population except those the purpose withholds, who have no row). The
//! population table is read from the data folder as for a run (ages, sex,
//! attributes, opt-outs); the event tables are not read at all.

use std::path::Path;
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, Int32Array, RecordBatch, UInt32Array};
use arrow_schema::DataType;
use chrono::NaiveDate;

use crate::dates;
use crate::engine::plan::{FeaturePlan, Plan};
use crate::engine::{CohortResult, Results, opt_outs};
use crate::error::{Error, Result};
use crate::input::Population;
use crate::input::population::Person;
use crate::input::table::{self, Table};
use crate::rules::check::Type;
use crate::rules::{FeatureKind, Model, RESERVED_COLUMNS, typing};

/// Reads the per-person table at `path` (a Parquet file or a folder of part
/// files) as the results of `model` as of `as_of`, with the population of
/// `data`.
pub fn results<'m>(
    model: &'m Model,
    data: &Path,
    path: &Path,
    as_of: NaiveDate,
) -> Result<Results<'m>> {
    let started = Instant::now();
    let mut population = Population::load(data, &model.population)?;
    let (registered, registrations, rejected) =
        match super::registrations::apply(&mut population, data, dates::to_day(as_of))? {
            Some(applied) => (
                Some(applied.registered),
                Some(applied.table),
                vec![(crate::input::REGISTRATIONS.to_string(), applied.rejected)],
            ),
            None => (None, None, Vec::new()),
        };
    let attribute_types = Population::attribute_types(&model.population, &population.table)?;
    let computed = Computed::read(path)?;
    computed.check_names(model)?;
    let typed = computed.typed(model, &attribute_types, as_of)?;
    let place = computed.place(&population)?;
    let alive = super::registrations::registered_only(
        super::alive_on(&population, as_of),
        registered.as_ref(),
    )?;
    super::someone_alive(&alive, &population, as_of)?;
    let (purpose, purpose_from) = model.purpose();
    let opt_outs = opt_outs::OptOuts::new(&population, purpose, purpose_from)?;
    computed.check_people(&place, &alive, &opt_outs, as_of)?;

    let first_feature = typing::FIRST_ATTRIBUTE_SLOT + typed.attributes.len();
    let mut slots: Vec<ArrayRef> = vec![
        super::ages(population.column("birth_date"), as_of),
        population.column("sex").clone(),
    ];
    for attribute in &typed.attributes {
        let column = crate::input::population::attribute_column(attribute);
        slots.push(population.column(&column).clone());
    }
    for (fi, f) in model.features.iter().enumerate() {
        let want = typed.slot_types[first_feature + fi];
        slots.push(computed.feature(&f.name, want, &place)?);
    }
    let pcn = population.column("pcn_code");
    let cohort_results = model
        .cohorts
        .iter()
        .map(|c| computed.cohort(&c.name, &place, pcn))
        .collect::<Result<Vec<_>>>()?;

    let features = (0..model.features.len())
        .map(|fi| FeaturePlan {
            ty: typed.slot_types[first_feature + fi],
            slot: first_feature + fi,
        })
        .collect();
    let plan = Plan {
        model,
        as_of,
        as_of_inferred: false,
        population,
        sources: Vec::new(),
        absent: Vec::new(),
        slot_types: typed.slot_types,
        attributes: typed.attributes,
        features,
        derived: typed.derived,
        cohorts: typed.cohorts,
    };
    Ok(Results {
        plan,
        slots,
        counted: super::counted_mask(&alive, &opt_outs),
        alive,
        opt_outs,
        cohorts: cohort_results,
        rejected,
        rejected_rows: Vec::new(),
        timings: vec![("read the per-person table", started.elapsed())],
        released: vec![false; model.features.len()],
        computed_elsewhere: Some(computed.table),
        registrations,
    })
}

/// The per-person table as read, one batch.
struct Computed {
    table: Table,
    batch: RecordBatch,
}

impl Computed {
    /// The whole table at `path` (a `.parquet` file or a folder of parts).
    fn read(path: &Path) -> Result<Computed> {
        let (table, batch) = read(path)?;
        Ok(Computed { table, batch })
    }

    /// An error in the table, with what to do.
    fn problem(&self, message: String) -> Error {
        Error::data(&self.table.location, message).with_help(
            "give the table the SQL compiled from the same rule files (strata compile) wrote, for the same --as-of date",
        )
    }

    fn column(&self, name: &str) -> &ArrayRef {
        self.batch
            .column_by_name(name)
            .expect("checked by check_names")
    }

    /// The columns, in order: those of `patients.parquet` for `model`.
    fn check_names(&self, model: &Model) -> Result<()> {
        let ranks: Vec<String> = model
            .cohorts
            .iter()
            .map(|c| format!("{}_rank", c.name))
            .collect();
        let expected: Vec<&str> = RESERVED_COLUMNS
            .iter()
            .copied()
            .chain(model.features.iter().map(|f| f.name.as_str()))
            .chain(model.cohorts.iter().map(|c| c.name.as_str()))
            .chain(ranks.iter().map(String::as_str))
            .collect();
        let schema = self.batch.schema_ref();
        let found: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        if found == expected {
            // Flags are true/false (alive never null), ranks whole numbers.
            let flags = ["alive", "counted"]
                .into_iter()
                .chain(model.cohorts.iter().map(|c| c.name.as_str()));
            for name in flags {
                let column = self.column(name);
                if column.data_type() != &DataType::Boolean {
                    return Err(self.problem(format!(
                        "column `{name}` holds {}, not true/false",
                        column.data_type()
                    )));
                }
            }
            if self.column("alive").null_count() > 0 {
                return Err(self.problem("column `alive` has nulls: everyone is in the population on the as-of date or not".into()));
            }
            for name in &ranks {
                let ty = self.column(name).data_type();
                if !(ty == &DataType::Null || table::canonical_type(ty) == Some(Type::Int)) {
                    return Err(
                        self.problem(format!("column `{name}` holds {ty}, not whole numbers"))
                    );
                }
            }
            return Ok(());
        }
        let listed = |what: &str, names: Vec<&str>| {
            if names.is_empty() {
                String::new()
            } else {
                format!("; {what}: {}", names.join(", "))
            }
        };
        let missing = expected
            .iter()
            .filter(|c| !found.contains(c))
            .copied()
            .collect::<Vec<_>>();
        let extra = found
            .iter()
            .filter(|c| !expected.contains(c))
            .copied()
            .collect::<Vec<_>>();
        let reordered = missing.is_empty() && extra.is_empty();
        Err(self.problem(format!(
            "the per-person table's columns are not those the rule files define{}{}{}",
            listed("missing", missing),
            listed("not defined", extra),
            if reordered { "; the order differs" } else { "" }
        )))
    }

    /// The model typed with the table's types where only data could tell
    /// them (`min`/`max` of a column); every feature's column must hold the
    /// type the rule files give it.
    fn typed(
        &self,
        model: &Model,
        attribute_types: &[(String, Type)],
        as_of: NaiveDate,
    ) -> Result<typing::PersonLevel> {
        let column_type = |name: &str| table::canonical_type(self.column(name).data_type());
        let column_types: Vec<Option<Type>> = model
            .features
            .iter()
            .map(|f| match &f.kind {
                FeatureKind::Aggregate {
                    column: Some(_), ..
                } => column_type(&f.name),
                _ => None,
            })
            .collect();
        let typed = typing::person_level(model, attribute_types, &column_types, Some(as_of))?;
        let first_feature = typing::FIRST_ATTRIBUTE_SLOT + typed.attributes.len();
        for (fi, f) in model.features.iter().enumerate() {
            let want = typed.slot_types[first_feature + fi];
            let got = self.column(&f.name).data_type();
            let same = match column_type(&f.name) {
                Some(t) => t == want,
                // An all-null column may come without a type.
                None => got == &DataType::Null,
            };
            if !same && want != Type::Null {
                return Err(self.problem(format!(
                    "column `{}` holds {got}, but the rule files define it as {}",
                    f.name,
                    want.a()
                )));
            }
        }
        Ok(typed)
    }

    /// Each person's row of the table, by their place in the population.
    fn place(&self, population: &Population) -> Result<Vec<Option<u32>>> {
        let location = &self.table.location;
        let ids = table::canonical(self.column("person_id"), location, "person_id")?.0;
        let column = population.index().column(&ids, location, "person_id")?;
        let mut place: Vec<Option<u32>> = vec![None; population.len()];
        for row in 0..self.batch.num_rows() {
            match population.index().lookup(&column, row) {
                Person::Found(p) if place[p as usize].is_none() => {
                    place[p as usize] = Some(row as u32)
                }
                Person::Found(_) => {
                    return Err(
                        self.problem("the per-person table has a person_id more than once".into())
                    );
                }
                Person::NullId | Person::Unknown => {
                    return Err(self.problem(format!(
                        "row {} of the per-person table is not a person of the population table",
                        row + 1
                    )));
                }
            }
        }
        Ok(place)
    }

    /// Column `name` in population order (null for a person with no row).
    fn placed(&self, name: &str, place: &[Option<u32>]) -> Result<ArrayRef> {
        let indices = UInt32Array::from(place.to_vec());
        arrow_select::take::take(self.column(name), &indices, None)
            .map_err(|e| Error::Internal(format!("placing the per-person table's rows: {e}")))
    }

    /// The people are the population's, less those the purpose withholds;
    /// their `alive` is the population's on `as_of`.
    fn check_people(
        &self,
        place: &[Option<u32>],
        alive: &BooleanArray,
        opt_outs: &opt_outs::OptOuts,
        as_of: NaiveDate,
    ) -> Result<()> {
        let written = self.placed("alive", place)?;
        let written = written.as_boolean();
        let purpose = opt_outs.purpose.name();
        for (p, row) in place.iter().enumerate() {
            let withheld = opt_outs.withheld_from_lists.value(p);
            if row.is_none() != withheld {
                return Err(self.problem(if withheld {
                    format!("the per-person table has a person the {purpose} purpose withholds from patient-level outputs")
                } else {
                    format!("the per-person table lacks a person the {purpose} purpose keeps")
                }));
            }
            if row.is_some() && written.value(p) != alive.value(p) {
                return Err(self.problem(format!(
                    "the per-person table's `alive` differs from the population's as of {as_of}: was it computed for another date?"
                )));
            }
        }
        Ok(())
    }

    /// A feature's column in population order, in the type the engine
    /// evaluates (a SQL engine may write an INT where strata writes a
    /// BIGINT, or a column of nulls untyped).
    fn feature(&self, name: &str, want: Type, place: &[Option<u32>]) -> Result<ArrayRef> {
        let column = self.placed(name, place)?;
        if column.data_type() == &DataType::Null {
            return Ok(arrow_array::new_null_array(&want.data_type(), column.len()));
        }
        Ok(table::canonical(&column, &self.table.location, name)?.0)
    }

    /// A cohort's flags, ranks and members.
    fn cohort(&self, name: &str, place: &[Option<u32>], pcn: &ArrayRef) -> Result<CohortResult> {
        let flags = self.placed(name, place)?;
        let flags: BooleanArray = flags
            .as_boolean()
            .iter()
            .map(|f| Some(f == Some(true)))
            .collect();
        let rank = self.placed(&format!("{name}_rank"), place)?;
        let rank = arrow_cast::cast(&rank, &DataType::Int32).map_err(|e| {
            self.problem(format!("column `{name}_rank` is not a whole number: {e}"))
        })?;
        let rank: Int32Array = rank.as_primitive::<arrow_array::types::Int32Type>().clone();
        members(flags, rank, pcn)
    }
}

/// A cohort's members in output order (by PCN, then rank), from its flags
/// and ranks.
fn members(flags: BooleanArray, rank: Int32Array, pcn: &ArrayRef) -> Result<CohortResult> {
    let by_pcn = arrow_ord::ord::make_comparator(
        pcn.as_ref(),
        pcn.as_ref(),
        arrow_schema::SortOptions {
            descending: false,
            nulls_first: false,
        },
    )
    .map_err(|e| Error::Internal(format!("ordering by PCN: {e}")))?;
    let mut members: Vec<u32> = (0..flags.len())
        .filter(|&p| flags.value(p))
        .map(|p| p as u32)
        .collect();
    members.sort_by(|&a, &b| {
        by_pcn(a as usize, b as usize)
            .then(rank.value(a as usize).cmp(&rank.value(b as usize)))
            .then(a.cmp(&b))
    });
    Ok(CohortResult {
        flags,
        rank: Some(rank),
        members,
    })
}

/// The whole table at `path` (a `.parquet` file or a folder of parts) in
/// one batch.
fn read(path: &Path) -> Result<(Table, RecordBatch)> {
    let (dir, name) = match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(dir), Some(name)) => (dir, name.strip_suffix(".parquet").unwrap_or(name)),
        _ => {
            return Err(Error::usage(format!(
                "{} is not a Parquet file or folder",
                path.display()
            ))
            .with_help("give the per-person table as a .parquet file or a folder of part files"));
        }
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let table = Table::open(dir, name, "--patients-table")?;
    let mut batches = Vec::new();
    for group in table.row_groups() {
        let columns: Vec<&str> = table
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        for batch in table.reader(group, &columns, &[])? {
            batches.push(batch.map_err(|e| table.read_error(group, &columns, &e))?);
        }
    }
    let batch = arrow_select::concat::concat_batches(&table.schema, &batches)
        .map_err(|e| Error::Internal(format!("joining the per-person table's batches: {e}")))?;
    Ok((table, batch))
}
