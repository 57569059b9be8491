//! Every way a request can be refused, with its one declared outcome. SKELETON: the codec work
//! adds the variants; the driver adds timeouts/limits it detects.

/// What the client is told and whether the connection survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub status: u16,
    /// The reason phrase and the plain-text body.
    pub reason: &'static str,
    /// Close the connection after answering (always true for framing errors).
    pub close: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// Placeholder until the codec defines its variants.
    Malformed(&'static str),
}

impl RequestError {
    /// The declared outcome of this failure.
    pub fn outcome(&self) -> Outcome {
        match self {
            RequestError::Malformed(_) => Outcome { status: 400, reason: "Bad Request", close: true },
        }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Malformed(what) => write!(f, "malformed request: {what}"),
        }
    }
}

impl std::error::Error for RequestError {}
