//! Compaction: rewrite small files into files near a target size or row count, folder by
//! folder.
//!
//! The plan is plain data ([`plan_compaction`]): in each folder (a hive partition, or the
//! root), the candidates (files smaller than `min_file_size`, or with fewer rows than three
//! quarters of `target_rows`) are packed greedily, in name order, into groups of at most
//! `target_file_size` bytes and `target_rows` rows; a group of two or more files is rewritten
//! (a group whose bytes grow on rewrite may roll into a second file). A folder with fewer
//! than `min_input_files` candidates is left alone. Two kinds of file are rewritten even
//! alone: a file above `target_rows` (split: `target_rows` is a hard upper bound on every file
//! in scope afterwards) and a file whose codec differs from a requested `compression`. Every
//! other file keeps its name and bytes. Rows keep their order within a group (file after file), and the row
//! multiset of the dataset never changes; the executor checks the counts before it commits.
//!
//! Execution streams each input file batch by batch into the group's writer, so memory is
//! bounded by a few row groups per group in flight, not by file or dataset size. Groups are
//! independent and run [`GROUPS_IN_PARALLEL`] at a time. Everything publishes through the
//! commit protocol: one transaction adds every new file and removes every input.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::commit::{PublishEntry, Staging, Transaction};
use crate::dataset::footer::{FileMeta, read_footers};
use crate::dataset::listing::{self, DataFile, Listing};
use crate::dataset::schema::unify;
use crate::dataset::storage::Location;
use crate::engine::Scanner;
use crate::error::{Error, Result};
use crate::ops::write::reject_file_path;
use crate::progress::Unit;
use crate::write::{Codec, DatasetWriter, WriteOptions, WrittenFile};

/// Default target size of compacted files: 128 MiB.
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// How many groups are rewritten at once.
pub const GROUPS_IN_PARALLEL: usize = 2;

/// Options of a compaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactOptions {
    /// Target size of the files written, in bytes. `None`: 128 MiB, unless `target_rows` is
    /// set (then only rows count).
    pub target_file_size: Option<u64>,
    /// Most rows in any file in scope afterwards: larger files are split, smaller ones packed.
    pub target_rows: Option<u64>,
    /// Files smaller than this are candidates (default: three quarters of the target size).
    pub min_file_size: Option<u64>,
    /// A folder with fewer candidates than this is left alone (default 2).
    pub min_input_files: usize,
    /// Only folders under matching partitions: `col=value[/col=value...]`.
    pub partition_filter: Option<String>,
    /// Codec of the new files (default: the writer's default codec).
    pub compression: Option<Codec>,
    /// Maximum rows per row group of the new files.
    pub row_group_size: Option<usize>,
    /// Plan and report without writing anything.
    pub dry_run: bool,
    /// Wait up to this long for another writer's lease.
    pub wait: Option<Duration>,
    /// Commit every this many groups (`None`: one commit). A failure keeps the parts
    /// already committed ([`Error::PartiallyCommitted`] says how many).
    pub commit_every: Option<usize>,
    /// Where progress is reported (phases with totals; default: nowhere).
    pub progress: crate::progress::Progress,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            target_file_size: None,
            target_rows: None,
            min_file_size: None,
            min_input_files: 2,
            partition_filter: None,
            compression: None,
            row_group_size: None,
            dry_run: false,
            wait: None,
            commit_every: None,
            progress: crate::progress::Progress::none(),
        }
    }
}

impl CompactOptions {
    /// The defaults: 128 MiB files from files under 96 MiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the target file size in bytes.
    pub fn with_target_file_size(mut self, bytes: u64) -> Self {
        self.target_file_size = Some(bytes);
        self
    }

    /// Sets the most rows of any file in scope afterwards.
    pub fn with_target_rows(mut self, rows: u64) -> Self {
        self.target_rows = Some(rows);
        self
    }

    /// Sets the fewest candidates a folder needs to be compacted.
    pub fn with_min_input_files(mut self, files: usize) -> Self {
        self.min_input_files = files;
        self
    }

    /// Sets the size under which a file is a candidate.
    pub fn with_min_file_size(mut self, bytes: u64) -> Self {
        self.min_file_size = Some(bytes);
        self
    }

    /// Compacts only folders under matching partitions (`col=value[/col=value...]`).
    pub fn with_partition_filter(mut self, filter: impl Into<String>) -> Self {
        self.partition_filter = Some(filter.into());
        self
    }

    /// Sets the codec of the new files.
    pub fn with_compression(mut self, codec: Codec) -> Self {
        self.compression = Some(codec);
        self
    }

    /// Sets the maximum rows per row group of the new files.
    pub fn with_row_group_size(mut self, rows: usize) -> Self {
        self.row_group_size = Some(rows);
        self
    }

    /// Plans without writing.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Waits up to `wait` for another writer's lease.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = Some(wait);
        self
    }

    /// Commits every `groups` groups, so that a failure keeps the parts done.
    pub fn with_commit_every(mut self, groups: usize) -> Self {
        self.commit_every = Some(groups);
        self
    }

    /// The target size in effect: the one given, else 128 MiB unless only rows are targeted.
    pub fn target_bytes(&self) -> Option<u64> {
        match (self.target_file_size, self.target_rows) {
            (Some(bytes), _) => Some(bytes),
            (None, None) => Some(DEFAULT_TARGET_FILE_SIZE),
            (None, Some(_)) => None,
        }
    }

    /// The size under which a file is a candidate (with a size target).
    pub fn min_file_size(&self) -> Option<u64> {
        let target = self.target_bytes()?;
        Some(self.min_file_size.unwrap_or(target / 4 * 3).max(1))
    }

    /// The row count under which a file is a candidate (with a row target): three quarters
    /// of the target.
    pub fn min_rows(&self) -> Option<u64> {
        self.target_rows.map(|rows| (rows / 4 * 3).max(1))
    }

    /// Checks the options; typed errors name the option.
    pub fn validate(&self) -> Result<()> {
        if self.target_file_size == Some(0) {
            return Err(Error::invalid_argument(
                "target_file_size",
                0,
                "must be at least 1 byte",
            ));
        }
        if self.target_rows == Some(0) {
            return Err(Error::invalid_argument(
                "target_rows",
                0,
                "must be at least 1 row",
            ));
        }
        if self.commit_every == Some(0) {
            return Err(Error::invalid_argument(
                "commit_every",
                0,
                "must be at least 1 group",
            ));
        }
        if self.min_input_files == 0 {
            return Err(Error::invalid_argument(
                "min_input_files",
                0,
                "must be at least 1",
            ));
        }
        if let Some(min) = self.min_file_size {
            let target = self.target_bytes().unwrap_or(u64::MAX);
            if min == 0 || min > target {
                return Err(Error::invalid_argument(
                    "min_file_size",
                    min,
                    format!("must be between 1 and target_file_size ({target})"),
                ));
            }
        }
        if self.row_group_size == Some(0) {
            return Err(Error::invalid_argument(
                "row_group_size",
                0,
                "must be at least 1",
            ));
        }
        if let Some(filter) = &self.partition_filter {
            listing::parse_partition_filter(filter)?;
        }
        Ok(())
    }
}

/// What planning knows of one data file in scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionInput {
    /// The file, relative to the root.
    pub relative: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its rows (from the footer; needed with a row target).
    pub rows: Option<u64>,
    /// Whether its codec differs from the requested one (it is rewritten even alone).
    pub recompress: bool,
}

/// One planned group: files of one folder rewritten together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedGroup {
    /// The folder, relative to the root (empty for the root).
    pub folder: String,
    /// The input files, relative to the root, in the order their rows are written.
    pub inputs: Vec<String>,
    /// Their total size.
    pub input_bytes: u64,
}

/// The compaction plan for `files`: plain data, no I/O.
pub fn plan_compaction(files: &[CompactionInput], options: &CompactOptions) -> Vec<PlannedGroup> {
    let target_bytes = options.target_bytes();
    let target_rows = options.target_rows;
    let oversize = |f: &CompactionInput| target_rows.is_some_and(|t| f.rows.is_some_and(|r| r > t));
    let candidate = |f: &CompactionInput| {
        options.min_file_size().is_some_and(|min| f.size < min)
            || options
                .min_rows()
                .is_some_and(|min| f.rows.is_some_and(|r| r < min))
    };
    // Per folder: the files rewritten alone (split, or recompressed), and the candidates.
    let mut folders: BTreeMap<String, (Vec<&CompactionInput>, Vec<&CompactionInput>)> =
        BTreeMap::new();
    for file in files {
        let (alone, may) = folders.entry(folder_of(&file.relative)).or_default();
        if oversize(file) {
            alone.push(file);
        } else if candidate(file) {
            may.push(file);
        } else if file.recompress {
            alone.push(file);
        }
    }
    let mut groups = Vec::new();
    for (folder, (mut alone, mut may)) in folders {
        if may.len() < options.min_input_files {
            // Too few to pack: only those that must change are rewritten.
            alone.extend(may.iter().filter(|f| f.recompress));
            may.clear();
        }
        may.sort_by(|a, b| a.relative.cmp(&b.relative));
        let mut packed: Vec<Vec<&CompactionInput>> = Vec::new();
        let mut current: Vec<&CompactionInput> = Vec::new();
        let (mut bytes, mut rows) = (0u64, 0u64);
        for file in may {
            let file_rows = file.rows.unwrap_or(0);
            let fits = target_bytes.is_none_or(|t| bytes + file.size <= t)
                && target_rows.is_none_or(|t| rows + file_rows <= t);
            if !current.is_empty() && !fits {
                packed.push(std::mem::take(&mut current));
                (bytes, rows) = (0, 0);
            }
            current.push(file);
            bytes += file.size;
            rows += file_rows;
        }
        packed.push(current);
        let lone_ok = options.min_input_files <= 1;
        let mut folder_groups: Vec<Vec<&CompactionInput>> = packed
            .into_iter()
            // A lone file gains nothing from a rewrite, unless it must change.
            .filter(|g| !g.is_empty() && (g.len() >= 2 || lone_ok || g[0].recompress))
            .collect();
        folder_groups.extend(alone.into_iter().map(|f| vec![f]));
        folder_groups.sort_by(|a, b| a[0].relative.cmp(&b[0].relative));
        for group in folder_groups {
            groups.push(PlannedGroup {
                folder: folder.clone(),
                input_bytes: group.iter().map(|f| f.size).sum(),
                inputs: group.iter().map(|f| f.relative.clone()).collect(),
            });
        }
    }
    groups
}

/// Whether a file's codecs (as footers name them: `snappy`, `zstd(zstdlevel(3))`,
/// `lz4_raw`) are other than `codec`'s. Levels are not in footers: only the codec counts.
pub fn codec_differs(file_codecs: &std::collections::BTreeSet<String>, codec: &Codec) -> bool {
    let wanted = codec.to_string();
    let wanted = wanted.split(':').next().unwrap_or_default();
    file_codecs.iter().any(|c| {
        let family = c.split('(').next().unwrap_or_default();
        let family = if family.starts_with("lz4") {
            "lz4"
        } else {
            family
        };
        family != wanted
    })
}

fn folder_of(relative: &str) -> String {
    relative
        .rsplit_once('/')
        .map(|(dir, _)| dir.to_string())
        .unwrap_or_default()
}

/// One group in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactedGroup {
    /// The folder, relative to the root (empty for the root).
    pub folder: String,
    /// The input files (removed by the compaction).
    pub inputs: Vec<String>,
    /// Their total size in bytes.
    pub input_bytes: u64,
    /// Their rows.
    pub rows: u64,
    /// The files written (empty in a dry run).
    pub outputs: Vec<WrittenFile>,
}

/// What a compaction did (or, in a dry run, would do). Paths are relative to the root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactReport {
    /// The engine selected.
    pub engine: String,
    /// What executed each phase: the engine's scan read the inputs, the core's writer
    /// encoded the outputs (empty in a dry run, which reads only footers).
    pub execution: crate::ops::Execution,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// The target file size used (`None`: rows only).
    pub target_file_size: Option<u64>,
    /// The candidate size threshold used.
    pub min_file_size: Option<u64>,
    /// The row target used.
    pub target_rows: Option<u64>,
    /// Data files in scope before (every file, or those under the partition filter).
    pub before_file_count: usize,
    /// Data files in scope after (in a dry run: planned, at least one output per group).
    pub after_file_count: usize,
    /// Bytes of the files in scope before.
    pub before_total_bytes: u64,
    /// Bytes of the files in scope after (`None` in a dry run: not known before writing).
    pub after_total_bytes: Option<u64>,
    /// Input files rewritten.
    pub compacted_file_count: usize,
    /// Their bytes before.
    pub rewritten_bytes: u64,
    /// The codec of the new files, lowercase (`zstd:3`, `snappy`).
    pub compression_codec: String,
    /// The planned groups: the input files and their bytes.
    pub planned_groups: Vec<PlannedGroupSummary>,
    /// Data files before (the whole dataset).
    pub files_before: usize,
    /// Data files after (in a dry run: the planned count, one output per group).
    pub files_after: usize,
    /// Rows in the files rewritten (moved, never changed, by a compaction).
    pub rows_rewritten: u64,
    /// The groups rewritten.
    pub groups: Vec<CompactedGroup>,
    /// Files removed (every group's inputs).
    pub removed_files: Vec<String>,
    /// Files added.
    pub added_files: Vec<WrittenFile>,
    /// Files left as they were.
    pub preserved_files: usize,
    /// Bytes of the files rewritten.
    pub bytes_read: u64,
    /// Bytes of the files written.
    pub bytes_written: u64,
    /// Whether this operation committed changes to the dataset (false for a dry run or when
    /// there was nothing to change). Once true, the changes are durable even if
    /// `cleanup_pending` is set.
    pub committed: bool,
    /// Transactions committed: 1, or with `commit_every` one per part.
    pub committed_parts: usize,
    /// Set when the operation committed but publishing or cleanup failed afterwards: the next
    /// operation or `fsk recover` finishes it. Do not retry the operation (its changes are
    /// already in). The CLI exits with code 3.
    pub cleanup_pending: Option<String>,
    /// Wall time.
    pub elapsed_ms: u64,
}

impl CompactReport {
    /// Sets `added_files` and `bytes_written` from the groups' published outputs.
    fn collect_outputs(&mut self) {
        self.added_files = self
            .groups
            .iter()
            .flat_map(|g| g.outputs.iter().cloned())
            .collect();
        self.bytes_written = self.added_files.iter().map(|f| f.size_bytes).sum();
    }
}

/// One planned group in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedGroupSummary {
    /// The input files, relative to the root.
    pub files: Vec<String>,
    /// Their total size in bytes.
    pub total_bytes: u64,
}

/// Compacts the dataset at `location` through the commit protocol. `engine` names the engine
/// in the report.
pub async fn compact(
    engine: &str,
    scanner: Arc<dyn Scanner>,
    location: &Location,
    options: &CompactOptions,
) -> Result<CompactReport> {
    let started = Instant::now();
    options.validate()?;
    reject_file_path(location).await?;
    if options.dry_run {
        // A dry run only reads: no lease, no recovery, nothing written (as for merge).
        let (mut report, _) = plan_and_run(engine, &scanner, location, options, None, None).await?;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    if let Some(every) = options.commit_every {
        return compact_in_parts(engine, scanner, location, options, every, started).await;
    }
    let mut tx = Transaction::begin(location, "compact", options.wait).await?;
    let outcome = plan_and_run(
        engine,
        &scanner,
        location,
        options,
        Some(&tx.staging()),
        None,
    )
    .await;
    let (mut report, entries) = match outcome {
        Ok(done) => done,
        Err(e) => {
            tx.abort().await;
            return Err(e);
        }
    };
    if options.dry_run || report.groups.is_empty() {
        tx.abort().await;
        if !options.dry_run {
            report.after_total_bytes = Some(report.before_total_bytes);
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    // Outputs per group, to attribute the published names.
    let per_group: Vec<usize> = report.groups.iter().map(|g| g.outputs.len()).collect();
    tx.add_all(entries);
    for removed in &report.removed_files {
        tx.remove(removed.clone());
    }
    options.progress.phase("commit", None, Unit::Files);
    let outcome = tx.commit().await?;
    report.committed = true;
    report.committed_parts = 1;
    report.cleanup_pending = outcome.cleanup_pending;
    attribute(&mut report.groups, per_group, outcome.files);
    report.collect_outputs();
    report.after_total_bytes =
        Some(report.before_total_bytes - report.rewritten_bytes + report.bytes_written);
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Gives each group the published names of its outputs (`per_group[i]` files each, in order).
fn attribute(
    groups: &mut [CompactedGroup],
    per_group: Vec<usize>,
    published: Vec<crate::commit::PublishedFile>,
) {
    let mut published = published.into_iter();
    for (group, count) in groups.iter_mut().zip(per_group) {
        group.outputs = published
            .by_ref()
            .take(count)
            .map(WrittenFile::from)
            .collect();
    }
}

/// Compaction committed every `every` groups: planned once under the first lease, each part
/// then rewritten and committed in its own transaction (its inputs checked to be still
/// there), as Iceberg's partial progress does.
async fn compact_in_parts(
    engine: &str,
    scanner: Arc<dyn Scanner>,
    location: &Location,
    options: &CompactOptions,
    every: usize,
    started: Instant,
) -> Result<CompactReport> {
    let tx = Transaction::begin(location, "compact", options.wait).await?;
    let planning = CompactOptions {
        dry_run: true,
        ..options.clone()
    };
    let (mut report, _) =
        match plan_and_run(engine, &scanner, location, &planning, None, None).await {
            Ok(planned) => planned,
            Err(e) => {
                tx.abort().await;
                return Err(e);
            }
        };
    let parts: Vec<std::collections::BTreeSet<String>> = report
        .groups
        .chunks(every)
        .map(|groups| {
            groups
                .iter()
                .flat_map(|g| g.inputs.iter().cloned())
                .collect()
        })
        .collect();
    let planned_parts = parts.len();
    let partial = |committed: usize, e: Error| {
        if committed == 0 {
            e
        } else {
            Error::PartiallyCommitted {
                path: location.to_string(),
                operation: "compact".into(),
                committed_parts: committed,
                planned_parts,
                source: Box::new(e),
            }
        }
    };
    // Each part packs exactly its planned groups: on their files alone, a folder's
    // candidates may be fewer than `min_input_files`.
    let part_options = CompactOptions {
        min_input_files: 1,
        ..options.clone()
    };
    report.dry_run = false;
    report.groups.clear();
    report.removed_files.clear();
    report.added_files.clear();
    let mut tx = Some(tx);
    for files in &parts {
        let committed = report.committed_parts;
        let mut current = match tx.take() {
            Some(tx) => tx,
            None => Transaction::begin(location, "compact", options.wait)
                .await
                .map_err(|e| partial(committed, e))?,
        };
        let outcome = plan_and_run(
            engine,
            &scanner,
            location,
            &part_options,
            Some(&current.staging()),
            Some(files),
        )
        .await;
        let (part, entries) = match outcome {
            Ok(done) => done,
            Err(e) => {
                current.abort().await;
                return Err(partial(committed, e));
            }
        };
        if part.groups.is_empty() {
            current.abort().await;
            continue;
        }
        let per_group: Vec<usize> = part.groups.iter().map(|g| g.outputs.len()).collect();
        current.add_all(entries);
        for removed in &part.removed_files {
            current.remove(removed.clone());
        }
        options.progress.phase("commit", None, Unit::Files);
        let outcome = current.commit().await.map_err(|e| partial(committed, e))?;
        report.committed = true;
        report.committed_parts += 1;
        if let Some(pending) = outcome.cleanup_pending {
            report.cleanup_pending = Some(pending);
        }
        let mut groups = part.groups;
        attribute(&mut groups, per_group, outcome.files);
        report.execution = part.execution;
        report.removed_files.extend(part.removed_files);
        report.groups.extend(groups);
    }
    if let Some(unused) = tx {
        // Nothing to compact: the planning lease is released.
        unused.abort().await;
    }
    report.collect_outputs();
    let compacted = report.removed_files.len();
    report.compacted_file_count = compacted;
    report.after_file_count = report.before_file_count - compacted + report.added_files.len();
    report.files_after = report.files_before - compacted + report.added_files.len();
    report.rewritten_bytes = report.groups.iter().map(|g| g.input_bytes).sum();
    report.bytes_read = report.rewritten_bytes;
    report.rows_rewritten = report.groups.iter().map(|g| g.rows).sum();
    report.preserved_files = report.files_before - compacted;
    report.after_total_bytes =
        Some(report.before_total_bytes - report.rewritten_bytes + report.bytes_written);
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

async fn plan_and_run(
    engine: &str,
    scanner: &Arc<dyn Scanner>,
    location: &Location,
    options: &CompactOptions,
    staging: Option<&Staging>,
    only: Option<&std::collections::BTreeSet<String>>,
) -> Result<(CompactReport, Vec<PublishEntry>)> {
    options.progress.phase("plan", None, Unit::Files);
    // Listed under the lease: nothing changes between this listing and the commit.
    let all = match listing::list(location).await? {
        Listing::Dataset(files) => files,
        _ => {
            return Err(Error::NotFound {
                path: location.to_string(),
            });
        }
    };
    if all.is_empty() && only_fsk_dir(location).await? {
        // Nothing but the lease this operation just took: there is no dataset here.
        return Err(Error::NotFound {
            path: location.to_string(),
        });
    }
    let in_scope = match &options.partition_filter {
        Some(filter) => {
            let files = listing::filter_partitions(all.clone(), filter)?;
            if files.is_empty() && !all.is_empty() {
                return Err(Error::NoDataFiles {
                    path: location.to_string(),
                    criteria: format!("partition_filter={filter}"),
                });
            }
            files
        }
        None => all.clone(),
    };
    let in_scope = match only {
        Some(only) => {
            let files: Vec<DataFile> = in_scope
                .into_iter()
                .filter(|f| only.contains(&f.relative))
                .collect();
            if files.len() != only.len() {
                return Err(Error::NoDataFiles {
                    path: location.to_string(),
                    criteria: "the planned inputs of this part (another writer changed them \
                               since the compaction was planned)"
                        .into(),
                });
            }
            files
        }
        None => in_scope,
    };
    // Rows and codecs come from footers: read for every file in scope when the plan needs
    // them (a row target, a codec to enforce), else only for the planned inputs.
    let by_name: BTreeMap<&str, &DataFile> = all.iter().map(|f| (f.relative.as_str(), f)).collect();
    let needs_footers = options.target_rows.is_some() || options.compression.is_some();
    let mut metas: BTreeMap<String, FileMeta> = BTreeMap::new();
    if needs_footers {
        for meta in read_footers(location, in_scope.clone()).await? {
            metas.insert(meta.file.relative.clone(), meta);
        }
    }
    let plan_inputs: Vec<CompactionInput> = in_scope
        .iter()
        .map(|f| {
            let meta = metas.get(&f.relative);
            CompactionInput {
                relative: f.relative.clone(),
                size: f.size,
                rows: meta.map(|m| m.num_rows),
                recompress: match (&options.compression, meta) {
                    (Some(codec), Some(m)) => m.num_rows > 0 && codec_differs(&m.codecs, codec),
                    _ => false,
                },
            }
        })
        .collect();
    let plan = plan_compaction(&plan_inputs, options);
    // Without a row target or a codec to enforce, planning needs sizes only. A real run then
    // reads each group's footers just before rewriting it, so memory holds the footers of the
    // groups in flight, not those of every input; a dry run reads them for the row counts,
    // keeping nothing else.
    let lazy = !needs_footers && !options.dry_run && staging.is_some();
    let mut rows_of: BTreeMap<String, u64> =
        metas.iter().map(|(r, m)| (r.clone(), m.num_rows)).collect();
    if !needs_footers && !lazy {
        let inputs: Vec<DataFile> = plan
            .iter()
            .flat_map(|g| g.inputs.iter().map(|r| (*by_name[r.as_str()]).clone()))
            .collect();
        let mut footers = futures::stream::iter(inputs)
            .map(|file| crate::dataset::footer::read_footer(location, file))
            .buffered(crate::dataset::footer::FOOTER_CONCURRENCY);
        while let Some(meta) = footers.next().await {
            let meta = meta?;
            rows_of.insert(meta.file.relative.clone(), meta.num_rows);
        }
    }
    // A group of files that hold no rows at all is left alone: rewriting it would write
    // nothing and remove the files that carry the schema (found here when the rows are
    // known, else when the group's footers are read).
    let plan: Vec<PlannedGroup> = plan
        .into_iter()
        .filter(|g| lazy || g.inputs.iter().any(|r| rows_of[r] > 0))
        .collect();
    let in_scope_bytes: u64 = in_scope.iter().map(|f| f.size).sum();
    let in_scope_count = in_scope.len();
    let mut groups: Vec<CompactedGroup> = plan
        .iter()
        .map(|g| CompactedGroup {
            folder: g.folder.clone(),
            inputs: g.inputs.clone(),
            input_bytes: g.input_bytes,
            rows: g.inputs.iter().filter_map(|r| rows_of.get(r)).sum(),
            outputs: Vec::new(),
        })
        .collect();
    let mut entries = Vec::new();
    let mut execution = crate::ops::Execution::default();
    if let Some(staging) = staging.filter(|_| !options.dry_run && !plan.is_empty()) {
        let jobs: Vec<(PlannedGroup, GroupInputs)> = plan
            .iter()
            .map(|group| {
                let inputs = if lazy {
                    GroupInputs::Files(
                        group
                            .inputs
                            .iter()
                            .map(|r| (*by_name[r.as_str()]).clone())
                            .collect(),
                    )
                } else {
                    GroupInputs::Footers(group.inputs.iter().map(|r| metas[r].clone()).collect())
                };
                (group.clone(), inputs)
            })
            .collect();
        let rewrite_bytes: u64 = plan.iter().map(|g| g.input_bytes).sum();
        options
            .progress
            .phase("rewrite", Some(rewrite_bytes), Unit::Bytes);
        // Each group is a spawned task (started lazily, GROUPS_IN_PARALLEL at a time), so
        // decoding and encoding spread over the runtime's threads.
        let written = crate::tasks::run_bounded(
            jobs.into_iter().map(|(group, files)| {
                rewrite_group(
                    Arc::clone(scanner),
                    location.clone(),
                    staging.clone(),
                    options.clone(),
                    group,
                    files,
                )
            }),
            GROUPS_IN_PARALLEL,
        )
        .await?;
        for (group, (staged, executor, input_rows)) in groups.iter_mut().zip(written) {
            group.rows = input_rows;
            if input_rows == 0 {
                continue;
            }
            execution.scan = Some(executor.to_string());
            execution.write = Some(crate::ops::CORE_WRITER.to_string());
            let rows: u64 = staged.iter().map(|e| e.row_count).sum();
            if rows != group.rows {
                return Err(Error::Internal(format!(
                    "compacting {} wrote {rows} rows, its inputs hold {}",
                    group.inputs.join(", "),
                    group.rows
                )));
            }
            group.outputs = staged
                .iter()
                .map(|e| WrittenFile {
                    path: e.target.clone(),
                    row_count: e.row_count,
                    size_bytes: e.size_bytes,
                })
                .collect();
            entries.extend(staged);
        }
    }
    // Groups found without rows when their footers were read are left alone.
    groups.retain(|g| g.rows > 0);
    let removed_files: Vec<String> = groups.iter().flat_map(|g| g.inputs.clone()).collect();
    let added_files: Vec<WrittenFile> = groups.iter().flat_map(|g| g.outputs.clone()).collect();
    let preserved = all.len() - removed_files.len();
    let planned_outputs = if options.dry_run {
        groups
            .iter()
            .map(|g| match options.target_rows {
                Some(t) => g.rows.div_ceil(t).max(1) as usize,
                None => 1,
            })
            .sum()
    } else {
        added_files.len()
    };
    let rewritten_bytes: u64 = groups.iter().map(|g| g.input_bytes).sum();
    let compacted = removed_files.len();
    let compression_codec = options
        .compression
        .unwrap_or(WriteOptions::default().compression)
        .to_string()
        .to_lowercase();
    let report = CompactReport {
        engine: engine.to_string(),
        execution,
        dry_run: options.dry_run,
        target_file_size: options.target_bytes(),
        min_file_size: options.min_file_size(),
        target_rows: options.target_rows,
        before_file_count: in_scope_count,
        after_file_count: in_scope_count - compacted + planned_outputs,
        before_total_bytes: in_scope_bytes,
        after_total_bytes: None,
        compacted_file_count: compacted,
        rewritten_bytes,
        compression_codec,
        planned_groups: groups
            .iter()
            .map(|g| PlannedGroupSummary {
                files: g.inputs.clone(),
                total_bytes: g.input_bytes,
            })
            .collect(),
        files_before: all.len(),
        files_after: all.len() - compacted + planned_outputs,
        rows_rewritten: groups.iter().map(|g| g.rows).sum(),
        bytes_read: groups.iter().map(|g| g.input_bytes).sum(),
        bytes_written: added_files.iter().map(|f| f.size_bytes).sum(),
        groups,
        removed_files,
        added_files,
        preserved_files: preserved,
        committed: false,
        committed_parts: 0,
        cleanup_pending: None,
        elapsed_ms: 0,
    };
    Ok((report, entries))
}

async fn only_fsk_dir(location: &Location) -> Result<bool> {
    let listing = location
        .store()
        .list_with_delimiter(Some(location.root()))
        .await
        .map_err(|e| Error::from_store(location.to_string(), e))?;
    let names = listing
        .objects
        .iter()
        .map(|o| &o.location)
        .chain(listing.common_prefixes.iter())
        .filter_map(|p| location.relative(p));
    Ok(names.into_iter().all(|n| n == crate::commit::FSK_DIR))
}

/// Streams a group's files, in order, into new files in the group's folder (reading their
/// footers first when planning did not), and returns the rows its inputs hold.
async fn rewrite_group(
    scanner: Arc<dyn Scanner>,
    location: Location,
    staging: Staging,
    options: CompactOptions,
    group: PlannedGroup,
    inputs: GroupInputs,
) -> Result<(Vec<PublishEntry>, &'static str, u64)> {
    let files = match inputs {
        GroupInputs::Footers(metas) => metas,
        GroupInputs::Files(files) => read_footers(&location, files).await?,
    };
    let input_rows: u64 = files.iter().map(|m| m.num_rows).sum();
    let mut meter = options.progress.meter(group.input_bytes, input_rows);
    if input_rows == 0 {
        return Ok((Vec::new(), "", 0));
    }
    let schemas: Vec<SchemaRef> = files.iter().map(|m| Arc::clone(&m.schema)).collect();
    // Identical schemas are kept exactly (nullability included); evolved ones unify by
    // lossless promotion, as on read.
    let schema: SchemaRef = if schemas.windows(2).all(|w| w[0] == w[1]) {
        Arc::clone(&schemas[0])
    } else {
        Arc::new(unify(&schemas)?)
    };
    // Bloom filters survive where every input had them.
    let bloom: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|c| files.iter().all(|m| m.bloom_filter_columns.contains(c)))
        .collect();
    let mut write = WriteOptions::default().with_bloom_filter_columns(bloom);
    write.max_file_bytes = options.target_bytes();
    if let Some(rows) = options.target_rows {
        write.max_rows_per_file = Some(usize::try_from(rows).unwrap_or(usize::MAX));
    }
    // A column whose dictionary overflowed in an input is written plain.
    write.plain_columns = files
        .iter()
        .flat_map(|m| m.dictionary_fallback_columns.iter().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if let Some(codec) = options.compression {
        write = write.with_compression(codec);
    }
    if let Some(rows) = options.row_group_size {
        write = write.with_row_group_size(rows);
    }
    let mut writer = DatasetWriter::new(staging.clone(), Arc::clone(&schema), write)?;
    // The engine reads the inputs, in order, as the output schema (rows are moved, never
    // changed).
    let files = files
        .into_iter()
        .map(|meta| crate::plan::scan::ScanFile {
            row_groups: (0..meta.num_row_groups).collect(),
            meta,
            partition: Default::default(),
        })
        .collect();
    let plan = crate::plan::scan::ScanPlan::of_files(
        &location,
        files,
        crate::dataset::partition::PartitionSchema { fields: Vec::new() },
        Arc::clone(&schema),
        Arc::clone(&schema),
        8192,
    );
    let scan = scanner.scan(&plan).await?;
    let mut stream = scan.stream;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        writer.write_into(&group.folder, &batch).await?;
        meter.rows(batch.num_rows() as u64);
    }
    meter.done();
    Ok((writer.finish_allow_none().await?, scan.executor, input_rows))
}

/// A group's inputs: their footers, read while planning, or the files, whose footers the
/// rewrite reads.
enum GroupInputs {
    Footers(Vec<FileMeta>),
    Files(Vec<DataFile>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(relative: &str, size: u64) -> CompactionInput {
        CompactionInput {
            relative: relative.to_string(),
            size,
            rows: None,
            recompress: false,
        }
    }

    fn rows(relative: &str, rows: u64) -> CompactionInput {
        CompactionInput {
            relative: relative.to_string(),
            size: 1000,
            rows: Some(rows),
            recompress: false,
        }
    }

    fn summary(plan: &[PlannedGroup]) -> Vec<Vec<String>> {
        plan.iter().map(|g| g.inputs.clone()).collect()
    }

    #[test]
    fn row_targets_pack_small_files_and_split_large_ones() {
        let files = vec![
            rows("a.parquet", 10),
            rows("b.parquet", 20),
            rows("c.parquet", 90),
            rows("d.parquet", 500),
            rows("e.parquet", 40),
        ];
        let options = CompactOptions::new().with_target_rows(100);
        assert_eq!(options.target_bytes(), None, "rows only");
        assert_eq!(options.min_rows(), Some(75));
        // Candidates a, b, e (c's 90 rows are not under 75) pack into one group of 70
        // rows; d (500) is split on its own.
        assert_eq!(
            summary(&plan_compaction(&files, &options)),
            vec![
                vec![
                    "a.parquet".to_string(),
                    "b.parquet".to_string(),
                    "e.parquet".to_string()
                ],
                vec!["d.parquet".to_string()],
            ]
        );
        // A lone oversize file is split even alone; fewer candidates than min_input_files
        // leave the folder's small files alone.
        let options = CompactOptions::new()
            .with_target_rows(100)
            .with_min_input_files(5);
        assert_eq!(
            summary(&plan_compaction(&files, &options)),
            vec![vec!["d.parquet".to_string()]]
        );
        // A file in another codec is rewritten alone.
        let mut other = rows("z.parquet", 80);
        other.recompress = true;
        assert_eq!(
            summary(&plan_compaction(&[other], &CompactOptions::new())),
            vec![vec!["z.parquet".to_string()]]
        );
    }

    #[test]
    fn codecs_compare_by_family() {
        let set = |c: &[&str]| c.iter().map(|s| s.to_string()).collect();
        let zstd: Codec = "zstd:3".parse().unwrap();
        assert!(!codec_differs(&set(&["zstd(zstdlevel(3))"]), &zstd));
        assert!(codec_differs(&set(&["snappy"]), &zstd));
        let lz4: Codec = "lz4".parse().unwrap();
        assert!(!codec_differs(&set(&["lz4_raw"]), &lz4));
    }

    #[test]
    fn groups_small_files_per_folder_up_to_the_target() {
        let files = vec![
            file("day=1/a.parquet", 40),
            file("day=1/b.parquet", 40),
            file("day=1/c.parquet", 40),
            file("day=1/big.parquet", 90),
            file("day=2/a.parquet", 10),
            file("day=3/a.parquet", 10),
            file("day=3/b.parquet", 10),
            file("root.parquet", 5),
        ];
        let options = CompactOptions::new().with_target_file_size(100);
        assert_eq!(options.min_file_size(), Some(75));
        let plan = plan_compaction(&files, &options);
        let summary: Vec<(String, Vec<String>, u64)> = plan
            .iter()
            .map(|g| (g.folder.clone(), g.inputs.clone(), g.input_bytes))
            .collect();
        assert_eq!(
            summary,
            vec![
                // a+b = 80; c would exceed 100 and stays alone (a lone file is skipped).
                (
                    "day=1".to_string(),
                    vec!["day=1/a.parquet".to_string(), "day=1/b.parquet".to_string()],
                    80
                ),
                (
                    "day=3".to_string(),
                    vec!["day=3/a.parquet".to_string(), "day=3/b.parquet".to_string()],
                    20
                ),
            ]
        );
    }

    #[test]
    fn options_are_validated() {
        let err = CompactOptions::new()
            .with_target_file_size(0)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("target_file_size"), "{err}");
        let err = CompactOptions::new()
            .with_target_file_size(10)
            .with_min_file_size(11)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("min_file_size"), "{err}");
        let err = CompactOptions::new()
            .with_partition_filter("nonsense")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("nonsense"), "{err}");
    }
}
