//! Filter expressions: the filter language is a SQL `WHERE` expression.
//!
//! Used by `fsk read --filter EXPR`, by partition and statistics pruning, and rendered back as
//! SQL for the DuckDB and DataFusion engines. The layers of this module, in order:
//!
//! - [`parse`]: the text, parsed by the `sqlparser` crate (generic dialect), converted to a
//!   [`Predicate`]. What a predicate can be:
//!
//!   ```text
//!   condition := condition AND condition | condition OR condition | NOT condition
//!              | '(' condition ')'
//!              | column cmp literal | literal cmp column
//!              | column [NOT] IN '(' literal (',' literal)* ')'
//!              | column [NOT] BETWEEN literal AND literal
//!              | column IS [NOT] NULL
//!   cmp       := = | == | != | <> | < | <= | > | >=
//!   literal   := integer | float | 'string' | TRUE | FALSE | NULL
//!              | DATE 'YYYY-MM-DD' | TIMESTAMP '...'  (typed strings, coerced on binding)
//!   ```
//!
//!   Keywords are case-insensitive. Identifiers are bare or double-quoted (`"any name"`, `""`
//!   escapes a quote) and keep their case. String literals are single-quoted (`''` escapes a
//!   quote). Anything else SQL has (functions, arithmetic, column-to-column comparisons,
//!   subqueries) is an [`Error::InvalidFilter`] naming the expression and its position.
//! - [`bind`]: [`Predicate::bind`] checks the columns against a schema and coerces every
//!   literal to its column's Arrow type, giving a [`BoundPredicate`].
//! - [`eval`]: [`BoundPredicate::evaluate`] on record batches with SQL three-valued logic.
//! - [`prune`]: [`BoundPredicate::may_match_partition`] and
//!   [`BoundPredicate::may_match_stats`], three-valued pruning with partition values and
//!   footer statistics.
//! - [`render`]: [`BoundPredicate::to_sql`], typed SQL for DuckDB and DataFusion.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;

use crate::error::Error;
use crate::value::ScalarValue;

pub mod bind;
pub mod eval;
pub mod parse;
pub mod prune;
pub mod render;

pub use render::{quote_ident, sql_literal};

/// An [`Error::InvalidFilter`] for `filter`.
pub(crate) fn invalid(filter: &str, message: impl Into<String>) -> Error {
    Error::InvalidFilter {
        filter: filter.to_string(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// A literal as written in a filter, before it is coerced to a column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `NULL`.
    Null,
    /// `TRUE` or `FALSE`.
    Bool(bool),
    /// An integer such as `42` or `-7`.
    Int(i64),
    /// A number with a fraction or an exponent, such as `1.5` or `-2e3`.
    Float(f64),
    /// A single-quoted string such as `'it''s'` (held unescaped: `it's`).
    Str(String),
    /// A typed date literal, `DATE '2025-01-01'` (its text; compared only with date and
    /// timestamp columns).
    Date(String),
    /// A typed timestamp literal, `TIMESTAMP '2025-01-01 12:00:00'` (its text; compared only
    /// with date and timestamp columns).
    Timestamp(String),
}

impl fmt::Display for Literal {
    /// Renders the literal as it could be written in a filter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("NULL"),
            Literal::Bool(true) => f.write_str("TRUE"),
            Literal::Bool(false) => f.write_str("FALSE"),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::Str(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Literal::Date(s) => write!(f, "DATE '{}'", s.replace('\'', "''")),
            Literal::Timestamp(s) => write!(f, "TIMESTAMP '{}'", s.replace('\'', "''")),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=` (also written `==`).
    Eq,
    /// `!=` (also written `<>`).
    NotEq,
    /// `<`.
    Lt,
    /// `<=`.
    LtEq,
    /// `>`.
    Gt,
    /// `>=`.
    GtEq,
}

impl CmpOp {
    /// The operator with its operands swapped: `a < b` is `b > a`.
    pub fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Eq => CmpOp::Eq,
            CmpOp::NotEq => CmpOp::NotEq,
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::LtEq => CmpOp::GtEq,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::GtEq => CmpOp::LtEq,
        }
    }

    /// The operator in SQL (`=`, `<>`, `<`, `<=`, `>`, `>=`).
    pub fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::NotEq => "<>",
            CmpOp::Lt => "<",
            CmpOp::LtEq => "<=",
            CmpOp::Gt => ">",
            CmpOp::GtEq => ">=",
        }
    }

    /// Whether `left op right` holds given how `left` orders against `right`.
    pub(crate) fn holds(self, ordering: Ordering) -> bool {
        match self {
            CmpOp::Eq => ordering == Ordering::Equal,
            CmpOp::NotEq => ordering != Ordering::Equal,
            CmpOp::Lt => ordering == Ordering::Less,
            CmpOp::LtEq => ordering != Ordering::Greater,
            CmpOp::Gt => ordering == Ordering::Greater,
            CmpOp::GtEq => ordering != Ordering::Less,
        }
    }
}

/// A parsed filter, not yet bound to a schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `column op value` (a `value op column` in the text is normalised to this form).
    Compare {
        /// The column.
        column: String,
        /// The operator.
        op: CmpOp,
        /// The literal.
        value: Literal,
    },
    /// `column [NOT] IN (values)`.
    In {
        /// The column.
        column: String,
        /// The listed literals (at least one).
        values: Vec<Literal>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `column IS [NOT] NULL`.
    IsNull {
        /// The column.
        column: String,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// Both hold.
    And(Box<Predicate>, Box<Predicate>),
    /// Either holds.
    Or(Box<Predicate>, Box<Predicate>),
    /// Negation.
    Not(Box<Predicate>),
}

/// A predicate bound to a schema: every literal has its column's Arrow type.
#[derive(Debug, Clone)]
pub enum BoundPredicate {
    /// `column op value`; `value` has the column's (value) type and is never null.
    Compare {
        /// The column.
        column: String,
        /// The operator.
        op: CmpOp,
        /// The non-null value, of the column's type.
        value: ScalarValue,
    },
    /// `column [NOT] IN (values)`; the values are non-null and of the column's type.
    ///
    /// A `NULL` in the list of the text is bound as SQL does it: `x IN (1, NULL)` becomes
    /// `Or(In(x, [1]), Constant(None))` and `x NOT IN (1, NULL)` becomes
    /// `And(In(x, [1], negated), Constant(None))`. An empty list is `FALSE` (`TRUE` when
    /// negated) for every row, even where the column is null.
    In {
        /// The column.
        column: String,
        /// The non-null values, of the column's type.
        values: Vec<ScalarValue>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `column IS [NOT] NULL`.
    IsNull {
        /// The column.
        column: String,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// Both hold (Kleene logic).
    And(Box<BoundPredicate>, Box<BoundPredicate>),
    /// Either holds (Kleene logic).
    Or(Box<BoundPredicate>, Box<BoundPredicate>),
    /// Negation (Kleene logic: `NOT NULL` is `NULL`).
    Not(Box<BoundPredicate>),
    /// A SQL three-valued constant: `Some(true)`, `Some(false)` or `None` (unknown), for
    /// example `x = NULL`.
    Constant(Option<bool>),
}

// ---------------------------------------------------------------------------------------------
// Columns
// ---------------------------------------------------------------------------------------------

impl Predicate {
    /// The columns the predicate refers to.
    pub fn columns(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.collect_columns(&mut out);
        out
    }

    fn collect_columns(&self, out: &mut BTreeSet<String>) {
        match self {
            Predicate::Compare { column, .. }
            | Predicate::In { column, .. }
            | Predicate::IsNull { column, .. } => {
                out.insert(column.clone());
            }
            Predicate::And(a, b) | Predicate::Or(a, b) => {
                a.collect_columns(out);
                b.collect_columns(out);
            }
            Predicate::Not(a) => a.collect_columns(out),
        }
    }
}

impl BoundPredicate {
    /// The columns the predicate refers to.
    pub fn columns(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.collect_columns(&mut out);
        out
    }

    fn collect_columns(&self, out: &mut BTreeSet<String>) {
        match self {
            BoundPredicate::Compare { column, .. }
            | BoundPredicate::In { column, .. }
            | BoundPredicate::IsNull { column, .. } => {
                out.insert(column.clone());
            }
            BoundPredicate::And(a, b) | BoundPredicate::Or(a, b) => {
                a.collect_columns(out);
                b.collect_columns(out);
            }
            BoundPredicate::Not(a) => a.collect_columns(out),
            BoundPredicate::Constant(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
