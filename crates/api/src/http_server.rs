//! The router served over HTTP/1.1 with a bound on how long a request head may take to arrive,
//! and on how long a client may leave its answer unread.
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

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt;

/// How long a client may keep a connection without doing its part.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// To send a whole request head, from the connection's opening or its last answer.
    pub header_read: Duration,
    /// To take any byte of its answer: one that stopped reading held a task, a connection and
    /// the answer's buffers for as long as it liked (a shutdown too, which waits for the answers
    /// in flight). Each byte taken starts it again, so a slow link is not cut.
    pub send: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and waits for the
/// requests in flight to finish (their answers sent whole), and returns. Idle connections are
/// closed at once. A connection part-way through a request head (a slow client) holds no
/// request, so it does not hold the return: hyper would not close it before its header timeout,
/// which is longer than a rollout's drain.
///
/// A connection that has not sent a whole request head `header_read_timeout` after hyper
/// started waiting for one is closed. hyper starts that wait when a connection opens and again
/// after each answer, so an idle keep-alive connection is closed after the same time. One whose
/// client takes no byte of an answer for `limits.send` is closed too.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    let graceful = GracefulShutdown::new();
    let in_flight = Arc::new(InFlight::default());
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
        let service = TowerToHyperService::new(counted(app.clone(), in_flight.clone()));
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.send));
        let connection = builder
            .serve_connection(TokioIo::new(Box::pin(stream)), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client gone, or too slow: nothing for the service to do, but a count of the slow
            // ones shows a slowloris to the operator.
            if let Err(e) = connection.await {
                let head_timed_out = e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout);
                if head_timed_out {
                    metrics::counter!("passerelle_http_header_timeouts_total").increment(1);
                    tracing::debug!("a connection sent no whole request head in time; closed");
                } else if stopped_reading(&*e) {
                    metrics::counter!("passerelle_http_send_timeouts_total").increment(1);
                    tracing::debug!("a connection took no byte of its answer in time; closed");
                } else {
                    tracing::trace!(error = %e, "connection ended with an error");
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = in_flight.none() => {}
    }
}

/// Whether the connection ended on the send timeout: the write's `TimedOut`, somewhere in the
/// error's chain (hyper wraps it).
fn stopped_reading(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The requests being answered, from the moment hyper hands one to the router until its answer's
/// body has been sent (or the client went away).
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    none_left: Notify,
}

/// One request counted in `InFlight`, until dropped.
struct Entered(Arc<InFlight>);

impl Drop for Entered {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}

impl InFlight {
    fn enter(self: &Arc<Self>) -> Entered {
        self.count.fetch_add(1, Ordering::AcqRel);
        Entered(Arc::clone(self))
    }

    /// Resolves once no request has been in flight for a moment: a request whose head arrived
    /// just as the shutdown began is handed to the router within it.
    async fn none(&self) {
        loop {
            let left = self.none_left.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                tokio::time::sleep(SETTLE).await;
                if self.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                continue;
            }
            left.await;
        }
    }
}

/// How long no request must be in flight before a shutdown stops waiting for connections.
const SETTLE: Duration = Duration::from_millis(100);

/// `app`, counting each request in `in_flight` until its answer's body is dropped, which hyper
/// does once it has sent it.
fn counted(
    app: Router,
    in_flight: Arc<InFlight>,
) -> impl tower::Service<
    Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
> + Clone {
    tower::service_fn(move |request: Request<Incoming>| {
        let entered = in_flight.enter();
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await?;
            Ok(response.map(|body| {
                Body::new(Counted {
                    body,
                    _entered: entered,
                })
            }))
        }
    })
}

/// An answer's body holding its request's count. Every call goes to the body itself, its size
/// included, so that hyper still sends `Content-Length` where the body knows it.
struct Counted {
    body: Body,
    _entered: Entered,
}

impl http_body::Body for Counted {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
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
