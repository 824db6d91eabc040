//! Parsing: the filter text is a SQL `WHERE` expression, parsed by `sqlparser` (generic
//! dialect) and converted to a [`Predicate`]. Errors name the token or expression at fault and
//! its position (1-based, in characters; `line L, column C` for text of several lines).

use sqlparser::ast::{
    BinaryOperator, DataType as SqlDataType, Expr, FunctionArguments, ObjectNamePart, Spanned,
    UnaryOperator, Value,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, Tokenizer};

use crate::error::Result;
use crate::expr::{CmpOp, Literal, Predicate, invalid};

/// Deepest nesting of parentheses and `NOT`s accepted by the parser.
pub const MAX_DEPTH: usize = 128;

impl Predicate {
    /// Parses a filter expression (a SQL `WHERE` condition; the forms accepted are listed in
    /// the [module documentation](crate::expr)).
    ///
    /// Errors with [`Error::InvalidFilter`](crate::Error::InvalidFilter) naming the offending
    /// token or expression and its position on malformed input: empty text, unbalanced
    /// parentheses, unterminated strings, trailing tokens, comparisons between two columns or
    /// two literals, SQL the filter language does not have (functions, arithmetic, subqueries).
    pub fn parse(text: &str) -> Result<Predicate> {
        if text.trim().is_empty() {
            return Err(invalid(text, "the filter is empty"));
        }
        let dialect = GenericDialect {};
        let fail = |e: ParserError| invalid(text, parser_message(text, e));
        let tokens = Tokenizer::new(&dialect, text)
            .tokenize()
            .map_err(|e| fail(ParserError::TokenizerError(e.to_string())))?;
        if nesting(&tokens) > MAX_DEPTH {
            return Err(fail(ParserError::RecursionLimitExceeded));
        }
        let mut parser = Parser::new(&dialect)
            .with_recursion_limit(MAX_DEPTH)
            .try_with_sql(text)
            .map_err(fail)?;
        let expr = parser.parse_expr().map_err(fail)?;
        // sqlparser reads an unquoted keyword where a condition starts as a column name.
        if let Some((word, at)) = keyword_as_column(&expr) {
            return Err(invalid(
                text,
                format!(
                    "expected a condition, found the keyword {word} at {} (double-quote a column \
                     named {word})",
                    position(text, at)
                ),
            ));
        }
        let next = parser.peek_token();
        if next.token != Token::EOF {
            let at = position(text, next.span.start);
            let message = if next.token == Token::RParen {
                format!("unbalanced ')' at {at}")
            } else {
                format!(
                    "unexpected {} at {at} after a complete condition (missing AND/OR?)",
                    next.token
                )
            };
            return Err(invalid(text, message));
        }
        Converter { text }.condition(&expr)
    }
}

impl Predicate {
    /// The predicate of a sqlparser expression already parsed (a SQL query's `WHERE`
    /// conjunct), when it is in the filter language; `text` names it in errors.
    pub fn from_sql(text: &str, expr: &Expr) -> Result<Predicate> {
        Converter { text }.condition(expr)
    }
}

/// Converts sqlparser's expression tree to a [`Predicate`].
struct Converter<'a> {
    text: &'a str,
}

/// One side of a comparison.
enum Operand {
    Column(String),
    Literal(Literal),
}

impl Converter<'_> {
    fn error(&self, message: String) -> crate::Error {
        invalid(self.text, message)
    }

    /// Where `expr` starts, for a message.
    fn at(&self, expr: &Expr) -> String {
        position(self.text, expr.span().start)
    }

    fn condition(&self, expr: &Expr) -> Result<Predicate> {
        match expr {
            Expr::Nested(inner) => self.condition(inner),
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::And => Ok(Predicate::And(
                    Box::new(self.condition(left)?),
                    Box::new(self.condition(right)?),
                )),
                BinaryOperator::Or => Ok(Predicate::Or(
                    Box::new(self.condition(left)?),
                    Box::new(self.condition(right)?),
                )),
                _ => match comparison(op) {
                    Some(op) => self.compare(left, op, right),
                    None => Err(self.unsupported(expr)),
                },
            },
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr: inner,
            } => Ok(Predicate::Not(Box::new(self.condition(inner)?))),
            Expr::InList {
                expr: column,
                list,
                negated,
            } => {
                let column = self.column(column, "IN")?;
                if list.is_empty() {
                    return Err(self.error(format!(
                        "the IN list of {column} at {} needs at least one literal",
                        self.at(expr)
                    )));
                }
                let values = list
                    .iter()
                    .map(|item| match self.operand(item)? {
                        Operand::Literal(literal) => Ok(literal),
                        Operand::Column(other) => Err(self.error(format!(
                            "expected a literal in the IN list of {column}, found column {other} \
                             at {}",
                            self.at(item)
                        ))),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Predicate::In {
                    column,
                    values,
                    negated: *negated,
                })
            }
            Expr::IsNull(column) => Ok(Predicate::IsNull {
                column: self.column(column, "IS NULL")?,
                negated: false,
            }),
            Expr::IsNotNull(column) => Ok(Predicate::IsNull {
                column: self.column(column, "IS NOT NULL")?,
                negated: true,
            }),
            Expr::Between {
                expr: column,
                negated,
                low,
                high,
            } => {
                // `x BETWEEN a AND b` is `x >= a AND x <= b`, with SQL's null semantics.
                let range = Predicate::And(
                    Box::new(self.compare(column, CmpOp::GtEq, low)?),
                    Box::new(self.compare(column, CmpOp::LtEq, high)?),
                );
                Ok(if *negated {
                    Predicate::Not(Box::new(range))
                } else {
                    range
                })
            }
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => Err(self.error(format!(
                "expected a comparison operator, IN, NOT IN, BETWEEN or IS after column {expr} \
                 at {}",
                self.at(expr)
            ))),
            _ => Err(self.unsupported(expr)),
        }
    }

    fn unsupported(&self, expr: &Expr) -> crate::Error {
        self.error(format!(
            "unsupported expression {expr} at {}: a filter compares a column with a literal \
             (=, <>, <, <=, >, >=, IN, BETWEEN, IS NULL), combined with AND, OR and NOT",
            self.at(expr)
        ))
    }

    /// `left op right`, with one column and one literal, normalised to `column op literal`.
    fn compare(&self, left: &Expr, op: CmpOp, right: &Expr) -> Result<Predicate> {
        match (self.operand(left)?, self.operand(right)?) {
            (Operand::Column(column), Operand::Literal(value)) => {
                Ok(Predicate::Compare { column, op, value })
            }
            (Operand::Literal(value), Operand::Column(column)) => Ok(Predicate::Compare {
                column,
                op: op.flipped(),
                value,
            }),
            (Operand::Column(a), Operand::Column(b)) => Err(self.error(format!(
                "cannot compare column {a} with column {b} at {}: one side of a comparison must \
                 be a literal",
                self.at(right)
            ))),
            (Operand::Literal(a), Operand::Literal(b)) => Err(self.error(format!(
                "cannot compare two literals ({a} and {b} at {}): one side of a comparison must \
                 be a column",
                self.at(right)
            ))),
        }
    }

    /// The column of a condition that needs one (`x IN (..)`, `x IS NULL`).
    fn column(&self, expr: &Expr, what: &str) -> Result<String> {
        match self.operand(expr)? {
            Operand::Column(column) => Ok(column),
            Operand::Literal(literal) => Err(self.error(format!(
                "expected a column before {what}, found the literal {literal} at {}",
                self.at(expr)
            ))),
        }
    }

    fn operand(&self, expr: &Expr) -> Result<Operand> {
        match expr {
            Expr::Nested(inner) => self.operand(inner),
            Expr::Identifier(ident) => {
                if ident.value.is_empty() {
                    return Err(self.error(format!("empty quoted identifier at {}", self.at(expr))));
                }
                Ok(Operand::Column(ident.value.clone()))
            }
            Expr::CompoundIdentifier(_) => Err(self.error(format!(
                "qualified column name {expr} at {}: name the column alone (double-quote a \
                 name that holds a dot)",
                self.at(expr)
            ))),
            // `user`, `current_date`, ...: SQL reads these words as functions called without
            // parentheses; in a filter, which has no functions, they are column names.
            Expr::Function(function)
                if matches!(function.args, FunctionArguments::None)
                    && function.name.0.len() == 1 =>
            {
                match &function.name.0[0] {
                    ObjectNamePart::Identifier(ident) => Ok(Operand::Column(ident.value.clone())),
                    _ => Err(self.unsupported(expr)),
                }
            }
            Expr::Value(value) => self
                .literal(&value.value, expr, false)
                .map(Operand::Literal),
            Expr::UnaryOp {
                op: op @ (UnaryOperator::Minus | UnaryOperator::Plus),
                expr: inner,
            } => match inner.as_ref() {
                Expr::Value(value) if matches!(value.value, Value::Number(..)) => self
                    .literal(&value.value, expr, *op == UnaryOperator::Minus)
                    .map(Operand::Literal),
                _ => Err(self.unsupported(expr)),
            },
            // `DATE '2025-01-01'`, `TIMESTAMP '...'`: typed literals the binder compares with
            // date and timestamp columns only; other typed strings are not in the language.
            Expr::TypedString(typed) => match (&typed.data_type, &typed.value.value) {
                (SqlDataType::Date, Value::SingleQuotedString(s)) => {
                    Ok(Operand::Literal(Literal::Date(s.clone())))
                }
                (SqlDataType::Timestamp(_, _), Value::SingleQuotedString(s)) => {
                    Ok(Operand::Literal(Literal::Timestamp(s.clone())))
                }
                _ => Err(self.unsupported(expr)),
            },
            _ => Err(self.unsupported(expr)),
        }
    }

    fn literal(&self, value: &Value, expr: &Expr, negative: bool) -> Result<Literal> {
        match value {
            Value::Number(digits, long) => {
                if *long {
                    return Err(self.unsupported(expr));
                }
                let word = if negative {
                    format!("-{digits}")
                } else {
                    digits.clone()
                };
                number(&word)
                    .map_err(|message| self.error(format!("{message} at {}", self.at(expr))))
            }
            Value::SingleQuotedString(s) => Ok(Literal::Str(s.clone())),
            Value::Boolean(b) => Ok(Literal::Bool(*b)),
            Value::Null => Ok(Literal::Null),
            _ => Err(self.unsupported(expr)),
        }
    }
}

/// A number as written: an integer when it has no fraction or exponent.
fn number(word: &str) -> std::result::Result<Literal, String> {
    let is_float = word.contains(['.', 'e', 'E']);
    if is_float {
        let value: f64 = word
            .parse()
            .map_err(|_| format!("malformed number '{word}'"))?;
        if !value.is_finite() {
            return Err(format!(
                "number '{word}' is out of range for a 64-bit float"
            ));
        }
        return Ok(Literal::Float(value));
    }
    word.parse::<i64>().map(Literal::Int).map_err(|_| {
        format!(
            "integer '{word}' is out of range for a 64-bit integer (write it as a string, \
             '{word}', to compare it with an unsigned column)"
        )
    })
}

/// The deepest nesting of parentheses and `NOT`s in the tokens. Checked before parsing:
/// sqlparser backtracks over some errors, so its own recursion limit can surface as a
/// misleading message.
fn nesting(tokens: &[Token]) -> usize {
    let (mut parens, mut nots, mut deepest) = (0usize, 0usize, 0usize);
    for token in tokens {
        match token {
            Token::Whitespace(_) => continue,
            Token::LParen => parens += 1,
            Token::RParen => parens = parens.saturating_sub(1),
            Token::Word(word)
                if word.quote_style.is_none() && word.value.eq_ignore_ascii_case("NOT") =>
            {
                nots += 1;
                deepest = deepest.max(parens + nots);
                continue;
            }
            _ => {}
        }
        nots = 0;
        deepest = deepest.max(parens);
    }
    deepest
}

/// The keywords of the filter language, which sqlparser accepts as bare column names.
const KEYWORDS: &[&str] = &[
    "AND", "OR", "NOT", "IN", "IS", "NULL", "BETWEEN", "TRUE", "FALSE",
];

/// The first unquoted keyword used as a column in `expr` (`AND x = 1`, `x = 1 AND AND`).
fn keyword_as_column(expr: &Expr) -> Option<(String, Location)> {
    match expr {
        Expr::Identifier(ident)
            if ident.quote_style.is_none()
                && KEYWORDS.contains(&ident.value.to_ascii_uppercase().as_str()) =>
        {
            Some((ident.value.to_ascii_uppercase(), ident.span.start))
        }
        Expr::BinaryOp { left, right, .. } => {
            keyword_as_column(left).or_else(|| keyword_as_column(right))
        }
        Expr::UnaryOp { expr, .. } | Expr::Nested(expr) => keyword_as_column(expr),
        Expr::IsNull(expr) | Expr::IsNotNull(expr) => keyword_as_column(expr),
        Expr::InList { expr, .. } | Expr::Between { expr, .. } => keyword_as_column(expr),
        _ => None,
    }
}

fn comparison(op: &BinaryOperator) -> Option<CmpOp> {
    Some(match op {
        BinaryOperator::Eq => CmpOp::Eq,
        BinaryOperator::NotEq => CmpOp::NotEq,
        BinaryOperator::Lt => CmpOp::Lt,
        BinaryOperator::LtEq => CmpOp::LtEq,
        BinaryOperator::Gt => CmpOp::Gt,
        BinaryOperator::GtEq => CmpOp::GtEq,
        _ => return None,
    })
}

/// A location in the text for a message: `position N` on the first line of a one-line
/// filter, `line L, column C` otherwise.
fn position(text: &str, at: Location) -> String {
    if at.line <= 1 && !text.contains('\n') {
        format!("position {}", at.column)
    } else {
        format!("line {}, column {}", at.line, at.column)
    }
}

/// sqlparser's message in fsk's words: `at Line: 1, Column: 7` becomes `at position 7`, the
/// end of input is named as such.
fn parser_message(text: &str, error: ParserError) -> String {
    let raw = match error {
        ParserError::RecursionLimitExceeded => {
            return format!(
                "the filter is nested too deeply (more than {MAX_DEPTH} levels of parentheses \
                 and NOT)"
            );
        }
        ParserError::TokenizerError(message) | ParserError::ParserError(message) => message,
    };
    let (message, at) = match (raw.rsplit_once(" at Line: "), location_of(&raw)) {
        (Some((message, _)), Some((line, column))) => (
            message.to_string(),
            Some(position(text, Location { line, column })),
        ),
        _ => (raw.clone(), None),
    };
    let found_char = |at: &Option<String>| {
        at.as_ref().and_then(|_| {
            let (line, column) = location_of(&raw)?;
            let text_line = text.lines().nth(line.saturating_sub(1) as usize)?;
            text_line.chars().nth(column.saturating_sub(1) as usize)
        })
    };
    let message = if message.starts_with("Expected close delimiter '\"'") {
        "unterminated quoted identifier starting".to_string()
    } else if message.starts_with("No infix parser for token") {
        match found_char(&at) {
            Some(c) => format!("unexpected {c:?}"),
            None => message,
        }
    } else {
        message
    };
    // A column named like a SQL keyword (`interval`, `exists`) does not parse bare.
    let hint = if message.starts_with("Expected: an expression") {
        " (double-quote a column whose name is a SQL keyword: \"interval\")"
    } else {
        ""
    };
    let message = message
        .replace("Expected: ", "expected ")
        .replace(", found: EOF", ", found the end of the filter")
        .replace(", found: ", ", found ");
    let message = match message.chars().next() {
        Some(first) if first.is_uppercase() && !message.starts_with("IN ") => {
            first.to_lowercase().collect::<String>() + &message[first.len_utf8()..]
        }
        _ => message,
    };
    match at {
        Some(at) if !message.ends_with("end of the filter") => format!("{message} at {at}{hint}"),
        _ => format!("{message}{hint}"),
    }
}

/// The `Line: L, Column: C` at the end of a sqlparser message.
fn location_of(message: &str) -> Option<(u64, u64)> {
    let (_, place) = message.rsplit_once(" at Line: ")?;
    let (line, column) = place.split_once(", Column: ")?;
    Some((line.trim().parse().ok()?, column.trim().parse().ok()?))
}
