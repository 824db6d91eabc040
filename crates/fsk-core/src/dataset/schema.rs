//! Schema compatibility: lossless promotion only.
//!
//! A source type may be widened into a dataset's type (int32 into int64, float32 into
//! float64, utf8 into large utf8, a decimal into a wider decimal, null into anything); every
//! other difference is an [`Error::SchemaMismatch`] naming the columns and both types.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};

/// Whether values of `from` convert to `to` without loss, for every possible value.
pub fn can_promote(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if from == to {
        return true;
    }
    match (from, to) {
        (Null, _) => true,
        (Int8, Int16 | Int32 | Int64)
        | (Int16, Int32 | Int64)
        | (Int32, Int64)
        | (UInt8, UInt16 | UInt32 | UInt64 | Int16 | Int32 | Int64)
        | (UInt16, UInt32 | UInt64 | Int32 | Int64)
        | (UInt32, UInt64 | Int64)
        | (Float16, Float32 | Float64)
        | (Float32, Float64)
        | (Utf8, LargeUtf8 | Utf8View)
        | (Utf8View, Utf8 | LargeUtf8)
        | (LargeUtf8, Utf8View)
        | (Binary, LargeBinary | BinaryView)
        | (BinaryView, LargeBinary)
        | (Date32, Date64) => true,
        (Decimal128(p1, s1), Decimal128(p2, s2)) | (Decimal128(p1, s1), Decimal256(p2, s2)) => {
            s2 >= s1 && (*p2 as i16 - *s2 as i16) >= (*p1 as i16 - *s1 as i16)
        }
        (Dictionary(_, value), target) => can_promote(value, target),
        (List(a), List(b)) | (List(a), LargeList(b)) | (LargeList(a), LargeList(b)) => {
            can_promote(a.data_type(), b.data_type())
        }
        (Struct(a), Struct(b)) => {
            a.len() == b.len()
                && b.iter().all(|bf| {
                    a.iter()
                        .find(|af| af.name() == bf.name())
                        .is_some_and(|af| can_promote(af.data_type(), bf.data_type()))
                })
        }
        (Timestamp(u1, z1), Timestamp(u2, z2)) => u1 == u2 && z1 == z2,
        _ => false,
    }
}

/// Whether two key types match: equal, or one integer type losslessly widens into the other
/// (never float against integer, never string against number).
pub fn keys_compatible(a: &DataType, b: &DataType) -> bool {
    a == b
        || (a.is_integer() && b.is_integer() && (can_promote(a, b) || can_promote(b, a)))
        || matches!(
            (a, b),
            (
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
        )
}

fn names(schema: &Schema) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// Checks that `source` fits `target`: the same column names (in any order) and types that
/// promote losslessly. `what` names the operation for the message.
pub fn check_fits(source: &Schema, target: &Schema, what: &str) -> Result<()> {
    let missing: Vec<String> = names(target)
        .into_iter()
        .filter(|n| source.field_with_name(n).is_err())
        .collect();
    let extra: Vec<String> = names(source)
        .into_iter()
        .filter(|n| target.field_with_name(n).is_err())
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing from the input: {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            parts.push(format!("not in the dataset: {}", extra.join(", ")));
        }
        let mut columns = missing;
        columns.extend(extra);
        return Err(Error::SchemaMismatch {
            message: format!("{what}: columns differ ({})", parts.join("; ")),
            columns,
        });
    }
    let mut bad = Vec::new();
    let mut columns = Vec::new();
    for field in target.fields() {
        let src = source.field_with_name(field.name()).expect("checked above");
        if !can_promote(src.data_type(), field.data_type()) {
            bad.push(format!(
                "column {} is {} in the input but {} in the dataset",
                field.name(),
                src.data_type(),
                field.data_type()
            ));
            columns.push(field.name().clone());
        }
    }
    if !bad.is_empty() {
        return Err(Error::SchemaMismatch {
            message: format!(
                "{what}: {} (only lossless widening is allowed)",
                bad.join("; ")
            ),
            columns,
        });
    }
    Ok(())
}

/// `column` as `field`'s type (a no-op when it already is).
pub fn cast_column(column: &ArrayRef, field: &Field) -> Result<ArrayRef> {
    if column.data_type() == field.data_type() {
        return Ok(Arc::clone(column));
    }
    arrow::compute::cast(column, field.data_type()).map_err(|e| {
        Error::arrow(
            format!("casting column {} to {}", field.name(), field.data_type()),
            e,
        )
    })
}

/// Reorders and casts `batch` into `target` (which [`check_fits`] accepted).
pub fn conform_batch(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().as_ref() == target.as_ref() {
        return Ok(batch.clone());
    }
    let columns = target
        .fields()
        .iter()
        .map(|field| {
            let column = batch.column_by_name(field.name()).ok_or_else(|| {
                Error::column_not_found(field.name(), "input", batch.schema().as_ref())
            })?;
            cast_column(column, field)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    for (field, column) in target.fields().iter().zip(&columns) {
        if !field.is_nullable() && column.null_count() > 0 {
            return Err(Error::SchemaMismatch {
                message: format!(
                    "column {} is not nullable in the dataset but the input has nulls",
                    field.name()
                ),
                columns: vec![field.name().clone()],
            });
        }
    }
    RecordBatch::try_new_with_options(
        Arc::clone(target),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(|e| Error::arrow("conforming a batch to the dataset schema", e))
}

/// The schema that reads every file: the union of columns by name (first appearance order),
/// each with the wider type. Types that do not promote either way are an error naming the
/// column and both types.
pub fn unify(schemas: &[SchemaRef]) -> Result<Schema> {
    let mut fields: Vec<Field> = Vec::new();
    for schema in schemas {
        for field in schema.fields() {
            match fields.iter_mut().find(|f| f.name() == field.name()) {
                None => fields.push(field.as_ref().clone().with_nullable(true)),
                Some(existing) => {
                    if can_promote(field.data_type(), existing.data_type()) {
                        continue;
                    }
                    if can_promote(existing.data_type(), field.data_type()) {
                        *existing = field.as_ref().clone().with_nullable(true);
                        continue;
                    }
                    return Err(Error::SchemaMismatch {
                        message: format!(
                            "column {} has incompatible types across files: {} and {}",
                            field.name(),
                            existing.data_type(),
                            field.data_type()
                        ),
                        columns: vec![field.name().clone()],
                    });
                }
            }
        }
    }
    let metadata = schemas
        .first()
        .map(|s| s.metadata().clone())
        .unwrap_or_default();
    Ok(Schema::new_with_metadata(fields, metadata))
}

/// Like [`conform_batch`] but fills columns the batch lacks with nulls (reading files written
/// before a column was added).
pub fn widen_batch(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    let columns = target
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            None => Ok(arrow::array::new_null_array(
                field.data_type(),
                batch.num_rows(),
            )),
            Some(column) => cast_column(column, field),
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    RecordBatch::try_new_with_options(
        Arc::clone(target),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(|e| Error::arrow("widening a batch to the dataset schema", e))
}

/// Casts an engine's result columns back to the dataset's types, by position (engines may
/// return other physical types: microsecond timestamps, UTC zones, plain utf8). A schema
/// with no columns keeps the row count.
pub fn cast_by_position(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| cast_column(batch.column(i), field))
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(|e| Error::arrow("building a result batch", e))
}

/// Takes the columns of `schema` from `batch` by name.
pub fn project_to(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            batch
                .column_by_name(f.name())
                .cloned()
                .ok_or_else(|| Error::column_not_found(f.name(), "scan", &batch.schema()))
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(|e| Error::arrow("projecting columns", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

    #[test]
    fn promotion_is_lossless_only() {
        assert!(can_promote(&DataType::Int32, &DataType::Int64));
        assert!(!can_promote(&DataType::Int64, &DataType::Int32));
        assert!(!can_promote(&DataType::Int64, &DataType::Float64));
        assert!(!can_promote(&DataType::Float64, &DataType::Int64));
        assert!(can_promote(
            &DataType::Decimal128(10, 2),
            &DataType::Decimal128(12, 3)
        ));
        assert!(!can_promote(
            &DataType::Decimal128(10, 2),
            &DataType::Decimal128(10, 3)
        ));
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let naive = DataType::Timestamp(TimeUnit::Microsecond, None);
        assert!(!can_promote(&utc, &naive));
        assert!(keys_compatible(&DataType::Int32, &DataType::Int64));
        assert!(!keys_compatible(&DataType::Float64, &DataType::Int64));
        assert!(!keys_compatible(&DataType::Utf8, &DataType::Int64));
    }

    #[test]
    fn fits_names_columns_at_fault() {
        let target = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
        ]);
        let source = Schema::new(vec![
            Field::new("v", DataType::Int64, true),
            Field::new("id", DataType::Int32, false),
        ]);
        let err = check_fits(&source, &target, "append").unwrap_err();
        assert!(
            matches!(&err, Error::SchemaMismatch { columns, .. } if columns == &vec!["v".to_string()])
        );
        assert!(
            err.to_string().contains("Int64") && err.to_string().contains("Utf8"),
            "{err}"
        );
        let source = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("w", DataType::Utf8, true),
        ]);
        let err = check_fits(&source, &target, "append").unwrap_err();
        assert!(
            err.to_string().contains("missing from the input: v"),
            "{err}"
        );
        assert!(err.to_string().contains("not in the dataset: w"), "{err}");
    }

    #[test]
    fn unify_widens_and_rejects() {
        let a = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, true)]));
        let b = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Int64, true),
            Field::new("y", DataType::Utf8, true),
        ]));
        let u = unify(&[a, Arc::clone(&b)]).unwrap();
        assert_eq!(u.field(0).data_type(), &DataType::Int64);
        assert_eq!(u.fields().len(), 2);
        let c = Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, true)]));
        assert!(unify(&[b, c]).is_err());
    }
}
