//! HTTP/2 (h2c with prior knowledge) over real sockets: a `Server` with `http2` on
//! 127.0.0.1:0, fake application threads answering through `Responder`, and the `h2` crate as
//! the client (raw frames where a client library would refuse to send what is tested).
//! Readiness is the bound address, never a sleep.

// The fake application threads are plain blocking threads: sleeping there is what a slow app does.
#![allow(clippy::disallowed_methods)]
// Test helpers, not request handling: a panic here is the test failing.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrule_core::config::ServerConfig;
use ferrule_core::exchange::{job_queue, Job, RequestBody, ResponseHead, ResponsePart};
use ferrule_core::head_bytes::HeadBytes;
use ferrule_core::server::{Server, ShutdownHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- the fake application

#[derive(Default)]
struct Observed {
    jobs: AtomicUsize,
    /// Body chunks `/big` managed to hand to its responder.
    big_sent: AtomicUsize,
    client_gone: AtomicUsize,
}

fn head(code: u16, headers: &[(&str, &str)]) -> ResponseHead {
    ResponseHead {
        code,
        status: HeadBytes::from(format!("{code} X")),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    HeadBytes::copy_from_slice(n.as_bytes()),
                    HeadBytes::copy_from_slice(v.as_bytes()),
                )
            })
            .collect(),
    }
}

fn query_num(query: &[u8], default: usize) -> usize {
    std::str::from_utf8(query)
        .ok()
        .and_then(|q| q.parse().ok())
        .unwrap_or(default)
}

fn app(job: Job, seen: &Observed) {
    seen.jobs.fetch_add(1, Ordering::SeqCst);
    let Job { request, responder } = job;
    let path = request.head.path().to_vec();
    let query = request.head.query().to_vec();
    let send = |part| {
        let r = responder.send(part);
        if r.is_err() {
            seen.client_gone.fetch_add(1, Ordering::SeqCst);
        }
        r
    };
    match &path[..] {
        b"/info" => {
            let h = &request.head;
            let text = format!(
                "{} {} {} host={} x={}",
                h.version().as_str(),
                String::from_utf8_lossy(h.method()),
                String::from_utf8_lossy(h.target()),
                String::from_utf8_lossy(h.host().unwrap_or(b"-")),
                String::from_utf8_lossy(h.header(b"x-thing").unwrap_or(b"-")),
            );
            let _ = send(ResponsePart::Start {
                head: head(200, &[("Content-Type", "text/plain"), ("Connection", "x")]),
                first: Bytes::from(text),
                end: true,
            });
        }
        b"/echo" => {
            let (kind, body) = match request.body {
                RequestBody::Empty => ("empty", Vec::new()),
                RequestBody::Full(b) => ("full", b.to_vec()),
                RequestBody::Stream(mut s) => {
                    let mut all = Vec::new();
                    loop {
                        match s.blocking_next() {
                            Ok(Some(c)) => all.extend_from_slice(&c),
                            Ok(None) => break,
                            Err(e) => {
                                all = format!("body error: {e}").into_bytes();
                                break;
                            }
                        }
                    }
                    ("stream", all)
                }
            };
            let _ = send(ResponsePart::Start {
                head: head(200, &[("X-Body", kind)]),
                first: Bytes::from(body),
                end: true,
            });
        }
        b"/stream" => {
            let n = query_num(&query, 3);
            let _ = (|| {
                send(ResponsePart::Start {
                    head: head(200, &[]),
                    first: Bytes::from_static(b"chunk-0;"),
                    end: false,
                })?;
                for i in 1..n {
                    send(ResponsePart::Body(Bytes::from(format!("chunk-{i};"))))?;
                }
                send(ResponsePart::End)
            })();
        }
        b"/big" => {
            let n = query_num(&query, 100);
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let mut r = send(ResponsePart::Start {
                head: head(200, &[]),
                first: chunk.clone(),
                end: false,
            });
            let mut i = 1;
            while r.is_ok() && i < n {
                seen.big_sent.store(i, Ordering::SeqCst);
                r = send(ResponsePart::Body(chunk.clone()));
                i += 1;
            }
            if r.is_ok() {
                let _ = send(ResponsePart::End);
            }
        }
        b"/len-short" => {
            let _ = send(ResponsePart::Start {
                head: head(200, &[("Content-Length", "10")]),
                first: Bytes::from_static(b"12345"),
                end: false,
            })
            .and_then(|()| send(ResponsePart::End));
        }
        b"/sleep" => {
            std::thread::sleep(Duration::from_millis(query_num(&query, 300) as u64));
            let _ = send(ResponsePart::Start {
                head: head(200, &[]),
                first: Bytes::from_static(b"slept"),
                end: true,
            });
        }
        _ => {
            let _ = send(ResponsePart::Start {
                head: head(404, &[]),
                first: Bytes::from_static(b"not found"),
                end: true,
            });
        }
    }
}

// ---------------------------------------------------------------- the server under test

struct TestServer {
    addr: SocketAddr,
    shutdown: ShutdownHandle,
    server: Option<JoinHandle<()>>,
    apps: Vec<JoinHandle<()>>,
    seen: Arc<Observed>,
}

fn start(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let mut config = ServerConfig {
        bind: vec!["127.0.0.1:0".to_owned()],
        http2: true,
        ..ServerConfig::default()
    };
    configure(&mut config);
    let server = Server::bind(config).expect("bind");
    let addr = server.local_addrs()[0];
    let shutdown = server.shutdown_handle();
    let (tx, rx) = job_queue();
    let seen = Arc::new(Observed::default());
    let apps = (0..4)
        .map(|_| {
            let rx = rx.clone();
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                while let Some(job) = rx.recv() {
                    app(job, &seen);
                }
            })
        })
        .collect();
    let server = std::thread::spawn(move || server.run(tx).expect("run"));
    TestServer {
        addr,
        shutdown,
        server: Some(server),
        apps,
        seen,
    }
}

impl TestServer {
    fn join(&mut self) {
        if let Some(server) = self.server.take() {
            server.join().unwrap();
            for app in self.apps.drain(..) {
                app.join().unwrap();
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.shutdown();
        if !std::thread::panicking() {
            self.join();
        }
    }
}

// ---------------------------------------------------------------- the client

/// Runs `f` on a current-thread runtime, bounded by [`CLIENT_TIMEOUT`].
fn run<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(CLIENT_TIMEOUT, f)
            .await
            .expect("test timed out")
    })
}

type Client = h2::client::SendRequest<Bytes>;

/// Connects with prior knowledge; the connection is driven by a spawned task whose handle
/// tells when it ended.
async fn connect(addr: SocketAddr) -> (Client, tokio::task::JoinHandle<Result<(), h2::Error>>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    (client, tokio::spawn(conn))
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
    /// The HEADERS frame ended the stream (no DATA).
    headers_ended: bool,
}

async fn request(client: &mut Client, method: &str, path: &str, body: Option<Bytes>) -> Answer {
    request_with(client, method, path, &[], body).await
}

async fn request_with(
    client: &mut Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
) -> Answer {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://t{path}"));
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req.body(()).unwrap();
    let mut ready = client.clone().ready().await.unwrap();
    let (resp, mut tx) = ready.send_request(req, body.is_none()).unwrap();
    if let Some(b) = body {
        tx.send_data(b, true).unwrap();
    }
    let resp = resp.await.unwrap();
    let (parts, mut rx) = resp.into_parts();
    let headers_ended = rx.is_end_stream();
    let mut out = Vec::new();
    while let Some(chunk) = rx.data().await {
        let chunk = chunk.unwrap();
        rx.flow_control().release_capacity(chunk.len()).unwrap();
        out.extend_from_slice(&chunk);
    }
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: out,
        headers_ended,
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn get_reports_http2_and_drops_hop_by_hop_fields() {
    let s = start(|_| {});
    run(async {
        let (mut c, _conn) = connect(s.addr).await;
        let a = request_with(&mut c, "GET", "/info?q=1", &[("x-thing", "v")], None).await;
        assert_eq!(a.status, 200);
        assert_eq!(
            String::from_utf8(a.body).unwrap(),
            "HTTP/2 GET /info?q=1 host=t x=v"
        );
        assert!(a.headers.get("connection").is_none());
        assert_eq!(a.headers["content-length"], "31");
        assert_eq!(a.headers["server"], "ferrule");
        assert!(a.headers.contains_key("date"));
    });
}

#[test]
fn http1_still_works_with_http2_enabled() {
    let s = start(|_| {});
    run(async {
        let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        tcp.write_all(b"GET /info HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        tcp.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("HTTP/1.1 GET /info host=h x=-"), "{text}");
    });
}

#[test]
fn post_bodies_small_and_streamed() {
    let s = start(|c| c.max_buffered_body = 1024);
    run(async {
        let (mut c, _conn) = connect(s.addr).await;
        let a = request(&mut c, "POST", "/echo", Some(Bytes::from_static(b"hello"))).await;
        assert_eq!((a.status, &a.body[..]), (200, &b"hello"[..]));
        assert_eq!(a.headers["x-body"], "full");
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let a = request(&mut c, "POST", "/echo", Some(Bytes::from(big.clone()))).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.headers["x-body"], "stream");
        assert!(
            a.body == big,
            "streamed body differs ({} bytes)",
            a.body.len()
        );
        let a = request(&mut c, "GET", "/echo", None).await;
        assert_eq!(a.headers["x-body"], "empty");
    });
}

#[test]
fn body_over_the_limit_is_413() {
    let s = start(|c| {
        c.limit_request_body = 1000;
        c.max_buffered_body = 100;
    });
    run(async {
        let (mut c, _conn) = connect(s.addr).await;
        // Declared too large.
        let a = request_with(
            &mut c,
            "POST",
            "/echo",
            &[("content-length", "5000")],
            Some(Bytes::from(vec![b'a'; 5000])),
        )
        .await;
        assert_eq!(a.status, 413);
        // Undeclared, found too large while buffering.
        let a = request(&mut c, "POST", "/echo", Some(Bytes::from(vec![b'a'; 5000]))).await;
        assert_eq!(a.status, 413);
        // The connection serves on.
        let a = request(&mut c, "GET", "/info", None).await;
        assert_eq!(a.status, 200);
    });
    assert_eq!(
        s.seen.jobs.load(Ordering::SeqCst),
        1,
        "the app never saw the 413s"
    );
}

#[test]
fn head_has_headers_and_no_data() {
    let s = start(|_| {});
    run(async {
        let (mut c, _conn) = connect(s.addr).await;
        let a = request(&mut c, "HEAD", "/info", None).await;
        assert_eq!(a.status, 200);
        assert!(a.headers_ended, "HEAD response carried DATA");
        assert!(a.body.is_empty());
        assert_eq!(a.headers["content-length"], "28"); // "HTTP/2 HEAD /info host=t x=-"
                                                       // A streamed answer to HEAD is drained: the app finishes, the connection serves on.
        let a = request(&mut c, "HEAD", "/stream?n=50", None).await;
        assert!(a.headers_ended && a.body.is_empty());
        let a = request(&mut c, "GET", "/stream?n=3", None).await;
        assert_eq!(a.body, b"chunk-0;chunk-1;chunk-2;");
        assert!(a.headers.get("content-length").is_none());
    });
}

#[test]
fn short_content_length_resets_the_stream() {
    let s = start(|_| {});
    run(async {
        let (c, _conn) = connect(s.addr).await;
        let req = http::Request::get("http://t/len-short").body(()).unwrap();
        let mut ready = c.clone().ready().await.unwrap();
        let (resp, _) = ready.send_request(req, true).unwrap();
        // The reset may overtake the head on the client's side.
        let Ok(resp) = resp.await else {
            return;
        };
        let mut body = resp.into_body();
        let mut got = Vec::new();
        let mut failed = false;
        while let Some(chunk) = body.data().await {
            match chunk {
                Ok(c) => got.extend_from_slice(&c),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed, "a short body ended cleanly with {got:?}");
        // Other streams are unaffected.
        let a = request(&mut c.clone(), "GET", "/info", None).await;
        assert_eq!(a.status, 200);
    });
}

#[test]
fn concurrent_streams_on_one_connection() {
    let s = start(|_| {});
    run(async {
        let (c, _conn) = connect(s.addr).await;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let mut c = c.clone();
            tasks.push(tokio::spawn(async move {
                request(&mut c, "GET", "/sleep?300", None).await.body
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), b"slept");
        }
        // 8 requests of 300 ms on 4 app threads: ~600 ms together, 2.4 s one after another.
        let took = started.elapsed();
        assert!(took < Duration::from_millis(1800), "took {took:?}");
    });
}

#[test]
fn a_slow_reader_holds_the_app_back() {
    let s = start(|_| {});
    let seen = Arc::clone(&s.seen);
    run(async {
        // The client's window stays at the protocol's 65,535 bytes and is never released
        // while we wait.
        let (c, _conn) = connect(s.addr).await;
        let req = http::Request::get("http://t/big?200").body(()).unwrap();
        let mut ready = c.clone().ready().await.unwrap();
        let (resp, _) = ready.send_request(req, true).unwrap();
        let resp = resp.await.unwrap();
        // Wait until the app is blocked: its count stops moving.
        let mut last = usize::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = seen.big_sent.load(Ordering::SeqCst);
            if now == last {
                break;
            }
            last = now;
        }
        // 64 KiB chunks: the response channel (16), the chunk hyper holds, h2's send buffer
        // and the window; far below the 200 the app wants to send.
        eprintln!("the app is blocked after {last} chunks");
        assert!(
            last < 40,
            "the app sent {last} chunks to a client that reads nothing"
        );
        // Now read everything: the app gets through.
        let mut body = resp.into_body();
        let mut total = 0usize;
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            total += chunk.len();
            body.flow_control().release_capacity(chunk.len()).unwrap();
        }
        assert_eq!(total, 200 * 64 * 1024);
    });
}

#[test]
fn client_going_away_fails_the_apps_send() {
    let s = start(|_| {});
    let seen = Arc::clone(&s.seen);
    run(async {
        let (c, conn) = connect(s.addr).await;
        let req = http::Request::get("http://t/big?100000").body(()).unwrap();
        let mut ready = c.clone().ready().await.unwrap();
        let (resp, _) = ready.send_request(req, true).unwrap();
        let resp = resp.await.unwrap();
        drop((resp, ready, c));
        conn.abort();
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.client_gone.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the app never learned");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn authority_and_host_must_agree() {
    let s = start(|_| {});
    run(async {
        let (mut c, _conn) = connect(s.addr).await;
        let a = request_with(&mut c, "GET", "/info", &[("host", "other")], None).await;
        assert_eq!(a.status, 400);
        let a = request_with(&mut c, "GET", "/info", &[("host", "t")], None).await;
        assert_eq!(a.status, 200);
        let a = request_with(&mut c, "GET", "/info", &[("expect", "magic")], None).await;
        assert_eq!(a.status, 417);
    });
    assert_eq!(s.seen.jobs.load(Ordering::SeqCst), 1);
}

/// Builds a frame: 9-byte header + payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK "literal header field without indexing, new name", no Huffman coding.
fn literal(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00, name.len() as u8];
    out.extend_from_slice(name);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
    out
}

/// Sends the preface, a SETTINGS frame and one HEADERS frame (GET / with `extra` fields
/// appended), then reads frames until a stream or connection error: its frame type (3 =
/// RST_STREAM, 7 = GOAWAY) and error code; `None` if a response HEADERS came instead.
async fn raw_request(addr: SocketAddr, extra: &[u8]) -> Option<(u8, u32)> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut block = vec![0x82, 0x86, 0x84]; // :method GET, :scheme http, :path /
    block.extend_from_slice(&[0x01, 0x01, b't']); // :authority t (indexed name)
    block.extend_from_slice(extra);
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[]));
    out.extend(frame(1, 0x05, 1, &block));
    tcp.write_all(&out).await.unwrap();
    let mut buf = Vec::new();
    loop {
        while buf.len() >= 9 {
            let len =
                (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let (kind, payload) = (buf[3], buf[9..9 + len].to_vec());
            buf.drain(..9 + len);
            match kind {
                1 => return None,
                3 => return Some((3, u32::from_be_bytes(payload[..4].try_into().unwrap()))),
                7 => return Some((7, u32::from_be_bytes(payload[4..8].try_into().unwrap()))),
                _ => {}
            }
        }
        let mut tmp = [0u8; 4096];
        let n = tcp.read(&mut tmp).await.unwrap();
        assert!(n > 0, "closed without an error frame");
        buf.extend_from_slice(&tmp[..n]);
    }
}

#[test]
fn invalid_fields_are_stream_or_connection_errors() {
    let s = start(|_| {});
    run(async {
        // A valid raw request gets its response HEADERS.
        assert_eq!(raw_request(s.addr, &literal(b"x-ok", b"1")).await, None);
        // RFC 9113 §8.2.2 connection-specific field: RST_STREAM PROTOCOL_ERROR (1).
        assert_eq!(
            raw_request(s.addr, &literal(b"connection", b"close")).await,
            Some((3, 1))
        );
        assert_eq!(
            raw_request(s.addr, &literal(b"transfer-encoding", b"chunked")).await,
            Some((3, 1))
        );
        assert_eq!(
            raw_request(s.addr, &literal(b"te", b"gzip")).await,
            Some((3, 1))
        );
        // RFC 9113 §8.2.1 uppercase name; a CR in a value: PROTOCOL_ERROR (the h2 crate
        // makes both connection errors).
        for extra in [literal(b"X-Up", b"1"), literal(b"x-v", b"a\r\nb: c")] {
            let err = raw_request(s.addr, &extra).await;
            assert!(
                matches!(err, Some((3 | 7, 1))),
                "{extra:?} answered {err:?}"
            );
        }
    });
    assert_eq!(
        s.seen.jobs.load(Ordering::SeqCst),
        1,
        "only the valid one ran"
    );
}

#[test]
fn header_list_over_the_limit_is_refused() {
    let s = start(|c| c.http2_max_header_list_size = 1000);
    run(async {
        let (mut c, _conn) = connect(s.addr).await;
        let big = "v".repeat(2000);
        let mut ready = c.clone().ready().await.unwrap();
        let req = http::Request::get("http://t/info")
            .header("x-big", big.as_str())
            .body(())
            .unwrap();
        let (resp, _) = ready.send_request(req, true).unwrap();
        match resp.await {
            Ok(r) => assert_eq!(r.status(), 431),
            Err(e) => assert_eq!(e.reason(), Some(h2::Reason::REFUSED_STREAM), "{e}"),
        }
        let a = request(&mut c, "GET", "/info", None).await;
        assert_eq!(a.status, 200);
    });
}

#[test]
fn graceful_shutdown_sends_goaway_and_finishes_streams() {
    let mut s = start(|_| {});
    let shutdown = s.shutdown.clone();
    run(async {
        let (c, conn) = connect(s.addr).await;
        let mut c2 = c.clone();
        let inflight =
            tokio::spawn(async move { request(&mut c2, "GET", "/sleep?500", None).await });
        // Wait until the app has the request, then stop the server.
        while s.seen.jobs.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        shutdown.shutdown();
        let a = inflight.await.unwrap();
        assert_eq!((a.status, &a.body[..]), (200, &b"slept"[..]));
        // GOAWAY: the client's connection ends cleanly, and no new stream can start.
        let ended = conn.await.unwrap();
        assert!(ended.is_ok(), "{ended:?}");
        let req = http::Request::get("http://t/info").body(()).unwrap();
        let refused = match c.clone().ready().await {
            Err(_) => true,
            Ok(mut r) => match r.send_request(req, true) {
                Err(_) => true,
                Ok((resp, _)) => resp.await.is_err(),
            },
        };
        assert!(refused, "a stream started after GOAWAY");
    });
    s.join();
}

#[test]
fn idle_connections_get_goaway() {
    let s = start(|c| c.keepalive_timeout = 0.3);
    run(async {
        let (mut c, conn) = connect(s.addr).await;
        let a = request(&mut c, "GET", "/info", None).await;
        assert_eq!(a.status, 200);
        let started = Instant::now();
        let ended = conn.await.unwrap();
        assert!(ended.is_ok(), "{ended:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
    });
}
