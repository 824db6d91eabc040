//! The arrow engine's sort primitive: an external merge sort over arrow's row format.
//!
//! Input batches are buffered until the budget is reached, then sorted (a stable sort of
//! their keys in arrow's row format, which compares multi-column keys as bytes, over
//! (batch, row) positions, the rows gathered a chunk at a time) and spilled to a temporary
//! Arrow IPC file: a run. At the end, with no run, the buffer is sorted in
//! memory; otherwise the last buffer becomes a run too and the runs are merged, one batch
//! per run in memory at a time. Ties keep input order (runs are merged earliest first).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::SortOptions;
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, Rows, SortField};
use futures::StreamExt;

use fsk_core::engine::{Batches, Sorted};
use fsk_core::error::{Error, Result};
use fsk_core::plan::sort::{MemoryBudget, SortKey, validate_keys};

/// Rows per output batch.
const OUTPUT_ROWS: usize = 8192;

struct Keys {
    converter: RowConverter,
    columns: Vec<usize>,
}

impl Keys {
    fn new(schema: &SchemaRef, keys: &[SortKey]) -> Result<Self> {
        let mut fields = Vec::with_capacity(keys.len());
        let mut columns = Vec::with_capacity(keys.len());
        for key in keys {
            let index = schema
                .index_of(&key.column)
                .map_err(|_| Error::column_not_found(&key.column, "sort input", schema))?;
            columns.push(index);
            fields.push(SortField::new_with_options(
                schema.field(index).data_type().clone(),
                SortOptions {
                    descending: key.descending,
                    nulls_first: key.nulls_first,
                },
            ));
        }
        let converter = RowConverter::new(fields).map_err(|e| Error::arrow("sorting", e))?;
        Ok(Keys { converter, columns })
    }

    fn rows(&self, batch: &RecordBatch) -> Result<Rows> {
        let columns: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        self.converter
            .convert_columns(&columns)
            .map_err(|e| Error::arrow("encoding sort keys", e))
    }

    /// The stable order of the rows of `batches`, as (batch, row) pairs: nothing is copied
    /// until the rows are gathered a chunk at a time ([`gather`]).
    fn order(&self, batches: &[RecordBatch]) -> Result<Vec<(u32, u32)>> {
        let rows: Vec<Rows> = batches
            .iter()
            .map(|b| self.rows(b))
            .collect::<Result<_>>()?;
        let mut order: Vec<(u32, u32)> = batches
            .iter()
            .enumerate()
            .flat_map(|(b, batch)| (0..batch.num_rows() as u32).map(move |r| (b as u32, r)))
            .collect();
        order.sort_by(|&(ab, ar), &(bb, br)| {
            rows[ab as usize]
                .row(ar as usize)
                .cmp(&rows[bb as usize].row(br as usize))
        });
        Ok(order)
    }
}

/// The rows at `order` of `batches`, in that order, as one batch.
fn gather(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    order: &[(u32, u32)],
) -> Result<RecordBatch> {
    if order.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::clone(schema)));
    }
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    let indices: Vec<(usize, usize)> = order
        .iter()
        .map(|&(b, r)| (b as usize, r as usize))
        .collect();
    arrow::compute::interleave_record_batch(&refs, &indices).map_err(|e| Error::arrow("sorting", e))
}

/// Sorts `input` by `keys` within `budget` with arrow-rs kernels, spilling sorted runs to
/// Arrow IPC files beyond it.
pub async fn sort(input: Batches, keys: &[SortKey], budget: &MemoryBudget) -> Result<Sorted> {
    let (schema, mut stream) = input.into_parts();
    validate_keys(&schema, keys)?;
    let sorter = Keys::new(&schema, keys)?;
    let spills = Arc::new(AtomicU64::new(0));
    let dir = budget.spill_dir();
    let mut buffer: Vec<RecordBatch> = Vec::new();
    let mut buffered = 0usize;
    let mut runs: Vec<tempfile::NamedTempFile> = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        buffered += batch.get_array_memory_size();
        buffer.push(batch);
        if buffered > budget.bytes {
            runs.push(spill(&sorter, &schema, &dir, std::mem::take(&mut buffer))?);
            spills.fetch_add(1, Ordering::SeqCst);
            buffered = 0;
        }
    }
    if runs.is_empty() {
        // In memory: the rows are gathered a chunk at a time as the stream is read.
        let order = sorter.order(&buffer)?;
        let out = Arc::clone(&schema);
        let chunks = (0..order.len()).step_by(OUTPUT_ROWS).map(move |start| {
            let end = (start + OUTPUT_ROWS).min(order.len());
            gather(&out, &buffer, &order[start..end])
        });
        return Ok(Sorted {
            stream: futures::stream::iter(chunks).boxed(),
            executor: "arrow-rs",
            spills,
            spills_observed: true,
        });
    }
    if !buffer.is_empty() {
        runs.push(spill(&sorter, &schema, &dir, buffer)?);
        spills.fetch_add(1, Ordering::SeqCst);
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = merge_runs(&sorter, &schema, runs, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    Ok(Sorted {
        stream: futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed(),
        executor: "arrow-rs",
        spills,
        spills_observed: true,
    })
}

fn spill_error(dir: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("spilling a sort run to {}: {e}", dir.display()))
}

/// Sorts `batches` and writes them to a new IPC file in `dir`.
fn spill(
    sorter: &Keys,
    schema: &SchemaRef,
    dir: &std::path::Path,
    batches: Vec<RecordBatch>,
) -> Result<tempfile::NamedTempFile> {
    let order = sorter.order(&batches)?;
    let file = tempfile::Builder::new()
        .prefix("fsk-sort-")
        .suffix(".arrow")
        .tempfile_in(dir)
        .map_err(|e| spill_error(dir, e))?;
    let options = fsk_core::plan::sort::spill_write_options().map_err(|e| spill_error(dir, e))?;
    let mut writer = arrow_ipc::writer::FileWriter::try_new_with_options(
        BufWriter::new(file.reopen().map_err(|e| spill_error(dir, e))?),
        schema,
        options,
    )
    .map_err(|e| spill_error(dir, e))?;
    // A chunk at a time: the run costs one chunk beyond its input, not a sorted copy.
    for chunk in order.chunks(OUTPUT_ROWS) {
        let chunk = gather(schema, &batches, chunk)?;
        writer.write(&chunk).map_err(|e| spill_error(dir, e))?;
    }
    writer.finish().map_err(|e| spill_error(dir, e))?;
    Ok(file)
}

/// One run being merged: its reader and current batch.
struct Cursor {
    reader: arrow_ipc::reader::FileReader<BufReader<File>>,
    batch: RecordBatch,
    rows: Rows,
    at: usize,
    /// The batch's index in the output chunk's sources.
    source: usize,
}

impl Cursor {
    /// Moves to the next non-empty batch; false at the end of the run.
    fn advance(&mut self, sorter: &Keys) -> Result<bool> {
        for next in self.reader.by_ref() {
            let batch = next.map_err(|e| Error::arrow("reading a sort run", e))?;
            if batch.num_rows() > 0 {
                self.rows = sorter.rows(&batch)?;
                self.batch = batch;
                self.at = 0;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Merges sorted runs into `tx`, [`OUTPUT_ROWS`] rows a batch.
fn merge_runs(
    sorter: &Keys,
    schema: &SchemaRef,
    runs: Vec<tempfile::NamedTempFile>,
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch>>,
) -> Result<()> {
    let mut cursors: Vec<Option<Cursor>> = Vec::with_capacity(runs.len());
    for run in &runs {
        let file = run
            .reopen()
            .map_err(|e| Error::Internal(format!("reopening a sort run: {e}")))?;
        let reader = arrow_ipc::reader::FileReader::try_new(BufReader::new(file), None)
            .map_err(|e| Error::arrow("reading a sort run", e))?;
        let mut cursor = Cursor {
            reader,
            batch: RecordBatch::new_empty(Arc::clone(schema)),
            rows: sorter.rows(&RecordBatch::new_empty(Arc::clone(schema)))?,
            at: 0,
            source: 0,
        };
        cursors.push(cursor.advance(sorter)?.then_some(cursor));
    }
    let mut sources: Vec<RecordBatch> = Vec::new();
    let mut indices: Vec<(usize, usize)> = Vec::with_capacity(OUTPUT_ROWS);
    for cursor in cursors.iter_mut().flatten() {
        cursor.source = sources.len();
        sources.push(cursor.batch.clone());
    }
    loop {
        // The smallest current row; ties go to the earliest run (stable).
        let mut best: Option<usize> = None;
        for (i, cursor) in cursors.iter().enumerate() {
            let Some(c) = cursor else { continue };
            best = match best {
                Some(b) => {
                    let current = cursors[b].as_ref().expect("live cursor");
                    if c.rows.row(c.at) < current.rows.row(current.at) {
                        Some(i)
                    } else {
                        Some(b)
                    }
                }
                None => Some(i),
            };
        }
        let Some(b) = best else { break };
        let cursor = cursors[b].as_mut().expect("live cursor");
        indices.push((cursor.source, cursor.at));
        cursor.at += 1;
        let exhausted = cursor.at == cursor.batch.num_rows();
        if indices.len() == OUTPUT_ROWS || exhausted {
            emit(schema, &sources, &mut indices, tx)?;
            if exhausted && !cursor.advance(sorter)? {
                cursors[b] = None;
            }
            // Only the live batches stay referenced.
            sources.clear();
            for cursor in cursors.iter_mut().flatten() {
                cursor.source = sources.len();
                sources.push(cursor.batch.clone());
            }
        }
    }
    emit(schema, &sources, &mut indices, tx)?;
    Ok(())
}

fn emit(
    schema: &SchemaRef,
    sources: &[RecordBatch],
    indices: &mut Vec<(usize, usize)>,
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch>>,
) -> Result<()> {
    if indices.is_empty() {
        return Ok(());
    }
    let refs: Vec<&RecordBatch> = sources.iter().collect();
    let batch = arrow::compute::interleave_record_batch(&refs, indices)
        .map_err(|e| Error::arrow("merging sort runs", e))?;
    debug_assert_eq!(batch.schema().fields().len(), schema.fields().len());
    indices.clear();
    if tx.blocking_send(Ok(batch)).is_err() {
        return Err(Error::Internal("the sort's reader went away".into()));
    }
    Ok(())
}
