//! Parquet footers: rows, row groups, schema, merged per-column statistics, codecs and bloom
//! filter presence. Footers are read concurrently and once per operation; the parsed
//! [`ArrowReaderMetadata`] is kept so readers never fetch a footer again.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, UInt64Array};
use arrow::datatypes::SchemaRef;
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};

use crate::dataset::listing::DataFile;
use crate::dataset::stats::ColumnStats;
use crate::dataset::storage::Location;
use crate::error::{Error, Result};
use crate::value::ScalarValue;

/// How many footers are fetched at once.
pub const FOOTER_CONCURRENCY: usize = 32;

/// How many bytes at the end of a file one footer read fetches: a footer that fits (nearly
/// all do) costs one request instead of two (the 8-byte tail, then the metadata), which
/// halves planning round trips on object stores. A larger footer costs one more request.
pub const FOOTER_SIZE_HINT: usize = 64 * 1024;

/// The same for local files, where a second read costs microseconds and a larger one costs
/// copying and page faults (footers of fsk's files are a few KiB).
pub const LOCAL_FOOTER_SIZE_HINT: usize = 16 * 1024;

/// The footer of one data file.
#[derive(Clone, Debug)]
pub struct FileMeta {
    /// The file.
    pub file: DataFile,
    /// Rows in the file.
    pub num_rows: u64,
    /// Row groups in the file.
    pub num_row_groups: usize,
    /// The file's Arrow schema (without partition columns).
    pub schema: SchemaRef,
    /// Per top-level column statistics merged across row groups.
    pub column_stats: HashMap<String, ColumnStats>,
    /// Compression codecs used by the file's column chunks.
    pub codecs: BTreeSet<String>,
    /// Top-level columns with a bloom filter in every row group.
    pub bloom_filter_columns: BTreeSet<String>,
    /// Top-level columns whose dictionary overflowed in some row group (data pages fell back
    /// to a non-dictionary encoding): high-cardinality columns that a rewrite should encode
    /// without trying a dictionary first.
    pub dictionary_fallback_columns: BTreeSet<String>,
    /// The parsed footer, for readers.
    pub reader_metadata: ArrowReaderMetadata,
    /// Whether the footer was repaired before decoding (a `total_byte_size` an older writer
    /// left out, filled in): a reader that parses footers itself may refuse the file.
    pub footer_repaired: bool,
}

impl FileMeta {
    /// The parquet metadata.
    pub fn metadata(&self) -> &Arc<ParquetMetaData> {
        self.reader_metadata.metadata()
    }
}

/// A reader for `file` that knows its size (no HEAD request).
pub fn object_reader(location: &Location, file: &DataFile) -> ParquetObjectReader {
    ParquetObjectReader::new(Arc::clone(location.store()), file.path.clone())
        .with_file_size(file.size)
}

/// Every row of a file, batch by batch in file order, reusing its parsed footer (no second
/// footer read); errors name the file.
pub fn file_batches(
    location: &Location,
    meta: &FileMeta,
    batch_size: usize,
) -> Result<futures::stream::BoxStream<'static, Result<arrow::array::RecordBatch>>> {
    let describe = location.describe(&meta.file.path);
    let stream = parquet::arrow::ParquetRecordBatchStreamBuilder::new_with_metadata(
        object_reader(location, &meta.file),
        meta.reader_metadata.clone(),
    )
    .with_batch_size(batch_size)
    .build()
    .map_err(|e| Error::from_parquet(&describe, e))?;
    Ok(stream
        .map_err(move |e| Error::from_parquet(&describe, e))
        .boxed())
}

/// The largest footer fsk decodes: a bound on what a crafted file can make it allocate
/// (real footers are kilobytes; a 1000-column file with a few hundred row groups stays
/// within a few MiB).
pub const MAX_FOOTER_BYTES: usize = 32 << 20;

/// Reads one file's footer.
///
/// Hostile files are refused before the parquet decoder sees them, with
/// [`Error::CorruptFile`]: a footer length beyond the file or [`MAX_FOOTER_BYTES`], thrift
/// that claims more elements than its bytes hold, schemas nested too deep, negative offsets
/// (see [`crate::dataset::footer_guard`]); a decoder panic on anything left is caught as well. Files
/// of other writers are read as pyarrow reads them: INT96 timestamps come out as
/// microseconds (no overflow outside 1677-2262), a `dictionary_page_offset` of 0 means no
/// dictionary offset, and a row group without `total_byte_size` is accepted.
pub async fn read_footer(location: &Location, file: DataFile) -> Result<FileMeta> {
    let describe = location.describe(&file.path);
    let (metadata, footer_repaired) = fetch_metadata(location, &file, &describe).await?;
    let options = ArrowReaderOptions::new()
        .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Skip);
    let reader_metadata = guarded(&describe, || {
        ArrowReaderMetadata::try_new(Arc::clone(&metadata), options.clone())
    })?;
    let reader_metadata = int96_as_micros(reader_metadata, &metadata, options)
        .map_err(|e| Error::from_parquet(&describe, e))?;
    let metadata = Arc::clone(reader_metadata.metadata());
    let schema = Arc::clone(reader_metadata.schema());
    let num_rows = metadata.file_metadata().num_rows().max(0) as u64;
    let row_groups = metadata.row_groups();
    let mut column_stats = HashMap::new();
    for field in schema.fields() {
        if let Some(stats) = merged_stats(field.name(), &schema, &metadata, num_rows)
            .map_err(|e| Error::from_parquet(&describe, e))?
        {
            column_stats.insert(field.name().clone(), stats);
        }
    }
    let mut codecs = BTreeSet::new();
    for rg in row_groups {
        for col in rg.columns() {
            codecs.insert(format!("{:?}", col.compression()).to_lowercase());
        }
    }
    let mut bloom_filter_columns = BTreeSet::new();
    if !row_groups.is_empty() {
        let descr = metadata.file_metadata().schema_descr();
        for (index, column) in descr.columns().iter().enumerate() {
            let top = column.path().parts()[0].clone();
            if row_groups
                .iter()
                .all(|rg| rg.column(index).bloom_filter_offset().is_some())
            {
                bloom_filter_columns.insert(top);
            }
        }
    }
    let mut dictionary_fallback_columns = BTreeSet::new();
    {
        use parquet::basic::Encoding;
        let descr = metadata.file_metadata().schema_descr();
        for (index, column) in descr.columns().iter().enumerate() {
            let width = match column.physical_type() {
                parquet::basic::Type::INT32 | parquet::basic::Type::FLOAT => 4,
                parquet::basic::Type::INT64 | parquet::basic::Type::DOUBLE => 8,
                _ => 0,
            };
            let fell_back = row_groups.iter().any(|rg| {
                let chunk = rg.column(index);
                let overflowed = chunk.page_encoding_stats_mask().is_some_and(|mask| {
                    !(mask.is_only(Encoding::PLAIN_DICTIONARY)
                        || mask.is_only(Encoding::RLE_DICTIONARY))
                });
                // A fixed-width column whose dictionary holds more entries than half its
                // values (mostly distinct: ids, measures, timestamps) gains nothing from it.
                let mostly_distinct = width > 0
                    && chunk.dictionary_page_offset().is_some_and(|dict| {
                        let dict_bytes = (chunk.data_page_offset() - dict).max(0) as u64;
                        dict_bytes / width * 2 > chunk.num_values().max(0) as u64
                    });
                overflowed || mostly_distinct
            });
            if fell_back && column.path().parts().len() == 1 {
                dictionary_fallback_columns.insert(column.path().parts()[0].clone());
            }
        }
    }
    Ok(FileMeta {
        footer_repaired,
        num_rows,
        num_row_groups: row_groups.len(),
        schema,
        column_stats,
        codecs,
        bloom_filter_columns,
        dictionary_fallback_columns,
        reader_metadata,
        file,
    })
}

/// Fetches, checks and decodes a file's footer: one ranged read for nearly every file (the
/// last [`FOOTER_SIZE_HINT`] bytes, [`LOCAL_FOOTER_SIZE_HINT`] on local disk), a second only
/// for a larger footer.
async fn fetch_metadata(
    location: &Location,
    file: &DataFile,
    describe: &str,
) -> Result<(Arc<ParquetMetaData>, bool)> {
    use object_store::ObjectStoreExt;
    use parquet::file::metadata::ParquetMetaDataReader;
    let corrupt = |message: String| Error::CorruptFile {
        path: describe.to_string(),
        message,
    };
    const TAIL: u64 = 8;
    if file.size < 12 {
        return Err(corrupt(format!(
            "{} bytes is too small for a parquet file",
            file.size
        )));
    }
    let store = location.store();
    let hint = if location.local_root().is_some() {
        LOCAL_FOOTER_SIZE_HINT
    } else {
        FOOTER_SIZE_HINT
    };
    let fetched = (hint as u64).min(file.size);
    let tail = store
        .get_range(&file.path, file.size - fetched..file.size)
        .await
        .map_err(|e| Error::from_store(describe.to_string(), e))?;
    if tail.len() as u64 != fetched {
        return Err(corrupt(format!(
            "the file is shorter than the {} bytes listed",
            file.size
        )));
    }
    let end: [u8; 8] = tail[tail.len() - 8..]
        .try_into()
        .map_err(|_| corrupt("no footer".into()))?;
    let footer_tail = parquet::file::metadata::FooterTail::try_from(end)
        .map_err(|e| corrupt(format!("not a parquet file: {e}")))?;
    if footer_tail.is_encrypted_footer() {
        return Err(corrupt("encrypted footers (PARE) are not supported".into()));
    }
    let length = footer_tail.metadata_length();
    if length as u64 + TAIL + 4 > file.size {
        return Err(corrupt(format!(
            "footer length {length} exceeds the file ({} bytes)",
            file.size
        )));
    }
    if length > MAX_FOOTER_BYTES {
        return Err(corrupt(format!(
            "footer length {length} exceeds fsk's limit of {MAX_FOOTER_BYTES} bytes"
        )));
    }
    let footer = if length + 8 <= tail.len() {
        tail.slice(tail.len() - 8 - length..tail.len() - 8)
    } else {
        let start = file.size - TAIL - length as u64;
        store
            .get_range(&file.path, start..file.size - TAIL)
            .await
            .map_err(|e| Error::from_store(describe.to_string(), e))?
    };
    crate::dataset::footer_guard::validate_footer(&footer, &Default::default())
        .map_err(&corrupt)?;
    let repaired_footer =
        crate::dataset::footer_guard::with_total_byte_size(&footer).map_err(&corrupt)?;
    let repaired = repaired_footer.len() != footer.len();
    let metadata = guarded(describe, || {
        ParquetMetaDataReader::decode_metadata(&repaired_footer)
    })?;
    let metadata = normalise_offsets(metadata, file.size).map_err(corrupt)?;
    Ok((Arc::new(metadata), repaired))
}

/// Runs a parquet decoding step; a panic inside it (a malformed file the decoder does not
/// check) becomes [`Error::CorruptFile`] instead of taking the process down.
fn guarded<T>(describe: &str, decode: impl FnOnce() -> parquet::errors::Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Error::from_parquet(describe, e)),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".to_string());
            Err(Error::CorruptFile {
                path: describe.to_string(),
                message: format!("the parquet decoder failed: {message}"),
            })
        }
    }
}

/// Checks every column chunk's byte range against the file, and reads a
/// `dictionary_page_offset` that is not before the data pages (0, as some writers put for
/// "no dictionary") as absent, as Arrow C++ and pyarrow do.
fn normalise_offsets(
    metadata: ParquetMetaData,
    file_size: u64,
) -> std::result::Result<ParquetMetaData, String> {
    let mut odd = false;
    for (r, rg) in metadata.row_groups().iter().enumerate() {
        for (c, chunk) in rg.columns().iter().enumerate() {
            let data = chunk.data_page_offset();
            let size = chunk.compressed_size();
            let dictionary = chunk.dictionary_page_offset();
            if dictionary.is_some_and(|d| d <= 0 || d >= data) {
                odd = true;
            }
            let start = match dictionary {
                Some(d) if d > 0 && d < data => d,
                _ => data,
            };
            let in_file = start >= 0
                && size >= 0
                && (start as u64)
                    .checked_add(size as u64)
                    .is_some_and(|end| end <= file_size);
            if !in_file {
                return Err(format!(
                    "column chunk {c} of row group {r} lies outside the file (offset {start}, \
                     {size} bytes, file {file_size} bytes)"
                ));
            }
        }
    }
    if !odd {
        return Ok(metadata);
    }
    let mut builder = metadata.into_builder();
    let row_groups = builder.take_row_groups();
    let mut fixed = Vec::with_capacity(row_groups.len());
    for rg in row_groups {
        let columns = rg
            .columns()
            .iter()
            .map(|chunk| {
                let keep = chunk
                    .dictionary_page_offset()
                    .filter(|d| *d > 0 && *d < chunk.data_page_offset());
                chunk
                    .clone()
                    .into_builder()
                    .set_dictionary_page_offset(keep)
                    .build()
            })
            .collect::<parquet::errors::Result<Vec<_>>>()
            .map_err(|e| e.to_string())?;
        fixed.push(
            rg.into_builder()
                .set_column_metadata(columns)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(builder.set_row_groups(fixed).build())
}

/// Reads top-level INT96 columns (Spark, Impala, Hive timestamps) as microsecond timestamps:
/// the decoder computes microseconds from the Julian day directly, so instants outside
/// 1677-2262 stay right instead of wrapping as nanoseconds would.
fn int96_as_micros(
    reader_metadata: ArrowReaderMetadata,
    metadata: &Arc<ParquetMetaData>,
    options: ArrowReaderOptions,
) -> parquet::errors::Result<ArrowReaderMetadata> {
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let root = reader_metadata.parquet_schema().root_schema();
    let fields = root.get_fields();
    let schema = reader_metadata.schema();
    if fields.len() != schema.fields().len()
        || !fields
            .iter()
            .any(|t| t.is_primitive() && t.get_physical_type() == parquet::basic::Type::INT96)
    {
        return Ok(reader_metadata);
    }
    let coerced: Vec<Arc<Field>> = schema
        .fields()
        .iter()
        .zip(fields)
        .map(|(field, parquet_type)| {
            if parquet_type.is_primitive()
                && parquet_type.get_physical_type() == parquet::basic::Type::INT96
            {
                Arc::new(
                    field
                        .as_ref()
                        .clone()
                        .with_data_type(DataType::Timestamp(TimeUnit::Microsecond, None)),
                )
            } else {
                Arc::clone(field)
            }
        })
        .collect();
    let supplied = Arc::new(Schema::new_with_metadata(
        coerced,
        schema.metadata().clone(),
    ));
    ArrowReaderMetadata::try_new(Arc::clone(metadata), options.with_schema(supplied))
}

/// Reads the footers of `files` concurrently, in order: each a spawned task, so footers
/// decode on every core, not only on the task that asked.
pub async fn read_footers(location: &Location, files: Vec<DataFile>) -> Result<Vec<FileMeta>> {
    crate::tasks::run_bounded(
        files.into_iter().map(|file| {
            let location = location.clone();
            async move { read_footer(&location, file).await }
        }),
        FOOTER_CONCURRENCY,
    )
    .await
}

/// Statistics of one row group's columns, for row-group pruning.
pub fn row_group_stats(
    meta: &FileMeta,
    row_group: usize,
    columns: &BTreeSet<String>,
) -> HashMap<String, ColumnStats> {
    let metadata = meta.metadata();
    let rg = &metadata.row_groups()[row_group];
    let rows = rg.num_rows().max(0) as u64;
    let mut out = HashMap::new();
    for column in columns {
        if meta.schema.field_with_name(column).is_err() {
            continue;
        }
        if let Ok(Some(stats)) = stats_over(
            column,
            &meta.schema,
            metadata.file_metadata().schema_descr(),
            std::iter::once(rg),
            rows,
        ) {
            out.insert(column.clone(), stats);
        }
    }
    out
}

fn merged_stats(
    column: &str,
    schema: &SchemaRef,
    metadata: &ParquetMetaData,
    num_rows: u64,
) -> parquet::errors::Result<Option<ColumnStats>> {
    stats_over(
        column,
        schema,
        metadata.file_metadata().schema_descr(),
        metadata.row_groups().iter(),
        num_rows,
    )
}

fn stats_over<'a, I>(
    column: &str,
    schema: &'a SchemaRef,
    descr: &'a parquet::schema::types::SchemaDescriptor,
    row_groups: I,
    num_rows: u64,
) -> parquet::errors::Result<Option<ColumnStats>>
where
    I: Iterator<Item = &'a RowGroupMetaData> + Clone,
{
    let converter = match StatisticsConverter::try_new(column, schema, descr) {
        Ok(c) => c,
        // Nested or unsupported columns simply have no statistics.
        Err(_) => return Ok(None),
    };
    if converter.parquet_column_index().is_none() {
        return Ok(None);
    }
    let rg_rows: Vec<u64> = row_groups
        .clone()
        .map(|rg| rg.num_rows().max(0) as u64)
        .collect();
    let mins = converter.row_group_mins(row_groups.clone())?;
    let maxes = converter.row_group_maxes(row_groups.clone())?;
    let nulls = converter.row_group_null_counts(row_groups.clone())?;
    let min_exact = converter.row_group_is_min_value_exact(row_groups.clone())?;
    let max_exact = converter.row_group_is_max_value_exact(row_groups)?;
    let null_count = total_nulls(&nulls);
    let (min, min_ok) = extreme(&mins, &nulls, &rg_rows, &min_exact, true);
    let (max, max_ok) = extreme(&maxes, &nulls, &rg_rows, &max_exact, false);
    Ok(Some(ColumnStats {
        min,
        max,
        min_exact: min_ok,
        max_exact: max_ok,
        null_count,
        row_count: num_rows,
    }))
}

fn total_nulls(nulls: &UInt64Array) -> Option<u64> {
    if nulls.null_count() > 0 {
        return None;
    }
    Some(nulls.values().iter().sum())
}

/// The smallest (or largest) bound across row groups. A row group with rows that are not all
/// null but no bound makes the bound unknown. Returns the bound and whether it is exact.
fn extreme(
    values: &ArrayRef,
    nulls: &UInt64Array,
    rows: &[u64],
    exact: &BooleanArray,
    smallest: bool,
) -> (Option<ScalarValue>, bool) {
    let mut best: Option<usize> = None;
    let mut all_exact = true;
    let Ok(cmp) = arrow::array::make_comparator(
        values.as_ref(),
        values.as_ref(),
        arrow::compute::SortOptions::default(),
    ) else {
        return (None, false);
    };
    for (i, &group_rows) in rows.iter().enumerate().take(values.len()) {
        if values.is_null(i) {
            let all_null = nulls.is_valid(i) && nulls.value(i) == group_rows;
            if all_null {
                continue;
            }
            return (None, false);
        }
        if !(exact.is_valid(i) && exact.value(i)) {
            all_exact = false;
        }
        best = match best {
            None => Some(i),
            Some(b) => {
                let ord = cmp(i, b);
                let better = if smallest { ord.is_lt() } else { ord.is_gt() };
                Some(if better { i } else { b })
            }
        };
    }
    match best {
        Some(i) => (Some(ScalarValue::from_array(values.as_ref(), i)), all_exact),
        None => (None, false),
    }
}
