//! Every way a request can be refused, with its one declared outcome.
//!
//! [`RequestError::outcome`] is the single table mapping a failure to the status, reason phrase
//! (also the plain-text body) and whether the connection closes. Every failure the codec detects
//! closes the connection: after a framing or syntax error the rest of the buffered bytes cannot be
//! trusted (RFC 9112 §6.3: "the server MUST respond with the 400 (Bad Request) status code and then
//! close the connection"), so no pipelined request after it is ever parsed.
//! The driver uses [`RequestError::BodyTooLarge`], [`RequestError::HeaderTimeout`] and
//! [`RequestError::BodyTimeout`] for the limits it enforces itself, and the overload refusals
//! ([`RequestError::ConnectionLimit`], [`RequestError::QueueFull`],
//! [`RequestError::QueueTimeout`]): `503 Service Unavailable` with `Retry-After`
//! (RFC 9110 §15.6.4: "The server MAY send a Retry-After header field to suggest an appropriate
//! amount of time for the client to wait before retrying the request"), the app never runs.
//! [`RequestError::AppTimeout`] is the request timeout (`timeout`): the app ran and produced
//! no response head in time, so the server answers in its place, `504 Gateway Timeout`
//! (RFC 9110 §15.6.5: "did not receive a timely response from an upstream server it needed
//! to access in order to complete the request": here the upstream is the application).

/// What the client is told and whether the connection survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub status: u16,
    /// The reason phrase and the plain-text body.
    pub reason: &'static str,
    /// Close the connection after answering (always true for framing errors).
    pub close: bool,
    /// Seconds sent in a `Retry-After` header (overload refusals), `None` = no header.
    pub retry_after: Option<u32>,
}

/// `Retry-After` seconds sent with every overload `503`: short, because overload is usually a
/// burst and the client is better served retrying soon (or elsewhere, behind a balancer).
pub const RETRY_AFTER_SECS: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// Syntax error in the request line or a header field (bare CR/LF, obs-fold, bad token,
    /// control character, bad target, garbage version...). The text names the rule broken. → 400.
    Malformed(&'static str),
    /// The message framing is ambiguous or invalid (Transfer-Encoding with Content-Length, a
    /// repeated or non-numeric Content-Length, Transfer-Encoding on HTTP/1.0, chunked not final,
    /// a bad chunk-size line or trailer). → 400.
    InvalidFraming(&'static str),
    /// Host missing on HTTP/1.1, repeated, or not a valid `uri-host [ ":" port ]`. → 400.
    InvalidHost(&'static str),
    /// The request line is longer than `limit_request_line`. → 414.
    RequestLineTooLong,
    /// More header fields than `limit_request_fields` (or trailer fields than allowed). → 431.
    TooManyFields,
    /// One header field line is longer than `limit_request_field_size`. → 431.
    FieldTooLarge,
    /// The whole head (or trailer section) is larger than its limit. → 431.
    HeadTooLarge,
    /// A transfer coding other than `chunked` was applied before `chunked`
    /// (RFC 9112 §6.1: "SHOULD respond with the 501 (Not Implemented) status code"). → 501.
    UnsupportedTransferCoding,
    /// A method this server cannot serve through WSGI (CONNECT: no tunnels). → 501.
    MethodNotImplemented,
    /// A well-formed `HTTP/x.y` other than 1.0 and 1.1. → 505.
    UnsupportedVersion,
    /// An `Expect` value other than `100-continue` on HTTP/1.1 (RFC 9110 §10.1.1). → 417.
    ExpectationFailed,
    /// The body is larger than `limit_request_body` (detected by the driver). → 413.
    BodyTooLarge,
    /// The head did not arrive within `header_timeout` (detected by the driver). → 408.
    HeaderTimeout,
    /// The body stopped making progress within `body_timeout` (detected by the driver). → 408.
    BodyTimeout,
    /// `worker_connections` connections are open and `overload_503` is set. → 503 + Retry-After.
    ConnectionLimit,
    /// `max_queued_requests` requests already wait for an application thread. → 503 + Retry-After.
    QueueFull,
    /// The request waited longer than `queue_timeout` for an application thread. → 503 +
    /// Retry-After.
    QueueTimeout,
    /// The application did not produce the response head within `timeout` of an application
    /// thread taking the request (detected by the binding's watchdog, which sends it as
    /// `ResponsePart::Refused`). → 504.
    AppTimeout,
}

impl RequestError {
    /// The declared outcome of this failure.
    pub fn outcome(&self) -> Outcome {
        let (status, reason) = match self {
            RequestError::Malformed(_)
            | RequestError::InvalidFraming(_)
            | RequestError::InvalidHost(_) => (400, "Bad Request"),
            RequestError::RequestLineTooLong => (414, "URI Too Long"),
            RequestError::TooManyFields
            | RequestError::FieldTooLarge
            | RequestError::HeadTooLarge => (431, "Request Header Fields Too Large"),
            RequestError::UnsupportedTransferCoding | RequestError::MethodNotImplemented => {
                (501, "Not Implemented")
            }
            RequestError::UnsupportedVersion => (505, "HTTP Version Not Supported"),
            RequestError::ExpectationFailed => (417, "Expectation Failed"),
            RequestError::BodyTooLarge => (413, "Content Too Large"),
            RequestError::HeaderTimeout | RequestError::BodyTimeout => (408, "Request Timeout"),
            RequestError::ConnectionLimit
            | RequestError::QueueFull
            | RequestError::QueueTimeout => (503, "Service Unavailable"),
            RequestError::AppTimeout => (504, "Gateway Timeout"),
        };
        Outcome {
            status,
            reason,
            close: true,
            retry_after: self.is_overload().then_some(RETRY_AFTER_SECS),
        }
    }

    /// The server refused the request for lack of capacity (503), not for anything in it.
    pub fn is_overload(&self) -> bool {
        matches!(
            self,
            RequestError::ConnectionLimit | RequestError::QueueFull | RequestError::QueueTimeout
        )
    }

    /// Shorthand for `self.outcome().status`.
    pub fn status(&self) -> u16 {
        self.outcome().status
    }

    /// A limit was exceeded (414, 431, 413), as opposed to a syntax or framing error.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            RequestError::RequestLineTooLong
                | RequestError::TooManyFields
                | RequestError::FieldTooLarge
                | RequestError::HeadTooLarge
                | RequestError::BodyTooLarge
        )
    }

    /// A timeout detected by the driver (408).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            RequestError::HeaderTimeout | RequestError::BodyTimeout
        )
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Malformed(what) => write!(f, "malformed request: {what}"),
            RequestError::InvalidFraming(what) => write!(f, "invalid message framing: {what}"),
            RequestError::InvalidHost(what) => write!(f, "invalid Host: {what}"),
            RequestError::RequestLineTooLong => f.write_str("request line too long"),
            RequestError::TooManyFields => f.write_str("too many header fields"),
            RequestError::FieldTooLarge => f.write_str("header field too large"),
            RequestError::HeadTooLarge => f.write_str("request head too large"),
            RequestError::UnsupportedTransferCoding => f.write_str("unsupported transfer coding"),
            RequestError::MethodNotImplemented => f.write_str("method not implemented"),
            RequestError::UnsupportedVersion => f.write_str("unsupported HTTP version"),
            RequestError::ExpectationFailed => f.write_str("unsupported expectation"),
            RequestError::BodyTooLarge => f.write_str("request body too large"),
            RequestError::HeaderTimeout => f.write_str("timed out reading the request head"),
            RequestError::BodyTimeout => f.write_str("timed out reading the request body"),
            RequestError::ConnectionLimit => f.write_str("connection limit reached"),
            RequestError::QueueFull => f.write_str("too many requests waiting for a thread"),
            RequestError::QueueTimeout => f.write_str("waited too long for a thread"),
            RequestError::AppTimeout => f.write_str("the application did not answer in time"),
        }
    }
}

impl std::error::Error for RequestError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_table() {
        let cases: &[(RequestError, u16)] = &[
            (RequestError::Malformed("x"), 400),
            (RequestError::InvalidFraming("x"), 400),
            (RequestError::InvalidHost("x"), 400),
            (RequestError::RequestLineTooLong, 414),
            (RequestError::TooManyFields, 431),
            (RequestError::FieldTooLarge, 431),
            (RequestError::HeadTooLarge, 431),
            (RequestError::UnsupportedTransferCoding, 501),
            (RequestError::MethodNotImplemented, 501),
            (RequestError::UnsupportedVersion, 505),
            (RequestError::ExpectationFailed, 417),
            (RequestError::BodyTooLarge, 413),
            (RequestError::HeaderTimeout, 408),
            (RequestError::BodyTimeout, 408),
            (RequestError::ConnectionLimit, 503),
            (RequestError::QueueFull, 503),
            (RequestError::QueueTimeout, 503),
            (RequestError::AppTimeout, 504),
        ];
        for (err, status) in cases {
            let out = err.outcome();
            assert_eq!(out.status, *status, "{err:?}");
            assert!(out.close, "{err:?} must close");
            assert!(!out.reason.is_empty());
            assert!(!err.to_string().is_empty());
            assert_eq!(out.retry_after.is_some(), out.status == 503, "{err:?}");
        }
        assert!(RequestError::BodyTooLarge.is_limit());
        assert!(!RequestError::Malformed("x").is_limit());
        assert!(RequestError::HeaderTimeout.is_timeout());
    }
}
