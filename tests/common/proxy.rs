//! A TCP proxy in front of PostgreSQL that a test can cut (connections dropped and refused) or
//! stall (connections kept open, nothing passed on: a host gone from the network), to see the
//! service lose its database mid-flight and come back; or lose the answer to one large commit
//! (the commit done, the connection gone before its answer), which no client can tell from a
//! commit that never arrived.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Default)]
struct State {
    cut: AtomicBool,
    stalled: AtomicBool,
    /// Connections let through so far.
    accepted: AtomicUsize,
    /// Bytes the clients sent, counted as they arrive, stalled or not.
    sent: AtomicU64,
    /// When not 0, the next `COMMIT` of a transaction that sent at least this many bytes is
    /// passed on and its connection dropped before the answer: once, then 0 again.
    lose_commit_after: AtomicU64,
    /// Commits whose answer was lost so.
    commits_lost: AtomicUsize,
    /// When set, the next `COMMIT` of a transaction that sent these bytes is passed on and its
    /// answer held for the duration: once, then `None` again.
    delay_commit: Mutex<Option<(&'static [u8], Duration)>>,
    /// Commits whose answer was held so.
    commits_delayed: AtomicUsize,
}

/// Whether a chunk holds a simple-protocol statement: the `Q` message, its length, its text.
/// sqlx sends `BEGIN` and `COMMIT` so (no arguments); a test's data never holds these bytes.
/// The connection must be in clear (`sslmode=disable`) for the proxy to read them.
fn holds_statement(chunk: &[u8], text: &[u8]) -> bool {
    chunk.windows(5 + text.len()).any(|w| w[0] == b'Q' && &w[5..] == text)
}

pub struct Proxy {
    pub port: u16,
    state: Arc<State>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

/// What the two directions of one connection share.
#[derive(Default)]
struct Link {
    /// The server's side passes nothing once set.
    muted: AtomicBool,
    /// The server's side holds what it passes until then.
    held_until: Mutex<Option<tokio::time::Instant>>,
}

/// Copies `from` to `to`, holding each chunk while the proxy is stalled. The client's side
/// (`client`) counts what it sends, and what its transaction has sent since `BEGIN`; the
/// server's side passes nothing once the link is muted, and waits while it is held.
async fn pass(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<State>,
    client: bool,
    link: Arc<Link>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut in_transaction = 0u64;
    // Whether the transaction under way sent the bytes a delayed commit waits for.
    let mut marked = false;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let mut lose_answer = false;
        if client {
            state.sent.fetch_add(n as u64, Ordering::SeqCst);
            if holds_statement(chunk, b"BEGIN") {
                in_transaction = 0;
                marked = false;
            }
            in_transaction += n as u64;
            if holds_statement(chunk, b"COMMIT\0") {
                let mut delay = state.delay_commit.lock().expect("delay");
                if let Some((marker, hold)) = *delay {
                    if marked || chunk.windows(marker.len()).any(|w| w == marker) {
                        *delay = None;
                        *link.held_until.lock().expect("held") = Some(tokio::time::Instant::now() + hold);
                        state.commits_delayed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            } else if let Some((marker, _)) = *state.delay_commit.lock().expect("delay") {
                marked |= chunk.windows(marker.len()).any(|w| w == marker);
            }
            let bound = state.lose_commit_after.load(Ordering::SeqCst);
            lose_answer = bound > 0
                && in_transaction >= bound
                && holds_statement(chunk, b"COMMIT\0")
                && state
                    .lose_commit_after
                    .compare_exchange(bound, 0, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok();
            if lose_answer {
                link.muted.store(true, Ordering::SeqCst);
            }
        } else {
            let until = *link.held_until.lock().expect("held");
            if let Some(until) = until {
                tokio::time::sleep_until(until).await;
            }
        }
        while state.stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if link.muted.load(Ordering::SeqCst) && !client {
            continue;
        }
        if to.write_all(chunk).await.is_err() {
            return;
        }
        if lose_answer {
            // The server reads the COMMIT before it sees the connection close, so it commits.
            let _ = to.flush().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            state.commits_lost.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
}

impl Proxy {
    pub async fn start(upstream: &'static str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State::default());
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (state2, links2) = (state.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if state2.cut.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                state2.accepted.fetch_add(1, Ordering::SeqCst);
                let state3 = state2.clone();
                let link = tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(upstream).await {
                        let (client_read, client_write) = inbound.into_split();
                        let (server_read, server_write) = outbound.into_split();
                        let link = Arc::new(Link::default());
                        tokio::select! {
                            () = pass(client_read, server_write, state3.clone(), true, link.clone()) => {}
                            () = pass(server_read, client_write, state3, false, link) => {}
                        }
                    }
                });
                links2.lock().expect("links").push(link);
            }
        });
        Proxy {
            port,
            state,
            links,
            accept,
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    /// Keeps every connection open but passes nothing on, either way, until `restore`.
    pub fn stall(&self) {
        self.state.stalled.store(true, Ordering::SeqCst);
    }

    /// How many connections the proxy has let through.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// How many bytes the clients have sent through it, including those held by a stall.
    pub fn sent(&self) -> u64 {
        self.state.sent.load(Ordering::SeqCst)
    }

    /// Arms the loss of one commit's answer: the next `COMMIT` of a transaction that sent at
    /// least `bytes` reaches the server, and its connection is dropped before the answer.
    pub fn lose_next_commit_answer(&self, bytes: u64) {
        self.state.lose_commit_after.store(bytes, Ordering::SeqCst);
    }

    /// How many commits' answers were lost so.
    pub fn commits_lost(&self) -> usize {
        self.state.commits_lost.load(Ordering::SeqCst)
    }

    /// Arms the delay of one commit's answer: the next `COMMIT` of a transaction that sent
    /// `marker` (a statement's text, sent when a connection first prepares it) reaches the
    /// server at once, and its answer reaches the client `hold` later.
    pub fn delay_next_commit_answer(&self, marker: &'static [u8], hold: Duration) {
        *self.state.delay_commit.lock().expect("delay") = Some((marker, hold));
    }

    /// How many commits' answers were held so.
    pub fn commits_delayed(&self) -> usize {
        self.state.commits_delayed.load(Ordering::SeqCst)
    }

    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
        self.state.stalled.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
