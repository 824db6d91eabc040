//! The shared conformance suite on the datafusion engine.

use std::sync::Arc;

use fsk_core::DatasetBackend;

/// One test per conformance check, on every store under test.
mod conformance {
    fsk_conformance::conformance_tests!(fsk_datafusion::DataFusionBackend::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_through_arc_dyn() {
    let backend: Arc<dyn DatasetBackend> = Arc::new(fsk_datafusion::DataFusionBackend::new());
    fsk_conformance::run_all_arc(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_read_round_trip_properties() {
    fsk_conformance::proptests::write_read_round_trip(
        &fsk_datafusion::DataFusionBackend::new(),
        24,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_matches_the_model() {
    fsk_conformance::proptests::merge_matches_model(&fsk_datafusion::DataFusionBackend::new(), 32)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_keeps_rows_properties() {
    fsk_conformance::proptests::maintenance_keeps_rows(
        &fsk_datafusion::DataFusionBackend::new(),
        24,
    )
    .await;
}
