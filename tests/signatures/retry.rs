//! Shapes under `#[retry]`.
//!
//! Each shape is retried for real: a `Transient` error (recovery `Retry`) is attempted
//! `max + 1` times, a `Fatal` one (recovery `Abort`) once. No test sleeps: delays go to a
//! `ManualSleeper`.

use std::cell::Cell;
use std::fmt::Debug;

use resilience::{Classify, ManualSleeper, retry, with_sleeper};

#[derive(Debug, Clone, Copy, PartialEq, Classify)]
enum JobError {
    #[classify(retry)]
    Transient,
    #[classify(abort)]
    Fatal,
}

impl JobError {
    fn is_transient(&self) -> bool {
        *self == JobError::Transient
    }
}

/// Runs `f` with sleeps recorded, not slept.
fn quick<R>(f: impl FnOnce() -> R) -> R {
    with_sleeper(&ManualSleeper::new(), f)
}

fn count(calls: &Cell<u32>) {
    calls.set(calls.get() + 1);
}

/// The attempts one call makes when every attempt fails with `error`.
fn attempts(
    error: JobError,
    call: impl FnOnce(&Cell<u32>, JobError) -> Result<u32, JobError>,
) -> u32 {
    let calls = Cell::new(0);
    assert_eq!(quick(|| call(&calls, error)), Err(error));
    calls.get()
}

// Arguments and the return type passed through `macro_rules!` fragments other than `ident`
// arrive in invisible groups.
macro_rules! retried {
    ($name:ident, $max:literal, $label:expr, $when:path, $ret:ty) => {
        #[retry(max = $max, initial = "1ms", name = $label, when = $when)]
        fn $name(calls: &Cell<u32>, error: JobError) -> $ret {
            count(calls);
            Err(error)
        }
    };
    ($name:ident, $ret:ty) => {
        #[retry(max = 3)]
        fn $name(calls: &Cell<u32>, error: JobError) -> $ret {
            count(calls);
            Err(error)
        }
    };
}

retried!(through_macro, 2, "signatures::through_macro", JobError::is_transient, Result<u32, JobError>);
retried!(return_type_through_macro, Result<u32, JobError>);

#[test]
fn arguments_and_return_type_through_macro_rules() {
    assert_eq!(attempts(JobError::Transient, through_macro), 3);
    assert_eq!(attempts(JobError::Fatal, through_macro), 1);
    assert_eq!(attempts(JobError::Transient, return_type_through_macro), 4);
    assert_eq!(attempts(JobError::Fatal, return_type_through_macro), 1);
}

type Fallible<T> = Result<T, JobError>;

#[retry(max = 3)]
fn through_alias(calls: &Cell<u32>, error: JobError) -> Fallible<u32> {
    count(calls);
    Err(error)
}

#[test]
fn result_alias_of_any_name() {
    assert_eq!(attempts(JobError::Transient, through_alias), 4);
    assert_eq!(attempts(JobError::Fatal, through_alias), 1);
}

#[retry(max = 3)]
fn generic_classified<E: Classify + Debug + Copy>(calls: &Cell<u32>, error: E) -> Result<u32, E> {
    count(calls);
    Err(error)
}

#[retry(max = 3, when = always)]
fn generic_always<E: Debug + Copy>(calls: &Cell<u32>, error: E) -> Result<u32, E> {
    count(calls);
    Err(error)
}

trait Job {
    type Error: Classify + Debug;

    fn error(&self) -> Self::Error;

    #[retry(max = 3)]
    fn run(&self, calls: &Cell<u32>) -> Result<u32, Self::Error> {
        count(calls);
        Err(self.error())
    }
}

struct Failing(JobError);

impl Job for Failing {
    type Error = JobError;

    fn error(&self) -> JobError {
        self.0
    }
}

#[test]
fn generic_error_types_are_classified() {
    assert_eq!(attempts(JobError::Transient, generic_classified), 4);
    assert_eq!(attempts(JobError::Fatal, generic_classified), 1);
    assert_eq!(attempts(JobError::Fatal, generic_always), 4);
    assert_eq!(attempts(JobError::Transient, |calls, e| Failing(e).run(calls)), 4);
    assert_eq!(attempts(JobError::Fatal, |calls, e| Failing(e).run(calls)), 1);
}

#[retry(max = 2)]
fn mut_argument(mut n: u32, seen: &Cell<u32>) -> Result<u32, JobError> {
    n += 1;
    seen.set(n);
    Err(JobError::Transient)
}

#[retry(max = 2)]
fn mut_in_pattern((mut n, step): (u32, u32), seen: &Cell<u32>) -> Result<u32, JobError> {
    n += step;
    seen.set(n);
    Err(JobError::Transient)
}

#[test]
fn each_attempt_sees_the_arguments_as_passed() {
    let seen = Cell::new(0);
    assert_eq!(quick(|| mut_argument(10, &seen)), Err(JobError::Transient));
    assert_eq!(seen.get(), 11);
    assert_eq!(quick(|| mut_in_pattern((10, 1), &seen)), Err(JobError::Transient));
    assert_eq!(seen.get(), 11);
}

/// Fails `failures` times with a transient error, then returns `n`.
fn step(calls: &Cell<u32>, failures: u32, n: u32) -> Result<u32, JobError> {
    count(calls);
    if calls.get() <= failures { Err(JobError::Transient) } else { Ok(n) }
}

#[retry(max = 3)]
fn opaque_ok(calls: &Cell<u32>, failures: u32) -> Result<impl Iterator<Item = u32>, JobError> {
    let n = step(calls, failures, 3)?;
    Ok(0..n)
}

#[test]
fn impl_trait_in_the_ok_type_with_question_mark() {
    let calls = Cell::new(0);
    let sum: u32 = quick(|| opaque_ok(&calls, 2)).unwrap().sum();
    assert_eq!((sum, calls.get()), (3, 3));
    let calls = Cell::new(0);
    assert!(quick(|| opaque_ok(&calls, 10)).is_err());
    assert_eq!(calls.get(), 4);
}

#[cfg(feature = "tokio")]
mod asynchronous {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use resilience::with_async_sleeper;

    use super::*;

    async fn quick<F: Future>(future: F) -> F::Output {
        with_async_sleeper(&ManualSleeper::new(), future).await
    }

    #[retry(max = 3)]
    async fn owned_args(
        name: String,
        suffix: impl AsRef<str>,
        calls: &Cell<u32>,
        error: JobError,
    ) -> Result<usize, JobError> {
        count(calls);
        if name.is_empty() { Ok(suffix.as_ref().len()) } else { Err(error) }
    }

    struct Service {
        calls: AtomicU32,
        error: JobError,
    }

    impl Service {
        fn new(error: JobError) -> Self {
            Service { calls: AtomicU32::new(0), error }
        }

        fn count(&self) -> u32 {
            self.calls.fetch_add(1, Ordering::Relaxed) + 1
        }

        fn calls(&self) -> u32 {
            self.calls.load(Ordering::Relaxed)
        }
    }

    fn assert_send<T: Send>(value: T) -> T {
        value
    }

    impl Service {
        #[retry(max = 3)]
        async fn shared(self: Arc<Self>, label: String) -> Result<u32, JobError> {
            self.count();
            if label.is_empty() { Ok(0) } else { Err(self.error) }
        }

        #[retry(max = 3)]
        async fn pinned(self: Pin<&mut Self>) -> Result<u32, JobError> {
            self.count();
            Err(self.error)
        }
    }

    #[tokio::test]
    async fn by_value_arguments_only_borrowed() {
        for (error, expected) in [(JobError::Transient, 4), (JobError::Fatal, 1)] {
            let calls = Cell::new(0);
            let result = quick(owned_args("job".to_owned(), "x", &calls, error)).await;
            assert_eq!((result, calls.get()), (Err(error), expected));

            // Borrowing the arguments keeps the future `Send`.
            let service = Arc::new(Service::new(error));
            let shared = assert_send(Arc::clone(&service).shared("job".to_owned()));
            assert_eq!((quick(shared).await, service.calls()), (Err(error), expected));

            let mut service = Service::new(error);
            let pinned = assert_send(Pin::new(&mut service).pinned());
            assert_eq!((quick(pinned).await, service.calls()), (Err(error), expected));
        }
    }

    #[retry(max = 2)]
    async fn mut_argument(mut n: u32, seen: &Cell<u32>) -> Result<u32, JobError> {
        n += 1;
        seen.set(n);
        Err(JobError::Transient)
    }

    #[retry(max = 2)]
    async fn mut_in_pattern((mut n, step): (u32, u32), seen: &Cell<u32>) -> Result<u32, JobError> {
        n += step;
        seen.set(n);
        Err(JobError::Transient)
    }

    #[tokio::test]
    async fn each_attempt_sees_the_arguments_as_passed() {
        let seen = Cell::new(0);
        assert_eq!(quick(mut_argument(10, &seen)).await, Err(JobError::Transient));
        assert_eq!(seen.get(), 11);
        assert_eq!(quick(mut_in_pattern((10, 1), &seen)).await, Err(JobError::Transient));
        assert_eq!(seen.get(), 11);
    }

    #[retry(max = 3)]
    async fn opaque_ok(
        calls: &Cell<u32>,
        failures: u32,
    ) -> Result<impl Iterator<Item = u32>, JobError> {
        let n = step(calls, failures, 3)?;
        Ok(0..n)
    }

    #[tokio::test]
    async fn impl_trait_in_the_ok_type_with_question_mark() {
        let calls = Cell::new(0);
        let sum: u32 = quick(opaque_ok(&calls, 2)).await.unwrap().sum();
        assert_eq!((sum, calls.get()), (3, 3));
    }

    #[retry(max = 3)]
    async fn through_alias(calls: &Cell<u32>, error: JobError) -> Fallible<u32> {
        count(calls);
        Err(error)
    }

    #[retry(max = 3)]
    async fn through_alias_borrowing(calls: &mut u32, error: JobError) -> Fallible<u32> {
        *calls += 1;
        Err(error)
    }

    #[tokio::test]
    async fn result_alias_of_any_name() {
        for (error, expected) in [(JobError::Transient, 4), (JobError::Fatal, 1)] {
            let calls = Cell::new(0);
            assert_eq!(quick(through_alias(&calls, error)).await, Err(error));
            let mut borrowed = 0;
            assert_eq!(quick(through_alias_borrowing(&mut borrowed, error)).await, Err(error));
            assert_eq!((calls.get(), borrowed), (expected, expected));
        }
    }

    #[async_trait::async_trait]
    trait Remote {
        async fn get(&self, key: String, mut n: u32, seen: &AtomicU32) -> Result<u32, JobError>;
    }

    #[async_trait::async_trait]
    impl Remote for Service {
        #[retry(max = 3)]
        async fn get(&self, key: String, mut n: u32, seen: &AtomicU32) -> Result<u32, JobError> {
            self.count();
            n += 1;
            seen.store(n, Ordering::Relaxed);
            if key.is_empty() { Ok(n) } else { Err(self.error) }
        }
    }

    #[async_trait::async_trait(?Send)]
    trait Counter {
        async fn bump(&mut self) -> Result<u32, JobError>;
    }

    struct Tally {
        calls: u32,
        error: JobError,
    }

    #[async_trait::async_trait(?Send)]
    impl Counter for Tally {
        #[retry(max = 3)]
        async fn bump(&mut self) -> Result<u32, JobError> {
            self.calls += 1;
            Err(self.error)
        }
    }

    #[tokio::test]
    async fn async_trait_methods() {
        for (error, expected) in [(JobError::Transient, 4), (JobError::Fatal, 1)] {
            let service = Service::new(error);
            let seen = AtomicU32::new(0);
            let call = assert_send(service.get("job".to_owned(), 10, &seen));
            assert_eq!(quick(call).await, Err(error));
            let seen = seen.load(Ordering::Relaxed);
            assert_eq!((service.calls(), seen), (expected, 11));

            let mut tally = Tally { calls: 0, error };
            assert_eq!(quick(tally.bump()).await, Err(error));
            assert_eq!(tally.calls, expected);
        }
    }

    trait Fetch {
        type Error: Classify + Debug;

        fn error(&self) -> Self::Error;

        #[retry(max = 3)]
        async fn fetch(&self, calls: &Cell<u32>) -> Result<u32, Self::Error> {
            count(calls);
            Err(self.error())
        }
    }

    impl Fetch for Failing {
        type Error = JobError;

        fn error(&self) -> JobError {
            self.0
        }
    }

    #[tokio::test]
    async fn async_trait_default_method_with_generic_error() {
        for (error, expected) in [(JobError::Transient, 4), (JobError::Fatal, 1)] {
            let calls = Cell::new(0);
            assert_eq!(quick(Failing(error).fetch(&calls)).await, Err(error));
            assert_eq!(calls.get(), expected);
        }
    }
}
