//! The sort primitive: rows come out in key order under a budget smaller than the input,
//! having spilled (where the engine reports it), and bad keys are typed errors.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use futures::TryStreamExt;

use fsk_core::engine::{Batches, DatasetBackend};
use fsk_core::error::Error;
use fsk_core::plan::sort::{MemoryBudget, SortKey};

use crate::Fixture;

const ROWS: i64 = 600_000;

fn input() -> (Arc<Schema>, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("cat", DataType::Utf8, true),
        Field::new("id", DataType::Int64, false),
        Field::new("payload", DataType::Utf8, false),
    ]));
    let batches = (0..ROWS)
        .step_by(10_000)
        .map(|start| {
            let ids: Vec<i64> = (start..start + 10_000).map(|i| (i * 7919) % ROWS).collect();
            let cats: Vec<Option<String>> = ids
                .iter()
                .map(|i| (i % 11 != 0).then(|| format!("cat-{}", i % 7)))
                .collect();
            let payload: Vec<String> = ids.iter().map(|i| format!("{i:040}")).collect();
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from(cats)) as ArrayRef,
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(StringArray::from(payload)),
                ],
            )
            .expect("batch")
        })
        .collect();
    (schema, batches)
}

/// Sorting 600,000 rows (about 50 MB in memory) by `cat` ascending with nulls last, then
/// `id` descending, under a budget of 12 MiB: every row comes out once, in key order, and
/// the engine spilled to the budget's folder.
pub async fn sort_under_a_small_budget_spills_and_orders(
    backend: &dyn DatasetBackend,
    fx: &Fixture,
) {
    let spill_dir = tempfile::tempdir().expect("spill folder");
    let _ = fx;
    let (schema, batches) = input();
    let in_memory: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    let budget = MemoryBudget {
        bytes: 12 << 20,
        spill_dir: Some(spill_dir.path().to_path_buf()),
    };
    assert!(
        in_memory > 3 * budget.bytes,
        "the input outgrows the budget"
    );
    let keys = [SortKey::asc("cat"), SortKey::desc("id")];
    let sorted = backend
        .sort(
            Batches::from_batches(Arc::clone(&schema), batches),
            &keys,
            &budget,
        )
        .await
        .expect("sort");
    let spills = Arc::clone(&sorted.spills);
    let observed = sorted.spills_observed;
    let executor = sorted.executor;
    let out: Vec<RecordBatch> = sorted.stream.try_collect().await.expect("sorted rows");
    let all = arrow::compute::concat_batches(&schema, &out).expect("concat");
    assert_eq!(all.num_rows() as i64, ROWS, "every row once");
    let cats = all.column(0).as_string::<i32>();
    let ids = all.column(1).as_primitive::<Int64Type>();
    let mut seen = vec![false; ROWS as usize];
    for i in 0..all.num_rows() {
        assert!(!seen[ids.value(i) as usize], "id {} twice", ids.value(i));
        seen[ids.value(i) as usize] = true;
        assert_eq!(
            all.column(2).as_string::<i32>().value(i),
            format!("{:040}", ids.value(i)),
            "rows stay whole"
        );
        if i == 0 {
            continue;
        }
        let previous = (!cats.is_null(i - 1)).then(|| cats.value(i - 1));
        let current = (!cats.is_null(i)).then(|| cats.value(i));
        let ordered = match (previous, current) {
            (Some(a), Some(b)) if a == b => ids.value(i - 1) > ids.value(i),
            (Some(a), Some(b)) => a < b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => ids.value(i - 1) > ids.value(i),
        };
        assert!(ordered, "row {i} is out of order ({executor})");
    }
    assert_eq!(executor, expected_sorter(backend.name()));
    if observed {
        assert!(
            spills.load(Ordering::SeqCst) > 0,
            "{executor} sorted {in_memory} bytes within {} without spilling",
            budget.bytes
        );
    }

    // Bad keys are typed, before any work.
    let (schema, batches) = input();
    let err = backend
        .sort(
            Batches::from_batches(Arc::clone(&schema), batches),
            &[SortKey::asc("nope")],
            &budget,
        )
        .await
        .expect_err("an unknown key");
    assert!(matches!(err, Error::ColumnNotFound { .. }), "{err}");
}

fn expected_sorter(engine: &str) -> &'static str {
    match engine {
        "duckdb" => "duckdb",
        "datafusion" => "datafusion",
        _ => "arrow-rs",
    }
}
