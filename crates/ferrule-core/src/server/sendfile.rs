//! File bodies (`wsgi.file_wrapper`) sent with `sendfile(2)`: the kernel copies from the page
//! cache to the socket, no byte passes through user space. The socket is non-blocking: on
//! `EAGAIN` the task waits for writability (bounded by the write timeout) and goes on.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::io::{wait_writable, IoFail};

/// Bytes asked of one `sendfile` call (the kernel caps a call at about 2 GiB anyway; smaller
/// calls let other connections on this thread run between them).
const SENDFILE_STEP: u64 = 1024 * 1024;

/// Why a file body did not go out whole.
#[derive(Debug)]
pub(crate) enum SendFileFail {
    /// The socket failed or stalled.
    Io(IoFail),
    /// The file ended after `sent` bytes, before the count promised in the head.
    Short { sent: u64 },
    /// Reading the file failed.
    File(io::Error),
}

impl std::fmt::Display for SendFileFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendFileFail::Io(e) => write!(f, "writing to the client: {e}"),
            SendFileFail::Short { sent } => write!(f, "the file ended after {sent} bytes"),
            SendFileFail::File(e) => write!(f, "reading the file: {e}"),
        }
    }
}

/// Sends exactly `count` bytes of `file` from `offset` to `stream`.
pub(crate) async fn send_file(
    stream: &TcpStream,
    file: &File,
    offset: u64,
    count: u64,
    timeout: Duration,
) -> Result<(), SendFileFail> {
    let sock = stream.as_raw_fd();
    let src = file.as_raw_fd();
    let mut offset = offset;
    let mut sent = 0u64;
    while sent < count {
        let step = (count - sent).min(SENDFILE_STEP) as usize;
        let mut off = libc::off_t::try_from(offset).map_err(|_| {
            SendFileFail::File(io::Error::new(
                io::ErrorKind::InvalidInput,
                "offset too large",
            ))
        })?;
        let r = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration of the call (`stream` and
            // `file` are borrowed), and `off` is a valid, exclusively borrowed off_t.
            let n = unsafe { libc::sendfile(sock, src, &mut off, step) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as u64)
            }
        });
        match r {
            Ok(0) => return Err(SendFileFail::Short { sent }),
            Ok(n) => {
                sent += n;
                offset += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(stream, timeout)
                .await
                .map_err(SendFileFail::Io)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // EINVAL/ENOSYS/EIO come from the file side (not mmap-able, read error).
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::ENOSYS | libc::EIO)
                ) =>
            {
                return Err(SendFileFail::File(e))
            }
            Err(e) => return Err(SendFileFail::Io(IoFail::Error(e))),
        }
    }
    Ok(())
}
