//! Filter expressions: a small SQL-like predicate language.
//!
//! Used by `fsk read --filter EXPR` and by partition and statistics pruning.
//!
//! ```text
//! expr    := or
//! or      := and (OR and)*
//! and     := not (AND not)*
//! not     := NOT not | primary
//! primary := '(' expr ')' | column cmp literal | literal cmp column
//!          | column [NOT] IN '(' literal (',' literal)* ')'
//!          | column IS [NOT] NULL
//! cmp     := = | == | != | <> | < | <= | > | >=
//! ```
//!
//! Keywords are case-insensitive. Identifiers are bare (`[A-Za-z_][A-Za-z0-9_]*`) or
//! double-quoted (`"any name"`, `""` escapes a quote). String literals are single-quoted (`''`
//! escapes a quote). Numbers are integers (`42`, `-7`) or floats (`1.5`, `-2e3`). `TRUE`,
//! `FALSE` and `NULL` are literals.
//!
//! A parsed [`Predicate`] is bound to a schema with [`Predicate::bind`], which checks the columns
//! and coerces every literal to its column's Arrow type. The resulting [`BoundPredicate`]
//! evaluates on record batches with SQL three-valued logic, prunes files by partition values and
//! footer statistics, and renders itself as SQL for the DuckDB and DataFusion engines.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, LargeStringArray, Scalar,
    StringArray, StringViewArray, UInt64Array, make_array,
};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Float16Type, Float32Type, Float64Type, Schema, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow::record_batch::RecordBatch;

use crate::dataset::stats::ColumnStats;
use crate::error::{Error, Result};
use crate::value::ScalarValue;

/// Deepest nesting of parentheses and `NOT`s accepted by the parser.
const MAX_DEPTH: usize = 128;

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
    fn holds(self, ordering: Ordering) -> bool {
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
// Lexer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    And,
    Or,
    Not,
    In,
    Is,
    Null,
    True,
    False,
}

impl Keyword {
    fn from_ident(ident: &str) -> Option<Keyword> {
        let upper = ident.to_ascii_uppercase();
        Some(match upper.as_str() {
            "AND" => Keyword::And,
            "OR" => Keyword::Or,
            "NOT" => Keyword::Not,
            "IN" => Keyword::In,
            "IS" => Keyword::Is,
            "NULL" => Keyword::Null,
            "TRUE" => Keyword::True,
            "FALSE" => Keyword::False,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A column name, bare or double-quoted.
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Kw(Keyword),
    Op(CmpOp),
    LParen,
    RParen,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// 1-based character position of the token's first character.
    pos: usize,
    /// The token as written.
    text: String,
}

fn invalid(filter: &str, message: impl Into<String>) -> Error {
    Error::InvalidFilter {
        filter: filter.to_string(),
        message: message.into(),
    }
}

fn lex(text: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let slice = |a: usize, b: usize| chars[a..b].iter().collect::<String>();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        let tok = match c {
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '=' => {
                i += if next == Some('=') { 2 } else { 1 };
                Tok::Op(CmpOp::Eq)
            }
            '!' => {
                if next == Some('=') {
                    i += 2;
                    Tok::Op(CmpOp::NotEq)
                } else {
                    return Err(invalid(
                        text,
                        format!("unexpected character '!' at position {}", start + 1),
                    ));
                }
            }
            '<' => match next {
                Some('=') => {
                    i += 2;
                    Tok::Op(CmpOp::LtEq)
                }
                Some('>') => {
                    i += 2;
                    Tok::Op(CmpOp::NotEq)
                }
                _ => {
                    i += 1;
                    Tok::Op(CmpOp::Lt)
                }
            },
            '>' => {
                if next == Some('=') {
                    i += 2;
                    Tok::Op(CmpOp::GtEq)
                } else {
                    i += 1;
                    Tok::Op(CmpOp::Gt)
                }
            }
            '\'' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(invalid(
                                text,
                                format!(
                                    "unterminated string literal starting at position {}",
                                    start + 1
                                ),
                            ));
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            value.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            value.push(ch);
                            i += 1;
                        }
                    }
                }
                Tok::Str(value)
            }
            '"' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(invalid(
                                text,
                                format!(
                                    "unterminated quoted identifier starting at position {}",
                                    start + 1
                                ),
                            ));
                        }
                        Some('"') if chars.get(i + 1) == Some(&'"') => {
                            value.push('"');
                            i += 2;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            value.push(ch);
                            i += 1;
                        }
                    }
                }
                if value.is_empty() {
                    return Err(invalid(
                        text,
                        format!("empty quoted identifier at position {}", start + 1),
                    ));
                }
                Tok::Ident(value)
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '.')
                    && next.is_some_and(|n| n.is_ascii_digit() || (c == '-' && n == '.'))) =>
            {
                let (tok, end) = lex_number(text, &chars, start)?;
                i = end;
                tok
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word = slice(start, i);
                match Keyword::from_ident(&word) {
                    Some(kw) => Tok::Kw(kw),
                    None => Tok::Ident(word),
                }
            }
            other => {
                return Err(invalid(
                    text,
                    format!("unexpected character {other:?} at position {}", start + 1),
                ));
            }
        };
        tokens.push(Token {
            tok,
            pos: start + 1,
            text: slice(start, i),
        });
    }
    Ok(tokens)
}

/// Lexes a number starting at `start`; returns the token and the index after it.
fn lex_number(text: &str, chars: &[char], start: usize) -> Result<(Tok, usize)> {
    let mut i = start;
    if chars[i] == '-' {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let from = *i;
        while *i < chars.len() && chars[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - from
    };
    let mut mantissa_digits = digits(&mut i);
    let mut is_float = false;
    if chars.get(i) == Some(&'.') {
        is_float = true;
        i += 1;
        mantissa_digits += digits(&mut i);
    }
    let malformed = |end: usize| {
        let mut end = end;
        while end < chars.len()
            && (chars[end].is_ascii_alphanumeric() || ".+-_".contains(chars[end]))
        {
            end += 1;
        }
        invalid(
            text,
            format!(
                "malformed number '{}' at position {}",
                chars[start..end].iter().collect::<String>(),
                start + 1
            ),
        )
    };
    if mantissa_digits == 0 {
        return Err(malformed(i));
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        is_float = true;
        i += 1;
        if matches!(chars.get(i), Some('+' | '-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return Err(malformed(i));
        }
    }
    if chars
        .get(i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
    {
        return Err(malformed(i));
    }
    let word: String = chars[start..i].iter().collect();
    let tok = if is_float {
        let value: f64 = word.parse().map_err(|_| malformed(i))?;
        if !value.is_finite() {
            return Err(invalid(
                text,
                format!(
                    "number '{word}' at position {} is out of range for a 64-bit float",
                    start + 1
                ),
            ));
        }
        Tok::Float(value)
    } else {
        match word.parse::<i64>() {
            Ok(value) => Tok::Int(value),
            Err(_) => {
                return Err(invalid(
                    text,
                    format!(
                        "integer '{word}' at position {} is out of range for a 64-bit integer \
                         (write it as a string, '{word}', to compare it with an unsigned column)",
                        start + 1
                    ),
                ));
            }
        }
    };
    Ok((tok, i))
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    index: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.index)
    }

    fn bump(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.index).cloned();
        if token.is_some() {
            self.index += 1;
        }
        token
    }

    fn error(&self, message: impl Into<String>) -> Error {
        invalid(self.text, message)
    }

    /// Describes the current token (or the end of input) for an error message.
    fn found(&self) -> String {
        match self.peek() {
            Some(token) => describe(token),
            None => "the end of the filter".to_string(),
        }
    }

    fn peek_keyword(&self, keyword: Keyword) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Kw(k), .. }) if *k == keyword)
    }

    fn expect(&mut self, expected: &Tok, what: &str) -> Result<Token> {
        match self.peek() {
            Some(token) if token.tok == *expected => Ok(self.bump().expect("peeked")),
            _ => Err(self.error(format!("expected {what}, found {}", self.found()))),
        }
    }

    fn parse_or(&mut self) -> Result<Predicate> {
        let mut left = self.parse_and()?;
        while self.peek_keyword(Keyword::Or) {
            self.bump();
            let right = self.parse_and()?;
            left = Predicate::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Predicate> {
        let mut left = self.parse_not()?;
        while self.peek_keyword(Keyword::And) {
            self.bump();
            let right = self.parse_not()?;
            left = Predicate::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!(
                "the filter is nested too deeply (more than {MAX_DEPTH} levels of parentheses \
                 and NOT) at {}",
                self.found()
            )));
        }
        Ok(())
    }

    fn parse_not(&mut self) -> Result<Predicate> {
        if self.peek_keyword(Keyword::Not) {
            self.bump();
            self.enter()?;
            let inner = self.parse_not()?;
            self.depth -= 1;
            return Ok(Predicate::Not(Box::new(inner)));
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<Predicate> {
        let Some(token) = self.peek().cloned() else {
            return Err(self.error(format!(
                "expected a condition (column, literal or '('), found {}",
                self.found()
            )));
        };
        match &token.tok {
            Tok::LParen => {
                self.bump();
                self.enter()?;
                let inner = self.parse_or()?;
                self.depth -= 1;
                match self.peek() {
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => {
                        self.bump();
                        Ok(inner)
                    }
                    _ => Err(self.error(format!(
                        "expected ')' to close the '(' at position {}, found {}",
                        token.pos,
                        self.found()
                    ))),
                }
            }
            Tok::Ident(column) => {
                self.bump();
                self.parse_after_column(column.clone(), &token)
            }
            tok if literal_of(tok).is_some() => {
                self.bump();
                let literal = literal_of(tok).expect("checked");
                let op = match self.peek() {
                    Some(Token {
                        tok: Tok::Op(op), ..
                    }) => *op,
                    _ => {
                        return Err(self.error(format!(
                            "expected a comparison operator after the literal {} at position {}, \
                             found {}",
                            token.text,
                            token.pos,
                            self.found()
                        )));
                    }
                };
                self.bump();
                match self.peek().cloned() {
                    Some(Token {
                        tok: Tok::Ident(column),
                        ..
                    }) => {
                        self.bump();
                        Ok(Predicate::Compare {
                            column,
                            op: op.flipped(),
                            value: literal,
                        })
                    }
                    Some(other) if literal_of(&other.tok).is_some() => Err(self.error(format!(
                        "cannot compare two literals ({} and {} at position {}): one side of a \
                         comparison must be a column",
                        token.text, other.text, other.pos
                    ))),
                    _ => Err(self.error(format!(
                        "expected a column after {} {}, found {}",
                        token.text,
                        op.sql(),
                        self.found()
                    ))),
                }
            }
            _ => Err(self.error(format!(
                "expected a condition (column, literal or '('), found {}",
                self.found()
            ))),
        }
    }

    fn parse_after_column(&mut self, column: String, column_token: &Token) -> Result<Predicate> {
        let Some(token) = self.peek().cloned() else {
            return Err(self.error(format!(
                "expected a comparison operator, IN, NOT IN or IS after column {} at position {}, \
                 found the end of the filter",
                column_token.text, column_token.pos
            )));
        };
        match token.tok {
            Tok::Op(op) => {
                self.bump();
                match self.peek().cloned() {
                    Some(Token {
                        tok: Tok::Ident(_),
                        text,
                        pos,
                    }) => Err(self.error(format!(
                        "cannot compare column {} with column {text} at position {pos}: \
                         one side of a comparison must be a literal",
                        column_token.text
                    ))),
                    Some(Token { tok, .. }) if literal_of(&tok).is_some() => {
                        self.bump();
                        Ok(Predicate::Compare {
                            column,
                            op,
                            value: literal_of(&tok).expect("checked"),
                        })
                    }
                    _ => Err(self.error(format!(
                        "expected a literal after {} {}, found {}",
                        column_token.text,
                        op.sql(),
                        self.found()
                    ))),
                }
            }
            Tok::Kw(Keyword::Not) => {
                self.bump();
                if !self.peek_keyword(Keyword::In) {
                    return Err(self.error(format!(
                        "expected IN after {} NOT, found {}",
                        column_token.text,
                        self.found()
                    )));
                }
                self.bump();
                let values = self.parse_list()?;
                Ok(Predicate::In {
                    column,
                    values,
                    negated: true,
                })
            }
            Tok::Kw(Keyword::In) => {
                self.bump();
                let values = self.parse_list()?;
                Ok(Predicate::In {
                    column,
                    values,
                    negated: false,
                })
            }
            Tok::Kw(Keyword::Is) => {
                self.bump();
                let negated = self.peek_keyword(Keyword::Not);
                if negated {
                    self.bump();
                }
                if !self.peek_keyword(Keyword::Null) {
                    return Err(self.error(format!(
                        "expected NULL after {} IS{}, found {}",
                        column_token.text,
                        if negated { " NOT" } else { "" },
                        self.found()
                    )));
                }
                self.bump();
                Ok(Predicate::IsNull { column, negated })
            }
            _ => Err(self.error(format!(
                "expected a comparison operator, IN, NOT IN or IS after column {} at position {}, \
                 found {}",
                column_token.text,
                column_token.pos,
                describe(&token)
            ))),
        }
    }

    fn parse_list(&mut self) -> Result<Vec<Literal>> {
        let open = self.expect(&Tok::LParen, "'(' to start the IN list")?;
        let mut values = Vec::new();
        loop {
            let token = self.peek().cloned();
            match token.as_ref().and_then(|t| literal_of(&t.tok)) {
                Some(literal) => {
                    self.bump();
                    values.push(literal);
                }
                None => {
                    return Err(self.error(format!(
                        "expected a literal in the IN list opened at position {}, found {}",
                        open.pos,
                        self.found()
                    )));
                }
            }
            match self.peek() {
                Some(Token {
                    tok: Tok::Comma, ..
                }) => {
                    self.bump();
                }
                Some(Token {
                    tok: Tok::RParen, ..
                }) => {
                    self.bump();
                    return Ok(values);
                }
                _ => {
                    return Err(self.error(format!(
                        "expected ',' or ')' in the IN list opened at position {}, found {}",
                        open.pos,
                        self.found()
                    )));
                }
            }
        }
    }
}

fn describe(token: &Token) -> String {
    format!("{} at position {}", token.text, token.pos)
}

fn literal_of(tok: &Tok) -> Option<Literal> {
    match tok {
        Tok::Str(s) => Some(Literal::Str(s.clone())),
        Tok::Int(i) => Some(Literal::Int(*i)),
        Tok::Float(f) => Some(Literal::Float(*f)),
        Tok::Kw(Keyword::True) => Some(Literal::Bool(true)),
        Tok::Kw(Keyword::False) => Some(Literal::Bool(false)),
        Tok::Kw(Keyword::Null) => Some(Literal::Null),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Predicate
// ---------------------------------------------------------------------------------------------

impl Predicate {
    /// Parses a filter expression.
    ///
    /// Errors with [`Error::InvalidFilter`] naming the offending token and its position on
    /// malformed input: empty text, unbalanced parentheses, unterminated strings, trailing
    /// tokens, comparisons between two columns or two literals.
    pub fn parse(text: &str) -> Result<Predicate> {
        let tokens = lex(text)?;
        if tokens.is_empty() {
            return Err(invalid(text, "the filter is empty"));
        }
        let mut parser = Parser {
            text,
            tokens,
            index: 0,
            depth: 0,
        };
        let predicate = parser.parse_or()?;
        if let Some(token) = parser.peek() {
            let message = if token.tok == Tok::RParen {
                format!("unbalanced ')' at position {}", token.pos)
            } else {
                format!(
                    "unexpected {} after a complete condition (missing AND/OR?)",
                    describe(token)
                )
            };
            return Err(invalid(text, message));
        }
        Ok(predicate)
    }

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

    /// Binds to a schema: checks columns, coerces every literal to its column's Arrow type.
    ///
    /// `text` is the original filter text, used in error messages. An unknown column is an
    /// [`Error::ColumnNotFound`] listing the available columns; a literal that does not fit its
    /// column (a number for a string column, an integer out of range, an unparsable date, ...) is
    /// an [`Error::InvalidFilter`] naming the column, its type and the literal. A comparison with
    /// `NULL` binds to [`BoundPredicate::Constant`]`(None)`.
    pub fn bind(&self, text: &str, schema: &Schema) -> Result<BoundPredicate> {
        let field = |column: &str| {
            schema
                .field_with_name(column)
                .map_err(|_| Error::column_not_found(column, "filter", schema))
        };
        Ok(match self {
            Predicate::Compare { column, op, value } => {
                let field = field(column)?;
                match value {
                    Literal::Null => BoundPredicate::Constant(None),
                    literal => BoundPredicate::Compare {
                        column: column.clone(),
                        op: *op,
                        value: coerce(text, column, field.data_type(), literal)?,
                    },
                }
            }
            Predicate::In {
                column,
                values,
                negated,
            } => {
                let field = field(column)?;
                let mut has_null = false;
                let mut bound: Vec<ScalarValue> = Vec::with_capacity(values.len());
                for literal in values {
                    if *literal == Literal::Null {
                        has_null = true;
                        continue;
                    }
                    let value = coerce(text, column, field.data_type(), literal)?;
                    if !bound.contains(&value) {
                        bound.push(value);
                    }
                }
                let list = if bound.is_empty() {
                    None
                } else {
                    Some(BoundPredicate::In {
                        column: column.clone(),
                        values: bound,
                        negated: *negated,
                    })
                };
                match (list, has_null) {
                    (Some(list), false) => list,
                    (Some(list), true) if *negated => BoundPredicate::And(
                        Box::new(list),
                        Box::new(BoundPredicate::Constant(None)),
                    ),
                    (Some(list), true) => {
                        BoundPredicate::Or(Box::new(list), Box::new(BoundPredicate::Constant(None)))
                    }
                    // Only NULLs in the list: unknown for every row.
                    (None, _) => BoundPredicate::Constant(None),
                }
            }
            Predicate::IsNull { column, negated } => {
                field(column)?;
                BoundPredicate::IsNull {
                    column: column.clone(),
                    negated: *negated,
                }
            }
            Predicate::And(a, b) => BoundPredicate::And(
                Box::new(a.bind(text, schema)?),
                Box::new(b.bind(text, schema)?),
            ),
            Predicate::Or(a, b) => BoundPredicate::Or(
                Box::new(a.bind(text, schema)?),
                Box::new(b.bind(text, schema)?),
            ),
            Predicate::Not(a) => BoundPredicate::Not(Box::new(a.bind(text, schema)?)),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Literal coercion
// ---------------------------------------------------------------------------------------------

/// The type of the values of a column: the value type of a dictionary or run-end encoding.
fn value_type(data_type: &DataType) -> &DataType {
    match data_type {
        DataType::Dictionary(_, values) => value_type(values),
        DataType::RunEndEncoded(_, values) => value_type(values.data_type()),
        other => other,
    }
}

fn describe_literal(literal: &Literal) -> String {
    match literal {
        Literal::Null => "NULL".to_string(),
        Literal::Bool(_) => format!("the boolean {literal}"),
        Literal::Int(_) | Literal::Float(_) => format!("the number {literal}"),
        Literal::Str(_) => format!("the string {literal}"),
    }
}

fn int_bounds(data_type: &DataType) -> Option<(i128, i128)> {
    Some(match data_type {
        DataType::Int8 => (i8::MIN.into(), i8::MAX.into()),
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into()),
        DataType::Int64 => (i64::MIN.into(), i64::MAX.into()),
        DataType::UInt8 => (0, u8::MAX.into()),
        DataType::UInt16 => (0, u16::MAX.into()),
        DataType::UInt32 => (0, u32::MAX.into()),
        DataType::UInt64 => (0, u64::MAX.into()),
        _ => return None,
    })
}

/// Casts a one-element array and insists on a non-null result.
fn cast_one(array: &dyn Array, to: &DataType) -> Option<ScalarValue> {
    let cast = arrow::compute::cast(array, to).ok()?;
    if cast.len() != 1 || cast.is_null(0) {
        return None;
    }
    Some(ScalarValue::new(cast))
}

/// Re-labels an array with another type of the same physical layout (timestamp time zones).
fn relabel(array: &ArrayRef, to: &DataType) -> Option<ArrayRef> {
    let data = array
        .to_data()
        .into_builder()
        .data_type(to.clone())
        .build()
        .ok()?;
    Some(make_array(data))
}

/// Coerces a non-null literal to the value type of a column of type `column_type`.
fn coerce(
    text: &str,
    column: &str,
    column_type: &DataType,
    literal: &Literal,
) -> Result<ScalarValue> {
    let target = value_type(column_type);
    let fail = |why: &str| {
        invalid(
            text,
            format!(
                "cannot compare column {column:?} of type {column_type} with {}: {why}",
                describe_literal(literal)
            ),
        )
    };
    match target {
        t if int_bounds(t).is_some() => {
            let value: i128 = match literal {
                Literal::Int(i) => (*i).into(),
                Literal::Float(f) if f.is_finite() && f.fract() == 0.0 => *f as i128,
                Literal::Float(_) => return Err(fail("the number has a fraction")),
                Literal::Str(s) => s
                    .trim()
                    .parse::<i128>()
                    .map_err(|_| fail("the string is not an integer"))?,
                Literal::Bool(_) | Literal::Null => {
                    return Err(fail("an integer is expected"));
                }
            };
            let (lo, hi) = int_bounds(t).expect("checked");
            if value < lo || value > hi {
                return Err(fail(&format!(
                    "{value} is out of range for {t} ({lo} to {hi})"
                )));
            }
            let array: ArrayRef = if lo < 0 {
                Arc::new(Int64Array::from(vec![value as i64]))
            } else {
                Arc::new(UInt64Array::from(vec![value as u64]))
            };
            cast_one(array.as_ref(), t).ok_or_else(|| fail("the value does not fit the type"))
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let value: f64 = match literal {
                Literal::Int(i) => *i as f64,
                Literal::Float(f) => *f,
                Literal::Str(s) => s
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| fail("the string is not a number"))?,
                Literal::Bool(_) | Literal::Null => return Err(fail("a number is expected")),
            };
            let array = Float64Array::from(vec![value]);
            cast_one(&array, target).ok_or_else(|| fail("the value does not fit the type"))
        }
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => {
            let repr = match literal {
                Literal::Int(i) => i.to_string(),
                Literal::Float(f) => format!("{f}"),
                Literal::Str(s) => s.trim().to_string(),
                Literal::Bool(_) | Literal::Null => return Err(fail("a number is expected")),
            };
            let decimal =
                DecimalText::parse(&repr).ok_or_else(|| fail("the value is not a number"))?;
            let scale = match target {
                DataType::Decimal32(_, s)
                | DataType::Decimal64(_, s)
                | DataType::Decimal128(_, s)
                | DataType::Decimal256(_, s) => i64::from(*s),
                _ => 0,
            };
            if decimal.exponent < -scale {
                return Err(fail(&format!(
                    "the value cannot be represented exactly as {target} \
                     (more than {scale} digits after the point)"
                )));
            }
            if decimal.exponent.abs() > 200 {
                return Err(fail(&format!("the value is out of range for {target}")));
            }
            let array = StringArray::from(vec![decimal.to_plain()]);
            let value = cast_one(&array, target)
                .ok_or_else(|| fail(&format!("the value is out of range for {target}")))?;
            if DecimalText::parse(&value.to_string()).as_ref() != Some(&decimal) {
                return Err(fail(&format!(
                    "the value cannot be represented exactly as {target}"
                )));
            }
            Ok(value)
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => match literal {
            Literal::Str(s) => {
                let array: ArrayRef = match target {
                    DataType::Utf8 => Arc::new(StringArray::from(vec![s.as_str()])),
                    DataType::LargeUtf8 => Arc::new(LargeStringArray::from(vec![s.as_str()])),
                    _ => Arc::new(StringViewArray::from(vec![s.as_str()])),
                };
                Ok(ScalarValue::new(array))
            }
            other => Err(fail(&format!(
                "a string is expected (quote the value: '{}')",
                match other {
                    Literal::Str(s) => s.clone(),
                    other => other.to_string(),
                }
            ))),
        },
        DataType::Boolean => {
            let value = match literal {
                Literal::Bool(b) => *b,
                Literal::Str(s) if s.trim().eq_ignore_ascii_case("true") => true,
                Literal::Str(s) if s.trim().eq_ignore_ascii_case("false") => false,
                _ => return Err(fail("TRUE or FALSE is expected")),
            };
            Ok(ScalarValue::new(Arc::new(BooleanArray::from(vec![value]))))
        }
        DataType::Date32 | DataType::Date64 => match literal {
            Literal::Str(s) => {
                let array = StringArray::from(vec![s.trim()]);
                cast_one(&array, target)
                    .ok_or_else(|| fail("the string is not a date (expected 'YYYY-MM-DD')"))
            }
            _ => Err(fail("a date string such as '2025-01-31' is expected")),
        },
        DataType::Timestamp(unit, tz) => match literal {
            Literal::Str(s) => {
                let array = StringArray::from(vec![s.trim()]);
                // Naive strings are read as UTC, strings with an offset are converted to UTC;
                // the resulting instant is then labelled with the column's time zone.
                let naive =
                    cast_one(&array, &DataType::Timestamp(*unit, None)).ok_or_else(|| {
                        fail(
                            "the string is not a timestamp (expected ISO 8601, for example \
                         '2025-01-31', '2025-01-31 10:00:00' or '2025-01-31T10:00:00+02:00')",
                        )
                    })?;
                match tz {
                    None => Ok(naive),
                    Some(_) => relabel(naive.array(), target)
                        .map(ScalarValue::new)
                        .ok_or_else(|| fail("the time zone of the column is not valid")),
                }
            }
            _ => Err(fail(
                "a timestamp string such as '2025-01-31 10:00:00' is expected",
            )),
        },
        DataType::Null => Err(fail("the column holds only nulls; compare it with IS NULL")),
        _ => match literal {
            Literal::Str(s) => {
                let array = StringArray::from(vec![s.as_str()]);
                cast_one(&array, target)
                    .ok_or_else(|| fail(&format!("the string cannot be converted to {target}")))
            }
            _ => Err(fail(&format!(
                "only a string literal convertible to {target} is accepted"
            ))),
        },
    }
}

/// A decimal number as sign, significant digits (no leading or trailing zeros) and a power
/// of ten: `-12.30` is `(true, "123", -1)`; zero is `(false, "", 0)`.
#[derive(Debug, PartialEq, Eq)]
struct DecimalText {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl DecimalText {
    fn parse(text: &str) -> Option<DecimalText> {
        let text = text.trim();
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut digits: String = format!("{int_part}{frac_part}")
            .trim_start_matches('0')
            .to_string();
        let mut exponent = exponent.checked_sub(i64::try_from(frac_part.len()).ok()?)?;
        while digits.ends_with('0') {
            digits.pop();
            exponent += 1;
        }
        if digits.is_empty() {
            return Some(DecimalText {
                negative: false,
                digits,
                exponent: 0,
            });
        }
        Some(DecimalText {
            negative,
            digits,
            exponent,
        })
    }

    /// The number without an exponent, for example `-0.0123`.
    fn to_plain(&self) -> String {
        if self.digits.is_empty() {
            return "0".to_string();
        }
        let sign = if self.negative { "-" } else { "" };
        let len = self.digits.len() as i64;
        if self.exponent >= 0 {
            format!(
                "{sign}{}{}",
                self.digits,
                "0".repeat(self.exponent as usize)
            )
        } else {
            let point = len + self.exponent;
            if point > 0 {
                let (int_part, frac_part) = self.digits.split_at(point as usize);
                format!("{sign}{int_part}.{frac_part}")
            } else {
                format!("{sign}0.{}{}", "0".repeat((-point) as usize), self.digits)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

fn column_of<'a>(batch: &'a RecordBatch, column: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(column)
        .ok_or_else(|| Error::column_not_found(column, "filter", batch.schema_ref().as_ref()))
}

/// The column, cast if needed so that its values have type `target` (a dictionary or run-end
/// encoded column with values of type `target` is compared as is).
fn align(column: &str, array: &ArrayRef, target: &DataType) -> Result<ArrayRef> {
    let fits = match array.data_type() {
        DataType::Dictionary(_, values) => values.as_ref() == target,
        DataType::RunEndEncoded(_, values) => values.data_type() == target,
        other => other == target,
    };
    if fits {
        return Ok(Arc::clone(array));
    }
    arrow::compute::cast(array, target).map_err(|e| {
        Error::arrow(
            format!(
                "casting column {column:?} from {} to {target} to evaluate the filter",
                array.data_type()
            ),
            e,
        )
    })
}

fn compare(column: &str, array: &ArrayRef, op: CmpOp, value: &ScalarValue) -> Result<BooleanArray> {
    use arrow::compute::kernels::cmp;
    let scalar = Scalar::new(Arc::clone(value.array()));
    let result = match op {
        CmpOp::Eq => cmp::eq(array, &scalar),
        CmpOp::NotEq => cmp::neq(array, &scalar),
        CmpOp::Lt => cmp::lt(array, &scalar),
        CmpOp::LtEq => cmp::lt_eq(array, &scalar),
        CmpOp::Gt => cmp::gt(array, &scalar),
        CmpOp::GtEq => cmp::gt_eq(array, &scalar),
    };
    result.map_err(|e| {
        Error::arrow(
            format!("comparing column {column:?} {} {value}", op.sql()),
            e,
        )
    })
}

fn logic_error(e: arrow::error::ArrowError) -> Error {
    Error::arrow("combining filter conditions", e)
}

// ---------------------------------------------------------------------------------------------
// Three-valued pruning
// ---------------------------------------------------------------------------------------------

/// What pruning knows about the value of a condition over the rows of a file: the set of SQL
/// truth values (`TRUE`, `FALSE`, `NULL`) the condition can take on some row.
///
/// It generalises the four states the pruning needs: `{TRUE}`, `{FALSE}`, `{NULL}` (certainly
/// SQL NULL) and `{TRUE, FALSE, NULL}` (unknown), and keeps partial knowledge such as "never
/// TRUE, but FALSE or NULL" that statistics give. Combining two sets takes every pair, which
/// over-approximates and so stays sound for pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tri(u8);

impl Tri {
    const TRUE: Tri = Tri(1);
    const FALSE: Tri = Tri(2);
    const NULL: Tri = Tri(4);
    const UNKNOWN: Tri = Tri(7);
    const NONE: Tri = Tri(0);

    fn of(value: Option<bool>) -> Tri {
        match value {
            Some(true) => Tri::TRUE,
            Some(false) => Tri::FALSE,
            None => Tri::NULL,
        }
    }

    fn union(self, other: Tri) -> Tri {
        Tri(self.0 | other.0)
    }

    fn can_be_true(self) -> bool {
        self.0 & Tri::TRUE.0 != 0
    }

    fn members(self) -> impl Iterator<Item = Option<bool>> {
        [Some(true), Some(false), None]
            .into_iter()
            .filter(move |v| self.0 & Tri::of(*v).0 != 0)
    }

    fn combine(self, other: Tri, f: fn(Option<bool>, Option<bool>) -> Option<bool>) -> Tri {
        let mut out = Tri::NONE;
        for a in self.members() {
            for b in other.members() {
                out = out.union(Tri::of(f(a, b)));
            }
        }
        out
    }

    fn and(self, other: Tri) -> Tri {
        self.combine(other, |a, b| match (a, b) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        })
    }

    fn or(self, other: Tri) -> Tri {
        self.combine(other, |a, b| match (a, b) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        })
    }

    fn not(self) -> Tri {
        let mut out = Tri::NONE;
        for v in self.members() {
            out = out.union(Tri::of(v.map(|b| !b)));
        }
        out
    }
}

/// What is known about one column over the rows of a file.
#[derive(Clone, Copy)]
enum Knowledge<'a> {
    /// Nothing.
    Unknown,
    /// Every row holds this value (a partition value; may be null).
    Value(&'a ScalarValue),
    /// Footer statistics.
    Stats(&'a ColumnStats),
}

fn is_string_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// Converts a known value (a partition value or a statistics bound) to `target` for comparing,
/// refusing lossy conversions. Strings (partition values as written in paths) are parsed.
fn convert_known(value: &ScalarValue, target: &DataType) -> Option<ScalarValue> {
    let source = value.data_type();
    if source == target {
        return Some(value.clone());
    }
    if let (DataType::Timestamp(a, _), DataType::Timestamp(b, _)) = (source, target)
        && a == b
    {
        // Same physical value: only the time zone label differs.
        return relabel(value.array(), target).map(ScalarValue::new);
    }
    if is_string_type(value_type(source)) {
        return value.cast_to(target);
    }
    let cast = value.cast_to(target)?;
    let back = cast.cast_to(source)?;
    (back == *value).then_some(cast)
}

fn is_float_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Float16 | DataType::Float32 | DataType::Float64
    )
}

/// The truth values `column op value` can take on the rows described by `stats`.
fn stats_compare(stats: &ColumnStats, op: CmpOp, value: &ScalarValue) -> Tri {
    if stats.row_count > 0 && stats.null_count == Some(stats.row_count) {
        return Tri::NULL;
    }
    let nulls = if stats.null_count == Some(0) {
        Tri::NONE
    } else {
        Tri::NULL
    };
    // NaN is left out of float statistics but orders above (or, negative, below) every number,
    // so float bounds prove nothing.
    if is_float_type(value.data_type()) {
        return Tri::TRUE.union(Tri::FALSE).union(nulls);
    }
    let bound = |bound: &Option<ScalarValue>, exact: bool| -> Option<Ordering> {
        let bound = bound.as_ref().filter(|_| exact)?;
        if bound.is_null() {
            return None;
        }
        convert_known(bound, value.data_type())?.partial_cmp_value(value)
    };
    let min = bound(&stats.min, stats.min_exact);
    let max = bound(&stats.max, stats.max_exact);
    use Ordering::{Equal, Greater, Less};
    let all_equal = min == Some(Equal) && max == Some(Equal);
    let outside = min == Some(Greater) || max == Some(Less);
    let (can_true, can_false) = match op {
        CmpOp::Eq => (!outside, !all_equal),
        CmpOp::NotEq => (!all_equal, !outside),
        CmpOp::Lt => (!matches!(min, Some(Greater | Equal)), max != Some(Less)),
        CmpOp::LtEq => (min != Some(Greater), !matches!(max, Some(Less | Equal))),
        CmpOp::Gt => (!matches!(max, Some(Less | Equal)), min != Some(Greater)),
        CmpOp::GtEq => (max != Some(Less), !matches!(min, Some(Greater | Equal))),
    };
    if !can_true && !can_false {
        // Inconsistent statistics (min above max): trust nothing.
        return Tri::UNKNOWN;
    }
    let mut out = nulls;
    if can_true {
        out = out.union(Tri::TRUE);
    }
    if can_false {
        out = out.union(Tri::FALSE);
    }
    out
}

/// The truth values `column op value` can take given what is known about the column.
fn leaf_compare(knowledge: Knowledge<'_>, op: CmpOp, value: &ScalarValue) -> Tri {
    match knowledge {
        Knowledge::Unknown => Tri::UNKNOWN,
        Knowledge::Value(known) if known.is_null() => Tri::NULL,
        Knowledge::Value(known) => convert_known(known, value.data_type())
            .and_then(|known| known.partial_cmp_value(value))
            .map(|ordering| Tri::of(Some(op.holds(ordering))))
            .unwrap_or(Tri::UNKNOWN),
        Knowledge::Stats(stats) => stats_compare(stats, op, value),
    }
}

fn leaf_is_null(knowledge: Knowledge<'_>, negated: bool) -> Tri {
    let is_null = match knowledge {
        Knowledge::Unknown => Tri::TRUE.union(Tri::FALSE),
        Knowledge::Value(known) => Tri::of(Some(known.is_null())),
        Knowledge::Stats(stats) => {
            let mut out = Tri::NONE;
            if stats.null_count != Some(0) {
                out = out.union(Tri::TRUE);
            }
            if !(stats.row_count > 0 && stats.null_count == Some(stats.row_count)) {
                out = out.union(Tri::FALSE);
            }
            out
        }
    };
    if negated { is_null.not() } else { is_null }
}

// ---------------------------------------------------------------------------------------------
// SQL rendering
// ---------------------------------------------------------------------------------------------

/// Quotes an identifier for SQL (DuckDB and DataFusion): double quotes, `""` escaping.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_str(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn sql_float(value: f64, sql_type: &str) -> String {
    if value.is_nan() {
        format!("CAST('NaN' AS {sql_type})")
    } else if value.is_infinite() {
        let sign = if value < 0.0 { "-" } else { "" };
        format!("CAST('{sign}Infinity' AS {sql_type})")
    } else {
        format!("{value:?}")
    }
}

fn sql_type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => "BIGINT".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ".into(),
        DataType::Interval(_) | DataType::Duration(_) => "INTERVAL".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "BYTEA".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("DECIMAL({p},{s})"),
        _ => "VARCHAR".into(),
    }
}

/// Renders a non-null value as a SQL literal that DuckDB and DataFusion compare correctly
/// with a column of the value's type.
pub fn sql_literal(value: &ScalarValue) -> String {
    if value.is_null() {
        return format!("CAST(NULL AS {})", sql_type_name(value.data_type()));
    }
    let array = value.array();
    let data_type = value.data_type();
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => value.to_string(),
        DataType::Float64 => sql_float(array.as_primitive::<Float64Type>().value(0), "DOUBLE"),
        DataType::Float32 | DataType::Float16 => {
            let v: f32 = match data_type {
                DataType::Float32 => array.as_primitive::<Float32Type>().value(0),
                _ => array.as_primitive::<Float16Type>().value(0).to_f32(),
            };
            if v.is_finite() {
                format!("CAST('{v:?}' AS FLOAT)")
            } else {
                sql_float(f64::from(v), "FLOAT")
            }
        }
        DataType::Utf8 => quote_str(array.as_string::<i32>().value(0)),
        DataType::LargeUtf8 => quote_str(array.as_string::<i64>().value(0)),
        DataType::Utf8View => quote_str(array.as_string_view().value(0)),
        DataType::Boolean => {
            if array.as_boolean().value(0) {
                "TRUE".into()
            } else {
                "FALSE".into()
            }
        }
        DataType::Date32 => {
            match arrow::temporal_conversions::date32_to_datetime(
                array.as_primitive::<Date32Type>().value(0),
            ) {
                Some(dt) => format!("DATE '{}'", dt.format("%Y-%m-%d")),
                None => format!("CAST({} AS DATE)", quote_str(&value.to_string())),
            }
        }
        DataType::Date64 => {
            match arrow::temporal_conversions::date64_to_datetime(
                array.as_primitive::<Date64Type>().value(0),
            ) {
                Some(dt) => format!("DATE '{}'", dt.format("%Y-%m-%d")),
                None => format!("CAST({} AS DATE)", quote_str(&value.to_string())),
            }
        }
        DataType::Timestamp(unit, tz) => {
            use arrow::temporal_conversions::as_datetime;
            let datetime = match unit {
                TimeUnit::Second => as_datetime::<TimestampSecondType>(
                    array.as_primitive::<TimestampSecondType>().value(0),
                ),
                TimeUnit::Millisecond => as_datetime::<TimestampMillisecondType>(
                    array.as_primitive::<TimestampMillisecondType>().value(0),
                ),
                TimeUnit::Microsecond => as_datetime::<TimestampMicrosecondType>(
                    array.as_primitive::<TimestampMicrosecondType>().value(0),
                ),
                TimeUnit::Nanosecond => as_datetime::<TimestampNanosecondType>(
                    array.as_primitive::<TimestampNanosecondType>().value(0),
                ),
            };
            let Some(datetime) = datetime else {
                return format!(
                    "CAST({} AS {})",
                    quote_str(&value.to_string()),
                    sql_type_name(data_type)
                );
            };
            let sub_micro = datetime.and_utc().timestamp_subsec_nanos() % 1000 != 0;
            let format = if sub_micro {
                "%Y-%m-%d %H:%M:%S%.9f"
            } else {
                "%Y-%m-%d %H:%M:%S%.6f"
            };
            let text = datetime.format(format);
            match tz {
                None => format!("TIMESTAMP '{text}'"),
                Some(_) => format!("TIMESTAMPTZ '{text}+00:00'"),
            }
        }
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => format!(
            "CAST({} AS {})",
            quote_str(&value.to_string()),
            sql_type_name(data_type)
        ),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let bytes: &[u8] = match data_type {
                DataType::Binary => array.as_binary::<i32>().value(0),
                DataType::LargeBinary => array.as_binary::<i64>().value(0),
                _ => array.as_binary_view().value(0),
            };
            let text = match std::str::from_utf8(bytes) {
                Ok(s) if !s.contains('\\') => s.to_string(),
                _ => bytes.iter().map(|b| format!("\\x{b:02X}")).collect(),
            };
            format!("CAST({} AS BYTEA)", quote_str(&text))
        }
        _ => format!(
            "CAST({} AS {})",
            quote_str(&value.to_string()),
            sql_type_name(data_type)
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// BoundPredicate
// ---------------------------------------------------------------------------------------------

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

    /// Evaluates on a batch that contains (at least) the referenced columns, by name, with SQL
    /// three-valued logic: a null in the result means unknown.
    ///
    /// A column whose type differs from the bound value's type (other than a dictionary or
    /// run-end encoding of it) is cast first.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let rows = batch.num_rows();
        match self {
            BoundPredicate::Compare { column, op, value } => {
                let array = align(column, column_of(batch, column)?, value.data_type())?;
                compare(column, &array, *op, value)
            }
            BoundPredicate::In {
                column,
                values,
                negated,
            } => {
                let array = column_of(batch, column)?;
                let mut result: Option<BooleanArray> = None;
                let mut aligned: Option<ArrayRef> = None;
                for value in values {
                    let array = match &aligned {
                        Some(a) if value_type(a.data_type()) == value.data_type() => Arc::clone(a),
                        _ => {
                            let a = align(column, array, value.data_type())?;
                            aligned = Some(Arc::clone(&a));
                            a
                        }
                    };
                    let eq = compare(column, &array, CmpOp::Eq, value)?;
                    result = Some(match result {
                        None => eq,
                        Some(acc) => arrow::compute::or_kleene(&acc, &eq).map_err(logic_error)?,
                    });
                }
                let result = result.unwrap_or_else(|| BooleanArray::from(vec![false; rows]));
                if *negated {
                    arrow::compute::not(&result).map_err(logic_error)
                } else {
                    Ok(result)
                }
            }
            BoundPredicate::IsNull { column, negated } => {
                let array = column_of(batch, column)?;
                let result = if *negated {
                    arrow::compute::is_not_null(array.as_ref())
                } else {
                    arrow::compute::is_null(array.as_ref())
                };
                result.map_err(logic_error)
            }
            BoundPredicate::And(a, b) => {
                arrow::compute::and_kleene(&a.evaluate(batch)?, &b.evaluate(batch)?)
                    .map_err(logic_error)
            }
            BoundPredicate::Or(a, b) => {
                arrow::compute::or_kleene(&a.evaluate(batch)?, &b.evaluate(batch)?)
                    .map_err(logic_error)
            }
            BoundPredicate::Not(a) => arrow::compute::not(&a.evaluate(batch)?).map_err(logic_error),
            BoundPredicate::Constant(Some(value)) => Ok(BooleanArray::from(vec![*value; rows])),
            BoundPredicate::Constant(None) => Ok(BooleanArray::new_null(rows)),
        }
    }

    /// Evaluates and returns a mask where unknown is false (what a `WHERE` keeps).
    pub fn filter_mask(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let result = self.evaluate(batch)?;
        if result.null_count() == 0 {
            return Ok(result);
        }
        Ok(arrow::compute::prep_null_mask_filter(&result))
    }

    /// The truth values the predicate can take on the rows of a file, given what is known about
    /// each column.
    fn tri<'a>(&self, know: &dyn Fn(&str) -> Knowledge<'a>) -> Tri {
        match self {
            BoundPredicate::Compare { column, op, value } => leaf_compare(know(column), *op, value),
            BoundPredicate::In {
                column,
                values,
                negated,
            } => {
                let knowledge = know(column);
                let mut any = Tri::FALSE;
                for value in values {
                    any = any.or(leaf_compare(knowledge, CmpOp::Eq, value));
                }
                if *negated { any.not() } else { any }
            }
            BoundPredicate::IsNull { column, negated } => leaf_is_null(know(column), *negated),
            BoundPredicate::And(a, b) => a.tri(know).and(b.tri(know)),
            BoundPredicate::Or(a, b) => a.tri(know).or(b.tri(know)),
            BoundPredicate::Not(a) => a.tri(know).not(),
            BoundPredicate::Constant(value) => Tri::of(*value),
        }
    }

    /// Pruning: can a file whose *partition* columns have these values (others unknown) hold a
    /// matching row?
    ///
    /// `values` maps partition column name to value (may be a null [`ScalarValue`]; a value of
    /// another type, such as the string from the path, is converted to the column's type).
    /// Columns not in the map are unknown. Returns false only when the predicate is certainly
    /// not true for every row of such a file.
    pub fn may_match_partition(&self, values: &HashMap<String, ScalarValue>) -> bool {
        self.tri(&|column: &str| {
            values
                .get(column)
                .map_or(Knowledge::Unknown, Knowledge::Value)
        })
        .can_be_true()
    }

    /// Pruning with footer statistics (per column; a column missing from the map is unknown)
    /// and partition values together (a partition value wins over statistics).
    ///
    /// Returns false only when no row can satisfy the predicate. Inexact or missing min/max are
    /// unknown; min/max of float columns are not used (NaN is not part of the statistics).
    /// `null_count` proves `IS NULL` false (`null_count == 0`) and `IS NOT NULL` false
    /// (`null_count == row_count`).
    pub fn may_match_stats(
        &self,
        partition: &HashMap<String, ScalarValue>,
        stats: &HashMap<String, ColumnStats>,
    ) -> bool {
        self.tri(&|column: &str| {
            if let Some(value) = partition.get(column) {
                Knowledge::Value(value)
            } else if let Some(stats) = stats.get(column) {
                Knowledge::Stats(stats)
            } else {
                Knowledge::Unknown
            }
        })
        .can_be_true()
    }

    /// Renders as SQL for DuckDB and DataFusion.
    ///
    /// Identifiers are double-quoted (`""` escapes a quote); literals are typed so that both
    /// engines compare them correctly: strings `'..'`, integers and `DOUBLE` plain (a float
    /// always has a `.` or an `e`; NaN and infinities as `CAST('NaN' AS DOUBLE)`), `FLOAT` as
    /// `CAST('0.1' AS FLOAT)`, booleans `TRUE`/`FALSE`, dates `DATE 'YYYY-MM-DD'`, timestamps
    /// `TIMESTAMP 'YYYY-MM-DD HH:MM:SS.ffffff'` (`TIMESTAMPTZ '...+00:00'`, the UTC instant, for
    /// zoned columns), decimals `CAST('123.45' AS DECIMAL(p,s))`, other types
    /// `CAST('<display>' AS <type>)`. `Constant(None)` is `CAST(NULL AS BOOLEAN)`.
    pub fn to_sql(&self) -> String {
        match self {
            BoundPredicate::Compare { column, op, value } => {
                format!(
                    "{} {} {}",
                    quote_ident(column),
                    op.sql(),
                    sql_literal(value)
                )
            }
            BoundPredicate::In {
                column,
                values,
                negated,
            } => {
                if values.is_empty() {
                    return if *negated { "TRUE" } else { "FALSE" }.to_string();
                }
                let list = values
                    .iter()
                    .map(sql_literal)
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "{} {}IN ({list})",
                    quote_ident(column),
                    if *negated { "NOT " } else { "" }
                )
            }
            BoundPredicate::IsNull { column, negated } => format!(
                "{} IS {}NULL",
                quote_ident(column),
                if *negated { "NOT " } else { "" }
            ),
            BoundPredicate::And(a, b) => format!("({} AND {})", a.to_sql(), b.to_sql()),
            BoundPredicate::Or(a, b) => format!("({} OR {})", a.to_sql(), b.to_sql()),
            BoundPredicate::Not(a) => format!("(NOT {})", a.to_sql()),
            BoundPredicate::Constant(Some(true)) => "TRUE".into(),
            BoundPredicate::Constant(Some(false)) => "FALSE".into(),
            BoundPredicate::Constant(None) => "CAST(NULL AS BOOLEAN)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        Date32Array, Decimal128Array, DictionaryArray, Float32Array, Int8Array, Int32Array,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::{Field, Int32Type};

    fn parse(text: &str) -> Predicate {
        Predicate::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn cmp(column: &str, op: CmpOp, value: Literal) -> Predicate {
        Predicate::Compare {
            column: column.into(),
            op,
            value,
        }
    }

    fn and(a: Predicate, b: Predicate) -> Predicate {
        Predicate::And(Box::new(a), Box::new(b))
    }

    fn or(a: Predicate, b: Predicate) -> Predicate {
        Predicate::Or(Box::new(a), Box::new(b))
    }

    fn not(a: Predicate) -> Predicate {
        Predicate::Not(Box::new(a))
    }

    fn parse_error(text: &str) -> String {
        match Predicate::parse(text) {
            Ok(p) => panic!("{text:?} parsed as {p:?}"),
            Err(e) => {
                assert_eq!(e.kind(), "invalid_filter", "{text}: {e}");
                e.to_string()
            }
        }
    }

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("x", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("small", DataType::Int8, true),
            Field::new("u", DataType::UInt64, true),
            Field::new("f", DataType::Float64, true),
            Field::new("f32", DataType::Float32, true),
            Field::new("flag", DataType::Boolean, true),
            Field::new("day", DataType::Date32, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new(
                "tstz",
                DataType::Timestamp(TimeUnit::Microsecond, Some("Europe/Paris".into())),
                true,
            ),
            Field::new("amount", DataType::Decimal128(10, 2), true),
            Field::new(
                "dict",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
            Field::new("odd \"name\"", DataType::Int32, true),
        ])
    }

    fn bind(text: &str) -> BoundPredicate {
        parse(text)
            .bind(text, &schema())
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn bind_error(text: &str) -> Error {
        match parse(text).bind(text, &schema()) {
            Ok(p) => panic!("{text:?} bound as {p:?}"),
            Err(e) => e,
        }
    }

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("day", DataType::Date32, true),
            Field::new(
                "tstz",
                DataType::Timestamp(TimeUnit::Microsecond, Some("Europe/Paris".into())),
                true,
            ),
            Field::new(
                "dict",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
        ]));
        // 2025-01-01 is day 20089 since the epoch.
        let tstz = TimestampMicrosecondArray::from(vec![
            Some(1_735_725_600_000_000), // 2025-01-01 10:00:00 UTC
            Some(1_735_729_200_000_000), // 2025-01-01 11:00:00 UTC
            None,
        ])
        .with_timezone("Europe/Paris");
        let dict: DictionaryArray<Int32Type> =
            vec![Some("a"), None, Some("b")].into_iter().collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), Some(2), None])),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("it's")])),
                Arc::new(Date32Array::from(vec![Some(20089), Some(20090), None])),
                Arc::new(tstz),
                Arc::new(dict),
            ],
        )
        .unwrap()
    }

    fn eval(text: &str) -> Vec<Option<bool>> {
        bind(text).evaluate(&batch()).unwrap().iter().collect()
    }

    fn mask(text: &str) -> Vec<bool> {
        let mask = bind(text).filter_mask(&batch()).unwrap();
        assert_eq!(mask.null_count(), 0);
        mask.iter().map(|v| v.unwrap()).collect()
    }

    fn string(s: &str) -> ScalarValue {
        ScalarValue::new(Arc::new(StringArray::from(vec![s])))
    }

    fn int(v: i64) -> ScalarValue {
        ScalarValue::new(Arc::new(Int64Array::from(vec![v])))
    }

    // ------------------------------------------------------------------------------- parsing

    #[test]
    fn parses_comparisons() {
        assert_eq!(parse("x = 1"), cmp("x", CmpOp::Eq, Literal::Int(1)));
        assert_eq!(parse("x == 1"), cmp("x", CmpOp::Eq, Literal::Int(1)));
        assert_eq!(parse("x != -5"), cmp("x", CmpOp::NotEq, Literal::Int(-5)));
        assert_eq!(
            parse("x <> 1.5"),
            cmp("x", CmpOp::NotEq, Literal::Float(1.5))
        );
        assert_eq!(
            parse("x<-2e3"),
            cmp("x", CmpOp::Lt, Literal::Float(-2000.0))
        );
        assert_eq!(
            parse("x <= 1E2"),
            cmp("x", CmpOp::LtEq, Literal::Float(100.0))
        );
        assert_eq!(parse("x > .5"), cmp("x", CmpOp::Gt, Literal::Float(0.5)));
        assert_eq!(parse("x >= 0"), cmp("x", CmpOp::GtEq, Literal::Int(0)));
        assert_eq!(
            parse("name = 'it''s'"),
            cmp("name", CmpOp::Eq, Literal::Str("it's".into()))
        );
        assert_eq!(
            parse("flag = true"),
            cmp("flag", CmpOp::Eq, Literal::Bool(true))
        );
        assert_eq!(
            parse("flag = FALSE"),
            cmp("flag", CmpOp::Eq, Literal::Bool(false))
        );
        assert_eq!(parse("x = null"), cmp("x", CmpOp::Eq, Literal::Null));
        assert_eq!(
            parse("\"odd \"\"name\"\"\" = 1"),
            cmp("odd \"name\"", CmpOp::Eq, Literal::Int(1))
        );
        assert_eq!(
            parse("\"and\" = 'x y'"),
            cmp("and", CmpOp::Eq, Literal::Str("x y".into()))
        );
        assert_eq!(
            parse("_a1 = ''"),
            cmp("_a1", CmpOp::Eq, Literal::Str(String::new()))
        );
        assert_eq!(
            parse("x = -9223372036854775808"),
            cmp("x", CmpOp::Eq, Literal::Int(i64::MIN))
        );
    }

    #[test]
    fn literal_first_comparisons_are_flipped() {
        assert_eq!(parse("1 < x"), cmp("x", CmpOp::Gt, Literal::Int(1)));
        assert_eq!(parse("1 <= x"), cmp("x", CmpOp::GtEq, Literal::Int(1)));
        assert_eq!(
            parse("'a' > name"),
            cmp("name", CmpOp::Lt, Literal::Str("a".into()))
        );
        assert_eq!(parse("2 >= x"), cmp("x", CmpOp::LtEq, Literal::Int(2)));
        assert_eq!(parse("2 = x"), cmp("x", CmpOp::Eq, Literal::Int(2)));
        assert_eq!(parse("2 <> x"), cmp("x", CmpOp::NotEq, Literal::Int(2)));
        assert_eq!(parse("NULL = x"), cmp("x", CmpOp::Eq, Literal::Null));
    }

    #[test]
    fn parses_in_and_is_null() {
        assert_eq!(
            parse("x IN (1, 2.5, 'a', NULL, true)"),
            Predicate::In {
                column: "x".into(),
                values: vec![
                    Literal::Int(1),
                    Literal::Float(2.5),
                    Literal::Str("a".into()),
                    Literal::Null,
                    Literal::Bool(true)
                ],
                negated: false
            }
        );
        assert_eq!(
            parse("x not in (1)"),
            Predicate::In {
                column: "x".into(),
                values: vec![Literal::Int(1)],
                negated: true
            }
        );
        assert_eq!(
            parse("x is null"),
            Predicate::IsNull {
                column: "x".into(),
                negated: false
            }
        );
        assert_eq!(
            parse("x IS NOT NULL"),
            Predicate::IsNull {
                column: "x".into(),
                negated: true
            }
        );
    }

    #[test]
    fn precedence_is_not_and_or() {
        let a = cmp("a", CmpOp::Eq, Literal::Int(1));
        let b = cmp("b", CmpOp::Eq, Literal::Int(2));
        let c = cmp("c", CmpOp::Eq, Literal::Int(3));
        assert_eq!(
            parse("a = 1 OR b = 2 AND c = 3"),
            or(a.clone(), and(b.clone(), c.clone()))
        );
        assert_eq!(
            parse("a = 1 AND b = 2 OR c = 3"),
            or(and(a.clone(), b.clone()), c.clone())
        );
        assert_eq!(
            parse("(a = 1 OR b = 2) AND c = 3"),
            and(or(a.clone(), b.clone()), c.clone())
        );
        assert_eq!(parse("NOT a = 1 AND b = 2"), and(not(a.clone()), b.clone()));
        assert_eq!(parse("not not a = 1"), not(not(a.clone())));
        assert_eq!(parse("NOT (a = 1 OR b = 2)"), not(or(a.clone(), b.clone())));
        assert_eq!(
            parse("a = 1 and b = 2 and c = 3"),
            and(and(a.clone(), b.clone()), c.clone())
        );
        assert_eq!(parse("((a = 1))"), a);
    }

    #[test]
    fn columns_are_collected() {
        let p = parse("a = 1 OR (b IN (1) AND NOT c IS NULL)");
        assert_eq!(
            p.columns().into_iter().collect::<Vec<_>>(),
            vec!["a", "b", "c"]
        );
        let b = bind("x = 1 AND (name = NULL OR day IS NULL)");
        assert_eq!(
            b.columns().into_iter().collect::<Vec<_>>(),
            vec!["day", "x"]
        );
    }

    #[test]
    fn parse_errors_name_the_problem() {
        assert!(parse_error("").contains("empty"));
        assert!(parse_error("   ").contains("empty"));
        assert!(parse_error("x = 1 y").contains("y at position 7"));
        assert!(parse_error("x = 1 OR").contains("end of the filter"));
        assert!(parse_error("(x = 1").contains("')'"));
        assert!(parse_error("x = 1)").contains("unbalanced ')' at position 6"));
        assert!(parse_error("name = 'abc").contains("unterminated string"));
        assert!(parse_error("\"abc = 1").contains("unterminated quoted identifier"));
        assert!(parse_error("a = b").contains("cannot compare column a with column b"));
        assert!(parse_error("1 = 2").contains("cannot compare two literals"));
        assert!(parse_error("x IN ()").contains("expected a literal"));
        assert!(parse_error("x IN (1, )").contains("expected a literal"));
        assert!(parse_error("x IN (1 2)").contains("expected ',' or ')'"));
        assert!(parse_error("x IN 1").contains("'('"));
        assert!(parse_error("x IS 5").contains("expected NULL"));
        assert!(parse_error("x NOT 5").contains("expected IN"));
        assert!(parse_error("x ! 5").contains("'!'"));
        assert!(parse_error("x = 1e").contains("malformed number '1e'"));
        assert!(parse_error("x = 12abc").contains("malformed number '12abc'"));
        assert!(parse_error("x = 1.2.3").contains("malformed number"));
        assert!(parse_error("x = 99999999999999999999").contains("out of range"));
        assert!(parse_error("x").contains("after column x"));
        assert!(parse_error("x 1").contains("1 at position 3"));
        assert!(parse_error("AND x = 1").contains("AND at position 1"));
        assert!(parse_error("x = 1 AND AND").contains("AND at position 11"));
        assert!(parse_error("x = ;").contains("';'"));
        assert!(parse_error("\"\" = 1").contains("empty quoted identifier"));
        assert!(
            parse_error(&format!("{}x = 1{}", "(".repeat(500), ")".repeat(500)))
                .contains("nested too deeply")
        );
        assert!(parse_error(&format!("{}x = 1", "NOT ".repeat(500))).contains("nested too deeply"));
        // The message carries the filter text.
        let err = Predicate::parse("x = ").unwrap_err();
        assert!(matches!(err, Error::InvalidFilter { ref filter, .. } if filter == "x = "));
    }

    // ------------------------------------------------------------------------------- binding

    #[test]
    fn unknown_column_names_it_and_lists_available() {
        let err = bind_error("nope = 1 OR x = 2");
        assert_eq!(err.kind(), "column_not_found");
        let message = err.to_string();
        assert!(message.contains("\"nope\""), "{message}");
        assert!(message.contains("filter"), "{message}");
        assert!(message.contains("x, name, small"), "{message}");
        assert_eq!(bind_error("nope IS NULL").kind(), "column_not_found");
        assert_eq!(bind_error("nope = NULL").kind(), "column_not_found");
    }

    #[test]
    fn type_errors_name_column_type_and_value() {
        let message = bind_error("x = 'abc'").to_string();
        assert!(
            message.contains("\"x\"") && message.contains("Int64"),
            "{message}"
        );
        assert!(message.contains("'abc'"), "{message}");
        let message = bind_error("name = 5").to_string();
        assert!(
            message.contains("\"name\"") && message.contains("Utf8"),
            "{message}"
        );
        assert!(message.contains("number 5"), "{message}");
        assert!(bind_error("name IN ('a', 1.5)").to_string().contains("1.5"));
        assert!(bind_error("name = true").to_string().contains("TRUE"));
        let message = bind_error("small = 300").to_string();
        assert!(
            message.contains("300") && message.contains("Int8"),
            "{message}"
        );
        assert!(
            bind_error("small = -129")
                .to_string()
                .contains("out of range")
        );
        assert!(bind_error("u = -1").to_string().contains("out of range"));
        assert!(bind_error("x = 1.5").to_string().contains("fraction"));
        assert!(bind_error("x = true").to_string().contains("\"x\""));
        assert!(bind_error("f = 'abc'").to_string().contains("'abc'"));
        assert!(bind_error("flag = 1").to_string().contains("\"flag\""));
        assert!(bind_error("flag = 'yes'").to_string().contains("'yes'"));
        assert!(bind_error("day = 5").to_string().contains("\"day\""));
        assert!(
            bind_error("day = '2025-13-45'")
                .to_string()
                .contains("'2025-13-45'")
        );
        assert!(bind_error("ts = 'soon'").to_string().contains("'soon'"));
        assert!(bind_error("amount = 1.234").to_string().contains("exactly"));
        assert!(
            bind_error("amount = 123456789012")
                .to_string()
                .contains("range")
        );
        assert!(bind_error("amount = 'x'").to_string().contains("'x'"));
        assert_eq!(bind_error("x = 'abc'").kind(), "invalid_filter");
    }

    #[test]
    fn literals_are_coerced_to_the_column_type() {
        let value = |text: &str| match bind(text) {
            BoundPredicate::Compare { value, .. } => value,
            other => panic!("{other:?}"),
        };
        assert_eq!(value("small = 5").data_type(), &DataType::Int8);
        assert_eq!(value("small = '-7'").to_string(), "-7");
        assert_eq!(value("x = 3.0").to_string(), "3");
        assert_eq!(value("x = ' 42 '").to_string(), "42");
        assert_eq!(
            value("u = '18446744073709551615'").to_string(),
            "18446744073709551615"
        );
        assert_eq!(value("f = 2").data_type(), &DataType::Float64);
        assert_eq!(value("f = '1.25'").to_string(), "1.25");
        assert_eq!(value("f32 = 0.1").data_type(), &DataType::Float32);
        assert_eq!(value("flag = 'TRUE'").to_string(), "true");
        assert_eq!(value("day = '2025-01-01'").data_type(), &DataType::Date32);
        assert_eq!(value("day = '2025-01-01'").to_string(), "2025-01-01");
        assert_eq!(value("amount = 12.5").to_string(), "12.50");
        assert_eq!(value("amount = 12").to_string(), "12.00");
        assert_eq!(value("amount = '-0.1e1'").to_string(), "-1.00");
        assert_eq!(value("amount = 1.2300").to_string(), "1.23");
        assert_eq!(
            value("amount = 5").data_type(),
            &DataType::Decimal128(10, 2)
        );
        // A dictionary column compares with values of its value type.
        assert_eq!(value("dict = 'a'").data_type(), &DataType::Utf8);
        // A naive timestamp is read as UTC, also for a zoned column.
        let naive = value("ts = '2025-01-01 10:00:00'");
        assert_eq!(
            naive
                .array()
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_735_725_600_000_000
        );
        let zoned = value("tstz = '2025-01-01 10:00:00'");
        assert_eq!(
            zoned.data_type(),
            schema().field_with_name("tstz").unwrap().data_type()
        );
        assert_eq!(
            zoned
                .array()
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_735_725_600_000_000
        );
        let offset = value("tstz = '2025-01-01T12:00:00+02:00'");
        assert_eq!(
            offset
                .array()
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_735_725_600_000_000
        );
        let zulu = value("ts = '2025-01-01T10:00:00Z'");
        assert_eq!(
            zulu.array()
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_735_725_600_000_000
        );
        let date_only = value("tstz = '2025-01-01'");
        assert_eq!(
            date_only
                .array()
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_735_689_600_000_000
        );
    }

    #[test]
    fn null_literals_bind_as_sql() {
        assert!(matches!(bind("x = NULL"), BoundPredicate::Constant(None)));
        assert!(matches!(bind("NULL <> x"), BoundPredicate::Constant(None)));
        assert!(matches!(
            bind("x IN (NULL)"),
            BoundPredicate::Constant(None)
        ));
        assert!(matches!(
            bind("x NOT IN (NULL, NULL)"),
            BoundPredicate::Constant(None)
        ));
        match bind("x IN (1, NULL, 1)") {
            BoundPredicate::Or(list, null) => {
                assert!(matches!(*null, BoundPredicate::Constant(None)));
                assert!(
                    matches!(*list, BoundPredicate::In { ref values, negated: false, .. } if values.len() == 1)
                );
            }
            other => panic!("{other:?}"),
        }
        match bind("x NOT IN (1, NULL)") {
            BoundPredicate::And(list, null) => {
                assert!(matches!(*null, BoundPredicate::Constant(None)));
                assert!(matches!(*list, BoundPredicate::In { negated: true, .. }));
            }
            other => panic!("{other:?}"),
        }
    }

    // ---------------------------------------------------------------------------- evaluation

    #[test]
    fn evaluates_with_three_valued_logic() {
        // x = [1, 2, NULL]
        assert_eq!(eval("x = 1"), vec![Some(true), Some(false), None]);
        assert_eq!(eval("1 < x"), vec![Some(false), Some(true), None]);
        assert_eq!(eval("NOT (x = 1)"), vec![Some(false), Some(true), None]);
        assert_eq!(mask("NOT (x = 1)"), vec![false, true, false]);
        assert_eq!(mask("x != 1"), vec![false, true, false]);
        assert_eq!(eval("x IN (1, NULL)"), vec![Some(true), None, None]);
        assert_eq!(mask("x IN (1, NULL)"), vec![true, false, false]);
        assert_eq!(eval("x NOT IN (1, NULL)"), vec![Some(false), None, None]);
        assert_eq!(mask("x NOT IN (1, NULL)"), vec![false, false, false]);
        assert_eq!(mask("x NOT IN (1)"), vec![false, true, false]);
        assert_eq!(mask("x IN (2, 1)"), vec![true, true, false]);
        assert_eq!(eval("x = NULL"), vec![None, None, None]);
        assert_eq!(mask("NOT (x = NULL)"), vec![false, false, false]);
        assert_eq!(mask("x IS NULL"), vec![false, false, true]);
        assert_eq!(mask("x IS NOT NULL"), vec![true, true, false]);
        assert_eq!(mask("x = 1 OR x IS NULL"), vec![true, false, true]);
        assert_eq!(
            eval("x = 5 AND x = NULL"),
            vec![Some(false), Some(false), None]
        );
        assert_eq!(eval("x = 1 OR x = NULL"), vec![Some(true), None, None]);
        assert_eq!(mask("x = 1 AND name = 'a'"), vec![true, false, false]);
        assert_eq!(mask("name = 'it''s'"), vec![false, false, true]);
        assert_eq!(mask("name >= 'b'"), vec![false, false, true]);
    }

    #[test]
    fn evaluates_dates_timestamps_and_dictionaries() {
        assert_eq!(mask("day = '2025-01-01'"), vec![true, false, false]);
        assert_eq!(mask("day > '2025-01-01'"), vec![false, true, false]);
        assert_eq!(
            mask("tstz = '2025-01-01 10:00:00'"),
            vec![true, false, false]
        );
        assert_eq!(
            mask("tstz = '2025-01-01T11:00:00Z'"),
            vec![false, true, false]
        );
        assert_eq!(
            mask("tstz = '2025-01-01T12:00:00+01:00'"),
            vec![false, true, false]
        );
        assert_eq!(
            mask("tstz >= '2025-01-01 10:30:00'"),
            vec![false, true, false]
        );
        assert_eq!(mask("dict = 'a'"), vec![true, false, false]);
        assert_eq!(mask("dict IN ('b', 'c')"), vec![false, false, true]);
        assert_eq!(mask("dict IS NULL"), vec![false, true, false]);
    }

    #[test]
    fn evaluation_casts_columns_of_another_type() {
        // Bound against Int64, evaluated on an Int32 column.
        let predicate = bind("x >= 2");
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, true)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int32Array::from(vec![Some(1), Some(3), None]))],
        )
        .unwrap();
        let mask = predicate.filter_mask(&batch).unwrap();
        assert_eq!(mask, BooleanArray::from(vec![false, true, false]));
        // A missing column is an error naming it.
        let err = bind("name = 'a'").evaluate(&batch).unwrap_err();
        assert_eq!(err.kind(), "column_not_found");
        assert!(err.to_string().contains("\"name\""));
    }

    #[test]
    fn empty_batches_and_constants() {
        let empty = batch().slice(0, 0);
        assert_eq!(bind("x = 1").evaluate(&empty).unwrap().len(), 0);
        assert_eq!(bind("x = NULL").filter_mask(&empty).unwrap().len(), 0);
        assert_eq!(
            BoundPredicate::Constant(Some(true))
                .filter_mask(&batch())
                .unwrap(),
            BooleanArray::from(vec![true; 3])
        );
    }

    // ------------------------------------------------------------------------------- pruning

    fn partition(pairs: &[(&str, ScalarValue)]) -> HashMap<String, ScalarValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn part_schema() -> Schema {
        Schema::new(vec![
            Field::new("p", DataType::Int64, true),
            Field::new("day", DataType::Date32, true),
            Field::new("x", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("f", DataType::Float64, true),
        ])
    }

    fn bind_part(text: &str) -> BoundPredicate {
        parse(text)
            .bind(text, &part_schema())
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn may_part(text: &str, values: &HashMap<String, ScalarValue>) -> bool {
        bind_part(text).may_match_partition(values)
    }

    #[test]
    fn prunes_by_partition_values() {
        let values = partition(&[("p", int(2)), ("day", string("2025-01-01"))]);
        assert!(may_part("p = 2", &values));
        assert!(!may_part("p = 1", &values));
        assert!(may_part("p > 1", &values));
        assert!(!may_part("p < 2", &values));
        assert!(may_part("NOT (p = 1)", &values));
        assert!(!may_part("NOT (p = 2)", &values));
        assert!(may_part("p IN (1, 2)", &values));
        assert!(!may_part("p IN (1, 3)", &values));
        assert!(!may_part("p NOT IN (2, 3)", &values));
        assert!(may_part("p NOT IN (1, 3)", &values));
        assert!(!may_part("p NOT IN (1, NULL)", &values));
        assert!(may_part("p IN (2, NULL)", &values));
        assert!(!may_part("p IS NULL", &values));
        assert!(may_part("p IS NOT NULL", &values));
        // Partition values given as strings are converted to the column type.
        assert!(may_part("day = '2025-01-01'", &values));
        assert!(!may_part("day > '2025-01-01'", &values));
        // Other columns are unknown.
        assert!(may_part("x = 5", &values));
        assert!(!may_part("p = 1 AND x = 5", &values));
        assert!(may_part("p = 1 OR x = 5", &values));
        assert!(may_part("NOT (x = 5)", &values));
        assert!(!may_part("x = NULL", &values));
        assert!(!may_part("p = 2 AND x = NULL", &values));
    }

    #[test]
    fn prunes_null_partition_values_with_sql_logic() {
        let values = partition(&[("p", ScalarValue::null(&DataType::Int64))]);
        assert!(!may_part("p = 1", &values));
        assert!(!may_part("p != 1", &values));
        // NOT NULL is NULL: still not kept.
        assert!(!may_part("NOT (p = 1)", &values));
        assert!(!may_part("NOT (NOT (p = 1))", &values));
        assert!(!may_part("p IN (1, 2)", &values));
        assert!(!may_part("p NOT IN (1, 2)", &values));
        assert!(may_part("p IS NULL", &values));
        assert!(!may_part("p IS NOT NULL", &values));
        assert!(!may_part("NOT (p IS NULL)", &values));
        assert!(may_part("p = 1 OR p IS NULL", &values));
        assert!(may_part("p = 1 OR x = 1", &values));
        assert!(!may_part("p = 1 AND x = 1", &values));
        assert!(may_part("NOT (p = 1 AND x = 1)", &values));
        assert!(!may_part("NOT (p = 1 OR x = 1)", &values));
        // A null partition value given as a null string works the same.
        let values = partition(&[("p", ScalarValue::null(&DataType::Utf8))]);
        assert!(!may_part("NOT (p = 1)", &values));
        assert!(may_part("p IS NULL", &values));
    }

    #[test]
    fn unconvertible_partition_values_are_unknown() {
        let values = partition(&[("p", string("abc"))]);
        assert!(may_part("p = 1", &values));
        assert!(may_part("NOT (p = 1)", &values));
    }

    fn stats(
        min: Option<i64>,
        max: Option<i64>,
        exact: bool,
        nulls: Option<u64>,
        rows: u64,
    ) -> ColumnStats {
        ColumnStats {
            min: min.map(int),
            max: max.map(int),
            min_exact: exact,
            max_exact: exact,
            null_count: nulls,
            row_count: rows,
        }
    }

    fn may_stats(text: &str, column_stats: ColumnStats) -> bool {
        let stats: HashMap<String, ColumnStats> = [("x".to_string(), column_stats)].into();
        bind_part(text).may_match_stats(&HashMap::new(), &stats)
    }

    #[test]
    fn prunes_by_exact_statistics() {
        let s = || stats(Some(10), Some(20), true, Some(0), 100);
        assert!(!may_stats("x = 5", s()));
        assert!(!may_stats("x = 21", s()));
        assert!(may_stats("x = 10", s()));
        assert!(may_stats("x = 15", s()));
        assert!(!may_stats("x < 10", s()));
        assert!(may_stats("x <= 10", s()));
        assert!(!may_stats("x > 20", s()));
        assert!(may_stats("x >= 20", s()));
        assert!(!may_stats("5 > x", s()));
        assert!(may_stats("x != 15", s()));
        assert!(!may_stats("x IN (1, 2, 30)", s()));
        assert!(may_stats("x IN (1, 12)", s()));
        assert!(may_stats("x NOT IN (1, 12)", s()));
        assert!(!may_stats("NOT (x >= 10)", s()));
        assert!(may_stats("NOT (x > 10)", s()));
        assert!(!may_stats("x = 5 AND s = 'a'", s()));
        assert!(may_stats("x = 5 OR s = 'a'", s()));
        assert!(!may_stats("x IS NULL", s()));
        assert!(may_stats("x IS NOT NULL", s()));
        // Out of range with nulls: NOT (x = 5) is true on the non-null rows.
        let with_nulls = stats(Some(10), Some(20), true, Some(3), 100);
        assert!(!may_stats("x = 5", with_nulls.clone()));
        assert!(may_stats("NOT (x = 5)", with_nulls.clone()));
        assert!(may_stats("x IS NULL", with_nulls));
    }

    #[test]
    fn not_equal_prunes_single_valued_columns() {
        let single = stats(Some(7), Some(7), true, Some(0), 10);
        assert!(!may_stats("x != 7", single.clone()));
        assert!(!may_stats("x NOT IN (7, 8)", single.clone()));
        assert!(may_stats("x != 8", single.clone()));
        assert!(!may_stats("NOT (x = 7)", single.clone()));
        // Nulls make `!=` unknown, which is not kept either.
        let with_nulls = stats(Some(7), Some(7), true, Some(4), 10);
        assert!(!may_stats("x != 7", with_nulls.clone()));
        assert!(!may_stats("NOT (x = 7)", with_nulls.clone()));
        assert!(may_stats("x = 7", with_nulls));
        // Unknown null count too.
        assert!(!may_stats(
            "x <> 7",
            stats(Some(7), Some(7), true, None, 10)
        ));
    }

    #[test]
    fn inexact_or_missing_bounds_keep_files() {
        let inexact = stats(Some(10), Some(20), false, Some(0), 100);
        assert!(may_stats("x = 5", inexact.clone()));
        assert!(may_stats("x > 100", inexact.clone()));
        assert!(may_stats(
            "x != 10",
            stats(Some(10), Some(10), false, Some(0), 1)
        ));
        let only_min = ColumnStats {
            min: Some(int(10)),
            min_exact: true,
            max: Some(int(20)),
            max_exact: false,
            null_count: Some(0),
            row_count: 100,
        };
        assert!(!may_stats("x < 10", only_min.clone()));
        assert!(may_stats("x > 30", only_min));
        assert!(may_stats("x = 5", stats(None, None, true, Some(0), 100)));
        assert!(may_stats("x = 5", stats(None, None, true, None, 0)));
        // A column without statistics is unknown.
        let stats: HashMap<String, ColumnStats> = HashMap::new();
        assert!(bind_part("x = 5").may_match_stats(&HashMap::new(), &stats));
    }

    #[test]
    fn all_null_and_null_count_statistics() {
        let all_null = stats(None, None, false, Some(50), 50);
        assert!(!may_stats("x = 5", all_null.clone()));
        assert!(!may_stats("x != 5", all_null.clone()));
        assert!(!may_stats("NOT (x = 5)", all_null.clone()));
        assert!(!may_stats("x IN (1, 2)", all_null.clone()));
        assert!(!may_stats("x NOT IN (1, 2)", all_null.clone()));
        assert!(may_stats("x IS NULL", all_null.clone()));
        assert!(!may_stats("x IS NOT NULL", all_null.clone()));
        assert!(!may_stats("NOT (x IS NULL)", all_null.clone()));
        assert!(may_stats("x = 5 OR x IS NULL", all_null));
        let no_nulls = stats(None, None, false, Some(0), 50);
        assert!(!may_stats("x IS NULL", no_nulls.clone()));
        assert!(may_stats("x IS NOT NULL", no_nulls.clone()));
        assert!(may_stats("NOT (x IS NOT NULL) OR x = 1", no_nulls));
        let unknown = stats(None, None, false, None, 50);
        assert!(may_stats("x IS NULL", unknown.clone()));
        assert!(may_stats("x IS NOT NULL", unknown));
        // A default (zero-row) statistics record proves nothing about nulls being everywhere.
        assert!(may_stats("x = 5", ColumnStats::default()));
    }

    #[test]
    fn float_bounds_are_not_trusted() {
        let float = |v: f64| ScalarValue::new(Arc::new(Float64Array::from(vec![v])));
        let stats: HashMap<String, ColumnStats> = [(
            "f".to_string(),
            ColumnStats {
                min: Some(float(1.0)),
                max: Some(float(2.0)),
                min_exact: true,
                max_exact: true,
                null_count: Some(0),
                row_count: 10,
            },
        )]
        .into();
        assert!(bind_part("f > 5").may_match_stats(&HashMap::new(), &stats));
        assert!(!bind_part("f IS NULL").may_match_stats(&HashMap::new(), &stats));
    }

    #[test]
    fn partition_values_win_over_statistics() {
        let by_column: HashMap<String, ColumnStats> =
            [("p".to_string(), stats(Some(1), Some(1), true, Some(0), 10))].into();
        let values = partition(&[("p", int(2))]);
        let p = bind_part("p = 2");
        assert!(p.may_match_stats(&values, &by_column));
        assert!(!p.may_match_stats(&HashMap::new(), &by_column));
        let mixed: HashMap<String, ColumnStats> = [(
            "x".to_string(),
            stats(Some(10), Some(20), true, Some(0), 10),
        )]
        .into();
        assert!(!bind_part("p = 2 AND x > 30").may_match_stats(&values, &mixed));
        assert!(bind_part("p = 2 AND x > 15").may_match_stats(&values, &mixed));
        assert!(!bind_part("p = 3 OR x > 30").may_match_stats(&values, &mixed));
    }

    #[test]
    fn tri_logic_tables() {
        let t = Tri::TRUE;
        let f = Tri::FALSE;
        let n = Tri::NULL;
        assert_eq!(t.and(n), n);
        assert_eq!(f.and(n), f);
        assert_eq!(t.or(n), t);
        assert_eq!(f.or(n), n);
        assert_eq!(n.not(), n);
        assert_eq!(t.not(), f);
        assert_eq!(Tri::UNKNOWN.not(), Tri::UNKNOWN);
        assert_eq!(f.and(Tri::UNKNOWN), f);
        assert_eq!(t.or(Tri::UNKNOWN), t);
        assert!(Tri::UNKNOWN.and(t).can_be_true());
    }

    // -------------------------------------------------------------------------------- to_sql

    #[test]
    fn renders_sql_for_each_type() {
        assert_eq!(bind("x = 1").to_sql(), "\"x\" = 1");
        assert_eq!(bind("1 > x").to_sql(), "\"x\" < 1");
        assert_eq!(bind("x != -3").to_sql(), "\"x\" <> -3");
        assert_eq!(
            bind("u = '18446744073709551615'").to_sql(),
            "\"u\" = 18446744073709551615"
        );
        assert_eq!(
            bind("\"odd \"\"name\"\"\" >= 2").to_sql(),
            "\"odd \"\"name\"\"\" >= 2"
        );
        assert_eq!(bind("name = 'it''s'").to_sql(), "\"name\" = 'it''s'");
        assert_eq!(bind("f = 1").to_sql(), "\"f\" = 1.0");
        assert_eq!(bind("f = 0.1").to_sql(), "\"f\" = 0.1");
        assert_eq!(bind("f = 1e300").to_sql(), "\"f\" = 1e300");
        assert_eq!(bind("f < -2.5e-10").to_sql(), "\"f\" < -2.5e-10");
        assert_eq!(bind("f = 'NaN'").to_sql(), "\"f\" = CAST('NaN' AS DOUBLE)");
        assert_eq!(
            bind("f < 'inf'").to_sql(),
            "\"f\" < CAST('Infinity' AS DOUBLE)"
        );
        assert_eq!(
            bind("f > '-inf'").to_sql(),
            "\"f\" > CAST('-Infinity' AS DOUBLE)"
        );
        assert_eq!(bind("f32 = 0.1").to_sql(), "\"f32\" = CAST('0.1' AS FLOAT)");
        assert_eq!(bind("flag = true").to_sql(), "\"flag\" = TRUE");
        assert_eq!(bind("flag <> 'false'").to_sql(), "\"flag\" <> FALSE");
        assert_eq!(
            bind("day = '2025-01-31'").to_sql(),
            "\"day\" = DATE '2025-01-31'"
        );
        assert_eq!(
            bind("ts = '2025-01-01 10:00:00.5'").to_sql(),
            "\"ts\" = TIMESTAMP '2025-01-01 10:00:00.500000'"
        );
        assert_eq!(
            bind("tstz > '2025-01-01T12:00:00+02:00'").to_sql(),
            "\"tstz\" > TIMESTAMPTZ '2025-01-01 10:00:00.000000+00:00'"
        );
        assert_eq!(
            bind("amount = 123.45").to_sql(),
            "\"amount\" = CAST('123.45' AS DECIMAL(10,2))"
        );
        assert_eq!(bind("dict = 'a'").to_sql(), "\"dict\" = 'a'");
        assert_eq!(bind("x IN (1, 2)").to_sql(), "\"x\" IN (1, 2)");
        assert_eq!(bind("x NOT IN (1)").to_sql(), "\"x\" NOT IN (1)");
        assert_eq!(
            bind("x NOT IN (1, NULL)").to_sql(),
            "(\"x\" NOT IN (1) AND CAST(NULL AS BOOLEAN))"
        );
        assert_eq!(bind("x IS NULL").to_sql(), "\"x\" IS NULL");
        assert_eq!(bind("x IS NOT NULL").to_sql(), "\"x\" IS NOT NULL");
        assert_eq!(
            bind("x = 1 OR NOT name = 'a' AND x IS NULL").to_sql(),
            "(\"x\" = 1 OR ((NOT \"name\" = 'a') AND \"x\" IS NULL))"
        );
        assert_eq!(bind("x = NULL").to_sql(), "CAST(NULL AS BOOLEAN)");
        assert_eq!(BoundPredicate::Constant(Some(true)).to_sql(), "TRUE");
        assert_eq!(BoundPredicate::Constant(Some(false)).to_sql(), "FALSE");
        let empty = BoundPredicate::In {
            column: "x".into(),
            values: vec![],
            negated: false,
        };
        assert_eq!(empty.to_sql(), "FALSE");
    }

    #[test]
    fn renders_other_types_with_casts() {
        let small = ScalarValue::new(Arc::new(Int8Array::from(vec![-4])));
        assert_eq!(sql_literal(&small), "-4");
        let decimal = ScalarValue::new(Arc::new(
            Decimal128Array::from(vec![-5])
                .with_precision_and_scale(5, 3)
                .unwrap(),
        ));
        assert_eq!(sql_literal(&decimal), "CAST('-0.005' AS DECIMAL(5,3))");
        let float = ScalarValue::new(Arc::new(Float32Array::from(vec![f32::NAN])));
        assert_eq!(sql_literal(&float), "CAST('NaN' AS FLOAT)");
        let ns = ScalarValue::new(Arc::new(arrow::array::TimestampNanosecondArray::from(
            vec![1_000_000_001],
        )));
        assert_eq!(
            sql_literal(&ns),
            "TIMESTAMP '1970-01-01 00:00:01.000000001'"
        );
        let binary = ScalarValue::new(Arc::new(arrow::array::BinaryArray::from(vec![
            b"ab".as_ref(),
        ])));
        assert_eq!(sql_literal(&binary), "CAST('ab' AS BYTEA)");
        let time = ScalarValue::new(Arc::new(arrow::array::Time64MicrosecondArray::from(vec![
            3_600_000_000,
        ])));
        assert_eq!(sql_literal(&time), "CAST('01:00:00' AS TIME)");
    }

    #[test]
    fn decimal_text_round_trips() {
        let d = DecimalText::parse("-012.3400").unwrap();
        assert_eq!(
            d,
            DecimalText {
                negative: true,
                digits: "1234".into(),
                exponent: -2
            }
        );
        assert_eq!(d.to_plain(), "-12.34");
        assert_eq!(DecimalText::parse("1.5e3").unwrap().to_plain(), "1500");
        assert_eq!(DecimalText::parse("-1e-3").unwrap().to_plain(), "-0.001");
        assert_eq!(DecimalText::parse("-0.00").unwrap().to_plain(), "0");
        assert_eq!(DecimalText::parse(".5").unwrap().to_plain(), "0.5");
        assert!(DecimalText::parse("abc").is_none());
        assert!(DecimalText::parse("1.2.3").is_none());
        assert!(DecimalText::parse("-").is_none());
        assert!(DecimalText::parse("").is_none());
    }
}
