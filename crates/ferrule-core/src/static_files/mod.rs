//! Static files (`--static /url/prefix=path/to/dir`, repeatable), answered by Rust before the
//! application sees the request (uWSGI's `static-map`).
//!
//! Decisions (docs/static-files.md would repeat them; they are enforced here):
//! - A mount owns its URL prefix: every request under it is answered here, a missing file
//!   included (404); the app never sees those paths. The longest matching prefix wins.
//! - GET and HEAD only; any other method is `405 Method Not Allowed` with `Allow: GET, HEAD`
//!   (RFC 9110 §15.5.6: "The origin server MUST generate an Allow header field in a 405").
//! - The path is decoded and checked by [`path`]: `..`, encoded slashes or backslashes, NUL and
//!   dotfiles are 404. Directories are 404 too: no listing and no `index.html` (a listing
//!   leaks names; an index page is the app's or the proxy's job, and serving one would make
//!   `/dir` and `/dir/` differ). A symlink whose target lies outside the mount's root is 404
//!   unless `static_follow_symlinks` (checked on the canonical path; a precompressed sibling
//!   that is a symlink is ignored without it). A race where a directory inside the root is
//!   swapped for a symlink between the check and the open is not covered: whoever can write
//!   to the root already decides what is served.
//! - Files are opened and stat'ed on tokio's blocking pool (`spawn_blocking`), never on the
//!   I/O thread: an open on a slow or network disk must not stall every connection. The body
//!   goes out with `sendfile(2)` through the same path as `wsgi.file_wrapper` bodies
//!   ([`crate::exchange::ResponsePart::StartFile`]).
//! - Validators, conditional requests and ranges: [`conditional`]. Content types: [`mime`].
//! - Precompressed siblings: for `app.js`, `app.js.br` or `app.js.gz` (regular files next to
//!   it) are sent instead with `Content-Encoding` when the client accepts that coding
//!   (Accept-Encoding q-values, see [`crate::middleware::compress`]), with
//!   `Vary: Accept-Encoding` (RFC 9110 §12.5.5) whenever a sibling exists. The sibling has its
//!   own ETag (suffix `-br`/`-gz`) and Content-Length, and ranges apply to its bytes.
//! - `static_max_age` N > 0 adds `Cache-Control: public, max-age=N`.

mod conditional;
mod mime;
mod path;

use std::fs::File;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use self::conditional::{Conditions, Precondition, RangeAnswer, Validators};
use crate::config::ServerConfig;
use crate::exchange::{FileBody, ResponseHead, ResponsePart};
use crate::head_bytes::HeadBytes;
use crate::http1::RequestHead;
use crate::middleware::compress::{preferences, Coding};

/// One mount: a URL prefix (decoded segments) and the canonical root directory.
#[derive(Debug, Clone)]
struct Mount {
    prefix: Vec<path::Segment>,
    root: PathBuf,
}

/// The mounts of `static_map`, longest prefix first.
#[derive(Debug, Clone, Default)]
pub struct Mounts(Vec<Mount>);

impl Mounts {
    /// Parses `PREFIX=DIR` specs; each DIR must be an existing directory (made canonical).
    pub fn parse(specs: &[String]) -> Result<Mounts, String> {
        let mut mounts = Vec::with_capacity(specs.len());
        for spec in specs {
            let Some((prefix, dir)) = spec.split_once('=') else {
                return Err(format!("{spec:?} is not /url/prefix=path/to/dir"));
            };
            let prefix = path::prefix_segments(prefix)?;
            if dir.is_empty() {
                return Err(format!("{spec:?} names no directory"));
            }
            let root = std::fs::canonicalize(dir)
                .map_err(|e| format!("{spec:?}: cannot use directory {dir:?}: {e}"))?;
            if !root.is_dir() {
                return Err(format!("{spec:?}: {dir:?} is not a directory"));
            }
            if mounts.iter().any(|m: &Mount| m.prefix == prefix) {
                return Err(format!("{spec:?}: the URL prefix is mounted twice"));
            }
            mounts.push(Mount { prefix, root });
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
        Ok(Mounts(mounts))
    }
}

/// The static file server of one process.
#[derive(Debug)]
pub struct StaticFiles {
    mounts: Mounts,
    /// The `Cache-Control` value, if any.
    cache_control: Option<HeadBytes>,
    follow_symlinks: bool,
}

impl StaticFiles {
    /// `None` when nothing is mounted. The config was validated, so the roots existed then; a
    /// root gone since is logged and its mounts are dropped.
    pub fn from_config(config: &ServerConfig) -> Option<Arc<StaticFiles>> {
        if config.static_map.is_empty() {
            return None;
        }
        let mounts = match Mounts::parse(&config.static_map) {
            Ok(m) => m,
            Err(e) => {
                log::error!("invalid setting static_map: {e}: serving no static files");
                return None;
            }
        };
        Some(Arc::new(StaticFiles {
            mounts,
            cache_control: (config.static_max_age > 0)
                .then(|| HeadBytes::from(format!("public, max-age={}", config.static_max_age))),
            follow_symlinks: config.static_follow_symlinks,
        }))
    }

    /// The response for a request under a mount, or `None` (not under one: the app answers).
    pub(crate) async fn answer(self: &Arc<Self>, head: &RequestHead) -> Option<ResponsePart> {
        if head.path() == b"*" {
            return None;
        }
        let segs = path::segments(head.path());
        let mount = self
            .mounts
            .0
            .iter()
            .find(|m| path::has_prefix(&segs, &m.prefix))?;
        let method = head.method();
        if method != b"GET" && method != b"HEAD" {
            return Some(plain(
                405,
                "Method Not Allowed",
                &[(b"Allow", b"GET, HEAD")],
            ));
        }
        let rel = match path::check_rest(&segs[mount.prefix.len()..]) {
            Ok(rest) if !rest.is_empty() => rest.iter().fold(PathBuf::new(), |p, s| {
                p.join(std::ffi::OsStr::from_bytes(s))
            }),
            Ok(_) => return Some(not_found()),
            Err(why) => {
                log::debug!(
                    "static: refused {:?}: {why:?}",
                    String::from_utf8_lossy(head.path())
                );
                return Some(not_found());
            }
        };
        let (this, root, head) = (Arc::clone(self), mount.root.clone(), head.clone());
        let part = tokio::task::spawn_blocking(move || this.serve_file(&root, &rel, &head)).await;
        Some(part.unwrap_or_else(|e| {
            log::error!("static: serving a file failed: {e}");
            plain(500, "Internal Server Error", &[])
        }))
    }

    /// Blocking: resolves, opens and answers one file.
    fn serve_file(&self, root: &Path, rel: &Path, head: &RequestHead) -> ResponsePart {
        let canon = match std::fs::canonicalize(root.join(rel)) {
            Ok(p) => p,
            Err(_) => return not_found(),
        };
        if !self.follow_symlinks && !canon.starts_with(root) {
            log::debug!("static: {} leads out of {}", rel.display(), root.display());
            return not_found();
        }
        let Some((mut file, mut meta)) = open_regular(&canon, self.follow_symlinks) else {
            return not_found();
        };
        let name = rel.file_name().map_or(&b""[..], |n| n.as_bytes());
        let content_type = mime::content_type(name);

        // A precompressed sibling, in the client's order of preference.
        let mut coding = None;
        let mut vary = false;
        for c in preferences(head.header(b"accept-encoding")) {
            let mut sibling = canon.clone().into_os_string().into_vec();
            sibling.extend_from_slice(c.suffix().as_bytes());
            let sibling = PathBuf::from(std::ffi::OsString::from_vec(sibling));
            if let Some(found) = open_regular(&sibling, self.follow_symlinks) {
                (file, meta) = found;
                coding = Some(c);
                vary = true;
                break;
            }
        }
        let size = meta.len();
        let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        let variant = match coding {
            Some(Coding::Brotli) => "-br",
            Some(Coding::Gzip) => "-gz",
            None => "",
        };
        let v = Validators::new(size, mtime, variant);

        let mut headers: Vec<(HeadBytes, HeadBytes)> = Vec::with_capacity(10);
        let mut add =
            |n: &'static [u8], value: HeadBytes| headers.push((HeadBytes::from_static(n), value));
        add(b"ETag", HeadBytes::from(v.etag.clone()));
        add(b"Last-Modified", HeadBytes::from(v.last_modified()));
        if let Some(cc) = &self.cache_control {
            add(b"Cache-Control", cc.clone());
        }
        if vary {
            add(b"Vary", HeadBytes::from_static(b"Accept-Encoding"));
        }
        let conditions = Conditions {
            if_match: head.header(b"if-match"),
            if_unmodified_since: head.header(b"if-unmodified-since"),
            if_none_match: head.header(b"if-none-match"),
            if_modified_since: head.header(b"if-modified-since"),
        };
        match conditional::evaluate(&conditions, &v) {
            Precondition::Proceed => {}
            Precondition::NotModified => return start(304, headers, Bytes::new()),
            Precondition::Failed => {
                return plain(412, "Precondition Failed", &[]);
            }
        }
        add(
            b"Content-Type",
            HeadBytes::from_static(content_type.as_bytes()),
        );
        if let Some(c) = coding {
            add(
                b"Content-Encoding",
                HeadBytes::from_static(c.token().as_bytes()),
            );
        }
        add(b"Accept-Ranges", HeadBytes::from_static(b"bytes"));
        let range = match head.header(b"range") {
            Some(r) if head.method() == b"GET" => match head.header(b"if-range") {
                Some(ir) if !conditional::if_range_holds(ir, &v) => RangeAnswer::Full,
                _ => conditional::range(r, size),
            },
            _ => RangeAnswer::Full,
        };
        let (code, offset, len) = match range {
            RangeAnswer::Full => (200, 0, size),
            RangeAnswer::Partial { start, end } => {
                add(
                    b"Content-Range",
                    HeadBytes::from(format!("bytes {start}-{end}/{size}")),
                );
                (206, start, end - start + 1)
            }
            RangeAnswer::Unsatisfiable => {
                add(b"Content-Range", HeadBytes::from(format!("bytes */{size}")));
                return start(416, headers, Bytes::new());
            }
        };
        add(
            b"Content-Length",
            HeadBytes::copy_from_slice(itoa::Buffer::new().format(len).as_bytes()),
        );
        ResponsePart::StartFile {
            head: response_head(code, headers),
            file: FileBody {
                file,
                offset,
                len: Some(len),
            },
        }
    }
}

/// Opens `path` if it is a regular file (stat'ed through the open descriptor, so the answer is
/// about the file that will be sent). Without `follow`, a symlink as the last component is
/// refused (`O_NOFOLLOW`).
fn open_regular(path: &Path, follow: bool) -> Option<(File, std::fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    if !follow {
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let file = options.open(path).ok()?;
    let meta = file.metadata().ok()?;
    meta.is_file().then_some((file, meta))
}

fn status_line(code: u16) -> &'static [u8] {
    match code {
        200 => b"200 OK",
        206 => b"206 Partial Content",
        304 => b"304 Not Modified",
        404 => b"404 Not Found",
        405 => b"405 Method Not Allowed",
        412 => b"412 Precondition Failed",
        416 => b"416 Range Not Satisfiable",
        _ => b"500 Internal Server Error",
    }
}

fn response_head(code: u16, headers: Vec<(HeadBytes, HeadBytes)>) -> ResponseHead {
    ResponseHead {
        code,
        status: HeadBytes::from_static(status_line(code)),
        headers,
    }
}

fn start(code: u16, headers: Vec<(HeadBytes, HeadBytes)>, body: Bytes) -> ResponsePart {
    ResponsePart::Start {
        head: response_head(code, headers),
        first: body,
        end: true,
    }
}

/// A short plain-text answer (`reason` is the body).
fn plain(
    code: u16,
    reason: &'static str,
    extra: &[(&'static [u8], &'static [u8])],
) -> ResponsePart {
    let mut headers = vec![(
        HeadBytes::from_static(b"Content-Type"),
        HeadBytes::from_static(b"text/plain; charset=utf-8"),
    )];
    headers.extend(
        extra
            .iter()
            .map(|(n, v)| (HeadBytes::from_static(n), HeadBytes::from_static(v))),
    );
    start(code, headers, Bytes::from_static(reason.as_bytes()))
}

fn not_found() -> ResponsePart {
    plain(404, "Not Found", &[])
}
