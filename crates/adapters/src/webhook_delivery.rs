//! Sends webhook deliveries over HTTPS: the domain's [`WebhookSender`] port. The delivery worker
//! (`passerelle-api`'s `webhook_worker`) decides what to send and when, and records each try;
//! this module only sends, and refuses to send anywhere but to a public address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use passerelle_domain::ports::{SignedPost, WebhookSender};

use crate::public_address::address_allowed;

/// What deliveries name themselves as, for receivers' firewalls to let through (API.md §5).
pub const USER_AGENT: &str = concat!("passerelle-webhooks/", env!("CARGO_PKG_VERSION"));

/// The whole of one try: resolving the receiver's name, connecting, sending, its answer.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What an attempt records for a receiver that cannot be reached at a public address. The
/// subscriber reads it: whether the service's resolver knows a name, and whether it points
/// inside the deployment's network, is not the subscriber's to probe, so every such case reads
/// as any unreachable receiver does; the cause is logged.
pub const UNREACHABLE: &str = "connection failed";

/// The HTTP client of deliveries: no redirect followed (a receiver could send a delivery on to a
/// private address), no proxy from the environment, and, unless
/// `PASSERELLE_WEBHOOK_ALLOW_INSECURE` is on, https to public addresses only.
pub struct HttpSender {
    client: reqwest::Client,
    allow_insecure: bool,
}

impl HttpSender {
    pub fn new(allow_insecure: bool) -> Result<HttpSender, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // Web application firewalls in front of receivers often drop requests without one.
            .user_agent(USER_AGENT)
            .no_proxy();
        if !allow_insecure {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(HttpSender {
            client: builder.build()?,
            allow_insecure,
        })
    }
}

#[async_trait]
impl WebhookSender for HttpSender {
    async fn send(&self, post: SignedPost) -> Result<u16, String> {
        let attempt = async {
            refuse_private(&post.url, self.allow_insecure).await?;
            let mut request = self
                .client
                .post(&post.url)
                .header("content-type", "application/json")
                .header("passerelle-event-id", &post.event_id)
                .header("passerelle-signature", &post.signature);
            if let Some(traceparent) = &post.traceparent {
                request = request.header("traceparent", traceparent);
            }
            let answer = request
                .body(post.body)
                .send()
                .await
                .map_err(|_| UNREACHABLE.to_owned())?;
            Ok(answer.status().as_u16())
        };
        // The name's resolution too: a resolver that never answers holds its slot no longer.
        tokio::time::timeout(SEND_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| Err("timeout".to_owned()))
    }
}

/// The client's resolver: a name resolves to its public addresses only, at the moment of
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

async fn public_addresses(host: &str) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let public: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await?
        .filter(|a| address_allowed(a.ip(), false))
        .collect();
    if public.is_empty() {
        return Err("refused: the receiver resolves to no public address".into());
    }
    Ok(public)
}

/// The guard before a send, as in production: https only (a subscription stored while
/// `PASSERELLE_WEBHOOK_ALLOW_INSECURE` was on, `http://` say, is not sent in clear once it is
/// off), and no private address among those the name resolves to.
async fn refuse_private(url: &str, allow_insecure: bool) -> Result<(), String> {
    if allow_insecure {
        return Ok(());
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| "refused: not a URL".to_owned())?;
    if parsed.scheme() != "https" {
        return Err("refused: not an https URL".into());
    }
    // An IPv6 literal is `[…]` in a URL and bare to the resolver, which fails on the brackets.
    let host = parsed.host_str().ok_or("refused: no host")?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addrs = tokio::net::lookup_host((host, port)).await.map_err(|e| {
        tracing::warn!(host, error = %e, "a webhook receiver's name does not resolve");
        UNREACHABLE.to_owned()
    })?;
    for a in addrs {
        if !address_allowed(a.ip(), false) {
            tracing::warn!(host, "a webhook receiver resolves to a private address: not sent");
            return Err(UNREACHABLE.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Before a send in production: https only, and a private address reads as any unreachable
    /// receiver. Literal addresses: nothing is resolved or sent.
    #[tokio::test]
    async fn the_guard_takes_https_to_public_addresses_only() {
        for url in ["http://8.8.8.8/hook", "ftp://8.8.8.8/hook"] {
            assert_eq!(
                refuse_private(url, false).await.unwrap_err(),
                "refused: not an https URL",
                "{url}"
            );
        }
        for url in [
            "https://127.0.0.1/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://10.1.2.3/hook",
        ] {
            assert_eq!(refuse_private(url, false).await.unwrap_err(), UNREACHABLE, "{url}");
        }
        assert_eq!(refuse_private("https://8.8.8.8/hook", false).await, Ok(()));
        assert_eq!(refuse_private("http://127.0.0.1/hook", true).await, Ok(()));
    }

    /// Names that resolve only to this machine resolve to nothing for the webhook client.
    /// Resolving `localhost` asks no server and sends nothing.
    #[tokio::test]
    async fn the_client_resolves_no_private_address() {
        let refused = public_addresses("localhost").await.unwrap_err();
        assert!(refused.to_string().contains("no public address"), "{refused}");
    }

    /// An IPv6 literal is judged by its address (a numeric lookup asks no server, sends nothing);
    /// with its brackets it failed to resolve, so a public one could never be delivered.
    #[tokio::test]
    async fn ipv6_literals_are_judged_by_their_address() {
        let refused = refuse_private("https://[::1]:8443/hook", false).await.unwrap_err();
        assert_eq!(refused, UNREACHABLE);
        refuse_private("https://[2001:4860:4860::8888]/hook", false)
            .await
            .unwrap();
    }

    /// A one-request receiver on loopback: the request it got, through the channel, and the
    /// answer `status` it gives.
    async fn receiver(status: u16) -> (u16, tokio::sync::oneshot::Receiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (got, request) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0_u8; 4096];
            // Headers, then the body of its announced length.
            while let Ok(n @ 1..) = socket.read(&mut buf).await {
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|n| n.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if seen.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let answer = format!("HTTP/1.1 {status} Whatever\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            socket.write_all(answer.as_bytes()).await.unwrap();
            let _ = got.send(String::from_utf8_lossy(&seen).to_string());
        });
        (port, request)
    }

    fn post(url: String) -> SignedPost {
        SignedPost {
            url,
            event_id: "evt-1".into(),
            signature: "t=1,v1=ab".into(),
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            body: br#"{"event_id":"evt-1"}"#.to_vec(),
        }
    }

    /// The receiver gets the event as a signed JSON POST naming its sender (API.md §5,
    /// Webhooks), and its status comes back whatever it is: the worker judges it.
    #[tokio::test]
    async fn a_delivery_is_a_signed_json_post_and_its_status_comes_back() {
        let (port, request) = receiver(503).await;
        let sender = HttpSender::new(true).unwrap();
        assert_eq!(
            sender.send(post(format!("http://127.0.0.1:{port}/hook"))).await,
            Ok(503)
        );
        let request = request.await.unwrap().to_lowercase();
        assert!(request.starts_with("post /hook http/1.1\r\n"), "{request}");
        for header in [
            "content-type: application/json",
            "passerelle-event-id: evt-1",
            "passerelle-signature: t=1,v1=ab",
            "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            &format!("user-agent: {}", USER_AGENT.to_lowercase()),
        ] {
            assert!(request.contains(&format!("\r\n{header}\r\n")), "{header} in {request}");
        }
        assert!(request.ends_with("\r\n\r\n{\"event_id\":\"evt-1\"}"), "{request}");
    }

    /// Unless insecure receivers are allowed, a loopback receiver gets nothing, not even a
    /// connection, and the attempt reads as any unreachable receiver.
    #[tokio::test]
    async fn a_private_receiver_is_never_connected_to() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sender = HttpSender::new(false).unwrap();
        for url in [
            format!("https://127.0.0.1:{port}/hook"),
            format!("https://localhost:{port}/hook"),
            format!("http://127.0.0.1:{port}/hook"),
        ] {
            let refused = sender.send(post(url.clone())).await.unwrap_err();
            assert!(
                refused == UNREACHABLE || refused.starts_with("refused: "),
                "{url}: {refused}"
            );
        }
        let connected = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(connected.is_err(), "no connection reached the receiver");
    }
}
