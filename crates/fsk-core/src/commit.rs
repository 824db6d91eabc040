//! The commit protocol every mutating operation publishes through.
//!
//! 1. Take the dataset lease (`_fsk/lease.json`, created with create-if-absent).
//! 2. Recover any unfinished transaction left by a crashed writer.
//! 3. Stage every new file under `_fsk/staging/<txn>/`.
//! 4. Write the journal `_fsk/txn/<txn>.json` (files to publish and files to remove). This is
//!    the commit point: before it the transaction rolls back, after it forward.
//! 5. Publish staged files into place with create-if-absent renames (a collision picks a new
//!    name: nothing is ever overwritten), then delete the removed files, then the journal, then
//!    release the lease.
//!
//! Readers other than fsk may see old and new files together only during step 5; it publishes
//! everything first and then deletes, to keep that window short.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::Location;

/// The hidden folder fsk keeps its state in.
pub const FSK_DIR: &str = "_fsk";
/// How long a lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

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

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".to_string())
}

/// Test-only fault injection. With the `failpoints` feature, [`failpoints::failpoint`] fails
/// when the named point is armed for the dataset at hand; without it, it compiles to nothing.
pub mod failpoints {
    #[cfg(feature = "failpoints")]
    use std::sync::Mutex;

    #[cfg(feature = "failpoints")]
    static ARMED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

    /// Every failpoint, in protocol order.
    pub const ALL: [&str; 6] = [
        "write.close_file",
        "commit.before_journal",
        "commit.after_journal",
        "commit.during_publish",
        "commit.after_publish",
        "commit.during_remove",
    ];

    /// Arms failpoint `name` for the dataset displayed as `dataset` (only with the
    /// `failpoints` feature). Scoping by dataset keeps parallel tests apart.
    #[cfg(feature = "failpoints")]
    pub fn arm(name: &str, dataset: &str) {
        ARMED
            .lock()
            .expect("failpoints")
            .push((name.to_string(), dataset.to_string()));
    }

    /// Disarms every failpoint of `dataset`.
    #[cfg(feature = "failpoints")]
    pub fn clear(dataset: &str) {
        ARMED
            .lock()
            .expect("failpoints")
            .retain(|(_, d)| d != dataset);
    }

    /// Fails with [`crate::Error::Internal`] when `name` is armed for `dataset`.
    #[inline]
    pub fn failpoint(name: &str, dataset: &crate::storage::Location) -> crate::Result<()> {
        #[cfg(feature = "failpoints")]
        {
            let display = dataset.to_string();
            if ARMED
                .lock()
                .expect("failpoints")
                .iter()
                .any(|(n, d)| n == name && *d == display)
            {
                return Err(crate::Error::Internal(format!(
                    "failpoint {name} triggered"
                )));
            }
        }
        let _ = (name, dataset);
        Ok(())
    }
}

/// The content of the lease object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// `host:pid`.
    pub owner: String,
    /// Host name of the holder.
    pub host: String,
    /// Process id of the holder.
    pub pid: u32,
    /// The operation holding it.
    pub operation: String,
    /// The transaction id.
    pub txn: String,
    /// Milliseconds since the epoch when it expires unless renewed.
    pub expires_at_ms: u64,
}

impl LeaseInfo {
    fn describe(&self) -> String {
        format!(
            "lock held by {} for {} (transaction {}, expires in {} s)",
            self.owner,
            self.operation,
            self.txn,
            self.expires_at_ms.saturating_sub(now_ms()) / 1000
        )
    }

    /// Whether the lease can be broken: expired, held by a dead process on this host, or
    /// left behind by this process (a release that failed) for a transaction no longer open.
    fn is_stale(&self) -> bool {
        if self.expires_at_ms < now_ms() {
            return true;
        }
        if self.host != host_name() {
            return false;
        }
        if self.pid == std::process::id() {
            return !active_transactions()
                .lock()
                .is_ok_and(|a| a.contains(&self.txn));
        }
        !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// Transactions of this process that hold a lease.
fn active_transactions() -> &'static std::sync::Mutex<std::collections::HashSet<String>> {
    static ACTIVE: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> =
        std::sync::OnceLock::new();
    ACTIVE.get_or_init(Default::default)
}

/// One file to publish.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishEntry {
    /// Path of the staged file, relative to the dataset root.
    pub staged: String,
    /// Where it goes, relative to the dataset root.
    pub target: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Rows in the file.
    pub row_count: u64,
}

/// The journal of one transaction.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct Journal {
    /// The transaction id.
    pub txn: String,
    /// The operation.
    pub operation: String,
    /// Files to publish.
    pub publish: Vec<PublishEntry>,
    /// Data files to remove, relative to the dataset root.
    pub remove: Vec<String>,
}

/// A file published by a commit: its final relative path (which differs from the planned one
/// only after a name collision), size and rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedFile {
    /// Path relative to the dataset root.
    pub path: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Rows.
    pub row_count: u64,
}

/// What recovery did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Transactions whose journal was complete and were published.
    pub rolled_forward: Vec<String>,
    /// Transactions without a journal whose staging was deleted.
    pub rolled_back: Vec<String>,
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
    /// `target`.
    pub fn staging_relative(&self, target: &str) -> String {
        format!("{FSK_DIR}/staging/{}/{target}", self.txn)
    }
}

/// A held lease. Renewed in the background until released or dropped.
struct Lease {
    path: Path,
    renewer: tokio::task::JoinHandle<()>,
    /// Set by the renewer when the lease object no longer names this transaction (another
    /// writer broke it after renewals failed for longer than its lifetime).
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
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
    if location.kind() != crate::storage::StoreKind::S3 {
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

fn lease_path(location: &Location) -> Path {
    location.child(&format!("{FSK_DIR}/lease.json"))
}

async fn read_lease(location: &Location, path: &Path) -> Result<Option<LeaseInfo>> {
    match location.store().get(path).await {
        Ok(got) => {
            let bytes = got
                .bytes()
                .await
                .map_err(|e| Error::from_store(location.describe(path), e))?;
            Ok(serde_json::from_slice(&bytes).ok())
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::from_store(location.describe(path), e)),
    }
}

async fn acquire_lease(
    location: &Location,
    operation: &str,
    txn: &str,
    wait: Option<Duration>,
) -> Result<Lease> {
    let path = lease_path(location);
    let deadline = wait.map(|w| tokio::time::Instant::now() + w);
    let host = host_name();
    let pid = std::process::id();
    loop {
        let info = LeaseInfo {
            owner: format!("{host}:{pid}"),
            host: host.clone(),
            pid,
            operation: operation.to_string(),
            txn: txn.to_string(),
            expires_at_ms: now_ms() + LEASE_TTL.as_millis() as u64,
        };
        let payload = PutPayload::from(Bytes::from(
            serde_json::to_vec(&info).map_err(|e| Error::Internal(e.to_string()))?,
        ));
        let put = location
            .store()
            .put_opts(&path, payload, PutOptions::from(PutMode::Create))
            .await;
        match put {
            Ok(_) => {
                if let Ok(mut active) = active_transactions().lock() {
                    active.insert(txn.to_string());
                }
                let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let renewer = spawn_renewer(
                    location.clone(),
                    path.clone(),
                    info,
                    std::sync::Arc::clone(&lost),
                );
                return Ok(Lease {
                    path,
                    renewer,
                    lost,
                });
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                let holder = read_lease(location, &path).await?;
                match holder {
                    Some(holder) if holder.is_stale() => {
                        tracing::warn!(holder = %holder.owner, "breaking a stale lease");
                        let _ = location.store().delete(&path).await;
                        continue;
                    }
                    // Unreadable (half-written by a crash) or vanished: retry shortly.
                    None => {}
                    Some(holder) => {
                        let now = tokio::time::Instant::now();
                        if deadline.is_none_or(|d| now >= d) {
                            return Err(Error::Conflict {
                                path: location.to_string(),
                                holder: holder.describe(),
                            });
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some(d) = deadline
                    && tokio::time::Instant::now() >= d
                {
                    let holder = read_lease(location, &path).await?;
                    return Err(Error::Conflict {
                        path: location.to_string(),
                        holder: holder
                            .map(|h| h.describe())
                            .unwrap_or_else(|| "unreadable lease".to_string()),
                    });
                }
            }
            Err(object_store::Error::NotImplemented { .. }) => {
                return Err(Error::NotSupported {
                    engine: "storage".to_string(),
                    operation: format!("conditional put (create-if-absent) on {}", location),
                });
            }
            Err(e) => return Err(Error::from_store(location.describe(&path), e)),
        }
    }
}

/// Renews the lease every third of its lifetime, only while the lease object still names
/// this transaction: the renewal is a conditional put on the version just read (where the
/// store supports it), so a lease another writer took over is never overwritten. A lost
/// lease sets `lost` and stops the renewer; the commit then refuses to write its journal.
fn spawn_renewer(
    location: Location,
    path: Path,
    mut info: LeaseInfo,
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(LEASE_TTL / 3).await;
            let current = match location.store().get(&path).await {
                Ok(got) => {
                    let version = object_store::UpdateVersion {
                        e_tag: got.meta.e_tag.clone(),
                        version: got.meta.version.clone(),
                    };
                    got.bytes()
                        .await
                        .ok()
                        .and_then(|b| serde_json::from_slice::<LeaseInfo>(&b).ok())
                        .map(|holder| (holder, version))
                }
                Err(object_store::Error::NotFound { .. }) => None,
                Err(_) => {
                    tracing::warn!("could not read the dataset lease to renew it");
                    continue;
                }
            };
            let Some((_, version)) = current.filter(|(holder, _)| holder.txn == info.txn) else {
                tracing::warn!("the dataset lease was taken over; this operation will not commit");
                lost.store(true, std::sync::atomic::Ordering::SeqCst);
                return;
            };
            info.expires_at_ms = now_ms() + LEASE_TTL.as_millis() as u64;
            let Ok(body) = serde_json::to_vec(&info) else {
                return;
            };
            let payload = PutPayload::from(Bytes::from(body));
            let conditional = version.e_tag.is_some() || version.version.is_some();
            let result = if conditional {
                match location
                    .store()
                    .put_opts(
                        &path,
                        payload.clone(),
                        PutOptions::from(PutMode::Update(version)),
                    )
                    .await
                {
                    Err(object_store::Error::NotImplemented { .. }) => {
                        location.store().put(&path, payload).await.map(|_| ())
                    }
                    other => other.map(|_| ()),
                }
            } else {
                location.store().put(&path, payload).await.map(|_| ())
            };
            match result {
                Ok(()) => {}
                Err(object_store::Error::Precondition { .. }) => {
                    tracing::warn!(
                        "the dataset lease changed while renewing; this operation will not commit"
                    );
                    lost.store(true, std::sync::atomic::Ordering::SeqCst);
                    return;
                }
                Err(_) => tracing::warn!("could not renew the dataset lease"),
            }
        }
    })
}

impl Transaction {
    /// Takes the lease (waiting up to `wait` for another writer), recovers unfinished
    /// transactions, and opens a new one.
    pub async fn begin(
        location: &Location,
        operation: &str,
        wait: Option<Duration>,
    ) -> Result<Self> {
        let txn = format!("{}-{}", now_ms(), random_token());
        let root_existed = location.local_root().is_none_or(|root| root.exists());
        let lease = acquire_lease(location, operation, &txn, wait).await?;
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
    /// Returns the published files in the order they were added.
    pub async fn commit(mut self) -> Result<Vec<PublishedFile>> {
        let result = self.commit_inner().await;
        if result.is_err() {
            // Leave the journal (if written) for recovery; a transaction that failed before
            // its journal rolls back now.
            if self.journal_exists().await != Some(true) {
                let _ = delete_prefix(&self.location, &self.staging_prefix()).await;
            }
        }
        self.release().await;
        result
    }

    async fn commit_inner(&mut self) -> Result<Vec<PublishedFile>> {
        failpoints::failpoint("commit.before_journal", &self.location)?;
        check_publishable(&self.location, &self.publish)?;
        self.ensure_lease().await?;
        let journal = Journal {
            txn: self.txn.clone(),
            operation: self.operation.clone(),
            publish: self.publish.clone(),
            remove: self.remove.clone(),
        };
        let path = journal_path(&self.location, &self.txn);
        let body =
            serde_json::to_vec_pretty(&journal).map_err(|e| Error::Internal(e.to_string()))?;
        self.location
            .store()
            .put_opts(
                &path,
                PutPayload::from(Bytes::from(body)),
                PutOptions::from(PutMode::Create),
            )
            .await
            .map_err(|e| Error::from_store(self.location.describe(&path), e))?;
        failpoints::failpoint("commit.after_journal", &self.location)?;
        apply_journal(&self.location, &journal).await
    }

    /// Fails with [`Error::Conflict`] unless the lease still names this transaction: a
    /// journal is written only under a lease this writer holds.
    async fn ensure_lease(&self) -> Result<()> {
        let Some(lease) = &self.lease else {
            return Err(Error::Internal("commit without a lease".into()));
        };
        let holder = read_lease(&self.location, &lease.path).await?;
        let lost = lease.lost.load(std::sync::atomic::Ordering::SeqCst);
        match holder {
            Some(h) if h.txn == self.txn && !lost => Ok(()),
            other => Err(Error::Conflict {
                path: self.location.to_string(),
                holder: format!(
                    "the lease was lost (now {})",
                    other
                        .map(|h| h.describe())
                        .unwrap_or_else(|| "held by nobody".to_string())
                ),
            }),
        }
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
            lease.renewer.abort();
            // Delete the lease only while it is still ours: never another writer's.
            let ours = matches!(
                read_lease(&self.location, &lease.path).await,
                Ok(Some(h)) if h.txn == self.txn
            );
            if ours {
                let _ = self.location.store().delete(&lease.path).await;
            }
            if let Ok(mut active) = active_transactions().lock() {
                active.remove(&self.txn);
            }
            // Local folders outlive their files: remove fsk's own folders once empty, and the
            // dataset folder if the operation left nothing in it (a no-op merge into a missing
            // dataset creates nothing). `remove_dir` never removes a folder with content.
            if let Some(root) = self.location.local_root() {
                let fsk = root.join(FSK_DIR);
                for dir in [fsk.join("staging"), fsk.join("txn"), fsk] {
                    let _ = std::fs::remove_dir(dir);
                }
                if !self.root_existed {
                    let _ = std::fs::remove_dir(root);
                }
            }
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(lease) = &self.lease {
            // Dropped without commit or abort (a panic or a cancelled future): stop renewing;
            // the lease is stale from now on, and recovery rolls the staging back.
            lease.renewer.abort();
            if let Ok(mut active) = active_transactions().lock() {
                active.remove(&self.txn);
            }
        }
    }
}

fn journal_path(location: &Location, txn: &str) -> Path {
    location.child(&format!("{FSK_DIR}/txn/{txn}.json"))
}

async fn delete_prefix(location: &Location, prefix: &Path) -> Result<()> {
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

/// Publishes a journal's files (create-if-absent; a collision picks a new name), deletes its
/// removals, its staging and the journal. Idempotent: run again after a crash it completes.
async fn apply_journal(location: &Location, journal: &Journal) -> Result<Vec<PublishedFile>> {
    let store = location.store();
    let mut published = Vec::with_capacity(journal.publish.len());
    for entry in &journal.publish {
        let staged = location.child(&entry.staged);
        let mut target_rel = entry.target.clone();
        let mut attempts = 0;
        loop {
            let target = location.child(&target_rel);
            match store.rename_if_not_exists(&staged, &target).await {
                Ok(()) => break,
                Err(object_store::Error::AlreadyExists { .. }) => {
                    // A rename is a copy then a delete: a crash between the two leaves the
                    // staged file and its published copy. The same size at a fresh random name
                    // is that copy, not a collision: finish the rename by dropping the staged
                    // file (publishing it again would duplicate its rows).
                    let existing = store.head(&target).await.ok();
                    if existing.is_some_and(|meta| meta.size == entry.size_bytes) {
                        match store.delete(&staged).await {
                            Ok(()) | Err(object_store::Error::NotFound { .. }) => break,
                            Err(e) => return Err(Error::from_store(location.describe(&staged), e)),
                        }
                    }
                    attempts += 1;
                    if attempts > 16 {
                        return Err(Error::Internal(format!(
                            "could not find a free name for {}",
                            entry.target
                        )));
                    }
                    target_rel = rename_with_new_token(&entry.target);
                    tracing::warn!(planned = %entry.target, now = %target_rel, "name collision, picked a new name");
                }
                Err(object_store::Error::NotFound { .. }) => {
                    // Already published by an earlier attempt of this journal.
                    break;
                }
                Err(e) => return Err(Error::from_store(location.describe(&staged), e)),
            }
        }
        failpoints::failpoint("commit.during_publish", location)?;
        published.push(PublishedFile {
            path: target_rel,
            size_bytes: entry.size_bytes,
            row_count: entry.row_count,
        });
    }
    failpoints::failpoint("commit.after_publish", location)?;
    for relative in &journal.remove {
        match store.delete(&location.child(relative)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::from_store(format!("{location}/{relative}"), e)),
        }
        failpoints::failpoint("commit.during_remove", location)?;
    }
    delete_prefix(
        location,
        &location.child(&format!("{FSK_DIR}/staging/{}", journal.txn)),
    )
    .await?;
    let path = journal_path(location, &journal.txn);
    match store.delete(&path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(Error::from_store(location.describe(&path), e)),
    }
    Ok(published)
}

/// Replaces the 8-hex token of a file name (the last `-xxxxxxxx` or `_xxxxxxxx` before
/// `.parquet`, or inserts one) with a fresh one.
fn rename_with_new_token(relative: &str) -> String {
    let (dir, name) = match relative.rsplit_once('/') {
        Some((d, n)) => (Some(d), n),
        None => (None, relative),
    };
    let stem = name.strip_suffix(".parquet").unwrap_or(name);
    let new_name = format!("{stem}-{}.parquet", random_token());
    match dir {
        Some(d) => format!("{d}/{new_name}"),
        None => new_name,
    }
}

/// Rolls unfinished transactions forward (complete journal) or back (staging without a
/// journal). Takes the lease for the duration; fails with [`Error::Conflict`] if another writer
/// holds it (after waiting up to `wait`).
pub async fn recover(location: &Location, wait: Option<Duration>) -> Result<RecoveryReport> {
    let tx = Transaction::begin(location, "recover", wait).await?;
    let report = tx.recovery.clone();
    tx.abort().await;
    Ok(report)
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
    let mut finished = BTreeSet::new();
    for object in journals {
        let got = store
            .get(&object.location)
            .await
            .map_err(|e| Error::from_store(location.describe(&object.location), e))?;
        let bytes = got
            .bytes()
            .await
            .map_err(|e| Error::from_store(location.describe(&object.location), e))?;
        let journal: Journal = match serde_json::from_slice(&bytes) {
            Ok(j) => j,
            Err(e) => {
                return Err(Error::CorruptFile {
                    path: location.describe(&object.location),
                    message: format!("unreadable fsk journal: {e}"),
                });
            }
        };
        tracing::info!(txn = %journal.txn, "rolling an unfinished transaction forward");
        apply_journal(location, &journal).await?;
        finished.insert(journal.txn.clone());
        report.rolled_forward.push(journal.txn);
    }
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
    // Locally, an interrupted upload leaves a temporary file that listing does not show
    // (object_store hides its `#` upload files): look at the folders themselves.
    if let Some(root) = location.local_root()
        && let Ok(entries) = std::fs::read_dir(root.join(FSK_DIR).join("staging"))
    {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !finished.contains(&name) {
                orphans.insert(name);
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

    #[test]
    fn new_token_keeps_folder_and_extension() {
        let renamed = rename_with_new_token("day=1/part-0000abcd.parquet");
        assert!(renamed.starts_with("day=1/part-0000abcd-"), "{renamed}");
        assert!(renamed.ends_with(".parquet"));
    }

    #[tokio::test]
    async fn second_writer_gets_a_conflict() {
        let loc = Location::parse("memory://commit-conflict/ds").unwrap();
        let first = Transaction::begin(&loc, "write", None).await.unwrap();
        let err = Transaction::begin(&loc, "merge", None).await.unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
        assert!(err.to_string().contains("conflict"));
        first.abort().await;
        let again = Transaction::begin(&loc, "merge", None).await.unwrap();
        again.abort().await;
    }

    #[tokio::test]
    async fn a_lost_lease_never_commits_nor_deletes_the_new_holders_lease() {
        let loc = Location::parse("memory://commit-lost/ds").unwrap();
        let mut tx = Transaction::begin(&loc, "compact", None).await.unwrap();
        // Another writer broke the lease (renewals failed past its lifetime) and took it.
        let other = LeaseInfo {
            owner: "elsewhere:1".into(),
            host: "elsewhere".into(),
            pid: 1,
            operation: "merge".into(),
            txn: "other-txn".into(),
            expires_at_ms: now_ms() + 60_000,
        };
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
        let journals: Vec<_> = loc
            .store()
            .list(Some(&loc.child("_fsk/txn")))
            .try_collect()
            .await
            .unwrap();
        assert!(journals.is_empty(), "no journal under a lost lease");
        let holder = read_lease(&loc, &path).await.unwrap().unwrap();
        assert_eq!(
            holder.txn, "other-txn",
            "the new holder's lease is untouched"
        );
    }

    #[test]
    fn files_s3_cannot_copy_are_refused_before_the_journal() {
        let s3 = Location::parse_with_options(
            "s3://bucket/ds",
            &crate::storage::StorageOptions::new()
                .with("aws_region", "us-east-1")
                .with("aws_endpoint", "http://127.0.0.1:9"),
        )
        .unwrap();
        let entry = |size| PublishEntry {
            staged: "_fsk/staging/t/big.parquet".into(),
            target: "big.parquet".into(),
            size_bytes: size,
            row_count: 1,
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

    #[tokio::test]
    async fn dead_local_holder_is_broken() {
        let loc = Location::parse("memory://commit-stale/ds").unwrap();
        let info = LeaseInfo {
            owner: "x".into(),
            host: host_name(),
            pid: u32::MAX - 1,
            operation: "merge".into(),
            txn: "t".into(),
            expires_at_ms: now_ms() + 600_000,
        };
        loc.store()
            .put(
                &lease_path(&loc),
                PutPayload::from(serde_json::to_vec(&info).unwrap()),
            )
            .await
            .unwrap();
        let tx = Transaction::begin(&loc, "write", None).await.unwrap();
        tx.abort().await;
    }

    /// Writes the journal of transaction `t1`: publish `a.parquet` (3 bytes), remove `remove`.
    async fn put_journal(loc: &Location, remove: &[&str]) {
        let journal = Journal {
            txn: "t1".into(),
            operation: "write".into(),
            publish: vec![PublishEntry {
                staged: "_fsk/staging/t1/a.parquet".into(),
                target: "a.parquet".into(),
                size_bytes: 3,
                row_count: 1,
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
    async fn crash_between_copy_and_delete_publishes_once() {
        let loc = Location::parse("memory://commit-half-rename/ds").unwrap();
        let store = loc.store();
        // The copy of the rename happened, the delete of the staged file did not.
        for path in ["_fsk/staging/t1/a.parquet", "a.parquet"] {
            store
                .put(&loc.child(path), PutPayload::from_static(b"new"))
                .await
                .unwrap();
        }
        put_journal(&loc, &[]).await;
        recover(&loc, None).await.unwrap();
        let all: Vec<_> = store.list(Some(loc.root())).try_collect().await.unwrap();
        let names: Vec<String> = all
            .iter()
            .filter_map(|m| loc.relative(&m.location))
            .collect();
        assert_eq!(
            names,
            vec!["a.parquet".to_string()],
            "published once, nothing left"
        );
    }

    #[tokio::test]
    async fn journal_rolls_forward_and_orphan_staging_rolls_back() {
        let loc = Location::parse("memory://commit-recover/ds").unwrap();
        let store = loc.store();
        // A committed-but-unpublished transaction.
        store
            .put(
                &loc.child("_fsk/staging/t1/a.parquet"),
                PutPayload::from_static(b"new"),
            )
            .await
            .unwrap();
        store
            .put(&loc.child("old.parquet"), PutPayload::from_static(b"old"))
            .await
            .unwrap();
        put_journal(&loc, &["old.parquet"]).await;
        // An orphan staging folder.
        store
            .put(
                &loc.child("_fsk/staging/t2/b.parquet"),
                PutPayload::from_static(b"x"),
            )
            .await
            .unwrap();
        let report = recover(&loc, None).await.unwrap();
        assert_eq!(report.rolled_forward, vec!["t1".to_string()]);
        assert_eq!(report.rolled_back, vec!["t2".to_string()]);
        assert!(store.head(&loc.child("a.parquet")).await.is_ok());
        assert!(store.head(&loc.child("old.parquet")).await.is_err());
        let leftovers: Vec<_> = store
            .list(Some(&loc.child("_fsk")))
            .try_collect()
            .await
            .unwrap();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // Idempotent.
        assert_eq!(
            recover(&loc, None).await.unwrap(),
            RecoveryReport::default()
        );
    }
}
