//! Several rule files in one run (`--rules a.toml --rules b.toml`, or a file
//! that `include`s others), as one model.
//!
//! Definitions are matched by name. A name two files define identically is
//! kept once, so a feature two models share is computed once; a name they
//! define differently is an error that points at the second definition and
//! names the first file, since silently picking one would change a model's
//! meaning without anyone noticing.

use std::path::Path;

use super::{Cohort, Feature, FeatureKind, Located, Model};
use crate::error::{Error, Result};

/// `b`'s definitions added to `a`'s. Cohort descriptions must agree, since
/// PCN leads read them; feature descriptions are documentation and may not.
pub fn merge(mut a: Model, mut b: Model) -> Result<Model> {
    shift(
        &mut b,
        a.files.last().map_or(0, |f| f.start + f.text.len() + 1),
    );
    drop_files_already_read(&a, &mut b);
    if b.files.is_empty() {
        return Ok(a);
    }
    let b_path = b.path.display().to_string();

    // The roles must agree; attributes are pooled, each name naming the
    // same column wherever it is declared.
    let attributes = std::mem::take(&mut b.population.attributes);
    let a_attributes = std::mem::take(&mut a.population.attributes);
    let roles_differ = a.population != b.population;
    a.population.attributes = a_attributes;
    if roles_differ {
        return Err(Error::usage(format!(
            "{} and {b_path} describe the population table differently",
            a.path.display()
        ))
        .with_help("rule files that run together must agree on [population]"));
    }
    for (name, column) in attributes {
        match a.population.attributes.get(&name) {
            Some(c) if c.get_ref() == column.get_ref() => {}
            Some(c) => {
                return Err(Error::usage(format!(
                    "population attribute `{name}` is column `{}` in {} but `{}` in {b_path}",
                    c.get_ref(),
                    a.path.display(),
                    column.get_ref()
                ))
                .with_help("rule files that run together must agree on [population]"));
            }
            None => {
                a.population.attributes.insert(name, column);
            }
        }
    }
    for (name, value) in std::mem::take(&mut b.params) {
        match a.params.iter().find(|(n, _)| *n == name) {
            Some((_, v)) if *v == value => {}
            Some(_) => {
                let message = format!(
                    "parameter `{name}` has another value in {}",
                    declared_in(&a, "parameter", &name)
                );
                return Err(declared_error(&b, "parameter", &name, &message));
            }
            None => a.params.push((name, value)),
        }
    }
    let mut source_index = Vec::new();
    for source in std::mem::take(&mut b.sources) {
        let i = match a.sources.iter().position(|s| s.name == source.name) {
            Some(i) if a.sources[i] == source => i,
            Some(_) => {
                let message = format!(
                    "source `{}` is declared differently in {}",
                    source.name,
                    declared_in(&a, "source", &source.name)
                );
                return Err(declared_error(&b, "source", &source.name, &message));
            }
            None => {
                a.sources.push(source);
                a.sources.len() - 1
            }
        };
        source_index.push(i);
    }
    let mut codelist_index = Vec::new();
    for list in std::mem::take(&mut b.codelists) {
        let i = match a.codelists.iter().position(|c| c.name == list.name) {
            // The same codes with the same weights and categories, matched
            // the same way: wherever the CSV lives, it is the same list.
            Some(i) if a.codelists[i].same_as(&list) => i,
            Some(_) => {
                let message = format!(
                    "code list `{}` is declared differently in {}",
                    list.name,
                    declared_in(&a, "code list", &list.name)
                );
                return Err(declared_error(&b, "code list", &list.name, &message));
            }
            None => {
                a.codelists.push(list);
                a.codelists.len() - 1
            }
        };
        codelist_index.push(i);
    }
    for mut feature in std::mem::take(&mut b.features) {
        if let FeatureKind::Aggregate {
            source, codelist, ..
        } = &mut feature.kind
        {
            *source = source_index[*source];
            *codelist = codelist.map(|c| codelist_index[c]);
        }
        match a.features.iter().find(|f| f.name == feature.name) {
            Some(f) if same_feature(f, &feature) => {}
            Some(f) => {
                return Err(b
                    .error_at(
                        feature.offset,
                        format!(
                            "feature `{}` is defined differently in {}",
                            feature.name,
                            file_of(&a, f.offset)
                        ),
                    )
                    .with_help(
                        "give one of them another name, or make the definitions identical",
                    ));
            }
            None => a.features.push(feature),
        }
    }
    for mut outcome in std::mem::take(&mut b.outcomes) {
        if let FeatureKind::Aggregate {
            source, codelist, ..
        } = &mut outcome.kind
        {
            *source = source_index[*source];
            *codelist = codelist.map(|c| codelist_index[c]);
        }
        match a.outcomes.iter().find(|o| o.name == outcome.name) {
            Some(o) if same_feature(o, &outcome) => {}
            Some(o) => {
                return Err(b
                    .error_at(
                        outcome.offset,
                        format!(
                            "outcome `{}` is defined differently in {}",
                            outcome.name,
                            file_of(&a, o.offset)
                        ),
                    )
                    .with_help(
                        "give one of them another name, or make the definitions identical",
                    ));
            }
            None => a.outcomes.push(outcome),
        }
    }
    for cohort in std::mem::take(&mut b.cohorts) {
        match a.cohorts.iter().find(|c| c.name == cohort.name) {
            Some(c) if same_cohort(c, &cohort) => {}
            Some(c) => {
                return Err(b.error_at(
                    cohort.condition.offset,
                    format!(
                        "cohort `{}` is defined differently in {}",
                        cohort.name,
                        file_of(&a, c.condition.offset)
                    ),
                ));
            }
            None => a.cohorts.push(cohort),
        }
    }
    // Names of different kinds from different files must not meet.
    let kinds = a
        .params
        .iter()
        .map(|(n, _)| (n.clone(), "a parameter"))
        .chain(a.features.iter().map(|f| (f.name.clone(), "a feature")))
        .chain(a.cohorts.iter().map(|c| (c.name.clone(), "a cohort")))
        .chain(
            a.cohorts
                .iter()
                .map(|c| (format!("{}_rank", c.name), "a cohort's rank column")),
        );
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for (name, kind) in kinds {
        if let Some(other) = seen.insert(name.clone(), kind) {
            return Err(Error::usage(format!(
                "`{name}` is {other} in one rule file and {kind} in another"
            ))
            .with_help("give one of them another name"));
        }
    }
    match (a.suppression, b.suppression) {
        (Some((x, _)), Some((y, at))) if x != y => {
            return Err(b
                .error_at(
                    at,
                    format!(
                        "this suppression differs from the one {} sets",
                        a.file_at(a.suppression.map_or(0, |s| s.1)).display()
                    ),
                )
                .with_help("rule files that run together must agree on [output] suppression"));
        }
        (None, Some(s)) => a.suppression = Some(s),
        _ => {}
    }
    match (a.purpose, b.purpose) {
        (Some((x, _)), Some((y, at))) if x != y => {
            return Err(b
                .error_at(
                    at,
                    format!(
                        "this purpose differs from the one {} sets",
                        a.file_at(a.purpose.map_or(0, |p| p.1)).display()
                    ),
                )
                .with_help("rule files that run together must agree on [output] purpose"));
        }
        (None, Some(p)) => a.purpose = Some(p),
        _ => {}
    }
    a.files.append(&mut b.files);
    a.tests.append(&mut b.tests);
    a.declarations.append(&mut b.declarations);
    a.params_outside_expressions
        .extend(b.params_outside_expressions);
    for name in std::mem::take(&mut b.overridden) {
        if !a.overridden.contains(&name) {
            a.overridden.push(name);
        }
    }
    Ok(a)
}

/// Forgets what `b` read from files `a` has already read (a file included
/// by two others), so its tests and declarations count once.
fn drop_files_already_read(a: &Model, b: &mut Model) {
    let same_file = |x: &Path, y: &Path| super::bundled::identity(x) == super::bundled::identity(y);
    let repeated: Vec<(usize, usize)> = b
        .files
        .iter()
        .filter(|f| a.files.iter().any(|g| same_file(&f.path, &g.path)))
        .map(|f| (f.start, f.start + f.text.len()))
        .collect();
    let in_repeated = |offset: usize| repeated.iter().any(|(s, e)| (*s..=*e).contains(&offset));
    b.files.retain(|f| !in_repeated(f.start));
    b.tests.retain(|(start, _)| !in_repeated(*start));
    b.declarations.retain(|(_, _, o)| !in_repeated(*o));
}

/// An error at `b`'s declaration of `name`.
fn declared_error(b: &Model, kind: &str, name: &str, message: &str) -> Error {
    let error = match b
        .declarations
        .iter()
        .find(|(k, n, _)| *k == kind && n == name)
    {
        Some((_, _, offset)) => b.error_at(*offset, message),
        None => Error::usage(message.to_string()),
    };
    error.with_help("rule files that run together must define a shared name identically")
}

/// The file `offset` of `a` falls in, for messages about a clash.
fn file_of(a: &Model, offset: usize) -> String {
    a.file_at(offset).display().to_string()
}

/// The file where `a` declared `name`.
fn declared_in(a: &Model, kind: &str, name: &str) -> String {
    a.declarations
        .iter()
        .find(|(k, n, _)| *k == kind && n == name)
        .map_or_else(|| a.path.display().to_string(), |(_, _, o)| file_of(a, *o))
}

/// Moves every offset `b` keeps by `by`, past the files already merged.
fn shift(b: &mut Model, by: usize) {
    let located = |l: &mut Located| l.offset += by;
    for f in &mut b.files {
        f.start += by;
    }
    for feature in b.features.iter_mut().chain(&mut b.outcomes) {
        feature.offset += by;
        if let Some(b) = &mut feature.banding {
            b.score.offset += by;
        }
        match &mut feature.kind {
            FeatureKind::Aggregate { filter, .. } => filter.iter_mut().for_each(located),
            FeatureKind::Derived(l) => located(l),
            FeatureKind::Segments { segments, .. } => {
                segments.iter_mut().for_each(|s| located(&mut s.condition))
            }
        }
    }
    for cohort in &mut b.cohorts {
        located(&mut cohort.condition);
        cohort.rank.iter_mut().for_each(|k| k.offset += by);
        cohort.reasons.iter_mut().for_each(|(_, o)| *o += by);
        cohort
            .columns
            .iter_mut()
            .flatten()
            .for_each(|(_, o)| *o += by);
        cohort.pcns.iter_mut().flatten().for_each(|(_, o)| *o += by);
    }
    b.declarations.iter_mut().for_each(|(_, _, o)| *o += by);
    b.tests.iter_mut().for_each(|(start, _)| *start += by);
    if let Some((_, at)) = &mut b.suppression {
        *at += by;
    }
    if let Some((_, at)) = &mut b.purpose {
        *at += by;
    }
}

/// The same definition, whichever file and position it was written at
/// (descriptions are documentation and may differ).
fn same_feature(x: &Feature, y: &Feature) -> bool {
    let same = |a: &Option<Located>, b: &Option<Located>| match (a, b) {
        (Some(a), Some(b)) => a.expr.same_as(&b.expr),
        (None, None) => true,
        _ => false,
    };
    x.part_of == y.part_of
        && x.at_least == y.at_least
        && match (&x.kind, &y.kind) {
            (
                FeatureKind::Aggregate {
                    source: s1,
                    aggregate: a1,
                    codelist: c1,
                    category: g1,
                    window: w1,
                    filter: f1,
                    column: k1,
                    nth: n1,
                },
                FeatureKind::Aggregate {
                    source: s2,
                    aggregate: a2,
                    codelist: c2,
                    category: g2,
                    window: w2,
                    filter: f2,
                    column: k2,
                    nth: n2,
                },
            ) => {
                s1 == s2
                    && a1 == a2
                    && c1 == c2
                    && g1 == g2
                    && w1 == w2
                    && same(f1, f2)
                    && k1 == k2
                    && n1 == n2
            }
            // Bands are kept as their expression tree; compare trees, not text.
            (FeatureKind::Derived(l1), FeatureKind::Derived(l2)) => l1.expr.same_as(&l2.expr),
            (
                FeatureKind::Segments {
                    segments: s1,
                    default: d1,
                },
                FeatureKind::Segments {
                    segments: s2,
                    default: d2,
                },
            ) => {
                d1 == d2
                    && s1.len() == s2.len()
                    && s1.iter().zip(s2).all(|(x, y)| {
                        x.name == y.name && x.condition.expr.same_as(&y.condition.expr)
                    })
            }
            _ => false,
        }
}

fn same_cohort(x: &Cohort, y: &Cohort) -> bool {
    let rank = |c: &Cohort| {
        c.rank
            .iter()
            .map(|k| (k.name.clone(), k.descending))
            .collect::<Vec<_>>()
    };
    let reasons = |c: &Cohort| c.reasons.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let pcns = |c: &Cohort| {
        c.pcns
            .as_ref()
            .map(|p| p.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>())
    };
    x.title == y.title
        && x.description == y.description
        && x.condition.expr.same_as(&y.condition.expr)
        && rank(x) == rank(y)
        && reasons(x) == reasons(y)
        && x.columns
            .as_ref()
            .map(|c| c.iter().map(|(n, _)| n).collect::<Vec<_>>())
            == y.columns
                .as_ref()
                .map(|c| c.iter().map(|(n, _)| n).collect::<Vec<_>>())
        && pcns(x) == pcns(y)
        && x.top_per_pcn == y.top_per_pcn
}
