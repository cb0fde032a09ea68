//! The enrolled chain on the device's file system (IoT SAFE has no command to write a file from
//! the host): written atomically, so a power cut leaves the old chain or the new one, never half.

use crate::error::EstError;
use rustls::pki_types::CertificateDer;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// PEM of `chain`, one CERTIFICATE block each, in order.
pub fn pem(chain: &[CertificateDer<'_>]) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    for certificate in chain {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let text = base64::engine::general_purpose::STANDARD.encode(certificate);
        for line in text.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// Writes `chain` as PEM to `path`: a temporary file beside it, flushed to disk, renamed over
/// `path`, and the folder flushed so that the rename itself survives a power cut.
pub fn write_chain(path: &Path, chain: &[CertificateDer<'_>]) -> Result<(), EstError> {
    let failed = |source| EstError::Store {
        path: path.display().to_string(),
        source,
    };
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| failed(std::io::Error::other("not a file name")))?;
    let temporary = folder.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(pem(chain).as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        std::fs::File::open(folder)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(failed)
}

/// Whether a certificate is due for renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// It expires in this long, more than the renewal window: nothing to do.
    NotDue {
        /// Time left until its notAfter.
        expires_in: Duration,
    },
    /// It expires within the window (or has expired: `expires_in` zero).
    Due {
        /// Time left until its notAfter.
        expires_in: Duration,
    },
}

/// Whether `certificate` expires within `window` of now.
pub fn renewal(certificate: &CertificateDer<'_>, window: Duration) -> Result<Renewal, EstError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|e| EstError::Certificate(format!("the current certificate: {e}")))?;
    let not_after = parsed.validity().not_after.timestamp();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let expires_in = Duration::from_secs(not_after.saturating_sub(now).max(0) as u64);
    Ok(if expires_in > window {
        Renewal::NotDue { expires_in }
    } else {
        Renewal::Due { expires_in }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_pem_chain_that_reads_back_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.pem");
        std::fs::write(&path, "old").unwrap();
        let chain = [
            CertificateDer::from(vec![0x30u8; 100]),
            CertificateDer::from(vec![0x31u8; 3]),
        ];
        write_chain(&path, &chain).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(text.lines().all(|l| l.len() <= 64));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(write_chain(&dir.path().join("missing/x.pem"), &chain).is_err());
    }
}
