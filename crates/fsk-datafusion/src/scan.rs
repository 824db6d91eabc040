//! The scan primitive on DataFusion: each file of the core's [`ScanPlan`] is read by
//! DataFusion's own parquet scan (`ParquetSource` in a `DataSourceExec`) with the filter
//! pushed into the reader (row-group statistics, page index, late materialisation of the
//! filtered columns), only the row groups the core's pruning kept, and the rows filtered by
//! a `FilterExec` on DataFusion's physical expressions. Files are independent: several are
//! decoded at once, each on its own task, and come out in plan order.
//!
//! The footers come from the core's plan (already read, validated against hostile input
//! and normalised for old writers), through a [`ParquetFileReaderFactory`] that hands them to
//! DataFusion instead of letting it fetch and parse them again.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use arrow::datatypes::{FieldRef, Schema, SchemaRef};
use bytes::Bytes;
use datafusion::common::{DFSchema, ScalarValue as DfScalar};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::ParquetAccessPlan;
use datafusion::datasource::physical_plan::{
    FileScanConfigBuilder, ParquetFileReaderFactory, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::DataFusionError;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetObjectReader};
use parquet::file::metadata::ParquetMetaData;

use fsk_core::dataset::partition::repeat_value;
use fsk_core::dataset::schema::project_to;
use fsk_core::dataset::storage::Location;
use fsk_core::engine::BatchStream;
use fsk_core::error::{Error, Result};
use fsk_core::plan::scan::{ScanFile, ScanPlan};

use crate::{ENGINE, from_datafusion};

/// The URL the dataset's object store is registered under in the session.
pub(crate) const STORE_URL: &str = "fsk://dataset";

/// Hands DataFusion the footers the core already parsed.
#[derive(Debug)]
pub(crate) struct PlannedFooters {
    store: Arc<dyn ObjectStore>,
    footers: HashMap<Path, Arc<ParquetMetaData>>,
}

impl PlannedFooters {
    /// The footers of the plan's files, read from `plan`'s store.
    pub(crate) fn of(plan: &ScanPlan) -> Arc<Self> {
        Arc::new(PlannedFooters {
            store: Arc::clone(plan.location.store()),
            footers: plan
                .files
                .iter()
                .map(|f| (f.meta.file.path.clone(), Arc::clone(f.meta.metadata())))
                .collect(),
        })
    }
}

impl ParquetFileReaderFactory for PlannedFooters {
    fn create_reader(
        &self,
        _partition_index: usize,
        file: PartitionedFile,
        _metadata_size_hint: Option<usize>,
        _metrics: &ExecutionPlanMetricsSet,
    ) -> datafusion::common::Result<Box<dyn AsyncFileReader + Send>> {
        let location = file.object_meta.location.clone();
        let metadata = self.footers.get(&location).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!("no planned footer for {location}"))
        })?;
        let inner = ParquetObjectReader::new(Arc::clone(&self.store), location)
            .with_file_size(file.object_meta.size);
        Ok(Box::new(PlannedReader { inner, metadata }))
    }
}

/// A file reader whose footer is known.
struct PlannedReader {
    inner: ParquetObjectReader,
    metadata: Arc<ParquetMetaData>,
}

impl AsyncFileReader for PlannedReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let metadata = Arc::clone(&self.metadata);
        async move { Ok(metadata) }.boxed()
    }
}

/// A DataFusion error met while reading `describe`, as fsk's typed error naming the file.
fn file_error(describe: &str, err: DataFusionError) -> Error {
    match err {
        DataFusionError::ParquetError(e) => Error::from_parquet(describe, *e),
        DataFusionError::ObjectStore(e) => Error::from_store(describe, *e),
        DataFusionError::Context(_, inner) => file_error(describe, *inner),
        DataFusionError::External(e) => match e.downcast::<parquet::errors::ParquetError>() {
            Ok(p) => Error::from_parquet(describe, *p),
            Err(e) => from_datafusion(DataFusionError::External(e)),
        },
        DataFusionError::ArrowError(e, _) => Error::CorruptFile {
            path: describe.to_string(),
            message: format!("decoding with DataFusion: {e}"),
        },
        other => Error::Engine {
            engine: ENGINE.to_string(),
            message: format!("reading {describe}: {other}"),
        },
    }
}

/// What every file scan of one plan shares.
struct FileScans {
    ctx: SessionContext,
    url: ObjectStoreUrl,
    table_schema: TableSchema,
    footers: Arc<PlannedFooters>,
    /// Indices of the scan columns in the dataset schema.
    projection: Vec<usize>,
    /// The filter on the dataset schema (pushed into the parquet reader).
    pushed: Option<Arc<dyn PhysicalExpr>>,
    /// The filter on the scan columns (evaluated exactly by `FilterExec`).
    exact: Option<Arc<dyn PhysicalExpr>>,
    partition_fields: Vec<FieldRef>,
    batch_size: usize,
}

/// A session for scans: DataFusion's parquet reader with filter pushdown, filter reordering,
/// the page index and INT96 read as microseconds (as the core reads it).
pub(crate) fn scan_session(batch_size: usize) -> SessionContext {
    let config = reader_config(
        datafusion::prelude::SessionConfig::new()
            .with_target_partitions(crate::cores())
            .with_batch_size(batch_size),
    );
    SessionContext::new_with_config(config)
}

/// `config` with fsk's parquet reading: filter pushdown, filter reordering, the page index,
/// INT96 read as microseconds (as the core reads it).
pub(crate) fn reader_config(
    mut config: datafusion::prelude::SessionConfig,
) -> datafusion::prelude::SessionConfig {
    let parquet = &mut config.options_mut().execution.parquet;
    parquet.pushdown_filters = true;
    parquet.reorder_filters = true;
    parquet.enable_page_index = true;
    parquet.coerce_int96 = Some("us".to_string());
    config
}

/// The plan's dataset as DataFusion's table schema (the files' columns, then the partition
/// columns), with the partition fields.
pub(crate) fn table_schema(plan: &ScanPlan) -> (TableSchema, Vec<FieldRef>) {
    let partition_fields: Vec<FieldRef> = plan
        .partitions
        .fields
        .iter()
        .map(|f| Arc::new(f.clone()))
        .collect();
    let data_fields: Vec<FieldRef> = plan
        .dataset_schema
        .fields()
        .iter()
        .filter(|f| !partition_fields.iter().any(|p| p.name() == f.name()))
        .cloned()
        .collect();
    let table_schema =
        TableSchema::new(Arc::new(Schema::new(data_fields)), partition_fields.clone());
    (table_schema, partition_fields)
}

impl FileScans {
    fn new(plan: &ScanPlan) -> Result<Self> {
        let ctx = scan_session(plan.batch_size);
        let url = ObjectStoreUrl::parse(STORE_URL).map_err(from_datafusion)?;
        ctx.runtime_env()
            .register_object_store(url.as_ref(), Arc::clone(plan.location.store()));
        let (table_schema, partition_fields) = table_schema(plan);
        let full = Arc::clone(table_schema.table_schema());
        let projection: Vec<usize> = plan
            .scan_schema
            .fields()
            .iter()
            .map(|f| {
                full.index_of(f.name())
                    .map_err(|e| Error::arrow("projecting", e))
            })
            .collect::<Result<_>>()?;
        let (pushed, exact) = match &plan.filter {
            None => (None, None),
            Some(filter) => {
                let sql = filter.to_sql();
                (
                    Some(physical(&ctx, &sql, &full)?),
                    Some(physical(&ctx, &sql, &plan.scan_schema)?),
                )
            }
        };
        let footers = PlannedFooters::of(plan);
        Ok(FileScans {
            ctx,
            url,
            table_schema,
            footers,
            projection,
            pushed,
            exact,
            partition_fields,
            batch_size: plan.batch_size,
        })
    }

    /// The physical plan reading one file.
    fn plan_file(&self, file: &ScanFile) -> Result<Arc<dyn ExecutionPlan>> {
        let partitioned = partitioned_file(file, &self.partition_fields)?;
        let mut source = parquet_source(
            &self.ctx.copied_config().options().execution.parquet,
            &self.table_schema,
            &self.footers,
        );
        if let Some(pushed) = &self.pushed {
            source = source.with_predicate(Arc::clone(pushed));
        }
        let config = FileScanConfigBuilder::new(self.url.clone(), Arc::new(source))
            .with_file(partitioned)
            .with_projection_indices(Some(self.projection.clone()))
            .map_err(from_datafusion)?
            .with_batch_size(Some(self.batch_size))
            .build();
        let scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        Ok(match &self.exact {
            None => scan,
            Some(exact) => {
                Arc::new(FilterExec::try_new(Arc::clone(exact), scan).map_err(from_datafusion)?)
            }
        })
    }
}

/// One planned file for DataFusion: its partition values (typed as the plan's partition
/// fields) and its planned row groups as an access plan.
pub(crate) fn partitioned_file(
    file: &ScanFile,
    partition_fields: &[FieldRef],
) -> Result<PartitionedFile> {
    let mut access = ParquetAccessPlan::new_none(file.meta.num_row_groups);
    for &rg in &file.row_groups {
        access.scan(rg);
    }
    let partition_values = partition_fields
        .iter()
        .map(|field| -> Result<DfScalar> {
            let array = match file.partition.get(field.name()) {
                Some(value) => repeat_value(value, 1)?,
                None => arrow::array::new_null_array(field.data_type(), 1),
            };
            DfScalar::try_from_array(&array, 0).map_err(from_datafusion)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(PartitionedFile::new_from_meta(object_store::ObjectMeta {
        location: file.meta.file.path.clone(),
        last_modified: chrono_epoch(),
        size: file.meta.file.size,
        e_tag: None,
        version: None,
    })
    .with_partition_values(partition_values)
    .with_extension(access))
}

/// DataFusion's parquet source over `table_schema`, with the session's parquet options
/// (pushdown, page index) and the planned footers.
pub(crate) fn parquet_source(
    parquet: &datafusion::config::ParquetOptions,
    table_schema: &TableSchema,
    footers: &Arc<PlannedFooters>,
) -> ParquetSource {
    ParquetSource::new(table_schema.clone())
        .with_table_parquet_options(datafusion::config::TableParquetOptions {
            global: parquet.clone(),
            ..Default::default()
        })
        .with_parquet_file_reader_factory(Arc::clone(footers) as Arc<dyn ParquetFileReaderFactory>)
}

fn chrono_epoch() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::UNIX_EPOCH
}

/// `sql` (a filter in SQL) as a physical expression over `schema`.
fn physical(ctx: &SessionContext, sql: &str, schema: &SchemaRef) -> Result<Arc<dyn PhysicalExpr>> {
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(from_datafusion)?;
    let expr = ctx
        .parse_sql_expr(sql, &df_schema)
        .map_err(|e| Error::Engine {
            engine: ENGINE.to_string(),
            message: format!("planning the filter {sql}: {e}"),
        })?;
    ctx.create_physical_expr(expr, &df_schema)
        .map_err(from_datafusion)
}

/// Streams the plan's files through DataFusion, [`crate::cores`] files at a time, in plan
/// order, projected to the output columns, with the limit applied.
pub(crate) fn scan(plan: &ScanPlan) -> Result<BatchStream> {
    let scans = Arc::new(FileScans::new(plan)?);
    let output = Arc::clone(&plan.output_schema);
    let location: Location = plan.location.clone();
    let files: Vec<ScanFile> = plan
        .files
        .iter()
        .filter(|f| !f.row_groups.is_empty())
        .cloned()
        .collect();
    let stream = futures::stream::iter(files)
        .map(move |file| {
            let scans = Arc::clone(&scans);
            let describe = location.describe(&file.meta.file.path);
            async move {
                let exec = scans.plan_file(&file)?;
                let task = scans.ctx.task_ctx();
                let (tx, rx) = tokio::sync::mpsc::channel::<Result<arrow::array::RecordBatch>>(2);
                // Each file decodes on its own task, so files in flight use every core.
                tokio::spawn(async move {
                    let mut stream = match exec.execute(0, task) {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = tx.send(Err(file_error(&describe, e))).await;
                            return;
                        }
                    };
                    while let Some(batch) = stream.next().await {
                        let batch = batch.map_err(|e| file_error(&describe, e));
                        let failed = batch.is_err();
                        if tx.send(batch).await.is_err() || failed {
                            return;
                        }
                    }
                });
                Ok::<_, Error>(tokio_stream_of(rx))
            }
        })
        .buffered(crate::cores())
        .try_flatten()
        .map(move |batch| project_to(&batch?, &output))
        .filter(|batch| {
            let keep = !matches!(batch, Ok(b) if b.num_rows() == 0);
            async move { keep }
        })
        .boxed();
    Ok(fsk_core::stream::limit_stream(stream, plan.limit))
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> futures::stream::BoxStream<'static, T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
