//! Splits expression text into tokens, keeping each token's byte span so that
//! errors can point at the exact text in the rule file.

use super::{ParseError, Span};

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    Int(i64),
    Float(f64),
    Str(String),
    /// A name or keyword, as written; keywords are matched case-insensitively
    /// by the parser, as SQL does.
    Word(String),
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

pub fn tokenize(text: &str) -> Result<Vec<(Token, Span)>, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let token = match c {
            b'(' => {
                i += 1;
                Token::LParen
            }
            b')' => {
                i += 1;
                Token::RParen
            }
            b',' => {
                i += 1;
                Token::Comma
            }
            b'+' => {
                i += 1;
                Token::Plus
            }
            b'-' => {
                i += 1;
                Token::Minus
            }
            b'*' => {
                i += 1;
                Token::Star
            }
            b'/' => {
                i += 1;
                Token::Slash
            }
            b'=' => {
                // `==` is accepted as a courtesy to programmers; it means `=`.
                i += if bytes.get(i + 1) == Some(&b'=') {
                    2
                } else {
                    1
                };
                Token::Eq
            }
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                i += 2;
                Token::NotEq
            }
            b'<' => match bytes.get(i + 1) {
                Some(b'=') => {
                    i += 2;
                    Token::LtEq
                }
                Some(b'>') => {
                    i += 2;
                    Token::NotEq
                }
                _ => {
                    i += 1;
                    Token::Lt
                }
            },
            b'>' => {
                if bytes.get(i + 1) == Some(&b'=') {
                    i += 2;
                    Token::GtEq
                } else {
                    i += 1;
                    Token::Gt
                }
            }
            b'\'' => {
                let (s, end) = string_literal(text, i)?;
                i = end;
                Token::Str(s)
            }
            b'0'..=b'9' | b'.' => {
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                    i += 1;
                }
                let lexeme = &text[start..i];
                let span = Span { start, end: i };
                if lexeme.contains('.') {
                    lexeme.parse().map(Token::Float).map_err(|_| ParseError {
                        span,
                        message: format!("`{lexeme}` is not a number"),
                    })?
                } else {
                    lexeme.parse().map(Token::Int).map_err(|_| ParseError {
                        span,
                        message: format!("`{lexeme}` is too large for a 64-bit integer"),
                    })?
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                Token::Word(text[start..i].to_string())
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                let hint = if ch == '"' {
                    " (strings are written in single quotes, as in SQL: 'emergency')"
                } else {
                    ""
                };
                return Err(ParseError {
                    span: Span {
                        start,
                        end: start + ch.len_utf8(),
                    },
                    message: format!("unexpected character `{ch}`{hint}"),
                });
            }
        };
        out.push((token, Span { start, end: i }));
    }
    Ok(out)
}

/// A single-quoted SQL string; a doubled quote stands for one quote.
fn string_literal(text: &str, start: usize) -> Result<(String, usize), ParseError> {
    let mut value = String::new();
    let mut chars = text[start + 1..].char_indices();
    while let Some((off, ch)) = chars.next() {
        if ch == '\'' {
            if text[start + 1 + off + 1..].starts_with('\'') {
                value.push('\'');
                chars.next();
            } else {
                return Ok((value, start + 1 + off + 1));
            }
        } else {
            value.push(ch);
        }
    }
    Err(ParseError {
        span: Span {
            start,
            end: text.len(),
        },
        message: "string is not closed: add a `'` at its end".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Token> {
        tokenize(text)
            .unwrap()
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    #[test]
    fn operators_and_literals() {
        assert_eq!(
            kinds("a<>1 and b<=2.5 or c!='x''y'"),
            vec![
                Token::Word("a".into()),
                Token::NotEq,
                Token::Int(1),
                Token::Word("and".into()),
                Token::Word("b".into()),
                Token::LtEq,
                Token::Float(2.5),
                Token::Word("or".into()),
                Token::Word("c".into()),
                Token::NotEq,
                Token::Str("x'y".into()),
            ]
        );
    }

    #[test]
    fn spans_point_at_text() {
        let toks = tokenize("  ae_12m >= 5").unwrap();
        assert_eq!(toks[0].1, Span { start: 2, end: 8 });
        assert_eq!(toks[1].1, Span { start: 9, end: 11 });
    }

    #[test]
    fn errors_are_positioned_and_helpful() {
        let e = tokenize("sex = \"F\"").unwrap_err();
        assert_eq!(e.span.start, 6);
        assert!(e.message.contains("single quotes"), "{}", e.message);
        let e = tokenize("x = 'open").unwrap_err();
        assert!(e.message.contains("not closed"));
    }
}
