//! One writer at a time per dataset.
//!
//! - **Local disk**: an OS lock (`flock` through [`std::fs::File::try_lock`]) on the dataset
//!   folder itself. The kernel drops it when the holder exits or dies, so nothing guesses
//!   whether a holder is alive: no pid, no host name, no clock. `_fsk/lease.json` beside it
//!   only says who holds the lock, for conflict messages.
//! - **Object stores**: the object `_fsk/lease.json`, created with create-if-absent, renewed by
//!   its holder every third of its lifetime and taken over by another writer only with a
//!   conditional put on the exact version it observed (never delete-then-create). A lease is
//!   judged expired by the observer's own monotonic clock: the object unchanged (same ETag or
//!   version) for longer than the lifetime its holder wrote into it, since this process first
//!   saw that version. No host's wall clock is compared with another's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use super::{FORMAT_VERSION, FSK_DIR};
use crate::dataset::storage::Location;
use crate::error::{Error, Result};

/// How long a lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// How often a waiting writer looks at the lease again.
const POLL: Duration = Duration::from_millis(100);

/// Consecutive transient store errors tolerated while taking a lease, with backoff.
const MAX_STORE_RETRIES: u32 = 5;

fn default_ttl_ms() -> u64 {
    LEASE_TTL.as_millis() as u64
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

/// Whether the open `folder` is still the folder at `path` (same device and inode).
fn same_folder(folder: &std::fs::File, path: &std::path::Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (folder.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (folder, path);
        true
    }
}

/// The content of the lease object: who holds it, for what, and for how long a silence
/// means it is dead. Host, pid and time are for people reading a conflict; no decision
/// depends on them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// The metadata format version ([`FORMAT_VERSION`]; 0 for leases of fsk before it).
    #[serde(default)]
    pub format_version: u32,
    /// `host:pid` of the holder (informational).
    pub owner: String,
    /// The operation holding it.
    pub operation: String,
    /// The transaction id.
    pub txn: String,
    /// How long the lease stays valid without renewal, in milliseconds: an observer that
    /// sees the same version for longer may take it over.
    #[serde(default = "default_ttl_ms")]
    pub ttl_ms: u64,
    /// The holder's wall clock when it took the lease, in milliseconds since the epoch
    /// (informational).
    #[serde(default)]
    pub acquired_at_ms: u64,
    /// How many times the holder renewed the lease. Every renewal changes the body, so the
    /// ETag changes even on stores whose ETag is a hash of the content.
    #[serde(default)]
    pub renewals: u64,
}

impl LeaseInfo {
    pub(crate) fn new(operation: &str, txn: &str) -> Self {
        LeaseInfo {
            format_version: FORMAT_VERSION,
            owner: format!("{}:{}", host_name(), std::process::id()),
            operation: operation.to_string(),
            txn: txn.to_string(),
            ttl_ms: default_ttl_ms(),
            acquired_at_ms: now_ms(),
            renewals: 0,
        }
    }

    fn describe(&self) -> String {
        format!(
            "held by {} for {} (transaction {})",
            self.owner, self.operation, self.txn
        )
    }

    fn body(&self) -> Result<PutPayload> {
        serde_json::to_vec(self)
            .map(|b| PutPayload::from(Bytes::from(b)))
            .map_err(|e| Error::Internal(e.to_string()))
    }
}

/// How a writer takes the lease.
#[derive(Clone, Copy, Debug, Default)]
pub struct LeaseRequest {
    /// Wait this long for another writer (`None`: do not wait).
    pub wait: Option<Duration>,
    /// Take over the current lease at once (object stores; conditional on the observed
    /// version), for an operator who knows its holder is dead. Locally the OS lock is never
    /// held by a dead process, so this changes nothing there.
    pub break_lease: bool,
}

/// The lease object's path.
pub(crate) fn lease_path(location: &Location) -> Path {
    location.child(&format!("{FSK_DIR}/lease.json"))
}

/// A held lease; released by [`Lease::release`] (or, locally, by the kernel when dropped).
pub(crate) enum Lease {
    /// The OS lock on the dataset folder; dropping the file releases it.
    Local {
        folder: std::fs::File,
        info: std::path::PathBuf,
    },
    /// A lease object on a store, with its background renewer.
    Store {
        path: Path,
        txn: String,
        /// The body and version last written, shared with the renewer; held across each
        /// renewal so two renewals never race on one version.
        current: Arc<tokio::sync::Mutex<(LeaseInfo, UpdateVersion)>>,
        renewer: tokio::task::JoinHandle<()>,
        /// Set by the renewer when the lease no longer holds our version (taken over after
        /// renewals failed for longer than its lifetime).
        lost: Arc<AtomicBool>,
    },
}

impl Lease {
    /// Takes the dataset's lease for transaction `txn`.
    pub(crate) async fn acquire(
        location: &Location,
        operation: &str,
        txn: &str,
        request: LeaseRequest,
    ) -> Result<Lease> {
        let info = LeaseInfo::new(operation, txn);
        match location.local_root() {
            Some(root) => acquire_local(location, root, info, request.wait).await,
            None => acquire_store(location, info, request).await,
        }
    }

    /// Fails with [`Error::Conflict`] unless this writer still holds the lease: a journal is
    /// written only under a lease its writer holds.
    pub(crate) async fn ensure_held(&self, location: &Location) -> Result<()> {
        let Lease::Store {
            path,
            current,
            lost,
            ..
        } = self
        else {
            // The OS lock cannot be taken from a living holder.
            return Ok(());
        };
        // Renew now, conditionally on the version we wrote last: success proves the lease
        // is ours and gives a full lifetime for the journal write that follows.
        for _ in 0..2 {
            if lost.load(Ordering::SeqCst) {
                break;
            }
            if renew(location, path, current).await {
                return Ok(());
            }
            // A lease that still names this transaction is ours at a version we missed.
            let txn = current.lock().await.0.txn.clone();
            match read_lease(location, path).await {
                Ok(Some((holder, version))) if holder.txn == txn => {
                    current.lock().await.1 = version;
                }
                _ => break,
            }
        }
        lost.store(true, Ordering::SeqCst);
        let now = read_lease(location, path).await.ok().flatten();
        Err(Error::Conflict {
            path: location.to_string(),
            holder: format!(
                "the lease was lost (now {})",
                now.map(|(h, _)| h.describe())
                    .unwrap_or_else(|| "held by nobody".to_string())
            ),
        })
    }

    /// Stops renewing and gives the lease up; never deletes another writer's lease.
    ///
    /// Locally, fsk's own empty folders (and the dataset folder, with `remove_root`, when the
    /// operation created it and left it empty) are removed while the lock is still held: a
    /// writer waiting on the old folder must never lock a folder that is gone.
    pub(crate) async fn release(self, location: &Location, remove_root: bool) {
        match self {
            Lease::Local { folder, info } => {
                let _ = std::fs::remove_file(&info);
                if let Some(root) = location.local_root() {
                    // `remove_dir` never removes a folder with content.
                    let fsk = root.join(FSK_DIR);
                    for dir in [fsk.join("staging"), fsk.join("txn"), fsk] {
                        let _ = std::fs::remove_dir(dir);
                    }
                    if remove_root {
                        let _ = std::fs::remove_dir(root);
                    }
                }
                drop(folder);
            }
            Lease::Store {
                path,
                txn,
                renewer,
                lost,
                ..
            } => {
                renewer.abort();
                // A lost lease may already be another writer's: never delete it.
                let ours = !lost.load(Ordering::SeqCst)
                    && matches!(
                        read_lease(location, &path).await,
                        Ok(Some((h, _))) if h.txn == txn
                    );
                if ours {
                    for attempt in 0..3u32 {
                        match location.store().delete(&path).await {
                            Ok(()) | Err(object_store::Error::NotFound { .. }) => return,
                            Err(e) if attempt == 2 => {
                                tracing::warn!(
                                    "could not delete the dataset lease {}: {e}; the next writer \
                                     takes it over once it has seen it unchanged for {} s",
                                    location.describe(&path),
                                    LEASE_TTL.as_secs()
                                );
                            }
                            Err(_) => {
                                tokio::time::sleep(Duration::from_millis(100 << attempt)).await
                            }
                        }
                    }
                }
            }
        }
    }

    /// Stops the renewer without touching the lease (a transaction dropped mid-way: the
    /// lease expires and the next writer takes it over).
    pub(crate) fn abandon(&self) {
        if let Lease::Store { renewer, .. } = self {
            renewer.abort();
        }
    }
}

async fn acquire_local(
    location: &Location,
    root: &std::path::Path,
    info: LeaseInfo,
    wait: Option<Duration>,
) -> Result<Lease> {
    let io = |path: &std::path::Path, source: std::io::Error| Error::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(root).map_err(|e| io(root, e))?;
    let mut folder = std::fs::File::open(root).map_err(|e| io(root, e))?;
    let info_path = root.join(FSK_DIR).join("lease.json");
    let deadline = wait.map(|w| tokio::time::Instant::now() + w);
    loop {
        match folder.try_lock() {
            Ok(()) if same_folder(&folder, root) => break,
            Ok(()) => {
                // Locked a folder that was removed (and perhaps created again) meanwhile:
                // start over on the folder that is there now.
                drop(folder);
                std::fs::create_dir_all(root).map_err(|e| io(root, e))?;
                folder = std::fs::File::open(root).map_err(|e| io(root, e))?;
                continue;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                if deadline.is_none_or(|d| tokio::time::Instant::now() >= d) {
                    let holder = std::fs::read(&info_path)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<LeaseInfo>(&b).ok())
                        .map(|h| h.describe())
                        .unwrap_or_else(|| "held by another process".to_string());
                    return Err(Error::Conflict {
                        path: location.to_string(),
                        holder: format!("{holder}; an OS lock on the dataset folder"),
                    });
                }
                tokio::time::sleep(POLL).await;
            }
            Err(std::fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
                return Err(Error::NotSupported {
                    engine: "storage".to_string(),
                    operation: format!("file locks on {} (concurrent writers)", root.display()),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(root, e)),
        }
    }
    let body = serde_json::to_vec(&info).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::create_dir_all(root.join(FSK_DIR))
        .and_then(|()| std::fs::write(&info_path, body))
        .map_err(|e| io(&info_path, e))?;
    Ok(Lease::Local {
        folder,
        info: info_path,
    })
}

/// The lease object and its version, `None` when absent. An unparseable lease is
/// [`Error::CorruptFile`]; one from a newer fsk is [`Error::UnsupportedFormat`].
pub(crate) async fn read_lease(
    location: &Location,
    path: &Path,
) -> Result<Option<(LeaseInfo, UpdateVersion)>> {
    match read_lease_raw(location, path).await? {
        None => Ok(None),
        Some((Ok(info), version)) => Ok(Some((info, version))),
        Some((Err(e), _)) => Err(e),
    }
}

type RawLease = (Result<LeaseInfo>, UpdateVersion);

async fn read_lease_raw(location: &Location, path: &Path) -> Result<Option<RawLease>> {
    let got = match location.store().get(path).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::from_store(location.describe(path), e)),
    };
    let version = UpdateVersion {
        e_tag: got.meta.e_tag.clone(),
        version: got.meta.version.clone(),
    };
    let bytes = got
        .bytes()
        .await
        .map_err(|e| Error::from_store(location.describe(path), e))?;
    let parsed = parse_lease(location, path, &bytes);
    Ok(Some((parsed, version)))
}

fn parse_lease(location: &Location, path: &Path, bytes: &[u8]) -> Result<LeaseInfo> {
    let info: LeaseInfo = serde_json::from_slice(bytes).map_err(|e| Error::CorruptFile {
        path: location.describe(path),
        message: format!(
            "unreadable fsk lease ({e}); if no fsk process is writing this dataset, run \
             `fsk recover --break-lease {location}`"
        ),
    })?;
    if info.format_version > FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            path: location.describe(path),
            found: info.format_version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(info)
}

fn version_key(version: &UpdateVersion) -> Option<String> {
    match (&version.e_tag, &version.version) {
        (None, None) => None,
        (e, v) => Some(format!("{e:?}/{v:?}")),
    }
}

fn no_conditional_updates(location: &Location) -> Error {
    Error::NotSupported {
        engine: "storage".to_string(),
        operation: format!(
            "conditional updates (ETag or version) on {location}, which a lease shared by \
             concurrent writers needs"
        ),
    }
}

async fn acquire_store(
    location: &Location,
    info: LeaseInfo,
    request: LeaseRequest,
) -> Result<Lease> {
    let path = lease_path(location);
    let deadline = request.wait.map(|w| tokio::time::Instant::now() + w);
    // The version of the lease this process saw first, and since when (monotonic).
    let mut observed: Option<(String, tokio::time::Instant)> = None;
    let mut failures = 0u32;
    let mut force = request.break_lease;
    loop {
        let put = location
            .store()
            .put_opts(&path, info.body()?, PutOptions::from(PutMode::Create))
            .await;
        let existing = match put {
            Ok(result) => {
                let version = UpdateVersion {
                    e_tag: result.e_tag,
                    version: result.version,
                };
                if version_key(&version).is_none() {
                    let _ = location.store().delete(&path).await;
                    return Err(no_conditional_updates(location));
                }
                return Ok(held(location, path, info, version));
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                match read_lease_raw(location, &path).await {
                    Ok(found) => {
                        failures = 0;
                        found
                    }
                    Err(e) => {
                        failures += 1;
                        if failures > MAX_STORE_RETRIES {
                            return Err(e);
                        }
                        backoff(failures).await;
                        continue;
                    }
                }
            }
            Err(object_store::Error::NotImplemented { .. }) => {
                return Err(Error::NotSupported {
                    engine: "storage".to_string(),
                    operation: format!("conditional put (create-if-absent) on {location}"),
                });
            }
            Err(
                e @ (object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }),
            ) => return Err(Error::from_store(location.describe(&path), e)),
            Err(e) => {
                failures += 1;
                if failures > MAX_STORE_RETRIES {
                    return Err(Error::from_store(location.describe(&path), e));
                }
                backoff(failures).await;
                continue;
            }
        };
        // Gone between our create and our read: try to create it again (bounded by the
        // deadline like every other wait).
        let Some((holder, version)) = existing else {
            if deadline.is_none_or(|d| tokio::time::Instant::now() >= d) {
                failures += 1;
                if failures > MAX_STORE_RETRIES {
                    return Err(Error::Conflict {
                        path: location.to_string(),
                        holder: "a lease that keeps appearing and vanishing".to_string(),
                    });
                }
            }
            tokio::time::sleep(POLL).await;
            continue;
        };
        let Some(key) = version_key(&version) else {
            return Err(no_conditional_updates(location));
        };
        let now = tokio::time::Instant::now();
        let first_seen = match &observed {
            Some((seen, since)) if *seen == key => *since,
            _ => {
                observed = Some((key, now));
                now
            }
        };
        let ttl = holder
            .as_ref()
            .map(|h| Duration::from_millis(h.ttl_ms))
            .unwrap_or(LEASE_TTL);
        let expired = now.duration_since(first_seen) >= ttl;
        if force || (expired && holder.is_ok()) {
            // Take over exactly the version we judged, never a newer one.
            let taken = location
                .store()
                .put_opts(
                    &path,
                    info.body()?,
                    PutOptions::from(PutMode::Update(version)),
                )
                .await;
            match taken {
                Ok(result) => {
                    tracing::warn!(
                        previous = %holder.as_ref().map(LeaseInfo::describe).unwrap_or_else(|_| "an unreadable lease".into()),
                        forced = force,
                        "took over the dataset lease"
                    );
                    let version = UpdateVersion {
                        e_tag: result.e_tag,
                        version: result.version,
                    };
                    return Ok(held(location, path, info, version));
                }
                Err(object_store::Error::Precondition { .. }) => {
                    // Renewed or taken by someone else meanwhile: judge the new version.
                    force = false;
                    observed = None;
                    continue;
                }
                Err(object_store::Error::NotImplemented { .. }) => {
                    return Err(no_conditional_updates(location));
                }
                Err(e) => return Err(Error::from_store(location.describe(&path), e)),
            }
        }
        let holder = holder?;
        if deadline.is_none_or(|d| now >= d) {
            return Err(Error::Conflict {
                path: location.to_string(),
                holder: format!(
                    "{}; unchanged for {} s of its {} s lifetime as seen from here: a lease \
                     whose holder died is taken over once seen unchanged that long (wait with \
                     --wait, or `fsk recover --break-lease` if you know the holder is dead)",
                    holder.describe(),
                    now.duration_since(first_seen).as_secs(),
                    ttl.as_secs()
                ),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn backoff(failures: u32) {
    tokio::time::sleep(Duration::from_millis(50u64 << failures.min(6))).await;
}

fn held(location: &Location, path: Path, info: LeaseInfo, version: UpdateVersion) -> Lease {
    let lost = Arc::new(AtomicBool::new(false));
    let txn = info.txn.clone();
    let every = Duration::from_millis(info.ttl_ms / 3).max(Duration::from_millis(10));
    let current = Arc::new(tokio::sync::Mutex::new((info, version)));
    let renewer = spawn_renewer(
        location.clone(),
        path.clone(),
        Arc::clone(&current),
        every,
        Arc::clone(&lost),
    );
    Lease::Store {
        path,
        txn,
        current,
        renewer,
        lost,
    }
}

/// One conditional renewal on the version last written; `false` when the lease is no longer
/// ours (or cannot be renewed conditionally). Transient errors are `false` too: the caller
/// decides whether to retry.
async fn renew(
    location: &Location,
    path: &Path,
    current: &tokio::sync::Mutex<(LeaseInfo, UpdateVersion)>,
) -> bool {
    let mut guard = current.lock().await;
    let (info, version) = &mut *guard;
    let mut next = info.clone();
    next.renewals += 1;
    let Ok(body) = next.body() else {
        return false;
    };
    match location
        .store()
        .put_opts(
            path,
            body,
            PutOptions::from(PutMode::Update(version.clone())),
        )
        .await
    {
        Ok(result) => {
            *info = next;
            *version = UpdateVersion {
                e_tag: result.e_tag,
                version: result.version,
            };
            true
        }
        Err(e) => {
            tracing::warn!("could not renew the dataset lease: {e}");
            false
        }
    }
}

/// Renews the lease every third of its lifetime with a conditional put on the version this
/// writer last wrote: a lease another writer took over is never overwritten. A condition
/// that fails (the lease changed) sets `lost` and stops; the commit then refuses to write
/// its journal. Transient errors are retried at the next tick.
fn spawn_renewer(
    location: Location,
    path: Path,
    current: Arc<tokio::sync::Mutex<(LeaseInfo, UpdateVersion)>>,
    every: Duration,
    lost: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if renew(&location, &path, &current).await {
                continue;
            }
            // Tell a changed lease from a transient failure: only ours may carry our txn.
            let txn = current.lock().await.0.txn.clone();
            match read_lease(&location, &path).await {
                Ok(Some((holder, version))) if holder.txn == txn => {
                    // Still ours (a renewal whose answer was lost moved the version).
                    current.lock().await.1 = version;
                }
                Ok(_) => {
                    tracing::warn!(
                        "the dataset lease was taken over; this operation will not commit"
                    );
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
                Err(_) => {}
            }
        }
    })
}
