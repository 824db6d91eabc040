//! Property tests: write then read gives the same multiset of rows, for random schemas (nulls,
//! nested types, decimals, zoned timestamps), random `max_rows_per_file` and partitioning.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Decimal128Array, Float64Array, Int32Array, Int64Array, ListArray,
    RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Fields, Int64Type, Schema};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use fsk_core::Operations;
use fsk_core::ReadOptions;
use fsk_core::engine::DatasetBackend;
use fsk_core::write::WriteOptions;

use crate::data::{batches, rows};

/// The kinds of columns the generator picks from.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Int64,
    Int32,
    Float,
    Text,
    Bool,
    Decimal,
    TimestampTz,
    List,
    Struct,
}

fn column(kind: Kind, n: usize, seed: u64) -> ArrayRef {
    let v = |i: usize| {
        (seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add((i as u64).wrapping_mul(1442695040888963407))
            >> 33) as i64
    };
    let null = |i: usize| v(i) % 7 == 0;
    match kind {
        Kind::Int64 => Arc::new(Int64Array::from(
            (0..n)
                .map(|i| (!null(i)).then(|| v(i) - (1 << 29)))
                .collect::<Vec<_>>(),
        )),
        Kind::Int32 => Arc::new(Int32Array::from(
            (0..n)
                .map(|i| (!null(i)).then(|| (v(i) % 1000) as i32))
                .collect::<Vec<_>>(),
        )),
        Kind::Float => Arc::new(Float64Array::from(
            (0..n)
                .map(|i| (!null(i)).then(|| v(i) as f64 / 7.0))
                .collect::<Vec<_>>(),
        )),
        Kind::Text => Arc::new(StringArray::from(
            (0..n)
                .map(|i| (!null(i)).then(|| format!("t{}", v(i) % 50)))
                .collect::<Vec<_>>(),
        )),
        Kind::Bool => Arc::new(BooleanArray::from(
            (0..n)
                .map(|i| (!null(i)).then(|| v(i) % 2 == 0))
                .collect::<Vec<_>>(),
        )),
        Kind::Decimal => Arc::new(
            Decimal128Array::from(
                (0..n)
                    .map(|i| (!null(i)).then(|| v(i) as i128 - 1000))
                    .collect::<Vec<_>>(),
            )
            .with_precision_and_scale(18, 3)
            .expect("decimal"),
        ),
        Kind::TimestampTz => Arc::new(
            TimestampMicrosecondArray::from(
                (0..n)
                    .map(|i| (!null(i)).then(|| v(i) * 1_000_000))
                    .collect::<Vec<_>>(),
            )
            .with_timezone("Asia/Tokyo"),
        ),
        Kind::List => Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
            (0..n).map(|i| {
                (!null(i)).then(|| {
                    (0..(v(i) % 3) as usize)
                        .map(|j| Some(j as i64))
                        .collect::<Vec<_>>()
                })
            }),
        )),
        Kind::Struct => {
            let fields = Fields::from(vec![
                Field::new("a", DataType::Int64, true),
                Field::new("b", DataType::Utf8, true),
            ]);
            Arc::new(StructArray::new(
                fields,
                vec![
                    column(Kind::Int64, n, seed + 1),
                    column(Kind::Text, n, seed + 2),
                ],
                None,
            ))
        }
    }
}

fn kind_strategy() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Int64),
        Just(Kind::Int32),
        Just(Kind::Float),
        Just(Kind::Text),
        Just(Kind::Bool),
        Just(Kind::Decimal),
        Just(Kind::TimestampTz),
        Just(Kind::List),
        Just(Kind::Struct),
    ]
}

/// One generated case.
#[derive(Clone, Debug)]
pub struct Case {
    kinds: Vec<Kind>,
    rows: Vec<usize>,
    max_rows_per_file: Option<usize>,
    partition: Option<usize>,
    seed: u64,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(kind_strategy(), 1..6),
        proptest::collection::vec(0usize..40, 1..4),
        proptest::option::of(1usize..30),
        proptest::option::of(0usize..2),
        any::<u64>(),
    )
        .prop_map(|(kinds, rows, max_rows_per_file, partition, seed)| Case {
            kinds,
            rows,
            max_rows_per_file,
            partition,
            seed,
        })
}

fn build(case: &Case) -> (Vec<RecordBatch>, Option<String>) {
    // Column 0 is always an id; a partition column (if any) is a small int or a text.
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    for (i, kind) in case.kinds.iter().enumerate() {
        fields.push(Field::new(
            format!("c{i}"),
            column(*kind, 1, 0).data_type().clone(),
            true,
        ));
    }
    let partition = case.partition.map(|p| {
        let name = format!("p{p}");
        let data_type = if p == 0 {
            DataType::Int64
        } else {
            DataType::Utf8
        };
        fields.push(Field::new(&name, data_type, true));
        name
    });
    let schema = Arc::new(Schema::new(fields));
    let mut start = 0i64;
    let mut out = Vec::new();
    for (b, &n) in case.rows.iter().enumerate() {
        let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(
            (start..start + n as i64).collect::<Vec<_>>(),
        ))];
        for (i, kind) in case.kinds.iter().enumerate() {
            columns.push(column(*kind, n, case.seed ^ ((b * 31 + i) as u64)));
        }
        if let Some(p) = case.partition {
            if p == 0 {
                columns.push(Arc::new(Int64Array::from(
                    (0..n)
                        .map(|i| (i % 4 != 3).then_some((i % 3) as i64))
                        .collect::<Vec<_>>(),
                )));
            } else {
                columns.push(Arc::new(StringArray::from(
                    (0..n)
                        .map(|i| (i % 5 != 4).then(|| ["a b", "c/d", "e%f"][i % 3]))
                        .collect::<Vec<_>>(),
                )));
            }
        }
        start += n as i64;
        out.push(RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch"));
    }
    (out, partition)
}

/// A runner configuration of `cases` cases whose failures persist in `file` (committed
/// under `crates/fsk-conformance/proptest-regressions/`), replayed first on every run.
pub(crate) fn persisted(cases: u32, file: &'static str) -> Config {
    Config {
        cases,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(file),
        )),
        ..Config::default()
    }
}

/// Runs `cases` random write-then-read round trips on local disk, shrinking a failing case.
/// Needs a multi-threaded Tokio runtime (the property runner blocks in place).
pub async fn write_read_round_trip(backend: &dyn DatasetBackend, cases: u32) {
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        let mut runner = TestRunner::new(persisted(
            cases,
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/proptest-regressions/round_trip.txt"
            ),
        ));
        let result = runner.run(&case_strategy(), |case| {
            handle.block_on(check_case(backend, case));
            Ok(())
        });
        if let Err(e) = result {
            panic!(
                "write/read round trip property failed on {}: {e}",
                backend.name()
            );
        }
    });
}

async fn check_case(backend: &dyn DatasetBackend, case: Case) {
    let dir = tempfile::tempdir().expect("dir");
    let loc = fsk_core::Location::parse(&dir.path().join("ds").display().to_string()).expect("loc");
    let (input, partition) = build(&case);
    let mut options = WriteOptions::default();
    if let Some(m) = case.max_rows_per_file {
        options = options.with_max_rows_per_file(m);
    }
    if let Some(p) = &partition {
        options = options.with_partition_by([p.clone()]);
    }
    let names: Vec<String> = input[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let expected = rows(&input);
    let total: usize = input.iter().map(|b| b.num_rows()).sum();
    let report = backend
        .write(&loc, batches(input), &options)
        .await
        .unwrap_or_else(|e| panic!("{case:?}: {e}"));
    assert_eq!(report.total_rows as usize, total, "{case:?}");
    if let Some(m) = case.max_rows_per_file {
        assert!(
            report.files.iter().all(|f| f.row_count as usize <= m),
            "{case:?}"
        );
    }
    let mut read = ReadOptions::default().with_columns(names);
    if let Some(p) = &partition {
        let t = if p == "p0" {
            DataType::Int64
        } else {
            DataType::Utf8
        };
        read = read.with_partition_type(p.clone(), t);
    }
    let got = backend
        .read(&loc, &read)
        .await
        .unwrap_or_else(|e| panic!("{case:?}: {e}"));
    let got = got
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{case:?}: {e}"));
    assert_eq!(rows(&got), expected, "{case:?}");
}

/// One generated merge case: target files (disjoint or overlapping id ranges), a change set
/// with possible duplicate keys, a strategy, and whether the dataset is partitioned.
#[derive(Clone, Debug)]
pub struct MergeCase {
    files: Vec<Vec<i64>>,
    changes: Vec<i64>,
    strategy: usize,
    partitioned: bool,
    max_rows_per_file: Option<usize>,
}

fn merge_case_strategy() -> impl Strategy<Value = MergeCase> {
    (
        proptest::collection::vec(proptest::collection::btree_set(0i64..200, 0..25), 0..5),
        proptest::collection::vec(0i64..220, 0..30),
        0usize..5,
        any::<bool>(),
        proptest::option::of(1usize..12),
    )
        .prop_map(
            |(files, changes, strategy, partitioned, max_rows_per_file)| {
                // Keys are unique across the target.
                let mut seen = std::collections::BTreeSet::new();
                let files = files
                    .into_iter()
                    .map(|f| {
                        f.into_iter()
                            .filter(|id| seen.insert(*id))
                            .collect::<Vec<_>>()
                    })
                    .filter(|f| !f.is_empty())
                    .collect();
                MergeCase {
                    files,
                    changes,
                    strategy,
                    partitioned,
                    max_rows_per_file,
                }
            },
        )
}

fn merge_batch(ids: &[i64], tag: &str) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
            Field::new("day", DataType::Int64, true),
        ])),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
            Arc::new(StringArray::from(
                ids.iter()
                    .enumerate()
                    .map(|(i, id)| format!("{tag}{id}.{i}"))
                    .collect::<Vec<_>>(),
            )),
            // The partition follows the key, so no key ever moves.
            Arc::new(Int64Array::from(
                ids.iter().map(|id| id % 3).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("batch")
}

/// Random targets and change sets, every strategy, against a naive in-memory model.
/// Needs a multi-threaded Tokio runtime.
pub async fn merge_matches_model(backend: &dyn DatasetBackend, cases: u32) {
    use fsk_core::ops::merge::{MergeOptions, Strategy as MergeStrategy};
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        let mut runner = TestRunner::new(persisted(
            cases,
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/proptest-regressions/merge_model.txt"
            ),
        ));
        let result = runner.run(&merge_case_strategy(), |case| {
            handle.block_on(async {
                let strategies = [
                    MergeStrategy::Insert,
                    MergeStrategy::Update,
                    MergeStrategy::Upsert,
                    MergeStrategy::FullMerge,
                    MergeStrategy::Deduplicate,
                ];
                let strategy = strategies[case.strategy];
                let dir = tempfile::tempdir().expect("dir");
                let loc = fsk_core::Location::parse(&dir.path().join("ds").display().to_string())
                    .expect("loc");
                let mut model: Vec<RecordBatch> = Vec::new();
                for ids in &case.files {
                    let batch = merge_batch(ids, "t");
                    let mut options = WriteOptions::default();
                    if case.partitioned {
                        options = options.with_partition_by(["day"]);
                    }
                    if let Some(m) = case.max_rows_per_file {
                        options = options.with_max_rows_per_file(m);
                    }
                    backend
                        .write(&loc, batches(vec![batch.clone()]), &options)
                        .await
                        .expect("seed");
                    model.push(batch);
                }
                let source = merge_batch(&case.changes, "s");
                // The model: rows by key.
                let mut target: std::collections::BTreeMap<i64, String> =
                    std::collections::BTreeMap::new();
                for batch in &model {
                    for row in rows(std::slice::from_ref(batch)) {
                        let id: i64 = row
                            .split('|')
                            .next()
                            .expect("id")
                            .trim_start_matches("id=")
                            .parse()
                            .expect("int");
                        target.insert(id, row);
                    }
                }
                let mut last: std::collections::BTreeMap<i64, String> =
                    std::collections::BTreeMap::new();
                for (i, id) in case.changes.iter().enumerate() {
                    last.insert(*id, rows(&[source.slice(i, 1)]).remove(0));
                }
                let mut expected = target.clone();
                match strategy {
                    MergeStrategy::Insert => {
                        for (id, row) in &last {
                            expected.entry(*id).or_insert_with(|| row.clone());
                        }
                    }
                    MergeStrategy::Update => {
                        for (id, row) in &last {
                            if let Some(slot) = expected.get_mut(id) {
                                *slot = row.clone();
                            }
                        }
                    }
                    MergeStrategy::Upsert | MergeStrategy::Deduplicate => {
                        for (id, row) in &last {
                            expected.insert(*id, row.clone());
                        }
                    }
                    MergeStrategy::FullMerge => expected = last.clone(),
                }
                let mut options = MergeOptions::new(["id"], strategy);
                options.write.max_rows_per_file = case.max_rows_per_file;
                // Half the cases sort and spill the source (the path of sources larger than
                // memory): the model is the same.
                if case.changes.len() % 2 == 1 {
                    options.source_spill = fsk_core::ops::merge::SourceSpill::Always;
                }
                let report = backend
                    .merge(&loc, batches(vec![source]), &options)
                    .await
                    .unwrap_or_else(|e| panic!("{case:?}: {e}"));
                let expected_rows: Vec<String> = {
                    let mut v: Vec<String> = expected.values().cloned().collect();
                    v.sort();
                    v
                };
                assert_eq!(report.total as usize, expected_rows.len(), "{case:?}");
                let matched = last.keys().filter(|k| target.contains_key(k)).count() as u64;
                let new = last.len() as u64 - matched;
                let (ins, upd) = match strategy {
                    MergeStrategy::Insert => (new, 0),
                    MergeStrategy::Update => (0, matched),
                    _ => (new, matched),
                };
                assert_eq!((report.inserted, report.updated), (ins, upd), "{case:?}");
                if report.files.is_empty() {
                    // Nothing was ever written (for example update into a missing dataset).
                    assert!(expected_rows.is_empty(), "{case:?}");
                    return Ok(());
                }
                if expected_rows.is_empty() {
                    // An emptied dataset keeps one zero-row file at its root (no partition
                    // folder, so no partition column to project).
                    let got = backend
                        .read(&loc, &ReadOptions::default())
                        .await
                        .expect("read");
                    let got = got.collect().await.expect("rows");
                    assert_eq!(
                        got.iter().map(|b| b.num_rows()).sum::<usize>(),
                        0,
                        "{case:?}"
                    );
                    return Ok(());
                }
                let read = ReadOptions::default().with_columns(["id", "v", "day"]);
                let got = backend
                    .read(&loc, &read)
                    .await
                    .unwrap_or_else(|e| panic!("{case:?}: {e}"));
                let got = got
                    .collect()
                    .await
                    .unwrap_or_else(|e| panic!("{case:?}: {e}"));
                assert_eq!(rows(&got), expected_rows, "{case:?}");
                Ok(())
            })
        });
        if let Err(e) = result {
            panic!("merge model property failed on {}: {e}", backend.name());
        }
    });
}

/// One maintenance case: files of `(id, x)` rows (ids repeat), partitioned by `id % 3` or not,
/// and the operation: 0 compact, 1 optimize, 2 dedup by id (the highest `seq` stays),
/// 3 optimize with the same dedup.
#[derive(Clone, Debug)]
struct MaintenanceCase {
    files: Vec<Vec<(i64, Option<i64>)>>,
    partitioned: bool,
    operation: usize,
    target_rows: u64,
    hilbert: bool,
    two_columns: bool,
}

fn maintenance_case_strategy() -> impl Strategy<Value = MaintenanceCase> {
    (
        proptest::collection::vec(
            proptest::collection::vec((0i64..15, proptest::option::of(-50i64..50)), 1..20),
            1..5,
        ),
        any::<bool>(),
        0usize..4,
        1u64..12,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(files, partitioned, operation, target_rows, hilbert, two_columns)| MaintenanceCase {
                files,
                partitioned,
                operation,
                target_rows,
                hilbert,
                two_columns,
            },
        )
}

/// `id, x, seq (unique, global order of the row), day (id % 3)`.
fn maintenance_batch(rows: &[(i64, Option<i64>)], first_seq: i64) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("x", DataType::Int64, true),
            Field::new("seq", DataType::Int64, false),
            Field::new("day", DataType::Int64, false),
        ])),
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )) as ArrayRef,
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from_iter_values(
                (0..rows.len() as i64).map(|i| first_seq + i),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.0 % 3).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("batch")
}

/// Random datasets and maintenance operations: compact and optimize keep the multiset of
/// rows; dedup (alone, or inside optimize) equals a naive model (per partition and id, the
/// row with the highest `seq`). Needs a multi-threaded Tokio runtime.
pub async fn maintenance_keeps_rows(backend: &dyn DatasetBackend, cases: u32) {
    use fsk_core::ops::compact::CompactOptions;
    use fsk_core::ops::dedup::DedupOptions;
    use fsk_core::ops::optimize::{Curve, OptimizeOptions};
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        let mut runner = TestRunner::new(persisted(
            cases,
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/proptest-regressions/maintenance_model.txt"
            ),
        ));
        let result = runner.run(&maintenance_case_strategy(), |case| {
            handle.block_on(async {
                let dir = tempfile::tempdir().expect("dir");
                let loc = fsk_core::Location::parse(&dir.path().join("ds").display().to_string())
                    .expect("loc");
                let mut options = WriteOptions::default();
                if case.partitioned {
                    options = options.with_partition_by(["day"]);
                }
                let mut written: Vec<RecordBatch> = Vec::new();
                let mut seq = 0i64;
                for file in &case.files {
                    let batch = maintenance_batch(file, seq);
                    seq += file.len() as i64;
                    backend
                        .write(&loc, batches(vec![batch.clone()]), &options)
                        .await
                        .expect("seed");
                    written.push(batch);
                }
                let read = |loc: fsk_core::Location| async move {
                    let (_, rows) =
                        crate::data::read_rows(backend, &loc, &ReadOptions::default()).await;
                    rows
                };
                let before = read(loc.clone()).await;
                // The model of dedup: per id (the partition follows the id), the highest seq.
                let mut best: std::collections::BTreeMap<i64, (i64, String)> =
                    std::collections::BTreeMap::new();
                for row in &before {
                    let cell = |name: &str| -> i64 {
                        row.split('|')
                            .find_map(|c| c.strip_prefix(&format!("{name}=")))
                            .expect("cell")
                            .parse()
                            .expect("int")
                    };
                    let (id, s) = (cell("id"), cell("seq"));
                    if best.get(&id).is_none_or(|(top, _)| s > *top) {
                        best.insert(id, (s, row.clone()));
                    }
                }
                let mut deduplicated: Vec<String> = best.into_values().map(|(_, r)| r).collect();
                deduplicated.sort();
                let columns: Vec<&str> = if case.two_columns {
                    vec!["x", "seq"]
                } else {
                    vec!["x"]
                };
                let curve = if case.hilbert {
                    Curve::Hilbert
                } else {
                    Curve::ZOrder
                };
                let optimize = OptimizeOptions::new(columns)
                    .with_curve(curve)
                    .with_target_rows(case.target_rows);
                let expected = match case.operation {
                    0 => {
                        backend
                            .compact(
                                &loc,
                                &CompactOptions::new().with_target_rows(case.target_rows),
                            )
                            .await
                            .unwrap_or_else(|e| panic!("{case:?}: {e}"));
                        before.clone()
                    }
                    1 => {
                        backend
                            .optimize(&loc, &optimize)
                            .await
                            .unwrap_or_else(|e| panic!("{case:?}: {e}"));
                        before.clone()
                    }
                    2 => {
                        let report = backend
                            .dedup(
                                &loc,
                                &DedupOptions {
                                    key: vec!["id".into()],
                                    order_by: vec!["seq".into()],
                                    ..Default::default()
                                },
                            )
                            .await
                            .unwrap_or_else(|e| panic!("{case:?}: {e}"));
                        assert_eq!(
                            report.removed_rows as usize,
                            before.len() - deduplicated.len(),
                            "{case:?}"
                        );
                        deduplicated.clone()
                    }
                    _ => {
                        let report = backend
                            .optimize(&loc, &optimize.clone().with_dedup(["id"], ["seq"]))
                            .await
                            .unwrap_or_else(|e| panic!("{case:?}: {e}"));
                        assert_eq!(
                            report.deduplicated_rows as usize,
                            before.len() - deduplicated.len(),
                            "{case:?}"
                        );
                        deduplicated.clone()
                    }
                };
                assert_eq!(read(loc.clone()).await, expected, "{case:?}");
                if case.operation != 2 {
                    // Compact and optimize: no file above the row target.
                    let stats = backend
                        .stats(&loc, &Default::default())
                        .await
                        .expect("stats");
                    assert!(
                        stats.files.iter().all(|f| f.num_rows <= case.target_rows),
                        "{case:?}: {:?}",
                        stats.files
                    );
                }
            });
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    });
}
