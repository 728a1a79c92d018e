//! An answer given before its request's body was read ends its connection, and says so.
//!
//! A request refused before its body is read (a token refused, a full spool, a body too large or
//! compressed) leaves the rest of that body on the connection, and the server closes it after
//! the answer, unless the body is small enough for hyper to read past at once. Without `Connection: close` a client kept the connection in its pool and sent
//! its next request on it, to meet the close: reqwest failed that request with
//! `IncompleteMessage` (a bulk upload sent right after two refused ones, in a test run).

use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// How far a request's body has been read: not at all, in part, or to its end.
#[derive(Debug, Default)]
pub struct Progress(AtomicU8);

// Not read at all: 0, the default.
const READING: u8 = 1;
const ENDED: u8 = 2;

impl Progress {
    /// Read to its end.
    pub fn ended(&self) -> bool {
        self.0.load(Ordering::Acquire) == ENDED
    }

    /// Being read, and not to its end yet: its reader waits for the rest.
    pub fn reading(&self) -> bool {
        self.0.load(Ordering::Acquire) == READING
    }
}

/// A request body that tells how far it was read.
struct Watched {
    inner: Body,
    progress: Arc<Progress>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let now = if matches!(polled, Poll::Ready(None)) {
            ENDED
        } else {
            READING
        };
        // Never back from the end.
        this.progress.0.fetch_max(now, Ordering::AcqRel);
        polled
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.progress.0.store(ENDED, Ordering::Release);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `body`, telling through the [`Progress`] returned beside it how far it has been read.
pub fn watched(body: Body) -> (Body, Arc<Progress>) {
    let progress = Arc::new(Progress::default());
    let body = Body::new(Watched {
        inner: body,
        progress: progress.clone(),
    });
    (body, progress)
}

/// A body that hyper reads past by itself when an answer leaves it unread, the connection kept:
/// what came with the request's head, at most its first read buffer. Past it, hyper closes.
const DRAINED_BY_HYPER: u64 = 8 * 1024;

/// The length a request announces for its body: `Some(0)` for none, `None` for chunks of a
/// length not known ahead.
fn announced_length(request: &Request) -> Option<u64> {
    let headers = request.headers();
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return None;
    }
    Some(
        headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0),
    )
}

/// Whether the request announces a body: a length above zero, or chunks.
pub fn announces_body(request: &Request) -> bool {
    announced_length(request) != Some(0)
}

pub async fn close_after_unread(request: Request, next: Next) -> Response {
    // A small body left unread is read past by hyper, and the connection kept.
    if announced_length(&request).is_some_and(|n| n <= DRAINED_BY_HYPER) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let (body, progress) = watched(body);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if !progress.ended() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
