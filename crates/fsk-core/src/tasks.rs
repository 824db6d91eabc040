//! Independent per-file work on every core: spawned tasks, a bounded number at a time.

use std::future::Future;

use crate::error::{Error, Result};

/// Runs `jobs` as spawned tasks, at most `limit` at a time (a finished task's slot is refilled
/// at once, whatever the others do), and returns their results in job order. On the first
/// error the tasks still running are aborted and awaited before the error is returned, so
/// nothing keeps writing into a transaction that is being rolled back; if the caller drops
/// this future, the tasks are aborted too (they live in a `JoinSet`).
pub async fn run_bounded<T, F>(jobs: impl IntoIterator<Item = F>, limit: usize) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    let mut pending = jobs.into_iter().enumerate();
    let mut running: tokio::task::JoinSet<(usize, Result<T>)> = tokio::task::JoinSet::new();
    let mut done: Vec<Option<T>> = Vec::new();
    let limit = limit.max(1);
    loop {
        while running.len() < limit {
            let Some((i, job)) = pending.next() else {
                break;
            };
            done.push(None);
            running.spawn(async move { (i, job.await) });
        }
        let Some(joined) = running.join_next().await else {
            return Ok(done
                .into_iter()
                .map(|v| v.expect("every task finished"))
                .collect());
        };
        let (i, outcome) = match joined {
            Ok(pair) => pair,
            Err(e) => (
                usize::MAX,
                Err(Error::Internal(format!("a task failed: {e}"))),
            ),
        };
        match outcome {
            Ok(value) => done[i] = Some(value),
            Err(e) => {
                running.abort_all();
                // Wait until every aborted task has stopped.
                while running.join_next().await.is_some() {}
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn results_keep_order_and_concurrency_is_bounded() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let jobs = (0..8u64).map(|i| {
            let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5 * (8 - i))).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(i)
            }
        });
        let out = run_bounded(jobs, 3).await.unwrap();
        assert_eq!(out, (0..8).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_error_stops_the_running_tasks_before_returning() {
        let finished = Arc::new(AtomicUsize::new(0));
        let jobs = (0..4u64).map(|i| {
            let finished = Arc::clone(&finished);
            async move {
                if i == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    return Err(Error::Internal("boom".into()));
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                finished.fetch_add(1, Ordering::SeqCst);
                Ok(i)
            }
        });
        let err = run_bounded(jobs, 4).await.unwrap_err();
        assert!(err.to_string().contains("boom"));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            finished.load(Ordering::SeqCst),
            0,
            "the others were aborted"
        );
    }
}
