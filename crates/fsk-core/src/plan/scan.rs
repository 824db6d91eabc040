//! Read planning and the pruned, projected scan that engines consume.
//!
//! Planning lists the files, infers the hive layout, binds the filter, prunes files by
//! partition values and then by footer statistics, and decides which columns to fetch. The
//! scan streams the surviving row groups of the surviving files, fetching only the needed
//! column chunks, and appends partition columns as typed columns. Filtering the rows and
//! applying the limit is the engine's job.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::dataset::footer::{FileMeta, read_footer, read_footers, row_group_stats};
use crate::dataset::listing::{self, DataFile};
use crate::dataset::partition::PartitionSchema;
use crate::dataset::schema::unify;
use crate::dataset::storage::Location;
use crate::error::{Error, Result};
use crate::expr::{BoundPredicate, Predicate};
use crate::value::ScalarValue;

/// Options of a read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadOptions {
    /// Columns to return, in this order (`None`: all, data columns then partition columns).
    pub columns: Option<Vec<String>>,
    /// A filter in fsk's predicate language (see [`crate::filter`]).
    pub filter: Option<String>,
    /// At most this many rows, applied after the filter.
    pub limit: Option<usize>,
    /// Types for partition columns, overriding inference.
    pub partition_types: HashMap<String, DataType>,
    /// Rows per batch (default 8192).
    pub batch_size: Option<usize>,
}

impl ReadOptions {
    /// Selects columns.
    pub fn with_columns<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }
    /// Sets a filter.
    pub fn with_filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }
    /// Sets a limit.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
    /// Fixes the type of a partition column.
    pub fn with_partition_type(mut self, column: impl Into<String>, data_type: DataType) -> Self {
        self.partition_types.insert(column.into(), data_type);
        self
    }
}

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
    plan_scan_pruned(location, options, &[]).await
}

/// Plans a read that also skips what `hints` rule out: conditions every row the caller wants
/// meets anyway, because it applies them to the rows itself (a SQL query's `WHERE`
/// conjuncts, which the engine evaluates). They only prune, and whole files only: a hint
/// over partition columns alone drops folders before their footers are read, any other
/// drops files whose footer statistics prove it false. A hint that does not bind to the
/// dataset's columns and types is ignored (the caller reports that). Row groups are left to
/// the caller's reader, and the counts of pruned files include the hints'.
pub async fn plan_scan_pruned(
    location: &Location,
    options: &ReadOptions,
    hints: &[Predicate],
) -> Result<ScanPlan> {
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
    let partition_names = partitions.names();
    let on_partitions = |hint: &&Predicate| {
        let columns = hint.columns();
        !columns.is_empty() && columns.iter().all(|c| partition_names.contains(c))
    };
    let partition_only = Schema::new(partitions.fields.clone());
    let partition_hints: Vec<BoundPredicate> = hints
        .iter()
        .filter(on_partitions)
        .filter_map(|hint| hint.bind("", &partition_only).ok())
        .collect();
    for (file, values) in files.into_iter().zip(partition_values) {
        let ruled_out = provisional
            .as_ref()
            .is_some_and(|filter| !filter.may_match_partition(&values))
            || partition_hints
                .iter()
                .any(|hint| !hint.may_match_partition(&values));
        if !partitions.is_empty() && ruled_out {
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
    let statistics_hints: Vec<BoundPredicate> = hints
        .iter()
        .filter(|hint| !on_partitions(hint))
        .filter_map(|hint| hint.bind("", &dataset_schema).ok())
        .collect();

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
        if statistics_hints
            .iter()
            .any(|hint| !hint.may_match_stats(&partition, &meta.column_stats))
        {
            files_pruned_by_statistics += 1;
            continue;
        }
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

impl ScanPlan {
    /// The rows the plan yields when it has no filter: those of its row groups (capped by
    /// the limit). `None` with a filter (the count is only known once read).
    pub fn unfiltered_rows(&self) -> Option<u64> {
        if self.filter.is_some() {
            return None;
        }
        let rows: u64 = self
            .files
            .iter()
            .map(|f| {
                let meta = f.meta.metadata();
                f.row_groups
                    .iter()
                    .map(|&g| meta.row_group(g).num_rows().max(0) as u64)
                    .sum::<u64>()
            })
            .sum();
        Some(match self.limit {
            Some(limit) => rows.min(limit as u64),
            None => rows,
        })
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

    /// The SQL that filters scan batches registered as `table` and projects the output
    /// columns (`None` without a filter). A projection with no columns selects a constant,
    /// so the row count survives.
    pub fn filter_sql(&self, table: &str) -> Option<String> {
        let filter = self.filter.as_ref()?;
        let columns = self
            .output_schema
            .fields()
            .iter()
            .map(|f| crate::expr::quote_ident(f.name()))
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
}
