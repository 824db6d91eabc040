//! The key-match primitive on DataFusion: the merge's source keys are registered once as
//! memory tables (`keys_<set>`) in a session whose memory pool is the merge's budget; each
//! candidate file is read by the DataFusion scan ([`crate::scan`]), numbered with each row's
//! position in the file, and joined with its set by DataFusion's hash join (an inner join
//! on the key). Only the matching rows' positions and source rows come back.
//!
//! The file's keys are the join's build side (the session has one target partition, so the
//! join collects its left input whole, and the file is on the left) and the source keys
//! stream through the probe side: DataFusion's hash join does not spill, so what it holds is
//! bounded by a file's keys (times the files matched at once), never by the source. The
//! build side is reserved in the budget's memory pool; a budget smaller than that is a typed
//! error ("Resources exhausted").

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Field, SchemaRef, UInt32Type, UInt64Type};
use async_trait::async_trait;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};

use fsk_core::engine::{
    KeyMatch, KeyMatcher, KeyMatches, POSITION_COLUMN, SOURCE_ROW_COLUMN, numbered_keys,
};
use fsk_core::error::{Error, Result};
use fsk_core::expr::quote_ident;
use fsk_core::plan::scan::ScanPlan;
use fsk_core::plan::sort::MemoryBudget;

use crate::{ENGINE, from_datafusion, register_stream};

/// Builds DataFusion key matchers.
#[derive(Debug)]
pub(crate) struct DataFusionKeyMatch;

#[async_trait]
impl KeyMatch for DataFusionKeyMatch {
    async fn prepare(
        &self,
        sets: Vec<RecordBatch>,
        budget: &MemoryBudget,
    ) -> Result<Arc<dyn KeyMatcher>> {
        let ctx = crate::sort::budget_context(budget, 1)?;
        let mut schemas = Vec::with_capacity(sets.len());
        for (i, set) in sets.into_iter().enumerate() {
            let schema = set.schema();
            let table =
                MemTable::try_new(Arc::clone(&schema), vec![vec![set]]).map_err(from_datafusion)?;
            ctx.register_table(format!("keys_{i}"), Arc::new(table))
                .map_err(from_datafusion)?;
            schemas.push(schema);
        }
        Ok(Arc::new(DataFusionKeyMatcher {
            ctx,
            schemas,
            next: AtomicU64::new(0),
        }))
    }
}

/// The source keys held in a DataFusion session, joined with one file at a time.
struct DataFusionKeyMatcher {
    ctx: SessionContext,
    /// Each set's schema: key columns, then the source row.
    schemas: Vec<SchemaRef>,
    /// Names each file's table uniquely.
    next: AtomicU64,
}

impl std::fmt::Debug for DataFusionKeyMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataFusionKeyMatcher")
            .field("schemas", &self.schemas)
            .finish()
    }
}

/// How many files are matched at once.
const FILES_IN_FLIGHT: usize = 4;

#[async_trait]
impl KeyMatcher for DataFusionKeyMatcher {
    async fn match_files(&self, requests: &[(ScanPlan, usize)]) -> Result<Vec<Option<KeyMatches>>> {
        let jobs: Vec<_> = requests
            .iter()
            .map(|(plan, set)| self.match_one(plan, *set))
            .collect();
        futures::stream::iter(jobs)
            .buffered(FILES_IN_FLIGHT)
            .try_collect()
            .await
    }
}

impl DataFusionKeyMatcher {
    /// Joins one file with its set.
    async fn match_one(&self, plan: &ScanPlan, set: usize) -> Result<Option<KeyMatches>> {
        let Some(set_schema) = self.schemas.get(set) else {
            return Err(Error::Internal(format!("no key set {set}")));
        };
        if plan.files.len() != 1 {
            return Err(Error::Internal("a key match reads one file".into()));
        }
        let keys: Vec<Arc<Field>> = set_schema
            .fields()
            .iter()
            .filter(|f| f.name() != SOURCE_ROW_COLUMN)
            .cloned()
            .collect();
        let (probe, stream) =
            numbered_keys(plan, crate::scan::scan(plan)?, keys.clone())?.into_parts();
        let name = format!("file_{}", self.next.fetch_add(1, Ordering::Relaxed));
        register_stream(&self.ctx, &name, probe, stream)?;
        let on = keys
            .iter()
            .map(|f| format!("f.{0} = k.{0}", quote_ident(f.name())))
            .collect::<Vec<_>>()
            .join(" AND ");
        let sql = format!(
            "SELECT f.{pos}, k.{row} FROM {name} AS f JOIN keys_{set} AS k ON {on}",
            pos = quote_ident(POSITION_COLUMN),
            row = quote_ident(SOURCE_ROW_COLUMN),
        );
        let outcome = async {
            let frame = self.ctx.sql(&sql).await.map_err(from_datafusion)?;
            let batches: Vec<RecordBatch> = frame
                .execute_stream()
                .await
                .map_err(from_datafusion)?
                .map_err(from_datafusion)
                .try_collect()
                .await?;
            let mut rows = Vec::new();
            for batch in &batches {
                let positions = batch.column(0).as_primitive::<UInt64Type>();
                let sources = batch.column(1).as_primitive::<UInt32Type>();
                rows.extend((0..batch.num_rows()).map(|i| (positions.value(i), sources.value(i))));
            }
            rows.sort_unstable();
            Ok::<_, Error>(rows)
        }
        .await;
        let _ = self.ctx.deregister_table(&name);
        Ok(Some(KeyMatches {
            rows: outcome?,
            executor: ENGINE,
            scan: ENGINE,
        }))
    }
}
