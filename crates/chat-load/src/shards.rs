//! IO threads: each runs its own current-thread tokio runtime, and every connection lives
//! entirely on one of them (dial, reader, any writer), chosen by its user's index.
//!
//! Unlike a work-stealing runtime, a thread here never wakes another to share work: a
//! message costs the system calls it needs and little more. The run itself (scenario,
//! pacer, progress) runs on the main thread's own runtime and sends straight into the
//! sockets (`conn::Conn`).

use std::thread::JoinHandle;
use std::time::Duration;
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// How long stopping waits for an IO thread's blocking work.
const STOP_WAIT: Duration = Duration::from_millis(500);

/// The IO threads of the run.
pub struct Shards {
    handles: Vec<Handle>,
    threads: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Shards {
    /// Starts `count` IO threads (at least one).
    pub fn start(count: usize) -> std::io::Result<Shards> {
        let mut shards = Shards {
            handles: Vec::new(),
            threads: Vec::new(),
        };
        for i in 0..count.max(1) {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            shards.handles.push(runtime.handle().clone());
            let thread = std::thread::Builder::new()
                .name(format!("chat-load-io-{i}"))
                .spawn(move || {
                    // Tasks spawned on this runtime run while this thread is in block_on.
                    let _ = runtime.block_on(stopped);
                    runtime.shutdown_timeout(STOP_WAIT);
                })?;
            shards.threads.push((stop, thread));
        }
        Ok(shards)
    }

    /// The runtimes' handles, in order.
    pub fn handles(&self) -> Vec<Handle> {
        self.handles.clone()
    }

    /// Stops every IO thread: their tasks are dropped, their sockets closed.
    pub fn stop(self) {
        let threads: Vec<_> = self
            .threads
            .into_iter()
            .map(|(stop, thread)| {
                let _ = stop.send(());
                thread
            })
            .collect();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// The number of IO threads when `--threads` is not given: one per two cores. The tool
/// usually shares the machine with what it measures; on 2 cores one thread wakes less often
/// and reads more per wake-up than two (18 against 22 µs per private message at 15,000/s).
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_tasks_and_stops() {
        let shards = Shards::start(2).unwrap();
        let handles = shards.handles();
        let runtime = Builder::new_current_thread().enable_all().build().unwrap();
        let names = runtime.block_on(async {
            let mut names = Vec::new();
            for h in &handles {
                let name = h
                    .spawn(async { std::thread::current().name().map(str::to_string) })
                    .await
                    .unwrap();
                names.push(name.unwrap());
            }
            names
        });
        assert_eq!(names, ["chat-load-io-0", "chat-load-io-1"]);
        // A task that never ends does not hold up the stop.
        handles[0].spawn(std::future::pending::<()>());
        shards.stop();
    }
}
