//! The shared conformance suite on the duckdb engine.

use std::sync::Arc;

use fsk_core::{DatasetBackend, Operations};

/// One test per conformance check, on every store under test.
mod conformance {
    fsk_conformance::conformance_tests!(fsk_duckdb::DuckDbBackend::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_through_arc_dyn() {
    let backend: Arc<dyn DatasetBackend> = Arc::new(fsk_duckdb::DuckDbBackend::new());
    fsk_conformance::run_all_arc(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_read_round_trip_properties() {
    fsk_conformance::proptests::write_read_round_trip(&fsk_duckdb::DuckDbBackend::new(), 24).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_matches_the_model() {
    fsk_conformance::proptests::merge_matches_model(&fsk_duckdb::DuckDbBackend::new(), 32).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_keeps_rows_properties() {
    fsk_conformance::proptests::maintenance_keeps_rows(&fsk_duckdb::DuckDbBackend::new(), 24).await;
}

/// Outside readers never see fsk's work in progress: while a write is held between staging
/// and its journal, DuckDB's `**/*.parquet` glob (what `read_parquet('ds/**/*.parquet')`
/// reads) matches only the committed data files, never a staged one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_glob_never_matches_staged_files() {
    use fsk_core::arrow::array::{Int64Array, RecordBatch};
    use fsk_core::arrow::datatypes::{DataType, Field, Schema};

    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().join("ds");
    let loc = fsk_core::Location::parse(&root.display().to_string()).expect("location");
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
    )
    .expect("batch");
    let backend = fsk_duckdb::DuckDbBackend::new();
    backend
        .write(
            &loc,
            fsk_core::Batches::from_batches(Arc::clone(&schema), vec![batch.clone()]),
            &fsk_core::WriteOptions::default(),
        )
        .await
        .expect("committed write");

    // A second write, held after staging and before its journal.
    let mut tx = fsk_core::commit::Transaction::begin(&loc, "write", None)
        .await
        .expect("lease");
    let mut writer = fsk_core::write::DatasetWriter::new(
        tx.staging(),
        Arc::clone(&schema),
        fsk_core::WriteOptions::default().with_max_rows_per_file(1),
    )
    .expect("writer");
    writer.write(&batch).await.expect("stage");
    let staged = writer.finish().await.expect("staged files");
    assert_eq!(staged.len(), 3);
    tx.add_all(staged);

    let conn = duckdb::Connection::open_in_memory().expect("duckdb");
    let glob = format!("{}/**/*.parquet", root.display());
    let mut statement = conn
        .prepare("SELECT file FROM glob(?) ORDER BY file")
        .expect("prepare");
    let matched: Vec<String> = statement
        .query_map([glob.as_str()], |row| row.get::<_, String>(0))
        .expect("glob")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(matched.len(), 1, "only the committed file: {matched:?}");
    assert!(!matched[0].contains("_fsk"), "{matched:?}");
    let on_disk = walk(&root.join("_fsk"));
    assert!(
        on_disk.iter().filter(|p| p.contains("staging")).count() == 3,
        "the staged files exist meanwhile: {on_disk:?}"
    );
    tx.abort().await;
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out
}
