//! Where a dataset lives: a root URL resolved to an [`ObjectStore`] and a prefix in it.
//!
//! Plain paths and `file://` URLs use object_store's local file system, `memory://NAME` an
//! in-memory store shared by every handle in the process that names the same `NAME`, and
//! `s3://`, `gs://` and `az://` (also `abfs://`, `abfss://`, `azure://`) the cloud builders,
//! configured from the usual environment variables and then from explicit options.

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::{Path, PathPart};
use url::Url;

use crate::error::{Error, Result};

pub use crate::dataset::options::{AzureOptions, GcsOptions, S3Options, StorageOptions};

/// The kind of store behind a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// Local file system.
    Local,
    /// Process-wide in-memory store.
    Memory,
    /// Amazon S3 or an S3-compatible server.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
}

/// A dataset root: the store, the prefix inside it and the URL the user gave.
#[derive(Clone)]
pub struct Location {
    store: Arc<dyn ObjectStore>,
    root: Path,
    display: String,
    kind: StoreKind,
    local_root: Option<PathBuf>,
    /// Set by [`Location::with_store`]: requests must go through that store (which may count
    /// or fail them), so engines may not read the files behind its back.
    wrapped: bool,
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Location")
            .field("display", &self.display)
            .field("root", &self.root)
            .field("kind", &self.kind)
            .finish()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

fn memory_stores() -> &'static Mutex<HashMap<String, Arc<InMemory>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    STORES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Makes `path` absolute and removes `.` and `..` without touching the file system (the path
/// may not exist yet).
fn absolutize(path: &std::path::Path) -> Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|source| Error::Io {
                path: path.display().to_string(),
                source,
            })?
            .join(path)
    };
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    Ok(out)
}

impl Location {
    /// Resolves a path or URL with the environment's credentials and no explicit options.
    pub fn parse(location: &str) -> Result<Self> {
        Self::parse_with_options(location, &StorageOptions::default())
    }

    /// Resolves a path or URL. Explicit `options` override the environment.
    pub fn parse_with_options(location: &str, options: &StorageOptions) -> Result<Self> {
        let trimmed = location.trim();
        if trimmed.is_empty() {
            return Err(Error::invalid_argument(
                "dataset path",
                location,
                "the path is empty",
            ));
        }
        let url = match Url::parse(trimmed) {
            // A one-letter scheme is a Windows drive, not a URL.
            Ok(url) if url.scheme().len() > 1 => Some(url),
            _ => None,
        };
        let Some(url) = url else {
            return Self::local(PathBuf::from(trimmed), options);
        };
        match url.scheme() {
            "file" => {
                let path = url.to_file_path().map_err(|()| {
                    Error::invalid_argument("dataset path", location, "not a valid file:// URL")
                })?;
                Self::local(path, options)
            }
            "memory" => {
                reject_options(options, "memory://")?;
                let name = url.host_str().unwrap_or_default().to_string();
                let store = Arc::clone(
                    memory_stores()
                        .lock()
                        .map_err(|_| Error::Internal("memory store registry poisoned".into()))?
                        .entry(name)
                        .or_insert_with(|| Arc::new(InMemory::new())),
                );
                let root = url_path(&url, location)?;
                Ok(Location {
                    store,
                    root,
                    display: trimmed.trim_end_matches('/').to_string(),
                    kind: StoreKind::Memory,
                    local_root: None,
                    wrapped: false,
                })
            }
            "s3" | "s3a" => {
                use object_store::aws::AmazonS3ConfigKey;
                let mut builder =
                    object_store::aws::AmazonS3Builder::from_env().with_url(url.as_str());
                for (key, value) in options.iter() {
                    let config =
                        AmazonS3ConfigKey::from_str(key).map_err(|_| unknown_option(key, "s3"))?;
                    builder = builder.with_config(config, value);
                }
                // Publishing moves staged files with create-if-absent copies. S3 offers that
                // through conditional multipart completion; without a setting object_store
                // refuses the copy, so default to it unless the user chose another mode.
                if builder
                    .get_config_value(&AmazonS3ConfigKey::CopyIfNotExists)
                    .is_none()
                {
                    builder = builder.with_config(AmazonS3ConfigKey::CopyIfNotExists, "multipart");
                }
                let store = builder
                    .build()
                    .map_err(|e| store_config_error(location, e))?;
                Self::remote(Arc::new(store), &url, location, StoreKind::S3)
            }
            "gs" => {
                let mut builder =
                    object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
                for (key, value) in options.iter() {
                    let config = object_store::gcp::GoogleConfigKey::from_str(key)
                        .map_err(|_| unknown_option(key, "gs"))?;
                    builder = builder.with_config(config, value);
                }
                let store = builder
                    .build()
                    .map_err(|e| store_config_error(location, e))?;
                Self::remote(Arc::new(store), &url, location, StoreKind::Gcs)
            }
            "az" | "azure" | "abfs" | "abfss" | "adl" => {
                let mut builder =
                    object_store::azure::MicrosoftAzureBuilder::from_env().with_url(url.as_str());
                let mut expanded = StorageOptions::new();
                if let Ok(connection) = std::env::var("AZURE_STORAGE_CONNECTION_STRING") {
                    expanded = AzureOptions::from_connection_string(&connection)?.into();
                }
                // Connection strings first, then explicit keys, which win.
                let is_connection = |key: &str| {
                    matches!(key, "azure_storage_connection_string" | "connection_string")
                };
                for (_, value) in options.iter().filter(|(k, _)| is_connection(k)) {
                    let from: StorageOptions = AzureOptions::from_connection_string(value)?.into();
                    for (k, v) in from.iter() {
                        expanded = expanded.with(k, v);
                    }
                }
                for (key, value) in options.iter().filter(|(k, _)| !is_connection(k)) {
                    expanded = expanded.with(key, value);
                }
                for (key, value) in expanded.iter() {
                    let config = object_store::azure::AzureConfigKey::from_str(key)
                        .map_err(|_| unknown_option(key, "az"))?;
                    builder = builder.with_config(config, value);
                }
                let store = builder
                    .build()
                    .map_err(|e| store_config_error(location, e))?;
                Self::remote(Arc::new(store), &url, location, StoreKind::Azure)
            }
            other => Err(Error::invalid_argument(
                "dataset path",
                location,
                format!(
                    "unsupported URL scheme {other:?}; use a local path, file://, memory://, \
                     s3://, gs:// or az://"
                ),
            )),
        }
    }

    fn local(path: PathBuf, options: &StorageOptions) -> Result<Self> {
        reject_options(options, "local paths")?;
        let absolute = absolutize(&path)?;
        let root = Path::from_absolute_path(&absolute).map_err(|e| {
            Error::invalid_argument("dataset path", absolute.display(), e.to_string())
        })?;
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::local::LocalFileSystem::new());
        Ok(Location {
            store,
            root,
            display: absolute.display().to_string(),
            kind: StoreKind::Local,
            local_root: Some(absolute),
            wrapped: false,
        })
    }

    fn remote(
        store: Arc<dyn ObjectStore>,
        url: &Url,
        location: &str,
        kind: StoreKind,
    ) -> Result<Self> {
        let root = url_path(url, location)?;
        Ok(Location {
            store,
            root,
            display: location.trim().trim_end_matches('/').to_string(),
            kind,
            local_root: None,
            wrapped: false,
        })
    }

    /// A location on an explicit store (for tests and embedding, e.g. a wrapping store that
    /// counts or fails requests).
    pub fn from_store(store: Arc<dyn ObjectStore>, root: Path, display: impl Into<String>) -> Self {
        Location {
            store,
            root,
            display: display.into(),
            kind: StoreKind::Memory,
            local_root: None,
            wrapped: true,
        }
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The dataset's prefix in the store.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The kind of store.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The root folder on local disk, for local datasets.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// The root folder on local disk when an engine may open the dataset's files itself: a
    /// local dataset on its own file system store (not one wrapped by
    /// [`Location::with_store`]).
    pub fn native_local_root(&self) -> Option<&std::path::Path> {
        if self.wrapped {
            None
        } else {
            self.local_root()
        }
    }

    /// The local file behind `relative` (a path as [`crate::dataset::listing::DataFile::relative`]
    /// gives it), when an engine may open it itself (see [`Location::native_local_root`]).
    pub fn native_local_file(&self, relative: &str) -> Option<PathBuf> {
        let root = self.native_local_root()?;
        if root.is_file() {
            return Some(root.to_path_buf());
        }
        Some(
            relative
                .split('/')
                .filter(|s| !s.is_empty())
                .fold(root.to_path_buf(), |p, s| p.join(s)),
        )
    }

    /// The full store path of `relative` (a `/`-separated path of segment names under the
    /// root, each segment as it should appear on disk).
    ///
    /// Segments are taken verbatim (object_store keeps parts verbatim as file names on local
    /// disk and as keys on object stores), so an already hive-encoded `day=a%2Fb` is exactly
    /// the folder other hive readers expect, never encoded a second time. Only a segment
    /// object_store cannot hold verbatim (control characters, `.`, `..`) is escaped.
    pub fn child(&self, relative: &str) -> Path {
        let mut path = self.root.clone();
        for segment in relative.split('/').filter(|s| !s.is_empty()) {
            let part = PathPart::parse(segment).unwrap_or_else(|_| PathPart::from(segment));
            path = path.join(part);
        }
        path
    }

    /// The same dataset root on another store (for tests and embedding: a wrapper around
    /// [`Location::store`] that counts or fails requests), keeping the path conventions of
    /// this location's kind.
    pub fn with_store(&self, store: Arc<dyn ObjectStore>) -> Self {
        Location {
            store,
            wrapped: true,
            ..self.clone()
        }
    }

    /// The `/`-separated path of `path` relative to the root, with segment names as they
    /// appear on disk (`None` when `path` is not under the root).
    pub fn relative(&self, path: &Path) -> Option<String> {
        let parts: Vec<_> = path.prefix_match(&self.root)?.collect();
        Some(
            parts
                .iter()
                .map(|part| part.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/"),
        )
    }

    /// The user-facing name of a path: the root as given plus the relative path.
    pub fn describe(&self, path: &Path) -> String {
        match self.relative(path) {
            Some(rel) if rel.is_empty() => self.display.clone(),
            Some(rel) => format!("{}/{}", self.display, rel),
            None => path.to_string(),
        }
    }
}

fn url_path(url: &Url, location: &str) -> Result<Path> {
    Path::from_url_path(url.path())
        .map_err(|e| Error::invalid_argument("dataset path", location, e.to_string()))
}

fn reject_options(options: &StorageOptions, what: &str) -> Result<()> {
    match options.iter().next() {
        Some((key, _)) => Err(Error::invalid_argument(
            "storage option",
            key,
            format!("storage options do not apply to {what}"),
        )),
        None => Ok(()),
    }
}

fn unknown_option(key: &str, scheme: &str) -> Error {
    Error::invalid_argument(
        "storage option",
        key,
        format!("not a known configuration key for {scheme}:// stores"),
    )
}

fn store_config_error(location: &str, err: object_store::Error) -> Error {
    Error::invalid_argument(
        "storage configuration",
        location,
        format!("cannot configure the store: {err}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_absolute_and_normalised() {
        let loc = Location::parse("/tmp/a/../b/./c").unwrap();
        assert_eq!(loc.kind(), StoreKind::Local);
        assert_eq!(loc.local_root().unwrap(), std::path::Path::new("/tmp/b/c"));
        assert_eq!(loc.root().as_ref(), "tmp/b/c");
        let file = Location::parse("file:///tmp/x").unwrap();
        assert_eq!(file.root().as_ref(), "tmp/x");
    }

    #[test]
    fn memory_urls_share_a_store_by_name() {
        let a = Location::parse("memory://shared-test/ds").unwrap();
        let b = Location::parse("memory://shared-test/other").unwrap();
        assert!(Arc::ptr_eq(a.store(), b.store()));
        let c = Location::parse("memory://another/ds").unwrap();
        assert!(!Arc::ptr_eq(a.store(), c.store()));
        assert_eq!(a.root().as_ref(), "ds");
    }

    #[test]
    fn segments_are_verbatim_file_names_and_keys() {
        let rel = "city=New%20York/part-1.parquet";
        let memory = Location::parse("memory://rel/ds").unwrap();
        let child = memory.child(rel);
        assert_eq!(child.as_ref(), "ds/city=New%20York/part-1.parquet");
        assert_eq!(memory.relative(&child).unwrap(), rel);
        let s3 = Location::parse_with_options(
            "s3://bucket/ds",
            &StorageOptions::new()
                .with("aws_region", "us-east-1")
                .with("aws_endpoint", "http://127.0.0.1:9"),
        )
        .unwrap();
        assert_eq!(s3.child(rel).as_ref(), "ds/city=New%20York/part-1.parquet");
        let local = Location::parse("/tmp/ds").unwrap();
        let child = local.child(rel);
        assert_eq!(child.as_ref(), "tmp/ds/city=New%20York/part-1.parquet");
        assert_eq!(local.relative(&child).unwrap(), rel);
    }

    #[test]
    fn s3_options_are_parsed_and_unknown_keys_rejected() {
        let options = StorageOptions::parse_pairs([
            "aws_endpoint=http://127.0.0.1:9",
            "aws_region=us-east-1",
            "aws_access_key_id=x",
            "aws_secret_access_key=y",
            "aws_allow_http=true",
        ])
        .unwrap();
        let loc = Location::parse_with_options("s3://bucket/prefix/ds", &options).unwrap();
        assert_eq!(loc.kind(), StoreKind::S3);
        assert_eq!(loc.root().as_ref(), "prefix/ds");
        let bad = StorageOptions::parse_pairs(["no_such_key=1"]).unwrap();
        let err = Location::parse_with_options("s3://bucket/ds", &bad).unwrap_err();
        assert!(err.to_string().contains("no_such_key"), "{err}");
        assert!(StorageOptions::parse_pairs(["novalue"]).is_err());
    }

    #[test]
    fn gcs_and_azure_urls_resolve() {
        let options = StorageOptions::new().with("google_service_account_key", "{}");
        // Building may fail on the fake key, but never with an unknown-option error.
        if let Err(err) = Location::parse_with_options("gs://bucket/ds", &options) {
            assert!(
                !err.to_string().contains("not a known configuration key"),
                "{err}"
            );
        }
        let options = StorageOptions::new()
            .with("azure_storage_account_name", "acct")
            .with("azure_storage_account_key", "a2V5");
        let loc = Location::parse_with_options("az://container/ds", &options).unwrap();
        assert_eq!(loc.kind(), StoreKind::Azure);
        assert_eq!(loc.root().as_ref(), "ds");
    }

    #[test]
    fn unsupported_scheme_is_named() {
        let err = Location::parse("ftp://host/x").unwrap_err();
        assert!(err.to_string().contains("ftp"), "{err}");
    }
}
