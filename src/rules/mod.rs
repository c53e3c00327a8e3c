//! Rule files: the checked [`Model`] the engine plans from, and how one is
//! made from one or more files.
//!
//! The stages follow DataFusion's: what was written ([`syntax`]) -> each
//! file read and checked as far as it alone allows (`read`) -> the files of
//! a run merged (`merge`) -> names resolved across them, derived features
//! ordered, cycles refused (`resolve`) -> every expression typed
//! ([`typing`]) against the column types a backend gives it: the native
//! engine from the data's schemas ([`crate::engine::plan`]), the SQL
//! compiler likewise ([`crate::sql`]), `strata check` with the data's types
//! unknown. Types wait for the data because a feature such as
//! `max(column)` or a population attribute takes its type from there.

/// The bundled models live below the language (errors read them too).
pub use crate::bundled;
pub mod check;
pub mod codelist;
pub mod expr;
mod merge;
mod read;
mod resolve;
pub mod syntax;
pub mod typing;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::dates::Window;
use crate::error::{Error, Position, Result};
pub use codelist::Codelist;
use expr::{Expr, Literal, Span};
pub use resolve::unused;
pub use syntax::{Aggregate, EvaluateAs};

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
pub const RESERVED_COLUMNS: &[&str] =
    &["person_id", "practice_code", "pcn_code", "alive", "counted"];

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
    /// May the table be absent (its features then null)?
    pub optional: bool,
    /// Only the first N codes of each event count (see the rule file's
    /// `first_codes`).
    pub first_codes: Option<usize>,
    /// A measured value: only the codes of its list, values converted to
    /// one unit and checked against a plausible range.
    pub measure: Option<Measure>,
}

/// How a measure's rows are read (see [`syntax::Measure`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    /// The code list of the measure's codes (by name: lists are read after
    /// sources).
    pub codelist: String,
    pub value: String,
    pub unit: String,
    pub canonical: String,
    /// Unit as matched (trimmed, ASCII lower case) -> factor to canonical.
    pub units: Vec<(String, f64)>,
    pub low: f64,
    pub high: f64,
}

impl Measure {
    /// The key a unit is matched by.
    pub fn unit_key(unit: &str) -> String {
        unit.trim_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r'])
            .to_ascii_lowercase()
    }

    /// The factor from `unit` (as written; `None` is missing) to the
    /// canonical unit, if the measure lists it.
    pub fn factor(&self, unit: Option<&str>) -> Option<f64> {
        let key = Self::unit_key(unit.unwrap_or(""));
        self.units.iter().find(|(u, _)| *u == key).map(|&(_, f)| f)
    }
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
        /// Only the code list's entries in these categories (sorted ids);
        /// empty = every entry.
        category: Vec<u32>,
        window: Window,
        filter: Option<Located>,
        column: Option<String>,
        /// `latest`: which value, counting back from the latest (1).
        nth: usize,
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
    /// Short words for lists; `None` to use the description.
    pub label: Option<String>,
    pub kind: FeatureKind,
    /// Offset of the feature's table in the rule file, for errors.
    pub offset: usize,
    /// For a feature written as bands: the score and its boundaries, for
    /// charts.
    pub banding: Option<Banding>,
    /// Whether `strata evaluate` back-tests it, and as what.
    pub evaluate: Option<EvaluateAs>,
    /// An outcome only: the outcome whose events this one's are a part of
    /// (both counts), for the share of the whole `strata evaluate` gives.
    pub part_of: Option<String>,
    /// An outcome only: the count at which it happened (1 unless given).
    pub at_least: Option<i64>,
}

/// A banded feature's score and boundaries, as the rule file states them.
#[derive(Debug, Clone)]
pub struct Banding {
    pub score: Located,
    /// Boundaries in increasing order.
    pub boundaries: Vec<f64>,
    /// Band names, one more than the boundaries.
    pub names: Vec<String>,
}

impl Banding {
    /// Reads back the `case` a band chain is compiled to (see
    /// `read::banded`): `case when score is null then null when score <(=)
    /// b1 then 'n1' ... else 'nk' end`.
    pub fn of(derived: &Located) -> Option<Banding> {
        use expr::ExprKind;
        let ExprKind::Case { whens, otherwise } = &derived.expr.kind else {
            return None;
        };
        let (first, rest) = whens.split_first()?;
        let ExprKind::IsNull { expr: score, .. } = &first.0.kind else {
            return None;
        };
        let mut boundaries = Vec::new();
        let mut names = Vec::new();
        for (test, name) in rest {
            let ExprKind::Binary(_, _, bound) = &test.kind else {
                return None;
            };
            let ExprKind::Literal(Literal::Float(b)) = bound.kind else {
                return None;
            };
            let ExprKind::Literal(Literal::Str(n)) = &name.kind else {
                return None;
            };
            boundaries.push(b);
            names.push(n.clone());
        }
        let ExprKind::Literal(Literal::Str(last)) = &otherwise.as_ref()?.kind else {
            return None;
        };
        names.push(last.clone());
        let score_text = derived
            .text
            .split(" banded as ")
            .next()
            .unwrap_or("")
            .to_string();
        Some(Banding {
            score: Located {
                expr: (**score).clone(),
                text: score_text,
                offset: derived.offset,
            },
            boundaries,
            names,
        })
    }
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
    /// The list columns after rank and person_id, with their offsets;
    /// `None` = practice_code, age, sex and the reasons.
    pub columns: Option<Vec<(String, usize)>>,
    /// PCN codes that receive the cohort (with their offsets); `None` = all.
    pub pcns: Option<Vec<(String, usize)>>,
    /// Members kept per PCN, first by rank; `None` = all.
    pub top_per_pcn: Option<u32>,
}

/// The text of one rule file of a model. A model read from several files
/// numbers the bytes of all of them in one sequence, each file starting at
/// `start`, so that any offset a definition keeps names its file too.
#[derive(Debug, Clone)]
pub struct RuleText {
    pub path: PathBuf,
    pub text: String,
    pub sha256: String,
    pub start: usize,
    /// The file's own `[model]`.
    pub meta: syntax::ModelMeta,
}

/// Columns of the person (besides features and attributes) that a cohort's
/// `columns` may show on its lists.
pub const PERSON_COLUMNS: [&str; 3] = ["practice_code", "age", "sex"];

/// Why a run's outputs are made, which decides whose records they may use
/// (NHS England's opt-out rules differ by purpose; see docs/rules.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Case finding for the patient's own practice or PCN care team: the
    /// lists are individual care; the counts and report are not.
    DirectCare,
    /// Planning and analysis: every output is a secondary use.
    SecondaryUse,
}

impl Purpose {
    pub fn parse(text: &str) -> Option<Purpose> {
        match text.trim() {
            "direct_care" => Some(Purpose::DirectCare),
            "secondary_use" => Some(Purpose::SecondaryUse),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Purpose::DirectCare => "direct_care",
            Purpose::SecondaryUse => "secondary_use",
        }
    }
}

/// One or more rule files whose names all resolve.
#[derive(Debug, Clone)]
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
    /// The `--set` values as written, to read the model again with them
    /// (an assurance test with parameters of its own does).
    pub overrides: Vec<(String, String)>,
    pub sources: Vec<Source>,
    pub codelists: Vec<Codelist>,
    /// In the order written (the order of output columns).
    pub features: Vec<Feature>,
    /// Indices of derived features, each after everything it uses.
    pub derived_order: Vec<usize>,
    pub cohorts: Vec<Cohort>,
    /// `[outcomes]`: aggregates over a forward window (its length), for
    /// `strata evaluate`; nothing else reads them.
    pub outcomes: Vec<Feature>,
    /// Assurance tests as written, with the start offset of their file;
    /// checked and run by [`crate::commands::test`].
    pub tests: Vec<(usize, Spanned<syntax::TestCase>)>,
    /// Where each parameter, source and code list is declared: (kind, name,
    /// offset), for warnings about unused ones.
    pub declarations: Vec<(&'static str, String, usize)>,
    /// Parameters used as window lengths or band boundaries.
    pub params_outside_expressions: HashSet<String>,
    /// `[output] suppression`, with its offset, if a rule file sets it.
    pub suppression: Option<(crate::suppress::Suppression, usize)>,
    /// `[output] purpose`, with its offset, if a rule file sets it.
    pub purpose: Option<(Purpose, usize)>,
    /// The purpose given on the command line (`--purpose`), which wins.
    pub purpose_set: Option<Purpose>,
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

    /// The parameters named in `texts` (expressions or band chains as
    /// written), each once as `name = value`, in the order they appear.
    pub fn params_named_in<'t>(&self, texts: impl IntoIterator<Item = &'t str>) -> Vec<String> {
        let mut used: Vec<String> = Vec::new();
        for text in texts {
            for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(v) = self.param(word) {
                    let shown = format!("{word} = {v}");
                    if !used.contains(&shown) {
                        used.push(shown);
                    }
                }
            }
        }
        used
    }

    /// The run's purpose, and where it came from: `--purpose`, a rule
    /// file, or the default (direct care).
    pub fn purpose(&self) -> (Purpose, &'static str) {
        match (self.purpose_set, self.purpose) {
            (Some(p), _) => (p, "--purpose"),
            (None, Some((p, _))) => (p, "a rule file"),
            (None, None) => (
                Purpose::DirectCare,
                "the default, as no rule file states one",
            ),
        }
    }

    pub fn param(&self, name: &str) -> Option<&Literal> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.features.iter().position(|f| f.name == name)
    }

    /// The features feature `fi`'s expressions name, each once, ascending:
    /// every name, even in a branch a constant never takes (the evaluator
    /// may still read it; see [`Model::names_read`] for what it must).
    pub fn features_named_by(&self, fi: usize) -> Vec<usize> {
        let mut named: Vec<usize> = self.features[fi]
            .kind
            .expressions()
            .iter()
            .flat_map(|e| e.expr.names())
            .filter_map(|(name, _)| self.feature_index(name))
            .collect();
        named.sort_unstable();
        named.dedup();
        named
    }

    /// The features the cohorts' conditions and rankings name.
    pub fn features_named_by_cohorts(&self) -> impl Iterator<Item = usize> + '_ {
        self.cohorts.iter().flat_map(|cohort| {
            let names = cohort
                .condition
                .expr
                .names()
                .into_iter()
                .map(|(name, _)| name);
            let ranks = cohort.rank.iter().map(|key| key.name.as_str());
            names
                .chain(ranks)
                .filter_map(|name| self.feature_index(name))
        })
    }

    /// Per feature: does computing the cohorts (their conditions, and the
    /// rankings of those that choose their members by rank, `top_per_pcn`)
    /// and the features named in `wanted` need it, directly or through the
    /// derived features they use? What a run that reads only those must
    /// compute: `strata evaluate` reads who is in each cohort and the
    /// scores, not the lists' order, reasons and labels, which are much of
    /// a model. A branch of a `case` that a constant condition never
    /// takes reads nothing (see [`Model::names_read`]).
    pub fn features_needed(&self, wanted: &[String]) -> Vec<bool> {
        let mut needed = vec![false; self.features.len()];
        let mut pending: Vec<usize> = Vec::new();
        let mut need = |name: &str, pending: &mut Vec<usize>| {
            if let Some(i) = self.feature_index(name)
                && !needed[i]
            {
                needed[i] = true;
                pending.push(i);
            }
        };
        for cohort in &self.cohorts {
            for name in self.names_read(&cohort.condition.expr) {
                need(name, &mut pending);
            }
            if cohort.top_per_pcn.is_some() {
                for key in &cohort.rank {
                    need(&key.name, &mut pending);
                }
            }
        }
        for name in wanted {
            need(name, &mut pending);
        }
        while let Some(i) = pending.pop() {
            for located in self.features[i].kind.expressions() {
                for name in self.names_read(&located.expr) {
                    need(name, &mut pending);
                }
            }
        }
        needed
    }

    /// The names `expr` may read: all it names, but for the branches of a
    /// `case` that a constant condition (`true`, `false`, a true/false
    /// parameter, `not` of one) never takes. NHS England's HIU reads the
    /// busiest calendar month or the busiest 30 days, as a parameter
    /// chooses: `strata evaluate` need not scan the other (at 5M persons,
    /// 20 MB a date).
    pub fn names_read<'e>(&self, expr: &'e Expr) -> Vec<&'e str> {
        use expr::ExprKind;
        let constant = |e: &Expr| -> Option<bool> {
            let mut e = e;
            let mut negated = false;
            while let ExprKind::Unary(expr::UnaryOp::Not, inner) = &e.kind {
                negated = !negated;
                e = inner;
            }
            let value = match &e.kind {
                ExprKind::Literal(Literal::Bool(b)) => *b,
                // Resolved as typing resolves it: the built-in names
                // first, then parameters (before attributes and features).
                ExprKind::Name(n) if !BUILTINS.iter().any(|(b, _)| b == n) => {
                    match self.param(n)? {
                        Literal::Bool(b) => *b,
                        _ => return None,
                    }
                }
                _ => return None,
            };
            Some(value != negated)
        };
        let mut names = Vec::new();
        let mut todo = vec![expr];
        while let Some(e) = todo.pop() {
            match &e.kind {
                ExprKind::Name(n) => names.push(n.as_str()),
                ExprKind::Case { whens, otherwise } => {
                    let mut taken = false;
                    for (condition, value) in whens {
                        match constant(condition) {
                            Some(false) => continue,
                            Some(true) => {
                                todo.push(value);
                                taken = true;
                                break;
                            }
                            None => todo.extend([condition, value]),
                        }
                    }
                    if !taken {
                        todo.extend(otherwise.as_deref());
                    }
                }
                _ => todo.extend(e.children()),
            }
        }
        names
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

/// Reads and checks a rule file.
pub fn load(path: &Path) -> Result<Model> {
    load_all(&[path.to_path_buf()], &[])
}

/// Reads rule files (and the files they `include`) into one model, with
/// parameter values overridden from the command line (`--set name=value`),
/// each parsed as its parameter's type. Definitions that several files share
/// are computed once; see [`merge`].
pub fn load_all(paths: &[PathBuf], overrides: &[(String, String)]) -> Result<Model> {
    load_all_set_by(paths, overrides, "--set")
}

/// [`load_all`], with the overrides given by `flag` (`evaluate`'s
/// `--compare-set` sets the compared rule set's parameters): its errors
/// name the flag the user wrote.
pub fn load_all_set_by(
    paths: &[PathBuf],
    overrides: &[(String, String)],
    flag: &str,
) -> Result<Model> {
    let mut model: Option<Model> = None;
    let mut names = Vec::new();
    let mut titles = Vec::new();
    for path in paths {
        let next = load_with_includes(path, (overrides, flag), &mut Vec::new())?;
        names.push(next.meta.name.clone());
        titles.push(next.meta.title.clone());
        model = Some(match model {
            None => next,
            Some(m) => merge::merge(m, next)?,
        });
    }
    let mut model = model.ok_or_else(|| {
        Error::usage("no rule file given").with_help("name one with --rules FILE")
    })?;
    if paths.len() > 1 {
        // A run of several models is named after all of them.
        model.meta.name = names.join("+");
        model.meta.title = titles.join("; ");
    }
    resolve::resolve_names(&mut model)?;
    model.overrides = overrides.to_vec();
    if let Some((name, _)) = overrides
        .iter()
        .find(|(n, _)| !model.overridden.contains(n))
    {
        return Err(Error::usage(format!(
            "{flag} {name}: no rule file of this run has a parameter `{name}`{}",
            did_you_mean(name, model.params.iter().map(|(n, _)| n.as_str()))
        ))
        .with_help(format!(
            "{flag} can only change a parameter declared in a rule file's [params]"
        )));
    }
    Ok(model)
}

/// One file with its includes merged in before it; `stack` holds the files
/// being read, to refuse an include cycle.
fn load_with_includes(
    path: &Path,
    overrides: (&[(String, String)], &str),
    stack: &mut Vec<PathBuf>,
) -> Result<Model> {
    let canonical = bundled::identity(path);
    if stack.contains(&canonical) {
        return Err(Error::usage(format!(
            "rule files include each other in a cycle: {} -> {}",
            stack
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" -> "),
            canonical.display()
        ))
        .with_help("remove one of the `include`s"));
    }
    stack.push(canonical);
    let (own, includes) = read::load_one(path, overrides)?;
    let mut model: Option<Model> = None;
    for (include, at) in includes {
        // A file it names that cannot be read is told where it is named:
        // its path is relative to this file, not to where strata runs.
        let next = load_with_includes(&include, overrides, stack).map_err(|e| match e {
            Error::Io {
                path: p, source, ..
            } if p == include => Error::rules(
                path,
                Some(at),
                format!(
                    "cannot read included rule file {}: {source}",
                    include.display()
                ),
            )
            .with_help("an `include` path is relative to the file that names it"),
            other => other,
        })?;
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
