//! The sort primitive on DataFusion: the input stream as a table, a `SortExec` under a
//! `FairSpillPool` of the budget's size with a disk manager in the budget's folder, so the
//! sort spills sorted runs and merges them when the input outgrows the budget. The spill
//! count comes from the plan's metrics once the output is consumed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext, ident};
use futures::{StreamExt, TryStreamExt};

use fsk_core::engine::Batches;
use fsk_core::engine::Sorted;
use fsk_core::error::Result;
use fsk_core::plan::sort::{MemoryBudget, SortKey, validate_keys};

use crate::{ENGINE, from_datafusion, register_stream};

/// The spills of every operator of `plan`.
fn spills(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    let own = plan.metrics().and_then(|m| m.spill_count()).unwrap_or(0) as u64;
    own + plan.children().iter().map(|c| spills(c)).sum::<u64>()
}

/// A session whose operators share a `FairSpillPool` of `budget`'s size and spill to its
/// folder, with `target_partitions` partitions.
pub(crate) fn budget_context(
    budget: &MemoryBudget,
    target_partitions: usize,
) -> Result<SessionContext> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(budget.bytes)))
        .with_disk_manager_builder(
            DiskManagerBuilder::default()
                .with_mode(DiskManagerMode::Directories(vec![budget.spill_dir()])),
        )
        .build_arc()
        .map_err(from_datafusion)?;
    let mut config = SessionConfig::new().with_target_partitions(target_partitions);
    // What a sort reserves for merging its spilled runs comes out of the same budget.
    config.options_mut().execution.sort_spill_reservation_bytes = (budget.bytes / 4).min(10 << 20);
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// Sorts `input` by `keys` in DataFusion within `budget`.
pub(crate) async fn sort(
    input: Batches,
    keys: &[SortKey],
    budget: &MemoryBudget,
) -> Result<Sorted> {
    let (schema, stream) = input.into_parts();
    validate_keys(&schema, keys)?;
    let ctx = budget_context(budget, crate::cores())?;
    register_stream(&ctx, "input", std::sync::Arc::clone(&schema), stream)?;
    let order = keys
        .iter()
        .map(|k| ident(&k.column).sort(!k.descending, k.nulls_first))
        .collect();
    let frame = ctx
        .table("input")
        .await
        .map_err(from_datafusion)?
        .sort(order)
        .map_err(from_datafusion)?;
    let plan = frame
        .create_physical_plan()
        .await
        .map_err(from_datafusion)?;
    let output = datafusion::physical_plan::execute_stream(Arc::clone(&plan), ctx.task_ctx())
        .map_err(from_datafusion)?;
    let counter = Arc::new(AtomicU64::new(0));
    let done = Arc::clone(&counter);
    let target = Arc::clone(&schema);
    let stream = output
        .map_err(from_datafusion)
        .map(move |batch| fsk_core::dataset::schema::cast_by_position(&batch?, &target))
        .chain(
            futures::stream::once(async move {
                // At the end: the plan's spill count (nothing is yielded).
                done.store(spills(&plan), Ordering::SeqCst);
                drop(ctx);
                None
            })
            .filter_map(|x| async move { x }),
        )
        .boxed();
    Ok(Sorted {
        stream,
        executor: ENGINE,
        spills: counter,
        spills_observed: true,
    })
}
