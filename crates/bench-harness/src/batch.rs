//! The timing loop of the concurrent benchmarks: one criterion iteration is one batch of N
//! operations running on N tokio tasks at once, timed from the first spawn to the last join.
//! Operations that change state get fresh state for every batch: the users of the next few
//! batches are reset together before those batches run, outside the timing.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::task::JoinSet;

/// The shape of a concurrent benchmark: `tasks` operations per batch, each on a user of its own,
/// and `per_reset` batches' worth of users reset at once.
///
/// Resetting several batches' users in one statement keeps the reset's share of the counted
/// allocations small: a criterion routine given to `iter_custom` is counted as a whole, so the
/// reset cannot be left out of the counts, only made rare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batches {
    /// Concurrent operations per batch (per criterion iteration).
    pub tasks: usize,
    /// Batches whose users are reset together.
    pub per_reset: usize,
}

impl Batches {
    /// Distinct users the benchmark needs: one per task of every batch between two resets.
    pub fn users(&self) -> usize {
        self.tasks * self.per_reset
    }

    /// The batches run after each reset, for `iters` batches in all.
    pub fn rounds(&self, iters: u64) -> impl Iterator<Item = usize> + use<> {
        let per_reset = self.per_reset.max(1) as u64;
        let full = iters / per_reset;
        let rest = iters % per_reset;
        // Both fit in usize: `rest < per_reset`, which came from a usize.
        std::iter::repeat_n(per_reset as usize, full as usize)
            .chain((rest > 0).then_some(rest as usize))
    }
}

/// Runs `iters` batches and returns the wall time of the batches alone.
///
/// Before each round of at most `per_reset` batches, `reset` gets the users that round will use
/// (untimed); then batch after batch, each of `tasks` users gets an `op` spawned on a task of its
/// own, and the batch is timed until every task has finished. An operation that fails (or
/// panics) is an error: a benchmark must not time failures.
pub async fn run_batches<U, F, Fut>(
    batches: &Batches,
    iters: u64,
    users: &[U],
    mut reset: impl AsyncFnMut(&[U]) -> anyhow::Result<()>,
    op: F,
) -> anyhow::Result<Duration>
where
    U: Clone,
    F: Fn(U) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    anyhow::ensure!(batches.tasks > 0, "a batch needs at least one task");
    anyhow::ensure!(
        users.len() >= batches.users(),
        "{} users for batches of {} tasks, {} batches per reset",
        users.len(),
        batches.tasks,
        batches.per_reset
    );
    let mut elapsed = Duration::ZERO;
    let mut tasks = JoinSet::new();
    for round in batches.rounds(iters) {
        let round_users = &users[..round * batches.tasks];
        reset(round_users)
            .await
            .context("resetting the users of the next batches")?;
        for batch in round_users.chunks(batches.tasks) {
            let start = Instant::now();
            for user in batch {
                tasks.spawn(op(user.clone()));
            }
            while let Some(joined) = tasks.join_next().await {
                joined.context("a benchmark task panicked")??;
            }
            elapsed += start.elapsed();
        }
    }
    Ok(elapsed)
}

/// Runs `op(0)` to `op(tasks - 1)` all at once, each on a task of its own, and waits for all.
///
/// The suites call it with one task per pooled connection before measuring, once per kind of
/// statement they run: sqlx prepares a statement on each connection the first time that
/// connection runs it, and the pool hands its idle connections out in turn. Without this, a
/// connection that meets a statement for the first time in the middle of a measurement adds the
/// preparation's allocations to it, and how many do so changes from run to run.
pub async fn all_at_once<F, Fut>(tasks: usize, op: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut running = JoinSet::new();
    for task in 0..tasks {
        running.spawn(op(task));
    }
    while let Some(joined) = running.join_next().await {
        joined.context("a task panicked")??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn rounds_cover_every_iteration() {
        let batches = Batches {
            tasks: 8,
            per_reset: 4,
        };
        assert_eq!(batches.users(), 32);
        assert_eq!(batches.rounds(10).collect::<Vec<_>>(), vec![4, 4, 2]);
        assert_eq!(batches.rounds(8).collect::<Vec<_>>(), vec![4, 4]);
        assert_eq!(batches.rounds(1).collect::<Vec<_>>(), vec![1]);
        assert_eq!(batches.rounds(0).count(), 0);
    }

    /// Every batch starts from freshly reset users, runs `tasks` operations at once, and the
    /// resets are not timed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_batch_runs_concurrently_on_fresh_users() {
        let batches = Batches {
            tasks: 4,
            per_reset: 3,
        };
        let users: Vec<usize> = (0..12).collect();
        // One flag per user: set by a reset, taken by the operation, which fails on a user that
        // was not reset since its last use.
        let fresh: Arc<Vec<AtomicUsize>> = Arc::new((0..12).map(|_| AtomicUsize::new(0)).collect());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut resets = Vec::new();
        let elapsed = run_batches(
            &batches,
            7,
            &users,
            async |round: &[usize]| {
                resets.push(round.len());
                for &user in round {
                    fresh[user].store(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(())
            },
            |user| {
                let (fresh, running, most) = (fresh.clone(), running.clone(), most.clone());
                async move {
                    anyhow::ensure!(fresh[user].swap(0, Ordering::SeqCst) == 1, "stale {user}");
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                }
            },
        )
        .await
        .unwrap();
        // 7 batches: rounds of 3, 3 and 1 batches.
        assert_eq!(resets, vec![12, 12, 4]);
        assert_eq!(
            most.load(Ordering::SeqCst),
            4,
            "the tasks of a batch overlap"
        );
        // Three resets of 200 ms would show; seven batches of about 20 ms are all that is timed.
        assert!(elapsed >= Duration::from_millis(140), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(600), "{elapsed:?}");
    }

    #[tokio::test]
    async fn a_failing_operation_is_an_error() {
        let batches = Batches {
            tasks: 2,
            per_reset: 1,
        };
        let error = run_batches(
            &batches,
            3,
            &[1, 2],
            async |_: &[i32]| Ok(()),
            |user| async move {
                anyhow::ensure!(user != 2, "user {user} failed");
                Ok(())
            },
        )
        .await
        .unwrap_err();
        assert_eq!(error.to_string(), "user 2 failed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn all_at_once_overlaps_every_task() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        all_at_once(16, |_| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .await
        .unwrap();
        assert_eq!(most.load(Ordering::SeqCst), 16);
        let failed = all_at_once(3, |task| async move {
            anyhow::ensure!(task != 1, "task {task} failed");
            Ok(())
        })
        .await;
        assert_eq!(failed.unwrap_err().to_string(), "task 1 failed");
    }

    #[tokio::test]
    async fn too_few_users_is_an_error() {
        let batches = Batches {
            tasks: 4,
            per_reset: 2,
        };
        let result = run_batches(
            &batches,
            1,
            &[0; 7],
            async |_: &[i32]| Ok(()),
            |_| async { Ok(()) },
        )
        .await;
        assert!(result.is_err());
    }
}
