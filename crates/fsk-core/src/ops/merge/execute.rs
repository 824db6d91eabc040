//! Executing a merge plan: each planned file is read through the engine's scan and rewritten
//! with its matched rows replaced (or dropped), the inserts written as new files, all staged
//! in the transaction by the core's writer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::SchemaRef;
use futures::StreamExt;

use crate::commit::{PublishEntry, Staging, Transaction};
use crate::dataset::partition::PartitionSchema;
use crate::dataset::storage::Location;
use crate::engine::Scanner;
use crate::error::{Error, Result};
use crate::ops::merge::candidates::FilePlan;
use crate::ops::merge::plan::{MergePlan, RewriteRule};
use crate::ops::merge::source::Source;
use crate::ops::merge::{FILES_IN_PARALLEL, FileOperation, MergeReport, note_executor};
use crate::plan::scan::{ScanFile, ScanPlan};
use crate::progress::{Progress, Unit};
use crate::write::{DatasetWriter, WriteOptions};

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
    /// Advanced by each file's bytes as its rows are read (phase `rewrite`).
    progress: Progress,
}

/// Rewrites one file: matched rows replaced in place (or unmatched rows dropped), the rest
/// kept in order, streamed batch by batch into a new staged file in the same folder. Runs as
/// its own task (the context is owned), so files are decoded and
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
    // The matched source rows only (for a spilled source, read back from the batches that
    // hold them), each match pointing into them.
    let source_rows = source.take(&plan.matched, file_schema).await?;
    let local = |s: u32| -> Result<usize> {
        plan.matched.binary_search(&s).map_err(|_| {
            Error::Internal(format!(
                "a match of {} is not among its matched source rows",
                plan.meta.file.relative
            ))
        })
    };
    // Matches come from the key scan, in file order: no key is looked up again here.
    let matches = &plan.matched_rows;
    let mut next_match = 0;
    let mut position: u64 = 0;
    let mut meter = ctx.progress.meter(plan.meta.file.size, plan.meta.num_rows);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        meter.rows(batch.num_rows() as u64);
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
                        indices.push((1, local(s)?));
                    }
                }
                Some(s) if rule.replace_matches => indices.push((1, local(s)?)),
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
    meter.done();
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

/// Staged outputs with their operations.
pub(crate) type Outputs = Vec<(PublishEntry, FileOperation)>;

/// Carries out a plan inside `tx`: rewrites the planned files through the engine's scan
/// ([`FILES_IN_PARALLEL`] at a time, each its own task), writes the inserts with the core's
/// writer. Returns the report (execution noted), the staged outputs, and the files to remove.
pub(crate) async fn execute(
    tx: &mut Transaction,
    scanner: &Arc<dyn Scanner>,
    plan: MergePlan,
) -> Result<(MergeReport, Outputs, Vec<String>)> {
    let ends_empty = plan.ends_empty();
    let MergePlan {
        mut report,
        source,
        shape,
        options,
        rule,
        to_rewrite,
        inserts,
    } = plan;
    let mut write = options.write.clone();
    write.partition_by = Vec::new();
    let staging = tx.staging();
    let ctx = RewriteContext {
        location: tx.location().clone(),
        staging: staging.clone(),
        source: Arc::clone(&source),
        file_schema: Arc::clone(&shape.file_schema),
        write,
        rule,
        emitted: Arc::new(std::sync::Mutex::new(HashSet::new())),
        scanner: Arc::clone(scanner),
        progress: options.progress.clone(),
    };
    let rewrite_bytes: u64 = to_rewrite.iter().map(|p| p.meta.file.size).sum();
    options
        .progress
        .phase("rewrite", Some(rewrite_bytes), Unit::Bytes);
    let removals: Vec<String> = to_rewrite
        .iter()
        .map(|p| p.meta.file.relative.clone())
        .collect();
    let rewritten: Vec<(Vec<PublishEntry>, &'static str)> = crate::tasks::run_bounded(
        to_rewrite
            .into_iter()
            .map(|file| rewrite(ctx.clone(), file)),
        FILES_IN_PARALLEL,
    )
    .await?;
    let mut outputs: Outputs = Vec::new();
    for (entries, executor) in rewritten {
        note_executor(&mut report.execution.scan, executor);
        outputs.extend(entries.into_iter().map(|e| (e, FileOperation::Rewritten)));
    }
    report.execution.write = Some(crate::ops::CORE_WRITER.to_string());
    if !inserts.is_empty() || ends_empty {
        let mut insert_options = options
            .write
            .clone()
            .with_partition_by(shape.partitions.clone());
        if source.is_spilled() {
            // Spilled inserts stream in key order, so every partition may be open at once:
            // row groups are flushed early to keep their buffers within a share of the budget.
            insert_options.max_buffered_bytes = Some(options.memory.bytes as u64 / 4);
        }
        let mut writer =
            DatasetWriter::new(staging, Arc::clone(&shape.dataset_schema), insert_options)?;
        options
            .progress
            .phase("insert", Some(inserts.len() as u64), Unit::Rows);
        let mut rows = source.select(inserts);
        while let Some(batch) = rows.next().await {
            let batch = batch?;
            writer.write(&batch).await?;
            options.progress.advance(batch.num_rows() as u64);
        }
        // A dataset that ends with no rows keeps one empty file with the schema.
        let entries = if ends_empty && outputs.iter().all(|(e, _)| e.row_count == 0) {
            writer.finish().await?
        } else {
            writer.finish_allow_none().await?
        };
        outputs.extend(entries.into_iter().map(|e| (e, FileOperation::Inserted)));
    }
    Ok((report, outputs, removals))
}
