//! Read planning and the pruned, projected scan that engines consume.
//!
//! Planning lists the files, infers the hive layout, binds the filter, prunes files by
//! partition values and then by footer statistics, and decides which columns to fetch. The
//! scan streams the surviving row groups of the surviving files, fetching only the needed
//! column chunks, and appends partition columns as typed columns. Filtering the rows and
//! applying the limit is the engine's job.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Field, Schema, SchemaRef};
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter,
};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};

use crate::backend::{BatchStream, ReadOptions};
use crate::error::{Error, Result};
use crate::filter::{BoundPredicate, Predicate};
use crate::footer::{FileMeta, object_reader, read_footer, read_footers, row_group_stats};
use crate::listing::{self, DataFile};
use crate::partition::{PartitionSchema, repeat_value};
use crate::schema::unify;
use crate::storage::Location;
use crate::value::ScalarValue;

/// Default rows per batch.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

/// One file to scan.
#[derive(Clone, Debug)]
pub struct ScanFile {
    /// The footer.
    pub meta: FileMeta,
    /// Typed partition values.
    pub partition: HashMap<String, ScalarValue>,
    /// Row groups to read (after statistics pruning).
    pub row_groups: Vec<usize>,
}

impl ScanFile {
    /// The planned row groups as `(position of their first row in the file, rows)`, in the
    /// order of [`ScanFile::row_groups`].
    pub fn row_spans(&self) -> std::collections::VecDeque<(u64, u64)> {
        let metadata = self.meta.metadata();
        let mut starts = Vec::with_capacity(metadata.num_row_groups());
        let mut next = 0u64;
        for rg in metadata.row_groups() {
            starts.push(next);
            next += rg.num_rows().max(0) as u64;
        }
        self.row_groups
            .iter()
            .map(|&rg| (starts[rg], metadata.row_group(rg).num_rows().max(0) as u64))
            .collect()
    }
}

/// A planned read.
#[derive(Clone, Debug)]
pub struct ScanPlan {
    /// The dataset.
    pub location: Location,
    /// Files that survived pruning, in path order.
    pub files: Vec<ScanFile>,
    /// The partition layout.
    pub partitions: PartitionSchema,
    /// Every column of the dataset: data columns then partition columns.
    pub dataset_schema: SchemaRef,
    /// The columns the caller asked for, in order.
    pub output_schema: SchemaRef,
    /// The columns the scan yields: the output columns plus the filter's, in dataset order.
    pub scan_schema: SchemaRef,
    /// The bound filter, if any.
    pub filter: Option<BoundPredicate>,
    /// The filter as given.
    pub filter_text: Option<String>,
    /// The row limit.
    pub limit: Option<usize>,
    /// Rows per batch.
    pub batch_size: usize,
    /// Files listed.
    pub files_considered: usize,
    /// Files pruned by partition values.
    pub files_pruned_by_partition: usize,
    /// Files pruned by footer statistics.
    pub files_pruned_by_statistics: usize,
    /// Row groups pruned by statistics in the surviving files.
    pub row_groups_pruned: usize,
}

fn bind(text: &str, schema: &Schema) -> Result<BoundPredicate> {
    Predicate::parse(text)?.bind(text, schema)
}

/// Plans a read.
pub async fn plan_scan(location: &Location, options: &ReadOptions) -> Result<ScanPlan> {
    if options.batch_size == Some(0) {
        return Err(Error::invalid_argument(
            "batch_size",
            0,
            "must be greater than 0",
        ));
    }
    let files = listing::data_files(location).await?;
    if files.is_empty() {
        return Err(Error::NoDataFiles {
            path: location.to_string(),
            criteria: "*.parquet, ignoring names starting with _ or .".to_string(),
        });
    }
    let files_considered = files.len();
    let layouts: Vec<_> = files.iter().map(|f| f.partition.clone()).collect();
    let partitions = PartitionSchema::infer(&layouts, &options.partition_types);
    let partition_values: Vec<HashMap<String, ScalarValue>> = files
        .iter()
        .map(|f| partitions.values_of(&f.partition))
        .collect::<Result<_>>()?;

    // Partition pruning needs a bound filter, which needs a schema: the first file's footer
    // gives it (and is reused, not read again).
    let first = read_footer(location, files[0].clone()).await?;
    let mut survivors: Vec<(DataFile, HashMap<String, ScalarValue>)> = Vec::new();
    let mut files_pruned_by_partition = 0;
    let provisional = options
        .filter
        .as_deref()
        .map(|text| bind(text, &partitions.extend(&first.schema)))
        .transpose()?;
    for (file, values) in files.into_iter().zip(partition_values) {
        if let Some(filter) = &provisional
            && !partitions.is_empty()
            && !filter.may_match_partition(&values)
        {
            files_pruned_by_partition += 1;
            continue;
        }
        survivors.push((file, values));
    }

    // Footers of the survivors (the first one is already read).
    let (first_file, rest): (Vec<_>, Vec<_>) = survivors
        .iter()
        .map(|(f, _)| f.clone())
        .partition(|f| f.relative == first.file.relative);
    let mut metas = Vec::with_capacity(survivors.len());
    if !first_file.is_empty() {
        metas.push(first.clone());
    }
    metas.extend(read_footers(location, rest).await?);
    let mut by_path: HashMap<String, FileMeta> = metas
        .into_iter()
        .map(|m| (m.file.relative.clone(), m))
        .collect();

    // Unify in path order; when partition pruning left nothing, the first footer still gives
    // the schema of the (empty) result.
    let mut ordered: Vec<SchemaRef> = survivors
        .iter()
        .filter_map(|(f, _)| by_path.get(&f.relative).map(|m| Arc::clone(&m.schema)))
        .collect();
    if ordered.is_empty() {
        ordered.push(Arc::clone(&first.schema));
    }
    let file_schema = unify(&ordered)?;
    let dataset_schema = Arc::new(partitions.extend(&file_schema));
    let filter = options
        .filter
        .as_deref()
        .map(|text| bind(text, &dataset_schema))
        .transpose()?;

    let output_schema = match &options.columns {
        None => Arc::clone(&dataset_schema),
        Some(columns) => {
            let mut fields = Vec::with_capacity(columns.len());
            for column in columns {
                let field = dataset_schema
                    .field_with_name(column)
                    .map_err(|_| Error::column_not_found(column, "dataset", &dataset_schema))?;
                if fields.iter().any(|f: &Field| f.name() == column) {
                    return Err(Error::invalid_argument(
                        "columns",
                        column,
                        "a column is selected twice",
                    ));
                }
                fields.push(field.clone());
            }
            Arc::new(Schema::new(fields))
        }
    };
    let mut needed: BTreeSet<String> = output_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    if let Some(filter) = &filter {
        needed.extend(filter.columns());
    }
    let scan_fields: Vec<Field> = dataset_schema
        .fields()
        .iter()
        .filter(|f| needed.contains(f.name()))
        .map(|f| f.as_ref().clone())
        .collect();
    let scan_schema = Arc::new(Schema::new(scan_fields));

    let mut scan_files = Vec::new();
    let mut files_pruned_by_statistics = 0;
    let mut row_groups_pruned = 0;
    let filter_columns = filter.as_ref().map(|f| f.columns()).unwrap_or_default();
    for (file, partition) in survivors {
        let meta = by_path
            .remove(&file.relative)
            .expect("footer read for every survivor");
        let mut row_groups: Vec<usize> = (0..meta.num_row_groups).collect();
        if let Some(filter) = &filter {
            if !filter.may_match_stats(&partition, &meta.column_stats) {
                files_pruned_by_statistics += 1;
                continue;
            }
            let before = row_groups.len();
            row_groups.retain(|&rg| {
                filter.may_match_stats(&partition, &row_group_stats(&meta, rg, &filter_columns))
            });
            row_groups_pruned += before - row_groups.len();
        }
        scan_files.push(ScanFile {
            meta,
            partition,
            row_groups,
        });
    }

    Ok(ScanPlan {
        location: location.clone(),
        files: scan_files,
        partitions,
        dataset_schema,
        output_schema,
        scan_schema,
        filter,
        filter_text: options.filter.clone(),
        limit: options.limit,
        batch_size: options.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
        files_considered,
        files_pruned_by_partition,
        files_pruned_by_statistics,
        row_groups_pruned,
    })
}

/// The scan primitive on the parquet crate's async reader (arrow-rs): the arrow engine's,
/// and the one every engine falls back to where its own reader cannot go.
#[derive(Clone, Copy, Debug, Default)]
pub struct ArrowScanner;

#[async_trait::async_trait]
impl crate::backend::Scanner for ArrowScanner {
    async fn scan(&self, plan: &ScanPlan) -> Result<crate::backend::Scan> {
        Ok(crate::backend::Scan {
            stream: plan.rows(),
            executor: "arrow-rs",
        })
    }
}

/// How many files are opened ahead of the one being consumed.
pub const FILES_IN_FLIGHT: usize = 2;

impl ScanPlan {
    /// Streams batches of [`ScanPlan::scan_schema`], row-group pruned, with the filter
    /// evaluated inside the parquet reader on the file's columns (a `RowFilter`: the filter
    /// columns are decoded first, the others only for surviving rows, using the page index
    /// to skip pages). Rows are exact only for filters on file columns; callers evaluate the
    /// filter again (cheap on the survivors).
    pub fn scan(&self) -> BatchStream {
        let location = self.location.clone();
        let scan_schema = Arc::clone(&self.scan_schema);
        let batch_size = self.batch_size;
        let files = self.files.clone();
        let filter = self.filter.clone();
        futures::stream::iter(files)
            .map(move |file| {
                let location = location.clone();
                let scan_schema = Arc::clone(&scan_schema);
                let filter = filter.clone();
                async move { scan_file(location, file, scan_schema, batch_size, filter).await }
            })
            .buffered(FILES_IN_FLIGHT)
            .try_flatten()
            .boxed()
    }

    /// The plan's rows read by arrow-rs: [`ScanPlan::scan`], the filter evaluated exactly,
    /// projected to the output columns, with the limit applied.
    pub fn rows(&self) -> BatchStream {
        let filter = self.filter.clone();
        let output = Arc::clone(&self.output_schema);
        let filtered = self
            .scan()
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
        limit_stream(filtered, self.limit)
    }

    /// A plan reading `files` (their chosen row groups) whole, in order, as columns
    /// `output_schema` of `dataset_schema` (data columns then `partitions`' columns), with
    /// no filter: how compaction and merge read the files they rewrite.
    pub fn of_files(
        location: &Location,
        files: Vec<ScanFile>,
        partitions: PartitionSchema,
        dataset_schema: SchemaRef,
        output_schema: SchemaRef,
        batch_size: usize,
    ) -> ScanPlan {
        let files_considered = files.len();
        ScanPlan {
            location: location.clone(),
            files,
            partitions,
            scan_schema: Arc::clone(&output_schema),
            dataset_schema,
            output_schema,
            filter: None,
            filter_text: None,
            limit: None,
            batch_size,
            files_considered,
            files_pruned_by_partition: 0,
            files_pruned_by_statistics: 0,
            row_groups_pruned: 0,
        }
    }

    /// The result when there is no filter: the scan projected to the output columns, with
    /// the limit applied.
    pub fn unfiltered(&self) -> crate::backend::Batches {
        let schema = Arc::clone(&self.output_schema);
        let projected = Arc::clone(&schema);
        let stream = self
            .scan()
            .map(move |batch| project_to(&batch?, &projected))
            .boxed();
        crate::backend::Batches::new(schema, limit_stream(stream, self.limit))
    }

    /// The SQL that filters scan batches registered as `table` and projects the output
    /// columns (`None` without a filter). A projection with no columns selects a constant,
    /// so the row count survives.
    pub fn filter_sql(&self, table: &str) -> Option<String> {
        let filter = self.filter.as_ref()?;
        let columns = self
            .output_schema
            .fields()
            .iter()
            .map(|f| crate::filter::quote_ident(f.name()))
            .collect::<Vec<_>>()
            .join(", ");
        let columns = if columns.is_empty() {
            "1 AS __none".to_string()
        } else {
            columns
        };
        Some(format!(
            "SELECT {columns} FROM {table} WHERE {}",
            filter.to_sql()
        ))
    }

    /// Projects a scan batch to the output columns.
    pub fn project(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        project_to(batch, &self.output_schema)
    }
}

/// Takes the columns of `schema` from `batch` by name.
pub fn project_to(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            batch
                .column_by_name(f.name())
                .cloned()
                .ok_or_else(|| Error::column_not_found(f.name(), "scan", &batch.schema()))
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(|e| Error::arrow("projecting columns", e))
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
                return crate::schema::cast_column(column, field);
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
