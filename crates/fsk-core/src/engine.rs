//! The engine boundary: the [`DatasetBackend`] trait every engine implements, and the types
//! that cross it. Plans come in as plain data ([`crate::plan`]); Arrow streams come out.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use async_trait::async_trait;
use futures::StreamExt;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::plan::scan::ScanPlan;
use crate::plan::sort::{MemoryBudget, SortKey};
use crate::plan::sql::SqlQuery;
pub use crate::stream::{BatchStream, Batches};

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
    /// What every engine gets from the core's operations: write, read, merge and compact,
    /// each reading through the engine's scan primitive. `scan` and `sort` are left empty:
    /// each engine names its own.
    pub const SHARED: Capabilities = Capabilities {
        write: true,
        read: true,
        merge: true,
        compact: true,
        optimize: true,
        dedup: true,
        sql: false,
        scan: "",
        key_match: "arrow-rs (fsk-core's hash index over the row format)",
        sort: "",
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

/// The scan primitive: reads the files of a [`ScanPlan`] with an engine's own
/// parquet reader. The core plans (listing, footers, pruning to row groups) and every
/// operation (read, compact, the key scan and the rewrites of merge) reads through it.
///
/// The contract: the rows of the plan's files that match its filter, projected to
/// [`ScanPlan::output_schema`] (types exactly as planned), at most
/// `limit` of them; files in plan order and rows in file order. Without a filter the
/// planned row groups are a selection (exactly those are read); with one they are a hint
/// (rows outside them cannot match).
#[async_trait]
pub trait Scanner: Send + Sync + fmt::Debug {
    /// Streams the plan's rows.
    async fn scan(&self, plan: &ScanPlan) -> Result<Scan>;
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
    async fn match_files(&self, files: &[(ScanPlan, usize)]) -> Result<Vec<Option<KeyMatches>>>;
}

/// The column of [`numbered_keys`] holding each row's position in its file.
pub const POSITION_COLUMN: &str = "__fsk_position";

/// A key scan of one file made ready for an engine's join: `scan` (the rows of `plan`, which
/// reads one file's kept row groups in order, no filter) as the key columns of `keys` in
/// those types (a file may hold a narrower type) and [`POSITION_COLUMN`] (`UInt64`, the
/// row's position in the file). A null key is [`Error::NullKey`] naming the file.
pub fn numbered_keys(
    plan: &ScanPlan,
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
        budget: &crate::plan::sort::MemoryBudget,
    ) -> Result<std::sync::Arc<dyn KeyMatcher>>;
}

/// A sort's rows and what sorted them.
pub struct Sorted {
    /// The rows, in order.
    pub stream: BatchStream,
    /// The code that sorted (`arrow-rs`, `datafusion`, `duckdb`).
    pub executor: &'static str,
    /// How many times the sort spilled to disk, final once the stream is consumed (`None`
    /// where the engine does not say).
    pub spills: Arc<AtomicU64>,
    /// Whether `spills` is known for this engine.
    pub spills_observed: bool,
}

impl std::fmt::Debug for Sorted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sorted")
            .field("executor", &self.executor)
            .field("spills", &self.spills.load(Ordering::SeqCst))
            .finish()
    }
}

/// An engine: the execution primitives where engines genuinely differ. The core plans
/// (files, row groups, projection, predicate, sort keys, key sets, memory budget), writes
/// (names, splits, statistics, staging) and commits; the engine executes the plans and
/// returns Arrow streams: the scan ([`Scanner`]), the sort, the key match ([`KeyMatch`]) and
/// SQL. The operations (write, read, stats, merge, compact) are built on these in
/// [`crate::ops`] and reached through [`crate::ops::Operations`].
///
/// A primitive an engine does not support keeps the default body, which fails with
/// [`Error::NotSupported`].
#[async_trait]
pub trait DatasetBackend: Send + Sync + fmt::Debug {
    /// The engine's name (`arrow`, `duckdb`, `datafusion`).
    fn name(&self) -> &'static str;

    /// What the engine supports.
    fn capabilities(&self) -> Capabilities;

    /// The engine's scan primitive.
    fn scanner(&self) -> Arc<dyn Scanner>;

    /// The engine's key-match primitive, or `None` when the core's arrow-rs hash index over
    /// the row format matches keys (the default).
    fn key_match(&self) -> Option<Arc<dyn KeyMatch>> {
        None
    }

    /// The sort primitive: `input` ordered by `keys` using at most `budget` bytes of memory
    /// for its buffers, spilling beyond it to `budget`'s folder, with the engine's own
    /// spilling operator.
    async fn sort(&self, input: Batches, keys: &[SortKey], budget: &MemoryBudget)
    -> Result<Sorted>;

    /// The SQL primitive: runs `query` with its tables registered over their planned files
    /// and its parameters bound by the engine, streaming the result. Engines without SQL
    /// answer with the typed [`Error::NotSupported`].
    async fn sql(&self, _query: &SqlQuery) -> Result<Batches> {
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
