//! Async twins (feature `tokio`).

use super::*;

use resilience::with_async_sleeper;

#[tokio::test]
async fn retry_with_backoff_async_and_its_if_twin() {
    let manager = RetryManager::builder().async_sleeper(NoSleep).build();
    let mut calls = 0;
    let result: Result<u32, String> = manager
        .retry_with_backoff_async("async-op", &RetryConfig::new(3), || {
            calls += 1;
            let attempt = calls;
            async move { if attempt < 3 { Err("busy".to_string()) } else { Ok(attempt) } }
        })
        .await;
    assert_eq!(result, Ok(3));

    let mut calls = 0;
    let result: Result<(), io::Error> = manager
        .retry_with_backoff_if_async(
            "async-if",
            &RetryConfig::new(3),
            || {
                calls += 1;
                async { Err(io::Error::from(io::ErrorKind::NotFound)) }
            },
            |e: &io::Error| e.kind() == io::ErrorKind::TimedOut,
        )
        .await;
    assert!(result.is_err());
    assert_eq!(calls, 1);
}

static ASYNC_CALLS: AtomicU32 = AtomicU32::new(0);

#[retry(max = 3, initial = "50ms", jitter = 0.0)]
async fn fetch(fail_first: u32) -> Result<u32, ImportError> {
    let n = ASYNC_CALLS.fetch_add(1, Ordering::Relaxed);
    if n < fail_first { Err(ImportError::Timeout) } else { Ok(n) }
}

#[tokio::test]
async fn retry_attribute_on_async_fn() {
    let clock = ManualSleeper::new();
    let result = with_async_sleeper(&clock, fetch(2)).await;
    assert_eq!(result.unwrap(), 2);
    assert_eq!(clock.sleeps(), [50, 100].map(Duration::from_millis));
}

#[checkpointed(every = 10, id = "async-import-{batch}", manager = store, input = [photos])]
async fn import_async(
    store: &FailsafeManager,
    batch: u32,
    photos: &[u64],
    fail_at: Option<u64>,
    progress: &mut ImportProgress,
) -> Result<(), ImportError> {
    progress.total = photos.len() as u64;
    for &photo in photos {
        if Some(photo) == fail_at {
            return Err(ImportError::Damaged(photo));
        }
        progress.imported_bytes += photo;
    }
    Ok(())
}

#[tokio::test]
async fn checkpointed_async_fn_resumes_at_the_last_checkpoint() {
    let (_tmp, manager) = store();
    let photos: Vec<u64> = (0..50).collect();
    let mut progress = ImportProgress::default();
    assert!(import_async(&manager, 1, &photos, Some(37), &mut progress).await.is_err());
    let failed: Checkpoint<ImportProgress> =
        manager.load_checkpoint("async-import-1").unwrap().unwrap();
    assert_eq!((failed.cursor, failed.data.done), (30, 30));
    let mut progress = ImportProgress::default();
    import_async(&manager, 1, &photos, None, &mut progress).await.unwrap();
    assert_eq!(progress.imported_bytes, (0..50).sum::<u64>());
}
