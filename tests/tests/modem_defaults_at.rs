//! Modems at factory defaults, through the virtual card's AT modem on loopback TCP with the core
//! client's real AT transport and a real `Card`: a modem restart from another connection
//! (`AT+CFUN=1,1`) between operations, with the modem at `AT+CMEE=0` (plain `ERROR`; taking
//! `AT+CMEE` or refusing it) and at `AT+CMEE=1`; a SIM switched off and on again at `AT+CMEE=0`
//! (a bare `ERROR` to AT+CSIM is a lost SIM when `AT+CPIN?` fails too); an AT+CCHO answered
//! after the host's deadline (its channel is closed, none leaks); a SIM busy after a reset
//! (AT+CCHO used again, not AT+CSIM). docs/real-sims.md §11 says what each case is.
#![cfg(feature = "at")]
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iotsafe_core::at::{AtMode, AtOptions as HostOptions, AtTransport, Deadlines};
use iotsafe_core::{Card, CardConfig, EcPoint, Error, HashAlgorithm, ObjectRef, TransportError};
use iotsafe_tests::provisioned;
use iotsafe_vcard::frontend::at::{AtFault, AtHandle, AtInjection, AtOptions as ModemOptions};
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::{CardOptions, ProvisionReport, VirtualCard};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use sha2::{Digest, Sha256};

const DEVICE_KEY: u8 = 1;
const EPHEMERAL_SLOT: u8 = 4;
const PEER_SLOT: u8 = 5;

fn host_options(mode: AtMode, command_timeout: Duration) -> HostOptions {
    HostOptions {
        mode,
        deadlines: Deadlines {
            normal: Duration::from_secs(3),
            slow: Duration::from_secs(6),
        },
        ready_timeout: Duration::from_secs(3),
        command_timeout,
        ..HostOptions::default()
    }
}

/// A provisioned SIM with three logical channels whose volatile keys a reset wipes, behind a
/// modem with `modem` options on a loopback port, and a session on it over AT in `mode`.
struct Rig {
    card: Card,
    vcard: Arc<Mutex<VirtualCard>>,
    report: ProvisionReport,
    addr: SocketAddr,
    handle: AtHandle,
    _dir: tempfile::TempDir,
}

fn rig(modem: ModemOptions, host: HostOptions) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let mut options = CardOptions::default();
    options.quirks.logical_channels = 3;
    options.quirks.wipe_volatile_on_reset = true;
    let (report, vcard) = provisioned(dir.path(), options);
    let vcard = Arc::new(Mutex::new(vcard));
    let listener = TcpModem::bind("127.0.0.1:0".parse().unwrap()).expect("bind the modem");
    let addr = listener.local_addr().unwrap();
    let handle = listener
        .spawn(vcard.clone(), modem)
        .expect("start the modem");
    let transport = AtTransport::connect_tcp_with(addr, host).expect("connect to the modem");
    let card = Card::open(transport, CardConfig::default()).expect("open over AT");
    Rig {
        card,
        vcard,
        report,
        addr,
        handle,
        _dir: dir,
    }
}

impl Rig {
    /// Another host on the same modem sends `command`; its answer lines (echo left out), up to
    /// and including the final result.
    fn other_host(&self, command: &str) -> Vec<String> {
        let mut stream = TcpStream::connect(self.addr).expect("a second AT connection");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(format!("{command}\r").as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut lines = Vec::new();
        loop {
            let mut got = String::new();
            assert!(
                reader.read_line(&mut got).unwrap() > 0,
                "{command}: no answer"
            );
            let text = got.trim();
            if text.is_empty() || text == command {
                continue;
            }
            lines.push(text.to_owned());
            if text == "OK" || text.contains("ERROR") {
                return lines;
            }
        }
    }

    /// The modem restarts, the SIM with it, at another host's request.
    fn restart_modem(&self) {
        assert_eq!(self.other_host("AT+CFUN=1,1"), ["OK"]);
    }

    /// The card's count of open logical channels, as the modem reports it (`AT#CHANNELS?`).
    fn open_channels(&self) -> usize {
        let answer = self.other_host("AT#CHANNELS?");
        let count = answer
            .first()
            .and_then(|l| l.strip_prefix("#CHANNELS: "))
            .and_then(|n| n.parse().ok());
        count.unwrap_or_else(|| panic!("AT#CHANNELS? answered {answer:?}"))
    }

    fn sign(&self) -> Result<(), Error> {
        let public = EcPoint::from_slice(&self.report.device_public_key).unwrap();
        let digest = Sha256::digest(b"modems at factory defaults");
        self.card
            .sign_digest_checked(
                &ObjectRef::id([DEVICE_KEY]),
                HashAlgorithm::Sha256,
                &digest,
                &public,
            )
            .map(drop)
    }

    /// A key generated on the card and an agreement with it, checked against the host's own.
    fn generate_and_agree(&self) -> Result<(), Error> {
        let key = self
            .card
            .generate_ephemeral(&ObjectRef::id([EPHEMERAL_SLOT]))?;
        let peer = p256::SecretKey::from_slice(&[0x5A; 32]).unwrap();
        let peer_point =
            EcPoint::from_slice(peer.public_key().to_encoded_point(false).as_bytes()).unwrap();
        let shared =
            self.card
                .ephemeral_agreement(&key, &ObjectRef::id([PEER_SLOT]), &peer_point)?;
        let ours = p256::PublicKey::from_sec1_bytes(key.key_pair.point.as_bytes()).unwrap();
        let expected = p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), ours.as_affine());
        assert_eq!(&shared[..], &expected.raw_secret_bytes()[..]);
        Ok(())
    }

    fn stop(self) {
        drop(self.card);
        self.handle.stop().unwrap();
    }
}

#[test]
fn after_a_modem_restart_from_another_connection_every_operation_succeeds() {
    let modems = [
        (
            "AT+CMEE=0 at start",
            ModemOptions {
                cmee: 0,
                ..ModemOptions::default()
            },
        ),
        (
            "AT+CMEE=0, AT+CMEE refused",
            ModemOptions {
                cmee: 0,
                cmee_settable: false,
                ..ModemOptions::default()
            },
        ),
        ("AT+CMEE=1 at start", ModemOptions::default()),
    ];
    for (modem, options) in modems {
        for mode in [AtMode::Auto, AtMode::Cgla, AtMode::Csim] {
            let rig = rig(options.clone(), host_options(mode, Duration::from_secs(3)));
            let case = format!("{modem}, {mode:?}");
            rig.sign()
                .unwrap_or_else(|e| panic!("{case}: first signature: {e}"));
            for round in 1..=2 {
                rig.restart_modem();
                rig.sign()
                    .unwrap_or_else(|e| panic!("{case}: signature after restart {round}: {e}"));
                rig.restart_modem();
                rig.generate_and_agree()
                    .unwrap_or_else(|e| panic!("{case}: key agreement after restart {round}: {e}"));
                assert_eq!(rig.open_channels(), 1, "{case}: round {round}");
            }
            let stats = rig.card.stats();
            assert!(stats.card_resets >= 4, "{case}: {stats:?}");
            if mode != AtMode::Csim {
                assert!(
                    rig.card.describe().contains("AT+CCHO/AT+CGLA"),
                    "{case}: {}",
                    rig.card.describe()
                );
            }
            let vcard = rig.vcard.clone();
            rig.stop();
            assert_eq!(vcard.lock().unwrap().open_channel_count(), 0, "{case}");
        }
    }
}

#[test]
fn the_channel_a_late_ccho_answer_opened_is_closed() {
    for mode in [AtMode::Auto, AtMode::Cgla] {
        // Card commands on the host's connection: AT+CCHO at open (1); after the restart the
        // first AT+CGLA (2) finds its session gone, and the AT+CCHO that reopens it (3) is
        // answered only after the host's deadline, when the host writes its next line.
        let modem = ModemOptions {
            inject: Some(AtInjection::once(AtFault::Late, 3)),
            ..ModemOptions::default()
        };
        let rig = rig(modem, host_options(mode, Duration::from_millis(500)));
        rig.restart_modem();
        match rig.sign() {
            Err(Error::Transport {
                source: TransportError::Timeout { command, .. },
                ..
            }) => assert!(command.starts_with("AT+CCHO="), "{mode:?}: {command}"),
            other => panic!("{mode:?}: expected the AT+CCHO to time out, got {other:?}"),
        }
        // The card opened that channel all the same.
        assert_eq!(rig.open_channels(), 1, "{mode:?}");
        // The next operation recovers: the late answer names the channel, which is closed
        // before a new one is opened.
        rig.sign()
            .unwrap_or_else(|e| panic!("{mode:?}: signature after the late answer: {e}"));
        rig.generate_and_agree()
            .unwrap_or_else(|e| panic!("{mode:?}: key agreement after the late answer: {e}"));
        assert_eq!(rig.open_channels(), 1, "{mode:?}: a channel leaked");
        let vcard = rig.vcard.clone();
        rig.stop();
        assert_eq!(vcard.lock().unwrap().open_channel_count(), 0, "{mode:?}");
    }
}

#[test]
fn a_sim_busy_after_a_restart_leaves_ccho_in_use() {
    let modems = [
        ModemOptions {
            busy_after_reset: 1,
            ..ModemOptions::default()
        },
        // At AT+CMEE=0, with AT+CMEE refused, "SIM busy" is a plain ERROR.
        ModemOptions {
            busy_after_reset: 1,
            cmee: 0,
            cmee_settable: false,
            ..ModemOptions::default()
        },
    ];
    for modem in modems {
        let case = format!("AT+CMEE={}", modem.cmee);
        let rig = rig(modem, host_options(AtMode::Auto, Duration::from_secs(3)));
        rig.sign()
            .unwrap_or_else(|e| panic!("{case}: first signature: {e}"));
        rig.restart_modem();
        // The operation that finds the SIM still starting fails, typed, as a reset ...
        match rig.sign() {
            Err(Error::Transport {
                source: TransportError::ResetCard,
                ..
            }) => {}
            other => panic!("{case}: expected the busy SIM as a reset, got {other:?}"),
        }
        // ... and the next one opens its channel with AT+CCHO again.
        rig.sign()
            .unwrap_or_else(|e| panic!("{case}: signature after the busy SIM: {e}"));
        rig.generate_and_agree()
            .unwrap_or_else(|e| panic!("{case}: key agreement after the busy SIM: {e}"));
        assert!(
            rig.card.describe().contains("AT+CCHO/AT+CGLA"),
            "{case}: {}",
            rig.card.describe()
        );
        assert_eq!(rig.open_channels(), 1, "{case}");
        rig.stop();
    }
}

#[test]
fn a_sim_switched_off_at_cmee_0_is_a_lost_sim_and_works_again_once_on() {
    // Every failure a bare ERROR, AT+CMEE refused.
    let modem = ModemOptions {
        cmee: 0,
        cmee_settable: false,
        ..ModemOptions::default()
    };
    for mode in [AtMode::Csim, AtMode::Cgla] {
        let rig = rig(modem.clone(), host_options(mode, Duration::from_secs(3)));
        rig.sign()
            .unwrap_or_else(|e| panic!("{mode:?}: first signature: {e}"));
        assert_eq!(rig.other_host("AT+CFUN=0"), ["OK"]);
        match (mode, rig.sign()) {
            // AT+CSIM: `AT+CPIN?` fails too, so the SIM is gone, as `+CME ERROR: 13` says.
            (
                AtMode::Csim,
                Err(Error::Transport {
                    source: TransportError::RemovedCard,
                    ..
                }),
            ) => {}
            // AT+CGLA: read as a lost channel; reopening it fails while the SIM is off.
            (
                AtMode::Cgla,
                Err(Error::Transport {
                    source: TransportError::ResetCard,
                    ..
                }),
            ) => {}
            (_, other) => panic!("{mode:?}: expected the SIM lost, got {other:?}"),
        }
        assert_eq!(rig.other_host("AT+CFUN=1"), ["OK"]);
        rig.sign()
            .unwrap_or_else(|e| panic!("{mode:?}: signature with the SIM back: {e}"));
        rig.generate_and_agree()
            .unwrap_or_else(|e| panic!("{mode:?}: key agreement with the SIM back: {e}"));
        assert_eq!(rig.open_channels(), 1, "{mode:?}");
        rig.stop();
    }
}
