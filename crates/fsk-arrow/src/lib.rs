//! `fsk-arrow`: the fsk engine on arrow-rs kernels and the parquet crate's async reader. It
//! is the default engine: no SQL engine to compile, the lowest memory. Its primitives:
//!
//! - [`scan`]: `ParquetRecordBatchStream` over the planned row groups, the filter in a
//!   `RowFilter` with the page index (late materialisation). The other engines use it where
//!   their own reader cannot go.
//! - [`sort`]: an external merge sort over arrow's row format, runs spilled as Arrow IPC.
//! - key match: none of its own; merges match keys with the core's hash index.
//!
//! ```no_run
//! # async fn example() -> fsk_core::Result<()> {
//! use fsk_core::{Location, Operations, ReadOptions};
//! let engine = fsk_arrow::ArrowBackend::new();
//! let location = Location::parse("/tmp/sales")?;
//! let rows = engine
//!     .read(&location, &ReadOptions::default().with_filter("amount > 10"))
//!     .await?
//!     .collect()
//!     .await?;
//! # Ok(()) }
//! ```

#![deny(clippy::clone_on_ref_ptr)]

use std::sync::Arc;

use async_trait::async_trait;

use fsk_core::engine::{Batches, Capabilities, DatasetBackend, Scanner, Sorted};
use fsk_core::error::Result;
use fsk_core::plan::sort::{MemoryBudget, SortKey};

pub mod scan;
pub mod sort;

pub use scan::ArrowScanner;

/// The arrow-rs engine.
#[derive(Clone, Debug, Default)]
pub struct ArrowBackend {
    _private: (),
}

impl ArrowBackend {
    /// A new engine.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl DatasetBackend for ArrowBackend {
    fn name(&self) -> &'static str {
        "arrow"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::SHARED
    }

    fn scanner(&self) -> Arc<dyn Scanner> {
        Arc::new(ArrowScanner)
    }

    async fn sort(
        &self,
        input: Batches,
        keys: &[SortKey],
        budget: &MemoryBudget,
    ) -> Result<Sorted> {
        sort::sort(input, keys, budget).await
    }
}
