//! Typing a whole model: every derived feature, segmentation and cohort
//! condition checked against the types of the columns it reads, and every
//! event filter against its source's columns.
//!
//! This is the language's side of planning, shared by every backend: the
//! native engine ([`crate::engine::plan`]) and the SQL compiler
//! ([`crate::sql`]) both ask for the same typed model, so a rule file means
//! one thing whichever runs it. The backends supply only what the data
//! tells: the types of population attributes and of the columns that
//! `min`/`max` reduce or a `where` reads. Without data those are unknown
//! (`Type::Null`, which accepts any use), as `strata check` types them.

use chrono::NaiveDate;

use super::check::{self, Binding, Node, Type, Typed};
use super::expr::{ExprKind, Literal};
use super::{Aggregate, FeatureKind, Located, Model, did_you_mean};
use crate::error::Result;

/// Person-level slots: `age`, `sex`, then attributes, then features.
pub const AGE_SLOT: usize = 0;
pub const SEX_SLOT: usize = 1;
pub const FIRST_ATTRIBUTE_SLOT: usize = 2;

/// A cohort's typed condition and rank keys.
#[derive(Debug, Clone)]
pub struct TypedCohort {
    pub condition: Typed,
    /// (person-level slot, descending)
    pub rank: Vec<(usize, bool)>,
}

/// The typed person level of a model: what every backend evaluates after
/// the aggregates.
#[derive(Debug, Clone)]
pub struct PersonLevel {
    /// The population attributes, in slot order.
    pub attributes: Vec<String>,
    /// Types of the person-level slots: age, sex, attributes, features.
    pub slot_types: Vec<Type>,
    /// Derived features in evaluation order: (feature index, expression).
    pub derived: Vec<(usize, Typed)>,
    /// One per cohort of the model.
    pub cohorts: Vec<TypedCohort>,
}

impl PersonLevel {
    /// The slot of feature `i`.
    pub fn feature_slot(&self, i: usize) -> usize {
        FIRST_ATTRIBUTE_SLOT + self.attributes.len() + i
    }
}

impl Aggregate {
    /// The type of the aggregate's result; `column` is the type of the
    /// column `min`/`max` reduce.
    pub fn result_type(self, column: Option<Type>) -> Type {
        match self {
            Aggregate::Count
            | Aggregate::CountDistinctCodes
            | Aggregate::CountDistinctCategories
            | Aggregate::MaxInAMonth
            | Aggregate::MaxIn30Days
            | Aggregate::TotalDays => Type::Int,
            Aggregate::Exists => Type::Bool,
            Aggregate::ListCategories => Type::Str,
            Aggregate::SumDistinctWeights | Aggregate::Mean | Aggregate::Latest => Type::Float,
            Aggregate::FirstDate | Aggregate::LastDate => Type::Date,
            Aggregate::Min | Aggregate::Max => column.unwrap_or(Type::Int),
        }
    }
}

/// Types a model's person level. `attribute_types` gives each population
/// attribute's type (in the model's order), `column_types` the type of the
/// column each `min`/`max` feature reduces (by feature index; `None` where
/// unknown or not such a feature). `as_of` is the run's date, or `None`
/// when typing without one: `as_of` is then an unknown date, never a
/// made-up one.
pub fn person_level(
    model: &Model,
    attribute_types: &[(String, Type)],
    column_types: &[Option<Type>],
    as_of: Option<NaiveDate>,
) -> Result<PersonLevel> {
    let attributes: Vec<String> = attribute_types.iter().map(|(n, _)| n.clone()).collect();
    let mut slot_types = vec![Type::Int, Type::Str];
    slot_types.extend(attribute_types.iter().map(|(_, t)| *t));
    for (i, feature) in model.features.iter().enumerate() {
        slot_types.push(match &feature.kind {
            FeatureKind::Aggregate {
                aggregate, column, ..
            } => match (column, column_types.get(i).copied().flatten()) {
                (Some(_), None) => Type::Null,
                (_, ty) => aggregate.result_type(ty),
            },
            // Typed below, once the types of the features it uses are known.
            _ => Type::Null,
        });
    }
    let first_feature_slot = FIRST_ATTRIBUTE_SLOT + attributes.len();
    let mut derived = Vec::new();
    for &fi in &model.derived_order {
        let typed = match &model.features[fi].kind {
            FeatureKind::Derived(located) => {
                person_expr(model, located, &slot_types, &attributes, as_of, None)?
            }
            FeatureKind::Segments { segments, default } => {
                let text = |s: &str| Typed {
                    node: Node::Literal(Literal::Str(s.to_string())),
                    ty: Type::Str,
                };
                let mut whens = Vec::new();
                for segment in segments {
                    let condition = person_expr(
                        model,
                        &segment.condition,
                        &slot_types,
                        &attributes,
                        as_of,
                        Some("a segment's `when`"),
                    )?;
                    whens.push((condition, text(&segment.name)));
                }
                Typed {
                    node: Node::Case(whens, Some(Box::new(text(default)))),
                    ty: Type::Str,
                }
            }
            FeatureKind::Aggregate { .. } => continue,
        };
        slot_types[first_feature_slot + fi] = typed.ty;
        derived.push((fi, typed));
    }
    let slot_of = |name: &str| -> usize {
        if name == "age" {
            AGE_SLOT
        } else if let Some(i) = attributes.iter().position(|a| a == name) {
            FIRST_ATTRIBUTE_SLOT + i
        } else {
            first_feature_slot + model.feature_index(name).expect("checked when loading")
        }
    };
    let mut cohorts = Vec::new();
    for cohort in &model.cohorts {
        let condition = person_expr(
            model,
            &cohort.condition,
            &slot_types,
            &attributes,
            as_of,
            Some("a cohort's `when`"),
        )?;
        let rank = cohort
            .rank
            .iter()
            .map(|k| (slot_of(&k.name), k.descending))
            .collect();
        cohorts.push(TypedCohort { condition, rank });
    }
    Ok(PersonLevel {
        attributes,
        slot_types,
        derived,
        cohorts,
    })
}

/// Type checks a model's person-level expressions without data: the types
/// that only the data can tell (population attributes, `min`/`max` of a
/// column) are taken as unknown, and accept any use.
pub fn check_types(model: &Model) -> Result<()> {
    let attributes: Vec<(String, Type)> = model
        .population
        .attributes
        .keys()
        .map(|n| (n.clone(), Type::Null))
        .collect();
    person_level(model, &attributes, &[], None).map(|_| ())
}

/// Types an event filter (a feature's `where`) whose names are parameters
/// or the source's `columns` (name and type, in slot order).
pub fn event_filter(model: &Model, located: &Located, columns: &[(String, Type)]) -> Result<Typed> {
    let resolve = |name: &str| -> Option<Binding> {
        if let Some(v) = model.param(name) {
            return Some(Binding::Constant(v.clone()));
        }
        let slot = columns.iter().position(|(c, _)| c == name)?;
        Some(Binding::Column(slot, columns[slot].1))
    };
    let unknown = |n: &str| format!("unknown column `{n}`");
    check::check_condition(&located.expr, &resolve, &unknown, "`where`")
        .map_err(|e| e.at(model, located))
}

/// Types a person-level expression (derived feature, segment or cohort
/// condition; `condition` names which, when it must be true/false).
pub fn person_expr(
    model: &Model,
    located: &Located,
    slot_types: &[Type],
    attributes: &[String],
    as_of: Option<NaiveDate>,
    condition: Option<&str>,
) -> Result<Typed> {
    let first_feature_slot = FIRST_ATTRIBUTE_SLOT + attributes.len();
    let resolve = |name: &str| -> Option<Binding> {
        let slot = match name {
            "age" => AGE_SLOT,
            "sex" => SEX_SLOT,
            "as_of" => {
                return Some(match as_of {
                    Some(d) => Binding::Constant(Literal::Date(d)),
                    // Typed, never evaluated: no slot holds it.
                    None => Binding::Column(usize::MAX, Type::Date),
                });
            }
            _ => {
                if let Some(v) = model.param(name) {
                    return Some(Binding::Constant(v.clone()));
                }
                if let Some(i) = attributes.iter().position(|a| a == name) {
                    FIRST_ATTRIBUTE_SLOT + i
                } else {
                    first_feature_slot + model.feature_index(name)?
                }
            }
        };
        Some(Binding::Column(slot, slot_types[slot]))
    };
    let names = model.person_level_names();
    let unknown = |n: &str| {
        format!(
            "unknown name `{n}`{}",
            did_you_mean(n, names.iter().copied())
        )
    };
    match condition {
        Some(what) => check::check_condition(&located.expr, &resolve, &unknown, what),
        None => check::check(&located.expr, &resolve, &unknown),
    }
    .map_err(|e| {
        let error = e.at(model, located);
        match yes_no_hint(model, located, attributes, slot_types) {
            Some(hint) => error.with_help(hint),
            None => error,
        }
    })
}

/// Help for a type error in an expression that reads a population
/// attribute the data holds as text or a number: warehouse extracts often
/// write yes/no as `Y`/`N` or 1/0, which strata does not guess at.
fn yes_no_hint(
    model: &Model,
    located: &Located,
    attributes: &[String],
    slot_types: &[Type],
) -> Option<String> {
    let mut found = None;
    located.expr.visit(&mut |e| {
        if let ExprKind::Name(name) = &e.kind
            && let Some(i) = attributes.iter().position(|a| a == name)
            && matches!(slot_types[FIRST_ATTRIBUTE_SLOT + i], Type::Str | Type::Int)
            && found.is_none()
        {
            let column = model
                .population
                .attributes
                .get(name)
                .map_or(name.as_str(), |c| c.get_ref().as_str());
            let ty = slot_types[FIRST_ATTRIBUTE_SLOT + i];
            found = Some(format!(
                "`{name}` is read from the population column `{column}`, which holds {}: if it means yes/no (Y/N, 1/0), store it as a boolean column in the extract, or compare it in the rule (e.g. `{name} = {}`)",
                ty.a(),
                if ty == Type::Str { "'Y'" } else { "1" }
            ));
        }
    });
    found
}
