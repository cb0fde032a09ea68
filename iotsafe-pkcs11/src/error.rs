//! PKCS#11 return values: the `CKR_*` each call answers, and what a card error becomes.

use cryptoki_sys::*;
use iotsafe_core::{Error, Meaning, TransportError};

/// A PKCS#11 result: the value, or the `CKR_*` the call returns.
pub type P11Result<T> = Result<T, CK_RV>;

/// The `CKR_*` for a failed card operation (noted on standard error when debugging is on).
///
/// - The card gone (removed, reset, reader emptied, exchange cut): `CKR_DEVICE_REMOVED`. The
///   session reconnects on the next operation, which works once the card is back.
/// - The link failed otherwise (pcscd gone, modem silent or garbling, I/O): `CKR_DEVICE_ERROR`.
/// - The card answered with an error status: `CKR_DEVICE_MEMORY` for its memory errors,
///   `CKR_FUNCTION_FAILED` for the rest (a refused command is the card's decision, not a fault).
/// - An answer the client could not read, or a signature that does not verify against the key:
///   `CKR_DEVICE_ERROR` (the device misbehaved; nothing it sent is passed on).
pub fn card_error(error: &Error) -> CK_RV {
    crate::diag::note(format_args!("card: {error}"));
    match error {
        Error::Transport { source, .. } => match source {
            TransportError::RemovedCard
            | TransportError::ResetCard
            | TransportError::NoCard(_)
            | TransportError::NotTransacted => CKR_DEVICE_REMOVED,
            _ => CKR_DEVICE_ERROR,
        },
        Error::Status { sw, .. } => match sw.meaning() {
            Meaning::InsufficientMemory => CKR_DEVICE_MEMORY,
            _ if sw.0 == 0x6581 => CKR_DEVICE_MEMORY,
            _ => CKR_FUNCTION_FAILED,
        },
        Error::Malformed { .. } | Error::Runaway { .. } | Error::SignatureCheck { .. } => {
            CKR_DEVICE_ERROR
        }
        Error::AppletNotFound { .. } | Error::NoLogicalChannel { .. } => CKR_DEVICE_ERROR,
        Error::Poisoned => CKR_GENERAL_ERROR,
        _ => CKR_FUNCTION_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iotsafe_core::{CommandKind, StatusWord};

    #[test]
    fn mapping() {
        let transport = |source| Error::Transport {
            command: CommandKind::ComputeSignature,
            source,
        };
        assert_eq!(
            card_error(&transport(TransportError::RemovedCard)),
            CKR_DEVICE_REMOVED
        );
        assert_eq!(
            card_error(&transport(TransportError::NotTransacted)),
            CKR_DEVICE_REMOVED
        );
        assert_eq!(
            card_error(&transport(TransportError::NoService)),
            CKR_DEVICE_ERROR
        );
        let status = |sw| Error::Status {
            command: CommandKind::ComputeSignature,
            sw: StatusWord(sw),
        };
        assert_eq!(card_error(&status(0x6985)), CKR_FUNCTION_FAILED);
        assert_eq!(card_error(&status(0x6A84)), CKR_DEVICE_MEMORY);
        assert_eq!(card_error(&status(0x6581)), CKR_DEVICE_MEMORY);
    }
}
