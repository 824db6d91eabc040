//! The scan primitive on DuckDB, for datasets on local disk: DuckDB's own parquet reader
//! (`read_parquet` over the files the core's plan kept, `union_by_name` for evolved schemas)
//! with the filter in the `WHERE` clause, which DuckDB pushes into the reader (row-group zone
//! maps, filtered columns decoded first), on every core. Partition values come from the
//! core's plan as typed literals, one `UNION ALL BY NAME` branch per partition folder: DuckDB
//! never parses fsk's hive paths itself.
//!
//! Results leave DuckDB as Arrow through a streaming result stepped chunk by chunk on a
//! blocking thread (duckdb-rs's Arrow iterator panics on a failed fetch; stepping returns
//! the error), so memory stays bounded by a few chunks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::kernels::coalesce::BatchCoalescer;
use arrow::datatypes::SchemaRef;
use duckdb::Connection;
use futures::StreamExt;

use fsk_core::dataset::schema::cast_by_position;
use fsk_core::engine::BatchStream;
use fsk_core::error::{Error, Result};
use fsk_core::expr::{quote_ident, sql_literal};
use fsk_core::plan::scan::ScanPlan;

use crate::{Database, ENGINE, engine_error};

/// Characters DuckDB reads as a glob pattern in a `read_parquet` path.
const GLOB_CHARACTERS: &[char] = &['*', '?', '[', ']', '{', '}'];

pub(crate) fn quote_str(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// One planned file as DuckDB opens it.
pub(crate) struct LocalFile {
    pub(crate) path: PathBuf,
    pub(crate) describe: String,
    /// The partition values as SQL literals, in the plan's partition column order.
    pub(crate) partition: Vec<String>,
    /// The file's columns.
    pub(crate) columns: Vec<String>,
    /// Row ranges `[start, end)` to read when the plan selects some row groups only.
    pub(crate) rows: Option<Vec<(u64, u64)>>,
}

/// Whether DuckDB's parquet reader gives `data_type` exactly (after a cast back to it):
/// flat types DuckDB has; nested, interval-like and half-float columns stay on arrow-rs.
fn duckdb_reads(data_type: &arrow::datatypes::DataType) -> bool {
    use arrow::datatypes::DataType::*;
    matches!(
        data_type,
        Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float32
            | Float64
            | Utf8
            | LargeUtf8
            | Utf8View
            | Binary
            | LargeBinary
            | BinaryView
            | Date32
            | Timestamp(_, _)
            | Decimal128(_, _)
    )
}

/// The planned files as local paths DuckDB may open itself, or `None` when the dataset is
/// not on (unwrapped) local disk or a path would read as a glob.
pub(crate) fn local_files(plan: &ScanPlan) -> Option<Vec<LocalFile>> {
    if !plan
        .scan_schema
        .fields()
        .iter()
        .all(|f| duckdb_reads(f.data_type()))
    {
        return None;
    }
    let mut out = Vec::with_capacity(plan.files.len());
    for file in &plan.files {
        if file.row_groups.is_empty() {
            continue;
        }
        if file.meta.footer_repaired {
            // DuckDB parses footers itself and refuses what fsk repaired.
            return None;
        }
        let path = plan.location.native_local_file(&file.meta.file.relative)?;
        if path.to_str()?.contains(GLOB_CHARACTERS) {
            return None;
        }
        let partition = plan
            .partitions
            .fields
            .iter()
            .map(|field| match file.partition.get(field.name()) {
                Some(value) => sql_literal(value),
                None => sql_literal(&fsk_core::value::ScalarValue::null(field.data_type())),
            })
            .collect();
        // Without a filter the planned row groups are a selection: read exactly those rows.
        let rows = (plan.filter.is_none() && file.row_groups.len() < file.meta.num_row_groups)
            .then(|| {
                file.row_spans()
                    .into_iter()
                    .map(|(start, rows)| (start, start + rows))
                    .collect()
            });
        out.push(LocalFile {
            describe: plan.location.describe(&file.meta.file.path),
            path,
            partition,
            columns: file
                .meta
                .schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
            rows,
        });
    }
    Some(out)
}

/// The query reading `files` for `plan`.
pub(crate) fn scan_sql(plan: &ScanPlan, files: &[LocalFile]) -> String {
    let columns: Vec<String> = plan
        .output_schema
        .fields()
        .iter()
        .map(|f| quote_ident(f.name()))
        .collect();
    let select = if columns.is_empty() {
        "1 AS __none".to_string()
    } else {
        columns.join(", ")
    };
    // Files of one partition folder share their literals: one branch per folder (per file
    // when rows are selected by row group).
    let mut folders: BTreeMap<(Vec<String>, usize), Vec<&LocalFile>> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        let own = if file.rows.is_some() { i + 1 } else { 0 };
        folders
            .entry((file.partition.clone(), own))
            .or_default()
            .push(file);
    }
    let partition_names: Vec<&str> = plan
        .partitions
        .fields
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let branches: Vec<String> = folders
        .into_iter()
        .map(|((values, _), files)| {
            let list = files
                .iter()
                .map(|f| quote_str(&f.path.to_string_lossy()))
                .collect::<Vec<_>>()
                .join(", ");
            let mut extra: String = plan
                .partitions
                .fields
                .iter()
                .zip(&values)
                .map(|(field, value)| format!(", {value} AS {}", quote_ident(field.name())))
                .collect();
            // Columns none of these files hold are typed nulls.
            for field in plan.scan_schema.fields() {
                if !partition_names.contains(&field.name().as_str())
                    && !files.iter().any(|f| f.columns.contains(field.name()))
                {
                    extra.push_str(&format!(
                        ", {} AS {}",
                        sql_literal(&fsk_core::value::ScalarValue::null(field.data_type())),
                        quote_ident(field.name())
                    ));
                }
            }
            match files.first().and_then(|f| f.rows.as_ref()) {
                Some(ranges) => {
                    let within = ranges
                        .iter()
                        .map(|(a, b)| format!("(file_row_number >= {a} AND file_row_number < {b})"))
                        .collect::<Vec<_>>()
                        .join(" OR ");
                    format!(
                        "SELECT * EXCLUDE (file_row_number){extra} FROM read_parquet([{list}], \
                         file_row_number = true, hive_partitioning = false) WHERE {within}"
                    )
                }
                None => format!(
                    "SELECT *{extra} FROM read_parquet([{list}], union_by_name = true, \
                     hive_partitioning = false)"
                ),
            }
        })
        .collect();
    let from = branches.join(" UNION ALL BY NAME ");
    let filter = plan
        .filter
        .as_ref()
        .map(|f| format!(" WHERE {}", f.to_sql()))
        .unwrap_or_default();
    let limit = plan
        .limit
        .map(|l| format!(" LIMIT {l}"))
        .unwrap_or_default();
    format!("SELECT {select} FROM ({from}){filter}{limit}")
}

/// Whether a DuckDB error is about the bytes of a file (not memory, not the query).
pub(crate) fn is_data_error(message: &str) -> bool {
    !message.contains("Out of Memory")
        && [
            "Invalid Error",
            "Invalid Input Error",
            "IO Error",
            "TProtocolException",
            "corrupt",
        ]
        .iter()
        .any(|m| message.contains(m))
}

/// Reads `file` alone to the end on `conn`: the error if it fails.
fn probe(conn: &Connection, file: &LocalFile) -> Option<duckdb::Error> {
    let sql = format!(
        "SELECT * FROM read_parquet([{}], hive_partitioning = false)",
        quote_str(&file.path.to_string_lossy())
    );
    let mut statement = match conn.prepare(&sql) {
        Ok(s) => s,
        Err(e) => return Some(e),
    };
    if let Err(e) = statement.stream_arrow([]) {
        return Some(e);
    }
    loop {
        match statement.step() {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
    }
}

/// A DuckDB error while reading, typed: a data error is a corrupt file naming the file at
/// fault (named by DuckDB, the only file, or found by reading each file alone); anything
/// else an engine error.
pub(crate) fn read_error(
    conn: &Connection,
    files: &[LocalFile],
    context: &str,
    err: duckdb::Error,
) -> Error {
    let message = err.to_string();
    if is_data_error(&message) {
        let named = files
            .iter()
            .find(|f| message.contains(&*f.path.to_string_lossy()));
        let culprit = match (named, files) {
            (Some(file), _) => Some(file),
            (None, [only]) => Some(only),
            (None, _) => files.iter().find(|f| probe(conn, f).is_some()),
        };
        if let Some(file) = culprit {
            return Error::CorruptFile {
                path: file.describe.clone(),
                message: format!("DuckDB: {message}"),
            };
        }
    }
    engine_error(context, message)
}

/// Runs `sql` and sends its rows, cast to `schema`, into `tx` in batches of `batch_size` rows
/// (DuckDB's result chunks hold 2048 rows; fewer, larger batches cost less downstream).
fn run(
    db: &Database,
    sql: &str,
    files: &[LocalFile],
    schema: &SchemaRef,
    batch_size: usize,
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch>>,
) -> Result<()> {
    let conn = db.connect()?;
    let mut statement = conn
        .prepare(sql)
        .map_err(|e| read_error(&conn, files, &format!("planning {sql}"), e))?;
    // Execute as a streaming result, then step it ourselves.
    drop(
        statement
            .stream_arrow([])
            .map_err(|e| read_error(&conn, files, &format!("running {sql}"), e))?,
    );
    send_results(
        &statement,
        schema,
        batch_size,
        tx,
        |chunk| cast_by_position(&chunk, schema),
        |e| read_error(&conn, files, "fetching a result chunk", e),
    )
}

/// Steps an executed streaming `statement` to its end, sending its rows into `tx` as batches
/// of `batch_size` rows of `schema` (DuckDB's result chunks hold 2048 rows; fewer, larger
/// batches cost less downstream), each chunk passed through `convert` first. Stops quietly
/// when the reader went away.
pub(crate) fn send_results(
    statement: &duckdb::Statement<'_>,
    schema: &SchemaRef,
    batch_size: usize,
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch>>,
    convert: impl Fn(RecordBatch) -> Result<RecordBatch>,
    fail: impl Fn(duckdb::Error) -> Error,
) -> Result<()> {
    let coalesce_error = |e| Error::arrow("coalescing DuckDB's result chunks", e);
    let mut coalescer = BatchCoalescer::new(Arc::clone(schema), batch_size.max(1));
    loop {
        let done = match statement.step().map_err(&fail)? {
            Some(chunk) => {
                let batch = convert(RecordBatch::from(&chunk))?;
                coalescer.push_batch(batch).map_err(coalesce_error)?;
                false
            }
            None => {
                coalescer.finish_buffered_batch().map_err(coalesce_error)?;
                true
            }
        };
        while let Some(batch) = coalescer.next_completed_batch() {
            if batch.num_rows() > 0 && tx.blocking_send(Ok(batch)).is_err() {
                return Ok(());
            }
        }
        if done {
            return Ok(());
        }
    }
}

/// Streams the plan's rows read by DuckDB, or `None` when DuckDB cannot open the files
/// itself (see [`local_files`]).
pub(crate) fn scan(db: &Arc<Database>, plan: &ScanPlan) -> Option<BatchStream> {
    let files = local_files(plan)?;
    if files.is_empty() {
        return Some(futures::stream::empty().boxed());
    }
    let sql = scan_sql(plan, &files);
    tracing::debug!(%sql, "DuckDB scan");
    let schema = Arc::clone(&plan.output_schema);
    let batch_size = plan.batch_size;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
    let db = Arc::clone(db);
    tokio::task::spawn_blocking(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&db, &sql, &files, &schema, batch_size, &tx)
        }));
        let error = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(_) => Error::Engine {
                engine: ENGINE.to_string(),
                message: format!("DuckDB panicked running {sql}"),
            },
        };
        let _ = tx.blocking_send(Err(error));
    });
    Some(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed())
}
