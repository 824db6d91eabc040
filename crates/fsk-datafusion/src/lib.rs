//! `fsk-datafusion`: the fsk engine on a DataFusion `SessionContext`.
//!
//! The core's pruned, projected scan is registered as a streaming table, and DataFusion plans
//! and runs the filter as SQL over it, so listing, hive typing and pruning are identical on
//! every engine while DataFusion evaluates the rows. Writes go through the shared writer and
//! commit protocol.

#![deny(clippy::clone_on_ref_ptr)]

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

use fsk_core::backend::{BatchStream, Batches, Capabilities, DatasetBackend, ReadOptions};
use fsk_core::error::{Error, Result};
use fsk_core::scan::plan_scan;
use fsk_core::schema::cast_by_position;
use fsk_core::storage::Location;

const ENGINE: &str = "datafusion";

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
        Capabilities::SHARED
    }

    async fn read(&self, location: &Location, options: &ReadOptions) -> Result<Batches> {
        let plan = plan_scan(location, options).await?;
        let Some(select) = plan.filter_sql("scan") else {
            return Ok(plan.unfiltered());
        };
        let output_schema = Arc::clone(&plan.output_schema);
        let ctx = SessionContext::new();
        register_stream(&ctx, "scan", Arc::clone(&plan.scan_schema), plan.scan())?;
        let limit = plan
            .limit
            .map(|l| format!(" LIMIT {l}"))
            .unwrap_or_default();
        let sql = format!("{select}{limit}");
        let frame = ctx.sql(&sql).await.map_err(|e| {
            let err = from_datafusion(e);
            Error::Engine {
                engine: ENGINE.to_string(),
                message: format!("planning {sql}: {err}"),
            }
        })?;
        let stream = frame.execute_stream().await.map_err(from_datafusion)?;
        let schema = Arc::clone(&output_schema);
        let stream = stream
            .map_err(from_datafusion)
            .map(move |batch| cast_by_position(&batch?, &schema))
            .boxed();
        Ok(Batches::new(output_schema, stream))
    }
}
