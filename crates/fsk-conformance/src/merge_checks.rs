//! Checks of `merge` (insert, update, upsert, full_merge, deduplicate).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use fsk_core::Location;
use fsk_core::Operations;
use fsk_core::ReadOptions;
use fsk_core::engine::DatasetBackend;
use fsk_core::error::Error;
use fsk_core::ops::merge::{
    FileOperation, MergeOptions, MergeReport, PruneStage, RewriteMode, SourceSpill, Strategy,
};
use fsk_core::plan::sort::MemoryBudget;
use fsk_core::write::WriteOptions;

use crate::Fixture;
use crate::data::{all_objects, batches, data_files, footer, read_rows};

/// `id int64, cat utf8, v utf8, n float64`: the schema of [`rows_of`].
fn rows_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("cat", DataType::Utf8, false),
        Field::new("v", DataType::Utf8, true),
        Field::new("n", DataType::Float64, true),
    ]))
}

/// `id int64, cat utf8, v utf8, n float64` rows.
pub fn rows_of(ids: &[i64], cat: &str, v: &str) -> RecordBatch {
    RecordBatch::try_new(
        rows_schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
            Arc::new(StringArray::from(vec![cat; ids.len()])),
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("{v}{i}")).collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                ids.iter().map(|i| *i as f64).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("batch")
}

/// Rows like [`rows_of`] but with an `id` column of any type (nulls allowed): `v` is the tag
/// followed by the id, `n` the id.
fn with_ids(ids: ArrayRef, tag: &str) -> RecordBatch {
    let as_int = arrow::compute::cast(&ids, &DataType::Int64).expect("ids as int64");
    let as_int = as_int.as_any().downcast_ref::<Int64Array>().expect("int64");
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", ids.data_type().clone(), true),
            Field::new("cat", DataType::Utf8, false),
            Field::new("v", DataType::Utf8, true),
            Field::new("n", DataType::Float64, true),
        ])),
        vec![
            Arc::clone(&ids),
            Arc::new(StringArray::from(vec!["a"; ids.len()])),
            Arc::new(StringArray::from_iter(
                as_int.iter().map(|i| i.map(|i| format!("{tag}{i}"))),
            )),
            Arc::new(Float64Array::from_iter(
                as_int.iter().map(|i| i.map(|i| i as f64)),
            )),
        ],
    )
    .expect("batch")
}

async fn seed(
    backend: &dyn DatasetBackend,
    fx: &Fixture,
    input: Vec<RecordBatch>,
    max_rows: usize,
) -> Location {
    let loc = fx.location("ds");
    backend
        .write(
            &loc,
            batches(input),
            &WriteOptions::default().with_max_rows_per_file(max_rows),
        )
        .await
        .expect("seed write");
    loc
}

async fn merge(
    backend: &dyn DatasetBackend,
    loc: &Location,
    source: Vec<RecordBatch>,
    options: MergeOptions,
) -> MergeReport {
    let report = backend
        .merge(loc, batches(source), &options)
        .await
        .unwrap_or_else(|e| panic!("merge failed: {e}"));
    if !report.dry_run {
        check_report(loc, &report).await;
    }
    if options.source_spill == SourceSpill::Always {
        assert!(
            report.source_spilled_bytes > 0 && report.execution.sort.is_some(),
            "the source was sorted and spilled: {report:?}"
        );
    }
    report
}

async fn merge_err(
    backend: &dyn DatasetBackend,
    loc: &Location,
    source: Vec<RecordBatch>,
    options: MergeOptions,
) -> Error {
    let before = all_objects(loc).await;
    let err = backend
        .merge(loc, batches(source), &options)
        .await
        .expect_err("merge should fail");
    assert_eq!(
        all_objects(loc).await,
        before,
        "a failed merge leaves the dataset untouched ({err})"
    );
    err
}

/// The report's invariants: file lists disjoint, covering exactly the data files, with real
/// row counts; `total` equals the rows in the dataset.
async fn check_report(loc: &Location, report: &MergeReport) {
    let on_disk: BTreeSet<String> = data_files(loc).await.into_iter().collect();
    let mut listed = BTreeSet::new();
    for list in [
        &report.rewritten_files,
        &report.inserted_files,
        &report.preserved_files,
    ] {
        for path in list {
            assert!(listed.insert(path.clone()), "{path} is listed twice");
        }
    }
    assert_eq!(listed, on_disk, "report lists exactly the data files");
    let from_files: BTreeSet<String> = report.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(from_files, on_disk);
    let mut total = 0;
    for file in &report.files {
        let meta = footer(loc, &file.path).await;
        assert_eq!(meta.num_rows, file.row_count, "{}", file.path);
        assert_eq!(meta.file.size, file.size_bytes, "{}", file.path);
        total += file.row_count;
    }
    assert_eq!(report.total, total);
    assert_eq!(report.total, report.target_count_after);
    assert_eq!(
        report.target_count_after,
        report.target_count_before + report.inserted - report.deleted
    );
}

/// (inserted, updated, deleted, total) of a report.
fn counts(report: &MergeReport) -> (u64, u64, u64, u64) {
    (
        report.inserted,
        report.updated,
        report.deleted,
        report.total,
    )
}

fn ids_and_values(rows: &[String]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            let cells: Vec<&str> = r.split('|').collect();
            format!(
                "{}:{}",
                cells[0].trim_start_matches("id="),
                cells[2].trim_start_matches("v=")
            )
        })
        .collect()
}

async fn dataset(backend: &dyn DatasetBackend, loc: &Location) -> Vec<String> {
    let (_, rows) = read_rows(
        backend,
        loc,
        &ReadOptions::default().with_columns(["id", "cat", "v", "n"]),
    )
    .await;
    let mut out = ids_and_values(&rows);
    out.sort_by_key(|s| s.split(':').next().and_then(|i| i.parse::<i64>().ok()));
    out
}

/// Upsert updates matches, inserts the rest, keeps the others.
pub async fn upsert_updates_and_inserts(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = seed(backend, fx, vec![rows_of(&[1, 2, 5], "a", "old")], 100).await;
    let report = merge(
        backend,
        &loc,
        vec![rows_of(&[1, 2, 3], "a", "new")],
        fx.merge_options(["id"], Strategy::Upsert),
    )
    .await;
    assert_eq!(counts(&report), (1, 2, 0, 4));
    assert_eq!(report.source_count, 3);
    assert_eq!(report.engine, backend.name());
    assert_eq!(report.rewrite_mode, RewriteMode::Incremental);
    assert_eq!(
        dataset(backend, &loc).await,
        vec!["1:new1", "2:new2", "3:new3", "5:old5"]
    );
}

/// Composite keys match on every column; a partial match is a different record.
pub async fn composite_keys_match_whole_tuples(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = seed(
        backend,
        fx,
        vec![rows_of(&[1], "A", "old"), rows_of(&[2], "B", "old")],
        100,
    )
    .await;
    let report = merge(
        backend,
        &loc,
        vec![rows_of(&[1], "A", "new"), rows_of(&[2], "C", "new")],
        fx.merge_options(["id", "cat"], Strategy::Upsert),
    )
    .await;
    assert_eq!((report.inserted, report.updated), (1, 1));
    let (_, rows) = read_rows(
        backend,
        &loc,
        &ReadOptions::default().with_columns(["id", "cat", "v"]),
    )
    .await;
    assert_eq!(
        rows,
        vec![
            "id=1|cat=A|v=new1",
            "id=2|cat=B|v=old2",
            "id=2|cat=C|v=new2"
        ]
    );
}

/// Insert adds only new keys and never rewrites existing files.
pub async fn insert_adds_only_new_keys(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = seed(backend, fx, vec![rows_of(&[1, 2], "a", "old")], 100).await;
    let before = data_files(&loc).await;
    let size = footer(&loc, &before[0]).await.file.size;
    let report = merge(
        backend,
        &loc,
        vec![rows_of(&[1, 2, 3], "a", "new")],
        fx.merge_options(["id"], Strategy::Insert),
    )
    .await;
    assert_eq!((report.inserted, report.updated, report.deleted), (1, 0, 0));
    assert!(report.rewritten_files.is_empty());
    assert_eq!(report.preserved_files, before);
    assert_eq!(footer(&loc, &before[0]).await.file.size, size);
    assert_eq!(
        dataset(backend, &loc).await,
        vec!["1:old1", "2:old2", "3:new3"]
    );
    // Nothing new: no change, zero counts.
    let report = merge(
        backend,
        &loc,
        vec![rows_of(&[1, 3], "a", "x")],
        fx.merge_options(["id"], Strategy::Insert),
    )
    .await;
    assert_eq!((report.inserted, report.updated), (0, 0));
    assert_eq!(
        dataset(backend, &loc).await,
        vec!["1:old1", "2:old2", "3:new3"]
    );
}

/// Update replaces matches only and never writes new keys.
pub async fn update_changes_only_existing_keys(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = seed(backend, fx, vec![rows_of(&[1, 2], "a", "old")], 100).await;
    let report = merge(
        backend,
        &loc,
        vec![rows_of(&[2, 3], "a", "new")],
        fx.merge_options(["id"], Strategy::Update),
    )
    .await;
    assert_eq!((report.inserted, report.updated, report.total), (0, 1, 2));
    assert!(report.inserted_files.is_empty());
    assert_eq!(dataset(backend, &loc).await, vec!["1:old1", "2:new2"]);
    let before = data_files(&loc).await;
    let report = merge(
        backend,
        &loc,
        vec![rows_of(&[7, 8], "a", "new")],
        fx.merge_options(["id"], Strategy::Update),
    )
    .await;
    assert_eq!((report.inserted, report.updated), (0, 0));
    assert_eq!(data_files(&loc).await, before, "no match rewrites nothing");
}

/// full_merge makes the dataset exactly the source.
pub async fn full_merge_syncs_to_the_source(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = seed(backend, fx, vec![rows_of(&[1, 2, 3], "a", "old")], 2).await;
    let report = merge(
        backend,
        &loc,
        vec![rows_of(&[2, 3, 4], "a", "new")],
        fx.merge_options(["id"], Strategy::FullMerge),
    )
    .await;
    assert_eq!(counts(&report), (1, 2, 1, 3));
    assert_eq!(report.rewrite_mode, RewriteMode::Full);
    assert_eq!(
        dataset(backend, &loc).await,
        vec!["2:new2", "3:new3", "4:new4"]
    );
    // An empty source deletes every row and leaves one empty file with the schema.
    let empty = rows_of(&[], "a", "x");
    let report = merge(
        backend,
        &loc,
        vec![empty],
        fx.merge_options(["id"], Strategy::FullMerge),
    )
    .await;
    assert_eq!(counts(&report), (0, 0, 3, 0));
    let files = data_files(&loc).await;
    assert_eq!(files.len(), 1, "{files:?}");
    let meta = footer(&loc, &files[0]).await;
    assert_eq!(meta.num_rows, 0);
    assert_eq!(meta.schema.fields().len(), 4);
}

/// deduplicate keeps the last occurrence, or the highest `dedup_order_by`, then upserts.
pub async fn deduplicate_then_upsert(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = seed(backend, fx, vec![rows_of(&[2, 9], "a", "old")], 100).await;
    let source = vec![rows_of(&[1], "a", "first"), rows_of(&[1, 2], "a", "second")];
    let report = merge(
        backend,
        &loc,
        source,
        fx.merge_options(["id"], Strategy::Deduplicate),
    )
    .await;
    assert_eq!(
        (report.inserted, report.updated, report.source_count),
        (1, 1, 3)
    );
    assert_eq!(
        dataset(backend, &loc).await,
        vec!["1:second1", "2:second2", "9:old9"]
    );
    // Highest `n` wins whatever the order.
    let mut high = rows_of(&[5], "a", "high");
    high = RecordBatch::try_new(
        high.schema(),
        vec![
            Arc::clone(high.column(0)),
            Arc::clone(high.column(1)),
            Arc::clone(high.column(2)),
            Arc::new(Float64Array::from(vec![100.0])),
        ],
    )
    .expect("batch");
    let low = rows_of(&[5], "a", "low");
    let mut options = fx.merge_options(["id"], Strategy::Deduplicate);
    options.dedup_order_by = vec!["n".into()];
    merge(backend, &loc, vec![high, low], options).await;
    assert!(
        dataset(backend, &loc)
            .await
            .contains(&"5:high5".to_string())
    );
}

/// Duplicate source keys under upsert: the last occurrence wins; counts are distinct keys.
pub async fn duplicate_source_keys_last_wins(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = seed(backend, fx, vec![rows_of(&[1], "a", "old")], 100).await;
    let source = vec![
        rows_of(&[1, 2], "a", "first"),
        rows_of(&[2, 1], "a", "last"),
    ];
    let report = merge(
        backend,
        &loc,
        source,
        fx.merge_options(["id"], Strategy::Upsert),
    )
    .await;
    assert_eq!(
        (report.inserted, report.updated, report.source_count),
        (1, 1, 4)
    );
    assert_eq!(dataset(backend, &loc).await, vec!["1:last1", "2:last2"]);
}

/// A missing target: upsert creates it; update creates nothing.
pub async fn missing_target_is_created_or_left_alone(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("new");
    let report = merge(
        backend,
        &loc,
        vec![rows_of(&[1, 2], "a", "v")],
        fx.merge_options(["id"], Strategy::Update),
    )
    .await;
    assert_eq!((report.inserted, report.updated, report.total), (0, 0, 0));
    assert!(all_objects(&loc).await.is_empty());
    if let Some(dir) = fx.local_dir() {
        assert!(
            !dir.join("new").exists(),
            "update into a missing target creates nothing"
        );
    }
    for strategy in [
        Strategy::Upsert,
        Strategy::Insert,
        Strategy::FullMerge,
        Strategy::Deduplicate,
    ] {
        let loc = fx.location(&format!("new-{strategy}"));
        let report = merge(
            backend,
            &loc,
            vec![rows_of(&[1, 2, 2], "a", "v")],
            fx.merge_options(["id"], strategy),
        )
        .await;
        assert_eq!((report.inserted, report.total), (2, 2), "{strategy}");
    }
}

/// Incremental rewrite touches only files holding affected keys; the others keep name and
/// bytes; in a rewritten file untouched rows keep their order and updated rows their place.
pub async fn incremental_rewrites_only_affected_files(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = seed(
        backend,
        fx,
        vec![rows_of(&(0..40).collect::<Vec<_>>(), "a", "old")],
        10,
    )
    .await;
    let before = data_files(&loc).await;
    assert_eq!(before.len(), 4);
    let sizes: Vec<u64> = {
        let mut s = Vec::new();
        for f in &before {
            s.push(footer(&loc, f).await.file.size);
        }
        s
    };
    let report = merge(
        backend,
        &loc,
        vec![rows_of(&[13, 15, 100], "a", "new")],
        fx.merge_options(["id"], Strategy::Upsert),
    )
    .await;
    assert_eq!(report.rewritten_files.len(), 1);
    assert_eq!(report.inserted_files.len(), 1);
    assert_eq!(report.preserved_files.len(), 3);
    assert_eq!(report.files_considered, 4);
    assert_eq!(report.files_pruned_by_statistics, 3, "{:?}", report.pruned);
    assert_eq!(report.files_key_scanned, 1);
    assert_eq!(report.files_confirmed, 1);
    assert!(
        report
            .pruned
            .iter()
            .all(|p| p.stage == PruneStage::Statistics)
    );
    for (file, size) in before.iter().zip(&sizes) {
        if report.preserved_files.contains(file) {
            assert_eq!(
                footer(&loc, file).await.file.size,
                *size,
                "{file} untouched"
            );
        } else {
            assert!(!data_files(&loc).await.contains(file), "{file} replaced");
        }
    }
    // Order inside the rewritten file: 10..20 with 13 and 15 replaced in place.
    let rewritten =
        fsk_core::Location::parse(&format!("{}/{}", fx.url("ds"), report.rewritten_files[0]))
            .expect("file");
    let got = backend
        .read(
            &rewritten,
            &ReadOptions::default().with_columns(["id", "v"]),
        )
        .await
        .expect("read")
        .concat()
        .await
        .expect("rows");
    let ids = got
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("ids")
        .values()
        .to_vec();
    assert_eq!(ids, (10..20).collect::<Vec<i64>>());
    let values = got
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("v");
    assert_eq!(values.value(3), "new13");
    assert_eq!(values.value(4), "old14");
    assert_eq!(values.value(5), "new15");
    let ops: Vec<FileOperation> = report.files.iter().map(|f| f.operation).collect();
    assert_eq!(
        ops.iter()
            .filter(|o| **o == FileOperation::Preserved)
            .count(),
        3
    );
}

/// Shuffled keys defeat statistics; the key scan still finds the right files.
pub async fn key_scan_confirms_when_statistics_cannot(backend: &dyn DatasetBackend, fx: &Fixture) {
    // Every file spans 0..=99.
    let files: Vec<RecordBatch> = (0..4)
        .map(|f| {
            let mut ids: Vec<i64> = (0..25).map(|i| i * 4 + f).collect();
            ids.push(if f == 0 { 99 } else { 0 });
            ids.dedup();
            rows_of(
                &ids.into_iter()
                    .filter(|i| f == 0 || *i != 0)
                    .collect::<Vec<_>>(),
                "a",
                "old",
            )
        })
        .collect();
    let loc = fx.location("ds");
    for batch in files {
        backend
            .write(&loc, batches(vec![batch]), &WriteOptions::default())
            .await
            .expect("write");
    }
    let report = merge(
        backend,
        &loc,
        vec![rows_of(&[5], "a", "new")],
        fx.merge_options(["id"], Strategy::Update),
    )
    .await;
    assert_eq!(report.files_pruned_by_statistics, 0, "{:?}", report.pruned);
    assert_eq!(report.files_key_scanned, 4);
    assert_eq!(report.files_confirmed, 1);
    assert_eq!(report.rewritten_files.len(), 1);
    assert_eq!(report.preserved_files.len(), 3);
    assert!(report.pruned.iter().all(|p| p.stage == PruneStage::KeyScan));
}

fn partitioned(ids: &[i64], days: &[&str], v: &str) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
            Field::new("day", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("{v}{i}")).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(days.to_vec())),
        ],
    )
    .expect("batch")
}

/// Partitioned datasets: new rows go to their folder; the layout is detected; a key whose
/// partition would change is rejected, even when it lives in a partition the source does not
/// mention.
pub async fn partitions_are_kept_and_moves_rejected(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    backend
        .write(
            &loc,
            batches(vec![partitioned(&[1, 2, 3], &["x", "y", "y"], "old")]),
            &WriteOptions::default().with_partition_by(["day"]),
        )
        .await
        .expect("write");
    let report = merge(
        backend,
        &loc,
        vec![partitioned(&[2, 4], &["y", "z"], "new")],
        fx.merge_options(["id"], Strategy::Upsert),
    )
    .await;
    assert_eq!((report.inserted, report.updated), (1, 1));
    assert!(
        report
            .inserted_files
            .iter()
            .all(|f| f.starts_with("day=z/")),
        "{:?}",
        report.inserted_files
    );
    assert!(
        report
            .rewritten_files
            .iter()
            .all(|f| f.starts_with("day=y/")),
        "{:?}",
        report.rewritten_files
    );
    assert!(
        report
            .preserved_files
            .iter()
            .any(|f| f.starts_with("day=x/"))
    );
    let (_, rows) = read_rows(
        backend,
        &loc,
        &ReadOptions::default().with_columns(["id", "v", "day"]),
    )
    .await;
    assert_eq!(
        rows,
        vec![
            "id=1|v=old1|day=x",
            "id=2|v=new2|day=y",
            "id=3|v=old3|day=y",
            "id=4|v=new4|day=z"
        ]
    );
    // Key 1 lives in day=x; the source only mentions day=w.
    let err = merge_err(
        backend,
        &loc,
        vec![partitioned(&[1], &["w"], "moved")],
        fx.merge_options(["id"], Strategy::Upsert),
    )
    .await;
    assert!(
        err.to_string().contains("day=x") && err.to_string().contains("day=w"),
        "{err}"
    );
    // With the partition in the key, pruning skips other partitions.
    let report = merge(
        backend,
        &loc,
        vec![partitioned(&[3], &["y"], "again")],
        fx.merge_options(["id", "day"], Strategy::Update),
    )
    .await;
    assert_eq!(report.updated, 1);
    assert!(report.files_pruned_by_partition >= 2, "{:?}", report.pruned);
}

/// Bad input: typed errors naming the culprit; the dataset is untouched.
pub async fn invalid_merges_are_typed_errors(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = seed(backend, fx, vec![rows_of(&[1, 2], "a", "old")], 100).await;
    let good = || vec![rows_of(&[1], "a", "new")];
    let err = merge_err(
        backend,
        &loc,
        good(),
        fx.merge_options(["nope"], Strategy::Upsert),
    )
    .await;
    assert!(
        matches!(err, Error::ColumnNotFound { ref column, .. } if column == "nope"),
        "{err}"
    );
    let err = merge_err(
        backend,
        &loc,
        good(),
        fx.merge_options(Vec::<String>::new(), Strategy::Upsert),
    )
    .await;
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    let mut options = fx.merge_options(["id"], Strategy::FullMerge);
    options.rewrite_mode = Some(RewriteMode::Incremental);
    let err = merge_err(backend, &loc, good(), options).await;
    assert!(err.to_string().contains("full_merge"), "{err}");
    let err = "merge_all".parse::<Strategy>().unwrap_err();
    assert!(
        err.to_string().contains("merge_all") && err.to_string().contains("full_merge"),
        "{err}"
    );
    // Null keys in the source.
    let nulls = with_ids(Arc::new(Int64Array::from(vec![Some(1), None])), "x");
    let err = merge_err(
        backend,
        &loc,
        vec![nulls],
        fx.merge_options(["id"], Strategy::Upsert),
    )
    .await;
    assert!(
        matches!(err, Error::NullKey { ref column, .. } if column == "id"),
        "{err}"
    );
    // Float keys against an int64 key: never a silent duplicate.
    let floats = with_ids(Arc::new(Float64Array::from(vec![1.0])), "x");
    let err = merge_err(
        backend,
        &loc,
        vec![floats],
        fx.merge_options(["id"], Strategy::Upsert),
    )
    .await;
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains("Float64") && err.to_string().contains("Int64"),
        "{err}"
    );
    // A missing column.
    let err = merge_err(
        backend,
        &loc,
        vec![crate::data::small_int32(&[1])],
        fx.merge_options(["id"], Strategy::Upsert),
    )
    .await;
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
}

/// int32 source keys widen into an int64 dataset and match (no duplicate).
pub async fn int32_source_keys_match_int64_dataset(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = seed(backend, fx, vec![rows_of(&[1, 2], "a", "old")], 100).await;
    let source = with_ids(Arc::new(Int32Array::from(vec![2, 3])), "new");
    let report = merge(
        backend,
        &loc,
        vec![source],
        fx.merge_options(["id"], Strategy::Upsert),
    )
    .await;
    assert_eq!((report.inserted, report.updated, report.total), (1, 1, 3));
    assert_eq!(
        dataset(backend, &loc).await,
        vec!["1:old1", "2:new2", "3:new3"]
    );
    for file in data_files(&loc).await {
        let meta = footer(&loc, &file).await;
        assert_eq!(
            meta.schema.field_with_name("id").expect("id").data_type(),
            &DataType::Int64
        );
    }
}

/// A dry run writes nothing and reports what the real run does.
pub async fn dry_run_plans_without_writing(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = seed(
        backend,
        fx,
        vec![rows_of(&(0..30).collect::<Vec<_>>(), "a", "old")],
        10,
    )
    .await;
    let before = all_objects(&loc).await;
    let source = || vec![rows_of(&[5, 25, 77], "a", "new")];
    let mut options = fx.merge_options(["id"], Strategy::Upsert);
    options.dry_run = true;
    let dry = merge(backend, &loc, source(), options).await;
    assert!(dry.dry_run);
    assert_eq!(all_objects(&loc).await, before, "a dry run writes nothing");
    let real = merge(
        backend,
        &loc,
        source(),
        fx.merge_options(["id"], Strategy::Upsert),
    )
    .await;
    assert_eq!(
        (
            dry.inserted,
            dry.updated,
            dry.deleted,
            dry.total,
            dry.rewritten_files.len(),
            dry.preserved_files.len()
        ),
        (
            real.inserted,
            real.updated,
            real.deleted,
            real.total,
            real.rewritten_files.len(),
            real.preserved_files.len()
        )
    );
    assert_eq!(dry.pruned.len(), 1);
    assert_eq!(dry.files_pruned_by_statistics, 1);
}

/// `rewrite_mode = full` rewrites every file and gives the same rows.
pub async fn full_rewrite_mode_gives_the_same_rows(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = seed(
        backend,
        fx,
        vec![rows_of(&(0..20).collect::<Vec<_>>(), "a", "old")],
        5,
    )
    .await;
    let mut options = fx.merge_options(["id"], Strategy::Upsert);
    options.rewrite_mode = Some(RewriteMode::Full);
    let report = merge(backend, &loc, vec![rows_of(&[3, 50], "a", "new")], options).await;
    assert_eq!(report.rewritten_files.len(), 4);
    assert!(report.preserved_files.is_empty());
    assert_eq!((report.inserted, report.updated, report.total), (1, 1, 21));
    let rows = dataset(backend, &loc).await;
    assert_eq!(rows.len(), 21);
    assert!(rows.contains(&"3:new3".to_string()) && rows.contains(&"50:new50".to_string()));
}

/// I/O that pruning allows, proven with a logging store: files ruled out by statistics are
/// read only in their footer; files whose key scan finds nothing are read only in their
/// footer and key column chunks; only the confirmed file is read in full.
pub async fn merge_reads_only_what_pruning_allows(backend: &dyn DatasetBackend, fx: &Fixture) {
    use object_store::ObjectStoreExt;
    let (counting, loc) = fx.counted("ds");
    let store = Arc::clone(loc.store());
    // Four files spanning the whole id range (statistics cannot help), two far away.
    for f in 0..4i64 {
        let ids: Vec<i64> = (0..25).map(|i| i * 4 + f).collect();
        backend
            .write(
                &loc,
                batches(vec![rows_of(&ids, "a", "payload-payload-payload-")]),
                &WriteOptions::default(),
            )
            .await
            .expect("write");
    }
    for base in [1000i64, 2000] {
        let ids: Vec<i64> = (base..base + 10).collect();
        backend
            .write(
                &loc,
                batches(vec![rows_of(&ids, "a", "far")]),
                &WriteOptions::default(),
            )
            .await
            .expect("write");
    }
    // Allowed byte ranges per file: the footer, and the key column chunks.
    let mut footer_ranges = std::collections::HashMap::new();
    let mut key_ranges: std::collections::HashMap<String, Vec<std::ops::Range<u64>>> =
        std::collections::HashMap::new();
    for file in fsk_core::dataset::listing::data_files(&loc)
        .await
        .expect("list")
    {
        let tail = store
            .get_range(&file.path, file.size - 8..file.size)
            .await
            .expect("tail");
        let len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
        footer_ranges.insert(file.path.to_string(), file.size - 8 - len..file.size);
        let meta = fsk_core::dataset::footer::read_footer(&loc, file.clone())
            .await
            .expect("footer");
        let id = meta.schema.index_of("id").expect("id");
        key_ranges.insert(
            file.path.to_string(),
            meta.metadata()
                .row_groups()
                .iter()
                .map(|rg| {
                    let (start, len) = rg.column(id).byte_range();
                    start..start + len
                })
                .collect(),
        );
    }
    let sizes: std::collections::HashMap<String, u64> =
        fsk_core::dataset::listing::data_files(&loc)
            .await
            .expect("list")
            .into_iter()
            .map(|f| (f.path.to_string(), f.size))
            .collect();
    counting.take();
    let report = backend
        .merge(
            &loc,
            batches(vec![rows_of(&[5], "a", "new")]),
            &fx.merge_options(["id"], Strategy::Update),
        )
        .await
        .expect("merge");
    let log = counting.take();
    check_report(&loc, &report).await;
    assert_eq!(report.files_pruned_by_statistics, 2, "{:?}", report.pruned);
    assert_eq!(report.files_key_scanned, 4);
    assert_eq!(report.files_confirmed, 1);
    // Round trips, so that a regression shows: per file one footer read (a suffix that holds
    // the footer), one key-chunk read per key-scanned file, one full read of the confirmed
    // file, and one read of the lease (still ours, before release); the commit costs a lease,
    // its conditional renewal right before the journal, a staged file and a journal (4 PUTs;
    // locally the lease is an OS lock and costs none), one copy to publish,
    // 3 deletes (old file, journal, lease) and 4 listings (recovery looks at `_fsk/txn` and
    // `_fsk/staging`, the dataset, the transaction's staging folder).
    use crate::store::Kind;
    crate::store::assert_within_budget(
        &format!("an update touching 1 of 6 files on {:?}", fx.kind()),
        &log,
        &[
            (Kind::Get, 6 + 4 + 1 + 1),
            (Kind::Put, 4),
            (Kind::List, 4),
            (Kind::Delete, 3),
            (Kind::Copy, 1),
        ],
    );
    let within = |r: &std::ops::Range<u64>, allowed: &std::ops::Range<u64>| {
        r.start >= allowed.start && r.end <= allowed.end
    };
    // A footer read is a suffix of at most FOOTER_SIZE_HINT bytes, or inside the footer.
    let footer_read = |path: &str, r: &std::ops::Range<u64>| {
        within(r, &footer_ranges[path])
            || (r.end == sizes[path]
                && r.end - r.start <= fsk_core::dataset::footer::FOOTER_SIZE_HINT as u64)
    };
    let mut checked = 0;
    for request in log.iter().filter(|r| r.kind == Kind::Get) {
        let Some(relative) = object_store::path::Path::parse(&request.path)
            .ok()
            .and_then(|path| loc.relative(&path))
        else {
            continue;
        };
        let Some(footer) = footer_ranges.get(&request.path) else {
            continue;
        };
        let stage = report
            .pruned
            .iter()
            .find(|p| p.path == relative)
            .map(|p| p.stage);
        for range in &request.ranges {
            checked += 1;
            match stage {
                Some(PruneStage::Statistics) => {
                    assert!(
                        footer_read(&request.path, range),
                        "{relative}: pruned by statistics but read {range:?} outside its footer {footer:?}"
                    )
                }
                Some(PruneStage::KeyScan) => assert!(
                    footer_read(&request.path, range)
                        || key_ranges[&request.path].iter().any(|k| within(range, k)),
                    "{relative}: key-scanned but read {range:?}, outside the footer {footer:?} and key chunks {:?}",
                    key_ranges[&request.path]
                ),
                _ => {}
            }
        }
    }
    assert!(checked > 0, "the log saw ranged reads");
    for pruned in report
        .pruned
        .iter()
        .filter(|p| p.stage == PruneStage::Statistics)
    {
        let path = loc.child(&pruned.path).to_string();
        let gets = log
            .iter()
            .filter(|r| r.kind == Kind::Get && r.path == path)
            .count();
        assert_eq!(gets, 1, "{}: one footer read, got {gets}", pruned.path);
    }
}

/// A store that fails a share of requests: the merge either succeeds exactly or fails
/// cleanly, and after recovery the dataset is the before or the after state.
pub async fn failing_store_fails_cleanly_and_recovers(backend: &dyn DatasetBackend, fx: &Fixture) {
    let mut outcomes = (0, 0);
    for every in [3u64, 5, 7, 11, 13] {
        let (counting, loc) = fx.counted(&format!("failing-{every}"));
        backend
            .write(
                &loc,
                batches(vec![rows_of(&(0..40).collect::<Vec<_>>(), "a", "old")]),
                &WriteOptions::default().with_max_rows_per_file(10),
            )
            .await
            .expect("seed");
        let before = dataset(backend, &loc).await;
        counting.fail_every(every);
        let result = backend
            .merge(
                &loc,
                batches(vec![rows_of(&[3, 25, 77], "a", "new")]),
                &fx.merge_options(["id"], Strategy::Upsert),
            )
            .await;
        counting.fail_every(0);
        match &result {
            Ok(_) => outcomes.0 += 1,
            Err(e) => {
                outcomes.1 += 1;
                assert!(
                    !matches!(e, Error::Internal(_)),
                    "a storage failure is not a bug: {e}"
                );
            }
        }
        fsk_core::commit::recover(&loc, None)
            .await
            .expect("recover");
        let after = dataset(backend, &loc).await;
        let expected_after = {
            let mut v: Vec<String> = before
                .iter()
                .filter(|r| !r.starts_with("3:") && !r.starts_with("25:"))
                .cloned()
                .collect();
            v.extend([
                "3:new3".to_string(),
                "25:new25".to_string(),
                "77:new77".to_string(),
            ]);
            v.sort_by_key(|s| s.split(':').next().and_then(|i| i.parse::<i64>().ok()));
            v
        };
        assert!(
            after == before || after == expected_after,
            "every {every}: a mixed state {after:?}"
        );
        if result.is_ok() {
            assert_eq!(after, expected_after);
        }
        let leftovers = crate::data::fsk_leftovers(&loc).await;
        assert!(leftovers.is_empty(), "every {every}: {leftovers:?}");
    }
    assert!(
        outcomes.1 > 0,
        "some injected failures hit the merge: {outcomes:?}"
    );
}

/// Edge cases found in review: insert never rewrites even in full mode; full_merge keeps a
/// key the dataset held twice once; an emptied partitioned dataset keeps its layout; the text
/// "NULL" is not a null partition.
pub async fn merge_edge_cases(backend: &dyn DatasetBackend, fx: &Fixture) {
    // Insert with rewrite_mode = full rewrites nothing.
    let loc = seed(backend, fx, vec![rows_of(&[1, 2], "a", "old")], 100).await;
    let before = data_files(&loc).await;
    let mut options = fx.merge_options(["id"], Strategy::Insert);
    options.rewrite_mode = Some(RewriteMode::Full);
    let report = merge(backend, &loc, vec![rows_of(&[2, 3], "a", "new")], options).await;
    assert!(
        report.rewritten_files.is_empty(),
        "{:?}",
        report.rewritten_files
    );
    assert!(before.iter().all(|f| report.preserved_files.contains(f)));
    assert_eq!(report.inserted, 1);

    // A key held twice (two appends) comes out once after full_merge.
    let loc = fx.location("dup");
    for _ in 0..2 {
        backend
            .write(
                &loc,
                batches(vec![rows_of(&[1, 2], "a", "old")]),
                &WriteOptions::default(),
            )
            .await
            .expect("write");
    }
    let report = merge(
        backend,
        &loc,
        vec![rows_of(&[1], "a", "new")],
        fx.merge_options(["id"], Strategy::FullMerge),
    )
    .await;
    assert_eq!((report.updated, report.deleted, report.total), (1, 3, 1));
    assert_eq!(dataset(backend, &loc).await, vec!["1:new1"]);

    // An emptied partitioned dataset keeps its layout and takes merges again.
    let loc = fx.location("parts");
    backend
        .write(
            &loc,
            batches(vec![partitioned(&[1, 2], &["x", "y"], "old")]),
            &WriteOptions::default().with_partition_by(["day"]),
        )
        .await
        .expect("write");
    let empty = partitioned(&[], &[], "none");
    let report = merge(
        backend,
        &loc,
        vec![empty],
        fx.merge_options(["id"], Strategy::FullMerge),
    )
    .await;
    assert_eq!((report.deleted, report.total), (2, 0));
    assert!(
        report
            .files
            .iter()
            .all(|f| f.path.starts_with("day=__HIVE_DEFAULT_PARTITION__/")),
        "{:?}",
        report.files
    );
    let report = merge(
        backend,
        &loc,
        vec![partitioned(&[3], &["z"], "new")],
        fx.merge_options(["id"], Strategy::Upsert),
    )
    .await;
    assert_eq!(report.inserted, 1);
    assert!(
        report
            .inserted_files
            .iter()
            .all(|f| f.starts_with("day=z/"))
    );

    // The text "NULL" is not the null partition.
    let loc = fx.location("nulls");
    let batch = RecordBatch::try_new(
        partitioned(&[1], &["x"], "v").schema(),
        vec![
            Arc::new(Int64Array::from(vec![1])) as ArrayRef,
            Arc::new(StringArray::from(vec!["v1"])),
            Arc::new(StringArray::from(vec![None::<&str>])),
        ],
    )
    .expect("batch");
    backend
        .write(
            &loc,
            batches(vec![batch]),
            &WriteOptions::default().with_partition_by(["day"]),
        )
        .await
        .expect("write");
    let err = merge_err(
        backend,
        &loc,
        vec![partitioned(&[1], &["NULL"], "moved")],
        fx.merge_options(["id"], Strategy::Upsert),
    )
    .await;
    assert!(err.to_string().contains("partition"), "{err}");
}

/// Bloom filters on the key prune files that statistics cannot, before any key scan; the
/// rewritten files keep their bloom filters.
pub async fn bloom_filters_prune_before_the_key_scan(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let options = WriteOptions::default().with_bloom_filter_columns(["id"]);
    // Every file spans the whole id range: statistics cannot prune.
    for f in 0..4i64 {
        let ids: Vec<i64> = (0..50).map(|i| i * 4 + f).collect();
        backend
            .write(&loc, batches(vec![rows_of(&ids, "a", "old")]), &options)
            .await
            .expect("write");
    }
    for file in data_files(&loc).await {
        assert!(
            footer(&loc, &file)
                .await
                .bloom_filter_columns
                .contains("id"),
            "{file}"
        );
    }
    let report = merge(
        backend,
        &loc,
        vec![rows_of(&[5], "a", "new")],
        fx.merge_options(["id"], Strategy::Update),
    )
    .await;
    assert_eq!(report.files_pruned_by_statistics, 0, "{:?}", report.pruned);
    assert_eq!(report.files_confirmed, 1);
    assert_eq!(report.files_pruned_by_bloom, 3, "{:?}", report.pruned);
    assert_eq!(report.files_key_scanned, 1);
    for file in &report.rewritten_files {
        assert!(
            footer(&loc, file).await.bloom_filter_columns.contains("id"),
            "{file} keeps its bloom filter"
        );
    }
    assert!(dataset(backend, &loc).await.contains(&"5:new5".to_string()));
}

/// Bloom filters of an older file whose key is narrower (int32 in a dataset now int64) are
/// never probed with the wider values: the key is found and updated, never inserted twice.
pub async fn bloom_filters_of_narrower_keys_are_not_misread(
    backend: &dyn DatasetBackend,
    fx: &Fixture,
) {
    let loc = fx.location("ds");
    let bloom = WriteOptions::default().with_bloom_filter_columns(["id"]);
    let files = [
        ("a", crate::data::small_int32(&[5, 6, 7])),
        ("b", crate::data::small_int64(&[100, 101], "v")),
    ];
    for (name, batch) in files {
        let scratch = fx.location(&format!("src-{name}"));
        crate::data::copy_in(backend, &scratch, &loc, name, batch, &bloom).await;
    }
    let change = crate::data::small_int64(&[5], "new");
    let report = merge(
        backend,
        &loc,
        vec![change],
        fx.merge_options(["id"], Strategy::Upsert),
    )
    .await;
    assert_eq!((report.inserted, report.updated), (0, 1), "{report:?}");
    let (_, rows) = read_rows(backend, &loc, &ReadOptions::default()).await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(rows.iter().any(|r| r.contains("new5")), "{rows:?}");
}

/// Every merge check again on a fixture whose merges sort and spill their source (the path
/// of sources larger than memory): the same rows, counts, files and errors.
pub async fn merge_checks_pass_on_a_spilled_source(backend: &dyn DatasetBackend, fx: &Fixture) {
    let checks: Vec<(&str, crate::CheckFn)> = crate::all_checks()
        .into_iter()
        .filter(|(name, _)| {
            name.starts_with("merge_checks::")
                && !name.ends_with("on_a_spilled_source")
                && !name.ends_with("matches_the_in_memory_path")
        })
        .collect();
    assert!(
        checks.len() >= 20,
        "the merge checks are found: {}",
        checks.len()
    );
    let mut failures = Vec::new();
    for (name, check) in checks {
        let spilling = Fixture::spilling(fx.kind());
        assert!(spilling.spills_sources());
        let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(check(
            backend, &spilling,
        )))
        .await;
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            failures.push(format!("{name}: {message}"));
        }
    }
    assert!(
        failures.is_empty(),
        "merge checks failed on a spilled source:\n{}",
        failures.join("\n")
    );
}

/// `n` rows with ids `first..first+n` (every third repeated once more later in the batch, so
/// the source holds duplicates), partitioned by `cat` in three values.
fn spill_rows(first: i64, n: i64, tag: &str) -> RecordBatch {
    let mut ids: Vec<i64> = (first..first + n).collect();
    ids.extend((first..first + n).filter(|i| i % 3 == 0));
    let cats: Vec<String> = ids
        .iter()
        .map(|i| format!("c{}", i.rem_euclid(3)))
        .collect();
    RecordBatch::try_new(
        rows_schema(),
        vec![
            Arc::new(Int64Array::from(ids.clone())) as ArrayRef,
            Arc::new(StringArray::from(cats)),
            Arc::new(StringArray::from(
                ids.iter()
                    .enumerate()
                    .map(|(at, i)| format!("{tag}{i}-{at}"))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                ids.iter().map(|i| (i % 7) as f64).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("batch")
}

/// A source larger than a quarter of the budget is sorted by the engine and spilled (`Auto`),
/// and every strategy then gives exactly the rows, counts and preserved files of the same
/// merge with the source held in memory; `deduplicate` keeps the highest order value with
/// the same ties. Distinct keys that outgrow the budget are a typed out-of-memory error that
/// leaves the dataset untouched. Spill files are removed.
pub async fn spilled_source_matches_the_in_memory_path(backend: &dyn DatasetBackend, fx: &Fixture) {
    let spill_dir = tempfile::tempdir().expect("spill folder");
    let budget = MemoryBudget {
        bytes: 16 << 20,
        spill_dir: Some(spill_dir.path().to_path_buf()),
    };
    let target: Vec<RecordBatch> = (0..4)
        .map(|c| {
            rows_of(
                &((c * 30_000)..(c + 1) * 30_000).collect::<Vec<_>>(),
                "a",
                "old",
            )
        })
        .collect();
    // Ids 90,000..240,000 (30,000 exist), with duplicates.
    let source = vec![
        spill_rows(90_000, 75_000, "x"),
        spill_rows(165_000, 75_000, "y"),
    ];
    let source_bytes: usize = source.iter().map(|b| b.get_array_memory_size()).sum();
    assert!(
        source_bytes > budget.bytes / 4,
        "the source outgrows its share: {source_bytes}"
    );
    let write = WriteOptions {
        partition_by: vec!["cat".into()],
        max_rows_per_file: Some(10_000),
        ..WriteOptions::default()
    };
    for strategy in [
        Strategy::Upsert,
        Strategy::Insert,
        Strategy::Update,
        Strategy::FullMerge,
        Strategy::Deduplicate,
    ] {
        let mut reports = Vec::new();
        let mut contents = Vec::new();
        for spill in [SourceSpill::Never, SourceSpill::Auto] {
            let loc = fx.location(&format!("{strategy}-{spill:?}"));
            // The partitions come from the source's cat: rewrite the target to match.
            let seeded: Vec<RecordBatch> = target
                .iter()
                .map(|b| {
                    let ids = b
                        .column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .expect("ids");
                    let cats: Vec<String> = ids
                        .values()
                        .iter()
                        .map(|i| format!("c{}", i.rem_euclid(3)))
                        .collect();
                    let mut columns = b.columns().to_vec();
                    columns[1] = Arc::new(StringArray::from(cats));
                    RecordBatch::try_new(b.schema(), columns).expect("batch")
                })
                .collect();
            backend
                .write(&loc, batches(seeded), &write)
                .await
                .expect("seed");
            let mut options = MergeOptions {
                memory: budget.clone(),
                source_spill: spill,
                ..fx.merge_options(["id"], strategy)
            };
            if strategy == Strategy::Deduplicate {
                options.dedup_order_by = vec!["n".into()];
            }
            let report = merge(backend, &loc, source.clone(), options).await;
            assert_eq!(
                report.source_spilled_bytes > 0,
                spill == SourceSpill::Auto,
                "{strategy} {spill:?}: {report:?}"
            );
            if spill == SourceSpill::Auto {
                assert!(report.execution.sort.is_some(), "{:?}", report.execution);
            }
            let (_, rows) = read_rows(
                backend,
                &loc,
                &ReadOptions::default().with_columns(["id", "cat", "v", "n"]),
            )
            .await;
            let mut rows = rows;
            rows.sort();
            contents.push(rows);
            reports.push(report);
        }
        assert_eq!(contents[0].len() as u64, reports[0].total, "{strategy}");
        assert!(contents[0] == contents[1], "{strategy}: the same rows");
        assert_eq!(counts(&reports[0]), counts(&reports[1]), "{strategy}");
        assert_eq!(reports[0].source_count, reports[1].source_count);
        assert_eq!(
            reports[0].preserved_files.len(),
            reports[1].preserved_files.len(),
            "{strategy}: as many files preserved"
        );
        assert_eq!(
            reports[0].rewritten_files.len(),
            reports[1].rewritten_files.len(),
            "{strategy}"
        );
    }

    // 64-byte keys: 240,000 distinct keys take more than the 16 MiB budget.
    let loc = seed(backend, fx, vec![rows_of(&[1, 2], "a", "old")], 100).await;
    let wide: Vec<RecordBatch> = (0..4)
        .map(|c| {
            let ids: Vec<i64> = ((c * 60_000)..(c + 1) * 60_000).collect();
            let mut batch = rows_of(&ids, "a", "new");
            let keys: Vec<String> = ids.iter().map(|i| format!("{i:064}")).collect();
            let mut columns = batch.columns().to_vec();
            columns[2] = Arc::new(StringArray::from(keys));
            batch = RecordBatch::try_new(batch.schema(), columns).expect("batch");
            batch
        })
        .collect();
    let err = merge_err(
        backend,
        &loc,
        wide,
        MergeOptions {
            memory: budget.clone(),
            ..fx.merge_options(["v"], Strategy::Upsert)
        },
    )
    .await;
    assert!(
        matches!(err, Error::OutOfMemory { .. }) && err.kind() == "out_of_memory",
        "{err}"
    );
    // The engine's sort removes its runs once it sees its reader gone (on its own thread).
    let mut leftovers: Vec<String> = Vec::new();
    for _ in 0..100 {
        leftovers = std::fs::read_dir(spill_dir.path())
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        if leftovers.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        leftovers.is_empty(),
        "spill files are removed: {leftovers:?}"
    );
}
