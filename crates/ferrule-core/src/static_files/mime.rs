//! `Content-Type` by file extension: a built-in table of common web types (no system
//! `mime.types`, so a response does not change with the host). Text types carry
//! `charset=utf-8` (RFC 9110 §8.3.2: without it a client may guess; UTF-8 is what a static web
//! directory holds today). Unknown extensions are `application/octet-stream` (RFC 9110 §8.3:
//! "a recipient ... MAY ... treat it as application/octet-stream"), which browsers download
//! rather than render: the safe default for files of unknown kind.

/// The type of the file named `name` (its last extension, case-insensitive).
pub(crate) fn content_type(name: &[u8]) -> &'static str {
    let ext = match name.iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 => &name[i + 1..],
        _ => return DEFAULT,
    };
    if ext.len() > 12 {
        return DEFAULT;
    }
    let ext = ext.to_ascii_lowercase();
    TABLE
        .iter()
        .find(|(e, _)| e.as_bytes() == ext.as_slice())
        .map_or(DEFAULT, |(_, t)| t)
}

const DEFAULT: &str = "application/octet-stream";

const TABLE: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("txt", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("xml", "text/xml; charset=utf-8"),
    ("ics", "text/calendar; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("webmanifest", "application/manifest+json"),
    ("jsonld", "application/ld+json"),
    ("rss", "application/rss+xml"),
    ("atom", "application/atom+xml"),
    ("xhtml", "application/xhtml+xml"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("br", "application/x-brotli"),
    ("tar", "application/x-tar"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/vnd.microsoft.icon"),
    ("bmp", "image/bmp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("wav", "audio/wav"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        assert_eq!(content_type(b"index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type(b"APP.JS"), "text/javascript; charset=utf-8");
        assert_eq!(content_type(b"a.b.css"), "text/css; charset=utf-8");
        assert_eq!(content_type(b"data.json"), "application/json");
        assert_eq!(content_type(b"logo.svg"), "image/svg+xml");
        assert_eq!(content_type(b"x.woff2"), "font/woff2");
        assert_eq!(content_type(b"archive.tar.gz"), "application/gzip");
        assert_eq!(content_type(b"README"), DEFAULT);
        assert_eq!(content_type(b".bashrc"), DEFAULT);
        assert_eq!(content_type(b"x.unknownext"), DEFAULT);
        assert_eq!(content_type(b"x.\xff"), DEFAULT);
    }
}
