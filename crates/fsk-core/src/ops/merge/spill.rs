//! A merge source larger than memory: streamed through the engine's spilling sort by key
//! (then, for `deduplicate`, the order columns, then arrival), deduplicated on the way out
//! (the last row of each key's run wins: the last occurrence, or the highest order values),
//! and spilled in key order to an Arrow IPC file in the budget's folder. Only the distinct
//! keys stay in memory, as sorted columns that are also the key index (binary search), so
//! pruning and key confirmation are unchanged. A rewrite reads back only the batches that
//! hold its file's matched rows: in key order, those of a file with a narrow key range are a
//! few consecutive batches. The inserts stream from the file.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{OwnedRow, RowConverter, SortField};
use futures::StreamExt;

use crate::dataset::schema::conform_batch;
use crate::engine::{BatchStream, Batches, DatasetBackend};
use crate::error::{Error, Result};
use crate::ops::merge::source::{
    KeyEncoder, KeyIndex, PartitionKey, Source, SourceRows, key_batch, key_columns, partition_point,
};
use crate::ops::merge::{MergeOptions, Strategy};
use crate::plan::sort::{MemoryBudget, SortKey};
use crate::progress::{Progress, Unit};

/// The column numbering source rows in arrival order (ties of the sort go to the last).
const ARRIVAL: &str = "__fsk_source_row";

/// Rows per batch of the spill file: the unit a rewrite reads back.
const SPILL_BATCH_ROWS: usize = 8192;

/// The source's distinct rows in an Arrow IPC file, in key order; removed when dropped.
pub(crate) struct SpilledRows {
    path: tempfile::TempPath,
    /// The first row of each batch, ascending.
    starts: Vec<u32>,
    rows: u32,
    bytes: u64,
}

impl SpilledRows {
    /// The file's size.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    fn open(path: &std::path::Path) -> Result<arrow_ipc::reader::FileReader<BufReader<File>>> {
        let file = File::open(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        arrow_ipc::reader::FileReader::try_new(BufReader::new(file), None)
            .map_err(|e| Error::arrow("reading the spilled merge source", e))
    }

    /// The batch holding row `id` and its first row.
    fn batch_of(starts: &[u32], id: u32) -> usize {
        partition_point(starts.len(), |b| starts[b] <= id) - 1
    }

    /// Reads the rows `ids` (ascending, distinct) of the batches that hold them.
    fn read(
        reader: &mut arrow_ipc::reader::FileReader<BufReader<File>>,
        starts: &[u32],
        rows: u32,
        ids: &[u32],
    ) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            let b = Self::batch_of(starts, ids[i]);
            let (start, end) = (starts[b], starts.get(b + 1).copied().unwrap_or(rows));
            let j = i + partition_point(ids.len() - i, |k| ids[i + k] < end);
            reader
                .set_index(b)
                .map_err(|e| Error::arrow("reading the spilled merge source", e))?;
            let batch = reader
                .next()
                .transpose()
                .map_err(|e| Error::arrow("reading the spilled merge source", e))?
                .ok_or_else(|| Error::Internal("the spilled merge source ended early".into()))?;
            let (first, count) = ((ids[i] - start) as usize, j - i);
            out.push(if ids[j - 1] - ids[i] + 1 == count as u32 {
                batch.slice(first, count)
            } else {
                let local = UInt32Array::from_iter_values(ids[i..j].iter().map(|&id| id - start));
                arrow::compute::take_record_batch(&batch, &local)
                    .map_err(|e| Error::arrow("selecting source rows", e))?
            });
            i = j;
        }
        Ok(out)
    }

    /// The rows `ids` (ascending, distinct) as one batch of the dataset's schema.
    pub(crate) async fn take(&self, ids: &[u32]) -> Result<RecordBatch> {
        let path = self.path.to_path_buf();
        let (starts, rows, ids) = (self.starts.clone(), self.rows, ids.to_vec());
        tokio::task::spawn_blocking(move || {
            let mut reader = Self::open(&path)?;
            let schema = reader.schema();
            let parts = Self::read(&mut reader, &starts, rows, &ids)?;
            arrow::compute::concat_batches(&schema, &parts)
                .map_err(|e| Error::arrow("selecting source rows", e))
        })
        .await
        .map_err(|e| Error::Internal(format!("reading the spilled merge source: {e}")))?
    }

    /// The rows `ids` (ascending, distinct), a spill batch at a time.
    pub(crate) fn select(&self, ids: Vec<u32>) -> BatchStream {
        let path = self.path.to_path_buf();
        let (starts, rows) = (self.starts.clone(), self.rows);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
        tokio::task::spawn_blocking(move || {
            let run = || -> Result<()> {
                let mut reader = Self::open(&path)?;
                let mut i = 0;
                while i < ids.len() {
                    let b = Self::batch_of(&starts, ids[i]);
                    let end = starts.get(b + 1).copied().unwrap_or(rows);
                    let j = i + partition_point(ids.len() - i, |k| ids[i + k] < end);
                    for batch in Self::read(&mut reader, &starts, rows, &ids[i..j])? {
                        if tx.blocking_send(Ok(batch)).is_err() {
                            return Ok(());
                        }
                    }
                    i = j;
                }
                Ok(())
            };
            if let Err(e) = run() {
                let _ = tx.blocking_send(Err(e));
            }
        });
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }
}

/// A source streamed through the engine's sort and spilled: the [`Source`], its row count
/// as given, and what sorted it.
pub(crate) struct Spilled {
    pub(crate) source: Source,
    pub(crate) count: u64,
    pub(crate) sorted_by: &'static str,
}

/// Sorts the source (`read`, then `rest`; validated against `dataset_schema`) by key through
/// `backend`'s sort within half of the merge's budget, deduplicates it on the way out and
/// spills its rows, keeping the distinct keys in memory. Keys in memory beyond the budget are
/// a typed [`Error::OutOfMemory`].
pub(crate) async fn spill_source<B: DatasetBackend + ?Sized>(
    backend: &B,
    read: Vec<RecordBatch>,
    rest: BatchStream,
    rows_hint: Option<u64>,
    dataset_schema: &SchemaRef,
    partitions: &[String],
    options: &MergeOptions,
) -> Result<Spilled> {
    let progress: &Progress = &options.progress;
    progress.phase("sort source", rows_hint, Unit::Rows);
    if dataset_schema.field_with_name(ARRIVAL).is_ok() {
        return Err(Error::invalid_argument(
            "source column",
            ARRIVAL,
            "the name is reserved for a merge source larger than memory",
        ));
    }
    let mut fields: Vec<Field> = dataset_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(ARRIVAL, DataType::UInt64, false));
    let sort_schema: SchemaRef = Arc::new(Schema::new(fields));
    let count = Arc::new(AtomicU64::new(0));
    let already: u64 = read.iter().map(|b| b.num_rows() as u64).sum();
    progress.advance(already);
    let input = {
        let (count, key, target, schema) = (
            Arc::clone(&count),
            options.key.clone(),
            Arc::clone(dataset_schema),
            Arc::clone(&sort_schema),
        );
        let progress = progress.clone();
        futures::stream::iter(read.into_iter().map(Ok))
            .chain(rest.inspect(move |b| {
                if let Ok(b) = b {
                    progress.advance(b.num_rows() as u64);
                }
            }))
            .flat_map(|batch| futures::stream::iter(pieces(batch)))
            .map(move |batch| {
                let batch = batch?;
                key_columns(&batch, &key, "source")?;
                let conformed = conform_batch(&batch, &target)?;
                let start = count.fetch_add(batch.num_rows() as u64, Ordering::SeqCst);
                let arrival = UInt64Array::from_iter_values(start..start + batch.num_rows() as u64);
                let mut columns = conformed.columns().to_vec();
                columns.push(Arc::new(arrival) as ArrayRef);
                RecordBatch::try_new(Arc::clone(&schema), columns)
                    .map_err(|e| Error::arrow("numbering source rows", e))
            })
            .boxed()
    };
    let mut keys: Vec<SortKey> = options.key.iter().map(SortKey::asc).collect();
    if options.strategy == Strategy::Deduplicate {
        // The in-memory path compares order values in the row format: nulls first.
        keys.extend(options.dedup_order_by.iter().map(|c| SortKey {
            nulls_first: true,
            ..SortKey::asc(c)
        }));
    }
    keys.push(SortKey::asc(ARRIVAL));
    let budget = MemoryBudget {
        bytes: options.memory.bytes / 2,
        spill_dir: options.memory.spill_dir.clone(),
    };
    let sorted = backend
        .sort(
            Batches::new(Arc::clone(&sort_schema), input),
            &keys,
            &budget,
        )
        .await?;
    let sorted_by = sorted.executor;
    let mut out = Deduplicated::new(dataset_schema, partitions, options)?;
    let mut stream = sorted.stream;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let batch = conform_batch(
            &batch
                .project(&(0..dataset_schema.fields().len()).collect::<Vec<_>>())
                .map_err(|e| Error::arrow("reading the sorted source", e))?,
            dataset_schema,
        )?;
        out.push(batch)?;
    }
    let source = out.finish(&options.key)?;
    Ok(Spilled {
        source,
        count: count.load(Ordering::SeqCst),
        sorted_by,
    })
}

/// A source batch in pieces of at most [`SPILL_BATCH_ROWS`] rows, each its own copy: a sort
/// reserves memory a batch at a time (DataFusion fails on one larger than its pool) and a
/// slice would still hold, and be counted as, the whole batch's buffers.
fn pieces(batch: Result<RecordBatch>) -> Vec<Result<RecordBatch>> {
    let batch = match batch {
        Ok(batch) if batch.num_rows() > SPILL_BATCH_ROWS => batch,
        other => return vec![other],
    };
    (0..batch.num_rows())
        .step_by(SPILL_BATCH_ROWS)
        .map(|start| {
            let end = (start + SPILL_BATCH_ROWS).min(batch.num_rows());
            let rows = UInt32Array::from_iter_values(start as u32..end as u32);
            arrow::compute::take_record_batch(&batch, &rows)
                .map_err(|e| Error::arrow("reading the merge source", e))
        })
        .collect()
}

/// The sorted source's winners, written to the spill file as they are found.
struct Deduplicated {
    schema: SchemaRef,
    key: Vec<String>,
    partitions: Vec<String>,
    /// Compares adjacent keys.
    converter: RowConverter,
    /// The last row seen, kept until the next row shows whether its key's run ended.
    pending: Option<(RecordBatch, OwnedRow)>,
    writer: arrow_ipc::writer::FileWriter<std::io::BufWriter<File>>,
    file: tempfile::TempPath,
    /// Winners waiting to fill a spill batch.
    buffer: Vec<RecordBatch>,
    buffered: usize,
    starts: Vec<u32>,
    rows: u32,
    key_columns: Vec<RecordBatch>,
    key_bytes: usize,
    budget: usize,
    part_ids: HashMap<PartitionKey, u32>,
    part_keys: Vec<PartitionKey>,
    parts: Vec<u32>,
}

impl Deduplicated {
    fn new(schema: &SchemaRef, partitions: &[String], options: &MergeOptions) -> Result<Self> {
        let dir = options.memory.spill_dir();
        let spill_error = |e: &dyn std::fmt::Display| {
            Error::Internal(format!(
                "spilling the merge source to {}: {e}",
                dir.display()
            ))
        };
        let named = tempfile::Builder::new()
            .prefix("fsk-merge-source-")
            .suffix(".arrow")
            .tempfile_in(&dir)
            .map_err(|e| spill_error(&e))?;
        let handle = named.reopen().map_err(|e| spill_error(&e))?;
        let writer = arrow_ipc::writer::FileWriter::try_new_with_options(
            std::io::BufWriter::new(handle),
            schema,
            crate::plan::sort::spill_write_options().map_err(|e| spill_error(&e))?,
        )
        .map_err(|e| spill_error(&e))?;
        let fields = options
            .key
            .iter()
            .map(|k| {
                schema
                    .field_with_name(k)
                    .map(|f| SortField::new(f.data_type().clone()))
                    .map_err(|_| Error::column_not_found(k, "dataset", schema))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Deduplicated {
            schema: Arc::clone(schema),
            key: options.key.clone(),
            partitions: partitions.to_vec(),
            converter: RowConverter::new(fields).map_err(|e| Error::arrow("encoding keys", e))?,
            pending: None,
            writer,
            file: named.into_temp_path(),
            buffer: Vec::new(),
            buffered: 0,
            starts: Vec::new(),
            rows: 0,
            key_columns: Vec::new(),
            key_bytes: 0,
            budget: options.memory.bytes,
            part_ids: HashMap::new(),
            part_keys: Vec::new(),
            parts: Vec::new(),
        })
    }

    /// Takes a sorted batch: each row whose key differs from the next row's wins.
    fn push(&mut self, batch: RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let keys = self
            .converter
            .convert_columns(&key_columns(&batch, &self.key, "source")?)
            .map_err(|e| Error::arrow("encoding source keys", e))?;
        if let Some((row, key)) = self.pending.take()
            && key.row() != keys.row(0)
        {
            self.emit(row)?;
        }
        let winners = run_ends(&batch, &self.key)?;
        if !winners.is_empty() {
            let rows = if winners.len() == n - 1 {
                batch.slice(0, n - 1)
            } else {
                arrow::compute::take_record_batch(&batch, &UInt32Array::from(winners))
                    .map_err(|e| Error::arrow("deduplicating the source", e))?
            };
            self.emit(rows)?;
        }
        self.pending = Some((batch.slice(n - 1, 1), keys.row(n - 1).owned()));
        Ok(())
    }

    fn emit(&mut self, rows: RecordBatch) -> Result<()> {
        // The kept keys are copied out of the sorted batch: a slice would keep its buffers,
        // and arrays an engine hands over through the C data interface keep every column
        // of their batch alive (DuckDB's sorted source grew to 3 GB this way).
        let keys = key_batch(&rows, &self.key)?;
        let keys = RecordBatch::try_new(
            keys.schema(),
            keys.columns().iter().map(|c| deep_copy(c)).collect(),
        )
        .map_err(|e| Error::arrow("collecting source keys", e))?;
        self.key_bytes += keys.get_array_memory_size() + 4 * rows.num_rows();
        // The sorted keys are the index; an encoded copy may be made of them once (keys
        // that are not one integer column).
        if self.key_bytes.saturating_mul(2) > self.budget {
            return Err(Error::OutOfMemory {
                operation: "merge".into(),
                what: "the source's distinct keys".into(),
                needed: self.key_bytes as u64 * 2,
                budget: self.budget as u64,
            });
        }
        self.key_columns.push(keys);
        let (local_keys, local_parts) =
            crate::dataset::partition::group_rows(&rows, &self.partitions, "source")?;
        let ids: Vec<u32> = local_keys
            .into_iter()
            .map(|k| {
                let next = self.part_keys.len() as u32;
                *self.part_ids.entry(k.clone()).or_insert_with(|| {
                    self.part_keys.push(k);
                    next
                })
            })
            .collect();
        self.parts
            .extend(local_parts.into_iter().map(|p| ids[p as usize]));
        self.buffered += rows.num_rows();
        self.buffer.push(rows);
        if self.buffered >= SPILL_BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batch = arrow::compute::concat_batches(&self.schema, &self.buffer)
            .map_err(|e| Error::arrow("spilling the merge source", e))?;
        self.buffer.clear();
        self.buffered = 0;
        // Source rows are numbered with u32 (as in memory): never let the numbers wrap.
        let rows = u32::try_from(self.rows as u64 + batch.num_rows() as u64).map_err(|_| {
            Error::invalid_argument(
                "source",
                "more than 4,294,967,295 distinct keys",
                "a merge source holds at most 2^32 - 1 distinct keys; merge it in parts",
            )
        })?;
        self.starts.push(self.rows);
        self.rows = rows;
        self.writer
            .write(&batch)
            .map_err(|e| Error::arrow("spilling the merge source", e))
    }

    fn finish(mut self, key: &[String]) -> Result<Source> {
        if let Some((row, _)) = self.pending.take() {
            self.emit(row)?;
        }
        self.flush()?;
        self.writer
            .finish()
            .map_err(|e| Error::arrow("spilling the merge source", e))?;
        let key_schema = Arc::new(
            self.schema
                .project(
                    &key.iter()
                        .map(|k| self.schema.index_of(k).expect("validated key"))
                        .collect::<Vec<_>>(),
                )
                .map_err(|e| Error::arrow("projecting source keys", e))?,
        );
        let keys = arrow::compute::concat_batches(&key_schema, &self.key_columns)
            .map_err(|e| Error::arrow("collecting source keys", e))?;
        drop(std::mem::take(&mut self.key_columns));
        let encoder = KeyEncoder::new(&self.schema, key)?;
        let index = match encoder.encode(keys.columns())? {
            crate::ops::merge::source::BatchKeys::Int(values) => {
                if values.values().windows(2).any(|w| w[0] >= w[1]) {
                    return Err(unordered());
                }
                KeyIndex::SortedInt(values)
            }
            crate::ops::merge::source::BatchKeys::Rows(rows) => {
                if (1..rows.num_rows()).any(|i| rows.row(i - 1).data() >= rows.row(i).data()) {
                    return Err(unordered());
                }
                KeyIndex::SortedRows(rows)
            }
        };
        let bytes = std::fs::metadata(&self.file).map_or(0, |m| m.len());
        let (mut part_keys, mut parts) = (self.part_keys, self.parts);
        if part_keys.is_empty() {
            part_keys.push(Vec::new());
            parts.clear();
        }
        let first_key_sorted = Arc::clone(keys.column(0));
        Ok(Source {
            rows: SourceRows::Spilled(SpilledRows {
                path: self.file,
                starts: self.starts,
                rows: self.rows,
                bytes,
            }),
            keys,
            index,
            parts,
            part_keys,
            first_key_sorted,
        })
    }
}

/// The rows of a sorted batch whose key differs from the next row's (the last row of each
/// key's run, the batch's last row left out), compared a column at a time with arrow's
/// `distinct` kernel.
fn run_ends(batch: &RecordBatch, key: &[String]) -> Result<Vec<u32>> {
    let n = batch.num_rows();
    let mut differs: Option<arrow::array::BooleanArray> = None;
    for column in key_columns(batch, key, "source")? {
        let next = arrow::compute::kernels::cmp::distinct(
            &column.slice(0, n - 1),
            &column.slice(1, n - 1),
        )
        .map_err(|e| Error::arrow("comparing source keys", e))?;
        differs = Some(match differs {
            None => next,
            Some(before) => arrow::compute::or(&before, &next)
                .map_err(|e| Error::arrow("comparing source keys", e))?,
        });
    }
    let differs = differs.expect("at least one key column");
    Ok(differs.values().set_indices().map(|i| i as u32).collect())
}

/// `array` in buffers of its own.
fn deep_copy(array: &ArrayRef) -> ArrayRef {
    let data = array.to_data();
    let mut copy = arrow::array::MutableArrayData::new(vec![&data], false, array.len());
    copy.extend(0, 0, array.len());
    arrow::array::make_array(copy.freeze())
}

/// The engine's order disagreed with the row format's: the binary-searched index would miss
/// keys, so the merge stops before anything is written.
fn unordered() -> Error {
    Error::Internal(
        "the engine's sort did not order the source keys as the row format compares them".into(),
    )
}
