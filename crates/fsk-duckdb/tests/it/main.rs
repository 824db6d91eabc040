//! The shared conformance suite on the duckdb engine.

use std::sync::Arc;

use fsk_core::DatasetBackend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    fsk_conformance::run_all(&fsk_duckdb::DuckDbBackend::new()).await;
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
