//! Rendering a [`BoundPredicate`] as typed SQL for DuckDB and DataFusion.

use arrow::array::AsArray;
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Float16Type, Float32Type, Float64Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};

use crate::expr::BoundPredicate;
use crate::value::ScalarValue;

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

impl BoundPredicate {
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
