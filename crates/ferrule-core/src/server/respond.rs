//! Writing the application's response (RFC 9112 §6, §7.1): the head with the framing chosen by
//! [`encode::response_framing`], then the body as the [`ResponsePart`]s arrive, gathering what
//! is already queued into one write (head + first chunk go out together): copied into one
//! buffer for a `send` when small ([`COALESCE_MAX`]), gathered by reference for a `writev`.
//!
//! Rules enforced here:
//! - A declared `Content-Length` is a promise (RFC 9112 §6.2, §8: "a message is incomplete if
//!   the connection closes before its Content-Length octets arrive"): extra bytes are cut off
//!   (warning); a body that ends short closes the connection (error) so the client cannot take
//!   the next response as the missing bytes.
//! - HEAD, 1xx, 204 and 304 responses carry no body (RFC 9110 §9.3.2, §15.3.5, §15.4.5): body
//!   parts are read and dropped.
//! - An application that fails before the head (abort, thread gone) gets a 500 with
//!   `Connection: close`; after the head, the connection is closed mid-body.
//! - A failed or timed-out write ends the response at once; the receiver is dropped, so the
//!   application's next `Responder::send` fails with `ClientGone`.

use std::io::IoSlice;
use std::time::Duration;

use super::access::PeerLabel;
use super::stream::Stream;
use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::mpsc::error::TryRecvError;

use super::io::{make_room, write_all, IoFail};
use super::sendfile::send_file;
use crate::exchange::{FileBody, PartReceiver, ResponseHead, ResponsePart};
use crate::head_bytes::HeadBytes;
use crate::http1::encode::{
    self, response_framing, FramingInput, ResponseFraming, CHUNK_END, LAST_CHUNK,
};
use crate::http1::{RequestError, Version};

/// Body parts gathered into one `writev` at most (the response channel holds 16 parts, so one
/// write can empty it).
const BATCH: usize = 16;

/// Body bytes up to which one write's pieces are copied in after the head instead of gathered
/// by reference, so the write is one `send` of one buffer. Measured on loopback here
/// (`send` of head + body against `writev` of the two, system CPU per write): 13 bytes 4.7 against
/// 5.0 µs, 1 KiB 5.1 against 5.2, 4 KiB 5.2 against 5.8, 16 KiB 6.1 against 5.7: past a few KiB
/// the copy costs more than the gathering saves. Bigger bodies go out by reference, uncopied.
const COALESCE_MAX: usize = 4096;

/// How one response went.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written {
    pub(crate) status: u16,
    /// Body bytes written (for the access log).
    pub(crate) body_bytes: u64,
    /// The response was complete, correctly framed and announced keep-alive.
    pub(crate) reuse: bool,
}

/// What writing one response needs from its connection and request.
#[derive(Debug)]
pub(crate) struct Respond<'a> {
    pub(crate) stream: &'a Stream,
    pub(crate) wbuf: &'a mut BytesMut,
    /// The client, as log lines name it.
    pub(crate) peer: PeerLabel<'a>,
    pub(crate) version: Version,
    pub(crate) is_head: bool,
    /// The client wants keep-alive.
    pub(crate) keep_alive: bool,
    /// True once the server is stopping: the head then says `Connection: close`.
    pub(crate) shutdown: &'a super::Stopping,
    pub(crate) server: &'a [u8],
    pub(crate) timeout: Duration,
    /// `Some`: keep the app's response headers here for the access log (`%({name}o)s`).
    pub(crate) log_headers: Option<Vec<(HeadBytes, HeadBytes)>>,
}

/// How the part stream stopped early.
#[derive(Debug, Clone, Copy)]
enum Broken {
    Abort,
    Died,
    Protocol,
}

/// The body framing state: what was promised and what went out.
#[derive(Debug)]
struct BodyOut {
    framing: ResponseFraming,
    sent: u64,
    truncated: bool,
}

impl BodyOut {
    /// Trims `piece` to what may still be sent; `None` when nothing of it goes out.
    fn admit(&mut self, mut piece: Bytes, peer: PeerLabel<'_>) -> Option<Bytes> {
        if piece.is_empty() {
            return None;
        }
        match self.framing {
            ResponseFraming::NoBody | ResponseFraming::NoBodyLength(_) => return None,
            ResponseFraming::Length(n) => {
                let room = n - self.sent;
                if (piece.len() as u64) > room {
                    if !self.truncated {
                        log::warn!(
                            "{peer}: response body longer than its Content-Length ({n}): truncated"
                        );
                        self.truncated = true;
                    }
                    if room == 0 {
                        return None;
                    }
                    piece.truncate(room as usize);
                }
            }
            ResponseFraming::Chunked | ResponseFraming::CloseDelimited => {}
        }
        self.sent += piece.len() as u64;
        Some(piece)
    }

    /// Fewer bytes than a Content-Length promised went out.
    fn short(&self) -> Option<u64> {
        match self.framing {
            ResponseFraming::Length(n) if self.sent < n => Some(n),
            _ => None,
        }
    }
}

/// The app's `Content-Length`, if it sent one that parses (the binding rejects invalid ones;
/// anything unparsable is treated as absent).
pub(crate) fn app_content_length(head: &ResponseHead) -> Option<u64> {
    let (_, value) = head
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"content-length"))?;
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// A plain-text error response that closes the connection: `reason` is the body.
pub(crate) fn error_response(dst: &mut BytesMut, status: u16, reason: &str, server: &[u8]) {
    error_response_retry(dst, status, reason, server, None);
}

/// [`error_response`] with a `Retry-After: SECS` header when `retry_after` is set (overload).
pub(crate) fn error_response_retry(
    dst: &mut BytesMut,
    status: u16,
    reason: &str,
    server: &[u8],
    retry_after: Option<u32>,
) {
    dst.reserve(180 + reason.len() + server.len());
    dst.put_slice(b"HTTP/1.1 ");
    put_decimal(dst, u64::from(status));
    dst.put_u8(b' ');
    dst.put_slice(reason.as_bytes());
    dst.put_slice(b"\r\nDate: ");
    dst.put_slice(&crate::http1::date::now());
    if !server.is_empty() {
        dst.put_slice(b"\r\nServer: ");
        dst.put_slice(server);
    }
    if let Some(secs) = retry_after {
        dst.put_slice(b"\r\nRetry-After: ");
        put_decimal(dst, u64::from(secs));
    }
    dst.put_slice(b"\r\nContent-Type: text/plain\r\nContent-Length: ");
    put_decimal(dst, reason.len() as u64);
    dst.put_slice(b"\r\nConnection: close\r\n\r\n");
    dst.put_slice(reason.as_bytes());
}

fn put_decimal(dst: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.put_slice(&digits[i..]);
}

impl Respond<'_> {
    /// Writes the response whose parts arrive on `rx`.
    pub(crate) async fn write(&mut self, rx: &mut PartReceiver) -> Written {
        let part = rx.recv().await;
        if let (
            Some(kept),
            Some(ResponsePart::Start { head, .. } | ResponsePart::StartFile { head, .. }),
        ) = (&mut self.log_headers, &part)
        {
            kept.clone_from(&head.headers);
        }
        match part {
            Some(ResponsePart::Start { head, first, end }) => {
                self.start(head, first, end, rx).await
            }
            Some(ResponsePart::StartFile { head, file }) => self.start_file(head, file).await,
            Some(ResponsePart::Refused(e)) => self.refused(&e).await,
            Some(ResponsePart::Abort) => {
                log::error!(
                    "{}: the application failed before sending a response",
                    self.peer
                );
                self.internal_error().await
            }
            Some(ResponsePart::Body(_) | ResponsePart::End) => {
                log::error!("{}: response body without a head (binding bug)", self.peer);
                self.internal_error().await
            }
            None => {
                log::error!(
                    "{}: the application dropped the request without a response",
                    self.peer
                );
                self.internal_error().await
            }
        }
    }

    /// The request was refused before the app ran (queue timeout): its declared outcome.
    pub(crate) async fn refused(&mut self, e: &RequestError) -> Written {
        let o = e.outcome();
        self.wbuf.clear();
        error_response_retry(self.wbuf, o.status, o.reason, self.server, o.retry_after);
        let mut iov = [IoSlice::new(self.wbuf)];
        if let Err(e) = write_all(self.stream, &mut iov, self.timeout).await {
            log::debug!(
                "{}: writing the {} response failed: {e}",
                self.peer,
                o.status
            );
        }
        self.wbuf.clear();
        Written {
            status: o.status,
            body_bytes: o.reason.len() as u64,
            reuse: false,
        }
    }

    async fn internal_error(&mut self) -> Written {
        const REASON: &str = "Internal Server Error";
        self.wbuf.clear();
        error_response(self.wbuf, 500, REASON, self.server);
        let mut iov = [IoSlice::new(self.wbuf)];
        if let Err(e) = write_all(self.stream, &mut iov, self.timeout).await {
            log::debug!("{}: writing the 500 response failed: {e}", self.peer);
        }
        self.wbuf.clear();
        Written {
            status: 500,
            body_bytes: REASON.len() as u64,
            reuse: false,
        }
    }

    fn framing(
        &self,
        head: &ResponseHead,
        app_len: Option<u64>,
        known: Option<u64>,
    ) -> (ResponseFraming, bool) {
        let framing = response_framing(&FramingInput {
            version: self.version,
            is_head: self.is_head,
            status: head.code,
            app_content_length: app_len,
            known_body_len: known,
        });
        let keep = self.keep_alive
            && framing != ResponseFraming::CloseDelimited
            && !self.shutdown.is_set();
        (framing, keep)
    }

    async fn start(
        &mut self,
        head: ResponseHead,
        first: Bytes,
        end: bool,
        rx: &mut PartReceiver,
    ) -> Written {
        let known = end.then_some(first.len() as u64);
        let (framing, keep) = self.framing(&head, app_content_length(&head), known);
        self.wbuf.clear();
        // Room for a small first piece after the head (see `flush`), in the same allocation.
        let body_room = if first.len() <= COALESCE_MAX {
            first.len() + CHUNK_FRAMING_MAX
        } else {
            0
        };
        make_room(
            self.wbuf,
            encode::head_size_bound(&head, self.server) + body_room,
        );
        encode::write_head(self.wbuf, self.version, &head, framing, self.server, keep);
        let status = head.code;
        drop(head);

        let chunked = framing == ResponseFraming::Chunked;
        let mut out = BodyOut {
            framing,
            sent: 0,
            truncated: false,
        };
        let mut batch: [Bytes; BATCH] = Default::default();
        let mut n = 0;
        if let Some(piece) = out.admit(first, self.peer) {
            batch[0] = piece;
            n = 1;
        }
        let mut ended = end;
        let mut broken = None;
        loop {
            // Take whatever is already queued, without waiting.
            while !ended && broken.is_none() && n < BATCH {
                match rx.try_recv() {
                    Ok(ResponsePart::Body(b)) => {
                        if let Some(piece) = out.admit(b, self.peer) {
                            batch[n] = piece;
                            n += 1;
                        }
                    }
                    Ok(ResponsePart::End) => ended = true,
                    Ok(ResponsePart::Abort) => broken = Some(Broken::Abort),
                    Ok(
                        ResponsePart::Start { .. }
                        | ResponsePart::StartFile { .. }
                        | ResponsePart::Refused(_),
                    ) => broken = Some(Broken::Protocol),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => broken = Some(Broken::Died),
                }
            }
            let last = ended && chunked;
            if n > 0 || !self.wbuf.is_empty() || last {
                let r = flush(
                    self.stream,
                    self.wbuf,
                    &batch[..n],
                    chunked,
                    last,
                    self.timeout,
                )
                .await;
                batch[..n].iter_mut().for_each(|b| *b = Bytes::new());
                n = 0;
                if let Err(e) = r {
                    log::debug!("{}: closing: writing the response failed: {e}", self.peer);
                    return Written {
                        status,
                        body_bytes: out.sent,
                        reuse: false,
                    };
                }
            }
            if let Some(why) = broken {
                match why {
                    Broken::Abort => {
                        log::error!("{}: response aborted by the application", self.peer)
                    }
                    Broken::Died => log::error!(
                        "{}: the application stopped mid-response: closing the connection",
                        self.peer
                    ),
                    Broken::Protocol => {
                        log::error!("{}: a second response head (binding bug)", self.peer)
                    }
                }
                return Written {
                    status,
                    body_bytes: out.sent,
                    reuse: false,
                };
            }
            if ended {
                if let Some(promised) = out.short() {
                    log::error!(
                        "{}: response body shorter than its Content-Length ({} of {promised} bytes): closing the connection",
                        self.peer,
                        out.sent
                    );
                    return Written {
                        status,
                        body_bytes: out.sent,
                        reuse: false,
                    };
                }
                return Written {
                    status,
                    body_bytes: out.sent,
                    reuse: keep,
                };
            }
            match rx.recv().await {
                Some(ResponsePart::Body(b)) => {
                    if let Some(piece) = out.admit(b, self.peer) {
                        batch[0] = piece;
                        n = 1;
                    }
                }
                Some(ResponsePart::End) => ended = true,
                Some(ResponsePart::Abort) => broken = Some(Broken::Abort),
                Some(
                    ResponsePart::Start { .. }
                    | ResponsePart::StartFile { .. }
                    | ResponsePart::Refused(_),
                ) => broken = Some(Broken::Protocol),
                None => broken = Some(Broken::Died),
            }
        }
    }

    async fn start_file(&mut self, head: ResponseHead, file: FileBody) -> Written {
        let available = match file.len {
            Some(len) => len,
            None => match file.file.metadata() {
                Ok(meta) => meta.len().saturating_sub(file.offset),
                Err(e) => {
                    log::error!("{}: cannot stat the response file: {e}", self.peer);
                    return self.internal_error().await;
                }
            },
        };
        let app_len = app_content_length(&head);
        let (framing, keep) = self.framing(&head, app_len, Some(available));
        let status = head.code;
        self.wbuf.clear();
        make_room(self.wbuf, encode::head_size_bound(&head, self.server));
        encode::write_head(self.wbuf, self.version, &head, framing, self.server, keep);
        drop(head);
        let count = match framing {
            ResponseFraming::NoBody | ResponseFraming::NoBodyLength(_) => 0,
            ResponseFraming::Length(n) => {
                if n < available {
                    log::warn!(
                        "{}: response file longer than its Content-Length ({n}): truncated",
                        self.peer
                    );
                }
                n.min(available)
            }
            ResponseFraming::Chunked | ResponseFraming::CloseDelimited => available,
        };
        let chunked = framing == ResponseFraming::Chunked && count > 0;
        if chunked {
            let Ok(len) = usize::try_from(count) else {
                return self.internal_error().await;
            };
            encode::write_chunk_header(self.wbuf, len);
        }
        let r = flush(self.stream, self.wbuf, &[], false, false, self.timeout).await;
        if let Err(e) = r {
            log::debug!("{}: closing: writing the response failed: {e}", self.peer);
            return Written {
                status,
                body_bytes: 0,
                reuse: false,
            };
        }
        if count > 0 {
            if let Err(e) =
                send_file(self.stream, &file.file, file.offset, count, self.timeout).await
            {
                match e {
                    super::sendfile::SendFileFail::Io(e) => {
                        log::debug!("{}: closing: sending the file failed: {e}", self.peer)
                    }
                    other => log::error!(
                        "{}: response file: {other}: closing the connection",
                        self.peer
                    ),
                }
                return Written {
                    status,
                    body_bytes: 0,
                    reuse: false,
                };
            }
        }
        if framing == ResponseFraming::Chunked {
            let tail: &[&[u8]] = if chunked {
                &[CHUNK_END, LAST_CHUNK]
            } else {
                &[LAST_CHUNK]
            };
            let mut iov = [
                IoSlice::new(tail[0]),
                IoSlice::new(tail.get(1).copied().unwrap_or(&[])),
            ];
            if let Err(e) = write_all(self.stream, &mut iov, self.timeout).await {
                log::debug!("{}: closing: writing the response failed: {e}", self.peer);
                return Written {
                    status,
                    body_bytes: count,
                    reuse: false,
                };
            }
        }
        if let ResponseFraming::Length(n) = framing {
            if count < n {
                log::error!(
                    "{}: response file shorter than its Content-Length ({count} of {n} bytes): closing the connection",
                    self.peer
                );
                return Written {
                    status,
                    body_bytes: count,
                    reuse: false,
                };
            }
        }
        Written {
            status,
            body_bytes: count,
            reuse: keep,
        }
    }
}

/// Framing bytes around one chunk at most: its size line (16 hex digits, CRLF), the CRLF after
/// its data and the last chunk.
const CHUNK_FRAMING_MAX: usize = 16 + 2 + CHUNK_END.len() + LAST_CHUNK.len();

/// Writes what `wbuf` holds (a head, maybe), then `pieces` (as chunks when `chunked`), then the
/// last chunk when `last`, in one write; clears `wbuf`. Pieces that add up to at most
/// [`COALESCE_MAX`] bytes are copied into `wbuf` (one buffer, one `send`); larger ones are
/// gathered by reference (`writev`).
async fn flush(
    stream: &Stream,
    wbuf: &mut BytesMut,
    pieces: &[Bytes],
    chunked: bool,
    last: bool,
    timeout: Duration,
) -> Result<(), IoFail> {
    if pieces.iter().map(Bytes::len).sum::<usize>() <= COALESCE_MAX {
        for piece in pieces {
            if chunked {
                encode::write_chunk_header(wbuf, piece.len());
            }
            wbuf.put_slice(piece);
            if chunked {
                wbuf.put_slice(CHUNK_END);
            }
        }
        if last {
            wbuf.put_slice(LAST_CHUNK);
        }
        let mut iov = [IoSlice::new(wbuf)];
        let r = write_all(stream, &mut iov, timeout).await;
        wbuf.clear();
        return r;
    }
    let head_len = wbuf.len();
    let mut ends = [0usize; BATCH];
    if chunked {
        for (end, piece) in ends.iter_mut().zip(pieces) {
            encode::write_chunk_header(wbuf, piece.len());
            *end = wbuf.len();
        }
    }
    let mut iov = [IoSlice::new(&[]); 2 + 3 * BATCH];
    iov[0] = IoSlice::new(&wbuf[..head_len]);
    let mut n = 1;
    let mut start = head_len;
    for (piece, &end) in pieces.iter().zip(&ends) {
        if chunked {
            iov[n] = IoSlice::new(&wbuf[start..end]);
            n += 1;
            start = end;
        }
        iov[n] = IoSlice::new(piece);
        n += 1;
        if chunked {
            iov[n] = IoSlice::new(CHUNK_END);
            n += 1;
        }
    }
    if last {
        iov[n] = IoSlice::new(LAST_CHUNK);
        n += 1;
    }
    let r = write_all(stream, &mut iov[..n], timeout).await;
    wbuf.clear();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::ConnInfo;

    fn head(headers: &[(&str, &str)]) -> ResponseHead {
        ResponseHead {
            code: 200,
            status: HeadBytes::from_static(b"200 OK"),
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

    #[test]
    fn content_length_parsing() {
        assert_eq!(
            app_content_length(&head(&[("Content-Length", "12")])),
            Some(12)
        );
        assert_eq!(
            app_content_length(&head(&[("content-LENGTH", "0")])),
            Some(0)
        );
        assert_eq!(app_content_length(&head(&[("Content-Length", "+1")])), None);
        assert_eq!(app_content_length(&head(&[("Content-Length", "")])), None);
        assert_eq!(
            app_content_length(&head(&[("Content-Length", "99999999999999999999")])),
            None
        );
        assert_eq!(app_content_length(&head(&[("X", "1")])), None);
    }

    #[test]
    fn length_framing_truncates() {
        let conn = ConnInfo::new(
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            "http",
        );
        let peer = PeerLabel(&conn);
        let mut out = BodyOut {
            framing: ResponseFraming::Length(5),
            sent: 0,
            truncated: false,
        };
        assert_eq!(
            out.admit(Bytes::from_static(b"abc"), peer).as_deref(),
            Some(&b"abc"[..])
        );
        assert_eq!(out.short(), Some(5));
        assert_eq!(
            out.admit(Bytes::from_static(b"defg"), peer).as_deref(),
            Some(&b"de"[..])
        );
        assert_eq!(out.admit(Bytes::from_static(b"h"), peer), None);
        assert!(out.truncated);
        assert_eq!(out.short(), None);
    }

    #[test]
    fn no_body_drops_everything() {
        let conn = ConnInfo::new(
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            "http",
        );
        let peer = PeerLabel(&conn);
        let mut out = BodyOut {
            framing: ResponseFraming::NoBody,
            sent: 0,
            truncated: false,
        };
        assert_eq!(out.admit(Bytes::from_static(b"abc"), peer), None);
        assert_eq!(out.sent, 0);
    }

    #[test]
    fn decimal() {
        let mut b = BytesMut::new();
        put_decimal(&mut b, 0);
        b.put_u8(b' ');
        put_decimal(&mut b, 18_446_744_073_709_551_615);
        assert_eq!(&b[..], b"0 18446744073709551615");
    }
}
