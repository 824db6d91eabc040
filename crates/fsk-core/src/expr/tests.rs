//! Unit tests of the filter language: parse, bind, evaluate, prune, render.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Schema, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;

use super::*;
use crate::dataset::stats::ColumnStats;
use crate::expr::bind::DecimalText;
use crate::expr::prune::Tri;
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
    let dict: DictionaryArray<Int32Type> = vec![Some("a"), None, Some("b")].into_iter().collect();
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
    assert!(parse_error("x = 1 y").contains("unexpected y at position 7"));
    assert!(parse_error("x = 1 OR").contains("end of the filter"));
    assert!(parse_error("(x = 1").contains("expected ), found the end of the filter"));
    assert!(parse_error("x = 1)").contains("unbalanced ')' at position 6"));
    assert!(parse_error("name = 'abc").contains("unterminated string literal at position 8"));
    assert!(
        parse_error("\"abc = 1").contains("unterminated quoted identifier starting at position 1")
    );
    assert!(parse_error("a = b").contains("cannot compare column a with column b"));
    assert!(parse_error("1 = 2").contains("cannot compare two literals"));
    assert!(parse_error("x IN ()").contains("found ) at position 7"));
    assert!(parse_error("x IN (1, )").contains("found ) at position 10"));
    assert!(parse_error("x IN (1 2)").contains("expected ), found 2 at position 9"));
    assert!(parse_error("x IN 1").contains("expected (, found 1 at position 6"));
    assert!(parse_error("x IS 5").contains("found 5 at position 6"));
    assert!(parse_error("x NOT 5").contains("NOT at position 3"));
    assert!(parse_error("x ! 5").contains("unexpected '!' at position 3"));
    assert!(parse_error("x = 1e").contains("e at position 6"));
    assert!(parse_error("x = 12abc").contains("abc at position 7"));
    assert!(parse_error("x = 1.2.3").contains(".3 at position 8"));
    assert!(parse_error("x = 99999999999999999999").contains("out of range"));
    assert!(parse_error("x").contains("after column x at position 1"));
    assert!(parse_error("x 1").contains("1 at position 3"));
    assert!(parse_error("AND x = 1").contains("keyword AND at position 1"));
    assert!(parse_error("x = 1 AND AND").contains("keyword AND at position 11"));
    assert!(parse_error("x = ;").contains("found ; at position 5"));
    assert!(parse_error("\"\" = 1").contains("empty quoted identifier"));
    assert!(parse_error("x + 1 = 2").contains("unsupported expression x + 1 at position 1"));
    assert!(parse_error("lower(name) = 'a'").contains("unsupported expression lower(name)"));
    assert!(parse_error("x IN (SELECT 1)").contains("unsupported expression"));
    assert!(parse_error("t.x = 1").contains("qualified column name t.x"));
    assert!(parse_error("x IN (1, y)").contains("found column y at position 10"));
    assert!(parse_error("1 IS NULL").contains("expected a column before IS NULL"));
    assert!(parse_error("x = 1\nAND y").contains("after column y at line 2, column 5"));
    assert!(
        parse_error(&format!("{}x = 1{}", "(".repeat(500), ")".repeat(500)))
            .contains("nested too deeply")
    );
    assert!(parse_error(&format!("{}x = 1", "NOT ".repeat(500))).contains("nested too deeply"));
}

#[test]
fn parses_sql_forms_beyond_the_original_grammar() {
    assert_eq!(
        parse("x BETWEEN 1 AND 5"),
        and(
            cmp("x", CmpOp::GtEq, Literal::Int(1)),
            cmp("x", CmpOp::LtEq, Literal::Int(5))
        )
    );
    assert_eq!(
        parse("x NOT BETWEEN 1 AND 5"),
        not(and(
            cmp("x", CmpOp::GtEq, Literal::Int(1)),
            cmp("x", CmpOp::LtEq, Literal::Int(5))
        ))
    );
    assert_eq!(
        parse("day >= DATE '2025-01-01'"),
        cmp("day", CmpOp::GtEq, Literal::Date("2025-01-01".into()))
    );
    assert_eq!(
        parse("ts < TIMESTAMP '2025-01-01 12:00:00'"),
        cmp(
            "ts",
            CmpOp::Lt,
            Literal::Timestamp("2025-01-01 12:00:00".into())
        )
    );
    assert_eq!(parse("x = +3"), cmp("x", CmpOp::Eq, Literal::Int(3)));
    assert_eq!(parse("(x) = 3"), cmp("x", CmpOp::Eq, Literal::Int(3)));
    assert_eq!(
        parse("\"And\" = 1"),
        cmp("And", CmpOp::Eq, Literal::Int(1)),
        "a quoted keyword is a column"
    );
    assert_eq!(
        parse("user = 'bob' AND current_date >= '2025-01-01'"),
        and(
            cmp("user", CmpOp::Eq, Literal::Str("bob".into())),
            cmp(
                "current_date",
                CmpOp::GtEq,
                Literal::Str("2025-01-01".into())
            )
        ),
        "words SQL calls as functions without parentheses are columns in a filter"
    );
    assert!(parse_error("interval > 5").contains("double-quote"));
    assert_eq!(
        parse("\"interval\" > 5"),
        cmp("interval", CmpOp::Gt, Literal::Int(5))
    );
    assert_eq!(
        parse("Name = 'a'"),
        cmp("Name", CmpOp::Eq, Literal::Str("a".into())),
        "identifiers keep their case"
    );
    // Typed literals keep their type: a date compares with dates and timestamps only.
    assert_eq!(eval("day = DATE '2025-01-02'"), eval("day = '2025-01-02'"));
    let err = parse("x = DATE '5'")
        .bind("x = DATE '5'", &schema())
        .unwrap_err();
    assert!(
        err.to_string().contains("a date or timestamp column"),
        "{err}"
    );
    assert!(parse_error("x = UUID 'abc'").contains("unsupported expression"));
    // BETWEEN binds and evaluates like the two comparisons, NULL bounds included.
    let mask = eval("x BETWEEN 2 AND 3");
    assert_eq!(mask, eval("x >= 2 AND x <= 3"));
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
