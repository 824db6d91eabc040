//! Per-column footer statistics, merged across row groups.

use crate::value::ScalarValue;

/// Statistics of one column of one file (or one row group), from the Parquet footer.
///
/// A missing bound is `None` and means "unknown": pruning must keep the file.
#[derive(Clone, Debug, Default)]
pub struct ColumnStats {
    /// Smallest non-null value, when every row group has one.
    pub min: Option<ScalarValue>,
    /// Largest non-null value, when every row group has one.
    pub max: Option<ScalarValue>,
    /// Whether `min` is the exact minimum (not a truncated bound).
    pub min_exact: bool,
    /// Whether `max` is the exact maximum (not a truncated bound).
    pub max_exact: bool,
    /// Number of nulls, when every row group reports it.
    pub null_count: Option<u64>,
    /// Number of rows covered by these statistics.
    pub row_count: u64,
}
