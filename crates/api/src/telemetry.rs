//! Structured JSON logs, and OpenTelemetry traces over OTLP/HTTP only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// Keeps the exporter alive; flushes pending spans when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// PostgreSQL's notices, from WARNING up.
const QUIET_NOTICES: &str = "sqlx::postgres::notice=warn";

pub fn init(filter: &str, format: LogFormat) -> Result<Telemetry, String> {
    let mut filter = EnvFilter::try_new(filter)
        .map_err(|e| format!("configuration error: PASSERELLE_LOG: {filter:?} is not a tracing filter: {e}"))?;
    // sqlx logs PostgreSQL's notices at INFO, such as the migrations table's `already exists,
    // skipping` at every start: from WARNING up only, unless the filter names sqlx itself.
    if !filter.to_string().contains("sqlx") {
        filter = filter.add_directive(QUIET_NOTICES.parse().map_err(|e| format!("{QUIET_NOTICES}: {e}"))?);
    }
    let fmt = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        // Colours only on a terminal: escape codes would litter a file or a collector.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
    };
    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => Some(otlp_provider()?),
        _ => None,
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("passerelle")));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    Ok(Telemetry { provider })
}

fn otlp_provider() -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::WithExportConfig;
    let protocol = std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").unwrap_or_else(|_| "http/protobuf".into());
    if protocol != "http/protobuf" {
        return Err(format!(
            "configuration error: OTEL_EXPORTER_OTLP_PROTOCOL: {protocol:?} is not supported; use http/protobuf"
        ));
    }
    // The exporter falls back to localhost on an endpoint it cannot parse, and says so only at
    // its first export, with an empty message: refused here, naming the variable.
    // The exporter reads the value as it is, spaces and a final line break (a secret made from
    // a file) included, and prefers the traces-only variable when it is set.
    for name in ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] {
        // Empty is unset, for the exporter as for compose files' empty defaults.
        let Some(endpoint) = std::env::var(name).ok().filter(|e| !e.is_empty()) else {
            continue;
        };
        let parsed = reqwest::Url::parse(&endpoint)
            .ok()
            .filter(|_| endpoint.trim() == endpoint);
        if !parsed.is_some_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some()) {
            return Err(format!(
                "configuration error: {name}: {endpoint:?} is not an http:// or https:// URL such as \
                 http://collector:4318 (without spaces or line breaks around it)"
            ));
        }
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| format!("configuration error: OTEL_EXPORTER_OTLP_ENDPOINT: {e}"))?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "passerelle".into());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
