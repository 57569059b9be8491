//! The connection driver over real sockets, before any Python exists: a `Server` on
//! 127.0.0.1:0 run on a thread, fake application threads answering through `Responder`, and a
//! raw `TcpStream` client. Readiness is the bound address, never a sleep.

// The fake application threads are plain blocking threads: sleeping there is what a slow app does.
#![allow(clippy::disallowed_methods)]
// Test helpers, not request handling: a panic here is the test failing.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrule_core::config::ServerConfig;
use ferrule_core::exchange::{
    job_queue, ClientGone, FileBody, Job, RequestBody, ResponseHead, ResponsePart,
};
use ferrule_core::head_bytes::HeadBytes;
use ferrule_core::server::{Server, ShutdownHandle};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------- the fake application

/// What the app threads report back to tests.
#[derive(Default)]
struct Observed {
    /// Times `Responder::send` failed with `ClientGone`.
    client_gone: AtomicUsize,
    /// Jobs handled.
    jobs: AtomicUsize,
    /// Streamed bodies that reported an error to the app.
    body_errors: AtomicUsize,
}

fn head(code: u16, headers: &[(&str, &str)]) -> ResponseHead {
    let status = match code {
        200 => "200 OK".to_owned(),
        other => format!("{other} Status"),
    };
    ResponseHead {
        code,
        status: HeadBytes::from(status),
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

fn read_body(body: RequestBody, seen: &Observed) -> Result<Vec<u8>, String> {
    match body {
        RequestBody::Empty => Ok(Vec::new()),
        RequestBody::Full(b) => Ok(b.to_vec()),
        RequestBody::Stream(mut s) => {
            let mut all = Vec::new();
            loop {
                match s.blocking_next() {
                    Ok(Some(chunk)) => all.extend_from_slice(&chunk),
                    Ok(None) => return Ok(all),
                    Err(e) => {
                        seen.body_errors.fetch_add(1, Ordering::SeqCst);
                        return Err(e.to_string());
                    }
                }
            }
        }
    }
}

fn query_num(query: &[u8], default: usize) -> usize {
    std::str::from_utf8(query)
        .ok()
        .and_then(|q| q.parse().ok())
        .unwrap_or(default)
}

/// The app: routes on the path.
fn app(job: Job, seen: &Observed) {
    seen.jobs.fetch_add(1, Ordering::SeqCst);
    let Job { request, responder } = job;
    let path = request.head.path().to_vec();
    let query = request.head.query().to_vec();
    let method = request.head.method().to_vec();
    let send = |part| -> Result<(), ClientGone> {
        let r = responder.send(part);
        if r.is_err() {
            seen.client_gone.fetch_add(1, Ordering::SeqCst);
        }
        r
    };
    match &path[..] {
        b"/echo" => {
            let body = match read_body(request.body, seen) {
                Ok(b) => b,
                Err(e) => format!("body error: {e}").into_bytes(),
            };
            let mut out = method;
            out.push(b' ');
            out.extend_from_slice(&body);
            let _ = send(ResponsePart::Start {
                head: head(200, &[("Content-Type", "text/plain")]),
                first: Bytes::from(out),
                end: true,
            });
        }
        b"/bodylen" => {
            let len = match read_body(request.body, seen) {
                Ok(b) => b.len().to_string(),
                Err(e) => format!("body error: {e}"),
            };
            let _ = send(ResponsePart::Start {
                head: head(200, &[]),
                first: Bytes::from(len),
                end: true,
            });
        }
        b"/noread" => {
            drop(request.body);
            let _ = send(ResponsePart::Start {
                head: head(200, &[]),
                first: Bytes::from_static(b"ok"),
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
        b"/len-short" => {
            let _ = send(ResponsePart::Start {
                head: head(200, &[("Content-Length", "10")]),
                first: Bytes::from_static(b"12345"),
                end: false,
            })
            .and_then(|()| send(ResponsePart::End));
        }
        b"/len-long" => {
            let _ = send(ResponsePart::Start {
                head: head(200, &[("Content-Length", "3")]),
                first: Bytes::from_static(b"abc"),
                end: false,
            })
            .and_then(|()| send(ResponsePart::Body(Bytes::from_static(b"def"))))
            .and_then(|()| send(ResponsePart::End));
        }
        b"/file" => {
            let path =
                std::env::temp_dir().join(format!("ferrule-driver-{}.txt", std::process::id()));
            let content: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
            if std::fs::read(&path).map(|c| c != content).unwrap_or(true) {
                std::fs::write(&path, &content).unwrap();
            }
            let file = std::fs::File::open(&path).unwrap();
            let offset = query_num(&query, 0) as u64;
            let _ = send(ResponsePart::StartFile {
                head: head(200, &[("Content-Type", "text/plain")]),
                file: FileBody {
                    file,
                    offset,
                    len: None,
                },
            });
        }
        b"/drop" => drop(responder),
        b"/abort" => {
            let _ = send(ResponsePart::Start {
                head: head(200, &[]),
                first: Bytes::from_static(b"partial"),
                end: false,
            })
            .and_then(|()| send(ResponsePart::Abort));
        }
        b"/big" => {
            // Sends until the client goes away (or 64 MiB).
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let mut r = send(ResponsePart::Start {
                head: head(200, &[]),
                first: chunk.clone(),
                end: false,
            });
            let mut n = 0;
            while r.is_ok() && n < 1024 {
                r = send(ResponsePart::Body(chunk.clone()));
                n += 1;
            }
            if r.is_ok() {
                let _ = send(ResponsePart::End);
            }
        }
        b"/sleep" => {
            std::thread::sleep(Duration::from_millis(query_num(&query, 300) as u64));
            let _ = send(ResponsePart::Start {
                head: head(200, &[]),
                first: Bytes::from_static(b"slept"),
                end: true,
            });
        }
        b"/nocontent" => {
            let _ = send(ResponsePart::Start {
                head: head(204, &[]),
                first: Bytes::from_static(b"ignored"),
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
    fn connect(&self) -> Client {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Stops the server and checks that `run` returns and every app thread sees the queue end.
    fn stop(mut self) {
        self.shutdown.shutdown();
        self.join();
    }

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

// ---------------------------------------------------------------- a raw HTTP client

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads more; false at EOF.
    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 65536];
        match self.stream.read(&mut tmp) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(e) => panic!(
                "read failed: {e} (buffered: {:?})",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    fn take_line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Some(line);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    fn take_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(
                self.fill(),
                "EOF inside a body ({} of {n} bytes)",
                self.buf.len()
            );
        }
        self.buf.drain(..n).collect()
    }

    /// Reads only a status line and headers.
    fn head(&mut self) -> Option<Response> {
        let status_line = self.take_line()?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let mut headers = Vec::new();
        loop {
            let line = self.take_line().expect("EOF in response head");
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(": ").expect("header line");
            headers.push((n.to_owned(), v.to_owned()));
        }
        Some(Response {
            status,
            headers,
            body: Vec::new(),
        })
    }

    /// Reads one response; `no_body` for HEAD requests.
    fn response_to(&mut self, no_body: bool) -> Response {
        let mut r = self.head().expect("EOF instead of a response");
        if no_body || r.status == 204 || r.status == 304 {
            return r;
        }
        if r.header("transfer-encoding") == Some("chunked") {
            loop {
                let size_line = self.take_line().expect("EOF in chunked body");
                let size = usize::from_str_radix(&size_line, 16).expect("chunk size");
                if size == 0 {
                    assert_eq!(self.take_line().as_deref(), Some(""), "trailer end");
                    break;
                }
                let data = self.take_exact(size);
                r.body.extend_from_slice(&data);
                assert_eq!(self.take_exact(2), b"\r\n");
            }
        } else if let Some(len) = r.header("content-length") {
            let len: usize = len.parse().unwrap();
            r.body = self.take_exact(len);
        } else {
            while self.fill() {}
            r.body = std::mem::take(&mut self.buf);
        }
        r
    }

    fn response(&mut self) -> Response {
        self.response_to(false)
    }

    /// The server closed the connection: EOF (or reset) with nothing more to read.
    fn assert_closed(&mut self) {
        let more = self.fill();
        assert!(
            !more && self.buf.is_empty(),
            "expected a close, got {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

// ---------------------------------------------------------------- tests

#[test]
fn keep_alive_serves_several_requests() {
    let server = start(|_| {});
    let mut c = server.connect();
    for _ in 0..3 {
        c.send(&get("/echo"));
        let r = c.response();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"GET ");
        assert_eq!(r.header("content-length"), Some("4"));
        assert_eq!(r.header("connection"), None);
        assert!(r.header("date").is_some());
        assert_eq!(r.header("server"), Some("ferrule"));
    }
    server.stop();
}

#[test]
fn three_pipelined_requests_in_one_packet() {
    let server = start(|_| {});
    let mut c = server.connect();
    let mut all = get("/echo");
    all.extend_from_slice(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    all.extend_from_slice(&get("/stream?2"));
    c.send(&all);
    assert_eq!(c.response().body, b"GET ");
    assert_eq!(c.response().body, b"POST hello");
    assert_eq!(c.response().body, b"chunk-0;chunk-1;");
    server.stop();
}

#[test]
fn head_sends_headers_without_body() {
    let server = start(|_| {});
    let mut c = server.connect();
    c.send(b"HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response_to(true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    // No body bytes may follow: the next response starts right away.
    c.send(&get("/echo"));
    assert_eq!(c.response().body, b"GET ");
    c.send(b"HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response_to(true);
    assert_eq!(r.header("content-length"), None);
    c.send(b"HEAD /file HTTP/1.1\r\nHost: t\r\n\r\n");
    c.response_to(true);
    // The app's own Content-Length is kept on HEAD.
    c.send(b"HEAD /len-long HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response_to(true);
    assert_eq!(r.header("content-length"), Some("3"));
    c.send(&get("/nocontent"));
    let r = c.response();
    assert_eq!(r.status, 204);
    c.send(&get("/echo"));
    assert_eq!(c.response().body, b"GET ");
    server.stop();
}

#[test]
fn expect_100_continue() {
    let server = start(|_| {});
    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.head().unwrap();
    assert_eq!(interim.status, 100);
    c.send(b"hello");
    let r = c.response();
    assert_eq!(r.body, b"POST hello");
    server.stop();
}

#[test]
fn no_100_continue_for_a_refused_body() {
    let server = start(|c| c.limit_request_body = 10);
    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    c.assert_closed();
    assert_eq!(server.seen.jobs.load(Ordering::SeqCst), 0);
    server.stop();
}

#[test]
fn chunked_request_and_response() {
    let server = start(|_| {});
    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    assert_eq!(c.response().body, b"POST hello world");
    c.send(&get("/stream?50"));
    let r = c.response();
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let expected: String = (0..50).map(|i| format!("chunk-{i};")).collect();
    assert_eq!(r.body, expected.as_bytes());
    server.stop();
}

#[test]
fn large_bodies_stream_to_the_app() {
    let server = start(|c| c.max_buffered_body = 1000);
    let mut c = server.connect();
    let body = vec![b'z'; 300_000];
    c.send(
        format!(
            "POST /bodylen HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    assert_eq!(c.response().body, b"300000");
    // Chunked past the bound switches to streaming midway.
    let mut req =
        b"POST /bodylen HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..10 {
        req.extend_from_slice(b"190\r\n");
        req.extend_from_slice(&[b'q'; 400]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    c.send(&req);
    assert_eq!(c.response().body, b"4000");
    // A small unread streamed body is drained, and the connection goes on.
    c.send(
        format!(
            "POST /noread HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            5000
        )
        .as_bytes(),
    );
    c.send(&[b'u'; 5000]);
    assert_eq!(c.response().body, b"ok");
    c.send(&get("/echo"));
    assert_eq!(c.response().body, b"GET ");
    server.stop();
}

#[test]
fn http10_close_and_keep_alive() {
    let server = start(|_| {});
    let mut c = server.connect();
    c.send(b"GET /echo HTTP/1.0\r\n\r\n");
    let r = c.response();
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.body, b"GET ");
    c.assert_closed();

    let mut c = server.connect();
    c.send(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.response();
    assert_eq!(r.header("connection"), Some("keep-alive"));
    // Close-delimited: no length known, no chunking on 1.0.
    c.send(b"GET /stream?3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.response();
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.body, b"chunk-0;chunk-1;chunk-2;");
    server.stop();
}

#[test]
fn app_content_length_enforced() {
    let server = start(|_| {});
    let mut c = server.connect();
    c.send(&get("/len-long"));
    let r = c.response();
    assert_eq!(r.body, b"abc");
    // Truncated, and the connection is still usable.
    c.send(&get("/echo"));
    assert_eq!(c.response().body, b"GET ");

    c.send(&get("/len-short"));
    let r = c.head().unwrap();
    assert_eq!(r.header("content-length"), Some("10"));
    assert_eq!(c.take_exact(5), b"12345");
    c.assert_closed();
    server.stop();
}

#[test]
fn body_limit_413() {
    let server = start(|c| c.limit_request_body = 10);
    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world");
    assert_eq!(c.response().status, 413);
    c.assert_closed();
    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n");
    assert_eq!(c.response().status, 413);
    c.assert_closed();
    assert_eq!(server.seen.jobs.load(Ordering::SeqCst), 0);
    server.stop();
}

#[test]
fn framing_error_answered_once_and_pipelined_rest_ignored() {
    let server = start(|_| {});
    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), Some("close"));
    c.assert_closed();
    assert_eq!(server.seen.jobs.load(Ordering::SeqCst), 0);
    server.stop();
}

#[test]
fn header_and_idle_timeouts() {
    let server = start(|c| {
        c.header_timeout = 0.3;
        c.keepalive_timeout = 0.3;
    });
    let mut c = server.connect();
    let t = Instant::now();
    c.send(b"GET /echo HTTP/1.1\r\nHost:");
    let r = c.response();
    assert_eq!(r.status, 408);
    c.assert_closed();
    assert!(t.elapsed() < Duration::from_secs(3));

    // Idle after a response: closed silently.
    let mut c = server.connect();
    c.send(&get("/echo"));
    c.response();
    c.assert_closed();

    // A connection that never sends anything is closed silently too.
    let mut c = server.connect();
    c.assert_closed();
    server.stop();
}

#[test]
fn half_close_still_gets_the_response() {
    let server = start(|_| {});
    let mut c = server.connect();
    c.send(&get("/sleep?200"));
    c.stream.shutdown(Shutdown::Write).unwrap();
    let r = c.response();
    assert_eq!(r.body, b"slept");
    c.assert_closed();
    server.stop();
}

#[test]
fn client_disconnect_mid_response_fails_the_apps_send() {
    let server = start(|c| c.write_timeout = 5.0);
    let mut c = server.connect();
    c.send(&get("/big"));
    let r = c.head().unwrap();
    assert_eq!(r.status, 200);
    c.take_exact(100_000);
    drop(c);
    let t = Instant::now();
    while server.seen.client_gone.load(Ordering::SeqCst) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the app never saw the client go"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.stop();
}

#[test]
fn app_failures() {
    let server = start(|_| {});
    let mut c = server.connect();
    c.send(&get("/drop"));
    let r = c.response();
    assert_eq!(r.status, 500);
    assert_eq!(r.header("connection"), Some("close"));
    c.assert_closed();

    let mut c = server.connect();
    c.send(&get("/abort"));
    let r = c.head().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    // The first chunk went out, then the connection closed without the last chunk.
    assert_eq!(c.take_line().as_deref(), Some("7"));
    assert_eq!(c.take_exact(9), b"partial\r\n");
    c.assert_closed();
    server.stop();
}

#[test]
fn file_bodies() {
    let server = start(|_| {});
    let content: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut c = server.connect();
    c.send(&get("/file"));
    let r = c.response();
    assert_eq!(r.header("content-length"), Some("200000"));
    assert!(r.body == content, "file body differs");
    c.send(&get("/file?1000"));
    let r = c.response();
    assert!(r.body == content[1000..], "file body with offset differs");
    c.send(b"GET /file HTTP/1.0\r\n\r\n");
    let r = c.response();
    assert_eq!(r.body.len(), 200_000);
    server.stop();
}

#[test]
fn graceful_shutdown() {
    let server = start(|c| c.graceful_timeout = 5.0);
    let mut idle = server.connect();
    idle.send(&get("/echo"));
    idle.response();
    let mut busy = server.connect();
    busy.send(&get("/sleep?500"));
    // Let the request reach the app before asking to stop.
    let t = Instant::now();
    while server.seen.jobs.load(Ordering::SeqCst) < 2 {
        assert!(t.elapsed() < CLIENT_TIMEOUT);
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    server.shutdown.shutdown();
    // The idle keep-alive connection closes at once; the busy one gets its answer, with close.
    idle.assert_closed();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "idle connection kept {:?}",
        t.elapsed()
    );
    let r = busy.response();
    assert_eq!(r.body, b"slept");
    assert_eq!(r.header("connection"), Some("close"));
    busy.assert_closed();
    let addr = server.addr;
    server.stop();
    // Stopped means the listener is closed, not just unserved.
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn shutdown_before_run_returns_promptly() {
    let mut config = ServerConfig {
        bind: vec!["127.0.0.1:0".to_owned()],
        ..ServerConfig::default()
    };
    config.graceful_timeout = 10.0;
    let server = Server::bind(config).unwrap();
    server.shutdown_handle().shutdown();
    let (tx, rx) = job_queue();
    let t = Instant::now();
    server.run(tx).unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(rx.recv().is_none(), "run must drop every job sender");
    let (tx, _rx) = job_queue();
    assert!(server.run(tx).is_err(), "a server runs once");
}

#[test]
fn bind_error_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let config = ServerConfig {
        bind: vec![addr.clone()],
        ..ServerConfig::default()
    };
    let e = Server::bind(config).unwrap_err();
    assert!(e.message.contains(&addr), "{e}");
}

#[test]
fn slow_reader_hits_the_write_timeout() {
    let server = start(|c| c.write_timeout = 0.3);
    let mut c = server.connect();
    c.send(&get("/big"));
    // Never read: the socket buffers fill, the write stalls, the server gives up.
    let t = Instant::now();
    while server.seen.client_gone.load(Ordering::SeqCst) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the stalled response was never dropped"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(c);
    server.stop();
}

#[test]
fn streamed_chunked_body_over_the_limit() {
    let server = start(|c| {
        c.max_buffered_body = 100;
        c.limit_request_body = 1000;
    });
    let mut c = server.connect();
    let mut req =
        b"POST /bodylen HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        req.extend_from_slice(b"64\r\n");
        req.extend_from_slice(&[b'q'; 100]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    c.send(&req);
    // The app was already reading when the limit passed: it sees the error; then the
    // connection closes.
    let r = c.response();
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        body.starts_with("body error: ") && body.contains("413"),
        "{body}"
    );
    c.assert_closed();
    server.stop();
}

#[test]
fn access_log_line() {
    let path = std::env::temp_dir().join(format!("ferrule-access-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let dest = path.to_str().unwrap().to_owned();
    let server = start(move |c| c.access_log = Some(dest));
    let mut c = server.connect();
    c.send(b"GET /echo?x=1 HTTP/1.1\r\nHost: t\r\nReferer: http://ref/\r\nUser-Agent: ua \"q\"\r\n\r\n");
    c.response();
    c.send(b"HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    c.response_to(true);
    drop(c);
    server.stop();
    let log = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].starts_with("127.0.0.1 - - ["), "{log}");
    assert!(
        lines[0].ends_with(r#" +0000] "GET /echo?x=1 HTTP/1.1" 200 4 "http://ref/" "ua \"q\"""#),
        "{log}"
    );
    assert!(
        lines[1].ends_with(r#"] "HEAD /echo HTTP/1.1" 200 - "-" "-""#),
        "{log}"
    );
}

#[test]
fn body_timeouts() {
    let server = start(|c| {
        c.body_timeout = 0.3;
        c.max_buffered_body = 100;
    });
    // A buffered body that stalls: 408, and the app never runs.
    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    let r = c.response();
    assert_eq!(r.status, 408);
    c.assert_closed();
    assert_eq!(server.seen.jobs.load(Ordering::SeqCst), 0);
    // A streamed body that stalls: the app sees the body fail, the connection closes after.
    let mut c = server.connect();
    c.send(b"POST /bodylen HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n");
    c.send(&[b'x'; 500]);
    let r = c.response();
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert!(body.starts_with("body error: "), "{body}");
    c.assert_closed();
    server.stop();
}

#[test]
fn client_gone_mid_body_is_an_error_for_the_app() {
    let server = start(|c| c.max_buffered_body = 100);
    let mut c = server.connect();
    c.send(b"POST /bodylen HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n");
    c.send(&[b'x'; 500]);
    drop(c);
    let t = Instant::now();
    while server.seen.body_errors.load(Ordering::SeqCst) == 0 {
        assert!(
            t.elapsed() < CLIENT_TIMEOUT,
            "the app saw a short body as complete"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.stop();
}
