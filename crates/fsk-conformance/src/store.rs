//! A wrapping object store for tests: logs every request (and the byte ranges read) and can
//! fail a share of requests, to prove what pruning reads and how failures are handled.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// The kind of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A read (whole object, range or HEAD).
    Get,
    /// A single-request write.
    Put,
    /// The start of a multipart upload.
    MultipartPut,
    /// A listing.
    List,
    /// A delete.
    Delete,
    /// A copy or rename.
    Copy,
}

/// One logged request.
#[derive(Clone, Debug)]
pub struct Request {
    /// The kind.
    pub kind: Kind,
    /// The object (or prefix).
    pub path: String,
    /// The byte ranges read, when the request was ranged.
    pub ranges: Vec<Range<u64>>,
}

/// The number of requests of each kind in `log`.
pub fn counts(log: &[Request]) -> std::collections::BTreeMap<Kind, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for request in log {
        *counts.entry(request.kind).or_insert(0) += 1;
    }
    counts
}

/// Counts the requests of `log` by kind, prints them under `what` (the figures the notes
/// quote) and asserts each kind stays within its budget, so a regression in round trips
/// fails.
pub fn assert_within_budget(what: &str, log: &[Request], budgets: &[(Kind, usize)]) {
    let counts = counts(log);
    eprintln!("requests of {what}: {counts:?}");
    for &(kind, budget) in budgets {
        let n = counts.get(&kind).copied().unwrap_or(0);
        assert!(
            n <= budget,
            "{what}: {kind:?}: {n} requests, budget {budget}: {counts:?}"
        );
    }
}

/// Logs requests to an inner store; optionally fails every `n`-th request.
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    log: Mutex<Vec<Request>>,
    fail_every: AtomicU64,
    deny: std::sync::atomic::AtomicBool,
    /// Hide ETags and versions, as a store without conditional updates would.
    unversioned: std::sync::atomic::AtomicBool,
    counter: AtomicU64,
    failures: AtomicU64,
    /// Requests of these kinds on paths containing the text fail.
    fail_paths: Mutex<Option<(String, Vec<Kind>)>>,
}

impl State {
    fn record(&self, kind: Kind, path: &Path, ranges: Vec<Range<u64>>) -> Result<()> {
        self.log.lock().expect("log").push(Request {
            kind,
            path: path.to_string(),
            ranges,
        });
        if self.deny.load(Ordering::SeqCst) {
            return Err(object_store::Error::PermissionDenied {
                path: path.to_string(),
                source: "AccessDenied: Access Denied (injected 403)".into(),
            });
        }
        if let Some((text, kinds)) = &*self.fail_paths.lock().expect("fail_paths")
            && kinds.contains(&kind)
            && path.as_ref().contains(text.as_str())
        {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(object_store::Error::Generic {
                store: "CountingStore",
                source: format!("injected failure on {path}").into(),
            });
        }
        let every = self.fail_every.load(Ordering::SeqCst);
        if every > 0 && self.counter.fetch_add(1, Ordering::SeqCst) % every == every - 1 {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(object_store::Error::Generic {
                store: "CountingStore",
                source: format!("injected failure on {path}").into(),
            });
        }
        Ok(())
    }
}

impl fmt::Debug for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingStore({})", self.inner)
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingStore({})", self.inner)
    }
}

impl CountingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        CountingStore {
            inner,
            state: Arc::new(State::default()),
        }
    }

    /// Fails every `n`-th request from now on (0 turns failures off).
    pub fn fail_every(&self, n: u64) {
        self.state.counter.store(0, Ordering::SeqCst);
        self.state.fail_every.store(n, Ordering::SeqCst);
    }

    /// Fails every request of one of `kinds` whose path contains `text`, from now on
    /// (`None` turns it off).
    pub fn fail_paths(&self, rule: Option<(&str, &[Kind])>) {
        *self.state.fail_paths.lock().expect("fail_paths") =
            rule.map(|(text, kinds)| (text.to_string(), kinds.to_vec()));
    }

    /// Hides ETags and versions from now on, as a store without conditional updates does.
    pub fn hide_versions(&self, hide: bool) {
        self.state.unversioned.store(hide, Ordering::SeqCst);
    }

    fn unversioned(&self) -> bool {
        self.state.unversioned.load(Ordering::SeqCst)
    }

    /// Refuses every request from now on with the store's permission-denied error, as S3
    /// does with a 403 (`false` lets requests through again).
    pub fn deny_all(&self, deny: bool) {
        self.state.deny.store(deny, Ordering::SeqCst);
    }

    /// How many requests were failed on purpose.
    pub fn failures(&self) -> u64 {
        self.state.failures.load(Ordering::SeqCst)
    }

    /// Takes the log.
    pub fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.state.log.lock().expect("log"))
    }

    fn record(&self, kind: Kind, path: &Path, ranges: Vec<Range<u64>>) -> Result<()> {
        self.state.record(kind, path, ranges)
    }
}

#[async_trait::async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.record(Kind::Put, location, vec![])?;
        let mut result = self.inner.put_opts(location, payload, opts).await?;
        if self.unversioned() {
            result.e_tag = None;
            result.version = None;
        }
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.record(Kind::MultipartPut, location, vec![])?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let ranges = match &options.range {
            Some(GetRange::Bounded(r)) => std::iter::once(r.clone()).collect(),
            Some(GetRange::Offset(o)) => std::iter::once(*o..u64::MAX).collect(),
            Some(GetRange::Suffix(n)) => std::iter::once(u64::MAX - n..u64::MAX).collect(),
            None => vec![],
        };
        self.record(Kind::Get, location, ranges)?;
        let mut result = self.inner.get_opts(location, options).await?;
        if self.unversioned() {
            result.meta.e_tag = None;
            result.meta.version = None;
        }
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.record(Kind::Get, location, ranges.to_vec())?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let state = Arc::clone(&self.state);
        let checked = locations
            .map(move |path| path.and_then(|p| state.record(Kind::Delete, &p, vec![]).map(|()| p)))
            .boxed();
        self.inner.delete_stream(checked)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.record(Kind::List, prefix.unwrap_or(&Path::default()), vec![]) {
            Ok(()) => self.inner.list(prefix),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.record(Kind::List, prefix.unwrap_or(&Path::default()), vec![])?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.record(Kind::Copy, to, vec![])?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.record(Kind::Copy, to, vec![])?;
        self.inner.rename_opts(from, to, options).await
    }
}
