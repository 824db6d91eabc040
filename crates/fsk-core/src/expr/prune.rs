//! Pruning: the truth values a [`BoundPredicate`] can take on a file or row group, from its
//! partition values and footer statistics (three-valued: a file is skipped only when the
//! predicate is certainly not true for any of its rows).

use std::cmp::Ordering;
use std::collections::HashMap;

use arrow::datatypes::DataType;

use crate::dataset::stats::ColumnStats;
use crate::expr::bind::{relabel, value_type};
use crate::expr::{BoundPredicate, CmpOp};
use crate::value::ScalarValue;

/// What pruning knows about the value of a condition over the rows of a file: the set of SQL
/// truth values (`TRUE`, `FALSE`, `NULL`) the condition can take on some row.
///
/// It generalises the four states the pruning needs: `{TRUE}`, `{FALSE}`, `{NULL}` (certainly
/// SQL NULL) and `{TRUE, FALSE, NULL}` (unknown), and keeps partial knowledge such as "never
/// TRUE, but FALSE or NULL" that statistics give. Combining two sets takes every pair, which
/// over-approximates and so stays sound for pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tri(pub(crate) u8);

impl Tri {
    pub(crate) const TRUE: Tri = Tri(1);
    pub(crate) const FALSE: Tri = Tri(2);
    pub(crate) const NULL: Tri = Tri(4);
    pub(crate) const UNKNOWN: Tri = Tri(7);
    pub(crate) const NONE: Tri = Tri(0);

    pub(crate) fn of(value: Option<bool>) -> Tri {
        match value {
            Some(true) => Tri::TRUE,
            Some(false) => Tri::FALSE,
            None => Tri::NULL,
        }
    }

    pub(crate) fn union(self, other: Tri) -> Tri {
        Tri(self.0 | other.0)
    }

    pub(crate) fn can_be_true(self) -> bool {
        self.0 & Tri::TRUE.0 != 0
    }

    pub(crate) fn members(self) -> impl Iterator<Item = Option<bool>> {
        [Some(true), Some(false), None]
            .into_iter()
            .filter(move |v| self.0 & Tri::of(*v).0 != 0)
    }

    pub(crate) fn combine(
        self,
        other: Tri,
        f: fn(Option<bool>, Option<bool>) -> Option<bool>,
    ) -> Tri {
        let mut out = Tri::NONE;
        for a in self.members() {
            for b in other.members() {
                out = out.union(Tri::of(f(a, b)));
            }
        }
        out
    }

    pub(crate) fn and(self, other: Tri) -> Tri {
        self.combine(other, |a, b| match (a, b) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        })
    }

    pub(crate) fn or(self, other: Tri) -> Tri {
        self.combine(other, |a, b| match (a, b) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        })
    }

    pub(crate) fn not(self) -> Tri {
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

impl BoundPredicate {
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
}
