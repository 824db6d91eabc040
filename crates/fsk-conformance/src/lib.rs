//! `fsk-conformance`: the one behavioural suite every fsk engine passes.
//!
//! Each check is a `pub async fn(&dyn DatasetBackend, &Fixture)` that makes its own fresh
//! dataset. [`run_all`] runs the whole list on local disk, on `memory://` and, when the
//! environment variable [`S3_GATE`] names a bucket URL (`cargo xtask ci` starts a local S3
//! server and sets it), on that live S3 server; it collects every failure and panics with the
//! list, so an engine's test shows all that is wrong at once.
//! Every engine crate calls [`run_all`] once with its engine and once through
//! `Arc<dyn DatasetBackend>` ([`run_all_arc`]).

#![deny(clippy::clone_on_ref_ptr)]

pub mod commit_checks;
pub mod compact_checks;
pub mod data;
pub mod dedup_checks;
pub mod hostile_checks;
pub mod key_match_checks;
pub mod merge_checks;
pub mod optimize_checks;
pub mod progress_checks;
pub mod proptests;
pub mod read_checks;
pub mod sort_checks;
pub mod sql_checks;
pub mod store;
pub mod write_checks;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::FutureExt;
use futures::future::BoxFuture;

use fsk_core::dataset::storage::Location;
use fsk_core::engine::DatasetBackend;

/// Where a check's datasets live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreUnderTest {
    /// A fresh temporary folder on local disk.
    Local,
    /// A fresh `memory://` store.
    Memory,
    /// A fresh prefix in the live S3 bucket named by [`S3_GATE`].
    S3,
}

/// The environment variable that turns the live S3 runs on: a bucket URL such as
/// `s3://fsk-test`, with the `AWS_*` variables describing the server. When it is set, a
/// server that cannot be reached fails the checks; it is never a silent pass.
pub const S3_GATE: &str = "FSK_TEST_S3";

/// The bucket URL of the live S3 server under test, when [`S3_GATE`] is set.
pub fn s3_bucket() -> Option<String> {
    std::env::var(S3_GATE)
        .ok()
        .map(|v| v.trim().trim_end_matches('/').to_string())
        .filter(|v| !v.is_empty())
}

/// The stores the suite runs on here: local disk, memory, and S3 when [`S3_GATE`] is set.
pub fn stores_under_test() -> Vec<StoreUnderTest> {
    let mut kinds = vec![StoreUnderTest::Local, StoreUnderTest::Memory];
    if s3_bucket().is_some() {
        kinds.push(StoreUnderTest::S3);
    }
    kinds
}

/// A fresh place for one check's datasets.
#[derive(Debug)]
pub struct Fixture {
    kind: StoreUnderTest,
    dir: tempfile::TempDir,
    memory_name: String,
    source_spill: fsk_core::ops::merge::SourceSpill,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Fixture {
    /// A new fixture of `kind`.
    pub fn new(kind: StoreUnderTest) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        Fixture {
            kind,
            dir: tempfile::tempdir().expect("temporary folder"),
            memory_name: format!("conformance-{}-{n}", std::process::id()),
            source_spill: fsk_core::ops::merge::SourceSpill::Auto,
        }
    }

    /// A new fixture of `kind` whose [`Fixture::merge_options`] sort and spill every merge
    /// source (the path of sources larger than memory), so the merge checks run on it too.
    pub fn spilling(kind: StoreUnderTest) -> Self {
        Fixture {
            source_spill: fsk_core::ops::merge::SourceSpill::Always,
            ..Fixture::new(kind)
        }
    }

    /// Merge options for `key` and `strategy`, holding or spilling the source as this
    /// fixture asks (the checks of merge build their options here).
    pub fn merge_options<I: IntoIterator<Item = S>, S: Into<String>>(
        &self,
        key: I,
        strategy: fsk_core::ops::merge::Strategy,
    ) -> fsk_core::ops::merge::MergeOptions {
        let mut options = fsk_core::ops::merge::MergeOptions::new(key, strategy);
        options.source_spill = self.source_spill;
        options
    }

    /// Whether [`Fixture::merge_options`] spill every source.
    pub fn spills_sources(&self) -> bool {
        self.source_spill == fsk_core::ops::merge::SourceSpill::Always
    }

    /// The kind of store.
    pub fn kind(&self) -> StoreUnderTest {
        self.kind
    }

    /// The URL or path of a dataset named `name` in this fixture.
    pub fn url(&self, name: &str) -> String {
        match self.kind {
            StoreUnderTest::Local => self.dir.path().join(name).display().to_string(),
            StoreUnderTest::Memory => format!("memory://{}/{name}", self.memory_name),
            StoreUnderTest::S3 => format!(
                "{}/{}/{name}",
                s3_bucket().expect("the S3 fixture needs FSK_TEST_S3"),
                self.memory_name
            ),
        }
    }

    /// The location of a dataset named `name`.
    pub fn location(&self, name: &str) -> Location {
        Location::parse(&self.url(name)).expect("fixture location")
    }

    /// The dataset named `name` seen through a [`store::CountingStore`] that logs (and can
    /// fail) every request to this fixture's store.
    pub fn counted(&self, name: &str) -> (Arc<store::CountingStore>, Location) {
        let location = self.location(name);
        let counting = Arc::new(store::CountingStore::new(Arc::clone(location.store())));
        let store: Arc<dyn object_store::ObjectStore> = Arc::clone(&counting) as _;
        (counting, location.with_store(store))
    }

    /// The local folder of the fixture (local fixtures only).
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        (self.kind == StoreUnderTest::Local).then(|| self.dir.path())
    }
}

/// A conformance check.
pub type CheckFn = for<'a> fn(&'a dyn DatasetBackend, &'a Fixture) -> BoxFuture<'a, ()>;

/// Expands the list of every check, by module and name, into `$callback!`'s arguments.
/// The one list behind [`all_checks`] and [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __with_checks {
    ($callback:ident $args:tt) => {
        $crate::$callback! { $args
        write_checks::write_then_read_round_trips,
        write_checks::default_file_names_are_unique_tokens,
        write_checks::append_keeps_existing_files,
        write_checks::overwrite_replaces_only_parquet_data,
        write_checks::overwrite_creates_missing_dataset,
        write_checks::max_rows_per_file_splits_files,
        write_checks::row_group_size_is_a_maximum,
        write_checks::buffered_bytes_limit_flushes_row_groups_early,
        write_checks::basename_template_names_files,
        write_checks::bad_basename_template_writes_nothing,
        write_checks::empty_input_writes_one_empty_file,
        write_checks::codecs_are_applied,
        write_checks::dictionaries_only_where_values_repeat,
        write_checks::large_files_use_multipart_uploads,
        write_checks::partition_by_writes_hive_folders,
        write_checks::partition_values_are_encoded,
        write_checks::missing_partition_column_writes_nothing,
        write_checks::append_with_incompatible_schema_fails,
        write_checks::append_widens_losslessly,
        write_checks::dataset_path_that_is_a_file_fails,
        write_checks::arrow_types_are_kept,
        write_checks::invalid_options_are_typed_errors,
        write_checks::locked_dataset_is_a_conflict,
        read_checks::projection_keeps_the_given_order,
        read_checks::unknown_column_is_named,
        read_checks::filters_follow_sql_semantics,
        read_checks::filter_on_partition_columns,
        read_checks::filter_coerces_dates,
        read_checks::malformed_filter_is_typed,
        read_checks::limit_applies_after_filter,
        read_checks::reads_a_single_file,
        read_checks::missing_path_is_not_found,
        read_checks::folder_without_data_is_typed,
        read_checks::hidden_and_foreign_files_are_ignored,
        read_checks::partition_types_are_inferred_or_given,
        read_checks::stats_lists_files_and_totals,
        read_checks::stats_partition_filter_matches_whole_values,
        read_checks::corrupt_file_is_named,
        read_checks::files_with_evolved_schemas_are_unified,
        read_checks::unsupported_operations_are_typed,
        read_checks::access_denied_is_typed,
        read_checks::scan_pushdown_reads_a_fraction_of_the_bytes,
        hostile_checks::crafted_footers_are_corrupt_files,
        hostile_checks::mutated_footers_never_panic,
        hostile_checks::files_of_other_writers_read_as_written,
        hostile_checks::dictionary_page_defects_read_as_pyarrow_reads,
        commit_checks::failure_at_every_step_recovers_to_before_or_after,
        commit_checks::staging_is_kept_while_the_journal_is_unknown,
        commit_checks::unfinished_journals_are_refused_or_recovered,
        commit_checks::leases_are_locks_or_conditional_objects,
        compact_checks::compact_merges_small_files_and_keeps_rows,
        compact_checks::compact_works_per_partition,
        compact_checks::compact_packs_groups_up_to_the_target,
        compact_checks::compact_dry_run_writes_nothing,
        compact_checks::compact_unifies_evolved_schemas,
        compact_checks::compact_errors_are_typed,
        compact_checks::compact_leaves_files_without_rows,
        compact_checks::reports_name_what_executed,
        compact_checks::compact_by_rows_splits_packs_and_reports,
        dedup_checks::dedup_by_key_and_exact_rows,
        sort_checks::sort_under_a_small_budget_spills_and_orders,
        key_match_checks::key_match_on_a_source_larger_than_the_budget,
        merge_checks::upsert_updates_and_inserts,
        merge_checks::composite_keys_match_whole_tuples,
        merge_checks::insert_adds_only_new_keys,
        merge_checks::update_changes_only_existing_keys,
        merge_checks::full_merge_syncs_to_the_source,
        merge_checks::deduplicate_then_upsert,
        merge_checks::duplicate_source_keys_last_wins,
        merge_checks::missing_target_is_created_or_left_alone,
        merge_checks::incremental_rewrites_only_affected_files,
        merge_checks::key_scan_confirms_when_statistics_cannot,
        merge_checks::partitions_are_kept_and_moves_rejected,
        merge_checks::invalid_merges_are_typed_errors,
        merge_checks::int32_source_keys_match_int64_dataset,
        merge_checks::dry_run_plans_without_writing,
        merge_checks::full_rewrite_mode_gives_the_same_rows,
        merge_checks::merge_reads_only_what_pruning_allows,
        merge_checks::failing_store_fails_cleanly_and_recovers,
        merge_checks::merge_edge_cases,
        merge_checks::bloom_filters_prune_before_the_key_scan,
        merge_checks::bloom_filters_of_narrower_keys_are_not_misread,
        merge_checks::spilled_source_matches_the_in_memory_path,
        merge_checks::merge_checks_pass_on_a_spilled_source,
        compact_checks::compact_commits_in_parts,
        optimize_checks::optimize_clusters_rows_within_partitions,
        optimize_checks::optimize_again_is_a_no_op,
        optimize_checks::optimize_deduplicates_in_the_same_rewrite,
        optimize_checks::optimize_sorts_beyond_the_budget,
        optimize_checks::optimize_prunes_a_one_percent_slice,
        optimize_checks::optimize_errors_are_typed,
        optimize_checks::optimize_handles_columns_some_folders_lack,
        sql_checks::sql_aggregates_with_typed_partition_columns,
        sql_checks::sql_binds_typed_parameters,
        sql_checks::sql_joins_two_datasets,
        sql_checks::sql_reads_evolved_schemas,
        sql_checks::sql_errors_are_typed,
        sql_checks::sql_prunes_before_reading,
        sql_checks::sql_opens_only_what_pruning_allows,
        sql_checks::sql_out_of_memory_is_typed,
        progress_checks::progress_names_phases_with_exact_totals
            }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __all_checks_fn {
    ([] $($module:ident :: $name:ident),* $(,)?) => {
        /// Every check, by `module::name`.
        pub fn all_checks() -> Vec<(&'static str, CheckFn)> {
            vec![$((
                concat!(stringify!($module), "::", stringify!($name)),
                (|backend, fixture| $module::$name(backend, fixture).boxed()) as CheckFn,
            )),*]
        }
    };
}

__with_checks!(__all_checks_fn[]);

#[doc(hidden)]
#[macro_export]
macro_rules! __check_tests {
    ([$backend:expr] $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let backend = $backend;
                $crate::run_check(
                    &backend,
                    stringify!($name),
                    |b, f| $crate::__boxed($crate::$module::$name(b, f)),
                    &$crate::stores_under_test(),
                )
                .await;
            }
        )*
    };
}

/// One `#[tokio::test]` per conformance check, named after the check, each running it on
/// every store of [`stores_under_test`] with the engine `$backend` builds:
///
/// ```ignore
/// mod conformance {
///     fsk_conformance::conformance_tests!(fsk_arrow::ArrowBackend::new());
/// }
/// ```
///
/// so `cargo test -p fsk-arrow conformance::merge_edge_cases` runs one check, and a failure
/// names the check, the engine and the store.
#[macro_export]
macro_rules! conformance_tests {
    ($backend:expr) => {
        $crate::__with_checks!(__check_tests[$backend]);
    };
}

/// Boxes a check's future (for [`conformance_tests!`]).
#[doc(hidden)]
pub fn __boxed<'a>(f: impl std::future::Future<Output = ()> + Send + 'a) -> BoxFuture<'a, ()> {
    f.boxed()
}

/// Runs the check `name` on each of `kinds`, each on a fresh fixture; panics naming the
/// check, the engine and every store it failed on.
pub async fn run_check(
    backend: &dyn DatasetBackend,
    name: &str,
    check: CheckFn,
    kinds: &[StoreUnderTest],
) {
    let mut failures = Vec::new();
    for &kind in kinds {
        if let Some(message) = run_one(backend, check, kind).await {
            failures.push(format!("[{kind:?}]: {message}"));
        }
    }
    assert!(
        failures.is_empty(),
        "conformance check {name} failed on the {} engine:\n{}",
        backend.name(),
        failures.join("\n")
    );
}

/// Runs `check` once on a fresh fixture of `kind`; the panic message if it failed.
async fn run_one(
    backend: &dyn DatasetBackend,
    check: CheckFn,
    kind: StoreUnderTest,
) -> Option<String> {
    let fixture = Fixture::new(kind);
    let outcome = AssertUnwindSafe(check(backend, &fixture))
        .catch_unwind()
        .await;
    outcome.err().map(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".to_string())
    })
}

/// Runs every check on every store of [`stores_under_test`]; panics listing every failure.
pub async fn run_all(backend: &dyn DatasetBackend) {
    run_on(backend, &stores_under_test()).await;
}

/// Runs every check on the given stores; panics listing every failure.
pub async fn run_on(backend: &dyn DatasetBackend, kinds: &[StoreUnderTest]) {
    let mut failures = Vec::new();
    let mut ran = 0;
    for &kind in kinds {
        for (name, check) in all_checks() {
            ran += 1;
            if let Some(message) = run_one(backend, check, kind).await {
                failures.push(format!("{name} [{kind:?}]: {message}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} conformance checks failed on the {} engine:\n{}",
        failures.len(),
        backend.name(),
        failures.join("\n")
    );
    eprintln!(
        "{ran} conformance checks passed on the {} engine ({kinds:?})",
        backend.name()
    );
}

/// [`run_on`] through `Arc<dyn DatasetBackend>`, on the memory store: dynamic dispatch does
/// not depend on the store, so local disk and S3 are left to [`run_all`].
pub async fn run_all_arc(backend: Arc<dyn DatasetBackend>) {
    run_on(backend.as_ref(), &[StoreUnderTest::Memory]).await;
}
