//! API.md §5 Organisations.

use passerelle_adapters::Backend;
use passerelle_tests::{on_both_databases, TestApp};
use reqwest::Method;
use serde_json::json;

async fn create_then_read(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = json!({"id": "mut-segou", "kind": "mutuelle", "country": "ML", "name": "Mutuelle de Ségou — Œuvre", "registration_number": "ML-2020-7"});
    let created = app.post("/v1/organizations", &app.operator(), &body).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    assert_eq!(created.header("location"), Some("/v1/organizations/mut-segou"));
    assert_eq!(created.json["name"], "Mutuelle de Ségou — Œuvre");
    let read = app
        .get("/v1/organizations/mut-segou", &app.token("mut-segou", "registry:read"))
        .await;
    assert_eq!(read.status.as_u16(), 200);
    assert_eq!(read.json, created.json);
    assert!(
        read.text.contains("Mutuelle de Ségou — Œuvre"),
        "accents are byte-exact"
    );
    app.get("/v1/organizations/nobody", &app.operator())
        .await
        .problem(404, "not_found");
}

async fn the_operator_exists_from_the_first_start(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply = app.get("/v1/organizations/operator", &app.operator()).await;
    assert_eq!(reply.json["kind"], "operator");
    assert_eq!(app.count("organizations").await, 1);
}

async fn duplicates_conflict(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_org("tg-inam", "scheme", "TG").await;
    let again = json!({"id": "tg-inam", "kind": "mutuelle", "country": "TG", "name": "Other"});
    let reply = app.post("/v1/organizations", &app.operator(), &again).await;
    reply.problem(409, "conflict");
    assert_eq!(reply.json["errors"][0]["field"], "/id");
    assert_eq!(reply.json["errors"][0]["code"], "organization_exists");
    let read = app.get("/v1/organizations/tg-inam", &app.operator()).await;
    assert_eq!(read.json["kind"], "scheme");
}

async fn every_rule_is_reported_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = json!({"id": "-bad", "kind": "bank", "country": "tg", "colour": "blue"});
    let reply = app.post("/v1/organizations", &app.operator(), &body).await;
    reply.problem(422, "validation_failed");
    let mut fields = reply.error_fields();
    fields.sort();
    assert_eq!(fields, ["/colour", "/country", "/id", "/kind", "/name"]);
    assert_eq!(app.count("organizations").await, 1);
}

async fn lists_page_with_cursors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (id, kind) in [
        ("p-1", "provider"),
        ("m-1", "mutuelle"),
        ("s-1", "scheme"),
        ("m-2", "mutuelle"),
    ] {
        app.create_org(id, kind, "SN").await;
    }
    let op = app.operator();
    let mut seen = Vec::new();
    let mut path = "/v1/organizations?limit=2".to_owned();
    loop {
        let page = app.get(&path, &op).await;
        assert_eq!(page.status.as_u16(), 200, "{}", page.text);
        let items = page.json["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        match page.json["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/organizations?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["m-1", "m-2", "operator", "p-1", "s-1"]);
    let mutuelles = app.get("/v1/organizations?kind=mutuelle", &op).await;
    assert_eq!(mutuelles.json["items"].as_array().unwrap().len(), 2);
    for bad in ["limit=0", "limit=501", "cursor=nonsense"] {
        let reply = app.get(&format!("/v1/organizations?{bad}"), &op).await;
        reply.problem(422, "validation_failed");
    }
    let unknown_kind = app.get("/v1/organizations?kind=bank", &op).await;
    unknown_kind.problem(422, "validation_failed");
    // The error names the parameter (API.md §4), with what is wrong but no wrapper's wording.
    assert_eq!(unknown_kind.error_fields(), ["/query/kind"], "{}", unknown_kind.text);
    let message = unknown_kind.json["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("bank") && !message.contains("deserialize"),
        "{message}"
    );
    let twice = app.get("/v1/organizations?kind=mutuelle&kind=scheme", &op).await;
    twice.problem(422, "validation_failed");
    assert_eq!(twice.error_fields(), ["/query/kind"], "{}", twice.text);
}

async fn idempotency_keys_replay_and_refuse_reuse(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = json!({"id": "mut-thies", "kind": "mutuelle", "country": "SN", "name": "Thiès"});
    let send = |body: serde_json::Value| {
        app.send(
            app.request(Method::POST, "/v1/organizations")
                .bearer_auth(app.operator())
                .header("idempotency-key", "create-thies-1")
                .json(&body),
        )
    };
    let first = send(body.clone()).await;
    let second = send(body.clone()).await;
    assert_eq!(first.status.as_u16(), 201);
    assert_eq!(second.status.as_u16(), 201);
    assert_eq!(first.json, second.json);
    assert_eq!(second.header("location"), Some("/v1/organizations/mut-thies"));
    // The same request serialised again, members in another order and spaced out: a replay.
    let respelt = app
        .send(
            app.request(Method::POST, "/v1/organizations")
                .bearer_auth(app.operator())
                .header("idempotency-key", "create-thies-1")
                .header("content-type", "application/json")
                .body(r#"{ "name": "Thi\u00e8s", "country": "SN",  "kind": "mutuelle", "id": "mut-thies" }"#),
        )
        .await;
    assert_eq!(respelt.status.as_u16(), 201, "{}", respelt.text);
    assert_eq!(respelt.json, first.json);
    let mut other = body.clone();
    other["id"] = json!("mut-other");
    send(other).await.problem(422, "idempotency_key_reused");
    assert_eq!(app.count("organizations").await, 2);
    assert_eq!(app.audited().await, 2, "operator bootstrap + one creation");
}

async fn concurrent_creations_keep_the_chain(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let op = app.operator();
    let replies = futures::future::join_all((0..24).map(|i| {
        let body =
            json!({"id": format!("prov-{i:02}"), "kind": "provider", "country": "TG", "name": format!("Poste {i}")});
        app.send(
            app.request(Method::POST, "/v1/organizations")
                .bearer_auth(&op)
                .json(&body),
        )
    }))
    .await;
    assert!(replies.iter().all(|r| r.status.as_u16() == 201));
    let verify = app.get("/v1/audit-events/verify", &op).await;
    assert_eq!(
        (&verify.json["valid"], &verify.json["events_checked"]),
        (&json!(true), &json!(25))
    );
}

/// `PASSERELLE_OPERATOR_ORG` naming an organisation of another kind stops the start, rather than
/// leaving the service with no operator.
async fn the_operator_id_cannot_name_another_organisation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_org("mut-x", "mutuelle", "TG").await;
    let mut config = app.config.clone();
    config.operator_org = passerelle_domain::organization::OrgId::parse("mut-x").unwrap();
    let database = passerelle_api::app::connect(&config).await.unwrap();
    let state = passerelle_api::app::state(config, &database).await.ok().unwrap();
    let refused = passerelle_api::app::ensure_operator(&state).await.unwrap_err();
    assert!(
        refused.contains("PASSERELLE_OPERATOR_ORG") && refused.contains("mutuelle"),
        "{refused}"
    );
}

on_both_databases!(
    the_operator_id_cannot_name_another_organisation,
    create_then_read,
    the_operator_exists_from_the_first_start,
    duplicates_conflict,
    every_rule_is_reported_at_once,
    lists_page_with_cursors,
    idempotency_keys_replay_and_refuse_reuse,
    concurrent_creations_keep_the_chain,
);
