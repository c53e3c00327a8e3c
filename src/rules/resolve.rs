//! Checks that need every file of a run: names used across files, the order
//! of derived features, and declarations nothing uses.

use std::collections::HashSet;

use super::{FeatureKind, Located, Model, did_you_mean};
use crate::error::{Error, Result};

/// Checks that every name a definition uses exists, once all the files of a
/// run are merged (a file may use what another defines), and orders the
/// derived features.
pub(super) fn resolve_names(model: &mut Model) -> Result<()> {
    model.derived_order = derived_order(model)?;
    let known = model.person_level_names();
    let features: Vec<&str> = model.features.iter().map(|f| f.name.as_str()).collect();
    for cohort in &model.cohorts {
        let condition = &cohort.condition;
        if let Some((unknown, span)) = condition
            .expr
            .names()
            .into_iter()
            .find(|(n, _)| !known.contains(n))
        {
            return Err(unknown_name(
                model,
                condition.offset + span.start,
                unknown,
                &known,
            ));
        }
        for key in &cohort.rank {
            let attribute = model.population.attributes.contains_key(&key.name);
            if key.name != "age" && !attribute && !features.contains(&key.name.as_str()) {
                return Err(model.error_at(
                    key.offset,
                    format!(
                        "rank key `{}` is not a feature, `age` or a population attribute{}",
                        key.name,
                        did_you_mean(&key.name, features.iter().copied())
                    ),
                ));
            }
        }
        let mut seen: Vec<&str> = vec!["rank", "new", "person_id", "reason"];
        for (column, offset) in cohort.columns.iter().flatten() {
            if seen.contains(&column.as_str()) {
                return Err(model
                    .error_at(*offset, format!("column `{column}` is listed twice, or is one strata always writes"))
                    .with_help("rank, new, person_id and reason are written anyway; list every other column once"));
            }
            seen.push(column);
            let attribute = model.population.attributes.contains_key(column);
            let person = super::PERSON_COLUMNS.contains(&column.as_str());
            if !person && !attribute && !features.contains(&column.as_str()) {
                return Err(model
                    .error_at(
                        *offset,
                        format!(
                            "column `{column}` is not a feature, a population attribute or one of {}{}",
                            super::PERSON_COLUMNS.join(", "),
                            did_you_mean(column, features.iter().copied())
                        ),
                    )
                    .with_help("rank and person_id are always the first columns; list the others"));
            }
        }
        for (reason, offset) in &cohort.reasons {
            if !features.contains(&reason.as_str()) {
                return Err(model.error_at(
                    *offset,
                    format!(
                        "reason `{reason}` is not a feature{}",
                        did_you_mean(reason, features.iter().copied())
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A name no feature, parameter or attribute has; an outcome's name is
/// refused as what it is.
fn unknown_name(model: &Model, offset: usize, name: &str, known: &[&str]) -> Error {
    if model.outcomes.iter().any(|o| o.name == name) {
        return model
            .error_at(
                offset,
                format!("`{name}` is an outcome: what happened after the as-of date, which no feature or cohort may read"),
            )
            .with_help("a list built on what happens next could not be made on the day; outcomes are for strata evaluate");
    }
    model.error_at(
        offset,
        format!(
            "unknown name `{name}`{}",
            did_you_mean(name, known.iter().copied())
        ),
    )
}

/// Declarations nothing uses: parameters, sources and code lists. Each is a
/// rule-file error value, used as a warning.
pub fn unused(model: &Model) -> Vec<Error> {
    let mut used: HashSet<&str> = model
        .params_outside_expressions
        .iter()
        .map(String::as_str)
        .collect();
    let mut expressions: Vec<&Located> = model.cohorts.iter().map(|c| &c.condition).collect();
    for feature in model.features.iter().chain(&model.outcomes) {
        expressions.extend(feature.kind.expressions());
        if let FeatureKind::Aggregate {
            filter: Some(f), ..
        } = &feature.kind
        {
            expressions.push(f);
        }
    }
    for located in expressions {
        used.extend(located.expr.names().into_iter().map(|(n, _)| n));
    }
    let aggregates = || {
        model
            .features
            .iter()
            .chain(&model.outcomes)
            .filter_map(|f| match &f.kind {
                FeatureKind::Aggregate {
                    source, codelist, ..
                } => Some((*source, *codelist)),
                _ => None,
            })
    };
    model
        .declarations
        .iter()
        .filter(|(kind, name, _)| match *kind {
            "parameter" => !used.contains(name.as_str()),
            "source" => {
                let i = model.sources.iter().position(|s| &s.name == name);
                !aggregates().any(|(s, _)| Some(s) == i)
            }
            _ => {
                let i = model.codelists.iter().position(|c| &c.name == name);
                !aggregates().any(|(_, c)| c.is_some() && c == i)
            }
        })
        .map(|(kind, name, offset)| {
            model.error_at(*offset, format!("{kind} `{name}` is never used"))
        })
        .collect()
}

/// Orders derived features so each comes after the features it uses, and
/// rejects unknown names and cycles.
fn derived_order(model: &Model) -> Result<Vec<usize>> {
    let known = model.person_level_names();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; model.features.len()];
    let mut order = Vec::new();

    fn visit(
        i: usize,
        model: &Model,
        known: &[&str],
        marks: &mut [Mark],
        order: &mut Vec<usize>,
        path: &mut Vec<usize>,
    ) -> Result<()> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Active => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let cycle: Vec<&str> = path[start..]
                    .iter()
                    .chain(std::iter::once(&i))
                    .map(|&p| model.features[p].name.as_str())
                    .collect();
                return Err(model.error_at(
                    model.features[i].offset,
                    format!(
                        "features refer to each other in a cycle: {}",
                        cycle.join(" -> ")
                    ),
                )
                .with_help("a feature cannot depend on itself: compute one of them from other features or events"));
            }
            Mark::New => {}
        }
        let expressions = model.features[i].kind.expressions();
        if expressions.is_empty() {
            marks[i] = Mark::Done;
            return Ok(());
        }
        marks[i] = Mark::Active;
        path.push(i);
        for (located, (name, span)) in expressions
            .iter()
            .flat_map(|e| e.expr.names().into_iter().map(move |n| (e, n)))
        {
            match model.feature_index(name) {
                Some(j) => visit(j, model, known, marks, order, path)?,
                None if known.contains(&name) => {}
                None => {
                    return Err(unknown_name(
                        model,
                        located.offset + span.start,
                        name,
                        known,
                    ));
                }
            }
        }
        path.pop();
        marks[i] = Mark::Done;
        order.push(i);
        Ok(())
    }

    for i in 0..model.features.len() {
        visit(i, model, &known, &mut marks, &mut order, &mut Vec::new())?;
    }
    Ok(order
        .into_iter()
        .filter(|&i| !model.features[i].kind.expressions().is_empty())
        .collect())
}
