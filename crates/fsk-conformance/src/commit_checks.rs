//! Checks of the commit protocol: a failure at every step leaves, after recovery, exactly the
//! state before or exactly the state after; never a mix, never staging leftovers.

use std::collections::BTreeSet;

use fsk_core::Location;
use fsk_core::backend::{DatasetBackend, ReadOptions};
use fsk_core::commit::{failpoints, recover};
use fsk_core::compact::CompactOptions;
use fsk_core::merge::{MergeOptions, Strategy};
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

async fn run(backend: &dyn DatasetBackend, loc: &Location, op: Op) -> fsk_core::Result<()> {
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
            .map(|_| ()),
        Op::Upsert => backend
            .merge(
                loc,
                batches(vec![rows_of(&[5, 15, 40, 41], "a", "new")]),
                &MergeOptions::new(["id"], Strategy::Upsert),
            )
            .await
            .map(|_| ()),
        Op::FullMerge => backend
            .merge(
                loc,
                batches(vec![rows_of(&[1, 2, 50], "a", "sync")]),
                &MergeOptions::new(["id"], Strategy::FullMerge),
            )
            .await
            .map(|_| ()),
        Op::Compact => backend
            .compact(loc, &CompactOptions::new().with_target_file_size(1 << 20))
            .await
            .map(|report| assert_eq!(report.removed_files.len(), 3)),
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
/// compact: the operation fails; after recovery the rows and files are exactly the before
/// state (failure before the journal) or exactly the after state (after it), and nothing is
/// left under `_fsk/`.
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
        run(backend, &twin, op)
            .await
            .expect("operation without failure");
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
            assert!(result.is_err(), "{op:?} with failpoint {point} should fail");
            let report = recover(&loc, None).await.expect("recover");
            let rows = state(backend, &loc).await;
            let journaled = !matches!(point, "write.close_file" | "commit.before_journal");
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
