//! `fsk-duckdb`: the fsk engine on DuckDB (bundled, no extensions).
//!
//! The core plans (listing, hive typing, footers, partition and statistics pruning); DuckDB
//! executes. On local disk DuckDB reads the planned files with its own parquet reader and
//! the filter pushed down (see `scan.rs`). On object stores, where DuckDB has no reader
//! without the httpfs extension (extensions cannot be downloaded behind firewalls), the
//! fsk-arrow's scan streams the planned row groups into DuckDB, which evaluates the
//! filter. Writes go through the shared writer and commit protocol.

#![deny(clippy::clone_on_ref_ptr)]

mod key_match;
mod scan;
mod sort;
mod sql;
mod statements;

use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use duckdb::Connection;
use futures::StreamExt;

use fsk_core::dataset::schema::cast_by_position;
use fsk_core::engine::{Capabilities, DatasetBackend, Scan, Scanner};
use fsk_core::error::{Error, Result};
use fsk_core::plan::scan::ScanPlan;
use fsk_core::stream::limit_stream;

const ENGINE: &str = "duckdb";

/// The cores this process may use: DuckDB's `threads`.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Creates table `table` of `schema` on `conn` and appends every batch of `stream` into it
/// through the Arrow appender, driving the stream on `handle` (called on a blocking thread).
/// The `arrow` table function must be registered on the database.
pub(crate) fn append_stream(
    conn: &duckdb::Connection,
    table: &str,
    schema: &arrow::datatypes::SchemaRef,
    stream: &mut fsk_core::engine::BatchStream,
    handle: &tokio::runtime::Handle,
) -> Result<()> {
    let empty = arrow::array::RecordBatch::new_empty(Arc::clone(schema));
    conn.execute(
        &format!(
            "CREATE TABLE {} AS SELECT * FROM arrow(?, ?) LIMIT 0",
            fsk_core::expr::quote_ident(table)
        ),
        duckdb::vtab::arrow_recordbatch_to_query_params(empty),
    )
    .map_err(|e| engine_error(&format!("creating table {table}"), e))?;
    let mut appender = conn
        .appender(table)
        .map_err(|e| engine_error("opening the appender", e))?;
    while let Some(batch) = handle.block_on(stream.next()) {
        appender
            .append_record_batch(batch?)
            .map_err(|e| engine_error(&format!("appending to {table}"), e))?;
    }
    appender
        .flush()
        .map_err(|e| engine_error("flushing the appender", e))
}

/// One in-memory DuckDB database, opened on first use, shared by the scans of one operation:
/// each scan runs on its own connection to it, so concurrent scans (a merge rewrites several
/// files at once) share DuckDB's thread pool (`threads` = the cores) and buffer manager instead
/// of each opening a database with a pool of its own.
#[derive(Default)]
pub(crate) struct Database {
    base: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Database")
    }
}

impl Database {
    /// A new connection to the database (opened, with `threads` set, on the first call).
    pub(crate) fn connect(&self) -> Result<Connection> {
        let mut base = self
            .base
            .lock()
            .map_err(|_| Error::Internal("DuckDB database lock poisoned".into()))?;
        if base.is_none() {
            let conn =
                Connection::open_in_memory().map_err(|e| engine_error("opening DuckDB", e))?;
            conn.execute_batch(&format!("SET threads = {}", cores()))
                .map_err(|e| engine_error("configuring DuckDB", e))?;
            *base = Some(conn);
        }
        base.as_ref()
            .expect("opened above")
            .try_clone()
            .map_err(|e| engine_error("connecting to DuckDB", e))
    }
}

/// The DuckDB engine.
#[derive(Clone, Debug, Default)]
pub struct DuckDbBackend {
    _private: (),
}

impl DuckDbBackend {
    /// A new engine. Each operation opens its own in-memory DuckDB database.
    pub fn new() -> Self {
        Self::default()
    }
}

fn engine_error(context: &str, err: impl std::fmt::Display) -> Error {
    Error::Engine {
        engine: ENGINE.to_string(),
        message: format!("{context}: {err}"),
    }
}

/// A DuckDB connection holding one staging table for scan batches.
struct FilterSession {
    conn: Connection,
    select: String,
}

impl FilterSession {
    /// A session for scan batches of `scan_schema`, running `select` (see
    /// [`fsk_core::plan::scan::ScanPlan::filter_sql`]) against the table `scan`.
    fn open(scan_schema: &SchemaRef, select: String) -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(|e| engine_error("opening DuckDB", e))?;
        conn.register_table_function::<duckdb::vtab::arrow::ArrowVTab>("arrow")
            .map_err(|e| engine_error("registering the arrow table function", e))?;
        // The table takes its column types from an empty batch of the scan schema.
        let empty = RecordBatch::new_empty(Arc::clone(scan_schema));
        let params = duckdb::vtab::arrow_recordbatch_to_query_params(empty);
        conn.execute(
            "CREATE TEMP TABLE scan AS SELECT * FROM arrow(?, ?) LIMIT 0",
            params,
        )
        .map_err(|e| engine_error("creating the scan table", e))?;
        Ok(FilterSession { conn, select })
    }

    fn filter(&mut self, batch: RecordBatch, output_schema: &SchemaRef) -> Result<RecordBatch> {
        self.conn
            .execute_batch("DELETE FROM scan")
            .map_err(|e| engine_error("clearing the scan table", e))?;
        {
            let mut appender = self
                .conn
                .appender("scan")
                .map_err(|e| engine_error("opening the appender", e))?;
            appender
                .append_record_batch(batch)
                .map_err(|e| engine_error("appending a batch", e))?;
            appender
                .flush()
                .map_err(|e| engine_error("flushing the appender", e))?;
        }
        let mut statement = self
            .conn
            .prepare(&self.select)
            .map_err(|e| engine_error(&format!("preparing {}", self.select), e))?;
        let results: Vec<RecordBatch> = statement
            .query_arrow([])
            .map_err(|e| engine_error(&format!("running {}", self.select), e))?
            .collect();
        let mut out = Vec::with_capacity(results.len());
        for result in results {
            out.push(cast_by_position(&result, output_schema)?);
        }
        arrow::compute::concat_batches(output_schema, &out)
            .map_err(|e| Error::arrow("concatenating DuckDB results", e))
    }
}

#[async_trait]
impl DatasetBackend for DuckDbBackend {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            scan: "DuckDB (read_parquet with the filter pushed down, on local disk; on object stores arrow-rs reads and DuckDB filters)",
            key_match: "DuckDB (source keys in DuckDB tables, one hash join over read_parquet of the candidate files with file_row_number, under memory_limit, spilling; off local disk arrow-rs reads the keys and DuckDB joins them)",
            sort: "DuckDB (ORDER BY under memory_limit and temp_directory, at least 32 MiB)",
            sql: true,
            ..Capabilities::SHARED
        }
    }

    fn scanner(&self) -> Arc<dyn Scanner> {
        Arc::new(DuckDbScanner::default())
    }

    async fn sql(
        &self,
        query: &fsk_core::plan::sql::SqlQuery,
    ) -> Result<fsk_core::engine::Batches> {
        sql::sql(query).await
    }

    fn key_match(&self) -> Option<Arc<dyn fsk_core::engine::KeyMatch>> {
        Some(Arc::new(key_match::DuckDbKeyMatch))
    }

    async fn sort(
        &self,
        input: fsk_core::engine::Batches,
        keys: &[fsk_core::plan::sort::SortKey],
        budget: &fsk_core::plan::sort::MemoryBudget,
    ) -> Result<fsk_core::engine::Sorted> {
        sort::sort(input, keys, budget).await
    }
}

/// DuckDB's scan primitive: DuckDB's parquet reader on local disk ([`scan`]); elsewhere the
/// fsk-arrow's reader, with DuckDB evaluating the filter.
/// One scanner serves one operation: its scans share one database.
#[derive(Debug, Default)]
struct DuckDbScanner {
    db: Arc<Database>,
}

#[async_trait]
impl Scanner for DuckDbScanner {
    async fn scan(&self, plan: &ScanPlan) -> Result<Scan> {
        if let Some(stream) = scan::scan(&self.db, plan) {
            return Ok(Scan {
                stream,
                executor: ENGINE,
            });
        }
        // Not on local disk: DuckDB has no reader for fsk's object stores offline, so the
        // fsk-arrow's scan streams the planned row groups and DuckDB filters them.
        let Some(select) = plan.filter_sql("scan") else {
            return Ok(Scan {
                stream: fsk_arrow::scan::rows(plan),
                executor: fsk_arrow::scan::EXECUTOR,
            });
        };
        let output_schema = Arc::clone(&plan.output_schema);
        let source = fsk_arrow::scan::scan(plan);
        let scan_schema = Arc::clone(&plan.scan_schema);
        let session =
            tokio::task::spawn_blocking(move || FilterSession::open(&scan_schema, select))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
        let session = Arc::new(Mutex::new(session));
        let schema = Arc::clone(&output_schema);
        let stream = source
            .then(move |batch| {
                let session = Arc::clone(&session);
                let schema = Arc::clone(&schema);
                async move {
                    let batch = batch?;
                    tokio::task::spawn_blocking(move || {
                        let mut session = session
                            .lock()
                            .map_err(|_| Error::Internal("DuckDB session poisoned".into()))?;
                        session.filter(batch, &schema)
                    })
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?
                }
            })
            .filter(|batch| {
                let keep = !matches!(batch, Ok(b) if b.num_rows() == 0);
                async move { keep }
            })
            .boxed();
        Ok(Scan {
            stream: limit_stream(stream, plan.limit),
            executor: "arrow-rs read, duckdb filter",
        })
    }
}
