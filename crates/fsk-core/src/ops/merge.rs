//! Merge a change set into a dataset by key: insert, update, upsert, full_merge, deduplicate.
//!
//! The core plans; the shared executor moves the data with arrow kernels:
//!
//! 1. **Validate** keys, nulls, types and schemas before anything is written.
//! 2. **Deduplicate the source by key**: the last occurrence wins (`deduplicate` keeps the row
//!    with the highest `dedup_order_by` values, ties to the last occurrence).
//! 3. **Prune candidates**: by hive partition values (only when every partition column is a
//!    key column, otherwise a moved key would go unseen), then by footer min/max tested
//!    against the *set* of source keys. Unknown or inexact statistics keep the file.
//! 4. **Confirm** by scanning only the key columns of candidates (row groups pruned the same
//!    way) against a hash set of the source keys.
//! 5. **Rewrite** only confirmed files, row group by row group, replacing matched rows in
//!    place; write inserts as new files; publish through the commit protocol. Unaffected
//!    files keep their name and bytes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::kernels::cmp::{gt_eq, lt_eq};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use serde::{Deserialize, Serialize};

use crate::commit::{PublishEntry, Staging, Transaction};
use crate::dataset::footer::{FileMeta, object_reader, read_footers, row_group_stats};
use crate::dataset::listing::{self, Listing};
use crate::dataset::partition::{PartitionSchema, repeat_value};
use crate::dataset::schema::{can_promote, check_fits, conform_batch, keys_compatible, unify};
use crate::dataset::stats::ColumnStats;
use crate::dataset::storage::Location;
use crate::engine::{Batches, KeyMatch, KeyMatcher, SOURCE_ROW_COLUMN, Scanner};
use crate::error::{Error, Result};
use crate::ops::Execution;
use crate::plan::scan::{ScanFile, ScanPlan};
use crate::value::ScalarValue;
use crate::write::{DatasetWriter, WriteOptions};

/// How source rows combine with the dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Add rows whose key is not in the dataset; never rewrite existing files.
    Insert,
    /// Replace rows whose key is in the dataset; ignore the rest.
    Update,
    /// Update matches, insert the rest.
    Upsert,
    /// The dataset becomes exactly the source (inserts, updates, deletes).
    FullMerge,
    /// Deduplicate the source by key (highest `dedup_order_by` wins), then upsert.
    Deduplicate,
}

impl FromStr for Strategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "insert" => Ok(Strategy::Insert),
            "update" => Ok(Strategy::Update),
            "upsert" => Ok(Strategy::Upsert),
            "full_merge" | "full-merge" => Ok(Strategy::FullMerge),
            "deduplicate" | "dedup" => Ok(Strategy::Deduplicate),
            _ => Err(Error::invalid_argument(
                "strategy",
                s,
                "valid strategies are: insert, update, upsert, full_merge, deduplicate",
            )),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::Insert => "insert",
            Strategy::Update => "update",
            Strategy::Upsert => "upsert",
            Strategy::FullMerge => "full_merge",
            Strategy::Deduplicate => "deduplicate",
        })
    }
}

/// Which files a merge may rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewriteMode {
    /// Only files holding affected keys (insert, update, upsert).
    Incremental,
    /// Every file.
    Full,
}

impl FromStr for RewriteMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "incremental" => Ok(RewriteMode::Incremental),
            "full" => Ok(RewriteMode::Full),
            _ => Err(Error::invalid_argument(
                "rewrite_mode",
                s,
                "valid rewrite modes are: incremental, full",
            )),
        }
    }
}

/// Options of a merge.
#[derive(Clone, Debug)]
pub struct MergeOptions {
    /// Key columns (one or more).
    pub key: Vec<String>,
    /// The strategy.
    pub strategy: Strategy,
    /// Partition columns for new data; `None` detects them from the dataset's layout.
    pub partition_by: Option<Vec<String>>,
    /// For `deduplicate`: the row with the highest values of these columns wins.
    pub dedup_order_by: Vec<String>,
    /// `None`: incremental for insert/update/upsert, full for full_merge/deduplicate.
    pub rewrite_mode: Option<RewriteMode>,
    /// Plan and count without writing.
    pub dry_run: bool,
    /// Codec, file and row group sizes for written files (mode and partitioning are ignored).
    pub write: WriteOptions,
    /// Wait up to this long for another writer's lease.
    pub wait: Option<Duration>,
    /// The memory the engine's key match may use before it spills.
    pub memory: crate::plan::sort::MemoryBudget,
}

/// What executes a merge's primitives: the engine's scanner, and its key match (`None`: the
/// core's arrow-rs hash index).
#[derive(Clone, Debug)]
pub struct Executors {
    /// Reads key columns and the files rewritten.
    pub scanner: Arc<dyn Scanner>,
    /// Joins the files' keys with the source's.
    pub key_match: Option<Arc<dyn KeyMatch>>,
}

impl MergeOptions {
    /// Options for `strategy` on `key`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(key: I, strategy: Strategy) -> Self {
        MergeOptions {
            key: key.into_iter().map(Into::into).collect(),
            strategy,
            partition_by: None,
            dedup_order_by: Vec::new(),
            rewrite_mode: None,
            dry_run: false,
            write: WriteOptions::default(),
            wait: None,
            memory: crate::plan::sort::MemoryBudget::default(),
        }
    }

    /// The rewrite mode in effect, validated against the strategy.
    pub fn effective_rewrite_mode(&self) -> Result<RewriteMode> {
        let full_only = matches!(self.strategy, Strategy::FullMerge | Strategy::Deduplicate);
        match (self.rewrite_mode, full_only) {
            (Some(RewriteMode::Incremental), true) => Err(Error::invalid_argument(
                "rewrite_mode",
                "incremental",
                format!(
                    "incremental rewrite is not supported for {}: it rewrites the whole dataset; use full",
                    self.strategy
                ),
            )),
            (Some(mode), _) => Ok(mode),
            (None, true) => Ok(RewriteMode::Full),
            (None, false) => Ok(RewriteMode::Incremental),
        }
    }
}

/// What happened to a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileOperation {
    /// Rewritten under a new name (the path is the new one).
    Rewritten,
    /// Written with new rows.
    Inserted,
    /// Untouched: same name, same bytes.
    Preserved,
}

/// One file of the dataset after a merge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeFile {
    /// Path relative to the dataset root.
    pub path: String,
    /// Rows in the file.
    pub row_count: u64,
    /// What happened to it.
    pub operation: FileOperation,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// The planning stage that ruled a file out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneStage {
    /// Its partition holds no source key.
    Partition,
    /// Its key min/max range holds no source key.
    Statistics,
    /// Its bloom filters rule out every source key.
    Bloom,
    /// Scanning its key columns found no source key.
    KeyScan,
}

/// A file left out of the rewrite, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedFile {
    /// Path relative to the dataset root.
    pub path: String,
    /// The first stage that ruled it out.
    pub stage: PruneStage,
}

/// The report of a merge. Every count is counted, never estimated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeReport {
    /// The strategy.
    pub strategy: Strategy,
    /// The rewrite mode used.
    pub rewrite_mode: RewriteMode,
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// Source rows as given.
    pub source_count: u64,
    /// Rows in the dataset before.
    pub target_count_before: u64,
    /// Rows in the dataset after.
    pub target_count_after: u64,
    /// Distinct keys inserted.
    pub inserted: u64,
    /// Distinct keys matched and replaced (even when the row is unchanged).
    pub updated: u64,
    /// Dataset rows removed.
    pub deleted: u64,
    /// Rows in the dataset after (equals `target_count_after`).
    pub total: u64,
    /// Every data file after the merge (before it, for a dry run), with its operation.
    pub files: Vec<MergeFile>,
    /// Paths of rewritten files (new names; for a dry run, the files that would be rewritten).
    pub rewritten_files: Vec<String>,
    /// Paths of files with inserted rows.
    pub inserted_files: Vec<String>,
    /// Paths of untouched files.
    pub preserved_files: Vec<String>,
    /// The engine selected.
    pub engine: String,
    /// What executed each phase: the engine's scan read the key columns and the files
    /// rewritten; the core matched keys and encoded the outputs.
    pub execution: Execution,
    /// Files in the dataset before the merge.
    pub files_considered: u64,
    /// Files ruled out by partition values.
    pub files_pruned_by_partition: u64,
    /// Files ruled out by footer statistics.
    pub files_pruned_by_statistics: u64,
    /// Files ruled out by bloom filters.
    pub files_pruned_by_bloom: u64,
    /// Files whose key columns were scanned.
    pub files_key_scanned: u64,
    /// Files confirmed to hold affected keys.
    pub files_confirmed: u64,
    /// Each file left out of the rewrite and the stage that did it.
    pub pruned: Vec<PrunedFile>,
    /// Whether this operation committed changes to the dataset (false for a dry run or when
    /// there was nothing to change). Once true, the changes are durable even if
    /// `cleanup_pending` is set.
    pub committed: bool,
    /// Set when the operation committed but publishing or cleanup failed afterwards: the next
    /// operation or `fsk recover` finishes it. Do not retry the operation (its changes are
    /// already in). The CLI exits with code 3.
    pub cleanup_pending: Option<String>,
    /// Wall time in milliseconds.
    pub elapsed_ms: u64,
}

fn null_key(column: &str, side: &str) -> Error {
    Error::NullKey {
        column: column.to_string(),
        side: side.to_string(),
    }
}

/// The deduplicated source with its key index.
struct Source {
    /// Distinct-key rows in dataset types (file columns then partition columns), in source
    /// order of the winning rows.
    rows: RecordBatch,
    /// `rows` projected to the file schema (no partition columns).
    file_rows: RecordBatch,
    /// Key -> row in `rows`.
    index: KeyIndex,
    /// Each row's partition: an index into `part_keys`.
    parts: Vec<u32>,
    /// The distinct partition values of the source, displayed (see [`PartitionKey`]).
    part_keys: Vec<PartitionKey>,
    /// The first key column's values, sorted, so that a file's [min, max] is tested with two
    /// binary searches instead of a scan of every source key.
    first_key_sorted: ArrayRef,
}

/// Source keys -> row in [`Source::rows`]: a single integer key by its value (no encoding,
/// a cheap hash), any other key by its row encoding.
enum KeyIndex {
    Int(HashMap<i64, u32, std::hash::BuildHasherDefault<IntHasher>>),
    Rows(HashMap<Box<[u8]>, u32>),
}

/// One batch's keys, in the form of the index.
enum BatchKeys {
    Int(arrow::array::Int64Array),
    Rows(arrow::row::Rows),
}

impl KeyIndex {
    /// The source row holding the key of `row` in `keys`.
    fn get(&self, keys: &BatchKeys, row: usize) -> Option<u32> {
        match (self, keys) {
            (KeyIndex::Int(map), BatchKeys::Int(values)) => map.get(&values.value(row)).copied(),
            (KeyIndex::Rows(map), BatchKeys::Rows(rows)) => map.get(rows.row(row).data()).copied(),
            _ => unreachable!("keys are encoded like the index"),
        }
    }
}

/// A hasher for integer keys: a multiply and a fold, so that ids that share their low bits
/// (multiples of a power of two) still spread.
#[derive(Default)]
struct IntHasher(u64);

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
    /// Whether some source value of the first key column lies in `[min, max]`.
    fn first_key_in_range(&self, min: &ScalarValue, max: &ScalarValue) -> Option<bool> {
        let sorted = self.first_key_sorted.as_ref();
        let options = arrow::compute::SortOptions::default();
        let lo = arrow::array::make_comparator(sorted, min.array().as_ref(), options).ok()?;
        let hi = arrow::array::make_comparator(sorted, max.array().as_ref(), options).ok()?;
        let start = partition_point(sorted.len(), |i| lo(i, 0).is_lt());
        Some(start < sorted.len() && hi(start, 0).is_le())
    }
}

/// The first index in `0..len` for which `before` is false (`before` is true then false).
fn partition_point(len: usize, before: impl Fn(usize) -> bool) -> usize {
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
type PartitionKey = Vec<Option<String>>;

fn describe_partition(columns: &[String], values: &PartitionKey) -> String {
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

fn key_columns(batch: &RecordBatch, key: &[String], side: &str) -> Result<Vec<ArrayRef>> {
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

async fn collect_source(source: Batches) -> Result<(SchemaRef, Vec<RecordBatch>, u64)> {
    let (schema, stream) = source.into_parts();
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    let count = batches.iter().map(|b| b.num_rows() as u64).sum();
    Ok((schema, batches, count))
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

fn build_source(
    batches: Vec<RecordBatch>,
    dataset_schema: &SchemaRef,
    file_schema: &SchemaRef,
    partitions: &[String],
    options: &MergeOptions,
) -> Result<Source> {
    let conformed: Vec<RecordBatch> = batches
        .iter()
        .map(|b| conform_batch(b, dataset_schema))
        .collect::<Result<_>>()?;
    let all = arrow::compute::concat_batches(dataset_schema, &conformed)
        .map_err(|e| Error::arrow("collecting the source", e))?;
    let converter = KeyEncoder::new(dataset_schema, &options.key)?;
    let order_by: &[String] = if options.strategy == Strategy::Deduplicate {
        &options.dedup_order_by
    } else {
        &[]
    };
    let winners = dedup_indices(&all, &options.key, order_by, &converter.rows)?;
    drop(conformed);
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
    let file_rows = crate::dataset::schema::project_to(&rows, file_schema)?;
    let (part_keys, parts) = crate::dataset::partition::group_rows(&rows, partitions, "source")?;
    let first = rows
        .column_by_name(&options.key[0])
        .expect("validated key column");
    let order = arrow::compute::sort_to_indices(first, None, None)
        .map_err(|e| Error::arrow("sorting source keys", e))?;
    let first_key_sorted = arrow::compute::take(first.as_ref(), &order, None)
        .map_err(|e| Error::arrow("sorting source keys", e))?;
    Ok(Source {
        rows,
        file_rows,
        index,
        parts,
        part_keys,
        first_key_sorted,
    })
}

/// Validates keys and schemas of the source against the dataset.
fn validate(source_schema: &Schema, dataset_schema: &Schema, options: &MergeOptions) -> Result<()> {
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

fn validate_options(options: &MergeOptions) -> Result<RewriteMode> {
    if options.key.is_empty() || options.key.iter().any(|k| k.trim().is_empty()) {
        return Err(Error::invalid_argument(
            "key",
            options.key.join(","),
            "at least one non-empty key column is required",
        ));
    }
    let unique: HashSet<&String> = options.key.iter().collect();
    if unique.len() != options.key.len() {
        return Err(Error::invalid_argument(
            "key",
            options.key.join(","),
            "a key column is repeated",
        ));
    }
    if !options.dedup_order_by.is_empty() && options.strategy != Strategy::Deduplicate {
        return Err(Error::invalid_argument(
            "dedup_order_by",
            options.dedup_order_by.join(","),
            "applies only to the deduplicate strategy",
        ));
    }
    options.write.validate()?;
    if let Some(partition_by) = &options.partition_by {
        options
            .write
            .clone()
            .with_partition_by(partition_by.clone())
            .validate()?;
        let unique: HashSet<&String> = partition_by.iter().collect();
        if unique.len() != partition_by.len() {
            return Err(Error::invalid_argument(
                "partition_by",
                partition_by.join(","),
                "a partition column is repeated",
            ));
        }
    }
    options.effective_rewrite_mode()
}

/// Per-file knowledge gathered by planning.
#[derive(Clone)]
struct FilePlan {
    meta: FileMeta,
    /// The file's folder, relative to the root (rewrites go to the same folder).
    dir: String,
    /// The file's partition values.
    part: PartitionKey,
    partition: HashMap<String, ScalarValue>,
    /// Row groups that may hold source keys.
    row_groups: Vec<usize>,
    /// Source rows matched by this file's keys (distinct).
    matched: Vec<u32>,
    /// Each matching row of the file (its position in the file, in order) with its source
    /// row, so that a rewrite places rows without looking keys up again.
    matched_rows: Arc<Vec<(u64, u32)>>,
    pruned: Option<PruneStage>,
}

/// Whether some source key could lie in a file or row group with these statistics and
/// partition values. Unknown or inexact statistics say yes.
fn may_hold_keys(
    source: &Source,
    key: &[String],
    stats: &HashMap<String, ColumnStats>,
    partition: &HashMap<String, ScalarValue>,
) -> Result<bool> {
    let rows = source.rows.num_rows();
    if rows == 0 {
        return Ok(false);
    }
    // Fast path: two binary searches on the sorted first key column rule a file out, or
    // settle a single-column key.
    if let Some(first) = stats.get(&key[0])
        && let (Some(min), Some(max)) = (&first.min, &first.max)
        && first.min_exact
        && first.max_exact
        && !min.data_type().is_floating()
        && min.data_type() == source.first_key_sorted.data_type()
        && let Some(in_range) = source.first_key_in_range(min, max)
    {
        if !in_range {
            return Ok(false);
        }
        if key.len() == 1 {
            return Ok(true);
        }
    }
    let mut mask: Option<BooleanArray> = None;
    for k in key {
        let column = source.rows.column_by_name(k).expect("validated key column");
        let part = if let Some(value) = partition.get(k) {
            if value.is_null() {
                // A null key: keep the file so the key scan reports it.
                continue;
            }
            let value = match value.cast_to(column.data_type()) {
                Some(v) => v,
                None => continue,
            };
            arrow::compute::kernels::cmp::eq(
                column,
                &arrow::array::Scalar::new(Arc::clone(value.array())),
            )
            .map_err(|e| Error::arrow("pruning by partition key", e))?
        } else {
            let Some(s) = stats.get(k) else { continue };
            let (Some(min), Some(max)) = (&s.min, &s.max) else {
                continue;
            };
            // Float statistics leave NaN out while Arrow orders it above every number, so a
            // NaN key could fall outside [min, max] of a file that holds it.
            if !(s.min_exact && s.max_exact)
                || min.data_type() != column.data_type()
                || column.data_type().is_floating()
            {
                continue;
            }
            let lo = gt_eq(column, &arrow::array::Scalar::new(Arc::clone(min.array())))
                .map_err(|e| Error::arrow("pruning by statistics", e))?;
            let hi = lt_eq(column, &arrow::array::Scalar::new(Arc::clone(max.array())))
                .map_err(|e| Error::arrow("pruning by statistics", e))?;
            arrow::compute::and(&lo, &hi).map_err(|e| Error::arrow("pruning by statistics", e))?
        };
        mask = Some(match mask {
            None => part,
            Some(m) => arrow::compute::and(&m, &part).map_err(|e| Error::arrow("pruning", e))?,
        });
    }
    Ok(match mask {
        None => true,
        Some(m) => m.true_count() > 0,
    })
}

/// Whether some source key may be in a bloom filter (key types the filter can check; any
/// other type says yes).
fn bloom_may_hold(sbbf: &parquet::bloom_filter::Sbbf, keys: &ArrayRef) -> bool {
    use arrow::array::{AsArray, Int32Array, Int64Array};
    use arrow::datatypes::DataType;
    match keys.data_type() {
        DataType::Int64 => keys
            .as_any()
            .downcast_ref::<Int64Array>()
            .is_none_or(|a| a.values().iter().any(|v| sbbf.check(v))),
        DataType::Int32 => keys
            .as_any()
            .downcast_ref::<Int32Array>()
            .is_none_or(|a| a.values().iter().any(|v| sbbf.check(v))),
        DataType::Utf8 => keys
            .as_string::<i32>()
            .iter()
            .flatten()
            .any(|v| sbbf.check(v)),
        DataType::LargeUtf8 => keys
            .as_string::<i64>()
            .iter()
            .flatten()
            .any(|v| sbbf.check(v)),
        _ => true,
    }
}

/// Prunes a candidate's row groups (and the file) with the bloom filters of its key column.
/// A row group without a filter, or a key type the filter cannot check, is kept.
async fn prune_by_bloom(
    location: &Location,
    plan: &mut FilePlan,
    source: &Source,
    key: &str,
) -> Result<()> {
    if !plan.meta.bloom_filter_columns.contains(key) || plan.row_groups.is_empty() {
        return Ok(());
    }
    let Some(keys) = source.rows.column_by_name(key).cloned() else {
        return Ok(());
    };
    // The filter hashes values in the file's own physical width: an older file that holds
    // the key narrower (int32 in an int64 dataset) would be probed with the wrong bytes and
    // pruned wrongly. Only a file whose key type equals the dataset's is pruned this way.
    let same_type = plan
        .meta
        .schema
        .field_with_name(key)
        .is_ok_and(|f| f.data_type() == keys.data_type());
    if !same_type {
        return Ok(());
    }
    let descr = plan.meta.metadata().file_metadata().schema_descr_ptr();
    let Some(column) = descr
        .columns()
        .iter()
        .position(|c| c.path().parts() == [key.to_string()])
    else {
        return Ok(());
    };
    let describe = location.describe(&plan.meta.file.path);
    let reader = object_reader(location, &plan.meta.file);
    let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
        reader,
        plan.meta.reader_metadata.clone(),
    );
    let mut kept = Vec::with_capacity(plan.row_groups.len());
    for &rg in &plan.row_groups {
        let filter = builder
            .get_row_group_column_bloom_filter(rg, column)
            .await
            .map_err(|e| Error::from_parquet(&describe, e))?;
        if filter.is_none_or(|sbbf| bloom_may_hold(&sbbf, &keys)) {
            kept.push(rg);
        }
    }
    if kept.is_empty() {
        plan.pruned = Some(PruneStage::Bloom);
    }
    plan.row_groups = kept;
    Ok(())
}

/// How many files are scanned or rewritten at once.
pub const FILES_IN_PARALLEL: usize = 4;

/// Scans the key columns of one candidate through the engine's scan and records the matching
/// source rows, with each matching row's position in the file. Returns what read the keys.
async fn confirm(
    scanner: &dyn Scanner,
    location: &Location,
    plan: &mut FilePlan,
    source: &Source,
    key: &[String],
    converter: &KeyEncoder,
    file_key_cols: &[String],
) -> Result<&'static str> {
    let mut matched: HashSet<u32> = HashSet::new();
    let mut rows: Vec<(u64, u32)> = Vec::new();
    let mut executor = "none";
    if !plan.row_groups.is_empty() {
        let scan_plan = key_scan_plan(location, plan, file_key_cols);
        let mut spans = scan_plan.files[0].row_spans();
        let scan = scanner.scan(&scan_plan).await?;
        executor = scan.executor;
        let mut stream = scan.stream;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let keys = file_keys(&batch, key, &plan.partition, converter)?;
            for row in 0..batch.num_rows() {
                let position = loop {
                    let Some(span) = spans.front_mut() else {
                        return Err(Error::Internal(format!(
                            "the key scan of {} returned more rows than its row groups hold",
                            plan.meta.file.relative
                        )));
                    };
                    if span.1 == 0 {
                        spans.pop_front();
                        continue;
                    }
                    let at = span.0;
                    span.0 += 1;
                    span.1 -= 1;
                    break at;
                };
                if let Some(s) = source.index.get(&keys, row) {
                    matched.insert(s);
                    rows.push((position, s));
                }
            }
        }
        if spans.iter().any(|s| s.1 > 0) {
            return Err(Error::Internal(format!(
                "the key scan of {} returned fewer rows than its row groups hold",
                plan.meta.file.relative
            )));
        }
    }
    let mut matched: Vec<u32> = matched.into_iter().collect();
    matched.sort_unstable();
    plan.matched = matched;
    plan.matched_rows = Arc::new(rows);
    Ok(executor)
}

/// The scan of one candidate's key columns (those stored in the file), its kept row groups
/// in file order, no filter.
fn key_scan_plan(location: &Location, plan: &FilePlan, file_key_cols: &[String]) -> ScanPlan {
    let schema = Arc::clone(&plan.meta.schema);
    let key_schema = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| file_key_cols.contains(f.name()))
            .map(|f| f.as_ref().clone())
            .collect::<Vec<_>>(),
    ));
    let mut row_groups = plan.row_groups.clone();
    row_groups.sort_unstable();
    ScanPlan::of_files(
        location,
        vec![ScanFile {
            meta: plan.meta.clone(),
            partition: HashMap::new(),
            row_groups,
        }],
        PartitionSchema { fields: Vec::new() },
        schema,
        key_schema,
        65_536,
    )
}

/// The source keys as the engine's key sets: one per value of the key's partition columns
/// (all source rows when no key column is a partition column), each holding the key columns
/// stored in files and [`SOURCE_ROW_COLUMN`].
struct KeySets {
    matcher: Arc<dyn KeyMatcher>,
    /// The values of the key's partition columns -> the set.
    by_partition: HashMap<PartitionKey, usize>,
    /// Positions of the key's partition columns among the partition columns.
    key_partitions: Vec<usize>,
}

impl KeySets {
    async fn prepare(
        key_match: &dyn KeyMatch,
        source: &Source,
        key: &[String],
        partitions: &[String],
        file_key_cols: &[String],
        budget: &crate::plan::sort::MemoryBudget,
    ) -> Result<Self> {
        let key_partitions: Vec<usize> = partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| key.contains(p))
            .map(|(i, _)| i)
            .collect();
        let mut by_partition: HashMap<PartitionKey, usize> = HashMap::new();
        let mut members: Vec<Vec<u32>> = Vec::new();
        for (row, &part) in source.parts.iter().enumerate() {
            let values = &source.part_keys[part as usize];
            let group: PartitionKey = key_partitions.iter().map(|&i| values[i].clone()).collect();
            let next = by_partition.len();
            let set = *by_partition.entry(group).or_insert(next);
            if set == members.len() {
                members.push(Vec::new());
            }
            members[set].push(row as u32);
        }
        if source.parts.is_empty() && source.rows.num_rows() > 0 {
            by_partition.insert(Vec::new(), 0);
            members.push((0..source.rows.num_rows() as u32).collect());
        }
        let mut fields: Vec<arrow::datatypes::FieldRef> = file_key_cols
            .iter()
            .map(|k| {
                source
                    .rows
                    .schema()
                    .field_with_name(k)
                    .map(|f| Arc::new(f.clone()))
                    .map_err(|_| Error::column_not_found(k, "source (key)", &source.rows.schema()))
            })
            .collect::<Result<_>>()?;
        fields.push(Arc::new(arrow::datatypes::Field::new(
            SOURCE_ROW_COLUMN,
            arrow::datatypes::DataType::UInt32,
            false,
        )));
        let schema = Arc::new(Schema::new(fields));
        let sets = members
            .into_iter()
            .map(|rows| {
                let rows = UInt32Array::from(rows);
                let mut columns = file_key_cols
                    .iter()
                    .map(|k| {
                        let column = source.rows.column_by_name(k).expect("validated key");
                        arrow::compute::take(column.as_ref(), &rows, None)
                            .map_err(|e| Error::arrow("gathering source keys", e))
                    })
                    .collect::<Result<Vec<_>>>()?;
                columns.push(Arc::new(rows) as ArrayRef);
                RecordBatch::try_new(Arc::clone(&schema), columns)
                    .map_err(|e| Error::arrow("gathering source keys", e))
            })
            .collect::<Result<Vec<_>>>()?;
        let matcher = key_match.prepare(sets, budget).await?;
        Ok(KeySets {
            matcher,
            by_partition,
            key_partitions,
        })
    }

    /// The key set of a candidate, or `None` when no source key lives in its partition.
    fn set_of(&self, plan: &FilePlan) -> Option<usize> {
        let group: PartitionKey = self
            .key_partitions
            .iter()
            .map(|&i| plan.part[i].clone())
            .collect();
        self.by_partition.get(&group).copied()
    }

    /// Matches the candidates `plans[i]` for `i` in `candidates` with the engine, in one
    /// call. Returns what scanned and what matched each file the engine matched (`"none"`
    /// where nothing could match), and leaves the others (which the engine cannot read) to
    /// the core.
    async fn confirm_all(
        &self,
        location: &Location,
        plans: &mut [FilePlan],
        candidates: &[usize],
        file_key_cols: &[String],
    ) -> Result<(Vec<(usize, &'static str, &'static str)>, Vec<usize>)> {
        let mut done = Vec::new();
        let mut asked = Vec::new();
        let mut requests = Vec::new();
        for &i in candidates {
            let plan = &mut plans[i];
            match self.set_of(plan) {
                Some(set) if !plan.row_groups.is_empty() => {
                    asked.push(i);
                    requests.push((key_scan_plan(location, plan, file_key_cols), set));
                }
                _ => {
                    plan.matched = Vec::new();
                    plan.matched_rows = Arc::new(Vec::new());
                    done.push((i, "none", "none"));
                }
            }
        }
        if requests.is_empty() {
            return Ok((done, Vec::new()));
        }
        let answers = self.matcher.match_files(&requests).await?;
        if answers.len() != asked.len() {
            return Err(Error::Internal(format!(
                "the key match answered {} of {} files",
                answers.len(),
                asked.len()
            )));
        }
        let mut left = Vec::new();
        for (i, answer) in asked.into_iter().zip(answers) {
            let Some(found) = answer else {
                left.push(i);
                continue;
            };
            let plan = &mut plans[i];
            let mut matched: Vec<u32> = found.rows.iter().map(|&(_, s)| s).collect();
            matched.sort_unstable();
            matched.dedup();
            plan.matched = matched;
            plan.matched_rows = Arc::new(found.rows);
            done.push((i, found.scan, found.executor));
        }
        Ok((done, left))
    }
}

/// Records `what` in a report slot, keeping every distinct executor once.
fn note_executor(slot: &mut Option<String>, what: &str) {
    match slot {
        Some(existing) if existing.split(", ").any(|e| e == what) => {}
        Some(existing) => *existing = format!("{existing}, {what}"),
        None => *slot = Some(what.to_string()),
    }
}

/// Encodes a file batch's keys (key columns from the file, partition keys from the path),
/// rejecting nulls.
fn file_keys(
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
struct KeyEncoder {
    rows: RowConverter,
    types: Vec<arrow::datatypes::DataType>,
    /// A single integer key column: indexed by value.
    int: bool,
}

impl KeyEncoder {
    /// Key columns (of the dataset's key types, no nulls) in the index's form.
    fn encode(&self, columns: &[ArrayRef]) -> Result<BatchKeys> {
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

    fn new(schema: &Schema, key: &[String]) -> Result<Self> {
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

    fn key_types(&self) -> &[arrow::datatypes::DataType] {
        &self.types
    }
}

/// What a rewrite does with a file's matched and unmatched rows.
#[derive(Clone, Copy)]
struct RewriteRule {
    replace_matches: bool,
    drop_unmatched: bool,
}

/// Rewrites one file: matched rows replaced in place (or dropped unmatched rows), the rest
/// kept in order, streamed row group by row group into a new staged file in the same folder.
/// What every file rewrite of one merge shares.
#[derive(Clone)]
struct RewriteContext {
    location: Location,
    staging: Staging,
    source: Arc<Source>,
    file_schema: SchemaRef,
    write: WriteOptions,
    rule: RewriteRule,
    /// For full_merge: source rows already written, so that a key the dataset holds twice
    /// comes out once.
    emitted: Arc<std::sync::Mutex<HashSet<u32>>>,
    /// The engine's scan, which reads the files rewritten.
    scanner: Arc<dyn Scanner>,
}

/// Rewrites one file. Runs as its own task (the context is owned), so files are decoded and
/// encoded on every core.
async fn rewrite(ctx: RewriteContext, plan: FilePlan) -> Result<(Vec<PublishEntry>, &'static str)> {
    let RewriteContext {
        location,
        source,
        file_schema,
        rule,
        ..
    } = &ctx;
    // The engine reads the whole file, in order, as the dataset's file schema.
    let scan_plan = ScanPlan::of_files(
        location,
        vec![ScanFile {
            row_groups: (0..plan.meta.num_row_groups).collect(),
            meta: plan.meta.clone(),
            partition: HashMap::new(),
        }],
        PartitionSchema { fields: Vec::new() },
        Arc::clone(file_schema),
        Arc::clone(file_schema),
        8192,
    );
    let scan = ctx.scanner.scan(&scan_plan).await?;
    let executor = scan.executor;
    let mut stream = scan.stream;
    let mut write = ctx.write.clone();
    write.plain_columns = plan
        .meta
        .dictionary_fallback_columns
        .iter()
        .cloned()
        .collect();
    let mut writer = DatasetWriter::new(ctx.staging.clone(), Arc::clone(file_schema), write)?;
    let source_rows = source.file_rows.clone();
    // Matches come from the key scan, in file order: no key is looked up again here.
    let matches = &plan.matched_rows;
    let mut next_match = 0;
    let mut position: u64 = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let mut indices: Vec<(usize, usize)> = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let at = position + row as u64;
            let matched = match matches.get(next_match) {
                Some(&(p, s)) if p == at => {
                    next_match += 1;
                    Some(s)
                }
                _ => None,
            };
            match matched {
                Some(s) if rule.drop_unmatched => {
                    let first = ctx
                        .emitted
                        .lock()
                        .map_err(|_| Error::Internal("merge state poisoned".into()))?
                        .insert(s);
                    if first {
                        indices.push((1, s as usize));
                    }
                }
                Some(s) if rule.replace_matches => indices.push((1, s as usize)),
                Some(_) => indices.push((0, row)),
                None if rule.drop_unmatched => {}
                None => indices.push((0, row)),
            }
        }
        position += batch.num_rows() as u64;
        if indices.is_empty() {
            continue;
        }
        let out = interleave_batches(&[&batch, &source_rows], &indices, file_schema)?;
        writer.write_into(&plan.dir, &out).await?;
    }
    Ok((writer.finish_allow_none().await?, executor))
}

fn interleave_batches(
    batches: &[&RecordBatch],
    indices: &[(usize, usize)],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let columns = (0..schema.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            arrow::compute::interleave(&arrays, indices)
                .map_err(|e| Error::arrow("assembling rewritten rows", e))
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns)
        .map_err(|e| Error::arrow("assembling rewritten rows", e))
}

/// Merges `source` into the dataset at `location`. `engine` names the engine in the report.
pub async fn merge(
    engine: &str,
    executors: Executors,
    location: &Location,
    source: Batches,
    options: &MergeOptions,
) -> Result<MergeReport> {
    let started = Instant::now();
    let mode = validate_options(options)?;
    let (source_schema, source_batches, source_count) = collect_source(source).await?;
    for k in &options.key {
        if source_schema.field_with_name(k).is_err() {
            return Err(Error::column_not_found(k, "source (key)", &source_schema));
        }
    }
    crate::ops::write::reject_file_path(location).await?;
    // Plan under the lease so nothing changes between planning and commit (a dry run only
    // reads and takes no lease).
    let mut tx = if options.dry_run {
        None
    } else {
        Some(
            Transaction::begin(
                location,
                &format!("merge ({})", options.strategy),
                options.wait,
            )
            .await?,
        )
    };
    let planned = plan_and_run(
        engine,
        &executors,
        location,
        &mut tx,
        &source_schema,
        source_batches,
        source_count,
        options,
        mode,
        started,
    )
    .await;
    let Some(mut tx) = tx else {
        return planned.map(|(report, _)| report);
    };
    let (mut report, outputs) = match planned {
        Ok(done) => done,
        Err(e) => {
            tx.abort().await;
            return Err(e);
        }
    };
    let Some((outputs, removals)) = outputs else {
        tx.abort().await;
        return Ok(report);
    };
    for relative in removals {
        tx.remove(relative);
    }
    let operations: Vec<FileOperation> = outputs.iter().map(|(_, op)| *op).collect();
    tx.add_all(outputs.into_iter().map(|(e, _)| e));
    let outcome = tx.commit().await?;
    report.committed = true;
    report.cleanup_pending = outcome.cleanup_pending;
    for (file, op) in outcome.files.into_iter().zip(operations) {
        match op {
            FileOperation::Rewritten => report.rewritten_files.push(file.path.clone()),
            FileOperation::Inserted => report.inserted_files.push(file.path.clone()),
            FileOperation::Preserved => {}
        }
        report.files.push(MergeFile {
            path: file.path,
            row_count: file.row_count,
            operation: op,
            size_bytes: file.size_bytes,
        });
    }
    report.files.sort_by(|a, b| a.path.cmp(&b.path));
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Staged outputs with their operations, and the files to remove.
type Outputs = Option<(Vec<(PublishEntry, FileOperation)>, Vec<String>)>;

#[allow(clippy::too_many_arguments)]
async fn plan_and_run(
    engine: &str,
    executors: &Executors,
    location: &Location,
    tx: &mut Option<Transaction>,
    source_schema: &SchemaRef,
    source_batches: Vec<RecordBatch>,
    source_count: u64,
    options: &MergeOptions,
    mode: RewriteMode,
    started: Instant,
) -> Result<(MergeReport, Outputs)> {
    let files = match listing::list(location).await? {
        Listing::File(_) => {
            return Err(Error::NotADirectory {
                path: location.to_string(),
            });
        }
        Listing::Missing => Vec::new(),
        Listing::Dataset(files) => files,
    };
    let mut report = MergeReport {
        strategy: options.strategy,
        rewrite_mode: mode,
        dry_run: options.dry_run,
        source_count,
        target_count_before: 0,
        target_count_after: 0,
        inserted: 0,
        updated: 0,
        deleted: 0,
        total: 0,
        files: Vec::new(),
        rewritten_files: Vec::new(),
        inserted_files: Vec::new(),
        preserved_files: Vec::new(),
        engine: engine.to_string(),
        execution: Execution::default(),
        files_considered: files.len() as u64,
        files_pruned_by_partition: 0,
        files_pruned_by_statistics: 0,
        files_pruned_by_bloom: 0,
        files_key_scanned: 0,
        files_confirmed: 0,
        pruned: Vec::new(),
        committed: false,
        cleanup_pending: None,
        elapsed_ms: 0,
    };

    // The dataset's shape: footers (read once), layout, schema.
    let metas = read_footers(location, files).await?;
    // Rewritten and inserted files keep the bloom filters the dataset has on its keys.
    let mut effective = options.clone();
    for k in &options.key {
        if metas.iter().any(|m| m.bloom_filter_columns.contains(k))
            && !effective.write.bloom_filter_columns.contains(k)
        {
            effective.write.bloom_filter_columns.push(k.clone());
        }
    }
    let options = &effective;
    let layouts: Vec<_> = metas.iter().map(|m| m.file.partition.clone()).collect();
    // Partition values live in paths, untyped: read them as the source's types so that a
    // source with `day` as text matches folders that inference would read as dates.
    let overrides: HashMap<String, arrow::datatypes::DataType> =
        PartitionSchema::infer(&layouts, &HashMap::new())
            .names()
            .into_iter()
            .filter_map(|name| {
                let field = source_schema.field_with_name(&name).ok()?;
                Some((name, field.data_type().clone()))
            })
            .collect();
    let layout = PartitionSchema::infer(&layouts, &overrides);
    let partitions: Vec<String> = if metas.is_empty() {
        options.partition_by.clone().unwrap_or_default()
    } else {
        let names = layout.names();
        if let Some(given) = &options.partition_by
            && given != &names
        {
            return Err(Error::invalid_argument(
                "partition_by",
                given.join(","),
                format!("the dataset is partitioned by [{}]", names.join(",")),
            ));
        }
        names
    };
    let (file_schema, dataset_schema): (SchemaRef, SchemaRef) = if metas.is_empty() {
        let write = options.write.clone().with_partition_by(partitions.clone());
        (write.file_schema(source_schema)?, Arc::clone(source_schema))
    } else {
        let schemas: Vec<SchemaRef> = metas.iter().map(|m| Arc::clone(&m.schema)).collect();
        let file_schema = Arc::new(unify(&schemas)?);
        let dataset_schema = Arc::new(layout.extend(&file_schema));
        (file_schema, dataset_schema)
    };
    validate(source_schema, &dataset_schema, options)?;
    // Null keys in the target are known from the footers without a scan.
    for meta in &metas {
        for k in &options.key {
            if meta
                .column_stats
                .get(k)
                .and_then(|s| s.null_count)
                .is_some_and(|n| n > 0)
            {
                return Err(Error::NullKey {
                    column: k.clone(),
                    side: format!("target (file {})", meta.file.relative),
                });
            }
        }
    }
    let source = Arc::new(build_source(
        source_batches,
        &dataset_schema,
        &file_schema,
        &partitions,
        options,
    )?);
    let distinct = source.rows.num_rows() as u64;
    report.target_count_before = metas.iter().map(|m| m.num_rows).sum();

    let converter = Arc::new(KeyEncoder::new(&dataset_schema, &options.key)?);
    let file_key_cols: Vec<String> = options
        .key
        .iter()
        .filter(|k| !partitions.contains(k))
        .cloned()
        .collect();
    let partition_pruning =
        !partitions.is_empty() && partitions.iter().all(|p| options.key.contains(p));
    let source_parts: HashSet<&PartitionKey> = source.part_keys.iter().collect();
    // Insert never rewrites an existing file, whatever the rewrite mode.
    let full = mode == RewriteMode::Full && options.strategy != Strategy::Insert;

    // Plan each file.
    let mut plans = Vec::with_capacity(metas.len());
    for meta in metas {
        let partition = layout.values_of(&meta.file.partition)?;
        let dir = meta
            .file
            .relative
            .rsplit_once('/')
            .map(|(d, _)| d.to_string())
            .unwrap_or_default();
        let part: PartitionKey = partitions
            .iter()
            .map(|p| {
                partition
                    .get(p)
                    .filter(|v| !v.is_null())
                    .map(|v| v.to_string())
            })
            .collect();
        let mut plan = FilePlan {
            row_groups: (0..meta.num_row_groups).collect(),
            meta,
            dir,
            part,
            partition,
            matched: Vec::new(),
            matched_rows: Arc::new(Vec::new()),
            pruned: None,
        };
        if !full {
            if partition_pruning && !source_parts.contains(&plan.part) {
                plan.pruned = Some(PruneStage::Partition);
            } else if !may_hold_keys(
                &source,
                &options.key,
                &plan.meta.column_stats,
                &plan.partition,
            )? {
                plan.pruned = Some(PruneStage::Statistics);
            } else {
                let key_set: BTreeSet<String> = file_key_cols.iter().cloned().collect();
                let mut kept = Vec::new();
                for rg in 0..plan.meta.num_row_groups {
                    let stats = row_group_stats(&plan.meta, rg, &key_set);
                    if may_hold_keys(&source, &options.key, &stats, &plan.partition)? {
                        kept.push(rg);
                    }
                }
                if kept.is_empty() {
                    plan.pruned = Some(PruneStage::Statistics);
                }
                plan.row_groups = kept;
            }
        }
        plans.push(plan);
    }

    // Bloom filters, where every row group of a candidate has one on the (single) key column.
    if !full && file_key_cols.len() == 1 {
        let checks: Vec<_> = plans
            .iter_mut()
            .filter(|p| p.pruned.is_none())
            .map(|plan| prune_by_bloom(location, plan, &source, &file_key_cols[0]))
            .collect();
        let results: Vec<Result<()>> = futures::stream::iter(checks)
            .buffer_unordered(FILES_IN_PARALLEL)
            .collect()
            .await;
        for r in results {
            r?;
        }
    }

    // Confirm with key-only scans (every file in full mode, to count).
    let candidates: Vec<usize> = (0..plans.len())
        .filter(|&i| plans[i].pruned.is_none())
        .collect();
    report.files_key_scanned = candidates.len() as u64;
    // The engine's key match, when it has one and a key column is stored in the files.
    let key_sets = match &executors.key_match {
        Some(key_match) if !file_key_cols.is_empty() && !candidates.is_empty() => Some(
            KeySets::prepare(
                key_match.as_ref(),
                &source,
                &options.key,
                &partitions,
                &file_key_cols,
                &options.memory,
            )
            .await?,
        ),
        _ => None,
    };
    // The engine matches what it can read; the core's scan and index match the rest.
    let core_candidates = match &key_sets {
        Some(sets) => {
            let (done, left) = sets
                .confirm_all(location, &mut plans, &candidates, &file_key_cols)
                .await?;
            for (_, scan, executor) in done {
                if executor != "none" {
                    note_executor(&mut report.execution.scan, scan);
                    note_executor(&mut report.execution.key_match, executor);
                }
            }
            left
        }
        None => candidates,
    };
    {
        // Each scan is a spawned task on an owned copy of the file's plan (started lazily,
        // FILES_IN_PARALLEL at a time), so key columns decode on every core.
        let key = Arc::new(options.key.clone());
        let cols = Arc::new(file_key_cols.clone());
        let jobs: Vec<(usize, FilePlan)> = core_candidates
            .iter()
            .map(|&i| (i, plans[i].clone()))
            .collect();
        let scans = jobs.into_iter().map(|(i, mut plan)| {
            let (location, source) = (location.clone(), Arc::clone(&source));
            let (key, converter, cols) =
                (Arc::clone(&key), Arc::clone(&converter), Arc::clone(&cols));
            let scanner = Arc::clone(&executors.scanner);
            async move {
                let executor = confirm(
                    scanner.as_ref(),
                    &location,
                    &mut plan,
                    &source,
                    &key,
                    &converter,
                    &cols,
                )
                .await?;
                Ok::<_, Error>((i, plan, executor))
            }
        });
        let scanned = crate::tasks::run_bounded(scans, FILES_IN_PARALLEL).await?;
        for (i, plan, executor) in scanned {
            plans[i] = plan;
            if executor != "none" {
                note_executor(&mut report.execution.scan, executor);
                note_executor(&mut report.execution.key_match, crate::ops::CORE_KEY_MATCH);
            }
        }
    }
    // A matched key must stay in its partition.
    let mut matched_sources: HashSet<u32> = HashSet::new();
    for plan in &plans {
        for &s in &plan.matched {
            if !partitions.is_empty()
                && source.part_keys[source.parts[s as usize] as usize] != plan.part
            {
                let key_text = options
                    .key
                    .iter()
                    .map(|k| {
                        let column = source.rows.column_by_name(k).expect("key");
                        format!(
                            "{k}={}",
                            ScalarValue::from_array(column.as_ref(), s as usize)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Error::invalid_argument(
                    "source row",
                    key_text,
                    format!(
                        "the key lives in partition {} but the source puts it in {}; partition \
                         values cannot change for existing keys",
                        describe_partition(&partitions, &plan.part),
                        describe_partition(
                            &partitions,
                            &source.part_keys[source.parts[s as usize] as usize],
                        )
                    ),
                ));
            }
            matched_sources.insert(s);
        }
    }
    let strategy = options.strategy;
    let rule = RewriteRule {
        replace_matches: strategy != Strategy::Insert,
        drop_unmatched: strategy == Strategy::FullMerge,
    };
    let inserts: Vec<u32> = match strategy {
        Strategy::Update => Vec::new(),
        _ => (0..distinct as u32)
            .filter(|s| !matched_sources.contains(s))
            .collect(),
    };
    report.inserted = inserts.len() as u64;
    report.updated = if strategy == Strategy::Insert {
        0
    } else {
        matched_sources.len() as u64
    };
    // full_merge keeps each matched key once, even if the dataset held it twice.
    report.deleted = if strategy == Strategy::FullMerge {
        report
            .target_count_before
            .checked_sub(matched_sources.len() as u64)
            .ok_or_else(|| Error::Internal("more matched keys than rows in the dataset".into()))?
    } else {
        0
    };
    for plan in plans.iter_mut() {
        if plan.pruned.is_none()
            && !full
            && (plan.matched.is_empty() || strategy == Strategy::Insert)
        {
            plan.pruned = Some(PruneStage::KeyScan);
        }
    }
    report.files_confirmed = plans.iter().filter(|p| !p.matched.is_empty()).count() as u64;
    for plan in &plans {
        match plan.pruned {
            Some(PruneStage::Partition) => report.files_pruned_by_partition += 1,
            Some(PruneStage::Statistics) => report.files_pruned_by_statistics += 1,
            Some(PruneStage::Bloom) => report.files_pruned_by_bloom += 1,
            _ => {}
        }
        if let Some(stage) = plan.pruned {
            report.pruned.push(PrunedFile {
                path: plan.meta.file.relative.clone(),
                stage,
            });
        }
    }
    let to_rewrite: Vec<&FilePlan> = plans.iter().filter(|p| p.pruned.is_none()).collect();
    let preserved: Vec<&FilePlan> = plans.iter().filter(|p| p.pruned.is_some()).collect();
    report.target_count_after = report.target_count_before + report.inserted - report.deleted;
    report.total = report.target_count_after;
    for plan in &preserved {
        report.preserved_files.push(plan.meta.file.relative.clone());
        report.files.push(MergeFile {
            path: plan.meta.file.relative.clone(),
            row_count: plan.meta.num_rows,
            operation: FileOperation::Preserved,
            size_bytes: plan.meta.file.size,
        });
    }

    if options.dry_run {
        for plan in &to_rewrite {
            report.rewritten_files.push(plan.meta.file.relative.clone());
            report.files.push(MergeFile {
                path: plan.meta.file.relative.clone(),
                row_count: plan.meta.num_rows,
                operation: FileOperation::Rewritten,
                size_bytes: plan.meta.file.size,
            });
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok((report, None));
    }
    if to_rewrite.is_empty()
        && inserts.is_empty()
        && !(strategy == Strategy::FullMerge && report.files_considered == 0)
    {
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok((report, None));
    }

    let Some(tx) = tx.as_mut() else {
        return Ok((report, None));
    };
    let outputs = execute(
        tx,
        &executors.scanner,
        &mut report.execution,
        location,
        &to_rewrite,
        &source,
        &inserts,
        &file_schema,
        &dataset_schema,
        &partitions,
        options,
        rule,
        report.target_count_after == 0,
    )
    .await?;
    let removals = to_rewrite
        .iter()
        .map(|p| p.meta.file.relative.clone())
        .collect();
    Ok((report, Some((outputs, removals))))
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    tx: &mut Transaction,
    scanner: &Arc<dyn Scanner>,
    execution: &mut Execution,
    location: &Location,
    to_rewrite: &[&FilePlan],
    source: &Arc<Source>,
    inserts: &[u32],
    file_schema: &SchemaRef,
    dataset_schema: &SchemaRef,
    partitions: &[String],
    options: &MergeOptions,
    rule: RewriteRule,
    ends_empty: bool,
) -> Result<Vec<(PublishEntry, FileOperation)>> {
    let mut write = options.write.clone();
    write.partition_by = Vec::new();
    let staging = tx.staging();
    let ctx = RewriteContext {
        location: location.clone(),
        staging: staging.clone(),
        source: Arc::clone(source),
        file_schema: Arc::clone(file_schema),
        write,
        rule,
        emitted: Arc::new(std::sync::Mutex::new(HashSet::new())),
        scanner: Arc::clone(scanner),
    };
    // Each file is a spawned task (started lazily, FILES_IN_PARALLEL at a time), so the
    // CPU work spreads over the runtime's threads.
    let jobs: Vec<(RewriteContext, FilePlan)> = to_rewrite
        .iter()
        .map(|plan| (ctx.clone(), (*plan).clone()))
        .collect();
    let rewritten: Vec<(Vec<PublishEntry>, &'static str)> = crate::tasks::run_bounded(
        jobs.into_iter().map(|(ctx, plan)| rewrite(ctx, plan)),
        FILES_IN_PARALLEL,
    )
    .await?;
    let mut outputs: Vec<(PublishEntry, FileOperation)> = Vec::new();
    for (entries, executor) in rewritten {
        note_executor(&mut execution.scan, executor);
        outputs.extend(entries.into_iter().map(|e| (e, FileOperation::Rewritten)));
    }
    execution.write = Some(crate::ops::CORE_WRITER.to_string());
    if !inserts.is_empty() || ends_empty {
        // Inserts are ascending source rows: all of them needs no copy.
        let rows = if inserts.len() == source.rows.num_rows() {
            source.rows.clone()
        } else {
            arrow::compute::take_record_batch(&source.rows, &UInt32Array::from(inserts.to_vec()))
                .map_err(|e| Error::arrow("selecting inserted rows", e))?
        };
        let insert_options = options.write.clone().with_partition_by(partitions.to_vec());
        let mut writer = DatasetWriter::new(staging, Arc::clone(dataset_schema), insert_options)?;
        writer.write(&rows).await?;
        // A dataset that ends with no rows keeps one empty file with the schema.
        let entries = if ends_empty && outputs.iter().all(|(e, _)| e.row_count == 0) {
            writer.finish().await?
        } else {
            writer.finish_allow_none().await?
        };
        outputs.extend(entries.into_iter().map(|e| (e, FileOperation::Inserted)));
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_point_finds_the_first_false() {
        let values = [1, 3, 3, 7, 9];
        for (target, expected) in [(0, 0), (1, 0), (2, 1), (3, 1), (8, 4), (10, 5)] {
            assert_eq!(
                partition_point(values.len(), |i| values[i] < target),
                expected,
                "{target}"
            );
        }
        assert_eq!(partition_point(0, |_| true), 0);
    }

    #[test]
    fn strategies_and_modes_parse_and_validate() {
        assert_eq!(
            "full-merge".parse::<Strategy>().unwrap(),
            Strategy::FullMerge
        );
        assert!("x".parse::<RewriteMode>().is_err());
        let mut options = MergeOptions::new(["id"], Strategy::Deduplicate);
        assert_eq!(options.effective_rewrite_mode().unwrap(), RewriteMode::Full);
        options.rewrite_mode = Some(RewriteMode::Incremental);
        assert!(options.effective_rewrite_mode().is_err());
        let options = MergeOptions::new(["id", "id"], Strategy::Upsert);
        assert!(validate_options(&options).is_err());
        let mut options = MergeOptions::new(["id"], Strategy::Upsert);
        options.dedup_order_by = vec!["ts".into()];
        assert!(
            validate_options(&options).is_err(),
            "dedup_order_by needs deduplicate"
        );
    }
}
