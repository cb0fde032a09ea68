//! The EST test server fixture (`iotsafe_tests::est_server`) seen from a plain rustls client
//! (ring) with a software P-256 key: the answers' shape (certs-only PKCS#7, walked here by hand),
//! the authentication rules, manual approval and the 4xx answers. In process, no services.
#![forbid(unsafe_code)]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use iotsafe_tests::est_server::{csrattrs_der, EstConfig, EstServer, RequestCounts, TlsVersions};
use rcgen::{CertificateParams, DnType, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{version::TLS12, version::TLS13, SupportedProtocolVersion};
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

static BOTH: &[&SupportedProtocolVersion] = &[&TLS13, &TLS12];
const ENROLL: &str = "/.well-known/est/simpleenroll";
const REENROLL: &str = "/.well-known/est/simplereenroll";

/// An answer: negotiated TLS version, status, headers, body.
struct Reply {
    version: ProtocolVersion,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        found.next().map(|(_, v)| v.as_str())
    }

    /// The certificates of a base64 certs-only PKCS#7 body.
    fn certs(&self) -> Vec<Vec<u8>> {
        assert_eq!(self.header("Content-Transfer-Encoding"), Some("base64"));
        let text: Vec<u8> = self
            .body
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        pkcs7_certs(&B64.decode(text).expect("base64 body"))
    }
}

/// Tag, content and what follows of the DER element at the start of `data`.
fn tlv(data: &[u8]) -> (u8, &[u8], &[u8]) {
    let (len, start) = match data[1] {
        n if n < 0x80 => (usize::from(n), 2),
        n => {
            let n = usize::from(n & 0x7f);
            let len = data[2..2 + n]
                .iter()
                .fold(0, |a, b| (a << 8) | usize::from(*b));
            (len, 2 + n)
        }
    };
    (data[0], &data[start..start + len], &data[start + len..])
}

/// The certificates of a certs-only SignedData, checking every other field of it.
fn pkcs7_certs(der: &[u8]) -> Vec<Vec<u8>> {
    let (0x30, content_info, []) = tlv(der) else {
        panic!("ContentInfo")
    };
    let (0x06, oid, rest) = tlv(content_info) else {
        panic!("contentType")
    };
    assert_eq!(
        oid,
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02],
        "id-signedData"
    );
    let (0xa0, explicit, []) = tlv(rest) else {
        panic!("[0] content")
    };
    let (0x30, signed_data, []) = tlv(explicit) else {
        panic!("SignedData")
    };
    let (0x02, [1], rest) = tlv(signed_data) else {
        panic!("version 1")
    };
    let (0x31, [], rest) = tlv(rest) else {
        panic!("no digestAlgorithms")
    };
    let (0x30, encap, rest) = tlv(rest) else {
        panic!("encapContentInfo")
    };
    assert_eq!(
        encap,
        [6, 9, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01],
        "id-data"
    );
    let (0xa0, mut certs, rest) = tlv(rest) else {
        panic!("certificates")
    };
    let (0x31, [], []) = tlv(rest) else {
        panic!("no signerInfos")
    };
    let mut out = Vec::new();
    while !certs.is_empty() {
        let (_, _, after) = tlv(certs);
        out.push(certs[..certs.len() - after.len()].to_vec());
        certs = after;
    }
    out
}

/// A device: a software P-256 key and, once it has one, its certificate.
struct Device {
    key: KeyPair,
    cert: Option<CertificateDer<'static>>,
}

impl Device {
    fn new() -> Device {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        Device { key, cert: None }
    }

    /// Its CSR for `cn` (DER).
    fn csr_der(&self, cn: &str) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serialize_request(&self.key).unwrap().der().to_vec()
    }

    /// Its CSR for `cn`, base64 in lines of 64 (the server must ignore the line breaks).
    fn csr(&self, cn: &str) -> Vec<u8> {
        let text = B64.encode(self.csr_der(cn));
        text.as_bytes()
            .chunks(64)
            .collect::<Vec<_>>()
            .join(&b"\n"[..])
    }
}

/// One request over TLS with `versions`, as the device when `identity` has a certificate.
fn exchange(
    server: &EstServer,
    versions: &[&'static SupportedProtocolVersion],
    identity: Option<&Device>,
    raw: &[u8],
) -> Reply {
    let mut roots = RootCertStore::empty();
    roots.add(server.ca_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some(Device {
            key,
            cert: Some(cert),
        }) => builder
            .with_client_auth_cert(
                vec![cert.clone()],
                PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap(),
        _ => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(server.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    tls.write_all(raw).unwrap();
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).unwrap();
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = parsed.parse(&answer).unwrap() else {
        panic!("incomplete answer: {answer:?}")
    };
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let content_length = headers.iter().find(|(n, _)| n == "Content-Length").unwrap();
    assert_eq!(content_length.1, (answer.len() - len).to_string());
    assert!(headers
        .iter()
        .any(|(n, v)| n == "Connection" && v == "close"));
    Reply {
        version: tls.conn.protocol_version().unwrap(),
        status: parsed.code.unwrap(),
        headers,
        body: answer[len..].to_vec(),
    }
}

/// `GET path`.
fn get(server: &EstServer, path: &str) -> Reply {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    exchange(server, BOTH, None, raw.as_bytes())
}

/// `POST path` of `body` as `application/pkcs10`, with basic credentials when given.
fn post(
    server: &EstServer,
    versions: &[&'static SupportedProtocolVersion],
    identity: Option<&Device>,
    path: &str,
    basic: Option<&str>,
    body: &[u8],
) -> Reply {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/pkcs10\r\n\
         Content-Transfer-Encoding: base64\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(credentials) = basic {
        head.push_str(&format!(
            "Authorization: Basic {}\r\n",
            B64.encode(credentials)
        ));
    }
    let raw = [head.as_bytes(), b"\r\n", body].concat();
    exchange(server, versions, identity, &raw)
}

/// Checks `reply` holds one certificate for `device`'s key, issued by the server's CA for client
/// authentication, and returns it.
fn issued_to(server: &EstServer, device: &Device, reply: &Reply) -> CertificateDer<'static> {
    assert_eq!(reply.status, 200, "{:?}", server.log());
    let content_type = reply.header("Content-Type").unwrap();
    assert_eq!(
        content_type,
        "application/pkcs7-mime; smime-type=certs-only"
    );
    let certs = reply.certs();
    assert_eq!(certs.len(), 1);
    let ca_der = server.ca_der();
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&certs[0]).unwrap();
    assert_eq!(
        cert.public_key().subject_public_key.data,
        device.key.public_key_raw()
    );
    cert.verify_signature(Some(ca.public_key())).unwrap();
    assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
    assert!(
        cert.extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .client_auth
    );
    assert!(server.issued().iter().any(|c| c.as_ref() == certs[0]));
    CertificateDer::from(certs[0].clone())
}

#[test]
fn cacerts_answers_a_certs_only_pkcs7_holding_the_ca() {
    let server = EstServer::start(EstConfig::default());
    for path in [
        "/.well-known/est/cacerts",
        "/.well-known/est/arbitrary-label/cacerts",
    ] {
        let reply = get(&server, path);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("Content-Type"), Some("application/pkcs7-mime"));
        assert_eq!(reply.certs(), vec![server.ca_der().to_vec()]);
    }
    assert_eq!(server.requests().cacerts, 2);
    assert_eq!(server.ca_fingerprint_sha256().len(), 64);
    assert!(server.ca_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
    // Another server on the same CA, and one on a new CA.
    let same = EstServer::start(EstConfig {
        ca: Some((server.ca_der(), server.ca_key())),
        ..EstConfig::default()
    });
    assert_eq!(same.ca_fingerprint_sha256(), server.ca_fingerprint_sha256());
    assert_eq!(get(&same, "/.well-known/est/cacerts").status, 200);
    let other = EstServer::start(EstConfig::default());
    assert_ne!(
        other.ca_fingerprint_sha256(),
        server.ca_fingerprint_sha256()
    );
}

#[test]
fn simpleenroll_with_basic_auth_over_tls13_and_over_tls12() {
    for (tls, version) in [(TlsVersions::Tls13, &TLS13), (TlsVersions::Tls12, &TLS12)] {
        let server = EstServer::start(EstConfig {
            tls,
            ..EstConfig::default()
        });
        let device = Device::new();
        let csr = device.csr("device-1");
        let reply = post(&server, BOTH, None, ENROLL, Some("estuser:estpwd"), &csr);
        assert_eq!(reply.version, version.version);
        issued_to(&server, &device, &reply);
        assert_eq!(server.issued().len(), 1);
    }
}

#[test]
fn a_wrong_or_missing_password_is_401_with_a_basic_challenge() {
    let server = EstServer::start(EstConfig::default());
    let device = Device::new();
    for basic in [Some("estuser:wrong"), None] {
        let reply = post(&server, BOTH, None, ENROLL, basic, &device.csr("device-1"));
        assert_eq!(reply.status, 401);
        assert_eq!(
            reply.header("WWW-Authenticate"),
            Some("Basic realm=\"est\"")
        );
    }
    assert!(server.issued().is_empty());
}

#[test]
fn pending_first_answers_202_with_retry_after_then_issues() {
    let server = EstServer::start(EstConfig {
        pending_first: 1,
        ..EstConfig::default()
    });
    let device = Device::new();
    let csr = device.csr("device-1");
    let reply = post(&server, BOTH, None, ENROLL, Some("estuser:estpwd"), &csr);
    assert_eq!(reply.status, 202);
    assert_eq!(reply.header("Retry-After"), Some("1"));
    assert!(reply.body.is_empty());
    assert!(server.issued().is_empty());
    let reply = post(&server, BOTH, None, ENROLL, Some("estuser:estpwd"), &csr);
    issued_to(&server, &device, &reply);
    assert_eq!(server.requests().simpleenroll, 2);
}

#[test]
fn simplereenroll_needs_the_issued_certificate_and_its_subject() {
    let server = EstServer::start(EstConfig::default());
    let mut device = Device::new();
    let reply = post(
        &server,
        BOTH,
        None,
        ENROLL,
        Some("estuser:estpwd"),
        &device.csr("device-1"),
    );
    device.cert = Some(issued_to(&server, &device, &reply));
    // No client certificate: basic credentials are not enough.
    let csr = device.csr("device-1");
    let reply = post(&server, BOTH, None, REENROLL, Some("estuser:estpwd"), &csr);
    assert_eq!(reply.status, 401);
    // The certificate, over TLS 1.3 and TLS 1.2, same key.
    for version in [&TLS13, &TLS12] {
        let reply = post(&server, &[version], Some(&device), REENROLL, None, &csr);
        issued_to(&server, &device, &reply);
    }
    // Another subject: refused.
    let reply = post(
        &server,
        BOTH,
        Some(&device),
        REENROLL,
        None,
        &device.csr("device-2"),
    );
    assert_eq!(reply.status, 400);
    // A new key, same subject: accepted.
    let rekeyed = Device::new();
    let reply = post(
        &server,
        BOTH,
        Some(&device),
        REENROLL,
        None,
        &rekeyed.csr("device-1"),
    );
    issued_to(&server, &rekeyed, &reply);
    assert_eq!(server.issued().len(), 4);
}

#[test]
fn a_bootstrap_certificate_authorises_simpleenroll_unless_basic_is_required() {
    let (bootstrap_der, bootstrap_key) = iotsafe_tests::est_server::new_ca("bootstrap CA");
    let bootstrap_key = KeyPair::try_from(&bootstrap_key).unwrap();
    let issuer = Issuer::from_ca_cert_der(&bootstrap_der, bootstrap_key).unwrap();
    let mut device = Device::new();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "device-1");
    device.cert = Some(
        params
            .signed_by(&device.key, &issuer)
            .unwrap()
            .der()
            .clone(),
    );
    for (require_basic, basic, status) in [
        (false, None, 200),
        (true, None, 401),
        (true, Some("estuser:estpwd"), 200),
    ] {
        let server = EstServer::start(EstConfig {
            client_roots: vec![bootstrap_der.clone()],
            require_basic,
            ..EstConfig::default()
        });
        let reply = post(
            &server,
            BOTH,
            Some(&device),
            ENROLL,
            basic,
            &device.csr("device-1"),
        );
        assert_eq!(
            reply.status, status,
            "require_basic {require_basic}, basic {basic:?}"
        );
    }
}

#[test]
fn bad_requests_are_4xx_and_the_server_keeps_serving() {
    let server = EstServer::start(EstConfig::default());
    let device = Device::new();
    let mut csr = device.csr_der("device-1");
    *csr.last_mut().unwrap() ^= 1; // the signature no longer matches
    let basic = Some("estuser:estpwd");
    let bad_signature = post(
        &server,
        BOTH,
        None,
        ENROLL,
        basic,
        B64.encode(&csr).as_bytes(),
    );
    assert_eq!(bad_signature.status, 400);
    assert_eq!(
        post(&server, BOTH, None, ENROLL, basic, b"not base64!").status,
        400
    );
    assert_eq!(get(&server, ENROLL).status, 405);
    assert_eq!(get(&server, "/.well-known/est/unknown").status, 404);
    assert_eq!(get(&server, "/elsewhere").status, 404);
    assert_eq!(get(&server, "/.well-known/est/csrattrs").status, 404);
    assert_eq!(
        exchange(&server, BOTH, None, b"\x01\x02 garbage\r\n\r\n").status,
        400
    );
    let huge = format!("POST {ENROLL} HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n");
    assert_eq!(exchange(&server, BOTH, None, huge.as_bytes()).status, 413);
    // A client that connects and leaves, then one that says nothing: the server is back after
    // its read timeout (3 s).
    drop(TcpStream::connect(server.addr()).unwrap());
    let silent = TcpStream::connect(server.addr()).unwrap();
    assert_eq!(get(&server, "/.well-known/est/cacerts").status, 200);
    drop(silent);
    assert!(server.issued().is_empty());
    let expected = RequestCounts {
        cacerts: 1,
        simpleenroll: 3,
        simplereenroll: 0,
        csrattrs: 1,
        other: 2,
    };
    assert_eq!(server.requests(), expected, "{:?}", server.log());
}

#[test]
fn csrattrs_answers_the_configured_oids() {
    let ecdsa_with_sha256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
    let server = EstServer::start(EstConfig {
        csrattrs: Some(csrattrs_der(&[ecdsa_with_sha256])),
        ..EstConfig::default()
    });
    let reply = get(&server, "/.well-known/est/csrattrs");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Content-Type"), Some("application/csrattrs"));
    let der = B64.decode(&reply.body).unwrap();
    assert_eq!(
        der,
        [0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]
    );
}
