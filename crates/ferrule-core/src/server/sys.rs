//! The socket system calls of a request's path (`recv`, `send`, `writev`, and the peek before a
//! close), made directly with `syscall(2)` instead of through glibc's wrappers of the same
//! names.
//!
//! POSIX makes `recv`, `send` and `writev` cancellation points, so in a process with more than
//! one thread glibc's wrappers switch the thread to asynchronous cancellation around the call
//! and back: two atomic read-modify-write instructions per call (`lock cmpxchg`, about 5 ns
//! each on the machine of `benchmarks/`), four per request. ferrule never cancels a thread, so
//! the switch buys nothing; `syscall(2)` is not a cancellation point and makes the same call.
//! The arguments, flags and results are those of the wrappers (`MSG_NOSIGNAL` on `send`, as
//! Rust's standard library passes it; `writev` relies on SIGPIPE being ignored, which Python and
//! Rust programs both arrange at startup).

use std::io::{self, IoSlice};
use std::os::fd::RawFd;

use bytes::BytesMut;

/// The result of a byte-counting system call, as `io::Result`.
fn counted(ret: libc::c_long) -> io::Result<usize> {
    // A negative result is -1 with the error in errno (syscall(2)); anything else is a count.
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// `recv(fd, spare, len, 0)` into `buf`'s spare capacity; the bytes read extend `buf`. A full
/// buffer first grows by 64 bytes (as `BytesMut::chunk_mut` does for tokio's `try_read_buf`),
/// so 0 always means the end of the stream.
pub(crate) fn recv(fd: RawFd, buf: &mut BytesMut) -> io::Result<usize> {
    if buf.capacity() == buf.len() {
        buf.reserve(64);
    }
    let spare = buf.spare_capacity_mut();
    // SAFETY: `spare` is writable memory of `spare.len()` bytes owned by `buf` for the whole
    // call; the kernel writes at most that many. A null address and length are allowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            spare.as_mut_ptr(),
            spare.len(),
            0,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    let n = counted(ret)?;
    // SAFETY: the kernel initialised the first `n` spare bytes (n <= spare.len()).
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// `recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT)`: 1 when a byte waits, 0 at end of stream,
/// `WouldBlock` when nothing has arrived; the byte stays in the socket.
pub(crate) fn peek(fd: RawFd) -> io::Result<usize> {
    let mut byte = 0u8;
    // SAFETY: the buffer is one valid, writable byte for the whole call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            &raw mut byte,
            1usize,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    counted(ret)
}

/// `send(fd, buf, len, MSG_NOSIGNAL)`.
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is readable for `buf.len()` bytes for the whole call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            buf.as_ptr(),
            buf.len(),
            libc::MSG_NOSIGNAL,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        )
    };
    counted(ret)
}

/// `writev(fd, bufs, n)`, with at most `IOV_MAX` pieces (the kernel's own limit; the rest are
/// left for the next call, as a short write).
pub(crate) fn writev(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // IOV_MAX on Linux.
    const IOV_MAX: usize = 1024;
    let bufs = &bufs[..bufs.len().min(IOV_MAX)];
    // SAFETY: `IoSlice` is ABI-compatible with `struct iovec`; every piece is readable for its
    // length for the whole call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_writev,
            fd,
            bufs.as_ptr().cast::<libc::iovec>(),
            bufs.len() as libc::c_int,
        )
    };
    counted(ret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn bytes_go_through_and_errors_come_back_as_errno() {
        let (a, b) = UnixStream::pair().unwrap();
        assert_eq!(send(a.as_raw_fd(), b"head,").unwrap(), 5);
        let pieces = [IoSlice::new(b"bo"), IoSlice::new(b"dy")];
        assert_eq!(writev(a.as_raw_fd(), &pieces).unwrap(), 4);
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(b">");
        assert_eq!(recv(b.as_raw_fd(), &mut buf).unwrap(), 9);
        assert_eq!(&buf[..], b">head,body");
        // A peek sees a waiting byte and leaves it there.
        assert_eq!(send(a.as_raw_fd(), b"!").unwrap(), 1);
        assert_eq!(peek(b.as_raw_fd()).unwrap(), 1);
        assert_eq!(recv(b.as_raw_fd(), &mut buf).unwrap(), 1);
        assert_eq!(&buf[..], b">head,body!");

        // Nothing to read on a non-blocking socket: EAGAIN, as the wrappers report it.
        b.set_nonblocking(true).unwrap();
        let e = recv(b.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(
            peek(b.as_raw_fd()).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        // The peer's end of stream: 0.
        let (c, d) = UnixStream::pair().unwrap();
        drop(c);
        assert_eq!(peek(d.as_raw_fd()).unwrap(), 0);
        // The peer gone: EPIPE, with no SIGPIPE raised (MSG_NOSIGNAL).
        drop(b);
        let e = send(a.as_raw_fd(), b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
        // Not a socket at all.
        assert_eq!(
            send(-1, b"x").unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
    }
}
