//! `fsk-core`: the dataset model, listing, hive partitions, footer statistics, pruning,
//! schemas, the shared writer, the commit protocol and the [`DatasetBackend`] trait.
//!
//! The core plans and commits; engines (`fsk-arrow`, `fsk-duckdb`, `fsk-datafusion`) move
//! data. Architecture invariant: this crate depends on no engine.

#![deny(clippy::clone_on_ref_ptr)]

pub mod backend;
mod cloud_options;
pub mod commit;
pub mod compact;
pub mod error;
pub mod filter;
pub mod footer;
pub mod footer_guard;
pub mod listing;
pub mod merge;
pub mod ops;
pub mod partition;
pub mod scan;
pub mod schema;
pub mod sort;
pub mod stats_types;
pub mod storage;
pub mod tasks;
pub mod value;
pub mod write;

pub use backend::{
    BatchStream, Batches, Capabilities, DatasetBackend, Execution, FileStats, ReadOptions, Scan,
    Scanner, StatsOptions, StatsReport, WriteReport,
};
pub use compact::{CompactOptions, CompactReport};
pub use error::{Error, Result};
pub use merge::{MergeOptions, MergeReport, RewriteMode, Strategy};
pub use storage::{AzureOptions, GcsOptions, Location, S3Options, StorageOptions, StoreKind};
pub use write::{Codec, WriteMode, WriteOptions, WrittenFile};

pub use arrow;
pub use object_store;
pub use parquet;
