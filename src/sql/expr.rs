//! Typed expressions as SQL. The checker has already spelt out what SQL
//! engines would otherwise decide differently (`in` and `between` as
//! comparisons, integer-to-float widening as a node of its own), so this is
//! a walk of the tree; the few constructs whose SQL meaning differs from
//! strata's are written to mean strata's:
//!
//! - `/` is a float division that gives null for a zero divisor (as Spark
//!   outside ANSI mode; DuckDB would give infinity): `a / nullif(b, 0)`.
//! - `ln` of zero or a negative number is null (DuckDB gives -inf).
//! - `round` rounds the shortest decimal form, halves away from zero
//!   ([`Target::round`]).
//! - float literals are DOUBLE, not DECIMAL.

use super::dialect::Target;
use crate::rules::check::{Arith, Compare, Function, Node, Type, Typed};
use crate::rules::expr::Literal;

/// The SQL type a rule type is held in.
pub fn sql_type(target: Target, ty: Type) -> &'static str {
    match ty {
        Type::Bool => "BOOLEAN",
        Type::Int | Type::Null => "BIGINT",
        Type::Float => "DOUBLE",
        Type::Str => target.text_type(),
        Type::Date => "DATE",
    }
}

/// A literal of type `ty`.
pub fn literal(target: Target, lit: &Literal, ty: Type) -> String {
    match lit {
        Literal::Int(v) => v.to_string(),
        Literal::Float(v) => target.double(*v),
        Literal::Str(s) => target.string(s),
        Literal::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        Literal::Null => format!("CAST(NULL AS {})", sql_type(target, ty)),
        Literal::Date(d) => format!("DATE '{d}'"),
    }
}

/// `expr` as SQL; `column` gives the SQL of each slot read as the type
/// the expression reads it as.
pub fn sql(target: Target, expr: &Typed, column: &dyn Fn(usize, Type) -> String) -> String {
    let sub = |e: &Typed| sql(target, e, column);
    match &expr.node {
        Node::Slot(i) => column(*i, expr.ty),
        Node::Literal(lit) => literal(target, lit, expr.ty),
        Node::ToFloat(inner) => format!("CAST({} AS DOUBLE)", sub(inner)),
        Node::Not(inner) => format!("(NOT {})", sub(inner)),
        Node::Neg(inner) => format!("(-{})", sub(inner)),
        Node::And(a, b) => format!("({} AND {})", sub(a), sub(b)),
        Node::Or(a, b) => format!("({} OR {})", sub(a), sub(b)),
        Node::Compare(op, a, b) => {
            let op = match op {
                Compare::Eq => "=",
                Compare::NotEq => "<>",
                Compare::Lt => "<",
                Compare::LtEq => "<=",
                Compare::Gt => ">",
                Compare::GtEq => ">=",
            };
            format!("({} {op} {})", sub(a), sub(b))
        }
        Node::Arith(op, a, b) => arith(target, *op, a, b, &sub),
        Node::IsNull(inner, negated) => format!(
            "({} IS {}NULL)",
            sub(inner),
            if *negated { "NOT " } else { "" }
        ),
        Node::Case(whens, otherwise) => {
            let mut out = String::from("CASE");
            for (c, v) in whens {
                out.push_str(&format!(" WHEN {} THEN {}", sub(c), sub(v)));
            }
            if let Some(o) = otherwise {
                out.push_str(&format!(" ELSE {}", sub(o)));
            }
            out.push_str(" END");
            out
        }
        Node::Call(f, args) => {
            let args: Vec<String> = args.iter().map(sub).collect();
            match f {
                Function::Coalesce => format!("coalesce({})", args.join(", ")),
                Function::Least => format!("least({})", args.join(", ")),
                Function::Greatest => format!("greatest({})", args.join(", ")),
                Function::Abs => format!("abs({})", args[0]),
                Function::Exp => format!("exp({})", args[0]),
                Function::Ln => format!("CASE WHEN {x} > 0 THEN ln({x}) END", x = args[0]),
                Function::Round(digits) => target.round(&args[0], *digits),
                Function::ConcatWs => format!("concat_ws({})", args.join(", ")),
            }
        }
    }
}

fn arith(
    target: Target,
    op: Arith,
    a: &Typed,
    b: &Typed,
    sub: &dyn Fn(&Typed) -> String,
) -> String {
    let (x, y) = (sub(a), sub(b));
    if a.ty == Type::Date {
        return match (op, b.ty) {
            (Arith::Sub, Type::Date) => target.days_between(&x, &y),
            (Arith::Sub, _) => target.sub_days(&x, &y),
            _ => target.add_days(&x, &y),
        };
    }
    match op {
        Arith::Add => format!("({x} + {y})"),
        Arith::Sub => format!("({x} - {y})"),
        Arith::Mul => format!("({x} * {y})"),
        Arith::Div => format!("({x} / nullif({y}, 0))"),
    }
}
