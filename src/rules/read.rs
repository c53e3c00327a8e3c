//! Reading one rule file: TOML with positions, parameters, sources, code
//! lists, features and cohorts, each checked as far as the file alone
//! allows. Names that may be defined in another file of the run are checked
//! later, once the files are merged ([`super::resolve`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use toml::Spanned;

use super::expr::{self, BinaryOp, Expr, ExprKind, Literal};
use super::{
    BUILTINS, Codelist, Cohort, Feature, FeatureKind, Located, MappedColumn, Model,
    RESERVED_COLUMNS, RankKey, RuleText, Segment, Source, check, did_you_mean, syntax, toml_date,
};
use crate::dates::Window;
use crate::error::{Error, Position, Result};
use syntax::Aggregate;

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Offset of a TOML string's first content character, given the span of the
/// whole string token (quotes included).
fn content_offset(text: &str, span: std::ops::Range<usize>) -> usize {
    let raw = &text[span.start..span.end.min(text.len())];
    if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
        let after = span.start + 3;
        if text[after..].starts_with("\r\n") {
            after + 2
        } else if text[after..].starts_with('\n') {
            after + 1
        } else {
            after
        }
    } else if raw.starts_with('"') || raw.starts_with('\'') {
        span.start + 1
    } else {
        span.start
    }
}

struct Loader<'a> {
    path: &'a Path,
    text: &'a str,
    /// Parameters used outside expressions (windows, band boundaries).
    used_params: std::cell::RefCell<HashSet<String>>,
}

impl Loader<'_> {
    fn error(&self, offset: usize, message: impl Into<String>) -> Error {
        Error::rules(
            self.path,
            Some(Position::of_offset(self.text, offset)),
            message,
        )
    }

    fn expression(&self, s: &Spanned<String>) -> Result<Located> {
        let offset = content_offset(self.text, s.span());
        let expr =
            expr::parse(s.get_ref()).map_err(|e| self.error(offset + e.span.start, e.message))?;
        Ok(Located {
            expr,
            text: s.get_ref().clone(),
            offset,
        })
    }
}

/// Reads one rule file; returns the model and the files it includes, each
/// with where this file names it.
pub(super) fn load_one(
    path: &Path,
    overrides: (&[(String, String)], &str),
) -> Result<(Model, Vec<(PathBuf, Position)>)> {
    let text = super::bundled::read(path)
        .and_then(|bytes| {
            String::from_utf8(bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })
        .map_err(|e| {
            Error::io(path, "cannot read rule file", e).with_help(
                "check the rule file's path (given to --rules, or to check, test and compile as an argument), or name a bundled model (`strata models` lists them)",
            )
        })?;
    let file: syntax::RuleFile = toml::from_str(&text).map_err(|e| {
        let at = e.span().map(|s| Position::of_offset(&text, s.start));
        Error::rules(path, at, e.message().trim().to_string())
            .with_help("see docs/rules.md for the layout of a rule file")
    })?;
    let l = &Loader {
        path,
        text: &text,
        used_params: Default::default(),
    };
    let rule_dir = path.parent().unwrap_or(Path::new("."));
    let mut names = Names::new();
    for (attr, column) in &file.population.attributes {
        names.claim(l, attr, "a population attribute", column.span().start)?;
    }
    let (params, overridden) = read_params(l, &file, &mut names, overrides)?;
    let sources = read_sources(l, &file)?;
    let codelists = read_codelists(l, &file, rule_dir)?;
    for (source, (name, decl)) in sources.iter().zip(&file.sources) {
        if let (Some(m), Some(written)) = (&source.measure, &decl.get_ref().measure)
            && !codelists.iter().any(|c| c.name == m.codelist)
        {
            return Err(l
                .error(
                    written.span().start,
                    format!(
                        "the measure of source `{name}` names code list `{}`, which this file does not declare{}",
                        m.codelist,
                        did_you_mean(&m.codelist, codelists.iter().map(|c| c.name.as_str()))
                    ),
                )
                .with_help("declare the measure's codes in a [codelists.NAME] table of this file"));
        }
    }
    let mut features = Vec::new();
    for (name, f) in &file.features {
        let offset = f.span().start;
        names.claim(l, name, "a feature", offset)?;
        let decl = f.get_ref();
        if let Some(p) = &decl.part_of {
            return Err(l
                .error(p.span().start, format!("feature `{name}` has `part_of`, which only an outcome can have"))
                .with_help("`part_of` names the outcome whose events an [outcomes] entry's are a part of; remove it here"));
        }
        if let Some(a) = &decl.at_least {
            return Err(l
                .error(a.span().start, format!("feature `{name}` has `at_least`, which only an outcome can have"))
                .with_help("a feature's threshold belongs in a cohort (`when = \"feature >= 5\"`); remove it here"));
        }
        let kind = feature_kind(l, name, decl, offset, &sources, &codelists, &params, false)?;
        let banding = match (&decl.bands, &kind) {
            (Some(_), FeatureKind::Derived(case)) => super::Banding::of(case),
            _ => None,
        };
        features.push(Feature {
            name: name.clone(),
            description: decl.description.clone().unwrap_or_default(),
            label: decl.label.clone(),
            kind,
            offset,
            banding,
            evaluate: decl.evaluate.as_ref().map(|e| *e.get_ref()),
            part_of: None,
            at_least: None,
        });
    }

    let mut outcomes = Vec::new();
    for (name, o) in &file.outcomes {
        let offset = o.span().start;
        names.claim(l, name, "an outcome", offset)?;
        let decl = o.get_ref();
        let kind = feature_kind(l, name, decl, offset, &sources, &codelists, &params, true)?;
        if !matches!(kind, FeatureKind::Aggregate { .. }) {
            return Err(l
                .error(offset, format!("outcome `{name}` is not an aggregate over a source"))
                .with_help("an outcome counts events after the as-of date: give it `source`, `aggregate` and a `window` such as \"next 365 days\""));
        }
        if let Some(e) = &decl.evaluate {
            return Err(l
                .error(e.span().start, format!("outcome `{name}` cannot be evaluated: it is what scores are evaluated against"))
                .with_help("mark features (scores) with `evaluate`, not outcomes"));
        }
        outcomes.push(Feature {
            name: name.clone(),
            description: decl.description.clone().unwrap_or_default(),
            label: decl.label.clone(),
            kind,
            offset,
            banding: None,
            evaluate: None,
            part_of: decl.part_of.as_ref().map(|p| p.get_ref().clone()),
            at_least: decl.at_least.as_ref().map(|a| *a.get_ref()),
        });
        if let Some(a) = &decl.at_least {
            let counts = matches!(
                outcomes.last().map(|o: &Feature| &o.kind),
                Some(FeatureKind::Aggregate {
                    aggregate: Aggregate::Count | Aggregate::TotalDays,
                    ..
                })
            );
            if !counts || *a.get_ref() < 1 {
                return Err(l
                    .error(a.span().start, format!("outcome `{name}` has `at_least = {}`, but that needs a count of 1 or more", a.get_ref()))
                    .with_help("`at_least` is for outcomes with `aggregate = \"count\"` or `\"total_days\"`: the outcome happened when the count reaches it"));
            }
        }
    }
    check_parts(l, &file, &outcomes)?;
    let (suppression, purpose) = read_output(l, &file)?;
    let mut model = Model {
        path: path.to_path_buf(),
        files: vec![RuleText {
            path: path.to_path_buf(),
            sha256: Sha256::digest(text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            text: text.clone(),
            start: 0,
            meta: file.model.clone(),
        }],
        meta: file.model,
        population: file.population,
        params,
        overridden,
        overrides: Vec::new(),
        sources,
        codelists,
        features,
        derived_order: Vec::new(),
        cohorts: Vec::new(),
        outcomes,
        tests: Vec::new(),
        suppression,
        purpose,
        purpose_set: None,
        declarations: file
            .params
            .iter()
            .map(|(n, v)| ("parameter", n.clone(), v.span().start))
            .chain(
                file.sources
                    .iter()
                    .map(|(n, s)| ("source", n.clone(), s.span().start)),
            )
            .chain(
                file.codelists
                    .iter()
                    .map(|(n, c)| ("code list", n.clone(), c.span().start)),
            )
            .collect(),
        params_outside_expressions: HashSet::new(),
    };
    for (name, c) in &file.cohorts {
        names.claim(l, name, "a cohort", c.span().start)?;
        names.claim(
            l,
            &format!("{name}_rank"),
            "a cohort's rank column",
            c.span().start,
        )?;
        let cohort = read_cohort(l, name, c.get_ref(), &model.params)?;
        model.cohorts.push(cohort);
    }
    model.tests = file.tests.into_iter().map(|t| (0, t)).collect();
    model.params_outside_expressions = l.used_params.take();
    let includes = file
        .include
        .iter()
        .map(|i| {
            let at = Position::of_offset(&text, i.span().start);
            (rule_dir.join(i.get_ref()), at)
        })
        .collect();
    Ok((model, includes))
}

/// Every name a person-level expression can use, with what it names, so
/// that one name is never defined twice (as a feature and a cohort, say).
struct Names(HashMap<String, &'static str>);

impl Names {
    fn new() -> Names {
        let mut defined = HashMap::new();
        for (name, _) in BUILTINS {
            defined.insert(name.to_string(), "a built-in name");
        }
        for name in RESERVED_COLUMNS {
            defined.insert(name.to_string(), "an output column strata always writes");
        }
        Names(defined)
    }

    fn claim(&mut self, l: &Loader, name: &str, kind: &'static str, offset: usize) -> Result<()> {
        if !is_identifier(name) {
            return Err(l.error(offset, format!(
                "`{name}` is not a valid name: use letters, digits and `_`, starting with a letter"
            )));
        }
        if let Some(other) = self.0.insert(name.to_string(), kind) {
            return Err(l
                .error(
                    offset,
                    format!("`{name}` is defined as {kind} but is already {other}"),
                )
                .with_help("give one of them another name"));
        }
        Ok(())
    }
}

/// `[params]`, with the `--set` values applied: (name, value) in order, and
/// the names that were set. `overrides` are the values and the flag that
/// gave them, which errors name.
#[allow(clippy::type_complexity)]
fn read_params(
    l: &Loader,
    file: &syntax::RuleFile,
    names: &mut Names,
    (overrides, flag): (&[(String, String)], &str),
) -> Result<(Vec<(String, Literal)>, Vec<String>)> {
    let mut params = Vec::new();
    for (name, value) in &file.params {
        names.claim(l, name, "a parameter", value.span().start)?;
        let lit = match value.get_ref() {
            toml::Value::Integer(i) => Literal::Int(*i),
            toml::Value::Float(f) => Literal::Float(*f),
            toml::Value::Boolean(b) => Literal::Bool(*b),
            toml::Value::String(s) => Literal::Str(s.clone()),
            toml::Value::Datetime(_) => match toml_date(value.get_ref()) {
                Some(date) => Literal::Date(date),
                None => {
                    return Err(l.error(
                        value.span().start,
                        "a date parameter must be a plain date, YYYY-MM-DD",
                    ));
                }
            },
            _ => {
                return Err(l.error(
                    value.span().start,
                    format!("parameter `{name}` must be a number, text, true/false or a date"),
                ));
            }
        };
        params.push((name.clone(), lit));
    }
    let mut overridden = Vec::new();
    for (name, text) in overrides {
        let Some((_, value)) = params.iter_mut().find(|(n, _)| n == name) else {
            continue;
        };
        *value = override_value(value, text).ok_or_else(|| {
            Error::usage(format!(
                "{flag} {name}={text}: `{text}` is not {}",
                check::literal_type(value).a()
            ))
            .with_help(format!(
                "give `{name}` {}, as its [params] entry has",
                check::literal_type(value).a()
            ))
        })?;
        overridden.push(name.clone());
    }

    Ok((params, overridden))
}

/// `[sources]`.
fn read_sources(l: &Loader, file: &syntax::RuleFile) -> Result<Vec<Source>> {
    let mut sources = Vec::new();
    for (name, s) in &file.sources {
        if !is_identifier(name) {
            return Err(l.error(
                s.span().start,
                format!("`{name}` is not a valid source name"),
            ));
        }
        let decl = s.get_ref();
        let mut missing_dates = Vec::new();
        for d in &decl.missing_dates {
            let date = toml_date(d.get_ref()).ok_or_else(|| {
                l.error(
                    d.span().start,
                    "a missing date must be a date, written as 1801-01-01 (no quotes)",
                )
            })?;
            missing_dates.push(crate::dates::to_day(date));
        }
        let mut mapped = Vec::new();
        for (column, m) in &decl.columns {
            if !is_identifier(column) {
                return Err(l.error(
                    m.span().start,
                    format!("`{column}` is not a valid column name"),
                ));
            }
            let m = m.get_ref();
            mapped.push(MappedColumn {
                name: column.clone(),
                from: m.from.clone(),
                map: m.map.clone().into_iter().collect(),
            });
        }
        sources.push(Source {
            name: name.clone(),
            table: decl.table.clone(),
            person_id: decl.person_id.clone(),
            date: decl.date.clone(),
            codes: decl
                .code
                .as_ref()
                .map(syntax::OneOrMany::to_vec)
                .unwrap_or_default(),
            missing_dates,
            mapped,
            optional: decl.optional,
            first_codes: decl.first_codes.map(|n| n as usize),
            measure: decl
                .measure
                .as_ref()
                .map(|m| read_measure(l, name, decl, m))
                .transpose()?,
        });
    }

    Ok(sources)
}

/// `[sources.NAME.measure]`: units, factors and bounds checked.
fn read_measure(
    l: &Loader,
    name: &str,
    decl: &syntax::Source,
    m: &Spanned<syntax::Measure>,
) -> Result<crate::rules::Measure> {
    let at = m.span().start;
    let codes = decl.code.as_ref().map(syntax::OneOrMany::to_vec);
    if codes.as_ref().is_none_or(|c| c.len() != 1) {
        return Err(l
            .error(
                at,
                format!("source `{name}` has a measure, so it needs one `code` column"),
            )
            .with_help("name the column of the codes that record the measure: code = \"code\""));
    }
    let m = m.get_ref();
    let mut units: Vec<(String, f64)> = Vec::new();
    for (unit, &factor) in m.units.get_ref() {
        let key = crate::rules::Measure::unit_key(unit);
        if !(factor.is_finite() && factor > 0.0) {
            return Err(l.error(
                m.units.span().start,
                format!("the factor of unit `{unit}` must be a number above 0, not {factor}"),
            ));
        }
        if units.iter().any(|(u, _)| *u == key) {
            return Err(l
                .error(
                    m.units.span().start,
                    format!(
                        "unit `{unit}` is listed twice (units are matched ignoring case and spaces)"
                    ),
                )
                .with_help("keep one of them"));
        }
        units.push((key, factor));
    }
    if units.is_empty() {
        return Err(l
            .error(m.units.span().start, "a measure needs at least one unit")
            .with_help(format!(
                "list the units extracts write and each one's factor to {}: units = {{ \"{}\" = 1 }}",
                m.canonical, m.canonical
            )));
    }
    // In one order, so that two files declaring the same measure agree.
    units.sort_by(|a, b| a.0.cmp(&b.0));
    let (low, high) = match m.bounds.get_ref()[..] {
        [low, high] if low.is_finite() && high.is_finite() && low < high => (low, high),
        _ => {
            return Err(l
                .error(
                    m.bounds.span().start,
                    "`bounds` must be two numbers, the lowest and highest plausible values, lowest first",
                )
                .with_help(format!("e.g. bounds = [30, 250] (in {})", m.canonical)));
        }
    };
    Ok(crate::rules::Measure {
        codelist: m.codelist.clone(),
        value: m.value.clone(),
        unit: m.unit.clone(),
        canonical: m.canonical.clone(),
        units,
        low,
        high,
    })
}

/// `[codelists]`, each CSV read (paths relative to the rule file).
fn read_codelists(l: &Loader, file: &syntax::RuleFile, rule_dir: &Path) -> Result<Vec<Codelist>> {
    let mut codelists = Vec::new();
    for (name, c) in &file.codelists {
        let csv = &c.get_ref().file;
        let at = rule_dir.join(csv.get_ref());
        if !super::bundled::is_file(&at) {
            return Err(l
                .error(
                    csv.span().start,
                    format!(
                        "code list `{name}`: no file {} (paths are relative to the rule file)",
                        at.display()
                    ),
                )
                .with_help("check the file name, or copy the CSV beside the rule file"));
        }
        codelists.push(Codelist::load(name, c.get_ref(), rule_dir)?);
    }

    Ok(codelists)
}

/// `[output]`: suppression and purpose, each with where it is written.
#[allow(clippy::type_complexity)]
fn read_output(
    l: &Loader,
    file: &syntax::RuleFile,
) -> Result<(
    Option<(crate::suppress::Suppression, usize)>,
    Option<(super::Purpose, usize)>,
)> {
    let text = l.text;
    let suppression = match &file.output.suppression {
        None => None,
        Some(s) => {
            let at = content_offset(text, s.span());
            let method = crate::suppress::Suppression::parse(s.get_ref()).ok_or_else(|| {
                l.error(at, format!("`{}` is not a suppression method", s.get_ref()))
                    .with_help("write \"hes\", \"ehrql\" or \"none\"")
            })?;
            Some((method, at))
        }
    };
    let purpose = match &file.output.purpose {
        None => None,
        Some(p) => {
            let at = content_offset(text, p.span());
            let purpose = super::Purpose::parse(p.get_ref()).ok_or_else(|| {
                l.error(at, format!("`{}` is not a purpose", p.get_ref()))
                    .with_help("write \"direct_care\" or \"secondary_use\"")
            })?;
            Some((purpose, at))
        }
    };
    Ok((suppression, purpose))
}

/// One `[cohorts.NAME]`.
fn read_cohort(
    l: &Loader,
    name: &str,
    decl: &syntax::Cohort,
    params: &[(String, Literal)],
) -> Result<Cohort> {
    let text = l.text;
    let condition = l.expression(&decl.when)?;
    let mut rank = Vec::new();
    for key in &decl.rank {
        let offset = content_offset(text, key.span());
        let mut words = key.get_ref().split_whitespace();
        let feature = words.next().unwrap_or("");
        let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                let at = key
                    .get_ref()
                    .rfind(|c: char| c.is_whitespace())
                    .map_or(0, |i| i + 1);
                return Err(l.error(
                    offset + at,
                    format!("`{other}` is not a sort order: write `asc` or `desc`"),
                ));
            }
        };
        if words.next().is_some() || feature.is_empty() {
            return Err(l.error(
                offset,
                format!(
                    "rank key `{}` must be a feature name (or `age`), optionally followed by `desc`",
                    key.get_ref()
                ),
            ));
        }
        rank.push(RankKey {
            name: feature.to_string(),
            descending,
            offset,
        });
    }
    let mut reasons = Vec::new();
    for r in &decl.reasons {
        reasons.push((r.get_ref().clone(), content_offset(text, r.span())));
    }
    let columns = decl.columns.as_ref().map(|cs| {
        cs.iter()
            .map(|c| (c.get_ref().clone(), content_offset(text, c.span())))
            .collect()
    });
    let pcns = match &decl.pcns {
        None => None,
        Some(list) if list.get_ref().is_empty() => {
            return Err(l
                .error(
                    content_offset(text, list.span()),
                    format!("cohort `{name}` is delivered to no PCN"),
                )
                .with_help("list PCN codes, or leave `pcns` out to deliver to every PCN"));
        }
        Some(list) => Some(
            list.get_ref()
                .iter()
                .map(|p| {
                    (
                        p.get_ref().trim().to_string(),
                        content_offset(text, p.span()),
                    )
                })
                .collect(),
        ),
    };
    let top_per_pcn = match &decl.top_per_pcn {
        None => None,
        Some(top) => {
            if rank.is_empty() {
                return Err(l
                    .error(
                        top.span().start,
                        format!("cohort `{name}` keeps its top members but has no `rank`"),
                    )
                    .with_help("add rank = [\"feature desc\"] to say who comes first"));
            }
            top_count(l, top, params)?
        }
    };
    Ok(Cohort {
        name: name.to_string(),
        title: decl.title.clone(),
        description: decl.description.clone(),
        condition,
        rank,
        reasons,
        columns,
        pcns,
        top_per_pcn,
    })
}

/// Each `part_of` names another outcome of the file, and both count
/// events: a share of the whole is a sum of counts over a sum of counts.
fn check_parts(l: &Loader, file: &syntax::RuleFile, outcomes: &[Feature]) -> Result<()> {
    let counts = |f: &Feature| {
        matches!(
            f.kind,
            FeatureKind::Aggregate {
                aggregate: Aggregate::Count,
                ..
            }
        )
    };
    for outcome in outcomes {
        let Some(whole) = &outcome.part_of else {
            continue;
        };
        let at = file.outcomes[&outcome.name]
            .get_ref()
            .part_of
            .as_ref()
            .map_or(outcome.offset, |p| p.span().start);
        let Some(of) = outcomes
            .iter()
            .find(|o| &o.name == whole && o.name != outcome.name)
        else {
            return Err(l
                .error(at, format!("outcome `{}` is part of `{whole}`, which is not another outcome of this file{}", outcome.name,
                    crate::rules::did_you_mean(whole, outcomes.iter().map(|o| o.name.as_str()))))
                .with_help("name the [outcomes] entry whose events this one's are a part of, e.g. all emergency admissions"));
        };
        if !counts(outcome) || !counts(of) {
            return Err(l
                .error(at, format!("outcome `{}` is part of `{whole}`, but both must be `aggregate = \"count\"`", outcome.name))
                .with_help("a share of the whole is a sum of counts: make both outcomes counts (an outcome counts as having happened when its count is more than zero)"));
        }
        if let Some(further) = &of.part_of {
            return Err(l
                .error(
                    at,
                    format!(
                        "outcome `{}` is part of `{whole}`, which is itself part of `{further}`",
                        outcome.name
                    ),
                )
                .with_help("name the whole directly: a part is one level below its whole"));
        }
        let window = |f: &Feature| match &f.kind {
            FeatureKind::Aggregate { window, .. } => Some(*window),
            _ => None,
        };
        if window(outcome) != window(of) {
            return Err(l
                .error(
                    at,
                    format!(
                        "outcome `{}` is part of `{whole}`, but their windows differ",
                        outcome.name
                    ),
                )
                .with_help(
                    "give the part the whole's window: its events must be some of the whole's",
                ));
        }
    }
    Ok(())
}

/// A feature's definition; `forward` for an outcome, whose window looks
/// forward from the as-of date (`next 365 days`).
#[allow(clippy::too_many_arguments)]
fn feature_kind(
    l: &Loader,
    name: &str,
    decl: &syntax::Feature,
    offset: usize,
    sources: &[Source],
    codelists: &[Codelist],
    params: &[(String, Literal)],
    forward: bool,
) -> Result<FeatureKind> {
    if let Some(bands) = &decl.bands {
        return banded(l, name, decl, bands, offset, params);
    }
    if let Some(segments) = &decl.segments {
        return segmented(l, name, decl, segments);
    }
    if let Some(default) = &decl.default {
        return Err(l.error(
            default.span().start,
            format!("feature `{name}` has a `default` but no `segments`"),
        ));
    }
    if decl.score.is_some() {
        return Err(l
            .error(
                offset,
                format!("feature `{name}` has a `score` but no `bands`"),
            )
            .with_help("add bands, e.g. bands = \"low < 5 <= high\""));
    }
    if let Some(e) = &decl.expr {
        only_keys(l, name, decl, "expr", &["expr"])?;
        return Ok(FeatureKind::Derived(l.expression(e)?));
    }
    let Some(source_name) = &decl.source else {
        return Err(l.error(
            offset,
            format!("feature `{name}` needs either `source` and `aggregate`, or `expr`"),
        ));
    };
    let source = sources
        .iter()
        .position(|s| &s.name == source_name.get_ref())
        .ok_or_else(|| {
            l.error(
                content_offset(l.text, source_name.span()),
                format!(
                    "unknown source `{}`{}",
                    source_name.get_ref(),
                    did_you_mean(
                        source_name.get_ref(),
                        sources.iter().map(|s| s.name.as_str())
                    )
                ),
            )
            .with_help("declare it in a [sources.NAME] table")
        })?;
    let Some(aggregate) = &decl.aggregate else {
        return Err(l
            .error(
                offset,
                format!("feature `{name}` reads a source but has no `aggregate`"),
            )
            .with_help("add e.g. aggregate = \"count\""));
    };
    let agg_at = aggregate.span().start;
    let aggregate = *aggregate.get_ref();
    let measure = sources[source].measure.as_ref();
    if let Some(m) = measure {
        if !matches!(
            aggregate,
            Aggregate::Count
                | Aggregate::Exists
                | Aggregate::FirstDate
                | Aggregate::LastDate
                | Aggregate::Latest
                | Aggregate::Mean
                | Aggregate::Min
                | Aggregate::Max
        ) {
            return Err(l
                .error(
                    agg_at,
                    format!(
                        "source `{}` is a measure: aggregate `{}` does not apply to its values",
                        sources[source].name,
                        aggregate.name()
                    ),
                )
                .with_help(
                    "use latest (with nth), mean, min, max, count, exists, first_date or last_date",
                ));
        }
        if let Some(c) = decl
            .codelist
            .as_ref()
            .filter(|c| *c.get_ref() != m.codelist)
        {
            return Err(l
                .error(
                    content_offset(l.text, c.span()),
                    format!(
                        "source `{}` is a measure of the codes in `{}`: a feature of it reads those codes only",
                        sources[source].name, m.codelist
                    ),
                )
                .with_help("leave `codelist` out (the measure's list is used), or declare another source"));
        }
        if let Some(c) = decl.column.as_ref().filter(|c| *c.get_ref() != m.value) {
            return Err(l
                .error(
                    content_offset(l.text, c.span()),
                    format!(
                        "source `{}` is a measure: its features read its value, `{}`",
                        sources[source].name, m.value
                    ),
                )
                .with_help("leave `column` out"));
        }
    }
    let measure_list = measure.map(|m| m.codelist.as_str());
    let codelist = match decl
        .codelist
        .as_ref()
        .map(|c| (c.get_ref().as_str(), c.span()))
        .or_else(|| measure_list.map(|m| (m, decl.aggregate.as_ref().map_or(0..0, |a| a.span()))))
    {
        Some((c, span)) => {
            let at = content_offset(l.text, span);
            if sources[source].codes.is_empty() {
                return Err(l
                    .error(
                        at,
                        format!(
                            "source `{}` has no `code` column to match a code list against",
                            sources[source].name
                        ),
                    )
                    .with_help("name the table's code column in the source (`code = \"...\"`), or use a source that has one"));
            }
            Some(codelists.iter().position(|x| x.name == c).ok_or_else(|| {
                l.error(
                    at,
                    format!(
                        "unknown code list `{}`{}",
                        c,
                        did_you_mean(c, codelists.iter().map(|x| x.name.as_str()))
                    ),
                )
            })?)
        }
        None => None,
    };
    let list = codelist.map(|i| &codelists[i]);
    let needs = |ok: bool, what: &str| -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(l.error(
                agg_at,
                format!("aggregate `{}` needs {what}", aggregate.name()),
            ))
        }
    };
    match aggregate {
        Aggregate::CountDistinctCodes => needs(
            list.is_some() || !sources[source].codes.is_empty(),
            "a `codelist`, or a source with a `code` column",
        )?,
        Aggregate::CountDistinctCategories | Aggregate::ListCategories => needs(
            list.is_some_and(|c| !c.categories.is_empty()),
            "a `codelist` with a `category_column`",
        )?,
        Aggregate::SumDistinctWeights => needs(
            list.is_some_and(|c| c.entries.iter().all(|e| e.weight.is_some())),
            "a `codelist` with a `weight_column`",
        )?,
        Aggregate::Min | Aggregate::Max | Aggregate::Latest | Aggregate::Mean => needs(
            decl.column.is_some() || measure.is_some(),
            "a `column` to reduce (or a source with a measure)",
        )?,
        Aggregate::TotalDays => needs(
            decl.column.is_some(),
            "a `column` holding each event's end date (e.g. `column = \"discharge_date\"`)",
        )?,
        _ => {}
    }
    let reduces = matches!(
        aggregate,
        Aggregate::Min | Aggregate::Max | Aggregate::Latest | Aggregate::Mean
    );
    if decl.column.is_some() && !reduces && aggregate != Aggregate::TotalDays {
        let at = decl.column.as_ref().map_or(agg_at, |c| c.span().start);
        return Err(l.error(
            at,
            "`column` is only used by the `min`, `max`, `latest`, `mean` and `total_days` aggregates",
        ));
    }
    let nth = match &decl.nth {
        Some(n) if aggregate != Aggregate::Latest => {
            return Err(l
                .error(
                    n.span().start,
                    "`nth` is only used by the `latest` aggregate",
                )
                .with_help(
                    "remove `nth`, or use aggregate = \"latest\" for the N-th latest value",
                ));
        }
        Some(n) if *n.get_ref() == 0 => {
            return Err(l
                .error(n.span().start, "`nth` counts from 1 (the latest value)")
                .with_help("nth = 2 is the value before the latest"));
        }
        Some(n) => *n.get_ref() as usize,
        None => 1,
    };
    let column = match (decl.column.as_ref(), measure) {
        (Some(c), _) => Some(c.get_ref().clone()),
        (None, Some(m)) if reduces => Some(m.value.clone()),
        _ => None,
    };
    let window = match &decl.window {
        Some(w) => parse_window(l, w, params, forward)?,
        None if forward => {
            return Err(l
                .error(offset, format!("outcome `{name}` needs a `window`"))
                .with_help(
                    "say how long after the as-of date to look, e.g. window = \"next 365 days\"",
                ));
        }
        None => Window::Ever,
    };
    let filter = decl.filter.as_ref().map(|f| l.expression(f)).transpose()?;
    let mut category = Vec::new();
    if let Some(c) = &decl.category {
        let at = content_offset(l.text, c.span());
        let Some(list) = list.filter(|list| !list.categories.is_empty()) else {
            return Err(l.error(at, "`category` needs a `codelist` with a `category_column`"));
        };
        for name in c.get_ref().to_vec() {
            let Some(found) = list.categories.iter().position(|x| *x == name) else {
                // Point at the name itself within a list of names.
                let written = &l.text[c.span()];
                let offset = written
                    .find(&format!("\"{name}\""))
                    .map_or(at, |i| c.span().start + i + 1);
                return Err(l.error(
                    offset,
                    format!(
                        "code list `{}` has no category `{name}`{}",
                        list.name,
                        did_you_mean(&name, list.categories.iter().map(String::as_str))
                    ),
                ));
            };
            category.push(found as u32);
        }
        category.sort_unstable();
        category.dedup();
    }
    Ok(FeatureKind::Aggregate {
        source,
        aggregate,
        codelist,
        category,
        window,
        filter,
        column,
        nth,
    })
}

/// Refuses keys that belong to another kind of feature than the one `kind`
/// (the key that decided it) makes this.
fn only_keys(
    l: &Loader,
    name: &str,
    decl: &syntax::Feature,
    kind: &str,
    allowed: &[&str],
) -> Result<()> {
    match decl.keys().into_iter().find(|(key, _)| !allowed.contains(key)) {
        Some((key, at)) => Err(l.error(at, format!("feature `{name}` has `{kind}`, so it cannot also have `{key}`"))
            .with_help("a feature is one of: an aggregate (source, aggregate, codelist, category, window, where, column), an expression (expr), bands (score, bands), or segments (segments, default)")),
        None => Ok(()),
    }
}

/// A segmentation: each segment's condition, in priority order, and a default.
fn segmented(
    l: &Loader,
    name: &str,
    decl: &syntax::Feature,
    segments: &Spanned<Vec<syntax::Segment>>,
) -> Result<FeatureKind> {
    only_keys(l, name, decl, "segments", &["segments", "default"])?;
    let Some(default) = &decl.default else {
        return Err(l.error(segments.span().start, format!("segmentation `{name}` has no `default` segment"))
            .with_help("every person gets exactly one segment: add default = \"...\" for those no segment matches"));
    };
    if segments.get_ref().is_empty() {
        return Err(l.error(
            segments.span().start,
            format!("segmentation `{name}` lists no segments"),
        ));
    }
    let mut seen: Vec<&str> = vec![default.get_ref()];
    let mut out = Vec::new();
    for s in segments.get_ref() {
        let segment = s.name.get_ref();
        if seen.contains(&segment.as_str()) {
            return Err(l.error(
                s.name.span().start,
                format!("segment `{segment}` is listed twice (or is also the default)"),
            ));
        }
        seen.push(segment);
        out.push(Segment {
            name: segment.clone(),
            description: s.description.clone(),
            condition: l.expression(&s.when)?,
        });
    }
    Ok(FeatureKind::Segments {
        segments: out,
        default: default.get_ref().clone(),
    })
}

/// A banded feature, built as the `case` expression it stands for:
/// `case when score is null then null when score < b1 then 'n1' ... else 'nk' end`.
fn banded(
    l: &Loader,
    name: &str,
    decl: &syntax::Feature,
    bands: &Spanned<String>,
    offset: usize,
    params: &[(String, Literal)],
) -> Result<FeatureKind> {
    only_keys(l, name, decl, "bands", &["bands", "score"])?;
    let Some(score_text) = &decl.score else {
        return Err(l
            .error(
                offset,
                format!("feature `{name}` has `bands` but no `score` to band"),
            )
            .with_help("add e.g. score = \"hfrs\""));
    };
    let score = l.expression(score_text)?;
    let bands_at = content_offset(l.text, bands.span());
    let chain = expr::parse_bands(bands.get_ref())
        .map_err(|e| l.error(bands_at + e.span.start, e.message))?;
    let mut values = Vec::new();
    for b in &chain.boundaries {
        if let expr::bands::Bound::Param(p) = &b.value {
            l.used_params.borrow_mut().insert(p.clone());
        }
        let value = match &b.value {
            expr::bands::Bound::Number(v) => *v,
            expr::bands::Bound::Param(p) => match params.iter().find(|(n, _)| n == p) {
                Some((_, Literal::Int(v))) => *v as f64,
                Some((_, Literal::Float(v))) => *v,
                Some(_) => {
                    return Err(l.error(
                        bands_at + b.span.start,
                        format!("parameter `{p}` is not a number"),
                    ));
                }
                None => {
                    return Err(l.error(
                        bands_at + b.span.start,
                        format!(
                            "`{p}` is neither a number nor a parameter{}",
                            did_you_mean(p, params.iter().map(|(n, _)| n.as_str()))
                        ),
                    ));
                }
            },
        };
        if values.last().is_some_and(|&prev| value <= prev) {
            return Err(l.error(
                bands_at + b.span.start,
                "band boundaries must increase from left to right",
            ));
        }
        values.push(value);
    }
    let span = score.expr.span;
    let node = |kind| Expr { kind, span };
    let text = |s: &str| node(ExprKind::Literal(Literal::Str(s.to_string())));
    let mut whens = vec![(
        node(ExprKind::IsNull {
            expr: Box::new(score.expr.clone()),
            negated: false,
        }),
        node(ExprKind::Literal(Literal::Null)),
    )];
    for ((band, _), (b, value)) in chain.names.iter().zip(chain.boundaries.iter().zip(&values)) {
        let op = if b.in_lower {
            BinaryOp::LtEq
        } else {
            BinaryOp::Lt
        };
        let test = ExprKind::Binary(
            op,
            Box::new(score.expr.clone()),
            Box::new(node(ExprKind::Literal(Literal::Float(*value)))),
        );
        whens.push((node(test), text(band)));
    }
    let last = &chain
        .names
        .last()
        .expect("a chain has at least two names")
        .0;
    let case = node(ExprKind::Case {
        whens,
        otherwise: Some(Box::new(text(last))),
    });
    // The text keeps the chain, so `explain` can show how the band was chosen.
    Ok(FeatureKind::Derived(Located {
        expr: case,
        text: format!("{} banded as {}", score.text, bands.get_ref()),
        offset: score.offset,
    }))
}

/// A command-line value for a parameter, of the parameter's type.
fn override_value(current: &Literal, text: &str) -> Option<Literal> {
    Some(match current {
        Literal::Int(_) => Literal::Int(text.trim().parse().ok()?),
        Literal::Float(_) => {
            Literal::Float(text.trim().parse().ok().filter(|v: &f64| v.is_finite())?)
        }
        Literal::Bool(_) => Literal::Bool(match text.trim() {
            "true" => true,
            "false" => false,
            _ => return None,
        }),
        Literal::Str(_) => Literal::Str(text.to_string()),
        Literal::Date(_) => Literal::Date(crate::dates::parse_date(text)?),
        Literal::Null => return None,
    })
}

/// `text` as a whole number: written as one, or the name of an integer
/// parameter.
fn whole_number(l: &Loader, at: usize, text: &str, params: &[(String, Literal)]) -> Result<i64> {
    if let Ok(n) = text.parse() {
        return Ok(n);
    }
    l.used_params.borrow_mut().insert(text.to_string());
    match params.iter().find(|(p, _)| p == text) {
        Some((_, Literal::Int(n))) => Ok(*n),
        Some(_) => Err(l
            .error(at, format!("parameter `{text}` is not a whole number"))
            .with_help(format!(
                "give `{text}` a whole number in [params] (e.g. 365, not 365.0 or \"365\")"
            ))),
        None => Err(l.error(
            at,
            format!(
                "`{text}` is neither a number nor a parameter{}",
                did_you_mean(text, params.iter().map(|(p, _)| p.as_str()))
            ),
        )),
    }
}

/// A cohort's `top_per_pcn`: a count, or `None` for 0 (no limit).
fn top_count(
    l: &Loader,
    top: &Spanned<toml::Value>,
    params: &[(String, Literal)],
) -> Result<Option<u32>> {
    let at = content_offset(l.text, top.span());
    let n = match top.get_ref() {
        toml::Value::Integer(n) => *n,
        toml::Value::String(name) => whole_number(l, at, name.trim(), params)?,
        other => {
            return Err(l
                .error(
                    at,
                    format!(
                        "`top_per_pcn` must be a whole number, not {}",
                        other.type_str()
                    ),
                )
                .with_help("write e.g. top_per_pcn = 50, or the name of a parameter"));
        }
    };
    let n = u32::try_from(n).map_err(|_| {
        l.error(
            at,
            format!(
                "`top_per_pcn` must be from 0 (no limit) to {}, not {n}",
                u32::MAX
            ),
        )
    })?;
    Ok((n > 0).then_some(n))
}

/// A window as written: `365 days`, `12 months`, `2 years`, `ever`; with
/// `forward` (an outcome's), `next 365 days` and so on, its length.
fn parse_window(
    l: &Loader,
    w: &Spanned<String>,
    params: &[(String, Literal)],
    forward: bool,
) -> Result<Window> {
    let at = content_offset(l.text, w.span());
    let text = w.get_ref().trim();
    let next = text
        .get(..5)
        .is_some_and(|n| n.eq_ignore_ascii_case("next "));
    if forward && !next {
        return Err(l.error(at, format!("`{text}` is not an outcome's window"))
            .with_help("an outcome looks forward from the as-of date: write \"next 365 days\", \"next 12 months\" or \"next 1 year\""));
    }
    if !forward && next {
        return Err(l.error(at, format!("`{text}` looks after the as-of date"))
            .with_help("a feature sees only what was known on the as-of date: write \"365 days\"; what happens next is an [outcomes] entry, for strata evaluate"));
    }
    let (text, at) = if next {
        (text[5..].trim_start(), at + 5)
    } else {
        (text, at)
    };
    if text.eq_ignore_ascii_case("ever") && !forward {
        return Ok(Window::Ever);
    }
    let bad = || {
        l.error(at, format!("`{text}` is not a window"))
            .with_help("write \"365 days\", \"12 months\", \"2 years\" or \"ever\"; the number may be a parameter name")
    };
    let mut words = text.split_whitespace();
    let (Some(count), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err(bad());
    };
    let n = whole_number(l, at, count, params)?;
    let n = u32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
        l.error(
            at,
            format!("a window must be from 1 to {} {unit}, not {n}", u32::MAX),
        )
    })?;
    match unit.to_ascii_lowercase().trim_end_matches('s') {
        "day" => Ok(Window::Days(n)),
        "month" => Ok(Window::Months(n)),
        "year" => Ok(Window::Years(n)),
        _ => Err(bad()),
    }
}
