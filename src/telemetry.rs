//! Logging: a tracing subscriber from `[log]`, `RUST_LOG` taking precedence.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

use crate::settings::LogSettings;

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = if settings.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
