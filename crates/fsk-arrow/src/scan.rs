//! The arrow engine's scan primitive: the parquet crate's async reader over a
//! [`ScanPlan`], row-group pruned, the filter in a `RowFilter` with the page index (late
//! materialisation), partition columns appended from the path. The other engines use it
//! where their own reader cannot go (object stores offline, repaired footers).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter,
};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};

use fsk_core::dataset::footer::{FileMeta, object_reader};
use fsk_core::dataset::partition::repeat_value;
use fsk_core::dataset::schema::project_to;
use fsk_core::dataset::storage::Location;
use fsk_core::engine::{BatchStream, Scan, Scanner};
use fsk_core::error::{Error, Result};
use fsk_core::expr::BoundPredicate;
use fsk_core::plan::scan::{ScanFile, ScanPlan};
use fsk_core::stream::{limit_stream, prefetch};
use fsk_core::value::ScalarValue;

/// What the parquet crate's reader reports as its executor.
pub const EXECUTOR: &str = "arrow-rs";

/// The scan primitive on the parquet crate's async reader (arrow-rs): the arrow engine's,
/// and the one every engine falls back to where its own reader cannot go.
#[derive(Clone, Copy, Debug, Default)]
pub struct ArrowScanner;

#[async_trait]
impl Scanner for ArrowScanner {
    async fn scan(&self, plan: &ScanPlan) -> Result<Scan> {
        Ok(Scan {
            stream: rows(plan),
            executor: EXECUTOR,
        })
    }
}

/// How many files are opened (and decoded) at once, at least: the one being consumed and
/// those ahead.
pub const FILES_IN_FLIGHT: usize = 2;

/// Files in flight on this machine: one per core (at most 8), at least [`FILES_IN_FLIGHT`].
fn files_in_flight() -> usize {
    std::thread::available_parallelism()
        .map_or(FILES_IN_FLIGHT, |n| n.get().min(8))
        .max(FILES_IN_FLIGHT)
}

/// How many batches each file in flight decodes ahead of its consumer.
pub const BATCHES_AHEAD: usize = 2;

/// Streams batches of [`ScanPlan::scan_schema`], row-group pruned, with the filter
/// evaluated inside the parquet reader on the file's columns (a `RowFilter`: the filter
/// columns are decoded first, the others only for surviving rows, using the page index
/// to skip pages). Rows are exact only for filters on file columns; callers evaluate the
/// filter again (cheap on the survivors).
pub fn scan(plan: &ScanPlan) -> BatchStream {
    let location = plan.location.clone();
    let scan_schema = Arc::clone(&plan.scan_schema);
    let batch_size = plan.batch_size;
    let files = plan.files.clone();
    let filter = plan.filter.clone();
    futures::stream::iter(files)
        .map(move |file| {
            let location = location.clone();
            let scan_schema = Arc::clone(&scan_schema);
            let filter = filter.clone();
            // Each file opens and decodes in its own task, spawned as soon as it is among the
            // files in flight, a few batches ahead of the consumer: the files in flight
            // decode on every core, not on the consumer's alone.
            let file = futures::stream::once(async move {
                scan_file(location, file, scan_schema, batch_size, filter).await
            })
            .try_flatten()
            .boxed();
            futures::future::ready(prefetch(file, BATCHES_AHEAD))
        })
        .buffered(files_in_flight())
        .flatten()
        .boxed()
}

/// The plan's rows read by arrow-rs: [`scan`], the filter evaluated exactly,
/// projected to the output columns, with the limit applied.
pub fn rows(plan: &ScanPlan) -> BatchStream {
    let filter = plan.filter.clone();
    let output = Arc::clone(&plan.output_schema);
    let filtered = scan(plan)
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
            project_to(&batch, &output)
        })
        .filter(|batch| {
            let keep = !matches!(batch, Ok(b) if b.num_rows() == 0);
            async move { keep }
        })
        .boxed();
    limit_stream(filtered, plan.limit)
}

/// The largest page index (column and offset indexes of the row groups read) fsk loads.
const MAX_PAGE_INDEX_BYTES: i64 = 32 << 20;

/// The file's reader metadata with its page index, when it has one of a sane size;
/// otherwise (or when it does not decode) the metadata without it: the page index only
/// saves reads.
async fn with_page_index(
    reader: &mut parquet::arrow::async_reader::ParquetObjectReader,
    meta: &FileMeta,
    describe: &str,
) -> ArrowReaderMetadata {
    let metadata = meta.metadata();
    let index_bytes: i64 = metadata
        .row_groups()
        .iter()
        .flat_map(|rg| rg.columns())
        .map(|c| {
            i64::from(c.column_index_length().unwrap_or(0).max(0))
                + i64::from(c.offset_index_length().unwrap_or(0).max(0))
        })
        .sum();
    if index_bytes == 0 || index_bytes > MAX_PAGE_INDEX_BYTES {
        return meta.reader_metadata.clone();
    }
    let mut loader = ParquetMetaDataReader::new_with_metadata(metadata.as_ref().clone())
        .with_page_index_policy(PageIndexPolicy::Optional);
    let loaded = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
        loader.load_page_index(&mut *reader),
    ))
    .await;
    let with_index = match loaded {
        Ok(Ok(())) => loader.finish().ok(),
        _ => None,
    };
    let Some(with_index) = with_index else {
        tracing::debug!(file = describe, "page index unreadable; reading without it");
        return meta.reader_metadata.clone();
    };
    let options = ArrowReaderOptions::new().with_schema(Arc::clone(&meta.schema));
    ArrowReaderMetadata::try_new(Arc::new(with_index), options)
        .unwrap_or_else(|_| meta.reader_metadata.clone())
}

async fn scan_file(
    location: Location,
    file: ScanFile,
    scan_schema: SchemaRef,
    batch_size: usize,
    filter: Option<BoundPredicate>,
) -> Result<BatchStream> {
    let describe = location.describe(&file.meta.file.path);
    if file.row_groups.is_empty() {
        return Ok(futures::stream::empty().boxed());
    }
    let file_schema = Arc::clone(&file.meta.schema);
    let roots: Vec<usize> = file_schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| scan_schema.field_with_name(f.name()).is_ok())
        .map(|(i, _)| i)
        .collect();
    let mut reader = object_reader(&location, &file.meta.file);
    let filter_columns: Vec<usize> = match &filter {
        Some(filter) => {
            let names = filter.columns();
            file_schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| names.contains(f.name()))
                .map(|(i, _)| i)
                .collect()
        }
        None => Vec::new(),
    };
    // With a filter on the file's columns, the reader decodes those first and fetches the
    // other columns' pages only where rows survive (late materialisation), which needs the
    // page index.
    let reader_metadata = if filter_columns.is_empty() {
        file.meta.reader_metadata.clone()
    } else {
        with_page_index(&mut reader, &file.meta, &describe).await
    };
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, reader_metadata);
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let mut builder = builder
        .with_projection(mask)
        .with_row_groups(file.row_groups.clone())
        .with_batch_size(batch_size);
    if let Some(filter) = filter.filter(|_| !filter_columns.is_empty()) {
        let predicate_mask = ProjectionMask::roots(builder.parquet_schema(), filter_columns);
        // The filter sees the file's filter columns, widened, with the partition values and
        // nulls for columns this file lacks: the same rows the engines filter afterwards.
        let filter_schema = Arc::new(Schema::new(
            scan_schema
                .fields()
                .iter()
                .filter(|f| filter.columns().contains(f.name()))
                .map(|f| f.as_ref().clone())
                .collect::<Vec<_>>(),
        ));
        let partition = file.partition.clone();
        let predicate = ArrowPredicateFn::new(predicate_mask, move |batch: RecordBatch| {
            let batch = assemble(&batch, &filter_schema, &partition)
                .map_err(|e| arrow::error::ArrowError::ExternalError(Box::new(e)))?;
            filter
                .filter_mask(&batch)
                .map_err(|e| arrow::error::ArrowError::ExternalError(Box::new(e)))
        });
        builder = builder.with_row_filter(RowFilter::new(vec![Box::new(predicate)]));
    }
    let stream = builder
        .build()
        .map_err(|e| Error::from_parquet(&describe, e))?;
    let partition = file.partition;
    let stream = stream
        .map_err(move |e| Error::from_parquet(&describe, e))
        .and_then(move |batch| {
            let result = assemble(&batch, &scan_schema, &partition);
            async move { result }
        });
    Ok(stream.boxed())
}

/// Builds a batch of `schema` from a file batch: file columns (widened), missing columns as
/// nulls, partition columns from the path.
fn assemble(
    batch: &RecordBatch,
    schema: &SchemaRef,
    partition: &HashMap<String, ScalarValue>,
) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|field| -> Result<ArrayRef> {
            if let Some(column) = batch.column_by_name(field.name()) {
                return fsk_core::dataset::schema::cast_column(column, field);
            }
            if let Some(value) = partition.get(field.name()) {
                return repeat_value(value, rows);
            }
            Ok(arrow::array::new_null_array(field.data_type(), rows))
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| Error::arrow("assembling a scan batch", e))
}
