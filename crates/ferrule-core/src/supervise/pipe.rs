//! The worker → master pipe: one `pipe(2)` per worker, framed messages.
//!
//! A frame is `kind` (1 byte), payload length (`u32`, big-endian), payload. The worker writes
//! each frame with one `write(2)` under a lock, so frames from its threads never interleave
//! (a frame up to `PIPE_BUF` is also atomic for the kernel; a longer one is still whole because
//! the worker is the pipe's only writer). The master reads without blocking into a per-worker
//! buffer and takes whole frames off its front.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

/// Longest payload the master accepts; a longer frame means a confused worker.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Bytes before the payload: kind and length.
const HEADER: usize = 5;

/// What a worker tells its master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The app is loaded and the worker is about to accept connections.
    Ready,
    /// The app could not be loaded; the text (traceback, `Error: ...` line) is for the log.
    BootFailed(String),
    /// The worker wants to be replaced (max requests, memory, a stuck thread); the text says
    /// why. It keeps serving until the master, once the replacement is ready, sends TERM.
    Retiring(String),
    /// The worker's event loop is alive (sent every [`HEARTBEAT_INTERVAL`]).
    Heartbeat,
    /// A heartbeat carrying the worker's metrics (`--metrics-bind`): a snapshot encoded by
    /// `metrics::wire` (at most `metrics::wire::MAX_ENCODED` bytes, so the frame fits in
    /// `PIPE_BUF`). Kept encoded here: the master decodes it, and a snapshot it cannot read is
    /// logged and ignored, never a reason to kill the worker.
    Metrics(Vec<u8>),
}

/// How often a worker's event loop tells its master it is alive.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl Message {
    const READY: u8 = b'R';
    const BOOT_FAILED: u8 = b'B';
    const RETIRING: u8 = b'X';
    const HEARTBEAT: u8 = b'H';
    const METRICS: u8 = b'M';

    /// The frame for this message.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload): (u8, &[u8]) = match self {
            Message::Ready => (Self::READY, b""),
            Message::BootFailed(text) => (Self::BOOT_FAILED, text.as_bytes()),
            Message::Retiring(text) => (Self::RETIRING, text.as_bytes()),
            Message::Heartbeat => (Self::HEARTBEAT, b""),
            Message::Metrics(bytes) => (Self::METRICS, bytes),
        };
        let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
        let mut frame = Vec::with_capacity(HEADER + payload.len());
        frame.push(kind);
        // `payload` is at most MAX_PAYLOAD, far below u32::MAX.
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }
}

/// A frame the master cannot understand: the worker is treated as broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError(pub String);

/// Takes the first whole frame off `buf`; `Ok(None)` when more bytes are needed.
pub fn decode(buf: &mut Vec<u8>) -> Result<Option<Message>, FrameError> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError(format!("frame of {len} bytes")));
    }
    if buf.len() < HEADER + len {
        return Ok(None);
    }
    let kind = buf[0];
    let payload: Vec<u8> = buf.drain(..HEADER + len).skip(HEADER).collect();
    match kind {
        Message::READY if payload.is_empty() => Ok(Some(Message::Ready)),
        Message::BOOT_FAILED => Ok(Some(Message::BootFailed(
            String::from_utf8_lossy(&payload).into_owned(),
        ))),
        Message::RETIRING => Ok(Some(Message::Retiring(
            String::from_utf8_lossy(&payload).into_owned(),
        ))),
        Message::HEARTBEAT if payload.is_empty() => Ok(Some(Message::Heartbeat)),
        // The frame is whole whatever the payload holds: its checks are `metrics::wire`'s.
        Message::METRICS => Ok(Some(Message::Metrics(payload))),
        other => Err(FrameError(format!("unknown message kind {other:#04x}"))),
    }
}

/// The worker's end of its pipe. Shared by the worker's threads.
///
/// The descriptor is non-blocking, so a heartbeat from the event loop never blocks it when a
/// stopped master leaves the pipe full ([`MasterLink::try_send`] drops it instead); the other
/// messages wait for room ([`MasterLink::send`]).
#[derive(Debug)]
pub struct MasterLink {
    fd: Mutex<std::fs::File>,
}

/// Longest wait for room in a full pipe in [`MasterLink::send`]: a master that reads nothing
/// for this long is stopped or gone; the message is then reported as failed.
const SEND_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl MasterLink {
    pub(crate) fn new(fd: OwnedFd) -> MasterLink {
        if let Err(e) = set_nonblocking(&fd) {
            // Still usable: sends then block while the pipe is full.
            log::warn!("worker pipe: cannot make it non-blocking: {e}");
        }
        MasterLink {
            fd: Mutex::new(std::fs::File::from(fd)),
        }
    }

    /// Sends one message, waiting (up to a few seconds) for room in the pipe. Fails when the
    /// master is gone (EPIPE is an error, not a signal: the workers ignore SIGPIPE like every
    /// Rust program). Blocking: not for the event loop (see [`MasterLink::try_send`]).
    pub fn send(&self, message: &Message) -> std::io::Result<()> {
        let frame = message.encode();
        let mut fd = self.fd.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = std::time::Instant::now() + SEND_WAIT;
        let mut rest = &frame[..];
        while !rest.is_empty() {
            match fd.write(rest) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Err(e);
                    }
                    wait_writable(&fd, left);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends a small message only if the pipe has room now (a frame up to `PIPE_BUF` is written
    /// whole or not at all); `Ok(false)` when it was dropped. Never blocks.
    pub fn try_send(&self, message: &Message) -> std::io::Result<bool> {
        let frame = message.encode();
        debug_assert!(frame.len() <= libc::PIPE_BUF);
        let mut fd = self.fd.lock().unwrap_or_else(|p| p.into_inner());
        match fd.write(&frame) {
            Ok(n) if n == frame.len() => Ok(true),
            Ok(_) => Err(std::io::ErrorKind::WriteZero.into()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Waits until `fd` is writable or `timeout` passes.
fn wait_writable(fd: &std::fs::File, timeout: std::time::Duration) {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis())
        .unwrap_or(i32::MAX)
        .max(1);
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, ms) };
}

/// A `pipe2(O_CLOEXEC)`: (read end, write end).
pub(crate) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Puts `fd` in non-blocking mode.
pub(crate) fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_pieces() {
        let mut wire = Message::Ready.encode();
        wire.extend(Message::BootFailed("Error: no module x".into()).encode());
        wire.extend(Message::Heartbeat.encode());
        wire.extend(Message::Retiring("max requests".into()).encode());
        wire.extend(Message::Metrics(vec![1, 2, 3]).encode());
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for byte in wire {
            buf.push(byte);
            while let Some(m) = decode(&mut buf).unwrap() {
                got.push(m);
            }
        }
        assert_eq!(
            got,
            vec![
                Message::Ready,
                Message::BootFailed("Error: no module x".into()),
                Message::Heartbeat,
                Message::Retiring("max requests".into()),
                Message::Metrics(vec![1, 2, 3]),
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_frames_are_errors() {
        let mut buf = vec![b'?', 0, 0, 0, 0];
        assert!(decode(&mut buf).is_err());
        let mut buf = vec![b'B', 0xff, 0xff, 0xff, 0xff];
        assert!(decode(&mut buf).is_err());
        // A metrics payload that is no snapshot is still a whole frame: the master decodes
        // the snapshot itself, and only logs a bad one.
        let mut buf = Message::Metrics(vec![0; crate::metrics::wire::MAX_ENCODED + 1]).encode();
        assert!(matches!(decode(&mut buf), Ok(Some(Message::Metrics(_)))));
    }

    #[test]
    fn link_writes_whole_frames() {
        let (r, w) = pipe().unwrap();
        let link = MasterLink::new(w);
        link.send(&Message::Ready).unwrap();
        assert!(link.try_send(&Message::Heartbeat).unwrap());
        drop(link);
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(r), &mut buf).unwrap();
        assert_eq!(decode(&mut buf).unwrap(), Some(Message::Ready));
        assert_eq!(decode(&mut buf).unwrap(), Some(Message::Heartbeat));
    }

    #[test]
    fn heartbeats_are_dropped_not_blocked_on_a_full_pipe() {
        let (_r, w) = pipe().unwrap();
        let link = MasterLink::new(w);
        let mut dropped = false;
        for _ in 0..100_000 {
            if !link.try_send(&Message::Heartbeat).unwrap() {
                dropped = true;
                break;
            }
        }
        assert!(dropped, "a pipe nobody reads must fill up");
    }
}
