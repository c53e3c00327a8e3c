//! What a rule file says, as written: the TOML layout deserialised with
//! source positions kept, before any name is resolved or type checked.
//!
//! Everything a later error may need to point at is `Spanned`, so that a
//! mistake found while checking can still name the line and column.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub model: ModelMeta,
    /// Other rule files (relative to this one) whose definitions this one
    /// runs with.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub include: Vec<Spanned<String>>,
    #[serde(default)]
    pub population: Population,
    /// Named constants usable in expressions and windows.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, serde_json::Value>")]
    pub params: IndexMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Source>")]
    pub sources: IndexMap<String, Spanned<Source>>,
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Codelist>")]
    pub codelists: IndexMap<String, Spanned<Codelist>>,
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Feature>")]
    pub features: IndexMap<String, Spanned<Feature>>,
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Cohort>")]
    pub cohorts: IndexMap<String, Spanned<Cohort>>,
    /// What happened after the as-of date, for `strata evaluate`: an
    /// aggregate over a source with a forward window (`window = "next 365
    /// days"`). No feature or cohort can read an outcome; `strata run`
    /// ignores them.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Feature>")]
    pub outcomes: IndexMap<String, Spanned<Feature>>,
    /// How outputs are written.
    #[serde(default)]
    pub output: OutputOptions,
    /// Synthetic persons with expected results, run by `strata test`.
    #[serde(default)]
    #[schemars(with = "Vec<TestCase>")]
    pub tests: Vec<Spanned<TestCase>>,
}

/// `[output]`: how a run's outputs are written.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputOptions {
    /// Small-number suppression of aggregate counts: `hes` (the default:
    /// 1-7 shown as `*`, others rounded to the nearest 5), `ehrql` (7 or
    /// fewer shown as 0, all rounded to 5) or `none`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub suppression: Option<Spanned<String>>,
    /// Why the outputs are made, which decides whose records they may use:
    /// `direct_care` (case finding: lists for the patient's own practice or
    /// PCN) or `secondary_use` (planning, analysis). See docs/rules.md.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub purpose: Option<Spanned<String>>,
}

/// Column name (or `date`, `code`) -> value, as written in a test.
pub type TestRow = IndexMap<String, Spanned<toml::Value>>;

/// [`TestRow`] as a JSON Schema sees it.
type TestRowSchema = IndexMap<String, serde_json::Value>;

/// An assurance test: one synthetic person, their events, and what the
/// model must compute for them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    #[schemars(with = "serde_json::Value")]
    pub as_of: Spanned<toml::Value>,
    /// Population columns by role (`birth_date`, `date_of_death`, `sex`,
    /// `practice`, `pcn`) or attribute name.
    #[serde(default)]
    #[schemars(with = "TestRowSchema")]
    pub person: TestRow,
    /// Source name -> events; each event names `date`, optionally `code`,
    /// and any other column of the source's table.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Vec<TestRowSchema>>")]
    pub events: IndexMap<String, Spanned<Vec<TestRow>>>,
    /// Parameter name -> the value this test runs with (as `--set` would
    /// set it), for testing a model's variants.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, serde_json::Value>")]
    pub set: IndexMap<String, Spanned<toml::Value>>,
    /// Feature or cohort name -> expected value (`"null"` for no value).
    #[schemars(with = "IndexMap<String, serde_json::Value>")]
    pub expect: IndexMap<String, Spanned<toml::Value>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub version: Option<String>,
    /// The published definition the model encodes.
    pub source: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// The registered-population table and its column names.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Population {
    pub table: String,
    pub person_id: String,
    pub birth_date: String,
    pub date_of_death: String,
    pub sex: String,
    pub practice: String,
    pub pcn: String,
    /// The column saying the person has a type 1 opt-out (an objection,
    /// recorded at their practice, to their GP data being used beyond it
    /// for purposes other than their care). Unset: `type1_opt_out`, used if
    /// the table has it; set: the table must have it.
    pub type1_opt_out: Option<String>,
    /// The column saying the person has a National Data Opt-out. Unset:
    /// `national_data_opt_out`, used if the table has it; set: required.
    pub national_data_opt_out: Option<String>,
    /// Further columns made available to expressions: name in rules -> column.
    #[schemars(with = "IndexMap<String, String>")]
    pub attributes: IndexMap<String, Spanned<String>>,
}

impl Default for Population {
    fn default() -> Self {
        Population {
            table: "patients".into(),
            person_id: "person_id".into(),
            birth_date: "birth_date".into(),
            date_of_death: "date_of_death".into(),
            sex: "sex".into(),
            practice: "practice_code".into(),
            pcn: "pcn_code".into(),
            type1_opt_out: None,
            national_data_opt_out: None,
            attributes: IndexMap::new(),
        }
    }
}

/// An event table and the roles of its columns.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub table: String,
    #[serde(default = "default_person_id")]
    pub person_id: String,
    pub date: String,
    /// The coded column (utf8, or a list of utf8 such as diagnoses), or
    /// several columns read as one list (HES `DIAG_4_01` .. `DIAG_4_20`).
    #[serde(default)]
    pub code: Option<OneOrMany>,
    /// Placeholder dates that mean "unknown" (HES writes 1800-01-01 and
    /// 1801-01-01): read as missing.
    #[serde(default)]
    #[schemars(with = "Vec<serde_json::Value>")]
    pub missing_dates: Vec<Spanned<toml::Value>>,
    /// Columns whose coded values stand for words, e.g. `admission_method`
    /// from HES `ADMIMETH` (11-13 elective, 21-2D emergency).
    #[serde(default)]
    #[schemars(with = "IndexMap<String, MappedColumn>")]
    pub columns: IndexMap<String, Spanned<MappedColumn>>,
    /// A table an extract may lack (e.g. medications): when it is absent,
    /// the run goes on, the source's features are null (unknown, not zero)
    /// and the manifest and report say which table was missing.
    #[serde(default)]
    pub optional: bool,
    /// Only the first N codes of each event count: of a list column, its
    /// first N values; of several code columns, the first N columns. 1 keeps
    /// an admission's primary diagnosis only.
    #[serde(default)]
    pub first_codes: Option<u32>,
    /// A measured value (haemoglobin, eGFR, BMI): the codes that record it,
    /// its value and unit columns, each unit's factor to one canonical unit
    /// and the plausible range. Rows of other codes are not part of the
    /// source; rows whose value cannot be read in the canonical unit are
    /// rejected with a reason.
    #[serde(default)]
    #[schemars(with = "Option<Measure>")]
    pub measure: Option<Spanned<Measure>>,
}

/// `[sources.NAME.measure]`: what one measure's rows are and how their
/// values are read.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Measure {
    /// The code list of the codes that record this measure.
    pub codelist: String,
    /// The numeric value column (default `value`).
    #[serde(default = "default_value_column")]
    pub value: String,
    /// The unit column (default `unit`).
    #[serde(default = "default_unit_column")]
    pub unit: String,
    /// The canonical unit values are converted to, for people to read.
    pub canonical: String,
    /// Each unit as extracts write it -> the factor that converts it to the
    /// canonical unit (`"g/dL" = 10` for haemoglobin in g/L). Matched after
    /// trimming spaces, ignoring ASCII case; `""` is a missing unit. A unit
    /// not listed rejects the row.
    #[schemars(with = "IndexMap<String, f64>")]
    pub units: Spanned<IndexMap<String, f64>>,
    /// `[low, high]`: plausible values in the canonical unit, both
    /// included; others reject the row.
    #[schemars(with = "[f64; 2]")]
    pub bounds: Spanned<Vec<f64>>,
}

fn default_value_column() -> String {
    "value".into()
}

fn default_unit_column() -> String {
    "unit".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A column of words made from a column of codes: each raw value maps to a
/// word; an unmapped value reads as null.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappedColumn {
    pub from: String,
    pub map: IndexMap<String, String>,
}

fn default_person_id() -> String {
    "person_id".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CodingSystem {
    Snomed,
    Icd10,
    Dmd,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    Exact,
    Prefix,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Codelist {
    /// CSV path, relative to the rule file.
    #[schemars(with = "String")]
    pub file: Spanned<String>,
    pub system: CodingSystem,
    #[serde(default = "default_match", rename = "match")]
    pub match_mode: MatchMode,
    #[serde(default = "default_code_column")]
    pub code_column: String,
    #[serde(default)]
    pub weight_column: Option<String>,
    #[serde(default)]
    pub category_column: Option<String>,
}

fn default_match() -> MatchMode {
    MatchMode::Exact
}

fn default_code_column() -> String {
    "code".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    Count,
    Exists,
    CountDistinctCodes,
    CountDistinctCategories,
    ListCategories,
    SumDistinctWeights,
    MaxInAMonth,
    #[serde(rename = "max_in_30_days")]
    MaxIn30Days,
    FirstDate,
    LastDate,
    Min,
    Max,
    TotalDays,
    // The value of `column` at the latest event (or, with `nth = N`, the
    // N-th latest). (Plain comments: doc comments would turn the schema's
    // enum of names into a list of described alternatives.)
    Latest,
    // The mean of `column` over the events.
    Mean,
}

impl Aggregate {
    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Exists => "exists",
            Aggregate::CountDistinctCodes => "count_distinct_codes",
            Aggregate::CountDistinctCategories => "count_distinct_categories",
            Aggregate::ListCategories => "list_categories",
            Aggregate::MaxInAMonth => "max_in_a_month",
            Aggregate::MaxIn30Days => "max_in_30_days",
            Aggregate::SumDistinctWeights => "sum_distinct_weights",
            Aggregate::FirstDate => "first_date",
            Aggregate::LastDate => "last_date",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::TotalDays => "total_days",
            Aggregate::Latest => "latest",
            Aggregate::Mean => "mean",
        }
    }
}

/// A per-person value: an aggregate over a source, an expression over other
/// features (`expr`), named bands over a score (`score` and `bands`), or a
/// segmentation (`segments` and `default`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    #[serde(default)]
    pub description: Option<String>,
    /// A short name for the feature where people read it (the reason
    /// column of PCN lists); the description is used where it is absent.
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub source: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<Aggregate>")]
    pub aggregate: Option<Spanned<Aggregate>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub codelist: Option<Spanned<String>>,
    /// Only the code list's entries in this category, or these categories
    /// (`category_column`).
    #[serde(default)]
    #[schemars(with = "Option<OneOrMany>")]
    pub category: Option<Spanned<OneOrMany>>,
    /// `"365 days"`, `"12 months"`, `"2 years"`, `"ever"`; the number may be
    /// a parameter name.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub window: Option<Spanned<String>>,
    /// A filter over the source's columns, e.g. `admission_method = 'emergency'`.
    #[serde(default, rename = "where")]
    #[schemars(with = "Option<String>")]
    pub filter: Option<Spanned<String>>,
    /// The column `min`/`max` reduce.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub column: Option<Spanned<String>>,
    /// `latest` only: the N-th latest value (2 is the one before the
    /// latest); 1 unless given.
    #[serde(default)]
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub nth: Option<Spanned<u32>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub expr: Option<Spanned<String>>,
    /// The value `bands` divides: an expression, usually a feature's name.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub score: Option<Spanned<String>>,
    /// A band chain such as `"low < 5 <= intermediate <= 15 < high"`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub bands: Option<Spanned<String>>,
    /// Segments in priority order: the first whose `when` holds wins.
    #[serde(default)]
    #[schemars(with = "Option<Vec<Segment>>")]
    pub segments: Option<Spanned<Vec<Segment>>>,
    /// The segment of a person no `when` matches.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub default: Option<Spanned<String>>,
    /// How `strata evaluate` back-tests this (numeric) feature: as a
    /// `score` that ranks people by risk, or as a `probability` of an
    /// outcome (also checked for calibration).
    #[serde(default)]
    #[schemars(with = "Option<EvaluateAs>")]
    pub evaluate: Option<Spanned<EvaluateAs>>,
    /// An outcome only: another outcome whose events this one's are a part
    /// of (emergency admissions for ambulatory-care-sensitive conditions
    /// are part of all emergency admissions), both `count`s; `strata
    /// evaluate` gives each list's share of the whole beside the
    /// population's.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub part_of: Option<Spanned<String>>,
    /// An outcome only: it happened when its count is at least this (5
    /// A&E attendances in the year: high intensity use again); 1 unless
    /// given.
    #[serde(default)]
    #[schemars(with = "Option<i64>")]
    pub at_least: Option<Spanned<i64>>,
}

/// How a feature is back-tested (see `strata evaluate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvaluateAs {
    Score,
    Probability,
}

impl Feature {
    /// The keys this feature sets (other than `description`), with the
    /// offset of each value in the rule file.
    pub fn keys(&self) -> Vec<(&'static str, usize)> {
        fn at<T>(s: &Option<Spanned<T>>) -> Option<usize> {
            s.as_ref().map(|s| s.span().start)
        }
        [
            ("source", at(&self.source)),
            ("aggregate", at(&self.aggregate)),
            ("codelist", at(&self.codelist)),
            ("category", at(&self.category)),
            ("window", at(&self.window)),
            ("where", at(&self.filter)),
            ("column", at(&self.column)),
            ("nth", at(&self.nth)),
            ("expr", at(&self.expr)),
            ("score", at(&self.score)),
            ("bands", at(&self.bands)),
            ("segments", at(&self.segments)),
            ("default", at(&self.default)),
        ]
        .into_iter()
        .filter_map(|(key, offset)| offset.map(|o| (key, o)))
        .collect()
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    #[schemars(with = "String")]
    pub when: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cohort {
    pub title: String,
    pub description: String,
    /// Who is in the cohort: a boolean expression over features.
    #[schemars(with = "String")]
    pub when: Spanned<String>,
    /// Ranking keys, most important first: `"feature"` or `"feature desc"`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub rank: Vec<Spanned<String>>,
    /// Features that say why a person is on the list: worded in the
    /// `reason` column, and (unless `columns` says otherwise) each a column.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub reasons: Vec<Spanned<String>>,
    /// The columns of the PCN lists, after `rank` and `person_id`: features,
    /// population attributes, `practice_code`, `age`, `sex`. Absent:
    /// `practice_code`, `age`, `sex`, then the reasons.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub columns: Option<Vec<Spanned<String>>>,
    /// The PCN codes that receive this cohort; absent = every PCN. Persons
    /// registered elsewhere are not members.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub pcns: Option<Spanned<Vec<Spanned<String>>>>,
    /// Keep only the first N members of each PCN by rank: a whole number
    /// or the name of a parameter.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub top_per_pcn: Option<Spanned<toml::Value>>,
}
