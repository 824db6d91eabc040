//! Listing a dataset's data files.
//!
//! Only `*.parquet` files are data. Anything whose own name or any of whose folders' names
//! starts with `_` or `.` is never data (the Hive/Spark/Arrow convention): fsk keeps its lease,
//! journals and staging under `_fsk/`.

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::partition::parse_hive_path;
use crate::storage::Location;

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
    }
    let store = location.store();
    let objects: Vec<_> = store
        .list(Some(location.root()))
        .try_collect()
        .await
        .map_err(|e| Error::from_store(location.to_string(), e))?;
    if objects.is_empty() && location.local_root().is_none() {
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
    let mut files: Vec<DataFile> = objects
        .into_iter()
        .filter_map(|meta| {
            let relative = location.relative(&meta.location)?;
            if !is_data_path(&relative) {
                return None;
            }
            Some(DataFile {
                partition: parse_hive_path(&relative),
                path: meta.location,
                relative,
                size: meta.size,
            })
        })
        .collect();
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(Listing::Dataset(files))
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
/// `n=10`; a column may sit at any depth).
pub fn filter_partitions(files: Vec<DataFile>, filter: &str) -> Result<Vec<DataFile>> {
    let wanted = parse_partition_filter(filter)?;
    Ok(files
        .into_iter()
        .filter(|file| {
            wanted.iter().all(|(key, value)| {
                file.partition
                    .iter()
                    .any(|(k, v)| k == key && v.as_deref() == value.as_deref())
            })
        })
        .collect())
}

/// Parses `a=1/b=2` (also `,`-separated) into decoded pairs.
pub fn parse_partition_filter(filter: &str) -> Result<Vec<(String, Option<String>)>> {
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
        out.push((key.to_string(), crate::partition::decode_value(value)));
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
}
