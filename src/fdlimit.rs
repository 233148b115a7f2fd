//! The file-descriptor limit. Every socket holds a descriptor, and the usual soft limit
//! (1,024) is far below the hard one (often 524,288 or more): both the gateway and the load
//! tool raise the soft limit to the hard one at start, as far as an unprivileged process may.

/// The limit found at start and what it became.
#[derive(Debug, Clone, Copy)]
pub struct Raised {
    /// Soft limit found at start.
    pub initial: u64,
    /// Soft limit after raising it.
    pub soft: u64,
    /// Hard limit: no unprivileged process can go higher.
    pub hard: u64,
}

/// The soft limit now (1,024 when it cannot be read).
pub fn soft() -> u64 {
    rlimit::Resource::NOFILE
        .get()
        .map_or(1024, |(soft, _)| soft)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; on failure keeps what there is (and
/// assumes 1,024 when even reading the limit fails).
pub fn raise() -> Raised {
    let (initial, hard) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
    let soft = rlimit::increase_nofile_limit(hard).unwrap_or(initial);
    Raised {
        initial,
        soft,
        hard,
    }
}
