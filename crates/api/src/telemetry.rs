//! Structured JSON logs, and OpenTelemetry traces over OTLP/HTTP only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
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
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
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

/// Whether spans are exported (`OTEL_EXPORTER_OTLP_ENDPOINT`): the service then takes part in its
/// callers' traces; otherwise it passes their `traceparent` on (see [`join_caller_trace`]).
static EXPORTING: AtomicBool = AtomicBool::new(false);

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// W3C Trace Context: makes a request's span the child of the caller's when the request carries a
/// valid `traceparent` (with its `tracestate`), and gives the `traceparent` that what the request
/// causes later carries on (its webhook deliveries, through the outbox). Exporting, that is this
/// span's own context, so a caller without a trace of its own still sees the deliveries under its
/// request's; not exporting, the caller's header as version 00 with its sampled flag, or none.
/// An invalid header, or several, starts no trace of the caller's, as the recommendation says:
/// they are ignored.
pub fn join_caller_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) -> Option<String> {
    let exporting = EXPORTING.load(Ordering::Relaxed);
    let given = headers.get_all(TRACEPARENT).iter().count() == 1;
    if !given && !exporting {
        return None;
    }
    // Already in the form it is passed on in: version 00, the sampled flag alone.
    let passed_on = headers
        .get(TRACEPARENT)
        .filter(|_| given)
        .and_then(|v| v.to_str().ok())
        .and_then(read_traceparent);
    if !exporting {
        return passed_on;
    }
    // Several `tracestate` fields are one list (the recommendation, RFC 7230 §3.2.2).
    let states: Vec<&str> = headers
        .get_all(TRACESTATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let tracestate = (!states.is_empty()).then(|| states.join(","));
    if let Some(caller) = passed_on.as_deref().and_then(|t| context_of(t, tracestate.as_deref())) {
        span.set_parent(caller);
    }
    // A span the log filter turned off has no context: the caller's is passed on then.
    traceparent_of(&span.context()).or(passed_on)
}

/// The `traceparent` of a context, `None` when it holds no valid span.
fn traceparent_of(cx: &opentelemetry::Context) -> Option<String> {
    let mut headers = axum::http::HeaderMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(&mut headers));
    headers.get(TRACEPARENT)?.to_str().ok().map(str::to_owned)
}

/// The context of a `traceparent` [`read_traceparent`] gave, with the caller's `tracestate`.
fn context_of(traceparent: &str, tracestate: Option<&str>) -> Option<opentelemetry::Context> {
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(TRACEPARENT, axum::http::HeaderValue::from_str(traceparent).ok()?);
    if let Some(value) = tracestate.and_then(|t| axum::http::HeaderValue::from_str(t).ok()) {
        headers.insert(TRACESTATE, value);
    }
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
    cx.span().span_context().is_valid().then_some(cx)
}

/// A `traceparent` as Trace Context level 1 reads it, as version `00` with the sampled flag alone
/// (other flags are reserved: masked, not a reason to ignore the header), or `None`. The
/// propagator's own parsing is laxer than the grammar (fields of any length, a sign, a trailing
/// dash) and stricter on flags (version `00` with `03` or `09` refused), hence this check first.
fn read_traceparent(value: &str) -> Option<String> {
    let value = value.trim_matches([' ', '\t']).as_bytes();
    let hex = |b: &[u8]| b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let nonzero = |b: &[u8]| b.iter().any(|c| *c != b'0');
    if value.len() < 55 || !hex(&value[..2]) || value.starts_with(b"ff") {
        return None;
    }
    let (trace, parent, flags) = (&value[3..35], &value[36..52], &value[53..55]);
    let dashes = [2, 35, 52].iter().all(|i| value[*i] == b'-');
    // Version 00 is exactly 55 characters; a higher one may go on after a dash.
    let end = if value.starts_with(b"00") {
        value.len() == 55
    } else {
        value.len() == 55 || value[55] == b'-'
    };
    if !(dashes && end && hex(trace) && hex(parent) && hex(flags) && nonzero(trace) && nonzero(parent)) {
        return None;
    }
    let sampled = u8::from_str_radix(std::str::from_utf8(flags).ok()?, 16).ok()? & 1;
    Some(format!(
        "00-{}-{}-{sampled:02x}",
        std::str::from_utf8(trace).ok()?,
        std::str::from_utf8(parent).ok()?
    ))
}

/// The `traceparent` a webhook delivery sends, given the one its change's request stored
/// (`stored`): exporting, the delivery's own span (`span`), made the child of the stored one; not
/// exporting, the stored one, so that the receiver's trace still joins the caller's.
pub fn delivery_traceparent(span: &tracing::Span, stored: Option<&str>) -> Option<String> {
    let passed_on = stored.and_then(read_traceparent);
    if !EXPORTING.load(Ordering::Relaxed) {
        return passed_on;
    }
    if let Some(parent) = passed_on.as_deref().and_then(|t| context_of(t, None)) {
        span.set_parent(parent);
    }
    traceparent_of(&span.context()).or(passed_on)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(traceparents: &[&str]) -> axum::http::HeaderMap {
        let mut headers = axum::http::HeaderMap::new();
        for t in traceparents {
            headers.append(TRACEPARENT, axum::http::HeaderValue::from_str(t).unwrap());
        }
        headers
    }

    /// Nothing exported in unit tests: the caller's context is passed on as it came, or not at
    /// all when it does not read.
    #[test]
    fn a_callers_trace_context_is_passed_on_when_nothing_is_exported() {
        let span = tracing::Span::none();
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        for given in [VALID, unsampled] {
            assert_eq!(join_caller_trace(&span, &headers(&[given])).as_deref(), Some(given));
            assert_eq!(delivery_traceparent(&span, Some(given)).as_deref(), Some(given));
        }
        for invalid in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(join_caller_trace(&span, &headers(&[invalid])), None, "{invalid:?}");
            assert_eq!(delivery_traceparent(&span, Some(invalid)), None, "{invalid:?}");
        }
        assert_eq!(join_caller_trace(&span, &headers(&[])), None);
        assert_eq!(join_caller_trace(&span, &headers(&[VALID, VALID])), None, "given twice");
        assert_eq!(delivery_traceparent(&span, None), None);
    }

    /// The recommendation's grammar (Trace Context level 1, §3.2.2 and "Versioning of
    /// traceparent"), header by header, with nothing exported: what reads is passed on as version
    /// `00` with the sampled bit alone; what does not is ignored.
    #[test]
    fn traceparents_read_as_the_recommendation_says() {
        let span = tracing::Span::none();
        let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
        let sampled = format!("00-{trace}-{parent}-01");
        let unsampled = format!("00-{trace}-{parent}-00");
        for (given, want) in [
            // Flags other than the sampled bit are masked, not a reason to drop the header
            // ("09 in hex if present with the flag 00001000"; level 2's random flag is 02).
            (format!("00-{trace}-{parent}-03"), Some(&sampled)),
            (format!("00-{trace}-{parent}-09"), Some(&sampled)),
            (format!("00-{trace}-{parent}-02"), Some(&unsampled)),
            // A higher version is read as 00 where its first fields are where 00 has them.
            (format!("01-{trace}-{parent}-01"), Some(&sampled)),
            (format!("01-{trace}-{parent}-01-what-comes-later"), Some(&sampled)),
            (format!("cc-{trace}-{parent}-09-x"), Some(&sampled)),
            // Leading and trailing whitespace (OWS) is not part of the value.
            (format!(" \t00-{trace}-{parent}-01 \t"), Some(&sampled)),
        ] {
            let got = join_caller_trace(&span, &headers(&[given.as_str()]));
            assert_eq!(got.as_ref(), want, "{given:?}");
        }
        for invalid in [
            // Fields shorter than the grammar's 2, 32, 16 and 2 hex digits.
            "00-1-2-01".to_owned(),
            format!("0-{trace}-{parent}-01"),
            format!("00-{}-{parent}-01", &trace[1..]),
            format!("00-{trace}-{}-01", &parent[1..]),
            format!("00-{trace}-{parent}-1"),
            // Not hex digits, though Rust's integer parsing takes a sign.
            format!("+0-{trace}-{parent}-01"),
            format!("00-+{}-{parent}-01", &trace[1..]),
            format!("00-{trace}-+{}-01", &parent[1..]),
            format!("00-{trace}-{parent}-+1"),
            // Version 00 is 55 characters exactly.
            format!("00-{trace}-{parent}-01-"),
            format!("00-{trace}-{parent}-01-extra"),
            // A higher version's flags are followed by a dash or nothing.
            format!("01-{trace}-{parent}-01x"),
            format!("0A-{trace}-{parent}-01"),
            // Two values joined with a comma, as a proxy may fold repeated headers.
            format!("00-{trace}-{parent}-01,00-{trace}-{parent}-01"),
            format!("00-{trace}-{parent}-01, 00-{trace}-{parent}-01"),
        ] {
            assert_eq!(
                join_caller_trace(&span, &headers(&[invalid.as_str()])),
                None,
                "{invalid:?}"
            );
        }
        // A very long header (a future version's fields) reads, and what is passed on is 55
        // characters whatever came.
        let long = format!("01-{trace}-{parent}-01-{}", "a".repeat(8000));
        assert_eq!(
            join_caller_trace(&span, &headers(&[long.as_str()])).as_ref(),
            Some(&sampled)
        );
    }
}
