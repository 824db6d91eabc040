//! DuckDB's own count of the statements in a text. `duckdb::Connection::prepare` runs every
//! statement of a text but the last, so a query must be known to be one statement before it
//! is prepared, by the parser that will run it: sqlparser alone can be fooled where the two
//! parsers disagree (DuckDB nests block comments, sqlparser does not).
//!
//! duckdb-rs has no safe way to extract statements without running them, hence the one use
//! of DuckDB's C API in fsk: a [`Database`] opened through it counts a query's statements on
//! a connection of its own (parsing only, before anything is registered), and then gives the
//! query its duckdb-rs connection, so a query opens one database, not two.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString};

use duckdb::{Connection, ffi};

/// An in-memory DuckDB database opened through the C API, closed when dropped. Connections
/// it gives keep DuckDB's database instance alive by themselves (DuckDB counts its
/// references), so dropping the `Database` first is safe, if pointless.
pub(crate) struct Database {
    raw: ffi::duckdb_database,
}

// SAFETY: a `duckdb_database` may be used from any thread; `Database` only connects to it
// and closes it once.
unsafe impl Send for Database {}

impl Database {
    /// Opens a new in-memory database.
    pub(crate) fn open() -> Result<Self, String> {
        let mut raw: ffi::duckdb_database = std::ptr::null_mut();
        // SAFETY: `raw` is the out-pointer the call fills; on failure nothing is kept.
        if unsafe { ffi::duckdb_open(std::ptr::null(), &mut raw) }
            != ffi::duckdb_state_DuckDBSuccess
        {
            return Err("could not open a DuckDB database".into());
        }
        Ok(Database { raw })
    }

    /// A duckdb-rs connection to the database.
    pub(crate) fn connect(&self) -> duckdb::Result<Connection> {
        // SAFETY: `raw` is a valid, open database until `self` is dropped, and the
        // connection holds DuckDB's instance alive past that (see the type's docs).
        unsafe { Connection::open_from_raw(self.raw) }
    }

    /// How many statements DuckDB's parser finds in `sql`, or its parse error. Parses only:
    /// nothing runs.
    pub(crate) fn statement_count(&self, sql: &str) -> Result<usize, String> {
        let text = CString::new(sql).map_err(|_| "the query holds a NUL character".to_string())?;
        let mut con: ffi::duckdb_connection = std::ptr::null_mut();
        let mut extracted: ffi::duckdb_extracted_statements = std::ptr::null_mut();
        // SAFETY: each handle is created by the C API call that takes it as an out-pointer,
        // used only while valid, and destroyed exactly once in reverse order (extracted
        // statements, connection) on every path. `text` outlives the call that reads it, and
        // the error string is copied before the extracted statements that own it are
        // destroyed.
        unsafe {
            if ffi::duckdb_connect(self.raw, &mut con) != ffi::duckdb_state_DuckDBSuccess {
                return Err("could not connect to the DuckDB database".into());
            }
            let count = ffi::duckdb_extract_statements(con, text.as_ptr(), &mut extracted);
            let outcome = if count == 0 {
                let error = ffi::duckdb_extract_statements_error(extracted);
                Err(if error.is_null() {
                    "no statement".to_string()
                } else {
                    CStr::from_ptr(error).to_string_lossy().into_owned()
                })
            } else {
                Ok(count as usize)
            };
            ffi::duckdb_destroy_extracted(&mut extracted);
            ffi::duckdb_disconnect(&mut con);
            outcome
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // SAFETY: opened in `open`, closed only here, once.
        unsafe { ffi::duckdb_close(&mut self.raw) };
    }
}

#[cfg(test)]
mod tests {
    use super::Database;

    #[test]
    fn counts_as_duckdb_parses() {
        let db = Database::open().expect("database");
        let count = |sql: &str| db.statement_count(sql);
        assert_eq!(count("SELECT 1"), Ok(1));
        assert_eq!(count("SELECT 1; SELECT 2"), Ok(2));
        assert_eq!(count("SELECT ';'"), Ok(1));
        // Nested block comments: sqlparser ends the comment at the first `*/`, DuckDB does
        // not, and sees three statements.
        assert_eq!(
            count("SELECT 1 /* /* */ '*/; COPY (SELECT 42) TO 'x.csv'; SELECT 2 --'"),
            Ok(3)
        );
        assert!(count("SELEC 1").is_err() || count("SELEC 1") == Ok(1));
    }

    #[test]
    fn counting_runs_nothing_and_the_query_shares_the_database() {
        let db = Database::open().expect("database");
        assert_eq!(
            db.statement_count("CREATE TABLE t AS SELECT 1 AS a; SELECT * FROM t"),
            Ok(2)
        );
        let conn = db.connect().expect("connection");
        assert!(
            conn.execute_batch("SELECT * FROM t").is_err(),
            "counting created nothing"
        );
        conn.execute_batch("CREATE TABLE u AS SELECT 2 AS b")
            .unwrap();
        let other = db.connect().expect("second connection");
        let b: i32 = other
            .query_row("SELECT b FROM u", [], |r| r.get(0))
            .unwrap();
        assert_eq!(b, 2, "one database behind both connections");
        drop(db);
        let b: i32 = conn.query_row("SELECT b FROM u", [], |r| r.get(0)).unwrap();
        assert_eq!(b, 2, "the connection outlives the handle");
    }
}
