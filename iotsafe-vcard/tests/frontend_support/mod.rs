//! A small scripted card for the front-end tests: no applet, just enough ISO 7816 to see every
//! byte the front end delivers, plus commands that act out faults through `handle()`.
#![allow(dead_code)] // each test binary uses its own part

use std::sync::{Arc, Mutex};
use std::time::Duration;

use iotsafe_vcard::frontend::SharedCard;
use iotsafe_vcard::{CardHandler, Reply};

/// ATR offering T=0 and T=1, no historical bytes (TCK = 80 ^ 80 ^ 01).
pub const ATR: [u8; 5] = [0x3B, 0x80, 0x80, 0x01, 0x01];
/// INS that makes the card act out a removal ([`Reply::Disconnect`]).
pub const INS_DISCONNECT: u8 = 0xDD;
/// INS that makes the card stall [`STALL`] before answering `9000`.
pub const INS_STALL: u8 = 0x5A;
/// How long [`INS_STALL`] stalls.
pub const STALL: Duration = Duration::from_millis(300);

/// What happened to the card, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    PowerOn,
    PowerOff,
    Reset,
    Apdu(Vec<u8>),
}

/// The scripted card:
/// - `xx 70 00 00 Le` (MANAGE CHANNEL open) → next free channel, `9000`;
///   `xx 70 80 ch` → `9000` if open else `6881`;
/// - SELECT by name (`A4 04 00`) → `9000`, or `6A82` when the AID starts with `EE`;
/// - [`INS_DISCONNECT`] and [`INS_STALL`] act out faults;
/// - anything else → the CLA byte, then the command data (bytes after Lc), then `9000`: so a test
///   sees both the class byte the card got and the payload.
#[derive(Debug, Default)]
pub struct TestCard {
    pub events: Vec<Event>,
    open: Vec<u8>,
}

impl TestCard {
    /// A fresh card behind a shared lock, plus a typed handle to read its events.
    pub fn shared() -> (SharedCard, Arc<Mutex<TestCard>>) {
        let card = Arc::new(Mutex::new(TestCard::default()));
        let shared: SharedCard = card.clone();
        (shared, card)
    }

    /// Only the APDUs the card received.
    pub fn apdus(&self) -> Vec<Vec<u8>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Apdu(a) => Some(a.clone()),
                _ => None,
            })
            .collect()
    }
}

impl CardHandler for TestCard {
    fn atr(&self) -> Vec<u8> {
        ATR.to_vec()
    }
    fn power_on(&mut self) {
        self.open.clear();
        self.events.push(Event::PowerOn);
    }
    fn power_off(&mut self) {
        self.open.clear();
        self.events.push(Event::PowerOff);
    }
    fn reset(&mut self) {
        self.open.clear();
        self.events.push(Event::Reset);
    }
    fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.events.push(Event::Apdu(apdu.to_vec()));
        match apdu {
            [_, 0x70, 0x00, 0x00, ..] => match (1..=19u8).find(|c| !self.open.contains(c)) {
                Some(ch) => {
                    self.open.push(ch);
                    vec![ch, 0x90, 0x00]
                }
                None => vec![0x6A, 0x81],
            },
            [_, 0x70, 0x80, ch, ..] => match self.open.iter().position(|c| c == ch) {
                Some(i) => {
                    self.open.remove(i);
                    vec![0x90, 0x00]
                }
                None => vec![0x68, 0x81],
            },
            [_, 0xA4, 0x04, 0x00, _, 0xEE, ..] => vec![0x6A, 0x82],
            [_, 0xA4, 0x04, 0x00, ..] => vec![0x90, 0x00],
            [cla, _, _, _, lc, data @ ..] if data.len() >= usize::from(*lc) => {
                let mut out = vec![*cla];
                out.extend_from_slice(&data[..usize::from(*lc)]);
                out.extend_from_slice(&[0x90, 0x00]);
                out
            }
            [cla, ..] => vec![*cla, 0x90, 0x00],
            [] => vec![0x67, 0x00],
        }
    }
    fn handle(&mut self, apdu: &[u8]) -> Reply {
        match apdu {
            [_, INS_DISCONNECT, ..] => {
                self.events.push(Event::Apdu(apdu.to_vec()));
                Reply::Disconnect
            }
            [_, INS_STALL, ..] => {
                self.events.push(Event::Apdu(apdu.to_vec()));
                Reply::Stall(STALL, vec![0x90, 0x00])
            }
            _ => Reply::Answer(self.process(apdu)),
        }
    }
}
