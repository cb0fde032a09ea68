//! The rustls client configuration from what the card holds: its key (ID `01`) and certificate
//! (file `02`) for client authentication, its CA certificate (file `03`) as the only trust
//! anchor, its ephemeral slot (`04`, peer `05`) for the ECDHE, 32 bytes of its GET RANDOM to seed
//! the random generator; the rest of the provider is `iotsafe-soft`, time comes from the host.
//! No PKI is compiled in: the firmware works with whatever card it is given.

use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec;
use core::time::Duration;

use iotsafe_core::{Card, ObjectRef};
use iotsafe_rustls::certified::certificate_der;
use iotsafe_rustls::{CardCertifiedKey, CardSigningKey, PlainCardKxGroup};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::time_provider::TimeProvider;
use rustls::{ClientConfig, RootCertStore};

use crate::cn::subject_common_name;

const DEVICE_KEY: [u8; 1] = [0x01];
const DEVICE_CERT: [u8; 1] = [0x02];
const CA_CERT: [u8; 1] = [0x03];
const EPHEMERAL: [u8; 1] = [0x04];
const PEER_SLOT: [u8; 1] = [0x05];

/// The configuration, and the device's name for the messages.
pub struct Setup {
    /// The client configuration.
    pub config: Arc<ClientConfig>,
    /// The device certificate's subject common name.
    pub common_name: String,
}

/// Why the configuration could not be made.
pub type SetupError = String;

/// Reads what the configuration needs from the card and builds it.
pub fn client_config(card: &Arc<Card>) -> Result<Setup, SetupError> {
    let random = card
        .get_random(32)
        .map_err(|e| alloc::format!("GET RANDOM: {e}"))?;
    let seed: [u8; 32] = random[..]
        .try_into()
        .map_err(|_| "GET RANDOM: not 32 bytes".to_string())?;
    let kx = PlainCardKxGroup::new(
        card.clone(),
        ObjectRef::id(EPHEMERAL),
        ObjectRef::id(PEER_SLOT),
    )
    .leak();
    let provider = iotsafe_soft::provider(seed, vec![kx]);

    let key =
        CardSigningKey::new(card.clone(), ObjectRef::id(DEVICE_KEY)).map_err(|e| e.to_string())?;
    let certified =
        CardCertifiedKey::read(key, ObjectRef::id(DEVICE_CERT)).map_err(|e| e.to_string())?;
    let common_name = subject_common_name(certified.certificate())
        .ok_or("the device certificate names no subject CN")?
        .to_string();

    let ca_file = card
        .read_file(&ObjectRef::id(CA_CERT))
        .map_err(|e| alloc::format!("reading the CA certificate (file 03): {e}"))?;
    let ca = certificate_der(&ca_file).map_err(|why| alloc::format!("file 03: {why}"))?;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.to_vec()))
        .map_err(|e| alloc::format!("the CA certificate: {e}"))?;

    let config = ClientConfig::builder_with_details(Arc::new(provider), Arc::new(HostTime))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(certified));
    Ok(Setup {
        config: Arc::new(config),
        common_name,
    })
}

/// The host's wall clock through semihosting, for certificate validity.
#[derive(Debug)]
struct HostTime;

impl TimeProvider for HostTime {
    fn current_time(&self) -> Option<UnixTime> {
        iotsafe_mcu::semihost::unix_time()
            .map(|s| UnixTime::since_unix_epoch(Duration::from_secs(s)))
    }
}
