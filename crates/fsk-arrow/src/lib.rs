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
use futures::StreamExt;

use fsk_core::backend::{Batches, Capabilities, DatasetBackend, ReadOptions};
use fsk_core::error::{Error, Result};
use fsk_core::scan::{limit_stream, plan_scan};
use fsk_core::storage::Location;

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

    async fn read(&self, location: &Location, options: &ReadOptions) -> Result<Batches> {
        let plan = plan_scan(location, options).await?;
        tracing::debug!(
            files = plan.files.len(),
            pruned_by_partition = plan.files_pruned_by_partition,
            pruned_by_statistics = plan.files_pruned_by_statistics,
            "planned read"
        );
        let filter = plan.filter.clone();
        let scan = plan.scan();
        let plan_for_projection = plan.clone();
        let filtered = scan
            .map(move |batch| {
                let batch = batch?;
                let batch = match &filter {
                    None => batch,
                    Some(filter) => {
                        let mask = filter.filter_mask(&batch)?;
                        arrow::compute::filter_record_batch(&batch, &mask)
                            .map_err(|e| Error::arrow("filtering rows", e))?
                    }
                };
                plan_for_projection.project(&batch)
            })
            .filter(|batch| {
                let keep = !matches!(batch, Ok(b) if b.num_rows() == 0);
                async move { keep }
            })
            .boxed();
        Ok(Batches::new(
            std::sync::Arc::clone(&plan.output_schema),
            limit_stream(filtered, plan.limit),
        ))
    }
}
