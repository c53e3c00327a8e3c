//! The expression language of rule files: a small, SQL-compatible subset.
//!
//! Cohort conditions, derived features and event filters are written as
//! expressions such as `age >= 18 and ae_12m >= hiu_threshold`. The syntax
//! and semantics follow SQL (three-valued logic, `in`, `case when`, `is null`)
//! because a later backend compiles rule files to Spark SQL: an expression
//! must mean the same thing there. This module holds the syntax tree; the
//! hand-written lexer and parser sit beside it, type checking is in
//! [`crate::rules::check`], evaluation over Arrow arrays in
//! [`crate::engine::eval`].

pub mod bands;
mod lexer;
mod parser;

pub use bands::parse_bands;
pub use parser::parse;

/// Byte range within the expression text, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Null,
    /// `date '2025-03-31'`
    Date(chrono::NaiveDate),
}

/// As it would be written in a rule: `5`, `0.5`, `'text'`, `date '2025-03-31'`.
impl std::fmt::Display for Literal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Literal::Int(v) => write!(f, "{v}"),
            Literal::Float(v) => write!(f, "{v:?}"),
            Literal::Str(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
            Literal::Date(d) => write!(f, "date '{d}'"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    And,
    Or,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Literal(Literal),
    /// A feature, parameter, population attribute or (in event filters) a
    /// source column.
    Name(String),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    Case {
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Call {
        function: String,
        args: Vec<Expr>,
    },
}

impl Expr {
    /// True when both are the same expression, wherever each was written.
    pub fn same_as(&self, other: &Expr) -> bool {
        self.unspanned() == other.unspanned()
    }

    /// A copy with every span zeroed.
    fn unspanned(&self) -> Expr {
        let b = |e: &Expr| Box::new(e.unspanned());
        let kind = match &self.kind {
            ExprKind::Literal(_) | ExprKind::Name(_) => self.kind.clone(),
            ExprKind::Unary(op, e) => ExprKind::Unary(*op, b(e)),
            ExprKind::Binary(op, l, r) => ExprKind::Binary(*op, b(l), b(r)),
            ExprKind::IsNull { expr, negated } => ExprKind::IsNull {
                expr: b(expr),
                negated: *negated,
            },
            ExprKind::InList {
                expr,
                list,
                negated,
            } => ExprKind::InList {
                expr: b(expr),
                list: list.iter().map(Expr::unspanned).collect(),
                negated: *negated,
            },
            ExprKind::Between {
                expr,
                low,
                high,
                negated,
            } => ExprKind::Between {
                expr: b(expr),
                low: b(low),
                high: b(high),
                negated: *negated,
            },
            ExprKind::Case { whens, otherwise } => ExprKind::Case {
                whens: whens
                    .iter()
                    .map(|(c, v)| (c.unspanned(), v.unspanned()))
                    .collect(),
                otherwise: otherwise.as_ref().map(|o| b(o)),
            },
            ExprKind::Call { function, args } => ExprKind::Call {
                function: function.clone(),
                args: args.iter().map(Expr::unspanned).collect(),
            },
        };
        Expr {
            kind,
            span: Span { start: 0, end: 0 },
        }
    }

    /// Every name the expression refers to, in order of appearance.
    pub fn names(&self) -> Vec<(&str, Span)> {
        let mut out = Vec::new();
        self.visit(&mut |e| {
            if let ExprKind::Name(n) = &e.kind {
                out.push((n.as_str(), e.span));
            }
        });
        out
    }

    /// Every expression of the tree, this one first, then each child's
    /// tree in the order written.
    pub fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        f(self);
        self.children().into_iter().for_each(|c| c.visit(f));
    }

    /// The expressions this one is made of, in the order written.
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            ExprKind::Literal(_) | ExprKind::Name(_) => Vec::new(),
            ExprKind::Unary(_, e) | ExprKind::IsNull { expr: e, .. } => vec![e],
            ExprKind::Binary(_, l, r) => vec![l, r],
            ExprKind::InList { expr, list, .. } => std::iter::once(&**expr).chain(list).collect(),
            ExprKind::Between {
                expr, low, high, ..
            } => vec![expr, low, high],
            ExprKind::Case { whens, otherwise } => whens
                .iter()
                .flat_map(|(c, v)| [c, v])
                .chain(otherwise.as_deref())
                .collect(),
            ExprKind::Call { args, .. } => args.iter().collect(),
        }
    }
}

/// A syntax error, positioned within the expression text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub span: Span,
    pub message: String,
}
