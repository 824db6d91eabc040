//! The scan primitive on DuckDB, for datasets on local disk: DuckDB's own parquet reader
//! (`read_parquet` over the files the core's plan kept, `union_by_name` for evolved schemas)
//! with the filter in the `WHERE` clause, which DuckDB pushes into the reader (row-group zone
//! maps, filtered columns decoded first), on every core. Where DuckDB's own hive parsing of
//! the paths gives exactly the plan's typed partition values (plain values of the types fsk
//! infers, fixed by `hive_types`), one `read_parquet` reads every file, as DuckDB's glob
//! would; otherwise the values come from the plan as typed literals, one
//! `UNION ALL BY NAME` branch per partition folder.
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
    /// Whether DuckDB's own hive parsing of the path gives exactly the plan's partition
    /// values (see [`hive_exact`]).
    pub(crate) hive: bool,
    /// Whether the file's columns (names, types, order) are the first planned file's.
    pub(crate) same_schema: bool,
}

/// Whether DuckDB, reading `file`'s path with `hive_partitioning = true` and every partition
/// column's type fixed by `hive_types`, finds exactly the plan's values: the path's folders
/// are the partition columns in order (and nothing else of the absolute path holds a `=`),
/// each value written plainly (no escapes, no null, no text DuckDB could read another way)
/// and equal to the typed value's own text, and the file holds no column of the same name.
fn hive_exact(
    plan: &ScanPlan,
    file: &fsk_core::plan::scan::ScanFile,
    path: &std::path::Path,
) -> bool {
    let fields = &plan.partitions.fields;
    let Some(folder) = path.parent() else {
        return false;
    };
    let with_equals = folder
        .components()
        .filter(|c| c.as_os_str().to_string_lossy().contains('='))
        .count();
    let segments: Vec<&str> = file.meta.file.relative.split('/').collect();
    let folders = &segments[..segments.len().saturating_sub(1)];
    with_equals == fields.len()
        && folders.len() == fields.len()
        && folders.iter().zip(fields.iter()).all(|(segment, field)| {
            let Some((name, raw)) = segment.split_once('=') else {
                return false;
            };
            name == field.name()
                && !raw.is_empty()
                && !raw.eq_ignore_ascii_case("null")
                && raw
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
                && hive_type(field.data_type()).is_some()
                && file
                    .partition
                    .get(name)
                    .is_some_and(|value| !value.is_null() && value.to_string() == raw)
                && file.meta.schema.index_of(name).is_err()
        })
}

/// The DuckDB type `hive_types` gives a partition column of `data_type`, for the types fsk
/// infers.
fn hive_type(data_type: &arrow::datatypes::DataType) -> Option<&'static str> {
    use arrow::datatypes::DataType::*;
    match data_type {
        Int64 => Some("BIGINT"),
        Date32 => Some("DATE"),
        Utf8 => Some("VARCHAR"),
        _ => None,
    }
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
        let hive = hive_exact(plan, file, &path);
        let same_schema = plan
            .files
            .first()
            .is_some_and(|first| first.meta.schema.fields() == file.meta.schema.fields());
        out.push(LocalFile {
            describe: plan.location.describe(&file.meta.file.path),
            hive,
            same_schema,
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

/// One `read_parquet` over every file, DuckDB reading the partition values from the paths,
/// when that gives exactly the plan's values (every file [`LocalFile::hive`], no row-group
/// selection): DuckDB then plans one scan over all files, as for its own glob, instead of a
/// branch per folder. `union_by_name` only when the files' schemas differ (it reads every
/// footer while binding). `None` otherwise.
fn single_read(plan: &ScanPlan, files: &[LocalFile]) -> Option<String> {
    if files.is_empty() || files.iter().any(|f| !f.hive || f.rows.is_some()) {
        return None;
    }
    let list = files
        .iter()
        .map(|f| quote_str(&f.path.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(", ");
    let union_by_name = !files.iter().all(|f| f.same_schema);
    let partitioning = if plan.partitions.fields.is_empty() {
        "hive_partitioning = false".to_string()
    } else {
        let types = plan
            .partitions
            .fields
            .iter()
            .map(|f| {
                Some(format!(
                    "{}: {}",
                    quote_str(f.name()),
                    hive_type(f.data_type())?
                ))
            })
            .collect::<Option<Vec<_>>>()?
            .join(", ");
        format!("hive_partitioning = true, hive_types = {{{types}}}")
    };
    Some(format!(
        "SELECT *{} FROM read_parquet([{list}], union_by_name = {union_by_name}, {partitioning})",
        missing_columns(plan, files.iter())
    ))
}

/// `, NULL::type AS name` for each scanned data column none of `files` holds.
fn missing_columns<'a>(
    plan: &ScanPlan,
    files: impl Iterator<Item = &'a LocalFile> + Clone,
) -> String {
    let partition_names: Vec<&str> = plan
        .partitions
        .fields
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let mut extra = String::new();
    for field in plan.scan_schema.fields() {
        if !partition_names.contains(&field.name().as_str())
            && !files.clone().any(|f| f.columns.contains(field.name()))
        {
            extra.push_str(&format!(
                ", {} AS {}",
                sql_literal(&fsk_core::value::ScalarValue::null(field.data_type())),
                quote_ident(field.name())
            ));
        }
    }
    extra
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
    let from = single_read(plan, files).unwrap_or_else(|| folder_branches(plan, files));
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

/// One `read_parquet` branch per partition folder (per file when rows are selected by row
/// group), the folder's typed values as literals, joined by `UNION ALL BY NAME`.
fn folder_branches(plan: &ScanPlan, files: &[LocalFile]) -> String {
    let mut folders: BTreeMap<(Vec<String>, usize), Vec<&LocalFile>> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        let own = if file.rows.is_some() { i + 1 } else { 0 };
        folders
            .entry((file.partition.clone(), own))
            .or_default()
            .push(file);
    }
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
            extra.push_str(&missing_columns(plan, files.iter().copied()));
            let union_by_name = !files.iter().all(|f| f.same_schema);
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
                    "SELECT *{extra} FROM read_parquet([{list}], union_by_name = \
                     {union_by_name}, hive_partitioning = false)"
                ),
            }
        })
        .collect();
    branches.join(" UNION ALL BY NAME ")
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
