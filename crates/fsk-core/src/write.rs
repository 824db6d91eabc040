//! Writing a dataset: options, validation and the shared streaming writer.
//!
//! The writer stages files under the transaction's hidden prefix; the commit publishes them.
//! Input streams through: each batch is split by partition and by `max_rows_per_file` and
//! appended to open file writers, so memory holds a bounded number of row groups in flight.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::async_writer::{AsyncFileWriter, ParquetObjectWriter};
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::commit::{Checksum, PublishEntry, Staging, random_token};
use crate::dataset::partition::{group_rows, partition_dir};
use crate::error::{Error, Result};

/// What to do with existing data files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    /// Add new files; keep existing ones.
    #[default]
    Append,
    /// Replace every existing parquet data file, once the new files are written.
    Overwrite,
}

impl FromStr for WriteMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "append" => Ok(WriteMode::Append),
            "overwrite" => Ok(WriteMode::Overwrite),
            _ => Err(Error::invalid_argument(
                "mode",
                s,
                "valid modes are: append, overwrite",
            )),
        }
    }
}

impl fmt::Display for WriteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteMode::Append => "append",
            WriteMode::Overwrite => "overwrite",
        })
    }
}

/// A compression codec with an optional level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Codec {
    /// The codec name: snappy, gzip, lz4, zstd, brotli or uncompressed.
    pub name: CodecName,
    /// The level, for gzip (0-9), zstd (1-22) and brotli (0-11).
    pub level: Option<u32>,
}

/// The codecs fsk writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum CodecName {
    Snappy,
    Gzip,
    Lz4,
    Zstd,
    Brotli,
    Uncompressed,
}

const VALID_CODECS: &str = "snappy, gzip, lz4, zstd, brotli, uncompressed (optionally CODEC:LEVEL)";

impl Default for Codec {
    fn default() -> Self {
        Codec {
            name: CodecName::Snappy,
            level: None,
        }
    }
}

impl FromStr for Codec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (name, level) = match s.split_once(':') {
            Some((n, l)) => (n, Some(l)),
            None => (s, None),
        };
        let name = match name.to_ascii_lowercase().as_str() {
            "snappy" => CodecName::Snappy,
            "gzip" => CodecName::Gzip,
            "lz4" | "lz4_raw" => CodecName::Lz4,
            "zstd" => CodecName::Zstd,
            "brotli" => CodecName::Brotli,
            "uncompressed" | "none" => CodecName::Uncompressed,
            _ => {
                return Err(Error::invalid_argument(
                    "compression",
                    s,
                    format!("valid codecs are: {VALID_CODECS}"),
                ));
            }
        };
        let level = match level {
            None => None,
            Some(l) => Some(l.parse::<u32>().map_err(|_| {
                Error::invalid_argument("compression level", l, "expected a whole number")
            })?),
        };
        let codec = Codec { name, level };
        codec.to_parquet()?;
        Ok(codec)
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.name {
            CodecName::Snappy => "snappy",
            CodecName::Gzip => "gzip",
            CodecName::Lz4 => "lz4",
            CodecName::Zstd => "zstd",
            CodecName::Brotli => "brotli",
            CodecName::Uncompressed => "uncompressed",
        };
        match self.level {
            Some(l) => write!(f, "{name}:{l}"),
            None => f.write_str(name),
        }
    }
}

impl Codec {
    /// The parquet crate's codec, validating the level.
    pub fn to_parquet(&self) -> Result<Compression> {
        let bad_level = |e: parquet::errors::ParquetError| {
            Error::invalid_argument("compression level", self.to_string(), e.to_string())
        };
        Ok(match (self.name, self.level) {
            (CodecName::Snappy, None) => Compression::SNAPPY,
            (CodecName::Lz4, None) => Compression::LZ4_RAW,
            (CodecName::Uncompressed, None) => Compression::UNCOMPRESSED,
            (CodecName::Gzip, l) => Compression::GZIP(match l {
                None => GzipLevel::default(),
                Some(l) => GzipLevel::try_new(l).map_err(bad_level)?,
            }),
            (CodecName::Zstd, l) => Compression::ZSTD(match l {
                None => ZstdLevel::default(),
                Some(l) => ZstdLevel::try_new(l as i32).map_err(bad_level)?,
            }),
            (CodecName::Brotli, l) => Compression::BROTLI(match l {
                None => BrotliLevel::default(),
                Some(l) => BrotliLevel::try_new(l).map_err(bad_level)?,
            }),
            (name, Some(_)) => {
                return Err(Error::invalid_argument(
                    "compression",
                    self.to_string(),
                    format!("{name:?} takes no level; levels apply to gzip, zstd and brotli"),
                ));
            }
        })
    }
}

/// Default rows per row group.
pub const DEFAULT_ROW_GROUP_SIZE: usize = 500_000;

/// Options of a dataset write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    /// Append (default) or overwrite.
    pub mode: WriteMode,
    /// Hive partition columns, in folder order.
    pub partition_by: Vec<String>,
    /// Split files after this many rows (per partition). `None`: no limit.
    pub max_rows_per_file: Option<usize>,
    /// Maximum rows per row group.
    pub row_group_size: usize,
    /// Compression codec.
    pub compression: Codec,
    /// File name template with one `{}` for the token; must end in `.parquet`.
    /// Default `part-{}.parquet`.
    pub basename_template: Option<String>,
    /// Wait up to this long for another writer's lease (`None`: fail at once).
    pub wait: Option<std::time::Duration>,
    /// Columns to write Parquet bloom filters for (merges use them to prune files).
    pub bloom_filter_columns: Vec<String>,
    /// Start a new file once a file reaches about this many bytes (`None`: no limit). Row
    /// groups are then flushed every eighth of it, so the size is measured, not guessed,
    /// and memory stays bounded by that much per open file.
    pub max_file_bytes: Option<u64>,
    /// Flush a file's row group early once it holds its share (this divided by the files
    /// open) of about this many bytes in progress (`None`: row groups fill to
    /// `row_group_size`). Bounds memory when many partitions are open at once.
    pub max_buffered_bytes: Option<u64>,
    /// Columns written without dictionary encoding (rewrites set this for columns whose
    /// dictionary overflowed in the original file, so no time goes into a dictionary that
    /// would be dropped).
    pub plain_columns: Vec<String>,
    /// Entries added to each file's footer key-value metadata (optimize records what
    /// clustered the file).
    pub key_value_metadata: Vec<(String, String)>,
    /// Where progress is reported (phases with totals; default: nowhere).
    pub progress: crate::progress::Progress,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            mode: WriteMode::Append,
            partition_by: Vec::new(),
            max_rows_per_file: None,
            row_group_size: DEFAULT_ROW_GROUP_SIZE,
            compression: Codec::default(),
            basename_template: None,
            wait: None,
            bloom_filter_columns: Vec::new(),
            max_file_bytes: None,
            max_buffered_bytes: None,
            plain_columns: Vec::new(),
            key_value_metadata: Vec::new(),
            progress: crate::progress::Progress::none(),
        }
    }
}

impl WriteOptions {
    /// Sets the mode.
    pub fn with_mode(mut self, mode: WriteMode) -> Self {
        self.mode = mode;
        self
    }
    /// Sets the partition columns.
    pub fn with_partition_by<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        cols: I,
    ) -> Self {
        self.partition_by = cols.into_iter().map(Into::into).collect();
        self
    }
    /// Sets the file split size.
    pub fn with_max_rows_per_file(mut self, rows: usize) -> Self {
        self.max_rows_per_file = Some(rows);
        self
    }
    /// Starts a new file once a file reaches about `bytes` bytes.
    pub fn with_max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = Some(bytes);
        self
    }
    /// Sets the row group size.
    pub fn with_row_group_size(mut self, rows: usize) -> Self {
        self.row_group_size = rows;
        self
    }
    /// Sets the codec.
    pub fn with_compression(mut self, codec: Codec) -> Self {
        self.compression = codec;
        self
    }
    /// Writes bloom filters for these columns.
    pub fn with_bloom_filter_columns<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        cols: I,
    ) -> Self {
        self.bloom_filter_columns = cols.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the file name template.
    pub fn with_basename_template(mut self, template: impl Into<String>) -> Self {
        self.basename_template = Some(template.into());
        self
    }

    /// Checks every option; the error names the bad value.
    pub fn validate(&self) -> Result<()> {
        if self.max_rows_per_file == Some(0) {
            return Err(Error::invalid_argument(
                "max_rows_per_file",
                0,
                "must be greater than 0",
            ));
        }
        if self.max_file_bytes == Some(0) {
            return Err(Error::invalid_argument(
                "max_file_bytes",
                0,
                "must be greater than 0",
            ));
        }
        if self.row_group_size == 0 {
            return Err(Error::invalid_argument(
                "row_group_size",
                0,
                "must be greater than 0",
            ));
        }
        if let Some(template) = &self.basename_template {
            if template.matches("{}").count() != 1 {
                return Err(Error::invalid_argument(
                    "basename_template",
                    template,
                    "must contain exactly one {} (replaced by a unique token)",
                ));
            }
            if !template.ends_with(".parquet") {
                return Err(Error::invalid_argument(
                    "basename_template",
                    template,
                    "must end in .parquet (other files are not data to fsk)",
                ));
            }
            if template.contains('/') || template.starts_with('_') || template.starts_with('.') {
                return Err(Error::invalid_argument(
                    "basename_template",
                    template,
                    "must be a plain file name that does not start with _ or .",
                ));
            }
        }
        for column in &self.partition_by {
            if column.is_empty()
                || column.starts_with('_')
                || column.starts_with('.')
                || column.contains(['/', '='])
            {
                return Err(Error::invalid_argument(
                    "partition_by",
                    column,
                    "a partition column name must not be empty, start with _ or ., or contain / or =",
                ));
            }
        }
        self.compression.to_parquet()?;
        Ok(())
    }

    /// A fresh file name from the template.
    pub fn file_name(&self) -> String {
        let template = self
            .basename_template
            .as_deref()
            .unwrap_or("part-{}.parquet");
        template.replacen("{}", &random_token(), 1)
    }

    /// The writer properties for these options.
    pub fn writer_properties(&self) -> Result<WriterProperties> {
        let mut builder = WriterProperties::builder()
            .set_compression(self.compression.to_parquet()?)
            .set_max_row_group_row_count(Some(self.row_group_size))
            .set_created_by(format!("fsk {}", env!("CARGO_PKG_VERSION")));
        if !self.key_value_metadata.is_empty() {
            builder = builder.set_key_value_metadata(Some(
                self.key_value_metadata
                    .iter()
                    .map(|(k, v)| parquet::file::metadata::KeyValue::new(k.clone(), v.clone()))
                    .collect(),
            ));
        }
        for column in &self.plain_columns {
            let path = parquet::schema::types::ColumnPath::from(column.as_str());
            builder = builder.set_column_dictionary_enabled(path, false);
        }
        for column in &self.bloom_filter_columns {
            let path = parquet::schema::types::ColumnPath::from(column.as_str());
            builder = builder
                .set_column_bloom_filter_enabled(path.clone(), true)
                .set_column_bloom_filter_fpp(path, 0.01);
        }
        Ok(builder.build())
    }

    /// Splits `schema` into the schema of the files (without partition columns); fails with
    /// [`Error::ColumnNotFound`] naming a missing partition column.
    pub fn file_schema(&self, schema: &Schema) -> Result<SchemaRef> {
        for column in &self.partition_by {
            if schema.field_with_name(column).is_err() {
                return Err(Error::column_not_found(
                    column,
                    "input (partition_by)",
                    schema,
                ));
            }
        }
        let fields: Vec<_> = schema
            .fields()
            .iter()
            .filter(|f| !self.partition_by.contains(f.name()))
            .cloned()
            .collect();
        Ok(Arc::new(Schema::new_with_metadata(
            fields,
            schema.metadata().clone(),
        )))
    }
}

/// One file written by an operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenFile {
    /// Path relative to the dataset root, `/`-separated.
    pub path: String,
    /// Rows in the file.
    pub row_count: u64,
    /// Size in bytes.
    pub size_bytes: u64,
}

impl From<crate::commit::PublishedFile> for WrittenFile {
    fn from(file: crate::commit::PublishedFile) -> Self {
        WrittenFile {
            path: file.path,
            row_count: file.row_count,
            size_bytes: file.size_bytes,
        }
    }
}

/// Passes a file's bytes to the store while computing the checksum the journal records.
struct ChecksummedWriter {
    inner: ParquetObjectWriter,
    checksum: Arc<std::sync::Mutex<Checksum>>,
}

impl AsyncFileWriter for ChecksummedWriter {
    fn write(
        &mut self,
        bytes: bytes::Bytes,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<()>> {
        if let Ok(mut checksum) = self.checksum.lock() {
            checksum.update(&bytes);
        }
        self.inner.write(bytes)
    }

    fn complete(&mut self) -> futures::future::BoxFuture<'_, parquet::errors::Result<()>> {
        self.inner.complete()
    }
}

struct OpenFile {
    writer: AsyncArrowWriter<ChecksummedWriter>,
    checksum: Arc<std::sync::Mutex<Checksum>>,
    target: String,
    staged: String,
    rows: usize,
}

/// The shared streaming writer: splits batches by partition and file size and stages the
/// files in a transaction's staging area; [`DatasetWriter::finish`] returns the staged files
/// for the caller to add to the transaction.
pub struct DatasetWriter {
    staging: Staging,
    options: WriteOptions,
    file_schema: SchemaRef,
    properties: WriterProperties,
    open: HashMap<String, OpenFile>,
    open_order: Vec<String>,
    finished: Vec<PublishEntry>,
    encodings_chosen: bool,
}

/// How many partition files may be open at once before the least recent is closed.
pub const MAX_OPEN_FILES: usize = 64;

impl DatasetWriter {
    /// A writer for batches of `input_schema` (partition columns included) into `staging`.
    pub fn new(staging: Staging, input_schema: SchemaRef, options: WriteOptions) -> Result<Self> {
        options.validate()?;
        let file_schema = options.file_schema(&input_schema)?;
        let properties = options.writer_properties()?;
        Ok(DatasetWriter {
            staging,
            options,
            file_schema,
            properties,
            open: HashMap::new(),
            open_order: Vec::new(),
            finished: Vec::new(),
            encodings_chosen: false,
        })
    }

    /// The schema of the files.
    pub fn file_schema(&self) -> &SchemaRef {
        &self.file_schema
    }

    /// Closes the file open in `dir` (if any): the next rows for `dir` start a new file.
    pub async fn cut(&mut self, dir: &str) -> Result<()> {
        self.close_file(dir).await
    }

    /// Writes one batch (of the input schema).
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.choose_encodings(batch)?;
        if self.options.partition_by.is_empty() {
            return self.write_to("", batch).await;
        }
        for (dir, part) in self.split_by_partition(batch)? {
            self.write_to(&dir, &part).await?;
        }
        Ok(())
    }

    fn split_by_partition(&mut self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>> {
        let (values, groups) =
            group_rows(batch, &self.options.partition_by, "input (partition_by)")?;
        if values.len() == 1 {
            let dir = partition_dir(&self.options.partition_by, &values[0]);
            return Ok(vec![(dir, batch.clone())]);
        }
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); values.len()];
        for (row, &group) in groups.iter().enumerate() {
            rows[group as usize].push(row as u32);
        }
        values
            .iter()
            .zip(rows)
            .map(|(values, rows)| {
                let dir = partition_dir(&self.options.partition_by, values);
                let indices = UInt32Array::from(rows);
                let part = arrow::compute::take_record_batch(batch, &indices)
                    .map_err(|e| Error::arrow("splitting a batch by partition", e))?;
                Ok((dir, part))
            })
            .collect()
    }

    fn project(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        if self.options.partition_by.is_empty() {
            return Ok(batch.clone());
        }
        let columns = self
            .file_schema
            .fields()
            .iter()
            .map(|f| {
                Arc::clone(
                    batch
                        .column_by_name(f.name())
                        .expect("file column in input"),
                )
            })
            .collect();
        RecordBatch::try_new(Arc::clone(&self.file_schema), columns)
            .map_err(|e| Error::arrow("dropping partition columns", e))
    }

    /// Writes a batch of the *file* schema (no partition columns) into folder `dir`
    /// (relative to the root; empty for the root). Used to rewrite a file in place.
    pub async fn write_into(&mut self, dir: &str, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.choose_encodings(batch)?;
        self.write_rows(dir, batch).await
    }

    /// On the first batch, unless the caller chose [`WriteOptions::plain_columns`]: columns
    /// whose sampled values are nearly all distinct (ids, measures, timestamps, free text)
    /// are written without a dictionary, which would only overflow or cost more than it
    /// saves. Columns with repeats keep the dictionary.
    fn choose_encodings(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.encodings_chosen {
            return Ok(());
        }
        self.encodings_chosen = true;
        if !self.options.plain_columns.is_empty() {
            return Ok(());
        }
        const SAMPLE: usize = 8192;
        const MIN_SAMPLE: usize = 1024;
        let rows = batch.num_rows().min(SAMPLE);
        if rows < MIN_SAMPLE {
            return Ok(());
        }
        let mut plain = Vec::new();
        for field in self.file_schema.fields() {
            let Some(column) = batch.column_by_name(field.name()) else {
                continue;
            };
            let sampled = column.slice(0, rows);
            if sampled.data_type().is_nested() || *sampled.data_type() == DataType::Boolean {
                continue;
            }
            let Ok(converter) = arrow::row::RowConverter::new(vec![arrow::row::SortField::new(
                sampled.data_type().clone(),
            )]) else {
                continue;
            };
            let Ok(encoded) = converter.convert_columns(&[sampled]) else {
                continue;
            };
            let distinct: std::collections::HashSet<&[u8]> =
                (0..rows).map(|i| encoded.row(i).data()).collect();
            if distinct.len() * 10 >= rows * 9 {
                plain.push(field.name().clone());
            }
        }
        if !plain.is_empty() {
            self.options.plain_columns = plain;
            self.properties = self.options.writer_properties()?;
        }
        Ok(())
    }

    async fn write_to(&mut self, dir: &str, batch: &RecordBatch) -> Result<()> {
        let batch = self.project(batch)?;
        self.write_rows(dir, &batch).await
    }

    async fn write_rows(&mut self, dir: &str, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if !self.open.contains_key(dir) {
                self.open_file(dir).await?;
            }
            let open_files = self.open.len().max(1);
            let file = self.open.get_mut(dir).expect("opened above");
            let room = match self.options.max_rows_per_file {
                Some(max) => max - file.rows,
                None => usize::MAX,
            };
            let take = room.min(batch.num_rows() - offset);
            let slice = batch.slice(offset, take);
            file.writer
                .write(&slice)
                .await
                .map_err(|e| Error::from_parquet(&file.target, e))?;
            file.rows += take;
            offset += take;
            let mut full = self
                .options
                .max_rows_per_file
                .is_some_and(|max| file.rows >= max);
            if let Some(limit) = self.options.max_buffered_bytes {
                let share = (limit as usize / open_files).max(1 << 20);
                if file.writer.in_progress_size() >= share {
                    file.writer
                        .flush()
                        .await
                        .map_err(|e| Error::from_parquet(&file.target, e))?;
                }
            }
            if let Some(max_bytes) = self.options.max_file_bytes {
                // The in-progress row group is measured before compression; flushing it
                // often keeps the estimate close and the buffered bytes bounded.
                let flush_at = (max_bytes / 8).clamp(1 << 20, 64 << 20) as usize;
                if file.writer.in_progress_size() >= flush_at {
                    file.writer
                        .flush()
                        .await
                        .map_err(|e| Error::from_parquet(&file.target, e))?;
                }
                let size = file.writer.bytes_written() + file.writer.in_progress_size();
                full |= size as u64 >= max_bytes;
            }
            if full {
                self.close_file(dir).await?;
            }
        }
        Ok(())
    }

    async fn open_file(&mut self, dir: &str) -> Result<()> {
        if self.open.len() >= MAX_OPEN_FILES
            && let Some(oldest) = self.open_order.first().cloned()
        {
            self.close_file(&oldest).await?;
        }
        // Names are unique within the transaction (parallel writers share the staging
        // area); against existing files, publishing is create-if-absent.
        let target = loop {
            let name = self.options.file_name();
            let target = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            if self.staging.reserve(&target) {
                break target;
            }
        };
        let staged = self.staging.staging_relative(&target);
        let path = self.staging.location().child(&staged);
        let checksum = Arc::new(std::sync::Mutex::new(Checksum::default()));
        let object_writer = ChecksummedWriter {
            inner: ParquetObjectWriter::new(Arc::clone(self.staging.location().store()), path),
            checksum: Arc::clone(&checksum),
        };
        let writer = AsyncArrowWriter::try_new(
            object_writer,
            Arc::clone(&self.file_schema),
            Some(self.properties.clone()),
        )
        .map_err(|e| Error::from_parquet(&target, e))?;
        self.open.insert(
            dir.to_string(),
            OpenFile {
                writer,
                checksum,
                target,
                staged,
                rows: 0,
            },
        );
        self.open_order.push(dir.to_string());
        Ok(())
    }

    async fn close_file(&mut self, dir: &str) -> Result<()> {
        let Some(mut file) = self.open.remove(dir) else {
            return Ok(());
        };
        self.open_order.retain(|d| d != dir);
        crate::commit::failpoints::failpoint("write.close_file", self.staging.location())?;
        file.writer
            .finish()
            .await
            .map_err(|e| Error::from_parquet(&file.target, e))?;
        let size = file.writer.bytes_written() as u64;
        let entry = PublishEntry {
            staged: file.staged,
            target: file.target,
            size_bytes: size,
            row_count: file.rows as u64,
            checksum: file.checksum.lock().ok().map(|c| c.render()),
        };
        self.finished.push(entry);
        Ok(())
    }

    /// Closes every file. An input with no rows writes one empty file with the schema.
    /// Returns the staged files in order; add them to the transaction.
    pub async fn finish(self) -> Result<Vec<PublishEntry>> {
        self.close(true).await
    }

    /// Closes every file; writes nothing for an input with no rows.
    pub async fn finish_allow_none(self) -> Result<Vec<PublishEntry>> {
        self.close(false).await
    }

    async fn close(mut self, create_empty: bool) -> Result<Vec<PublishEntry>> {
        if create_empty && self.finished.is_empty() && self.open.is_empty() {
            // A partitioned dataset keeps its layout: the empty file goes to the null
            // partition, so the partition columns still exist for readers and merges.
            let nulls = vec![None; self.options.partition_by.len()];
            let dir = partition_dir(&self.options.partition_by, &nulls);
            self.open_file(&dir).await?;
        }
        let dirs = self.open_order.clone();
        for dir in dirs {
            self.close_file(&dir).await?;
        }
        Ok(self.finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes_and_codecs() {
        assert_eq!(
            "Overwrite".parse::<WriteMode>().unwrap(),
            WriteMode::Overwrite
        );
        let err = "replace".parse::<WriteMode>().unwrap_err();
        assert!(
            err.to_string().contains("replace") && err.to_string().contains("append, overwrite")
        );
        assert_eq!("zstd:3".parse::<Codec>().unwrap().level, Some(3));
        assert!("zstd:99".parse::<Codec>().is_err());
        assert!("snappy:1".parse::<Codec>().is_err());
        let err = "lzo".parse::<Codec>().unwrap_err();
        assert!(err.to_string().contains("lzo") && err.to_string().contains("brotli"));
    }

    #[test]
    fn validates_options() {
        let err = WriteOptions::default()
            .with_max_rows_per_file(0)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("max_rows_per_file") && err.to_string().contains('0'));
        assert!(
            WriteOptions::default()
                .with_row_group_size(0)
                .validate()
                .is_err()
        );
        assert!(
            WriteOptions::default()
                .with_basename_template("data.parquet")
                .validate()
                .is_err()
        );
        assert!(
            WriteOptions::default()
                .with_basename_template("data_{}.csv")
                .validate()
                .is_err()
        );
        assert!(
            WriteOptions::default()
                .with_basename_template("data_{}.parquet")
                .validate()
                .is_ok()
        );
        let name = WriteOptions::default()
            .with_basename_template("data_{}.parquet")
            .file_name();
        assert!(name.starts_with("data_") && name.len() == "data_.parquet".len() + 8);
        assert!(
            WriteOptions::default()
                .with_partition_by(["_x"])
                .validate()
                .is_err()
        );
    }
}
