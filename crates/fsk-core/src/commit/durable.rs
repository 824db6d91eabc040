//! Durability on local disk: a rename or a new file is on disk only once the file and the
//! folders that name it are flushed (`fsync`). Object stores acknowledge a PUT, copy or
//! delete only once it is durable, so there this module does nothing.

use std::collections::BTreeSet;
use std::path::{Path as FsPath, PathBuf};

use crate::dataset::storage::Location;
use crate::error::{Error, Result};

fn io(path: &FsPath, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn sync_path(path: &FsPath) -> Result<()> {
    record(path);
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(path, e))
}

/// Every path flushed, for the tests that prove what is made durable.
#[cfg(test)]
pub(crate) static SYNCED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn record(path: &FsPath) {
    #[cfg(test)]
    if let Ok(mut synced) = SYNCED.lock() {
        synced.push(path.to_path_buf());
    }
    let _ = path;
}

/// Flushes the local files at `files` (relative paths) and every folder from each file's
/// folder up to the dataset root, each folder once. A no-op off local disk.
pub(crate) async fn sync_files<I, S>(location: &Location, files: I) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    sync(location, files, true).await
}

/// Flushes the folders that hold (or held) the files at `relatives`, up to the dataset
/// root: what makes a rename, a new folder or a delete durable. A no-op off local disk.
pub(crate) async fn sync_parents<I, S>(location: &Location, relatives: I) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    sync(location, relatives, false).await
}

async fn sync<I, S>(location: &Location, relatives: I, files_too: bool) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let Some(root) = location.local_root().map(FsPath::to_path_buf) else {
        return Ok(());
    };
    let files: Vec<PathBuf> = relatives
        .into_iter()
        .map(|f| root.join(f.as_ref()))
        .collect();
    run_blocking(move || {
        if files_too {
            for file in &files {
                sync_path(file)?;
            }
        }
        sync_folders_of(&root, files.iter().map(PathBuf::as_path))
    })
    .await
}

fn sync_folders_of<'a>(root: &FsPath, files: impl Iterator<Item = &'a FsPath>) -> Result<()> {
    let mut folders = BTreeSet::new();
    for file in files {
        let mut folder = file.parent();
        while let Some(dir) = folder {
            if !dir.starts_with(root) || !folders.insert(dir.to_path_buf()) {
                break;
            }
            folder = dir.parent();
        }
    }
    // The root's own entry in its parent matters for a dataset this transaction created.
    if let Some(parent) = root.parent() {
        folders.insert(parent.to_path_buf());
    }
    for folder in folders {
        // A folder that no longer exists (emptied and removed) has nothing left to flush.
        record(&folder);
        match std::fs::File::open(&folder) {
            Ok(f) => f.sync_all().map_err(|e| io(&folder, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&folder, e)),
        }
    }
    Ok(())
}

async fn run_blocking(work: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("fsync task: {e}")))?
}
