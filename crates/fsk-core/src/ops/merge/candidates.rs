//! Merge candidates: one [`FilePlan`] per data file, pruned by partition values, footer
//! statistics (down to row groups) and bloom filters before any data is read. Unknown or
//! inexact statistics keep a file.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::compute::kernels::cmp::{gt_eq, lt_eq};
use futures::StreamExt;
use parquet::arrow::ParquetRecordBatchStreamBuilder;

use crate::dataset::footer::{FileMeta, object_reader, row_group_stats};
use crate::dataset::stats::ColumnStats;
use crate::dataset::storage::Location;
use crate::error::{Error, Result};
use crate::ops::merge::shape::Shape;
use crate::ops::merge::source::{PartitionKey, Source};
use crate::ops::merge::{FILES_IN_PARALLEL, PruneStage};
use crate::value::ScalarValue;

/// Per-file knowledge gathered by planning.
#[derive(Clone)]
pub(crate) struct FilePlan {
    pub(crate) meta: FileMeta,
    /// The file's folder, relative to the root (rewrites go to the same folder).
    pub(crate) dir: String,
    /// The file's partition values.
    pub(crate) part: PartitionKey,
    pub(crate) partition: HashMap<String, ScalarValue>,
    /// Row groups that may hold source keys.
    pub(crate) row_groups: Vec<usize>,
    /// Source rows matched by this file's keys (distinct).
    pub(crate) matched: Vec<u32>,
    /// Each matching row of the file (its position in the file, in order) with its source
    /// row, so that a rewrite places rows without looking keys up again.
    pub(crate) matched_rows: Arc<Vec<(u64, u32)>>,
    pub(crate) pruned: Option<PruneStage>,
}

/// Whether some source key could lie in a file or row group with these statistics and
/// partition values. Unknown or inexact statistics say yes.
pub(crate) fn may_hold_keys(
    source: &Source,
    key: &[String],
    stats: &HashMap<String, ColumnStats>,
    partition: &HashMap<String, ScalarValue>,
) -> Result<bool> {
    let rows = source.num_rows();
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
        let column = source.key_column(k);
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
    let Some(keys) = source.keys.column_by_name(key).cloned() else {
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

/// Plans each file: its partition, its folder, and (unless every file is rewritten) the row
/// groups that may hold a source key, pruned by partition values (only when every partition
/// column is a key column: otherwise a moved key would go unseen) and footer statistics.
pub(crate) fn plan_files(
    metas: Vec<FileMeta>,
    shape: &Shape,
    source: &Source,
    key: &[String],
    full: bool,
) -> Result<Vec<FilePlan>> {
    let partitions = &shape.partitions;
    let partition_pruning = !partitions.is_empty() && partitions.iter().all(|p| key.contains(p));
    let source_parts: HashSet<&PartitionKey> = source.part_keys.iter().collect();
    let key_set: BTreeSet<String> = key
        .iter()
        .filter(|k| !partitions.contains(k))
        .cloned()
        .collect();
    let mut plans = Vec::with_capacity(metas.len());
    for meta in metas {
        let partition = shape.layout.values_of(&meta.file.partition)?;
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
        if full {
            plans.push(plan);
            continue;
        }
        if partition_pruning && !source_parts.contains(&plan.part) {
            plan.pruned = Some(PruneStage::Partition);
        } else if !may_hold_keys(source, key, &plan.meta.column_stats, &plan.partition)? {
            plan.pruned = Some(PruneStage::Statistics);
        } else {
            let mut kept = Vec::new();
            for rg in 0..plan.meta.num_row_groups {
                let stats = row_group_stats(&plan.meta, rg, &key_set);
                if may_hold_keys(source, key, &stats, &plan.partition)? {
                    kept.push(rg);
                }
            }
            if kept.is_empty() {
                plan.pruned = Some(PruneStage::Statistics);
            }
            plan.row_groups = kept;
        }
        plans.push(plan);
    }
    Ok(plans)
}

/// Prunes the candidates by the bloom filters of the (single, stored) key column,
/// [`FILES_IN_PARALLEL`] files at a time.
pub(crate) async fn prune_by_bloom_all(
    location: &Location,
    plans: &mut [FilePlan],
    source: &Source,
    key: &str,
) -> Result<()> {
    let checks: Vec<_> = plans
        .iter_mut()
        .filter(|p| p.pruned.is_none())
        .map(|plan| prune_by_bloom(location, plan, source, key))
        .collect();
    let results: Vec<Result<()>> = futures::stream::iter(checks)
        .buffer_unordered(FILES_IN_PARALLEL)
        .collect()
        .await;
    results.into_iter().collect()
}
