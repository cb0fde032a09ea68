//! What can go wrong in an enrolment, each saying what the operator can do about it.

use std::time::Duration;

/// Why an EST request or an enrolment failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EstError {
    /// The server URL is not `https://HOST[:PORT][/.well-known/est[/LABEL]]`.
    #[error("EST server URL {url:?}: {why}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// No connection to the server (refused, unreachable, timed out).
    #[error("connecting to the EST server {server}: {source}")]
    Connect {
        /// `HOST:PORT`.
        server: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS connection failed: the server's certificate does not verify against the trust
    /// anchor, the server refused the client certificate, a card operation failed, …
    #[error("TLS with the EST server: {0} (is --ca the EST server's CA? is the client certificate one it accepts?)")]
    Tls(#[source] std::io::Error),
    /// The server asked for credentials, or refused the ones given (HTTP 401).
    #[error("the EST server refused the credentials (HTTP 401{}): give --user and the password (--password-file or IOTSAFE_EST_PASSWORD), or a client certificate it accepts", .realm.as_deref().map(|r| format!(", {r}")).unwrap_or_default())]
    Unauthorized {
        /// The `WWW-Authenticate` challenge, if any.
        realm: Option<String>,
    },
    /// The request awaits manual approval (HTTP 202): ask again after this long.
    #[error("the EST server accepted the request for manual approval: retry in {} s (or run with --wait)", .after.as_secs())]
    RetryLater {
        /// The server's `Retry-After`.
        after: Duration,
    },
    /// Any other HTTP status.
    #[error("the EST server answered HTTP {status} to {request}: {body}")]
    Status {
        /// `GET /cacerts`, `POST /simpleenroll`, …
        request: String,
        /// The status code.
        status: u16,
        /// The start of the answer's body, as text.
        body: String,
    },
    /// The answer is not what RFC 7030 says it is.
    #[error("the EST server's answer to {request}: {why}")]
    Answer {
        /// `GET /cacerts`, `POST /simpleenroll`, …
        request: String,
        /// What is wrong with it.
        why: String,
    },
    /// The issued certificate is not for the card key, or does not chain to the EST CA.
    #[error("the issued certificate is refused: {0}")]
    Refused(String),
    /// The EST CA is not the one the operator expects.
    #[error("the EST CA's SHA-256 fingerprint is {got}, not the expected {expected}: the CA changed, or this is not your EST server")]
    CaChanged {
        /// What the operator gave.
        expected: String,
        /// What the server's CA hashes to.
        got: String,
    },
    /// The card (CSR signature, key) or the TLS configuration around it.
    #[error(transparent)]
    Card(#[from] iotsafe_rustls::Error),
    /// A certificate could not be read or parsed.
    #[error("certificate: {0}")]
    Certificate(String),
    /// Writing the enrolled chain.
    #[error("writing {path}: {source}")]
    Store {
        /// The file.
        path: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}
