//! Delivers the outbox: leases due deliveries, POSTs them signed, records each attempt and
//! schedules retries. Runs beside the API on every replica; leases keep replicas apart, and a
//! slow or dead receiver only ever delays its own deliveries.

use std::time::{Duration, Instant};

use chrono::Utc;
use hmac::{Hmac, Mac};
use passerelle_domain::claim::Claim;
use passerelle_domain::ports::AttemptOutcome;
use passerelle_domain::webhook::{next_attempt, Attempt, DueDelivery};
use serde_json::Value;
use sha2::Sha256;

use crate::routes::claims::ClaimView;
use crate::routes::registry::CoverageView;
use crate::routes::webhooks::address_allowed;
use crate::state::AppState;
use passerelle_domain::coverage::Coverage;

const BATCH: u32 = 32;
const LEASE: Duration = Duration::from_secs(60);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// `t=<unix seconds>,v1=<lowercase hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable_hmac());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

// HMAC accepts keys of any length; this cannot happen.
fn unreachable_hmac() -> Hmac<Sha256> {
    match Hmac::<Sha256>::new_from_slice(b"0") {
        Ok(m) => m,
        Err(_) => std::process::abort(),
    }
}

/// The body a receiver gets: `{event_id, type, created_at, organization, data}`, `data` being
/// the resource as its GET shows it.
pub fn envelope(d: &DueDelivery) -> Vec<u8> {
    let stored: Value = serde_json::from_str(&d.payload).unwrap_or(Value::Null);
    let data = match stored["resource"].as_str() {
        Some("claim") => serde_json::from_value::<Claim>(stored["data"].clone())
            .ok()
            .and_then(|c| serde_json::to_value(ClaimView::from(c)).ok())
            .unwrap_or(Value::Null),
        Some("coverage") => serde_json::from_value::<Coverage>(stored["data"].clone())
            .ok()
            .and_then(|c| serde_json::to_value(CoverageView::from(c)).ok())
            .unwrap_or(Value::Null),
        _ => stored["data"].clone(),
    };
    let body = serde_json::json!({
        "event_id": d.event_id,
        "type": d.event_type,
        "created_at": stored["created_at"],
        "organization": stored["organization"],
        "data": data,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

pub fn start(state: AppState) -> Option<tokio::task::JoinHandle<()>> {
    let owner = format!("worker-{}", uuid::Uuid::new_v4().simple());
    let mut builder = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if !state.config.webhook_allow_insecure {
        builder = builder.dns_resolver(std::sync::Arc::new(PublicOnly));
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; deliveries stay queued");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        let mut last_gauge = Instant::now() - Duration::from_secs(60);
        loop {
            let busy = match tick(&state, &client, &owner).await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook worker could not lease deliveries");
                    false
                }
            };
            if last_gauge.elapsed() > Duration::from_secs(5) {
                if let Ok(n) = state.store.pending_deliveries().await {
                    metrics::gauge!("passerelle_webhook_outbox_pending").set(n as f64);
                }
                last_gauge = Instant::now();
            }
            if !busy {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }))
}

async fn tick(state: &AppState, client: &reqwest::Client, owner: &str) -> Result<usize, String> {
    let now = Utc::now();
    let lease_until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
    let due = state
        .store
        .lease_deliveries(owner, now, lease_until, BATCH)
        .await
        .map_err(|e| e.to_string())?;
    let count = due.len();
    let sends = due.into_iter().map(|d| async move {
        let outcome = send(state, client, &d).await;
        if let Err(e) = state.store.record_attempt(&d.id, owner, &outcome).await {
            tracing::warn!(error = %e, "cannot record a webhook attempt");
        }
    });
    futures::future::join_all(sends).await;
    Ok(count)
}

/// The webhook client's resolver: a name resolves to its public addresses only, at the moment of
/// connecting. Checking the name before the send is not enough on its own: a name with a short
/// lifetime can answer a public address to the check and a private one to the connection
/// (DNS rebinding). A name with no public address fails to resolve, and nothing is sent.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let public = public_addresses(name.as_str()).await?;
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

async fn public_addresses(host: &str) -> Result<Vec<std::net::SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let public: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, 0))
        .await?
        .filter(|a| address_allowed(a.ip(), false))
        .collect();
    if public.is_empty() {
        return Err("refused: the receiver resolves to no public address".into());
    }
    Ok(public)
}

async fn refuse_private(url: &str, allow_insecure: bool) -> Result<(), String> {
    if allow_insecure {
        return Ok(());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    let host = parsed.host_str().ok_or("no host")?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve: {e}"))?;
    for a in addrs {
        if !address_allowed(a.ip(), false) {
            return Err("refused: the receiver resolves to a private address".into());
        }
    }
    Ok(())
}

async fn send(state: &AppState, client: &reqwest::Client, d: &DueDelivery) -> AttemptOutcome {
    let started = Instant::now();
    let at = Utc::now();
    let body = envelope(d);
    let signature = signature(&d.secret, at.timestamp(), &body);
    let result = match refuse_private(&d.url, state.config.webhook_allow_insecure).await {
        Err(e) => Err(e),
        Ok(()) => client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("passerelle-event-id", &d.event_id)
            .header("passerelle-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timeout".to_owned()
                } else {
                    "connection failed".to_owned()
                }
            }),
    };
    let attempt_no = d.attempts + 1;
    let (status_code, error, delivered) = match result {
        Ok(r) => (Some(r.status().as_u16()), None, r.status().is_success()),
        Err(e) => (None, Some(e), false),
    };
    let jitter = 800 + u32::from(uuid::Uuid::new_v4().as_bytes()[0]) * 400 / 255;
    let initial = chrono::Duration::from_std(state.config.webhook_retry_initial).unwrap_or_default();
    let retry_at = if delivered {
        None
    } else {
        next_attempt(
            Utc::now(),
            attempt_no,
            state.config.webhook_max_attempts,
            initial,
            jitter,
        )
    };
    AttemptOutcome {
        attempt: Attempt {
            attempt: attempt_no,
            at,
            status_code,
            error,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        },
        delivered,
        retry_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names that resolve only to this machine resolve to nothing for the webhook client.
    /// Resolving `localhost` asks no server and sends nothing.
    #[tokio::test]
    async fn the_client_resolves_no_private_address() {
        let refused = public_addresses("localhost").await.unwrap_err();
        assert!(refused.to_string().contains("no public address"), "{refused}");
    }

    #[test]
    fn ipv4_carried_in_ipv6_is_judged_as_ipv4() {
        let allowed = |s: &str| address_allowed(s.parse().unwrap(), false);
        for private in [
            "::127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::192.168.1.1",
            "0.1.2.3",
        ] {
            assert!(!allowed(private), "{private}");
        }
        for public in ["64:ff9b::8.8.8.8", "2001:4860:4860::8888", "8.8.8.8"] {
            assert!(allowed(public), "{public}");
        }
    }

    /// The body sent is the `WebhookEvent` the OpenAPI document publishes, member for member.
    #[test]
    fn the_envelope_is_the_published_event() {
        let payload = serde_json::json!({"resource": "other", "created_at": "2026-11-30T10:15:00Z",
            "organization": "mut-a", "data": {"id": "x"}});
        let due = DueDelivery {
            id: "d".into(),
            url: "https://127.0.0.1/".into(),
            secret: "s".into(),
            event_id: "e".into(),
            event_type: "coverage.changed".into(),
            payload: payload.to_string(),
            attempts: 0,
        };
        let body: Value = serde_json::from_slice(&envelope(&due)).unwrap();
        let sent: std::collections::BTreeSet<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        let doc = serde_json::to_value(crate::openapi::document()).unwrap();
        let published: std::collections::BTreeSet<&str> = doc["components"]["schemas"]["WebhookEvent"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(sent, published);
        assert_eq!(
            (body["event_id"].as_str(), body["type"].as_str()),
            (Some("e"), Some("coverage.changed"))
        );
    }

    #[test]
    fn signatures_follow_the_contract() {
        // HMAC-SHA256("secret", "1700000000.{}") computed independently with openssl:
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac secret
        let s = signature("secret", 1_700_000_000, b"{}");
        assert_eq!(
            s,
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }
}
