//! Deduplication checks: by key (the highest order-by stays, ties keep the first in file
//! order), or exact rows; within partitions; only the files holding a duplicate are
//! rewritten; rows otherwise never change; errors are typed.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use fsk_core::Operations;
use fsk_core::ReadOptions;
use fsk_core::engine::DatasetBackend;
use fsk_core::object_store::ObjectStoreExt;
use fsk_core::ops::dedup::{DedupOptions, DedupReport};
use fsk_core::write::WriteOptions;

use crate::Fixture;
use crate::data::{all_objects, batches, data_files, read_rows};

/// `id int64, part utf8, ts int64, v utf8`.
fn rows(values: &[(i64, &str, i64, &str)]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("part", DataType::Utf8, false),
            Field::new("ts", DataType::Int64, true),
            Field::new("v", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(
                values
                    .iter()
                    .map(|r| (r.0 >= 0).then_some(r.0))
                    .collect::<Vec<_>>(),
            )) as ArrayRef,
            Arc::new(StringArray::from(
                values.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                values.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                values.iter().map(|r| r.3).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("batch")
}

async fn run(
    backend: &dyn DatasetBackend,
    loc: &fsk_core::Location,
    options: DedupOptions,
) -> DedupReport {
    backend.dedup(loc, &options).await.expect("dedup")
}

/// By key with an order: per partition, the row with the highest `ts` stays; files without
/// a duplicate keep their bytes; exact duplicates without a key; nulls group together.
pub async fn dedup_by_key_and_exact_rows(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let options = WriteOptions::default().with_partition_by(["part"]);
    // Three writes, three files per partition folder touched.
    backend
        .write(
            &loc,
            batches(vec![rows(&[
                (1, "a", 1, "old"),
                (2, "a", 1, "x"),
                (9, "b", 1, "b9"),
            ])]),
            &options,
        )
        .await
        .expect("write 1");
    backend
        .write(
            &loc,
            batches(vec![rows(&[(1, "a", 5, "new"), (1, "b", 1, "other-part")])]),
            &options,
        )
        .await
        .expect("write 2");
    backend
        .write(&loc, batches(vec![rows(&[(3, "c", 1, "alone")])]), &options)
        .await
        .expect("write 3");
    let files_before = data_files(&loc).await;
    let untouched: Vec<String> = files_before
        .iter()
        .filter(|f| !f.starts_with("part=a/"))
        .cloned()
        .collect();
    let untouched_bytes: Vec<Vec<u8>> = {
        let mut out = Vec::new();
        for f in &untouched {
            let bytes = loc
                .store()
                .get(&loc.child(f))
                .await
                .expect("get")
                .bytes()
                .await
                .expect("bytes");
            out.push(bytes.to_vec());
        }
        out
    };
    let key = DedupOptions {
        key: vec!["id".into()],
        order_by: vec!["ts".into()],
        ..Default::default()
    };
    let dry = run(
        backend,
        &loc,
        DedupOptions {
            dry_run: true,
            ..key.clone()
        },
    )
    .await;
    assert!(dry.dry_run);
    assert_eq!(dry.removed_rows, 1, "{dry:?}");
    assert_eq!(
        data_files(&loc).await,
        files_before,
        "a dry run writes nothing"
    );

    let report = run(backend, &loc, key.clone()).await;
    assert!(report.committed);
    assert_eq!(report.before_row_count, 6);
    assert_eq!(report.after_row_count, 5);
    assert_eq!(report.removed_rows, 1);
    assert_eq!(
        report.rewritten_files.len(),
        1,
        "only the file holding the loser: {report:?}"
    );
    assert!(report.rewritten_files[0].starts_with("part=a/"));
    let (_, got) = read_rows(
        backend,
        &loc,
        &ReadOptions::default().with_columns(["id", "part", "v"]),
    )
    .await;
    assert_eq!(
        got,
        vec![
            "id=1|part=a|v=new".to_string(),
            "id=1|part=b|v=other-part".to_string(),
            "id=2|part=a|v=x".to_string(),
            "id=3|part=c|v=alone".to_string(),
            "id=9|part=b|v=b9".to_string(),
        ],
        "the highest ts stays; the same id in another partition is another row"
    );
    for (file, bytes) in untouched.iter().zip(&untouched_bytes) {
        let now = loc
            .store()
            .get(&loc.child(file))
            .await
            .expect("untouched file")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(&now.to_vec(), bytes, "{file} keeps its bytes");
    }
    let again = run(backend, &loc, key).await;
    assert_eq!(again.removed_rows, 0);
    assert!(!again.committed);

    // Exact duplicates (no key), ties and nulls keep the first in file order.
    let exact = fx.location("exact");
    let plain = WriteOptions::default();
    backend
        .write(
            &exact,
            batches(vec![rows(&[
                (-1, "p", 1, "n"),
                (-1, "p", 1, "n"),
                (4, "p", 1, "d"),
            ])]),
            &plain,
        )
        .await
        .expect("write");
    backend
        .write(
            &exact,
            batches(vec![rows(&[(4, "p", 1, "d"), (4, "p", 2, "d")])]),
            &plain,
        )
        .await
        .expect("append");
    let report = run(backend, &exact, DedupOptions::default()).await;
    assert_eq!(report.removed_rows, 2, "{report:?}");
    let (_, got) = read_rows(backend, &exact, &ReadOptions::default()).await;
    assert_eq!(
        got,
        vec![
            "id=4|part=p|ts=1|v=d".to_string(),
            "id=4|part=p|ts=2|v=d".to_string(),
            "id=NULL|part=p|ts=1|v=n".to_string(),
        ]
    );

    // Errors: unknown column, order without key, a filter matching nothing; nothing changes.
    let before = all_objects(&loc).await;
    let err = backend
        .dedup(
            &loc,
            &DedupOptions {
                key: vec!["nope".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "column_not_found", "{err}");
    let err = backend
        .dedup(
            &loc,
            &DedupOptions {
                order_by: vec!["ts".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "invalid_argument", "{err}");
    let err = backend
        .dedup(
            &loc,
            &DedupOptions {
                partition_filter: Some("part=zz".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "no_data_files", "{err}");
    assert!(err.to_string().contains("part=zz"), "{err}");
    let err = backend
        .dedup(&fx.location("missing"), &DedupOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "not_found", "{err}");
    assert_eq!(all_objects(&loc).await, before);
}
