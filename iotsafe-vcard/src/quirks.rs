//! [`Quirks`]: behaviours that differ between real IoT SAFE applets and SIMs, one field each, with
//! the value types they take. Every type parses from the text the `iotsafe-vcard serve` flags take
//! (`FromStr`), so the binary and tests spell them the same way.

use std::fmt;
use std::str::FromStr;

/// The standard IoT SAFE AID (`docs/protocol.md#aids`), the one [`Quirks::aids`] holds by default.
pub const STANDARD_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10];

/// Parses `text` (any case) as one of `choices`: each value with the words that name it, the first
/// word being the one an error lists.
pub(crate) fn parse_named<T: Copy>(
    text: &str,
    what: &str,
    choices: &[(&[&str], T)],
) -> Result<T, String> {
    let wanted = text.to_ascii_lowercase();
    if let Some((_, value)) = choices
        .iter()
        .find(|(words, _)| words.contains(&wanted.as_str()))
    {
        return Ok(*value);
    }
    let mut expected: Vec<&str> = choices
        .iter()
        .filter_map(|(words, _)| words.first().copied())
        .collect();
    let last = expected.pop().unwrap_or_default();
    let listed = if expected.is_empty() {
        last.to_string()
    } else {
        format!("{} or {last}", expected.join(", "))
    };
    Err(format!("unknown {what} {wanted:?} (expected {listed})"))
}

/// `FromStr` for a type whose values each have a few names (the words of `iotsafe-vcard serve`
/// flags): `named_values!(Type, "what it is", [Value => "name" | "other name"; …]);`.
macro_rules! named_values {
    ($type:ty, $what:literal, [$($value:expr => $($word:literal)|+);+ $(;)?]) => {
        impl std::str::FromStr for $type {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $crate::quirks::parse_named(s, $what, &[$((&[$($word),+], $value)),+])
            }
        }
    };
}
pub(crate) use named_values;

/// How the card encodes the signature it returns from COMPUTE SIGNATURE (`docs/protocol.md#signature-forms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureFormat {
    /// `33 00 40 r‖s`: two-byte length (ZARIOT, newer Thales, wolfSSL's default).
    #[default]
    TwoByteLength,
    /// `33 40 r‖s`: one-byte length (NTT docomo, older Thales).
    OneByteLength,
    /// `33 L <DER ECDSA-Sig-Value>` (applets Orange mentions that return ASN.1).
    Der,
    /// Bare `r‖s` (64 bytes), no `33` TLV around it.
    Bare,
}

named_values!(SignatureFormat, "signature format", [
    SignatureFormat::TwoByteLength => "33-00-40" | "330040" | "two-byte";
    SignatureFormat::OneByteLength => "33-40" | "3340" | "one-byte";
    SignatureFormat::Der => "der";
    SignatureFormat::Bare => "bare" | "raw";
]);

/// Which class bytes the card accepts for IoT SAFE commands (`docs/protocol.md#class-bytes-and-channels`).
///
/// ISO commands (SELECT, MANAGE CHANNEL, GET RESPONSE) accept both classes under every policy, because
/// hosts send GET RESPONSE with either (atsign uses `8X`, NTT `0X`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClaPolicy {
    /// Accept both `0X`/`4X` and `8X`/`CX` (what real applets evidently do).
    #[default]
    Lenient,
    /// IoT SAFE commands only with the interindustry class `0X`/`4X`.
    InterindustryOnly,
    /// IoT SAFE commands only with the proprietary class `8X`/`CX`.
    ProprietaryOnly,
}

named_values!(ClaPolicy, "class policy", [
    ClaPolicy::Lenient => "lenient" | "any";
    ClaPolicy::InterindustryOnly => "0x" | "interindustry";
    ClaPolicy::ProprietaryOnly => "8x" | "proprietary";
]);

/// A status word written as four hex digits (`6985`), for options that name one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusWord(pub u16);

impl FromStr for StatusWord {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.trim().trim_start_matches("0x").trim_start_matches("0X");
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{s:?} is not a status word (four hex digits, e.g. 6985)"
            ));
        }
        u16::from_str_radix(digits, 16)
            .map(StatusWord)
            .map_err(|e| format!("{s:?}: {e}"))
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}

/// The first one or two bytes the card makes every ECDSA `r‖s` begin with (see
/// [`Quirks::signature_prefix`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignaturePrefix {
    bytes: [u8; 2],
    len: u8,
}

impl SignaturePrefix {
    /// One or two bytes; anything else is refused (a longer prefix would take the card minutes).
    pub fn new(prefix: &[u8]) -> Result<SignaturePrefix, String> {
        match *prefix {
            [a] => Ok(SignaturePrefix {
                bytes: [a, 0],
                len: 1,
            }),
            [a, b] => Ok(SignaturePrefix {
                bytes: [a, b],
                len: 2,
            }),
            _ => Err(format!(
                "a signature prefix is 1 or 2 bytes, not {}",
                prefix.len()
            )),
        }
    }

    /// The prefix bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl FromStr for SignaturePrefix {
    type Err = String;
    /// Hex, spaces allowed: `303E`, `30 3E`, `33`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = crate::hex::decode_spaced(&digits)
            .ok_or_else(|| format!("{s:?} is not hex (e.g. 303E)"))?;
        SignaturePrefix::new(&bytes)
    }
}

/// How GET DATA P1=01 (object list) packs the information structures (`docs/protocol.md#object-list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ObjectListLayout {
    /// One structure per object: `C1 L <key 1> C1 L <key 2> … C2 … C4 … C3 …` (what Orange's parser
    /// needs).
    #[default]
    PerObject,
    /// One structure per object type holding all its objects one after another:
    /// `C1 L { 74 84 … 74 84 … } C2 L { … } C4 L { … } C3 L { … }` (what Thales PKCS#11 also splits:
    /// a new object starts at each label or ID). A type without objects is left out.
    Grouped,
}

named_values!(ObjectListLayout, "object list layout", [
    ObjectListLayout::PerObject => "per-object" | "one-per-object";
    ObjectListLayout::Grouped => "grouped";
]);

/// The order of the fields inside an information structure (object list and GET DATA `C1`..`C4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InfoFieldOrder {
    /// Label, ID, then the attributes (`74 84 60 4A …`), the order Orange's parser requires.
    #[default]
    LabelFirst,
    /// ID, label, then the attributes (`84 74 60 4A …`), the order of the Thales MVP provisioning
    /// descriptors.
    IdFirst,
    /// The attributes first, then label and ID (`60 4A … 74 84`).
    AttributesFirst,
}

named_values!(InfoFieldOrder, "field order", [
    InfoFieldOrder::LabelFirst => "label-first" | "label-id";
    InfoFieldOrder::IdFirst => "id-first" | "id-label";
    InfoFieldOrder::AttributesFirst => "attributes-first";
]);

/// What COMPUTE DH returns (`docs/protocol.md#compute-dh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DhOutput {
    /// The x-coordinate of the shared point (32 bytes), what every host expects.
    #[default]
    RawX,
    /// SHA-1 of the x-coordinate (20 bytes), as Java Card's `ALG_EC_SVDP_DH` computes it.
    Sha1,
}

named_values!(DhOutput, "DH output", [
    DhOutput::RawX => "raw" | "x" | "raw-x";
    DhOutput::Sha1 => "sha1" | "sha-1";
]);

/// How the card writes TLV lengths of 128 bytes and more in its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlvLengths {
    /// BER: `81 xx` for 128..=255, `82 xx xx` above.
    #[default]
    Ber,
    /// One plain byte for 128..=255 (`C1 9A …`), as some cards write; `82 xx xx` above 255, where one
    /// byte cannot hold the length.
    OneByte,
}

named_values!(TlvLengths, "TLV length style", [
    TlvLengths::Ber => "ber";
    TlvLengths::OneByte => "one-byte" | "plain";
]);

/// The most logical channels besides the basic one (ISO 7816-4 / ETSI TS 102 221: 19).
pub const MAX_LOGICAL_CHANNELS: u8 = 19;

/// Behaviours that differ between real applets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quirks {
    /// Encoding of the returned signature. Default `33 00 40 r‖s`.
    pub signature_format: SignatureFormat,
    /// Accepted class bytes. Default: both classes.
    pub cla: ClaPolicy,
    /// SELECT on a closed logical channel opens it (wolfSSL sends `01 A4 ...` without MANAGE CHANNEL).
    /// When false the card answers `6881` as a strict UICC would. Default true.
    pub implicit_channel_on_select: bool,
    /// AIDs the applet answers SELECT to. An empty list makes a card without the applet.
    pub aids: Vec<Vec<u8>>,
    /// Status word for READ FILE past the end of the file: `6A86` (default) or `6981`.
    pub read_past_end_sw: u16,
    /// Most sessions (sign, verify, put key) open at once on one channel; also reported in tag `B7`.
    /// Default 4.
    pub max_sessions: u8,
    /// Sessions closed by the card itself: after the last Update (P1=80) of COMPUTE SIGNATURE, VERIFY
    /// SIGNATURE or PUT PUBLIC KEY the card ends the session, and the host's explicit close of it
    /// (INS `2A`/`2C`/`24` with P1=01) is answered with this status word (e.g. `6985`) instead of
    /// `9000`. Closing a session number that was never opened stays `9000`. Default `None` (the
    /// session stays until closed, and the close answers `9000`).
    pub close_after_final_update: Option<u16>,
    /// An Init (P1=00) of a sign, verify or put-key session whose kind and number are still open
    /// on the channel (the host never closed it) is answered with this status word (e.g. `6985`)
    /// instead of opening the session afresh: the host must close it first. Default `None` (the
    /// Init replaces the open session, which hosts that never close, such as Thales's
    /// middleware, rely on). A card that allows fewer sessions at once ([`Quirks::max_sessions`])
    /// refuses an Init with `6A84` while the others are open.
    pub reopen_refused: Option<u16>,
    /// Volatile keys (type `14`: the ephemeral key pair and the peer public key slot of the default
    /// layout) lose their content on every reset and power cycle (vpcd power off/on/reset, modem
    /// `AT+CFUN=1,1` or `AT+CFUN=0`, an in-process reconnect), as on a Java Card SIM where they live
    /// in transient memory. COMPUTE DH with a wiped key then answers `6985` (conditions of use not
    /// satisfied, as for a peer key never put). Persistent keys and files are kept. Default false
    /// (volatile keys survive a reset; they are still never written to the state file): the client's
    /// fault tests re-run Read Public Key after a reset between Generate Key Pair and it, which only
    /// a card that keeps the key answers.
    pub wipe_volatile_on_reset: bool,
    /// Logical channels the card offers besides the basic channel, 1..=19 (ISO allows up to 19;
    /// many SIMs offer 3). MANAGE CHANNEL open beyond them answers `6A81` (function not supported),
    /// a command or implicit-open SELECT on a higher channel `6881`. 0 offers the basic channel
    /// only; values above 19 act as 19. Default 19.
    pub logical_channels: u8,
    /// How GET DATA P1=01 packs the information structures. Default one structure per object.
    pub object_list_layout: ObjectListLayout,
    /// The order of the fields inside each information structure. Default label, ID, attributes.
    pub info_field_order: InfoFieldOrder,
    /// The card picks its ECDSA nonce so that every raw `r‖s` it returns begins with these bytes
    /// (in every [`SignatureFormat`], the prefix is on `r‖s` itself, e.g. `30 3E` or `33 3E` so a
    /// bare signature looks like a DER or `33` header): a valid signature, just an unlucky one.
    /// Two bytes cost about 65 000 point additions per signature. Default `None`.
    pub signature_prefix: Option<SignaturePrefix>,
    /// READ FILE returns at most this many bytes (with `9000`) even when more were asked and are
    /// there. Default `None` (as many as Le allows).
    pub read_file_max: Option<u16>,
    /// What COMPUTE DH returns. Default the raw x-coordinate.
    pub dh_output: DhOutput,
    /// T=0 only: GET RESPONSE whose Le (absent or `00` meaning 256) exceeds the bytes waiting is
    /// answered `6C xx` (xx = bytes available) and the data stays for a GET RESPONSE with the right
    /// Le, as a strict T=0 card does. Default false: everything waiting comes back with `9000`.
    pub get_response_strict: bool,
    /// How TLV lengths of 128 bytes and more are written in answers. Default BER (`81 xx`).
    pub tlv_lengths: TlvLengths,
}

impl Default for Quirks {
    fn default() -> Self {
        Quirks {
            signature_format: SignatureFormat::default(),
            cla: ClaPolicy::default(),
            implicit_channel_on_select: true,
            aids: vec![STANDARD_AID.to_vec()],
            read_past_end_sw: 0x6A86,
            reopen_refused: None,
            max_sessions: 4,
            close_after_final_update: None,
            wipe_volatile_on_reset: false,
            logical_channels: MAX_LOGICAL_CHANNELS,
            object_list_layout: ObjectListLayout::default(),
            info_field_order: InfoFieldOrder::default(),
            signature_prefix: None,
            read_file_max: None,
            dh_output: DhOutput::default(),
            get_response_strict: false,
            tlv_lengths: TlvLengths::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values() {
        assert_eq!("bare".parse(), Ok(SignatureFormat::Bare));
        assert_eq!("6985".parse(), Ok(StatusWord(0x6985)));
        assert!("698".parse::<StatusWord>().is_err());
        assert!("69G5".parse::<StatusWord>().is_err());
        assert_eq!(StatusWord(0x6A88).to_string(), "6A88");
        let p: SignaturePrefix = "30 3E".parse().unwrap();
        assert_eq!(p.as_bytes(), [0x30, 0x3E]);
        assert_eq!("33".parse::<SignaturePrefix>().unwrap().as_bytes(), [0x33]);
        assert!("303E01".parse::<SignaturePrefix>().is_err());
        assert!("".parse::<SignaturePrefix>().is_err());
        assert_eq!("grouped".parse(), Ok(ObjectListLayout::Grouped));
        assert_eq!("id-first".parse(), Ok(InfoFieldOrder::IdFirst));
        assert_eq!(
            "attributes-first".parse(),
            Ok(InfoFieldOrder::AttributesFirst)
        );
        assert_eq!("sha1".parse(), Ok(DhOutput::Sha1));
        assert_eq!("one-byte".parse(), Ok(TlvLengths::OneByte));
        assert!("flat".parse::<ObjectListLayout>().is_err());
    }
}
