//! How the card behaves on the wire: transport protocol, quirks of real applets, latency.
//!
//! Real IoT SAFE applets differ in details that hosts depend on (see `docs/protocol.md`:
//! `#class-bytes-and-channels`, `#signature-forms`, `#get-response`). A [`CardOptions`] picks one behaviour for each, so a test can reproduce exactly the card in a
//! given trace.

use std::time::Duration;

use crate::faults::FaultPlan;
use crate::quirks::named_values;
pub use crate::quirks::{
    ClaPolicy, DhOutput, InfoFieldOrder, ObjectListLayout, Quirks, SignatureFormat,
    SignaturePrefix, StatusWord, TlvLengths, MAX_LOGICAL_CHANNELS, STANDARD_AID,
};
pub use crate::serial::SerialLink;

/// Everything configurable about one virtual card.
#[derive(Debug, Clone, Default)]
pub struct CardOptions {
    /// T=0 (`61xx` + GET RESPONSE) or T=1 (data with `9000`).
    pub transport: TransportMode,
    /// Behaviours that differ between real applets.
    pub quirks: Quirks,
    /// Time each operation takes.
    pub latency: Latency,
    /// Faults to act out (only through [`crate::CardHandler::handle`]).
    pub faults: FaultPlan,
}

/// The ISO 7816-3 transport protocol the card emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportMode {
    /// T=0 as seen through AT+CSIM: data-bearing answers become `61xx`, wrong Le gives `6Cxx`.
    T0,
    /// T=1 (or a PC/SC reader that hides T=0): data comes back directly with `9000`.
    #[default]
    T1,
}

named_values!(TransportMode, "transport mode", [
    TransportMode::T0 => "t0" | "t=0";
    TransportMode::T1 => "t1" | "t=1";
]);

/// The Thales MVP applet AID (`docs/protocol.md#aids`).
pub const THALES_MVP_AID: [u8; 15] = [
    0xA0, 0x00, 0x00, 0x00, 0x30, 0x53, 0xF1, 0x24, 0x01, 0x77, 0x01, 0x01, 0x49, 0x53, 0x41,
];

/// The NTT docomo applet AID (`docs/protocol.md#aids`).
pub const NTT_AID: [u8; 16] = [
    0xA0, 0x00, 0x00, 0x01, 0x15, 0x70, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x49, 0x53, 0x41, 0x02,
];

/// Named behaviours of the real cards in the traces of `docs/protocol.md#traces`, so a test or the
/// binary can say "behave like the NTT card" in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CardProfile {
    /// The defaults: T=1, `33 00 40`, both class styles, channel opened by SELECT, standard AID.
    #[default]
    Standard,
    /// NTT docomo: T=0 through AT+CGLA, `33 40` signatures, its own AID besides the standard one.
    Ntt,
    /// ZARIOT SIMs driven by atsign: T=0 through AT+CSIM, `33 00 40`, standard AID.
    Zariot,
    /// Thales MVP applet over a T=1 PC/SC reader, its 15-byte AID besides the standard one.
    ThalesMvp,
    /// A strict UICC: SELECT on a closed channel answers `6881` (MANAGE CHANNEL first).
    StrictUicc,
    /// A SIM without the IoT SAFE applet: every SELECT answers `6A82`.
    NoApplet,
}

impl CardProfile {
    /// The card options of this profile, with no latency and no faults.
    pub fn options(self) -> CardOptions {
        let mut options = CardOptions::default();
        let quirks = &mut options.quirks;
        match self {
            CardProfile::Standard => {}
            CardProfile::Ntt => {
                // Its sign trace: `6142` after the last Update, then the signature `33 40 r‖s`.
                options.transport = TransportMode::T0;
                quirks.signature_format = SignatureFormat::OneByteLength;
                quirks.aids.push(NTT_AID.to_vec());
                // The same trace fetches the 66 waiting bytes with GET RESPONSE Le=00 and gets them
                // all with 9000: this card is not a strict T=0 card.
                quirks.get_response_strict = false;
            }
            CardProfile::Zariot => {
                // atsign's traces: every data answer comes as `61xx` then GET RESPONSE with the exact
                // Le, and signatures as `33 00 40 r‖s`.
                options.transport = TransportMode::T0;
                quirks.signature_format = SignatureFormat::TwoByteLength;
            }
            CardProfile::ThalesMvp => {
                // The Quantag trace over a PC/SC reader: key generation answers its data directly
                // with 9000 (T=1), SELECT with Le=00 answers 9000 without FCI.
                options.transport = TransportMode::T1;
                quirks.aids.push(THALES_MVP_AID.to_vec());
            }
            CardProfile::StrictUicc => quirks.implicit_channel_on_select = false,
            CardProfile::NoApplet => quirks.aids.clear(),
        }
        options
    }
}

named_values!(CardProfile, "card profile", [
    CardProfile::Standard => "standard" | "default";
    CardProfile::Ntt => "ntt";
    CardProfile::Zariot => "zariot";
    CardProfile::ThalesMvp => "thales-mvp" | "thales";
    CardProfile::StrictUicc => "strict-uicc" | "strict";
    CardProfile::NoApplet => "no-applet";
]);

/// How long each operation takes; the card sleeps inside `process`, so every front end sees it.
/// Besides the card's own time, the model may hold the serial link between host and modem
/// ([`Latency::serial`]), which the front ends standing for a modem charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    /// Every APDU (transport and command decoding).
    pub apdu: Duration,
    /// COMPUTE SIGNATURE (the Update that signs).
    pub sign: Duration,
    /// VERIFY SIGNATURE (the Update that verifies).
    pub verify: Duration,
    /// GENERATE KEY PAIR.
    pub keygen: Duration,
    /// COMPUTE DH.
    pub dh: Duration,
    /// PUT PUBLIC KEY (the Update that stores the key).
    pub put_key: Duration,
    /// COMPUTE HKDF.
    pub hkdf: Duration,
    /// COMPUTE PRF.
    pub prf: Duration,
    /// GET RANDOM.
    pub random: Duration,
    /// READ FILE.
    pub read: Duration,
    /// The UART between host and modem (`None`: no serial time, the default), charged outside the
    /// card by the front ends that stand for a modem (`crate::serial`): the AT front ends
    /// ([`crate::frontend::at`], pty and TCP) every byte they actually receive and write back;
    /// [`crate::InProcessTransport`] the `AT+CSIM` lines a modem would carry for each APDU. The
    /// vpcd front end charges nothing (a PC/SC reader has no modem UART).
    pub serial: Option<SerialLink>,
}

impl Latency {
    /// No delay at all (unit tests).
    pub fn none() -> Latency {
        Latency::default()
    }

    /// The typical-SIM latency model (`docs/performance.md#latency-model`: apdu 5, put 20, dh 120, sign 150, verify 150,
    /// keygen 250, hkdf 20 ms), derived from published secure-element figures (Java Card
    /// ECDSA ≈145–175 ms, ECDH 123–267 ms); PRF and GET RANDOM are set like HKDF (20 ms) and READ FILE
    /// to 10 ms per chunk, which no source measured.
    pub fn typical_sim() -> Latency {
        let ms = Duration::from_millis;
        Latency {
            apdu: ms(5),
            sign: ms(150),
            verify: ms(150),
            keygen: ms(250),
            dh: ms(120),
            put_key: ms(20),
            hkdf: ms(20),
            prf: ms(20),
            random: ms(20),
            read: ms(10),
            serial: None,
        }
    }

    /// A typical SIM ([`Latency::typical_sim`]) behind a cellular modem's 115,200-baud UART
    /// ([`SerialLink::modem`]): every APDU also crosses the UART as `AT+CSIM` text, 10 bits a byte,
    /// hex doubling the APDU (`docs/performance.md#latency-model`).
    pub fn modem() -> Latency {
        Latency {
            serial: Some(SerialLink::modem()),
            ..Latency::typical_sim()
        }
    }

    /// How long `bytes` bytes take on the serial link ([`SerialLink::time_of`]); zero without one.
    pub fn serial_time(&self, bytes: usize) -> Duration {
        self.serial
            .map_or(Duration::ZERO, |link| link.time_of(bytes))
    }
}

named_values!(Latency, "latency preset", [
    Latency::none() => "none" | "0";
    Latency::typical_sim() => "sim" | "typical-sim";
    Latency::modem() => "modem" | "sim-modem";
]);

/// The operation an APDU performed, which decides the latency added on top of [`Latency::apdu`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Sign,
    Verify,
    KeyGen,
    Dh,
    PutKey,
    Hkdf,
    Prf,
    Random,
    Read,
}

impl Latency {
    pub(crate) fn of(&self, op: Operation) -> Duration {
        match op {
            Operation::Sign => self.sign,
            Operation::Verify => self.verify,
            Operation::KeyGen => self.keygen,
            Operation::Dh => self.dh,
            Operation::PutKey => self.put_key,
            Operation::Hkdf => self.hkdf,
            Operation::Prf => self.prf,
            Operation::Random => self.random,
            Operation::Read => self.read,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_presets() {
        assert_eq!("t0".parse::<TransportMode>(), Ok(TransportMode::T0));
        assert_eq!("T1".parse::<TransportMode>(), Ok(TransportMode::T1));
        assert!("t2".parse::<TransportMode>().is_err());
        assert_eq!("33-40".parse(), Ok(SignatureFormat::OneByteLength));
        assert_eq!("33-00-40".parse(), Ok(SignatureFormat::TwoByteLength));
        assert_eq!("der".parse(), Ok(SignatureFormat::Der));
        assert_eq!("8x".parse(), Ok(ClaPolicy::ProprietaryOnly));
        assert_eq!("0X".parse(), Ok(ClaPolicy::InterindustryOnly));
        assert_eq!("lenient".parse(), Ok(ClaPolicy::Lenient));
        assert_eq!(
            "sim".parse::<Latency>().unwrap().sign,
            Duration::from_millis(150)
        );
        assert_eq!("none".parse::<Latency>().unwrap(), Latency::none());
        assert!("turbo".parse::<Latency>().is_err());
    }

    #[test]
    fn the_serial_link_is_its_own_option() {
        // Off unless asked for: no preset but `modem` charges serial time.
        assert_eq!(Latency::default().serial, None);
        assert_eq!(Latency::none().serial, None);
        assert_eq!(Latency::typical_sim().serial, None);
        assert_eq!(Latency::typical_sim().serial_time(1_000), Duration::ZERO);
        // `modem`: the typical SIM, plus 115,200 baud.
        let modem: Latency = "modem".parse().unwrap();
        assert_eq!(modem, Latency::modem());
        assert_eq!(modem.serial.map(SerialLink::baud), Some(115_200));
        assert_eq!(
            Latency {
                serial: None,
                ..modem
            },
            Latency::typical_sim()
        );
        assert_eq!(modem.serial_time(11_520), Duration::from_secs(1));
    }

    #[test]
    fn profiles() {
        let ntt: CardProfile = "ntt".parse().unwrap();
        let o = ntt.options();
        assert_eq!(o.transport, TransportMode::T0);
        assert_eq!(o.quirks.signature_format, SignatureFormat::OneByteLength);
        assert!(o.quirks.aids.contains(&NTT_AID.to_vec()));
        assert!(CardProfile::NoApplet.options().quirks.aids.is_empty());
        assert!(
            !CardProfile::StrictUicc
                .options()
                .quirks
                .implicit_channel_on_select
        );
        assert_eq!(CardProfile::Standard.options().transport, TransportMode::T1);
        assert!("nokia".parse::<CardProfile>().is_err());
    }

    #[test]
    fn defaults_match_the_brief() {
        let o = CardOptions::default();
        assert_eq!(o.transport, TransportMode::T1);
        assert_eq!(o.quirks.read_past_end_sw, 0x6A86);
        assert!(o.quirks.implicit_channel_on_select);
        assert_eq!(o.quirks.aids, vec![STANDARD_AID.to_vec()]);
    }
}
