//! Traces leave over OTLP/HTTP (protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: one span per
//! request named after its route template, and no personal data in any name or attribute. A
//! request's W3C `traceparent` makes its span the caller's child, and a webhook delivery of what
//! it changed a span in the same trace, whose `traceparent` the receiver gets.
//! The only test in this binary: it installs the process-wide tracing subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step must stop the test loudly

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use passerelle_adapters::Backend;
use passerelle_api::config::LogFormat;
use passerelle_tests::TestApp;
use prost::Message;
use reqwest::Method;
use serde_json::json;

const FAMILY_NAME: &str = "Adjovi-Kpélé";
const GIVEN_NAMES: &str = "Ablavi Émérence";
const BIRTH_DATE: &str = "1986-09-17";
const PHONE: &str = "+22890654321";
const NIU_AS_TYPED: &str = "4711 0815 2024";
const NIU: &str = "471108152024";
const UNKNOWN_NIU: &str = "555012349876";

/// What the receiver got: each POST's content type and body.
type Received = Arc<Mutex<Vec<(String, Bytes)>>>;

/// The `traceparent` headers of each webhook delivery the receiver got.
type Hooked = Arc<Mutex<Vec<Vec<String>>>>;

async fn hook(State(hooked): State<Hooked>, headers: HeaderMap) -> StatusCode {
    let traceparents = headers
        .get_all("traceparent")
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect();
    hooked.lock().unwrap().push(traceparents);
    StatusCode::NO_CONTENT
}

/// The caller's trace and span of the eligibility check, and of the coverage's PATCH.
const CHECK_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CHECK_PARENT: &str = "00f067aa0ba902b7";
const PATCH_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PATCH_PARENT: &str = "b7ad6b7169203331";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn receive(
    State(received): State<Received>,
    headers: HeaderMap,
    body: Bytes,
) -> impl axum::response::IntoResponse {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    received.lock().unwrap().push((content_type, body));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

/// Lower case without accents, to find a name however it was spelled.
fn fold(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| match c {
            'à' | 'â' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'î' | 'ï' => 'i',
            'ô' | 'ö' => 'o',
            'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            other => other,
        })
        .collect()
}

/// Every string in an attribute value, nested arrays and maps included.
fn strings_in(value: &AnyValue, out: &mut Vec<String>) {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => out.push(s.clone()),
        Some(any_value::Value::BytesValue(b)) => out.push(String::from_utf8_lossy(b).into_owned()),
        Some(any_value::Value::ArrayValue(a)) => a.values.iter().for_each(|v| strings_in(v, out)),
        Some(any_value::Value::KvlistValue(kv)) => attributes(&kv.values, "", out),
        Some(any_value::Value::IntValue(i)) => out.push(i.to_string()),
        Some(any_value::Value::DoubleValue(d)) => out.push(d.to_string()),
        Some(any_value::Value::BoolValue(_)) | None => {}
    }
}

fn attributes(attributes: &[KeyValue], at: &str, out: &mut Vec<String>) {
    for kv in attributes {
        out.push(format!("{at}key {}", kv.key));
        let mut values = Vec::new();
        if let Some(v) = &kv.value {
            strings_in(v, &mut values);
        }
        out.extend(values.into_iter().map(|v| format!("{at}{} = {v}", kv.key)));
    }
}

/// Every name and attribute of the export, each prefixed with where it was found.
fn every_string(request: &ExportTraceServiceRequest) -> Vec<String> {
    let mut out = Vec::new();
    for rs in &request.resource_spans {
        if let Some(resource) = &rs.resource {
            attributes(&resource.attributes, "resource: ", &mut out);
        }
        for ss in &rs.scope_spans {
            if let Some(scope) = &ss.scope {
                out.push(format!("scope: {} {}", scope.name, scope.version));
                attributes(&scope.attributes, "scope: ", &mut out);
            }
            for span in &ss.spans {
                let at = format!("span {:?}: ", span.name);
                out.push(format!("{at}name {}", span.name));
                out.push(format!("{at}trace_state {}", span.trace_state));
                attributes(&span.attributes, &at, &mut out);
                for event in &span.events {
                    let at = format!("{at}event {:?}: ", event.name);
                    out.push(format!("{at}name {}", event.name));
                    attributes(&event.attributes, &at, &mut out);
                }
                for link in &span.links {
                    attributes(&link.attributes, &format!("{at}link: "), &mut out);
                }
                if let Some(status) = &span.status {
                    out.push(format!("{at}status {}", status.message));
                }
            }
        }
    }
    out
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a any_value::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn string_attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match attribute(span, key) {
        Some(any_value::Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// OpenTelemetry's HTTP conventions make `http.response.status_code` an integer; the service
/// records it as an `i64` (a `u16` would be exported as its decimal string).
fn status_code(span: &Span) -> Option<i64> {
    match attribute(span, "http.response.status_code") {
        Some(any_value::Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

#[test]
fn request_spans_reach_an_otlp_receiver_without_personal_data() {
    // The exporter reads its endpoint from the environment: set it before anything else runs.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
    // Variables from the surrounding environment that would send the spans elsewhere or rename
    // the service.
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SERVICE_NAME",
        "OTEL_SDK_DISABLED",
    ] {
        std::env::remove_var(name);
    }
    // The exporter's HTTP client honours proxy variables; the receiver is on loopback.
    std::env::set_var("NO_PROXY", "127.0.0.1,localhost");
    let telemetry = passerelle_api::telemetry::init("info", LogFormat::Json).expect("telemetry");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let received: Received = Arc::default();
        let hooked: Hooked = Arc::default();
        let port = listener.local_addr().unwrap().port();
        let receiver = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(received.clone())
            .merge(Router::new().route("/hook", post(hook)).with_state(hooked.clone()));
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        tokio::spawn(async move { axum::serve(listener, receiver).await });

        let mut app = TestApp::spawn_with(Backend::Sqlite, |c| c.webhook_allow_insecure = true).await;
        app.create_org("mut-a", "mutuelle", "TG").await;
        app.create_org("cms-a", "provider", "TG").await;
        let writer = app.token("mut-a", "registry:read registry:write webhooks:write");
        let subscribed = app
            .post(
                "/v1/webhooks",
                &writer,
                &json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["coverage.changed"]}),
            )
            .await;
        assert_eq!(subscribed.status.as_u16(), 201, "{}", subscribed.text);
        let provider = app.token("cms-a", "eligibility:check");
        let product = json!({
            "layer": "complementary", "name": "Formule famille — Tsévié",
            "rules": [{"care_level": "health_center", "rate_bp": 10000}],
            "annual_ceiling_xof": 150000, "waiting_period_days": 0, "grace_period_days": 30,
            "excluded_categories": [], "effective_from": "2026-01-01"
        });
        let product = app.post("/v1/products", &writer, &product).await;
        assert_eq!(product.status.as_u16(), 201, "{}", product.text);
        let household = json!({
            "product": product.json["id"], "member_number": "OTLP-0001", "start_date": "2026-01-01",
            "paid_through": "2026-12-31",
            "principal": {"national_id": {"country": "tg", "type": "niu", "value": NIU_AS_TYPED},
                          "family_name": FAMILY_NAME, "given_names": GIVEN_NAMES, "sex": "F",
                          "birth_date": BIRTH_DATE, "phone": PHONE,
                          "locality": {"region": "Plateaux", "district": "Ogou", "commune": "Ogou 1"}},
            "dependants": []
        });
        let registration = app
            .send(
                app.request(Method::POST, "/v1/registrations")
                    .bearer_auth(&writer)
                    .header("idempotency-key", "otlp-1")
                    .json(&household),
            )
            .await;
        assert_eq!(registration.status.as_u16(), 201, "{}", registration.text);
        let person = registration.json["members"][0]["beneficiary"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            registration.json["members"][0]["beneficiary"]["family_name"],
            FAMILY_NAME
        );

        let check = app
            .send(
                app.request(Method::POST, "/v1/eligibility-checks")
                    .bearer_auth(&provider)
                    .header("x-request-id", "otlp-eligibility-1")
                    .header("traceparent", format!("00-{CHECK_TRACE}-{CHECK_PARENT}-01"))
                    .json(
                        &json!({"beneficiary": {"national_id": {"country": "TG", "type": "NIU", "value": NIU}},
                                  "service_date": "2026-06-01", "care_level": "health_center"}),
                    ),
            )
            .await;
        assert_eq!(check.status.as_u16(), 200, "{}", check.text);
        assert_eq!(check.json["beneficiary"], person.as_str());
        let unknown = app
            .post(
                "/v1/eligibility-checks",
                &provider,
                &json!({"beneficiary": {"national_id": {"country": "TG", "type": "NIU", "value": UNKNOWN_NIU}},
                        "service_date": "2026-06-01", "care_level": "health_center"}),
            )
            .await;
        unknown.problem(404, "not_found");
        let read = app.get(&format!("/v1/beneficiaries/{person}"), &writer).await;
        assert_eq!(read.status.as_u16(), 200, "{}", read.text);
        assert_eq!(read.json["given_names"], GIVEN_NAMES);
        let search = app
            .get(&format!("/v1/beneficiaries?national_id=TG:NIU:{NIU}"), &writer)
            .await;
        assert_eq!(search.status.as_u16(), 200, "{}", search.text);
        assert_eq!(search.json["items"][0]["id"], person.as_str());
        let coverages = app.get(&format!("/v1/coverages?beneficiary={person}"), &writer).await;
        let coverage = coverages.json["items"][0]["id"].as_str().unwrap().to_owned();
        let patched = app
            .send(
                app.request(Method::PATCH, &format!("/v1/coverages/{coverage}"))
                    .bearer_auth(&writer)
                    .header("if-match", "\"1\"")
                    .header("traceparent", format!("00-{PATCH_TRACE}-{PATCH_PARENT}-01"))
                    .json(&json!({"status": "suspended"})),
            )
            .await;
        assert_eq!(patched.status.as_u16(), 200, "{}", patched.text);
        let deadline = Instant::now() + Duration::from_secs(10);
        while hooked.lock().unwrap().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        app.stop().await;

        // Dropping the guard shuts the provider down, which exports what is still batched; it
        // blocks, so off the runtime's workers (the receiver runs on them).
        tokio::task::spawn_blocking(move || drop(telemetry)).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while received.lock().unwrap().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let bodies = received.lock().unwrap().clone();
        assert!(
            !bodies.is_empty(),
            "nothing reached the OTLP receiver at {endpoint}/v1/traces"
        );

        let mut exports = Vec::new();
        for (content_type, body) in &bodies {
            assert_eq!(content_type, "application/x-protobuf");
            exports.push(ExportTraceServiceRequest::decode(body.as_ref()).expect("an OTLP protobuf trace export"));
        }
        let spans: Vec<&Span> = exports
            .iter()
            .flat_map(|e| &e.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .collect();
        let service = exports
            .iter()
            .flat_map(|e| &e.resource_spans)
            .filter_map(|rs| rs.resource.as_ref())
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref());
        assert_eq!(service, Some(&any_value::Value::StringValue("passerelle".into())));

        // One span per request, named "<METHOD> <route template>", with the route, the method
        // and the status as attributes.
        let requests: Vec<&Span> = spans
            .iter()
            .copied()
            .filter(|s| attribute(s, "http.route").is_some())
            .collect();
        for span in &requests {
            let route = string_attribute(span, "http.route").expect("http.route is a string");
            let method = string_attribute(span, "http.request.method").expect("http.request.method");
            assert_eq!(span.name, format!("{method} {route}"));
            assert_eq!(span.trace_id.len(), 16, "{span:?}");
            assert_eq!(span.span_id.len(), 8, "{span:?}");
            assert!(status_code(span).is_some(), "no status code: {span:?}");
        }
        let named = |name: &str, status: i64| {
            requests
                .iter()
                .filter(|s| s.name == name && status_code(s) == Some(status))
                .count()
        };
        assert_eq!(named("POST /v1/organizations", 201), 2);
        assert_eq!(named("POST /v1/products", 201), 1);
        assert_eq!(named("POST /v1/registrations", 201), 1);
        assert_eq!(named("POST /v1/eligibility-checks", 200), 1);
        assert_eq!(named("POST /v1/eligibility-checks", 404), 1);
        assert_eq!(named("GET /v1/beneficiaries/{id}", 200), 1);
        assert_eq!(named("GET /v1/beneficiaries", 200), 1);
        let eligibility = requests
            .iter()
            .find(|s| string_attribute(s, "request_id") == Some("otlp-eligibility-1"))
            .expect("the eligibility check's span, by its request id");
        assert_eq!(eligibility.name, "POST /v1/eligibility-checks");
        assert_eq!(
            string_attribute(eligibility, "http.route"),
            Some("/v1/eligibility-checks")
        );
        assert_eq!(status_code(eligibility), Some(200));

        // W3C Trace Context: the check's span is the caller's child, in the caller's trace; a
        // request that came without a trace starts one.
        assert_eq!(hex(&eligibility.trace_id), CHECK_TRACE);
        assert_eq!(hex(&eligibility.parent_span_id), CHECK_PARENT);
        let search_span = requests.iter().find(|s| s.name == "GET /v1/beneficiaries").unwrap();
        assert!(search_span.parent_span_id.is_empty(), "{search_span:?}");
        assert_ne!(hex(&search_span.trace_id), CHECK_TRACE);
        // The PATCH's delivery: a client span in the PATCH's trace, its child, and the receiver
        // told so.
        let patch = requests
            .iter()
            .find(|s| s.name == "PATCH /v1/coverages/{id}")
            .expect("the PATCH's span");
        assert_eq!(hex(&patch.trace_id), PATCH_TRACE);
        assert_eq!(hex(&patch.parent_span_id), PATCH_PARENT);
        let deliveries: Vec<&Span> = spans.iter().copied().filter(|s| s.name == "POST").collect();
        assert_eq!(deliveries.len(), 1, "{deliveries:#?}");
        let delivery = deliveries[0];
        assert_eq!(
            delivery.kind,
            opentelemetry_proto::tonic::trace::v1::span::SpanKind::Client as i32
        );
        assert_eq!(hex(&delivery.trace_id), PATCH_TRACE);
        assert_eq!(delivery.parent_span_id, patch.span_id, "the PATCH's child");
        assert_eq!(string_attribute(delivery, "server.address"), Some("127.0.0.1"));
        assert_eq!(
            attribute(delivery, "server.port"),
            Some(&any_value::Value::IntValue(i64::from(port)))
        );
        assert_eq!(attribute(delivery, "error.type"), None, "delivered");
        assert_eq!(
            string_attribute(delivery, "passerelle.webhook.event_type"),
            Some("coverage.changed")
        );
        assert_eq!(status_code(delivery), Some(204));
        let hooked = hooked.lock().unwrap().clone();
        assert_eq!(
            hooked,
            vec![vec![format!("00-{PATCH_TRACE}-{}-01", hex(&delivery.span_id))]],
            "the receiver joins the delivery's trace"
        );

        // Nothing that names the person, anywhere in the export: span and event names, every
        // attribute of the resource, scope, spans, events and links.
        let path = format!("/v1/beneficiaries/{person}");
        let mut needles: Vec<String> = vec![
            FAMILY_NAME.into(),
            GIVEN_NAMES.into(),
            BIRTH_DATE.into(),
            PHONE.into(),
            PHONE.trim_start_matches("+228").into(),
            NIU.into(),
            NIU_AS_TYPED.into(),
            UNKNOWN_NIU.into(),
            path.clone(),
        ];
        needles.extend(
            format!("{FAMILY_NAME} {GIVEN_NAMES}")
                .split([' ', '-'])
                .map(str::to_owned),
        );
        let strings: Vec<String> = exports.iter().flat_map(every_string).collect();
        assert!(strings
            .iter()
            .any(|s| s.contains("http.route = /v1/beneficiaries/{id}")));
        for needle in &needles {
            let leaks: Vec<&String> = strings.iter().filter(|s| fold(s).contains(&fold(needle))).collect();
            assert!(leaks.is_empty(), "{needle:?} exported in {leaks:#?}");
            // And in the raw bodies, in case a field escaped the walk above.
            for (_, body) in &bodies {
                assert!(
                    !body.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{needle:?} in a raw OTLP body"
                );
            }
        }
    });
}
