//! DuckDB's own count of the statements in a text. `duckdb::Connection::prepare` runs every
//! statement of a text but the last, so a query must be known to be one statement before it
//! is prepared, by the parser that will run it: sqlparser alone can be fooled where the two
//! parsers disagree (DuckDB nests block comments, sqlparser does not).
//!
//! duckdb-rs has no safe way to extract statements without running them, hence the one use
//! of DuckDB's C API in fsk, on a scratch in-memory database of its own: parsing only.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString};

use duckdb::ffi;

/// How many statements DuckDB's parser finds in `sql`, or its parse error.
pub(crate) fn statement_count(sql: &str) -> Result<usize, String> {
    let text = CString::new(sql).map_err(|_| "the query holds a NUL character".to_string())?;
    let mut db: ffi::duckdb_database = std::ptr::null_mut();
    let mut con: ffi::duckdb_connection = std::ptr::null_mut();
    let mut extracted: ffi::duckdb_extracted_statements = std::ptr::null_mut();
    // SAFETY: each handle is created by the C API call that takes it as an out-pointer, used
    // only while valid, and destroyed exactly once in reverse order (extracted statements,
    // connection, database) on every path. `text` outlives the call that reads it, and the
    // error string is copied before the extracted statements that own it are destroyed.
    unsafe {
        if ffi::duckdb_open(std::ptr::null(), &mut db) != ffi::duckdb_state_DuckDBSuccess {
            return Err("could not open a scratch DuckDB database".into());
        }
        if ffi::duckdb_connect(db, &mut con) != ffi::duckdb_state_DuckDBSuccess {
            ffi::duckdb_close(&mut db);
            return Err("could not connect to a scratch DuckDB database".into());
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
        ffi::duckdb_close(&mut db);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::statement_count;

    #[test]
    fn counts_as_duckdb_parses() {
        assert_eq!(statement_count("SELECT 1"), Ok(1));
        assert_eq!(statement_count("SELECT 1; SELECT 2"), Ok(2));
        assert_eq!(statement_count("SELECT ';'"), Ok(1));
        // Nested block comments: sqlparser ends the comment at the first `*/`, DuckDB does
        // not, and sees three statements.
        assert_eq!(
            statement_count("SELECT 1 /* /* */ '*/; COPY (SELECT 42) TO 'x.csv'; SELECT 2 --'"),
            Ok(3)
        );
        assert!(statement_count("SELEC 1").is_err() || statement_count("SELEC 1") == Ok(1));
    }
}
