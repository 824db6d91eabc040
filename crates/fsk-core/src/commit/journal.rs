//! The journal of a transaction and applying it: publish every staged file with a
//! create-if-absent rename, then delete the removed files, the staging and the journal.
//!
//! Nothing is deleted without proof. A publish step counts as done only when the rename
//! succeeded, or when a file at the target (or at one of the entry's collision names, which
//! are derived from the transaction and never random) has the staged file's size and
//! checksum, recorded in the journal when the file was staged. Without that proof the
//! journal stays, nothing is removed, and recovery fails with [`Error::RecoveryFailed`].

use std::hash::Hasher;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::{FORMAT_VERSION, FSK_DIR, durable, failpoints};
use crate::dataset::storage::Location;
use crate::error::{Error, Result};

/// How many other names a file may take when its planned name is taken.
const MAX_COLLISION_NAMES: u64 = 16;

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
    /// The staged file's content checksum ([`Checksum`] as text, `xxh64:<16 hex digits>`),
    /// the proof that a file found at the target is this one.
    #[serde(default)]
    pub checksum: Option<String>,
}

/// The journal of one transaction: written once, with create-if-absent, at the commit point.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct Journal {
    /// The metadata format version ([`FORMAT_VERSION`]; 0 for journals of fsk before it).
    #[serde(default)]
    pub format_version: u32,
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

/// A streaming xxHash64 of a file's bytes, as the writer produces them.
#[derive(Clone, Default)]
pub struct Checksum(twox_hash::XxHash64);

impl std::fmt::Debug for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

impl Checksum {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }

    /// The checksum as journal text.
    pub fn render(&self) -> String {
        format!("xxh64:{:016x}", self.0.finish())
    }
}

/// The relative path of the journal of `txn`.
pub(crate) fn journal_relative(txn: &str) -> String {
    format!("{FSK_DIR}/txn/{txn}.json")
}

pub(crate) fn journal_path(location: &Location, txn: &str) -> Path {
    location.child(&journal_relative(txn))
}

/// Parses a journal; unparseable is [`Error::CorruptFile`], newer is
/// [`Error::UnsupportedFormat`].
pub(crate) fn parse_journal(location: &Location, path: &Path, bytes: &[u8]) -> Result<Journal> {
    let journal: Journal = serde_json::from_slice(bytes).map_err(|e| Error::CorruptFile {
        path: location.describe(path),
        message: format!(
            "unreadable fsk journal ({e}); it records a committed transaction, so fsk will not \
             guess: restore it, or move it away by hand once you have checked the dataset"
        ),
    })?;
    if journal.format_version > FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            path: location.describe(path),
            found: journal.format_version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(journal)
}

/// The names entry `index` of `txn` may be published under, in the order they are tried:
/// the planned name, then names derived from the transaction (so recovery can find a file
/// published after a collision without any record of it).
fn candidate_names(txn: &str, index: usize, target: &str) -> Vec<String> {
    let (dir, name) = match target.rsplit_once('/') {
        Some((d, n)) => (Some(d), n),
        None => (None, target),
    };
    let stem = name.strip_suffix(".parquet").unwrap_or(name);
    let mut names = vec![target.to_string()];
    for attempt in 1..=MAX_COLLISION_NAMES {
        let mut hash = twox_hash::XxHash64::with_seed(attempt);
        hash.write(txn.as_bytes());
        hash.write(&(index as u64).to_le_bytes());
        let token = format!("{:08x}", hash.finish() as u32);
        let renamed = format!("{stem}-{token}.parquet");
        names.push(match dir {
            Some(d) => format!("{d}/{renamed}"),
            None => renamed,
        });
    }
    names
}

/// The size and checksum of the object at `path`, `None` when it is absent; store errors are
/// errors (unknown is not no).
async fn fingerprint(location: &Location, path: &Path) -> Result<Option<(u64, String)>> {
    let store = location.store();
    let got = match store.get(path).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::from_store(location.describe(path), e)),
    };
    let size = got.meta.size;
    let mut checksum = Checksum::default();
    let mut stream = got.into_stream();
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| Error::from_store(location.describe(path), e))?
    {
        checksum.update(&chunk);
    }
    Ok(Some((size, checksum.render())))
}

/// Whether the object at `relative` is the staged file of `entry`: same size and checksum
/// (for a journal of fsk before checksums, same bytes as the staged file, while it exists).
/// A name the journal removes is never taken for our copy: it held old data.
async fn is_our_file(
    location: &Location,
    journal: &Journal,
    relative: &str,
    entry: &PublishEntry,
) -> Result<bool> {
    if journal.remove.iter().any(|r| r == relative) {
        return Ok(false);
    }
    let path = location.child(relative);
    let meta = match location.store().head(&path).await {
        Ok(meta) => meta,
        Err(object_store::Error::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(Error::from_store(location.describe(&path), e)),
    };
    if meta.size != entry.size_bytes {
        return Ok(false);
    }
    let expected = match &entry.checksum {
        Some(expected) => expected.clone(),
        None => match fingerprint(location, &location.child(&entry.staged)).await? {
            Some((_, staged)) => staged,
            // No checksum and no staged file: nothing to prove it with.
            None => return Ok(false),
        },
    };
    Ok(fingerprint(location, &path)
        .await?
        .is_some_and(|(size, checksum)| size == entry.size_bytes && checksum == expected))
}

/// Publishes entry `index` of `journal`; returns its final relative path.
async fn publish_one(
    location: &Location,
    journal: &Journal,
    index: usize,
    entry: &PublishEntry,
) -> Result<String> {
    let store = location.store();
    let staged = location.child(&entry.staged);
    let names = candidate_names(&journal.txn, index, &entry.target);
    for name in &names {
        let target = location.child(name);
        match store.rename_if_not_exists(&staged, &target).await {
            Ok(()) => return Ok(name.clone()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                // A rename is a copy then a delete: a crash between the two leaves the staged
                // file beside its published copy. Only a proven copy finishes the rename;
                // anything else at that name is a collision, and the next name is tried.
                if is_our_file(location, journal, name, entry).await? {
                    match store.delete(&staged).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                            return Ok(name.clone());
                        }
                        Err(e) => return Err(Error::from_store(location.describe(&staged), e)),
                    }
                }
                tracing::warn!(planned = %entry.target, taken = %name, "name collision, trying another name");
            }
            Err(object_store::Error::NotFound { .. }) => {
                // The staged file is gone: published by an earlier attempt, or lost. Only a
                // proven copy at one of its names says which.
                for candidate in &names {
                    if is_our_file(location, journal, candidate, entry).await? {
                        return Ok(candidate.clone());
                    }
                }
                return Err(Error::RecoveryFailed {
                    path: location.to_string(),
                    txn: journal.txn.clone(),
                    journal: journal_relative(&journal.txn),
                    message: format!(
                        "the staged file {} is missing and no file at {} (or its collision \
                         names) matches its size and checksum",
                        entry.staged, entry.target
                    ),
                });
            }
            Err(e) => return Err(Error::from_store(location.describe(&staged), e)),
        }
    }
    Err(Error::RecoveryFailed {
        path: location.to_string(),
        txn: journal.txn.clone(),
        journal: journal_relative(&journal.txn),
        message: format!(
            "every name tried for {} is taken by another file",
            entry.target
        ),
    })
}

/// Publishes a journal's files, then deletes its removals, its staging and the journal.
/// Idempotent: run again after a crash at any point, it completes.
pub(crate) async fn apply_journal(
    location: &Location,
    journal: &Journal,
) -> Result<Vec<PublishedFile>> {
    let store = location.store();
    let mut published = Vec::with_capacity(journal.publish.len());
    for (index, entry) in journal.publish.iter().enumerate() {
        let path = publish_one(location, journal, index, entry).await?;
        failpoints::failpoint("commit.during_publish", location)?;
        published.push(PublishedFile {
            path,
            size_bytes: entry.size_bytes,
            row_count: entry.row_count,
        });
    }
    durable::sync_parents(location, published.iter().map(|p| p.path.as_str())).await?;
    failpoints::failpoint("commit.after_publish", location)?;
    for relative in &journal.remove {
        match store.delete(&location.child(relative)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::from_store(format!("{location}/{relative}"), e)),
        }
        failpoints::failpoint("commit.during_remove", location)?;
    }
    durable::sync_parents(location, &journal.remove).await?;
    super::delete_prefix(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collision_names_are_derived_and_distinct() {
        let names = candidate_names("t1", 3, "day=1/part-0000abcd.parquet");
        assert_eq!(names[0], "day=1/part-0000abcd.parquet");
        assert_eq!(names.len(), 1 + MAX_COLLISION_NAMES as usize);
        assert!(names[1].starts_with("day=1/part-0000abcd-") && names[1].ends_with(".parquet"));
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        assert_eq!(
            names,
            candidate_names("t1", 3, "day=1/part-0000abcd.parquet")
        );
        assert_ne!(
            names[1],
            candidate_names("t1", 4, "day=1/part-0000abcd.parquet")[1]
        );
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// The `attempt`-th collision name of entry `index` of `txn` (0 is the planned name).
    pub(crate) fn candidate(txn: &&str, index: usize, target: &str, attempt: usize) -> String {
        super::candidate_names(txn, index, target)[attempt].clone()
    }
}
