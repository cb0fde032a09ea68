//! The EST operations (RFC 7030 §4): `/cacerts`, `/simpleenroll`, `/simplereenroll`,
//! `/csrattrs`, each one HTTPS request on a connection of its own, with the TLS configuration
//! the caller made (its trust anchor, and the card key and certificate for client
//! authentication) and optional HTTP basic authentication.

use crate::error::EstError;
use crate::http::{self, Response};
use crate::pkcs7;
use crate::url::EstUrl;
use base64::Engine as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// How long a connection or a read may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP basic credentials (RFC 7030 §3.2.3). The password is kept out of `Debug`.
#[derive(Clone)]
pub struct BasicAuth {
    user: String,
    password: String,
}

impl BasicAuth {
    /// `user` and `password`.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        BasicAuth {
            user: user.into(),
            password: password.into(),
        }
    }

    fn header(&self) -> String {
        let pair = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// An EST server, reached with one TLS configuration.
#[derive(Debug, Clone)]
pub struct EstClient {
    url: EstUrl,
    tls: Arc<ClientConfig>,
    basic: Option<BasicAuth>,
}

impl EstClient {
    /// The server at `url`, over TLS configured by `tls`.
    pub fn new(url: EstUrl, tls: Arc<ClientConfig>) -> Self {
        EstClient {
            url,
            tls,
            basic: None,
        }
    }

    /// Sends HTTP basic credentials with the enrolment requests.
    pub fn with_basic_auth(mut self, basic: Option<BasicAuth>) -> Self {
        self.basic = basic;
        self
    }

    /// The server.
    pub fn url(&self) -> &EstUrl {
        &self.url
    }

    /// The TLS configuration its connections use.
    pub fn tls(&self) -> &Arc<ClientConfig> {
        &self.tls
    }

    /// `GET /cacerts`: the EST CA's certificates (§4.1).
    pub fn cacerts(&self) -> Result<Vec<CertificateDer<'static>>, EstError> {
        let request = "GET /cacerts";
        let response = self.request("GET", "cacerts", &[], b"", false)?;
        let body = expect_ok(request, response, "application/pkcs7-mime")?;
        pkcs7::certificates(&body).map_err(|why| answer(request, why))
    }

    /// `POST /simpleenroll` with a DER PKCS#10 request (§4.2.1): the issued certificate(s).
    /// A request awaiting approval is [`EstError::RetryLater`].
    pub fn simple_enroll(&self, csr: &[u8]) -> Result<Vec<CertificateDer<'static>>, EstError> {
        self.enroll("simpleenroll", csr)
    }

    /// `POST /simplereenroll` (§4.2.2): as [`Self::simple_enroll`], authenticated by the
    /// certificate being renewed.
    pub fn simple_reenroll(&self, csr: &[u8]) -> Result<Vec<CertificateDer<'static>>, EstError> {
        self.enroll("simplereenroll", csr)
    }

    /// `GET /csrattrs` (§4.5): the DER `CsrAttrs` the server wants, or `None` when it has none
    /// (404 or 501, as the RFC allows).
    pub fn csr_attrs(&self) -> Result<Option<Vec<u8>>, EstError> {
        let request = "GET /csrattrs";
        let response = self.request("GET", "csrattrs", &[], b"", false)?;
        if matches!(response.status, 404 | 501) {
            return Ok(None);
        }
        let body = expect_ok(request, response, "application/csrattrs")?;
        pkcs7::decode_base64(&body)
            .map(Some)
            .map_err(|why| answer(request, why))
    }

    fn enroll(
        &self,
        operation: &str,
        csr: &[u8],
    ) -> Result<Vec<CertificateDer<'static>>, EstError> {
        let request = format!("POST /{operation}");
        let body = base64::engine::general_purpose::STANDARD.encode(csr);
        let headers = [
            ("Content-Type", "application/pkcs10"),
            ("Content-Transfer-Encoding", "base64"),
        ];
        let response = self.request("POST", operation, &headers, body.as_bytes(), true)?;
        if response.status == 202 {
            // §4.2.3: Retry-After in seconds (an HTTP date is allowed too: then a minute).
            let after = response
                .header("retry-after")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(60);
            return Err(EstError::RetryLater {
                after: Duration::from_secs(after),
            });
        }
        let body = expect_ok(&request, response, "application/pkcs7-mime")?;
        pkcs7::certificates(&body).map_err(|why| answer(&request, why))
    }

    /// One request on a fresh connection.
    fn request(
        &self,
        method: &str,
        operation: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        authenticate: bool,
    ) -> Result<Response, EstError> {
        let authority = self.url.authority();
        let connect_error = |source| EstError::Connect {
            server: authority.clone(),
            source,
        };
        let address = authority
            .to_socket_addrs()
            .map_err(connect_error)?
            .next()
            .ok_or_else(|| {
                connect_error(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the name resolves to no address",
                ))
            })?;
        let tcp = TcpStream::connect_timeout(&address, TIMEOUT).map_err(connect_error)?;
        tcp.set_read_timeout(Some(TIMEOUT)).map_err(connect_error)?;
        tcp.set_write_timeout(Some(TIMEOUT))
            .map_err(connect_error)?;
        let name = ServerName::try_from(self.url.host.clone()).map_err(|_| EstError::Url {
            url: self.url.to_string(),
            why: "the host is not a DNS name or IP address",
        })?;
        let conn = ClientConnection::new(Arc::clone(&self.tls), name)
            .map_err(|e| EstError::Tls(std::io::Error::other(e)))?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(EstError::Tls)?;
        }
        let auth = self
            .basic
            .as_ref()
            .filter(|_| authenticate)
            .map(BasicAuth::header);
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(auth) = &auth {
            all.push(("Authorization", auth));
        }
        let path = self.url.path(operation);
        tracing::debug!(method, path, "EST request");
        let response =
            http::exchange(&mut stream, method, &authority, &path, &all, body).map_err(|e| {
                // rustls reports TLS failures (an alert refusing the client certificate after a
                // TLS 1.3 handshake, …) as InvalidData too: those are TLS errors, not the answer's.
                let tls = e
                    .get_ref()
                    .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
                match e.kind() {
                    std::io::ErrorKind::InvalidData if !tls => {
                        answer(&format!("{method} /{operation}"), e.to_string())
                    }
                    _ => EstError::Tls(e),
                }
            })?;
        stream.conn.send_close_notify();
        let _ = stream.conn.complete_io(&mut stream.sock);
        if response.status == 401 {
            return Err(EstError::Unauthorized {
                realm: response.header("www-authenticate").map(str::to_owned),
            });
        }
        Ok(response)
    }
}

fn answer(request: &str, why: impl Into<String>) -> EstError {
    EstError::Answer {
        request: request.to_owned(),
        why: why.into(),
    }
}

/// The body of a 200 answer of `content_type` in base64, else the error that says what came.
fn expect_ok(request: &str, response: Response, content_type: &str) -> Result<Vec<u8>, EstError> {
    if response.status != 200 {
        let body = String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
            .trim()
            .to_owned();
        return Err(EstError::Status {
            request: request.to_owned(),
            status: response.status,
            body,
        });
    }
    let got = response.header("content-type").unwrap_or("none");
    if !got.to_ascii_lowercase().starts_with(content_type) {
        return Err(answer(
            request,
            format!("content type {got:?}, not {content_type}"),
        ));
    }
    Ok(response.body)
}
