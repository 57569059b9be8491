//! TLS with rustls (ring provider): `--certfile`, `--keyfile`, `--ca-certs`, `--cert-reqs`.
//!
//! - Loading ([`TlsConfig::load`]): the certificate chain and private key are PEM files; a
//!   missing or unreadable file, a file without the expected PEM section, or a key that does
//!   not match the certificate fails at start with one line naming the file and the reason.
//!   Client certificates (`--cert-reqs`, gunicorn's `ssl.CERT_*` numbers): 0 none asked for,
//!   1 asked for and verified against `--ca-certs` when sent (a connection without one goes
//!   on), 2 required (a handshake without a valid one fails). 1 and 2 need `--ca-certs`.
//! - ALPN (RFC 7301): we offer [`alpn_protocols`]: `h2` then `http/1.1` with `--http2`, else
//!   `http/1.1` alone (like nginx's `http2 on`, HTTP/2 is opt-in; RFC 9113 §3.2: "The "h2"
//!   string identifies the protocol where HTTP/2 uses TLS"). The server's order decides, so a
//!   client offering both gets HTTP/2. "In the event that the server supports no protocols
//!   that the client advertises, then the server SHALL respond with a fatal
//!   no_application_protocol alert": rustls does that. A client that offers no ALPN gets
//!   HTTP/1.1.
//! - Reload: [`TlsConfig::reload`] re-reads the files (SIGHUP in a process without a master,
//!   and in workers; a master's HUP replaces its workers, which load the files anew). A reload
//!   that fails keeps the previous certificate and logs why. Connections already open keep
//!   the certificate they were made with.
//! - The handshake runs under the header timeout ([`TlsStream::handshake`]).
//!
//! [`TlsStream`] is readiness-based like the plain sockets (see `stream`): rustls's state is
//! behind a lock taken only inside non-blocking calls, so the body feeder and the response
//! writer share it. Plaintext rustls has decrypted but we have not read yet counts as
//! "readable", so no request byte waits for the socket.

use std::io::{self, IoSlice, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::task::{Context, Poll};

use bytes::BytesMut;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConnection;
use tokio::net::TcpStream;

use crate::config::ServerConfig;
use crate::exchange::ClientCert;

/// The ALPN protocol ids we offer, most preferred first: `h2` only when HTTP/2 is on
/// (`http2`); [`TlsStream::alpn_is_h2`] tells the driver which one a connection negotiated.
pub(crate) fn alpn_protocols(config: &ServerConfig) -> Vec<Vec<u8>> {
    if config.http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    }
}

/// Loading the TLS files failed; the message names the file and the reason.
#[derive(Debug)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// The server's TLS settings, replaceable at run time (certificate reload).
#[derive(Debug)]
pub(crate) struct TlsConfig {
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl TlsConfig {
    /// `None` when TLS is off (no `certfile`).
    pub(crate) fn load(config: &ServerConfig) -> Result<Option<TlsConfig>, TlsError> {
        if config.certfile.is_none() {
            return Ok(None);
        }
        Ok(Some(TlsConfig {
            current: RwLock::new(build(config)?),
        }))
    }

    /// Re-reads the files; on failure the previous settings stay.
    pub(crate) fn reload(&self, config: &ServerConfig) -> Result<(), TlsError> {
        let fresh = build(config)?;
        match self.current.write() {
            Ok(mut c) => *c = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    /// A server-side TLS session for one new connection.
    pub(crate) fn accept(&self, tcp: TcpStream) -> io::Result<TlsStream> {
        let config = match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(TlsStream {
            tcp,
            conn: Mutex::new(conn),
        })
    }
}

/// Builds the rustls settings from the files `config` names (see the module docs).
fn build(config: &ServerConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certfile = config.certfile.as_deref().unwrap_or_default();
    let keyfile = config.keyfile.as_deref().unwrap_or(certfile);
    let pem_err = |what: &str, path: &str, e: rustls::pki_types::pem::Error| {
        let reason = match e {
            rustls::pki_types::pem::Error::Io(e) => e.to_string(),
            rustls::pki_types::pem::Error::NoItemsFound => format!("no {what} found in the file"),
            other => format!("not a valid PEM file ({other:?})"),
        };
        TlsError(format!("cannot load the TLS {what} {path}: {reason}"))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certfile)
        .map_err(|e| pem_err("certificate", certfile, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err("certificate", certfile, e))?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "cannot load the TLS certificate {certfile}: no certificate found in the file"
        )));
    }
    let key = PrivateKeyDer::from_pem_file(keyfile).map_err(|e| pem_err("key", keyfile, e))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("cannot set up TLS: {e}")))?;
    let builder = match (config.cert_reqs, config.ca_certs.as_deref()) {
        (0, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(TlsError(
                "cert_reqs 1 or 2 (client certificates) needs ca_certs".to_owned(),
            ))
        }
        (reqs, Some(ca)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in
                CertificateDer::pem_file_iter(ca).map_err(|e| pem_err("CA certificate", ca, e))?
            {
                let cert = cert.map_err(|e| pem_err("CA certificate", ca, e))?;
                roots.add(cert).map_err(|e| {
                    TlsError(format!("cannot load the TLS CA certificate {ca}: {e}"))
                })?;
            }
            if roots.is_empty() {
                return Err(TlsError(format!(
                    "cannot load the TLS CA certificate {ca}: no certificate found in the file"
                )));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if reqs == 1 {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError(format!("cannot use the TLS CA certificates {ca}: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut tls = builder.with_single_cert(chain, key).map_err(|e| {
        let reason = match e {
            rustls::Error::InconsistentKeys(_) => {
                "the private key does not match the certificate".to_owned()
            }
            other => other.to_string(),
        };
        TlsError(format!(
            "cannot use the TLS certificate {certfile} with key {keyfile}: {reason}"
        ))
    })?;
    tls.alpn_protocols = alpn_protocols(config);
    Ok(Arc::new(tls))
}

/// A TLS session over an accepted TCP connection (see the module docs).
#[derive(Debug)]
pub(crate) struct TlsStream {
    tcp: TcpStream,
    conn: Mutex<ServerConnection>,
}

/// `io::Read`/`io::Write` over a non-blocking `&TcpStream`, for rustls's `read_tls`/`write_tls`
/// (`WouldBlock` passes through, and tokio's readiness is cleared by it).
struct Sock<'a>(&'a TcpStream);

impl Read for Sock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Sock<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsStream {
    fn lock(&self) -> MutexGuard<'_, ServerConnection> {
        match self.conn.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Completes the handshake (the caller bounds its time). An error closes the connection
    /// (rustls has queued an alert, sent here when the socket takes it).
    pub(crate) async fn handshake(&self) -> io::Result<()> {
        loop {
            let (handshaking, flushed) = {
                let mut conn = self.lock();
                let flushed = flush(&mut conn, &self.tcp)?;
                (conn.is_handshaking(), flushed)
            };
            if !flushed {
                self.tcp.writable().await?;
                continue;
            }
            if !handshaking {
                return Ok(());
            }
            let read = {
                let mut conn = self.lock();
                match conn.read_tls(&mut Sock(&self.tcp)) {
                    Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => match conn.process_new_packets() {
                        Ok(_) => Ok(()),
                        Err(e) => {
                            let _ = flush(&mut conn, &self.tcp);
                            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                        }
                    },
                    Err(e) => Err(e),
                }
            };
            match read {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.tcp.readable().await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Hands rustls bytes already read from the socket (after a PROXY header).
    pub(crate) fn feed(&self, mut bytes: &[u8]) -> io::Result<()> {
        let mut conn = self.lock();
        while !bytes.is_empty() {
            if conn.read_tls(&mut bytes)? == 0 {
                break;
            }
            conn.process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        Ok(())
    }

    /// The negotiated ALPN protocol is `h2` (the HTTP/2 path takes such a connection).
    pub(crate) fn alpn_is_h2(&self) -> bool {
        self.lock().alpn_protocol() == Some(b"h2")
    }

    /// The verified client certificate's subject, when the client sent one.
    pub(crate) fn client_cert(&self) -> Option<ClientCert> {
        let conn = self.lock();
        let leaf = conn.peer_certificates()?.first()?;
        Some(ClientCert {
            subject: super::dn::subject_rfc4514(leaf).unwrap_or_default(),
        })
    }

    /// Plaintext is waiting in rustls, or the peer has closed: a read would not block.
    fn has_buffered(&self) -> bool {
        let mut conn = self.lock();
        match conn.process_new_packets() {
            Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
            Err(_) => true,
        }
    }

    pub(crate) fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let mut conn = self.lock();
        loop {
            let spare = buf.capacity() - buf.len();
            if spare == 0 {
                buf.reserve(4096);
            }
            let start = buf.len();
            buf.resize(buf.capacity(), 0);
            let got = conn.reader().read(&mut buf[start..]);
            buf.truncate(start + *got.as_ref().unwrap_or(&0));
            match got {
                Ok(n) => return Ok(n),
                // The peer closed without close_notify: an end of stream like any other (many
                // clients do so; a truncation of a framed request is seen by the codec).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            conn.read_tls(&mut Sock(&self.tcp))?;
            if let Err(e) = conn.process_new_packets() {
                let _ = flush(&mut conn, &self.tcp);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // Records rustls answers with (key updates, alerts) go out with the next write.
            let _ = flush(&mut conn, &self.tcp);
        }
    }

    /// [`TlsStream::try_read_buf`] into a plain slice (the HTTP/2 path's `AsyncRead`):
    /// decrypted bytes, `Ok(0)` at the end of the stream, `WouldBlock` when none are ready.
    pub(crate) fn try_read(&self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let mut conn = self.lock();
        loop {
            match conn.reader().read(out) {
                Ok(n) => return Ok(n),
                // The peer closed without close_notify (see `try_read_buf`).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            conn.read_tls(&mut Sock(&self.tcp))?;
            if let Err(e) = conn.process_new_packets() {
                let _ = flush(&mut conn, &self.tcp);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            let _ = flush(&mut conn, &self.tcp);
        }
    }

    pub(crate) async fn readable(&self) -> io::Result<()> {
        if self.has_buffered() {
            return Ok(());
        }
        self.tcp.readable().await
    }

    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.has_buffered() {
            return Poll::Ready(Ok(()));
        }
        self.tcp.poll_read_ready(cx)
    }

    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut conn = self.lock();
        // Back-pressure: nothing new is encrypted while earlier records wait for the socket.
        if !flush(&mut conn, &self.tcp)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = conn.writer().write_vectored(bufs)?;
        flush(&mut conn, &self.tcp)?;
        Ok(n)
    }

    pub(crate) fn flush_pending(&self) -> io::Result<bool> {
        flush(&mut self.lock(), &self.tcp)
    }

    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        {
            let mut conn = self.lock();
            conn.send_close_notify();
            let _ = flush(&mut conn, &self.tcp);
        }
        socket2::SockRef::from(&self.tcp).shutdown(std::net::Shutdown::Write)
    }
}

/// Writes queued TLS records to the socket; `Ok(false)` when it would block with some left.
fn flush(conn: &mut ServerConnection, tcp: &TcpStream) -> io::Result<bool> {
    while conn.wants_write() {
        match conn.write_tls(&mut Sock(tcp)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h2_is_offered_only_with_http2() {
        let mut config = ServerConfig::default();
        assert_eq!(alpn_protocols(&config), vec![b"http/1.1".to_vec()]);
        config.http2 = true;
        assert_eq!(
            alpn_protocols(&config),
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
