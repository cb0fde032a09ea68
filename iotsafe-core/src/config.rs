//! How a [`Card`](crate::card::Card) session talks to the applet: AID, channel, class, Le style,
//! session numbers. Defaults suit the cards in the reference; presets reproduce other hosts.

use crate::apdu::ClassStyle;
use crate::commands::{AID_STANDARD, KNOWN_AIDS};
use crate::prelude::*;
use crate::tlv::LengthForm;

/// Which logical channel the session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelStrategy {
    /// The basic channel 0.
    Basic,
    /// MANAGE CHANNEL open (card assigns the number); closed again when the session ends. The
    /// default. When the card refuses (no channel left, or none at all), opening the session fails
    /// with [`Error::NoLogicalChannel`](crate::Error::NoLogicalChannel) unless
    /// [`CardConfig::allow_basic_channel`] is set.
    ManageChannel,
    /// Use this channel without opening it: the card opens it on SELECT (wolfSSL's way, channel 1).
    Implicit(u8),
}

/// The class byte of GET RESPONSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetResponseClass {
    /// Interindustry class on the command's channel (`0X`/`4X`), as ISO 7816-4 defines it and
    /// Thales, wolfSSL and NTT send it. The default.
    Interindustry,
    /// The command's own class byte (atsign sends `8X C0` and ZARIOT cards accept it).
    SameAsCommand,
}

/// The Le of GET RESPONSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetResponseLe {
    /// The count the card announced in `61xx` (Thales, atsign, wolfSSL). The default.
    Announced,
    /// `00`, "everything available" (NTT's host).
    Zero,
}

/// Session numbers (P2) of the multi-step commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionNumbers {
    /// COMPUTE SIGNATURE.
    pub sign: u8,
    /// VERIFY SIGNATURE.
    pub verify: u8,
    /// PUT PUBLIC KEY.
    pub put_public_key: u8,
}

/// When the host closes the card's COMPUTE SIGNATURE, VERIFY SIGNATURE and PUT PUBLIC KEY
/// sessions (the Init with `P1=01`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionClosing {
    /// After every operation, as wolfSSL, Orange and Quantag do: 8 APDUs per handshake on T=1.
    Always,
    /// Sign and put-public-key sessions stay open after their final Update, and the next Init of
    /// the same session opens it afresh (hosts such as Thales's middleware never close): 6 APDUs
    /// per handshake on T=1. A card that refuses an Init while sessions are left open (any status
    /// but success: `6985` from a card that wants the close first, `6A84` from one that allows
    /// fewer sessions at once) has them closed and the Init sent again, once; from then on its
    /// sessions are closed after every operation, as with [`SessionClosing::Always`] (counted in
    /// [`CardStats::reopen_refusals`](crate::CardStats::reopen_refusals)). Verify sessions are
    /// always closed: their yes/no answer is nothing the host could check against a stale
    /// session. The default.
    #[default]
    UnlessRefused,
    /// Never: for a card known to end its sessions itself.
    Never,
}

/// Session configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardConfig {
    /// AIDs to SELECT, tried in order until one answers success.
    pub aids: Vec<Vec<u8>>,
    /// Channel strategy.
    pub channel: ChannelStrategy,
    /// Class style of IoT SAFE commands (SELECT and MANAGE CHANNEL always use the interindustry class).
    pub class: ClassStyle,
    /// Send Le (`00`) on case-4 commands (keygen, read public key, sign update, DH, HKDF, PRF).
    ///
    /// Off by default: every real-card trace in the reference (NTT, ZARIOT, Thales over PC/SC,
    /// wolfSSL) sends them as case 3, and a T=0 card answers `61xx` anyway. Turn on for a card that
    /// insists on ISO case 4 (it shows as `6700` to those commands).
    pub le_in_case4: bool,
    /// Class of GET RESPONSE.
    pub get_response_class: GetResponseClass,
    /// Le of GET RESPONSE.
    pub get_response_le: GetResponseLe,
    /// Le sent with SELECT (`None`: case 3, as wolfSSL, Orange and Thales send it; Quantag sends `00`).
    pub select_le: Option<u8>,
    /// Le of MANAGE CHANNEL open: `01` by default (Orange, Thales), `00` for atsign's form.
    pub open_channel_le: u8,
    /// Session numbers.
    pub sessions: SessionNumbers,
    /// When sign/verify/put-public-key sessions are closed (`P1=01`): by default only where the
    /// card refuses to open a session left open ([`SessionClosing::UnlessRefused`]).
    pub close_sessions: SessionClosing,
    /// Bytes asked per READ FILE (1..=256). 240 by default: some modems truncate 256-byte answers.
    pub read_chunk: u16,
    /// How the signature TLV of VERIFY SIGNATURE Update is written (`33 00 40` by default).
    pub signature_length: LengthForm,
    /// How `9B` chunk lengths are written in full-text signing (one plain byte by default, as the
    /// ZARIOT trace `9B FD` and Orange do).
    pub full_text_length: LengthForm,
    /// Bound on GET RESPONSE / `6Cxx` / continuation rounds of one command.
    pub max_rounds: usize,
    /// With [`ChannelStrategy::ManageChannel`]: when the card opens no logical channel, select the
    /// applet on the basic channel 0 instead of failing. Off by default: behind a modem the basic
    /// channel belongs to the modem's own USIM traffic, and re-selecting on it takes the USIM
    /// application away from the modem. Turn it on only for a card with no logical channels that
    /// nothing else uses (a PC/SC reader with this application alone).
    pub allow_basic_channel: bool,
    /// The name every program on the host uses for this card, for the queue of its volatile key
    /// slots that they share (`iotsafe_core::slots`). `None` (the default): the transport's
    /// route (the PC/SC reader's name, the modem's port); a card only this process reaches (an
    /// in-process virtual card) then has a queue of its own. Set the same name where two routes
    /// reach one SIM (pcscd and a modem's AT port, two AT ports of one modem), e.g. its ICCID.
    pub card_identity: Option<String>,
}

impl Default for CardConfig {
    fn default() -> Self {
        CardConfig {
            aids: vec![AID_STANDARD.to_vec()],
            channel: ChannelStrategy::ManageChannel,
            class: ClassStyle::Proprietary,
            le_in_case4: false,
            get_response_class: GetResponseClass::Interindustry,
            get_response_le: GetResponseLe::Announced,
            select_le: None,
            open_channel_le: 1,
            sessions: SessionNumbers {
                sign: 1,
                verify: 1,
                put_public_key: 2,
            },
            close_sessions: SessionClosing::UnlessRefused,
            read_chunk: 240,
            signature_length: LengthForm::TwoBytes,
            full_text_length: LengthForm::OneByte,
            max_rounds: 32,
            allow_basic_channel: false,
            card_identity: None,
        }
    }
}

impl CardConfig {
    /// Probe the four AIDs seen in the wild, standard first.
    pub fn probing_known_aids(mut self) -> Self {
        self.aids = KNOWN_AIDS.iter().map(|a| a.to_vec()).collect();
        self
    }
    /// Use one AID.
    pub fn with_aid(mut self, aid: &[u8]) -> Self {
        self.aids = vec![aid.to_vec()];
        self
    }
    /// What wolfSSL's IoT-SAFE port sends: SELECT with CLA `01` (implicit channel 1), CLA `81`,
    /// case-3 commands, GET RESPONSE `01 C0`, sign session 1, put-public-key session 2, closes.
    pub fn wolfssl_compatible() -> Self {
        CardConfig {
            channel: ChannelStrategy::Implicit(1),
            close_sessions: SessionClosing::Always,
            ..CardConfig::default()
        }
    }
    /// Thales middleware style: MANAGE CHANNEL, CLA `0X`, session 0, Le on case-4 commands.
    pub fn thales_style() -> Self {
        CardConfig {
            class: ClassStyle::Interindustry,
            le_in_case4: true,
            sessions: SessionNumbers {
                sign: 0,
                verify: 0,
                put_public_key: 0,
            },
            full_text_length: LengthForm::Ber,
            ..CardConfig::default()
        }
    }
}
