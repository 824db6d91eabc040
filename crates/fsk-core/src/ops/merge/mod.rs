//! Merge a change set into a dataset by key: insert, update, upsert, full_merge, deduplicate.
//!
//! The core plans; the engine executes the scans and the key match; the core writes and
//! commits. The submodules, in the order they depend on each other:
//!
//! 1. [`shape`]: the dataset's partitions and schemas, from the footers.
//! 2. [`source`]: **validate** keys, nulls, types and schemas before anything is written;
//!    **deduplicate the source by key** (the last occurrence wins; `deduplicate` keeps the row
//!    with the highest `dedup_order_by` values, ties to the last occurrence). A source larger
//!    than its share of the budget goes through [`spill`]: the engine's spilling sort by key,
//!    deduplicated on the way out, its rows spilled in key order and only its keys in memory.
//! 3. [`candidates`]: **prune** by hive partition values (only when every partition column is
//!    a key column, otherwise a moved key would go unseen), then by footer min/max tested
//!    against the *set* of source keys, down to row groups, then by bloom filters. Unknown or
//!    inexact statistics keep the file.
//! 4. [`confirm`]: **confirm** by scanning only the key columns of candidates (row groups
//!    pruned the same way): the engine's key match, or the core's key index.
//! 5. [`plan`]: the [`MergePlan`](plan::MergePlan), plain data: files to rewrite with their
//!    matched rows, rows to insert, the report's counts.
//! 6. [`execute`]: **rewrite** only confirmed files, replacing matched rows in place; write
//!    inserts as new files. This module publishes them through the commit protocol.
//!    Unaffected files keep their name and bytes.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::commit::Transaction;
use crate::dataset::storage::Location;
use crate::engine::{Batches, KeyMatch, Scanner};
use crate::error::{Error, Result};
use crate::ops::Execution;
use crate::write::WriteOptions;

pub(crate) mod candidates;
pub(crate) mod confirm;
pub(crate) mod execute;
pub(crate) mod plan;
pub(crate) mod shape;
pub(crate) mod source;
pub(crate) mod spill;

use source::collect_source;

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

/// Whether a merge holds its source in memory or sorts and spills it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceSpill {
    /// In memory while the source takes at most a quarter of the memory budget (the
    /// in-memory path holds about four copies); beyond it, sorted by the engine and spilled.
    #[default]
    Auto,
    /// Always sorted by the engine and spilled, whatever its size.
    Always,
    /// Always in memory, whatever its size (the budget does not apply to the source).
    Never,
}

impl FromStr for SourceSpill {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(SourceSpill::Auto),
            "always" => Ok(SourceSpill::Always),
            "never" => Ok(SourceSpill::Never),
            _ => Err(Error::invalid_argument(
                "source_spill",
                s,
                "valid values are: auto, always, never",
            )),
        }
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
    /// The memory the merge may use: the source in memory takes at most a quarter of it
    /// (see [`SourceSpill`]); a larger source is sorted within half of it and spilled to its
    /// folder, its distinct keys kept in memory; the engine's key match spills beyond it.
    pub memory: crate::plan::sort::MemoryBudget,
    /// Whether the source is held in memory or sorted and spilled (default: by size).
    pub source_spill: SourceSpill,
    /// Where progress is reported (phases with totals; default: nowhere).
    pub progress: crate::progress::Progress,
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
            source_spill: SourceSpill::Auto,
            progress: crate::progress::Progress::none(),
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
    /// Bytes of the deduplicated source spilled to disk in key order (0: it was held in
    /// memory). The sort that ordered it is `execution.sort`.
    #[serde(default)]
    pub source_spilled_bytes: u64,
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

/// Records `what` in a report slot, keeping every distinct executor once.
pub(crate) fn note_executor(slot: &mut Option<String>, what: &str) {
    match slot {
        Some(existing) if existing.split(", ").any(|e| e == what) => {}
        Some(existing) => *existing = format!("{existing}, {what}"),
        None => *slot = Some(what.to_string()),
    }
}

/// How many files are scanned or rewritten at once.
pub const FILES_IN_PARALLEL: usize = 4;

/// Merges `source` into the dataset at `location` with `backend`'s primitives (its name goes
/// in the report; its sort orders a source larger than memory).
///
/// Plans with [`plan::plan_merge`] (under the lease, so nothing changes between planning and
/// commit; a dry run only reads and takes no lease), executes with [`execute::execute`], and
/// commits the outputs and removals in one transaction.
pub async fn merge<B: crate::engine::DatasetBackend + ?Sized>(
    backend: &B,
    executors: Executors,
    location: &Location,
    source: Batches,
    options: &MergeOptions,
) -> Result<MergeReport> {
    let started = Instant::now();
    let mode = validate_options(options)?;
    let progress = &options.progress;
    let (source_schema, source_input) =
        collect_source(source, progress, options.source_spill, &options.memory).await?;
    for k in &options.key {
        if source_schema.field_with_name(k).is_err() {
            return Err(Error::column_not_found(k, "source (key)", &source_schema));
        }
    }
    crate::ops::write::reject_file_path(location).await?;
    let make_plan = |input| {
        plan::plan_merge(
            backend,
            &executors,
            location,
            &source_schema,
            input,
            options,
            mode,
        )
    };
    if options.dry_run {
        return Ok(make_plan(source_input).await?.dry_run_report(started));
    }
    let mut tx = Transaction::begin(
        location,
        &format!("merge ({})", options.strategy),
        options.wait,
    )
    .await?;
    let planned = match make_plan(source_input).await {
        Ok(planned) if planned.writes_nothing() => {
            tx.abort().await;
            let mut report = planned.report;
            report.elapsed_ms = started.elapsed().as_millis() as u64;
            return Ok(report);
        }
        Ok(planned) => execute::execute(&mut tx, &executors.scanner, planned).await,
        Err(e) => Err(e),
    };
    let (mut report, outputs, removals) = match planned {
        Ok(done) => done,
        Err(e) => {
            tx.abort().await;
            return Err(e);
        }
    };
    for relative in removals {
        tx.remove(relative);
    }
    let operations: Vec<FileOperation> = outputs.iter().map(|(_, op)| *op).collect();
    tx.add_all(outputs.into_iter().map(|(e, _)| e));
    progress.phase("commit", None, crate::progress::Unit::Files);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::merge::source::partition_point;

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
    fn galloping_finds_every_key_from_any_hint() {
        let values: Vec<i64> = (0..200).map(|i| i * 3).collect();
        for hint in [0, 1, 57, 199, 200, 500] {
            for x in -2..605 {
                let mut at = hint;
                let found = source::gallop(&values, x, &mut at);
                assert_eq!(found, values.binary_search(&x).ok(), "{x} from {hint}");
                assert_eq!(at, values.partition_point(|&v| v < x), "{x} from {hint}");
            }
        }
        // Ascending probes from the last position, as a clustered file's keys come.
        let mut at = 0;
        for (i, &v) in values.iter().enumerate() {
            assert_eq!(source::gallop(&values, v, &mut at), Some(i));
        }
        assert_eq!(source::gallop(&[], 1, &mut at), None);
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
