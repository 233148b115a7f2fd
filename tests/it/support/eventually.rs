//! `eventually`: the one way the tests wait for something that happens asynchronously. It
//! polls a probe with a short, bounded pause until the probe succeeds, and fails the test
//! with what it waited for and the last thing it saw once the deadline has passed. Nothing
//! in the tests sleeps to synchronise.

use std::fmt::Debug;
use std::time::{Duration, Instant};

/// The first pause between two tries; it doubles up to `MAX_PAUSE`, so a condition that
/// holds almost at once is seen almost at once, and a slow one costs few tries.
const FIRST_PAUSE: Duration = Duration::from_millis(1);

/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_millis(20);

/// What a probe returns: success with a value, or the observation to report if the
/// deadline passes.
pub trait Outcome {
    /// What `eventually` returns on success.
    type Value;
    /// The value, or a description of what was seen instead.
    fn settle(self) -> Result<Self::Value, String>;
}

impl Outcome for bool {
    type Value = ();
    fn settle(self) -> Result<(), String> {
        if self { Ok(()) } else { Err("false".into()) }
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn settle(self) -> Result<T, String> {
        self.ok_or_else(|| "None".into())
    }
}

impl<T, E: Debug> Outcome for Result<T, E> {
    type Value = T;
    fn settle(self) -> Result<T, String> {
        self.map_err(|seen| format!("{seen:?}"))
    }
}

/// Tries `probe` until it succeeds (`true`, `Some`, `Ok`) and returns its value; panics
/// naming `what` and the last observation once `deadline` has passed.
pub async fn eventually<O: Outcome>(
    deadline: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> O,
) -> O::Value {
    let mut pacer = Pacer::new(deadline);
    loop {
        match probe().await.settle() {
            Ok(value) => return value,
            Err(seen) => tokio::time::sleep(pacer.pause(what, &seen)).await,
        }
    }
}

/// `eventually` for synchronous code (starting services in a `OnceLock`, checks made
/// outside a runtime): the same deadline and pacing, blocking the thread between tries.
pub fn eventually_blocking<O: Outcome>(
    deadline: Duration,
    what: &str,
    mut probe: impl FnMut() -> O,
) -> O::Value {
    let mut pacer = Pacer::new(deadline);
    loop {
        match probe().settle() {
            Ok(value) => return value,
            Err(seen) => std::thread::sleep(pacer.pause(what, &seen)),
        }
    }
}

/// The deadline and the growing pause of one wait.
struct Pacer {
    start: Instant,
    deadline: Duration,
    next: Duration,
}

impl Pacer {
    fn new(deadline: Duration) -> Pacer {
        Pacer {
            start: Instant::now(),
            deadline,
            next: FIRST_PAUSE,
        }
    }

    /// The pause before the next try, after a try that saw `seen`; a panic once the
    /// deadline has passed.
    fn pause(&mut self, what: &str, seen: &str) -> Duration {
        let deadline = self.deadline;
        assert!(
            self.start.elapsed() < deadline,
            "{what}: not within {deadline:?} (last seen: {seen})"
        );
        let pause = self.next;
        self.next = (self.next * 2).min(MAX_PAUSE);
        pause
    }
}
