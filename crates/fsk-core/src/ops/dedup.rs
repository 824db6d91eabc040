//! Deduplicate a dataset in place, within each partition folder.
//!
//! By key (`key` columns): of the rows that share a key, the one with the highest `order_by`
//! values stays; ties, or no `order_by`, keep the first in file order, files in path order.
//! Without a key, exact duplicate rows (every column equal) keep their first occurrence.
//! Nulls compare equal here (a key with a null is one group per pattern of nulls), unlike SQL's
//! `=`: `(1, NULL)` twice is a duplicate.
//!
//! The plan: the engine's scan reads only the key and order columns of every file in scope
//! (every column without a key), folder by folder; the core finds the rows that lose, and
//! only the files that hold one are rewritten (through the engine's scan, without those
//! rows) by the core's writer. Every other file keeps its name and bytes. One commit.
//! Memory: the keys of one partition folder at a time (their row encoding, hashed).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::commit::{PublishEntry, Transaction};
use crate::dataset::footer::FileMeta;
use crate::dataset::listing;
use crate::dataset::partition::PartitionSchema;
use crate::dataset::storage::Location;
use crate::engine::Scanner;
use crate::error::{Error, Result};
use crate::ops::Execution;
use crate::ops::write::reject_file_path;
use crate::plan::scan::{ScanFile, ScanPlan};
use crate::progress::Unit;
use crate::write::{Codec, DatasetWriter, WriteOptions};

/// Options of a deduplication.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DedupOptions {
    /// The key columns; empty: exact duplicate rows.
    pub key: Vec<String>,
    /// Of the rows sharing a key, the one with the highest values of these stays.
    pub order_by: Vec<String>,
    /// Only folders under matching partitions: `col=value[/col=value...]`.
    pub partition_filter: Option<String>,
    /// Codec of the rewritten files (default: the writer's).
    pub compression: Option<Codec>,
    /// Plan and report without writing.
    pub dry_run: bool,
    /// Wait up to this long for another writer's lease.
    pub wait: Option<Duration>,
    /// Where progress is reported (phases with totals; default: nowhere).
    pub progress: crate::progress::Progress,
}

/// What a deduplication did (or, in a dry run, would do).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupReport {
    /// The engine selected.
    pub engine: String,
    /// What executed each phase.
    pub execution: Execution,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// The key (empty: exact duplicates).
    pub key: Vec<String>,
    /// The order columns.
    pub order_by: Vec<String>,
    /// Data files in scope before.
    pub before_file_count: usize,
    /// Data files in scope after (a dry run: planned, one file per rewritten file).
    pub after_file_count: usize,
    /// Rows in scope before.
    pub before_row_count: u64,
    /// Rows in scope after.
    pub after_row_count: u64,
    /// Rows removed.
    pub removed_rows: u64,
    /// Files rewritten without their duplicate rows (paths before).
    pub rewritten_files: Vec<String>,
    /// Whether this operation committed changes.
    pub committed: bool,
    /// Set when the operation committed but publishing or cleanup failed afterwards.
    pub cleanup_pending: Option<String>,
    /// Wall time.
    pub elapsed_ms: u64,
}

/// Deduplicates the dataset at `location`; `engine` names the engine in the report.
pub async fn dedup(
    engine: &str,
    scanner: Arc<dyn Scanner>,
    location: &Location,
    options: &DedupOptions,
) -> Result<DedupReport> {
    let started = Instant::now();
    if let Some(filter) = &options.partition_filter {
        listing::parse_partition_filter(filter)?;
    }
    for (flag, columns) in [("key", &options.key), ("order_by", &options.order_by)] {
        if columns.iter().any(|c| c.trim().is_empty()) {
            return Err(Error::invalid_argument(
                flag,
                columns.join(","),
                "an empty column name",
            ));
        }
    }
    if options.key.is_empty() && !options.order_by.is_empty() {
        return Err(Error::invalid_argument(
            "order_by",
            options.order_by.join(","),
            "applies only with a key",
        ));
    }
    reject_file_path(location).await?;
    if options.dry_run {
        let (mut report, _) = plan_and_run(engine, &scanner, location, options, None).await?;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    let mut tx = Transaction::begin(location, "dedup", options.wait).await?;
    let (mut report, outputs) =
        match plan_and_run(engine, &scanner, location, options, Some(&mut tx)).await {
            Ok(done) => done,
            Err(e) => {
                tx.abort().await;
                return Err(e);
            }
        };
    if report.rewritten_files.is_empty() {
        tx.abort().await;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    for removed in &report.rewritten_files {
        tx.remove(removed.clone());
    }
    tx.add_all(outputs);
    options.progress.phase("commit", None, Unit::Files);
    let outcome = tx.commit().await?;
    report.committed = true;
    report.cleanup_pending = outcome.cleanup_pending;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// One file in scope with the positions of its rows that lose.
struct FileDedup {
    meta: FileMeta,
    folder: String,
    drop: Vec<u64>,
}

async fn plan_and_run(
    engine: &str,
    scanner: &Arc<dyn Scanner>,
    location: &Location,
    options: &DedupOptions,
    tx: Option<&mut Transaction>,
) -> Result<(DedupReport, Vec<PublishEntry>)> {
    let progress = &options.progress;
    progress.phase("plan", None, Unit::Files);
    let scope = crate::ops::Scope::read(location, options.partition_filter.as_deref()).await?;
    scope.require(options.key.iter().chain(&options.order_by))?;
    // Partition columns are constant in a folder, and folders are deduplicated apart.
    let key: Vec<String> = if options.key.is_empty() {
        scope
            .file_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    } else {
        scope.stored(&options.key)
    };
    let order_by = scope.stored(&options.order_by);
    let crate::ops::Scope {
        metas, file_schema, ..
    } = scope;
    let mut folders: BTreeMap<String, Vec<FileMeta>> = BTreeMap::new();
    for meta in metas {
        let folder = meta
            .file
            .relative
            .rsplit_once('/')
            .map(|(d, _)| d.to_string())
            .unwrap_or_default();
        folders.entry(folder).or_default().push(meta);
    }
    let mut execution = Execution::default();
    let mut files: Vec<FileDedup> = Vec::new();
    let scope_bytes: u64 = folders.values().flatten().map(|m| m.file.size).sum();
    progress.phase("scan keys", Some(scope_bytes), Unit::Bytes);
    for (folder, mut metas) in folders {
        metas.sort_by(|a, b| a.file.relative.cmp(&b.file.relative));
        let folder_bytes: u64 = metas.iter().map(|m| m.file.size).sum();
        let found = find_duplicates(
            scanner,
            location,
            &file_schema,
            &key,
            &order_by,
            &metas,
            &mut execution,
        )
        .await?;
        for (meta, drop) in metas.into_iter().zip(found) {
            files.push(FileDedup {
                meta,
                folder: folder.clone(),
                drop,
            });
        }
        progress.advance(folder_bytes);
    }
    let before_rows: u64 = files.iter().map(|f| f.meta.num_rows).sum();
    let removed: u64 = files.iter().map(|f| f.drop.len() as u64).sum();
    let mut report = DedupReport {
        engine: engine.to_string(),
        execution,
        dry_run: options.dry_run,
        key: options.key.clone(),
        order_by: options.order_by.clone(),
        before_file_count: files.len(),
        after_file_count: files.len(),
        before_row_count: before_rows,
        after_row_count: before_rows - removed,
        removed_rows: removed,
        rewritten_files: files
            .iter()
            .filter(|f| !f.drop.is_empty())
            .map(|f| f.meta.file.relative.clone())
            .collect(),
        committed: false,
        cleanup_pending: None,
        elapsed_ms: 0,
    };
    let Some(tx) = tx else {
        return Ok((report, Vec::new()));
    };
    let mut outputs = Vec::new();
    let mut write = WriteOptions::default();
    if let Some(codec) = options.compression {
        write = write.with_compression(codec);
    }
    let rewrite_bytes: u64 = files
        .iter()
        .filter(|f| !f.drop.is_empty())
        .map(|f| f.meta.file.size)
        .sum();
    progress.phase("rewrite", Some(rewrite_bytes), Unit::Bytes);
    for file in files.iter().filter(|f| !f.drop.is_empty()) {
        let (entries, executor) = rewrite_without(scanner, tx, location, file, &write).await?;
        progress.advance(file.meta.file.size);
        report.execution.scan = Some(executor.to_string());
        report.execution.write = Some(crate::ops::CORE_WRITER.to_string());
        let written: u64 = entries.iter().map(|e| e.row_count).sum();
        if written != file.meta.num_rows - file.drop.len() as u64 {
            return Err(Error::Internal(format!(
                "deduplicating {} wrote {written} rows, expected {}",
                file.meta.file.relative,
                file.meta.num_rows - file.drop.len() as u64
            )));
        }
        // A file whose every row was a duplicate of another file's is removed, not replaced.
        report.after_file_count = report.after_file_count - 1 + entries.len();
        outputs.extend(entries);
    }
    Ok((report, outputs))
}

/// The row that stays for a key so far: its file (index in the folder), its position in
/// the file, and its order columns encoded (`None` without `order_by`).
type Kept = (usize, u64, Option<Box<[u8]>>);

/// The positions, per file of one folder (in path order), of the rows that lose to another
/// row with the same key.
pub(crate) async fn find_duplicates(
    scanner: &Arc<dyn Scanner>,
    location: &Location,
    file_schema: &SchemaRef,
    key: &[String],
    order_by: &[String],
    metas: &[FileMeta],
    execution: &mut Execution,
) -> Result<Vec<Vec<u64>>> {
    let fields = |names: &[String]| -> Vec<SortField> {
        names
            .iter()
            .filter_map(|n| file_schema.field_with_name(n).ok())
            .map(|f| SortField::new(f.data_type().clone()))
            .collect()
    };
    // A key of partition columns only is constant in a folder: every row shares it.
    let keys = (!key.is_empty())
        .then(|| RowConverter::new(fields(key)))
        .transpose()
        .map_err(|e| Error::arrow("encoding keys", e))?;
    let orders = (!order_by.is_empty())
        .then(|| RowConverter::new(fields(order_by)))
        .transpose()
        .map_err(|e| Error::arrow("encoding order", e))?;
    let mut columns: Vec<String> = key.to_vec();
    columns.extend(order_by.iter().filter(|c| !key.contains(c)).cloned());
    let scan_schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| file_schema.field_with_name(c).expect("checked").clone())
            .collect::<Vec<_>>(),
    ));
    // Key -> the row that stays so far.
    let mut best: HashMap<Box<[u8]>, Kept> = HashMap::new();
    let mut drops: Vec<Vec<u64>> = vec![Vec::new(); metas.len()];
    for (index, meta) in metas.iter().enumerate() {
        let plan = ScanPlan::of_files(
            location,
            vec![ScanFile {
                row_groups: (0..meta.num_row_groups).collect(),
                meta: meta.clone(),
                partition: HashMap::new(),
            }],
            PartitionSchema { fields: Vec::new() },
            Arc::clone(file_schema),
            Arc::clone(&scan_schema),
            65_536,
        );
        let scan = scanner.scan(&plan).await?;
        execution.scan = Some(scan.executor.to_string());
        execution.key_match = Some(crate::ops::CORE_KEY_MATCH.to_string());
        let mut stream = scan.stream;
        let mut position: u64 = 0;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let pick = |names: &[String]| -> Vec<ArrayRef> {
                names
                    .iter()
                    .map(|n| Arc::clone(batch.column_by_name(n).expect("scanned")))
                    .collect()
            };
            let key_rows = match &keys {
                Some(c) => Some(
                    c.convert_columns(&pick(key))
                        .map_err(|e| Error::arrow("encoding keys", e))?,
                ),
                None => None,
            };
            let order_rows = match &orders {
                Some(c) => Some(
                    c.convert_columns(&pick(order_by))
                        .map_err(|e| Error::arrow("encoding order", e))?,
                ),
                None => None,
            };
            for row in 0..batch.num_rows() {
                let at = position + row as u64;
                let order = order_rows
                    .as_ref()
                    .map(|o| Box::<[u8]>::from(o.row(row).data()));
                let key_bytes: &[u8] = key_rows.as_ref().map_or(&[], |k| k.row(row).data());
                match best.get_mut(key_bytes) {
                    None => {
                        best.insert(key_bytes.into(), (index, at, order));
                    }
                    Some(slot) => {
                        // A strictly higher order wins; ties keep the first row.
                        if order.is_some() && order > slot.2 {
                            drops[slot.0].push(slot.1);
                            *slot = (index, at, order);
                        } else {
                            drops[index].push(at);
                        }
                    }
                }
            }
            position += batch.num_rows() as u64;
        }
    }
    for positions in &mut drops {
        positions.sort_unstable();
    }
    Ok(drops)
}

/// Rewrites one file without the rows at `file.drop`, in order, in its folder.
async fn rewrite_without(
    scanner: &Arc<dyn Scanner>,
    tx: &mut Transaction,
    location: &Location,
    file: &FileDedup,
    write: &WriteOptions,
) -> Result<(Vec<PublishEntry>, &'static str)> {
    let schema = Arc::clone(&file.meta.schema);
    let plan = ScanPlan::of_files(
        location,
        vec![ScanFile {
            row_groups: (0..file.meta.num_row_groups).collect(),
            meta: file.meta.clone(),
            partition: HashMap::new(),
        }],
        PartitionSchema { fields: Vec::new() },
        Arc::clone(&schema),
        Arc::clone(&schema),
        8192,
    );
    let scan = scanner.scan(&plan).await?;
    let mut write = write.clone();
    write.plain_columns = file
        .meta
        .dictionary_fallback_columns
        .iter()
        .cloned()
        .collect();
    let mut writer = DatasetWriter::new(tx.staging(), Arc::clone(&schema), write)?;
    let mut stream = scan.stream;
    let mut position: u64 = 0;
    let mut next = 0;
    while let Some(batch) = stream.next().await {
        let batch: RecordBatch = batch?;
        let rows = batch.num_rows() as u64;
        let keep: BooleanArray = (0..rows)
            .map(|r| {
                let at = position + r;
                if file.drop.get(next) == Some(&at) {
                    next += 1;
                    Some(false)
                } else {
                    Some(true)
                }
            })
            .collect();
        position += rows;
        let kept = arrow::compute::filter_record_batch(&batch, &keep)
            .map_err(|e| Error::arrow("dropping duplicate rows", e))?;
        if kept.num_rows() > 0 {
            writer.write_into(&file.folder, &kept).await?;
        }
    }
    Ok((writer.finish_allow_none().await?, scan.executor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_needs_a_key() {
        let options = DedupOptions {
            order_by: vec!["ts".into()],
            ..Default::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let location = Location::parse("memory://dedup-test/ds").unwrap();
        let scanner: Arc<dyn Scanner> = Arc::new(NoScanner);
        let err = rt
            .block_on(dedup("test", scanner, &location, &options))
            .unwrap_err();
        assert_eq!(err.kind(), "invalid_argument");
        assert!(err.to_string().contains("order_by"), "{err}");
    }

    #[derive(Debug)]
    struct NoScanner;

    #[async_trait::async_trait]
    impl Scanner for NoScanner {
        async fn scan(&self, _plan: &ScanPlan) -> Result<crate::engine::Scan> {
            Err(Error::Internal("not used".into()))
        }
    }
}
