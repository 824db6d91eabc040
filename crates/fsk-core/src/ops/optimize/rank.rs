//! Order-preserving integer ranks from sampled quantiles.
//!
//! Each clustering column's values are compared in arrow's row format (bytes that compare as
//! the values do, for every type: integers, floats, strings of any length, dates, decimals),
//! so one code path ranks them all. A reservoir sample of a folder's rows gives each column
//! `2^bits - 1` quantile boundaries; a value's rank is the number of boundaries at or below
//! it (binary search), stretched over `0..2^bits`. Skewed columns, floats and long strings
//! with a common prefix all spread over the full range, unlike ranks taken from a value's
//! leading bytes.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, Rows, SortField};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::value::ScalarValue;

/// Rows sampled per folder (at least; more for folders cut into many files).
pub const SAMPLE_ROWS: usize = 1 << 16;

/// Row-format encoding of one clustering column, in the dataset's type.
#[derive(Debug)]
pub struct Encoder {
    /// The column.
    pub name: String,
    /// Its dataset type (a file may store a narrower one).
    pub data_type: DataType,
    converter: RowConverter,
}

impl Encoder {
    /// An encoder for `name` of type `data_type`.
    pub fn new(name: &str, data_type: &DataType) -> Result<Self> {
        Ok(Encoder {
            name: name.to_string(),
            data_type: data_type.clone(),
            converter: RowConverter::new(vec![SortField::new(data_type.clone())])
                .map_err(|e| Error::arrow(format!("encoding column {name}"), e))?,
        })
    }

    /// The rows of `column` (cast to the dataset type first where it is narrower).
    pub fn encode(&self, column: &ArrayRef) -> Result<Rows> {
        let column = if column.data_type() == &self.data_type {
            Arc::clone(column)
        } else {
            arrow::compute::cast(column, &self.data_type)
                .map_err(|e| Error::arrow(format!("widening column {}", self.name), e))?
        };
        self.converter
            .convert_columns(&[column])
            .map_err(|e| Error::arrow(format!("encoding column {}", self.name), e))
    }

    /// A footer statistic, encoded (`None` when it is null or cannot be cast).
    pub fn encode_scalar(&self, value: &ScalarValue) -> Option<Box<[u8]>> {
        let value = value.cast_to(&self.data_type)?;
        if value.is_null() {
            return None;
        }
        let rows = self.encode(value.array()).ok()?;
        Some(rows.row(0).data().into())
    }
}

/// A fixed-size uniform sample of rows (Vitter's algorithm R, fixed seed), each row the
/// encoded values of the clustering columns and whether each is null.
#[derive(Debug)]
pub struct Sampler {
    capacity: usize,
    seen: u64,
    rng: StdRng,
    /// The sampled rows: per row, per column, the encoded value (`None` for a null).
    pub rows: Vec<Vec<Option<Box<[u8]>>>>,
}

impl Sampler {
    /// A sampler keeping `capacity` rows.
    pub fn new(capacity: usize) -> Self {
        Sampler {
            capacity: capacity.max(1),
            seen: 0,
            rng: StdRng::seed_from_u64(0x5eed_f5c0),
            rows: Vec::new(),
        }
    }

    /// Offers every row of one batch: `columns[c]` is column `c` encoded, `arrays[c]` the
    /// column itself (for its nulls).
    pub fn offer(&mut self, columns: &[Rows], arrays: &[ArrayRef]) {
        let n = arrays.first().map_or(0, |a| a.len());
        let take = |row: usize| -> Vec<Option<Box<[u8]>>> {
            columns
                .iter()
                .zip(arrays)
                .map(|(rows, array)| array.is_valid(row).then(|| rows.row(row).data().into()))
                .collect()
        };
        for row in 0..n {
            self.seen += 1;
            if self.rows.len() < self.capacity {
                self.rows.push(take(row));
            } else {
                let slot = self.rng.random_range(0..self.seen);
                if (slot as usize) < self.capacity {
                    self.rows[slot as usize] = take(row);
                }
            }
        }
    }

    /// Rows offered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Column `c`'s sampled non-null values, sorted.
    pub fn sorted_values(&self, c: usize) -> Vec<Box<[u8]>> {
        let mut values: Vec<Box<[u8]>> = self.rows.iter().filter_map(|r| r[c].clone()).collect();
        values.sort_unstable();
        values
    }
}

/// One column's quantile boundaries: values map to ranks in `0..2^bits`, in value order
/// (nulls first, rank 0).
#[derive(Clone, Debug)]
pub struct RankMap {
    boundaries: Vec<Box<[u8]>>,
    top: u64,
}

impl RankMap {
    /// The boundaries of `sorted` (a column's sampled non-null values, sorted) for ranks of
    /// `bits` bits: the values at each `1/2^bits` quantile, repeats removed.
    pub fn new(sorted: &[Box<[u8]>], bits: u32) -> Self {
        let buckets = 1usize << bits;
        let mut boundaries: Vec<Box<[u8]>> = Vec::new();
        if !sorted.is_empty() {
            for i in 1..buckets {
                let value = &sorted[i * sorted.len() / buckets];
                if boundaries.last() != Some(value) {
                    boundaries.push(value.clone());
                }
            }
        }
        RankMap {
            boundaries,
            top: (buckets - 1) as u64,
        }
    }

    /// The rank of an encoded value (`None`: null, rank 0).
    pub fn rank(&self, value: Option<&[u8]>) -> u32 {
        let Some(value) = value else { return 0 };
        let n = self.boundaries.len() as u64;
        if n == 0 {
            return 0;
        }
        let at = self.boundaries.partition_point(|b| b.as_ref() <= value) as u64;
        // Stretched so that every column spans the whole range, whatever its distinct count.
        (at * self.top / n) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};

    fn ranks_of(array: ArrayRef, bits: u32) -> Vec<u32> {
        let encoder = Encoder::new("c", array.data_type()).unwrap();
        let rows = encoder.encode(&array).unwrap();
        let mut sampler = Sampler::new(SAMPLE_ROWS);
        sampler.offer(std::slice::from_ref(&rows), std::slice::from_ref(&array));
        let map = RankMap::new(&sampler.sorted_values(0), bits);
        (0..array.len())
            .map(|i| map.rank(array.is_valid(i).then(|| rows.row(i).data())))
            .collect()
    }

    #[test]
    fn long_common_prefixes_spread_over_the_range() {
        let values: Vec<String> = (0..4096)
            .map(|i| format!("customer-account-region-emea-{i:06}"))
            .collect();
        let ranks = ranks_of(Arc::new(StringArray::from(values)), 4);
        // Order kept, and every one of the 16 ranks used about equally.
        assert!(ranks.windows(2).all(|w| w[0] <= w[1]));
        for r in 0..16 {
            let n = ranks.iter().filter(|&&x| x == r).count();
            assert!((200..=320).contains(&n), "rank {r} holds {n} of 4096");
        }
    }

    #[test]
    fn skewed_floats_and_nulls_keep_order() {
        // A Pareto-like column: most values tiny, a long tail.
        let values: Vec<Option<f64>> = (1..=5000)
            .map(|i| (i % 97 != 0).then(|| 1.0 / (i as f64).powf(1.5)))
            .collect();
        let array: ArrayRef = Arc::new(Float64Array::from(values.clone()));
        let ranks = ranks_of(array, 8);
        let mut pairs: Vec<(f64, u32)> = values
            .iter()
            .zip(&ranks)
            .filter_map(|(v, r)| v.map(|v| (v, *r)))
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(pairs.windows(2).all(|w| w[0].1 <= w[1].1), "order kept");
        assert_eq!(pairs.first().unwrap().1, 0);
        assert!(
            pairs.last().unwrap().1 >= 250,
            "the tail reaches the top ranks"
        );
        // Nulls rank first.
        assert_eq!(ranks[96], 0);
    }
}
