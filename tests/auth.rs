//! API.md §2: who may call, and what an invalid token gets.

use jsonwebtoken::Algorithm;
use passerelle_adapters::Backend;
use passerelle_tests::tokens::{self, claims, forged, now, signed};
use passerelle_tests::{on_both_databases, TestApp};
use serde_json::json;

async fn status_of(app: &TestApp, token: &str) -> u16 {
    app.get("/v1/organizations", token).await.status.as_u16()
}

async fn tokens_from_every_accepted_key_pass(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = claims("operator", "registry:read");
    assert_eq!(
        status_of(&app, &signed(Algorithm::RS256, "test-rs256", "rs256.pem", &c)).await,
        200
    );
    assert_eq!(
        status_of(&app, &signed(Algorithm::ES256, "test-es256", "es256.pem", &c)).await,
        200
    );
    assert_eq!(
        status_of(&app, &signed(Algorithm::EdDSA, "test-eddsa", "eddsa.pem", &c)).await,
        200
    );
    assert_eq!(status_of(&app, &app.token("operator", "registry:read")).await, 200);
}

async fn invalid_tokens_are_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let good = claims("operator", "registry:read");
    let missing = app.send(app.request(reqwest::Method::GET, "/v1/organizations")).await;
    missing.problem(401, "unauthorized");
    // RFC 6750 §3: no error code for a request without a token; `invalid_token` for one that
    // was sent and refused, which tells a client to get a new token.
    assert_eq!(missing.header("www-authenticate"), Some("Bearer realm=\"passerelle\""));

    let mut cases: Vec<(&str, String)> = vec![
        ("garbage", "not-a-jwt".into()),
        (
            "bad HS256 signature",
            tokens::hs256("another-secret-another-secret-another-secret", &good),
        ),
        (
            "unknown RSA key under a known kid",
            signed(Algorithm::RS256, "test-rs256", "rogue-rs256.pem", &good),
        ),
        ("unknown kid", signed(Algorithm::RS256, "nobody", "rs256.pem", &good)),
        (
            "ES256 key used as RS256",
            signed(Algorithm::RS256, "test-es256", "rs256.pem", &good),
        ),
        ("alg none", forged(&json!({"alg": "none", "typ": "JWT"}), &good, None)),
        (
            "HS256 keyed with the RSA public key (key confusion)",
            forged(
                &json!({"alg": "HS256", "typ": "JWT", "kid": "test-rs256"}),
                &good,
                Some(&tokens::rsa_public_pem()),
            ),
        ),
        (
            "a critical header extension, which this service does not understand (RFC 7515 §4.1.11)",
            forged(
                &json!({"alg": "HS256", "typ": "JWT", "crit": ["exp"]}),
                &good,
                Some(passerelle_tests::SECRET.as_bytes()),
            ),
        ),
    ];
    // The same header without `crit` passes: the case above is refused for `crit` alone.
    let plain = forged(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &good,
        Some(passerelle_tests::SECRET.as_bytes()),
    );
    assert_eq!(status_of(&app, &plain).await, 200);
    let mut variant = |name: &'static str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut c = good.clone();
        edit(&mut c);
        cases.push((name, app.token_from(&c)));
    };
    variant("expired beyond the leeway", &|c| c["exp"] = json!(now() - 120));
    variant("expired beyond the leeway, in a fraction", &|c| {
        c["exp"] = json!(now() as f64 - 120.5)
    });
    variant("not valid yet, in a fraction", &|c| {
        c["nbf"] = json!(now() as f64 + 600.5)
    });
    variant("not valid yet", &|c| c["nbf"] = json!(now() + 600));
    variant("wrong audience", &|c| c["aud"] = json!("someone-else"));
    variant("wrong issuer", &|c| c["iss"] = json!("https://idp.example.invalid"));
    variant("no exp", &|c| {
        c.as_object_mut().unwrap().remove("exp");
    });
    variant("unknown organisation", &|c| c["org"] = json!("ghost-org"));
    variant("a subject of 256 characters", &|c| c["sub"] = json!("s".repeat(256)));
    variant("an empty subject", &|c| c["sub"] = json!(" "));
    for (name, token) in cases {
        let reply = app.get("/v1/organizations", &token).await;
        assert_eq!(reply.status.as_u16(), 401, "{name}: {}", reply.text);
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"passerelle\", error=\"invalid_token\""),
            "{name}"
        );
        reply.problem(401, "unauthorized");
    }
    // Inside the 60 s leeway an expired token still passes; an audience list containing ours passes.
    let mut recent = good.clone();
    recent["exp"] = json!(now() - 20);
    assert_eq!(status_of(&app, &app.token_from(&recent)).await, 200);
    let mut many = good.clone();
    many["aud"] = json!(["other", "passerelle"]);
    assert_eq!(status_of(&app, &app.token_from(&many)).await, 200);
    let mut longest = good.clone();
    longest["sub"] = json!("é".repeat(255));
    assert_eq!(status_of(&app, &app.token_from(&longest)).await, 200);
    // RFC 7519's NumericDate may be non-integer, as some issuers write `time.time()`, and a whole
    // number may be written as one.
    let mut fractions = good.clone();
    fractions["exp"] = json!(now() as f64 + 600.5);
    fractions["nbf"] = json!(now() as f64 - 10.25);
    fractions["iat"] = json!(now() as f64 - 10.25);
    assert_eq!(status_of(&app, &app.token_from(&fractions)).await, 200);
    fractions["exp"] = json!(format!("{}.0", now() + 600).parse::<f64>().unwrap());
    assert_eq!(status_of(&app, &app.token_from(&fractions)).await, 200);
}

/// The authentication scheme is case-insensitive (RFC 9110 §11.1); another scheme, or none, is
/// still 401.
async fn the_bearer_scheme_is_matched_in_any_case(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token("operator", "registry:read");
    let with = |authorization: String| {
        app.send(
            app.request(reqwest::Method::GET, "/v1/organizations")
                .header("authorization", authorization),
        )
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let reply = with(format!("{scheme} {token}")).await;
        assert_eq!(reply.status.as_u16(), 200, "{scheme}: {}", reply.text);
    }
    // Given twice, even the same token twice: which was meant is not guessed.
    let twice = app
        .send(
            app.request(reqwest::Method::GET, "/v1/organizations")
                .header("authorization", format!("Bearer {token}"))
                .header("authorization", format!("Bearer {token}")),
        )
        .await;
    assert!(twice.problem(401, "unauthorized")["detail"]
        .as_str()
        .unwrap()
        .contains("deux fois"));
    assert_eq!(
        twice.header("www-authenticate"),
        Some("Bearer realm=\"passerelle\", error=\"invalid_request\""),
        "not invalid_token: the token may be good"
    );
    for refused in [
        format!("Basic {token}"),
        format!("Bearer{token}"),
        format!("Bearers {token}"),
        "BEARER ".to_owned(),
        token.clone(),
    ] {
        with(refused).await.problem(401, "unauthorized");
    }
}

async fn scope_and_kind_are_both_required(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    // Missing scope.
    let reply = app.get("/v1/organizations", &app.token("mut-a", "audit:read")).await;
    assert!(reply.problem(403, "forbidden")["detail"]
        .as_str()
        .unwrap()
        .contains("registry:read"));
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"passerelle\", error=\"insufficient_scope\", scope=\"registry:read\""),
        "RFC 6750 §3.1"
    );
    // Right scope, wrong kind: a mutuelle may not create organisations even with `admin`. No
    // token would do, so no challenge names a scope.
    let body = json!({"id": "mut-b", "kind": "mutuelle", "country": "TG", "name": "B"});
    let kind = app.post("/v1/organizations", &app.token("mut-a", "admin"), &body).await;
    kind.problem(403, "forbidden");
    assert_eq!(kind.header("www-authenticate"), None);
    // Only spaces separate scopes (RFC 6749 §3.3): a tab glues `admin` to another scope, and
    // the operator's token then carries neither.
    app.post(
        "/v1/organizations",
        &app.token("operator", "registry:read\tadmin"),
        &body,
    )
    .await
    .problem(403, "forbidden");
    let spaced = app
        .post(
            "/v1/organizations",
            &app.token("operator", "registry:read admin"),
            &json!({"id": "mut-c", "kind": "mutuelle", "country": "TG", "name": "C"}),
        )
        .await;
    assert_eq!(spaced.status.as_u16(), 201, "{}", spaced.text);
    // Verification of the whole chain is for operators and auditors.
    app.get("/v1/audit-events/verify", &app.token("mut-a", "audit:read"))
        .await
        .problem(403, "forbidden");
    assert_eq!(app.count("organizations").await, 3, "only mut-c was created");
}

async fn another_organisations_resource_is_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    app.create_org("mut-b", "mutuelle", "ML").await;
    // The operator's events are not visible to a mutuelle: the same 404 as an absent event.
    let events = app.get("/v1/audit-events?limit=500", &app.operator()).await;
    let operator_event = events.json["items"][0]["seq"].as_i64().unwrap();
    let a = app.token("mut-a", "audit:read");
    let reply = app.get(&format!("/v1/audit-events/{operator_event}"), &a).await;
    reply.problem(404, "not_found");
    let absent = app.get("/v1/audit-events/999999", &a).await;
    absent.problem(404, "not_found");
    assert_eq!(reply.json["detail"], absent.json["detail"], "no existence leak");
    let own = app
        .get(&format!("/v1/audit-events/{operator_event}"), &app.operator())
        .await;
    assert_eq!(own.status.as_u16(), 200);
}

async fn an_organisation_over_its_rate_gets_429(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.rate_limit_per_second = 1;
        c.rate_limit_burst = 3;
    })
    .await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    let mut_a = app.token("mut-a", "registry:read");
    for _ in 0..3 {
        assert_eq!(status_of(&app, &mut_a).await, 200);
    }
    let over = app.get("/v1/organizations", &mut_a).await;
    over.problem(429, "rate_limited");
    assert_eq!(over.header("retry-after"), Some("1"));
    // The FHIR façade counts the same requests and says it as FHIR does.
    let fhir = app.get("/fhir/r4/Patient/anyone", &mut_a).await;
    assert_eq!(fhir.status.as_u16(), 429);
    assert_eq!(fhir.json["issue"][0]["code"], "throttled", "{}", fhir.text);
    // Each organisation has its own rate; a token that does not verify is 401 whatever it names.
    assert_eq!(status_of(&app, &app.operator()).await, 200);
    let forged_a = tokens::hs256(
        "another-secret-of-at-least-32-bytes!",
        &claims("mut-a", "registry:read"),
    );
    assert_eq!(status_of(&app, &forged_a).await, 401);
    // The rate refills: one request a second. (Only that it refills is checked here: how fast
    // depends on the clock, which governor's own tests hold.)
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(status_of(&app, &mut_a).await, 200);
    assert_eq!(fhir.header("retry-after"), Some("1"));
}

on_both_databases!(
    the_bearer_scheme_is_matched_in_any_case,
    an_organisation_over_its_rate_gets_429,
    tokens_from_every_accepted_key_pass,
    invalid_tokens_are_401,
    scope_and_kind_are_both_required,
    another_organisations_resource_is_404,
);
