//! Key confirmation: which rows of each candidate hold a source key, by its key columns
//! only. The engine's key match answers for the files it can read (one call for every
//! candidate); the core's scan and key index answer for the rest.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::datatypes::Schema;
use futures::StreamExt;

use crate::dataset::partition::PartitionSchema;
use crate::dataset::storage::Location;
use crate::engine::{KeyMatch, KeyMatcher, SOURCE_ROW_COLUMN, Scanner};
use crate::error::{Error, Result};
use crate::ops::Execution;
use crate::ops::merge::candidates::FilePlan;
use crate::ops::merge::source::{KeyEncoder, PartitionKey, Source, file_keys};
use crate::ops::merge::{Executors, FILES_IN_PARALLEL, MergeOptions, note_executor};
use crate::plan::scan::{ScanFile, ScanPlan};

/// Scans the key columns of one candidate through the engine's scan and records the matching
/// source rows, with each matching row's position in the file. Returns what read the keys.
async fn confirm(
    scanner: &dyn Scanner,
    location: &Location,
    plan: &mut FilePlan,
    source: &Source,
    key: &[String],
    converter: &KeyEncoder,
    file_key_cols: &[String],
) -> Result<&'static str> {
    let mut matched: HashSet<u32> = HashSet::new();
    let mut rows: Vec<(u64, u32)> = Vec::new();
    let mut executor = "none";
    if !plan.row_groups.is_empty() {
        let scan_plan = key_scan_plan(location, plan, file_key_cols);
        let mut spans = scan_plan.files[0].row_spans();
        let scan = scanner.scan(&scan_plan).await?;
        executor = scan.executor;
        let mut stream = scan.stream;
        let mut hint = 0;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let keys = file_keys(&batch, key, &plan.partition, converter)?;
            for row in 0..batch.num_rows() {
                let position = loop {
                    let Some(span) = spans.front_mut() else {
                        return Err(Error::Internal(format!(
                            "the key scan of {} returned more rows than its row groups hold",
                            plan.meta.file.relative
                        )));
                    };
                    if span.1 == 0 {
                        spans.pop_front();
                        continue;
                    }
                    let at = span.0;
                    span.0 += 1;
                    span.1 -= 1;
                    break at;
                };
                if let Some(s) = source.index.get(&keys, row, &mut hint) {
                    matched.insert(s);
                    rows.push((position, s));
                }
            }
        }
        if spans.iter().any(|s| s.1 > 0) {
            return Err(Error::Internal(format!(
                "the key scan of {} returned fewer rows than its row groups hold",
                plan.meta.file.relative
            )));
        }
    }
    let mut matched: Vec<u32> = matched.into_iter().collect();
    matched.sort_unstable();
    plan.matched = matched;
    plan.matched_rows = Arc::new(rows);
    Ok(executor)
}

/// The scan of one candidate's key columns (those stored in the file), its kept row groups
/// in file order, no filter.
fn key_scan_plan(location: &Location, plan: &FilePlan, file_key_cols: &[String]) -> ScanPlan {
    let schema = Arc::clone(&plan.meta.schema);
    let key_schema = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| file_key_cols.contains(f.name()))
            .map(|f| f.as_ref().clone())
            .collect::<Vec<_>>(),
    ));
    let mut row_groups = plan.row_groups.clone();
    row_groups.sort_unstable();
    ScanPlan::of_files(
        location,
        vec![ScanFile {
            meta: plan.meta.clone(),
            partition: HashMap::new(),
            row_groups,
        }],
        PartitionSchema { fields: Vec::new() },
        schema,
        key_schema,
        65_536,
    )
}

/// The source keys as the engine's key sets: one per value of the key's partition columns
/// (all source rows when no key column is a partition column), each holding the key columns
/// stored in files and [`SOURCE_ROW_COLUMN`].
struct KeySets {
    matcher: Arc<dyn KeyMatcher>,
    /// The values of the key's partition columns -> the set.
    by_partition: HashMap<PartitionKey, usize>,
    /// Positions of the key's partition columns among the partition columns.
    key_partitions: Vec<usize>,
}

impl KeySets {
    async fn prepare(
        key_match: &dyn KeyMatch,
        source: &Source,
        key: &[String],
        partitions: &[String],
        file_key_cols: &[String],
        budget: &crate::plan::sort::MemoryBudget,
    ) -> Result<Self> {
        let key_partitions: Vec<usize> = partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| key.contains(p))
            .map(|(i, _)| i)
            .collect();
        let mut by_partition: HashMap<PartitionKey, usize> = HashMap::new();
        let mut members: Vec<Vec<u32>> = Vec::new();
        for (row, &part) in source.parts.iter().enumerate() {
            let values = &source.part_keys[part as usize];
            let group: PartitionKey = key_partitions.iter().map(|&i| values[i].clone()).collect();
            let next = by_partition.len();
            let set = *by_partition.entry(group).or_insert(next);
            if set == members.len() {
                members.push(Vec::new());
            }
            members[set].push(row as u32);
        }
        if source.parts.is_empty() && source.num_rows() > 0 {
            by_partition.insert(Vec::new(), 0);
            members.push((0..source.num_rows() as u32).collect());
        }
        let mut fields: Vec<arrow::datatypes::FieldRef> = file_key_cols
            .iter()
            .map(|k| {
                source
                    .keys
                    .schema()
                    .field_with_name(k)
                    .map(|f| Arc::new(f.clone()))
                    .map_err(|_| Error::column_not_found(k, "source (key)", &source.keys.schema()))
            })
            .collect::<Result<_>>()?;
        fields.push(Arc::new(arrow::datatypes::Field::new(
            SOURCE_ROW_COLUMN,
            arrow::datatypes::DataType::UInt32,
            false,
        )));
        let schema = Arc::new(Schema::new(fields));
        let sets = members
            .into_iter()
            .map(|rows| {
                // One set of every row in order (no key partition column) is the keys as
                // they are: no copy.
                let whole = rows.len() == source.num_rows()
                    && rows.iter().enumerate().all(|(i, &r)| i as u32 == r);
                let rows = UInt32Array::from(rows);
                let mut columns = file_key_cols
                    .iter()
                    .map(|k| {
                        let column = source.key_column(k);
                        if whole {
                            return Ok(Arc::clone(column));
                        }
                        arrow::compute::take(column.as_ref(), &rows, None)
                            .map_err(|e| Error::arrow("gathering source keys", e))
                    })
                    .collect::<Result<Vec<_>>>()?;
                columns.push(Arc::new(rows) as ArrayRef);
                RecordBatch::try_new(Arc::clone(&schema), columns)
                    .map_err(|e| Error::arrow("gathering source keys", e))
            })
            .collect::<Result<Vec<_>>>()?;
        let matcher = key_match.prepare(sets, budget).await?;
        Ok(KeySets {
            matcher,
            by_partition,
            key_partitions,
        })
    }

    /// The key set of a candidate, or `None` when no source key lives in its partition.
    fn set_of(&self, plan: &FilePlan) -> Option<usize> {
        let group: PartitionKey = self
            .key_partitions
            .iter()
            .map(|&i| plan.part[i].clone())
            .collect();
        self.by_partition.get(&group).copied()
    }

    /// Matches the candidates `plans[i]` for `i` in `candidates` with the engine, in one
    /// call. Returns what scanned and what matched each file the engine matched (`"none"`
    /// where nothing could match), and leaves the others (which the engine cannot read) to
    /// the core.
    async fn confirm_all(
        &self,
        location: &Location,
        plans: &mut [FilePlan],
        candidates: &[usize],
        file_key_cols: &[String],
    ) -> Result<(Vec<(usize, &'static str, &'static str)>, Vec<usize>)> {
        let mut done = Vec::new();
        let mut asked = Vec::new();
        let mut requests = Vec::new();
        for &i in candidates {
            let plan = &mut plans[i];
            match self.set_of(plan) {
                Some(set) if !plan.row_groups.is_empty() => {
                    asked.push(i);
                    requests.push((key_scan_plan(location, plan, file_key_cols), set));
                }
                _ => {
                    plan.matched = Vec::new();
                    plan.matched_rows = Arc::new(Vec::new());
                    done.push((i, "none", "none"));
                }
            }
        }
        if requests.is_empty() {
            return Ok((done, Vec::new()));
        }
        let answers = self.matcher.match_files(&requests).await?;
        if answers.len() != asked.len() {
            return Err(Error::Internal(format!(
                "the key match answered {} of {} files",
                answers.len(),
                asked.len()
            )));
        }
        let mut left = Vec::new();
        for (i, answer) in asked.into_iter().zip(answers) {
            let Some(found) = answer else {
                left.push(i);
                continue;
            };
            let plan = &mut plans[i];
            let mut matched: Vec<u32> = found.rows.iter().map(|&(_, s)| s).collect();
            matched.sort_unstable();
            matched.dedup();
            plan.matched = matched;
            plan.matched_rows = Arc::new(found.rows);
            done.push((i, found.scan, found.executor));
        }
        Ok((done, left))
    }
}

/// Confirms the candidates (files not pruned) by their key columns: the engine's key match
/// where it has one and a key column is stored in the files, the core's scan and key index for
/// the files the engine cannot read (or for every candidate without one). Each candidate's
/// `matched` and `matched_rows` are filled; `execution` notes what scanned and what matched.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn confirm_candidates(
    executors: &Executors,
    location: &Location,
    plans: &mut [FilePlan],
    source: &Arc<Source>,
    options: &MergeOptions,
    partitions: &[String],
    file_key_cols: &[String],
    execution: &mut Execution,
) -> Result<()> {
    let candidates: Vec<usize> = (0..plans.len())
        .filter(|&i| plans[i].pruned.is_none())
        .collect();
    let key_sets = match &executors.key_match {
        Some(key_match) if !file_key_cols.is_empty() && !candidates.is_empty() => Some(
            KeySets::prepare(
                key_match.as_ref(),
                source,
                &options.key,
                partitions,
                file_key_cols,
                &options.memory,
            )
            .await?,
        ),
        _ => None,
    };
    // The engine matches what it can read; the core's scan and index match the rest.
    let core_candidates = match &key_sets {
        Some(sets) => {
            let (done, left) = sets
                .confirm_all(location, plans, &candidates, file_key_cols)
                .await?;
            options.progress.advance(done.len() as u64);
            for (_, scan, executor) in done {
                if executor != "none" {
                    note_executor(&mut execution.scan, scan);
                    note_executor(&mut execution.key_match, executor);
                }
            }
            left
        }
        None => candidates,
    };
    // Each scan is a spawned task on an owned copy of the file's plan (started lazily,
    // FILES_IN_PARALLEL at a time), so key columns decode on every core.
    let key = Arc::new(options.key.clone());
    let cols = Arc::new(file_key_cols.to_vec());
    let converter = Arc::new(KeyEncoder::new(&source.keys.schema(), &options.key)?);
    let jobs: Vec<(usize, FilePlan)> = core_candidates
        .iter()
        .map(|&i| (i, plans[i].clone()))
        .collect();
    let scans = jobs.into_iter().map(|(i, mut plan)| {
        let (location, source) = (location.clone(), Arc::clone(source));
        let (key, converter, cols) = (Arc::clone(&key), Arc::clone(&converter), Arc::clone(&cols));
        let scanner = Arc::clone(&executors.scanner);
        let progress = options.progress.clone();
        async move {
            let executor = confirm(
                scanner.as_ref(),
                &location,
                &mut plan,
                &source,
                &key,
                &converter,
                &cols,
            )
            .await?;
            progress.advance(1);
            Ok::<_, Error>((i, plan, executor))
        }
    });
    let scanned = crate::tasks::run_bounded(scans, FILES_IN_PARALLEL).await?;
    for (i, plan, executor) in scanned {
        plans[i] = plan;
        if executor != "none" {
            note_executor(&mut execution.scan, executor);
            note_executor(&mut execution.key_match, crate::ops::CORE_KEY_MATCH);
        }
    }
    Ok(())
}
