//! `fsk-core`: everything about a Parquet dataset that does not depend on the engine that
//! executes it. Its modules are layers; each imports only the ones listed before it:
//!
//! 1. [`error`], [`value`], [`stream`], [`tasks`], [`progress`]: typed errors, scalar values,
//!    batch streams, bounded concurrency, progress reporting.
//! 2. [`dataset`]: location and storage, listing, hive partitions, schema, footers and
//!    statistics.
//! 3. [`expr`]: the filter language, a SQL `WHERE` expression (parse with `sqlparser`, bind,
//!    evaluate, prune, render as SQL); [`filter`] is the same module under its former name.
//! 4. [`plan`]: plain-data plans the engines execute (scan, sort).
//! 5. [`commit`]: the commit protocol (lease, journal, publish, recover).
//! 6. [`write`](mod@write): the staged writer (names, splits, statistics, bloom filters).
//! 7. [`engine`]: the [`DatasetBackend`] trait, the execution primitives every engine
//!    implements (scan, sort, key match, SQL).
//! 8. [`ops`]: the operations (write, read, stats, merge, compact): planned here, executed
//!    through the engine, committed ([`Operations`]).
//!
//! The core plans and commits; engines (`fsk-arrow`, `fsk-duckdb`, `fsk-datafusion`)
//! execute. This crate depends on no engine; `tests/layers.rs` checks the layer order.

#![deny(clippy::clone_on_ref_ptr)]

pub mod error;
pub mod progress;
pub mod stream;
pub mod tasks;
pub mod value;

pub mod dataset;

pub mod expr;
pub use expr as filter;

pub mod plan;

pub mod commit;

pub mod write;

pub mod engine;

pub mod ops;

pub use dataset::storage::{
    AzureOptions, GcsOptions, Location, S3Options, StorageOptions, StoreKind,
};
pub use engine::{Capabilities, DatasetBackend, Scan, Scanner, Sorted};
pub use error::{Error, Result};
pub use ops::compact::{CompactOptions, CompactReport};
pub use ops::dedup::{DedupOptions, DedupReport};
pub use ops::merge::{MergeOptions, MergeReport, RewriteMode, Strategy};
pub use ops::optimize::{Curve, OptimizeOptions, OptimizeReport};
pub use ops::{Execution, FileStats, Operations, StatsOptions, StatsReport, WriteReport};
pub use plan::scan::ReadOptions;
pub use plan::sort::{MemoryBudget, SortKey};
pub use progress::{Progress, ProgressSink};
pub use stream::{BatchStream, Batches};
pub use write::{Codec, WriteMode, WriteOptions, WrittenFile};

pub use arrow;
pub use object_store;
pub use parquet;
