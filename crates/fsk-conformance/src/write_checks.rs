//! Checks of `write`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Int8Array, Int16Array,
    Int32Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray, TimestampMillisecondArray, UInt16Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Fields, Int32Type, Schema};

use fsk_core::engine::{Batches, DatasetBackend};
use fsk_core::error::Error;
use fsk_core::write::{Codec, WriteMode, WriteOptions};
use fsk_core::{Operations, ReadOptions};

use crate::Fixture;
use crate::data::{
    all_objects, batches, data_files, footer, put, read_rows, rows, sample, small_int32,
};

fn is_token_name(name: &str, prefix: &str, suffix: &str) -> bool {
    let Some(token) = name
        .strip_prefix(prefix)
        .and_then(|n| n.strip_suffix(suffix))
    else {
        return false;
    };
    token.len() == 8
        && token
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

/// Written rows read back as the same multiset; the report counts them and names the engine.
pub async fn write_then_read_round_trips(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let input = vec![sample(0, 10), sample(10, 7), sample(17, 1)];
    let expected = rows(&input);
    let report = backend
        .write(&loc, batches(input), &WriteOptions::default())
        .await
        .expect("write");
    assert_eq!(report.total_rows, 18);
    assert_eq!(report.mode, WriteMode::Append);
    assert_eq!(report.engine, backend.name());
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].row_count, 18);
    let on_disk = data_files(&loc).await;
    assert_eq!(on_disk, vec![report.files[0].path.clone()]);
    let (schema, got) = read_rows(backend, &loc, &ReadOptions::default()).await;
    assert_eq!(got, expected);
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(
        footer(&loc, &report.files[0].path).await.file.size,
        report.files[0].size_bytes
    );
    // No lease, staging or journal is left behind.
    assert!(
        all_objects(&loc)
            .await
            .iter()
            .all(|p| !p.starts_with("_fsk/")),
        "{:?}",
        all_objects(&loc).await
    );
}

/// Default names are `part-<8 lowercase hex>.parquet`.
pub async fn default_file_names_are_unique_tokens(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let options = WriteOptions::default().with_max_rows_per_file(2);
    let report = backend
        .write(&loc, batches(vec![sample(0, 9)]), &options)
        .await
        .expect("write");
    assert_eq!(report.files.len(), 5);
    let mut names: Vec<_> = report.files.iter().map(|f| f.path.clone()).collect();
    for name in &names {
        assert!(is_token_name(name, "part-", ".parquet"), "{name}");
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 5, "names are unique");
}

/// Append adds files and keeps the existing ones byte for byte.
pub async fn append_keeps_existing_files(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let first = backend
        .write(&loc, batches(vec![sample(0, 5)]), &WriteOptions::default())
        .await
        .expect("write");
    let before = footer(&loc, &first.files[0].path).await.file.size;
    for round in 1..4 {
        backend
            .write(
                &loc,
                batches(vec![sample(round * 100, 5)]),
                &WriteOptions::default(),
            )
            .await
            .expect("append");
    }
    let files = data_files(&loc).await;
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(files.contains(&first.files[0].path));
    assert_eq!(footer(&loc, &first.files[0].path).await.file.size, before);
    let (_, got) = read_rows(backend, &loc, &ReadOptions::default()).await;
    let expected = rows(&[sample(0, 5), sample(100, 5), sample(200, 5), sample(300, 5)]);
    assert_eq!(got, expected);
}

/// Overwrite removes parquet data files only, after writing the new ones.
pub async fn overwrite_replaces_only_parquet_data(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let options = WriteOptions::default().with_partition_by(["day"]);
    backend
        .write(&loc, batches(vec![sample(0, 9)]), &options)
        .await
        .expect("write");
    put(&loc, "README.txt", b"notes").await;
    put(&loc, "_metadata", b"meta").await;
    put(&loc, ".hidden/keep.parquet", b"not data").await;
    put(&loc, "_staging_other/x.parquet", b"not data").await;
    let report = backend
        .write(
            &loc,
            batches(vec![sample(1000, 4)]),
            &WriteOptions::default().with_mode(WriteMode::Overwrite),
        )
        .await
        .expect("overwrite");
    assert_eq!(report.mode, WriteMode::Overwrite);
    assert_eq!(report.removed_files.len(), 3);
    let objects = all_objects(&loc).await;
    for kept in [
        "README.txt",
        "_metadata",
        ".hidden/keep.parquet",
        "_staging_other/x.parquet",
    ] {
        assert!(
            objects.contains(&kept.to_string()),
            "{kept} kept: {objects:?}"
        );
    }
    assert_eq!(data_files(&loc).await.len(), 1);
    let (_, got) = read_rows(backend, &loc, &ReadOptions::default()).await;
    assert_eq!(got, rows(&[sample(1000, 4)]));
}

/// Overwrite on a missing dataset behaves as a first write.
pub async fn overwrite_creates_missing_dataset(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("nested/deeper/ds");
    let options = WriteOptions::default().with_mode(WriteMode::Overwrite);
    let report = backend
        .write(&loc, batches(vec![sample(0, 3)]), &options)
        .await
        .expect("write");
    assert_eq!(report.total_rows, 3);
    assert!(report.removed_files.is_empty());
    let (_, got) = read_rows(backend, &loc, &ReadOptions::default()).await;
    assert_eq!(got, rows(&[sample(0, 3)]));
}

/// `max_rows_per_file` splits the stream across files, in input order.
pub async fn max_rows_per_file_splits_files(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let options = WriteOptions::default().with_max_rows_per_file(3);
    let report = backend
        .write(&loc, batches(vec![sample(0, 4), sample(4, 6)]), &options)
        .await
        .expect("write");
    let counts: Vec<u64> = report.files.iter().map(|f| f.row_count).collect();
    assert_eq!(counts, vec![3, 3, 3, 1]);
    for file in &report.files {
        assert_eq!(footer(&loc, &file.path).await.num_rows, file.row_count);
    }
    let (_, got) = read_rows(backend, &loc, &ReadOptions::default()).await;
    assert_eq!(got, rows(&[sample(0, 10)]));
}

/// `row_group_size` bounds every row group.
pub async fn row_group_size_is_a_maximum(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let options = WriteOptions::default().with_row_group_size(4);
    let report = backend
        .write(&loc, batches(vec![sample(0, 3), sample(3, 10)]), &options)
        .await
        .expect("write");
    let meta = footer(&loc, &report.files[0].path).await;
    let sizes: Vec<i64> = meta
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| rg.num_rows())
        .collect();
    assert!(sizes.iter().all(|&n| n <= 4), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<i64>(), 13);
}

/// `max_buffered_bytes` flushes each open partition file's row group once it holds its share
/// of the limit, so many open partitions stay within it; without it a row group fills to
/// `row_group_size`. The rows are the same.
pub async fn buffered_bytes_limit_flushes_row_groups_early(
    backend: &dyn DatasetBackend,
    fx: &Fixture,
) {
    // 300,000 rows round-robin over three day folders: every batch reaches all three files.
    let input: Vec<RecordBatch> = (0..37).map(|c| sample(c * 8192, 8192)).collect();
    let mut groups = Vec::new();
    for limit in [None, Some(3 << 20)] {
        let loc = fx.location(&format!("ds-{}", limit.is_some()));
        let options = WriteOptions {
            partition_by: vec!["day".into()],
            max_buffered_bytes: limit,
            ..WriteOptions::default()
        };
        let report = backend
            .write(&loc, batches(input.clone()), &options)
            .await
            .expect("write");
        assert_eq!(report.files.len(), 3, "{:?}", report.files);
        let mut counts = Vec::new();
        let mut rows = 0;
        for file in &report.files {
            let meta = footer(&loc, &file.path).await;
            counts.push(meta.metadata().num_row_groups());
            rows += meta.num_rows;
        }
        assert_eq!(rows, 37 * 8192);
        groups.push(counts);
    }
    assert!(groups[0].iter().all(|&n| n == 1), "{groups:?}");
    assert!(
        groups[1].iter().all(|&n| n >= 2),
        "flushed early: {groups:?}"
    );
}

/// A template with `{}` names the files.
pub async fn basename_template_names_files(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let options = WriteOptions::default()
        .with_basename_template("data_{}.parquet")
        .with_max_rows_per_file(5);
    let report = backend
        .write(&loc, batches(vec![sample(0, 10)]), &options)
        .await
        .expect("write");
    assert_eq!(report.files.len(), 2);
    for file in &report.files {
        assert!(
            is_token_name(&file.path, "data_", ".parquet"),
            "{}",
            file.path
        );
    }
    assert_ne!(report.files[0].path, report.files[1].path);
}

/// A template without `{}` or `.parquet` is a typed error and writes nothing.
pub async fn bad_basename_template_writes_nothing(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    for template in ["data.parquet", "data_{}.csv", "_x_{}.parquet"] {
        let options = WriteOptions::default().with_basename_template(template);
        let err = backend
            .write(&loc, batches(vec![sample(0, 3)]), &options)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        assert!(err.to_string().contains(template), "{err}");
    }
    assert!(all_objects(&loc).await.is_empty());
}

/// Empty input writes one zero-row file that keeps the schema.
pub async fn empty_input_writes_one_empty_file(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let input = Batches::from_batches(crate::data::sample_schema(), vec![]);
    let report = backend
        .write(&loc, input, &WriteOptions::default())
        .await
        .expect("write");
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].row_count, 0);
    assert_eq!(report.total_rows, 0);
    let (schema, got) = read_rows(backend, &loc, &ReadOptions::default()).await;
    assert!(got.is_empty());
    assert_eq!(schema.fields().len(), 4);
    assert_eq!(schema.field(3).data_type(), &DataType::Date32);
}

/// A file larger than one upload part (object_store's 10 MB) goes up as a multipart upload,
/// not as one request holding the whole file in memory, and reads back intact.
pub async fn large_files_use_multipart_uploads(backend: &dyn DatasetBackend, fx: &Fixture) {
    let (counting, loc) = fx.counted("big");
    // 12 MiB of incompressible text: 3,072 rows of 4 KiB.
    let batch = crate::data::noise_rows(0..3072, 4096, 0x9e37_79b9_7f4a_7c15);
    let options =
        WriteOptions::default().with_compression("uncompressed".parse::<Codec>().expect("codec"));
    let report = backend
        .write(&loc, batches(vec![batch.clone()]), &options)
        .await
        .expect("write");
    assert_eq!(report.total_rows, 3072);
    let multipart = counting
        .take()
        .into_iter()
        .filter(|r| r.kind == crate::store::Kind::MultipartPut)
        .count();
    assert_eq!(multipart, 1, "one multipart upload for the one large file");
    let files = data_files(&loc).await;
    assert_eq!(files.len(), 1);
    let (_, read) = read_rows(backend, &loc, &ReadOptions::default()).await;
    assert_eq!(read, rows(&[batch]), "the large file reads back intact");
}

/// Nearly-distinct columns are written without a dictionary; columns with repeats keep one.
pub async fn dictionaries_only_where_values_repeat(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let n = 5000i64;
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("cat", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n)) as ArrayRef,
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("cat-{}", i % 7)),
            )),
        ],
    )
    .expect("batch");
    let report = backend
        .write(&loc, batches(vec![batch.clone()]), &WriteOptions::default())
        .await
        .expect("write");
    let meta = footer(&loc, &report.files[0].path).await;
    let rg = meta.metadata().row_group(0);
    let column = |name: &str| {
        rg.columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .expect("column")
            .dictionary_page_offset()
    };
    assert!(column("id").is_none(), "distinct ids: no dictionary");
    assert!(column("cat").is_some(), "7 values: a dictionary");
    let (_, got) = read_rows(backend, &loc, &ReadOptions::default()).await;
    assert_eq!(got, rows(&[batch]));
}

/// Every codec lands in the footer.
pub async fn codecs_are_applied(backend: &dyn DatasetBackend, fx: &Fixture) {
    for (codec, expected) in [
        ("snappy", "snappy"),
        ("gzip", "gzip"),
        ("lz4", "lz4_raw"),
        ("zstd:5", "zstd"),
        ("brotli", "brotli"),
        ("uncompressed", "uncompressed"),
    ] {
        let loc = fx.location(&format!("ds-{}", codec.replace(':', "-")));
        let options =
            WriteOptions::default().with_compression(codec.parse::<Codec>().expect("codec"));
        let report = backend
            .write(&loc, batches(vec![sample(0, 20)]), &options)
            .await
            .expect("write");
        let meta = footer(&loc, &report.files[0].path).await;
        assert!(
            meta.codecs.iter().all(|c| c.starts_with(expected)),
            "{codec}: {:?}",
            meta.codecs
        );
        let (_, got) = read_rows(backend, &loc, &ReadOptions::default()).await;
        assert_eq!(got, rows(&[sample(0, 20)]));
    }
}

/// `partition_by` writes `col=value` folders; the column lives in the path, not the files, and
/// comes back typed.
pub async fn partition_by_writes_hive_folders(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let options = WriteOptions::default().with_partition_by(["day"]);
    let report = backend
        .write(&loc, batches(vec![sample(0, 12)]), &options)
        .await
        .expect("write");
    let mut dirs: Vec<String> = report
        .files
        .iter()
        .map(|f| f.path.rsplit_once('/').expect("in a folder").0.to_string())
        .collect();
    dirs.sort();
    assert_eq!(
        dirs,
        vec!["day=2025-01-01", "day=2025-01-02", "day=2025-01-03"]
    );
    for file in &report.files {
        let meta = footer(&loc, &file.path).await;
        assert!(
            meta.schema.field_with_name("day").is_err(),
            "day is not stored in files"
        );
        assert_eq!(meta.num_rows, 4);
    }
    let (schema, got) = read_rows(backend, &loc, &ReadOptions::default()).await;
    assert_eq!(
        schema.field_with_name("day").expect("day").data_type(),
        &DataType::Date32
    );
    let (_, expected) = {
        let b = sample(0, 12);
        (b.schema(), rows(&[b]))
    };
    assert_eq!(got, expected);
}

/// Values are percent-encoded into one segment; null is `__HIVE_DEFAULT_PARTITION__`.
pub async fn partition_values_are_encoded(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let cities: Vec<Option<&str>> = vec![
        Some("New York"),
        Some("a/b"),
        None,
        Some("50%=half"),
        Some("New York"),
    ];
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("city", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])) as ArrayRef,
            Arc::new(StringArray::from(cities)),
        ],
    )
    .expect("batch");
    let options = WriteOptions::default().with_partition_by(["city"]);
    let report = backend
        .write(&loc, batches(vec![batch.clone()]), &options)
        .await
        .expect("write");
    assert_eq!(report.files.len(), 4);
    let dirs: Vec<String> = report
        .files
        .iter()
        .map(|f| f.path.split('/').next().unwrap_or("").to_string())
        .collect();
    assert!(dirs.contains(&"city=New%20York".to_string()), "{dirs:?}");
    assert!(dirs.contains(&"city=a%2Fb".to_string()), "{dirs:?}");
    assert!(
        dirs.contains(&"city=__HIVE_DEFAULT_PARTITION__".to_string()),
        "{dirs:?}"
    );
    // What other hive readers see: the folder name on disk, the key verbatim on object
    // stores; `%` is encoded exactly once either way.
    let names: Vec<String> = match fx.local_dir() {
        Some(dir) => std::fs::read_dir(dir.join("ds"))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
        None => {
            use futures::TryStreamExt;
            let listed: Vec<_> = loc
                .store()
                .list(Some(loc.root()))
                .try_collect()
                .await
                .expect("list");
            listed
                .iter()
                .filter_map(|m| {
                    let key = m.location.as_ref();
                    let rest = key
                        .strip_prefix(loc.root().as_ref())?
                        .trim_start_matches('/');
                    rest.split('/').next().map(str::to_string)
                })
                .collect()
        }
    };
    assert!(
        names.contains(&"city=50%25%3Dhalf".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"city=a%2Fb".to_string()), "{names:?}");
    let (_, got) = read_rows(
        backend,
        &loc,
        &ReadOptions::default().with_columns(["id", "city"]),
    )
    .await;
    assert_eq!(got, rows(&[batch]));
}

/// A partition column missing from the input is a typed error naming it; nothing is written.
pub async fn missing_partition_column_writes_nothing(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let options = WriteOptions::default().with_partition_by(["region"]);
    let err = backend
        .write(&loc, batches(vec![sample(0, 3)]), &options)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ColumnNotFound { ref column, .. } if column == "region"),
        "{err}"
    );
    assert!(data_files(&loc).await.is_empty());
    assert!(
        all_objects(&loc).await.is_empty(),
        "{:?}",
        all_objects(&loc).await
    );
}

/// Appending a different schema is a typed error naming the columns; the dataset is untouched.
pub async fn append_with_incompatible_schema_fails(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    backend
        .write(&loc, batches(vec![sample(0, 3)]), &WriteOptions::default())
        .await
        .expect("write");
    let before = all_objects(&loc).await;
    // `amount` as a string: not a lossless promotion.
    let bad = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("amount", DataType::Utf8, true),
            Field::new("day", DataType::Date32, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![9])) as ArrayRef,
            Arc::new(StringArray::from(vec!["x"])),
            Arc::new(StringArray::from(vec!["1.5"])),
            Arc::new(Date32Array::from(vec![20089])),
        ],
    )
    .expect("batch");
    let err = backend
        .write(&loc, batches(vec![bad]), &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::SchemaMismatch { columns, .. } if columns == &vec!["amount".to_string()]),
        "{err}"
    );
    // A missing column.
    let err = backend
        .write(
            &loc,
            batches(vec![small_int32(&[1])]),
            &WriteOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
    assert!(err.to_string().contains("name"), "{err}");
    assert_eq!(all_objects(&loc).await, before);
}

/// int32 appends into an int64 dataset; the dataset's type is kept.
pub async fn append_widens_losslessly(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let wide = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1_i64 << 40])) as ArrayRef,
            Arc::new(StringArray::from(vec!["big"])),
        ],
    )
    .expect("batch");
    backend
        .write(&loc, batches(vec![wide]), &WriteOptions::default())
        .await
        .expect("write");
    let report = backend
        .write(
            &loc,
            batches(vec![small_int32(&[1, 2])]),
            &WriteOptions::default(),
        )
        .await
        .expect("append int32");
    let meta = footer(&loc, &report.files[0].path).await;
    assert_eq!(
        meta.schema.field_with_name("id").expect("id").data_type(),
        &DataType::Int64
    );
    let (schema, got) = read_rows(backend, &loc, &ReadOptions::default()).await;
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(got.len(), 3);
}

/// A dataset path that is an existing file is a typed error.
pub async fn dataset_path_that_is_a_file_fails(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let report = backend
        .write(&loc, batches(vec![sample(0, 3)]), &WriteOptions::default())
        .await
        .expect("write");
    let file_url = format!("{}/{}", fx.url("ds"), report.files[0].path);
    let file_loc = fsk_core::Location::parse(&file_url).expect("location");
    let err = backend
        .write(
            &file_loc,
            batches(vec![sample(0, 3)]),
            &WriteOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotADirectory { .. }), "{err}");
    assert!(err.to_string().contains(&report.files[0].path), "{err}");
}

/// Arrow types survive a write and a read exactly.
pub async fn arrow_types_are_kept(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), None]),
        None,
        Some(vec![]),
    ]);
    let struct_fields = Fields::from(vec![
        Field::new("a", DataType::Int32, true),
        Field::new("b", DataType::Utf8, true),
    ]);
    let structs = StructArray::new(
        struct_fields.clone(),
        vec![
            Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])) as ArrayRef,
            Arc::new(StringArray::from(vec![Some("x"), Some("y"), None])),
        ],
        None,
    );
    let decimal = Decimal128Array::from(vec![Some(12345), None, Some(-1)])
        .with_precision_and_scale(10, 2)
        .expect("decimal");
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "i8",
            Arc::new(Int8Array::from(vec![Some(-1), None, Some(127)])),
        ),
        (
            "i16",
            Arc::new(Int16Array::from(vec![Some(-300), Some(0), None])),
        ),
        (
            "i32",
            Arc::new(Int32Array::from(vec![Some(1), None, Some(i32::MIN)])),
        ),
        (
            "i64",
            Arc::new(Int64Array::from(vec![Some(i64::MAX), None, Some(0)])),
        ),
        (
            "u16",
            Arc::new(UInt16Array::from(vec![Some(65535), None, Some(1)])),
        ),
        (
            "u64",
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), None, Some(1)])),
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![Some(1.5), None, Some(-0.25)])),
        ),
        (
            "b",
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        ),
        ("dec", Arc::new(decimal)),
        (
            "ts_utc",
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_000), None, Some(0)])
                    .with_timezone("UTC"),
            ),
        ),
        (
            "ts_paris",
            Arc::new(
                TimestampMillisecondArray::from(vec![Some(1_700_000_000_000), Some(1), None])
                    .with_timezone("Europe/Paris"),
            ),
        ),
        (
            "ts_naive",
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(1),
                None,
                Some(2),
            ])),
        ),
        (
            "d",
            Arc::new(Date32Array::from(vec![Some(20089), None, Some(-1)])),
        ),
        ("list", Arc::new(list)),
        ("st", Arc::new(structs)),
    ];
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .expect("batch");
    backend
        .write(&loc, batches(vec![batch.clone()]), &WriteOptions::default())
        .await
        .expect("write");
    let (got_schema, got) = read_rows(backend, &loc, &ReadOptions::default()).await;
    for (want, have) in schema.fields().iter().zip(got_schema.fields()) {
        assert_eq!(want.name(), have.name());
        assert_eq!(
            want.data_type(),
            have.data_type(),
            "type of {}",
            want.name()
        );
    }
    assert_eq!(got, rows(&[batch]));
}

/// Bad options are typed errors naming the value; nothing is written.
pub async fn invalid_options_are_typed_errors(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    for options in [
        WriteOptions::default().with_max_rows_per_file(0),
        WriteOptions::default().with_row_group_size(0),
    ] {
        let err = backend
            .write(&loc, batches(vec![sample(0, 3)]), &options)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        assert!(err.to_string().contains('0'), "{err}");
    }
    let err = "snappyy".parse::<Codec>().unwrap_err();
    assert!(
        err.to_string().contains("snappyy") && err.to_string().contains("zstd"),
        "{err}"
    );
    let err = "upsert".parse::<WriteMode>().unwrap_err();
    assert!(
        err.to_string().contains("upsert") && err.to_string().contains("overwrite"),
        "{err}"
    );
    assert!(all_objects(&loc).await.is_empty());
}

/// A write while another writer holds the lease fails with a conflict; nothing is written.
pub async fn locked_dataset_is_a_conflict(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("ds");
    backend
        .write(&loc, batches(vec![sample(0, 3)]), &WriteOptions::default())
        .await
        .expect("write");
    let before = data_files(&loc).await;
    let held = fsk_core::commit::Transaction::begin(&loc, "test", None)
        .await
        .expect("lease");
    let err = backend
        .write(&loc, batches(vec![sample(10, 3)]), &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("conflict"), "{err}");
    held.abort().await;
    assert_eq!(data_files(&loc).await, before);
}
