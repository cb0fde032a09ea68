//! The application: reach the IoT SAFE applet through the modem. Echo off (`ATE0`), check the
//! modem answers (`AT`), open a logical channel (MANAGE CHANNEL), SELECT the applet on it, and
//! close the channel again, printing every command and answer.
//!
//! It only needs a byte port and a clock, not the board: this is the part iotsafe-core's AT
//! client and card session replace.

use core::fmt;

use crate::at::{to_hex, AtError, Modem, Port, Response};

/// The IoT SAFE applet's AID (GSMA IoT.05).
pub const IOT_SAFE_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10];
/// How long the modem may take for one command.
pub const DEADLINE_MS: u64 = 5_000;
/// The status word of success.
const SW_OK: u16 = 0x9000;

/// What the run established.
#[derive(Debug)]
pub struct Report {
    /// The logical channel the card opened.
    pub channel: u8,
    /// The SELECT's status word.
    pub select_sw: u16,
}

/// Why the run failed.
#[derive(Debug)]
pub enum AppError<E> {
    /// The modem failed a command or the UART failed.
    At(AtError<E>),
    /// The card answered a step with another status word than 9000.
    Card {
        /// The step.
        step: &'static str,
        /// Its status word.
        sw: u16,
    },
    /// MANAGE CHANNEL returned something other than one channel number in 1..=19.
    BadChannel(alloc::vec::Vec<u8>),
}

impl<E> From<AtError<E>> for AppError<E> {
    fn from(e: AtError<E>) -> Self {
        AppError::At(e)
    }
}

impl<E: fmt::Debug> fmt::Display for AppError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::At(e) => write!(f, "{e}"),
            AppError::Card { step, sw } => write!(f, "{step}: the card answered {sw:04X}"),
            AppError::BadChannel(data) => {
                write!(
                    f,
                    "MANAGE CHANNEL: expected one channel number in 1..=19, got {data:02X?}"
                )
            }
        }
    }
}

/// The class byte for `channel` (ISO 7816-4 §5.4.1): channels 1-3 in the first interindustry
/// class (`0x0n`), 4-19 in the further one (`0x40 + n - 4`).
pub fn cla_for_channel(channel: u8) -> u8 {
    if channel < 4 {
        channel
    } else {
        0x40 | (channel - 4)
    }
}

const OPEN: &str = "MANAGE CHANNEL open";
const SELECT: &str = "SELECT IoT SAFE applet";
const CLOSE: &str = "MANAGE CHANNEL close";

/// Runs the sequence on `modem`, printing each step with `log`. The channel is closed again
/// even when the SELECT fails.
pub fn run<P: Port>(
    modem: &mut Modem<P>,
    log: &mut dyn FnMut(fmt::Arguments<'_>),
) -> Result<Report, AppError<P::Error>> {
    for command in ["ATE0", "AT"] {
        log(format_args!("at> {command}"));
        for line in modem.command(command)? {
            log(format_args!("at< {line}"));
        }
        log(format_args!("at< OK"));
    }

    let open = expect_ok(
        OPEN,
        apdu(modem, log, OPEN, &[0x00, 0x70, 0x00, 0x00, 0x01])?,
    )?;
    let channel = match open.data.as_slice() {
        [n @ 1..=19] => *n,
        _ => return Err(AppError::BadChannel(open.data)),
    };
    log(format_args!("channel: {channel}"));

    let mut select = alloc::vec![cla_for_channel(channel), 0xA4, 0x04, 0x00];
    select.push(IOT_SAFE_AID.len() as u8);
    select.extend_from_slice(&IOT_SAFE_AID);
    let selected = apdu(modem, log, SELECT, &select);
    let closed = apdu(modem, log, CLOSE, &[0x00, 0x70, 0x80, channel]);
    let selected = selected?;
    log(format_args!("select: sw={:04X}", selected.sw));
    let selected = expect_ok(SELECT, selected)?;
    expect_ok(CLOSE, closed?)?;
    Ok(Report {
        channel,
        select_sw: selected.sw,
    })
}

/// Sends one APDU, logging it and the answer, and returns whatever status word came.
fn apdu<P: Port>(
    modem: &mut Modem<P>,
    log: &mut dyn FnMut(fmt::Arguments<'_>),
    step: &'static str,
    apdu: &[u8],
) -> Result<Response, AppError<P::Error>> {
    log(format_args!("apdu> {step}: {}", to_hex(apdu)));
    let response = modem.csim(apdu)?;
    log(format_args!(
        "apdu< {}{:04X}",
        to_hex(&response.data),
        response.sw
    ));
    Ok(response)
}

/// The response when its status word is 9000, else the card's refusal of `step`.
fn expect_ok<E>(step: &'static str, response: Response) -> Result<Response, AppError<E>> {
    match response.sw {
        SW_OK => Ok(response),
        sw => Err(AppError::Card { step, sw }),
    }
}
