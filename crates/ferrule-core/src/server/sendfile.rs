//! File bodies (`wsgi.file_wrapper`) sent with `sendfile(2)`: the kernel copies from the page
//! cache to the socket, no byte passes through user space. The socket is non-blocking: on
//! `EAGAIN` the task waits for writability (bounded by the write timeout) and goes on.
//! Over TLS the bytes must be encrypted in user space: the file is read in
//! [`SENDFILE_STEP`]-sized pieces (`pread`) and written through the TLS layer.

use std::fs::File;
use std::io;
use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use super::io::{wait_writable, write_all, IoFail};
use super::stream::Stream;

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
    stream: &Stream,
    file: &File,
    offset: u64,
    count: u64,
    timeout: Duration,
) -> Result<(), SendFileFail> {
    let Some(sock) = stream.sendfile_fd() else {
        return copy_file(stream, file, offset, count, timeout).await;
    };
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
        let r = stream.try_io_write(|| {
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
                crate::metrics::global().add_bytes_out(n as usize);
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

/// [`send_file`] through user space (TLS): `pread` a piece, write it, repeat.
async fn copy_file(
    stream: &Stream,
    file: &File,
    offset: u64,
    count: u64,
    timeout: Duration,
) -> Result<(), SendFileFail> {
    let mut piece = vec![0u8; count.min(SENDFILE_STEP) as usize];
    let mut sent = 0u64;
    while sent < count {
        let want = (count - sent).min(piece.len() as u64) as usize;
        let n = match file.read_at(&mut piece[..want], offset + sent) {
            Ok(0) => return Err(SendFileFail::Short { sent }),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SendFileFail::File(e)),
        };
        let mut iov = [IoSlice::new(&piece[..n])];
        write_all(stream, &mut iov, timeout)
            .await
            .map_err(SendFileFail::Io)?;
        sent += n as u64;
    }
    Ok(())
}
