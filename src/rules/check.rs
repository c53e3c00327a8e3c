//! Type checking: turns a parsed expression into a typed one whose names are
//! resolved to the columns the engine will supply.
//!
//! The checker is the only place that knows the typing rules, so rule files
//! mean one thing everywhere: integers widen to floats, `null` takes the type
//! of what it meets, `/` always gives a float (as in Spark SQL), dates move by
//! whole days (`date + 1`, `date - date`), `in` and `between` are spelled out
//! as the comparisons SQL defines them to be.

use std::fmt;

use super::expr::{BinaryOp, Expr, ExprKind, Literal, Span, UnaryOp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    Bool,
    Int,
    Float,
    Str,
    Date,
    /// The type of a bare `null` until it meets something typed.
    Null,
}

impl Type {
    /// The Arrow type the engine evaluates values of this type as.
    pub fn data_type(self) -> arrow_schema::DataType {
        use arrow_schema::DataType;
        match self {
            Type::Bool => DataType::Boolean,
            Type::Int => DataType::Int64,
            Type::Float => DataType::Float64,
            Type::Str => DataType::Utf8,
            Type::Date => DataType::Date32,
            Type::Null => DataType::Null,
        }
    }

    /// The type with its article, for messages: "an integer", "a date".
    pub fn a(self) -> &'static str {
        match self {
            Type::Bool => "a true/false value",
            Type::Int => "an integer",
            Type::Float => "a number",
            Type::Str => "a text value",
            Type::Date => "a date",
            Type::Null => "null",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Bool => "boolean",
            Type::Int => "integer",
            Type::Float => "number",
            Type::Str => "text",
            Type::Date => "date",
            Type::Null => "null",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Coalesce,
    Least,
    Greatest,
    Abs,
    Exp,
    /// Natural logarithm; null for zero or negative input (as Spark).
    Ln,
    /// To this many decimal places, halves away from zero (SQL `round`).
    Round(i32),
    /// Text arguments joined by the first, nulls skipped (Spark's
    /// `concat_ws`).
    ConcatWs,
}

/// A checked expression. Every node knows its result type.
#[derive(Debug, Clone, PartialEq)]
pub struct Typed {
    pub node: Node,
    pub ty: Type,
}

impl Typed {
    /// Calls `f` with each slot the expression reads, in the order written
    /// (a slot read twice, twice).
    pub fn each_slot(&self, f: &mut impl FnMut(usize)) {
        match &self.node {
            Node::Slot(s) => f(*s),
            _ => self.each_child(&mut |c| c.each_slot(f)),
        }
    }

    /// Calls `f` with each operand of the expression itself (not theirs),
    /// in the order written.
    pub fn each_child<'a>(&'a self, f: &mut impl FnMut(&'a Typed)) {
        match &self.node {
            Node::Slot(_) | Node::Literal(_) => {}
            Node::ToFloat(a) | Node::Not(a) | Node::Neg(a) | Node::IsNull(a, _) => f(a),
            Node::And(a, b) | Node::Or(a, b) | Node::Compare(_, a, b) | Node::Arith(_, a, b) => {
                f(a);
                f(b);
            }
            Node::Case(whens, otherwise) => {
                for (c, v) in whens {
                    f(c);
                    f(v);
                }
                if let Some(o) = otherwise {
                    f(o);
                }
            }
            Node::Call(_, args) => args.iter().for_each(f),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Column `n` of the environment the expression was checked against.
    Slot(usize),
    Literal(Literal),
    /// Integer to float widening.
    ToFloat(Box<Typed>),
    Not(Box<Typed>),
    Neg(Box<Typed>),
    And(Box<Typed>, Box<Typed>),
    Or(Box<Typed>, Box<Typed>),
    /// Operands have the same type.
    Compare(Compare, Box<Typed>, Box<Typed>),
    /// Operands are both Int, both Float, Date and Int, or both Date (`-`).
    Arith(Arith, Box<Typed>, Box<Typed>),
    IsNull(Box<Typed>, bool),
    Case(Vec<(Typed, Typed)>, Option<Box<Typed>>),
    Call(Function, Vec<Typed>),
}

/// What a name in an expression stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum Binding {
    /// A column the engine supplies, with its type.
    Column(usize, Type),
    /// A constant (a parameter), kept as a scalar.
    Constant(Literal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckError {
    pub span: Span,
    pub message: String,
    /// What to do, where the message alone does not say.
    pub help: Option<&'static str>,
}

impl CheckError {
    /// The error at `located`'s expression, as the model reports errors.
    pub fn at(
        self,
        model: &crate::rules::Model,
        located: &crate::rules::Located,
    ) -> crate::error::Error {
        let e = model.expr_error(located, self.span, self.message);
        match self.help {
            Some(h) => e.with_help(h),
            None => e,
        }
    }
}

/// The help of an operator applied to values of the wrong types.
const TYPES_HELP: &str = "compare like with like: numbers with numbers, text with text in single quotes ('x'), dates with dates (date '2025-03-31')";

pub fn literal_type(lit: &Literal) -> Type {
    match lit {
        Literal::Int(_) => Type::Int,
        Literal::Float(_) => Type::Float,
        Literal::Str(_) => Type::Str,
        Literal::Bool(_) => Type::Bool,
        Literal::Null => Type::Null,
        Literal::Date(_) => Type::Date,
    }
}

/// Checks a condition (a cohort's `when`, a `where`): it must be true/false,
/// and a bare `null` is taken as a true/false that is never true.
pub fn check_condition(
    expr: &Expr,
    resolve: &dyn Fn(&str) -> Option<Binding>,
    unknown: &dyn Fn(&str) -> String,
    what: &str,
) -> Result<Typed, CheckError> {
    let typed = check(expr, resolve, unknown)?;
    match typed.ty {
        Type::Bool => Ok(typed),
        Type::Null => Ok(retype_null(typed, Type::Bool)),
        other => err(
            expr.span,
            format!(
                "{what} must be true or false, but this is {}: compare it with a value of its kind (e.g. `... >= 1`, `... = 'text'`)",
                other.a()
            ),
        ),
    }
}

/// Checks `expr`, resolving names with `resolve` (which returns `None` for an
/// unknown name; `unknown` then words the error, e.g. with a suggestion).
pub fn check(
    expr: &Expr,
    resolve: &dyn Fn(&str) -> Option<Binding>,
    unknown: &dyn Fn(&str) -> String,
) -> Result<Typed, CheckError> {
    Checker { resolve, unknown }.expr(expr)
}

struct Checker<'a> {
    resolve: &'a dyn Fn(&str) -> Option<Binding>,
    unknown: &'a dyn Fn(&str) -> String,
}

fn err<T>(span: Span, message: impl Into<String>) -> Result<T, CheckError> {
    Err(CheckError {
        span,
        message: message.into(),
        help: None,
    })
}

fn err_types<T>(span: Span, message: impl Into<String>) -> Result<T, CheckError> {
    Err(CheckError {
        span,
        message: message.into(),
        help: Some(TYPES_HELP),
    })
}

fn boxed(t: Typed) -> Box<Typed> {
    Box::new(t)
}

/// `or` of `tests` (at least one), as a balanced tree: `or` is associative
/// under SQL's three-valued logic, and a tree of a long `in` list's tests
/// is as deep as the logarithm of its length, where a chain would be as deep
/// as the list, and so would the recursion that evaluates it (2,000 values
/// overflowed a debug build's 2 MB thread stack).
fn any_of(mut tests: Vec<Typed>) -> Typed {
    while tests.len() > 1 {
        let mut paired = Vec::with_capacity(tests.len().div_ceil(2));
        let mut each = tests.into_iter();
        while let Some(a) = each.next() {
            paired.push(match each.next() {
                Some(b) => Typed {
                    node: Node::Or(boxed(a), boxed(b)),
                    ty: Type::Bool,
                },
                None => a,
            });
        }
        tests = paired;
    }
    tests.pop().expect("the parser requires at least one item")
}

/// Gives a bare `null` a type, recursively through `case`.
fn retype_null(t: Typed, ty: Type) -> Typed {
    if t.ty != Type::Null {
        return t;
    }
    let node = match t.node {
        Node::Case(whens, otherwise) => Node::Case(
            whens
                .into_iter()
                .map(|(c, v)| (c, retype_null(v, ty)))
                .collect(),
            otherwise.map(|o| boxed(retype_null(*o, ty))),
        ),
        Node::Call(f, args) => {
            Node::Call(f, args.into_iter().map(|a| retype_null(a, ty)).collect())
        }
        other => other,
    };
    Typed { node, ty }
}

fn widen(t: Typed) -> Typed {
    if t.ty == Type::Int {
        Typed {
            node: Node::ToFloat(boxed(t)),
            ty: Type::Float,
        }
    } else {
        t
    }
}

/// Brings two operands to one type, or says why they cannot be.
fn unify(a: Typed, b: Typed) -> Option<(Typed, Typed, Type)> {
    match (a.ty, b.ty) {
        // `null + null`, `null = null`: any type will do; the result is null.
        (Type::Null, Type::Null) => Some((
            retype_null(a, Type::Int),
            retype_null(b, Type::Int),
            Type::Int,
        )),
        (x, y) if x == y => Some((a, b, x)),
        (Type::Null, y) => Some((retype_null(a, y), b, y)),
        (x, Type::Null) => Some((a, retype_null(b, x), x)),
        (Type::Int, Type::Float) | (Type::Float, Type::Int) => {
            Some((widen(a), widen(b), Type::Float))
        }
        _ => None,
    }
}

fn unify_all(items: Vec<Typed>) -> Option<(Vec<Typed>, Type)> {
    let mut ty = Type::Null;
    for t in &items {
        ty = match (ty, t.ty) {
            (x, y) if x == y => x,
            (Type::Null, y) => y,
            (x, Type::Null) => x,
            (Type::Int, Type::Float) | (Type::Float, Type::Int) => Type::Float,
            _ => return None,
        };
    }
    let items = items
        .into_iter()
        .map(|t| {
            let t = retype_null(t, ty);
            if ty == Type::Float { widen(t) } else { t }
        })
        .collect();
    Some((items, ty))
}

impl Checker<'_> {
    fn expr(&self, e: &Expr) -> Result<Typed, CheckError> {
        match &e.kind {
            ExprKind::Literal(lit) => Ok(Typed {
                node: Node::Literal(lit.clone()),
                ty: literal_type(lit),
            }),
            ExprKind::Name(name) => match (self.resolve)(name) {
                Some(Binding::Column(slot, ty)) => Ok(Typed {
                    node: Node::Slot(slot),
                    ty,
                }),
                Some(Binding::Constant(lit)) => Ok(Typed {
                    ty: literal_type(&lit),
                    node: Node::Literal(lit),
                }),
                None => err(e.span, (self.unknown)(name)),
            },
            ExprKind::Unary(UnaryOp::Not, inner) => {
                let t = self.boolean(inner, "`not`")?;
                Ok(Typed {
                    node: Node::Not(boxed(t)),
                    ty: Type::Bool,
                })
            }
            ExprKind::Unary(UnaryOp::Neg, inner) => {
                let t = self.expr(inner)?;
                let t = retype_null(t, Type::Int);
                match t.ty {
                    Type::Int | Type::Float => Ok(Typed {
                        ty: t.ty,
                        node: Node::Neg(boxed(t)),
                    }),
                    other => err(inner.span, format!("cannot negate {}", other.a())),
                }
            }
            ExprKind::Binary(op, l, r) => self.binary(*op, l, r, e.span),
            ExprKind::IsNull { expr, negated } => {
                let t = self.expr(expr)?;
                Ok(Typed {
                    node: Node::IsNull(boxed(t), *negated),
                    ty: Type::Bool,
                })
            }
            ExprKind::InList {
                expr,
                list,
                negated,
            } => {
                // x in (a, b) is x = a or x = b, with SQL's null semantics.
                let equals = list
                    .iter()
                    .map(|item| self.binary(BinaryOp::Eq, expr, item, item.span))
                    .collect::<Result<Vec<_>, _>>()?;
                let any = any_of(equals);
                Ok(if *negated {
                    Typed {
                        node: Node::Not(boxed(any)),
                        ty: Type::Bool,
                    }
                } else {
                    any
                })
            }
            ExprKind::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let lo = self.binary(BinaryOp::GtEq, expr, low, low.span)?;
                let hi = self.binary(BinaryOp::LtEq, expr, high, high.span)?;
                let both = Typed {
                    node: Node::And(boxed(lo), boxed(hi)),
                    ty: Type::Bool,
                };
                Ok(if *negated {
                    Typed {
                        node: Node::Not(boxed(both)),
                        ty: Type::Bool,
                    }
                } else {
                    both
                })
            }
            ExprKind::Case { whens, otherwise } => {
                let mut conds = Vec::new();
                let mut values = Vec::new();
                for (c, v) in whens {
                    conds.push(self.boolean(c, "`when`")?);
                    values.push(self.expr(v)?);
                }
                let has_else = otherwise.is_some();
                if let Some(o) = otherwise {
                    values.push(self.expr(o)?);
                }
                let Some((mut values, ty)) = unify_all(values) else {
                    return err(e.span, "the branches of this `case` have different types");
                };
                let otherwise = has_else.then(|| boxed(values.pop().expect("else value")));
                Ok(Typed {
                    node: Node::Case(conds.into_iter().zip(values).collect(), otherwise),
                    ty,
                })
            }
            ExprKind::Call { function, args } => self.call(function, args, e.span),
        }
    }

    fn boolean(&self, e: &Expr, context: &str) -> Result<Typed, CheckError> {
        let t = self.expr(e)?;
        match t.ty {
            Type::Bool => Ok(t),
            Type::Null => Ok(retype_null(t, Type::Bool)),
            other => err(
                e.span,
                format!(
                    "{context} needs a true/false value, but this is {}",
                    other.a()
                ),
            ),
        }
    }

    fn binary(&self, op: BinaryOp, l: &Expr, r: &Expr, span: Span) -> Result<Typed, CheckError> {
        if matches!(op, BinaryOp::And | BinaryOp::Or) {
            let word = format!("`{}`", op.symbol());
            let (a, b) = (self.boolean(l, &word)?, self.boolean(r, &word)?);
            let node = if op == BinaryOp::And {
                Node::And(boxed(a), boxed(b))
            } else {
                Node::Or(boxed(a), boxed(b))
            };
            return Ok(Typed {
                node,
                ty: Type::Bool,
            });
        }
        let (a, b) = (self.expr(l)?, self.expr(r)?);
        let (a_ty, b_ty) = (a.ty, b.ty);
        let mismatch = || {
            err_types(
                span,
                format!(
                    "cannot apply `{}` to {} and {}",
                    op.symbol(),
                    a_ty.a(),
                    b_ty.a()
                ),
            )
        };
        let compare = match op {
            BinaryOp::Eq => Some(Compare::Eq),
            BinaryOp::NotEq => Some(Compare::NotEq),
            BinaryOp::Lt => Some(Compare::Lt),
            BinaryOp::LtEq => Some(Compare::LtEq),
            BinaryOp::Gt => Some(Compare::Gt),
            BinaryOp::GtEq => Some(Compare::GtEq),
            _ => None,
        };
        if let Some(cmp) = compare {
            let Some((a, b, _)) = unify(a, b) else {
                return mismatch();
            };
            return Ok(Typed {
                node: Node::Compare(cmp, boxed(a), boxed(b)),
                ty: Type::Bool,
            });
        }
        let arith = match op {
            BinaryOp::Add => Arith::Add,
            BinaryOp::Sub => Arith::Sub,
            BinaryOp::Mul => Arith::Mul,
            _ => Arith::Div,
        };
        // Date arithmetic: whole days.
        let ty = match (arith, a_ty, b_ty) {
            (Arith::Add | Arith::Sub, Type::Date, Type::Int) => Type::Date,
            (Arith::Add, Type::Int, Type::Date) => {
                return Ok(Typed {
                    node: Node::Arith(Arith::Add, boxed(b), boxed(a)),
                    ty: Type::Date,
                });
            }
            (Arith::Sub, Type::Date, Type::Date) => Type::Int,
            // A `null` beside a date reads as a number of days, as `1`
            // would there (`as_of - null` a date, as `as_of - 1`), or, with
            // a date taken from it, as a date (`null - as_of` days, as
            // `as_of - as_of`): the value is null either way.
            (Arith::Add | Arith::Sub, Type::Date, Type::Null) => {
                return Ok(Typed {
                    node: Node::Arith(arith, boxed(a), boxed(retype_null(b, Type::Int))),
                    ty: Type::Date,
                });
            }
            (Arith::Add, Type::Null, Type::Date) => {
                return Ok(Typed {
                    node: Node::Arith(Arith::Add, boxed(b), boxed(retype_null(a, Type::Int))),
                    ty: Type::Date,
                });
            }
            (Arith::Sub, Type::Null, Type::Date) => {
                return Ok(Typed {
                    node: Node::Arith(Arith::Sub, boxed(retype_null(a, Type::Date)), boxed(b)),
                    ty: Type::Int,
                });
            }
            _ => {
                let Some((a, b, ty)) = unify(a, b) else {
                    return mismatch();
                };
                return match ty {
                    Type::Int | Type::Float | Type::Null if arith == Arith::Div => Ok(Typed {
                        node: Node::Arith(
                            arith,
                            boxed(widen(retype_null(a, Type::Float))),
                            boxed(widen(retype_null(b, Type::Float))),
                        ),
                        ty: Type::Float,
                    }),
                    Type::Int | Type::Float | Type::Null => Ok(Typed {
                        node: Node::Arith(arith, boxed(a), boxed(b)),
                        ty,
                    }),
                    _ => err_types(
                        span,
                        format!("cannot apply `{}` to {ty} values", op.symbol()),
                    ),
                };
            }
        };
        Ok(Typed {
            node: Node::Arith(arith, boxed(a), boxed(b)),
            ty,
        })
    }

    /// `exp(x)`, `ln(x)`, `round(x)`, `round(x, digits)`: numbers in, a
    /// number out; `digits` must be a whole number written in the rule.
    fn numeric_call(
        &self,
        f: Function,
        name: &str,
        args: &[Expr],
        span: Span,
    ) -> Result<Typed, CheckError> {
        let (value, digits) = match (f, args) {
            (_, [x]) => (x, None),
            (Function::Round(_), [x, d]) => (x, Some(d)),
            _ => {
                let usage = if name == "round" {
                    "`round(x)` or `round(x, digits)`"
                } else {
                    "one argument"
                };
                return err(span, format!("`{name}` takes {usage}"));
            }
        };
        let f = match digits.map(|d| &d.kind) {
            None => f,
            Some(ExprKind::Literal(Literal::Int(n))) if (-15..=15).contains(n) => {
                Function::Round(*n as i32)
            }
            Some(_) => {
                return err(
                    digits.map_or(span, |d| d.span),
                    "the number of decimal places must be a whole number from -15 to 15 written in the rule",
                );
            }
        };
        let x = retype_null(self.expr(value)?, Type::Float);
        if !matches!(x.ty, Type::Int | Type::Float) {
            return err(
                value.span,
                format!("`{name}` needs a number, not {}", x.ty.a()),
            );
        }
        Ok(Typed {
            node: Node::Call(f, vec![widen(x)]),
            ty: Type::Float,
        })
    }

    /// `concat_ws(separator, text, ...)`: every argument text.
    fn concat_ws(&self, args: &[Expr], span: Span) -> Result<Typed, CheckError> {
        if args.len() < 2 {
            return err(
                span,
                "`concat_ws` needs a separator and at least one text to join",
            );
        }
        let mut typed = Vec::with_capacity(args.len());
        for a in args {
            let t = retype_null(self.expr(a)?, Type::Str);
            if t.ty != Type::Str {
                return err(a.span, format!("`concat_ws` joins text, not {}", t.ty.a()));
            }
            typed.push(t);
        }
        Ok(Typed {
            node: Node::Call(Function::ConcatWs, typed),
            ty: Type::Str,
        })
    }

    fn call(&self, function: &str, args: &[Expr], span: Span) -> Result<Typed, CheckError> {
        let f = match function {
            "coalesce" => Function::Coalesce,
            "least" => Function::Least,
            "greatest" => Function::Greatest,
            "abs" => Function::Abs,
            "exp" => Function::Exp,
            "ln" => Function::Ln,
            "round" => Function::Round(0),
            "concat_ws" => Function::ConcatWs,
            other => {
                return err(
                    span,
                    format!(
                        "unknown function `{other}` (known: coalesce, least, greatest, abs, exp, ln, round, concat_ws)"
                    ),
                );
            }
        };
        if f == Function::ConcatWs {
            return self.concat_ws(args, span);
        }
        if matches!(f, Function::Exp | Function::Ln | Function::Round(_)) {
            return self.numeric_call(f, function, args, span);
        }
        let typed = args
            .iter()
            .map(|a| self.expr(a))
            .collect::<Result<Vec<_>, _>>()?;
        if f == Function::Abs {
            let Ok([x]) = <[Typed; 1]>::try_from(typed) else {
                return err(span, "`abs` takes one argument");
            };
            // `abs(null)` is a null whole number, as `-null` is.
            let x = retype_null(x, Type::Int);
            let ty = x.ty;
            if !matches!(ty, Type::Int | Type::Float) {
                return err(span, format!("`abs` needs a number, not {}", ty.a()));
            }
            return Ok(Typed {
                node: Node::Call(f, vec![x]),
                ty,
            });
        }
        if typed.is_empty() {
            return err(span, format!("`{function}` needs at least one argument"));
        }
        let Some((typed, ty)) = unify_all(typed) else {
            return err(
                span,
                format!("the arguments of `{function}` have different types"),
            );
        };
        if f != Function::Coalesce && matches!(ty, Type::Bool) {
            return err(
                span,
                format!("`{function}` cannot compare true/false values"),
            );
        }
        Ok(Typed {
            node: Node::Call(f, typed),
            ty,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::expr::parse;

    fn env(name: &str) -> Option<Binding> {
        match name {
            "age" => Some(Binding::Column(0, Type::Int)),
            "score" => Some(Binding::Column(1, Type::Float)),
            "sex" => Some(Binding::Column(2, Type::Str)),
            "seen" => Some(Binding::Column(3, Type::Date)),
            "threshold" => Some(Binding::Constant(Literal::Int(5))),
            _ => None,
        }
    }

    fn ty(text: &str) -> Result<Type, String> {
        check(&parse(text).unwrap(), &env, &|n| {
            format!("unknown name `{n}`")
        })
        .map(|t| t.ty)
        .map_err(|e| e.message)
    }

    #[test]
    fn types_follow_sql() {
        assert_eq!(ty("age >= threshold and sex = 'F'"), Ok(Type::Bool));
        assert_eq!(ty("age + score"), Ok(Type::Float));
        assert_eq!(ty("age / 2"), Ok(Type::Float));
        assert_eq!(ty("age * 2"), Ok(Type::Int));
        assert_eq!(ty("seen + 30"), Ok(Type::Date));
        assert_eq!(ty("seen - date '2025-01-01'"), Ok(Type::Int));
        assert_eq!(ty("coalesce(score, 0)"), Ok(Type::Float));
        assert_eq!(ty("case when age > 5 then 'old' end"), Ok(Type::Str));
        assert_eq!(ty("age in (1, 2.5, null)"), Ok(Type::Bool));
        assert_eq!(ty("null"), Ok(Type::Null));
    }

    #[test]
    fn type_errors_say_what_met_what() {
        assert_eq!(
            ty("sex > 1"),
            Err("cannot apply `>` to a text value and an integer".into())
        );
        assert_eq!(
            ty("age and sex = 'F'"),
            Err("`and` needs a true/false value, but this is an integer".into())
        );
        assert_eq!(ty("agee > 1"), Err("unknown name `agee`".into()));
        assert!(
            ty("case when age > 1 then 1 else 'x' end")
                .unwrap_err()
                .contains("different types")
        );
        assert!(ty("median(age)").unwrap_err().contains("unknown function"));
    }
}
