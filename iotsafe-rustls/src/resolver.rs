//! The certificate chain stored on the card, served with the card key: for client authentication
//! ([`ResolvesClientCert`]) and for a device acting as a TLS server ([`ResolvesServerCert`]).
//!
//! The chain is read from the card **once**, when the resolver is built (GET DATA object list,
//! READ PUBLIC KEY, READ FILE of each certificate file), and cached: handshakes cost no APDU for
//! it. The device certificate is the certificate file whose public key is the card key's, found
//! by the configured file reference or, by default, among the files with file usage `02`
//! (certificate), falling back to file ID `02` / label `device-cert`. Building fails with a message
//! that says which file and which key disagree (`certificate in file ID 02 does not match key ID
//! 01`), and `CertifiedKey::keys_match()` is checked as well.
//!
//! # What is sent
//! By default only the end-entity certificate goes on the wire: the peer already trusts the CA
//! that issued it (it is the trust anchor the broker was configured with), and a SIM on a cellular
//! link should not pay for ~500 more bytes per handshake. [`ChainPolicy::WithCardCa`] appends the
//! CA certificate stored on the card (file ID `03` / label `ca-cert` by default, or any CA
//! certificate among the certificate files), for peers that trust a root above an intermediate.

use crate::error::{Error, Result};
use crate::signer::CardSigningKey;
use iotsafe_core::objects::file_usage;
use iotsafe_core::{Card, EcPoint, ObjectInfo, ObjectKind, ObjectRef};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use std::fmt;
use std::sync::Arc;

/// Which certificates are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChainPolicy {
    /// Only the device (end-entity) certificate (default).
    #[default]
    EndEntityOnly,
    /// The device certificate followed by the CA certificate stored on the card.
    WithCardCa,
}

/// Builds a [`CardCertResolver`]; see the module docs for the defaults.
#[derive(Debug)]
pub struct CardCertResolverBuilder {
    card: Arc<Card>,
    key: ObjectRef,
    signing_key: Option<CardSigningKey>,
    certificate_file: Option<ObjectRef>,
    ca_file: Option<ObjectRef>,
    chain: ChainPolicy,
    given_chain: Option<GivenChain>,
}

/// A certificate chain the caller has (from the device's file system: an enrolled certificate),
/// used instead of the card's files.
#[derive(Debug, Clone)]
struct GivenChain {
    /// Where it came from, for messages.
    source: String,
    certificates: Vec<CertificateDer<'static>>,
}

impl CardCertResolverBuilder {
    /// The private key (default ID `01`).
    pub fn key(mut self, key: ObjectRef) -> Self {
        self.key = key;
        self
    }

    /// Reuses an existing signing key (saves its READ PUBLIC KEY); overrides [`Self::key`].
    pub fn signing_key(mut self, key: CardSigningKey) -> Self {
        self.signing_key = Some(key);
        self
    }

    /// The device certificate file (default: searched, see the module docs).
    pub fn certificate_file(mut self, file: ObjectRef) -> Self {
        self.certificate_file = Some(file);
        self
    }

    /// The CA certificate file used with [`ChainPolicy::WithCardCa`] (default ID `03`).
    pub fn ca_file(mut self, file: ObjectRef) -> Self {
        self.ca_file = Some(file);
        self
    }

    /// Which certificates are sent (default [`ChainPolicy::EndEntityOnly`]).
    pub fn chain(mut self, chain: ChainPolicy) -> Self {
        self.chain = chain;
        self
    }

    /// Sends `certificates` (the device certificate first, then any CA certificates) instead of
    /// the card's files: a certificate the card key was enrolled for, kept on the device's file
    /// system (IoT SAFE has no command to write a file from the host). `source` names it in
    /// messages (e.g. its path). [`Self::build`] fails unless the first certificate certifies the
    /// card key. [`Self::certificate_file`], [`Self::ca_file`] and [`Self::chain`] are then
    /// ignored.
    pub fn certificate_chain(
        mut self,
        source: impl Into<String>,
        certificates: Vec<CertificateDer<'static>>,
    ) -> Self {
        self.given_chain = Some(GivenChain {
            source: source.into(),
            certificates,
        });
        self
    }

    /// The card the resolver reads.
    pub(crate) fn card(&self) -> &Arc<Card> {
        &self.card
    }

    /// The private key, as set by [`Self::key`] (a [`Self::signing_key`] overrides it).
    pub(crate) fn key_ref(&self) -> &ObjectRef {
        &self.key
    }

    /// Reads the key and the certificate(s) from the card and checks that they belong together.
    pub fn build(self) -> Result<CardCertResolver> {
        let signing_key = match self.signing_key {
            Some(k) => k,
            None => CardSigningKey::new(Arc::clone(&self.card), self.key.clone())?,
        };
        let key_name = signing_key.key_ref().to_string();
        let point = *signing_key.public_point();
        if let Some(given) = self.given_chain {
            return given_chain(given, signing_key, &point, key_name);
        }

        let (device_file, device_der) = match &self.certificate_file {
            Some(file) => {
                let der = read_certificate(&self.card, file)?;
                if !certifies(&der, &point)? {
                    return Err(Error::KeyMismatch {
                        file: file.to_string(),
                        key: key_name,
                    });
                }
                (file.clone(), der)
            }
            None => find_device_certificate(&self.card, &point, &key_name)?,
        };

        let mut chain = vec![CertificateDer::from(device_der)];
        if self.chain == ChainPolicy::WithCardCa {
            let ca_file = self.ca_file.unwrap_or_else(|| ObjectRef::id([0x03]));
            let ca = read_certificate(&self.card, &ca_file)?;
            if !parse(&ca, &ca_file)?.is_ca() {
                return Err(Error::Certificate(format!(
                    "file {ca_file} holds a certificate that is not a CA certificate"
                )));
            }
            chain.push(CertificateDer::from(ca));
        }

        let certified = CertifiedKey::new(chain, Arc::new(signing_key.clone()));
        certified.keys_match().map_err(|_| Error::KeyMismatch {
            file: device_file.to_string(),
            key: key_name.clone(),
        })?;
        tracing::debug!(file = %device_file, key = %key_name, "device certificate read from the card");
        Ok(CardCertResolver {
            certified: Arc::new(certified),
            signing_key,
            source: CertificateSource::Card(device_file),
        })
    }
}

/// The resolver for a chain the caller gave, checked against the card key.
fn given_chain(
    given: GivenChain,
    signing_key: CardSigningKey,
    point: &EcPoint,
    key_name: String,
) -> Result<CardCertResolver> {
    let mismatch = || Error::KeyMismatch {
        file: given.source.clone(),
        key: key_name.clone(),
    };
    let Some(device) = given.certificates.first() else {
        return Err(Error::Certificate(format!(
            "{}: no certificate in it",
            given.source
        )));
    };
    if !certifies(device, point)? {
        return Err(mismatch());
    }
    let certified = CertifiedKey::new(given.certificates.clone(), Arc::new(signing_key.clone()));
    certified.keys_match().map_err(|_| mismatch())?;
    tracing::debug!(source = %given.source, key = %key_name, "device certificate from the caller");
    Ok(CardCertResolver {
        certified: Arc::new(certified),
        signing_key,
        source: CertificateSource::Given(given.source),
    })
}

/// Where a resolver's device certificate came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// A file on the card.
    Card(ObjectRef),
    /// A chain the caller gave ([`CardCertResolverBuilder::certificate_chain`]), named as given.
    Given(String),
}

impl fmt::Display for CertificateSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertificateSource::Card(file) => write!(f, "card file {file}"),
            CertificateSource::Given(source) => f.write_str(source),
        }
    }
}

/// Serves the card's certificate and key to rustls, as client and as server.
pub struct CardCertResolver {
    certified: Arc<CertifiedKey>,
    signing_key: CardSigningKey,
    source: CertificateSource,
}

impl CardCertResolver {
    /// A builder with the defaults: key ID `01`, certificate searched, end-entity only.
    pub fn builder(card: Arc<Card>) -> CardCertResolverBuilder {
        CardCertResolverBuilder {
            card,
            key: ObjectRef::id([0x01]),
            signing_key: None,
            certificate_file: None,
            ca_file: None,
            chain: ChainPolicy::EndEntityOnly,
            given_chain: None,
        }
    }

    /// The certificate chain and key, as rustls holds them.
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.certified
    }

    /// The card signing key.
    pub fn signing_key(&self) -> &CardSigningKey {
        &self.signing_key
    }

    /// Where the device certificate came from: a card file, or a chain the caller gave.
    pub fn certificate_source(&self) -> &CertificateSource {
        &self.source
    }

    /// The device certificate (DER).
    pub fn device_certificate(&self) -> &CertificateDer<'static> {
        &self.certified.cert[0]
    }

    fn serve(&self, offered: &[SignatureScheme], role: &str) -> Option<Arc<CertifiedKey>> {
        crate::certified::serve(&self.certified, offered, role)
    }
}

impl fmt::Debug for CardCertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardCertResolver")
            .field("key", self.signing_key.key_ref())
            .field("certificate", &self.source)
            .field("chain_len", &self.certified.cert.len())
            .finish_non_exhaustive()
    }
}

impl ResolvesClientCert for CardCertResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.serve(sigschemes, "client")
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for CardCertResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.serve(client_hello.signature_schemes(), "server")
    }
}

/// Reads a certificate file and trims anything after the DER certificate (cards pad files).
fn read_certificate(card: &Card, file: &ObjectRef) -> Result<Vec<u8>> {
    let bytes = card
        .read_file(file)
        .map_err(|e| Error::card(format!("reading certificate file {file}"), e))?;
    let (rest, _) = x509_parser::parse_x509_certificate(&bytes).map_err(|e| {
        Error::Certificate(format!(
            "file {file} does not hold a DER X.509 certificate: {e}"
        ))
    })?;
    let used = bytes.len() - rest.len();
    Ok(bytes[..used].to_vec())
}

fn parse<'a>(
    der: &'a [u8],
    file: &ObjectRef,
) -> Result<x509_parser::certificate::X509Certificate<'a>> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c)
        .map_err(|e| Error::Certificate(format!("file {file}: {e}")))
}

/// Whether the certificate's subject public key is `point`.
fn certifies(der: &[u8], point: &EcPoint) -> Result<bool> {
    let cert = x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c)
        .map_err(|e| Error::Certificate(e.to_string()))?;
    Ok(cert.public_key().subject_public_key.data.as_ref() == point.as_bytes().as_slice())
}

/// Searches the certificate files for the one that certifies `point`.
fn find_device_certificate(
    card: &Card,
    point: &EcPoint,
    key_name: &str,
) -> Result<(ObjectRef, Vec<u8>)> {
    let objects = card
        .objects()
        .map_err(|e| Error::card("reading the object list", e))?;
    let candidates = certificate_files(&objects);
    let mut tried = Vec::new();
    for file in candidates {
        match read_certificate(card, &file) {
            Ok(der) if certifies(&der, point)? => return Ok((file, der)),
            Ok(_) => tried.push(file.to_string()),
            Err(e) => {
                tracing::debug!(file = %file, error = %e, "skipping certificate file");
                tried.push(format!("{file} (unreadable: {e})"));
            }
        }
    }
    Err(Error::KeyMismatch {
        file: tried.join(", "),
        key: key_name.to_string(),
    })
}

/// Certificate files in the order to try: file usage 02 first (by the card's order), then the
/// default device-certificate file if it was not among them.
fn certificate_files(objects: &[ObjectInfo]) -> Vec<ObjectRef> {
    let default_id = ObjectRef::id([0x02]);
    let default_label = ObjectRef::label("device-cert");
    let files: Vec<&ObjectInfo> = objects
        .iter()
        .filter(|o| o.kind == Some(ObjectKind::File))
        .collect();
    let mut out: Vec<ObjectRef> = files
        .iter()
        .filter(|o| o.file_usage == Some(file_usage::CERTIFICATE))
        .filter_map(|o| o.reference())
        .collect();
    if out.is_empty() {
        out.extend(
            files
                .iter()
                .filter(|o| default_id.matches(o) || default_label.matches(o))
                .filter_map(|o| o.reference()),
        );
    }
    if out.is_empty() {
        // A card whose object list omits files: try the default layout anyway.
        out.push(default_id);
    }
    out
}
/// The certificates of a PEM file, in order (the device certificate first): a chain enrolled for
/// the card key ([`CardCertResolverBuilder::certificate_chain`]). Fails, naming the file, when
/// it cannot be read, holds something that is not PEM, or holds no certificate.
pub fn read_pem_chain(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let shown = path.display();
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::Certificate(format!("{shown}: {e}")))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Certificate(format!("{shown}: {e}")))?;
    if certificates.is_empty() {
        return Err(Error::Certificate(format!(
            "{shown}: no PEM certificate in it"
        )));
    }
    Ok(certificates)
}
