//! Why a person is on a list, in plain words, generated from the rule file:
//! each of the cohort's `reasons` features by its description, with its
//! value and, where the cohort's condition compares the feature with a
//! number, the threshold ("A&E attendances in the last 365 days: 7
//! (threshold >= 5)").
//!
//! The same words serve the CSV lists and the workbooks, so the two can
//! never disagree; `definition` words a cohort's rule for cover sheets.

use arrow_array::{Array, ArrayRef};
use arrow_cast::display::{ArrayFormatter, FormatOptions};

use crate::engine::Results;
use crate::rules::expr::{BinaryOp, Expr, ExprKind, Literal};
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

    /// The reason text of person `row`: every reason that has a value (not
    /// null, false or empty), `; `-separated.
    pub fn text(&self, results: &Results, row: usize) -> String {
        let options = FormatOptions::default();
        let mut out: Vec<String> = Vec::new();
        for part in &self.parts {
            let column: &ArrayRef = results.feature(part.feature);
            if column.is_null(row) {
                continue;
            }
            let Ok(formatter) = ArrayFormatter::try_new(column.as_ref(), &options) else {
                continue;
            };
            let value = formatter.value(row).to_string();
            let shown = match value.as_str() {
                "" | "false" => continue,
                "true" => part.label.clone(),
                _ => format!("{}: {value}", part.label),
            };
            out.push(match &part.threshold {
                Some(t) => format!("{shown} (threshold {t})"),
                None => shown,
            });
        }
        out.join("; ")
    }
}

/// The comparison the condition makes of feature `name` with a number or
/// parameter, as `>= 5`; `None` if it makes none (or several).
fn threshold(model: &Model, condition: &Expr, name: &str) -> Option<String> {
    let mut found: Vec<String> = Vec::new();
    walk(condition, &mut |e| {
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

fn walk(e: &Expr, f: &mut impl FnMut(&Expr)) {
    f(e);
    match &e.kind {
        ExprKind::Literal(_) | ExprKind::Name(_) => {}
        ExprKind::Unary(_, x) | ExprKind::IsNull { expr: x, .. } => walk(x, f),
        ExprKind::Binary(_, a, b) => {
            walk(a, f);
            walk(b, f);
        }
        ExprKind::InList { expr, list, .. } => {
            walk(expr, f);
            list.iter().for_each(|x| walk(x, f));
        }
        ExprKind::Between {
            expr, low, high, ..
        } => {
            walk(expr, f);
            walk(low, f);
            walk(high, f);
        }
        ExprKind::Case { whens, otherwise } => {
            for (c, v) in whens {
                walk(c, f);
                walk(v, f);
            }
            if let Some(o) = otherwise {
                walk(o, f);
            }
        }
        ExprKind::Call { args, .. } => args.iter().for_each(|x| walk(x, f)),
    }
}

/// A cohort's rule in words for a cover sheet: its description, then the
/// condition as written with the parameters' values.
pub fn definition(model: &Model, cohort: &Cohort) -> String {
    let params = model.params_named_in([cohort.condition.text.as_str()]);
    let mut text = format!(
        "{} Rule: {}",
        cohort.description,
        cohort.condition.text.trim()
    );
    if !params.is_empty() {
        text.push_str(&format!(" (with {})", params.join(", ")));
    }
    text.push_str(", and alive on the as-of date.");
    text
}
