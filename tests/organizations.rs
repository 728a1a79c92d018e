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
    // The error names the parameter (API.md §4) and the values it takes, in the caller's
    // language (French by default), never the deserializer's English.
    assert_eq!(
        unknown_kind.field_codes(),
        [("/query/kind".to_owned(), "unknown_value".to_owned())]
    );
    assert_eq!(
        unknown_kind.json["errors"][0]["message"],
        "doit être l'une des valeurs operator, mutuelle, scheme, provider, auditor"
    );
    // A filter given twice: which one was meant is not guessed.
    for query in ["kind=mutuelle&kind=scheme", "country=TG&country=ML", "limit=1&limit=2"] {
        let twice = app.get(&format!("/v1/organizations?{query}"), &op).await;
        let name = query.split('=').next().unwrap();
        assert_eq!(
            twice.field_codes(),
            [(format!("/query/{name}"), "duplicate".to_owned())],
            "{query}"
        );
        assert_eq!(twice.json["errors"][0]["message"], "ne doit être donné qu'une fois");
    }
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

/// An operator suspends an organisation's access and gives it back: its tokens are refused at
/// once on the replica that deactivated it, within seconds on another, and it shows as such.
async fn a_deactivated_organisation_is_refused_until_reactivated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    let other = app.replica().await;
    let mutuelle = app.token("mut-a", "registry:read");
    async fn read(app: &TestApp, token: &str) -> passerelle_tests::Reply {
        app.get("/v1/organizations/mut-a", token).await
    }
    assert_eq!(read(&app, &mutuelle).await.status.as_u16(), 200);
    assert_eq!(read(&other, &mutuelle).await.status.as_u16(), 200);
    let post = |path: &str, token: String| app.send(app.request(Method::POST, path).bearer_auth(token));
    // Only an operator, and not for its own organisation.
    post(
        "/v1/organizations/mut-a/deactivate",
        app.token("mut-a", "admin registry:read"),
    )
    .await
    .problem(403, "forbidden");
    let own = post("/v1/organizations/operator/deactivate", app.operator()).await;
    own.problem(409, "conflict");
    assert_eq!(own.json["errors"][0]["code"], "own_organization");
    post("/v1/organizations/nobody/deactivate", app.operator())
        .await
        .problem(404, "not_found");
    // Nor the service's own operator, by another: some operator always remains.
    app.create_org("op-b", "operator", "TG").await;
    let audited = app.audited().await;
    let configured = post("/v1/organizations/operator/deactivate", app.token("op-b", "admin")).await;
    configured.problem(409, "conflict");
    assert_eq!(configured.json["errors"][0]["code"], "configured_operator");
    let done = post("/v1/organizations/mut-a/deactivate", app.operator()).await;
    assert_eq!(done.status.as_u16(), 200, "{}", done.text);
    assert!(done.json["deactivated_at"].is_string(), "{}", done.text);
    assert_eq!(app.audited().await, audited + 1);
    let refused = read(&app, &mutuelle).await;
    refused.problem(403, "forbidden");
    assert!(refused.text.contains("désactivée"), "{}", refused.text);
    // Another replica learns it within its next reading (5 s).
    let mut elsewhere = read(&other, &mutuelle).await;
    for _ in 0..80 {
        if elsewhere.status.as_u16() == 403 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        elsewhere = read(&other, &mutuelle).await;
    }
    elsewhere.problem(403, "forbidden");
    let again = post("/v1/organizations/mut-a/deactivate", app.operator()).await;
    again.problem(409, "conflict");
    assert_eq!(again.json["errors"][0]["code"], "already_deactivated");
    let listed = app.get("/v1/organizations?kind=mutuelle", &app.operator()).await;
    assert_eq!(listed.json["items"][0]["deactivated_at"], done.json["deactivated_at"]);
    // Back: accepted again, and shown without the date.
    let back = post("/v1/organizations/mut-a/reactivate", app.operator()).await;
    assert_eq!(back.status.as_u16(), 200, "{}", back.text);
    assert!(back.json.get("deactivated_at").is_none(), "{}", back.text);
    assert_eq!(read(&app, &mutuelle).await.status.as_u16(), 200);
    let twice = post("/v1/organizations/mut-a/reactivate", app.operator()).await;
    assert_eq!(twice.json["errors"][0]["code"], "already_active", "{}", twice.text);
    let actions = app
        .db
        .scalar(
            "SELECT count(*) FROM (SELECT action, resource_id FROM audit_events UNION ALL \
             SELECT action, resource_id FROM audit_queue) e WHERE e.resource_id = 'mut-a' \
             AND e.action IN ('organization.deactivated', 'organization.reactivated')",
        )
        .await;
    assert_eq!(actions, 2);
}

on_both_databases!(
    a_deactivated_organisation_is_refused_until_reactivated,
    the_operator_id_cannot_name_another_organisation,
    create_then_read,
    the_operator_exists_from_the_first_start,
    duplicates_conflict,
    every_rule_is_reported_at_once,
    lists_page_with_cursors,
    idempotency_keys_replay_and_refuse_reuse,
    concurrent_creations_keep_the_chain,
);
