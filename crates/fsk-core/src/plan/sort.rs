//! The sort primitive's plain-data request: the keys ([`SortKey`]) and the memory budget
//! ([`MemoryBudget`]) every engine maps to its own limit. The engines execute it
//! ([`crate::engine::DatasetBackend::sort`]).

use std::path::PathBuf;

use arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};

/// One key of a sort.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortKey {
    /// The column.
    pub column: String,
    /// Largest first.
    pub descending: bool,
    /// Nulls before values.
    pub nulls_first: bool,
}

impl SortKey {
    /// Ascending, nulls last.
    pub fn asc(column: impl Into<String>) -> Self {
        SortKey {
            column: column.into(),
            descending: false,
            nulls_first: false,
        }
    }

    /// Descending, nulls last.
    pub fn desc(column: impl Into<String>) -> Self {
        SortKey {
            descending: true,
            ..SortKey::asc(column)
        }
    }
}

/// The memory an operation may use for its buffers, and where it spills beyond it. Each
/// engine maps it to its own limit (DataFusion's memory pool, DuckDB's `memory_limit`, the
/// arrow sort's run size).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryBudget {
    /// Bytes.
    pub bytes: usize,
    /// Where spill files go (default: the system's temporary folder).
    pub spill_dir: Option<PathBuf>,
}

impl Default for MemoryBudget {
    /// A quarter of the machine's memory (1 GiB where it cannot be read).
    fn default() -> Self {
        MemoryBudget {
            bytes: total_memory().map_or(1 << 30, |m| m / 4),
            spill_dir: None,
        }
    }
}

impl MemoryBudget {
    /// A budget of `bytes`.
    pub fn of(bytes: usize) -> Self {
        MemoryBudget {
            bytes,
            spill_dir: None,
        }
    }

    /// The folder spill files go to.
    pub fn spill_dir(&self) -> PathBuf {
        self.spill_dir.clone().unwrap_or_else(std::env::temp_dir)
    }
}

/// How spill files (sort runs, a merge's spilled source) are written: Arrow IPC, LZ4
/// compressed, since writing pages to the page cache cost more than compressing them (B9
/// spent a third of its CPU copying spill pages).
pub fn spill_write_options()
-> std::result::Result<arrow_ipc::writer::IpcWriteOptions, arrow::error::ArrowError> {
    arrow_ipc::writer::IpcWriteOptions::default()
        .try_with_compression(Some(arrow_ipc::CompressionType::LZ4_FRAME))
}

/// The machine's memory in bytes (Linux `/proc/meminfo`).
fn total_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Checks the keys against the schema.
pub fn validate_keys(schema: &SchemaRef, keys: &[SortKey]) -> Result<()> {
    if keys.is_empty() {
        return Err(Error::invalid_argument(
            "sort keys",
            "",
            "at least one column is needed",
        ));
    }
    for key in keys {
        if schema.field_with_name(&key.column).is_err() {
            return Err(Error::column_not_found(&key.column, "sort input", schema));
        }
    }
    Ok(())
}
