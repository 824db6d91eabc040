//! The sort primitive on DuckDB: the input streams into a temporary table through the Arrow
//! appender, and `ORDER BY` runs in DuckDB with `memory_limit` set to the budget and
//! `temp_directory` to the budget's folder, so DuckDB's buffer manager offloads the table
//! and its sort spills beyond the budget. Whether it spilled is read from
//! `duckdb_temporary_files()` once the sort has produced its first chunk.
//!
//! DuckDB's buffer manager pins fixed-size blocks per thread and cannot sort at all below a
//! few tens of MiB (a 12 MiB limit fails with "failed to pin block"), and each sorting thread
//! needs its own share: the limit DuckDB gets is the budget or [`MIN_MEMORY`], whichever is
//! larger, and it sorts with one thread per [`MEMORY_PER_THREAD`] of that limit (at least one,
//! at most the machine's cores). Measured on DuckDB 1.5: 600,000 rows sort at 32 MiB on one
//! thread and need 48 MiB on two.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use duckdb::Connection;
use futures::StreamExt;

use fsk_core::dataset::schema::cast_by_position;
use fsk_core::engine::Batches;
use fsk_core::engine::Sorted;
use fsk_core::error::{Error, Result};
use fsk_core::expr::quote_ident;
use fsk_core::plan::sort::{MemoryBudget, SortKey, validate_keys};

use crate::{ENGINE, engine_error};

/// The smallest `memory_limit` DuckDB is given for a sort: below it DuckDB's buffer manager
/// fails to pin its blocks instead of spilling.
pub(crate) const MIN_MEMORY: usize = 32 << 20;

/// The share of the limit each DuckDB sorting thread needs.
pub(crate) const MEMORY_PER_THREAD: usize = 24 << 20;

/// The `SET` statements that keep a DuckDB connection within `budget`: `memory_limit` (at
/// least [`MIN_MEMORY`]), one thread per [`MEMORY_PER_THREAD`] of it, and `temp_directory`
/// in the budget's folder.
pub(crate) fn budget_settings(budget: &MemoryBudget) -> String {
    let limit = budget.bytes.max(MIN_MEMORY);
    let threads = (limit / MEMORY_PER_THREAD).clamp(1, crate::cores());
    format!(
        "SET threads = {threads}; SET memory_limit = '{limit}B'; SET temp_directory = '{}'; \
         SET preserve_insertion_order = false;",
        budget.spill_dir().display().to_string().replace('\'', "''")
    )
}

/// Sorts `input` by `keys` in DuckDB within `budget`.
pub(crate) async fn sort(
    input: Batches,
    keys: &[SortKey],
    budget: &MemoryBudget,
) -> Result<Sorted> {
    let (schema, mut stream) = input.into_parts();
    validate_keys(&schema, keys)?;
    let order = keys
        .iter()
        .map(|k| {
            format!(
                "{} {} {}",
                quote_ident(&k.column),
                if k.descending { "DESC" } else { "ASC" },
                if k.nulls_first {
                    "NULLS FIRST"
                } else {
                    "NULLS LAST"
                }
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let settings = budget_settings(budget);
    let spills = Arc::new(AtomicU64::new(0));
    let observed = Arc::clone(&spills);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
    let handle = tokio::runtime::Handle::current();
    let target = Arc::clone(&schema);
    tokio::task::spawn_blocking(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<()> {
            let conn =
                Connection::open_in_memory().map_err(|e| engine_error("opening DuckDB", e))?;
            conn.execute_batch(&settings)
                .map_err(|e| engine_error("configuring DuckDB", e))?;
            conn.register_table_function::<duckdb::vtab::arrow::ArrowVTab>("arrow")
                .map_err(|e| engine_error("registering the arrow table function", e))?;
            crate::append_stream(&conn, "input", &target, &mut stream, &handle)?;
            let sql = format!("SELECT * FROM input ORDER BY {order}");
            let mut statement = conn
                .prepare(&sql)
                .map_err(|e| engine_error(&format!("planning {sql}"), e))?;
            drop(
                statement
                    .stream_arrow([])
                    .map_err(|e| engine_error(&format!("running {sql}"), e))?,
            );
            let mut first = true;
            loop {
                let chunk = statement
                    .step()
                    .map_err(|e| engine_error("fetching sorted rows", e))?;
                if first {
                    first = false;
                    // The sort is done once it yields: what did it leave on disk?
                    if let Ok(probe) = conn.try_clone()
                        && let Ok(n) = probe.query_row(
                            "SELECT count(*) FROM duckdb_temporary_files()",
                            [],
                            |row| row.get::<_, i64>(0),
                        )
                    {
                        observed.store(n.max(0) as u64, Ordering::SeqCst);
                    }
                }
                let Some(chunk) = chunk else {
                    return Ok(());
                };
                let batch = cast_by_position(&RecordBatch::from(&chunk), &target)?;
                if batch.num_rows() > 0 && tx.blocking_send(Ok(batch)).is_err() {
                    return Ok(());
                }
            }
        }));
        let error = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(_) => Error::Engine {
                engine: ENGINE.to_string(),
                message: "DuckDB panicked while sorting".into(),
            },
        };
        let _ = tx.blocking_send(Err(error));
    });
    Ok(Sorted {
        stream: futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed(),
        executor: ENGINE,
        spills,
        spills_observed: true,
    })
}
