//! The SQL primitive on DuckDB. Each table is a view over DuckDB's `read_parquet` of the
//! core's planned files (the committed files only, never a glob), one branch per partition
//! folder with the typed partition values as constants, so DuckDB's optimizer drops the
//! folders a filter on partition columns rules out, and pushes the other filters into its
//! parquet reader (row-group statistics). A dataset DuckDB cannot open itself (on an object
//! store: no httpfs offline; or with types its reader does not give back exactly) is streamed
//! by fsk-arrow's reader into a DuckDB table first, which DuckDB then queries without pruning.
//! Parameters bind through DuckDB's prepared statements (`?` and `$1` both work). The
//! connection runs under the query's memory budget (`memory_limit`, spilling to
//! `temp_directory`).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use duckdb::Connection;
use duckdb::types::{TimeUnit, Value};
use futures::StreamExt;

use fsk_core::engine::Batches;
use fsk_core::error::{Error, Result, SqlErrorKind};
use fsk_core::expr::quote_ident;
use fsk_core::plan::sql::{SqlParam, SqlQuery};

use crate::ENGINE;
use crate::scan::{LocalFile, local_files, read_error, scan_sql, send_results};

/// Rows per batch of the result.
const BATCH_ROWS: usize = 8192;

/// Runs `query` on a database of its own.
pub(crate) async fn sql(query: &SqlQuery) -> Result<Batches> {
    let query = query.clone();
    let handle = tokio::runtime::Handle::current();
    let (schema_tx, schema_rx) = tokio::sync::oneshot::channel::<Result<SchemaRef>>();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
    tokio::task::spawn_blocking(move || {
        let mut schema_tx = Some(schema_tx);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&query, &handle, &mut schema_tx, &tx)
        }));
        let error = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(_) => Error::Engine {
                engine: ENGINE.to_string(),
                message: format!("DuckDB panicked running {}", query.sql),
            },
        };
        match schema_tx.take() {
            Some(schema_tx) => {
                let _ = schema_tx.send(Err(error));
            }
            None => {
                let _ = tx.blocking_send(Err(error));
            }
        }
    });
    let schema = schema_rx
        .await
        .map_err(|_| Error::Internal("the DuckDB query ended without a result".into()))??;
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
    Ok(Batches::new(schema, stream))
}

/// Registers the tables, runs the query, sends the result schema into `schema_tx` (taken)
/// and the rows into `tx`.
fn run(
    query: &SqlQuery,
    handle: &tokio::runtime::Handle,
    schema_tx: &mut Option<tokio::sync::oneshot::Sender<Result<SchemaRef>>>,
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch>>,
) -> Result<()> {
    // One database: DuckDB's parser counts the statements on it, then the query runs in it.
    let database =
        crate::statements::Database::open().map_err(|e| setup_error("opening DuckDB", e))?;
    // Refused before anything is registered or run.
    only_a_query(&database, &query.sql)?;
    let conn = database
        .connect()
        .map_err(|e| setup_error("opening DuckDB", e))?;
    conn.execute_batch(&crate::sort::budget_settings(&query.memory))
        .map_err(|e| setup_error("configuring DuckDB", e))?;
    let mut all_files: Vec<LocalFile> = Vec::new();
    for table in &query.tables {
        let name = quote_ident(&table.name);
        match local_files(&table.scan) {
            Some(files) if !files.is_empty() => {
                let select = scan_sql(&table.scan, &files);
                conn.execute_batch(&format!("CREATE TEMP VIEW {name} AS {select}"))
                    .map_err(|e| setup_error(&format!("registering table {}", table.name), e))?;
                all_files.extend(files);
            }
            _ => {
                // Streamed in by fsk-arrow's reader (spilling to temp_directory past
                // memory_limit), then queried.
                conn.register_table_function::<duckdb::vtab::arrow::ArrowVTab>("arrow")
                    .or_else(|e| {
                        if e.to_string().contains("already exists") {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|e| setup_error("registering the arrow table function", e))?;
                let mut stream = fsk_arrow::scan::rows(&table.scan);
                crate::append_stream(
                    &conn,
                    &table.name,
                    &table.scan.output_schema,
                    &mut stream,
                    handle,
                )?;
            }
        }
    }
    let fail = |e: duckdb::Error| classify(&conn, &all_files, e);
    let mut statement = conn.prepare(&query.sql).map_err(fail)?;
    let params: Vec<Value> = query.params.iter().map(param_value).collect();
    statement
        .stream_arrow(duckdb::params_from_iter(params))
        .map(drop)
        .map_err(fail)?;
    let schema = statement.schema();
    if let Some(schema_tx) = schema_tx.take() {
        let _ = schema_tx.send(Ok(Arc::clone(&schema)));
    }
    send_results(&statement, &schema, BATCH_ROWS, tx, Ok, fail)
}

/// Refuses anything but one query (DuckDB would run `COPY ... TO`, `ATTACH` or `CREATE` as
/// well): the text must parse, in sqlparser's DuckDB dialect, as exactly one query.
fn only_a_query(database: &crate::statements::Database, sql: &str) -> Result<()> {
    let refuse = |message: String| Error::Sql {
        engine: ENGINE.to_string(),
        kind: SqlErrorKind::Syntax,
        at: None,
        message,
    };
    // DuckDB's own parser first: `prepare` would run all statements but the last.
    match database.statement_count(sql) {
        Ok(1) => {}
        Ok(n) => {
            return Err(refuse(format!(
                "exactly one query can run, DuckDB finds {n} statements"
            )));
        }
        // A text DuckDB cannot parse: `prepare` reports DuckDB's own syntax error.
        Err(_) => return Ok(()),
    }
    let statements =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::DuckDbDialect {}, sql)
            .map_err(|e| refuse(format!("{e} (fsk runs a query only once it parses as one)")))?;
    match statements.as_slice() {
        [sqlparser::ast::Statement::Query(_)] => Ok(()),
        [other] => Err(refuse(format!(
            "only a query can run (SELECT, WITH, VALUES, FROM ...), not {}",
            other
                .to_string()
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        ))),
        _ => Err(refuse(format!(
            "exactly one query can run, found {} statements",
            statements.len()
        ))),
    }
}

/// A parameter as DuckDB's value.
fn param_value(param: &SqlParam) -> Value {
    match param {
        SqlParam::Null => Value::Null,
        SqlParam::Bool(b) => Value::Boolean(*b),
        SqlParam::Int(i) => Value::BigInt(*i),
        SqlParam::Float(x) => Value::Double(*x),
        SqlParam::Str(s) => Value::Text(s.clone()),
        SqlParam::Date(d) => Value::Date32(*d),
        SqlParam::Timestamp(t) => Value::Timestamp(TimeUnit::Microsecond, *t),
    }
}

fn setup_error(context: &str, err: impl std::fmt::Display) -> Error {
    Error::Engine {
        engine: ENGINE.to_string(),
        message: format!("{context}: {err}"),
    }
}

/// A DuckDB error as fsk's: a damaged file is the [`Error::CorruptFile`] naming it; the rest
/// is [`Error::Sql`] with DuckDB's category, read from its message's prefix.
fn classify(conn: &Connection, files: &[LocalFile], err: duckdb::Error) -> Error {
    let message = err.to_string();
    let sql = |kind: SqlErrorKind, at: Option<String>| Error::Sql {
        engine: ENGINE.to_string(),
        kind,
        at,
        message: message.clone(),
    };
    let quoted = |after: &str| {
        let start = message.find(after)? + after.len();
        let rest = message[start..].trim_start();
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        let end = rest.find(['"', ' ', '!']).unwrap_or(rest.len());
        Some(rest[..end].to_string())
    };
    if message.starts_with("Parser Error") {
        return sql(SqlErrorKind::Syntax, None);
    }
    if message.starts_with("Catalog Error") && message.contains("Table with name") {
        return sql(SqlErrorKind::UnknownTable, quoted("Table with name"));
    }
    if message.starts_with("Binder Error") && message.contains("Referenced column") {
        return sql(SqlErrorKind::UnknownColumn, quoted("Referenced column"));
    }
    if message.starts_with("Binder Error")
        && (message.contains("No function matches")
            || message.contains("Cannot compare")
            || message.contains("type"))
        || message.starts_with("Conversion Error")
        || message.starts_with("Mismatch Type Error")
    {
        return sql(SqlErrorKind::Type, None);
    }
    if message.starts_with("Binder Error") || message.starts_with("Catalog Error") {
        return sql(SqlErrorKind::Syntax, None);
    }
    if message.contains("Out of Memory") {
        return sql(SqlErrorKind::OutOfMemory, None);
    }
    // Only a read error is worth finding the file for (by reading the files one by one).
    if !crate::scan::is_data_error(&message) {
        return sql(SqlErrorKind::Execution, None);
    }
    match read_error(conn, files, "running the query", err) {
        named @ Error::CorruptFile { .. } => named,
        _ if message.starts_with("IO Error") => sql(SqlErrorKind::Io, None),
        _ => sql(SqlErrorKind::Execution, None),
    }
}
