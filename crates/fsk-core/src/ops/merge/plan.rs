//! The merge plan: which files a merge rewrites, which source rows replace which rows of each,
//! which source rows are inserted, and the report's counts. [`plan_merge`] builds it with the
//! core's pruning and the engine's key match, reading only footers and key columns;
//! [`execute`](crate::ops::merge::execute::execute) carries it out. A dry run returns the plan's
//! report.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::SchemaRef;

use crate::dataset::footer::{FileMeta, read_footers};
use crate::dataset::listing::{self, Listing};
use crate::dataset::storage::Location;
use crate::engine::DatasetBackend;
use crate::error::{Error, Result};
use crate::ops::Execution;
use crate::ops::merge::candidates::{self, FilePlan};
use crate::ops::merge::confirm;
use crate::ops::merge::shape::Shape;
use crate::ops::merge::source::{
    PartitionKey, Source, SourceInput, build_source, describe_partition, validate,
};
use crate::ops::merge::spill::spill_source;
use crate::ops::merge::{
    Executors, FileOperation, MergeFile, MergeOptions, MergeReport, PruneStage, PrunedFile,
    RewriteMode, Strategy,
};
use crate::value::ScalarValue;

/// What a rewrite does with a file's matched and unmatched rows.
#[derive(Clone, Copy)]
pub(crate) struct RewriteRule {
    /// Matched rows take the source row.
    pub(crate) replace_matches: bool,
    /// Rows with no match are dropped (full_merge).
    pub(crate) drop_unmatched: bool,
}

/// A planned merge, plain data: what [`execute`](crate::ops::merge::execute::execute) does.
pub(crate) struct MergePlan {
    /// The report so far: counts, pruning, preserved files (rewritten and inserted files are
    /// added when the outputs commit).
    pub(crate) report: MergeReport,
    /// The deduplicated source with its key index.
    pub(crate) source: Arc<Source>,
    /// The dataset's partitions and schemas.
    pub(crate) shape: Shape,
    /// The options in effect (the dataset's bloom filter columns on keys added).
    pub(crate) options: MergeOptions,
    /// What a rewrite does with matched and unmatched rows.
    pub(crate) rule: RewriteRule,
    /// The files to rewrite, each with its matched rows.
    pub(crate) to_rewrite: Vec<FilePlan>,
    /// Source rows (indices into the source) written as new files.
    pub(crate) inserts: Vec<u32>,
}

impl MergePlan {
    /// Whether the merge changes nothing: no rewrite and no insert (a full merge into a folder
    /// with no files still writes one, with the schema).
    pub(crate) fn writes_nothing(&self) -> bool {
        self.to_rewrite.is_empty()
            && self.inserts.is_empty()
            && !(self.options.strategy == Strategy::FullMerge && self.report.files_considered == 0)
    }

    /// Whether the dataset ends with no rows (it then keeps one empty file with the schema).
    pub(crate) fn ends_empty(&self) -> bool {
        self.report.target_count_after == 0
    }

    /// The report of a dry run: the plan's, with the files it would rewrite.
    pub(crate) fn dry_run_report(self, started: Instant) -> MergeReport {
        let mut report = self.report;
        for plan in &self.to_rewrite {
            report.rewritten_files.push(plan.meta.file.relative.clone());
            report.files.push(MergeFile {
                path: plan.meta.file.relative.clone(),
                row_count: plan.meta.num_rows,
                operation: FileOperation::Rewritten,
                size_bytes: plan.meta.file.size,
            });
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        report
    }
}

/// Plans the merge of the source (`input`, of `source_schema`) into the dataset at
/// `location`: validation, source deduplication (in memory, or through `backend`'s sort and
/// spilled), candidate pruning (partition values, statistics, bloom filters), key
/// confirmation, and the counts.
pub(crate) async fn plan_merge<B: DatasetBackend + ?Sized>(
    backend: &B,
    executors: &Executors,
    location: &Location,
    source_schema: &SchemaRef,
    input: SourceInput,
    options: &MergeOptions,
    mode: RewriteMode,
) -> Result<MergePlan> {
    options
        .progress
        .phase("plan", None, crate::progress::Unit::Files);
    let files = match listing::list(location).await? {
        Listing::File(_) => {
            return Err(Error::NotADirectory {
                path: location.to_string(),
            });
        }
        Listing::Missing => Vec::new(),
        Listing::Dataset(files) => files,
    };
    let mut report = MergeReport::planned(backend.name(), options, mode, 0, files.len());
    // The dataset's shape: footers (read once), layout, schema.
    let metas = read_footers(location, files).await?;
    let options = with_dataset_bloom_filters(options, &metas);
    let shape = Shape::of(&metas, source_schema, &options)?;
    validate(source_schema, &shape.dataset_schema, &options)?;
    reject_null_target_keys(&metas, &options.key)?;
    let source = match input {
        SourceInput::Memory(batches) => {
            report.source_count = batches.iter().map(|b| b.num_rows() as u64).sum();
            build_source(batches, &shape.dataset_schema, &shape.partitions, &options)?
        }
        SourceInput::Streamed {
            read,
            rest,
            rows_hint,
        } => {
            let spilled = spill_source(
                backend,
                read,
                rest,
                rows_hint,
                &shape.dataset_schema,
                &shape.partitions,
                &options,
            )
            .await?;
            report.source_count = spilled.count;
            report.execution.sort = Some(spilled.sorted_by.to_string());
            report.source_spilled_bytes = spilled.source.spilled_bytes();
            spilled.source
        }
    };
    let source = Arc::new(source);
    report.target_count_before = metas.iter().map(|m| m.num_rows).sum();

    // Insert never rewrites an existing file, whatever the rewrite mode.
    let full = mode == RewriteMode::Full && options.strategy != Strategy::Insert;
    let file_key_cols: Vec<String> = options
        .key
        .iter()
        .filter(|k| !shape.partitions.contains(k))
        .cloned()
        .collect();
    let mut plans = candidates::plan_files(metas, &shape, &source, &options.key, full)?;
    if !full && file_key_cols.len() == 1 {
        candidates::prune_by_bloom_all(location, &mut plans, &source, &file_key_cols[0]).await?;
    }
    report.files_key_scanned = plans.iter().filter(|p| p.pruned.is_none()).count() as u64;
    options.progress.phase(
        "scan keys",
        Some(report.files_key_scanned),
        crate::progress::Unit::Files,
    );
    confirm::confirm_candidates(
        executors,
        location,
        &mut plans,
        &source,
        &options,
        &shape.partitions,
        &file_key_cols,
        &mut report.execution,
    )
    .await?;
    let matched = matched_sources(&plans, &source, &options.key, &shape.partitions)?;
    let inserts = count(&mut report, &source, &matched, options.strategy)?;
    let to_rewrite = settle_files(&mut report, plans, full, options.strategy);
    let rule = RewriteRule {
        replace_matches: options.strategy != Strategy::Insert,
        drop_unmatched: options.strategy == Strategy::FullMerge,
    };
    Ok(MergePlan {
        report,
        source,
        shape,
        options,
        rule,
        to_rewrite,
        inserts,
    })
}

impl MergeReport {
    /// The report of a merge before planning: options and sizes, every count zero.
    fn planned(
        engine: &str,
        options: &MergeOptions,
        mode: RewriteMode,
        source_count: u64,
        files: usize,
    ) -> MergeReport {
        MergeReport {
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
            files_considered: files as u64,
            files_pruned_by_partition: 0,
            files_pruned_by_statistics: 0,
            files_pruned_by_bloom: 0,
            files_key_scanned: 0,
            files_confirmed: 0,
            pruned: Vec::new(),
            source_spilled_bytes: 0,
            committed: false,
            cleanup_pending: None,
            elapsed_ms: 0,
        }
    }
}

/// The options with the dataset's bloom filters on key columns: rewritten and inserted files
/// keep them.
fn with_dataset_bloom_filters(options: &MergeOptions, metas: &[FileMeta]) -> MergeOptions {
    let mut effective = options.clone();
    for k in &options.key {
        if metas.iter().any(|m| m.bloom_filter_columns.contains(k))
            && !effective.write.bloom_filter_columns.contains(k)
        {
            effective.write.bloom_filter_columns.push(k.clone());
        }
    }
    effective
}

/// Null keys in the target are known from the footers without a scan.
fn reject_null_target_keys(metas: &[FileMeta], key: &[String]) -> Result<()> {
    for meta in metas {
        for k in key {
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
    Ok(())
}

/// The source rows that matched a row of the dataset. A matched key must stay in its
/// partition: a source row that would move it is an error naming the key and both partitions.
fn matched_sources(
    plans: &[FilePlan],
    source: &Source,
    key: &[String],
    partitions: &[String],
) -> Result<HashSet<u32>> {
    let mut matched: HashSet<u32> = HashSet::new();
    for plan in plans {
        for &s in &plan.matched {
            let source_part = &source.part_keys[source.parts[s as usize] as usize];
            if !partitions.is_empty() && *source_part != plan.part {
                return Err(moved_key(
                    source,
                    key,
                    s,
                    partitions,
                    &plan.part,
                    source_part,
                ));
            }
            matched.insert(s);
        }
    }
    Ok(matched)
}

fn moved_key(
    source: &Source,
    key: &[String],
    row: u32,
    partitions: &[String],
    dataset_part: &PartitionKey,
    source_part: &PartitionKey,
) -> Error {
    let key_text = key
        .iter()
        .map(|k| {
            let column = source.key_column(k);
            format!(
                "{k}={}",
                ScalarValue::from_array(column.as_ref(), row as usize)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    Error::invalid_argument(
        "source row",
        key_text,
        format!(
            "the key lives in partition {} but the source puts it in {}; partition values cannot \
             change for existing keys",
            describe_partition(partitions, dataset_part),
            describe_partition(partitions, source_part)
        ),
    )
}

/// Counts inserts, updates and deletes into the report; returns the source rows to insert.
fn count(
    report: &mut MergeReport,
    source: &Source,
    matched: &HashSet<u32>,
    strategy: Strategy,
) -> Result<Vec<u32>> {
    let distinct = source.num_rows() as u32;
    let inserts: Vec<u32> = match strategy {
        Strategy::Update => Vec::new(),
        _ => (0..distinct).filter(|s| !matched.contains(s)).collect(),
    };
    report.inserted = inserts.len() as u64;
    report.updated = if strategy == Strategy::Insert {
        0
    } else {
        matched.len() as u64
    };
    // full_merge keeps each matched key once, even if the dataset held it twice.
    report.deleted = if strategy == Strategy::FullMerge {
        report
            .target_count_before
            .checked_sub(matched.len() as u64)
            .ok_or_else(|| Error::Internal("more matched keys than rows in the dataset".into()))?
    } else {
        0
    };
    report.target_count_after = report.target_count_before + report.inserted - report.deleted;
    report.total = report.target_count_after;
    Ok(inserts)
}

/// Decides each file: a candidate with no match (or any file, for insert) is preserved after
/// its key scan; the rest are rewritten. Records pruning and preserved files in the report and
/// returns the files to rewrite.
fn settle_files(
    report: &mut MergeReport,
    mut plans: Vec<FilePlan>,
    full: bool,
    strategy: Strategy,
) -> Vec<FilePlan> {
    for plan in plans.iter_mut() {
        if plan.pruned.is_none()
            && !full
            && (plan.matched.is_empty() || strategy == Strategy::Insert)
        {
            plan.pruned = Some(PruneStage::KeyScan);
        }
    }
    report.files_confirmed = plans.iter().filter(|p| !p.matched.is_empty()).count() as u64;
    let mut to_rewrite = Vec::new();
    for plan in plans {
        let Some(stage) = plan.pruned else {
            to_rewrite.push(plan);
            continue;
        };
        match stage {
            PruneStage::Partition => report.files_pruned_by_partition += 1,
            PruneStage::Statistics => report.files_pruned_by_statistics += 1,
            PruneStage::Bloom => report.files_pruned_by_bloom += 1,
            PruneStage::KeyScan => {}
        }
        let path = plan.meta.file.relative.clone();
        report.pruned.push(PrunedFile {
            path: path.clone(),
            stage,
        });
        report.preserved_files.push(path.clone());
        report.files.push(MergeFile {
            path,
            row_count: plan.meta.num_rows,
            operation: FileOperation::Preserved,
            size_bytes: plan.meta.file.size,
        });
    }
    to_rewrite
}
