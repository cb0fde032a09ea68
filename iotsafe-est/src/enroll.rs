//! An enrolment with the card (RFC 7030 §4.2): the EST CA learnt and checked, a CSR signed on the
//! card, the request sent with the card key as TLS client key, the issued certificate accepted
//! only if it is for the card key and chains to the EST CA.
//!
//! What the card does: READ PUBLIC KEY and the certificate files once (the TLS configuration),
//! one COMPUTE SIGNATURE for the CSR, and per connection one key generation, one DH and (when the
//! server asks for a client certificate) one signature: see `docs/enrolment.md`.

use crate::client::{BasicAuth, EstClient};
use crate::error::EstError;
use crate::url::EstUrl;
use iotsafe_core::{Card, ObjectRef};
use iotsafe_rustls::{CardSigningKey, IotSafeTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the client trusts the EST server.
#[derive(Debug, Clone)]
pub enum Trust {
    /// These trust anchors (`--ca`): the server's TLS certificate must chain to one.
    Anchors(Vec<CertificateDer<'static>>),
    /// Bootstrap (RFC 7030 §4.1.1): accept the server provisionally, fetch `/cacerts`, and go on
    /// only if a CA certificate there has this SHA-256 fingerprint (hex, `:` allowed) and the
    /// server's certificate chains to it.
    Fingerprint(String),
}

/// Which enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `/simpleenroll`: a first certificate (authenticated by basic auth or the bootstrap
    /// certificate).
    Enroll,
    /// `/simplereenroll`: renewal, authenticated by the certificate being renewed.
    Reenroll,
}

/// What to enrol.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The EST server.
    pub url: EstUrl,
    /// How it is trusted.
    pub trust: Trust,
    /// HTTP basic credentials, if any.
    pub basic: Option<BasicAuth>,
    /// Authenticate TLS with the card key and the current certificate when the server asks.
    /// Off, no client certificate is sent: a server that requests one but does not trust the
    /// current certificate's CA refuses the connection, so basic authentication alone needs it
    /// off.
    pub client_certificate: bool,
    /// The card key that signs the TLS handshakes, and that the certificate is for unless
    /// [`Enrollment::new_key`] says otherwise.
    pub key: ObjectRef,
    /// A certificate for another key slot than [`Enrollment::key`]: `(slot, generate)`, with
    /// `generate` making a fresh key pair there first (GENERATE KEY PAIR). The TLS connections
    /// still authenticate with [`Enrollment::key`] and the current certificate.
    pub new_key: Option<(ObjectRef, bool)>,
    /// The certificate to authenticate with, and to take the subject from: a chain from a file
    /// (`(name, chain)`), or `None` for the card's own certificate (its factory bootstrap).
    pub current: Option<(String, Vec<CertificateDer<'static>>)>,
    /// The CSR's subject; `None` takes the current certificate's.
    pub subject: Option<rcgen::DistinguishedName>,
    /// Offer TLS 1.2 too (many EST servers speak only TLS 1.2).
    pub tls12: bool,
    /// Ask `/csrattrs` first (one more connection) and stop, before signing anything, if the
    /// server wants a key type or signature algorithm the card cannot do.
    pub csr_attrs: bool,
    /// `/simpleenroll` or `/simplereenroll`.
    pub operation: Operation,
    /// On HTTP 202, wait and ask again for at most this long (`None`: fail with
    /// [`EstError::RetryLater`]).
    pub wait: Option<Duration>,
}

/// What an enrolment produced.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The issued certificate, then the EST CA's certificates: what to store.
    pub chain: Vec<CertificateDer<'static>>,
    /// The EST CA certificates (`/cacerts`).
    pub ca: Vec<CertificateDer<'static>>,
    /// APDUs the card took for the whole enrolment.
    pub apdus: u64,
    /// HTTP 202 answers waited out.
    pub retries: u32,
}

/// Runs `enrollment` with `card`.
pub fn enroll(card: &Arc<Card>, enrollment: &Enrollment) -> Result<Enrolled, EstError> {
    let apdus = card.stats().apdus;
    let mut builder = IotSafeTls::builder(Arc::clone(card))
        .device_key(enrollment.key.clone())
        .resumption(false)
        .tls12(enrollment.tls12);
    if let Some((name, chain)) = &enrollment.current {
        builder = builder.certificate_chain(name.clone(), chain.clone());
    }
    let tls = builder.build()?;

    let ca = match &enrollment.trust {
        Trust::Anchors(anchors) => {
            let client = EstClient::new(
                enrollment.url.clone(),
                config(&tls, anchors, enrollment.client_certificate)?,
            );
            client.cacerts()?
        }
        Trust::Fingerprint(fingerprint) => bootstrap(
            &tls,
            &enrollment.url,
            fingerprint,
            enrollment.client_certificate,
        )?,
    };
    let client = EstClient::new(
        enrollment.url.clone(),
        config(&tls, &ca, enrollment.client_certificate)?,
    )
    .with_basic_auth(enrollment.basic.clone());

    // What the server wants in the request, when asked and it says (404 or 501: nothing).
    let attributes = match enrollment.csr_attrs {
        true => client.csr_attrs()?,
        false => None,
    };
    if let Some(attributes) = attributes {
        crate::csrattrs::check(&attributes).map_err(|why| EstError::Answer {
            request: "GET /csrattrs".into(),
            why,
        })?;
    }
    let subject = match &enrollment.subject {
        Some(subject) => subject.clone(),
        None => subject_of(tls.resolver().device_certificate())?,
    };
    let fresh;
    let signing_key = match &enrollment.new_key {
        None => tls.resolver().signing_key(),
        Some((slot, generate)) => {
            if *generate {
                if *slot == enrollment.key {
                    return Err(EstError::Certificate(format!(
                        "a fresh key in {slot} would replace the key that authenticates this enrolment; choose another slot"
                    )));
                }
                card.generate_key_pair(slot)
                    .map_err(|e| iotsafe_rustls::Error::Card {
                        step: format!("GENERATE KEY PAIR in {slot}"),
                        source: e,
                    })?;
            }
            fresh = CardSigningKey::new(Arc::clone(card), slot.clone())?;
            &fresh
        }
    };
    let csr = csr(signing_key, subject)?;

    let deadline = enrollment.wait.map(|wait| Instant::now() + wait);
    let mut retries = 0;
    let issued = loop {
        let sent = match enrollment.operation {
            Operation::Enroll => client.simple_enroll(&csr),
            Operation::Reenroll => client.simple_reenroll(&csr),
        };
        match (sent, deadline) {
            (Err(EstError::RetryLater { after }), Some(deadline))
                if Instant::now() + after <= deadline =>
            {
                tracing::info!(
                    after_s = after.as_secs(),
                    "EST request pending approval; waiting"
                );
                retries += 1;
                std::thread::sleep(after);
            }
            (other, _) => break other?,
        }
    };
    accept(&issued, signing_key, &ca, client.tls().crypto_provider())?;
    let mut chain = issued;
    for certificate in &ca {
        if !chain.contains(certificate) {
            chain.push(certificate.clone());
        }
    }
    Ok(Enrolled {
        chain,
        ca,
        apdus: card.stats().apdus - apdus,
        retries,
    })
}

/// The client configuration trusting `anchors`, with the card's client certificate or none.
fn config(
    tls: &IotSafeTls,
    anchors: &[CertificateDer<'static>],
    client_certificate: bool,
) -> Result<Arc<ClientConfig>, EstError> {
    let mut config = tls.client_config(roots(anchors)?)?;
    if !client_certificate {
        config.client_auth_cert_resolver = Arc::new(NoClientCertificate);
    }
    Ok(Arc::new(config))
}

/// Sends no client certificate (the card still runs the ECDHE).
#[derive(Debug)]
struct NoClientCertificate;

impl rustls::client::ResolvesClientCert for NoClientCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

fn roots(anchors: &[CertificateDer<'static>]) -> Result<RootCertStore, EstError> {
    let mut roots = RootCertStore::empty();
    for anchor in anchors {
        roots
            .add(anchor.clone())
            .map_err(|e| EstError::Certificate(format!("a trust anchor: {e}")))?;
    }
    Ok(roots)
}

/// Lower-case hex SHA-256 of `der`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// §4.1.1: the CA from `/cacerts` on a provisionally accepted server, kept only if one of its
/// certificates has `expected` as fingerprint and the server's certificate chains to it.
fn bootstrap(
    tls: &IotSafeTls,
    url: &EstUrl,
    expected: &str,
    client_certificate: bool,
) -> Result<Vec<CertificateDer<'static>>, EstError> {
    let expected: String = expected
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    let mut provisional = Arc::unwrap_or_clone(config(tls, &[], client_certificate)?);
    // The provider the connections use checks the server's chain once the CA is known.
    let provider = Arc::clone(provisional.crypto_provider());
    let recorder = Arc::new(Provisional {
        chain: Mutex::default(),
        algorithms: provider.signature_verification_algorithms,
    });
    provisional
        .dangerous()
        .set_certificate_verifier(recorder.clone());
    let ca = EstClient::new(url.clone(), Arc::new(provisional)).cacerts()?;
    let Some(anchor) = ca.iter().find(|c| fingerprint(c) == expected) else {
        return Err(EstError::CaChanged {
            expected,
            got: ca.first().map(|c| fingerprint(c)).unwrap_or_default(),
        });
    };
    let seen = iotsafe_core::lock::lock(&recorder.chain).clone();
    let (end_entity, intermediates) = seen
        .split_first()
        .ok_or_else(|| EstError::Certificate("the server sent no certificate".into()))?;
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots(std::slice::from_ref(anchor))?),
        provider,
    )
    .build()
    .map_err(|e| EstError::Certificate(e.to_string()))?;
    let name = ServerName::try_from(url.host.clone()).map_err(|_| EstError::Url {
        url: url.to_string(),
        why: "the host is not a DNS name or IP address",
    })?;
    verifier
        .verify_server_cert(end_entity, intermediates, &name, &[], UnixTime::now())
        .map_err(|e| {
            EstError::Refused(format!(
                "the EST server's TLS certificate does not chain to the CA with the given fingerprint: {e}"
            ))
        })?;
    Ok(ca)
}

/// A verifier that accepts any server for one `/cacerts` request, remembering its chain to check
/// it once the CA is known (RFC 7030 §4.1.1's provisional trust). Handshake signatures are still
/// verified, so the chain is the server's own.
#[derive(Debug)]
struct Provisional {
    chain: Mutex<Vec<CertificateDer<'static>>>,
    /// The handshake signatures it checks, the connection's provider's.
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Provisional {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        *iotsafe_core::lock::lock(&self.chain) = chain;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A DER PKCS#10 request for the card key, signed on the card.
fn csr(key: &CardSigningKey, subject: rcgen::DistinguishedName) -> Result<Vec<u8>, EstError> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| iotsafe_rustls::Error::Csr(format!("parameters: {e}")))?;
    params.distinguished_name = subject;
    let request = params.serialize_request(key).map_err(|e| {
        iotsafe_rustls::Error::Csr(format!("signing with {} on the card: {e}", key.key_ref()))
    })?;
    Ok(request.der().to_vec())
}

/// The subject of `certificate` as the CSR's: its CN, O, OU, C, ST and L (other attributes are
/// left out).
fn subject_of(certificate: &CertificateDer<'_>) -> Result<rcgen::DistinguishedName, EstError> {
    use rcgen::DnType;
    use x509_parser::oid_registry as oids;
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|e| EstError::Certificate(format!("the current certificate: {e}")))?;
    let mut dn = rcgen::DistinguishedName::new();
    for attribute in parsed.subject().iter_attributes() {
        let oid = attribute.attr_type();
        let kind = if *oid == oids::OID_X509_COMMON_NAME {
            DnType::CommonName
        } else if *oid == oids::OID_X509_ORGANIZATION_NAME {
            DnType::OrganizationName
        } else if *oid == oids::OID_X509_ORGANIZATIONAL_UNIT {
            DnType::OrganizationalUnitName
        } else if *oid == oids::OID_X509_COUNTRY_NAME {
            DnType::CountryName
        } else if *oid == oids::OID_X509_STATE_OR_PROVINCE_NAME {
            DnType::StateOrProvinceName
        } else if *oid == oids::OID_X509_LOCALITY_NAME {
            DnType::LocalityName
        } else {
            continue;
        };
        if let Ok(value) = attribute.as_str() {
            dn.push(kind, value);
        }
    }
    if dn.iter().next().is_none() {
        return Err(EstError::Certificate(
            "the current certificate's subject has no CN, O, OU, C, ST or L: give --subject".into(),
        ));
    }
    Ok(dn)
}

/// Accepts `issued` only if its first certificate is for the card key and chains to `ca`.
fn accept(
    issued: &[CertificateDer<'static>],
    key: &CardSigningKey,
    ca: &[CertificateDer<'static>],
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<(), EstError> {
    let (end_entity, intermediates) = issued
        .split_first()
        .ok_or_else(|| EstError::Refused("the server issued no certificate".into()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(end_entity)
        .map_err(|e| EstError::Refused(format!("not an X.509 certificate: {e}")))?;
    if parsed.public_key().raw != key.spki().as_ref() {
        return Err(EstError::Refused(format!(
            "its public key is not the card key {}'s",
            key.key_ref()
        )));
    }
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), Arc::clone(provider))
            .build()
            .map_err(|e| EstError::Certificate(e.to_string()))?;
    verifier
        .verify_client_cert(end_entity, intermediates, UnixTime::now())
        .map_err(|e| EstError::Refused(format!("it does not chain to the EST CA: {e}")))?;
    Ok(())
}
