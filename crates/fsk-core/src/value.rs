//! [`ScalarValue`]: one typed value, used for partition values, statistics and filter literals.

use std::cmp::Ordering;
use std::fmt;

use arrow::array::{Array, ArrayRef, new_null_array};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// One typed value, held as a one-element Arrow array so that every Arrow type is covered and
/// Arrow's kernels can compare it with a column.
#[derive(Clone)]
pub struct ScalarValue(ArrayRef);

impl ScalarValue {
    /// Wraps a one-element array.
    ///
    /// # Panics
    /// If `array` does not hold exactly one element (a bug in the caller, never user input).
    pub fn new(array: ArrayRef) -> Self {
        assert_eq!(array.len(), 1, "a ScalarValue holds exactly one element");
        Self(array)
    }

    /// The value at `index` of `array`.
    pub fn from_array(array: &dyn Array, index: usize) -> Self {
        Self(array.slice(index, 1))
    }

    /// A null of `data_type`.
    pub fn null(data_type: &DataType) -> Self {
        Self(new_null_array(data_type, 1))
    }

    /// The one-element array.
    pub fn array(&self) -> &ArrayRef {
        &self.0
    }

    /// The value's Arrow type.
    pub fn data_type(&self) -> &DataType {
        self.0.data_type()
    }

    /// Whether the value is null.
    pub fn is_null(&self) -> bool {
        self.0.is_null(0)
    }

    /// Orders two non-null values of the same type; `None` when either is null or the types
    /// cannot be compared.
    pub fn partial_cmp_value(&self, other: &ScalarValue) -> Option<Ordering> {
        if self.is_null() || other.is_null() || self.data_type() != other.data_type() {
            return None;
        }
        let cmp = arrow::array::make_comparator(
            self.0.as_ref(),
            other.0.as_ref(),
            arrow::compute::SortOptions::default(),
        )
        .ok()?;
        Some(cmp(0, 0))
    }

    /// Casts the value to `data_type` with Arrow's safe cast; `None` when the cast fails or
    /// loses the value (a non-null value that becomes null).
    pub fn cast_to(&self, data_type: &DataType) -> Option<ScalarValue> {
        if self.data_type() == data_type {
            return Some(self.clone());
        }
        let cast = arrow::compute::cast(&self.0, data_type).ok()?;
        if cast.is_null(0) && !self.is_null() {
            return None;
        }
        Some(ScalarValue(cast))
    }
}

impl PartialEq for ScalarValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_data() == other.0.to_data()
    }
}

impl fmt::Display for ScalarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_null() {
            return f.write_str("NULL");
        }
        let options = FormatOptions::default();
        match ArrayFormatter::try_new(self.0.as_ref(), &options) {
            Ok(formatter) => write!(f, "{}", formatter.value(0)),
            Err(_) => write!(f, "{:?}", self.0),
        }
    }
}

impl fmt::Debug for ScalarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.data_type(), self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn compares_values_of_one_type() {
        let a = ScalarValue::new(Arc::new(Int64Array::from(vec![3])));
        let b = ScalarValue::new(Arc::new(Int64Array::from(vec![10])));
        assert_eq!(a.partial_cmp_value(&b), Some(Ordering::Less));
        let s = ScalarValue::new(Arc::new(StringArray::from(vec!["x"])));
        assert_eq!(a.partial_cmp_value(&s), None);
        assert_eq!(
            a.partial_cmp_value(&ScalarValue::null(&DataType::Int64)),
            None
        );
    }

    #[test]
    fn lossy_cast_is_refused() {
        let s = ScalarValue::new(Arc::new(StringArray::from(vec!["abc"])));
        assert!(s.cast_to(&DataType::Int64).is_none());
        let s = ScalarValue::new(Arc::new(StringArray::from(vec!["42"])));
        assert_eq!(s.cast_to(&DataType::Int64).unwrap().to_string(), "42");
    }
}
