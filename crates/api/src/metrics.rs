//! Prometheus metrics: a request counter and a latency histogram per method, route and status.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often the recorder drains its histograms' recent samples into their buckets. Without
/// it, every sample since the last scrape is kept, one allocation per request, until `/metrics`
/// is read; a replica nobody scrapes would grow without bound.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The name of the thread that runs the upkeep (at most 15 bytes: Linux's limit).
pub const UPKEEP_THREAD: &str = "metrics-upkeep";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once, with its upkeep; later apps in the same process
/// (tests) share it.
pub fn install() {
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("http_request_duration_seconds".into()), LATENCY_BUCKETS)
            .ok()
            .and_then(|b| b.install_recorder().ok())?;
        // `install_recorder` leaves the upkeep to its caller. A thread of its own rather than a
        // task: the recorder outlives any one runtime (each test has its own), and the upkeep
        // is a few microseconds of locking every few seconds.
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name(UPKEEP_THREAD.to_owned())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the metrics upkeep; histograms are drained when scraped");
        }
        // Every series README lists exists from the start, at 0: an alert on a rise, or a rate,
        // finds it before the first event rather than nothing.
        metrics::counter!("passerelle_http_header_timeouts_total").absolute(0);
        metrics::counter!("passerelle_http_send_timeouts_total").absolute(0);
        for outcome in ["eligible", "not_eligible", "not_found"] {
            metrics::counter!("passerelle_eligibility_checks_total", "outcome" => outcome).absolute(0);
        }
        Some(handle)
    });
}

pub fn render() -> String {
    install();
    HANDLE
        .get()
        .and_then(|h| h.as_ref())
        .map(|h| h.render())
        .unwrap_or_default()
}

/// A request method as a label or span name: the methods the API knows by their name, any other
/// as `other`. A client may send any token as a method, without a token of the other kind: each
/// would otherwise add a series that lives as long as the process.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    // The route template, never the concrete path: ids would explode the label set.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method.to_owned()), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    /// The series README lists are there at 0 before their first event.
    #[test]
    fn listed_series_exist_from_the_start() {
        let text = super::render();
        for series in [
            "passerelle_http_header_timeouts_total",
            "passerelle_http_send_timeouts_total",
            "passerelle_eligibility_checks_total{outcome=\"eligible\"}",
            "passerelle_eligibility_checks_total{outcome=\"not_eligible\"}",
            "passerelle_eligibility_checks_total{outcome=\"not_found\"}",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(series)),
                "{series} missing from\n{text}"
            );
        }
    }
}
