//! The router served over HTTP/1.1 with a bound on how long a request head may take to arrive.
//! `axum::serve` gives hyper's connections no timer, so hyper's `header_read_timeout` never ran:
//! a client that sent its request head a byte at a time (slowloris), or opened connections and
//! sent nothing, held a socket and a task each for as long as it liked. hyper's builder, from
//! hyper-util, is what `axum::serve` uses inside; the timer, the timeout and HTTP/1.1 alone are
//! ours, and hyper-util's `GracefulShutdown` drains.
//!
//! HTTP/1.1 alone: `axum::serve` also took cleartext HTTP/2 (h2c), detected by reading the
//! connection's first bytes, a read with no time limit of its own (a client that connected and
//! sent nothing was never dropped), and HTTP/2 has no header timeout in hyper. The service sits
//! behind a proxy or ingress, which speaks HTTP/1.1 to it.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and waits for the
/// connections open to finish their requests. An idle one closes at once; one part-way through a
/// request head is not idle to hyper, and stays until its header timeout or the caller's drain
/// ends (`app::serve_until`), whichever comes first.
///
/// A connection that has not sent a whole request head `header_read_timeout` after hyper
/// started waiting for one is closed. hyper starts that wait when a connection opens and again
/// after each answer, so an idle keep-alive connection is closed after the same time.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // The pause never delays a shutdown.
                    tokio::select! {
                        () = accept_failed(&e) => continue,
                        () = shutdown.as_mut() => break,
                    }
                }
            },
            () = shutdown.as_mut() => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client gone, or too slow with its head: nothing for the service to do, but a
            // count of the slow ones shows a slowloris to the operator.
            if let Err(e) = connection.await {
                let timed_out = e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout);
                if timed_out {
                    metrics::counter!("passerelle_http_header_timeouts_total").increment(1);
                    tracing::debug!("a connection sent no whole request head in time; closed");
                } else {
                    tracing::trace!(error = %e, "connection ended with an error");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// As `axum::serve` does: a connection that failed before it was accepted is the client's
/// business; anything else (out of file descriptors, say) is logged and waited out for a second,
/// rather than retried in a tight loop.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; trying again in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
