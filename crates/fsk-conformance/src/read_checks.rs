//! Checks of `read` and `stats`, and of capabilities.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use fsk_core::Operations;
use fsk_core::engine::DatasetBackend;
use fsk_core::error::Error;
use fsk_core::write::WriteOptions;
use fsk_core::{ReadOptions, StatsOptions};

use crate::Fixture;
use crate::data::{batches, data_files, put, read_rows, rows, sample};

async fn write(
    backend: &dyn DatasetBackend,
    fx: &Fixture,
    name: &str,
    input: Vec<RecordBatch>,
    options: WriteOptions,
) -> fsk_core::Location {
    let loc = fx.location(name);
    backend
        .write(&loc, batches(input), &options)
        .await
        .expect("write");
    loc
}

fn ids(rows: &[String]) -> Vec<i64> {
    let mut out: Vec<i64> = rows
        .iter()
        .map(|r| {
            r.split('|')
                .find_map(|c| c.strip_prefix("id="))
                .expect("id column")
                .parse()
                .expect("int")
        })
        .collect();
    out.sort();
    out
}

/// Columns come back in the order given, partition columns included.
pub async fn projection_keeps_the_given_order(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = write(
        backend,
        fx,
        "ds",
        vec![sample(0, 6)],
        WriteOptions::default().with_partition_by(["day"]),
    )
    .await;
    let (schema, got) = read_rows(
        backend,
        &loc,
        &ReadOptions::default().with_columns(["day", "amount", "id"]),
    )
    .await;
    let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, vec!["day", "amount", "id"]);
    assert_eq!(got.len(), 6);
    assert!(
        got.iter().all(|r| r.starts_with("day=2025-01-0")),
        "{got:?}"
    );
    // Without columns: data columns, then partition columns.
    let (schema, _) = read_rows(backend, &loc, &ReadOptions::default()).await;
    let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, vec!["id", "name", "amount", "day"]);
}

/// An unknown column is a typed error naming it and listing the available ones.
pub async fn unknown_column_is_named(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = write(
        backend,
        fx,
        "ds",
        vec![sample(0, 3)],
        WriteOptions::default(),
    )
    .await;
    let err = backend
        .read(&loc, &ReadOptions::default().with_columns(["id", "nope"]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ColumnNotFound { ref column, .. } if column == "nope"),
        "{err}"
    );
    assert!(
        err.to_string().contains("amount"),
        "lists available columns: {err}"
    );
    let err = backend
        .read(&loc, &ReadOptions::default().with_filter("nope = 1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ColumnNotFound { ref column, .. } if column == "nope"),
        "{err}"
    );
}

/// Comparisons, `!=`/`<>`, AND/OR/NOT, IN, `IS [NOT] NULL` with SQL's null semantics.
pub async fn filters_follow_sql_semantics(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = write(
        backend,
        fx,
        "ds",
        vec![sample(0, 10), sample(10, 10)],
        WriteOptions::default().with_max_rows_per_file(7),
    )
    .await;
    let cases: Vec<(&str, Vec<i64>)> = vec![
        ("id < 3", vec![0, 1, 2]),
        ("id >= 17", vec![17, 18, 19]),
        ("3 > id", vec![0, 1, 2]),
        ("id = 5", vec![5]),
        ("id == 5", vec![5]),
        ("id != 1 AND id < 4", vec![0, 2, 3]),
        ("id <> 1 AND id < 4", vec![0, 2, 3]),
        ("id < 2 OR id > 18", vec![0, 1, 19]),
        ("NOT (id >= 2)", vec![0, 1]),
        ("id IN (1, 3, 99)", vec![1, 3]),
        ("id NOT IN (0, 1, 2) AND id < 5", vec![3, 4]),
        ("name IS NULL", vec![4, 9, 14, 19]),
        ("name IS NOT NULL AND id < 3", vec![0, 1, 2]),
        // A null name is neither equal nor unequal.
        ("name != 'name-1' AND id < 5", vec![0, 2, 3]),
        ("NOT (name = 'name-1') AND id < 5", vec![0, 2, 3]),
        ("name = 'name-12'", vec![12]),
        ("amount > 27.5", vec![19]),
        ("id = 1 OR id = 2 AND id = 3", vec![1]),
        ("(id = 1 OR id = 2) AND id = 2", vec![2]),
        ("id IN (1, NULL)", vec![1]),
        ("id NOT IN (1, NULL)", vec![]),
    ];
    for (filter, expected) in cases {
        let (_, got) = read_rows(backend, &loc, &ReadOptions::default().with_filter(filter)).await;
        assert_eq!(ids(&got), expected, "filter {filter}");
    }
}

/// Filters on partition columns prune and select.
pub async fn filter_on_partition_columns(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = write(
        backend,
        fx,
        "ds",
        vec![sample(0, 12)],
        WriteOptions::default().with_partition_by(["day"]),
    )
    .await;
    let (_, got) = read_rows(
        backend,
        &loc,
        &ReadOptions::default().with_filter("day = '2025-01-02'"),
    )
    .await;
    assert_eq!(ids(&got), vec![1, 4, 7, 10]);
    let (_, got) = read_rows(
        backend,
        &loc,
        &ReadOptions::default().with_filter("day > '2025-01-01' AND id < 6"),
    )
    .await;
    assert_eq!(ids(&got), vec![1, 2, 4, 5]);
    let options = ReadOptions::default().with_filter("day = '2025-01-02'");
    let plan = fsk_core::plan::scan::plan_scan(&loc, &options)
        .await
        .expect("plan");
    assert_eq!(plan.files.len(), 1);
    assert_eq!(plan.files_pruned_by_partition, 2);
}

/// A string literal compared with a date column is coerced to a date.
pub async fn filter_coerces_dates(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = write(
        backend,
        fx,
        "ds",
        vec![sample(0, 9)],
        WriteOptions::default(),
    )
    .await;
    let (_, got) = read_rows(
        backend,
        &loc,
        &ReadOptions::default().with_filter("day = '2025-01-03'"),
    )
    .await;
    assert_eq!(ids(&got), vec![2, 5, 8]);
    let (_, got) = read_rows(
        backend,
        &loc,
        &ReadOptions::default().with_filter("day IN ('2025-01-01', '2025-01-03') AND id < 4"),
    )
    .await;
    assert_eq!(ids(&got), vec![0, 2, 3]);
    let err = backend
        .read(
            &loc,
            &ReadOptions::default().with_filter("day = 'tomorrow'"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidFilter { .. }), "{err}");
    assert!(err.to_string().contains("tomorrow"), "{err}");
}

/// Malformed filters are typed errors naming the problem.
pub async fn malformed_filter_is_typed(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = write(
        backend,
        fx,
        "ds",
        vec![sample(0, 3)],
        WriteOptions::default(),
    )
    .await;
    for filter in [
        "id =",
        "id = 1 AND",
        "(id = 1",
        "id = 1)",
        "id ~ 3",
        "name = 'open",
        "",
        "id = 1 id = 2",
    ] {
        let err = backend
            .read(&loc, &ReadOptions::default().with_filter(filter))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidFilter { .. }),
            "{filter:?}: {err}"
        );
    }
    let err = backend
        .read(&loc, &ReadOptions::default().with_filter("name = 3"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidFilter { .. }), "{err}");
    assert!(err.to_string().contains("name"), "{err}");
}

/// The limit counts rows that passed the filter.
pub async fn limit_applies_after_filter(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = write(
        backend,
        fx,
        "ds",
        vec![sample(0, 30)],
        WriteOptions::default().with_max_rows_per_file(4),
    )
    .await;
    let (_, got) = read_rows(
        backend,
        &loc,
        &ReadOptions::default().with_filter("id >= 10").with_limit(5),
    )
    .await;
    assert_eq!(got.len(), 5);
    assert!(ids(&got).iter().all(|&i| i >= 10));
    let (_, got) = read_rows(backend, &loc, &ReadOptions::default().with_limit(0)).await;
    assert!(got.is_empty());
    let (_, got) = read_rows(backend, &loc, &ReadOptions::default().with_limit(1000)).await;
    assert_eq!(got.len(), 30);
}

/// A path to one parquet file reads that file.
pub async fn reads_a_single_file(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let report = backend
        .write(
            &loc,
            batches(vec![sample(0, 10)]),
            &WriteOptions::default().with_max_rows_per_file(6),
        )
        .await
        .expect("write");
    let file = fsk_core::Location::parse(&format!("{}/{}", fx.url("ds"), report.files[1].path))
        .expect("file");
    let (_, got) = read_rows(backend, &file, &ReadOptions::default()).await;
    assert_eq!(ids(&got), vec![6, 7, 8, 9]);
}

/// A missing path is a typed NotFound naming it.
pub async fn missing_path_is_not_found(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("does-not-exist");
    let err = backend
        .read(&loc, &ReadOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("does-not-exist"), "{err}");
    let err = backend
        .stats(&loc, &StatsOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

/// A folder with no parquet data is a typed error naming the criteria.
pub async fn folder_without_data_is_typed(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    put(&loc, "notes.txt", b"x").await;
    put(&loc, "_hidden/a.parquet", b"x").await;
    let err = backend
        .read(&loc, &ReadOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoDataFiles { .. }), "{err}");
    let err = backend
        .stats(&loc, &StatsOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoDataFiles { .. }), "{err}");
    assert!(err.to_string().contains(".parquet"), "{err}");
}

/// Hidden (`_`, `.`) and non-parquet files are never data.
pub async fn hidden_and_foreign_files_are_ignored(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = write(
        backend,
        fx,
        "ds",
        vec![sample(0, 5)],
        WriteOptions::default(),
    )
    .await;
    put(&loc, "_SUCCESS", b"").await;
    put(&loc, "_tmp/garbage.parquet", b"garbage").await;
    put(&loc, ".spark/garbage.parquet", b"garbage").await;
    put(&loc, "day=1/.crc.parquet", b"garbage").await;
    put(&loc, "notes.txt", b"notes").await;
    let (_, got) = read_rows(backend, &loc, &ReadOptions::default()).await;
    assert_eq!(got, rows(&[sample(0, 5)]));
    let stats = backend
        .stats(&loc, &StatsOptions::default())
        .await
        .expect("stats");
    assert_eq!(stats.files.len(), 1);
}

/// Partition columns: all-integer values are int64, dates date32, else strings; or as given.
pub async fn partition_types_are_inferred_or_given(backend: &dyn DatasetBackend, fx: &Fixture) {
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
            Arc::new(Int64Array::from(vec![Some(1), Some(10), None])),
            Arc::new(StringArray::from(vec!["a", "1", "b"])),
        ],
    )
    .expect("batch");
    let loc = write(
        backend,
        fx,
        "ds",
        vec![batch.clone()],
        WriteOptions::default().with_partition_by(["n", "s"]),
    )
    .await;
    let (schema, got) = read_rows(
        backend,
        &loc,
        &ReadOptions::default().with_columns(["id", "n", "s"]),
    )
    .await;
    assert_eq!(schema.field(1).data_type(), &DataType::Int64);
    assert_eq!(schema.field(2).data_type(), &DataType::Utf8);
    assert_eq!(got, rows(&[batch]));
    let (_, got) = read_rows(backend, &loc, &ReadOptions::default().with_filter("n = 1")).await;
    assert_eq!(ids(&got), vec![1]);
    let (schema, _) = read_rows(
        backend,
        &loc,
        &ReadOptions::default().with_partition_type("n", DataType::Utf8),
    )
    .await;
    assert_eq!(
        schema.field_with_name("n").expect("n").data_type(),
        &DataType::Utf8
    );
}

/// `stats` lists every file with its size and rows, and the totals.
pub async fn stats_lists_files_and_totals(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = write(
        backend,
        fx,
        "ds",
        vec![sample(0, 10)],
        WriteOptions::default().with_max_rows_per_file(4),
    )
    .await;
    let stats = backend
        .stats(&loc, &StatsOptions::default())
        .await
        .expect("stats");
    assert_eq!(stats.files.len(), 3);
    assert_eq!(stats.total_rows, 10);
    let mut paths: Vec<_> = stats.files.iter().map(|f| f.path.clone()).collect();
    let sorted = {
        let mut p = paths.clone();
        p.sort();
        p
    };
    assert_eq!(paths, sorted, "files are sorted by path");
    paths.sort();
    assert_eq!(paths, data_files(&loc).await);
    assert_eq!(
        stats.total_bytes,
        stats.files.iter().map(|f| f.size_bytes).sum::<u64>()
    );
    let mut counts: Vec<u64> = stats.files.iter().map(|f| f.num_rows).collect();
    counts.sort();
    assert_eq!(counts, vec![2, 4, 4]);
    for file in &stats.files {
        let size = crate::data::footer(&loc, &file.path).await.file.size;
        assert_eq!(size, file.size_bytes);
    }
}

/// `--partition-filter n=1` matches whole values at any depth; `a=1/b=2` needs both.
pub async fn stats_partition_filter_matches_whole_values(
    backend: &dyn DatasetBackend,
    fx: &Fixture,
) {
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("a", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])) as ArrayRef,
            Arc::new(StringArray::from(vec!["x", "x", "y", "y"])),
            Arc::new(Int64Array::from(vec![1, 10, 1, 2])),
        ],
    )
    .expect("batch");
    let loc = write(
        backend,
        fx,
        "ds",
        vec![batch],
        WriteOptions::default().with_partition_by(["a", "n"]),
    )
    .await;
    let only = |f: &str| StatsOptions {
        partition_filter: Some(f.to_string()),
    };
    let stats = backend.stats(&loc, &only("n=1")).await.expect("stats");
    assert_eq!(stats.total_rows, 2);
    assert!(
        stats.files.iter().all(|f| f.path.contains("/n=1/")),
        "{:?}",
        stats.files
    );
    let stats = backend.stats(&loc, &only("a=x/n=1")).await.expect("stats");
    assert_eq!(stats.files.len(), 1);
    let err = backend.stats(&loc, &only("a=z")).await.unwrap_err();
    assert!(matches!(err, Error::NoDataFiles { .. }), "{err}");
    assert!(err.to_string().contains("a=z"), "names the criteria: {err}");
}

/// A corrupt file is a typed error naming it; nothing is modified.
pub async fn corrupt_file_is_named(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = write(
        backend,
        fx,
        "ds",
        vec![sample(0, 5)],
        WriteOptions::default(),
    )
    .await;
    put(
        &loc,
        "zz-broken.parquet",
        b"PAR1 this is not a parquet file at all",
    )
    .await;
    let before = crate::data::all_objects(&loc).await;
    let err = backend
        .stats(&loc, &StatsOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CorruptFile { .. }), "{err}");
    assert!(err.to_string().contains("zz-broken.parquet"), "{err}");
    let err = match backend.read(&loc, &ReadOptions::default()).await {
        Err(e) => e,
        Ok(batches) => batches.collect().await.unwrap_err(),
    };
    assert!(matches!(err, Error::CorruptFile { .. }), "{err}");
    assert!(err.to_string().contains("zz-broken.parquet"), "{err}");
    let options =
        fsk_core::ops::merge::MergeOptions::new(["id"], fsk_core::ops::merge::Strategy::Upsert);
    let err = backend
        .merge(&loc, batches(vec![sample(1, 2)]), &options)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CorruptFile { .. }), "{err}");
    assert!(err.to_string().contains("zz-broken.parquet"), "{err}");
    assert_eq!(crate::data::all_objects(&loc).await, before);
}

/// Files written before a column was added read with nulls for it; widened types unify.
pub async fn files_with_evolved_schemas_are_unified(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    // Written as two separate datasets' files into one folder (overwrite would replace).
    let old = crate::data::small_int32(&[1, 2]);
    let old_loc = fx.location("ds/old");
    backend
        .write(&old_loc, batches(vec![old]), &WriteOptions::default())
        .await
        .expect("write");
    let new = crate::data::evolved_int64(&[3]);
    let new_loc = fx.location("ds/new");
    backend
        .write(&new_loc, batches(vec![new]), &WriteOptions::default())
        .await
        .expect("write");
    let (schema, got) = read_rows(backend, &loc, &ReadOptions::default()).await;
    assert_eq!(
        schema.field_with_name("id").expect("id").data_type(),
        &DataType::Int64
    );
    assert_eq!(got.len(), 3);
    assert!(got.contains(&"id=1|v=v1|extra=NULL".to_string()), "{got:?}");
    assert!(got.contains(&"id=3|v=v3|extra=e".to_string()), "{got:?}");
}

/// Operations the engine lacks fail with the typed NotSupported error.
pub async fn unsupported_operations_are_typed(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = write(
        backend,
        fx,
        "ds",
        vec![sample(0, 3)],
        WriteOptions::default(),
    )
    .await;
    let caps = backend.capabilities();
    assert!(caps.write && caps.read, "every engine writes and reads");
    let scan = fsk_core::plan::scan::plan_scan(&loc, &ReadOptions::default())
        .await
        .expect("plan");
    let sql = backend
        .sql(&fsk_core::plan::sql::SqlQuery {
            tables: vec![fsk_core::plan::sql::SqlTable {
                name: "dataset".into(),
                scan,
            }],
            sql: "SELECT count(*) FROM dataset".into(),
            params: Vec::new(),
            memory: fsk_core::plan::sort::MemoryBudget::default(),
        })
        .await;
    match (caps.sql, sql) {
        (false, Err(Error::NotSupported { engine, operation })) => {
            assert_eq!(engine, backend.name());
            assert_eq!(operation, "sql");
        }
        (false, other) => panic!(
            "sql is not a capability but returned {:?}",
            other.map(|_| ())
        ),
        (true, Ok(result)) => {
            let batch = result.concat().await.expect("sql result");
            assert_eq!(batch.num_rows(), 1);
            let count = arrow::compute::cast(batch.column(0), &DataType::Int64).expect("count");
            let count = count
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .expect("int64");
            assert_eq!(count.value(0), 3, "count(*) over the three rows written");
        }
        (true, Err(e)) => panic!("sql is a capability but failed: {e}"),
    }
}

/// Access denied by the store (an S3 403, missing credentials) is the typed
/// `PermissionDenied` error for every operation, naming the path and keeping the store's
/// original message; nothing is changed.
pub async fn access_denied_is_typed(backend: &dyn DatasetBackend, fx: &Fixture) {
    let (counting, loc) = fx.counted("ds");
    backend
        .write(&loc, batches(vec![sample(0, 5)]), &WriteOptions::default())
        .await
        .expect("write");
    counting.deny_all(true);
    let check = |what: &str, result: Result<(), Error>| match result {
        Err(Error::PermissionDenied { path, source }) => {
            assert!(!path.is_empty(), "{what}: the path is named");
            assert!(
                source.to_string().contains("Access Denied"),
                "{what}: the original message is kept: {source}"
            );
        }
        other => panic!("{what}: expected PermissionDenied, got {other:?}"),
    };
    check(
        "read",
        backend
            .read(&loc, &ReadOptions::default())
            .await
            .map(|_| ()),
    );
    check(
        "stats",
        backend.stats(&loc, &Default::default()).await.map(|_| ()),
    );
    check(
        "write",
        backend
            .write(&loc, batches(vec![sample(5, 5)]), &WriteOptions::default())
            .await
            .map(|_| ()),
    );
    check(
        "merge",
        backend
            .merge(
                &loc,
                batches(vec![sample(0, 2)]),
                &fsk_core::ops::merge::MergeOptions::new(
                    ["id"],
                    fsk_core::ops::merge::Strategy::Upsert,
                ),
            )
            .await
            .map(|_| ()),
    );
    check(
        "compact",
        backend
            .compact(&loc, &fsk_core::ops::compact::CompactOptions::new())
            .await
            .map(|_| ()),
    );
    counting.deny_all(false);
    let (_, rows) = read_rows(backend, &loc, &ReadOptions::default()).await;
    assert_eq!(rows.len(), 5, "nothing changed");
}

/// A selective filter on a non-partition column reads a small part of the file, even inside
/// one row group (where statistics cannot prune): the filter column is decoded first and the
/// other columns' pages are fetched only where rows survive. Counted through the counting
/// store, so on DuckDB this runs the object-store path (the core's arrow-rs scan with the
/// filter in the reader; DuckDB's own reader on local disk bypasses the store).
pub async fn scan_pushdown_reads_a_fraction_of_the_bytes(
    backend: &dyn DatasetBackend,
    fx: &Fixture,
) {
    let (counting, loc) = fx.counted("ds");
    let n = 40_000i64;
    let ids: Vec<i64> = (0..n).collect();
    // Incompressible payloads (hex of a xorshift sequence), so the column's pages are many.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let payload: Vec<String> = ids
        .iter()
        .map(|i| {
            let mut text = format!("{i:08}-");
            for _ in 0..25 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(&format!("{state:016x}"));
            }
            text
        })
        .collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("payload", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(Int64Array::from(ids)) as ArrayRef,
            Arc::new(StringArray::from(payload)),
        ],
    )
    .expect("batch");
    backend
        .write(
            &loc,
            batches(vec![batch]),
            &WriteOptions::default().with_row_group_size(n as usize),
        )
        .await
        .expect("write");
    let files = fsk_core::dataset::listing::data_files(&loc)
        .await
        .expect("list");
    assert_eq!(files.len(), 1);
    let size = files[0].size;
    counting.take();
    let (_, got) = read_rows(
        backend,
        &loc,
        &ReadOptions::default().with_filter("id = 23456"),
    )
    .await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("00023456-"), "{got:?}");
    let read: u64 = counting
        .take()
        .iter()
        .filter(|r| r.kind == crate::store::Kind::Get && r.path.ends_with(".parquet"))
        .map(|r| {
            if r.ranges.is_empty() {
                size // a whole-object read
            } else {
                r.ranges.iter().map(|range| range.end - range.start).sum()
            }
        })
        .sum();
    eprintln!("scan pushdown: {read} of {size} bytes read");
    assert!(
        read * 4 < size,
        "a filter matching one row of one row group read {read} of {size} bytes"
    );
}
