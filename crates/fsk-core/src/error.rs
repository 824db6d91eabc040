//! The one error type of fsk.
//!
//! Variants separate what the user can cause (a bad argument, a missing path, a schema that
//! does not fit, a null key, a corrupt file, a held lock) from faults of the environment
//! (storage) and from bugs ([`Error::Internal`]). Every variant that a user can cause names the
//! path, column or value at fault in its message.

use std::fmt;

/// A boxed foreign error, kept as the `source` of a variant.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with fsk's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in fsk.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path (dataset, file or source) does not exist.
    #[error("not found: {path}")]
    NotFound {
        /// The path that does not exist.
        path: String,
    },

    /// The dataset holds no parquet data file matching the criteria.
    #[error("no parquet files found under {path} ({criteria})")]
    NoDataFiles {
        /// The dataset root.
        path: String,
        /// What was searched for, for example `partition_filter=day=2025-01-01`.
        criteria: String,
    },

    /// The dataset path names an existing file where a folder is needed.
    #[error("dataset path {path} is an existing file, not a directory")]
    NotADirectory {
        /// The offending path.
        path: String,
    },

    /// The storage refused access; the original error is kept as `source`.
    #[error("permission denied at {path}: {source}")]
    PermissionDenied {
        /// The path that could not be accessed.
        path: String,
        /// The original error from the store.
        #[source]
        source: BoxError,
    },

    /// A bad argument: its name, the value given and what was expected.
    #[error("invalid {name} {value:?}: {message}")]
    InvalidArgument {
        /// The argument, for example `mode` or `max_rows_per_file`.
        name: String,
        /// The value that was given.
        value: String,
        /// What is accepted.
        message: String,
    },

    /// A column named by the caller does not exist.
    #[error("column {column:?} not found in {context}; available columns: {available}")]
    ColumnNotFound {
        /// The missing column.
        column: String,
        /// Where it was looked for (`dataset`, `source`, `filter`, ...).
        context: String,
        /// The columns that exist, comma-separated.
        available: String,
    },

    /// Two schemas do not fit together (beyond lossless promotion).
    #[error("schema mismatch: {message}")]
    SchemaMismatch {
        /// Names the columns and types at fault.
        message: String,
        /// The columns at fault.
        columns: Vec<String>,
    },

    /// A filter expression could not be parsed or bound to the schema.
    #[error("invalid filter {filter:?}: {message}")]
    InvalidFilter {
        /// The filter text as given.
        filter: String,
        /// What is wrong with it.
        message: String,
    },

    /// A key column holds nulls.
    #[error(
        "null value in key column {column:?} of the {side}; key columns must not be null \
         (filter or fill the nulls first)"
    )]
    NullKey {
        /// The key column.
        column: String,
        /// `source` or `target`.
        side: String,
    },

    /// An operation needs more memory than its budget allows, even with spilling (e.g. a
    /// merge source whose distinct keys alone outgrow the budget).
    #[error(
        "{operation} needs about {needed} bytes of memory for {what}, more than the budget of {budget} bytes; raise --memory-limit"
    )]
    OutOfMemory {
        /// The operation.
        operation: String,
        /// What must stay in memory.
        what: String,
        /// Bytes needed (at least).
        needed: u64,
        /// The budget in bytes.
        budget: u64,
    },

    /// A file is not readable parquet.
    #[error("corrupt or unreadable parquet file {path}: {message}")]
    CorruptFile {
        /// The file.
        path: String,
        /// What the parquet reader said.
        message: String,
    },

    /// A SQL query failed in the engine: the engine's category (see [`SqlErrorKind`]) and
    /// message, with the table, column or file at fault where known.
    #[error("SQL {kind} error in {engine}{}: {message}", at.as_ref().map(|a| format!(" ({a})")).unwrap_or_default())]
    Sql {
        /// The engine that ran the query.
        engine: String,
        /// The error's category.
        kind: SqlErrorKind,
        /// The table, column or file at fault, where known.
        at: Option<String>,
        /// The engine's message.
        message: String,
    },

    /// The chosen engine does not implement an operation.
    #[error("operation {operation} is not supported by the {engine} engine")]
    NotSupported {
        /// The engine name.
        engine: String,
        /// The operation.
        operation: String,
    },

    /// Another writer holds the dataset's lease.
    #[error("conflict: dataset {path} is locked by another writer ({holder})")]
    Conflict {
        /// The dataset root.
        path: String,
        /// Who holds the lock: owner, operation and expiry.
        holder: String,
    },

    /// The dataset has an unfinished transaction (a writer crashed after its commit point,
    /// or is publishing right now); reading it now could show a mix of old and new files.
    #[error(
        "dataset {path} has an unfinished transaction {txn}; run `fsk recover {path}` (or retry \
         once the writer publishing it has finished)"
    )]
    RecoveryNeeded {
        /// The dataset root.
        path: String,
        /// The unfinished transaction.
        txn: String,
    },

    /// Recovery could not prove that a committed transaction's new file is published, so it
    /// deleted nothing (no removals, no journal, no staging).
    #[error(
        "cannot finish transaction {txn} of {path}: {message}; nothing was deleted (the journal \
         {journal} is kept)"
    )]
    RecoveryFailed {
        /// The dataset root.
        path: String,
        /// The transaction.
        txn: String,
        /// The journal object, relative to the dataset root.
        journal: String,
        /// Which file could not be proven published, and why.
        message: String,
    },

    /// A job that commits in parts (compaction with `commit_every`) failed after committing
    /// some of them. Those parts stay: each was a whole transaction. Nothing of the failed
    /// part is visible; running the job again continues with what is left.
    #[error(
        "{operation} of {path} stopped after committing {committed_parts} of {planned_parts} parts \
         (those stay): {source}"
    )]
    PartiallyCommitted {
        /// The dataset root.
        path: String,
        /// The operation.
        operation: String,
        /// Parts committed before the failure.
        committed_parts: usize,
        /// Parts planned.
        planned_parts: usize,
        /// What failed.
        #[source]
        source: Box<Error>,
    },

    /// Writing a transaction's journal failed and the store could not say whether it exists:
    /// the operation may have committed. Do not retry it; `fsk recover` decides.
    #[error(
        "the outcome of transaction {txn} on {path} is unknown ({message}); do not run the \
         operation again: run `fsk recover {path}`, which completes it if it committed"
    )]
    CommitOutcomeUnknown {
        /// The dataset root.
        path: String,
        /// The transaction.
        txn: String,
        /// The store error.
        message: String,
    },

    /// fsk metadata (journal, lease) written by a newer fsk in a format this one does not
    /// know.
    #[error(
        "{path} has format version {found}, newer than this fsk understands (up to {supported}); \
         upgrade fsk"
    )]
    UnsupportedFormat {
        /// The metadata object.
        path: String,
        /// Its format version.
        found: u32,
        /// The newest version this fsk reads.
        supported: u32,
    },

    /// A file in the dataset has a name the store cannot address (not UTF-8, or with
    /// control characters), so fsk can neither read nor replace it.
    #[error("unsupported file name {path}: {message}")]
    UnsupportedName {
        /// The path, with unrepresentable bytes shown as U+FFFD.
        path: String,
        /// Why it cannot be used, and what to do.
        message: String,
    },

    /// A storage operation failed.
    #[error("storage error at {path}: {source}")]
    Storage {
        /// The path involved.
        path: String,
        /// The object store error.
        #[source]
        source: Box<object_store::Error>,
    },

    /// A parquet read or write failed on a file that is otherwise valid.
    #[error("parquet error at {path}: {source}")]
    Parquet {
        /// The file.
        path: String,
        /// The parquet error.
        #[source]
        source: Box<parquet::errors::ParquetError>,
    },

    /// An Arrow compute or conversion failed.
    #[error("arrow error while {context}: {source}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The arrow error.
        #[source]
        source: Box<arrow::error::ArrowError>,
    },

    /// Reading a source file (CSV, JSON) failed.
    #[error("cannot read source {path}: {message}")]
    Source {
        /// The source path.
        path: String,
        /// What went wrong.
        message: String,
    },

    /// An engine reported an error.
    #[error("{engine} engine error: {message}")]
    Engine {
        /// The engine name.
        engine: String,
        /// The engine's message.
        message: String,
    },

    /// A local I/O error.
    #[error("i/o error at {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A bug in fsk: please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<arrow::error::ArrowError> for Error {
    fn from(source: arrow::error::ArrowError) -> Self {
        Error::arrow("processing arrow data", source)
    }
}

impl Error {
    /// An [`Error::InvalidArgument`] for `name` with value `value`.
    pub fn invalid_argument(
        name: impl Into<String>,
        value: impl fmt::Display,
        message: impl Into<String>,
    ) -> Self {
        Error::InvalidArgument {
            name: name.into(),
            value: value.to_string(),
            message: message.into(),
        }
    }

    /// An [`Error::Arrow`] with context.
    pub fn arrow(context: impl Into<String>, source: arrow::error::ArrowError) -> Self {
        Error::Arrow {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// An [`Error::ColumnNotFound`] listing the available columns of `schema`.
    pub fn column_not_found(
        column: impl Into<String>,
        context: impl Into<String>,
        schema: &arrow::datatypes::Schema,
    ) -> Self {
        let available = schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Error::ColumnNotFound {
            column: column.into(),
            context: context.into(),
            available,
        }
    }

    /// Map an object store error at `path` to the matching variant
    /// ([`Error::NotFound`], [`Error::PermissionDenied`] or [`Error::Storage`]).
    pub fn from_store(path: impl Into<String>, err: object_store::Error) -> Self {
        let path = path.into();
        match err {
            object_store::Error::NotFound { .. } => Error::NotFound { path },
            object_store::Error::PermissionDenied { source, .. }
            | object_store::Error::Unauthenticated { source, .. } => {
                Error::PermissionDenied { path, source }
            }
            other => Error::Storage {
                path,
                source: Box::new(other),
            },
        }
    }

    /// Map a parquet error on `path`: decoding failures become [`Error::CorruptFile`].
    pub fn from_parquet(path: impl Into<String>, err: parquet::errors::ParquetError) -> Self {
        use parquet::errors::ParquetError;
        let path = path.into();
        match err {
            ParquetError::General(_) | ParquetError::EOF(_) | ParquetError::NeedMoreData(_) => {
                Error::CorruptFile {
                    path,
                    message: err.to_string(),
                }
            }
            ParquetError::External(e) => match e.downcast::<object_store::Error>() {
                Ok(store) => Error::from_store(path, *store),
                Err(e) => Error::Parquet {
                    path,
                    source: Box::new(ParquetError::External(e)),
                },
            },
            other => Error::Parquet {
                path,
                source: Box::new(other),
            },
        }
    }

    /// Whether the user can fix this by changing the command or its input (a usage error: the
    /// CLI exits with code 2), rather than a fault of the data, the store or fsk (code 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::NotFound { .. }
                | Error::NoDataFiles { .. }
                | Error::NotADirectory { .. }
                | Error::InvalidArgument { .. }
                | Error::ColumnNotFound { .. }
                | Error::SchemaMismatch { .. }
                | Error::InvalidFilter { .. }
                | Error::NullKey { .. }
                | Error::NotSupported { .. }
        ) || matches!(self, Error::Sql { kind, .. } if kind.is_usage())
    }

    /// A stable short name for the variant, used by the CLI's JSON errors and by tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::NoDataFiles { .. } => "no_data_files",
            Error::NotADirectory { .. } => "not_a_directory",
            Error::PermissionDenied { .. } => "permission_denied",
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::ColumnNotFound { .. } => "column_not_found",
            Error::SchemaMismatch { .. } => "schema_mismatch",
            Error::InvalidFilter { .. } => "invalid_filter",
            Error::NullKey { .. } => "null_key",
            Error::CorruptFile { .. } => "corrupt_file",
            Error::OutOfMemory { .. } => "out_of_memory",
            Error::NotSupported { .. } => "not_supported",
            Error::Sql { kind, .. } => kind.name(),
            Error::Conflict { .. } => "conflict",
            Error::RecoveryNeeded { .. } => "recovery_needed",
            Error::RecoveryFailed { .. } => "recovery_failed",
            Error::CommitOutcomeUnknown { .. } => "commit_outcome_unknown",
            Error::PartiallyCommitted { .. } => "partially_committed",
            Error::UnsupportedFormat { .. } => "unsupported_format",
            Error::UnsupportedName { .. } => "unsupported_name",
            Error::Storage { .. } => "storage",
            Error::Parquet { .. } => "parquet",
            Error::Arrow { .. } => "arrow",
            Error::Source { .. } => "source",
            Error::Engine { .. } => "engine",
            Error::Io { .. } => "io",
            Error::Internal(_) => "internal",
        }
    }
}

/// The category of a SQL error, kept from the engine's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlErrorKind {
    /// The query does not parse.
    Syntax,
    /// A table the query names is not registered.
    UnknownTable,
    /// A column the query names does not exist.
    UnknownColumn,
    /// Types do not fit (a comparison, a function's arguments, a parameter).
    Type,
    /// Reading a file failed (named in `at`).
    Io,
    /// The query needed more memory than the budget allows.
    OutOfMemory,
    /// Anything else the engine reports (a failed cast of a value, division by zero, ...).
    Execution,
}

impl SqlErrorKind {
    /// The stable name of the category (`sql_syntax`, `sql_unknown_table`, ...), the error's
    /// [`Error::kind`].
    pub fn name(self) -> &'static str {
        match self {
            SqlErrorKind::Syntax => "sql_syntax",
            SqlErrorKind::UnknownTable => "sql_unknown_table",
            SqlErrorKind::UnknownColumn => "sql_unknown_column",
            SqlErrorKind::Type => "sql_type",
            SqlErrorKind::Io => "sql_io",
            SqlErrorKind::OutOfMemory => "sql_out_of_memory",
            SqlErrorKind::Execution => "sql_execution",
        }
    }

    /// Whether the query is at fault (the CLI exits with code 2) rather than the data or
    /// the machine.
    pub fn is_usage(self) -> bool {
        matches!(
            self,
            SqlErrorKind::Syntax
                | SqlErrorKind::UnknownTable
                | SqlErrorKind::UnknownColumn
                | SqlErrorKind::Type
        )
    }
}

impl fmt::Display for SqlErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SqlErrorKind::Syntax => "syntax",
            SqlErrorKind::UnknownTable => "unknown table",
            SqlErrorKind::UnknownColumn => "unknown column",
            SqlErrorKind::Type => "type",
            SqlErrorKind::Io => "I/O",
            SqlErrorKind::OutOfMemory => "out of memory",
            SqlErrorKind::Execution => "execution",
        })
    }
}
