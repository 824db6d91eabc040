//! Binding: a [`Predicate`] checked against a schema, every literal coerced to its column's
//! Arrow type.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, LargeStringArray, StringArray,
    StringViewArray, UInt64Array, make_array,
};
use arrow::datatypes::{DataType, Schema};

use crate::error::{Error, Result};
use crate::expr::{BoundPredicate, Literal, Predicate, invalid};
use crate::value::ScalarValue;

impl Predicate {
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
pub(crate) fn value_type(data_type: &DataType) -> &DataType {
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
        Literal::Date(_) | Literal::Timestamp(_) => format!("the literal {literal}"),
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
pub(crate) fn relabel(array: &ArrayRef, to: &DataType) -> Option<ArrayRef> {
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
    // A typed literal keeps its type: it compares with date and timestamp columns only, as
    // its text would.
    if let Literal::Date(s) | Literal::Timestamp(s) = literal {
        if !matches!(
            target,
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
        ) {
            return Err(invalid(
                text,
                format!(
                    "cannot compare column {column:?} of type {column_type} with {}: a date or \
                     timestamp column is expected",
                    describe_literal(literal)
                ),
            ));
        }
        return coerce(text, column, column_type, &Literal::Str(s.clone()));
    }
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
                Literal::Bool(_) | Literal::Null | Literal::Date(_) | Literal::Timestamp(_) => {
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
                Literal::Bool(_) | Literal::Null | Literal::Date(_) | Literal::Timestamp(_) => {
                    return Err(fail("a number is expected"));
                }
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
                Literal::Bool(_) | Literal::Null | Literal::Date(_) | Literal::Timestamp(_) => {
                    return Err(fail("a number is expected"));
                }
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
pub(crate) struct DecimalText {
    pub(crate) negative: bool,
    pub(crate) digits: String,
    pub(crate) exponent: i64,
}

impl DecimalText {
    pub(crate) fn parse(text: &str) -> Option<DecimalText> {
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
    pub(crate) fn to_plain(&self) -> String {
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
