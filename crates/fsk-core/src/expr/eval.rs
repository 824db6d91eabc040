//! Evaluation of a [`BoundPredicate`] on record batches, with SQL three-valued logic.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Scalar};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::expr::bind::value_type;
use crate::expr::{BoundPredicate, CmpOp};
use crate::value::ScalarValue;

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

impl BoundPredicate {
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
}
