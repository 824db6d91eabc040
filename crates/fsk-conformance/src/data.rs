//! Test data and comparison helpers shared by the checks.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use fsk_core::dataset::storage::Location;
use fsk_core::engine::{Batches, DatasetBackend};
use fsk_core::{Operations, ReadOptions};

/// `id int64 not null, name utf8, amount float64, day date32` with `n` rows starting at `start`.
/// Days cycle over 2025-01-01..03; every fifth name is null.
pub fn sample(start: i64, n: usize) -> RecordBatch {
    let ids: Vec<i64> = (start..start + n as i64).collect();
    let names: Vec<Option<String>> = ids
        .iter()
        .map(|i| (i % 5 != 4).then(|| format!("name-{i}")))
        .collect();
    let amounts: Vec<f64> = ids.iter().map(|i| *i as f64 * 1.5).collect();
    // 2025-01-01 is day 20089 since the epoch.
    let days: Vec<i32> = ids
        .iter()
        .map(|i| 20089 + (i.rem_euclid(3)) as i32)
        .collect();
    RecordBatch::try_new(
        sample_schema(),
        vec![
            Arc::new(Int64Array::from(ids)) as ArrayRef,
            Arc::new(StringArray::from(names)),
            Arc::new(Float64Array::from(amounts)),
            Arc::new(Date32Array::from(days)),
        ],
    )
    .expect("sample batch")
}

/// The schema of [`sample`].
pub fn sample_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("day", DataType::Date32, true),
    ]))
}

/// `id int64 not null, v utf8` with `v = "{tag}{id}"`.
pub fn small_int64(ids: &[i64], tag: &str) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("{tag}{i}")).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("batch")
}

/// The evolved form of [`small_int32`]: `id` widened to int64 and a column `extra` added
/// (`v = "v{id}"`, `extra = "e"`).
pub fn evolved_int64(ids: &[i64]) -> RecordBatch {
    let base = small_int64(ids, "v");
    let mut fields: Vec<Field> = base
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("extra", DataType::Utf8, true));
    let mut columns = base.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec!["e"; ids.len()])));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
}

/// Writes `batch` as a dataset of its own (so its file keeps `batch`'s schema whatever the
/// target holds) and copies that one file into `into` as `name.parquet`.
pub async fn copy_in(
    backend: &dyn DatasetBackend,
    scratch: &Location,
    into: &Location,
    name: &str,
    batch: RecordBatch,
    options: &fsk_core::write::WriteOptions,
) {
    backend
        .write(scratch, batches(vec![batch]), options)
        .await
        .expect("write");
    let file = fsk_core::dataset::listing::data_files(scratch)
        .await
        .expect("list")[0]
        .clone();
    into.store()
        .copy(&file.path, &into.child(&format!("{name}.parquet")))
        .await
        .expect("copy");
}

/// `id int64 not null, note utf8 not null` for `ids`, each note `note_bytes` of incompressible
/// printable text from a xorshift generator seeded with `seed` (the same seed, the same rows).
pub fn noise_rows(ids: std::ops::Range<i64>, note_bytes: usize, seed: u64) -> RecordBatch {
    let mut state = seed.max(1);
    let notes: Vec<String> = ids
        .clone()
        .map(|_| {
            (0..note_bytes)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    char::from(b'!' + (state % 90) as u8)
                })
                .collect()
        })
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("note", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(ids)) as ArrayRef,
            Arc::new(StringArray::from(notes)),
        ],
    )
    .expect("batch")
}

/// A small batch `id int32, v utf8`.
pub fn small_int32(ids: &[i32]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("v", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int32Array::from(ids.to_vec())) as ArrayRef,
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("v{i}")).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("batch")
}

/// Batches from memory.
pub fn batches(batches: Vec<RecordBatch>) -> Batches {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(sample_schema);
    Batches::from_batches(schema, batches)
}

/// Each row rendered as text (`col=value|...`, columns in schema order), sorted: a multiset
/// that compares across engines and batchings.
pub fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .zip(&formatters)
                .map(|(f, fmt)| format!("{}={}", f.name(), fmt.value(row)))
                .collect();
            out.push(cells.join("|"));
        }
    }
    out.sort();
    out
}

/// Reads everything and returns the schema and the sorted rows.
pub async fn read_rows(
    backend: &dyn DatasetBackend,
    location: &Location,
    options: &ReadOptions,
) -> (SchemaRef, Vec<String>) {
    let result = backend
        .read(location, options)
        .await
        .unwrap_or_else(|e| panic!("read {location} failed: {e}"));
    let schema = Arc::clone(result.schema());
    let batches = result
        .collect()
        .await
        .unwrap_or_else(|e| panic!("read stream {location} failed: {e}"));
    for batch in &batches {
        assert_eq!(
            batch.schema(),
            schema,
            "every batch has the announced schema"
        );
    }
    (schema, rows(&batches))
}

/// Objects left under `_fsk/` (staging, journals, the lease): empty after any operation.
pub async fn fsk_leftovers(location: &Location) -> Vec<String> {
    let mut found: Vec<String> = all_objects(location)
        .await
        .into_iter()
        .filter(|p| p.starts_with("_fsk/"))
        .collect();
    // The store's listing hides interrupted local uploads (`name#3`) and empty folders:
    // look at the disk too.
    if let Some(root) = location.local_root() {
        let mut stack = vec![root.join("_fsk")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut empty = true;
            for entry in entries.flatten() {
                empty = false;
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path
                        .strip_prefix(root)
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    if !found.contains(&rel) {
                        found.push(rel);
                    }
                }
            }
            if empty {
                found.push(format!("{} (empty folder)", dir.display()));
            }
        }
    }
    found.sort();
    found
}

/// Every object under the location, relative paths, sorted.
pub async fn all_objects(location: &Location) -> Vec<String> {
    let mut out: Vec<String> = location
        .store()
        .list(Some(location.root()))
        .map_ok(|m| location.relative(&m.location).unwrap_or_default())
        .try_collect()
        .await
        .expect("list");
    out.sort();
    out
}

/// The data files (relative paths) under the location.
pub async fn data_files(location: &Location) -> Vec<String> {
    all_objects(location)
        .await
        .into_iter()
        .filter(|p| fsk_core::dataset::listing::is_data_path(p))
        .collect()
}

/// Puts raw bytes at a relative path.
pub async fn put(location: &Location, relative: &str, bytes: &'static [u8]) {
    location
        .store()
        .put(
            &location.child(relative),
            bytes::Bytes::from_static(bytes).into(),
        )
        .await
        .expect("put");
}

/// Reads a file's footer.
pub async fn footer(location: &Location, relative: &str) -> fsk_core::dataset::footer::FileMeta {
    let files = fsk_core::dataset::listing::data_files(location)
        .await
        .expect("list");
    let file = files
        .into_iter()
        .find(|f| f.relative == relative)
        .unwrap_or_else(|| panic!("no data file {relative}"));
    fsk_core::dataset::footer::read_footer(location, file)
        .await
        .expect("footer")
}
