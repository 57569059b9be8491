//! ferrule's serving core: configuration types, the HTTP/1 codec, connections and the hand-off
//! to application threads. This crate never links Python; `ferrule-py` is the only bridge.

pub mod cidr;
pub mod clock;
pub mod config;
pub mod environ;
pub mod exchange;
pub mod forwarded;
pub mod head_bytes;
pub mod http1;
pub mod log;
pub mod metrics;
pub mod middleware;
pub mod parsed;
pub mod proxy_protocol;
pub mod server;
pub mod short_bytes;
pub mod static_files;
pub mod supervise;
pub mod uwsgi;
