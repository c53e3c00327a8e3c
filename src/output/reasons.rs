//! Why a person is on a list, in plain words, generated from the rule file:
//! each of the cohort's `reasons` features by its description, with its
//! value and, where the cohort's condition compares the feature with a
//! number, the threshold ("A&E attendances in the last 365 days: 7
//! (threshold >= 5)").
//!
//! The same words serve the CSV lists and the workbooks, so the two can
//! never disagree; `definition` words a cohort's rule for cover sheets
//! from the condition itself, so the words cannot drift from the rule.

use std::fmt::Write as _;

use arrow_array::{Array, ArrayRef};
use arrow_cast::display::{ArrayFormatter, FormatOptions};

use crate::engine::Results;
use crate::rules::expr::{BinaryOp, Expr, ExprKind, Literal, UnaryOp};
use crate::rules::{Cohort, Model};

/// How one cohort's reasons are worded.
pub struct Reasons {
    parts: Vec<Part>,
}

struct Part {
    /// Feature index.
    feature: usize,
    label: String,
    /// `>= 5`, from the cohort's condition.
    threshold: Option<String>,
}

impl Reasons {
    pub fn new(model: &Model, cohort: &Cohort) -> Reasons {
        let parts = cohort
            .reasons
            .iter()
            .map(|(name, _)| {
                let feature = model.feature_index(name).expect("checked when loading");
                let f = &model.features[feature];
                let label = match &f.label {
                    Some(label) => label.clone(),
                    None if f.description.is_empty() => name.replace('_', " "),
                    None => f.description.clone(),
                };
                Part {
                    feature,
                    label,
                    threshold: threshold(model, &cohort.condition.expr, name),
                }
            })
            .collect();
        Reasons { parts }
    }

    /// The reason texts of persons `rows`, in order: for each, every reason
    /// that has a value (not null, false or empty), `; `-separated. Each
    /// column's formatter is made once, not once per person.
    pub fn texts(&self, results: &Results, rows: &[u32]) -> Vec<String> {
        let options = FormatOptions::default();
        let columns: Vec<(&Part, &ArrayRef, Option<ArrayFormatter>)> = self
            .parts
            .iter()
            .map(|part| {
                let column: &ArrayRef = results.feature(part.feature);
                (
                    part,
                    column,
                    ArrayFormatter::try_new(column.as_ref(), &options).ok(),
                )
            })
            .collect();
        rows.iter()
            .map(|&row| Self::words(&columns, row as usize))
            .collect()
    }

    fn words(columns: &[(&Part, &ArrayRef, Option<ArrayFormatter>)], row: usize) -> String {
        // Written into one text, not a text per reason joined: the lists
        // word every member's reasons.
        let mut out = String::new();
        let mut value = String::new();
        // Reasons written so far: one with an empty label still takes its
        // separator, as joining the reasons gave.
        let mut written = 0;
        for (part, column, formatter) in columns {
            if column.is_null(row) {
                continue;
            }
            let Some(formatter) = formatter else {
                continue;
            };
            value.clear();
            // Writing to a `String` cannot fail; a value the formatter
            // cannot show reads as its "ERROR: ..." text, as `to_string` has it.
            let _ = write!(value, "{}", formatter.value(row));
            if value.is_empty() || value == "false" {
                continue;
            }
            if written > 0 {
                out.push_str("; ");
            }
            written += 1;
            out.push_str(&part.label);
            if value != "true" {
                out.push_str(": ");
                out.push_str(&value);
            }
            if let Some(t) = &part.threshold {
                out.push_str(" (threshold ");
                out.push_str(t);
                out.push(')');
            }
        }
        out
    }
}

/// The comparison the condition makes of feature `name` with a number or
/// parameter, as `>= 5`; `None` if it makes none (or several).
fn threshold(model: &Model, condition: &Expr, name: &str) -> Option<String> {
    let mut found: Vec<String> = Vec::new();
    condition.visit(&mut |e| {
        let ExprKind::Binary(op, a, b) = &e.kind else {
            return;
        };
        let symbol = match op {
            BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq | BinaryOp::Eq => {
                op.symbol()
            }
            _ => return,
        };
        let is_feature = |x: &Expr| matches!(&x.kind, ExprKind::Name(n) if n == name);
        // Numbers only: `band = 'high'` says nothing a reader needs.
        let number = |l: &Literal| matches!(l, Literal::Int(_) | Literal::Float(_));
        let bound = |x: &Expr| match &x.kind {
            ExprKind::Literal(l) if number(l) => Some(l.to_string()),
            ExprKind::Name(p) => model.param(p).filter(|v| number(v)).map(|v| v.to_string()),
            _ => None,
        };
        if is_feature(a) {
            if let Some(v) = bound(b) {
                found.push(format!("{symbol} {v}"));
            }
        } else if is_feature(b)
            && let Some(v) = bound(a)
        {
            // `5 <= x` reads as `x >= 5`.
            let flipped = match op {
                BinaryOp::Lt => ">",
                BinaryOp::LtEq => ">=",
                BinaryOp::Gt => "<",
                BinaryOp::GtEq => "<=",
                _ => symbol,
            };
            found.push(format!("{flipped} {v}"));
        }
    });
    (found.len() == 1).then(|| found.remove(0))
}

/// A cohort's rule in words for a cover sheet: its description, then its
/// condition in words (features by their labels, parameters by their
/// values), as the rule file has it.
pub fn definition(model: &Model, cohort: &Cohort) -> String {
    let description = cohort.description.trim();
    let rule = words(model, &cohort.condition.expr, Context::Top);
    let mut text = String::new();
    if !description.is_empty() {
        text.push_str(description);
        text.push(' ');
    }
    text.push_str(&format!("On the list: {rule}, alive on the as-of date."));
    text
}

/// Where an expression sits, for when its words need parentheses.
#[derive(Clone, Copy, PartialEq)]
enum Context {
    Top,
    /// An operand of `and`.
    And,
    /// An operand of `or`.
    Or,
    /// An operand of a comparison.
    Operand,
    /// An operand of `+ - * /`.
    Arithmetic,
}

/// The value of a condition that its parameters alone decide, for a person
/// in the population: `age >= 0` (an age floor of 0 is no condition) is
/// true, a boolean parameter is its value. `None` where the data decides.
fn settled(model: &Model, e: &Expr) -> Option<bool> {
    let value = |x: &Expr| match &x.kind {
        ExprKind::Literal(l) => Some(l.clone()),
        ExprKind::Name(p) => model.param(p).cloned(),
        _ => None,
    };
    match &e.kind {
        ExprKind::Literal(Literal::Bool(b)) => Some(*b),
        ExprKind::Name(p) => match model.param(p) {
            Some(Literal::Bool(b)) => Some(*b),
            _ => None,
        },
        ExprKind::Binary(op @ (BinaryOp::GtEq | BinaryOp::Gt), a, b) if matches!(&a.kind, ExprKind::Name(n) if n == "age") => {
            match (op, value(b)?) {
                (BinaryOp::GtEq, Literal::Int(n)) if n <= 0 => Some(true),
                (BinaryOp::Gt, Literal::Int(n)) if n < 0 => Some(true),
                _ => None,
            }
        }
        _ => None,
    }
}

/// An expression in words: `ae_attendances_12m >= hiu_threshold` reads
/// "A&E attendances in 12 months at least 5". What the parameters settle is
/// left out or chosen: "age at least 0" is no condition, and a `case` on a
/// boolean parameter reads as the branch it takes.
fn words(model: &Model, e: &Expr, at: Context) -> String {
    let w = |x: &Expr, c: Context| words(model, x, c);
    match &e.kind {
        ExprKind::Binary(BinaryOp::And, a, b) if settled(model, a) == Some(true) => w(b, at),
        ExprKind::Binary(BinaryOp::And, a, b) if settled(model, b) == Some(true) => w(a, at),
        ExprKind::Case { whens, otherwise }
            if whens.iter().all(|(c, _)| settled(model, c).is_some()) =>
        {
            match whens.iter().find(|(c, _)| settled(model, c) == Some(true)) {
                Some((_, v)) => w(v, at),
                None => otherwise
                    .as_ref()
                    .map_or_else(|| "unknown".to_string(), |o| w(o, at)),
            }
        }
        ExprKind::Literal(Literal::Str(s)) => s.clone(),
        ExprKind::Literal(Literal::Date(d)) => d.to_string(),
        ExprKind::Literal(Literal::Null) => "unknown".to_string(),
        ExprKind::Literal(l) => l.to_string(),
        ExprKind::Name(name) => name_words(model, name),
        ExprKind::Unary(UnaryOp::Not, x) => format!("not ({})", w(x, Context::Top)),
        ExprKind::Unary(UnaryOp::Neg, x) => format!("-{}", w(x, Context::Arithmetic)),
        ExprKind::Binary(op @ (BinaryOp::And | BinaryOp::Or), a, b) => {
            let inner = if *op == BinaryOp::And {
                Context::And
            } else {
                Context::Or
            };
            let text = format!("{} {} {}", w(a, inner), op.symbol(), w(b, inner));
            // `a or b` inside an `and` keeps its grouping; so does an `and`
            // inside an `or`, for readers unsure of precedence.
            if at == Context::Top || at == inner {
                text
            } else {
                format!("({text})")
            }
        }
        ExprKind::Binary(
            op @ (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div),
            a,
            b,
        ) => {
            let text = format!(
                "{} {} {}",
                w(a, Context::Arithmetic),
                op.symbol(),
                w(b, Context::Arithmetic)
            );
            if at == Context::Arithmetic {
                format!("({text})")
            } else {
                text
            }
        }
        ExprKind::Binary(op, a, b) => {
            let phrase = match op {
                BinaryOp::Eq => "is",
                BinaryOp::NotEq => "is not",
                BinaryOp::Lt => "below",
                BinaryOp::LtEq => "at most",
                BinaryOp::Gt => "above",
                _ => "at least",
            };
            let text = format!(
                "{} {phrase} {}",
                w(a, Context::Operand),
                w(b, Context::Operand)
            );
            if matches!(at, Context::Operand | Context::Arithmetic) {
                format!("({text})")
            } else {
                text
            }
        }
        ExprKind::IsNull { expr, negated } => format!(
            "{} {}",
            w(expr, Context::Operand),
            if *negated { "is known" } else { "is unknown" }
        ),
        ExprKind::InList {
            expr,
            list,
            negated,
        } => {
            let items: Vec<String> = list.iter().map(|x| w(x, Context::Operand)).collect();
            let joined = match items.split_last() {
                Some((last, rest)) if !rest.is_empty() => {
                    format!(
                        "{} {} {last}",
                        rest.join(", "),
                        if *negated { "nor" } else { "or" }
                    )
                }
                _ => items.join(""),
            };
            let verb = match (negated, list.len() > 1) {
                (false, _) => "is",
                (true, true) => "is neither",
                (true, false) => "is not",
            };
            format!("{} {verb} {joined}", w(expr, Context::Operand))
        }
        ExprKind::Between {
            expr,
            low,
            high,
            negated,
        } => format!(
            "{} {}between {} and {}",
            w(expr, Context::Operand),
            if *negated { "not " } else { "" },
            w(low, Context::Operand),
            w(high, Context::Operand)
        ),
        ExprKind::Case { whens, otherwise } => {
            let mut parts: Vec<String> = whens
                .iter()
                .map(|(c, v)| format!("{} where {}", w(v, Context::Operand), w(c, Context::Top)))
                .collect();
            if let Some(o) = otherwise {
                parts.push(format!("otherwise {}", w(o, Context::Operand)));
            }
            format!("({})", parts.join("; "))
        }
        ExprKind::Call { function, args } => {
            let args: Vec<String> = args.iter().map(|x| w(x, Context::Top)).collect();
            format!("{function}({})", args.join(", "))
        }
    }
}

/// A name in words: a parameter by its value, a feature by its label (or
/// description), anything else as written with spaces.
fn name_words(model: &Model, name: &str) -> String {
    if let Some(value) = model.param(name) {
        return match value {
            Literal::Str(s) => s.clone(),
            other => other.to_string(),
        };
    }
    if let Some(i) = model.feature_index(name) {
        let f = &model.features[i];
        if let Some(label) = &f.label {
            return label.clone();
        }
        if !f.description.is_empty() {
            return f.description.clone();
        }
    }
    name.replace('_', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        let text = r#"
[model]
name = "t"
title = "T"
source = "test"

[params]
threshold = 5

[sources.ae]
table = "ae_attendances"
date = "arrival_date"

[features.ae_12m]
label = "A&E attendances in 12 months"
source = "ae"
aggregate = "count"
window = "365 days"

[features.band]
description = "A band"
score = "ae_12m"
bands = "low < 3 <= high"

[features.flag]
expr = "ae_12m > 0"

[cohorts.c]
title = "C"
description = "Some people."
when = "age >= 18 and (ae_12m >= threshold or band in ('high', 'top')) and not flag and ae_12m / 2 > 1"
"#;
        load(text)
    }

    /// A model read from `text`, as a rule file.
    fn load(text: &str) -> Model {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, text).unwrap();
        crate::rules::load(&path).unwrap()
    }

    #[test]
    fn what_the_parameters_settle_is_left_out_or_chosen() {
        let text = r#"
[model]
name = "t"
title = "T"
source = "test"

[params]
floor = 0
any_30_days = false

[sources.ae]
table = "ae_attendances"
date = "arrival_date"

[features.month]
label = "Most in a calendar month"
source = "ae"
aggregate = "max_in_a_month"

[features.days]
label = "Most in 30 days"
source = "ae"
aggregate = "max_in_30_days"

[features.busiest]
label = "Most in a month"
expr = "case when any_30_days then days else month end"

[cohorts.c]
title = "C"
description = ""
when = "age >= floor and month > 5 and age >= 0"

[cohorts.d]
title = "D"
description = ""
when = "age >= floor and (case when any_30_days then days else month end) > 5"
"#;
        let m = load(text);
        assert_eq!(
            definition(&m, &m.cohorts[0]),
            "On the list: Most in a calendar month above 5, alive on the as-of date."
        );
        assert_eq!(
            definition(&m, &m.cohorts[1]),
            "On the list: Most in a calendar month above 5, alive on the as-of date."
        );
    }

    #[test]
    fn a_condition_reads_in_words_with_labels_and_parameter_values() {
        let m = model();
        assert_eq!(
            definition(&m, &m.cohorts[0]),
            "Some people. On the list: age at least 18 and (A&E attendances in 12 months \
             at least 5 or A band is high or top) and not (flag) and A&E attendances in \
             12 months / 2 above 1, alive on the as-of date."
        );
    }

    /// A reason reads `label` when true, `label: value` otherwise, with
    /// its threshold after; null, false and empty values are left out; and
    /// reasons are joined by `; `, a reason with an empty label included.
    #[test]
    fn a_person_s_reasons_in_words() {
        use arrow_array::{BooleanArray, Int64Array, StringArray};
        use std::sync::Arc;
        let part = |label: &str, threshold: Option<&str>| Part {
            feature: 0,
            label: label.to_string(),
            threshold: threshold.map(str::to_string),
        };
        let parts = [
            part("On the register", None),
            part("Attendances", Some(">= 5")),
            part("", None),
            part("Deficits", None),
        ];
        let columns: [ArrayRef; 4] = [
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            Arc::new(Int64Array::from(vec![Some(7), None, Some(0)])),
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(true),
                Some(false),
            ])),
            Arc::new(StringArray::from(vec![
                Some("falls, anaemia"),
                Some(""),
                None,
            ])),
        ];
        let options = FormatOptions::default();
        // The reasons from `first` on, in words, for `row`.
        let words = |first: usize, row: usize| {
            let with: Vec<(&Part, &ArrayRef, Option<ArrayFormatter>)> = parts[first..]
                .iter()
                .zip(&columns[first..])
                .map(|(p, c)| (p, c, ArrayFormatter::try_new(c.as_ref(), &options).ok()))
                .collect();
            Reasons::words(&with, row)
        };
        assert_eq!(
            words(0, 0),
            "On the register; Attendances: 7 (threshold >= 5); ; Deficits: falls, anaemia"
        );
        // Only the empty label is true: it is the whole text.
        assert_eq!(words(0, 1), "");
        // A zero is a value, not left out.
        assert_eq!(words(0, 2), "Attendances: 0 (threshold >= 5)");
        // A first reason with an empty label still takes its separator.
        assert_eq!(words(2, 0), "; Deficits: falls, anaemia");
    }
}
