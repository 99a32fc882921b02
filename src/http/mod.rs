//! The HTTP port: Prometheus metrics (`/metrics`), the admin API (`/v1/…`,
//! JSON) and the web console (`/`).
//!
//! It runs on one thread of its own — a tokio current-thread runtime with
//! hyper's HTTP/1 server, unpinned, off the data-path shards — and reads
//! only what the shards published on the [`Board`](crate::metrics::Board):
//! a scrape never blocks a shard, and a slow or hostile HTTP client costs
//! the shards nothing. Requests are bounded: GET only, no request body is
//! read, at most [`HTTP_CONNECTIONS_MAX`] connections at once.

mod api;
mod prom;

use crate::metrics::Board;
use crate::security::tls::TlsServer;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Connections the HTTP port serves at once; more wait in the backlog.
pub const HTTP_CONNECTIONS_MAX: usize = 64;

/// The console page, bundled into the binary.
const CONSOLE_HTML: &str = include_str!("console.html");

/// A running HTTP server; stopped when dropped.
pub struct HttpServer {
    addr: SocketAddr,
    tls: Option<Arc<TlsServer>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// The bound address (the port the OS picked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its TLS configuration (to reload on SIGHUP), if it serves HTTPS.
    pub fn tls(&self) -> Option<Arc<TlsServer>> {
        self.tls.clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Binds `listen` now (so a taken port is an error at start) and serves
/// `board` on a thread of its own.
pub fn start(listen: SocketAddr, board: Arc<Board>) -> Result<HttpServer, String> {
    start_tls(listen, board, None)
}

/// [`start`], serving HTTPS with `tls` when given.
pub fn start_tls(
    listen: SocketAddr,
    board: Arc<Board>,
    tls: Option<Arc<TlsServer>>,
) -> Result<HttpServer, String> {
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| {
            format!(
                "binding the HTTP listener {listen}: {e} (another broker may be serving it; choose another with --http-listen HOST:PORT, or turn it off with --http-listen none)"
            )
        })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("HTTP listener: {e}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let tls_for_thread = tls.clone();
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the HTTP runtime; the HTTP port is not served");
                    return;
                }
            };
            runtime.block_on(serve(listener, board, tls_for_thread, stopped));
        })
        .map_err(|e| format!("starting the HTTP thread: {e}"))?;
    Ok(HttpServer {
        addr,
        tls,
        stop: Some(stop),
        thread: Some(thread),
    })
}

async fn serve(
    listener: std::net::TcpListener,
    board: Arc<Board>,
    tls: Option<Arc<TlsServer>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot serve the HTTP listener");
            return;
        }
    };
    let open = Arc::new(AtomicUsize::new(0));
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            loop {
                let accepted = tokio::select! {
                    _ = &mut stopped => return,
                    a = listener.accept() => a,
                };
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "HTTP accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if open.load(Ordering::Relaxed) >= HTTP_CONNECTIONS_MAX {
                    tracing::debug!(%peer, "HTTP connection limit reached; closing");
                    drop(stream);
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                let (board, open, tls) = (board.clone(), open.clone(), tls.clone());
                tokio::task::spawn_local(async move {
                    match tls {
                        None => serve_connection(stream, peer, board).await,
                        Some(tls) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
                            let handshake = tokio::time::timeout(
                                std::time::Duration::from_secs(10),
                                acceptor.accept(stream),
                            );
                            match handshake.await {
                                Ok(Ok(stream)) => serve_connection(stream, peer, board).await,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "HTTPS handshake failed")
                                }
                                Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
                            }
                        }
                    }
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            }
        })
        .await;
}

/// Serves one HTTP/1 connection (plain or TLS) until it ends.
async fn serve_connection<S>(stream: S, peer: SocketAddr, board: Arc<Board>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let io = hyper_util::rt::TokioIo::new(stream);
    let service = hyper::service::service_fn(move |request| {
        let board = board.clone();
        async move { Ok::<_, std::convert::Infallible>(route(&board, request)) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(10))
        .serve_connection(io, service);
    if let Err(e) = connection.await {
        tracing::debug!(%peer, error = %e, "HTTP connection ended");
    }
}

/// An answer: status, content type, body.
pub(crate) struct Answer {
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
}

impl Answer {
    fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
        Answer {
            status,
            content_type,
            body: body.into(),
        }
    }

    pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Answer {
        Answer::new(status, "application/json", value.to_string())
    }

    /// An error as JSON: `{"error": {"code": CODE, "message": …}}`, with a
    /// stable code.
    pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Answer {
        Answer::json(
            status,
            &serde_json::json!({"error": {"code": code, "message": message.into()}}),
        )
    }
}

fn route(board: &Board, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let answer = if request.method() != Method::GET && request.method() != Method::HEAD {
        Answer::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!(
                "{} is not served; the HTTP port is read-only (GET)",
                request.method()
            ),
        )
    } else {
        let accept = request
            .headers()
            .get(hyper::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match path.as_str() {
            "/" | "/index.html" => Answer::new(
                StatusCode::OK,
                "text/html; charset=utf-8",
                Bytes::from_static(CONSOLE_HTML.as_bytes()),
            ),
            "/metrics" => prom::answer(board, accept),
            _ => match path.strip_prefix("/v1/") {
                Some(rest) => api::answer(board, rest),
                None => Answer::error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    format!("no such page {path:?}; try /metrics, /v1/health or /"),
                ),
            },
        }
    };
    let mut response = Response::new(Full::new(answer.body));
    *response.status_mut() = answer.status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(answer.content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    response
}
