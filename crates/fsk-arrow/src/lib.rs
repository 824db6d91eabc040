//! `fsk-arrow`: the fsk engine on arrow-rs kernels and the parquet crate's async reader and
//! writer. It is the default engine: no SQL engine to compile, the lowest memory.
//!
//! ```no_run
//! # async fn example() -> fsk_core::Result<()> {
//! use fsk_core::{DatasetBackend, Location, ReadOptions};
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

use async_trait::async_trait;

use fsk_core::backend::{Capabilities, DatasetBackend};

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
}
