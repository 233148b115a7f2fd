//! The file-descriptor limit: raised to the hard limit at start, and the number of
//! connections it leaves room for.

use serde::{Deserialize, Serialize};

/// Descriptors kept for everything that is not a connection (runtime, stdio, REST calls,
/// /proc reads, the JSON report).
pub const RESERVED_FDS: u64 = 64;

/// What the limit was and what it became.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct FdLimit {
    /// Soft limit found at start.
    pub initial: u64,
    /// Soft limit after raising it (the ceiling for connections).
    pub soft: u64,
    /// Hard limit: no unprivileged process can go higher.
    pub hard: u64,
}

impl FdLimit {
    /// Raises the soft RLIMIT_NOFILE to the hard limit; on failure keeps what there is.
    pub fn raise() -> FdLimit {
        let raised = chat_gateway::fdlimit::raise();
        FdLimit {
            initial: raised.initial,
            soft: raised.soft,
            hard: raised.hard,
        }
    }

    /// How many connections this process may hold at once.
    pub fn max_connections(&self) -> u64 {
        self.soft.saturating_sub(RESERVED_FDS)
    }

    /// The message to print when `wanted` connections do not fit, or `None` when they do.
    pub fn cap_message(&self, wanted: u64) -> Option<String> {
        let room = self.max_connections();
        (wanted > room).then(|| {
            format!(
                "file-descriptor limit caps this run: {wanted} connections wanted, but RLIMIT_NOFILE \
                 is {} (hard {}) so at most {room} fit in this process. Raise the hard limit \
                 (ulimit -Hn, LimitNOFILE=, /etc/security/limits.conf) or run several chat-load \
                 processes with distinct --user-base values.",
                self.soft, self.hard
            )
        })
    }
}
