//! The response filter: sits between an application thread's [`ResponsePart`]s and the
//! connection's writer, adding `X-Request-ID` and compressing the body when negotiated.
//!
//! It runs as its own small task reading the app's channel and feeding a second, equally
//! bounded one, so back-pressure still reaches the app. A connection that stops reading (its
//! receiver dropped) ends the task at once, which drops the app's receiver: the app's next
//! `send` fails with `ClientGone`, exactly as without the filter.
//!
//! Compression is skipped (the response passes unchanged) for: HEAD requests (decided in
//! [`super::Middleware::prepare`]); 1xx, 204, 304
//! and 206 statuses or any `Content-Range` (a byte range of a compressed body would be a range
//! of different bytes); a response that already has `Content-Encoding`; `Cache-Control:
//! no-transform` (RFC 9110 §7.7: a proxy "MUST NOT transform the content"; we honour it as
//! the app's wish); a `Content-Type` absent or not in `compress_types` (images, archives and
//! video are already compressed); a body known whole (or a declared `Content-Length`) under
//! `compress_min_size`; a file body (`wsgi.file_wrapper`, sent with `sendfile`: serve those
//! precompressed with `--static` instead); a declared `Content-Length` the body disagrees with
//! (the writer reports that error). A streamed body without `Content-Length` is compressed by
//! its type alone. A whole body whose compressed form is not smaller is sent as it was.
//!
//! When compressing: `Content-Length` is dropped (recomputed for a whole body, chunked or
//! close-delimited for a stream), `Content-Encoding` is added, `Vary` gains `Accept-Encoding`
//! (RFC 9110 §12.5.5), and a strong `ETag` becomes weak (the compressed bytes differ from
//! those the strong tag named, RFC 9110 §8.8.1).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc::{self, Sender};

use super::compress::{self, Coding, Encoder, BLOCKING_COMPRESS_MIN};
use super::CompressSettings;
use crate::exchange::{PartReceiver, ResponseHead, ResponsePart, RESPONSE_CHANNEL_PARTS};
use crate::head_bytes::HeadBytes;
use crate::http1::encode::status_has_no_body;

/// Most bytes gathered from the app's queue before a stream is flushed.
const STREAM_BATCH: usize = 256 * 1024;

/// What one response's filter does.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    /// Added to the response head unless the app set one.
    pub(crate) request_id: Option<Bytes>,
    /// The coding the client prefers, with the settings, when compression is on.
    pub(crate) compress: Option<(Coding, Arc<CompressSettings>)>,
}

impl Filter {
    /// The receiver the connection writes from: `rx` itself when there is nothing to do.
    pub(crate) fn wrap(self, rx: PartReceiver) -> PartReceiver {
        if self.request_id.is_none() && self.compress.is_none() {
            return rx;
        }
        let (tx, out) = mpsc::channel(RESPONSE_CHANNEL_PARTS);
        tokio::spawn(self.run(rx, tx));
        PartReceiver::from_channel(out)
    }

    async fn run(self, mut rx: PartReceiver, tx: Sender<ResponsePart>) {
        let Some(first) = recv(&mut rx, &tx).await else {
            return;
        };
        let first = match first {
            ResponsePart::Start {
                mut head,
                first,
                end,
            } => {
                self.add_request_id(&mut head);
                match self
                    .compress
                    .as_ref()
                    .filter(|(_, s)| should_compress(&head, &first, end, s))
                {
                    Some(&(coding, _)) if end => {
                        let part = compress_whole_part(head, first, coding).await;
                        let _ = tx.send(part).await;
                        return;
                    }
                    Some(&(coding, _)) => {
                        stream(head, first, coding, rx, tx).await;
                        return;
                    }
                    None => ResponsePart::Start { head, first, end },
                }
            }
            ResponsePart::StartFile { mut head, file } => {
                self.add_request_id(&mut head);
                ResponsePart::StartFile { head, file }
            }
            other => other,
        };
        if tx.send(first).await.is_err() {
            return;
        }
        while let Some(part) = recv(&mut rx, &tx).await {
            if tx.send(part).await.is_err() {
                return;
            }
        }
    }

    fn add_request_id(&self, head: &mut ResponseHead) {
        if let Some(id) = &self.request_id {
            if find(head, super::request_id::HEADER).is_none() {
                head.headers.push((
                    HeadBytes::from_static(super::request_id::HEADER),
                    id.clone().into(),
                ));
            }
        }
    }
}

/// The app's next part; `None` when it is done or the connection stopped listening.
async fn recv(rx: &mut PartReceiver, tx: &Sender<ResponsePart>) -> Option<ResponsePart> {
    tokio::select! {
        part = rx.recv() => part,
        () = tx.closed() => None,
    }
}

fn find<'a>(head: &'a ResponseHead, name: &[u8]) -> Option<&'a HeadBytes> {
    head.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The skip rules of the module docs.
fn should_compress(head: &ResponseHead, first: &Bytes, end: bool, s: &CompressSettings) -> bool {
    if status_has_no_body(head.code) || head.code == 206 {
        return false;
    }
    if find(head, b"content-encoding").is_some() || find(head, b"content-range").is_some() {
        return false;
    }
    if find(head, b"cache-control").is_some_and(|v| {
        v.windows(12)
            .any(|w| w.eq_ignore_ascii_case(b"no-transform"))
    }) {
        return false;
    }
    if !find(head, b"content-type").is_some_and(|t| compress::type_matches(t, &s.types)) {
        return false;
    }
    let declared = crate::server::app_content_length(head);
    if end {
        if declared.is_some_and(|n| n != first.len() as u64) {
            return false;
        }
        return first.len() >= s.min_size;
    }
    declared.is_none_or(|n| n >= s.min_size as u64)
}

/// The head of a compressed response (see the module docs).
fn encoded_head(head: &mut ResponseHead, coding: Coding) {
    head.headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case(b"content-length"));
    add_vary(head);
    for (n, v) in &mut head.headers {
        if n.eq_ignore_ascii_case(b"etag") && v.starts_with(b"\"") {
            let mut weak = b"W/".to_vec();
            weak.extend_from_slice(v);
            *v = HeadBytes::from(weak);
        }
    }
    head.headers.push((
        HeadBytes::from_static(b"Content-Encoding"),
        HeadBytes::from_static(coding.token().as_bytes()),
    ));
}

fn add_vary(head: &mut ResponseHead) {
    let has = head
        .headers
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"vary"));
    match has {
        Some((_, v)) => {
            let covered = v.as_ref() == b"*"
                || v.split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"accept-encoding"));
            if !covered {
                let mut joined = v.to_vec();
                joined.extend_from_slice(b", Accept-Encoding");
                *v = HeadBytes::from(joined);
            }
        }
        None => head.headers.push((
            HeadBytes::from_static(b"Vary"),
            HeadBytes::from_static(b"Accept-Encoding"),
        )),
    }
}

/// Compresses `data`, on the blocking pool when it is large.
async fn compress_on_pool(coding: Coding, data: Bytes) -> Bytes {
    if data.len() < BLOCKING_COMPRESS_MIN {
        return compress::compress_whole(coding, &data);
    }
    let input = data.clone();
    tokio::task::spawn_blocking(move || compress::compress_whole(coding, &input))
        .await
        .unwrap_or_else(|e| {
            log::error!("compressing a response failed: {e}");
            Bytes::new()
        })
}

async fn compress_whole_part(mut head: ResponseHead, body: Bytes, coding: Coding) -> ResponsePart {
    let packed = compress_on_pool(coding, body.clone()).await;
    if packed.is_empty() || packed.len() >= body.len() {
        // Not worth it (or failed): the body as it was; the answer still varies.
        add_vary(&mut head);
        return ResponsePart::Start {
            head,
            first: body,
            end: true,
        };
    }
    encoded_head(&mut head, coding);
    ResponsePart::Start {
        head,
        first: packed,
        end: true,
    }
}

/// Runs `encoder` over `batch` (on the blocking pool when large) and flushes.
async fn encode(mut encoder: Encoder, batch: Vec<Bytes>) -> Option<(Encoder, Bytes)> {
    let size: usize = batch.iter().map(Bytes::len).sum();
    let work = move || {
        for b in &batch {
            encoder.write(b);
        }
        let out = encoder.flush();
        (encoder, out)
    };
    if size < BLOCKING_COMPRESS_MIN {
        return Some(work());
    }
    match tokio::task::spawn_blocking(work).await {
        Ok(r) => Some(r),
        Err(e) => {
            log::error!("compressing a response failed: {e}");
            None
        }
    }
}

/// A streamed response: each batch of what the app has queued is compressed and flushed.
async fn stream(
    mut head: ResponseHead,
    first: Bytes,
    coding: Coding,
    mut rx: PartReceiver,
    tx: Sender<ResponsePart>,
) {
    encoded_head(&mut head, coding);
    let mut encoder = Some(Encoder::new(coding));
    let mut batch = vec![first];
    let mut ended = false;
    let mut abort = false;
    let mut head = Some(head);
    loop {
        // Gather what is already queued, without waiting.
        let mut size: usize = batch.iter().map(Bytes::len).sum();
        while !ended && !abort && size < STREAM_BATCH {
            match rx.try_recv() {
                Ok(ResponsePart::Body(b)) => {
                    size += b.len();
                    batch.push(b);
                }
                Ok(ResponsePart::End) => ended = true,
                // Abort, a second head (a binding bug) or the app gone: the writer must see
                // the response break, so nothing more is finished cleanly.
                Ok(_) | Err(mpsc::error::TryRecvError::Disconnected) => abort = true,
                Err(mpsc::error::TryRecvError::Empty) => break,
            }
        }
        let Some(e) = encoder.take() else { return };
        let Some((e, mut out)) = encode(e, std::mem::take(&mut batch)).await else {
            let _ = tx.send(ResponsePart::Abort).await;
            return;
        };
        if !ended {
            encoder = Some(e);
        } else {
            let tail = e.finish();
            let mut all = out.to_vec();
            all.extend_from_slice(&tail);
            out = Bytes::from(all);
        }
        let started = head.is_none();
        match head.take() {
            Some(head) => {
                let part = ResponsePart::Start {
                    head,
                    first: out,
                    end: ended,
                };
                if tx.send(part).await.is_err() || ended {
                    // `Start { end: true }` is the whole response.
                    return;
                }
            }
            None => {
                if !out.is_empty() && tx.send(ResponsePart::Body(out)).await.is_err() {
                    return;
                }
            }
        }
        if ended && started {
            let _ = tx.send(ResponsePart::End).await;
            return;
        }
        if abort {
            let _ = tx.send(ResponsePart::Abort).await;
            return;
        }
        match recv(&mut rx, &tx).await {
            Some(ResponsePart::Body(b)) => batch.push(b),
            Some(ResponsePart::End) => ended = true,
            Some(_) => abort = true,
            // The connection stopped listening, or the app's thread went away mid-response
            // (dropping `tx` tells the writer).
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(code: u16, headers: &[(&'static str, &'static str)]) -> ResponseHead {
        ResponseHead {
            code,
            status: HeadBytes::from_static(b"200 OK"),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        HeadBytes::from_static(n.as_bytes()),
                        HeadBytes::from_static(v.as_bytes()),
                    )
                })
                .collect(),
        }
    }

    /// Runs [`stream`] over `first` and `queued` (all already in the channel when it looks)
    /// and returns what it sends on.
    fn streamed(queued: Vec<ResponsePart>) -> Vec<ResponsePart> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (app_tx, app_rx) = mpsc::channel(16);
            for part in queued {
                app_tx.try_send(part).unwrap();
            }
            drop(app_tx);
            let (tx, mut rx) = mpsc::channel(16);
            let first = Bytes::from_static(b"chunk-0\n");
            stream(
                head(200, &[]),
                first,
                Coding::Gzip,
                PartReceiver::from_channel(app_rx),
                tx,
            )
            .await;
            let mut out = Vec::new();
            while let Some(part) = rx.recv().await {
                out.push(part);
            }
            out
        })
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn a_stream_queued_whole_is_compressed_into_one_part() {
        let out = streamed(vec![
            ResponsePart::Body(Bytes::from_static(b"chunk-1\n")),
            ResponsePart::Body(Bytes::from_static(b"chunk-2\n")),
            ResponsePart::End,
        ]);
        // One `Start { end: true }`: the writer frames it with a Content-Length.
        let [ResponsePart::Start { first, end, .. }] = &out[..] else {
            panic!("expected one whole part, got {out:?}");
        };
        assert!(*end);
        assert_eq!(gunzip(first), b"chunk-0\nchunk-1\nchunk-2\n");
    }

    #[test]
    fn a_stream_still_open_goes_out_in_parts() {
        let out = streamed(vec![ResponsePart::Body(Bytes::from_static(b"chunk-1\n"))]);
        // The app's channel closed without `End`: the head and the first batch, then Abort.
        assert!(matches!(
            &out[..],
            [ResponsePart::Start { end: false, .. }, ResponsePart::Abort]
        ));
    }

    fn settings() -> CompressSettings {
        CompressSettings {
            min_size: 100,
            types: vec!["text/*".to_owned()],
        }
    }

    #[test]
    fn skip_rules() {
        let s = settings();
        let big = Bytes::from(vec![b'a'; 500]);
        let small = Bytes::from(vec![b'a'; 50]);
        let text = [("Content-Type", "text/plain")];
        assert!(should_compress(&head(200, &text), &big, true, &s));
        assert!(!should_compress(&head(200, &text), &small, true, &s));
        // Streams: by type, unless a declared length is small.
        assert!(should_compress(&head(200, &text), &small, false, &s));
        assert!(!should_compress(
            &head(
                200,
                &[("Content-Type", "text/plain"), ("Content-Length", "10")]
            ),
            &small,
            false,
            &s
        ));
        assert!(!should_compress(
            &head(200, &[("Content-Type", "image/png")]),
            &big,
            true,
            &s
        ));
        assert!(!should_compress(&head(200, &[]), &big, true, &s));
        assert!(!should_compress(&head(204, &text), &big, true, &s));
        assert!(!should_compress(&head(304, &text), &big, true, &s));
        assert!(!should_compress(&head(206, &text), &big, true, &s));
        assert!(!should_compress(
            &head(
                200,
                &[("Content-Type", "text/plain"), ("Content-Encoding", "gzip")]
            ),
            &big,
            true,
            &s
        ));
        assert!(!should_compress(
            &head(
                200,
                &[
                    ("Content-Type", "text/plain"),
                    ("Cache-Control", "No-Transform")
                ]
            ),
            &big,
            true,
            &s
        ));
        assert!(!should_compress(
            &head(
                200,
                &[("Content-Type", "text/plain"), ("Content-Length", "7")]
            ),
            &big,
            true,
            &s
        ));
    }

    #[test]
    fn encoded_heads() {
        let mut h = head(
            200,
            &[
                ("Content-Length", "500"),
                ("ETag", "\"v1\""),
                ("Vary", "Cookie"),
            ],
        );
        encoded_head(&mut h, Coding::Gzip);
        let text: Vec<(String, String)> = h
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            text,
            [
                ("ETag".to_owned(), "W/\"v1\"".to_owned()),
                ("Vary".to_owned(), "Cookie, Accept-Encoding".to_owned()),
                ("Content-Encoding".to_owned(), "gzip".to_owned()),
            ]
        );
        let mut h = head(200, &[("vary", "accept-encoding")]);
        add_vary(&mut h);
        assert_eq!(h.headers.len(), 1);
    }
}
