//! Compaction checks: small files become files near the target size, per folder; rows never
//! change; large files are never touched; dry runs write nothing; errors are typed.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use fsk_core::Location;
use fsk_core::Operations;
use fsk_core::ReadOptions;
use fsk_core::engine::DatasetBackend;
use fsk_core::error::Error;
use fsk_core::ops::compact::{CompactOptions, CompactReport};
use fsk_core::write::WriteOptions;

use crate::Fixture;
use crate::data::{all_objects, batches, copy_in, data_files, fsk_leftovers, read_rows, sample};

async fn sorted_rows(backend: &dyn DatasetBackend, loc: &Location) -> Vec<String> {
    let mut rows = read_rows(backend, loc, &ReadOptions::default()).await.1;
    rows.sort();
    rows
}

async fn append(backend: &dyn DatasetBackend, loc: &Location, batch: RecordBatch) {
    backend
        .write(loc, batches(vec![batch]), &WriteOptions::default())
        .await
        .expect("append");
}

async fn compact(
    backend: &dyn DatasetBackend,
    loc: &Location,
    options: CompactOptions,
) -> CompactReport {
    backend
        .compact(loc, &options)
        .await
        .unwrap_or_else(|e| panic!("compact failed: {e}"))
}

/// The `id` column of a dataset or file, in read order.
async fn ids_in_order(backend: &dyn DatasetBackend, loc: &Location) -> Vec<i64> {
    let batches = backend
        .read(loc, &ReadOptions::default().with_columns(["id"]))
        .await
        .expect("read")
        .collect()
        .await
        .expect("read stream");
    batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("int64 id")
                .values()
                .to_vec()
        })
        .collect()
}

async fn sizes(loc: &Location) -> Vec<(String, u64)> {
    fsk_core::dataset::listing::data_files(loc)
        .await
        .expect("list")
        .into_iter()
        .map(|f| (f.relative, f.size))
        .collect()
}

/// Ten small files and one large one: the small ones become one file holding their rows in
/// file-name order; the large one keeps its name and bytes; the report is exact.
pub async fn compact_merges_small_files_and_keeps_rows(backend: &dyn DatasetBackend, fx: &Fixture) {
    let (counting, loc) = fx.counted("ds");
    for i in 0..10 {
        append(backend, &loc, sample(i * 10, 10)).await;
    }
    append(backend, &loc, sample(1000, 2000)).await;
    let before = sorted_rows(backend, &loc).await;
    let before_files = sizes(&loc).await;
    let (large, large_size) = before_files
        .iter()
        .max_by_key(|(_, size)| *size)
        .cloned()
        .expect("files");
    let small_sizes: Vec<u64> = before_files
        .iter()
        .filter(|(p, _)| *p != large)
        .map(|(_, s)| *s)
        .collect();
    let threshold = small_sizes.iter().max().expect("small") + 1;
    assert!(threshold <= large_size, "the large file is larger");
    // The rows of the small files, in the order compaction writes them (file name order).
    let mut in_name_order = Vec::new();
    for (path, _) in before_files.iter().filter(|(p, _)| *p != large) {
        let single = Location::parse(&format!("{loc}/{path}")).expect("file location");
        in_name_order.extend(ids_in_order(backend, &single).await);
    }

    counting.take();
    let options = CompactOptions::new()
        .with_target_file_size(64 << 20)
        .with_min_file_size(threshold);
    let report = compact(backend, &loc, options.clone()).await;
    // Round trips, so that a regression shows: one footer read and one data read per input,
    // one read of the lease (still ours, before release); the lease, its conditional renewal
    // right before the journal, the new file and the journal (4 PUTs; locally the lease is
    // an OS lock and costs none); one copy to publish; the 10 inputs,
    // the journal and the lease deleted; 4 listings (recovery's `_fsk/txn` and
    // `_fsk/staging`, the dataset, the transaction's staging folder).
    use crate::store::Kind;
    crate::store::assert_within_budget(
        &format!(
            "a compaction of 10 small files (1 large kept) on {:?}",
            fx.kind()
        ),
        &counting.take(),
        &[
            (Kind::Get, 10 + 10 + 1),
            (Kind::Put, 4),
            (Kind::List, 4),
            (Kind::Delete, 10 + 2),
            (Kind::Copy, 1),
        ],
    );
    assert_eq!(report.engine, backend.name());
    assert!(!report.dry_run);
    assert_eq!((report.files_before, report.files_after), (11, 2));
    assert_eq!(report.groups.len(), 1);
    assert_eq!(report.groups[0].inputs.len(), 10);
    assert_eq!(report.groups[0].rows, 100);
    assert_eq!(report.rows_rewritten, 100);
    assert_eq!(report.preserved_files, 1);
    assert_eq!(report.added_files.len(), 1);
    assert_eq!(report.added_files[0].row_count, 100);
    assert_eq!(report.bytes_read, small_sizes.iter().sum::<u64>());
    let removed: BTreeSet<&String> = report.removed_files.iter().collect();
    let small: BTreeSet<&String> = before_files
        .iter()
        .map(|(p, _)| p)
        .filter(|p| **p != large)
        .collect();
    assert_eq!(removed, small);

    let after_files = sizes(&loc).await;
    assert!(
        after_files.contains(&(large.clone(), large_size)),
        "the large file keeps its name and size: {after_files:?}"
    );
    let new_file = &report.added_files[0];
    assert!(after_files.contains(&(new_file.path.clone(), new_file.size_bytes)));
    assert_eq!(after_files.len(), 2);
    assert_eq!(sorted_rows(backend, &loc).await, before, "the same rows");
    let single = Location::parse(&format!("{loc}/{}", new_file.path)).expect("file");
    assert_eq!(
        ids_in_order(backend, &single).await,
        in_name_order,
        "rows in input order"
    );
    assert_eq!(fsk_leftovers(&loc).await, Vec::<String>::new());

    // Nothing left to do: a second run changes nothing.
    let again = compact(backend, &loc, options).await;
    assert!(again.groups.is_empty() && again.removed_files.is_empty());
    assert_eq!(sizes(&loc).await, after_files);
    assert_eq!(fsk_leftovers(&loc).await, Vec::<String>::new());
}

/// Hive folders compact separately and keep their folder; a partition filter limits the
/// work to the matching folders.
pub async fn compact_works_per_partition(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let options = WriteOptions::default().with_partition_by(["cat"]);
    for i in 0..4 {
        let ids: Vec<i64> = (i * 10..i * 10 + 10).collect();
        let cats: Vec<&str> = ids
            .iter()
            .map(|id| if id % 2 == 0 { "x" } else { "y" })
            .collect();
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("cat", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(Int64Array::from(ids)) as ArrayRef,
                Arc::new(StringArray::from(cats)),
            ],
        )
        .expect("batch");
        backend
            .write(&loc, batches(vec![batch]), &options)
            .await
            .expect("write");
    }
    let before = sorted_rows(backend, &loc).await;
    assert_eq!(data_files(&loc).await.len(), 8);

    let only_x = compact(
        backend,
        &loc,
        CompactOptions::new().with_partition_filter("cat=x"),
    )
    .await;
    assert_eq!(only_x.groups.len(), 1);
    assert_eq!(only_x.groups[0].folder, "cat=x");
    assert!(only_x.added_files[0].path.starts_with("cat=x/"));
    assert_eq!((only_x.files_before, only_x.files_after), (8, 5));
    assert_eq!(
        data_files(&loc)
            .await
            .iter()
            .filter(|p| p.starts_with("cat=y/"))
            .count(),
        4,
        "cat=y untouched"
    );

    let all = compact(backend, &loc, CompactOptions::new()).await;
    assert_eq!(all.groups.len(), 1, "only cat=y is left to do");
    assert_eq!(all.groups[0].folder, "cat=y");
    let files = data_files(&loc).await;
    assert_eq!(files.len(), 2);
    assert!(files.iter().any(|p| p.starts_with("cat=x/")));
    assert!(files.iter().any(|p| p.starts_with("cat=y/")));
    assert_eq!(sorted_rows(backend, &loc).await, before);
    let (_, x_rows) = read_rows(
        backend,
        &loc,
        &ReadOptions::default().with_filter("cat = 'x'"),
    )
    .await;
    assert_eq!(
        x_rows.len(),
        20,
        "partition values come back from the folder"
    );
}

/// Groups are packed up to the target size; outputs stay near it.
pub async fn compact_packs_groups_up_to_the_target(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    // Six files of ~20 KB of incompressible text.
    for f in 0..6i64 {
        let batch =
            crate::data::noise_rows(f * 40..f * 40 + 40, 500, 0x2545_f491_4f6c_dd1d + f as u64);
        append(backend, &loc, batch).await;
    }
    let before = sorted_rows(backend, &loc).await;
    let each = sizes(&loc).await;
    let largest = each.iter().map(|(_, s)| *s).max().expect("files");
    // Room for three files per group, not four.
    let target = largest * 3 + largest / 2;
    let report = compact(
        backend,
        &loc,
        CompactOptions::new()
            .with_target_file_size(target)
            .with_min_file_size(target),
    )
    .await;
    assert_eq!(report.groups.len(), 2, "{:?}", report.groups);
    for group in &report.groups {
        assert_eq!(group.inputs.len(), 3);
        assert!(group.input_bytes <= target);
        assert_eq!(group.outputs.len(), 1, "{group:?}");
        let out = group.outputs[0].size_bytes;
        assert!(
            out <= target + target / 5,
            "output {out} B is within 20% over the target {target} B"
        );
    }
    assert_eq!(sorted_rows(backend, &loc).await, before);
}

/// A dry run plans the same groups and writes nothing; no lease or staging is left.
pub async fn compact_dry_run_writes_nothing(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    for i in 0..3 {
        append(backend, &loc, sample(i * 5, 5)).await;
    }
    let before = all_objects(&loc).await;
    let report = compact(backend, &loc, CompactOptions::new().with_dry_run(true)).await;
    assert!(report.dry_run);
    assert_eq!(report.groups.len(), 1);
    assert_eq!(report.groups[0].inputs.len(), 3);
    assert_eq!(report.groups[0].rows, 15);
    assert!(report.groups[0].outputs.is_empty() && report.added_files.is_empty());
    assert_eq!((report.files_before, report.files_after), (3, 1));
    assert_eq!(
        report.removed_files.len(),
        3,
        "the files a real run removes"
    );
    assert_eq!(all_objects(&loc).await, before, "nothing written");
    // A dry run takes no lease: it plans while another writer holds one.
    let held = fsk_core::commit::Transaction::begin(&loc, "test", None)
        .await
        .expect("lease");
    let planned = compact(backend, &loc, CompactOptions::new().with_dry_run(true)).await;
    assert_eq!(planned.groups.len(), 1);
    held.abort().await;
    assert_eq!(all_objects(&loc).await, before);
}

/// Files whose schemas evolved (a column added, int32 widened to int64) compact into one
/// file with the unified schema; the rows read the same.
pub async fn compact_unifies_evolved_schemas(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    // Each written as its own dataset, then copied into one folder.
    let files = [
        ("a", crate::data::small_int32(&[1, 2])),
        ("b", crate::data::evolved_int64(&[3])),
    ];
    for (name, batch) in files {
        let scratch = fx.location(&format!("src-{name}"));
        copy_in(
            backend,
            &scratch,
            &loc,
            name,
            batch,
            &WriteOptions::default(),
        )
        .await;
    }
    let before = sorted_rows(backend, &loc).await;
    let report = compact(backend, &loc, CompactOptions::new()).await;
    assert_eq!(report.groups.len(), 1);
    assert_eq!(data_files(&loc).await.len(), 1);
    let (schema, _) = read_rows(backend, &loc, &ReadOptions::default()).await;
    assert_eq!(
        schema.field_with_name("id").expect("id").data_type(),
        &DataType::Int64
    );
    assert!(schema.field_with_name("extra").is_ok());
    assert_eq!(sorted_rows(backend, &loc).await, before);
}

/// Bad input is a typed error and changes nothing: a missing dataset, a file path, bad
/// options, a dataset another writer holds, a corrupt file among the inputs.
pub async fn compact_errors_are_typed(backend: &dyn DatasetBackend, fx: &Fixture) {
    let missing = fx.location("missing");
    match backend.compact(&missing, &CompactOptions::new()).await {
        Err(Error::NotFound { path }) => assert!(path.contains("missing"), "{path}"),
        other => panic!("expected NotFound, got {:?}", other.map(|_| ())),
    }
    assert!(all_objects(&missing).await.is_empty(), "nothing created");
    if let Some(dir) = fx.local_dir() {
        assert!(!dir.join("missing").exists(), "no folder created");
    }

    let loc = fx.location("ds");
    for i in 0..2 {
        append(backend, &loc, sample(i * 5, 5)).await;
    }
    let before = all_objects(&loc).await;
    let file = data_files(&loc).await[0].clone();
    let single = Location::parse(&format!("{loc}/{file}")).expect("file");
    let err = backend
        .compact(&single, &CompactOptions::new())
        .await
        .expect_err("a file is not a dataset");
    assert!(err.to_string().contains(&file), "{err}");

    let err = backend
        .compact(&loc, &CompactOptions::new().with_target_file_size(0))
        .await
        .expect_err("zero target");
    assert!(
        matches!(err, Error::InvalidArgument { .. })
            && err.to_string().contains("target_file_size"),
        "{err}"
    );
    let err = backend
        .compact(&loc, &CompactOptions::new().with_partition_filter("=x"))
        .await
        .expect_err("bad filter");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert_eq!(all_objects(&loc).await, before);

    // Another writer holds the lease.
    let held = fsk_core::commit::Transaction::begin(&loc, "test", None)
        .await
        .expect("lease");
    let err = backend
        .compact(&loc, &CompactOptions::new())
        .await
        .expect_err("conflict");
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    held.abort().await;
    assert_eq!(all_objects(&loc).await, before);

    // A corrupt input: a typed error naming it, the dataset untouched.
    crate::data::put(&loc, "zz-corrupt.parquet", b"PAR1 not really parquet").await;
    let before = all_objects(&loc).await;
    let err = backend
        .compact(&loc, &CompactOptions::new())
        .await
        .expect_err("corrupt");
    assert!(
        matches!(err, Error::CorruptFile { .. }) && err.to_string().contains("zz-corrupt.parquet"),
        "{err}"
    );
    assert_eq!(all_objects(&loc).await, before);
}

/// A folder of files without rows is left alone: compaction never removes the only files that
/// carry the schema.
pub async fn compact_leaves_files_without_rows(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    for _ in 0..2 {
        backend
            .write(&loc, batches(vec![]), &WriteOptions::default())
            .await
            .expect("empty write");
    }
    let before = all_objects(&loc).await;
    assert_eq!(data_files(&loc).await.len(), 2);
    let report = compact(backend, &loc, CompactOptions::new()).await;
    assert!(report.groups.is_empty(), "{:?}", report.groups);
    assert_eq!((report.files_before, report.files_after), (2, 2));
    assert_eq!(all_objects(&loc).await, before);
    let (schema, rows) = read_rows(backend, &loc, &ReadOptions::default()).await;
    assert!(rows.is_empty() && schema.field_with_name("id").is_ok());
}

/// The scan executor each engine must report on each store: its own reader, except DuckDB
/// off local disk (no httpfs offline), where arrow-rs reads.
fn expected_scan(backend: &dyn DatasetBackend, fx: &Fixture) -> &'static str {
    match (backend.name(), fx.kind()) {
        ("duckdb", crate::StoreUnderTest::Local) => "duckdb",
        ("duckdb", _) => "arrow-rs",
        ("datafusion", _) => "datafusion",
        _ => "arrow-rs",
    }
}

/// Reports name what executed each phase, and it is what the engine's scan really is:
/// compaction's and merge's reads run in the engine's own reader (DuckDB's on local disk),
/// and so does merge's key match; encoding runs in the core. A write only encodes; a dry run executes nothing.
pub async fn reports_name_what_executed(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let mut written = None;
    for i in 0..3 {
        written = Some(
            backend
                .write(
                    &loc,
                    batches(vec![sample(i * 10, 10)]),
                    &WriteOptions::default(),
                )
                .await
                .expect("write"),
        );
    }
    let written = written.expect("written");
    assert_eq!(written.engine, backend.name());
    assert_eq!(written.execution.write.as_deref(), Some("arrow-rs"));
    assert_eq!(written.execution.scan, None, "a write reads nothing");
    let scan = expected_scan(backend, fx);

    let dry = compact(backend, &loc, CompactOptions::new().with_dry_run(true)).await;
    assert_eq!(dry.execution, fsk_core::Execution::default());
    let report = compact(backend, &loc, CompactOptions::new()).await;
    assert_eq!(report.engine, backend.name());
    assert_eq!(report.execution.scan.as_deref(), Some(scan), "{report:?}");
    assert_eq!(report.execution.write.as_deref(), Some("arrow-rs"));

    let merged = backend
        .merge(
            &loc,
            batches(vec![sample(5, 10)]),
            &fsk_core::ops::merge::MergeOptions::new(
                ["id"],
                fsk_core::ops::merge::Strategy::Upsert,
            ),
        )
        .await
        .expect("merge");
    assert_eq!(merged.engine, backend.name());
    assert_eq!(merged.execution.scan.as_deref(), Some(scan), "{merged:?}");
    let key_match = match (backend.name(), fx.kind()) {
        ("duckdb" | "datafusion", _) => backend.name(),
        _ => "arrow-rs",
    };
    assert_eq!(
        merged.execution.key_match.as_deref(),
        Some(key_match),
        "{merged:?}"
    );
    assert_eq!(merged.execution.write.as_deref(), Some("arrow-rs"));
    assert_eq!(merged.total, 30);
}

/// `target_rows` bounds every file in scope: a larger file is split (even alone), small ones
/// are packed; a folder with fewer than `min_input_files` candidates is left; a lone file in
/// another codec than the requested one is rewritten; the report carries the seed's keys.
pub async fn compact_by_rows_splits_packs_and_reports(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("rows");
    for i in 0..4 {
        append(backend, &loc, sample(i * 10, 10)).await;
    }
    append(backend, &loc, sample(1000, 250)).await;
    let before = sorted_rows(backend, &loc).await;
    let options = CompactOptions::new().with_target_rows(100);
    let dry = compact(backend, &loc, options.clone().with_dry_run(true)).await;
    assert!(dry.dry_run);
    assert_eq!(dry.before_file_count, 5);
    assert_eq!(dry.compacted_file_count, 5);
    // The four small files pack into one (40 rows), the 250-row file splits into three.
    assert_eq!(dry.after_file_count, 4, "{dry:?}");
    assert_eq!(dry.after_total_bytes, None);
    assert_eq!(dry.planned_groups.len(), 2);
    let mut sizes: Vec<usize> = dry.planned_groups.iter().map(|g| g.files.len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![1, 4]);
    assert_eq!(dry.target_file_size, None, "rows only");
    assert_eq!(data_files(&loc).await.len(), 5, "a dry run writes nothing");

    let report = compact(backend, &loc, options).await;
    assert!(report.committed);
    assert_eq!(report.after_file_count, 4);
    assert_eq!(report.rewritten_bytes, dry.rewritten_bytes);
    assert_eq!(report.before_total_bytes, dry.before_total_bytes);
    assert_eq!(
        report.after_total_bytes,
        Some(report.before_total_bytes - report.rewritten_bytes + report.bytes_written)
    );
    assert_eq!(
        report.compression_codec,
        report.compression_codec.to_lowercase()
    );
    let files = data_files(&loc).await;
    assert_eq!(files.len(), 4);
    let mut counts = Vec::new();
    for file in &files {
        counts.push(crate::data::footer(&loc, file).await.num_rows);
    }
    counts.sort_unstable();
    assert!(counts.iter().all(|&n| n <= 100), "{counts:?}");
    assert_eq!(counts.iter().sum::<u64>(), 290);
    assert_eq!(
        sorted_rows(backend, &loc).await,
        before,
        "rows never change"
    );
    // The split's 50-row tail and the packed 40 rows are both candidates: one more pass packs
    // them (90 rows); after it nothing is left to do.
    let again = compact(backend, &loc, CompactOptions::new().with_target_rows(100)).await;
    assert_eq!(again.compacted_file_count, 2, "{again:?}");
    let last = compact(backend, &loc, CompactOptions::new().with_target_rows(100)).await;
    assert_eq!(last.compacted_file_count, 0, "{last:?}");
    assert_eq!(sorted_rows(backend, &loc).await, before);

    // min_input_files: three small files are fewer than five candidates.
    let few = fx.location("few");
    for i in 0..3 {
        append(backend, &few, sample(i * 10, 10)).await;
    }
    let report = compact(backend, &few, CompactOptions::new().with_min_input_files(5)).await;
    assert_eq!(report.compacted_file_count, 0);
    assert_eq!(data_files(&few).await.len(), 3);

    // A lone file in another codec is rewritten in the requested one.
    let lone = fx.location("lone");
    backend
        .write(
            &lone,
            batches(vec![sample(0, 50)]),
            &WriteOptions::default().with_compression("snappy".parse().expect("codec")),
        )
        .await
        .expect("write");
    let zstd: fsk_core::write::Codec = "zstd:3".parse().expect("codec");
    let report = compact(backend, &lone, CompactOptions::new().with_compression(zstd)).await;
    assert_eq!(report.compacted_file_count, 1);
    assert_eq!(report.compression_codec, "zstd:3");
    let file = &data_files(&lone).await[0];
    let meta = crate::data::footer(&lone, file).await;
    assert!(
        meta.codecs.iter().all(|c| c.starts_with("zstd")),
        "{:?}",
        meta.codecs
    );
    // Already in zstd: nothing to do.
    let report = compact(backend, &lone, CompactOptions::new().with_compression(zstd)).await;
    assert_eq!(report.compacted_file_count, 0);

    // Errors: a zero target, a filter that matches no partition.
    let err = backend
        .compact(&loc, &CompactOptions::new().with_target_rows(0))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "invalid_argument");
    assert!(err.to_string().contains("target_rows"), "{err}");
    let parted = fx.location("parted");
    backend
        .write(
            &parted,
            batches(vec![sample(0, 9)]),
            &WriteOptions::default().with_partition_by(["day"]),
        )
        .await
        .expect("write");
    let err = backend
        .compact(
            &parted,
            &CompactOptions::new().with_partition_filter("day=1999-01-01"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "no_data_files", "{err}");
    assert!(err.to_string().contains("day=1999-01-01"), "{err}");
}

/// `commit_every`: three folders of small files, one group each, compacted one group per
/// commit: three parts, the rows unchanged. With the second part's commit failing, the first
/// part stays committed, the error says so (`partially_committed`, 1 of 3), nothing of the
/// second is visible, and a rerun finishes the rest.
pub async fn compact_commits_in_parts(backend: &dyn DatasetBackend, fx: &Fixture) {
    use fsk_core::commit::failpoints;
    let run = |name: &'static str| {
        let loc = fx.location(name);
        async move {
            let options = WriteOptions::default().with_partition_by(["cat"]);
            for i in 0..3 {
                let batch = RecordBatch::try_new(
                    Arc::new(Schema::new(vec![
                        Field::new("id", DataType::Int64, false),
                        Field::new("cat", DataType::Utf8, false),
                    ])),
                    vec![
                        Arc::new(Int64Array::from(vec![i * 3, i * 3 + 1, i * 3 + 2])) as ArrayRef,
                        Arc::new(StringArray::from(vec!["a", "b", "c"])),
                    ],
                )
                .expect("batch");
                backend
                    .write(&loc, batches(vec![batch]), &options)
                    .await
                    .expect("write");
            }
            loc
        }
    };
    let loc = run("ds").await;
    let (_, before) = read_rows(backend, &loc, &ReadOptions::default()).await;
    let report = backend
        .compact(&loc, &CompactOptions::new().with_commit_every(1))
        .await
        .expect("compact");
    assert_eq!(report.committed_parts, 3, "{report:?}");
    assert_eq!(report.compacted_file_count, 9);
    assert_eq!(report.after_file_count, 3);
    assert_eq!(data_files(&loc).await.len(), 3);
    assert_eq!(
        read_rows(backend, &loc, &ReadOptions::default()).await.1,
        before
    );
    let err = backend
        .compact(&loc, &CompactOptions::new().with_commit_every(0))
        .await
        .expect_err("zero");
    assert!(err.to_string().contains("commit_every"), "{err}");

    // The second part's commit fails: the first stays.
    let loc = run("failing").await;
    failpoints::arm_after("commit.before_journal", &loc.to_string(), 1);
    let err = backend
        .compact(&loc, &CompactOptions::new().with_commit_every(1))
        .await
        .expect_err("the second part fails");
    failpoints::clear(&loc.to_string());
    match &err {
        Error::PartiallyCommitted {
            committed_parts,
            planned_parts,
            ..
        } => assert_eq!((*committed_parts, *planned_parts), (1, 3), "{err}"),
        other => panic!("expected partially_committed, got {other}"),
    }
    assert_eq!(err.kind(), "partially_committed");
    let files = data_files(&loc).await;
    assert_eq!(
        files.len(),
        1 + 3 + 3,
        "one folder compacted, two untouched: {files:?}"
    );
    assert_eq!(
        read_rows(backend, &loc, &ReadOptions::default()).await.1,
        before
    );
    assert!(fsk_leftovers(&loc).await.is_empty());
    let rest = backend
        .compact(&loc, &CompactOptions::new().with_commit_every(1))
        .await
        .expect("the rerun");
    assert_eq!(rest.committed_parts, 2);
    assert_eq!(data_files(&loc).await.len(), 3);
    // Nothing left to do: no part, and the lease is released.
    let none = backend
        .compact(&loc, &CompactOptions::new().with_commit_every(1))
        .await
        .expect("nothing to do");
    assert_eq!(none.committed_parts, 0);
    assert!(!none.committed);
    assert_eq!(none.after_total_bytes, Some(none.before_total_bytes));
    assert!(
        fsk_leftovers(&loc).await.is_empty(),
        "{:?}",
        fsk_leftovers(&loc).await
    );
}
