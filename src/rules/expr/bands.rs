//! Band chains: ordered, named bands over a score, written the way sources
//! state them, with every boundary's side explicit:
//!
//! ```text
//! low < 5 <= intermediate <= 15 < high
//! ```
//!
//! reads "low below 5; intermediate from 5 to 15 inclusive; high above 15".
//! Each boundary has an operator on each side, and exactly one of the two
//! includes it (`< 5 <=` puts 5 in the band above, `<= 5 <` in the band
//! below), so no value can fall in two bands or in none.

use super::lexer::{Token, tokenize};
use super::{ParseError, Span};

/// A boundary value as written: a number or a parameter's name.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    Number(f64),
    Param(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Boundary {
    pub value: Bound,
    pub span: Span,
    /// True when the boundary value itself belongs to the band below it.
    pub in_lower: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bands {
    /// Band names, lowest first; one more than the boundaries.
    pub names: Vec<(String, Span)>,
    pub boundaries: Vec<Boundary>,
}

pub fn parse_bands(text: &str) -> Result<Bands, ParseError> {
    let tokens = tokenize(text)?;
    let mut it = tokens.into_iter().peekable();
    let end = Span {
        start: text.len(),
        end: text.len(),
    };
    let fail = |span: Span, message: &str| ParseError {
        span,
        message: message.to_string(),
    };
    let name = |t: Option<(Token, Span)>| match t {
        Some((Token::Word(w), s)) => Ok((w, s)),
        Some((_, s)) => Err(fail(s, "expected a band name")),
        None => Err(fail(end, "expected a band name but the bands ended")),
    };
    let less = |t: Option<(Token, Span)>| match t {
        Some((Token::Lt, _)) => Ok(false),
        Some((Token::LtEq, _)) => Ok(true),
        Some((_, s)) => Err(fail(
            s,
            "expected `<` or `<=` between a band and a boundary",
        )),
        None => Err(fail(end, "expected `<` or `<=` but the bands ended")),
    };
    let mut bands = Bands {
        names: vec![name(it.next())?],
        boundaries: Vec::new(),
    };
    while it.peek().is_some() {
        let below_includes = less(it.next())?;
        let (value, span) = match it.next() {
            Some((Token::Int(v), s)) => (Bound::Number(v as f64), s),
            Some((Token::Float(v), s)) => (Bound::Number(v), s),
            Some((Token::Minus, s)) => match it.next() {
                Some((Token::Int(v), e)) => (
                    Bound::Number(-(v as f64)),
                    Span {
                        start: s.start,
                        end: e.end,
                    },
                ),
                Some((Token::Float(v), e)) => (
                    Bound::Number(-v),
                    Span {
                        start: s.start,
                        end: e.end,
                    },
                ),
                _ => return Err(fail(s, "expected a number after `-`")),
            },
            Some((Token::Word(w), s)) => (Bound::Param(w), s),
            Some((_, s)) => return Err(fail(s, "expected a boundary: a number or a parameter")),
            None => return Err(fail(end, "expected a boundary but the bands ended")),
        };
        let above_includes = less(it.next())?;
        if below_includes == above_includes {
            let message = if below_includes {
                "this boundary is in both bands: write `<= b <` or `< b <=`"
            } else {
                "this boundary is in neither band: write `<= b <` or `< b <=`"
            };
            return Err(fail(span, message));
        }
        bands.boundaries.push(Boundary {
            value,
            span,
            in_lower: below_includes,
        });
        bands.names.push(name(it.next())?);
    }
    if bands.boundaries.is_empty() {
        return Err(fail(
            end,
            "bands need at least two names and a boundary, e.g. `low < 5 <= high`",
        ));
    }
    Ok(bands)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hfrs_bands() {
        let b = parse_bands("low < 5 <= intermediate <= 15 < high").unwrap();
        let names: Vec<&str> = b.names.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["low", "intermediate", "high"]);
        assert_eq!(b.boundaries[0].value, Bound::Number(5.0));
        assert!(!b.boundaries[0].in_lower);
        assert!(b.boundaries[1].in_lower);
        assert_eq!(b.boundaries[1].span, Span { start: 27, end: 29 });
    }

    #[test]
    fn params_and_negative_numbers() {
        let b = parse_bands("fit <= fit_max < mild <= -0.5 < x").unwrap();
        assert_eq!(b.boundaries[0].value, Bound::Param("fit_max".into()));
        assert_eq!(b.boundaries[1].value, Bound::Number(-0.5));
    }

    #[test]
    fn ambiguous_or_incomplete_chains_are_refused() {
        let e = parse_bands("low < 5 < high").unwrap_err();
        assert!(e.message.contains("neither band"), "{}", e.message);
        assert_eq!(e.span, Span { start: 6, end: 7 });
        assert!(
            parse_bands("low <= 5 <= high")
                .unwrap_err()
                .message
                .contains("both bands")
        );
        assert!(
            parse_bands("low")
                .unwrap_err()
                .message
                .contains("at least two")
        );
        assert!(
            parse_bands("low < 5 <=")
                .unwrap_err()
                .message
                .contains("ended")
        );
        assert!(
            parse_bands("low = 5 < high")
                .unwrap_err()
                .message
                .contains("`<` or `<=`")
        );
    }
}
