//! `[traces]`: the optional OpenTelemetry export of spans (src/telemetry.rs;
//! docs/operations.md, "Traces").

use serde::{Deserialize, Serialize};

/// `[traces]`: off unless `otlp_endpoint` is set.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceSettings {
    /// The OTLP/HTTP traces endpoint spans are exported to (protobuf), such as
    /// `http://otel-collector:4318/v1/traces`. Default none: no span is made at all.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` resource attribute. Default `chat-gateway`.
    pub service_name: String,
    /// The share of traces kept, from 0 to 1 (a trace ID ratio, following the parent's
    /// decision). Default 1.
    pub sample_ratio: f64,
}

impl Default for TraceSettings {
    fn default() -> Self {
        TraceSettings {
            otlp_endpoint: None,
            service_name: "chat-gateway".into(),
            sample_ratio: 1.0,
        }
    }
}

impl TraceSettings {
    /// The combinations that must refuse to start.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(format!(
                "traces.sample_ratio must be from 0 to 1, not {}",
                self.sample_ratio
            ));
        }
        if let Some(url) = &self.otlp_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "traces.otlp_endpoint must be an http:// or https:// URL, not {url:?}"
            ));
        }
        if self.service_name.is_empty() {
            return Err("traces.service_name must not be empty".into());
        }
        Ok(())
    }
}
