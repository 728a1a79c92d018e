//! Health, readiness, metrics, the OpenAPI document and the docs page.

use passerelle_adapters::testing::TestDatabase;
use passerelle_adapters::Backend;
use passerelle_tests::proxy::Proxy;
use passerelle_tests::{on_both_databases, test_config, TestApp};
use reqwest::Method;
use serde_json::json;

async fn health_and_readiness(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let live = app.send(app.request(Method::GET, "/health/live")).await;
    assert_eq!(live.json, json!({"status": "ok"}));
    let ready = app.send(app.request(Method::GET, "/health/ready")).await;
    assert_eq!(ready.json, json!({"status": "ready"}));
}

fn counter(metrics: &str, route: &str, status: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter(|l| l.contains(&format!("route=\"{route}\"")) && l.contains(&format!("status=\"{status}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn metrics_count_requests_per_route_and_status(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = app.send(app.request(Method::GET, "/metrics")).await.text;
    for _ in 0..3 {
        app.get(
            "/v1/organizations/{id}".replace("{id}", "nobody").as_str(),
            &app.operator(),
        )
        .await;
    }
    let after = app.send(app.request(Method::GET, "/metrics")).await.text;
    let route = "/v1/organizations/{id}";
    assert!(counter(&after, route, "404") >= counter(&before, route, "404") + 3.0);
    assert!(after.contains("http_request_duration_seconds_bucket{"));
    assert!(after.contains(&format!("route=\"{route}\"")));
}

async fn openapi_and_docs_are_served(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let doc = app.send(app.request(Method::GET, "/openapi.json")).await;
    assert_eq!(doc.status.as_u16(), 200);
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../openapi/openapi.json")).expect("committed openapi.json");
    assert_eq!(doc.json, committed, "the served document is the committed one");
    let docs = app.send(app.request(Method::GET, "/docs/")).await;
    assert_eq!(docs.status.as_u16(), 200);
    assert!(docs.text.contains("swagger-ui"));
    assert!(
        !docs.text.contains("https://"),
        "the docs page loads nothing from the network"
    );
    // Nor does Swagger UI's script: its default validator badge would load
    // validator.swagger.io with this service's address on any host but localhost.
    let script = app.send(app.request(Method::GET, "/docs/swagger-initializer.js")).await;
    assert_eq!(script.status.as_u16(), 200);
    assert!(script.text.contains(r#""validatorUrl": "none""#), "{}", script.text);
    assert!(!script.text.contains("https://"), "{}", script.text);
    // No one's data: a cache may keep them, asking again first (API.md §3), and told with a
    // 304 that what it holds is current.
    for reply in [&doc, &docs] {
        assert_eq!(reply.header("cache-control"), Some("no-cache"));
    }
    let tag = doc.header("etag").expect("an entity tag").to_owned();
    assert_eq!(docs.header("etag"), Some(tag.as_str()));
    for path in ["/openapi.json", "/docs/", "/docs/swagger-ui.css"] {
        let again = app
            .send(app.request(Method::GET, path).header("if-none-match", &tag))
            .await;
        assert_eq!(again.status.as_u16(), 304, "{path}");
        assert_eq!(again.text, "");
        assert_eq!(again.header("etag"), Some(tag.as_str()));
        assert_eq!(again.header("cache-control"), Some("no-cache"));
        let other = app
            .send(app.request(Method::GET, path).header("if-none-match", "\"0.0.0-0\""))
            .await;
        assert_eq!(other.status.as_u16(), 200, "{path}");
    }
}

/// Under a gateway that publishes the service at a path (`public_url` with one), a 201's
/// `Location` and the docs' redirect name the resource under it, and the docs page finds the
/// document relative to itself: root-relative, they led out of the prefix, to a 404.
#[tokio::test]
async fn links_stay_under_the_public_url() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.public_url = Some("https://gw.example.org/passerelle".to_owned());
    })
    .await;
    let body = serde_json::json!({"id": "gw-org", "kind": "mutuelle", "country": "TG", "name": "Mutuelle"});
    let created = app.post("/v1/organizations", &app.operator(), &body).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    assert_eq!(
        created.header("location"),
        Some("https://gw.example.org/passerelle/v1/organizations/gw-org")
    );
    // Not followed: the redirect names the gateway's address, where no request may go.
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = client.get(format!("{}/docs", app.base)).send().await.unwrap();
    assert!(redirect.status().is_redirection(), "{}", redirect.status());
    assert_eq!(
        redirect.headers()["location"],
        "https://gw.example.org/passerelle/docs/"
    );
    let script = app.send(app.request(Method::GET, "/docs/swagger-initializer.js")).await;
    assert!(script.text.contains(r#""url": "../openapi.json""#), "{}", script.text);
    // And the document's server is the public base, where "Try it out" sends its requests.
    let doc = app.send(app.request(Method::GET, "/openapi.json")).await;
    assert_eq!(
        doc.json["servers"],
        serde_json::json!([{"url": "https://gw.example.org/passerelle", "description": "This service"}])
    );
}

/// A client that hangs up while its write runs (its own timeout firing) leaves nothing behind,
/// and its retry with the same key gets the registration once. sqlx's `begin`, dropped with the
/// request while its `BEGIN` was in flight, gave its connection back to the pool inside a
/// transaction nobody owned: on SQLite every write then failed until a restart; on PostgreSQL
/// that connection answered every statement with an error (from an idempotency review).
async fn writes_abandoned_by_their_clients_leave_the_database_usable(backend: Backend) {
    use tokio::io::AsyncWriteExt;
    const WRITES: u64 = 200;
    let r = crate::registry::registry(backend).await;
    let app = &r.app;
    let token = crate::registry::writer(app, "mut-a");
    let address = app.base.trim_start_matches("http://").to_owned();
    let body = |i: u64| {
        crate::registry::household(&r.product, &format!("GONE-{i:04}"), &format!("{}", 500_000_000_000 + i)).to_string()
    };
    for i in 0..WRITES {
        let body = body(i);
        let head = format!(
            "POST /v1/registrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nIdempotency-Key: gone-{i}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(format!("{head}{body}").as_bytes()).await.unwrap();
        // Gone at once, or a moment into the write, as a client's timeout lands anywhere.
        tokio::time::sleep(std::time::Duration::from_micros((i % 7) * 400)).await;
        // A reset, not an orderly close: the way a client's own timeout drops a connection. A
        // linger of zero does not block the drop (the deprecation's concern).
        #[allow(deprecated)]
        stream.set_linger(Some(std::time::Duration::ZERO)).unwrap();
        drop(stream);
    }
    for i in 0..WRITES {
        let retried = app
            .send(
                app.request(Method::POST, "/v1/registrations")
                    .bearer_auth(&token)
                    .header("idempotency-key", format!("gone-{i}"))
                    .header("content-type", "application/json")
                    .body(body(i)),
            )
            .await;
        assert_eq!(retried.status.as_u16(), 201, "retry {i}: {}", retried.text);
    }
    for _ in 0..20 {
        let read = app.get("/v1/products", &token).await;
        assert_eq!(read.status.as_u16(), 200, "{}", read.text);
    }
    assert_eq!(app.count("coverages").await, 3 * WRITES as i64, "each household once");
}

on_both_databases!(
    health_and_readiness,
    metrics_count_requests_per_route_and_status,
    openapi_and_docs_are_served,
    writes_abandoned_by_their_clients_leave_the_database_usable
);

/// After the shutdown signal, requests in flight have a bounded time to finish: a bulk upload
/// still arriving (it may take 30 minutes) does not hold the shutdown, so the clean-up after
/// serving still runs inside the orchestrator's grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_does_not_hold_the_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    let database = passerelle_api::app::connect(&app.config).await.unwrap();
    let state = passerelle_api::app::state(app.config.clone(), &database).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let drain = std::time::Duration::from_millis(500);
    let server = tokio::spawn(passerelle_api::app::serve_until(
        listener,
        passerelle_api::app::router(state),
        app.config.connection_limits(),
        async {
            let _ = stopped.await;
        },
        drain,
    ));

    // An upload announcing a megabyte, of which a few bytes arrive, then nothing.
    let token = app.token("mut-a", "registry:read registry:write");
    let mut upload = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/registrations/batches HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/x-ndjson\r\nidempotency-key: slow-1\r\ncontent-length: 1000000\r\n\r\n\
         {{\"member_number\": "
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    upload.flush().await.unwrap();
    // The request is in its handler, streaming the body to disk: no answer yet.
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(std::time::Duration::from_millis(500), upload.read(&mut byte)).await;
    assert!(early.is_err(), "the upload was answered before its body arrived");

    let signalled = std::time::Instant::now();
    stop.send(()).unwrap();
    let served = tokio::time::timeout(std::time::Duration::from_secs(20), server)
        .await
        .expect("the shutdown waited for the upload")
        .unwrap();
    assert_eq!(served, Ok(()));
    let took = signalled.elapsed();
    assert!(took >= drain, "the requests in flight had their drain: {took:?}");
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    drop(database);
}

/// A shutdown waits for the requests in flight and for nothing else: neither an idle keep-alive
/// connection nor one part-way through its request head (which hyper would keep until its
/// header timeout) holds it until the drain ends (`a_slow_upload_does_not_hold_the_shutdown`
/// shows a request in flight holding it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_waits_only_for_requests_in_flight() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::spawn(Backend::Sqlite).await;
    let database = passerelle_api::app::connect(&app.config).await.unwrap();
    let state = passerelle_api::app::state(app.config.clone(), &database).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let drain = Duration::from_secs(10);
    let server = tokio::spawn(passerelle_api::app::serve_until(
        listener,
        passerelle_api::app::router(state),
        passerelle_api::http_server::ConnectionLimits {
            header_read: Duration::from_secs(60),
            send: Duration::from_secs(60),
        },
        async {
            let _ = stopped.await;
        },
        drain,
    ));
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /health/live HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // Counting the request until its answer is sent keeps the answer's length known.
    assert!(head.contains("content-length:") && !head.contains("chunked"), "{head}");
    let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /health/live HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .unwrap();
    // A request answered just before the signal: its answer arrives whole.
    let mut busy = tokio::net::TcpStream::connect(addr).await.unwrap();
    busy.write_all(b"GET /health/ready HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = Instant::now();
    stop.send(()).unwrap();
    let served = tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the shutdown ended")
        .unwrap();
    assert_eq!(served, Ok(()));
    let took = signalled.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "the shutdown waited {took:?} for no request"
    );
    let n = busy.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // The idle connection was closed.
    let closed = tokio::time::timeout(Duration::from_secs(2), idle.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0) | Err(_))), "{closed:?}");
    drop(database);
}

/// A counter without labels, as `/metrics` gives it now.
async fn scraped(app: &TestApp, series: &str) -> u64 {
    let metrics = app.send(app.request(Method::GET, "/metrics")).await.text;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |n| n.trim().parse::<u64>().unwrap())
}

/// A client that sends its request head slowly, never finishes it or sends nothing holds its
/// connection only for `header_read_timeout`; so does an idle keep-alive connection after its last answer.
/// A head that arrives whole in time, however slowly, is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_that_never_ends_is_cut_off() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let timeout = Duration::from_millis(600);
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.header_read_timeout = timeout).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // Reads until the server closes; what it sent, and when it closed.
    async fn until_closed(stream: &mut tokio::net::TcpStream) -> (String, Instant) {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&seen).into_owned(), Instant::now()),
                Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
                Err(_) => panic!("the connection was still open after 10 s"),
            }
        }
    }

    let timeouts = || scraped(&app, "passerelle_http_header_timeouts_total");
    let before = timeouts().await;
    // Half a head, then nothing: closed without an answer after the timeout.
    let opened = Instant::now();
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stalled
        .write_all(format!("GET /health/live HTTP/1.1\r\nhost: {addr}\r\nx-slow: ").as_bytes())
        .await
        .unwrap();
    let (answer, closed) = until_closed(&mut stalled).await;
    assert_eq!(answer, "", "no answer to half a head");
    let held = closed - opened;
    assert!(held >= timeout && held < timeout * 4, "held for {held:?}");

    // Connected, and nothing sent: closed after the timeout too.
    let opened = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (answer, closed) = until_closed(&mut silent).await;
    assert_eq!(answer, "");
    let held = closed - opened;
    assert!(held >= timeout && held < timeout * 4, "held for {held:?}");

    // A byte every 100 ms: the head is never whole within the timeout.
    let opened = Instant::now();
    let mut trickle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut cut = false;
    for byte in b"GET /health/live HTTP/1.1\r\nhost: localhost\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
        if trickle.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (answer, closed) = until_closed(&mut trickle).await;
    assert!(cut || answer.is_empty(), "a trickled head was answered: {answer}");
    assert!(closed - opened < Duration::from_secs(8), "{:?}", closed - opened);

    // A whole head in two parts, inside the timeout, is answered; the connection then stays
    // open for another request until it has been idle for the timeout.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /health/live HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .unwrap();
    tokio::time::sleep(timeout / 3).await;
    slow.write_all(b"\r\n").await.unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answered = Instant::now();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    slow.write_all(b"GET /health/live HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "kept alive"
    );
    let (_, closed) = until_closed(&mut slow).await;
    assert!(closed - answered >= timeout, "idle for {:?}", closed - answered);

    // Counted for the operator: the half head, the silent one, the trickle and the idle one.
    let counted = timeouts().await - before;
    assert!(counted >= 4, "{counted} timeouts counted");
    // Requests through a client are unaffected.
    let ready = app.send(app.request(Method::GET, "/health/ready")).await;
    assert_eq!(ready.status.as_u16(), 200, "{}", ready.text);
}

/// A client that stops reading its answers holds its connection only for `send_timeout`, with
/// no byte taken; one that reads slowly but steadily, for longer than that in all, gets its
/// answer whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_left_unread_is_cut_off() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let timeout = Duration::from_millis(600);
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.send_timeout = timeout).await;
    let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let document = app.send(app.request(Method::GET, "/openapi.json")).await.text.len();
    assert!(document > 500_000, "{document} bytes");
    let timeouts = || scraped(&app, "passerelle_http_send_timeouts_total");
    // A small receive window, so that the answers wait in the server's buffers.
    let connect = |window: u32| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(window).unwrap();
        socket.connect(addr).await.unwrap()
    };
    let get = b"GET /openapi.json HTTP/1.1\r\nhost: localhost\r\n\r\n";
    let before = timeouts().await;

    // Eight answers asked for at once (more than every buffer between holds), none read.
    let mut stopped = connect(4096).await;
    stopped.write_all(&get.repeat(8)).await.unwrap();
    let asked = Instant::now();
    while timeouts().await == before {
        assert!(asked.elapsed() < Duration::from_secs(15), "still sending after 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(asked.elapsed() >= timeout, "cut after {:?}", asked.elapsed());
    let mut taken = 0;
    let mut buf = vec![0u8; 65536];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stopped.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => taken += n,
            Err(_) => panic!("the connection was still open 5 s after the timeout"),
        }
    }
    assert!(taken < 8 * document, "{taken} bytes: the answers were sent whole");

    // Read a window's worth every 50 ms: longer than the timeout in all, never stalled that long.
    let mut slow = connect(16384).await;
    slow.write_all(get).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let whole = loop {
        let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf))
            .await
            .expect("an answer's next bytes within 5 s")
            .unwrap();
        assert!(n > 0, "closed after {} bytes", answer.len());
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .expect("a Content-Length")
                .trim()
                .parse()
                .unwrap();
            if body.len() >= length {
                break (head.starts_with("HTTP/1.1 200"), body.len() == length);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(whole, (true, true));
    assert!(started.elapsed() > timeout, "read in {:?}: not slow", started.elapsed());
    assert_eq!(timeouts().await, before + 1, "the slow reader was not cut");
}

/// PostgreSQL behind a proxy that the test cuts: readiness turns 503, a write answers 503 and
/// leaves nothing behind, and the service recovers when the database returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_503_and_writes_nothing() {
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let db = TestDatabase::new(Backend::Postgres).await;
    let mut config = test_config(&db.url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port)));
    config.database_max_connections = 4;
    let app = TestApp::start(db, config).await;
    let op = app.operator();
    assert_eq!(
        app.send(app.request(Method::GET, "/health/ready"))
            .await
            .status
            .as_u16(),
        200
    );

    proxy.cut();
    let ready = app.send(app.request(Method::GET, "/health/ready")).await;
    ready.problem(503, "unavailable");
    let body = json!({"id": "mut-lost", "kind": "mutuelle", "country": "TG", "name": "Perdue"});
    let write = app.post("/v1/organizations", &op, &body).await;
    write.problem(503, "unavailable");
    assert!(
        !write.text.contains("SELECT") && !write.text.contains("sqlx"),
        "no internals: {}",
        write.text
    );

    proxy.restore();
    let mut recovered = false;
    for _ in 0..50 {
        if app
            .send(app.request(Method::GET, "/health/ready"))
            .await
            .status
            .as_u16()
            == 200
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "readiness comes back with the database");
    app.get("/v1/organizations/mut-lost", &op)
        .await
        .problem(404, "not_found");
    assert_eq!(app.count("organizations").await, 1);
}

/// A database that answers with an error rather than not at all — dropped, renamed, or a
/// password rotated under the service — is out of reach too: 503, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_dropped_under_the_service_is_503() {
    use sqlx::Connection;
    let base = passerelle_adapters::testing::postgres_base_url();
    let name = format!("passerelle_dropped_{}", uuid::Uuid::now_v7().simple());
    let mut admin = sqlx::PgConnection::connect(&base).await.expect("connect");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create");
    let db = TestDatabase::new(Backend::Postgres).await;
    let (prefix, _) = base.rsplit_once('/').expect("a database in the URL");
    let app = TestApp::start(db, test_config(&format!("{prefix}/{name}"))).await;
    let ready = app.send(app.request(Method::GET, "/health/ready")).await;
    assert_eq!(ready.status.as_u16(), 200, "{}", ready.text);

    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop");
    // The first requests meet the connections the drop terminated; the later ones, new
    // connections that the server refuses (3D000).
    for _ in 0..5 {
        app.send(app.request(Method::GET, "/health/ready"))
            .await
            .problem(503, "unavailable");
        app.get("/v1/organizations", &app.operator())
            .await
            .problem(503, "unavailable");
    }
}
