//! The application: the IoT SAFE applet through iotsafe-core, built without `std` — the same AT
//! client (`AtTransport` over the UART as an `EmbeddedPort`) and card session (`Card`) the host
//! uses. It selects the applet, lists the objects, reads the device certificate, signs a digest
//! with the device key, generates an ephemeral key pair and computes a DH with a fixed peer point,
//! and reports each result (and the APDUs and UART bytes it cost) as `key: value` lines for the
//! host to check.
//!
//! It needs the board only through what it is handed: a UART and the byte counts.

use core::fmt;

use iotsafe_core::at::{AtOptions, AtTransport, EmbeddedPort};
use iotsafe_core::{
    Card, CardConfig, CardSignature, EcPoint, Error, HashAlgorithm, ObjectRef, TransportError,
};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use sha2::{Digest, Sha256};

use iotsafe_mcu::uart::{CmsdkUart, Counts, Tally};

/// What the device key signs: the SHA-256 of this message.
pub const MESSAGE: &[u8] = b"iotsafe-rs on a microcontroller";
/// The peer's private scalar of the DH (a test value the host knows, to check the result).
pub const PEER_SCALAR: [u8; 32] = [7; 32];

/// The objects of the card's default layout this run uses.
const DEVICE_KEY: [u8; 1] = [0x01];
const DEVICE_CERT: [u8; 1] = [0x02];
const EPHEMERAL: [u8; 1] = [0x04];
const PEER_SLOT: [u8; 1] = [0x05];

/// Why the run failed.
#[derive(Debug)]
pub enum AppError {
    /// The modem could not be brought up.
    Modem(TransportError),
    /// A card operation failed.
    Card(&'static str, Error),
    /// The peer scalar is not a P-256 private key.
    PeerKey,
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Modem(e) => write!(f, "bringing up the modem: {e}"),
            AppError::Card(step, e) => write!(f, "{step}: {e}"),
            AppError::PeerKey => write!(f, "the peer scalar is not a P-256 key"),
        }
    }
}

/// Bytes as hex.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

/// Counts one step: the APDUs the session sent and the UART bytes each way.
struct Meter<'a> {
    card: &'a Card,
    tally: &'static Tally,
    log: &'a mut dyn FnMut(fmt::Arguments<'_>),
}

impl Meter<'_> {
    /// Runs `step` named `name`, then reports `steps: name apdus=… tx=… rx=…`.
    fn step<T>(
        &mut self,
        name: &'static str,
        step: impl FnOnce(&Card) -> Result<T, Error>,
    ) -> Result<T, AppError> {
        let (apdus, bytes) = (self.card.stats().apdus, self.tally.counts());
        let value = step(self.card).map_err(|e| AppError::Card(name, e))?;
        let apdus = self.card.stats().apdus - apdus;
        report_step(self.log, name, apdus, bytes, self.tally.counts());
        Ok(value)
    }
}

/// `step: name apdus=… tx=… rx=…`, the bytes being those from `before` to `after`.
fn report_step(
    log: &mut dyn FnMut(fmt::Arguments<'_>),
    name: &str,
    apdus: u64,
    before: Counts,
    after: Counts,
) {
    log(format_args!(
        "step: {name} apdus={apdus} tx={} rx={}",
        after.tx - before.tx,
        after.rx - before.rx
    ));
}

/// Runs the whole sequence on the modem behind `uart`, printing with `log`.
pub fn run(
    uart: CmsdkUart,
    tally: &'static Tally,
    log: &mut dyn FnMut(fmt::Arguments<'_>),
) -> Result<(), AppError> {
    let transport = AtTransport::new(EmbeddedPort::new(uart), "uart0", AtOptions::default())
        .map_err(AppError::Modem)?;
    log(format_args!("modem: {}", transport.quirks().name));
    let opened = tally.counts();
    let card =
        Card::open(transport, CardConfig::default()).map_err(|e| AppError::Card("open", e))?;
    report_step(log, "open", card.stats().apdus, opened, tally.counts());
    let mut meter = Meter {
        card: &card,
        tally,
        log,
    };

    let objects = meter.step("objects", Card::objects)?;
    for o in &objects {
        let label = o.label.as_deref().unwrap_or_default();
        (meter.log)(format_args!(
            "object: {:?} id={} label={}",
            o.kind,
            Hex(o.id.as_deref().unwrap_or_default()),
            core::str::from_utf8(label).unwrap_or("?")
        ));
    }

    let certificate = meter.step("certificate", |c| c.read_file(&ObjectRef::id(DEVICE_CERT)))?;
    (meter.log)(format_args!("certificate: {}", Hex(&certificate)));

    let digest = Sha256::digest(MESSAGE);
    let signature = meter.step("sign", |c| {
        c.sign_digest(&ObjectRef::id(DEVICE_KEY), HashAlgorithm::Sha256, &digest)
    })?;
    match &signature {
        CardSignature::RawRs(rs) => (meter.log)(format_args!("signature: {}", Hex(rs))),
        CardSignature::Der(der) => (meter.log)(format_args!("signature-der: {}", Hex(der))),
    }

    let ephemeral = meter.step("keygen", |c| {
        c.generate_ephemeral(&ObjectRef::id(EPHEMERAL))
    })?;
    (meter.log)(format_args!(
        "ephemeral: {}",
        Hex(ephemeral.key_pair.point.as_bytes())
    ));
    let peer = p256::SecretKey::from_slice(&PEER_SCALAR).map_err(|_| AppError::PeerKey)?;
    let peer = peer.public_key().to_encoded_point(false);
    let peer = EcPoint::from_slice(peer.as_bytes()).ok_or(AppError::PeerKey)?;
    let secret = meter.step("dh", |c| {
        c.ephemeral_agreement(&ephemeral, &ObjectRef::id(PEER_SLOT), &peer)
    })?;
    // The secret itself stays here (and is wiped when dropped): its hash is enough to check it.
    (meter.log)(format_args!(
        "dh-sha256: {}",
        Hex(&Sha256::digest(&secret[..]))
    ));
    drop(secret);

    meter.step("close", Card::close)?;
    Ok(())
}
