//! # fsk
//!
//! Manage plain Parquet datasets (a folder of `.parquet` files, optionally hive-partitioned,
//! on local disk or an object store) the way table formats manage tables, with no table
//! format: any Parquet reader keeps reading the folder.
//!
//! Pick an engine with a cargo feature: `arrow` (default), `duckdb`, `datafusion`. Every
//! engine passes the same conformance suite, so results are the same whichever you pick.
//!
//! ```no_run
//! use std::sync::Arc;
//! use arrow::array::{Int64Array, RecordBatch, StringArray};
//! use arrow::datatypes::{DataType, Field, Schema};
//!
//! # async fn example() -> fsk::Result<()> {
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("id", DataType::Int64, false),
//!     Field::new("day", DataType::Utf8, false),
//! ]));
//! let batch = RecordBatch::try_new(
//!     schema,
//!     vec![
//!         Arc::new(Int64Array::from(vec![1, 2, 3])),
//!         Arc::new(StringArray::from(vec!["2025-01-01", "2025-01-01", "2025-01-02"])),
//!     ],
//! )?;
//!
//! let sales = fsk::open("/tmp/sales")?;
//! let report = sales.write(batch).partition_by(["day"]).await?;
//! println!("wrote {} rows in {} files", report.total_rows, report.files.len());
//!
//! let rows = sales.read().filter("day = '2025-01-02'").columns(["id"]).await?.collect().await?;
//! # Ok(()) }
//! ```

#![deny(clippy::clone_on_ref_ptr)]

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

pub mod source;

pub use fsk_core::commit::{RecoverOptions, RecoveryReport, recover, recover_with};
pub use fsk_core::dataset::listing::any_partition_filter;
pub use fsk_core::dataset::storage::{
    AzureOptions, GcsOptions, Location, S3Options, StorageOptions, StoreKind,
};
pub use fsk_core::engine::{
    BatchStream, Batches, Capabilities, DatasetBackend, KeyMatch, KeyMatcher, KeyMatches, Scan,
    Scanner, Sorted,
};
pub use fsk_core::error::{Error, Result, SqlErrorKind};
pub use fsk_core::ops::compact::{CompactOptions, CompactReport, CompactedGroup};
pub use fsk_core::ops::dedup::{DedupOptions, DedupReport};
pub use fsk_core::ops::merge::{
    FileOperation, MergeFile, MergeOptions, MergeReport, PruneStage, PrunedFile, RewriteMode,
    SourceSpill, Strategy,
};
pub use fsk_core::ops::optimize::{Curve, OptimizeOptions, OptimizeReport};
pub use fsk_core::ops::sql::SqlSession;
pub use fsk_core::ops::{Execution, FileStats, Operations, StatsOptions, StatsReport, WriteReport};
pub use fsk_core::plan::scan::ReadOptions;
pub use fsk_core::plan::sort::{MemoryBudget, SortKey};
pub use fsk_core::plan::sql::{SqlParam, SqlQuery, SqlTable};
pub use fsk_core::progress::{self, Progress, ProgressSink};
pub use fsk_core::write::{Codec, WriteMode, WriteOptions, WrittenFile};
pub use fsk_core::{arrow, object_store, parquet};

/// The engines, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    /// arrow-rs kernels and the parquet crate (feature `arrow`, the default).
    Arrow,
    /// DuckDB, bundled (feature `duckdb`).
    DuckDb,
    /// DataFusion (feature `datafusion`).
    DataFusion,
}

impl Engine {
    /// Every engine, compiled in or not.
    pub const ALL: [Engine; 3] = [Engine::Arrow, Engine::DuckDb, Engine::DataFusion];

    /// The engine's name.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Arrow => "arrow",
            Engine::DuckDb => "duckdb",
            Engine::DataFusion => "datafusion",
        }
    }

    /// The engines compiled into this build.
    pub fn available() -> Vec<Engine> {
        Engine::ALL
            .into_iter()
            .filter(|e| e.backend().is_ok())
            .collect()
    }

    /// The first compiled-in engine, preferring `arrow`.
    pub fn default_engine() -> Result<Engine> {
        Engine::available().into_iter().next().ok_or_else(|| {
            Error::invalid_argument(
                "engine",
                "(none)",
                "no engine is compiled in: enable a feature (arrow, duckdb, datafusion)",
            )
        })
    }

    /// An instance of the engine, or a typed error when its feature is not compiled in.
    pub fn backend(self) -> Result<Arc<dyn DatasetBackend>> {
        match self {
            #[cfg(feature = "arrow")]
            Engine::Arrow => Ok(Arc::new(fsk_arrow::ArrowBackend::new())),
            #[cfg(feature = "duckdb")]
            Engine::DuckDb => Ok(Arc::new(fsk_duckdb::DuckDbBackend::new())),
            #[cfg(feature = "datafusion")]
            Engine::DataFusion => Ok(Arc::new(fsk_datafusion::DataFusionBackend::new())),
            #[allow(unreachable_patterns)]
            other => Err(Error::invalid_argument(
                "engine",
                other.name(),
                format!(
                    "not compiled into this build; enable the cargo feature {:?}",
                    other.name()
                ),
            )),
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Engine {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "arrow" => Ok(Engine::Arrow),
            "duckdb" => Ok(Engine::DuckDb),
            "datafusion" => Ok(Engine::DataFusion),
            _ => Err(Error::invalid_argument(
                "engine",
                s,
                "valid engines are: arrow, duckdb, datafusion",
            )),
        }
    }
}

/// A SQL session on the first compiled-in engine with SQL (DuckDB, else DataFusion):
/// register datasets by name, then query them together.
///
/// ```no_run
/// # async fn example() -> fsk::Result<()> {
/// let mut session = fsk::sql()?;
/// session.register("sales", fsk::Location::parse("/data/sales")?)?;
/// let rows = session
///     .query(
///         "SELECT day, sum(amount) AS total FROM sales WHERE amount > ? GROUP BY day",
///         &[fsk::SqlParam::Int(10)],
///     )
///     .await?
///     .collect()
///     .await?;
/// # Ok(()) }
/// ```
///
/// With the `arrow` engine only, this is a typed [`Error::InvalidArgument`]; use
/// [`SqlSession::new`] to pick the engine.
pub fn sql() -> Result<SqlSession<'static>> {
    let backend = [Engine::DuckDb, Engine::DataFusion]
        .into_iter()
        .find_map(|engine| engine.backend().ok())
        .ok_or_else(|| {
            Error::invalid_argument(
                "engine",
                "(none)",
                "no engine with SQL is compiled in: enable the duckdb or datafusion feature",
            )
        })?;
    Ok(SqlSession::new(backend))
}

/// A dataset handle: a location and an engine.
#[derive(Clone)]
pub struct Dataset {
    location: Location,
    backend: Arc<dyn DatasetBackend>,
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("location", &self.location)
            .field("engine", &self.backend.name())
            .finish()
    }
}

/// Opens a dataset with the default engine and the environment's storage credentials.
/// Nothing is read until an operation runs; the dataset may not exist yet.
pub fn open(url: &str) -> Result<Dataset> {
    Dataset::open_with(url, Engine::default_engine()?, &StorageOptions::default())
}

impl Dataset {
    /// Opens a dataset with an explicit engine and storage options.
    pub fn open_with(url: &str, engine: Engine, options: &StorageOptions) -> Result<Dataset> {
        Ok(Dataset {
            location: Location::parse_with_options(url, options)?,
            backend: engine.backend()?,
        })
    }

    /// A handle on an existing location and engine instance.
    pub fn from_parts(location: Location, backend: Arc<dyn DatasetBackend>) -> Dataset {
        Dataset { location, backend }
    }

    /// Uses another engine for later operations.
    pub fn with_engine(mut self, engine: Engine) -> Result<Dataset> {
        self.backend = engine.backend()?;
        Ok(self)
    }

    /// The location.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The engine.
    pub fn backend(&self) -> &Arc<dyn DatasetBackend> {
        &self.backend
    }

    /// Starts a write of `input` (a batch, batches or a stream). Set options on the builder
    /// and `.await` it.
    pub fn write(&self, input: impl Into<Batches>) -> WriteBuilder {
        WriteBuilder {
            dataset: self.clone(),
            input: input.into(),
            options: WriteOptions::default(),
        }
    }

    /// Starts a merge of `source` by key. Set the key and strategy on the builder and
    /// `.await` it.
    ///
    /// ```no_run
    /// # async fn example(changes: arrow::array::RecordBatch) -> fsk::Result<()> {
    /// let report = fsk::open("/tmp/sales")?
    ///     .merge(changes)
    ///     .key(["id"])
    ///     .strategy(fsk::Strategy::Upsert)
    ///     .await?;
    /// println!("{} updated, {} inserted, {} files rewritten", report.updated, report.inserted, report.rewritten_files.len());
    /// # Ok(()) }
    /// ```
    pub fn merge(&self, source: impl Into<Batches>) -> MergeBuilder {
        MergeBuilder {
            dataset: self.clone(),
            source: source.into(),
            options: MergeOptions::new(Vec::<String>::new(), Strategy::Upsert),
        }
    }

    /// Starts a read. Set options on the builder and `.await` it for a stream of batches.
    pub fn read(&self) -> ReadBuilder {
        ReadBuilder {
            dataset: self.clone(),
            options: ReadOptions::default(),
        }
    }

    /// Starts a compaction: small files become files near the target size (128 MiB by
    /// default), folder by folder. Set options on the builder and `.await` it.
    ///
    /// ```no_run
    /// # async fn example() -> fsk::Result<()> {
    /// let report = fsk::open("/tmp/sales")?
    ///     .compact()
    ///     .target_file_size(64 << 20)
    ///     .await?;
    /// println!("{} files became {}", report.files_before, report.files_after);
    /// # Ok(()) }
    /// ```
    pub fn compact(&self) -> CompactBuilder {
        CompactBuilder {
            dataset: self.clone(),
            options: CompactOptions::default(),
        }
    }

    /// Files, sizes and row counts.
    pub async fn stats(&self, options: &StatsOptions) -> Result<StatsReport> {
        self.backend.stats(&self.location, options).await
    }

    /// Rolls unfinished transactions forward or back.
    pub async fn recover(&self) -> Result<RecoveryReport> {
        recover(&self.location, None).await
    }
}

/// A pending write; `.await` runs it.
#[must_use = "a write does nothing until awaited"]
pub struct WriteBuilder {
    dataset: Dataset,
    input: Batches,
    options: WriteOptions,
}

impl WriteBuilder {
    /// Append (default) or overwrite.
    pub fn mode(mut self, mode: WriteMode) -> Self {
        self.options.mode = mode;
        self
    }
    /// Hive partition columns.
    pub fn partition_by<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.options = self.options.with_partition_by(columns);
        self
    }
    /// Split files after this many rows.
    pub fn max_rows_per_file(mut self, rows: usize) -> Self {
        self.options.max_rows_per_file = Some(rows);
        self
    }
    /// Rows per row group (a maximum).
    pub fn row_group_size(mut self, rows: usize) -> Self {
        self.options.row_group_size = rows;
        self
    }
    /// Compression codec.
    pub fn compression(mut self, codec: Codec) -> Self {
        self.options.compression = codec;
        self
    }
    /// File name template (`{}` is replaced by a unique token; must end in `.parquet`).
    pub fn basename_template(mut self, template: impl Into<String>) -> Self {
        self.options.basename_template = Some(template.into());
        self
    }
    /// Reports progress (phases `write`, `commit`) to `progress`.
    pub fn progress(mut self, progress: Progress) -> Self {
        self.options.progress = progress;
        self
    }
    /// Replaces every option at once.
    pub fn options(mut self, options: WriteOptions) -> Self {
        self.options = options;
        self
    }
}

impl IntoFuture for WriteBuilder {
    type Output = Result<WriteReport>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            self.dataset
                .backend
                .write(&self.dataset.location, self.input, &self.options)
                .await
        })
    }
}

/// A pending read; `.await` plans it and returns the stream.
#[must_use = "a read does nothing until awaited"]
pub struct ReadBuilder {
    dataset: Dataset,
    options: ReadOptions,
}

impl ReadBuilder {
    /// Columns in this order.
    pub fn columns<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.options = self.options.with_columns(columns);
        self
    }
    /// A filter such as `day = '2025-01-01' AND amount > 10`.
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.options.filter = Some(filter.into());
        self
    }
    /// At most this many rows (after the filter).
    pub fn limit(mut self, limit: usize) -> Self {
        self.options.limit = Some(limit);
        self
    }
    /// Replaces every option at once.
    pub fn options(mut self, options: ReadOptions) -> Self {
        self.options = options;
        self
    }
}

impl IntoFuture for ReadBuilder {
    type Output = Result<Batches>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            self.dataset
                .backend
                .read(&self.dataset.location, &self.options)
                .await
        })
    }
}

/// The README's examples, compiled as doc tests so they stay true.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// A pending compaction; `.await` runs it.
#[must_use = "a compaction does nothing until awaited"]
pub struct CompactBuilder {
    dataset: Dataset,
    options: CompactOptions,
}

impl CompactBuilder {
    /// Target size of the files written, in bytes.
    pub fn target_file_size(mut self, bytes: u64) -> Self {
        self.options.target_file_size = Some(bytes);
        self
    }
    /// Files smaller than this are candidates (default: three quarters of the target).
    pub fn min_file_size(mut self, bytes: u64) -> Self {
        self.options.min_file_size = Some(bytes);
        self
    }
    /// Only folders under matching partitions (`col=value[/col=value...]`).
    pub fn partition_filter(mut self, filter: impl Into<String>) -> Self {
        self.options.partition_filter = Some(filter.into());
        self
    }
    /// Codec of the new files.
    pub fn compression(mut self, codec: Codec) -> Self {
        self.options.compression = Some(codec);
        self
    }
    /// Plan without writing.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.options.dry_run = dry_run;
        self
    }
    /// Wait up to `wait` for another writer's lease.
    pub fn wait(mut self, wait: std::time::Duration) -> Self {
        self.options.wait = Some(wait);
        self
    }
    /// Reports progress (phases `plan`, `rewrite`, `commit`) to `progress`.
    pub fn progress(mut self, progress: Progress) -> Self {
        self.options.progress = progress;
        self
    }
    /// Replaces every option at once.
    pub fn options(mut self, options: CompactOptions) -> Self {
        self.options = options;
        self
    }
}

impl IntoFuture for CompactBuilder {
    type Output = Result<CompactReport>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            self.dataset
                .backend
                .compact(&self.dataset.location, &self.options)
                .await
        })
    }
}

/// A pending merge; `.await` runs it. The strategy defaults to upsert; a key is required.
#[must_use = "a merge does nothing until awaited"]
pub struct MergeBuilder {
    dataset: Dataset,
    source: Batches,
    options: MergeOptions,
}

impl MergeBuilder {
    /// Key columns.
    pub fn key<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.options.key = columns.into_iter().map(Into::into).collect();
        self
    }
    /// The strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.options.strategy = strategy;
        self
    }
    /// Partition columns for new data (detected from the dataset when not given).
    pub fn partition_by<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.options.partition_by = Some(columns.into_iter().map(Into::into).collect());
        self
    }
    /// For `deduplicate`: the row with the highest values of these columns wins.
    pub fn dedup_order_by<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        columns: I,
    ) -> Self {
        self.options.dedup_order_by = columns.into_iter().map(Into::into).collect();
        self
    }
    /// Incremental or full rewrite.
    pub fn rewrite_mode(mut self, mode: RewriteMode) -> Self {
        self.options.rewrite_mode = Some(mode);
        self
    }
    /// Plan and count without writing.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.options.dry_run = dry_run;
        self
    }
    /// Codec and file sizes of written files.
    pub fn write_options(mut self, write: WriteOptions) -> Self {
        self.options.write = write;
        self
    }
    /// The memory the merge may use (default: a quarter of the machine's memory), and where
    /// it spills: a source beyond a quarter of it is sorted by the engine and spilled, with
    /// only its distinct keys in memory.
    pub fn memory(mut self, budget: MemoryBudget) -> Self {
        self.options.memory = budget;
        self
    }
    /// Whether the source is held in memory or sorted and spilled (default: by its size).
    pub fn source_spill(mut self, spill: SourceSpill) -> Self {
        self.options.source_spill = spill;
        self
    }
    /// Reports progress (phases `read source`, `plan`, `sort source` for a spilled source,
    /// `scan keys`, `rewrite`, `insert`, `commit`) to `progress`.
    pub fn progress(mut self, progress: Progress) -> Self {
        self.options.progress = progress;
        self
    }
    /// Replaces every option at once.
    pub fn options(mut self, options: MergeOptions) -> Self {
        self.options = options;
        self
    }
}

impl IntoFuture for MergeBuilder {
    type Output = Result<MergeReport>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            self.dataset
                .backend
                .merge(&self.dataset.location, self.source, &self.options)
                .await
        })
    }
}
