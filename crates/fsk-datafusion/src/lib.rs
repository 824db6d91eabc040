//! `fsk-datafusion`: the fsk engine on a DataFusion `SessionContext`.
//!
//! The core plans (listing, hive typing, footers, partition and statistics pruning down to
//! row groups); DataFusion executes: its parquet scan reads each planned file with the
//! filter pushed into the reader and evaluates it on its physical expressions (see
//! `scan.rs`). Writes go through the shared writer and commit protocol.

#![deny(clippy::clone_on_ref_ptr)]

mod key_match;
mod scan;
mod sort;
mod sql;

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};

use fsk_core::engine::{BatchStream, Capabilities, DatasetBackend, Scan, Scanner};
use fsk_core::error::{Error, Result};
use fsk_core::plan::scan::ScanPlan;

const ENGINE: &str = "datafusion";

/// The cores this process may use: DataFusion's `target_partitions` and the files scanned at
/// once.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The DataFusion engine.
#[derive(Clone, Debug, Default)]
pub struct DataFusionBackend {
    _private: (),
}

impl DataFusionBackend {
    /// A new engine. Each operation uses its own `SessionContext`.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Turns a DataFusion error back into fsk's: errors that came from fsk's own scan keep their
/// type; the rest become [`Error::Engine`].
pub fn from_datafusion(err: DataFusionError) -> Error {
    match err {
        DataFusionError::External(inner) => match inner.downcast::<Error>() {
            Ok(fsk) => *fsk,
            Err(other) => Error::Engine {
                engine: ENGINE.to_string(),
                message: other.to_string(),
            },
        },
        DataFusionError::Context(_, inner) => from_datafusion(*inner),
        DataFusionError::Shared(shared) => match Arc::try_unwrap(shared) {
            Ok(inner) => from_datafusion(inner),
            Err(shared) => Error::Engine {
                engine: ENGINE.to_string(),
                message: shared.to_string(),
            },
        },
        other => Error::Engine {
            engine: ENGINE.to_string(),
            message: other.to_string(),
        },
    }
}

/// A partition that hands out one stream, once.
struct OneShot {
    schema: SchemaRef,
    stream: Mutex<Option<BatchStream>>,
}

impl std::fmt::Debug for OneShot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneShot")
            .field("schema", &self.schema)
            .finish()
    }
}

impl PartitionStream for OneShot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let stream = self
            .stream
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .unwrap_or_else(|| futures::stream::empty().boxed());
        let stream = stream.map_err(|e| DataFusionError::External(Box::new(e)));
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

/// Registers `stream` as table `name` in `ctx`.
pub fn register_stream(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    stream: BatchStream,
) -> Result<()> {
    let partition = Arc::new(OneShot {
        schema: Arc::clone(&schema),
        stream: Mutex::new(Some(stream)),
    });
    let table = StreamingTable::try_new(schema, vec![partition]).map_err(from_datafusion)?;
    ctx.register_table(name, Arc::new(table))
        .map_err(from_datafusion)?;
    Ok(())
}

#[async_trait]
impl DatasetBackend for DataFusionBackend {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            scan: "DataFusion (ParquetSource in a DataSourceExec per file: filter pushdown, page index, FilterExec)",
            key_match: "DataFusion (source keys in memory tables, a hash join per file over its DataFusion scan, the file as build side, under a FairSpillPool)",
            sort: "DataFusion (SortExec under a FairSpillPool, spilling through its DiskManager)",
            sql: true,
            ..Capabilities::SHARED
        }
    }

    fn scanner(&self) -> Arc<dyn Scanner> {
        Arc::new(DataFusionScanner)
    }

    async fn sql(
        &self,
        query: &fsk_core::plan::sql::SqlQuery,
    ) -> Result<fsk_core::engine::Batches> {
        sql::sql(query).await
    }

    fn key_match(&self) -> Option<Arc<dyn fsk_core::engine::KeyMatch>> {
        Some(Arc::new(key_match::DataFusionKeyMatch))
    }

    async fn sort(
        &self,
        input: fsk_core::engine::Batches,
        keys: &[fsk_core::plan::sort::SortKey],
        budget: &fsk_core::plan::sort::MemoryBudget,
    ) -> Result<fsk_core::engine::Sorted> {
        sort::sort(input, keys, budget).await
    }
}

/// DataFusion's scan primitive (see [`scan`]).
#[derive(Debug)]
struct DataFusionScanner;

#[async_trait]
impl Scanner for DataFusionScanner {
    async fn scan(&self, plan: &ScanPlan) -> Result<Scan> {
        Ok(Scan {
            stream: scan::scan(plan)?,
            executor: ENGINE,
        })
    }
}
