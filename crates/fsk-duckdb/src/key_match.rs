//! The key-match primitive on DuckDB: the merge's source keys are loaded once into DuckDB
//! tables (`keys_<set>`, through the Arrow table function), and all the candidate files of a
//! set are joined with it in one DuckDB query: `read_parquet` of the files' key columns with
//! `filename` and `file_row_number`, one hash join on the key, under `memory_limit` and
//! `temp_directory` from the merge's budget (DuckDB's join spills beyond it), on every core.
//! Only the matching rows' files, positions and source rows leave DuckDB. A null key in a
//! file is found by the same query.
//!
//! Files DuckDB cannot open itself (off local disk, where DuckDB has no httpfs offline;
//! repaired footers; glob characters; see [`crate::scan::local_files`]) are read by the
//! fsk-arrow's scan, numbered, appended into a DuckDB table and joined there: DuckDB
//! still joins, only the reading is arrow-rs's.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, FieldRef, UInt32Type, UInt64Type};
use async_trait::async_trait;
use duckdb::Connection;

use fsk_core::engine::{
    KeyMatch, KeyMatcher, KeyMatches, POSITION_COLUMN, SOURCE_ROW_COLUMN, numbered_keys,
};
use fsk_core::error::{Error, Result};
use fsk_core::expr::quote_ident;
use fsk_core::plan::scan::ScanPlan;
use fsk_core::plan::sort::MemoryBudget;

use crate::scan::{LocalFile, local_files, quote_str, read_error};
use crate::{ENGINE, engine_error};

/// Builds DuckDB key matchers.
#[derive(Debug)]
pub(crate) struct DuckDbKeyMatch;

#[async_trait]
impl KeyMatch for DuckDbKeyMatch {
    async fn prepare(
        &self,
        sets: Vec<RecordBatch>,
        budget: &MemoryBudget,
    ) -> Result<Arc<dyn KeyMatcher>> {
        let settings = crate::sort::budget_settings(budget);
        let columns: Vec<Vec<String>> = sets
            .iter()
            .map(|set| {
                set.schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .filter(|name| name != SOURCE_ROW_COLUMN)
                    .collect()
            })
            .collect();
        let fields: Vec<Vec<FieldRef>> = sets
            .iter()
            .map(|set| {
                set.schema()
                    .fields()
                    .iter()
                    .filter(|f| f.name() != SOURCE_ROW_COLUMN)
                    .cloned()
                    .collect()
            })
            .collect();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            let conn =
                Connection::open_in_memory().map_err(|e| engine_error("opening DuckDB", e))?;
            conn.execute_batch(&settings)
                .map_err(|e| engine_error("configuring DuckDB", e))?;
            conn.register_table_function::<duckdb::vtab::arrow::ArrowVTab>("arrow")
                .map_err(|e| engine_error("registering the arrow table function", e))?;
            for (i, set) in sets.into_iter().enumerate() {
                conn.execute(
                    &format!("CREATE TABLE keys_{i} AS SELECT * FROM arrow(?, ?)"),
                    duckdb::vtab::arrow_recordbatch_to_query_params(set),
                )
                .map_err(|e| engine_error("loading the source keys", e))?;
            }
            Ok(conn)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        Ok(Arc::new(DuckDbKeyMatcher {
            conn: Mutex::new(conn),
            columns,
            fields,
            next: AtomicU64::new(0),
        }))
    }
}

/// The source keys held in DuckDB, joined with one file at a time.
struct DuckDbKeyMatcher {
    /// The connection holding the key tables; each match runs on a clone of it.
    conn: Mutex<Connection>,
    /// Each set's key columns.
    columns: Vec<Vec<String>>,
    /// Each set's key fields (types as in the key table).
    fields: Vec<Vec<FieldRef>>,
    /// Names each streamed file's table uniquely.
    next: AtomicU64,
}

impl std::fmt::Debug for DuckDbKeyMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuckDbKeyMatcher")
            .field("columns", &self.columns)
            .finish()
    }
}

/// The join of `files` with key set `set`: each matching row's file, position and source
/// row, and one flag per key column saying it is null, for rows that match or hold a null
/// key.
fn join_sql(files: &[&LocalFile], set: usize, columns: &[String]) -> String {
    let on = columns
        .iter()
        .map(|c| format!("f.{0} = k.{0}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let nulls = columns
        .iter()
        .map(|c| format!("f.{} IS NULL", quote_ident(c)))
        .collect::<Vec<_>>();
    let mut conditions = vec![format!(
        "(k.{} IS NOT NULL OR {})",
        quote_ident(SOURCE_ROW_COLUMN),
        nulls.join(" OR ")
    )];
    for file in files {
        // A file whose planned row groups are a selection: only their rows.
        if let Some(ranges) = &file.rows {
            conditions.push(format!(
                "(f.filename <> {} OR {})",
                quote_str(&file.path.to_string_lossy()),
                ranges
                    .iter()
                    .map(|(start, end)| format!(
                        "(f.file_row_number >= {start} AND f.file_row_number < {end})"
                    ))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            ));
        }
    }
    let projection = columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT f.filename, CAST(f.file_row_number AS UBIGINT), CAST(k.{row} AS UINTEGER), \
         {nulls} FROM (SELECT filename, file_row_number, {projection} FROM read_parquet([{paths}], \
         file_row_number = true, filename = true, union_by_name = true, \
         hive_partitioning = false)) AS f LEFT JOIN keys_{set} AS k ON {on} WHERE {conditions}",
        row = quote_ident(SOURCE_ROW_COLUMN),
        nulls = nulls.join(", "),
        paths = files
            .iter()
            .map(|f| quote_str(&f.path.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(", "),
        conditions = conditions.join(" AND "),
    )
}

/// Runs the join on `conn`: the matches of each of `files`, in file order.
fn run(
    conn: &Connection,
    files: &[LocalFile],
    sql: &str,
    columns: &[String],
) -> Result<Vec<Vec<(u64, u32)>>> {
    let by_path: HashMap<String, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.to_string_lossy().into_owned(), i))
        .collect();
    let mut statement = conn
        .prepare(sql)
        .map_err(|e| read_error(conn, files, &format!("planning {sql}"), e))?;
    drop(
        statement
            .stream_arrow([])
            .map_err(|e| read_error(conn, files, &format!("running {sql}"), e))?,
    );
    let mut out: Vec<Vec<(u64, u32)>> = vec![Vec::new(); files.len()];
    loop {
        let chunk = statement
            .step()
            .map_err(|e| read_error(conn, files, "fetching matches", e))?;
        let Some(chunk) = chunk else {
            break;
        };
        let batch = RecordBatch::from(&chunk);
        let names = cast(batch.column(0), &DataType::Utf8)?;
        let names = names.as_string::<i32>();
        let positions = cast(batch.column(1), &DataType::UInt64)?;
        let positions = positions.as_primitive::<UInt64Type>();
        let sources = cast(batch.column(2), &DataType::UInt32)?;
        let sources = sources.as_primitive::<UInt32Type>();
        let file_of = |i: usize| -> Result<usize> {
            by_path.get(names.value(i)).copied().ok_or_else(|| {
                Error::Internal(format!(
                    "DuckDB matched a file not asked: {}",
                    names.value(i)
                ))
            })
        };
        for (c, column) in columns.iter().enumerate() {
            let flags = batch.column(3 + c).as_boolean();
            if let Some(i) = (0..flags.len()).find(|&i| flags.value(i)) {
                return Err(Error::NullKey {
                    column: column.clone(),
                    side: format!("target (file {})", files[file_of(i)?].describe),
                });
            }
        }
        for i in 0..batch.num_rows() {
            if sources.is_valid(i) {
                out[file_of(i)?].push((positions.value(i), sources.value(i)));
            }
        }
    }
    for rows in &mut out {
        rows.sort_unstable();
    }
    Ok(out)
}

fn cast(array: &arrow::array::ArrayRef, to: &DataType) -> Result<arrow::array::ArrayRef> {
    arrow::compute::cast(array, to).map_err(|e| Error::arrow("reading DuckDB's matches", e))
}

#[async_trait]
impl KeyMatcher for DuckDbKeyMatcher {
    async fn match_files(&self, requests: &[(ScanPlan, usize)]) -> Result<Vec<Option<KeyMatches>>> {
        let mut answers: Vec<Option<KeyMatches>> = vec![None; requests.len()];
        let mut streamed: Vec<usize> = Vec::new();
        // The files DuckDB opens itself, by set.
        let mut by_set: BTreeMap<usize, Vec<(usize, LocalFile)>> = BTreeMap::new();
        for (i, (plan, set)) in requests.iter().enumerate() {
            if *set >= self.columns.len() {
                return Err(Error::Internal(format!("no key set {set}")));
            }
            let Some(mut files) = local_files(plan) else {
                streamed.push(i);
                continue;
            };
            match files.pop() {
                Some(file) => by_set.entry(*set).or_default().push((i, file)),
                None => {
                    answers[i] = Some(KeyMatches {
                        rows: Vec::new(),
                        executor: ENGINE,
                        scan: ENGINE,
                    })
                }
            }
        }
        for (set, entries) in by_set {
            let columns = self.columns[set].clone();
            let (asked, files): (Vec<usize>, Vec<LocalFile>) = entries.into_iter().unzip();
            let sql = join_sql(&files.iter().collect::<Vec<_>>(), set, &columns);
            tracing::debug!(%sql, files = files.len(), "DuckDB key match");
            let conn = self.connection()?;
            let outcome = tokio::task::spawn_blocking(move || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(&conn, &files, &sql, &columns)
                }))
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
            let matched = match outcome {
                Ok(result) => result?,
                Err(_) => {
                    return Err(Error::Engine {
                        engine: ENGINE.to_string(),
                        message: "DuckDB panicked while matching keys".into(),
                    });
                }
            };
            for (i, rows) in asked.into_iter().zip(matched) {
                answers[i] = Some(KeyMatches {
                    rows,
                    executor: ENGINE,
                    scan: ENGINE,
                });
            }
        }
        // The rest: the core's reader decodes, DuckDB joins.
        for i in streamed {
            let (plan, set) = &requests[i];
            answers[i] = Some(self.match_streamed(plan, *set).await?);
        }
        Ok(answers)
    }
}

impl DuckDbKeyMatcher {
    /// A connection to the database holding the key tables.
    fn connection(&self) -> Result<Connection> {
        self.conn
            .lock()
            .map_err(|_| Error::Internal("DuckDB key matcher poisoned".into()))?
            .try_clone()
            .map_err(|e| engine_error("opening a DuckDB connection", e))
    }

    /// Joins one file that DuckDB cannot open: its keys, read by fsk-arrow's scan and
    /// numbered, are appended into a DuckDB table and joined with the set there.
    async fn match_streamed(&self, plan: &ScanPlan, set: usize) -> Result<KeyMatches> {
        let columns = self.columns[set].clone();
        let (schema, mut stream) =
            numbered_keys(plan, fsk_arrow::scan::rows(plan), self.fields[set].clone())?
                .into_parts();
        let conn = self.connection()?;
        let table = format!("probe_{}", self.next.fetch_add(1, Ordering::Relaxed));
        let handle = tokio::runtime::Handle::current();
        let outcome = tokio::task::spawn_blocking(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<Vec<(u64, u32)>> {
                let joined = (|| {
                    crate::append_stream(&conn, &table, &schema, &mut stream, &handle)?;
                    let on = columns
                        .iter()
                        .map(|c| format!("p.{0} = k.{0}", quote_ident(c)))
                        .collect::<Vec<_>>()
                        .join(" AND ");
                    let sql = format!(
                        "SELECT CAST(p.{pos} AS UBIGINT), CAST(k.{row} AS UINTEGER) FROM {table} \
                         AS p JOIN keys_{set} AS k ON {on}",
                        pos = quote_ident(POSITION_COLUMN),
                        row = quote_ident(SOURCE_ROW_COLUMN),
                    );
                    let mut statement = conn
                        .prepare(&sql)
                        .map_err(|e| engine_error(&format!("planning {sql}"), e))?;
                    drop(
                        statement
                            .stream_arrow([])
                            .map_err(|e| engine_error(&format!("running {sql}"), e))?,
                    );
                    let mut rows = Vec::new();
                    while let Some(chunk) = statement
                        .step()
                        .map_err(|e| engine_error("fetching matches", e))?
                    {
                        let batch = RecordBatch::from(&chunk);
                        let positions = cast(batch.column(0), &DataType::UInt64)?;
                        let positions = positions.as_primitive::<UInt64Type>();
                        let sources = cast(batch.column(1), &DataType::UInt32)?;
                        let sources = sources.as_primitive::<UInt32Type>();
                        rows.extend(
                            (0..batch.num_rows()).map(|i| (positions.value(i), sources.value(i))),
                        );
                    }
                    rows.sort_unstable();
                    Ok(rows)
                })();
                let _ = conn.execute_batch(&format!("DROP TABLE IF EXISTS {table}"));
                joined
            }))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
        match outcome {
            Ok(rows) => Ok(KeyMatches {
                rows: rows?,
                executor: ENGINE,
                scan: "arrow-rs",
            }),
            Err(_) => Err(Error::Engine {
                engine: ENGINE.to_string(),
                message: "DuckDB panicked while matching keys".into(),
            }),
        }
    }
}
