//! What the firmware says over TLS: one line to an echo server (`openssl s_server -rev` answers
//! it reversed), or one MQTT 3.1.1 message to a broker (CONNECT, PUBLISH at QoS 1, DISCONNECT).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::session::{Conversation, Failure};

/// The longest answer line kept.
const MAX_LINE: usize = 1024;

/// Sends `hello from <CN>\n`, then waits for one line back.
pub struct EchoLine {
    message: Option<Vec<u8>>,
    answer: Vec<u8>,
}

impl EchoLine {
    /// The line `hello from <cn>`.
    pub fn new(cn: &str) -> Self {
        EchoLine {
            message: Some(format!("hello from {cn}\n").into_bytes()),
            answer: Vec::new(),
        }
    }

    /// The line the server sent back, without its line end.
    pub fn answer(&self) -> Option<&str> {
        let line = self.answer.strip_suffix(b"\n")?;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        core::str::from_utf8(line).ok()
    }
}

impl Conversation for EchoLine {
    fn next_message(&mut self) -> Option<Vec<u8>> {
        self.message.take()
    }

    fn received(&mut self, data: &[u8]) -> Result<(), Failure> {
        if self.answer.len() + data.len() > MAX_LINE {
            return Err(Failure::Protocol("an answer line longer than 1 KiB"));
        }
        self.answer.extend_from_slice(data);
        Ok(())
    }

    fn finished(&self) -> bool {
        self.message.is_none() && self.answer.contains(&b'\n')
    }
}

/// The MQTT exchange's steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Connect,
    AwaitConnack,
    Publish,
    AwaitPuback,
    Disconnect,
    Done,
}

/// The packet identifier of the one PUBLISH.
const PACKET_ID: u16 = 1;

/// Publishes one message at QoS 1 to an MQTT 3.1.1 broker: CONNECT (clean session), CONNACK,
/// PUBLISH, PUBACK, DISCONNECT.
pub struct MqttPublish {
    client_id: String,
    topic: String,
    payload: Vec<u8>,
    step: Step,
    received: Vec<u8>,
}

impl MqttPublish {
    /// Publishes `payload` on `topic` as client `client_id`.
    pub fn new(client_id: &str, topic: &str, payload: &[u8]) -> Self {
        MqttPublish {
            client_id: client_id.into(),
            topic: topic.into(),
            payload: payload.to_vec(),
            step: Step::Connect,
            received: Vec::new(),
        }
    }

    /// The packet of the current step to send, if it sends one.
    fn packet(&self) -> Option<Vec<u8>> {
        match self.step {
            Step::Connect => {
                let mut body = Vec::new();
                put_string(&mut body, "MQTT");
                // Protocol level 4 (3.1.1), flags: clean session; keep-alive 60 s.
                body.extend_from_slice(&[4, 0x02, 0, 60]);
                put_string(&mut body, &self.client_id);
                Some(packet(0x10, &body))
            }
            Step::Publish => {
                let mut body = Vec::new();
                put_string(&mut body, &self.topic);
                body.extend_from_slice(&PACKET_ID.to_be_bytes());
                body.extend_from_slice(&self.payload);
                // PUBLISH, QoS 1.
                Some(packet(0x32, &body))
            }
            Step::Disconnect => Some(packet(0xE0, &[])),
            _ => None,
        }
    }
}

impl Conversation for MqttPublish {
    fn next_message(&mut self) -> Option<Vec<u8>> {
        let packet = self.packet()?;
        self.step = match self.step {
            Step::Connect => Step::AwaitConnack,
            Step::Publish => Step::AwaitPuback,
            _ => Step::Done,
        };
        Some(packet)
    }

    fn received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.received.extend_from_slice(data);
        // CONNACK and PUBACK are both 4 bytes: type, length 2, two bytes.
        while self.received.len() >= 4 {
            let packet: [u8; 4] = self.received[..4].try_into().unwrap_or_default();
            self.received.drain(..4);
            self.step = match (self.step, packet) {
                (Step::AwaitConnack, [0x20, 2, _, 0]) => Step::Publish,
                (Step::AwaitConnack, [0x20, 2, _, _]) => {
                    return Err(Failure::Protocol("the broker refused the CONNECT"))
                }
                (Step::AwaitPuback, [0x40, 2, id_hi, id_lo])
                    if u16::from_be_bytes([id_hi, id_lo]) == PACKET_ID =>
                {
                    Step::Disconnect
                }
                _ => return Err(Failure::Protocol("an MQTT packet out of turn")),
            };
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        self.step == Step::Done
    }
}

/// An MQTT packet: the first byte, the remaining length (variable-length, 7 bits a byte), the
/// body.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(first);
    let mut length = body.len();
    loop {
        let mut byte = (length % 128) as u8;
        length /= 128;
        if length > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if length == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// An MQTT UTF-8 string: two bytes of length, then the bytes.
fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}
