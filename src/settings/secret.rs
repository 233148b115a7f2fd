//! `Secret`: configuration values that never print (tokens, passwords, URLs with
//! credentials), and `redact_url` for the URLs that may be logged.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A string that never prints: tokens, passwords and URLs holding passwords.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// A URL with its password replaced; anything that is not a URL with credentials becomes
/// `[redacted]`, except the harmless `memory` and `sqlite:` forms.
pub fn redact_url(s: &str) -> String {
    if s == "memory" || s.starts_with("sqlite:") {
        return s.to_string();
    }
    match (s.find("://"), s.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &s[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &s[..scheme + 3], user, &s[at..])
        }
        (Some(_), None) => s.to_string(),
        _ => "[redacted]".to_string(),
    }
}
