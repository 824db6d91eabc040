//! Streams of record batches: what goes into a write and comes out of every scan.

use std::fmt;
use std::pin::Pin;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::{Stream, StreamExt, TryStreamExt};

use crate::error::{Error, Result};

/// A stream of record batches.
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>;

/// A schema and a stream of batches of that schema: what goes into a write and comes out of a
/// read. Nothing is materialised until the stream is polled.
pub struct Batches {
    schema: SchemaRef,
    stream: BatchStream,
    rows_hint: Option<u64>,
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
        Batches {
            schema,
            stream,
            rows_hint: None,
        }
    }

    /// Batches from memory.
    pub fn from_batches(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        Batches {
            schema,
            stream: futures::stream::iter(batches.into_iter().map(Ok)).boxed(),
            rows_hint: Some(rows),
        }
    }

    /// States how many rows the stream holds (a parquet source knows from its footers), so
    /// progress can show a total. A hint only: nothing relies on it being right.
    pub fn with_rows_hint(mut self, rows: u64) -> Self {
        self.rows_hint = Some(rows);
        self
    }

    /// How many rows the stream holds, when its producer said ([`Batches::with_rows_hint`]).
    pub fn rows_hint(&self) -> Option<u64> {
        self.rows_hint
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

/// `stream` polled by a spawned task up to `depth` batches ahead of its consumer, so its
/// work (decoding, say) runs on another core. Dropping the result stops the task at its next
/// batch; an error ends the stream after it is passed on. Needs a tokio runtime: the task is
/// spawned here.
pub fn prefetch(mut stream: BatchStream, depth: usize) -> BatchStream {
    let (tx, mut rx) = tokio::sync::mpsc::channel(depth.max(1));
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                // The consumer is gone, or the stream ended with an error.
                break;
            }
        }
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// Stops a stream after `limit` rows (slicing the last batch); polls nothing after that.
pub fn limit_stream(stream: BatchStream, limit: Option<usize>) -> BatchStream {
    let Some(limit) = limit else {
        return stream;
    };
    if limit == 0 {
        return futures::stream::empty().boxed();
    }
    stream
        .scan(limit, |remaining, batch| {
            let out = if *remaining == 0 {
                None
            } else {
                Some(batch.map(|batch| {
                    let take = batch.num_rows().min(*remaining);
                    *remaining -= take;
                    batch.slice(0, take)
                }))
            };
            async move { out }
        })
        .boxed()
}
