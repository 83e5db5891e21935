//! The API's connections: an accept loop with a cap on open connections, a
//! header-read timeout and an idle timeout per connection, and graceful
//! shutdown (docs/OPERATIONS.md, "Slow and idle clients").
//!
//! - At `api.max_connections` open connections the loop stops accepting: new
//!   connections wait in the kernel's listen backlog until one closes (they are
//!   not refused).
//! - A connection must complete a request head within `api.header_read_timeout`
//!   of its accept, or of its first byte after the previous response.
//! - Between requests, a connection with no traffic in either direction for
//!   `api.idle_timeout` is closed. That also covers a response the client stops
//!   reading. While a handler runs (from the end of the request head to its
//!   response) neither timer applies.
//!
//! The timers are kept here rather than with hyper's `header_read_timeout`:
//! hyper 1.x starts that one as soon as it waits for a request, so idle
//! keep-alive connections would be cut at the header timeout too.
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Per-connection limits (`api.header_read_timeout`, `api.idle_timeout`,
/// `api.max_connections`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn of(api: &hookfleet_core::config::ApiSettings) -> Limits {
        Limits {
            header_read_timeout: api.header_read_timeout,
            idle_timeout: api.idle_timeout,
            max_connections: api.max_connections,
        }
    }
}

/// Accepts and serves connections until `shutdown`; then stops accepting and
/// lets open connections finish their requests for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let cap = limits.max_connections.clamp(1, 1 << 20);
    let slots = Arc::new(Semaphore::new(cap));
    loop {
        // At the cap, wait for a slot before accepting: the connection waits in
        // the listen backlog meanwhile.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let tcp = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // EMFILE and the like: wait for descriptors to free up.
                    tracing::warn!(error = %e, "API could not accept a connection; retrying.");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(
            tcp,
            app.clone(),
            limits,
            shutdown.clone(),
            permit,
        ));
    }
    drop(listener);
    // Every slot back: every connection closed.
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("API requests still open after shutdown.grace; closing.");
    }
}

/// Serves one connection; its slot is released when it closes.
async fn connection(
    tcp: TcpStream,
    app: axum::Router,
    limits: Limits,
    shutdown: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let watch = Arc::new(Watch::new());
    let io = TokioIo::new(Watched {
        inner: tcp,
        watch: watch.clone(),
    });
    let w = watch.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let busy = Busy::start(&w);
        let mut app = app.clone();
        async move {
            let resp = tower_service::Service::call(&mut app, req).await;
            drop(busy);
            resp
        }
    });
    let conn = http1::Builder::new().serve_connection(io, svc);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "API connection ended with an error.");
                }
                return;
            }
            _ = shutdown.cancelled(), if !draining => {
                // Finishes the request in progress, if any, then closes.
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            why = watchdog(&watch, limits) => {
                tracing::debug!(reason = why, "API connection closed.");
                return;
            }
        }
    }
}

/// Resolves when the connection has overstayed a timeout; says which.
async fn watchdog(watch: &Watch, limits: Limits) -> &'static str {
    // While a handler runs there is no deadline: look again later.
    let recheck = limits.header_read_timeout.min(limits.idle_timeout);
    loop {
        let (deadline, why) = match watch.deadline(limits) {
            Some(d) => d,
            None => {
                tokio::time::sleep(recheck).await;
                continue;
            }
        };
        if Instant::now() >= deadline {
            return why;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// What a connection is doing, for its timers.
struct Watch(Mutex<State>);

struct State {
    accepted: Instant,
    /// Requests being handled (0 or 1 for HTTP/1).
    busy: usize,
    /// At least one response was produced.
    served: bool,
    /// The first byte of the next request head, when between requests.
    head_started: Option<Instant>,
    /// The last byte read or written.
    last_io: Instant,
}

impl Watch {
    fn new() -> Watch {
        let now = Instant::now();
        Watch(Mutex::new(State {
            accepted: now,
            busy: 0,
            served: false,
            head_started: None,
            last_io: now,
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut s = self.state();
        let now = Instant::now();
        s.last_io = now;
        if s.busy == 0 && s.served && s.head_started.is_none() {
            s.head_started = Some(now);
        }
    }

    fn wrote(&self, n: usize) {
        if n > 0 {
            self.state().last_io = Instant::now();
        }
    }

    /// When the connection is to be closed, and why; `None` while a request is
    /// being handled.
    fn deadline(&self, limits: Limits) -> Option<(Instant, &'static str)> {
        let s = self.state();
        if s.busy > 0 {
            None
        } else if !s.served {
            Some((
                s.accepted + limits.header_read_timeout,
                "no complete request head within api.header_read_timeout",
            ))
        } else if let Some(t) = s.head_started {
            Some((
                t + limits.header_read_timeout,
                "no complete request head within api.header_read_timeout",
            ))
        } else {
            Some((s.last_io + limits.idle_timeout, "idle for api.idle_timeout"))
        }
    }
}

/// A request being handled: the connection's timers wait meanwhile.
struct Busy(Arc<Watch>);

impl Busy {
    fn start(w: &Arc<Watch>) -> Busy {
        let mut s = w.state();
        s.busy += 1;
        s.head_started = None;
        drop(s);
        Busy(w.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut s = self.0.state();
        s.busy = s.busy.saturating_sub(1);
        s.served = true;
        s.last_io = Instant::now();
    }
}

/// The socket, reporting its traffic to the connection's [`Watch`].
struct Watched {
    inner: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            self.watch.read(buf.filled().len() - before);
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.watch.wrote(n);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.watch.wrote(n);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
