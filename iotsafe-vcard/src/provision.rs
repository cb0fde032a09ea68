//! A ready-to-use test PKI around a virtual card: a fresh test CA, a device certificate for the key
//! made inside the card, a server certificate for loopback, and a second unrelated CA for negative
//! tests. rcgen signs the device certificate for the card's public
//! point through [`CardPublicKey`]; the device private key never leaves the card object.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256,
};

use crate::error::VcardError;
use crate::profile::CardOptions;
use crate::store::{layout, ObjectRef};
use crate::VirtualCard;

/// Common name of the device certificate.
pub const DEVICE_COMMON_NAME: &str = "device-0001";

/// What [`provision`] made and where it put it.
#[derive(Debug, Clone)]
pub struct ProvisionReport {
    /// The card's state file.
    pub state: PathBuf,
    /// The folder holding the PEM files.
    pub pki_dir: PathBuf,
    /// The device public key `04‖X‖Y` read from the card.
    pub device_public_key: Vec<u8>,
    /// The device certificate (DER), also in card file `02`.
    pub device_cert_der: Vec<u8>,
    /// The CA certificate (DER), also in card file `03`.
    pub ca_cert_der: Vec<u8>,
    /// Every file written into `pki_dir`.
    pub files: Vec<PathBuf>,
}

/// The files [`foreign_client_pki`] wrote.
#[derive(Debug, Clone)]
pub struct ForeignPki {
    /// `foreign-ca.pem`: a CA nobody trusts.
    pub ca_pem: PathBuf,
    /// `foreign-client.pem`: a clientAuth certificate issued by that CA.
    pub client_pem: PathBuf,
    /// `foreign-client.key`: its software private key (PKCS#8 PEM, mode 0600).
    pub client_key: PathBuf,
}

/// A public point from the card, as rcgen needs it to certify a key it cannot see.
#[derive(Debug, Clone)]
pub struct CardPublicKey(pub Vec<u8>);

impl PublicKeyData for CardPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

fn cert_error(e: rcgen::Error) -> VcardError {
    VcardError::Certificate(e.to_string())
}

/// Creates (or replaces) the card state at `state` with the default layout and a device key generated
/// inside the card, makes a fresh test CA, a device certificate (CN `device-0001`, clientAuth) for the
/// card's key, and a server certificate for `localhost` and `127.0.0.1` (serverAuth). Writes the device
/// and CA certificates into card files `02` and `03`, and into `pki_out`: `ca.pem`, `ca.key` (0600),
/// `server.pem`, `server.key`, `device.pem`.
///
/// `server.key` is written 0644, not 0600: mosquitto started as root drops to user `mosquitto` before
/// it reads its key file, and it is a throwaway loopback test key.
pub fn provision(
    state: &Path,
    pki_out: &Path,
    options: CardOptions,
) -> Result<ProvisionReport, VcardError> {
    fs::create_dir_all(pki_out).map_err(|e| VcardError::io("creating", pki_out, e))?;
    let mut card = VirtualCard::with_default_layout(options);
    let device_point = card
        .store()
        .public_point_of_private(ObjectRef::Id(layout::DEVICE_KEY_ID))
        .ok_or(VcardError::MissingObject("device key"))?;

    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    ca.distinguished_name
        .push(DnType::CommonName, "iotsafe-rs test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(cert_error)?;
    let ca_key_pem = zeroize::Zeroizing::new(ca_key.serialize_pem());
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(cert_error)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
    let server_cert = server.signed_by(&server_key, &issuer).map_err(cert_error)?;

    let mut device = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    device
        .distinguished_name
        .push(DnType::CommonName, DEVICE_COMMON_NAME);
    device.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    device.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let device_cert = device
        .signed_by(&CardPublicKey(device_point.clone()), &issuer)
        .map_err(cert_error)?;

    let store = card.store_mut();
    if !store.write_file(
        ObjectRef::Id(layout::DEVICE_CERT_FILE_ID),
        device_cert.der(),
    ) {
        return Err(VcardError::MissingObject("device certificate file"));
    }
    if !store.write_file(ObjectRef::Id(layout::CA_CERT_FILE_ID), ca_cert.der()) {
        return Err(VcardError::MissingObject("CA certificate file"));
    }
    crate::state::save(state, card.store())?;

    let server_key_pem = zeroize::Zeroizing::new(server_key.serialize_pem());
    let (ca_pem, server_pem, device_pem) = (ca_cert.pem(), server_cert.pem(), device_cert.pem());
    let outputs: [(&str, &[u8], u32); 5] = [
        ("ca.pem", ca_pem.as_bytes(), 0o644),
        ("ca.key", ca_key_pem.as_bytes(), 0o600),
        ("server.pem", server_pem.as_bytes(), 0o644),
        ("server.key", server_key_pem.as_bytes(), 0o644),
        ("device.pem", device_pem.as_bytes(), 0o644),
    ];
    let mut files = Vec::new();
    for (name, contents, mode) in outputs {
        let path = pki_out.join(name);
        write_with_mode(&path, contents, mode)?;
        files.push(path);
    }
    Ok(ProvisionReport {
        state: state.to_path_buf(),
        pki_dir: pki_out.to_path_buf(),
        device_public_key: device_point,
        device_cert_der: device_cert.der().to_vec(),
        ca_cert_der: ca_cert.der().to_vec(),
        files,
    })
}

/// Makes a second CA unrelated to the one [`provision`] made, and a client certificate with a software
/// key issued by it, for "certificate from another CA" tests. Writes `foreign-ca.pem`,
/// `foreign-client.pem` and `foreign-client.key` (0600) into `dir`.
pub fn foreign_client_pki(dir: &Path) -> Result<ForeignPki, VcardError> {
    fs::create_dir_all(dir).map_err(|e| VcardError::io("creating", dir, e))?;
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    ca.distinguished_name
        .push(DnType::CommonName, "foreign test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(cert_error)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut client = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    client
        .distinguished_name
        .push(DnType::CommonName, "foreign-client");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let client_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
    let client_cert = client.signed_by(&client_key, &issuer).map_err(cert_error)?;
    let client_key_pem = zeroize::Zeroizing::new(client_key.serialize_pem());

    let pki = ForeignPki {
        ca_pem: dir.join("foreign-ca.pem"),
        client_pem: dir.join("foreign-client.pem"),
        client_key: dir.join("foreign-client.key"),
    };
    write_with_mode(&pki.ca_pem, ca_cert.pem().as_bytes(), 0o644)?;
    write_with_mode(&pki.client_pem, client_cert.pem().as_bytes(), 0o644)?;
    write_with_mode(&pki.client_key, client_key_pem.as_bytes(), 0o600)?;
    Ok(pki)
}

/// Writes `contents` to `path` with exactly `mode` (set explicitly, whatever the umask or an older file).
fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), VcardError> {
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()
    };
    write().map_err(|e| VcardError::io("writing", path, e))
}
