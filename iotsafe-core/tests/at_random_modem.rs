//! AtTransport against a modem that answers anything at all (property test over an in-memory
//! port): it never panics, never hangs past its deadlines, and every outcome is typed.
#![cfg(feature = "at")]
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use iotsafe_core::at::{AtMode, AtOptions, AtTransport, Deadlines, ModemQuirks, TimedStream};
use iotsafe_core::{LogicalChannels, Transaction, TransportError};
use proptest::prelude::*;

/// Answers each written line with the next scripted reply, delivered in small reads.
struct ScriptedPort {
    replies: VecDeque<Vec<u8>>,
    incoming: VecDeque<u8>,
    read_size: usize,
}

impl Read for ScriptedPort {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.incoming.is_empty() {
            // Nothing more: behave like a read timeout (with a short real wait, as a port would).
            std::thread::sleep(Duration::from_millis(1));
            return Err(io::Error::new(io::ErrorKind::TimedOut, "quiet"));
        }
        let n = buf.len().min(self.read_size).min(self.incoming.len());
        for slot in buf.iter_mut().take(n) {
            *slot = self.incoming.pop_front().unwrap_or(0);
        }
        Ok(n)
    }
}

impl Write for ScriptedPort {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.ends_with(b"\n") {
            if let Some(reply) = self.replies.pop_front() {
                self.incoming.extend(reply);
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TimedStream for ScriptedPort {
    fn set_read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

fn reply() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\r\nOK\r\n".to_vec()),
        Just(b"\r\nERROR\r\n".to_vec()),
        Just(b"\r\n+CME ERROR: 0\r\n".to_vec()),
        Just(b"\r\n+CSIM: 4,\"9000\"\r\n".to_vec()),
        Just(b"\r\n+CSIM: 7,\"61".to_vec()),
        Just(b"\r\n+CCHO: 2\r\n".to_vec()),
        Just(b"\r\n+CGLA: 4,\"6a82\"\r\n".to_vec()),
        Just(b"\r\nRING\r\n".to_vec()),
        "[0-9A-Fa-f\",: ]{0,20}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..24),
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_modem_output_gives_a_typed_outcome_in_bounded_time(
        replies in proptest::collection::vec(reply(), 0..16),
        read_size in 1usize..40,
        auto in any::<bool>(),
    ) {
        // The opening handshake succeeds, then the modem says whatever the case says.
        let mut script: VecDeque<Vec<u8>> = VecDeque::new();
        script.push_back(b"\r\nOK\r\n".to_vec()); // ATE0
        script.push_back(b"\r\nOK\r\n".to_vec()); // AT
        script.push_back(b"\r\nOK\r\n".to_vec()); // AT+CMEE=1
        script.extend(replies);
        let port = ScriptedPort { replies: script, incoming: VecDeque::new(), read_size };
        let options = AtOptions {
            mode: if auto { AtMode::Auto } else { AtMode::Csim },
            deadlines: Deadlines { normal: Duration::from_millis(20), slow: Duration::from_millis(20) },
            ready_timeout: Duration::from_millis(200),
            command_timeout: Duration::from_millis(20),
            quirks: Some(ModemQuirks { late_answer_grace: Duration::from_millis(5), ..ModemQuirks::GENERIC }),
            ..AtOptions::default()
        };
        let started = Instant::now();
        let mut transport = match AtTransport::new(port, "scripted", options) {
            Ok(t) => t,
            Err(_) => return Ok(()),
        };
        let _ = transport.open_channel(&[0xA0, 0x00, 0x00, 0x05, 0x59, 0x00, 0x10]);
        for _ in 0..4 {
            match transport.transmit(&[0x00, 0xC0, 0x00, 0x00, 0x00]) {
                Ok(response) => prop_assert!(response.len() >= 2),
                Err(TransportError::Timeout { .. })
                | Err(TransportError::Modem { .. })
                | Err(TransportError::Protocol(_))
                | Err(TransportError::RemovedCard)
                | Err(TransportError::ResetCard) => {}
                Err(other) => prop_assert!(false, "unexpected error {other:?}"),
            }
        }
        let _ = transport.close_channel();
        prop_assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    }
}
