//! Pausing tracked loops: on Ctrl-C (SIGINT) or SIGTERM, or when the code asks.
//!
//! A pause request is one process-wide flag. Every tracked loop of `#[checkpointed]` and
//! `#[protected]` reads it before each item (one relaxed load); once it is set, the loop
//! finishes the item it is on, saves a `Paused` checkpoint at that boundary and its function
//! returns [`Error::Paused`](crate::Error::Paused), converted into the function's error type.
//! The next call resumes after the last finished item: nothing is done twice. The request
//! stays set, so every tracked loop of the process stops (and one started later stops before
//! its first item) until [`cancel_pause`] clears it.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by a signal or [`request_pause`]; read by every tracked loop before each item.
static PAUSE: AtomicBool = AtomicBool::new(false);
/// Set by the first SIGINT or SIGTERM: the next one gets the default action.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Whether a pause was requested. The tracked loop's per-item check.
#[inline(always)]
pub(crate) fn requested() -> bool {
    PAUSE.load(Ordering::Relaxed)
}

/// Makes SIGINT (Ctrl-C) and SIGTERM pause the process's tracked loops instead of killing it.
///
/// The first of these signals requests a pause, as [`request_pause`] does: each running tracked
/// loop finishes its current item, saves a `Paused` checkpoint and returns
/// [`Error::Paused`](crate::Error::Paused). A second signal restores the default action and
/// raises the signal again, so a second Ctrl-C ends a process that does not stop by itself.
/// Installing the handlers more than once does nothing. On platforms without POSIX signals it
/// does nothing.
///
/// ```no_run
/// resilience::pause_on_signals();
/// // ... run the job: on Ctrl-C, its tracked loop returns `Error::Paused`
/// ```
pub fn pause_on_signals() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(install);
}

#[cfg(unix)]
fn install() {
    extern "C" fn on_signal(signal: libc::c_int) {
        // Only async-signal-safe work here: lock-free atomics, `signal` and `raise`.
        if SIGNALLED.swap(true, Ordering::SeqCst) {
            // SAFETY: `signal` and `raise` are async-signal-safe (POSIX.1-2008, signal-safety(7)).
            unsafe {
                libc::signal(signal, libc::SIG_DFL);
                libc::raise(signal);
            }
        } else {
            PAUSE.store(true, Ordering::SeqCst);
        }
    }
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed `sigaction` is a valid value to fill in; the handler only touches
        // atomics and async-signal-safe functions.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                tracing::warn!(
                    target: "resilience::failsafe",
                    signal,
                    "cannot install the pause handler: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

#[cfg(not(unix))]
fn install() {}

/// Requests a pause, as the first SIGINT or SIGTERM does after [`pause_on_signals`]: every
/// running tracked loop finishes its current item, saves a `Paused` checkpoint at that boundary
/// and its function returns [`Error::Paused`](crate::Error::Paused).
///
/// ```
/// use std::sync::Mutex;
/// use resilience::{Error, FailsafeManager, ProcessState, checkpointed};
///
/// #[checkpointed(manager = store, id = "count")]
/// fn count(store: &FailsafeManager, seen: &Mutex<Vec<u64>>) -> Result<(), Error> {
///     for item in 0..10 {
///         seen.lock().unwrap().push(item);
///         if item == 3 {
///             resilience::request_pause(); // as Ctrl-C would, mid-item
///         }
///     }
///     Ok(())
/// }
///
/// # let tmp = tempfile::tempdir()?;
/// let store = FailsafeManager::open(tmp.path())?;
/// let seen = Mutex::new(Vec::new());
/// assert!(matches!(count(&store, &seen), Err(Error::Paused { .. })));
/// assert_eq!(*seen.lock().unwrap(), [0, 1, 2, 3]); // item 3 was finished
/// assert_eq!(store.load_checkpoint::<()>("count")?.unwrap().state, ProcessState::Paused);
///
/// resilience::cancel_pause();
/// count(&store, &seen)?; // resumes at item 4
/// assert_eq!(*seen.lock().unwrap(), (0..10).collect::<Vec<_>>());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn request_pause() {
    PAUSE.store(true, Ordering::SeqCst);
}

/// Whether a pause was requested (by a signal or [`request_pause`]) and not cancelled. Code
/// outside tracked loops can use it to stop at a good place too.
///
/// ```
/// resilience::request_pause();
/// assert!(resilience::pause_requested());
/// resilience::cancel_pause();
/// assert!(!resilience::pause_requested());
/// ```
pub fn pause_requested() -> bool {
    PAUSE.load(Ordering::SeqCst)
}

/// Clears a pause request, so that tracked loops run again (for a process that goes on after
/// its loops paused, and for tests). A later signal counts as a first one again.
pub fn cancel_pause() {
    PAUSE.store(false, Ordering::SeqCst);
    SIGNALLED.store(false, Ordering::SeqCst);
}
