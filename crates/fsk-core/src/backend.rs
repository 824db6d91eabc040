//! The [`DatasetBackend`] trait every engine implements, and the types that cross it.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use futures::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::Location;
use crate::write::{WriteMode, WriteOptions, WrittenFile};

/// A stream of record batches.
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>;

/// A schema and a stream of batches of that schema: what goes into a write and comes out of a
/// read. Nothing is materialised until the stream is polled.
pub struct Batches {
    schema: SchemaRef,
    stream: BatchStream,
}

impl fmt::Debug for Batches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batches")
            .field("schema", &self.schema)
            .finish()
    }
}

impl Batches {
    /// Batches from a stream.
    pub fn new(schema: SchemaRef, stream: BatchStream) -> Self {
        Batches { schema, stream }
    }

    /// Batches from memory.
    pub fn from_batches(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        Batches {
            schema,
            stream: futures::stream::iter(batches.into_iter().map(Ok)).boxed(),
        }
    }

    /// The schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The stream.
    pub fn into_stream(self) -> BatchStream {
        self.stream
    }

    /// Splits into schema and stream.
    pub fn into_parts(self) -> (SchemaRef, BatchStream) {
        (self.schema, self.stream)
    }

    /// Collects every batch (for tests and small results).
    pub async fn collect(self) -> Result<Vec<RecordBatch>> {
        self.stream.try_collect().await
    }

    /// Collects into one batch.
    pub async fn concat(self) -> Result<RecordBatch> {
        let schema = std::sync::Arc::clone(&self.schema);
        let batches = self.collect().await?;
        arrow::compute::concat_batches(&schema, &batches)
            .map_err(|e| Error::arrow("concatenating batches", e))
    }
}

impl From<RecordBatch> for Batches {
    fn from(batch: RecordBatch) -> Self {
        Batches::from_batches(batch.schema(), vec![batch])
    }
}

/// Options of a read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadOptions {
    /// Columns to return, in this order (`None`: all, data columns then partition columns).
    pub columns: Option<Vec<String>>,
    /// A filter in fsk's predicate language (see [`crate::filter`]).
    pub filter: Option<String>,
    /// At most this many rows, applied after the filter.
    pub limit: Option<usize>,
    /// Types for partition columns, overriding inference.
    pub partition_types: HashMap<String, DataType>,
    /// Rows per batch (default 8192).
    pub batch_size: Option<usize>,
}

impl ReadOptions {
    /// Selects columns.
    pub fn with_columns<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }
    /// Sets a filter.
    pub fn with_filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }
    /// Sets a limit.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
    /// Fixes the type of a partition column.
    pub fn with_partition_type(mut self, column: impl Into<String>, data_type: DataType) -> Self {
        self.partition_types.insert(column.into(), data_type);
        self
    }
}

/// Which code executed each phase of an operation, for its report: the engine's own
/// machinery or the core's arrow-rs code, never a label for work another part did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// What read the data files (`datafusion`, `duckdb`, `arrow-rs`; with a DuckDB filter
    /// over arrow-rs reads on object stores, both), when files were read.
    pub scan: Option<String>,
    /// What matched source keys with the dataset's (merge): `arrow-rs`, the core's hash
    /// index over the row format.
    pub key_match: Option<String>,
    /// What encoded the files written: `arrow-rs`, the core's parquet writer (names,
    /// splits, statistics and bloom filters stay in the core on every engine).
    pub write: Option<String>,
}

/// What executes key matching on every engine today.
pub const CORE_KEY_MATCH: &str = "arrow-rs";
/// What encodes every file written.
pub const CORE_WRITER: &str = "arrow-rs";

/// The report of a write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteReport {
    /// Files written, paths relative to the dataset root.
    pub files: Vec<WrittenFile>,
    /// Rows written.
    pub total_rows: u64,
    /// `append` or `overwrite`.
    pub mode: WriteMode,
    /// The engine selected.
    pub engine: String,
    /// What executed each phase (a write only encodes: the core's parquet writer).
    pub execution: Execution,
    /// Data files removed (overwrite), relative paths.
    pub removed_files: Vec<String>,
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

/// One file of a stats report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStats {
    /// Path relative to the dataset root.
    pub path: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Rows.
    pub num_rows: u64,
}

/// The report of `stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsReport {
    /// Every data file (matching the partition filter), sorted by path.
    pub files: Vec<FileStats>,
    /// Sum of sizes.
    pub total_bytes: u64,
    /// Sum of rows.
    pub total_rows: u64,
}

/// Options of `stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsOptions {
    /// Only files under matching partitions: `col=value[/col=value...]`.
    pub partition_filter: Option<String>,
}

/// What an engine can do. The conformance suite asserts the typed
/// [`Error::NotSupported`] for every capability an engine lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Write datasets.
    pub write: bool,
    /// Read datasets with projection, filter and limit.
    pub read: bool,
    /// Merge by key.
    pub merge: bool,
    /// Compact small files.
    pub compact: bool,
    /// Z-order optimize.
    pub optimize: bool,
    /// Deduplicate a dataset.
    pub dedup: bool,
    /// Run SQL over a dataset.
    pub sql: bool,
    /// What executes the scan primitive (reads for read, compact and merge).
    pub scan: &'static str,
    /// What executes key matching (merge).
    pub key_match: &'static str,
    /// What executes the sort primitive ([`DatasetBackend::sort`]).
    pub sort: &'static str,
    /// What encodes written files.
    pub write_files: &'static str,
}

impl Capabilities {
    /// What every engine gets from the core's shared implementations today: write, read,
    /// merge and compact, each reading through the engine's scan primitive.
    pub const SHARED: Capabilities = Capabilities {
        write: true,
        read: true,
        merge: true,
        compact: true,
        optimize: false,
        dedup: false,
        sql: false,
        scan: "arrow-rs (the parquet crate's async reader, filter in a RowFilter, page index)",
        key_match: "arrow-rs (fsk-core's hash index over the row format)",
        sort: "arrow-rs (fsk-core's external merge sort: row-format runs spilled as Arrow IPC)",
        write_files: "arrow-rs (fsk-core's parquet writer)",
    };
}

/// The rows of a scan, and what read them.
pub struct Scan {
    /// Rows of the plan's output schema.
    pub stream: BatchStream,
    /// The code that read and filtered them (`datafusion`, `duckdb`, or `arrow-rs` when the
    /// core's parquet reader did), for the reports.
    pub executor: &'static str,
}

impl fmt::Debug for Scan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scan")
            .field("executor", &self.executor)
            .finish()
    }
}

/// The scan primitive: reads the files of a [`crate::scan::ScanPlan`] with an engine's own
/// parquet reader. The core plans (listing, footers, pruning to row groups) and every
/// operation (read, compact, the key scan and the rewrites of merge) reads through it.
///
/// The contract: the rows of the plan's files that match its filter, projected to
/// [`crate::scan::ScanPlan::output_schema`] (types exactly as planned), at most
/// `limit` of them; files in plan order and rows in file order. Without a filter the
/// planned row groups are a selection (exactly those are read); with one they are a hint
/// (rows outside them cannot match).
#[async_trait]
pub trait Scanner: Send + Sync + fmt::Debug {
    /// Streams the plan's rows.
    async fn scan(&self, plan: &crate::scan::ScanPlan) -> Result<Scan>;
}

/// The column of a key set that holds each key's row in the merge's deduplicated source.
pub const SOURCE_ROW_COLUMN: &str = "__fsk_source_row";

/// The rows of one file that hold a source key, and what found them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyMatches {
    /// `(position of the row in the file, source row)`, in file order. A key the file holds
    /// twice appears twice.
    pub rows: Vec<(u64, u32)>,
    /// The engine that joined the keys (`duckdb`, `datafusion`).
    pub executor: &'static str,
    /// What read the file's keys (the engine's own reader, or `arrow-rs` where the engine
    /// joins keys the core's reader decoded).
    pub scan: &'static str,
}

/// The key-match primitive, built over a merge's source keys: which rows of a file hold one
/// of them. This is merge's confirmation join; its output also drives the rewrite.
#[async_trait]
pub trait KeyMatcher: Send + Sync + fmt::Debug {
    /// Matches files. Each `(plan, set)` scans one file alone, projected to the key columns
    /// it stores (the file's own types, which may be narrower than the key set's), with the
    /// row groups the core kept and no filter, against key set `set` (an index into the sets
    /// the matcher was built over). The engine may match every file in one job. A null key in
    /// a file is [`Error::NullKey`] (side `target (file ...)`).
    ///
    /// One answer per file, in order; `None`: this engine cannot read that file itself (for
    /// example, off local disk for DuckDB), and the core matches it with arrow-rs instead.
    async fn match_files(
        &self,
        files: &[(crate::scan::ScanPlan, usize)],
    ) -> Result<Vec<Option<KeyMatches>>>;
}

/// The column of [`numbered_keys`] holding each row's position in its file.
pub const POSITION_COLUMN: &str = "__fsk_position";

/// A key scan of one file made ready for an engine's join: `scan` (the rows of `plan`, which
/// reads one file's kept row groups in order, no filter) as the key columns of `keys` in
/// those types (a file may hold a narrower type) and [`POSITION_COLUMN`] (`UInt64`, the
/// row's position in the file). A null key is [`Error::NullKey`] naming the file.
pub fn numbered_keys(
    plan: &crate::scan::ScanPlan,
    scan: BatchStream,
    keys: Vec<arrow::datatypes::FieldRef>,
) -> Result<Batches> {
    let [file] = plan.files.as_slice() else {
        return Err(Error::Internal("a key scan reads one file".into()));
    };
    let mut spans = file.row_spans();
    let describe = file.meta.file.relative.clone();
    let mut fields = keys.clone();
    fields.push(std::sync::Arc::new(arrow::datatypes::Field::new(
        POSITION_COLUMN,
        DataType::UInt64,
        false,
    )));
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
    let out = std::sync::Arc::clone(&schema);
    let stream = scan
        .map(move |batch| {
            let batch = batch?;
            let mut columns: Vec<arrow::array::ArrayRef> = Vec::with_capacity(keys.len() + 1);
            for field in &keys {
                let column = batch.column_by_name(field.name()).ok_or_else(|| {
                    Error::column_not_found(field.name(), "target file", &batch.schema())
                })?;
                if arrow::array::Array::logical_null_count(column.as_ref()) > 0 {
                    return Err(Error::NullKey {
                        column: field.name().clone(),
                        side: format!("target (file {describe})"),
                    });
                }
                columns.push(if column.data_type() == field.data_type() {
                    std::sync::Arc::clone(column)
                } else {
                    arrow::compute::cast(column, field.data_type()).map_err(|e| {
                        Error::arrow(format!("widening key column {}", field.name()), e)
                    })?
                });
            }
            let mut positions = Vec::with_capacity(batch.num_rows());
            while positions.len() < batch.num_rows() {
                let Some(span) = spans.front_mut() else {
                    return Err(Error::Internal(format!(
                        "the key scan of {describe} returned more rows than its row groups hold"
                    )));
                };
                let take = span.1.min((batch.num_rows() - positions.len()) as u64);
                positions.extend(span.0..span.0 + take);
                span.0 += take;
                span.1 -= take;
                if span.1 == 0 {
                    spans.pop_front();
                }
            }
            columns.push(std::sync::Arc::new(arrow::array::UInt64Array::from(
                positions,
            )));
            RecordBatch::try_new(std::sync::Arc::clone(&schema), columns)
                .map_err(|e| Error::arrow("numbering key rows", e))
        })
        .boxed();
    Ok(Batches::new(out, stream))
}

/// Builds an engine's [`KeyMatcher`] once per merge.
#[async_trait]
pub trait KeyMatch: Send + Sync + fmt::Debug {
    /// A matcher over `sets`: each a batch of distinct keys (the key columns stored in files,
    /// in the dataset's types, no nulls) and [`SOURCE_ROW_COLUMN`] (`UInt32`). The engine
    /// may hold them in its own memory, within `budget`, spilling beyond it.
    async fn prepare(
        &self,
        sets: Vec<RecordBatch>,
        budget: &crate::sort::MemoryBudget,
    ) -> Result<std::sync::Arc<dyn KeyMatcher>>;
}

/// An engine. The core plans, writes (names, splits, statistics, staging) and commits; the
/// engine executes the primitives where engines genuinely differ, today the scan
/// ([`Scanner`]): reading the planned files with the filter pushed into its reader.
///
/// Operations an engine does not support keep the default body, which fails with
/// [`Error::NotSupported`].
#[async_trait]
pub trait DatasetBackend: Send + Sync + fmt::Debug {
    /// The engine's name (`arrow`, `duckdb`, `datafusion`).
    fn name(&self) -> &'static str;

    /// What the engine supports.
    fn capabilities(&self) -> Capabilities;

    /// The engine's scan primitive (the core's arrow-rs reader by default).
    fn scanner(&self) -> std::sync::Arc<dyn Scanner> {
        std::sync::Arc::new(crate::scan::ArrowScanner)
    }

    /// The engine's key-match primitive, or `None` when the core's arrow-rs hash index over
    /// the row format matches keys (the default).
    fn key_match(&self) -> Option<std::sync::Arc<dyn KeyMatch>> {
        None
    }

    /// Writes `input` as a dataset at `location`. The default is the core's shared streaming
    /// writer and commit protocol, which every engine uses today.
    async fn write(
        &self,
        location: &Location,
        input: Batches,
        options: &WriteOptions,
    ) -> Result<WriteReport> {
        crate::ops::write_dataset(self.name(), location, input, options).await
    }

    /// Reads a dataset (or one file) as a stream of batches: the core plans, the engine's
    /// [`Scanner`] reads.
    async fn read(&self, location: &Location, options: &ReadOptions) -> Result<Batches> {
        let plan = crate::scan::plan_scan(location, options).await?;
        tracing::debug!(
            engine = self.name(),
            files = plan.files.len(),
            pruned_by_partition = plan.files_pruned_by_partition,
            pruned_by_statistics = plan.files_pruned_by_statistics,
            row_groups_pruned = plan.row_groups_pruned,
            "planned read"
        );
        let scan = self.scanner().scan(&plan).await?;
        Ok(Batches::new(
            std::sync::Arc::clone(&plan.output_schema),
            scan.stream,
        ))
    }

    /// Lists data files with sizes and row counts from the footers.
    async fn stats(&self, location: &Location, options: &StatsOptions) -> Result<StatsReport> {
        crate::ops::stats(location, options).await
    }

    /// Merges `source` into the dataset by key. The default is the core's merge executor
    /// (arrow kernels), which every engine uses today.
    async fn merge(
        &self,
        location: &Location,
        source: Batches,
        options: &crate::merge::MergeOptions,
    ) -> Result<crate::merge::MergeReport> {
        crate::merge::merge(
            self.name(),
            crate::merge::Executors {
                scanner: self.scanner(),
                key_match: self.key_match(),
            },
            location,
            source,
            options,
        )
        .await
    }

    /// Compacts small files into files near a target size. The default is the core's
    /// compaction (streamed arrow-rs reads and writes through the commit protocol), which
    /// every engine uses today.
    async fn compact(
        &self,
        location: &Location,
        options: &crate::compact::CompactOptions,
    ) -> Result<crate::compact::CompactReport> {
        crate::compact::compact(self.name(), self.scanner(), location, options).await
    }

    /// The sort primitive: `input` ordered by `keys` using at most `budget` bytes of memory
    /// for its buffers, spilling beyond it to `budget`'s folder. The default is the core's
    /// arrow-rs external merge sort; engines sort with their own spilling operators.
    async fn sort(
        &self,
        input: Batches,
        keys: &[crate::sort::SortKey],
        budget: &crate::sort::MemoryBudget,
    ) -> Result<crate::sort::Sorted> {
        crate::sort::arrow_sort(input, keys, budget).await
    }

    /// Runs a SQL query over the dataset registered as table `dataset`.
    async fn sql(&self, _location: &Location, _query: &str) -> Result<Batches> {
        Err(self.not_supported("sql"))
    }

    /// The typed error for an unsupported operation.
    fn not_supported(&self, operation: &str) -> Error {
        Error::NotSupported {
            engine: self.name().to_string(),
            operation: operation.to_string(),
        }
    }
}
