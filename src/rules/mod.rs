//! Rule files: reading one, checking its names, and the checked [`Model`] the
//! engine plans from.
//!
//! The stages follow DataFusion's: what was written ([`syntax`]) -> a model
//! whose names are resolved and whose definitions have no cycles (here) ->
//! an execution plan typed against the data's schemas
//! ([`crate::engine::plan`]). Types wait for the data because a feature such
//! as `max(column)` or a population attribute takes its type from there.

pub mod check;
pub mod codelist;
pub mod expr;
mod merge;
pub mod syntax;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::dates::Window;
use crate::error::{Error, Position, Result};
pub use codelist::Codelist;
use expr::{BinaryOp, Expr, ExprKind, Literal, Span};
pub use syntax::Aggregate;

/// A TOML date (`2025-03-31`, no time) as a calendar date.
pub fn toml_date(value: &toml::Value) -> Option<chrono::NaiveDate> {
    let toml::Value::Datetime(d) = value else {
        return None;
    };
    let date = d.date.filter(|_| d.time.is_none() && d.offset.is_none())?;
    chrono::NaiveDate::from_ymd_opt(
        i32::from(date.year),
        u32::from(date.month),
        u32::from(date.day),
    )
}

/// The JSON Schema of rule files (from the same types the loader reads), for
/// editors to validate and complete them.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(syntax::RuleFile);
    serde_json::to_string_pretty(&schema).expect("a schema serialises") + "\n"
}

/// Names every rule file can use in person-level expressions.
pub const BUILTINS: &[(&str, &str)] = &[
    ("age", "age in completed years on the as-of date"),
    ("sex", "sex as recorded in the population table"),
    ("as_of", "the as-of date of the run"),
];

/// Output columns strata always writes; no definition may take their names.
pub const RESERVED_COLUMNS: &[&str] = &["person_id", "practice_code", "pcn_code", "alive"];

/// An expression with where its text starts in the rule file.
#[derive(Debug, Clone)]
pub struct Located {
    pub expr: Expr,
    pub text: String,
    /// Byte offset of the expression's first character in the rule file.
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub name: String,
    pub table: String,
    pub person_id: String,
    pub date: String,
    /// Code columns, read as one list per row; empty if the source has none.
    pub codes: Vec<String>,
    /// Dates that stand for "unknown", as day numbers.
    pub missing_dates: Vec<crate::dates::Day>,
    /// Word columns made from code columns.
    pub mapped: Vec<MappedColumn>,
}

/// A column of words a rule can use (`admission_method`), made from a
/// stored column of codes (HES `ADMIMETH`).
#[derive(Debug, Clone, PartialEq)]
pub struct MappedColumn {
    pub name: String,
    pub from: String,
    /// Raw value -> word; a value not listed reads as null.
    pub map: std::collections::HashMap<String, String>,
}

#[derive(Debug, Clone)]
pub enum FeatureKind {
    Aggregate {
        source: usize,
        aggregate: Aggregate,
        codelist: Option<usize>,
        window: Window,
        filter: Option<Located>,
        column: Option<String>,
    },
    Derived(Located),
    /// Mutually exclusive segments in priority order: each person gets the
    /// first whose condition holds, else `default`.
    Segments {
        segments: Vec<Segment>,
        default: String,
    },
}

/// One segment of a segmentation.
#[derive(Debug, Clone)]
pub struct Segment {
    pub name: String,
    pub description: Option<String>,
    pub condition: Located,
}

impl FeatureKind {
    /// The person-level expressions the feature is computed from.
    pub fn expressions(&self) -> Vec<&Located> {
        match self {
            FeatureKind::Aggregate { .. } => Vec::new(),
            FeatureKind::Derived(e) => vec![e],
            FeatureKind::Segments { segments, .. } => {
                segments.iter().map(|s| &s.condition).collect()
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Feature {
    pub name: String,
    pub description: String,
    pub kind: FeatureKind,
    /// Offset of the feature's table in the rule file, for errors.
    pub offset: usize,
}

#[derive(Debug, Clone)]
pub struct RankKey {
    pub name: String,
    pub descending: bool,
    pub offset: usize,
}

#[derive(Debug, Clone)]
pub struct Cohort {
    pub name: String,
    pub title: String,
    pub description: String,
    pub condition: Located,
    pub rank: Vec<RankKey>,
    pub reasons: Vec<(String, usize)>,
}

/// The text of one rule file of a model. A model read from several files
/// numbers the bytes of all of them in one sequence, each file starting at
/// `start`, so that any offset a definition keeps names its file too.
#[derive(Debug)]
pub struct RuleText {
    pub path: PathBuf,
    pub text: String,
    pub sha256: String,
    pub start: usize,
}

/// One or more rule files whose names all resolve.
#[derive(Debug)]
pub struct Model {
    /// The file the model was asked for (the first, if several).
    pub path: PathBuf,
    /// Every file the model was read from, in offset order.
    pub files: Vec<RuleText>,
    pub meta: syntax::ModelMeta,
    pub population: syntax::Population,
    pub params: Vec<(String, Literal)>,
    /// Parameters whose values came from the command line.
    pub overridden: Vec<String>,
    pub sources: Vec<Source>,
    pub codelists: Vec<Codelist>,
    /// In the order written (the order of output columns).
    pub features: Vec<Feature>,
    /// Indices of derived features, each after everything it uses.
    pub derived_order: Vec<usize>,
    pub cohorts: Vec<Cohort>,
    /// Assurance tests as written, with the start offset of their file;
    /// checked and run by [`crate::assurance`].
    pub tests: Vec<(usize, Spanned<syntax::TestCase>)>,
    /// Where each parameter, source and code list is declared: (kind, name,
    /// offset), for warnings about unused ones.
    pub declarations: Vec<(&'static str, String, usize)>,
    /// Parameters used as window lengths or band boundaries.
    pub params_outside_expressions: HashSet<String>,
}

impl Model {
    fn text_at(&self, offset: usize) -> &RuleText {
        self.files
            .iter()
            .rev()
            .find(|f| f.start <= offset)
            .expect("offsets start at the first file")
    }

    /// The rule file that `offset` falls in.
    pub fn file_at(&self, offset: usize) -> &Path {
        &self.text_at(offset).path
    }

    /// An error at `offset` (in the model's numbering of its files' bytes).
    pub fn error_at(&self, offset: usize, message: impl Into<String>) -> Error {
        let file = self.text_at(offset);
        Error::rules(
            &file.path,
            Some(Position::of_offset(&file.text, offset - file.start)),
            message,
        )
    }

    /// An error at `span` within a located expression.
    pub fn expr_error(&self, located: &Located, span: Span, message: impl Into<String>) -> Error {
        self.error_at(located.offset + span.start, message)
    }

    pub fn param(&self, name: &str) -> Option<&Literal> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.features.iter().position(|f| f.name == name)
    }

    /// Every name a person-level expression may use, for suggestions.
    pub fn person_level_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = BUILTINS.iter().map(|(n, _)| *n).collect();
        names.extend(self.population.attributes.keys().map(String::as_str));
        names.extend(self.params.iter().map(|(n, _)| n.as_str()));
        names.extend(self.features.iter().map(|f| f.name.as_str()));
        names
    }
}

/// The closest candidate to a misspelt name, if any is close.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min()
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

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

/// Reads and checks a rule file.
pub fn load(path: &Path) -> Result<Model> {
    load_all(&[path.to_path_buf()], &[])
}

/// Reads rule files (and the files they `include`) into one model, with
/// parameter values overridden from the command line (`--set name=value`),
/// each parsed as its parameter's type. Definitions that several files share
/// are computed once; see [`merge`].
pub fn load_all(paths: &[PathBuf], overrides: &[(String, String)]) -> Result<Model> {
    let mut model: Option<Model> = None;
    for path in paths {
        let next = load_with_includes(path, overrides, &mut Vec::new())?;
        model = Some(match model {
            None => next,
            Some(m) => merge::merge(m, next)?,
        });
    }
    let mut model = model.ok_or_else(|| Error::usage("no rule file given"))?;
    resolve_names(&mut model)?;
    if let Some((name, _)) = overrides
        .iter()
        .find(|(n, _)| !model.overridden.contains(n))
    {
        return Err(Error::usage(format!(
            "--set {name}: no rule file of this run has a parameter `{name}`{}",
            did_you_mean(name, model.params.iter().map(|(n, _)| n.as_str()))
        ))
        .with_help("--set can only change a parameter declared in a rule file's [params]"));
    }
    Ok(model)
}

/// One file with its includes merged in before it; `stack` holds the files
/// being read, to refuse an include cycle.
fn load_with_includes(
    path: &Path,
    overrides: &[(String, String)],
    stack: &mut Vec<PathBuf>,
) -> Result<Model> {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if stack.contains(&canonical) {
        return Err(Error::usage(format!(
            "rule files include each other in a cycle: {} -> {}",
            stack
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" -> "),
            canonical.display()
        )));
    }
    stack.push(canonical);
    let (own, includes) = load_one(path, overrides)?;
    let mut model: Option<Model> = None;
    for include in includes {
        let next = load_with_includes(&include, overrides, stack)?;
        model = Some(match model {
            None => next,
            Some(m) => merge::merge(m, next)?,
        });
    }
    stack.pop();
    let Some(included) = model else {
        return Ok(own);
    };
    let (path, meta) = (own.path.clone(), own.meta.clone());
    let mut merged = merge::merge(included, own)?;
    merged.path = path;
    merged.meta = meta;
    Ok(merged)
}

/// Reads one rule file; returns the model and the files it includes.
fn load_one(path: &Path, overrides: &[(String, String)]) -> Result<(Model, Vec<PathBuf>)> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::io(path, "cannot read rule file", e)
            .with_help("check the path given to --rules (the default is models/hiu.toml)")
    })?;
    let file: syntax::RuleFile = toml::from_str(&text).map_err(|e| {
        let at = e.span().map(|s| Position::of_offset(&text, s.start));
        Error::rules(path, at, e.message().trim().to_string())
            .with_help("see docs/rules.md for the layout of a rule file")
    })?;
    let l = Loader {
        path,
        text: &text,
        used_params: Default::default(),
    };
    let rule_dir = path.parent().unwrap_or(Path::new("."));

    // Every name that can appear in a person-level expression, with where it
    // was defined, so duplicates across kinds are caught.
    let mut defined: HashMap<String, &'static str> = HashMap::new();
    for (name, _) in BUILTINS {
        defined.insert(name.to_string(), "a built-in name");
    }
    for name in RESERVED_COLUMNS {
        defined.insert(name.to_string(), "an output column strata always writes");
    }
    let mut claim = |name: &str, kind: &'static str, offset: usize| -> Result<()> {
        if !is_identifier(name) {
            return Err(l.error(offset, format!(
                "`{name}` is not a valid name: use letters, digits and `_`, starting with a letter"
            )));
        }
        if let Some(other) = defined.insert(name.to_string(), kind) {
            return Err(l
                .error(
                    offset,
                    format!("`{name}` is defined as {kind} but is already {other}"),
                )
                .with_help("give one of them another name"));
        }
        Ok(())
    };

    for (attr, column) in &file.population.attributes {
        claim(attr, "a population attribute", column.span().start)?;
    }

    let mut params = Vec::new();
    for (name, value) in &file.params {
        claim(name, "a parameter", value.span().start)?;
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
                "--set {name}={text}: `{text}` is not {}",
                check::literal_type(value).a()
            ))
        })?;
        overridden.push(name.clone());
    }

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
        });
    }

    let mut codelists = Vec::new();
    for (name, c) in &file.codelists {
        codelists.push(Codelist::load(name, c.get_ref(), rule_dir)?);
    }

    let mut features = Vec::new();
    for (name, f) in &file.features {
        let offset = f.span().start;
        claim(name, "a feature", offset)?;
        let decl = f.get_ref();
        let kind = feature_kind(&l, name, decl, offset, &sources, &codelists, &params)?;
        features.push(Feature {
            name: name.clone(),
            description: decl.description.clone().unwrap_or_default(),
            kind,
            offset,
        });
    }

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
        }],
        meta: file.model,
        population: file.population,
        params,
        overridden,
        sources,
        codelists,
        features,
        derived_order: Vec::new(),
        cohorts: Vec::new(),
        tests: Vec::new(),
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
        claim(name, "a cohort", c.span().start)?;
        claim(
            &format!("{name}_rank"),
            "a cohort's rank column",
            c.span().start,
        )?;
        let decl = c.get_ref();
        let condition = l.expression(&decl.when)?;
        let mut rank = Vec::new();
        for key in &decl.rank {
            let offset = content_offset(&text, key.span());
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
            reasons.push((r.get_ref().clone(), content_offset(&text, r.span())));
        }
        model.cohorts.push(Cohort {
            name: name.clone(),
            title: decl.title.clone(),
            description: decl.description.clone(),
            condition,
            rank,
            reasons,
        });
    }
    model.tests = file.tests.into_iter().map(|t| (0, t)).collect();
    model.params_outside_expressions = l.used_params.take();
    let includes = file
        .include
        .iter()
        .map(|i| rule_dir.join(i.get_ref()))
        .collect();
    Ok((model, includes))
}

/// Checks that every name a definition uses exists, once all the files of a
/// run are merged (a file may use what another defines), and orders the
/// derived features.
fn resolve_names(model: &mut Model) -> Result<()> {
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
            return Err(model.error_at(
                condition.offset + span.start,
                format!(
                    "unknown name `{unknown}`{}",
                    did_you_mean(unknown, known.iter().copied())
                ),
            ));
        }
        for key in &cohort.rank {
            if key.name != "age" && !features.contains(&key.name.as_str()) {
                return Err(model.error_at(
                    key.offset,
                    format!(
                        "rank key `{}` is not a feature (or `age`){}",
                        key.name,
                        did_you_mean(&key.name, features.iter().copied())
                    ),
                ));
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

/// Declarations nothing uses: parameters, sources and code lists. Each is a
/// rule-file error value, used as a warning.
pub fn unused(model: &Model) -> Vec<Error> {
    let mut used: HashSet<&str> = model
        .params_outside_expressions
        .iter()
        .map(String::as_str)
        .collect();
    let mut expressions: Vec<&Located> = model.cohorts.iter().map(|c| &c.condition).collect();
    for feature in &model.features {
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
        model.features.iter().filter_map(|f| match &f.kind {
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

fn feature_kind(
    l: &Loader,
    name: &str,
    decl: &syntax::Feature,
    offset: usize,
    sources: &[Source],
    codelists: &[Codelist],
    params: &[(String, Literal)],
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
    let codelist = match &decl.codelist {
        Some(c) => {
            let at = content_offset(l.text, c.span());
            if sources[source].codes.is_empty() {
                return Err(l.error(
                    at,
                    format!(
                        "source `{}` has no `code` column to match a code list against",
                        sources[source].name
                    ),
                ));
            }
            Some(
                codelists
                    .iter()
                    .position(|x| &x.name == c.get_ref())
                    .ok_or_else(|| {
                        l.error(
                            at,
                            format!(
                                "unknown code list `{}`{}",
                                c.get_ref(),
                                did_you_mean(
                                    c.get_ref(),
                                    codelists.iter().map(|x| x.name.as_str())
                                )
                            ),
                        )
                    })?,
            )
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
        Aggregate::CountDistinctCodes => needs(list.is_some(), "a `codelist`")?,
        Aggregate::CountDistinctCategories => needs(
            list.is_some_and(|c| !c.categories.is_empty()),
            "a `codelist` with a `category_column`",
        )?,
        Aggregate::SumDistinctWeights => needs(
            list.is_some_and(|c| c.entries.iter().all(|e| e.weight.is_some())),
            "a `codelist` with a `weight_column`",
        )?,
        Aggregate::Min | Aggregate::Max => needs(decl.column.is_some(), "a `column` to reduce")?,
        _ => {}
    }
    if decl.column.is_some() && !matches!(aggregate, Aggregate::Min | Aggregate::Max) {
        let at = decl.column.as_ref().map_or(agg_at, |c| c.span().start);
        return Err(l.error(
            at,
            "`column` is only used by the `min` and `max` aggregates",
        ));
    }
    let window = match &decl.window {
        Some(w) => parse_window(l, w, params)?,
        None => Window::Ever,
    };
    let filter = decl.filter.as_ref().map(|f| l.expression(f)).transpose()?;
    Ok(FeatureKind::Aggregate {
        source,
        aggregate,
        codelist,
        window,
        filter,
        column: decl.column.as_ref().map(|c| c.get_ref().clone()),
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
            .with_help("a feature is one of: an aggregate (source, aggregate, codelist, window, where, column), an expression (expr), bands (score, bands), or segments (segments, default)")),
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

fn parse_window(l: &Loader, w: &Spanned<String>, params: &[(String, Literal)]) -> Result<Window> {
    let at = content_offset(l.text, w.span());
    let text = w.get_ref().trim();
    if text.eq_ignore_ascii_case("ever") {
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
    if count.parse::<i64>().is_err() {
        l.used_params.borrow_mut().insert(count.to_string());
    }
    let n: i64 = match count.parse() {
        Ok(n) => n,
        Err(_) => match params.iter().find(|(p, _)| p == count) {
            Some((_, Literal::Int(n))) => *n,
            Some(_) => {
                return Err(l.error(at, format!("parameter `{count}` is not a whole number")));
            }
            None => {
                return Err(l.error(
                    at,
                    format!(
                        "`{count}` is neither a number nor a parameter{}",
                        did_you_mean(count, params.iter().map(|(p, _)| p.as_str()))
                    ),
                ));
            }
        },
    };
    let n = u32::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| l.error(at, format!("a window must be at least 1 {unit}, not {n}")))?;
    match unit.to_ascii_lowercase().trim_end_matches('s') {
        "day" => Ok(Window::Days(n)),
        "month" => Ok(Window::Months(n)),
        "year" => Ok(Window::Years(n)),
        _ => Err(bad()),
    }
}

/// Orders derived features so each comes after the features it uses, and
/// rejects unknown names and cycles.
pub(crate) fn derived_order(model: &Model) -> Result<Vec<usize>> {
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
                ));
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
                    return Err(model.error_at(
                        located.offset + span.start,
                        format!(
                            "unknown name `{name}`{}",
                            did_you_mean(name, known.iter().copied())
                        ),
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
