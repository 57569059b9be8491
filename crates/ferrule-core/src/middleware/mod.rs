//! Built-in middleware, in Rust and off the GIL: `X-Request-ID` ([`request_id`]) and response
//! compression ([`compress`], applied by the response filter, `filter`). Static files, which
//! answer before the app, are [`crate::static_files`].
//!
//! The connection driver calls two things per request: [`Middleware::prepare`] on the parsed
//! head (before the access log and the app see it), and [`Filter::wrap`] on the receiver of the
//! app's response parts. With every option off, `prepare` returns the head untouched and
//! `wrap` returns the receiver itself: no task, no copy.

pub mod compress;
mod filter;
pub mod request_id;

use std::sync::Arc;

pub(crate) use filter::Filter;

use crate::config::ServerConfig;
use crate::http1::RequestHead;
use crate::static_files::StaticFiles;

/// The settings of `--compress` as one response's filter reads them.
#[derive(Debug, Clone)]
pub(crate) struct CompressSettings {
    pub(crate) min_size: usize,
    pub(crate) types: Vec<String>,
}

/// The built-in middleware of one serving process, from its config.
#[derive(Debug, Default)]
pub struct Middleware {
    /// `--static` mounts.
    pub(crate) statics: Option<Arc<StaticFiles>>,
    /// `--compress`.
    compress: Option<Arc<CompressSettings>>,
    request_id: bool,
}

impl Middleware {
    pub fn from_config(config: &ServerConfig) -> Middleware {
        Middleware {
            statics: StaticFiles::from_config(config),
            compress: config.compress.then(|| {
                Arc::new(CompressSettings {
                    min_size: config.compress_min_size,
                    types: config.compress_type_list(),
                })
            }),
            request_id: config.request_id,
        }
    }

    /// Applies `X-Request-ID` to the head and returns the response filter of this request.
    pub(crate) fn prepare(&self, head: RequestHead) -> (RequestHead, Filter) {
        let mut filter = Filter::default();
        let head = if self.request_id {
            let (head, id) = request_id::assign(head);
            filter.request_id = Some(id);
            head
        } else {
            head
        };
        // A HEAD response is never compressed (its headers then say what an uncompressed GET
        // would: a small difference RFC 9110 §9.3.2's SHOULD allows for).
        if let Some(settings) = self.compress.as_ref().filter(|_| !head.is_head()) {
            if let Some(&coding) = compress::preferences(head.header(b"accept-encoding")).first() {
                filter.compress = Some((coding, Arc::clone(settings)));
            }
        }
        (head, filter)
    }
}
