//! The merge source: validated against the dataset, deduplicated by key (the last occurrence
//! wins, or the highest `dedup_order_by`), in the dataset's types, with its key index (the
//! core's own key match: a hash of the keys' arrow row encoding, or of the value for a single
//! integer key) and the sorted first key column that statistics pruning probes.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use futures::StreamExt;

use crate::dataset::partition::repeat_value;
use crate::dataset::schema::{can_promote, check_fits, conform_batch, keys_compatible};
use crate::engine::Batches;
use crate::error::{Error, Result};
use crate::ops::merge::{MergeOptions, SourceSpill, Strategy};
use crate::value::ScalarValue;

pub(crate) fn null_key(column: &str, side: &str) -> Error {
    Error::NullKey {
        column: column.to_string(),
        side: side.to_string(),
    }
}

/// The deduplicated source with its key index.
pub(crate) struct Source {
    /// Distinct-key rows in dataset types (file columns then partition columns): in memory in
    /// source order of the winning rows, or spilled in key order.
    pub(crate) rows: SourceRows,
    /// The key columns of `rows`, in the same order (dataset types): what pruning, the key
    /// match and error messages read, always in memory.
    pub(crate) keys: RecordBatch,
    /// Key -> row in `rows`.
    pub(crate) index: KeyIndex,
    /// Each row's partition: an index into `part_keys`.
    pub(crate) parts: Vec<u32>,
    /// The distinct partition values of the source, displayed (see [`PartitionKey`]).
    pub(crate) part_keys: Vec<PartitionKey>,
    /// The first key column's values, sorted, so that a file's [min, max] is tested with two
    /// binary searches instead of a scan of every source key.
    pub(crate) first_key_sorted: ArrayRef,
}

/// Where the source's rows are.
pub(crate) enum SourceRows {
    /// One batch in memory.
    Memory(RecordBatch),
    /// An Arrow IPC file in the budget's spill folder, in key order.
    Spilled(crate::ops::merge::spill::SpilledRows),
}

/// Source keys -> row in [`Source::rows`]: a single integer key by its value (no encoding,
/// a cheap hash), any other key by its row encoding. A spilled source is in key order, so
/// its index is the sorted keys themselves, probed by binary search (no second copy).
pub(crate) enum KeyIndex {
    Int(HashMap<i64, u32, std::hash::BuildHasherDefault<IntHasher>>),
    Rows(HashMap<Box<[u8]>, u32>),
    /// Ascending distinct values; the row is the position.
    SortedInt(arrow::array::Int64Array),
    /// Ascending distinct row encodings; the row is the position.
    SortedRows(arrow::row::Rows),
}

/// One batch's keys, in the form of the index.
pub(crate) enum BatchKeys {
    Int(arrow::array::Int64Array),
    Rows(arrow::row::Rows),
}

impl KeyIndex {
    /// The source row holding the key of `row` in `keys`. `hint` is where the last probe of
    /// a sorted index landed: probes in key order (a clustered file's keys) gallop from it
    /// instead of searching the whole index.
    pub(crate) fn get(&self, keys: &BatchKeys, row: usize, hint: &mut usize) -> Option<u32> {
        match (self, keys) {
            (KeyIndex::Int(map), BatchKeys::Int(values)) => map.get(&values.value(row)).copied(),
            (KeyIndex::Rows(map), BatchKeys::Rows(rows)) => map.get(rows.row(row).data()).copied(),
            (KeyIndex::SortedInt(sorted), BatchKeys::Int(values)) => {
                gallop(sorted.values(), values.value(row), hint).map(|i| i as u32)
            }
            (KeyIndex::SortedRows(sorted), BatchKeys::Rows(rows)) => {
                let probe = rows.row(row).data();
                let at = partition_point(sorted.num_rows(), |i| sorted.row(i).data() < probe);
                (at < sorted.num_rows() && sorted.row(at).data() == probe).then_some(at as u32)
            }
            _ => unreachable!("keys are encoded like the index"),
        }
    }
}

/// The position of `x` in ascending distinct `values`, searched from `hint` in doubling
/// steps, forward when `x` lies at or after it, backward when below; `hint` moves to where
/// `x` is or would be. A probe just past the last one (the next key of a clustered file,
/// present or not) costs a comparison or two.
pub(crate) fn gallop(values: &[i64], x: i64, hint: &mut usize) -> Option<usize> {
    let n = values.len();
    let start = (*hint).min(n);
    let (lo, hi) = if start < n && values[start] <= x {
        let (mut lo, mut step) = (start, 1);
        while lo + step < n && values[lo + step] <= x {
            lo += step;
            step *= 2;
        }
        (lo, (lo + step).min(n))
    } else {
        // x < values[start] (or start == n): the answer is at or below start.
        let (mut hi, mut step) = (start, 1);
        while hi >= step && values[hi - step] >= x {
            hi -= step;
            step *= 2;
        }
        (hi.saturating_sub(step), hi)
    };
    let at = lo + values[lo..hi].partition_point(|&v| v < x);
    *hint = at;
    (at < n && values[at] == x).then_some(at)
}

/// A hasher for integer keys: a multiply and a fold, so that ids that share their low bits
/// (multiples of a power of two) still spread.
#[derive(Default)]
pub(crate) struct IntHasher(u64);

impl std::hash::Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }
    fn write_u64(&mut self, value: u64) {
        let x = (value ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
    fn write_i64(&mut self, value: i64) {
        self.write_u64(value as u64);
    }
}

impl Source {
    /// Distinct source rows.
    pub(crate) fn num_rows(&self) -> usize {
        self.keys.num_rows()
    }

    /// The key column `k` of every row, in row order.
    pub(crate) fn key_column(&self, k: &str) -> &ArrayRef {
        self.keys.column_by_name(k).expect("validated key column")
    }

    /// Whether the source's rows are spilled to disk (else in memory).
    pub(crate) fn is_spilled(&self) -> bool {
        matches!(self.rows, SourceRows::Spilled(_))
    }

    /// Bytes of the source's rows spilled to disk (0 when they are in memory).
    pub(crate) fn spilled_bytes(&self) -> u64 {
        match &self.rows {
            SourceRows::Memory(_) => 0,
            SourceRows::Spilled(spilled) => spilled.bytes(),
        }
    }

    /// The rows `ids` (ascending, distinct), projected to `schema` (the dataset's or the
    /// files'). A spilled source reads only the batches that hold them.
    pub(crate) async fn take(&self, ids: &[u32], schema: &SchemaRef) -> Result<RecordBatch> {
        let rows = match &self.rows {
            SourceRows::Memory(rows) if ids.len() == rows.num_rows() => rows.clone(),
            SourceRows::Memory(rows) => {
                arrow::compute::take_record_batch(rows, &UInt32Array::from(ids.to_vec()))
                    .map_err(|e| Error::arrow("selecting source rows", e))?
            }
            SourceRows::Spilled(spilled) => spilled.take(ids).await?,
        };
        crate::dataset::schema::project_to(&rows, schema)
    }

    /// The rows `ids` (ascending, distinct) in the dataset's schema, a batch at a time.
    pub(crate) fn select(&self, ids: Vec<u32>) -> crate::engine::BatchStream {
        match &self.rows {
            SourceRows::Memory(rows) => {
                let rows = rows.clone();
                futures::stream::once(async move {
                    if ids.len() == rows.num_rows() {
                        return Ok(rows);
                    }
                    arrow::compute::take_record_batch(&rows, &UInt32Array::from(ids))
                        .map_err(|e| Error::arrow("selecting source rows", e))
                })
                .boxed()
            }
            SourceRows::Spilled(spilled) => spilled.select(ids),
        }
    }

    /// Whether some source value of the first key column lies in `[min, max]`.
    pub(crate) fn first_key_in_range(&self, min: &ScalarValue, max: &ScalarValue) -> Option<bool> {
        let sorted = self.first_key_sorted.as_ref();
        let options = arrow::compute::SortOptions::default();
        let lo = arrow::array::make_comparator(sorted, min.array().as_ref(), options).ok()?;
        let hi = arrow::array::make_comparator(sorted, max.array().as_ref(), options).ok()?;
        let start = partition_point(sorted.len(), |i| lo(i, 0).is_lt());
        Some(start < sorted.len() && hi(start, 0).is_le())
    }
}

/// The first index in `0..len` for which `before` is false (`before` is true then false).
pub(crate) fn partition_point(len: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Partition values as comparable text: each value typed (as the source types it) and
/// displayed, so that `n=01` in a path and `1` in the source are the same partition whatever
/// the folder's encoding. `None` is null (distinct from the text "NULL").
pub(crate) type PartitionKey = Vec<Option<String>>;

pub(crate) fn describe_partition(columns: &[String], values: &PartitionKey) -> String {
    columns
        .iter()
        .zip(values)
        .map(|(c, v)| match v {
            Some(v) => format!("{c}={v}"),
            None => format!("{c}=null"),
        })
        .collect::<Vec<_>>()
        .join("/")
}

pub(crate) fn key_columns(
    batch: &RecordBatch,
    key: &[String],
    side: &str,
) -> Result<Vec<ArrayRef>> {
    key.iter()
        .map(|k| {
            let column = batch
                .column_by_name(k)
                .ok_or_else(|| Error::column_not_found(k, side, &batch.schema()))?;
            if column.logical_null_count() > 0 {
                return Err(null_key(k, side));
            }
            Ok(Arc::clone(column))
        })
        .collect()
}

/// The source as read before planning: whole, or (larger than its share of the budget, or
/// when spilling is asked for) what was read and the rest of the stream, which planning
/// sorts through the engine and spills.
pub(crate) enum SourceInput {
    /// Every batch of the source.
    Memory(Vec<RecordBatch>),
    /// The batches read so far and the stream of the rest.
    Streamed {
        /// Read before the source outgrew its share.
        read: Vec<RecordBatch>,
        /// The rest, unread.
        rest: crate::engine::BatchStream,
        /// The source's row count when known in advance (progress).
        rows_hint: Option<u64>,
    },
}

/// The share of the merge's budget a source may take in memory: the in-memory path holds
/// the batches, their concatenation and the key index, about four times the source.
pub(crate) const IN_MEMORY_SHARE: usize = 4;

/// Reads the source, advancing `progress` (phase `read source`, in rows) as it goes: all of
/// it, unless it outgrows a quarter of `budget` (`Auto`) or `spill` is `Always`, in which case
/// the rest stays a stream.
pub(crate) async fn collect_source(
    source: Batches,
    progress: &crate::progress::Progress,
    spill: SourceSpill,
    budget: &crate::plan::sort::MemoryBudget,
) -> Result<(SchemaRef, SourceInput)> {
    let rows_hint = source.rows_hint();
    progress.phase("read source", rows_hint, crate::progress::Unit::Rows);
    let (schema, mut stream) = source.into_parts();
    let limit = match spill {
        SourceSpill::Never => usize::MAX,
        SourceSpill::Auto => budget.bytes / IN_MEMORY_SHARE,
        SourceSpill::Always => {
            let input = SourceInput::Streamed {
                read: Vec::new(),
                rest: stream,
                rows_hint,
            };
            return Ok((schema, input));
        }
    };
    let mut read = Vec::new();
    let mut bytes = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        progress.advance(batch.num_rows() as u64);
        bytes += batch.get_array_memory_size();
        read.push(batch);
        if bytes > limit {
            let input = SourceInput::Streamed {
                read,
                rest: stream,
                rows_hint,
            };
            return Ok((schema, input));
        }
    }
    Ok((schema, SourceInput::Memory(read)))
}

/// The key columns of `rows`.
pub(crate) fn key_batch(rows: &RecordBatch, key: &[String]) -> Result<RecordBatch> {
    let indices = key
        .iter()
        .map(|k| {
            rows.schema()
                .index_of(k)
                .map_err(|_| Error::column_not_found(k, "source (key)", &rows.schema()))
        })
        .collect::<Result<Vec<_>>>()?;
    rows.project(&indices)
        .map_err(|e| Error::arrow("projecting source keys", e))
}

/// Deduplicates `batch` by key: last occurrence wins, or the highest `order_by` values
/// (ties: last occurrence). Returns the winning row indices in ascending order.
fn dedup_indices(
    batch: &RecordBatch,
    key: &[String],
    order_by: &[String],
    converter: &RowConverter,
) -> Result<Vec<u32>> {
    let keys = converter
        .convert_columns(&key_columns(batch, key, "source")?)
        .map_err(|e| Error::arrow("encoding source keys", e))?;
    let order = if order_by.is_empty() {
        None
    } else {
        let columns: Vec<ArrayRef> = order_by
            .iter()
            .map(|c| {
                batch.column_by_name(c).cloned().ok_or_else(|| {
                    Error::column_not_found(c, "source (dedup_order_by)", &batch.schema())
                })
            })
            .collect::<Result<_>>()?;
        let fields = columns
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect();
        let order_converter =
            RowConverter::new(fields).map_err(|e| Error::arrow("encoding order", e))?;
        Some(
            order_converter
                .convert_columns(&columns)
                .map_err(|e| Error::arrow("encoding order", e))?,
        )
    };
    let mut best: HashMap<&[u8], u32> = HashMap::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let k = keys.row(row);
        let slot = best.entry(k.data()).or_insert(row as u32);
        let current = *slot as usize;
        let replace = match &order {
            None => true,
            Some(order) => order.row(row) >= order.row(current),
        };
        if replace {
            *slot = row as u32;
        }
    }
    let mut winners: Vec<u32> = best.into_values().collect();
    winners.sort_unstable();
    Ok(winners)
}

pub(crate) fn build_source(
    batches: Vec<RecordBatch>,
    dataset_schema: &SchemaRef,
    partitions: &[String],
    options: &MergeOptions,
) -> Result<Source> {
    let mut conformed: Vec<RecordBatch> = batches
        .iter()
        .map(|b| conform_batch(b, dataset_schema))
        .collect::<Result<_>>()?;
    // The batches as read share their buffers with the conformed ones: both go once the
    // source is one batch, so the in-memory path holds one copy of it, not two.
    drop(batches);
    let all = if conformed.len() == 1 {
        conformed.pop().expect("one batch")
    } else {
        arrow::compute::concat_batches(dataset_schema, &conformed)
            .map_err(|e| Error::arrow("collecting the source", e))?
    };
    drop(conformed);
    let converter = KeyEncoder::new(dataset_schema, &options.key)?;
    let order_by: &[String] = if options.strategy == Strategy::Deduplicate {
        &options.dedup_order_by
    } else {
        &[]
    };
    let winners = dedup_indices(&all, &options.key, order_by, &converter.rows)?;
    // Winners are ascending: as many as rows means no duplicates, and no copy is needed.
    let rows = if winners.len() == all.num_rows() {
        all
    } else {
        arrow::compute::take_record_batch(&all, &UInt32Array::from(winners))
            .map_err(|e| Error::arrow("deduplicating the source", e))?
    };
    let index = match converter.encode(&key_columns(&rows, &options.key, "source")?)? {
        BatchKeys::Int(values) => KeyIndex::Int(
            values
                .values()
                .iter()
                .enumerate()
                .map(|(i, &v)| (v, i as u32))
                .collect(),
        ),
        BatchKeys::Rows(keys) => KeyIndex::Rows(
            (0..rows.num_rows())
                .map(|i| (Box::<[u8]>::from(keys.row(i).data()), i as u32))
                .collect(),
        ),
    };
    let keys = key_batch(&rows, &options.key)?;
    let (part_keys, parts) = crate::dataset::partition::group_rows(&rows, partitions, "source")?;
    let first = rows
        .column_by_name(&options.key[0])
        .expect("validated key column");
    let order = arrow::compute::sort_to_indices(first, None, None)
        .map_err(|e| Error::arrow("sorting source keys", e))?;
    let first_key_sorted = arrow::compute::take(first.as_ref(), &order, None)
        .map_err(|e| Error::arrow("sorting source keys", e))?;
    Ok(Source {
        rows: SourceRows::Memory(rows),
        keys,
        index,
        parts,
        part_keys,
        first_key_sorted,
    })
}

/// Validates keys and schemas of the source against the dataset.
pub(crate) fn validate(
    source_schema: &Schema,
    dataset_schema: &Schema,
    options: &MergeOptions,
) -> Result<()> {
    for k in &options.key {
        let target = dataset_schema
            .field_with_name(k)
            .map_err(|_| Error::column_not_found(k, "target dataset (key)", dataset_schema))?;
        let source = source_schema
            .field_with_name(k)
            .map_err(|_| Error::column_not_found(k, "source (key)", source_schema))?;
        if !keys_compatible(source.data_type(), target.data_type())
            || !can_promote(source.data_type(), target.data_type())
        {
            return Err(Error::SchemaMismatch {
                message: format!(
                    "key column {k} is {} in the source and {} in the dataset; key types must be \
                     equal or widen losslessly into the dataset's type",
                    source.data_type(),
                    target.data_type()
                ),
                columns: vec![k.clone()],
            });
        }
    }
    for c in &options.dedup_order_by {
        source_schema
            .field_with_name(c)
            .map_err(|_| Error::column_not_found(c, "source (dedup_order_by)", source_schema))?;
    }
    check_fits(source_schema, dataset_schema, "merge")
}

/// Encodes a file batch's keys (key columns from the file, partition keys from the path),
/// rejecting nulls.
pub(crate) fn file_keys(
    batch: &RecordBatch,
    key: &[String],
    partition: &HashMap<String, ScalarValue>,
    converter: &KeyEncoder,
) -> Result<BatchKeys> {
    let columns = key
        .iter()
        .zip(converter.key_types())
        .map(|(k, key_type)| {
            let column = match batch.column_by_name(k) {
                Some(c) => Arc::clone(c),
                None => match partition.get(k) {
                    Some(v) => repeat_value(v, batch.num_rows())?,
                    None => return Err(Error::column_not_found(k, "target file", &batch.schema())),
                },
            };
            // Older files may hold a narrower key type than the dataset's.
            let column = if column.data_type() == key_type {
                column
            } else {
                arrow::compute::cast(&column, key_type)
                    .map_err(|e| Error::arrow(format!("widening key column {k}"), e))?
            };
            if column.logical_null_count() > 0 {
                return Err(null_key(k, "target"));
            }
            Ok(column)
        })
        .collect::<Result<Vec<_>>>()?;
    converter.encode(&columns)
}

/// Encodes key tuples of the dataset's key types into comparable bytes.
pub(crate) struct KeyEncoder {
    rows: RowConverter,
    types: Vec<arrow::datatypes::DataType>,
    /// A single integer key column: indexed by value.
    int: bool,
}

impl KeyEncoder {
    /// Key columns (of the dataset's key types, no nulls) in the index's form.
    pub(crate) fn encode(&self, columns: &[ArrayRef]) -> Result<BatchKeys> {
        if self.int {
            let values = arrow::compute::cast(&columns[0], &arrow::datatypes::DataType::Int64)
                .map_err(|e| Error::arrow("encoding keys", e))?;
            let values = values
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .expect("cast to Int64")
                .clone();
            return Ok(BatchKeys::Int(values));
        }
        self.rows
            .convert_columns(columns)
            .map(BatchKeys::Rows)
            .map_err(|e| Error::arrow("encoding keys", e))
    }

    pub(crate) fn new(schema: &Schema, key: &[String]) -> Result<Self> {
        let types = key
            .iter()
            .map(|k| {
                schema
                    .field_with_name(k)
                    .map(|f| f.data_type().clone())
                    .map_err(|_| Error::column_not_found(k, "dataset", schema))
            })
            .collect::<Result<Vec<_>>>()?;
        let rows = RowConverter::new(types.iter().cloned().map(SortField::new).collect())
            .map_err(|e| Error::arrow("encoding keys", e))?;
        use arrow::datatypes::DataType::*;
        let int = matches!(
            types.as_slice(),
            [Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32]
        );
        Ok(KeyEncoder { rows, types, int })
    }

    pub(crate) fn key_types(&self) -> &[arrow::datatypes::DataType] {
        &self.types
    }
}
