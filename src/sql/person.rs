//! The person level as SQL: the population (ages, presence on the as-of
//! date, opt-outs by purpose), then the derived features level by level,
//! cohort membership and ranks, and the per-person table as
//! `patients.parquet` holds it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use arrow_schema::DataType;
use chrono::{Datelike, NaiveDate};

use super::source::FIRST_PLAUSIBLE;
use super::{Script, Target, described, expr};
use crate::error::{Error, Result};
use crate::input::population::SEXES;
use crate::input::table::{self, Table};
use crate::rules::check::Type;
use crate::rules::expr::Literal;
use crate::rules::typing::{self, AGE_SLOT, FIRST_ATTRIBUTE_SLOT, SEX_SLOT};
use crate::rules::{FeatureKind, Model, Purpose};

/// What the script reads for the population and, where the data has them,
/// the registrations (tables or Parquet paths).
pub(super) struct Reads<'a> {
    pub population: &'a str,
    pub registrations: Option<&'a str>,
}

/// `population`: one row per person, with age, presence and opt-outs.
pub(super) fn population_ctes(
    model: &Model,
    table: &Table,
    attribute_types: &[(String, Type)],
    as_of: NaiveDate,
    purpose: Purpose,
    reads: Reads,
    script: &mut Script,
) -> Result<()> {
    let Reads {
        population: from,
        registrations,
    } = reads;
    let target = script.target;
    let spec = &model.population;
    let id = |s: &str| target.ident(s);
    let text = target.text_type();
    let person_ty = table.column_type(&spec.person_id, "person_id")?;
    let person = match table::canonical_type(person_ty) {
        Some(Type::Int) => format!("CAST({} AS BIGINT)", id(&spec.person_id)),
        _ => id(&spec.person_id),
    };
    // Sex is F, M, U or unknown, as the native engine refuses anything
    // else; tested with the person id, which every query reads (a test on
    // `sex` alone is dropped where no rule reads it).
    let sex = id(&spec.sex);
    let sexes = SEXES.map(|v| format!("'{v}'")).join(", ");
    let fail =
        target.fail("the sex column holds values other than F, M and U: map them to F, M or U");
    let mut columns = vec![
        format!(
            "CASE WHEN {sex} IS NULL OR CAST({sex} AS {text}) IN ('', {sexes}) THEN {person} ELSE {fail} END AS person_id"
        ),
        format!("CAST({} AS {text}) AS practice_code", id(&spec.practice)),
        format!("CAST({} AS {text}) AS pcn_code", id(&spec.pcn)),
        format!("CAST({sex} AS {text}) AS sex"),
        // A birth date before 1900 is unknown, as the engine reads it.
        format!(
            "CASE WHEN CAST({b} AS DATE) >= {FIRST_PLAUSIBLE} THEN CAST({b} AS DATE) END AS _birth",
            b = id(&spec.birth_date)
        ),
        format!("CAST({} AS DATE) AS _death", id(&spec.date_of_death)),
    ];
    for ((name, ty), column) in attribute_types.iter().zip(spec.attributes.values()) {
        columns.push(format!(
            "CAST({} AS {}) AS {}",
            id(column.get_ref()),
            expr::sql_type(target, *ty),
            id(name)
        ));
    }
    for (internal, named, role) in [
        ("_type1", &spec.type1_opt_out, "type1_opt_out"),
        (
            "_national",
            &spec.national_data_opt_out,
            "national_data_opt_out",
        ),
    ] {
        let column = match named {
            Some(c) => Some(c.as_str()),
            None if table.has_column(role) => Some(role),
            None => None,
        };
        let value = match column {
            Some(c) => {
                let ty = table.column_type(c, role)?;
                flag(target, &id(c), ty, role).ok_or_else(|| {
                    Error::data(
                        &table.location,
                        format!(
                            "the {role} column `{c}` has type {ty}, which is neither yes nor no"
                        ),
                    )
                    .with_help("store it as a boolean, 1/0 or Y/N")
                })?
            }
            None => "FALSE".to_string(),
        };
        columns.push(format!("{value} AS {internal}"));
    }
    columns.push(format!(
        "CASE WHEN count(*) OVER (PARTITION BY {person}) > 1 THEN {} ELSE TRUE END AS _unique",
        target.fail(&format!(
            "the population table `{}` has a person_id more than once; strata run keeps the first row in file order, which SQL cannot tell: remove the duplicates",
            spec.table
        ))
    ));
    let as_of_sql = format!("DATE '{as_of}'");
    let withheld_from_lists = match purpose {
        Purpose::DirectCare => "_type1",
        Purpose::SecondaryUse => "(_type1 OR _national)",
    };
    let (y, m, d) = (as_of.year(), as_of.month(), as_of.day());
    script.cte(
        "population",
        &format!(
            "The population table `{}`: one row per person (null ids skipped), with their opt-out flags.",
            spec.table
        ),
        format!(
            "SELECT\n    {}\n  FROM {}\n  WHERE {} IS NOT NULL",
            columns.join(",\n    "),
            from,
            id(&spec.person_id)
        ),
    );
    // Who was registered on the as-of date, and where (see
    // engine::registrations): the latest registration started on or before
    // it and not ended before it, then the first practice code.
    let (people_from, registered) = match registrations {
        None => ("population", ""),
        Some(reference) => {
            let cast = if person.starts_with("CAST(") {
                "BIGINT"
            } else {
                text
            };
            script.cte(
                "registered",
                &format!("Each person's registration on {as_of}, from the registrations table."),
                format!(
                    "SELECT person_id, practice_code\n  FROM (SELECT CAST(person_id AS {cast}) AS person_id, CAST(practice_code AS {text}) AS practice_code,\n      row_number() OVER (PARTITION BY person_id ORDER BY CAST(start_date AS DATE) DESC, CAST(practice_code AS {text})) AS _n\n    FROM {reference}\n    WHERE person_id IS NOT NULL AND practice_code IS NOT NULL AND start_date IS NOT NULL\n      AND CAST(start_date AS DATE) <= {as_of_sql}\n      AND (end_date IS NULL OR CAST(end_date AS DATE) >= {as_of_sql})) AS r\n  WHERE _n = 1",
                    as_of_sql = format!("DATE '{as_of}'"),
                ),
            );
            script.cte(
                "practice_pcns",
                "The PCN of each practice, as the population table gives it: one, or the script fails, as strata run stops.",
                format!(
                    "SELECT practice_code, CASE WHEN count(DISTINCT pcn_code) > 1 THEN {} ELSE min(pcn_code) END AS pcn_code\n  FROM {} WHERE practice_code IS NOT NULL GROUP BY practice_code",
                    target.fail(
                        "the population table gives a practice more than one PCN: with a registrations table each practice's patients go to one PCN; give every row of a practice the same pcn_code"
                    ),
                    id("population")
                ),
            );
            let mut kept: Vec<String> = vec![
                "p.person_id".into(),
                "r.practice_code".into(),
                "k.pcn_code".into(),
                "p.sex".into(),
                "p._birth".into(),
                "p._death".into(),
            ];
            kept.extend(attribute_types.iter().map(|(n, _)| format!("p.{}", id(n))));
            kept.extend(["p._type1", "p._national", "p._unique"].map(String::from));
            script.cte(
                "population_then",
                &format!("The population as registered on {as_of}: each person at the practice (and its PCN) of their registration then; not registered, no practice."),
                format!(
                    "SELECT {}, r.person_id IS NOT NULL AS _registered\n  FROM {} AS p\n  LEFT JOIN {} AS r ON r.person_id = p.person_id\n  LEFT JOIN {} AS k ON k.practice_code = r.practice_code",
                    kept.join(", "),
                    id("population"),
                    id("registered"),
                    id("practice_pcns")
                ),
            );
            ("population_then", " AND _registered")
        }
    };
    script.cte(
        "people",
        &format!(
            "Age in completed years on {as_of} (a 29 February birthday falls on 1 March), presence on that date, and who the {} purpose keeps out of lists and counts.",
            purpose.name()
        ),
        format!(
            "SELECT\n    person_id, practice_code, pcn_code, sex,\n    CASE WHEN _birth IS NULL OR _birth > {as_of_sql} THEN NULL\n      ELSE CAST({y} - year(_birth) - CASE WHEN month(_birth) > {m} OR (month(_birth) = {m} AND day(_birth) > {d}) THEN 1 ELSE 0 END AS BIGINT) END AS age,\n    {}\n    (_birth IS NULL OR _birth <= {as_of_sql}) AND (_death IS NULL OR _death > {as_of_sql}){registered} AS _alive,\n    {withheld_from_lists} AS _withheld,\n    (_type1 OR _national) AS _not_counted,\n    _unique\n  FROM {}",
            attribute_types
                .iter()
                .map(|(n, _)| format!("{},\n    ", id(n)))
                .collect::<String>(),
            id(people_from)
        ),
    );
    Ok(())
}

/// An opt-out flag column as true/false, as strata reads it: booleans,
/// 1/0, and Y/N, yes/no, true/false, 1/0 as text (any case); null or empty
/// is no opt-out; anything else stops the query.
fn flag(target: Target, column: &str, ty: &DataType, role: &str) -> Option<String> {
    let fail = target.fail(&format!(
        "the {role} column holds a value that is neither yes nor no: write true/false, 1/0 or Y/N"
    ));
    Some(match table::canonical_type(ty)? {
        Type::Bool => format!("coalesce({column}, FALSE)"),
        Type::Int => format!(
            "CASE WHEN {column} IS NULL OR {column} = 0 THEN FALSE WHEN {column} = 1 THEN TRUE ELSE {fail} END"
        ),
        Type::Str => {
            let v = format!(
                "lower({})",
                target.trim_code(&format!("coalesce({column}, '')"))
            );
            format!(
                "CASE WHEN {v} IN ('', 'n', 'no', 'false', '0') THEN FALSE WHEN {v} IN ('y', 'yes', 'true', '1') THEN TRUE ELSE {fail} END"
            )
        }
        _ => return None,
    })
}

/// On Spark `aggregates` (every source's per-person values in one row per
/// person), and `persons` (everyone in the population with them; zero, false or
/// null for a person without rows, as each aggregate says; null for
/// everyone where an optional table is absent).
///
/// On Spark the per-person CTEs are stacked (`UNION ALL`, each person once
/// per CTE) and grouped, then joined to the population once: Spark's
/// planner takes time exponential in the depth of a join chain. DuckDB
/// takes one join per CTE instead: grouping the stack updated every
/// feature's `max` for every row (about 70 a row for the default model),
/// about 15% of its time at 1M persons (and 6.3 GB of memory against 5.4 GB).
pub(super) fn persons_cte(
    model: &Model,
    typed: &typing::PersonLevel,
    aggregates: &super::source::Aggregates,
    script: &mut Script,
) {
    let target = script.target;
    let first_feature = FIRST_ATTRIBUTE_SLOT + typed.attributes.len();
    let aggregated: Vec<usize> = aggregates
        .iter()
        .flat_map(|(_, features)| features.iter().map(|(fi, _)| *fi))
        .collect();
    let column = |fi: usize| target.ident(&model.features[fi].name);
    let null = |fi: usize| typed_null(target, typed, first_feature + fi);
    // Where each feature comes from: (its CTE's alias, its default).
    let mut from: BTreeMap<usize, (String, &Option<String>)> = BTreeMap::new();
    if target == Target::DuckDb {
        let mut joins = String::new();
        for (i, (cte, features)) in aggregates.iter().enumerate() {
            let alias = format!("a{i}");
            let _ = write!(
                joins,
                "\n  LEFT JOIN {} AS {alias} ON {alias}._person = p.person_id",
                target.ident(cte)
            );
            for (fi, default) in features {
                from.insert(*fi, (alias.clone(), default));
            }
        }
        return persons_select(model, typed, &from, &joins, script);
    }
    let branches: Vec<String> = aggregates
        .iter()
        .map(|(cte, features)| {
            let values: Vec<String> = aggregated
                .iter()
                .map(|&fi| match features.iter().find(|(f, _)| *f == fi) {
                    Some((_, default)) => {
                        from.insert(fi, ("a".into(), default));
                        column(fi)
                    }
                    None => format!("{} AS {}", null(fi), column(fi)),
                })
                .collect();
            format!(
                "SELECT _person, {} FROM {}",
                values.join(", "),
                target.ident(cte)
            )
        })
        .collect();
    if !branches.is_empty() {
        let maxima: Vec<String> = aggregated
            .iter()
            .map(|&fi| format!("max({c}) AS {c}", c = column(fi)))
            .collect();
        script.cte(
            "aggregates",
            "Every source's per-person values, one row per person with any.",
            format!(
                "SELECT _person, {}\n  FROM (\n    {}\n  ) AS u\n  GROUP BY _person",
                maxima.join(", "),
                branches.join("\n    UNION ALL\n    ")
            ),
        );
    }
    let join = if branches.is_empty() {
        String::new()
    } else {
        format!(
            "\n  LEFT JOIN {} AS a ON a._person = p.person_id",
            target.ident("aggregates")
        )
    };
    persons_select(model, typed, &from, &join, script);
}

/// A null of the type of person-level `slot`.
fn typed_null(target: Target, typed: &typing::PersonLevel, slot: usize) -> String {
    format!(
        "CAST(NULL AS {})",
        expr::sql_type(target, typed.slot_types[slot])
    )
}

/// `persons`: the population joined (`joins`) to the per-person values,
/// each feature read `from` its alias with its default.
fn persons_select(
    model: &Model,
    typed: &typing::PersonLevel,
    from: &BTreeMap<usize, (String, &Option<String>)>,
    joins: &str,
    script: &mut Script,
) {
    let target = script.target;
    let first_feature = FIRST_ATTRIBUTE_SLOT + typed.attributes.len();
    let column = |fi: usize| target.ident(&model.features[fi].name);
    let mut select = vec!["p.*".to_string()];
    for (fi, feature) in model.features.iter().enumerate() {
        if !matches!(feature.kind, FeatureKind::Aggregate { .. }) {
            continue;
        }
        let value = match from.get(&fi) {
            Some((alias, Some(d))) => format!("coalesce({alias}.{}, {d})", column(fi)),
            Some((alias, None)) => format!("{alias}.{}", column(fi)),
            None => typed_null(target, typed, first_feature + fi),
        };
        select.push(described(
            &feature.description,
            format!("{value} AS {}", column(fi)),
        ));
    }
    script.cte(
        "persons",
        "Everyone in the population, with the aggregates of every source (zero, false or null where a person has no event).",
        format!(
            "SELECT\n    {}\n  FROM {} AS p{joins}",
            select.join(",\n    "),
            target.ident("people"),
        ),
    );
}

/// Derived features, in CTEs by dependency level: each level's features
/// read only the levels before it. Returns the last CTE's name.
pub(super) fn derived_ctes(
    model: &Model,
    typed: &typing::PersonLevel,
    script: &mut Script,
) -> String {
    let target = script.target;
    let first_feature = FIRST_ATTRIBUTE_SLOT + typed.attributes.len();
    let mut level: BTreeMap<usize, usize> = BTreeMap::new();
    for (fi, t) in &typed.derived {
        let mut deepest = 0;
        t.each_slot(&mut |slot| {
            if slot >= first_feature
                && let Some(l) = level.get(&(slot - first_feature))
            {
                deepest = deepest.max(*l);
            }
        });
        level.insert(*fi, deepest + 1);
    }
    let column = |slot: usize, ty: Type| column_of(model, typed, target, slot, ty);
    let mut last = "persons".to_string();
    let levels = level.values().copied().max().unwrap_or(0);
    for l in 1..=levels {
        let lines: Vec<String> = typed
            .derived
            .iter()
            .filter(|(fi, _)| level[fi] == l)
            .map(|(fi, t)| {
                let f = &model.features[*fi];
                described(
                    &f.description,
                    format!(
                        "{} AS {}",
                        expr::sql(target, t, &column),
                        target.ident(&f.name)
                    ),
                )
            })
            .collect();
        let name = format!("derived_{l}");
        script.cte(
            &name,
            &format!(
                "Derived features{}.",
                if l == 1 {
                    " from the aggregates"
                } else {
                    " that use the ones before"
                }
            ),
            format!(
                "SELECT\n    *,\n    {}\n  FROM {}",
                lines.join(",\n    "),
                target.ident(&last)
            ),
        );
        last = name;
    }
    last
}

/// The column of a person-level slot, read as `ty`.
///
/// A derived feature the rules type as null (`expr = "null"`) is all null,
/// written as a BIGINT null; where an expression has given it another type
/// (`nothing > as_of`, `case ... then nothing else 'a' end`) it is read as
/// a null of that type, as a bare `null` there would be, and as the native
/// engine reads it (a cast of the column would not do: Spark casts no
/// BIGINT to a DATE). Only a derived feature can be typed null here (an
/// attribute of Arrow's null type, or a `min`/`max` of a column whose type
/// is unknown, is refused before compiling); the check of the feature's
/// kind keeps it so should that change, since an unknown type is not an
/// all-null column.
fn column_of(
    model: &Model,
    typed: &typing::PersonLevel,
    target: Target,
    slot: usize,
    ty: Type,
) -> String {
    let first_feature = FIRST_ATTRIBUTE_SLOT + typed.attributes.len();
    match slot {
        AGE_SLOT => "age".into(),
        SEX_SLOT => "sex".into(),
        s if s < first_feature => target.ident(&typed.attributes[s - FIRST_ATTRIBUTE_SLOT]),
        s => {
            let feature = &model.features[s - first_feature];
            let column = target.ident(&feature.name);
            let derived = !matches!(feature.kind, FeatureKind::Aggregate { .. });
            if derived && typed.slot_types[s] == Type::Null && ty != Type::Null {
                expr::literal(target, &Literal::Null, ty)
            } else {
                column
            }
        }
    }
}

/// Cohort flags and ranks. Returns the last CTE's name.
pub(super) fn cohort_ctes(
    model: &Model,
    typed: &typing::PersonLevel,
    last: String,
    script: &mut Script,
) -> String {
    if model.cohorts.is_empty() {
        return last;
    }
    let target = script.target;
    let column = |slot: usize, ty: Type| column_of(model, typed, target, slot, ty);
    let flags: Vec<String> = model
        .cohorts
        .iter()
        .zip(&typed.cohorts)
        .map(|(c, t)| {
            let mut flag = format!(
                "coalesce({}, FALSE) AND _alive AND NOT _withheld",
                expr::sql(target, &t.condition, &column)
            );
            if let Some(pcns) = &c.pcns {
                let codes: Vec<String> = pcns.iter().map(|(p, _)| target.string(p)).collect();
                let _ = write!(
                    flag,
                    " AND coalesce(pcn_code IN ({}), FALSE)",
                    codes.join(", ")
                );
            }
            described(
                &c.title,
                format!("{flag} AS {}", target.ident(&format!("_in_{}", c.name))),
            )
        })
        .collect();
    script.cte(
        "cohort_members",
        "Cohort members: the condition holds (null is not true), the person was in the population on the as-of date, and the purpose lets a list hold them.",
        format!("SELECT\n    *,\n    {}\n  FROM {}", flags.join(",\n    "), target.ident(&last)),
    );
    // On DuckDB, ranked on a narrow copy (the flags and the rank keys) and
    // joined back: a window over the whole table carried every column
    // through each cohort's sort (six sorts of the default model's 130
    // columns). Not on Spark, which computes a CTE again for each reader:
    // the second reader of `cohort_members` made it read every table twice
    // (the Spark conformance suite took 628 s against 384 s).
    let mut narrow: Vec<String> = vec!["person_id".into(), "pcn_code".into()];
    let mut ranks: Vec<String> = Vec::new();
    for (c, t) in model.cohorts.iter().zip(&typed.cohorts) {
        let member = target.ident(&format!("_in_{}", c.name));
        narrow.push(member.clone());
        let mut keys: Vec<String> = Vec::new();
        for (slot, desc) in &t.rank {
            // As held: a rank key is a column of the narrow copy.
            let key = column(*slot, typed.slot_types[*slot]);
            keys.push(format!(
                "{key} {} NULLS LAST",
                if *desc { "DESC" } else { "ASC" }
            ));
            narrow.push(key);
        }
        keys.push("person_id".into());
        ranks.push(format!(
            "CASE WHEN {member} THEN row_number() OVER (PARTITION BY {member}, pcn_code ORDER BY {}) END AS {}",
            keys.join(", "),
            target.ident(&format!("_rank_{}", c.name))
        ));
    }
    if target == Target::Spark {
        script.cte(
            "cohort_ranks",
            "Ranks within each PCN: by the cohort's rank keys (nulls last), ties broken by person_id.",
            format!(
                "SELECT\n    *,\n    {}\n  FROM {}",
                ranks.join(",\n    "),
                target.ident("cohort_members")
            ),
        );
        return "cohort_ranks".into();
    }
    let mut seen = BTreeSet::new();
    narrow.retain(|c| seen.insert(c.clone()));
    script.cte(
        "cohort_rank_numbers",
        "Ranks within each PCN: by the cohort's rank keys (nulls last), ties broken by person_id.",
        format!(
            "SELECT\n    person_id,\n    {}\n  FROM (SELECT {} FROM {}) AS k",
            ranks.join(",\n    "),
            narrow.join(", "),
            target.ident("cohort_members")
        ),
    );
    let numbers: Vec<String> = model
        .cohorts
        .iter()
        .map(|c| format!("r.{}", target.ident(&format!("_rank_{}", c.name))))
        .collect();
    script.cte(
        "cohort_ranks",
        "Each person with their ranks (a person_id is there once: the population's duplicates stop the query).",
        format!(
            "SELECT m.*, {}\n  FROM {} AS m\n  JOIN {} AS r ON r.person_id = m.person_id",
            numbers.join(", "),
            target.ident("cohort_members"),
            target.ident("cohort_rank_numbers")
        ),
    );
    "cohort_ranks".into()
}

/// The per-person table, as `patients.parquet` holds it.
pub(super) fn final_select(model: &Model, target: Target, last: &str) -> String {
    let id = |s: &str| target.ident(s);
    let mut columns = vec![
        "person_id".to_string(),
        "practice_code".into(),
        "pcn_code".into(),
        "_alive AS alive".into(),
        "(_alive AND NOT _not_counted) AS counted".into(),
    ];
    columns.extend(model.features.iter().map(|f| id(&f.name)));
    for c in &model.cohorts {
        let rank = id(&format!("_rank_{}", c.name));
        columns.push(match c.top_per_pcn {
            Some(n) => format!("coalesce({rank} <= {n}, FALSE) AS {}", id(&c.name)),
            None => format!("{} AS {}", id(&format!("_in_{}", c.name)), id(&c.name)),
        });
    }
    for c in &model.cohorts {
        let rank = id(&format!("_rank_{}", c.name));
        let kept = match c.top_per_pcn {
            Some(n) => format!("CASE WHEN {rank} <= {n} THEN {rank} END"),
            None => rank,
        };
        columns.push(format!(
            "CAST({kept} AS INT) AS {}",
            id(&format!("{}_rank", c.name))
        ));
    }
    format!(
        "-- The per-person table: people the purpose withholds from patient-level\n-- outputs are left out, as in patients.parquet.\nSELECT\n  {}\nFROM {}\nWHERE NOT _withheld AND _unique\nORDER BY person_id;\n",
        columns.join(",\n  "),
        id(last)
    )
}
