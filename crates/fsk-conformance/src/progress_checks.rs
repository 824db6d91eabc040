//! Progress checks: every long operation names its phases in order, each phase with a total
//! advances exactly to it, and the totals are the plan's (rows written, bytes rewritten).

use std::sync::Arc;

use fsk_core::Operations;
use fsk_core::engine::DatasetBackend;
use fsk_core::ops::compact::CompactOptions;
use fsk_core::ops::dedup::DedupOptions;
use fsk_core::ops::merge::{MergeOptions, Strategy};
use fsk_core::ops::optimize::OptimizeOptions;
use fsk_core::progress::{Progress, RecordedPhase, RecordingSink, Unit};
use fsk_core::write::WriteOptions;

use crate::Fixture;
use crate::data::{batches, small_int64};

/// The recorder's phases, checked: names in order, every phase with a total advanced
/// exactly to it. Returns the phases for further checks.
fn phases(sink: &RecordingSink, what: &str, names: &[&str]) -> Vec<RecordedPhase> {
    let phases = sink.phases();
    let got: Vec<&str> = phases.iter().map(|p| p.name).collect();
    assert_eq!(got, names, "{what}: phases {phases:?}");
    for phase in &phases {
        if let Some(total) = phase.total {
            assert_eq!(
                phase.done, total,
                "{what}: phase {} advanced {} of its total {total}",
                phase.name, phase.done
            );
        }
    }
    phases
}

/// A progress handle reporting to `sink`.
fn recorded(sink: &Arc<RecordingSink>) -> Progress {
    let sink: Arc<RecordingSink> = Arc::clone(sink);
    Progress::new(sink)
}

fn phase<'a>(phases: &'a [RecordedPhase], name: &str) -> &'a RecordedPhase {
    phases.iter().find(|p| p.name == name).expect("phase")
}

/// Write, merge, compact, dedup and optimize report their phases (`plan`, `scan keys`,
/// `rewrite`, `commit`, ...) with the plan's totals, each advanced exactly to its total.
pub async fn progress_names_phases_with_exact_totals(backend: &dyn DatasetBackend, fx: &Fixture) {
    let loc = fx.location("progress");
    // A write of three batches: rows counted against the stream's hint.
    let sink = RecordingSink::new();
    let input: Vec<_> = (0..3)
        .map(|b| small_int64(&(b * 100..b * 100 + 100).collect::<Vec<_>>(), "w"))
        .collect();
    let report = backend
        .write(
            &loc,
            batches(input),
            &WriteOptions {
                progress: recorded(&sink),
                ..WriteOptions::default()
            },
        )
        .await
        .expect("write");
    let write = phases(&sink, "write", &["write", "commit"]);
    assert_eq!(write[0].total, Some(300));
    assert_eq!(write[0].unit, Unit::Rows);
    assert_eq!(report.total_rows, 300);
    for start in [1000i64, 2000, 3000] {
        let ids: Vec<i64> = (start..start + 50).collect();
        backend
            .write(
                &loc,
                batches(vec![small_int64(&ids, "s")]),
                &WriteOptions::default(),
            )
            .await
            .expect("append");
    }

    // An upsert: source rows read, candidate files key-scanned, matched files rewritten
    // (their bytes), new keys inserted (their rows).
    let sink = RecordingSink::new();
    let mut options = MergeOptions::new(["id"], Strategy::Upsert);
    options.progress = recorded(&sink);
    let source: Vec<i64> = (0..10).chain(5000..5005).collect();
    let report = backend
        .merge(&loc, batches(vec![small_int64(&source, "m")]), &options)
        .await
        .expect("merge");
    let merge = phases(
        &sink,
        "merge",
        &[
            "read source",
            "plan",
            "scan keys",
            "rewrite",
            "insert",
            "commit",
        ],
    );
    assert_eq!(phase(&merge, "read source").total, Some(15));
    assert_eq!(phase(&merge, "insert").total, Some(5));
    assert_eq!(
        phase(&merge, "scan keys").total,
        Some(report.files_key_scanned)
    );
    assert!(phase(&merge, "rewrite").total.unwrap() > 0, "{merge:?}");
    assert_eq!(phase(&merge, "rewrite").unit, Unit::Bytes);
    assert_eq!((report.updated, report.inserted), (10, 5));

    // A compaction of the five small files: the bytes of every group rewritten.
    let sink = RecordingSink::new();
    let report = backend
        .compact(
            &loc,
            &CompactOptions {
                progress: recorded(&sink),
                ..CompactOptions::default()
            },
        )
        .await
        .expect("compact");
    let compact = phases(&sink, "compact", &["plan", "rewrite", "commit"]);
    assert!(report.rewritten_bytes > 0);
    assert_eq!(
        phase(&compact, "rewrite").total,
        Some(report.rewritten_bytes)
    );

    // Deduplication after appending duplicates of ten keys: every file in scope scanned
    // for keys, the files holding a duplicate rewritten.
    backend
        .write(
            &loc,
            batches(vec![small_int64(&(20..30).collect::<Vec<_>>(), "d")]),
            &WriteOptions::default(),
        )
        .await
        .expect("append duplicates");
    let sink = RecordingSink::new();
    let report = backend
        .dedup(
            &loc,
            &DedupOptions {
                key: vec!["id".into()],
                progress: recorded(&sink),
                ..DedupOptions::default()
            },
        )
        .await
        .expect("dedup");
    let dedup = phases(&sink, "dedup", &["plan", "scan keys", "rewrite", "commit"]);
    assert_eq!(report.removed_rows, 10);
    assert!(phase(&dedup, "rewrite").total.unwrap() > 0);
    assert!(phase(&dedup, "scan keys").total >= phase(&dedup, "rewrite").total);

    // Z-ordering: every byte in scope is sampled and rewritten.
    let sink = RecordingSink::new();
    let mut options = OptimizeOptions::new(["id"]);
    options.progress = recorded(&sink);
    let report = backend.optimize(&loc, &options).await.expect("optimize");
    let optimize = phases(&sink, "optimize", &["plan", "rewrite", "commit"]);
    assert_eq!(
        phase(&optimize, "rewrite").total,
        Some(report.before_total_bytes)
    );
}
