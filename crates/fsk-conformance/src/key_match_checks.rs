//! The key-match primitive, through merge: a source larger than the memory budget matches
//! exactly the keys the dataset holds, in the engine that claims it, and null keys in the
//! dataset are typed errors.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use fsk_core::Operations;
use fsk_core::ReadOptions;
use fsk_core::engine::DatasetBackend;
use fsk_core::error::Error;
use fsk_core::ops::merge::{MergeOptions, Strategy};
use fsk_core::plan::sort::MemoryBudget;
use fsk_core::write::WriteOptions;

use crate::Fixture;
use crate::data::batches;

fn key(i: u32) -> String {
    format!("key-{i:060}")
}

/// `k utf8 (64 bytes), part int32, v utf8` rows for keys `ids`, tagged `tag`.
fn rows(ids: impl Iterator<Item = u32>, tag: &str) -> RecordBatch {
    let ids: Vec<u32> = ids.collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("part", DataType::Int32, false),
            Field::new("v", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(StringArray::from(
                ids.iter().map(|&i| key(i)).collect::<Vec<_>>(),
            )) as ArrayRef,
            Arc::new(Int32Array::from(
                ids.iter().map(|&i| (i % 3) as i32).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(vec![tag; ids.len()])),
        ],
    )
    .expect("batch")
}

/// The engine that matches keys for `backend` (DuckDB joins on every store, reading off
/// local disk through the core's scan).
fn expected_key_match(backend: &dyn DatasetBackend) -> &'static str {
    match backend.name() {
        "duckdb" | "datafusion" => backend.name(),
        _ => "arrow-rs",
    }
}

/// Upserting 240,000 source rows (64-byte string keys, about 20 MB of keys) into 120,000
/// rows under an 8 MiB budget: the 60,000 keys the dataset holds are updated in place and the
/// rest inserted, whether the key includes the partition column or not; the key match ran in
/// the engine; a null key in the dataset is a typed error naming the column and the target
/// side, and the dataset is left as it was.
pub async fn key_match_on_a_source_larger_than_the_budget(
    backend: &dyn DatasetBackend,
    fx: &Fixture,
) {
    let spill_dir = tempfile::tempdir().expect("spill folder");
    for (name, key_columns) in [("flat", vec!["k"]), ("by_part", vec!["k", "part"])] {
        let loc = fx.location(name);
        let write = WriteOptions {
            partition_by: vec!["part".into()],
            max_rows_per_file: Some(10_000),
            ..WriteOptions::default()
        };
        let target: Vec<RecordBatch> = (0..6)
            .map(|c| rows((c * 20_000)..(c + 1) * 20_000, "old"))
            .collect();
        backend
            .write(&loc, batches(target), &write)
            .await
            .expect("write the dataset");
        // Keys 60,000..300,000: the first 60,000 exist, the rest are new.
        let source: Vec<RecordBatch> = (0..4)
            .map(|c| rows((60_000 + c * 60_000)..(60_000 + (c + 1) * 60_000), "new"))
            .collect();
        let source_bytes: usize = source.iter().map(|b| b.get_array_memory_size()).sum();
        let budget = MemoryBudget {
            bytes: 8 << 20,
            spill_dir: Some(spill_dir.path().to_path_buf()),
        };
        assert!(
            source_bytes > 2 * budget.bytes,
            "the source outgrows the budget"
        );
        let report = backend
            .merge(
                &loc,
                batches(source),
                &MergeOptions {
                    memory: budget,
                    // The source in memory: this is the engine's key match under a budget
                    // (its 64-byte keys alone outgrow it, too much to spill the source).
                    source_spill: fsk_core::ops::merge::SourceSpill::Never,
                    ..fx.merge_options(key_columns.clone(), Strategy::Upsert)
                },
            )
            .await
            .expect("merge");
        assert_eq!(
            report.execution.key_match.as_deref(),
            Some(expected_key_match(backend)),
            "{name}: {:?}",
            report.execution
        );
        assert_eq!(report.updated, 60_000, "{name}: {report:?}");
        assert_eq!(report.inserted, 180_000, "{name}: {report:?}");
        assert_eq!(report.total, 300_000, "{name}: {report:?}");
        let read = backend
            .read(&loc, &ReadOptions::default().with_columns(["k", "v"]))
            .await
            .expect("read")
            .collect()
            .await
            .expect("rows");
        let mut seen = vec![false; 300_000];
        for batch in &read {
            let keys = batch.column(0).as_string::<i32>();
            let values = batch.column(1).as_string::<i32>();
            for i in 0..batch.num_rows() {
                let id: usize = keys.value(i)[4..].parse().expect("key");
                assert!(!seen[id], "{name}: key {id} twice");
                seen[id] = true;
                let want = if id < 60_000 { "old" } else { "new" };
                assert_eq!(values.value(i), want, "{name}: key {id}");
            }
        }
        assert!(seen.iter().all(|s| *s), "{name}: every key once");
    }

    // A null key in the dataset: typed, and nothing changes.
    let loc = fx.location("nulls");
    let mut with_null = rows(0..10, "old");
    let keys: Vec<Option<String>> = (0..10).map(|i| (i != 4).then(|| key(i))).collect();
    with_null = RecordBatch::try_new(
        with_null.schema(),
        vec![
            Arc::new(StringArray::from(keys)) as ArrayRef,
            Arc::clone(with_null.column(1)),
            Arc::clone(with_null.column(2)),
        ],
    )
    .expect("batch");
    backend
        .write(&loc, batches(vec![with_null]), &WriteOptions::default())
        .await
        .expect("write");
    let before = crate::data::all_objects(&loc).await;
    let err = backend
        .merge(
            &loc,
            batches(vec![rows(3..6, "new")]),
            &fx.merge_options(["k"], Strategy::Upsert),
        )
        .await
        .expect_err("a null key in the dataset");
    assert!(
        matches!(err, Error::NullKey { ref column, ref side } if column == "k" && side.starts_with("target")),
        "{err}"
    );
    assert_eq!(
        crate::data::all_objects(&loc).await,
        before,
        "dataset untouched"
    );
    let leftovers = std::fs::read_dir(spill_dir.path())
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "spill files are removed");
}
