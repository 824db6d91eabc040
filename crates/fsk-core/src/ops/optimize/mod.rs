//! Optimize: cluster each partition folder's rows on a space-filling curve over chosen
//! columns and cut them into files that cover compact boxes, so that range predicates on
//! any of the columns open few files.
//!
//! The plan, per folder in scope (rows never move between partitions):
//! 1. **Sample.** The engine's scan reads the clustering columns; a fixed-seed reservoir
//!    keeps a uniform sample of rows ([`rank::Sampler`]).
//! 2. **Rank.** Each column's sampled quantiles map its values to order-preserving ranks of
//!    `64 / columns` bits (at most 16), comparing values in arrow's row format
//!    ([`rank::RankMap`]): skewed data, floats and long strings with a shared prefix spread
//!    over the whole range.
//! 3. **Curve and cuts.** The ranks' bits interleave most significant first (Morton), or go
//!    through Skilling's Hilbert transform ([`Curve`]). The sample's curve values place the
//!    file cuts on aligned curve prefixes ([`cuts::plan_cuts`]); the target rows stay a hard
//!    upper bound.
//! 4. **Sort and write.** The engine's scan reads every column, the core appends each row's
//!    curve value, and the engine's sort primitive orders the rows under the memory budget,
//!    spilling beyond it. The core's writer cuts files at the planned values and records,
//!    in each file's footer, what optimized it.
//!
//! A folder whose files were all written by one optimize with the same request, and hold
//! the rows it wrote, is already optimized: it is left alone (no-op). With `dedup_key`, the
//! rows that lose to another with the same key (as [`crate::ops::dedup`] decides) are
//! dropped in the same rewrite. Everything commits in one transaction.

pub mod curve;
pub mod cuts;
pub mod quality;
pub mod rank;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::commit::{PublishEntry, Staging, Transaction};
use crate::dataset::footer::FileMeta;
use crate::dataset::listing;
use crate::dataset::partition::PartitionSchema;
use crate::dataset::schema::unify;
use crate::dataset::storage::Location;
use crate::engine::{Batches, DatasetBackend};
use crate::error::{Error, Result};
use crate::ops::compact::{DEFAULT_TARGET_FILE_SIZE, PlannedGroupSummary, codec_differs};
use crate::ops::write::reject_file_path;
use crate::ops::{CORE_WRITER, Execution};
use crate::plan::scan::{ScanFile, ScanPlan};
use crate::plan::sort::{MemoryBudget, SortKey};
use crate::progress::Unit;
use crate::write::{Codec, DatasetWriter, WriteOptions, WrittenFile};

pub use curve::Curve;
use quality::Bounds;
use rank::{Encoder, RankMap, SAMPLE_ROWS, Sampler};

/// The column that carries each row's curve value into the engine's sort (never written).
pub const CURVE_COLUMN: &str = "__fsk_curve";

/// The footer key-value entry in which optimize records what clustered a file.
pub const MARKER_KEY: &str = "fsk.optimize";

/// Most rows sampled in one folder.
const MAX_SAMPLE_ROWS: usize = 1 << 20;

/// Values per column kept, over all folders, for the quality measure's percentile slices.
const QUALITY_SAMPLE: usize = 100_000;

/// Options of an optimize.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptimizeOptions {
    /// The clustering columns (1 to [`curve::MAX_COLUMNS`]), most significant first.
    pub columns: Vec<String>,
    /// The curve (default Z-order).
    pub curve: Curve,
    /// Most rows in any file written.
    pub target_rows: Option<u64>,
    /// Target size of the files written, in bytes (`None`: 128 MiB unless `target_rows` is
    /// set). Converted to rows from the folder's bytes per row.
    pub target_file_size: Option<u64>,
    /// Deduplicate in the same rewrite by these columns (empty: no deduplication).
    pub dedup_key: Vec<String>,
    /// Of the rows sharing a `dedup_key`, the one with the highest values of these stays
    /// (ties: the first in file order).
    pub dedup_order_by: Vec<String>,
    /// Only folders under matching partitions: `col=value[/col=value...]`.
    pub partition_filter: Option<String>,
    /// Codec of the new files (default: the writer's).
    pub compression: Option<Codec>,
    /// Cut files at aligned curve prefixes (default); `false` cuts at the target row count,
    /// as textbook Z-ordering does (kept for comparison).
    pub aligned_cuts: bool,
    /// Plan and report without writing.
    pub dry_run: bool,
    /// Wait up to this long for another writer's lease.
    pub wait: Option<Duration>,
    /// Memory for the sort; beyond it the engine spills.
    pub memory: MemoryBudget,
    /// Where progress is reported (phases with totals; default: nowhere).
    pub progress: crate::progress::Progress,
}

impl OptimizeOptions {
    /// Clusters on `columns` with the defaults: Z-order, 128 MiB files, aligned cuts.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(columns: I) -> Self {
        OptimizeOptions {
            columns: columns.into_iter().map(Into::into).collect(),
            curve: Curve::ZOrder,
            target_rows: None,
            target_file_size: None,
            dedup_key: Vec::new(),
            dedup_order_by: Vec::new(),
            partition_filter: None,
            compression: None,
            aligned_cuts: true,
            dry_run: false,
            wait: None,
            memory: MemoryBudget::default(),
            progress: crate::progress::Progress::none(),
        }
    }

    /// Sets the curve.
    pub fn with_curve(mut self, curve: Curve) -> Self {
        self.curve = curve;
        self
    }

    /// Sets the most rows of any file written.
    pub fn with_target_rows(mut self, rows: u64) -> Self {
        self.target_rows = Some(rows);
        self
    }

    /// Sets the target file size in bytes.
    pub fn with_target_file_size(mut self, bytes: u64) -> Self {
        self.target_file_size = Some(bytes);
        self
    }

    /// Deduplicates by `key` in the same rewrite, keeping the highest `order_by`.
    pub fn with_dedup<K, O>(mut self, key: K, order_by: O) -> Self
    where
        K: IntoIterator,
        K::Item: Into<String>,
        O: IntoIterator,
        O::Item: Into<String>,
    {
        self.dedup_key = key.into_iter().map(Into::into).collect();
        self.dedup_order_by = order_by.into_iter().map(Into::into).collect();
        self
    }

    /// Optimizes only folders under matching partitions.
    pub fn with_partition_filter(mut self, filter: impl Into<String>) -> Self {
        self.partition_filter = Some(filter.into());
        self
    }

    /// Sets the codec of the new files.
    pub fn with_compression(mut self, codec: Codec) -> Self {
        self.compression = Some(codec);
        self
    }

    /// Chooses aligned cuts (default) or cuts at the target row count.
    pub fn with_aligned_cuts(mut self, aligned: bool) -> Self {
        self.aligned_cuts = aligned;
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

    /// Sets the sort's memory budget.
    pub fn with_memory(mut self, memory: MemoryBudget) -> Self {
        self.memory = memory;
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

    /// Checks the options; typed errors name the option.
    pub fn validate(&self) -> Result<()> {
        if self.columns.is_empty() {
            return Err(Error::invalid_argument(
                "zorder",
                "",
                "at least one column is needed",
            ));
        }
        if self.columns.len() > curve::MAX_COLUMNS {
            return Err(Error::invalid_argument(
                "zorder",
                self.columns.join(","),
                format!("at most {} columns", curve::MAX_COLUMNS),
            ));
        }
        for (flag, columns) in [
            ("zorder", &self.columns),
            ("dedup_key", &self.dedup_key),
            ("dedup_order_by", &self.dedup_order_by),
        ] {
            if columns.iter().any(|c| c.trim().is_empty()) {
                return Err(Error::invalid_argument(
                    flag,
                    columns.join(","),
                    "an empty column name",
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            if let Some(twice) = columns.iter().find(|c| !seen.insert(c.as_str())) {
                return Err(Error::invalid_argument(
                    flag,
                    columns.join(","),
                    format!("{twice} is named twice"),
                ));
            }
        }
        if self.dedup_key.is_empty() && !self.dedup_order_by.is_empty() {
            return Err(Error::invalid_argument(
                "dedup_order_by",
                self.dedup_order_by.join(","),
                "applies only with dedup_key",
            ));
        }
        if self.target_rows == Some(0) {
            return Err(Error::invalid_argument(
                "target_rows",
                0,
                "must be at least 1 row",
            ));
        }
        if self.target_file_size == Some(0) {
            return Err(Error::invalid_argument(
                "target_file_size",
                0,
                "must be at least 1 byte",
            ));
        }
        if let Some(filter) = &self.partition_filter {
            listing::parse_partition_filter(filter)?;
        }
        Ok(())
    }
}

/// What an optimize did (or, in a dry run, would do). Paths are relative to the root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizeReport {
    /// The engine selected.
    pub engine: String,
    /// What executed each phase: the engine's scan read the files and its sort ordered the
    /// rows; the core ranked the values, computed the curve and encoded the files.
    pub execution: Execution,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// The clustering columns.
    pub zorder_columns: Vec<String>,
    /// The curve.
    pub curve: Curve,
    /// The row target given.
    pub target_rows: Option<u64>,
    /// The size target in effect.
    pub target_file_size: Option<u64>,
    /// Data files in scope before.
    pub before_file_count: usize,
    /// Data files in scope after (in a dry run: planned).
    pub after_file_count: usize,
    /// Bytes of the files in scope before.
    pub before_total_bytes: u64,
    /// Bytes of the files in scope after (`None` in a dry run).
    pub after_total_bytes: Option<u64>,
    /// Input files rewritten.
    pub compacted_file_count: usize,
    /// Their bytes before.
    pub rewritten_bytes: u64,
    /// The codec of the new files, lowercase.
    pub compression_codec: String,
    /// The folders rewritten: their files and bytes.
    pub planned_groups: Vec<PlannedGroupSummary>,
    /// Folders left alone because they are already optimized on the same request.
    pub already_optimized: Vec<String>,
    /// Rows in the folders rewritten (before deduplication).
    pub rows_rewritten: u64,
    /// The deduplication key (empty: no deduplication).
    pub dedup_key: Vec<String>,
    /// Rows dropped as duplicates of a key (`dedup_key`).
    pub deduplicated_rows: u64,
    /// Files removed.
    pub removed_files: Vec<String>,
    /// Files added.
    pub added_files: Vec<WrittenFile>,
    /// Per clustering column: the average fraction of the files in scope that a 1% range
    /// predicate on it must open (from footer statistics), before.
    pub zorder_quality_before: BTreeMap<String, f64>,
    /// The same, after (`None` in a dry run).
    pub zorder_quality_after: Option<BTreeMap<String, f64>>,
    /// How many times the engine's sort spilled (`None` where the engine does not say).
    pub sort_spills: Option<u64>,
    /// Whether this operation committed changes to the dataset.
    pub committed: bool,
    /// Set when the operation committed but publishing or cleanup failed afterwards: the next
    /// operation or `fsk recover` finishes it. Do not retry the operation.
    pub cleanup_pending: Option<String>,
    /// Wall time.
    pub elapsed_ms: u64,
}

/// What optimize records in each file it writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Marker {
    columns: Vec<String>,
    curve: Curve,
    target_rows: Option<u64>,
    target_file_size: Option<u64>,
    dedup_key: Vec<String>,
    dedup_order_by: Vec<String>,
    #[serde(default = "aligned_default")]
    aligned_cuts: bool,
    /// The optimize run that wrote the file.
    run: String,
    /// Rows that run wrote into the folder.
    folder_rows: u64,
}

impl Marker {
    fn new(options: &OptimizeOptions, run: &str, folder_rows: u64) -> Self {
        Marker {
            columns: options.columns.clone(),
            curve: options.curve,
            target_rows: options.target_rows,
            target_file_size: options.target_file_size,
            dedup_key: options.dedup_key.clone(),
            dedup_order_by: options.dedup_order_by.clone(),
            aligned_cuts: options.aligned_cuts,
            run: run.to_string(),
            folder_rows,
        }
    }

    fn of(meta: &FileMeta) -> Option<Marker> {
        let entries = meta.metadata().file_metadata().key_value_metadata()?;
        let entry = entries.iter().find(|kv| kv.key == MARKER_KEY)?;
        serde_json::from_str(entry.value.as_deref()?).ok()
    }

    fn same_request(&self, other: &Marker) -> bool {
        Marker {
            run: String::new(),
            folder_rows: 0,
            ..self.clone()
        } == Marker {
            run: String::new(),
            folder_rows: 0,
            ..other.clone()
        }
    }
}

fn aligned_default() -> bool {
    true
}

/// Whether the folder's files are exactly what one optimize with this request wrote.
fn already_optimized(metas: &[FileMeta], options: &OptimizeOptions) -> bool {
    let wanted = Marker::new(options, "", 0);
    let Some(markers) = metas.iter().map(Marker::of).collect::<Option<Vec<_>>>() else {
        return false;
    };
    let Some(first) = markers.first() else {
        return false;
    };
    let codec_ok = options
        .compression
        .is_none_or(|codec| metas.iter().all(|m| !codec_differs(&m.codecs, &codec)));
    codec_ok
        && markers
            .iter()
            .all(|m| m.run == first.run && m.same_request(&wanted))
        && metas.iter().map(|m| m.num_rows).sum::<u64>() == first.folder_rows
}

/// Optimizes the dataset at `location` with `backend`'s scan and sort, through the commit
/// protocol.
pub async fn optimize<B: DatasetBackend + ?Sized>(
    backend: &B,
    location: &Location,
    options: &OptimizeOptions,
) -> Result<OptimizeReport> {
    let started = Instant::now();
    options.validate()?;
    reject_file_path(location).await?;
    if options.dry_run {
        let (mut report, _) = plan_and_run(backend, location, options, None).await?;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    let mut tx = Transaction::begin(location, "optimize", options.wait).await?;
    let staging = tx.staging();
    let (mut report, entries) = match plan_and_run(backend, location, options, Some(&staging)).await
    {
        Ok(done) => done,
        Err(e) => {
            tx.abort().await;
            return Err(e);
        }
    };
    if report.removed_files.is_empty() {
        tx.abort().await;
        report.after_total_bytes = Some(report.before_total_bytes);
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    tx.add_all(entries);
    for removed in &report.removed_files {
        tx.remove(removed.clone());
    }
    options.progress.phase("commit", None, Unit::Files);
    let outcome = tx.commit().await?;
    report.committed = true;
    report.cleanup_pending = outcome.cleanup_pending;
    report.added_files = outcome.files.into_iter().map(WrittenFile::from).collect();
    let written: u64 = report.added_files.iter().map(|f| f.size_bytes).sum();
    report.after_total_bytes = Some(report.before_total_bytes - report.rewritten_bytes + written);
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// The folder a file is in, relative to the root (empty for the root).
fn folder_of(relative: &str) -> String {
    relative
        .rsplit_once('/')
        .map(|(dir, _)| dir.to_string())
        .unwrap_or_default()
}

/// A plan over whole files, every row group, no filter.
fn whole_files(
    location: &Location,
    metas: &[FileMeta],
    dataset_schema: &SchemaRef,
    output_schema: SchemaRef,
    batch_size: usize,
) -> ScanPlan {
    let files = metas
        .iter()
        .map(|meta| ScanFile {
            row_groups: (0..meta.num_row_groups).collect(),
            meta: meta.clone(),
            partition: HashMap::new(),
        })
        .collect();
    ScanPlan::of_files(
        location,
        files,
        PartitionSchema { fields: Vec::new() },
        Arc::clone(dataset_schema),
        output_schema,
        batch_size,
    )
}

/// The most rows of a file written in a folder of `rows` rows in `bytes` bytes.
fn folder_target_rows(options: &OptimizeOptions, rows: u64, bytes: u64) -> u64 {
    let by_bytes = options.target_bytes().map(|target| {
        let per_row = bytes.max(1) as f64 / rows.max(1) as f64;
        (target as f64 / per_row) as u64
    });
    let target = match (options.target_rows, by_bytes) {
        (Some(r), Some(b)) => r.min(b),
        (Some(r), None) => r,
        (None, Some(b)) => b,
        (None, None) => u64::MAX,
    };
    target.max(1)
}

async fn plan_and_run<B: DatasetBackend + ?Sized>(
    backend: &B,
    location: &Location,
    options: &OptimizeOptions,
    staging: Option<&Staging>,
) -> Result<(OptimizeReport, Vec<PublishEntry>)> {
    let progress = &options.progress;
    progress.phase("plan", None, Unit::Files);
    let scope = crate::ops::Scope::read(location, options.partition_filter.as_deref()).await?;
    let partition_names = scope.partitions.names();
    for column in &options.columns {
        if partition_names.contains(column) {
            return Err(Error::invalid_argument(
                "zorder",
                column,
                "is a partition column: it is constant within each folder, and rows never move \
                 between partitions",
            ));
        }
        scope.require([column])?;
    }
    scope.require(options.dedup_key.iter().chain(&options.dedup_order_by))?;
    let dedup_key = scope.stored(&options.dedup_key);
    let dedup_order = scope.stored(&options.dedup_order_by);
    let crate::ops::Scope {
        metas, file_schema, ..
    } = scope;
    let encoders: Vec<Encoder> = options
        .columns
        .iter()
        .map(|c| {
            Encoder::new(
                c,
                file_schema.field_with_name(c).expect("checked").data_type(),
            )
        })
        .collect::<Result<_>>()?;
    let bits = curve::bits_per_column(options.columns.len());

    let mut folders: BTreeMap<String, Vec<FileMeta>> = BTreeMap::new();
    for meta in metas {
        folders
            .entry(folder_of(&meta.file.relative))
            .or_default()
            .push(meta);
    }
    let scanner = backend.scanner();
    let run = crate::commit::random_token();
    let k = encoders.len();
    let mut execution = Execution::default();
    let mut values: Vec<Vec<Box<[u8]>>> = vec![Vec::new(); k];
    let mut before: Vec<Vec<Bounds>> = vec![Vec::new(); k];
    let mut after: Vec<Vec<Bounds>> = vec![Vec::new(); k];
    let mut entries = Vec::new();
    let mut report = OptimizeReport {
        engine: backend.name().to_string(),
        execution: Execution::default(),
        dry_run: options.dry_run,
        zorder_columns: options.columns.clone(),
        curve: options.curve,
        target_rows: options.target_rows,
        target_file_size: options.target_bytes(),
        before_file_count: 0,
        after_file_count: 0,
        before_total_bytes: 0,
        after_total_bytes: None,
        compacted_file_count: 0,
        rewritten_bytes: 0,
        compression_codec: options
            .compression
            .unwrap_or(WriteOptions::default().compression)
            .to_string()
            .to_lowercase(),
        planned_groups: Vec::new(),
        already_optimized: Vec::new(),
        rows_rewritten: 0,
        dedup_key: options.dedup_key.clone(),
        deduplicated_rows: 0,
        removed_files: Vec::new(),
        added_files: Vec::new(),
        zorder_quality_before: BTreeMap::new(),
        zorder_quality_after: None,
        sort_spills: None,
        committed: false,
        cleanup_pending: None,
        elapsed_ms: 0,
    };
    let mut planned_outputs = 0usize;
    let total_rows: u64 = folders.values().flatten().map(|m| m.num_rows).sum();
    let total_bytes: u64 = folders.values().flatten().map(|m| m.file.size).sum();
    // Each folder's bytes count once it is sampled and (unless left alone) rewritten.
    progress.phase("rewrite", Some(total_bytes), Unit::Bytes);
    for (folder, mut metas) in folders {
        metas.sort_by(|a, b| a.file.relative.cmp(&b.file.relative));
        let rows: u64 = metas.iter().map(|m| m.num_rows).sum();
        let bytes: u64 = metas.iter().map(|m| m.file.size).sum();
        report.before_file_count += metas.len();
        report.before_total_bytes += bytes;
        let first = before[0].len();
        for meta in &metas {
            for (c, encoder) in encoders.iter().enumerate() {
                before[c].push(footer_bounds(meta, encoder));
            }
        }
        let target = folder_target_rows(options, rows, bytes);
        let capacity = (rows.div_ceil(target).saturating_mul(256) as usize)
            .clamp(SAMPLE_ROWS, MAX_SAMPLE_ROWS);
        let sample = sample_folder(
            &scanner,
            location,
            &file_schema,
            &encoders,
            &metas,
            capacity,
            &mut execution,
        )
        .await?;
        // The quality measure's slices: about QUALITY_SAMPLE values in all, each folder's
        // share in proportion to its rows (its sample is uniform: every step-th row).
        let share = (QUALITY_SAMPLE as u128 * u128::from(rows) / u128::from(total_rows.max(1)))
            as usize
            + 1;
        let step = (sample.rows.len() / share).max(1);
        for (c, column) in values.iter_mut().enumerate() {
            column.extend(
                sample
                    .rows
                    .iter()
                    .step_by(step)
                    .filter_map(|r| r[c].clone()),
            );
        }
        let done = already_optimized(&metas, options);
        if rows == 0 || done {
            if done {
                report.already_optimized.push(folder.clone());
            }
            planned_outputs += metas.len();
            // Left as they are: their bounds after are those before.
            for (c, bounds) in after.iter_mut().enumerate() {
                bounds.extend_from_slice(&before[c][first..]);
            }
            progress.advance(bytes);
            continue;
        }
        let maps: Vec<RankMap> = (0..k)
            .map(|c| RankMap::new(&sample.sorted_values(c), bits))
            .collect();
        let mut curve_values: Vec<u64> = sample
            .rows
            .iter()
            .map(|row| {
                let ranks: Vec<u32> = row
                    .iter()
                    .zip(&maps)
                    .map(|(v, m)| m.rank(v.as_deref()))
                    .collect();
                options.curve.index(&ranks, bits)
            })
            .collect();
        curve_values.sort_unstable();
        let cuts = if options.aligned_cuts {
            cuts::plan_cuts(&curve_values, rows, target)
        } else {
            Vec::new()
        };
        // Positions (in the folder's row order, files in path order) of duplicate rows.
        let mut drops: Vec<u64> = Vec::new();
        if !options.dedup_key.is_empty() {
            let found = crate::ops::dedup::find_duplicates(
                &scanner,
                location,
                &file_schema,
                &dedup_key,
                &dedup_order,
                &metas,
                &mut execution,
            )
            .await?;
            let mut offset = 0u64;
            for (meta, positions) in metas.iter().zip(found) {
                drops.extend(positions.into_iter().map(|p| p + offset));
                offset += meta.num_rows;
            }
            drops.sort_unstable();
        }
        let kept = rows - drops.len() as u64;
        report.deduplicated_rows += drops.len() as u64;
        report.rows_rewritten += rows;
        report.compacted_file_count += metas.len();
        report.rewritten_bytes += bytes;
        report
            .removed_files
            .extend(metas.iter().map(|m| m.file.relative.clone()));
        report.planned_groups.push(PlannedGroupSummary {
            files: metas.iter().map(|m| m.file.relative.clone()).collect(),
            total_bytes: bytes,
        });
        let Some(staging) = staging.filter(|_| !options.dry_run) else {
            planned_outputs += if cuts.is_empty() {
                kept.div_ceil(target).max(1) as usize
            } else {
                cuts.len() + 1
            };
            progress.advance(bytes);
            continue;
        };
        let job = FolderJob {
            folder: &folder,
            metas: &metas,
            file_schema: &file_schema,
            maps,
            bits,
            cuts,
            target,
            drops,
            marker: Marker::new(options, &run, kept),
        };
        let written = rewrite_folder(backend, &scanner, location, staging, options, job).await?;
        let rows_written: u64 = written.entries.iter().map(|e| e.row_count).sum();
        if rows_written != kept {
            return Err(Error::Internal(format!(
                "optimizing {folder:?} wrote {rows_written} rows, expected {kept}"
            )));
        }
        execution.scan = Some(written.scan.to_string());
        execution.sort = Some(written.sort.to_string());
        execution.write = Some(CORE_WRITER.to_string());
        if let Some(spills) = written.spills {
            *report.sort_spills.get_or_insert(0) += spills;
        }
        planned_outputs += written.entries.len();
        for (c, bounds) in after.iter_mut().enumerate() {
            bounds.extend(written.bounds.iter().map(|b| b[c].clone()));
        }
        entries.extend(written.entries);
        progress.advance(bytes);
    }
    report.execution = execution;
    report.after_file_count = planned_outputs;
    for (c, encoder) in encoders.iter().enumerate() {
        values[c].sort_unstable();
        if let Some(f) = quality::slice_fraction(&before[c], &values[c]) {
            report
                .zorder_quality_before
                .insert(encoder.name.clone(), round4(f));
        }
    }
    if !options.dry_run {
        let mut quality_after = BTreeMap::new();
        for (c, encoder) in encoders.iter().enumerate() {
            if let Some(f) = quality::slice_fraction(&after[c], &values[c]) {
                quality_after.insert(encoder.name.clone(), round4(f));
            }
        }
        report.zorder_quality_after = Some(quality_after);
    }
    Ok((report, entries))
}

fn round4(f: f64) -> f64 {
    (f * 10_000.0).round() / 10_000.0
}

/// A file's bounds on one clustering column, from its footer.
fn footer_bounds(meta: &FileMeta, encoder: &Encoder) -> Bounds {
    let stats = meta.column_stats.get(&encoder.name)?;
    let min = encoder.encode_scalar(stats.min.as_ref()?)?;
    let max = encoder.encode_scalar(stats.max.as_ref()?)?;
    Some((min, max))
}

/// Samples a folder's rows on the clustering columns, read by the engine's scan.
async fn sample_folder(
    scanner: &Arc<dyn crate::engine::Scanner>,
    location: &Location,
    file_schema: &SchemaRef,
    encoders: &[Encoder],
    metas: &[FileMeta],
    capacity: usize,
    execution: &mut Execution,
) -> Result<Sampler> {
    let columns = Arc::new(Schema::new(
        encoders
            .iter()
            .map(|e| {
                file_schema
                    .field_with_name(&e.name)
                    .expect("checked")
                    .clone()
            })
            .collect::<Vec<_>>(),
    ));
    let plan = whole_files(location, metas, file_schema, columns, 65_536);
    let scan = scanner.scan(&plan).await?;
    execution.scan = Some(scan.executor.to_string());
    let mut sampler = Sampler::new(capacity);
    let mut stream = scan.stream;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let arrays: Vec<ArrayRef> = encoders
            .iter()
            .map(|e| Arc::clone(batch.column_by_name(&e.name).expect("scanned")))
            .collect();
        let rows = encoders
            .iter()
            .zip(&arrays)
            .map(|(e, a)| e.encode(a))
            .collect::<Result<Vec<_>>>()?;
        sampler.offer(&rows, &arrays);
    }
    Ok(sampler)
}

/// One folder's rewrite, as planned.
struct FolderJob<'a> {
    folder: &'a str,
    metas: &'a [FileMeta],
    file_schema: &'a SchemaRef,
    maps: Vec<RankMap>,
    bits: u32,
    cuts: Vec<u64>,
    target: u64,
    drops: Vec<u64>,
    marker: Marker,
}

/// What a folder's rewrite staged and what executed it.
struct Written {
    entries: Vec<PublishEntry>,
    /// Per file written, per clustering column, its bounds.
    bounds: Vec<Vec<Bounds>>,
    scan: &'static str,
    sort: &'static str,
    spills: Option<u64>,
}

/// Reads a folder's rows through the engine's scan, appends each row's curve value, sorts
/// them with the engine's sort and writes files cut at the planned values.
async fn rewrite_folder<B: DatasetBackend + ?Sized>(
    backend: &B,
    scanner: &Arc<dyn crate::engine::Scanner>,
    location: &Location,
    staging: &Staging,
    options: &OptimizeOptions,
    job: FolderJob<'_>,
) -> Result<Written> {
    let schemas: Vec<SchemaRef> = job.metas.iter().map(|m| Arc::clone(&m.schema)).collect();
    let schema: SchemaRef = if schemas.windows(2).all(|w| w[0] == w[1]) {
        Arc::clone(&schemas[0])
    } else {
        Arc::new(unify(&schemas)?)
    };
    // A clustering column that no file of this folder has yet (added to the dataset later)
    // is read as nulls, and written as such.
    let missing: Vec<Field> = options
        .columns
        .iter()
        .filter(|c| schema.field_with_name(c).is_err())
        .map(|c| {
            let field = job.file_schema.field_with_name(c).expect("checked");
            field.as_ref().clone().with_nullable(true)
        })
        .collect();
    let schema: SchemaRef = if missing.is_empty() {
        schema
    } else {
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(missing);
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
    };
    let plan = whole_files(
        location,
        job.metas,
        job.file_schema,
        Arc::clone(&schema),
        8192,
    );
    let scan = scanner.scan(&plan).await?;
    let scan_executor = scan.executor;
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(CURVE_COLUMN, DataType::UInt64, false));
    let sort_schema = Arc::new(Schema::new(fields));
    let columns: Vec<(String, DataType)> = options
        .columns
        .iter()
        .map(|c| {
            let t = job.file_schema.field_with_name(c).expect("checked");
            (c.clone(), t.data_type().clone())
        })
        .collect();
    let encoders: Vec<Encoder> = columns
        .iter()
        .map(|(c, t)| Encoder::new(c, t))
        .collect::<Result<_>>()?;
    let (maps, bits, curve_kind) = (job.maps, job.bits, options.curve);
    let drops = job.drops;
    let out_schema = Arc::clone(&sort_schema);
    let mut position = 0u64;
    let mut next_drop = 0usize;
    let with_curve = scan
        .stream
        .map(move |batch| {
            let batch = batch?;
            let n = batch.num_rows() as u64;
            let batch = if drops.get(next_drop).is_some_and(|&d| d < position + n) {
                let keep: BooleanArray = (position..position + n)
                    .map(|at| {
                        if drops.get(next_drop) == Some(&at) {
                            next_drop += 1;
                            Some(false)
                        } else {
                            Some(true)
                        }
                    })
                    .collect();
                arrow::compute::filter_record_batch(&batch, &keep)
                    .map_err(|e| Error::arrow("dropping duplicate rows", e))?
            } else {
                batch
            };
            position += n;
            let arrays: Vec<ArrayRef> = encoders
                .iter()
                .map(|e| Arc::clone(batch.column_by_name(&e.name).expect("scanned")))
                .collect();
            let rows = encoders
                .iter()
                .zip(&arrays)
                .map(|(e, a)| e.encode(a))
                .collect::<Result<Vec<_>>>()?;
            let mut ranks = vec![0u32; rows.len()];
            let values: UInt64Array = (0..batch.num_rows())
                .map(|r| {
                    for (c, (encoded, array)) in rows.iter().zip(&arrays).enumerate() {
                        ranks[c] = maps[c].rank(array.is_valid(r).then(|| encoded.row(r).data()));
                    }
                    curve_kind.index(&ranks, bits)
                })
                .collect();
            let mut columns = batch.columns().to_vec();
            columns.push(Arc::new(values));
            RecordBatch::try_new(Arc::clone(&out_schema), columns)
                .map_err(|e| Error::arrow("adding curve values", e))
        })
        .boxed();
    let sorted = backend
        .sort(
            Batches::new(Arc::clone(&sort_schema), with_curve),
            &[SortKey::asc(CURVE_COLUMN)],
            &options.memory,
        )
        .await?;

    let bloom: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|c| job.metas.iter().all(|m| m.bloom_filter_columns.contains(c)))
        .collect();
    let mut write = WriteOptions::default().with_bloom_filter_columns(bloom);
    write.plain_columns = job
        .metas
        .iter()
        .flat_map(|m| m.dictionary_fallback_columns.iter().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if let Some(codec) = options.compression {
        write = write.with_compression(codec);
    }
    write.key_value_metadata = vec![(
        MARKER_KEY.to_string(),
        serde_json::to_string(&job.marker)
            .map_err(|e| Error::Internal(format!("encoding the optimize marker: {e}")))?,
    )];
    let mut writer = DatasetWriter::new(staging.clone(), Arc::clone(&schema), write)?;
    let encoders: Vec<Encoder> = columns
        .iter()
        .map(|(c, t)| Encoder::new(c, t))
        .collect::<Result<_>>()?;
    let data_columns: Vec<usize> = (0..schema.fields().len()).collect();
    let mut bounds: Vec<Vec<Bounds>> = Vec::new();
    let mut file_rows = 0u64;
    let mut next_cut = 0usize;
    let mut stream = sorted.stream;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let curve_values = batch
            .column_by_name(CURVE_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
            .ok_or_else(|| Error::Internal("the sort lost the curve column".into()))?
            .clone();
        let data = batch
            .project(&data_columns)
            .map_err(|e| Error::arrow("dropping the curve column", e))?;
        let len = data.num_rows();
        let mut offset = 0usize;
        while offset < len {
            if let Some(&cut) = job.cuts.get(next_cut)
                && curve_values.value(offset) >= cut
            {
                if file_rows > 0 {
                    writer.cut(job.folder).await?;
                    file_rows = 0;
                }
                next_cut += 1;
                continue;
            }
            let mut end = match job.cuts.get(next_cut) {
                Some(&cut) => {
                    offset + curve_values.values()[offset..len].partition_point(|&v| v < cut)
                }
                None => len,
            };
            end = end.min(offset + (job.target - file_rows) as usize);
            let slice = data.slice(offset, end - offset);
            if file_rows == 0 {
                bounds.push(vec![None; encoders.len()]);
            }
            let current = bounds.last_mut().expect("pushed above");
            for (c, encoder) in encoders.iter().enumerate() {
                widen(
                    &mut current[c],
                    encoder,
                    slice.column_by_name(&encoder.name).expect("in schema"),
                )?;
            }
            writer.write_into(job.folder, &slice).await?;
            file_rows += (end - offset) as u64;
            offset = end;
            if file_rows >= job.target {
                writer.cut(job.folder).await?;
                file_rows = 0;
            }
        }
    }
    let entries = writer.finish_allow_none().await?;
    if entries.len() != bounds.len() {
        return Err(Error::Internal(format!(
            "optimizing {:?} wrote {} files, tracked {}",
            job.folder,
            entries.len(),
            bounds.len()
        )));
    }
    let spills = sorted
        .spills_observed
        .then(|| sorted.spills.load(Ordering::SeqCst));
    Ok(Written {
        entries,
        bounds,
        scan: scan_executor,
        sort: sorted.executor,
        spills,
    })
}

/// Widens `bounds` to cover the non-null values of `column`.
fn widen(bounds: &mut Bounds, encoder: &Encoder, column: &ArrayRef) -> Result<()> {
    let rows = encoder.encode(column)?;
    let mut lo: Option<&[u8]> = None;
    let mut hi: Option<&[u8]> = None;
    for r in 0..column.len() {
        if column.is_null(r) {
            continue;
        }
        let v = rows.row(r).data();
        if lo.is_none_or(|l| v < l) {
            lo = Some(v);
        }
        if hi.is_none_or(|h| v > h) {
            hi = Some(v);
        }
    }
    if let (Some(lo), Some(hi)) = (lo, hi) {
        *bounds = Some(match bounds.take() {
            None => (lo.into(), hi.into()),
            Some((a, b)) => (
                if lo < a.as_ref() { lo.into() } else { a },
                if hi > b.as_ref() { hi.into() } else { b },
            ),
        });
    }
    Ok(())
}
