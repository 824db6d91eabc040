//! Sources for writes and merges: a parquet file or dataset (on any store), a CSV file or a
//! newline-delimited JSON file (local).
//!
//! CSV and JSON types are inferred over the whole file: integers become int64, decimals
//! float64, `YYYY-MM-DD` dates date32, `true`/`false` booleans, anything else string; an empty
//! CSV field is null.

use std::fs::File;
use std::io::{BufReader, Seek};
use std::str::FromStr;
use std::sync::Arc;

use futures::StreamExt;

use fsk_core::dataset::storage::{Location, StorageOptions};
use fsk_core::engine::{Batches, DatasetBackend};
use fsk_core::error::{Error, Result};
use fsk_core::{Operations, ReadOptions};

/// Rows per batch when reading CSV or JSON.
pub const SOURCE_BATCH_SIZE: usize = 8192;

/// The kind of a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    /// A `.parquet` file or a parquet dataset folder.
    Parquet,
    /// A CSV file with a header row.
    Csv,
    /// Newline-delimited JSON (`.json`, `.ndjson`, `.jsonl`).
    Json,
}

impl FromStr for SourceFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "parquet" => Ok(SourceFormat::Parquet),
            "csv" => Ok(SourceFormat::Csv),
            "json" | "ndjson" | "jsonl" => Ok(SourceFormat::Json),
            _ => Err(Error::invalid_argument(
                "source format",
                s,
                "valid formats are: parquet, csv, json",
            )),
        }
    }
}

impl SourceFormat {
    /// The format implied by a path's extension (parquet for folders and anything else).
    pub fn detect(path: &str) -> SourceFormat {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            SourceFormat::Csv
        } else if lower.ends_with(".json")
            || lower.ends_with(".ndjson")
            || lower.ends_with(".jsonl")
        {
            SourceFormat::Json
        } else {
            SourceFormat::Parquet
        }
    }
}

fn open_local(path: &str) -> Result<File> {
    File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            path: path.to_string(),
        },
        std::io::ErrorKind::PermissionDenied => Error::PermissionDenied {
            path: path.to_string(),
            source: Box::new(e),
        },
        _ => Error::Io {
            path: path.to_string(),
            source: e,
        },
    })
}

fn source_error(path: &str, err: impl std::fmt::Display) -> Error {
    Error::Source {
        path: path.to_string(),
        message: err.to_string(),
    }
}

/// Opens a source as a stream of batches. Parquet sources are read by `backend`.
pub async fn open_source(
    path: &str,
    format: Option<SourceFormat>,
    backend: &Arc<dyn DatasetBackend>,
    storage: &StorageOptions,
) -> Result<Batches> {
    match format.unwrap_or_else(|| SourceFormat::detect(path)) {
        SourceFormat::Parquet => {
            let location = Location::parse_with_options(path, storage)?;
            backend.read(&location, &ReadOptions::default()).await
        }
        SourceFormat::Csv => read_csv(path),
        SourceFormat::Json => read_json(path),
    }
}

/// Streams a synchronous reader's batches, naming the source in errors.
fn batches_of<R>(path: &str, schema: arrow::datatypes::SchemaRef, reader: R) -> Batches
where
    R: Iterator<Item = std::result::Result<arrow::array::RecordBatch, arrow::error::ArrowError>>
        + Send
        + 'static,
{
    let path = path.to_string();
    let stream = futures::stream::iter(reader)
        .map(move |batch| batch.map_err(|e| source_error(&path, e)))
        .boxed();
    Batches::new(schema, stream)
}

/// Reads a CSV file with a header row.
pub fn read_csv(path: &str) -> Result<Batches> {
    let mut file = open_local(path)?;
    let null = regex::Regex::new("^$").expect("valid regex");
    let format = arrow::csv::reader::Format::default()
        .with_header(true)
        .with_null_regex(null.clone());
    let (schema, _) = format
        .infer_schema(&mut file, None)
        .map_err(|e| source_error(path, e))?;
    file.rewind().map_err(|e| source_error(path, e))?;
    let schema = Arc::new(schema);
    let reader = arrow::csv::ReaderBuilder::new(Arc::clone(&schema))
        .with_header(true)
        .with_null_regex(null)
        .with_batch_size(SOURCE_BATCH_SIZE)
        .build(file)
        .map_err(|e| source_error(path, e))?;
    Ok(batches_of(path, schema, reader))
}

/// Reads a newline-delimited JSON file.
pub fn read_json(path: &str) -> Result<Batches> {
    let file = open_local(path)?;
    let mut buffered = BufReader::new(file);
    let (schema, _) = arrow::json::reader::infer_json_schema_from_seekable(&mut buffered, None)
        .map_err(|e| source_error(path, e))?;
    let schema = Arc::new(schema);
    let reader = arrow::json::ReaderBuilder::new(Arc::clone(&schema))
        .with_batch_size(SOURCE_BATCH_SIZE)
        .build(buffered)
        .map_err(|e| source_error(path, e))?;
    Ok(batches_of(path, schema, reader))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;

    #[test]
    fn detects_formats() {
        assert_eq!(SourceFormat::detect("a.CSV"), SourceFormat::Csv);
        assert_eq!(SourceFormat::detect("a.ndjson"), SourceFormat::Json);
        assert_eq!(SourceFormat::detect("dir"), SourceFormat::Parquet);
        assert!("xml".parse::<SourceFormat>().is_err());
    }

    #[tokio::test]
    async fn csv_inference_and_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        std::fs::write(&path, "id,amount,name\n1,1.5,a\n2,,\n3,2.25,c\n").unwrap();
        let batches = read_csv(path.to_str().unwrap()).unwrap();
        let schema = Arc::clone(batches.schema());
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert_eq!(schema.field(1).data_type(), &DataType::Float64);
        assert_eq!(schema.field(2).data_type(), &DataType::Utf8);
        let batch = batches.concat().await.unwrap();
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.column(1).null_count(), 1);
        assert_eq!(batch.column(2).null_count(), 1);
    }

    #[tokio::test]
    async fn json_lines_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(
            &path,
            "{\"id\": 1, \"v\": \"x\"}\n{\"id\": 2, \"v\": null}\n",
        )
        .unwrap();
        let batch = read_json(path.to_str().unwrap())
            .unwrap()
            .concat()
            .await
            .unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema().field(0).data_type(), &DataType::Int64);
        assert!(matches!(
            read_csv("/no/such/file.csv"),
            Err(Error::NotFound { .. })
        ));
    }
}
