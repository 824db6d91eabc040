//! The operations: each plans with the core, executes through the engine's primitives
//! ([`DatasetBackend`]) and commits through the commit protocol. [`Operations`] gives every
//! engine `write`, `read`, `stats`, `merge`, `compact`, `dedup` and `optimize`; [`sql`] runs queries on
//! the engine's SQL primitive.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::dataset::storage::Location;
use crate::engine::DatasetBackend;
use crate::error::Result;
use crate::plan::scan::ReadOptions;
use crate::stream::Batches;
use crate::write::{WriteMode, WriteOptions, WrittenFile};

pub mod compact;
pub mod dedup;
pub mod merge;
pub mod optimize;
pub mod sql;
pub mod stats;
pub mod write;

/// Which code executed each phase of an operation, for its report: the engine's own
/// machinery or the core's arrow-rs code, never a label for work another part did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// What read the data files (`datafusion`, `duckdb`, `arrow-rs`; with a DuckDB filter
    /// over arrow-rs reads on object stores, both), when files were read.
    pub scan: Option<String>,
    /// What matched source keys with the dataset's (merge): `arrow-rs`, the core's hash
    /// index over the row format.
    pub key_match: Option<String>,
    /// What ordered the rows (optimize): the engine's sort primitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// What encoded the files written: `arrow-rs`, the core's parquet writer (names,
    /// splits, statistics and bloom filters stay in the core on every engine).
    pub write: Option<String>,
}

/// What a maintenance operation (dedup, optimize) works on: the footers of the data files
/// in scope, their unified schema and the partition columns.
pub(crate) struct Scope {
    /// Every data file in scope, its footer read.
    pub metas: Vec<crate::dataset::footer::FileMeta>,
    /// The files' unified schema (without partition columns).
    pub file_schema: arrow::datatypes::SchemaRef,
    /// The partition columns, inferred from the folders.
    pub partitions: crate::dataset::partition::PartitionSchema,
    /// The file schema and the partition columns.
    pub dataset_schema: arrow::datatypes::Schema,
}

impl Scope {
    /// The data files of the dataset at `location` under `partition_filter`. A missing or
    /// empty dataset is [`crate::Error::NotFound`]; a filter matching no folder is
    /// [`crate::Error::NoDataFiles`] naming it.
    pub(crate) async fn read(location: &Location, partition_filter: Option<&str>) -> Result<Self> {
        use crate::dataset::listing::{self, Listing};
        let all = match listing::list(location).await? {
            Listing::Dataset(files) if !files.is_empty() => files,
            _ => {
                return Err(crate::Error::NotFound {
                    path: location.to_string(),
                });
            }
        };
        let in_scope = match partition_filter {
            Some(filter) => listing::filter_partitions(all, filter)?,
            None => all,
        };
        if in_scope.is_empty() {
            return Err(crate::Error::NoDataFiles {
                path: location.to_string(),
                criteria: format!("partition_filter={}", partition_filter.unwrap_or_default()),
            });
        }
        let metas = crate::dataset::footer::read_footers(location, in_scope).await?;
        let schemas: Vec<arrow::datatypes::SchemaRef> =
            metas.iter().map(|m| Arc::clone(&m.schema)).collect();
        let file_schema = Arc::new(crate::dataset::schema::unify(&schemas)?);
        let layouts: Vec<_> = metas.iter().map(|m| m.file.partition.clone()).collect();
        let partitions = crate::dataset::partition::PartitionSchema::infer(
            &layouts,
            &std::collections::HashMap::new(),
        );
        let dataset_schema = partitions.extend(&file_schema);
        Ok(Scope {
            metas,
            file_schema,
            partitions,
            dataset_schema,
        })
    }

    /// Fails with [`crate::Error::ColumnNotFound`] (listing the dataset's columns) for the
    /// first of `columns` the dataset does not have.
    pub(crate) fn require<'a>(&self, columns: impl IntoIterator<Item = &'a String>) -> Result<()> {
        for column in columns {
            if self.dataset_schema.field_with_name(column).is_err() {
                return Err(crate::Error::column_not_found(
                    column,
                    "dataset",
                    &self.dataset_schema,
                ));
            }
        }
        Ok(())
    }

    /// `columns` without the partition columns: those stored in the files (a partition
    /// column is constant within a folder).
    pub(crate) fn stored(&self, columns: &[String]) -> Vec<String> {
        let partitions = self.partitions.names();
        columns
            .iter()
            .filter(|c| !partitions.contains(c))
            .cloned()
            .collect()
    }
}

/// What executes key matching on every engine today.
pub const CORE_KEY_MATCH: &str = "arrow-rs";
/// What encodes every file written.
pub const CORE_WRITER: &str = "arrow-rs";

/// The report of a write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteReport {
    /// Files written, paths relative to the dataset root.
    pub files: Vec<WrittenFile>,
    /// Rows written.
    pub total_rows: u64,
    /// `append` or `overwrite`.
    pub mode: WriteMode,
    /// The engine selected.
    pub engine: String,
    /// What executed each phase (a write only encodes: the core's parquet writer).
    pub execution: Execution,
    /// Data files removed (overwrite), relative paths.
    pub removed_files: Vec<String>,
    /// Whether this operation committed changes to the dataset (false for a dry run or when
    /// there was nothing to change). Once true, the changes are durable even if
    /// `cleanup_pending` is set.
    pub committed: bool,
    /// Set when the operation committed but publishing or cleanup failed afterwards: the next
    /// operation or `fsk recover` finishes it. Do not retry the operation (its changes are
    /// already in). The CLI exits with code 3.
    pub cleanup_pending: Option<String>,
    /// Wall time in milliseconds.
    pub elapsed_ms: u64,
}

/// One file of a stats report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStats {
    /// Path relative to the dataset root.
    pub path: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Rows.
    pub num_rows: u64,
}

/// The report of `stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsReport {
    /// Every data file (matching the partition filter), sorted by path.
    pub files: Vec<FileStats>,
    /// Sum of sizes.
    pub total_bytes: u64,
    /// Sum of rows.
    pub total_rows: u64,
}

/// Options of `stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsOptions {
    /// Only files under matching partitions: `col=value[/col=value...]`.
    pub partition_filter: Option<String>,
}

/// The operations, on every engine: planned by the core, executed by the engine's
/// primitives, committed by the commit protocol. Implemented for every [`DatasetBackend`].
#[async_trait]
pub trait Operations: DatasetBackend {
    /// Writes `input` as a dataset at `location`: the shared streaming writer (names,
    /// splits, statistics, bloom filters, staging) and the commit protocol.
    async fn write(
        &self,
        location: &Location,
        input: Batches,
        options: &WriteOptions,
    ) -> Result<WriteReport> {
        write::write_dataset(self.name(), location, input, options).await
    }

    /// Reads a dataset (or one file) as a stream of batches: the core plans, the engine's
    /// [`crate::engine::Scanner`] reads.
    async fn read(&self, location: &Location, options: &ReadOptions) -> Result<Batches> {
        let plan = crate::plan::scan::plan_scan(location, options).await?;
        tracing::debug!(
            engine = self.name(),
            files = plan.files.len(),
            pruned_by_partition = plan.files_pruned_by_partition,
            pruned_by_statistics = plan.files_pruned_by_statistics,
            row_groups_pruned = plan.row_groups_pruned,
            "planned read"
        );
        let scan = self.scanner().scan(&plan).await?;
        let batches = Batches::new(Arc::clone(&plan.output_schema), scan.stream);
        // Without a filter the planned row groups' rows are what the stream holds.
        Ok(match plan.unfiltered_rows() {
            Some(rows) => batches.with_rows_hint(rows),
            None => batches,
        })
    }

    /// Lists data files with sizes and row counts from the footers.
    async fn stats(&self, location: &Location, options: &StatsOptions) -> Result<StatsReport> {
        stats::stats(location, options).await
    }

    /// Merges `source` into the dataset by key, rewriting only the files that hold
    /// affected keys; the engine scans and matches keys.
    async fn merge(
        &self,
        location: &Location,
        source: Batches,
        options: &merge::MergeOptions,
    ) -> Result<merge::MergeReport> {
        let executors = merge::Executors {
            scanner: self.scanner(),
            key_match: self.key_match(),
        };
        merge::merge(self, executors, location, source, options).await
    }

    /// Compacts small files into files near a target size; the engine scans the files it
    /// rewrites.
    async fn compact(
        &self,
        location: &Location,
        options: &compact::CompactOptions,
    ) -> Result<compact::CompactReport> {
        compact::compact(self.name(), self.scanner(), location, options).await
    }

    /// Deduplicates the dataset within each partition folder, by key (the highest
    /// `order_by` stays) or exact rows, rewriting only the files that hold a duplicate; the
    /// engine scans.
    async fn dedup(
        &self,
        location: &Location,
        options: &dedup::DedupOptions,
    ) -> Result<dedup::DedupReport> {
        dedup::dedup(self.name(), self.scanner(), location, options).await
    }

    /// Clusters each partition folder's rows on a space-filling curve over chosen columns
    /// and cuts them into files covering compact boxes; the engine scans and sorts.
    async fn optimize(
        &self,
        location: &Location,
        options: &optimize::OptimizeOptions,
    ) -> Result<optimize::OptimizeReport> {
        optimize::optimize(self, location, options).await
    }
}

impl<T: DatasetBackend + ?Sized> Operations for T {}
