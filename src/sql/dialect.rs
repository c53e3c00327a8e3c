//! What differs between the SQL dialects strata compiles to: quoting,
//! literals, date arithmetic, lists and a few functions. Everything else
//! the compiler writes is the SQL both share, so a construct is spelled
//! differently here or nowhere.

/// A SQL engine strata compiles rule files for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// DuckDB 1.x and later.
    DuckDb,
    /// Spark SQL 3.x and later (Databricks, the Federated Data Platform),
    /// with or without ANSI mode.
    Spark,
}

impl Target {
    pub fn parse(text: &str) -> Option<Target> {
        match text.trim().to_ascii_lowercase().as_str() {
            "duckdb" => Some(Target::DuckDb),
            "spark" => Some(Target::Spark),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::DuckDb => "DuckDB",
            Target::Spark => "Spark SQL",
        }
    }

    /// A quoted identifier.
    pub fn ident(self, name: &str) -> String {
        match self {
            Target::DuckDb => format!("\"{}\"", name.replace('"', "\"\"")),
            Target::Spark => format!("`{}`", name.replace('`', "``")),
        }
    }

    pub fn text_type(self) -> &'static str {
        match self {
            Target::DuckDb => "VARCHAR",
            Target::Spark => "STRING",
        }
    }

    /// A text literal. Spark reads backslashes in literals as escapes,
    /// takes two quotes as two literals side by side, and substitutes
    /// `${...}` before parsing, so there the three are escaped with a
    /// backslash (`$` as `\u0024`).
    pub fn string(self, text: &str) -> String {
        match self {
            Target::DuckDb => format!("'{}'", text.replace('\'', "''")),
            Target::Spark => format!(
                "'{}'",
                text.replace('\\', "\\\\")
                    .replace('\'', "\\'")
                    .replace('$', "\\u0024")
            ),
        }
    }

    /// Settings the script starts with.
    pub fn preamble(self) -> &'static str {
        match self {
            Target::DuckDb => "",
            // No `${...}` substitution in the script's text.
            Target::Spark => "SET spark.sql.variable.substitute = false;\n\n",
        }
    }

    /// A floating-point literal (a bare `0.5` is a decimal in both).
    pub fn double(self, value: f64) -> String {
        match self {
            Target::DuckDb => format!("CAST({value:?} AS DOUBLE)"),
            Target::Spark => format!("{value:?}D"),
        }
    }

    /// `date + days` (days a whole number).
    pub fn add_days(self, date: &str, days: &str) -> String {
        match self {
            Target::DuckDb => format!("({date} + CAST({days} AS INTEGER))"),
            Target::Spark => format!("date_add({date}, CAST({days} AS INT))"),
        }
    }

    /// `date - days`.
    pub fn sub_days(self, date: &str, days: &str) -> String {
        match self {
            Target::DuckDb => format!("({date} - CAST({days} AS INTEGER))"),
            Target::Spark => format!("date_sub({date}, CAST({days} AS INT))"),
        }
    }

    /// Whole days from `b` to `a`, as a BIGINT.
    pub fn days_between(self, a: &str, b: &str) -> String {
        match self {
            Target::DuckDb => format!("CAST({a} - {b} AS BIGINT)"),
            Target::Spark => format!("CAST(datediff({a}, {b}) AS BIGINT)"),
        }
    }

    /// An expression that stops the query with `message` (an error a user
    /// must act on, such as a value strata would refuse).
    pub fn fail(self, message: &str) -> String {
        match self {
            Target::DuckDb => format!("error({})", self.string(message)),
            Target::Spark => format!("raise_error({})", self.string(message)),
        }
    }

    /// A number for each row of a table, unique within it.
    pub fn row_id(self) -> &'static str {
        match self {
            Target::DuckDb => "row_number() OVER ()",
            Target::Spark => "monotonically_increasing_id()",
        }
    }

    /// One row per element of a list, in a SELECT list.
    pub fn unnest(self, list: &str) -> String {
        match self {
            Target::DuckDb => format!("unnest({list})"),
            Target::Spark => format!("explode({list})"),
        }
    }

    /// The first `n` elements of a list.
    pub fn first_of(self, list: &str, n: usize) -> String {
        match self {
            Target::DuckDb => format!("list_slice({list}, 1, {n})"),
            Target::Spark => format!("slice({list}, 1, {n})"),
        }
    }

    /// A list of the given elements.
    pub fn list(self, items: &[String]) -> String {
        match self {
            Target::DuckDb => format!("[{}]", items.join(", ")),
            Target::Spark => format!("array({})", items.join(", ")),
        }
    }

    /// `text` without the ASCII whitespace around it, as strata trims codes
    /// (SQL's plain `trim` removes spaces only).
    pub fn trim_code(self, text: &str) -> String {
        match self {
            Target::DuckDb => {
                format!("trim({text}, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13))")
            }
            Target::Spark => format!("trim(BOTH ' \\t\\n\\u000B\\u000C\\r' FROM {text})"),
        }
    }

    /// The length of `text` in bytes (UTF-8).
    pub fn byte_length(self, text: &str) -> String {
        match self {
            Target::DuckDb => format!("strlen({text})"),
            Target::Spark => format!("octet_length({text})"),
        }
    }

    /// `text` with every character that is not an ASCII letter or digit
    /// removed.
    pub fn alphanumeric(self, text: &str) -> String {
        match self {
            Target::DuckDb => format!("regexp_replace({text}, '[^A-Za-z0-9]', '', 'g')"),
            Target::Spark => format!("regexp_replace({text}, '[^A-Za-z0-9]', '')"),
        }
    }

    /// SQL `round` of a DOUBLE to `digits` places, halves away from zero,
    /// on the value's shortest decimal form (what strata and Spark do).
    /// DuckDB rounds the binary value (0.285 -> 0.28), so there the value
    /// goes through its shortest text form and a decimal; but only near a
    /// tie, as strata does (`round_half_up`): elsewhere rounding the scaled
    /// binary value gives the same double, and the text form costs about
    /// 5 microseconds a row (most of the compiled default model's time on
    /// its measures' values).
    pub fn round(self, x: &str, digits: i32) -> String {
        match self {
            Target::DuckDb => {
                let exact = format!(
                    "CASE WHEN abs({x}) < 1e18 THEN CAST(round(CAST(CAST({x} AS VARCHAR) AS DECIMAL(38, 18)), {digits}) AS DOUBLE) ELSE {x} END"
                );
                if !(0..=15).contains(&digits) {
                    return exact;
                }
                let scale = self.double(10f64.powi(digits));
                let scaled = format!("({x}) * {scale}");
                format!(
                    "CASE WHEN abs({scaled}) < 1e15 AND abs(abs({scaled} - trunc({scaled})) - 0.5) > 1e-6 THEN round({scaled}) / {scale} ELSE {exact} END"
                )
            }
            Target::Spark => format!("round({x}, {digits})"),
        }
    }

    /// Days since 1970-01-01 of a date, as a number (for range frames).
    pub fn day_number(self, date: &str) -> String {
        self.days_between(date, "DATE '1970-01-01'")
    }

    /// An aggregate joining `name` over a group with ", ", in the order of
    /// `order` (a number).
    pub fn joined(self, name: &str, order: &str) -> String {
        match self {
            Target::DuckDb => format!("string_agg({name}, ', ' ORDER BY {order})"),
            Target::Spark => format!(
                "array_join(transform(array_sort(collect_list(struct({order}, {name}))), x -> x.{name}), ', ')"
            ),
        }
    }

    /// A table of literal rows with named columns, as a FROM item.
    pub fn values(self, rows: &[String], alias: &str, columns: &[&str]) -> String {
        format!(
            "(VALUES\n      {}\n    ) AS {alias}({})",
            rows.join(",\n      "),
            columns.join(", ")
        )
    }

    /// A Parquet file or folder of part files as a FROM item.
    pub fn parquet(self, path: &std::path::Path, folder: bool) -> String {
        let shown = path.display().to_string();
        match self {
            Target::DuckDb if folder => {
                format!(
                    "read_parquet({})",
                    self.string(&format!("{shown}/*.parquet"))
                )
            }
            Target::DuckDb => format!("read_parquet({})", self.string(&shown)),
            Target::Spark => format!("parquet.`{}`", shown.replace('`', "``")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_literals_mean_the_same_text_in_each_dialect() {
        let text = r"it's ${x} \ done";
        assert_eq!(Target::DuckDb.string(text), r"'it''s ${x} \ done'");
        // Spark: a backslash escapes, '' would be two literals, and ${...}
        // would be substituted before parsing.
        assert_eq!(Target::Spark.string(text), r"'it\'s \u0024{x} \\ done'");
    }

    #[test]
    fn identifiers_are_quoted_with_their_quotes_doubled() {
        assert_eq!(Target::DuckDb.ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(Target::Spark.ident("a`b"), "`a``b`");
    }
}
