//! Units the command line and scenario files share.

use std::time::Duration;

/// A duration such as `50ms`, `2s` or `1m30s`.
pub fn duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}
