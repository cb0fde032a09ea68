//! The virtual card's files: its state file and the test PKI provisioned next to it.

use crate::error::SelectError;
use crate::selection::LatencyProfile;
use std::path::{Path, PathBuf};

/// Files of the test PKI provisioned with a virtual card: a CA, a server certificate and key for
/// `localhost`/`127.0.0.1`, and the device certificate that is also on the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestPki {
    /// Directory holding the files.
    pub dir: PathBuf,
    /// CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// Server certificate (PEM), signed by the CA.
    pub server_cert: PathBuf,
    /// Server private key (PEM, PKCS#8).
    pub server_key: PathBuf,
    /// Device certificate (PEM), the one on the card.
    pub device_cert: PathBuf,
}

/// Where the test PKI of a virtual card state lives: `<dir>/<stem>-pki/`.
pub fn pki_dir_of(state: &Path) -> PathBuf {
    let stem = state
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "card".into());
    state
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(format!("{stem}-pki"))
}

/// The test PKI files in `dir`, if they are all there.
pub fn test_pki_in(dir: &Path) -> Option<TestPki> {
    let pki = TestPki {
        dir: dir.to_path_buf(),
        ca_cert: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        device_cert: dir.join("device.pem"),
    };
    [
        &pki.ca_cert,
        &pki.server_cert,
        &pki.server_key,
        &pki.device_cert,
    ]
    .iter()
    .all(|p| p.is_file())
    .then_some(pki)
}

/// Virtual card options for a latency profile.
pub fn virtual_card_options(latency: LatencyProfile) -> iotsafe_vcard::CardOptions {
    iotsafe_vcard::CardOptions {
        latency: match latency {
            LatencyProfile::None => iotsafe_vcard::Latency::none(),
            LatencyProfile::Sim => iotsafe_vcard::Latency::typical_sim(),
            LatencyProfile::Modem => iotsafe_vcard::Latency::modem(),
        },
        ..iotsafe_vcard::CardOptions::default()
    }
}

/// Provisions a virtual card state with the default layout and a test PKI (`<stem>-pki/` next to
/// it) unless the state file exists; returns whether it was created.
pub fn ensure_virtual_card(state: &Path) -> Result<bool, SelectError> {
    if state.exists() {
        return Ok(false);
    }
    let failed = |source| SelectError::Provision {
        state: state.to_path_buf(),
        source,
    };
    if let Some(parent) = state.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| {
            failed(iotsafe_vcard::VcardError::Io {
                action: "creating",
                path: parent.to_path_buf(),
                source,
            })
        })?;
    }
    iotsafe_vcard::provision(
        state,
        &pki_dir_of(state),
        virtual_card_options(LatencyProfile::None),
    )
    .map_err(failed)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_latency_profile_is_its_vcard_preset() {
        let latency = |profile| virtual_card_options(profile).latency;
        assert_eq!(
            latency(LatencyProfile::None),
            iotsafe_vcard::Latency::none()
        );
        assert_eq!(
            latency(LatencyProfile::Sim),
            iotsafe_vcard::Latency::typical_sim()
        );
        let modem = latency(LatencyProfile::Modem);
        assert_eq!(modem, iotsafe_vcard::Latency::modem());
        assert_eq!(modem.serial.map(|link| link.baud()), Some(115_200));
        assert_eq!(latency(LatencyProfile::Sim).serial, None);
    }
}
