//! What an idle keep-alive connection costs on the heap, counted by a global allocator that
//! tracks live bytes: a real `Server` on 127.0.0.1:0, a fake application thread, N raw clients
//! that each make one request and then stay silent.
//!
//! Issue 7's bar is at most 1 KB of RSS per idle connection, and "idle connections hold no
//! buffers" (server/conn.rs, `Conn::wait_idle`). A connection idle for two sweeps of the idle
//! set is parked out of its task (server/park.rs): all that may stay behind is the socket's
//! tokio I/O registration, the parked state behind its waker and its idle slot. The bytes are
//! the ones asked of the allocator; what the allocator adds is measured by
//! `benchmarks/idle_memory.py` on a real ferrule.

// Test helpers, not request handling: a panic here is the test failing.
#![allow(clippy::unwrap_used)]
// Polling the counter while the server settles; bounded by SETTLE_DEADLINE.
#![allow(clippy::disallowed_methods)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrule_core::config::ServerConfig;
use ferrule_core::exchange::{job_queue, ResponseHead, ResponsePart};
use ferrule_core::head_bytes::HeadBytes;
use ferrule_core::server::Server;

/// Heap bytes one parked idle connection may hold: its I/O registration (256: tokio 1.54's
/// `ScheduledIo`, 128 bytes aligned to 128, in an `Arc` whose counts take another 128-byte
/// line), its parked state (at most 256, `park::tests::parked_state_fits_a_256_byte_block`)
/// and its slot in the idle table (24, `server/idle.rs`). No task, no read or write buffer, no
/// timer.
const IDLE_CONNECTION_BYTES: isize = 256 + 256 + 24;
/// Long enough for every connection to be parked: two sweeps of 100 ms, and room.
const PARKED_AFTER: Duration = Duration::from_millis(400);
/// Per-connection share of shared structures that grow while connections are opened
/// (tokio's registration and task lists, amortised over [`CONNECTIONS`]).
const SLACK_BYTES: isize = 16;
/// Idle connections measured (each costs one descriptor here and one in the server).
const CONNECTIONS: usize = 400;
/// Connections opened (and kept) before the baseline, so lazily grown structures are warm.
const WARMUP: usize = 50;
/// How long the server may take to free a request's state after its response went out.
const SETTLE_DEADLINE: Duration = Duration::from_secs(10);

/// System's allocator, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's own arguments (so the caller's
// guarantees are System's), and only adds bookkeeping on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Opens a connection, makes one keep-alive request and reads the whole response.
fn idle_connection(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 512];
    while !got.ends_with(b"\r\n\r\nhello") {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the response: {got:?}");
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");
    s
}

/// The live byte count once it stops changing: a response can reach the client before the
/// server has dropped the request's state. Bounded by [`SETTLE_DEADLINE`].
fn settled() -> isize {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    let mut last = LIVE.load(Ordering::SeqCst);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = LIVE.load(Ordering::SeqCst);
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[test]
fn parked_idle_connections_hold_only_their_registration_and_parked_state() {
    let config = ServerConfig {
        bind: vec!["127.0.0.1:0".to_owned()],
        keepalive_timeout: 600.0,
        ..ServerConfig::default()
    };
    let server = Server::bind(config).unwrap();
    let addr = server.local_addrs()[0];
    let shutdown = server.shutdown_handle();
    let (tx, rx) = job_queue();
    let app = std::thread::spawn(move || {
        while let Some(job) = rx.recv() {
            let head = ResponseHead {
                code: 200,
                status: HeadBytes::from_static(b"200 OK"),
                headers: vec![(
                    HeadBytes::from_static(b"Content-Type"),
                    HeadBytes::from_static(b"text/plain"),
                )],
            };
            let _ = job.responder.send(ResponsePart::Start {
                head,
                first: Bytes::from_static(b"hello"),
                end: true,
            });
        }
    });
    let runner = std::thread::spawn(move || server.run(tx).unwrap());

    let mut socks: Vec<TcpStream> = (0..WARMUP).map(|_| idle_connection(addr)).collect();
    std::thread::sleep(PARKED_AFTER);
    let base = settled();
    socks.extend((0..CONNECTIONS).map(|_| idle_connection(addr)));
    std::thread::sleep(PARKED_AFTER);
    let held = settled();
    let per_connection = (held - base) / CONNECTIONS as isize;

    // They are held, not dropped: one of them still answers.
    let mut last = socks.pop().unwrap();
    last.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut chunk = [0u8; 512];
    assert!(last.read(&mut chunk).unwrap() > 0);

    eprintln!("{per_connection} heap bytes per idle connection");
    drop(socks);
    drop(last);
    shutdown.shutdown();
    runner.join().unwrap();
    app.join().unwrap();
    assert!(
        per_connection <= IDLE_CONNECTION_BYTES + SLACK_BYTES,
        "an idle connection holds {per_connection} heap bytes, over the budget of \
         {IDLE_CONNECTION_BYTES} (+{SLACK_BYTES}): the idle state grew, or a buffer stays"
    );
}
