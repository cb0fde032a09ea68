//! The applet: decodes the class byte, routes each instruction to its command, and shapes the answer
//! for the transport protocol (T=0 `61xx`/GET RESPONSE, or T=1).

use zeroize::Zeroizing;

use crate::apdu::{self, Command};
use crate::commands::{channel, data, derive, keys, signature, CommandResult, Outcome};
use crate::profile::{ClaPolicy, Operation, Quirks, TransportMode};
use crate::session::{decode_cla, Channel, CHANNELS};
use crate::store::ObjectStore;
use crate::sw;

/// Instruction bytes (`docs/protocol.md#commands`).
///
/// `iotsafe-core` has the same table for its command builders; the card keeps its own on purpose
/// (the project rule that the card never reuses the client's builders or parsers), so that a wrong
/// byte on one side shows up as a failing exchange instead of agreeing with itself.
pub(crate) mod ins {
    pub const PUT_PUBLIC_KEY_INIT: u8 = 0x24;
    pub const COMPUTE_SIGNATURE_INIT: u8 = 0x2A;
    pub const COMPUTE_SIGNATURE_UPDATE: u8 = 0x2B;
    pub const VERIFY_SIGNATURE_INIT: u8 = 0x2C;
    pub const VERIFY_SIGNATURE_UPDATE: u8 = 0x2D;
    pub const COMPUTE_DH: u8 = 0x46;
    pub const COMPUTE_PRF: u8 = 0x48;
    pub const COMPUTE_HKDF: u8 = 0x4A;
    pub const MANAGE_CHANNEL: u8 = 0x70;
    pub const GET_RANDOM: u8 = 0x84;
    pub const SELECT: u8 = 0xA4;
    pub const READ_FILE: u8 = 0xB0;
    pub const GENERATE_KEY_PAIR: u8 = 0xB9;
    pub const GET_RESPONSE: u8 = 0xC0;
    pub const GET_DATA: u8 = 0xCB;
    pub const READ_PUBLIC_KEY: u8 = 0xCD;
    pub const PUT_PUBLIC_KEY_UPDATE: u8 = 0xD8;
}

/// The applet's whole volatile and persistent state.
#[derive(Debug)]
pub(crate) struct Applet {
    pub store: ObjectStore,
    pub channels: Vec<Channel>,
    pub quirks: Quirks,
    pub transport: TransportMode,
    /// A command changed persistent objects; the card writes its state file.
    pub store_changed: bool,
}

impl Applet {
    pub fn new(store: ObjectStore, quirks: Quirks, transport: TransportMode) -> Applet {
        let mut applet = Applet {
            store,
            channels: (0..CHANNELS).map(|_| Channel::default()).collect(),
            quirks,
            transport,
            store_changed: false,
        };
        applet.reset_channels();
        applet
    }

    /// Power-on / reset: only the basic channel is open, nothing is selected, no sessions; volatile
    /// keys are wiped when the quirk says so.
    pub fn reset(&mut self) {
        self.reset_channels();
        if self.quirks.wipe_volatile_on_reset {
            self.store.clear_volatile();
        }
    }

    fn reset_channels(&mut self) {
        for (number, channel) in self.channels.iter_mut().enumerate() {
            channel.clear();
            channel.open = number == 0;
        }
    }

    /// How many logical channels besides the basic one are open.
    pub fn open_channel_count(&self) -> usize {
        self.channels.iter().skip(1).filter(|c| c.open).count()
    }

    /// Processes one APDU; returns the response (data, SW1, SW2) and the operation performed.
    pub fn process(&mut self, bytes: &[u8]) -> (Vec<u8>, Option<Operation>) {
        let answer = match apdu::parse(bytes) {
            Ok(cmd) => self.route(&cmd),
            Err(status) => Answer::status(status),
        };
        let mut out = answer.data;
        out.extend_from_slice(&answer.sw.to_be_bytes());
        (out, answer.op)
    }

    fn route(&mut self, cmd: &Command<'_>) -> Answer {
        let Some((number, proprietary)) = decode_cla(cmd.cla) else {
            return Answer::status(sw::CLA_NOT_SUPPORTED);
        };
        if number > usize::from(self.quirks.logical_channels) {
            // A channel this card does not offer: it can never be open.
            return Answer::status(sw::CHANNEL_NOT_SUPPORTED);
        }
        if cmd.ins == ins::GET_RESPONSE {
            return self.get_response(cmd, number);
        }
        if let Some(channel) = self.channels.get_mut(number) {
            // Any other command discards an answer nobody fetched.
            channel.pending = Zeroizing::new(Vec::new());
        }
        let result = match cmd.ins {
            ins::MANAGE_CHANNEL => channel::manage_channel(self, cmd, number),
            ins::SELECT => channel::select(self, cmd, number),
            _ => self.applet_command(cmd, number, proprietary),
        };
        let final_update = cmd.p1 == 0x80
            && matches!(
                cmd.ins,
                ins::COMPUTE_SIGNATURE_UPDATE
                    | ins::VERIFY_SIGNATURE_UPDATE
                    | ins::PUT_PUBLIC_KEY_UPDATE
            );
        if final_update && self.quirks.close_after_final_update.is_some() {
            if let Some(channel) = self.channels.get_mut(number) {
                channel.end_finished_sessions();
            }
        }
        match result {
            Ok(outcome) => self.shape(cmd, number, outcome),
            Err(status) => Answer::status(status),
        }
    }

    fn applet_command(
        &mut self,
        cmd: &Command<'_>,
        number: usize,
        proprietary: bool,
    ) -> CommandResult {
        let channel = self.channels.get(number).ok_or(sw::CHANNEL_NOT_SUPPORTED)?;
        if !channel.open {
            return Err(sw::CHANNEL_NOT_SUPPORTED);
        }
        // Without the applet selected, whatever application is current does not know these INS
        // (the non-IoT-SAFE SIM of `docs/protocol.md#traces` answers `6D00`).
        if !channel.selected {
            return Err(sw::INS_NOT_SUPPORTED);
        }
        let class_ok = match self.quirks.cla {
            ClaPolicy::Lenient => true,
            ClaPolicy::InterindustryOnly => !proprietary,
            ClaPolicy::ProprietaryOnly => proprietary,
        };
        let command = command_for(cmd.ins).ok_or(sw::INS_NOT_SUPPORTED)?;
        if !class_ok {
            return Err(sw::CLA_NOT_SUPPORTED);
        }
        command(self, cmd, number)
    }

    /// T=1: data with the status word. T=0: a command that carried data answers `61xx` and keeps
    /// the data for GET RESPONSE (ISO 7816-3 case 4); a case-2 command answers its data directly.
    fn shape(&mut self, cmd: &Command<'_>, number: usize, outcome: Outcome) -> Answer {
        let defer = self.transport == TransportMode::T0
            && cmd.has_data
            && !outcome.data.is_empty()
            && outcome.sw == sw::OK;
        match self.channels.get_mut(number) {
            Some(channel) if defer => {
                let available = outcome.data.len();
                channel.pending = Zeroizing::new(outcome.data);
                Answer {
                    data: Vec::new(),
                    sw: sw::bytes_available(available),
                    op: outcome.op,
                }
            }
            _ => Answer {
                data: outcome.data,
                sw: outcome.sw,
                op: outcome.op,
            },
        }
    }

    /// GET RESPONSE: Le=00 or at least what is available returns everything (a strict T=0 card,
    /// `Quirks::get_response_strict`, answers `6Cxx` to a Le above what is available); a smaller Le
    /// returns that many bytes and `61 rest`.
    fn get_response(&mut self, cmd: &Command<'_>, number: usize) -> Answer {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return Answer::status(sw::WRONG_P1P2);
        }
        let Some(channel) = self.channels.get_mut(number).filter(|c| c.open) else {
            return Answer::status(sw::CHANNEL_NOT_SUPPORTED);
        };
        if channel.pending.is_empty() {
            return Answer::status(sw::CONDITIONS_NOT_SATISFIED);
        }
        let available = channel.pending.len();
        let wanted = cmd.max_response();
        if wanted > available
            && self.quirks.get_response_strict
            && self.transport == TransportMode::T0
        {
            // A strict T=0 card: the wrong Le gets `6Cxx`, and the data waits for the right one.
            return Answer::status(sw::wrong_le(available));
        }
        if wanted >= available {
            let data = std::mem::take(&mut *channel.pending);
            return Answer {
                data,
                sw: sw::OK,
                op: None,
            };
        }
        let rest = channel.pending.split_off(wanted);
        let data = std::mem::replace(&mut *channel.pending, rest);
        Answer {
            data,
            sw: sw::bytes_available(available - wanted),
            op: None,
        }
    }
}

/// An IoT SAFE command of the applet: the applet, the command, and the channel it came on.
type AppletCommand = fn(&mut Applet, &Command<'_>, usize) -> CommandResult;

/// The applet's own commands by instruction byte (the ISO ones, SELECT, MANAGE CHANNEL and GET
/// RESPONSE, are routed before): one list, so the class check and the routing cannot disagree.
fn command_for(instruction: u8) -> Option<AppletCommand> {
    let command: AppletCommand = match instruction {
        ins::GET_DATA => data::get_data,
        ins::READ_FILE => |applet, cmd, _| data::read_file(applet, cmd),
        ins::GET_RANDOM => |_, cmd, _| data::get_random(cmd),
        ins::GENERATE_KEY_PAIR => |applet, cmd, _| keys::generate_key_pair(applet, cmd),
        ins::READ_PUBLIC_KEY => |applet, cmd, _| keys::read_public_key(applet, cmd),
        ins::PUT_PUBLIC_KEY_INIT => keys::put_public_key_init,
        ins::PUT_PUBLIC_KEY_UPDATE => keys::put_public_key_update,
        ins::COMPUTE_SIGNATURE_INIT => signature::sign_init,
        ins::COMPUTE_SIGNATURE_UPDATE => signature::sign_update,
        ins::VERIFY_SIGNATURE_INIT => signature::verify_init,
        ins::VERIFY_SIGNATURE_UPDATE => signature::verify_update,
        ins::COMPUTE_DH => |applet, cmd, _| derive::compute_dh(applet, cmd),
        ins::COMPUTE_PRF => |applet, cmd, _| derive::compute_prf(applet, cmd),
        ins::COMPUTE_HKDF => |applet, cmd, _| derive::compute_hkdf(applet, cmd),
        _ => return None,
    };
    Some(command)
}

/// The response on its way out.
struct Answer {
    data: Vec<u8>,
    sw: u16,
    op: Option<Operation>,
}

impl Answer {
    fn status(sw: u16) -> Answer {
        Answer {
            data: Vec::new(),
            sw,
            op: None,
        }
    }
}
