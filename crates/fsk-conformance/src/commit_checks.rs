//! Checks of the commit protocol: a failure at every step leaves, after recovery, exactly the
//! state before or exactly the state after; never a mix, never staging leftovers.

use std::collections::BTreeSet;

use fsk_core::Location;
use fsk_core::Operations;
use fsk_core::ReadOptions;
use fsk_core::commit::{failpoints, recover};
use fsk_core::engine::DatasetBackend;
use fsk_core::ops::compact::CompactOptions;
use fsk_core::ops::merge::{MergeOptions, Strategy};
use fsk_core::write::{WriteMode, WriteOptions};

use crate::Fixture;
use crate::data::{batches, fsk_leftovers, read_rows};
use crate::merge_checks::rows_of;

#[derive(Clone, Copy, Debug)]
enum Op {
    Overwrite,
    Upsert,
    FullMerge,
    Compact,
}

async fn seed(backend: &dyn DatasetBackend, loc: &Location) {
    backend
        .write(
            loc,
            batches(vec![rows_of(&(0..30).collect::<Vec<_>>(), "a", "old")]),
            &WriteOptions::default().with_max_rows_per_file(10),
        )
        .await
        .expect("seed");
}

/// Runs `op`; `Ok` carries the report's `(committed, cleanup_pending)`.
async fn run(
    backend: &dyn DatasetBackend,
    loc: &Location,
    op: Op,
) -> fsk_core::Result<(bool, Option<String>)> {
    match op {
        Op::Overwrite => backend
            .write(
                loc,
                batches(vec![rows_of(&[100, 101], "b", "over")]),
                &WriteOptions::default()
                    .with_mode(WriteMode::Overwrite)
                    .with_max_rows_per_file(1),
            )
            .await
            .map(|r| (r.committed, r.cleanup_pending)),
        Op::Upsert => backend
            .merge(
                loc,
                batches(vec![rows_of(&[5, 15, 40, 41], "a", "new")]),
                &MergeOptions::new(["id"], Strategy::Upsert),
            )
            .await
            .map(|r| (r.committed, r.cleanup_pending)),
        Op::FullMerge => backend
            .merge(
                loc,
                batches(vec![rows_of(&[1, 2, 50], "a", "sync")]),
                &MergeOptions::new(["id"], Strategy::FullMerge),
            )
            .await
            .map(|r| (r.committed, r.cleanup_pending)),
        Op::Compact => backend
            .compact(loc, &CompactOptions::new().with_target_file_size(1 << 20))
            .await
            .map(|report| {
                assert_eq!(report.removed_files.len(), 3);
                (report.committed, report.cleanup_pending)
            }),
    }
}

/// The rows (as a sorted multiset) and the number of data files: a compaction changes only
/// the second.
async fn state(backend: &dyn DatasetBackend, loc: &Location) -> (Vec<String>, usize) {
    let mut rows = read_rows(backend, loc, &ReadOptions::default()).await.1;
    rows.sort();
    (rows, crate::data::data_files(loc).await.len())
}

/// A failure injected at every step of the protocol, for overwrite, upsert, full_merge and
/// compact. Before the journal the operation fails; after it the operation is committed and
/// says so (`committed`, with `cleanup_pending` naming the failure), so a user never retries
/// a committed append. Fsk's own readers refuse the unfinished state with `RecoveryNeeded`.
/// After recovery the rows and files are exactly the before state (failure before the
/// journal) or exactly the after state (after it), and nothing is left under `_fsk/`.
pub async fn failure_at_every_step_recovers_to_before_or_after(
    backend: &dyn DatasetBackend,
    fx: &Fixture,
) {
    for (n, op) in [Op::Overwrite, Op::Upsert, Op::FullMerge, Op::Compact]
        .into_iter()
        .enumerate()
    {
        let twin = fx.location(&format!("twin-{n}"));
        seed(backend, &twin).await;
        let before_rows = state(backend, &twin).await;
        let clean = run(backend, &twin, op)
            .await
            .expect("operation without failure");
        assert_eq!(clean, (true, None), "{op:?}: committed, nothing pending");
        let after_rows = state(backend, &twin).await;
        assert_ne!(before_rows, after_rows);
        for point in failpoints::ALL {
            let loc = fx.location(&format!("ds-{n}-{point}"));
            seed(backend, &loc).await;
            let before_files: BTreeSet<String> =
                crate::data::data_files(&loc).await.into_iter().collect();
            failpoints::arm(point, &loc.to_string());
            let result = run(backend, &loc, op).await;
            failpoints::clear(&loc.to_string());
            let journaled = !matches!(point, "write.close_file" | "commit.before_journal");
            if journaled {
                let (committed, pending) = result.unwrap_or_else(|e| {
                    panic!("{op:?} {point}: committed operations succeed, got {e}")
                });
                assert!(committed, "{op:?} {point}");
                let pending = pending.unwrap_or_default();
                assert!(
                    pending.contains("failpoint"),
                    "{op:?} {point}: cleanup_pending names the failure: {pending:?}"
                );
                let refused = backend
                    .read(&loc, &ReadOptions::default())
                    .await
                    .err()
                    .unwrap_or_else(|| panic!("{op:?} {point}: a mixed read"));
                assert!(
                    matches!(refused, fsk_core::Error::RecoveryNeeded { .. }),
                    "{op:?} {point}: {refused}"
                );
                let stats = backend
                    .stats(&loc, &Default::default())
                    .await
                    .expect_err("stats of an unfinished transaction");
                assert!(
                    matches!(stats, fsk_core::Error::RecoveryNeeded { .. }),
                    "{stats}"
                );
            } else {
                assert!(result.is_err(), "{op:?} with failpoint {point} should fail");
            }
            let report = recover(&loc, None).await.expect("recover");
            let rows = state(backend, &loc).await;
            if journaled {
                assert_eq!(
                    rows, after_rows,
                    "{op:?} {point}: rolled forward to the after state"
                );
                let forward_now_or_at_failure = report.rolled_forward.len() <= 1;
                assert!(forward_now_or_at_failure, "{report:?}");
            } else {
                assert_eq!(
                    rows, before_rows,
                    "{op:?} {point}: rolled back to the before state"
                );
                let files: BTreeSet<String> =
                    crate::data::data_files(&loc).await.into_iter().collect();
                assert_eq!(files, before_files, "{op:?} {point}: the same files");
            }
            let leftovers = fsk_leftovers(&loc).await;
            assert!(
                leftovers.is_empty(),
                "{op:?} {point}: leftovers {leftovers:?}"
            );
            // Recovery is idempotent.
            let again = recover(&loc, None).await.expect("recover again");
            assert!(
                again.rolled_forward.is_empty() && again.rolled_back.is_empty(),
                "{again:?}"
            );
        }
    }
}

/// Staging is deleted only when the journal is proven absent: when writing the journal
/// fails and its existence cannot be checked either, the staged files stay for recovery,
/// which finds no journal and rolls them back.
pub async fn staging_is_kept_while_the_journal_is_unknown(
    backend: &dyn DatasetBackend,
    fx: &Fixture,
) {
    let (store, loc) = fx.counted("ds");
    seed(backend, &loc).await;
    let before = state(backend, &loc).await;
    store.fail_paths(Some((
        "_fsk/txn/",
        &[crate::store::Kind::Put, crate::store::Kind::Get],
    )));
    let err = run(backend, &loc, Op::Upsert)
        .await
        .expect_err("the journal could not be written");
    store.fail_paths(None);
    assert!(
        matches!(err, fsk_core::Error::CommitOutcomeUnknown { .. }),
        "an unknown outcome is not a plain failure (a retry could apply it twice): {err}"
    );
    assert!(err.to_string().contains("do not run"), "{err}");
    let staged: Vec<String> = fsk_leftovers(&loc)
        .await
        .into_iter()
        .filter(|p| p.starts_with("_fsk/staging/"))
        .collect();
    assert!(
        !staged.is_empty(),
        "staging kept while the journal is unknown"
    );
    assert!(
        staged
            .iter()
            .all(|p| p.ends_with(fsk_core::commit::STAGED_SUFFIX)),
        "staged files match no *.parquet glob: {staged:?}"
    );
    let report = recover(&loc, None).await.expect("recover");
    assert_eq!(report.rolled_back.len(), 1, "{report:?}");
    assert_eq!(state(backend, &loc).await, before);
    assert!(fsk_leftovers(&loc).await.is_empty());
}

/// A dataset with an unfinished journal is refused by every reader and by a dry run with a
/// typed `RecoveryNeeded` naming the transaction; a writer recovers it first.
pub async fn unfinished_journals_are_refused_or_recovered(
    backend: &dyn DatasetBackend,
    fx: &Fixture,
) {
    let loc = fx.location("ds");
    seed(backend, &loc).await;
    failpoints::arm("commit.after_publish", &loc.to_string());
    let pending = run(backend, &loc, Op::Upsert).await.expect("committed");
    failpoints::clear(&loc.to_string());
    assert!(pending.0 && pending.1.is_some(), "{pending:?}");
    let txn_of = |e: fsk_core::Error| match e {
        fsk_core::Error::RecoveryNeeded { txn, .. } => txn,
        other => panic!("expected RecoveryNeeded, got {other}"),
    };
    let Err(read) = backend.read(&loc, &ReadOptions::default()).await else {
        panic!("a read of an unfinished transaction succeeded");
    };
    let read = txn_of(read);
    assert!(!read.is_empty());
    let Err(dry) = backend
        .merge(
            &loc,
            batches(vec![rows_of(&[1], "a", "x")]),
            &MergeOptions {
                dry_run: true,
                ..MergeOptions::new(["id"], Strategy::Upsert)
            },
        )
        .await
    else {
        panic!("a dry run over an unfinished transaction succeeded");
    };
    assert_eq!(txn_of(dry), read, "names the same transaction");
    // SQL plans its tables like a read: the committed state or RecoveryNeeded, never a mix.
    let mut session = fsk_core::ops::sql::SqlSession::on(backend);
    session.register("t", loc.clone()).expect("register");
    let Err(sql) = session.query("SELECT count(*) AS n FROM t", &[]).await else {
        panic!("a query of an unfinished transaction succeeded");
    };
    assert_eq!(txn_of(sql), read, "SQL names the same transaction");
    // A writer takes the lease, rolls the journal forward, then appends.
    let appended = backend
        .write(
            &loc,
            batches(vec![rows_of(&[900], "a", "more")]),
            &WriteOptions::default(),
        )
        .await
        .expect("append recovers first");
    assert!(appended.committed);
    let rows = state(backend, &loc).await.0;
    assert_eq!(
        rows.len(),
        33,
        "30 seeded, 2 inserted by the upsert, 1 appended"
    );
    assert!(fsk_leftovers(&loc).await.is_empty());
}

/// One writer at a time without guesses. Locally the lease is an OS lock: no lease request
/// reaches the store. On object stores the lease needs conditional updates (a store without
/// them is `NotSupported` for writing, and nothing is written), and a store that keeps
/// failing ends in a typed error after bounded retries, never an endless loop.
pub async fn leases_are_locks_or_conditional_objects(backend: &dyn DatasetBackend, fx: &Fixture) {
    let (store, loc) = fx.counted("ds");
    seed(backend, &loc).await;
    store.take();
    let tx = fsk_core::commit::Transaction::begin(&loc, "test", None)
        .await
        .expect("lease");
    let lease_requests = store
        .take()
        .into_iter()
        .filter(|r| r.path.ends_with("_fsk/lease.json"))
        .count();
    tx.abort().await;
    if fx.kind() == crate::StoreUnderTest::Local {
        assert_eq!(
            lease_requests, 0,
            "a local lease is an OS lock, not an object"
        );
        return;
    }
    assert!(lease_requests >= 1, "a lease object on {:?}", fx.kind());
    let before = state(backend, &loc).await;
    store.hide_versions(true);
    let err = run(backend, &loc, Op::Upsert)
        .await
        .expect_err("no conditional updates");
    store.hide_versions(false);
    assert!(matches!(err, fsk_core::Error::NotSupported { .. }), "{err}");
    assert!(err.to_string().contains("conditional"), "{err}");
    assert_eq!(state(backend, &loc).await, before, "nothing written");
    store.fail_paths(Some(("_fsk/lease.json", &[crate::store::Kind::Put])));
    let started = std::time::Instant::now();
    let err = run(backend, &loc, Op::Upsert)
        .await
        .expect_err("a failing store");
    store.fail_paths(None);
    assert!(matches!(err, fsk_core::Error::Storage { .. }), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "bounded retries"
    );
    assert_eq!(state(backend, &loc).await, before);
}
