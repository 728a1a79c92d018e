//! A TCP proxy in front of PostgreSQL that a test can cut (connections dropped and refused) or
//! stall (connections kept open, nothing passed on: a host gone from the network), to see the
//! service lose its database mid-flight and come back.

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
}

pub struct Proxy {
    pub port: u16,
    state: Arc<State>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

/// Copies `from` to `to`, holding each chunk while the proxy is stalled.
async fn pass(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<State>,
    count: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if count {
            state.sent.fetch_add(n as u64, Ordering::SeqCst);
        }
        while state.stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
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
                        tokio::select! {
                            () = pass(client_read, server_write, state3.clone(), true) => {}
                            () = pass(server_read, client_write, state3, false) => {}
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
