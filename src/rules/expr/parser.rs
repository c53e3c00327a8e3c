//! Recursive-descent parser for the expression language, with SQL's operator
//! precedence: `or` < `and` < `not` < comparisons (`=`, `<`, `is null`, `in`,
//! `between`) < `+ -` < `* /` < unary minus.

use super::lexer::{Token, tokenize};
use super::{BinaryOp, Expr, ExprKind, Literal, ParseError, Span, UnaryOp};

const RESERVED: &[&str] = &[
    "and", "or", "not", "is", "null", "in", "between", "case", "when", "then", "else", "end",
    "true", "false",
];

/// Parses one complete expression.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(text)?;
    // A bound on the tree's size, so that even dropping it cannot recurse
    // deeply; rules are a few dozen words.
    if tokens.len() > MAX_TOKENS {
        return Err(ParseError {
            span: Span {
                start: 0,
                end: text.len(),
            },
            message: format!("expression is too long (more than {MAX_TOKENS} words and symbols)"),
        });
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        text_len: text.len(),
        depth: 0,
    };
    if p.tokens.is_empty() {
        return Err(ParseError {
            span: Span { start: 0, end: 0 },
            message: "expression is empty".to_string(),
        });
    }
    let expr = p.or()?;
    // Chains (`a + b + c ...`) deepen the tree without deepening the
    // parser's recursion: bounded here, for the checker and evaluator.
    if depth(&expr) > MAX_DEPTH {
        return Err(ParseError {
            span: expr.span,
            message: format!("expression is more than {MAX_DEPTH} operations deep"),
        });
    }
    if let Some((_, span)) = p.tokens.get(p.pos) {
        return Err(ParseError {
            span: *span,
            message: "unexpected text after the end of the expression (a missing `and`/`or`?)"
                .to_string(),
        });
    }
    Ok(expr)
}

struct Parser {
    tokens: Vec<(Token, Span)>,
    pos: usize,
    text_len: usize,
    /// How deep the parser has recursed: brackets, `not`, `-`, `case` and
    /// calls nest, and an expression nested without limit would overflow
    /// the stack (found by fuzzing).
    depth: usize,
}

/// The deepest nesting an expression may have, and the deepest tree (long
/// chains such as `a + b + c + ...` nest too): far beyond any rule, far
/// below what the stack holds.
const MAX_NESTING: usize = 50;
const MAX_DEPTH: usize = 500;
const MAX_TOKENS: usize = 5000;

/// The depth of a tree, one level per operator or call; without
/// recursion, since it is what guards the recursive passes.
fn depth(root: &Expr) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Expr, usize)> = vec![(root, 1)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        stack.extend(e.children().into_iter().map(|c| (c, d + 1)));
    }
    deepest
}

fn join(a: Span, b: Span) -> Span {
    Span {
        start: a.start,
        end: b.end,
    }
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn span_here(&self) -> Span {
        self.tokens.get(self.pos).map(|(_, s)| *s).unwrap_or(Span {
            start: self.text_len,
            end: self.text_len,
        })
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        if self.is_keyword(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &Token, what: &str) -> Result<Span, ParseError> {
        let span = self.span_here();
        if self.eat(token) {
            Ok(span)
        } else {
            Err(self.error(format!("expected {what}")))
        }
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<Span, ParseError> {
        let span = self.span_here();
        if self.eat_keyword(kw) {
            Ok(span)
        } else {
            Err(self.error(format!("expected `{kw}`")))
        }
    }

    fn error(&self, message: String) -> ParseError {
        let found = match self.tokens.get(self.pos) {
            None => " but the expression ended: finish it".to_string(),
            Some(_) => String::new(),
        };
        ParseError {
            span: self.span_here(),
            message: format!("{message}{found}"),
        }
    }

    /// Counts one level of recursion; refuses to go past [`MAX_NESTING`].
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error(format!(
                "expression nested more than {MAX_NESTING} levels deep"
            )));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let result = self.or_chain();
        self.depth -= 1;
        result
    }

    fn or_chain(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.eat_keyword("or") {
            let right = self.and()?;
            left = binary(BinaryOp::Or, left, right);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        while self.eat_keyword("and") {
            let right = self.not()?;
            left = binary(BinaryOp::And, left, right);
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        let start = self.span_here();
        if self.eat_keyword("not") {
            self.enter()?;
            let inner = self.not();
            self.depth -= 1;
            let inner = inner?;
            let span = join(start, inner.span);
            return Ok(Expr {
                kind: ExprKind::Unary(UnaryOp::Not, Box::new(inner)),
                span,
            });
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr, ParseError> {
        let left = self.additive()?;
        let op = match self.peek() {
            Some(Token::Eq) => Some(BinaryOp::Eq),
            Some(Token::NotEq) => Some(BinaryOp::NotEq),
            Some(Token::Lt) => Some(BinaryOp::Lt),
            Some(Token::LtEq) => Some(BinaryOp::LtEq),
            Some(Token::Gt) => Some(BinaryOp::Gt),
            Some(Token::GtEq) => Some(BinaryOp::GtEq),
            _ => None,
        };
        if let Some(op) = op {
            self.pos += 1;
            let right = self.additive()?;
            return Ok(binary(op, left, right));
        }
        if self.eat_keyword("is") {
            let negated = self.eat_keyword("not");
            let end = self.expect_keyword("null")?;
            let span = join(left.span, end);
            return Ok(Expr {
                kind: ExprKind::IsNull {
                    expr: Box::new(left),
                    negated,
                },
                span,
            });
        }
        let negated = if self.is_keyword("not")
            && matches!(self.tokens.get(self.pos + 1), Some((Token::Word(w), _))
                if w.eq_ignore_ascii_case("in") || w.eq_ignore_ascii_case("between"))
        {
            self.pos += 1;
            true
        } else {
            false
        };
        if self.eat_keyword("in") {
            self.expect(&Token::LParen, "`(` after `in`")?;
            let mut list = vec![self.additive()?];
            while self.eat(&Token::Comma) {
                list.push(self.additive()?);
            }
            let end = self.expect(&Token::RParen, "`,` or `)` in the `in` list")?;
            let span = join(left.span, end);
            return Ok(Expr {
                kind: ExprKind::InList {
                    expr: Box::new(left),
                    list,
                    negated,
                },
                span,
            });
        }
        if self.eat_keyword("between") {
            let low = self.additive()?;
            self.expect_keyword("and")?;
            let high = self.additive()?;
            let span = join(left.span, high.span);
            return Ok(Expr {
                kind: ExprKind::Between {
                    expr: Box::new(left),
                    low: Box::new(low),
                    high: Box::new(high),
                    negated,
                },
                span,
            });
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Some(Token::Plus) => BinaryOp::Add,
                Some(Token::Minus) => BinaryOp::Sub,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.multiplicative()?;
            left = binary(op, left, right);
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Token::Star) => BinaryOp::Mul,
                Some(Token::Slash) => BinaryOp::Div,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.unary()?;
            left = binary(op, left, right);
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let start = self.span_here();
        if self.eat(&Token::Minus) {
            self.enter()?;
            let inner = self.unary();
            self.depth -= 1;
            let inner = inner?;
            let span = join(start, inner.span);
            // Fold negative literals so `-5` is a constant, not an operation.
            let kind = match inner.kind {
                ExprKind::Literal(Literal::Int(v)) => ExprKind::Literal(Literal::Int(-v)),
                ExprKind::Literal(Literal::Float(v)) => ExprKind::Literal(Literal::Float(-v)),
                other => ExprKind::Unary(
                    UnaryOp::Neg,
                    Box::new(Expr {
                        kind: other,
                        span: inner.span,
                    }),
                ),
            };
            return Ok(Expr { kind, span });
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let Some((token, span)) = self.tokens.get(self.pos).cloned() else {
            return Err(self.error("expected a value".to_string()));
        };
        let literal = |lit| {
            Ok(Expr {
                kind: ExprKind::Literal(lit),
                span,
            })
        };
        match token {
            Token::Int(v) => {
                self.pos += 1;
                literal(Literal::Int(v))
            }
            Token::Float(v) => {
                self.pos += 1;
                literal(Literal::Float(v))
            }
            Token::Str(s) => {
                self.pos += 1;
                literal(Literal::Str(s))
            }
            Token::LParen => {
                self.pos += 1;
                let inner = self.or()?;
                let end = self.expect(&Token::RParen, "`)`")?;
                Ok(Expr {
                    kind: inner.kind,
                    span: join(span, end),
                })
            }
            Token::Word(word) => {
                self.pos += 1;
                let lower = word.to_ascii_lowercase();
                match lower.as_str() {
                    "true" => return literal(Literal::Bool(true)),
                    "false" => return literal(Literal::Bool(false)),
                    "null" => return literal(Literal::Null),
                    "case" => return self.case(span),
                    "date" => {
                        if let Some((Token::Str(s), s_span)) = self.tokens.get(self.pos).cloned() {
                            self.pos += 1;
                            let date = crate::dates::parse_date(&s).ok_or(ParseError {
                                span: s_span,
                                message: format!("`{s}` is not a date: write date 'YYYY-MM-DD'"),
                            })?;
                            return Ok(Expr {
                                kind: ExprKind::Literal(Literal::Date(date)),
                                span: join(span, s_span),
                            });
                        }
                    }
                    _ => {}
                }
                if RESERVED.contains(&lower.as_str()) {
                    return Err(ParseError {
                        span,
                        message: format!("expected a value, found the keyword `{word}`"),
                    });
                }
                if self.eat(&Token::LParen) {
                    let mut args = Vec::new();
                    if !self.eat(&Token::RParen) {
                        args.push(self.or()?);
                        while self.eat(&Token::Comma) {
                            args.push(self.or()?);
                        }
                        self.expect(&Token::RParen, "`,` or `)` after a function argument")?;
                    }
                    let end = self.tokens[self.pos - 1].1;
                    return Ok(Expr {
                        kind: ExprKind::Call {
                            function: lower,
                            args,
                        },
                        span: join(span, end),
                    });
                }
                Ok(Expr {
                    kind: ExprKind::Name(word),
                    span,
                })
            }
            _ => Err(self.error("expected a value".to_string())),
        }
    }

    fn case(&mut self, start: Span) -> Result<Expr, ParseError> {
        let mut whens = Vec::new();
        while self.eat_keyword("when") {
            let cond = self.or()?;
            self.expect_keyword("then")?;
            let value = self.or()?;
            whens.push((cond, value));
        }
        if whens.is_empty() {
            return Err(self.error("expected `when` after `case`".to_string()));
        }
        let otherwise = if self.eat_keyword("else") {
            Some(Box::new(self.or()?))
        } else {
            None
        };
        let end = self.expect_keyword("end")?;
        Ok(Expr {
            kind: ExprKind::Case { whens, otherwise },
            span: join(start, end),
        })
    }
}

fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    let span = join(left.span, right.span);
    Expr {
        kind: ExprKind::Binary(op, Box::new(left), Box::new(right)),
        span,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders a tree in fully parenthesised form, to check precedence.
    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Literal(Literal::Int(v)) => v.to_string(),
            ExprKind::Literal(Literal::Float(v)) => v.to_string(),
            ExprKind::Literal(Literal::Str(s)) => format!("'{s}'"),
            ExprKind::Literal(Literal::Bool(b)) => b.to_string(),
            ExprKind::Literal(Literal::Null) => "null".into(),
            ExprKind::Literal(Literal::Date(d)) => format!("date '{d}'"),
            ExprKind::Name(n) => n.clone(),
            ExprKind::Unary(UnaryOp::Not, e) => format!("(not {})", show(e)),
            ExprKind::Unary(UnaryOp::Neg, e) => format!("(-{})", show(e)),
            ExprKind::Binary(op, l, r) => format!("({} {} {})", show(l), op.symbol(), show(r)),
            ExprKind::IsNull { expr, negated } => {
                format!(
                    "({} is {}null)",
                    show(expr),
                    if *negated { "not " } else { "" }
                )
            }
            ExprKind::InList {
                expr,
                list,
                negated,
            } => format!(
                "({} {}in [{}])",
                show(expr),
                if *negated { "not " } else { "" },
                list.iter().map(show).collect::<Vec<_>>().join(", ")
            ),
            ExprKind::Between {
                expr,
                low,
                high,
                negated,
            } => format!(
                "({} {}between {} and {})",
                show(expr),
                if *negated { "not " } else { "" },
                show(low),
                show(high)
            ),
            ExprKind::Case { whens, otherwise } => {
                let mut s = "(case".to_string();
                for (c, v) in whens {
                    s += &format!(" when {} then {}", show(c), show(v));
                }
                if let Some(o) = otherwise {
                    s += &format!(" else {}", show(o));
                }
                s + " end)"
            }
            ExprKind::Call { function, args } => format!(
                "{function}({})",
                args.iter().map(show).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    fn p(text: &str) -> String {
        show(&parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}")))
    }

    #[test]
    fn sql_precedence() {
        assert_eq!(p("a or b and not c"), "(a or (b and (not c)))");
        assert_eq!(p("a + b * c >= 5"), "((a + (b * c)) >= 5)");
        assert_eq!(p("not a = 1"), "(not (a = 1))");
        assert_eq!(p("a - b - c"), "((a - b) - c)");
        assert_eq!(p("-x * 2"), "((-x) * 2)");
        assert_eq!(p("-5 + 1"), "(-5 + 1)");
    }

    #[test]
    fn predicates_and_case() {
        assert_eq!(p("x IS NOT NULL"), "(x is not null)");
        assert_eq!(p("sex not in ('F', 'U')"), "(sex not in ['F', 'U'])");
        assert_eq!(
            p("age between 18 and 64 and y"),
            "((age between 18 and 64) and y)"
        );
        assert_eq!(
            p("case when a > 1 then 'hi' else 'lo' end"),
            "(case when (a > 1) then 'hi' else 'lo' end)"
        );
        assert_eq!(p("coalesce(a, 0) + 1"), "(coalesce(a, 0) + 1)");
        assert_eq!(p("d <= date '2025-03-31'"), "(d <= date '2025-03-31')");
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse("age >= ").unwrap_err();
        assert_eq!(e.span.start, 7);
        assert!(e.message.contains("ended"), "{}", e.message);
        let e = parse("a b").unwrap_err();
        assert_eq!(e.span, Span { start: 2, end: 3 });
        let e = parse("a and or b").unwrap_err();
        assert!(e.message.contains("keyword `or`"), "{}", e.message);
        let e = parse("x in (1, 2").unwrap_err();
        assert!(e.message.contains("`)`"), "{}", e.message);
        let e = parse("d > date '2025-02-30'").unwrap_err();
        assert!(e.message.contains("not a date"));
    }

    #[test]
    fn nesting_is_bounded_not_a_stack_overflow() {
        // Found by fuzzing: 4,000 brackets overflowed the stack.
        for text in [
            format!("{}1{}", "(".repeat(2400), ")".repeat(2400)),
            format!("{}x", "not ".repeat(4000)),
            format!("{}1", "-".repeat(4000)),
        ] {
            let e = parse(&text).unwrap_err();
            assert!(
                e.message.contains("nested more than 50 levels"),
                "{}",
                e.message
            );
        }
        // Rules as people write them are far inside the limit.
        let nested = format!("{}1{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&nested).is_ok());
    }

    #[test]
    fn long_chains_are_bounded() {
        let chain = vec!["x"; 2000].join(" + ");
        assert!(
            parse(&chain)
                .unwrap_err()
                .message
                .contains("more than 500 operations deep")
        );
        assert!(parse(&vec!["x"; 300].join(" + ")).is_ok());
        // Longer still is refused before a tree is built at all.
        let long = vec!["x"; 100_000].join(" + ");
        assert!(parse(&long).unwrap_err().message.contains("too long"));
    }
}
