//! SQL plans: the datasets a query names, each planned as a scan of every column (its
//! committed files with their footers, less those the core ruled out for a single-table
//! query, typed hive partitions, the schema unified across files), and the query's typed
//! positional parameters. The SQL engines register each table over its planned
//! files and prune with their own optimizers (partition values, footer statistics, the page
//! index) before reading data.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, NullArray, StringArray,
    TimestampMicrosecondArray,
};

use crate::error::{Error, Result};
use crate::plan::scan::ScanPlan;
use crate::plan::sort::MemoryBudget;
use crate::value::ScalarValue;

/// A dataset registered under a table name.
#[derive(Clone, Debug)]
pub struct SqlTable {
    /// The table name the query uses.
    pub name: String,
    /// The scan of the dataset: every committed file the core did not rule out (see
    /// [`plan_scan_pruned`](crate::plan::scan::plan_scan_pruned)), every row group, every
    /// column.
    pub scan: ScanPlan,
}

/// A query over registered datasets.
#[derive(Clone, Debug)]
pub struct SqlQuery {
    /// The tables, by name.
    pub tables: Vec<SqlTable>,
    /// The query text.
    pub sql: String,
    /// Positional parameters: `?` placeholders in order, or `$1`, `$2`, ...
    pub params: Vec<SqlParam>,
    /// The memory the engine may use; beyond it, it spills to the budget's folder or fails
    /// with [`SqlErrorKind::OutOfMemory`](crate::error::SqlErrorKind::OutOfMemory).
    pub memory: MemoryBudget,
}

/// A typed query parameter. Bound through the engine's own parameter binding, never spliced
/// into the text: a quote in a string parameter is data.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlParam {
    /// `NULL`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A string.
    Str(String),
    /// A date, as days since 1970-01-01.
    Date(i32),
    /// A timestamp without time zone, as microseconds since 1970-01-01 00:00:00.
    Timestamp(i64),
}

impl SqlParam {
    /// The parameter as a one-value Arrow array (`Null` as the null type), for engines that
    /// bind Arrow scalars.
    pub fn to_array(&self) -> ArrayRef {
        match self {
            SqlParam::Null => Arc::new(NullArray::new(1)),
            SqlParam::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
            SqlParam::Int(i) => Arc::new(Int64Array::from(vec![*i])),
            SqlParam::Float(x) => Arc::new(Float64Array::from(vec![*x])),
            SqlParam::Str(s) => Arc::new(StringArray::from(vec![s.as_str()])),
            SqlParam::Date(d) => Arc::new(Date32Array::from(vec![*d])),
            SqlParam::Timestamp(t) => Arc::new(TimestampMicrosecondArray::from(vec![*t])),
        }
    }

    /// The parameter as fsk's scalar.
    pub fn to_scalar(&self) -> ScalarValue {
        ScalarValue::new(self.to_array())
    }
}

impl fmt::Display for SqlParam {
    /// The text [`SqlParam::from_str`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlParam::Null => f.write_str("NULL"),
            SqlParam::Bool(b) => write!(f, "{b}"),
            SqlParam::Int(i) => write!(f, "{i}"),
            SqlParam::Float(x) => write!(f, "{x:?}"),
            SqlParam::Str(s) => write!(f, "STR:{s}"),
            SqlParam::Date(_) | SqlParam::Timestamp(_) => {
                let scalar = self.to_scalar();
                let kind = if matches!(self, SqlParam::Date(_)) {
                    "DATE"
                } else {
                    "TIMESTAMP"
                };
                write!(f, "{kind}:{scalar}")
            }
        }
    }
}

impl FromStr for SqlParam {
    type Err = Error;

    /// Reads a parameter as the CLI's `--param` takes it: `NULL`; `true` / `false`; an
    /// integer (`42`, `-7`); a float (`1.5`, `2e3`); `DATE:2025-01-01`;
    /// `TIMESTAMP:2025-01-01 12:00:00` (or with a `T`, fractions of a second allowed); `STR:`
    /// followed by any text (for a string that looks like another type); anything else is a
    /// string as written. A malformed `DATE:` or `TIMESTAMP:` value is an
    /// [`Error::InvalidArgument`] naming it.
    fn from_str(text: &str) -> Result<SqlParam> {
        let bad = |why: &str| Error::invalid_argument("param", text, why);
        if let Some(rest) = text.strip_prefix("STR:") {
            return Ok(SqlParam::Str(rest.to_string()));
        }
        if let Some(rest) = strip_prefix_ci(text, "DATE:") {
            let date = chrono::NaiveDate::parse_from_str(rest.trim(), "%Y-%m-%d")
                .map_err(|_| bad("a date parameter is DATE:YYYY-MM-DD"))?;
            let days = date
                .signed_duration_since(chrono::NaiveDate::default())
                .num_days();
            return i32::try_from(days)
                .map(SqlParam::Date)
                .map_err(|_| bad("the date is out of range"));
        }
        if let Some(rest) = strip_prefix_ci(text, "TIMESTAMP:") {
            let rest = rest.trim();
            let parsed = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d"]
                .iter()
                .find_map(|format| {
                    chrono::NaiveDateTime::parse_from_str(rest, format)
                        .ok()
                        .or_else(|| {
                            chrono::NaiveDate::parse_from_str(rest, format)
                                .ok()
                                .and_then(|d| d.and_hms_opt(0, 0, 0))
                        })
                })
                .ok_or_else(|| {
                    bad("a timestamp parameter is TIMESTAMP:YYYY-MM-DD HH:MM:SS[.ffffff]")
                })?;
            return Ok(SqlParam::Timestamp(parsed.and_utc().timestamp_micros()));
        }
        if text.eq_ignore_ascii_case("null") {
            return Ok(SqlParam::Null);
        }
        if text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false") {
            return Ok(SqlParam::Bool(text.eq_ignore_ascii_case("true")));
        }
        if let Ok(i) = text.parse::<i64>() {
            return Ok(SqlParam::Int(i));
        }
        let integer = text.strip_prefix('-').unwrap_or(text);
        if !integer.is_empty() && integer.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad(
                "the integer is out of range for a 64-bit integer (write STR:... for a string)",
            ));
        }
        let numeric = text
            .chars()
            .all(|c| c.is_ascii_digit() || ".eE+-".contains(c))
            && text.chars().any(|c| c.is_ascii_digit());
        if numeric && let Ok(x) = text.parse::<f64>() {
            if !x.is_finite() {
                return Err(bad("the number is out of range for a 64-bit float"));
            }
            return Ok(SqlParam::Float(x));
        }
        Ok(SqlParam::Str(text.to_string()))
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    // By `get`: a multi-byte character across the prefix's length is simply no match.
    text.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        .then(|| &text[prefix.len()..])
}

/// Checks a table name: a SQL identifier (`[A-Za-z_][A-Za-z0-9_]*`), so that both engines
/// resolve it unquoted, case-insensitively, the same way.
pub fn validate_table_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_argument(
            "table",
            name,
            "a table name is a SQL identifier: a letter or '_', then letters, digits or '_'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_parse_by_their_text() {
        let p = |t: &str| t.parse::<SqlParam>().unwrap();
        assert_eq!(p("NULL"), SqlParam::Null);
        assert_eq!(p("true"), SqlParam::Bool(true));
        assert_eq!(p("FALSE"), SqlParam::Bool(false));
        assert_eq!(p("42"), SqlParam::Int(42));
        assert_eq!(p("-7"), SqlParam::Int(-7));
        assert_eq!(p("1.5"), SqlParam::Float(1.5));
        assert_eq!(p("2e3"), SqlParam::Float(2000.0));
        assert_eq!(p("DATE:1970-01-02"), SqlParam::Date(1));
        assert_eq!(p("date:2025-01-01"), SqlParam::Date(20089));
        assert_eq!(
            p("TIMESTAMP:1970-01-01 00:00:01.5"),
            SqlParam::Timestamp(1_500_000)
        );
        assert_eq!(
            p("TIMESTAMP:1970-01-01T00:01:00"),
            SqlParam::Timestamp(60_000_000)
        );
        assert_eq!(p("O'Brien"), SqlParam::Str("O'Brien".into()));
        assert_eq!(p("STR:42"), SqlParam::Str("42".into()));
        assert_eq!(p("e"), SqlParam::Str("e".into()));
        assert_eq!(p("inf"), SqlParam::Str("inf".into()));
        assert_eq!(p("東京"), SqlParam::Str("東京".into()), "multi-byte text");
        assert_eq!(p("😀😀"), SqlParam::Str("😀😀".into()));
        for bad in [
            "DATE:2025-13-01",
            "DATE:x",
            "TIMESTAMP:yesterday",
            "99999999999999999999",
            "1e400",
        ] {
            let err = bad.parse::<SqlParam>().unwrap_err();
            assert_eq!(err.kind(), "invalid_argument", "{bad}: {err}");
        }
        for param in [
            SqlParam::Date(20089),
            SqlParam::Timestamp(1_500_000),
            SqlParam::Str("42".into()),
            SqlParam::Float(1.0),
        ] {
            assert_eq!(p(&param.to_string()), param, "{param}");
        }
    }

    #[test]
    fn table_names_are_identifiers() {
        assert!(validate_table_name("sales_2025").is_ok());
        assert!(validate_table_name("_t").is_ok());
        for bad in ["", "1t", "my-table", "a b", "t;drop"] {
            assert!(validate_table_name(bad).is_err(), "{bad}");
        }
    }
}
