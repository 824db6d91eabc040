//! The SQL primitive on DataFusion. Each table is a [`TableProvider`] over the core's plan of
//! the dataset (its committed files, their footers, typed partition columns, the unified
//! schema): DataFusion's optimizer pushes the query's filters into it, filters on partition
//! columns drop whole files before anything is opened, and the rest go into DataFusion's
//! parquet reader (row-group statistics from the planned footers, the page index, late
//! materialisation), with a `FilterExec` above for exact results. Parameters bind through
//! DataFusion's `ParamValues`; the session runs under the query's memory budget, spilling
//! sorts, aggregates and joins to the budget's folder. The query may only read: DDL, DML and
//! statements are refused.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::datatypes::{FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, ScalarValue as DfScalar};
use datafusion::datasource::TableType;
use datafusion::datasource::physical_plan::FileScanConfigBuilder;
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::expr_rewriter::unnormalize_col;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use fsk_core::dataset::partition::repeat_value;
use fsk_core::engine::Batches;
use fsk_core::error::{Error, Result, SqlErrorKind};
use fsk_core::plan::scan::{ScanFile, ScanPlan};
use fsk_core::plan::sql::{SqlParam, SqlQuery};

use crate::scan::{PlannedFooters, STORE_URL, parquet_source, partitioned_file};
use crate::{ENGINE, from_datafusion};

/// Runs `query` on a session of its own.
pub(crate) async fn sql(query: &SqlQuery) -> Result<Batches> {
    let ctx = sql_session(query)?;
    for (i, table) in query.tables.iter().enumerate() {
        // Each table's store under its own URL: tables may live in different stores.
        let url = ObjectStoreUrl::parse(format!("{STORE_URL}-{i}")).map_err(from_datafusion)?;
        ctx.runtime_env()
            .register_object_store(url.as_ref(), Arc::clone(table.scan.location.store()));
        let provider = FskTable::new(table.name.clone(), table.scan.clone(), url);
        ctx.register_table(table.name.as_str(), Arc::new(provider))
            .map_err(classify)?;
    }
    let text = numbered_placeholders(&query.sql)?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let mut frame = ctx
        .sql_with_options(&text, options)
        .await
        .map_err(classify)?;
    if !query.params.is_empty() {
        let values: Vec<DfScalar> = query
            .params
            .iter()
            .map(param_value)
            .collect::<Result<_>>()?;
        frame = frame.with_param_values(values).map_err(classify)?;
    }
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let stream = frame.execute_stream().await.map_err(classify)?;
    let tables = Arc::new(query.tables.clone());
    let stream = stream
        .then(move |batch| {
            // The session lives as long as the stream.
            let _ = &ctx;
            let tables = Arc::clone(&tables);
            async move {
                match batch {
                    Ok(batch) => Ok(batch),
                    Err(e) => Err(name_the_file(classify(e), &tables).await),
                }
            }
        })
        .boxed();
    Ok(Batches::new(schema, stream))
}

/// A read error DataFusion raised without naming the file: each table is read again with
/// fsk's DataFusion scan, which names the file at fault (as a corrupt file or a store
/// error); other errors are returned as they are.
async fn name_the_file(err: Error, tables: &[fsk_core::plan::sql::SqlTable]) -> Error {
    if !matches!(
        err,
        Error::Sql {
            kind: SqlErrorKind::Io,
            ..
        }
    ) {
        return err;
    }
    for table in tables {
        let Ok(mut stream) = crate::scan::scan(&table.scan) else {
            continue;
        };
        while let Some(batch) = stream.next().await {
            match batch {
                Ok(_) => {}
                Err(
                    named @ (Error::CorruptFile { .. }
                    | Error::Storage { .. }
                    | Error::Parquet { .. }),
                ) => return named,
                Err(_) => break,
            }
        }
    }
    err
}

/// A session for one query: DataFusion's parquet reader with pushdown and the page index,
/// every core, and the query's memory budget with spilling to its folder.
fn sql_session(query: &SqlQuery) -> Result<SessionContext> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(query.memory.bytes)))
        .with_disk_manager_builder(
            DiskManagerBuilder::default()
                .with_mode(DiskManagerMode::Directories(vec![query.memory.spill_dir()])),
        )
        .build_arc()
        .map_err(from_datafusion)?;
    let mut config = crate::scan::reader_config(
        SessionConfig::new()
            .with_target_partitions(crate::cores())
            .with_information_schema(true),
    );
    config.options_mut().execution.sort_spill_reservation_bytes =
        (query.memory.bytes / 4).min(10 << 20);
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// A parameter as DataFusion's scalar.
fn param_value(param: &SqlParam) -> Result<DfScalar> {
    let array: ArrayRef = param.to_array();
    DfScalar::try_from_array(&array, 0).map_err(from_datafusion)
}

/// The query with each `?` placeholder numbered (`$1`, `$2`, ... in order), which is how
/// DataFusion binds positional parameters. Only placeholder tokens change: a `?` inside a
/// string or an identifier stays. Mixing `?` and `$n` is an error.
fn numbered_placeholders(sql: &str) -> Result<String> {
    let dialect = GenericDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize_with_location() else {
        // DataFusion's parser reports the syntax error itself.
        return Ok(sql.to_string());
    };
    let mut questions = Vec::new();
    let mut numbered = false;
    for token in &tokens {
        if let Token::Placeholder(p) = &token.token {
            if p == "?" {
                questions.push((token.span.start.line, token.span.start.column));
            } else if p.starts_with('$') {
                numbered = true;
            }
        }
    }
    if questions.is_empty() {
        return Ok(sql.to_string());
    }
    if numbered {
        return Err(Error::invalid_argument(
            "query",
            sql,
            "use either ? or $1, $2, ... placeholders, not both",
        ));
    }
    let mut out = String::with_capacity(sql.len() + questions.len() * 2);
    let (mut line, mut column) = (1u64, 1u64);
    let mut next = 0;
    for c in sql.chars() {
        if next < questions.len() && questions[next] == (line, column) && c == '?' {
            next += 1;
            out.push_str(&format!("${next}"));
        } else {
            out.push(c);
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    Ok(out)
}

/// A DataFusion error as fsk's [`Error::Sql`], keeping DataFusion's category; errors from
/// fsk's own scan (a corrupt file, a store error) keep their type.
fn classify(err: DataFusionError) -> Error {
    let sql = |kind: SqlErrorKind, at: Option<String>, message: String| Error::Sql {
        engine: ENGINE.to_string(),
        kind,
        at,
        message,
    };
    match err {
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            classify(*inner)
        }
        DataFusionError::Shared(shared) => match Arc::try_unwrap(shared) {
            Ok(inner) => classify(inner),
            // Shared by several partitions (a repartition, a join's build side): classified
            // by its root cause, which cannot be moved out.
            Err(shared) => {
                let root = shared.find_root();
                let kind = match root {
                    DataFusionError::ResourcesExhausted(_) => SqlErrorKind::OutOfMemory,
                    DataFusionError::ParquetError(_)
                    | DataFusionError::ObjectStore(_)
                    | DataFusionError::IoError(_) => SqlErrorKind::Io,
                    DataFusionError::External(e)
                        if e.downcast_ref::<Error>().is_some_and(|f| {
                            matches!(
                                f,
                                Error::CorruptFile { .. }
                                    | Error::Storage { .. }
                                    | Error::Parquet { .. }
                            )
                        }) =>
                    {
                        SqlErrorKind::Io
                    }
                    _ => SqlErrorKind::Execution,
                };
                sql(kind, None, root.to_string())
            }
        },
        DataFusionError::External(inner) => match inner.downcast::<Error>() {
            Ok(fsk) => *fsk,
            Err(other) => sql(SqlErrorKind::Execution, None, other.to_string()),
        },
        DataFusionError::SQL(e, _) => sql(SqlErrorKind::Syntax, None, e.to_string()),
        DataFusionError::SchemaError(e, _) => {
            let message = e.to_string();
            let kind = match e.as_ref() {
                datafusion::common::SchemaError::FieldNotFound { .. } => {
                    SqlErrorKind::UnknownColumn
                }
                _ => SqlErrorKind::Type,
            };
            let at = match e.as_ref() {
                datafusion::common::SchemaError::FieldNotFound { field, .. } => {
                    Some(field.name().to_string())
                }
                _ => None,
            };
            sql(kind, at, message)
        }
        DataFusionError::ResourcesExhausted(message) => {
            sql(SqlErrorKind::OutOfMemory, None, message)
        }
        DataFusionError::ParquetError(e) => sql(SqlErrorKind::Io, None, e.to_string()),
        DataFusionError::ObjectStore(e) => sql(SqlErrorKind::Io, None, e.to_string()),
        DataFusionError::IoError(e) => sql(SqlErrorKind::Io, None, e.to_string()),
        DataFusionError::Plan(message) => {
            let lower = message.to_ascii_lowercase();
            if let Some(table) = unknown_table(&message) {
                sql(SqlErrorKind::UnknownTable, Some(table), message)
            } else if lower.contains("coerc")
                || lower.contains("cannot infer")
                || lower.contains("type")
                || lower.contains("no function matches")
                || lower.contains("not supported for")
            {
                sql(SqlErrorKind::Type, None, message)
            } else {
                sql(SqlErrorKind::Syntax, None, message)
            }
        }
        DataFusionError::NotImplemented(message) => sql(SqlErrorKind::Syntax, None, message),
        DataFusionError::ArrowError(e, _) => {
            let kind = match e.as_ref() {
                arrow::error::ArrowError::ParquetError(_)
                | arrow::error::ArrowError::IoError(..) => SqlErrorKind::Io,
                _ => SqlErrorKind::Execution,
            };
            sql(kind, None, e.to_string())
        }
        other => sql(SqlErrorKind::Execution, None, other.to_string()),
    }
}

/// The table of DataFusion's "table '...' not found", without the catalog and schema.
fn unknown_table(message: &str) -> Option<String> {
    let start = message.find("table '")? + "table '".len();
    let rest = &message[start..];
    let end = rest.find('\'')?;
    if !rest[end..].contains("not found") {
        return None;
    }
    let name = &rest[..end];
    Some(name.rsplit('.').next().unwrap_or(name).to_string())
}

/// A dataset as a DataFusion table, over the core's full scan plan of it.
#[derive(Debug)]
struct FskTable {
    name: String,
    plan: ScanPlan,
    url: ObjectStoreUrl,
    footers: Arc<PlannedFooters>,
    table_schema: TableSchema,
    partition_fields: Vec<FieldRef>,
}

impl FskTable {
    fn new(name: String, plan: ScanPlan, url: ObjectStoreUrl) -> Self {
        let (table_schema, partition_fields) = crate::scan::table_schema(&plan);
        let footers = PlannedFooters::of(&plan);
        FskTable {
            name,
            plan,
            url,
            footers,
            table_schema,
            partition_fields,
        }
    }

    fn partition_names(&self) -> HashSet<&str> {
        self.partition_fields
            .iter()
            .map(|f| f.name().as_str())
            .collect()
    }

    /// The files whose partition values may satisfy `filters` (those that refer to
    /// partition columns only), evaluated by DataFusion on one row of values per file.
    fn files_after_partition_filters(
        &self,
        state: &dyn Session,
        filters: &[Expr],
    ) -> datafusion::common::Result<Vec<&ScanFile>> {
        let names = self.partition_names();
        let on_partitions: Vec<Expr> = filters
            .iter()
            .filter(|f| {
                let columns = f.column_refs();
                !columns.is_empty() && columns.iter().all(|c| names.contains(c.name.as_str()))
            })
            .map(|f| unnormalize_col(f.clone()))
            .collect();
        let files: Vec<&ScanFile> = self.plan.files.iter().collect();
        let Some(predicate) = conjunction(on_partitions) else {
            return Ok(files);
        };
        if files.is_empty() {
            return Ok(files);
        }
        let schema = Arc::new(Schema::new(self.partition_fields.clone()));
        let columns = self
            .partition_fields
            .iter()
            .map(|field| {
                let values = files
                    .iter()
                    .map(|file| match file.partition.get(field.name()) {
                        Some(value) => repeat_value(value, 1),
                        None => Ok(arrow::array::new_null_array(field.data_type(), 1)),
                    })
                    .collect::<Result<Vec<_>>>()
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                let refs: Vec<&dyn arrow::array::Array> =
                    values.iter().map(|a| a.as_ref()).collect();
                Ok(arrow::compute::concat(&refs)?)
            })
            .collect::<datafusion::common::Result<Vec<ArrayRef>>>()?;
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
        let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
        let physical = state.create_physical_expr(predicate, &df_schema)?;
        let mask = physical.evaluate(&batch)?.into_array(batch.num_rows())?;
        let mask = mask
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| DataFusionError::Internal("a partition filter is not boolean".into()))?
            .clone();
        Ok(files
            .into_iter()
            .enumerate()
            .filter(|(i, _)| mask.is_valid(*i) && mask.value(*i))
            .map(|(_, f)| f)
            .collect())
    }
}

#[async_trait]
impl TableProvider for FskTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(self.table_schema.table_schema())
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::common::Result<Vec<TableProviderFilterPushDown>> {
        // Every filter prunes (partitions, statistics, pages) and is then applied again
        // exactly above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let files = self.files_after_partition_filters(state, filters)?;
        tracing::debug!(
            table = %self.name,
            files = files.len(),
            of = self.plan.files.len(),
            "DataFusion SQL scan after partition pruning"
        );
        let full = Arc::clone(self.table_schema.table_schema());
        if files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(full.project(p)?),
                None => full,
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let mut source = parquet_source(
            &state.config_options().execution.parquet,
            &self.table_schema,
            &self.footers,
        );
        if let Some(predicate) = conjunction(filters.iter().cloned().map(unnormalize_col)) {
            let df_schema = DFSchema::try_from(full.as_ref().clone())?;
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        // Files are independent: spread them over the cores, in path order per group.
        let groups = crate::cores().max(1).min(files.len());
        let mut file_groups: Vec<Vec<datafusion::datasource::listing::PartitionedFile>> =
            vec![Vec::new(); groups];
        for (i, file) in files.iter().enumerate() {
            let partitioned = partitioned_file(file, &self.partition_fields)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            file_groups[i * groups / files.len()].push(partitioned);
        }
        let config = FileScanConfigBuilder::new(self.url.clone(), Arc::new(source))
            .with_file_groups(file_groups.into_iter().map(Into::into).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_marks_are_numbered_outside_strings() {
        assert_eq!(
            numbered_placeholders("SELECT * FROM t WHERE a = ? AND b = '?' AND c > ?").unwrap(),
            "SELECT * FROM t WHERE a = $1 AND b = '?' AND c > $2"
        );
        assert_eq!(
            numbered_placeholders("SELECT ?\n, ?").unwrap(),
            "SELECT $1\n, $2"
        );
        assert_eq!(numbered_placeholders("SELECT $1").unwrap(), "SELECT $1");
        assert!(numbered_placeholders("SELECT ?, $1").is_err());
    }

    #[test]
    fn unknown_tables_are_named() {
        assert_eq!(
            unknown_table("table 'datafusion.public.nope' not found").as_deref(),
            Some("nope")
        );
        assert_eq!(unknown_table("something else"), None);
    }
}
