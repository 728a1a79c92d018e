//! API.md §4: every bad request gets its status and a problem+json body, in French or English,
//! and leaves the database unchanged.

use passerelle_adapters::Backend;
use passerelle_tests::{on_both_databases, TestApp};
use reqwest::Method;
use serde_json::json;

async fn malformed_requests_get_problems_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let op = app.operator();
    let orgs = app.count("organizations").await;
    let post = || app.request(Method::POST, "/v1/organizations").bearer_auth(&op);

    let r = app
        .send(post().header("content-type", "application/json").body("{\"id\": "))
        .await;
    r.problem(400, "malformed_request");
    let r = app
        .send(post().header("content-type", "application/json").body("[1, 2]"))
        .await;
    r.problem(400, "malformed_request");
    // A member named twice: another reader could keep the first where serde keeps the last, so
    // neither is taken; the position is given, the member's name (the caller's text) is not.
    let twice = r#"{"id": "twice-org", "kind": "mutuelle", "country": "TG", "name": "A", "kind": "operator"}"#;
    let r = app
        .send(post().header("content-type", "application/json").body(twice))
        .await;
    let detail = r.problem(400, "malformed_request")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("deux fois") && detail.contains("colonne"), "{detail}");
    let r = app.send(post().header("content-type", "text/plain").body("{}")).await;
    r.problem(415, "unsupported_media_type");
    let r = app.send(post().body("{}")).await;
    r.problem(415, "unsupported_media_type");
    // JSON is UTF-8: a body declared otherwise is not read as what it says it is not.
    let org = json!({"id": "latin-org", "kind": "mutuelle", "country": "TG", "name": "Mutuelle"}).to_string();
    let r = app
        .send(
            post()
                .header("content-type", "application/json; charset=iso-8859-1")
                .body(org.clone()),
        )
        .await;
    let detail = r.problem(415, "unsupported_media_type")["detail"].to_string();
    assert!(detail.contains("UTF-8"), "{detail}");
    // An Idempotency-Key is visible ASCII: a space inside is refused, as the message says.
    let r = app
        .send(
            post()
                .header("content-type", "application/json; charset=\"UTF-8\"")
                .header("idempotency-key", "key with spaces")
                .body(org.clone()),
        )
        .await;
    r.problem(422, "validation_failed");
    assert_eq!(r.error_fields(), ["/header/Idempotency-Key"]);
    // A compressed body is refused as such (RFC 7694), not read as text that is not UTF-8; a
    // body sent as it is, named `identity`, is taken.
    // (A gzip header and a stored block of the body would do as well: the header is judged.)
    let gzipped: Vec<u8> = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]
        .iter()
        .copied()
        .chain(org.bytes())
        .collect();
    let r = app
        .send(
            post()
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(gzipped),
        )
        .await;
    assert!(r.problem(415, "unsupported_media_type")["detail"]
        .as_str()
        .unwrap()
        .contains("Content-Encoding"));
    assert_eq!(r.header("accept-encoding"), Some("identity"));
    // Without a body, the header names nothing sent: no refusal.
    let read = app
        .send(
            app.request(Method::GET, "/v1/organizations")
                .bearer_auth(&op)
                .header("content-encoding", "gzip"),
        )
        .await;
    assert_eq!(read.status.as_u16(), 200, "{}", read.text);
    // Nor with a body a `GET` never reads: ignored, coded or not, and whatever its size.
    let read = app
        .send(
            app.request(Method::GET, "/v1/organizations")
                .bearer_auth(&op)
                .header("content-encoding", "gzip")
                .body(vec![0x1f, 0x8b, 8, 0]),
        )
        .await;
    assert_eq!(read.status.as_u16(), 200, "{}", read.text);
    for path in ["/v1/organizations", "/health/live"] {
        let read = app
            .send(
                app.request(Method::GET, path)
                    .bearer_auth(&op)
                    .body(vec![b'x'; 2 << 20]),
            )
            .await;
        assert_eq!(read.status.as_u16(), 200, "{path}: {}", read.text);
    }
    let identity = json!({"id": "plain-org", "kind": "mutuelle", "country": "TG", "name": "Mutuelle"});
    let r = app
        .send(
            post()
                .header("content-type", "application/json")
                .header("content-encoding", "identity")
                .body(identity.to_string()),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let orgs = orgs + 1;
    let events = app.audited().await;
    let huge = json!({"id": "big-org", "kind": "mutuelle", "country": "TG", "name": "é".repeat(1_100_000)});
    let r = app.send(post().json(&huge)).await;
    r.problem(413, "payload_too_large");
    let r = app
        .send(post().json(&json!({"id": "x-org", "kind": "mutuelle", "country": "TG", "name": 42})))
        .await;
    r.problem(422, "validation_failed");
    assert_eq!(r.error_fields(), ["/name"]);
    let long_name = json!({"id": "x-org", "kind": "mutuelle", "country": "TG", "name": "a".repeat(201)});
    let r = app.send(post().json(&long_name)).await;
    r.problem(422, "validation_failed");
    assert_eq!(r.json["errors"][0]["code"], "too_long");

    let r = app.get("/v1/nowhere", &op).await;
    r.problem(404, "not_found");
    let r = app
        .send(app.request(Method::DELETE, "/v1/organizations").bearer_auth(&op))
        .await;
    r.problem(405, "method_not_allowed");
    assert!(r.header("allow").is_some());
    let r = app.get("/v1/organizations?limit=abc", &op).await;
    r.problem(422, "validation_failed");
    assert_eq!(r.error_fields(), ["/query/limit"]);

    assert_eq!(app.count("organizations").await, orgs);
    assert_eq!(app.audited().await, events);
}

/// A body of thousands of made-up members, or of hundreds of faults, is answered with the first
/// faults and a last `too_many_errors` counting the rest: an answer a client can read, not
/// megabytes built from a small body.
async fn too_many_faults_are_counted_not_listed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let op = app.operator();
    let mut body = serde_json::Map::new();
    for i in 0..5_000 {
        body.insert(format!("k{i:04}"), json!(0));
    }
    body.insert("id".into(), json!("mut-x"));
    body.insert("kind".into(), json!("mutuelle"));
    body.insert("country".into(), json!("TG"));
    body.insert("name".into(), json!("X"));
    let r = app.post("/v1/organizations", &op, &json!(body)).await;
    r.problem(422, "validation_failed");
    let codes = r.field_codes();
    assert_eq!(codes.len(), 21, "{}", r.text);
    assert_eq!(codes[0], ("/k0000".to_owned(), "unknown_field".to_owned()));
    assert_eq!(codes[20], (String::new(), "too_many_errors".to_owned()));
    assert!(
        r.json["errors"][20]["message"].as_str().unwrap().contains(" 4980 "),
        "{}",
        r.text
    );
    assert!(r.text.len() < 8_000, "{} bytes", r.text.len());
    // Many faults, each its own: the first hundred, then how many more.
    app.create_org("mut-a", "mutuelle", "TG").await;
    let rules: Vec<serde_json::Value> = (0..90)
        .map(|_| json!({"care_level": "clinic", "rate_bp": 20_000}))
        .collect();
    let product = json!({"layer": "complementary", "name": "P", "rules": rules, "waiting_period_days": 0,
                         "grace_period_days": 0, "effective_from": "2026-01-01"});
    let r = app
        .post("/v1/products", &app.token("mut-a", "registry:write"), &product)
        .await;
    r.problem(422, "validation_failed");
    let codes = r.field_codes();
    assert_eq!(codes.len(), 101, "{}", r.text);
    assert!(codes[99].0.starts_with("/rules/49/"), "{codes:?}");
    assert_eq!(codes[100], (String::new(), "too_many_errors".to_owned()));
    assert!(
        r.json["errors"][100]["message"].as_str().unwrap().contains(" 80 "),
        "{}",
        r.text
    );
    assert_eq!(app.count("organizations").await, 2, "nothing written but mut-a");
    assert_eq!(app.count("products").await, 0);
}

async fn messages_follow_accept_language(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = json!({"id": "Bad", "kind": "mutuelle", "country": "TG", "name": "x"});
    let ask = |lang: Option<&str>| {
        let mut b = app
            .request(Method::POST, "/v1/organizations")
            .bearer_auth(app.operator())
            .json(&body);
        if let Some(lang) = lang {
            b = b.header("accept-language", lang);
        }
        app.send(b)
    };
    let fr = ask(None).await;
    let en = ask(Some("en-US,en;q=0.9")).await;
    let fr_explicit = ask(Some("fr-SN")).await;
    assert_eq!(fr.json["title"], "Requête invalide");
    assert_eq!(en.json["title"], "Invalid request");
    assert_eq!(fr_explicit.json["title"], fr.json["title"]);
    assert_eq!(fr.json["code"], en.json["code"], "codes never change with the language");
    assert!(en.json["errors"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("must match"));
    assert!(fr.json["errors"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("doit respecter"));
}

async fn every_response_carries_a_request_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let given = app
        .send(
            app.request(Method::GET, "/health/live")
                .header("x-request-id", "clinic-42.req:7"),
        )
        .await;
    assert_eq!(given.header("x-request-id"), Some("clinic-42.req:7"));
    let generated = app.send(app.request(Method::GET, "/v1/organizations")).await;
    let id = generated.header("x-request-id").unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    assert_eq!(generated.json["request_id"], id.as_str(), "the problem quotes it too");
    let hostile = app
        .send(
            app.request(Method::GET, "/health/live")
                .header("x-request-id", "a b<script>"),
        )
        .await;
    assert_ne!(hostile.header("x-request-id"), Some("a b<script>"));
}

/// A path whose escapes do not decode to UTF-8 names nothing that can exist: 404, as a NUL in a
/// path is (API.md §4), not the path extractor's 400.
async fn a_path_that_is_not_utf8_is_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let op = app.token("operator", "registry:read claims:read audit:read");
    for path in [
        "/v1/organizations/%FF",
        "/v1/coverages/%C3%28",
        "/v1/claims/ab%FFcd",
        "/v1/audit-events/%FF",
    ] {
        let reply = app.get(path, &op).await;
        assert_eq!(reply.status.as_u16(), 404, "{path}: {}", reply.text);
        reply.problem(404, "not_found");
    }
    // The same routes with a text id that does not exist: the same answer.
    let absent = app.get("/v1/organizations/nobody", &op).await;
    let invalid = app.get("/v1/organizations/%FF", &op).await;
    assert_eq!(absent.json["detail"], invalid.json["detail"]);
    // Escapes that are UTF-8 are an id like any other.
    app.get("/v1/organizations/%C3%A9t%C3%A9", &op)
        .await
        .problem(404, "not_found");
}

/// A client that declares a body over the limit and asks `Expect: 100-continue` is told 413 at
/// once, and is not first told to send it (which had it send megabytes to hear "no").
#[tokio::test]
async fn an_oversized_body_is_refused_before_it_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /v1/organizations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n",
        app.operator()
    );
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "no answer without the body");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}

/// An answer given before the request's body was read says that it ends the connection, which
/// the server closes after it: a client that kept the connection sent its next request into the
/// close (reqwest's `IncompleteMessage`). An answer after the body was read keeps it, and so does
/// one that leaves a small body unread, which the server reads past.
#[tokio::test]
async fn an_answer_before_the_body_is_read_closes_the_connection() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let small = json!({"id": "kept-org", "kind": "mutuelle", "country": "TG", "name": "Mutuelle"}).to_string();
    // The same object, past 8 KiB with white space.
    let body = format!("{small}{}", " ".repeat(16 * 1024));
    let post = || {
        app.request(Method::POST, "/v1/organizations")
            .header("content-type", "application/json")
            .body(body.clone())
    };
    let refused = app.send(post()).await;
    refused.problem(401, "unauthorized");
    assert_eq!(refused.header("connection"), Some("close"));
    let small_refused = app
        .send(
            app.request(Method::POST, "/v1/organizations")
                .header("content-type", "application/json")
                .body(small.clone()),
        )
        .await;
    small_refused.problem(401, "unauthorized");
    assert_eq!(small_refused.header("connection"), None);
    let created = app.send(post().bearer_auth(app.operator())).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    assert_eq!(created.header("connection"), None);
    let again = app.send(post().bearer_auth(app.operator())).await;
    again.problem(409, "conflict");
    assert_eq!(again.header("connection"), None, "its body was read");
}

on_both_databases!(
    too_many_faults_are_counted_not_listed,
    a_path_that_is_not_utf8_is_404,
    malformed_requests_get_problems_and_change_nothing,
    messages_follow_accept_language,
    every_response_carries_a_request_id,
);
