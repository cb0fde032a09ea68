//! An EST server (RFC 7030) on loopback, for the tests of the EST client. A **test fixture, not a
//! product**: one connection at a time on a background thread, blocking I/O, a CA made at start,
//! every issued certificate kept for the test to inspect. Small on purpose.
//!
//! - TLS: rustls with the ring provider, TLS 1.3, TLS 1.2 or both ([`TlsVersions`]); the server
//!   certificate is for `localhost` and `127.0.0.1`, issued by the CA ([`EstServer::ca_der`]).
//!   Client certificates are optional and verified against [`EstConfig::client_roots`] (plus the
//!   EST CA itself with [`EstConfig::trust_own_ca`]).
//! - Paths: `/.well-known/est/{cacerts,simpleenroll,simplereenroll,csrattrs}`, also under one
//!   label segment (`/.well-known/est/<label>/cacerts`, any label); anything else is 404, a wrong
//!   method 405 (`cacerts` and `csrattrs` are GET, the enrolments POST).
//! - Requests: `Content-Length` bodies only (at most 64 KiB, headers too). An enrolment body is
//!   the base64 of a DER PKCS#10 CSR (`application/pkcs10`); whitespace in it is ignored. A CSR
//!   that does not parse or whose signature is wrong is 400.
//! - Answers: always `Content-Length` and `Connection: close`, then a TLS close_notify. The
//!   certificates (`cacerts`: the CA; enrolments: the issued certificate, then the CA with
//!   [`EstConfig::include_ca_in_enroll`]) come as a certs-only CMS SignedData
//!   ([`pkcs7_certs_only`]), base64 with CRLF every 76 characters, `Content-Type:
//!   application/pkcs7-mime` (`; smime-type=certs-only` for enrolments) and
//!   `Content-Transfer-Encoding: base64`. `csrattrs` is 404 unless [`EstConfig::csrattrs`] is set.
//! - Authentication (401 with `WWW-Authenticate: Basic realm="est"` when missing or wrong):
//!   `cacerts` and `csrattrs` need none; `simpleenroll` follows [`EstConfig::require_basic`] and
//!   [`EstConfig::accept_client_cert`]; `simplereenroll` needs a verified client certificate, and
//!   the CSR's subject must be the certificate's (byte for byte; the key may be new), else 400.
//! - Manual approval: the first [`EstConfig::pending_first`] authorised, well-formed enrolments
//!   are answered `202 Accepted` with `Retry-After`, and nothing is issued.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{
    CertificateDer, CertificateSigningRequestDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;

/// The most a request's head, or its body, may be.
const MAX_SIZE: usize = 64 * 1024;
/// Read and write timeout of a connection: a silent client cannot hold the server longer.
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// The TLS versions the server accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersions {
    /// TLS 1.3 only.
    Tls13,
    /// TLS 1.2 only.
    Tls12,
    /// TLS 1.3 and TLS 1.2.
    Both,
}

/// What the server does; [`Default`] gives the values named on each field.
#[derive(Debug)]
pub struct EstConfig {
    /// TLS versions (default [`TlsVersions::Both`]).
    pub tls: TlsVersions,
    /// The CA certificate and its PKCS#8 key (see [`new_ca`], [`EstServer::ca_key`]), to keep one
    /// CA across servers; `None` (default): a new P-256 CA `EST test CA`.
    pub ca: Option<(CertificateDer<'static>, PrivatePkcs8KeyDer<'static>)>,
    /// Trust anchors for client certificates, e.g. the SIM's bootstrap CA (default none).
    pub client_roots: Vec<CertificateDer<'static>>,
    /// Also accept client certificates issued by the EST CA, for re-enrolment (default `true`).
    pub trust_own_ca: bool,
    /// HTTP basic credentials (user, password) (default `estuser` / `estpwd`); `None`: none match.
    pub basic: Option<(String, String)>,
    /// `simpleenroll` needs matching basic credentials, also with a client certificate (default
    /// `false`). With `accept_client_cert` too, it needs both.
    pub require_basic: bool,
    /// A verified client certificate authorises `simpleenroll` (default `true`). Without
    /// `require_basic`: basic credentials or a client certificate are enough.
    pub accept_client_cert: bool,
    /// Validity of issued certificates, from an hour ago (default 30 days).
    pub validity_days: u32,
    /// How many enrolments are answered 202 before certificates are issued (default 0).
    pub pending_first: u32,
    /// The `Retry-After` of a 202, in seconds (default 1).
    pub retry_after_secs: u32,
    /// Enrolment answers hold the CA after the issued certificate (default `false`).
    pub include_ca_in_enroll: bool,
    /// Issue certificates for a fresh key instead of the CSR's: a misbehaving CA, for the
    /// client's checks (default `false`).
    pub misissue: bool,
    /// The DER `CsrAttrs` SEQUENCE `csrattrs` answers (see [`csrattrs_der`]); `None` (default):
    /// 404.
    pub csrattrs: Option<Vec<u8>>,
}

impl Default for EstConfig {
    fn default() -> Self {
        EstConfig {
            tls: TlsVersions::Both,
            ca: None,
            client_roots: Vec::new(),
            trust_own_ca: true,
            basic: Some(("estuser".into(), "estpwd".into())),
            require_basic: false,
            accept_client_cert: true,
            validity_days: 30,
            pending_first: 0,
            retry_after_secs: 1,
            include_ca_in_enroll: false,
            misissue: false,
            csrattrs: None,
        }
    }
}

/// Requests received per endpoint (whatever their answer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// `cacerts`.
    pub cacerts: u32,
    /// `simpleenroll`.
    pub simpleenroll: u32,
    /// `simplereenroll`.
    pub simplereenroll: u32,
    /// `csrattrs`.
    pub csrattrs: u32,
    /// Any other path.
    pub other: u32,
}

/// What the server thread records for the test.
#[derive(Default)]
struct Record {
    issued: Vec<CertificateDer<'static>>,
    counts: RequestCounts,
    log: Vec<String>,
    pending_left: u32,
}

/// What the server thread needs.
struct Ctx {
    cfg: EstConfig,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    record: Arc<Mutex<Record>>,
}

/// The running server; stops when dropped.
pub struct EstServer {
    addr: SocketAddr,
    ca_der: CertificateDer<'static>,
    ca_key: PrivatePkcs8KeyDer<'static>,
    record: Arc<Mutex<Record>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EstServer {
    /// Starts a server on `127.0.0.1` (a free port). Panics if the setup fails.
    pub fn start(mut config: EstConfig) -> EstServer {
        let (ca_der, ca_key) = config.ca.take().unwrap_or_else(|| new_ca("EST test CA"));
        let signing_key = KeyPair::try_from(&ca_key).expect("CA key");
        let issuer = Issuer::from_ca_cert_der(&ca_der, signing_key).expect("CA certificate");
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server names");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = validity(30);
        let server_cert = params.signed_by(&key, &issuer).expect("server certificate");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        let own = config.trust_own_ca.then_some(&ca_der);
        for root in config.client_roots.iter().chain(own) {
            roots.add(root.clone()).expect("client trust anchor");
        }
        let verifier = if roots.is_empty() {
            WebPkiClientVerifier::no_client_auth()
        } else {
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .allow_unauthenticated()
                .build()
                .expect("client verifier")
        };
        let versions: &[&rustls::SupportedProtocolVersion] = match config.tls {
            TlsVersions::Tls13 => &[&rustls::version::TLS13],
            TlsVersions::Tls12 => &[&rustls::version::TLS12],
            TlsVersions::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
        };
        let mut tls = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![server_cert.der().clone()],
                PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server certificate and key");
        tls.send_tls13_tickets = 0;
        let tls = Arc::new(tls);

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let record = Arc::new(Mutex::new(Record {
            pending_left: config.pending_first,
            ..Record::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = Ctx {
            cfg: config,
            ca_der: ca_der.clone(),
            issuer,
            record: Arc::clone(&record),
        };
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for tcp in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(tcp) = tcp {
                    serve(tcp, &tls, &ctx);
                }
            }
        });
        EstServer {
            addr,
            ca_der,
            ca_key,
            record,
            stop,
            thread: Some(thread),
        }
    }

    /// The address it listens on (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://localhost:<port>/.well-known/est`, the base of the EST paths.
    pub fn base_url(&self) -> String {
        format!("https://localhost:{}/.well-known/est", self.addr.port())
    }

    /// The CA certificate (DER).
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca_der.clone()
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> String {
        let body = base64_lines(&self.ca_der, 64, "\n");
        format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
    }

    /// SHA-256 over the CA certificate's DER, lowercase hex.
    pub fn ca_fingerprint_sha256(&self) -> String {
        Sha256::digest(&self.ca_der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The CA's PKCS#8 key, to start another server on the same CA ([`EstConfig::ca`]).
    pub fn ca_key(&self) -> PrivatePkcs8KeyDer<'static> {
        self.ca_key.clone_key()
    }

    /// Every certificate issued so far (DER), oldest first.
    pub fn issued(&self) -> Vec<CertificateDer<'static>> {
        iotsafe_core::lock::lock(&self.record).issued.clone()
    }

    /// Requests received per endpoint.
    pub fn requests(&self) -> RequestCounts {
        iotsafe_core::lock::lock(&self.record).counts
    }

    /// One line per answered request: `METHOD path -> status`.
    pub fn log(&self) -> Vec<String> {
        iotsafe_core::lock::lock(&self.record).log.clone()
    }
}

impl Drop for EstServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A new self-signed P-256 CA named `common_name`, valid from an hour ago for ten years: its
/// certificate and PKCS#8 key.
pub fn new_ca(common_name: &str) -> (CertificateDer<'static>, PrivatePkcs8KeyDer<'static>) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (params.not_before, params.not_after) = validity(3650);
    let cert = params.self_signed(&key).expect("CA certificate");
    (cert.der().clone(), key.serialize_der().into())
}

/// A certs-only CMS SignedData (RFC 5652, no signers, as RFC 7030 §4.1.3 answers) holding
/// `certs` in the given order, DER.
pub fn pkcs7_certs_only(certs: &[CertificateDer<'_>]) -> Vec<u8> {
    const ID_SIGNED_DATA: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
    const ID_DATA: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
    let certs: Vec<u8> = certs.iter().flat_map(|c| c.iter().copied()).collect();
    let signed_data = [
        der(0x02, &[1]),                 // version
        der(0x31, &[]),                  // digestAlgorithms
        der(0x30, &der(0x06, &ID_DATA)), // encapContentInfo
        der(0xa0, &certs),               // certificates [0] IMPLICIT
        der(0x31, &[]),                  // signerInfos
    ]
    .concat();
    let explicit = der(0xa0, &der(0x30, &signed_data));
    der(0x30, &[der(0x06, &ID_SIGNED_DATA), explicit].concat())
}

/// A DER `CsrAttrs` (RFC 7030 §4.5.2) listing the OIDs `oids` (arcs), for [`EstConfig::csrattrs`].
pub fn csrattrs_der(oids: &[&[u64]]) -> Vec<u8> {
    let mut seq = Vec::new();
    for arcs in oids {
        let first = arcs.first().unwrap_or(&0) * 40 + arcs.get(1).unwrap_or(&0);
        let mut body = Vec::new();
        for &arc in std::iter::once(&first).chain(arcs.iter().skip(2)) {
            let mut base128 = vec![(arc & 0x7f) as u8];
            let mut rest = arc >> 7;
            while rest > 0 {
                base128.push(0x80 | (rest & 0x7f) as u8);
                rest >>= 7;
            }
            body.extend(base128.iter().rev());
        }
        seq.extend(der(0x06, &body));
    }
    der(0x30, &seq)
}

/// One DER element: `tag`, definite length, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len().to_be_bytes();
    let skip = len.iter().take_while(|b| **b == 0).count();
    if content.len() < 0x80 {
        out.push(content.len() as u8);
    } else {
        out.push(0x80 | (len.len() - skip) as u8);
        out.extend_from_slice(&len[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Base64 of `data` in lines of `width` characters separated by `sep`.
fn base64_lines(data: &[u8], width: usize, sep: &str) -> String {
    let text = B64.encode(data);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(width)
        .filter_map(|l| std::str::from_utf8(l).ok())
        .collect();
    lines.join(sep)
}

/// From an hour ago to `days` days from now.
fn validity(days: u32) -> (OffsetDateTime, OffsetDateTime) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let now = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(now);
    (
        now - time::Duration::hours(1),
        now + time::Duration::days(i64::from(days)),
    )
}

/// A request as read: method, path, headers (names in lowercase), body.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        let mut found = self.headers.iter().filter(|(n, _)| n == name);
        found.next().map(|(_, v)| v.as_str())
    }
}

/// An answer: status, extra headers, body.
struct Response(u16, Vec<(&'static str, String)>, Vec<u8>);

fn status(code: u16) -> Response {
    Response(code, Vec::new(), Vec::new())
}

/// Serves one connection: one request, one answer, close.
fn serve(tcp: TcpStream, tls: &Arc<ServerConfig>, ctx: &Ctx) {
    let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
    let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(conn) = ServerConnection::new(Arc::clone(tls)) else {
        return;
    };
    let mut stream = StreamOwned::new(conn, tcp);
    let (line, response) = match read_request(&mut stream) {
        Ok(req) => {
            let peer = stream.conn.peer_certificates().and_then(|c| c.first());
            let response = respond(ctx, &req, peer);
            (format!("{} {}", req.method, req.path), response)
        }
        Err(Some(code)) => ("(unreadable request)".to_owned(), status(code)),
        Err(None) => return,
    };
    iotsafe_core::lock::lock(&ctx.record)
        .log
        .push(format!("{line} -> {}", response.0));
    let Response(code, headers, body) = response;
    let reason = match code {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        _ => "Internal Server Error",
    };
    let mut head = format!("HTTP/1.1 {code} {reason}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
    stream.conn.send_close_notify();
    let _ = stream.flush();
}

/// Reads one request. `Err(Some(status))`: answer that; `Err(None)`: the connection failed.
fn read_request(stream: &mut impl Read) -> Result<Request, Option<u16>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (mut req, head_len) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let headers = parsed.headers.iter().map(|h| {
                    let value = String::from_utf8_lossy(h.value).trim().to_owned();
                    (h.name.to_ascii_lowercase(), value)
                });
                let req = Request {
                    method: parsed.method.unwrap_or_default().to_owned(),
                    path: parsed.path.unwrap_or_default().to_owned(),
                    headers: headers.collect(),
                    body: Vec::new(),
                };
                break (req, len);
            }
            Ok(httparse::Status::Partial) if buf.len() <= MAX_SIZE => {}
            Ok(httparse::Status::Partial) => return Err(Some(413)),
            Err(_) => return Err(Some(400)),
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    if req.header("transfer-encoding").is_some() {
        return Err(Some(400));
    }
    let len = match req.header("content-length").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(len)) if len <= MAX_SIZE => len,
        Some(Ok(_)) => return Err(Some(413)),
        Some(Err(_)) => return Err(Some(400)),
    };
    req.body = buf.split_off(head_len);
    while req.body.len() < len {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(None),
            Ok(n) => req.body.extend_from_slice(&chunk[..n]),
        }
    }
    req.body.truncate(len);
    Ok(req)
}

/// The answer to `req`; `peer` is the verified client certificate, if any.
fn respond(ctx: &Ctx, req: &Request, peer: Option<&CertificateDer<'_>>) -> Response {
    let path = req.path.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = match path.strip_prefix("/.well-known/est/") {
        Some(rest) => rest.split('/').collect(),
        None => Vec::new(),
    };
    let op = match segments.as_slice() {
        [op] | [_, op] => *op,
        _ => "",
    };
    let mut record = iotsafe_core::lock::lock(&ctx.record);
    let (count, method) = match op {
        "cacerts" => (&mut record.counts.cacerts, "GET"),
        "csrattrs" => (&mut record.counts.csrattrs, "GET"),
        "simpleenroll" => (&mut record.counts.simpleenroll, "POST"),
        "simplereenroll" => (&mut record.counts.simplereenroll, "POST"),
        _ => {
            record.counts.other += 1;
            return status(404);
        }
    };
    *count += 1;
    drop(record);
    if req.method != method {
        return Response(405, vec![("Allow", method.to_owned())], Vec::new());
    }
    match op {
        "cacerts" => {
            let pkcs7 = pkcs7_certs_only(std::slice::from_ref(&ctx.ca_der));
            base64_response("application/pkcs7-mime", &pkcs7)
        }
        "csrattrs" => match &ctx.cfg.csrattrs {
            Some(attrs) => base64_response("application/csrattrs", attrs),
            None => status(404),
        },
        _ => enroll(ctx, req, peer, op == "simplereenroll"),
    }
}

/// `simpleenroll` (`re` false) or `simplereenroll`.
fn enroll(ctx: &Ctx, req: &Request, peer: Option<&CertificateDer<'_>>, re: bool) -> Response {
    let cfg = &ctx.cfg;
    let basic_ok = cfg.basic.as_ref().is_some_and(|(user, password)| {
        let given = req.header("authorization").and_then(|v| v.split_once(' '));
        given.is_some_and(|(scheme, creds)| {
            scheme.eq_ignore_ascii_case("basic")
                && B64.decode(creds.trim()).ok() == Some(format!("{user}:{password}").into_bytes())
        })
    });
    let cert_ok = peer.is_some() && cfg.accept_client_cert;
    let authorised = match (re, cfg.require_basic) {
        (true, _) => peer.is_some(),
        (false, true) => basic_ok && (cert_ok || !cfg.accept_client_cert),
        (false, false) => basic_ok || cert_ok,
    };
    if !authorised {
        let challenge = ("WWW-Authenticate", "Basic realm=\"est\"".to_owned());
        return Response(401, vec![challenge], Vec::new());
    }
    let pkcs10 = req
        .header("content-type")
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/pkcs10"));
    let text: Vec<u8> = req
        .body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let Some(der) = B64.decode(text).ok().filter(|_| pkcs10) else {
        return status(400);
    };
    // rcgen verifies the CSR's signature; it also panics on a few malformed names.
    let parsed = std::panic::catch_unwind(|| {
        CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(&der[..]))
    });
    let Ok(Ok(mut csr)) = parsed else {
        return status(400);
    };
    if re && !peer.is_some_and(|cert| same_subject(cert, &der)) {
        return status(400);
    }
    {
        let mut record = iotsafe_core::lock::lock(&ctx.record);
        if record.pending_left > 0 {
            record.pending_left -= 1;
            return Response(
                202,
                vec![("Retry-After", cfg.retry_after_secs.to_string())],
                Vec::new(),
            );
        }
    }
    let mut serial = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut serial);
    serial[0] = (serial[0] & 0x7f) | 0x40; // positive, 16 bytes
    let params = &mut csr.params;
    (params.not_before, params.not_after) = validity(cfg.validity_days);
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = if cfg.misissue {
        let Ok(other) = rcgen::KeyPair::generate() else {
            return status(500);
        };
        csr.params.signed_by(&other, &ctx.issuer)
    } else {
        csr.signed_by(&ctx.issuer)
    };
    let Ok(cert) = cert else {
        return status(500);
    };
    let issued = cert.der().clone();
    iotsafe_core::lock::lock(&ctx.record)
        .issued
        .push(issued.clone());
    let mut certs = vec![issued];
    if cfg.include_ca_in_enroll {
        certs.push(ctx.ca_der.clone());
    }
    let pkcs7 = pkcs7_certs_only(&certs);
    base64_response("application/pkcs7-mime; smime-type=certs-only", &pkcs7)
}

/// Whether the CSR `csr` (DER) names the subject of `cert`, byte for byte.
fn same_subject(cert: &[u8], csr: &[u8]) -> bool {
    use x509_parser::prelude::FromDer;
    let cert = x509_parser::parse_x509_certificate(cert);
    let csr = x509_parser::certification_request::X509CertificationRequest::from_der(csr);
    match (cert, csr) {
        (Ok((_, cert)), Ok((_, csr))) => {
            cert.subject().as_raw() == csr.certification_request_info.subject.as_raw()
        }
        _ => false,
    }
}

/// 200 with `der` in base64 as `content_type`.
fn base64_response(content_type: &str, der: &[u8]) -> Response {
    let headers = vec![
        ("Content-Type", content_type.to_owned()),
        ("Content-Transfer-Encoding", "base64".to_owned()),
    ];
    Response(200, headers, base64_lines(der, 76, "\r\n").into_bytes())
}
