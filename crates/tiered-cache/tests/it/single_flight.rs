//! Single flight: concurrent misses on one key run one loader.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tiered_cache::{LoadError, TieredCache};
use tokio::sync::Barrier;

use crate::{LoaderFailed, config};

const CALLERS: usize = 50;

/// Runs `CALLERS` concurrent `get_or_load` calls of `key`, released together, each with a
/// loader that counts its runs, waits a while (so the calls overlap), then returns `result`.
async fn stampede(
    cache: &TieredCache<String>,
    key: &str,
    result: Result<&str, ()>,
) -> anyhow::Result<(usize, Vec<Result<String, LoadError<LoaderFailed>>>)> {
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(CALLERS));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cache, calls, barrier) = (cache.clone(), Arc::clone(&calls), Arc::clone(&barrier));
            let key = key.to_owned();
            let result = result.map(str::to_owned);
            tokio::spawn(async move {
                barrier.wait().await;
                cache
                    .get_or_load(&key, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        result.map_err(|()| LoaderFailed)
                    })
                    .await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(CALLERS);
    for task in tasks {
        results.push(task.await?);
    }
    Ok((calls.load(Ordering::SeqCst), results))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_misses_run_the_loader_once() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    let cache = TieredCache::<String>::new(config(&namespace))?;
    let (calls, results) = stampede(&cache, "hot", Ok("loaded once")).await?;

    assert_eq!(calls, 1, "the loader ran {calls} times");
    assert_eq!(results.len(), CALLERS);
    for result in results {
        assert_eq!(result?, "loaded once");
    }
    let stats = cache.stats();
    assert_eq!(stats.loader_calls, 1);
    assert_eq!(stats.l2_misses, 1, "one Redis lookup for the whole group");
    assert_eq!(stats.l1_hits + stats.l1_misses, CALLERS as u64);
    // The one load reached Redis as well.
    let elsewhere = TieredCache::<String>::new(config(&namespace))?;
    assert_eq!(elsewhere.get("hot").await.as_deref(), Some("loaded once"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_load_is_shared_and_not_cached() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    let cache = TieredCache::<String>::new(config(&namespace))?;
    let (calls, results) = stampede(&cache, "hot", Err(())).await?;
    assert_eq!(calls, 1, "the loader ran {calls} times");
    for result in results {
        assert!(matches!(result, Err(LoadError::Loader(_))), "{result:?}");
    }
    // Nothing was cached: the next group loads again.
    let (calls, results) = stampede(&cache, "hot", Ok("second try")).await?;
    assert_eq!(calls, 1);
    assert!(
        results
            .into_iter()
            .all(|r| r.is_ok_and(|v| v == "second try"))
    );
    assert_eq!(cache.stats().loader_errors, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn different_keys_load_independently() -> anyhow::Result<()> {
    let namespace = provision::shared()?.redis_namespace();
    let cache = TieredCache::<String>::new(config(&namespace))?;
    let calls = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (cache, calls) = (cache.clone(), Arc::clone(&calls));
            tokio::spawn(async move {
                let key = format!("key-{}", i % 8);
                cache
                    .get_or_load(&key, || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, LoaderFailed>(key.clone())
                    })
                    .await
                    .map(|value| (value, key))
            })
        })
        .collect();
    for task in tasks {
        let (value, key) = task.await??;
        assert_eq!(value, key);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 8);
    Ok(())
}
