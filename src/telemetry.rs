//! Logging and traces: a tracing subscriber from `[log]` (`RUST_LOG` taking precedence), and,
//! when `[traces] otlp_endpoint` is set, an OpenTelemetry layer that exports the gateway's
//! spans over OTLP/HTTP (docs/operations.md, "Traces").
//!
//! The spans (handshake, connection, send, store batch, publish) all have the target
//! [`SPANS`]. Without an exporter no layer wants them, so their call sites are disabled and
//! cost nothing on the hot path; with one, the log layer sees them too, and each JSON log
//! line carries the current span's fields: the connection's `conn` id, `user` and
//! `trace_id`.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::io::IsTerminal;
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::settings::{LogSettings, TraceSettings};

/// The target of every span the gateway makes.
pub const SPANS: &str = "chat_gateway::spans";

/// What `init` set up; `shutdown` exports the spans still buffered.
#[derive(Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is buffered and stops the exporter (at the end of `serve`).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "traces not flushed at shutdown");
        }
    }
}

/// Whether `metadata` is one of the gateway's spans.
fn is_gateway_span(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.is_span() && metadata.target() == SPANS
}

/// Installs the global subscriber (once; later calls are ignored and export nothing).
pub fn init(log: &LogSettings, traces: &TraceSettings) -> Telemetry {
    let provider = traces.otlp_endpoint.as_deref().and_then(|endpoint| {
        match exporter(endpoint, traces) {
            Ok(provider) => Some(provider),
            Err(e) => {
                // The subscriber is not installed yet: say it on stderr.
                eprintln!("traces not exported: {e}");
                None
            }
        }
    });
    let exporting = provider.is_some();
    let filter = || {
        let levels = EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(&log.level))
            .unwrap_or_else(|_| EnvFilter::new("info"));
        // Without an exporter, the gateway's spans are nobody's: their call sites stay off.
        let spans =
            tracing_subscriber::filter::filter_fn(move |m| exporting || !is_gateway_span(m));
        levels.and(spans)
    };
    // Colours only on a terminal: log files and collectors get plain text.
    let logs: Box<dyn Layer<Registry> + Send + Sync> = if log.format == "json" {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_target(false)
            .with_filter(filter())
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(std::io::stdout().is_terminal())
            .with_filter(filter())
            .boxed()
    };
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("chat-gateway"))
            .with_filter(tracing_subscriber::filter::filter_fn(is_gateway_span))
    });
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .is_ok();
    Telemetry {
        provider: provider.filter(|_| installed),
    }
}

/// The tracer provider exporting to `endpoint` in batches (a thread of its own).
fn exporter(endpoint: &str, traces: &TraceSettings) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| format!("the OTLP exporter for {endpoint}: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(traces.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            traces.sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

/// Records the trace id of `span` in its `trace_id` field (so the log lines inside it carry
/// it); nothing when traces are off.
pub fn record_trace_id(span: &tracing::Span) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if span.is_disabled() {
        return;
    }
    let context = span.context();
    let trace_id = context.span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_trace_settings_are_refused() {
        let mut traces = TraceSettings::default();
        assert!(traces.validate().is_ok());
        traces.sample_ratio = 1.5;
        assert!(traces.validate().unwrap_err().contains("sample_ratio"));
        traces.sample_ratio = 0.5;
        traces.otlp_endpoint = Some("collector:4318".into());
        assert!(traces.validate().unwrap_err().contains("otlp_endpoint"));
    }
}
