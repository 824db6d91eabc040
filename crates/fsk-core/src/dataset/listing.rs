//! Listing a dataset's data files.
//!
//! Only `*.parquet` files are data. Anything whose own name or any of whose folders' names
//! starts with `_` or `.` is never data (the Hive/Spark/Arrow convention): fsk keeps its lease,
//! journals and staging under `_fsk/`.

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::Serialize;

use crate::dataset::partition::parse_hive_path;
use crate::dataset::storage::Location;
use crate::error::{Error, Result};

/// One data file of a dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DataFile {
    /// The path in the store.
    #[serde(skip)]
    pub path: Path,
    /// The path relative to the dataset root, `/`-separated (the file name alone when the
    /// dataset is a single file).
    pub relative: String,
    /// Size in bytes.
    pub size: u64,
    /// The `col=value` folder segments, decoded; `None` is the Hive null.
    #[serde(skip)]
    pub partition: Vec<(String, Option<String>)>,
}

/// What a path turned out to be.
#[derive(Clone, Debug)]
pub enum Listing {
    /// A folder (or prefix) with these data files, sorted by relative path.
    Dataset(Vec<DataFile>),
    /// A single parquet file.
    File(DataFile),
    /// Nothing exists at the path.
    Missing,
}

/// Whether a relative path names a data file: a `.parquet` file with no hidden segment.
pub fn is_data_path(relative: &str) -> bool {
    let mut segments = relative.split('/').peekable();
    let mut last = "";
    while let Some(segment) = segments.next() {
        if segment.starts_with('_') || segment.starts_with('.') {
            return false;
        }
        if segments.peek().is_none() {
            last = segment;
        }
    }
    last.ends_with(".parquet")
}

/// Lists the data files under the location, or finds that it is a single file or missing.
///
/// Fails with [`Error::RecoveryNeeded`] when the dataset has an unfinished transaction (a
/// journal under `_fsk/txn/`): its files could be a mix of the states before and after it.
/// On local disk symbolic links are never followed (a link is skipped with a warning), so a
/// listing never leaves the dataset folder and no operation deletes or rewrites anything
/// outside it.
pub async fn list(location: &Location) -> Result<Listing> {
    if let Some(local) = location.local_root() {
        match std::fs::metadata(local) {
            Ok(meta) if meta.is_file() => return single_file(location).await,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Listing::Missing),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(Error::PermissionDenied {
                    path: location.to_string(),
                    source: Box::new(e),
                });
            }
            Err(source) => {
                return Err(Error::Io {
                    path: location.to_string(),
                    source,
                });
            }
        }
        let root = local.to_path_buf();
        let display = location.to_string();
        let walked = tokio::task::spawn_blocking(move || walk_local(&root, &display))
            .await
            .map_err(|e| Error::Internal(format!("listing task: {e}")))??;
        if let Some(txn) = walked.journals.first() {
            return Err(recovery_needed(location, txn));
        }
        let mut files: Vec<DataFile> = walked
            .files
            .into_iter()
            .map(|(relative, size)| DataFile {
                partition: parse_hive_path(&relative),
                path: location.child(&relative),
                relative,
                size,
            })
            .collect();
        files.sort_by(|a, b| a.relative.cmp(&b.relative));
        return Ok(Listing::Dataset(files));
    }
    let store = location.store();
    let objects: Vec<_> = store
        .list(Some(location.root()))
        .try_collect()
        .await
        .map_err(|e| Error::from_store(location.to_string(), e))?;
    if objects.is_empty() {
        // On an object store a "folder" exists only through its objects: the root may be a
        // single object.
        if location.root().as_ref().ends_with(".parquet") {
            match store.head(location.root()).await {
                Ok(_) => return single_file(location).await,
                Err(object_store::Error::NotFound { .. }) => return Ok(Listing::Missing),
                Err(e) => return Err(Error::from_store(location.to_string(), e)),
            }
        }
        return Ok(Listing::Missing);
    }
    let mut files = Vec::new();
    for meta in objects {
        let Some(relative) = location.relative(&meta.location) else {
            continue;
        };
        if let Some(txn) = crate::dataset::layout::journal_txn(&relative) {
            return Err(recovery_needed(location, txn));
        }
        if is_data_path(&relative) {
            files.push(DataFile {
                partition: parse_hive_path(&relative),
                path: meta.location,
                relative,
                size: meta.size,
            });
        }
    }
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(Listing::Dataset(files))
}

fn recovery_needed(location: &Location, txn: &str) -> Error {
    Error::RecoveryNeeded {
        path: location.to_string(),
        txn: txn.to_string(),
    }
}

/// What a walk of a local dataset folder found.
struct Walked {
    /// Data files: relative path and size.
    files: Vec<(String, u64)>,
    /// Transactions with a journal under `_fsk/txn/`.
    journals: Vec<String>,
}

/// Walks a local dataset folder without following symbolic links. Hidden folders (`_`, `.`)
/// are not entered, except that `_fsk/txn/` is looked at for journals.
fn walk_local(root: &std::path::Path, display: &str) -> Result<Walked> {
    let io = |path: &std::path::Path, source: std::io::Error| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let mut walked = Walked {
        files: Vec::new(),
        journals: Vec::new(),
    };
    let txn_dir = root.join(crate::dataset::layout::FSK_DIR).join("txn");
    let journals = match std::fs::read_dir(&txn_dir) {
        Ok(entries) => Some(entries),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        // A reader that cannot look for journals cannot rule out a mixed state.
        Err(e) => return Err(io(&txn_dir, e)),
    };
    if let Some(entries) = journals {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = format!("{}/txn/{name}", crate::dataset::layout::FSK_DIR);
            if let Some(txn) = crate::dataset::layout::journal_txn(&relative) {
                walked.journals.push(txn.to_string());
            }
        }
    }
    let mut folders = vec![(root.to_path_buf(), String::new())];
    while let Some((folder, prefix)) = folders.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|e| io(&folder, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io(&folder, e))?;
            let os_name = entry.file_name();
            let lossy = os_name.to_string_lossy();
            if lossy.starts_with('_') || lossy.starts_with('.') {
                continue;
            }
            let file_type = entry.file_type().map_err(|e| io(&entry.path(), e))?;
            let usable = os_name
                .to_str()
                .filter(|name| object_store::path::PathPart::parse(name).is_ok());
            let Some(name) = usable else {
                if file_type.is_dir() || lossy.ends_with(".parquet") {
                    return Err(Error::UnsupportedName {
                        path: format!("{display}/{prefix}{lossy}"),
                        message: "the name is not UTF-8 or holds control characters, so fsk                                   cannot read or replace it; rename it (or move it out of the                                   dataset)"
                            .to_string(),
                    });
                }
                continue;
            };
            let relative = format!("{prefix}{name}");
            if file_type.is_symlink() {
                if name.ends_with(".parquet") || entry.path().is_dir() {
                    let link = format!("{display}/{relative}");
                    tracing::warn!(
                        path = %link,
                        "skipping a symbolic link: fsk never follows links out of a dataset"
                    );
                }
                continue;
            }
            if file_type.is_dir() {
                folders.push((entry.path(), format!("{relative}/")));
            } else if file_type.is_file() && is_data_path(&relative) && !is_upload_temp(name) {
                let size = entry.metadata().map_err(|e| io(&entry.path(), e))?.len();
                walked.files.push((relative, size));
            }
        }
    }
    Ok(walked)
}

/// object_store's local uploads in progress (`name#123`), never data.
fn is_upload_temp(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

async fn single_file(location: &Location) -> Result<Listing> {
    let meta = location
        .store()
        .head(location.root())
        .await
        .map_err(|e| Error::from_store(location.to_string(), e))?;
    let relative = location
        .root()
        .filename()
        .map(str::to_string)
        .unwrap_or_default();
    Ok(Listing::File(DataFile {
        path: meta.location,
        relative,
        size: meta.size,
        partition: Vec::new(),
    }))
}

/// The data files of an existing dataset (or the one file), failing with
/// [`Error::NotFound`] when nothing exists at the path.
pub async fn data_files(location: &Location) -> Result<Vec<DataFile>> {
    match list(location).await? {
        Listing::Dataset(files) => Ok(files),
        Listing::File(file) => Ok(vec![file]),
        Listing::Missing => Err(Error::NotFound {
            path: location.to_string(),
        }),
    }
}

/// Keeps the files whose partition segments match every `col=value` of `filter`
/// (`a=1/b=2` requires both; values compare whole and decoded, so `n=1` does not select
/// `n=10`; a column may sit at any depth). Alternatives separated by `;` match either
/// (`a=1;a=2`: what a repeated `--partition-filter` becomes).
pub fn filter_partitions(files: Vec<DataFile>, filter: &str) -> Result<Vec<DataFile>> {
    let alternatives = filter
        .split(';')
        .filter(|a| !a.trim().is_empty())
        .map(parse_partition_filter)
        .collect::<Result<Vec<_>>>()?;
    if alternatives.is_empty() {
        parse_partition_filter(filter)?;
    }
    Ok(files
        .into_iter()
        .filter(|file| {
            alternatives.iter().any(|wanted| {
                wanted.iter().all(|(key, value)| {
                    file.partition
                        .iter()
                        .any(|(k, v)| k == key && v.as_deref() == value.as_deref())
                })
            })
        })
        .collect())
}

/// Joins repeated partition filters into one that matches any of them (`;`-separated).
pub fn any_partition_filter(filters: &[String]) -> Option<String> {
    (!filters.is_empty()).then(|| filters.join(";"))
}

/// Parses `a=1/b=2` (also `,`-separated) into decoded pairs; `;` separates alternatives,
/// each checked.
pub fn parse_partition_filter(filter: &str) -> Result<Vec<(String, Option<String>)>> {
    if filter.contains(';') {
        let mut first = None;
        for alternative in filter.split(';').filter(|a| !a.trim().is_empty()) {
            let pairs = parse_partition_filter(alternative)?;
            first.get_or_insert(pairs);
        }
        return first.ok_or_else(|| {
            Error::invalid_argument(
                "partition filter",
                filter,
                "expected col=value[/col=value...]",
            )
        });
    }
    let mut out = Vec::new();
    for segment in filter.split(['/', ',']).filter(|s| !s.trim().is_empty()) {
        let Some((key, value)) = segment.trim().split_once('=') else {
            return Err(Error::invalid_argument(
                "partition filter",
                filter,
                format!("segment {segment:?} is not of the form col=value"),
            ));
        };
        if key.is_empty() {
            return Err(Error::invalid_argument(
                "partition filter",
                filter,
                "a column name is empty",
            ));
        }
        out.push((
            key.to_string(),
            crate::dataset::partition::decode_value(value),
        ));
    }
    if out.is_empty() {
        return Err(Error::invalid_argument(
            "partition filter",
            filter,
            "expected col=value[/col=value...]",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternatives_match_either() {
        let file = |p: &str| DataFile {
            relative: format!("{p}/x.parquet"),
            path: object_store::path::Path::from(format!("{p}/x.parquet")),
            size: 1,
            partition: crate::dataset::partition::parse_hive_path(&format!("{p}/x.parquet")),
        };
        let files = vec![file("d=1"), file("d=2"), file("d=3")];
        let kept = filter_partitions(files.clone(), "d=1;d=3").unwrap();
        let names: Vec<&str> = kept.iter().map(|f| f.relative.as_str()).collect();
        assert_eq!(names, vec!["d=1/x.parquet", "d=3/x.parquet"]);
        assert!(filter_partitions(files, "d=1;nonsense").is_err());
        assert_eq!(
            any_partition_filter(&["a=1".into(), "a=2".into()]).as_deref(),
            Some("a=1;a=2")
        );
    }

    #[test]
    fn data_paths_exclude_hidden_and_non_parquet() {
        assert!(is_data_path("part-1.parquet"));
        assert!(is_data_path("day=1/part-1.parquet"));
        assert!(!is_data_path("_fsk/staging/x/part-1.parquet"));
        assert!(!is_data_path(".hidden/part-1.parquet"));
        assert!(!is_data_path("day=1/_tmp.parquet"));
        assert!(!is_data_path("day=1/.part.parquet"));
        assert!(!is_data_path("README.txt"));
        assert!(!is_data_path("_metadata"));
    }

    fn file(relative: &str) -> DataFile {
        DataFile {
            path: Path::from(relative),
            relative: relative.to_string(),
            size: 1,
            partition: parse_hive_path(relative),
        }
    }

    #[test]
    fn partition_filter_matches_whole_values_at_any_depth() {
        let files = vec![
            file("a=x/n=1/f.parquet"),
            file("a=x/n=10/f.parquet"),
            file("a=y/n=1/f.parquet"),
        ];
        let kept = filter_partitions(files.clone(), "n=1").unwrap();
        assert_eq!(kept.len(), 2);
        let kept = filter_partitions(files.clone(), "a=x/n=1").unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].relative, "a=x/n=1/f.parquet");
        assert!(filter_partitions(files, "nonsense").is_err());
    }

    #[tokio::test]
    async fn lists_memory_datasets() {
        let loc = Location::parse("memory://listing-test/ds").unwrap();
        for rel in [
            "b.parquet",
            "day=1/a.parquet",
            "_fsk/x.parquet",
            "notes.txt",
        ] {
            object_store::ObjectStoreExt::put(
                loc.store().as_ref(),
                &loc.child(rel),
                bytes::Bytes::from_static(b"x").into(),
            )
            .await
            .unwrap();
        }
        let files = data_files(&loc).await.unwrap();
        let names: Vec<_> = files.iter().map(|f| f.relative.as_str()).collect();
        assert_eq!(names, vec!["b.parquet", "day=1/a.parquet"]);
        let missing = Location::parse("memory://listing-test/nope").unwrap();
        assert!(matches!(
            data_files(&missing).await,
            Err(Error::NotFound { .. })
        ));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn local_listing_skips_links_and_names_unaddressable_data_files() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ds");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("day=1")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("day=1/a.parquet"), b"x").unwrap();
        std::fs::write(outside.join("b.parquet"), b"y").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("day=2")).unwrap();
        std::os::unix::fs::symlink(outside.join("b.parquet"), root.join("c.parquet")).unwrap();
        // Odd names that are not data are ignored.
        std::fs::write(root.join("notes\n.txt"), b"z").unwrap();
        std::fs::write(root.join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt")), b"z").unwrap();
        let loc = Location::parse(&root.display().to_string()).unwrap();
        let files = data_files(&loc).await.unwrap();
        let names: Vec<_> = files.iter().map(|f| f.relative.as_str()).collect();
        assert_eq!(names, vec!["day=1/a.parquet"]);
        // A data file the store cannot address is named in a typed error.
        std::fs::write(
            root.join(std::ffi::OsStr::from_bytes(b"caf\xe9.parquet")),
            b"z",
        )
        .unwrap();
        let err = data_files(&loc).await.unwrap_err();
        assert!(matches!(err, Error::UnsupportedName { .. }), "{err}");
        assert!(err.to_string().contains("caf"), "{err}");
    }

    #[tokio::test]
    async fn a_pending_journal_is_recovery_needed() {
        let loc = Location::parse("memory://listing-journal/ds").unwrap();
        for rel in ["a.parquet", "_fsk/txn/17-abc.json"] {
            object_store::ObjectStoreExt::put(
                loc.store().as_ref(),
                &loc.child(rel),
                bytes::Bytes::from_static(b"x").into(),
            )
            .await
            .unwrap();
        }
        match list(&loc).await {
            Err(Error::RecoveryNeeded { txn, .. }) => assert_eq!(txn, "17-abc"),
            other => panic!("{other:?}"),
        }
    }
}
