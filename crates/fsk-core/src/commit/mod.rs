//! The commit protocol every mutating operation publishes through.
//!
//! 1. Take the dataset lease ([`lease`]: an OS lock locally, a conditional lease object on
//!    object stores).
//! 2. Recover any unfinished transaction left by a crashed writer.
//! 3. Stage every new file under `_fsk/staging/<txn>/` with a `.staged` suffix (no data glob
//!    such as `**/*.parquet` matches it), recording its size and checksum.
//! 4. Make the staged files durable, then write the journal `_fsk/txn/<txn>.json` (files to
//!    publish with their checksums, files to remove) with create-if-absent and make it
//!    durable. This is the commit point: before it the transaction rolls back, after it
//!    forward, and the operation reports success (`committed`) even if what follows fails.
//! 5. Publish staged files into place with create-if-absent renames (a collision takes the
//!    next name derived from the transaction: nothing is ever overwritten), make them
//!    durable, delete the removed files, then the staging and the journal, then release the
//!    lease ([`journal`]).
//!
//! Readers other than fsk may see old and new files together only during step 5; it publishes
//! everything first and then deletes, to keep that window short. fsk's own readers refuse a
//! dataset with a journal ([`crate::Error::RecoveryNeeded`]).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use rand::Rng;
use serde::Serialize;

use crate::dataset::storage::Location;
use crate::error::{Error, Result};

mod durable;
pub mod failpoints;
pub mod journal;
pub mod lease;

pub use journal::{Checksum, Journal, PublishEntry, PublishedFile};
pub use lease::{LEASE_TTL, LeaseInfo, LeaseRequest};

use journal::{apply_journal, journal_path, journal_relative, parse_journal};
use lease::Lease;

pub use crate::dataset::layout::FSK_DIR;
use crate::dataset::layout::journal_txn;

/// The version of fsk's metadata formats (journal, lease) this fsk writes and reads; a newer
/// one is refused with [`Error::UnsupportedFormat`]. Documented in `docs/commit.md`.
pub const FORMAT_VERSION: u32 = 1;

/// The suffix of staged files: `part-1.parquet.staged` matches no `*.parquet` glob.
pub const STAGED_SUFFIX: &str = ".staged";

/// A fresh 8-character lowercase hex token.
pub fn random_token() -> String {
    format!("{:08x}", rand::rng().random::<u32>())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// What recovery did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Transactions whose journal was complete and were published.
    pub rolled_forward: Vec<String>,
    /// Transactions without a journal whose staging was deleted.
    pub rolled_back: Vec<String>,
}

/// The result of a commit whose journal is durable: the transaction is committed, whatever
/// happened after.
#[derive(Clone, Debug, Default)]
pub struct CommitOutcome {
    /// The published files in the order they were added (planned names where publishing
    /// did not finish).
    pub files: Vec<PublishedFile>,
    /// Set when publishing or cleanup failed after the commit point: the changes are
    /// committed and the next operation (or `fsk recover`) finishes them. The message says
    /// what failed.
    pub cleanup_pending: Option<String>,
}

/// The staging area of one transaction: new files are written here, hidden from readers,
/// until the commit publishes them.
#[derive(Clone, Debug)]
pub struct Staging {
    location: Location,
    txn: String,
    reserved: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Staging {
    /// The dataset.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Reserves a final relative path for this transaction; `false` if it is taken.
    pub fn reserve(&self, target: &str) -> bool {
        self.reserved
            .lock()
            .map(|mut r| r.insert(target.to_string()))
            .unwrap_or(false)
    }

    /// The staging path (relative to the root) for a file whose final relative path is
    /// `target`: under `_fsk/staging/<txn>/`, with the [`STAGED_SUFFIX`].
    pub fn staging_relative(&self, target: &str) -> String {
        format!("{FSK_DIR}/staging/{}/{target}{STAGED_SUFFIX}", self.txn)
    }
}

/// An open transaction: holds the lease, collects staged files and removals, commits.
pub struct Transaction {
    location: Location,
    txn: String,
    operation: String,
    lease: Option<Lease>,
    publish: Vec<PublishEntry>,
    remove: Vec<String>,
    recovery: RecoveryReport,
    /// Whether the local dataset folder existed before the lease created it.
    root_existed: bool,
    /// File names taken by this transaction's writers.
    reserved: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("txn", &self.txn)
            .field("operation", &self.operation)
            .finish()
    }
}

/// The largest object S3 copies in one request (a single-part copy). Publishing copies each
/// staged file once, so a larger file could never be published.
pub const S3_MAX_COPY_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// Refuses, before the journal exists, a transaction whose publish could never succeed: a
/// journal that cannot be applied would make every later recovery fail.
fn check_publishable(location: &Location, publish: &[PublishEntry]) -> Result<()> {
    if location.kind() != crate::dataset::storage::StoreKind::S3 {
        return Ok(());
    }
    match publish.iter().find(|e| e.size_bytes > S3_MAX_COPY_BYTES) {
        Some(entry) => Err(Error::invalid_argument(
            "file size",
            format!("{} ({} bytes)", entry.target, entry.size_bytes),
            "S3 cannot copy an object over 5 GiB in one request, and publishing copies each \
             new file once; split the output (max_rows_per_file, partition_by)",
        )),
        None => Ok(()),
    }
}

/// Where a commit failed, which decides what may be cleaned up.
enum CommitError {
    /// Before the journal was attempted: it certainly does not exist.
    BeforeJournal(Error),
    /// Writing the journal failed: it may or may not exist.
    Journal(Error),
    /// After the journal is durable: the transaction is committed.
    AfterJournal(Error),
}

impl Transaction {
    /// Takes the lease (waiting up to `wait` for another writer), recovers unfinished
    /// transactions, and opens a new one.
    pub async fn begin(
        location: &Location,
        operation: &str,
        wait: Option<Duration>,
    ) -> Result<Self> {
        Self::begin_with(
            location,
            operation,
            LeaseRequest {
                wait,
                break_lease: false,
            },
        )
        .await
    }

    /// [`Transaction::begin`] with every lease option.
    pub async fn begin_with(
        location: &Location,
        operation: &str,
        request: LeaseRequest,
    ) -> Result<Self> {
        let txn = format!("{}-{}", now_ms(), random_token());
        let root_existed = location.local_root().is_none_or(|root| root.exists());
        let lease = Lease::acquire(location, operation, &txn, request).await?;
        let mut tx = Transaction {
            location: location.clone(),
            txn,
            operation: operation.to_string(),
            lease: Some(lease),
            publish: Vec::new(),
            remove: Vec::new(),
            recovery: RecoveryReport::default(),
            root_existed,
            reserved: Default::default(),
        };
        match recover_locked(location).await {
            Ok(report) => tx.recovery = report,
            Err(e) => {
                tx.release().await;
                return Err(e);
            }
        }
        Ok(tx)
    }

    /// The transaction id.
    pub fn id(&self) -> &str {
        &self.txn
    }

    /// The location.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// What recovery did when the transaction began.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Where this transaction stages its files; cheap to clone into parallel writers.
    pub fn staging(&self) -> Staging {
        Staging {
            location: self.location.clone(),
            txn: self.txn.clone(),
            reserved: std::sync::Arc::clone(&self.reserved),
        }
    }

    /// Records several staged files to publish.
    pub fn add_all(&mut self, entries: impl IntoIterator<Item = PublishEntry>) {
        self.publish.extend(entries);
    }

    /// Records a staged file to publish.
    pub fn add(&mut self, entry: PublishEntry) {
        self.publish.push(entry);
    }

    /// Records a data file (relative path) to remove at commit.
    pub fn remove(&mut self, relative: impl Into<String>) {
        self.remove.push(relative.into());
    }

    /// Writes the journal, publishes, removes, drops the journal and releases the lease.
    ///
    /// Fails only when the transaction did not commit (its journal does not exist, or, after
    /// an ambiguous store error, may not: then its staging is kept for recovery to decide).
    /// Once the journal is durable the result is `Ok`, with
    /// [`CommitOutcome::cleanup_pending`] set if publishing or cleanup failed.
    pub async fn commit(mut self) -> Result<CommitOutcome> {
        let result = self.commit_inner().await;
        let outcome = match result {
            Ok(files) => Ok(CommitOutcome {
                files,
                cleanup_pending: None,
            }),
            Err(CommitError::BeforeJournal(e)) => {
                let _ = delete_prefix(&self.location, &self.staging_prefix()).await;
                Err(e)
            }
            Err(CommitError::Journal(e)) => match self.journal_exists().await {
                // Staging is deleted only when the journal is proven absent.
                Some(false) => {
                    let _ = delete_prefix(&self.location, &self.staging_prefix()).await;
                    Err(e)
                }
                Some(true) => Ok(self.pending(e)),
                None => Err(Error::CommitOutcomeUnknown {
                    path: self.location.to_string(),
                    txn: self.txn.clone(),
                    message: e.to_string(),
                }),
            },
            Err(CommitError::AfterJournal(e)) => Ok(self.pending(e)),
        };
        self.release().await;
        outcome
    }

    fn pending(&self, error: Error) -> CommitOutcome {
        tracing::warn!(txn = %self.txn, "committed, but finishing failed: {error}");
        CommitOutcome {
            files: self
                .publish
                .iter()
                .map(|e| PublishedFile {
                    path: e.target.clone(),
                    size_bytes: e.size_bytes,
                    row_count: e.row_count,
                })
                .collect(),
            cleanup_pending: Some(error.to_string()),
        }
    }

    async fn commit_inner(&mut self) -> std::result::Result<Vec<PublishedFile>, CommitError> {
        let before = async {
            failpoints::failpoint("commit.before_journal", &self.location)?;
            check_publishable(&self.location, &self.publish)?;
            // The journal may point only at files that survive a power loss.
            durable::sync_files(
                &self.location,
                self.publish.iter().map(|e| e.staged.as_str()),
            )
            .await?;
            match &self.lease {
                Some(lease) => lease.ensure_held(&self.location).await,
                None => Err(Error::Internal("commit without a lease".into())),
            }
        };
        before.await.map_err(CommitError::BeforeJournal)?;
        let journal = Journal {
            format_version: FORMAT_VERSION,
            txn: self.txn.clone(),
            operation: self.operation.clone(),
            publish: self.publish.clone(),
            remove: self.remove.clone(),
        };
        let path = journal_path(&self.location, &self.txn);
        let body = serde_json::to_vec_pretty(&journal)
            .map_err(|e| CommitError::BeforeJournal(Error::Internal(e.to_string())))?;
        self.location
            .store()
            .put_opts(
                &path,
                PutPayload::from(Bytes::from(body)),
                PutOptions::from(PutMode::Create),
            )
            .await
            .map_err(|e| {
                CommitError::Journal(Error::from_store(self.location.describe(&path), e))
            })?;
        durable::sync_files(&self.location, [journal_relative(&self.txn)])
            .await
            .map_err(CommitError::Journal)?;
        let after = async {
            failpoints::failpoint("commit.after_journal", &self.location)?;
            apply_journal(&self.location, &journal).await
        };
        after.await.map_err(CommitError::AfterJournal)
    }

    async fn journal_exists(&self) -> Option<bool> {
        let path = journal_path(&self.location, &self.txn);
        match self.location.store().head(&path).await {
            Ok(_) => Some(true),
            Err(object_store::Error::NotFound { .. }) => Some(false),
            Err(_) => None,
        }
    }

    fn staging_prefix(&self) -> Path {
        self.location
            .child(&format!("{FSK_DIR}/staging/{}", self.txn))
    }

    /// Abandons the transaction: deletes its staging and releases the lease.
    pub async fn abort(mut self) {
        let _ = delete_prefix(&self.location, &self.staging_prefix()).await;
        self.release().await;
    }

    async fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            // A no-op merge into a missing dataset creates nothing: the folder the lease
            // created goes too, if nothing was written into it.
            lease.release(&self.location, !self.root_existed).await;
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(lease) = &self.lease {
            // Dropped without commit or abort (a panic or a cancelled future): stop renewing;
            // the lease lapses (locally the lock is released with the file), and recovery
            // rolls the staging back.
            lease.abandon();
        }
    }
}

/// Deletes every object under `prefix` (and, locally, the folder with whatever the store
/// does not list, such as interrupted uploads).
pub(crate) async fn delete_prefix(location: &Location, prefix: &Path) -> Result<()> {
    let objects: Vec<_> = location
        .store()
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(|e| Error::from_store(location.describe(prefix), e))?;
    for object in objects {
        match location.store().delete(&object.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::from_store(location.describe(&object.location), e)),
        }
    }
    if let Some(local) = location.local_root()
        && let Some(rel) = location.relative(prefix)
    {
        let _ = std::fs::remove_dir_all(local.join(rel));
    }
    Ok(())
}

/// How `fsk recover` takes the lease.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecoverOptions {
    /// Wait this long for another writer. `None` waits one lease lifetime
    /// ([`LEASE_TTL`]) and a little more: on an object store that is how long a dead
    /// holder's lease must be seen unchanged before it is taken over.
    pub wait: Option<Duration>,
    /// Take over the lease at once (object stores), for an operator who knows its holder is
    /// dead; also replaces an unreadable lease.
    pub break_lease: bool,
}

/// Rolls unfinished transactions forward (complete journal) or back (staging without a
/// journal). Takes the lease for the duration; fails with [`Error::Conflict`] if another writer
/// holds it (after waiting up to `wait`), and with [`Error::NotFound`] when nothing exists at
/// the location.
pub async fn recover(location: &Location, wait: Option<Duration>) -> Result<RecoveryReport> {
    recover_with(
        location,
        &RecoverOptions {
            wait,
            break_lease: false,
        },
    )
    .await
}

/// [`recover`] with every option.
pub async fn recover_with(location: &Location, options: &RecoverOptions) -> Result<RecoveryReport> {
    if !exists(location).await? {
        return Err(Error::NotFound {
            path: location.to_string(),
        });
    }
    let request = LeaseRequest {
        wait: Some(options.wait.unwrap_or(LEASE_TTL + Duration::from_secs(5))),
        break_lease: options.break_lease,
    };
    let tx = Transaction::begin_with(location, "recover", request).await?;
    let report = tx.recovery.clone();
    tx.abort().await;
    Ok(report)
}

/// Whether anything exists at the location (a folder or a prefix with objects).
async fn exists(location: &Location) -> Result<bool> {
    if let Some(root) = location.local_root() {
        return Ok(root.exists());
    }
    let mut objects = location.store().list(Some(location.root()));
    match objects.try_next().await {
        Ok(found) => Ok(found.is_some()),
        Err(e) => Err(Error::from_store(location.to_string(), e)),
    }
}

async fn recover_locked(location: &Location) -> Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    let store = location.store();
    let txn_dir = location.child(&format!("{FSK_DIR}/txn"));
    let journals: Vec<_> = store
        .list(Some(&txn_dir))
        .try_collect()
        .await
        .map_err(|e| Error::from_store(location.describe(&txn_dir), e))?;
    // Every journal is parsed before any is applied: one unreadable journal stops recovery
    // before it changes anything.
    let mut parsed = Vec::new();
    for object in journals {
        let Some(rel) = location.relative(&object.location) else {
            continue;
        };
        if journal_txn(&rel).is_none() {
            continue;
        }
        let got = store
            .get(&object.location)
            .await
            .map_err(|e| Error::from_store(location.describe(&object.location), e))?;
        let bytes = got
            .bytes()
            .await
            .map_err(|e| Error::from_store(location.describe(&object.location), e))?;
        parsed.push(parse_journal(location, &object.location, &bytes)?);
    }
    let mut finished = BTreeSet::new();
    for journal in parsed {
        tracing::info!(txn = %journal.txn, "rolling an unfinished transaction forward");
        apply_journal(location, &journal).await?;
        finished.insert(journal.txn.clone());
        report.rolled_forward.push(journal.txn);
    }
    // Staging without a journal rolls back: the listing above proved the journal absent.
    let staging_dir = location.child(&format!("{FSK_DIR}/staging"));
    let staged: Vec<_> = store
        .list(Some(&staging_dir))
        .try_collect()
        .await
        .map_err(|e| Error::from_store(location.describe(&staging_dir), e))?;
    let mut orphans = BTreeSet::new();
    for object in staged {
        if let Some(rel) = location.relative(&object.location)
            && let Some(txn) = rel
                .strip_prefix(&format!("{FSK_DIR}/staging/"))
                .and_then(|r| r.split('/').next())
            && !finished.contains(txn)
        {
            orphans.insert(txn.to_string());
        }
    }
    // Locally, an interrupted upload leaves a temporary file (`<name>#<n>`) that listing does
    // not show: look at the folders themselves.
    if let Some(root) = location.local_root() {
        if let Ok(entries) = std::fs::read_dir(root.join(FSK_DIR).join("staging")) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !finished.contains(&name) {
                    orphans.insert(name);
                }
            }
        }
        // A journal upload interrupted before its rename is no journal: the transaction did
        // not commit (its staging rolls back above).
        if let Ok(entries) = std::fs::read_dir(root.join(FSK_DIR).join("txn")) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.contains('#') {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(root.join(FSK_DIR)) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("lease.json#") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
    for txn in orphans {
        tracing::info!(%txn, "rolling back an unfinished transaction");
        delete_prefix(
            location,
            &location.child(&format!("{FSK_DIR}/staging/{txn}")),
        )
        .await?;
        report.rolled_back.push(txn);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::lease::lease_path;

    async fn put(loc: &Location, relative: &str, body: &'static [u8]) {
        loc.store()
            .put(&loc.child(relative), PutPayload::from_static(body))
            .await
            .unwrap();
    }

    async fn names(loc: &Location) -> Vec<String> {
        let mut all: Vec<String> = loc
            .store()
            .list(Some(loc.root()))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .iter()
            .filter_map(|m| loc.relative(&m.location))
            .collect();
        all.sort();
        all
    }

    fn checksum_of(bytes: &[u8]) -> String {
        let mut c = Checksum::default();
        c.update(bytes);
        c.render()
    }

    /// Writes the journal of transaction `t1`: publish `a.parquet` (content `new`), remove
    /// `remove`.
    async fn put_journal(loc: &Location, remove: &[&str]) {
        let journal = Journal {
            format_version: FORMAT_VERSION,
            txn: "t1".into(),
            operation: "write".into(),
            publish: vec![PublishEntry {
                staged: "_fsk/staging/t1/a.parquet.staged".into(),
                target: "a.parquet".into(),
                size_bytes: 3,
                row_count: 1,
                checksum: Some(checksum_of(b"new")),
            }],
            remove: remove.iter().map(|r| r.to_string()).collect(),
        };
        loc.store()
            .put(
                &journal_path(loc, "t1"),
                PutPayload::from(serde_json::to_vec(&journal).unwrap()),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn second_writer_gets_a_conflict() {
        for url in ["memory://commit-conflict/ds", "LOCAL"] {
            let dir = tempfile::tempdir().unwrap();
            let loc = if url == "LOCAL" {
                Location::parse(&dir.path().join("ds").display().to_string()).unwrap()
            } else {
                Location::parse(url).unwrap()
            };
            let first = Transaction::begin(&loc, "write", None).await.unwrap();
            let err = Transaction::begin(&loc, "merge", None).await.unwrap_err();
            assert!(matches!(err, Error::Conflict { .. }), "{url}: {err}");
            assert!(err.to_string().contains("write"), "names the holder: {err}");
            first.abort().await;
            let again = Transaction::begin(&loc, "merge", None).await.unwrap();
            again.abort().await;
        }
    }

    #[tokio::test]
    async fn a_dropped_local_transaction_releases_its_os_lock() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::parse(&dir.path().join("ds").display().to_string()).unwrap();
        let first = Transaction::begin(&loc, "write", None).await.unwrap();
        drop(first);
        let second = Transaction::begin(&loc, "merge", None).await.unwrap();
        second.abort().await;
        assert!(!dir.path().join("ds/_fsk").exists(), "nothing left behind");
    }

    #[tokio::test]
    async fn a_lost_lease_never_commits_nor_deletes_the_new_holders_lease() {
        let loc = Location::parse("memory://commit-lost/ds").unwrap();
        let mut tx = Transaction::begin(&loc, "compact", None).await.unwrap();
        // Another writer took the lease over (renewals failed past its lifetime).
        let other = LeaseInfo::new("merge", "other-txn");
        let path = lease_path(&loc);
        loc.store()
            .put(&path, PutPayload::from(serde_json::to_vec(&other).unwrap()))
            .await
            .unwrap();
        tx.remove("part-1.parquet");
        let err = tx.commit().await.unwrap_err();
        assert!(
            matches!(err, Error::Conflict { .. }) && err.to_string().contains("lost"),
            "{err}"
        );
        assert!(names(&loc).await.iter().all(|n| !n.starts_with("_fsk/txn")));
        let (holder, _) = lease::read_lease(&loc, &path).await.unwrap().unwrap();
        assert_eq!(
            holder.txn, "other-txn",
            "the new holder's lease is untouched"
        );
    }

    #[test]
    fn files_s3_cannot_copy_are_refused_before_the_journal() {
        let s3 = Location::parse_with_options(
            "s3://bucket/ds",
            &crate::dataset::storage::StorageOptions::new()
                .with("aws_region", "us-east-1")
                .with("aws_endpoint", "http://127.0.0.1:9"),
        )
        .unwrap();
        let entry = |size| PublishEntry {
            staged: "_fsk/staging/t/big.parquet.staged".into(),
            target: "big.parquet".into(),
            size_bytes: size,
            row_count: 1,
            checksum: None,
        };
        assert!(check_publishable(&s3, &[entry(S3_MAX_COPY_BYTES)]).is_ok());
        let err = check_publishable(&s3, &[entry(S3_MAX_COPY_BYTES + 1)]).unwrap_err();
        assert!(err.to_string().contains("big.parquet"), "{err}");
        let local = Location::parse("/tmp/ds").unwrap();
        assert!(check_publishable(&local, &[entry(S3_MAX_COPY_BYTES + 1)]).is_ok());
    }

    #[tokio::test]
    async fn waiting_writer_gets_the_lease_when_released() {
        let loc = Location::parse("memory://commit-wait/ds").unwrap();
        let first = Transaction::begin(&loc, "write", None).await.unwrap();
        let loc2 = loc.clone();
        let waiter = tokio::spawn(async move {
            Transaction::begin(&loc2, "merge", Some(Duration::from_secs(5))).await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        first.abort().await;
        let second = waiter.await.unwrap().unwrap();
        second.abort().await;
    }

    fn foreign_lease(ttl_ms: u64) -> LeaseInfo {
        LeaseInfo {
            format_version: FORMAT_VERSION,
            owner: "elsewhere:1".into(),
            operation: "merge".into(),
            txn: "foreign".into(),
            ttl_ms,
            // A clock far ahead of ours: nothing may depend on it.
            acquired_at_ms: now_ms() + 10 * 86_400_000,
            renewals: 0,
        }
    }

    async fn put_lease(loc: &Location, body: Vec<u8>) {
        loc.store()
            .put(&lease_path(loc), PutPayload::from(body))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn every_renewal_changes_the_lease_body() {
        // On S3 without versioning the ETag is a hash of the body: a renewal that rewrote
        // the same bytes would look like silence to an observer.
        let loc = Location::parse("memory://commit-renewal-body/ds").unwrap();
        let tx = Transaction::begin(&loc, "write", None).await.unwrap();
        let path = lease_path(&loc);
        let body = |loc: Location| async move {
            loc.store()
                .get(&lease_path(&loc))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        };
        let before = body(loc.clone()).await;
        tx.lease.as_ref().unwrap().ensure_held(&loc).await.unwrap();
        let after = body(loc.clone()).await;
        assert_ne!(before, after);
        let (holder, _) = lease::read_lease(&loc, &path).await.unwrap().unwrap();
        assert_eq!(holder.renewals, 1);
        tx.abort().await;
    }

    #[tokio::test]
    async fn a_silent_lease_is_taken_over_after_its_lifetime_by_our_clock() {
        let loc = Location::parse("memory://commit-stale/ds").unwrap();
        put_lease(&loc, serde_json::to_vec(&foreign_lease(300)).unwrap()).await;
        // Without waiting, nobody can judge the lease yet.
        let err = Transaction::begin(&loc, "write", None).await.unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
        let started = std::time::Instant::now();
        let tx = Transaction::begin(&loc, "write", Some(Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300));
        let (holder, _) = lease::read_lease(&loc, &lease_path(&loc))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(holder.txn, tx.id());
        tx.abort().await;
    }

    #[tokio::test]
    async fn a_renewed_lease_is_never_taken_over() {
        let loc = Location::parse("memory://commit-renewed/ds").unwrap();
        put_lease(&loc, serde_json::to_vec(&foreign_lease(300)).unwrap()).await;
        let renewing = loc.clone();
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                put_lease(&renewing, serde_json::to_vec(&foreign_lease(300)).unwrap()).await;
            }
        });
        let err = Transaction::begin(&loc, "write", Some(Duration::from_millis(1500)))
            .await
            .unwrap_err();
        renewer.abort();
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
        let (holder, _) = lease::read_lease(&loc, &lease_path(&loc))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(holder.txn, "foreign");
    }

    #[tokio::test]
    async fn unreadable_and_newer_leases_are_typed_not_retried_forever() {
        let loc = Location::parse("memory://commit-bad-lease/ds").unwrap();
        put_lease(&loc, b"{not json".to_vec()).await;
        let err = Transaction::begin(&loc, "write", Some(Duration::from_secs(30)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::CorruptFile { .. }), "{err}");
        assert!(err.to_string().contains("--break-lease"), "{err}");
        // An operator who knows the holder is dead breaks it.
        let tx = Transaction::begin_with(
            &loc,
            "recover",
            LeaseRequest {
                wait: None,
                break_lease: true,
            },
        )
        .await
        .unwrap();
        tx.abort().await;

        let mut newer = foreign_lease(60_000);
        newer.format_version = FORMAT_VERSION + 1;
        put_lease(&loc, serde_json::to_vec(&newer).unwrap()).await;
        let err = Transaction::begin(&loc, "write", None).await.unwrap_err();
        assert!(matches!(err, Error::UnsupportedFormat { .. }), "{err}");
    }

    #[tokio::test]
    async fn crash_between_copy_and_delete_publishes_once() {
        let loc = Location::parse("memory://commit-half-rename/ds").unwrap();
        // The copy of the rename happened, the delete of the staged file did not.
        put(&loc, "_fsk/staging/t1/a.parquet.staged", b"new").await;
        put(&loc, "a.parquet", b"new").await;
        put_journal(&loc, &[]).await;
        recover(&loc, None).await.unwrap();
        assert_eq!(names(&loc).await, vec!["a.parquet".to_string()]);
    }

    #[tokio::test]
    async fn a_journal_without_checksums_compares_with_the_staged_file() {
        let loc = Location::parse("memory://commit-v0/ds").unwrap();
        put(&loc, "_fsk/staging/t1/a.parquet.staged", b"new").await;
        put(&loc, "a.parquet", b"new").await;
        let journal = br#"{"txn": "t1", "operation": "write", "remove": [],
            "publish": [{"staged": "_fsk/staging/t1/a.parquet.staged", "target": "a.parquet",
                         "size_bytes": 3, "row_count": 1}]}"#;
        put(&loc, "_fsk/txn/t1.json", journal).await;
        recover(&loc, None).await.unwrap();
        assert_eq!(
            names(&loc).await,
            vec!["a.parquet".to_string()],
            "published once"
        );
    }

    #[tokio::test]
    async fn a_file_the_journal_removes_is_never_taken_for_our_copy() {
        let loc = Location::parse("memory://commit-removed-twin/ds").unwrap();
        // An overwrite whose new file has the old file's name and bytes.
        put(&loc, "_fsk/staging/t1/a.parquet.staged", b"new").await;
        put(&loc, "a.parquet", b"new").await;
        put_journal(&loc, &["a.parquet"]).await;
        recover(&loc, None).await.unwrap();
        let all = names(&loc).await;
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(
            all[0].starts_with("a-"),
            "published under a derived name: {all:?}"
        );
    }

    #[tokio::test]
    async fn a_same_size_file_at_the_target_is_a_collision_not_our_copy() {
        let loc = Location::parse("memory://commit-collision/ds").unwrap();
        put(&loc, "_fsk/staging/t1/a.parquet.staged", b"new").await;
        put(&loc, "a.parquet", b"old").await;
        put_journal(&loc, &[]).await;
        recover(&loc, None).await.unwrap();
        let all = names(&loc).await;
        assert_eq!(all.len(), 2, "{all:?}");
        let got = loc.store().get(&loc.child("a.parquet")).await.unwrap();
        assert_eq!(&got.bytes().await.unwrap()[..], b"old", "never overwritten");
        let moved = all.iter().find(|n| *n != "a.parquet").unwrap();
        assert!(
            moved.starts_with("a-") && moved.ends_with(".parquet"),
            "{moved}"
        );
    }

    #[tokio::test]
    async fn a_file_published_under_a_collision_name_is_found_again() {
        let loc = Location::parse("memory://commit-collision-found/ds").unwrap();
        // Published under the first derived name (the planned one was taken), then a crash
        // before the journal was dropped; the staged file is gone.
        let derived = journal::tests_support::candidate(&"t1", 0, "a.parquet", 1);
        put(&loc, "a.parquet", b"xyz").await;
        put(&loc, &derived, b"new").await;
        put(&loc, "old.parquet", b"old").await;
        put_journal(&loc, &["old.parquet"]).await;
        let report = recover(&loc, None).await.unwrap();
        assert_eq!(report.rolled_forward, vec!["t1".to_string()]);
        assert_eq!(names(&loc).await, vec![derived, "a.parquet".to_string()]);
    }

    #[tokio::test]
    async fn a_missing_staged_file_is_no_proof_and_nothing_is_deleted() {
        let loc = Location::parse("memory://commit-missing-staged/ds").unwrap();
        put(&loc, "old.parquet", b"old").await;
        put(&loc, "_fsk/staging/t1/other.parquet.staged", b"zz").await;
        // The journal says publish a.parquet and remove old.parquet, but the staged file
        // vanished and nothing at the target is it.
        put_journal(&loc, &["old.parquet"]).await;
        let before = names(&loc).await;
        let err = recover(&loc, None).await.unwrap_err();
        assert!(matches!(err, Error::RecoveryFailed { .. }), "{err}");
        assert!(
            err.to_string().contains("t1") && err.to_string().contains("a.parquet"),
            "{err}"
        );
        assert_eq!(
            names(&loc).await,
            before,
            "no removal, journal and staging kept"
        );
        // Same when a file of the right size but other content sits at the target.
        put(&loc, "a.parquet", b"abc").await;
        let err = recover(&loc, None).await.unwrap_err();
        assert!(matches!(err, Error::RecoveryFailed { .. }), "{err}");
        assert!(names(&loc).await.contains(&"old.parquet".to_string()));
    }

    #[tokio::test]
    async fn journal_rolls_forward_and_orphan_staging_rolls_back() {
        let loc = Location::parse("memory://commit-recover/ds").unwrap();
        put(&loc, "_fsk/staging/t1/a.parquet.staged", b"new").await;
        put(&loc, "old.parquet", b"old").await;
        put_journal(&loc, &["old.parquet"]).await;
        put(&loc, "_fsk/staging/t2/b.parquet.staged", b"x").await;
        let report = recover(&loc, None).await.unwrap();
        assert_eq!(report.rolled_forward, vec!["t1".to_string()]);
        assert_eq!(report.rolled_back, vec!["t2".to_string()]);
        assert_eq!(names(&loc).await, vec!["a.parquet".to_string()]);
        assert_eq!(
            recover(&loc, None).await.unwrap(),
            RecoveryReport::default()
        );
    }

    #[tokio::test]
    async fn unreadable_and_newer_journals_stop_recovery_before_any_change() {
        let loc = Location::parse("memory://commit-bad-journal/ds").unwrap();
        put(&loc, "old.parquet", b"old").await;
        put(&loc, "_fsk/txn/t9.json", b"{\"txn\": ").await;
        let err = recover(&loc, None).await.unwrap_err();
        assert!(matches!(err, Error::CorruptFile { .. }), "{err}");
        assert!(err.to_string().contains("_fsk/txn/t9.json"), "{err}");
        put(
            &loc,
            "_fsk/txn/t9.json",
            b"{\"format_version\": 99, \"txn\": \"t9\", \"operation\": \"w\", \"publish\": [], \"remove\": [\"old.parquet\"]}",
        )
        .await;
        let err = recover(&loc, None).await.unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedFormat { found: 99, .. }),
            "{err}"
        );
        assert!(names(&loc).await.contains(&"old.parquet".to_string()));
    }

    #[tokio::test]
    async fn a_local_commit_flushes_staged_files_journal_and_folders_before_success() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ds");
        let loc = Location::parse(&root.display().to_string()).unwrap();
        let mut tx = Transaction::begin(&loc, "write", None).await.unwrap();
        let staging = tx.staging();
        let staged = staging.staging_relative("day=1/a.parquet");
        put(&loc, &staged, b"new").await;
        tx.add(PublishEntry {
            staged: staged.clone(),
            target: "day=1/a.parquet".into(),
            size_bytes: 3,
            row_count: 1,
            checksum: Some(checksum_of(b"new")),
        });
        let txn = tx.id().to_string();
        durable::SYNCED.lock().unwrap().clear();
        let outcome = tx.commit().await.unwrap();
        assert!(outcome.cleanup_pending.is_none());
        let synced = std::mem::take(&mut *durable::SYNCED.lock().unwrap());
        let position = |path: std::path::PathBuf| {
            synced
                .iter()
                .position(|p| *p == path)
                .unwrap_or_else(|| panic!("{} not flushed: {synced:?}", path.display()))
        };
        let staged_file = position(root.join(&staged));
        let journal = position(root.join(journal_relative(&txn)));
        let txn_dir = synced
            .iter()
            .rposition(|p| *p == root.join("_fsk/txn"))
            .expect("journal folder flushed");
        let target_dir = position(root.join("day=1"));
        assert!(
            staged_file < journal,
            "staged data is durable before the commit point"
        );
        assert!(
            journal < target_dir && txn_dir < target_dir,
            "the journal before publishing"
        );
        position(root.clone());
    }

    #[tokio::test]
    async fn recover_on_a_missing_path_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let local = Location::parse(&dir.path().join("nope").display().to_string()).unwrap();
        assert!(matches!(
            recover(&local, None).await,
            Err(Error::NotFound { .. })
        ));
        assert!(!dir.path().join("nope").exists(), "nothing created");
        let memory = Location::parse("memory://commit-missing/nope").unwrap();
        assert!(matches!(
            recover(&memory, None).await,
            Err(Error::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn local_recovery_removes_interrupted_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ds");
        for rel in [
            "_fsk/txn/1-abc.json#3",
            "_fsk/staging/1-abc/a.parquet.staged#1",
            "_fsk/lease.json#2",
        ] {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"partial").unwrap();
        }
        std::fs::write(root.join("keep.parquet"), b"data").unwrap();
        let loc = Location::parse(&root.display().to_string()).unwrap();
        let report = recover(&loc, None).await.unwrap();
        assert_eq!(report.rolled_back, vec!["1-abc".to_string()]);
        assert!(!root.join("_fsk").exists(), "_fsk is empty and gone");
        assert!(root.join("keep.parquet").exists());
    }
}
