//! Hostile and real-world files: crafted footers are typed errors before any large
//! allocation (never a panic, an abort or a hang), and files that other writers produce
//! (Spark's INT96 timestamps, legacy repeated fields, `dictionary_page_offset` 0, footers
//! without `total_byte_size`) read as pyarrow reads them.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampMicrosecondType};
use bytes::Bytes;
use object_store::ObjectStoreExt;
use parquet::data_type::{Int32Type, Int64Type, Int96, Int96Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use fsk_core::Location;
use fsk_core::Operations;
use fsk_core::engine::DatasetBackend;
use fsk_core::error::Error;
use fsk_core::{ReadOptions, StatsOptions};

use crate::Fixture;
use crate::data::read_rows;

async fn put_bytes(location: &Location, relative: &str, bytes: Vec<u8>) {
    location
        .store()
        .put(&location.child(relative), Bytes::from(bytes).into())
        .await
        .expect("put");
}

/// A parquet file of `batch`, written with the arrow writer.
fn arrow_file(batch: &RecordBatch, props: Option<WriterProperties>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), props).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
    out
}

/// `PAR1`, then `footer` as the thrift metadata, then its length and `PAR1`.
fn with_footer(footer: &[u8]) -> Vec<u8> {
    let mut out = b"PAR1".to_vec();
    out.extend_from_slice(footer);
    out.extend_from_slice(&(footer.len() as u32).to_le_bytes());
    out.extend_from_slice(b"PAR1");
    out
}

fn zigzag_varint(out: &mut Vec<u8>, value: i64) {
    varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A FileMetaData whose schema nests `depth` groups of one child each above one leaf.
fn deep_schema_footer(depth: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.push(0x15); // field 1 version: i32
    zigzag_varint(&mut f, 1);
    f.push(0x19); // field 2 schema: list
    f.push(0xFC); // size in a varint, elements are structs
    varint(&mut f, depth as u64 + 1);
    for _ in 0..depth {
        f.extend_from_slice(&[0x48, 1, b'g']); // field 4 name: binary "g"
        f.push(0x15); // field 5 num_children: i32
        zigzag_varint(&mut f, 1);
        f.push(0);
    }
    f.extend_from_slice(&[0x15]); // field 1 type: i32 INT64 (2)
    zigzag_varint(&mut f, 2);
    f.extend_from_slice(&[0x38, 1, b'x']); // field 4 name
    f.push(0);
    f.push(0x16); // field 3 num_rows: i64
    zigzag_varint(&mut f, 0);
    f.push(0x19); // field 4 row_groups: list
    f.push(0x0C); // empty list of structs
    f.push(0);
    f
}

/// Crafted footers get [`Error::CorruptFile`] naming the file, from `stats` and `read`,
/// before the decoder could allocate what they claim or recurse as deep as they nest: an
/// 8-byte tail claiming a 4 GiB footer, a footer over fsk's limit, a list claiming 2^31
/// elements in a few bytes, a schema 100,000 groups deep, a negative column offset.
pub async fn crafted_footers_are_corrupt_files(backend: &dyn DatasetBackend, fx: &Fixture) {
    let mut claims_4gib = b"PAR1".to_vec();
    claims_4gib.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    claims_4gib.extend_from_slice(b"PAR1");
    let mut huge_list = vec![0x15, 0x02, 0x19, 0xFC];
    varint(&mut huge_list, i32::MAX as u64);
    let mut over_limit = vec![0u8; fsk_core::dataset::footer::MAX_FOOTER_BYTES + 1];
    over_limit[0] = 0x15;
    let negative_offset = {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .expect("batch");
        let bytes = Bytes::from(arrow_file(&batch, None));
        let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .expect("metadata");
        rewrite_footer(&bytes, metadata, |chunk| chunk.set_data_page_offset(-5))
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("claims-4gib", claims_4gib),
        ("huge-list", with_footer(&huge_list)),
        ("over-limit", with_footer(&over_limit)),
        ("deep-schema", with_footer(&deep_schema_footer(100_000))),
        ("negative-offset", negative_offset),
        ("tiny", b"PAR1".to_vec()),
    ];
    for (name, bytes) in cases {
        let loc = fx.location(name);
        put_bytes(&loc, "hostile.parquet", bytes).await;
        let err = backend
            .stats(&loc, &StatsOptions::default())
            .await
            .expect_err(name);
        assert!(matches!(err, Error::CorruptFile { .. }), "{name}: {err}");
        assert!(err.to_string().contains("hostile.parquet"), "{name}: {err}");
        let err = match backend.read(&loc, &ReadOptions::default()).await {
            Err(e) => e,
            Ok(batches) => batches.collect().await.expect_err(name),
        };
        assert!(matches!(err, Error::CorruptFile { .. }), "{name}: {err}");
    }
}

/// Rewrites a file's footer with `change` applied to every column chunk.
fn rewrite_footer(
    bytes: &Bytes,
    metadata: parquet::file::metadata::ParquetMetaData,
    change: impl Fn(
        parquet::file::metadata::ColumnChunkMetaDataBuilder,
    ) -> parquet::file::metadata::ColumnChunkMetaDataBuilder,
) -> Vec<u8> {
    let n = bytes.len();
    let length = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
    let mut out = bytes[..n - 8 - length].to_vec();
    let mut builder = metadata.into_builder();
    let row_groups = builder
        .take_row_groups()
        .into_iter()
        .map(|rg| {
            let columns = rg
                .columns()
                .iter()
                .map(|c| change(c.clone().into_builder()).build().expect("column"))
                .collect();
            rg.into_builder()
                .set_column_metadata(columns)
                .build()
                .expect("row group")
        })
        .collect();
    let metadata = builder.set_row_groups(row_groups).build();
    parquet::file::metadata::ParquetMetaDataWriter::new(&mut out, &metadata)
        .finish()
        .expect("footer");
    out
}

/// Mutants of a real file's footer (bytes overwritten, truncated, lengths bent) give `Ok`
/// or a typed error from `stats`, never a panic.
pub async fn mutated_footers_never_panic(backend: &dyn DatasetBackend, fx: &Fixture) {
    let batch = crate::data::sample(0, 50);
    let original = arrow_file(&batch, None);
    let n = original.len();
    let length = u32::from_le_bytes(original[n - 8..n - 4].try_into().expect("4")) as usize;
    let footer_start = n - 8 - length;
    let mut runner = TestRunner::new(crate::proptests::persisted(
        96,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/footer_mutants.txt"
        ),
    ));
    let strategy = (
        proptest::collection::vec((0..length + 8, any::<u8>()), 1..6),
        0..4usize,
    );
    let mutants = std::cell::RefCell::new(Vec::new());
    runner
        .run(&strategy, |(edits, truncate)| {
            let mut bytes = original.clone();
            for (offset, value) in edits {
                bytes[footer_start + offset] = value;
            }
            if truncate == 1 {
                bytes.truncate(footer_start + length / 2);
                bytes.extend_from_slice(&original[n - 8..]);
            }
            mutants.borrow_mut().push(bytes);
            Ok(())
        })
        .expect("mutants");
    let loc = fx.location("mutants");
    for (i, bytes) in mutants.into_inner().into_iter().enumerate() {
        let relative = format!("m{i:03}.parquet");
        put_bytes(&loc, &relative, bytes).await;
        let file = fsk_core::dataset::listing::data_files(&loc)
            .await
            .expect("list")
            .into_iter()
            .find(|f| f.relative == relative)
            .expect("mutant listed");
        match fsk_core::dataset::footer::read_footer(&loc, file).await {
            Ok(_) => {}
            Err(Error::CorruptFile { .. } | Error::Parquet { .. } | Error::Arrow { .. }) => {}
            Err(other) => panic!("mutant {i}: an untyped failure {other}"),
        }
        let _ = backend.stats(&loc, &StatsOptions::default()).await;
        loc.store()
            .delete(&loc.child(&relative))
            .await
            .expect("delete");
    }
}

fn int96_from_micros(micros: i64) -> Int96 {
    const JULIAN_EPOCH: i64 = 2_440_588;
    const DAY: i64 = 86_400_000_000;
    let day = micros.div_euclid(DAY) + JULIAN_EPOCH;
    let nanos = (micros.rem_euclid(DAY) * 1000) as u64;
    let mut value = Int96::new();
    value.set_data(nanos as u32, (nanos >> 32) as u32, day as u32);
    value
}

/// A one-row-group file of `message` written with the low-level writer: the id column
/// (`required int64`, values `ids`), then `second` writes the other column.
fn low_level_file(
    message: &str,
    ids: &[i64],
    second: impl FnOnce(&mut parquet::file::writer::SerializedColumnWriter<'_>),
) -> Vec<u8> {
    let schema = Arc::new(parse_message_type(message).expect("schema"));
    let mut out = Vec::new();
    let mut writer =
        SerializedFileWriter::new(&mut out, schema, Arc::new(WriterProperties::default()))
            .expect("writer");
    let mut rg = writer.next_row_group().expect("row group");
    let mut id = rg.next_column().expect("column").expect("id");
    id.typed::<Int64Type>()
        .write_batch(ids, None, None)
        .expect("ids");
    id.close().expect("close");
    let mut column = rg.next_column().expect("column").expect("second column");
    second(&mut column);
    column.close().expect("close");
    rg.close().expect("close");
    writer.close().expect("close");
    out
}

/// What Spark and Impala write: `required int64 id; optional int96 ts`.
fn int96_file(ids: &[i64], micros: &[Option<i64>]) -> Vec<u8> {
    let values: Vec<Int96> = micros
        .iter()
        .flatten()
        .map(|m| int96_from_micros(*m))
        .collect();
    let levels: Vec<i16> = micros.iter().map(|m| i16::from(m.is_some())).collect();
    low_level_file(
        "message spark { required int64 id; optional int96 ts; }",
        ids,
        |ts| {
            ts.typed::<Int96Type>()
                .write_batch(&values, Some(&levels), None)
                .expect("ts");
        },
    )
}

/// A legacy repeated field without a LIST annotation, rows `[10, 20]`, `[]`, `[30]`.
fn legacy_repeated_file() -> Vec<u8> {
    low_level_file(
        "message legacy { required int64 id; repeated int32 vals; }",
        &[1, 2, 3],
        |vals| {
            vals.typed::<Int32Type>()
                .write_batch(&[10, 20, 30], Some(&[1, 1, 0, 1]), Some(&[0, 1, 0, 0]))
                .expect("vals");
        },
    )
}

/// Files other writers produce read with the rows pyarrow gives, on every engine: INT96
/// timestamps at the instants written, in microseconds (year 1500 and 9999 included, where
/// nanoseconds would wrap); a legacy repeated field as a list (3 rows, not 0); a column chunk
/// whose `dictionary_page_offset` is 0; a footer without `total_byte_size`.
pub async fn files_of_other_writers_read_as_written(backend: &dyn DatasetBackend, fx: &Fixture) {
    // INT96.
    let instants = [
        Some(0),
        Some(253_402_300_799_123_456), // 9999-12-31T23:59:59.123456
        Some(-14_831_769_600_000_000), // 1500-01-01
        None,
        Some(1_735_689_600_000_001), // 2025-01-01T00:00:00.000001
    ];
    let loc = fx.location("int96");
    put_bytes(
        &loc,
        "spark.parquet",
        int96_file(&[1, 2, 3, 4, 5], &instants),
    )
    .await;
    let read = backend
        .read(&loc, &ReadOptions::default())
        .await
        .expect("read int96")
        .collect()
        .await
        .expect("int96 rows");
    let ts = arrow::compute::concat(
        &read
            .iter()
            .map(|b| b.column_by_name("ts").expect("ts").as_ref())
            .collect::<Vec<_>>(),
    )
    .expect("concat");
    assert_eq!(
        ts.data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None),
        "INT96 reads as microseconds"
    );
    let ts = ts.as_primitive::<TimestampMicrosecondType>();
    let got: Vec<Option<i64>> = (0..ts.len())
        .map(|i| (!ts.is_null(i)).then(|| ts.value(i)))
        .collect();
    assert_eq!(got, instants.to_vec(), "the instants written");
    let filtered = read_rows(
        backend,
        &loc,
        &ReadOptions {
            filter: Some("ts >= '2025-01-01'".into()),
            ..ReadOptions::default()
        },
    )
    .await
    .1;
    assert_eq!(filtered.len(), 2, "{filtered:?}");

    // A legacy repeated field.
    let loc = fx.location("legacy");
    put_bytes(&loc, "legacy.parquet", legacy_repeated_file()).await;
    let stats = backend
        .stats(&loc, &StatsOptions::default())
        .await
        .expect("stats legacy");
    assert_eq!(stats.total_rows, 3);
    let rows = read_rows(backend, &loc, &ReadOptions::default()).await.1;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter().any(|r| r.contains("10") && r.contains("20")),
        "{rows:?}"
    );

    // dictionary_page_offset 0 on chunks without a dictionary, and a footer without
    // total_byte_size.
    let batch = crate::data::sample(0, 20);
    let plain = WriterProperties::builder()
        .set_dictionary_enabled(false)
        .build();
    let bytes = Bytes::from(arrow_file(&batch, Some(plain)));
    let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&bytes)
        .expect("metadata");
    let zero_offset = rewrite_footer(&bytes, metadata, |chunk| {
        chunk.set_dictionary_page_offset(Some(0))
    });
    let no_total = fsk_core::dataset::footer_guard::testing::without_total_byte_size(&bytes)
        .expect("a footer without total_byte_size");
    let expected = crate::data::rows(&[batch]);
    for (name, file) in [
        ("zero-dictionary-offset", zero_offset),
        ("no-total-byte-size", no_total),
    ] {
        let loc = fx.location(name);
        put_bytes(&loc, "old-writer.parquet", file).await;
        let mut rows = read_rows(backend, &loc, &ReadOptions::default()).await.1;
        rows.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(rows, want, "{name}");
        let stats = backend
            .stats(&loc, &StatsOptions::default())
            .await
            .expect(name);
        assert_eq!(stats.total_rows, 20, "{name}");
    }
}

/// Dictionary pages with the defects pyarrow tolerates read with the rows written, on every
/// engine: a wrong CRC, the legacy `PLAIN_DICTIONARY` encoding on the dictionary page, and
/// `is_sorted` claimed for an unsorted dictionary. A dictionary page that pyarrow rejects
/// (it holds fewer values than the data pages index) is a typed error naming the file, not a
/// panic and not wrong rows. The fixtures and how they were made:
/// `crates/fsk-conformance/fixtures/make_dictionary_pages.py`.
pub async fn dictionary_page_defects_read_as_pyarrow_reads(
    backend: &dyn DatasetBackend,
    fx: &Fixture,
) {
    let tolerated = include_bytes!("../fixtures/dictionary-defects-tolerated.parquet");
    let rejected = include_bytes!("../fixtures/dictionary-defects-rejected.parquet");
    let loc = fx.location("dictionary-tolerated");
    put_bytes(&loc, "defects.parquet", tolerated.to_vec()).await;
    let rows = read_rows(backend, &loc, &ReadOptions::default()).await.1;
    let want: Vec<String> = [
        (1, "c"),
        (2, "a"),
        (3, "c"),
        (4, "b"),
        (5, "a"),
        (6, "c"),
        (7, "b"),
        (8, "c"),
    ]
    .iter()
    .map(|(id, s)| format!("id={id}|s={s}"))
    .collect();
    let mut want = want;
    want.sort();
    assert_eq!(rows, want, "the rows pyarrow reads");
    let filtered = read_rows(
        backend,
        &loc,
        &ReadOptions {
            filter: Some("s = 'b'".into()),
            ..ReadOptions::default()
        },
    )
    .await
    .1;
    assert_eq!(filtered.len(), 2, "{filtered:?}");

    let loc = fx.location("dictionary-rejected");
    put_bytes(&loc, "defects.parquet", rejected.to_vec()).await;
    let outcome = match backend.read(&loc, &ReadOptions::default()).await {
        Ok(result) => result.collect().await.map(|_| ()),
        Err(e) => Err(e),
    };
    match outcome {
        Err(e @ (Error::CorruptFile { .. } | Error::Parquet { .. })) => {
            assert!(e.to_string().contains("defects.parquet"), "{e}");
        }
        Err(other) => panic!("an untyped failure for a bad dictionary: {other}"),
        Ok(()) => panic!("a dictionary smaller than its indices read without an error"),
    }
}
