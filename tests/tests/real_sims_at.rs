//! Real-SIM behaviours through the virtual card's AT modem on loopback TCP, with the core client's
//! real AT transport: a modem connection that drops every few card commands while the SIM keeps its
//! state (no logical channel may leak); a SIM reset by another AT connection (`AT+CFUN=1,1`) under
//! a session that holds a pre-generated ephemeral key (the session recovers, TLS handshakes go on);
//! short READ FILE answers; a strict T=0 card answering GET RESPONSE `Le=00` with `6Cxx`; a Java
//! Card DH output (SHA-1 of x, refused); a `+CSIM:` line cut short (refused).
#![cfg(feature = "at")]
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iotsafe_core::at::{AtMode, AtOptions as HostOptions, AtTransport, Deadlines};
use iotsafe_core::config::GetResponseLe;
use iotsafe_core::{
    Card, CardConfig, CommandKind, EcPoint, Error, HashAlgorithm, ObjectRef, TransportError,
};
use iotsafe_tests::handshake::TlsFixture;
use iotsafe_tests::provisioned;
use iotsafe_tests::workout::sign_and_check;
use iotsafe_vcard::frontend::at::{
    AtFault, AtHandle, AtInjection, AtOptions as ModemOptions, DropPlan, DropWhen,
};
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::frontend::SharedCard;
use iotsafe_vcard::{CardOptions, DhOutput, ProvisionReport, TransportMode, VirtualCard};

fn host_options(mode: AtMode) -> HostOptions {
    HostOptions {
        mode,
        deadlines: Deadlines {
            normal: Duration::from_secs(3),
            slow: Duration::from_secs(6),
        },
        ready_timeout: Duration::from_secs(3),
        command_timeout: Duration::from_secs(3),
        ..HostOptions::default()
    }
}

/// A SIM with three logical channels besides the basic one, whose volatile keys a reset wipes.
fn three_channel_sim() -> CardOptions {
    let mut options = CardOptions::default();
    options.quirks.logical_channels = 3;
    options.quirks.wipe_volatile_on_reset = true;
    options
}

/// Serves `card` on a loopback port.
fn modem(card: SharedCard, options: ModemOptions) -> (SocketAddr, AtHandle) {
    let modem = TcpModem::bind("127.0.0.1:0".parse().unwrap()).expect("bind the modem");
    let addr = modem.local_addr().unwrap();
    (addr, modem.spawn(card, options).expect("start the modem"))
}

fn open_channels(card: &Arc<Mutex<VirtualCard>>) -> usize {
    card.lock().unwrap().open_channel_count()
}

#[test]
fn fifty_dropped_modem_connections_leak_no_channel() {
    for mode in [AtMode::Csim, AtMode::Cgla] {
        let vcard = Arc::new(Mutex::new(VirtualCard::with_default_layout(
            three_channel_sim(),
        )));
        // Every 4th card command, after its answer: the host sees the next command fail.
        let drops = DropPlan {
            every: 4,
            when: DropWhen::AfterAnswer,
        };
        let (addr, handle) = modem(
            vcard.clone(),
            ModemOptions {
                drop_every: Some(drops),
                ..ModemOptions::default()
            },
        );
        let transport = AtTransport::connect_tcp_with(addr, host_options(mode)).unwrap();
        let card = Card::open(transport, CardConfig::default()).expect("open over AT");
        let mut failures = 0;
        let mut successes = 0;
        while failures < 50 {
            match card.read_public_key(&ObjectRef::id([1])) {
                Ok(_) => successes += 1,
                Err(Error::Transport { .. }) => failures += 1,
                Err(other) => panic!("{mode:?}: a dropped link must be a transport error: {other}"),
            }
            // The session's one channel, never more: the old one is reused or closed.
            let open = open_channels(&vcard);
            assert!(
                open <= 1,
                "{mode:?}: {open} channels open after {failures} drops"
            );
            assert!(successes + failures < 1_000, "{mode:?}: no progress");
        }
        // Still working, on a logical channel (not the basic one the modem's USIM uses).
        card.read_public_key(&ObjectRef::id([1]))
            .or_else(|_| card.read_public_key(&ObjectRef::id([1])))
            .expect("the session works after 50 drops");
        assert_eq!(open_channels(&vcard), 1, "{mode:?}");
        if mode == AtMode::Csim {
            assert_ne!(card.selection().unwrap().1, 0, "not on the basic channel");
        }
        assert!(successes >= 50, "{mode:?}: {successes} successes");
        eprintln!(
            "{mode:?}: {failures} drops, {successes} reads; {:?}",
            card.stats()
        );
        drop(card);
        assert_eq!(
            open_channels(&vcard),
            0,
            "{mode:?}: the dropped session closed its channel"
        );
        handle.stop().unwrap();
    }
}

/// Sends one AT command on a connection of its own and returns the final result line.
fn at_command(addr: SocketAddr, line: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("second AT connection");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(format!("{line}\r").as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut got = String::new();
    loop {
        got.clear();
        assert!(reader.read_line(&mut got).unwrap() > 0, "{line}: no answer");
        let text = got.trim();
        if text == "OK" || text.contains("ERROR") {
            return text.to_owned();
        }
    }
}

#[test]
fn a_sim_reset_by_another_connection_leaves_the_session_working() {
    for mode in [AtMode::Csim, AtMode::Cgla] {
        let mut served = None;
        let fixture = TlsFixture::over(three_channel_sim(), true, |vcard| {
            let (addr, handle) = modem(Arc::new(Mutex::new(vcard)), ModemOptions::default());
            served = Some((addr, handle));
            let transport = AtTransport::connect_tcp_with(addr, host_options(mode)).unwrap();
            Arc::new(Card::open(transport, CardConfig::default()).expect("open over AT"))
        });
        let (addr, handle) = served.expect("the modem");
        fixture
            .card_handshake()
            .expect("handshake before the reset");
        // A key for the next handshake is ready on the card ...
        fixture.wait_for_background();
        // ... when the modem restarts the SIM for someone else: the key and the channel are gone.
        assert_eq!(at_command(addr, "AT+CFUN=1,1"), "OK");
        let resets_before = fixture.card.stats().card_resets;
        // The handshake whose key was made before the reset cannot succeed (its public key is in
        // the ClientHello already); it fails cleanly, once. Every later one works.
        let mut failed = 0;
        let mut done = 0;
        while done < 3 {
            match fixture.card_handshake() {
                Ok(_) => done += 1,
                Err(e) => {
                    failed += 1;
                    assert!(failed <= 1, "{mode:?}: a second failed handshake: {e}");
                    assert!(
                        e.contains("replaced") || e.contains("generation"),
                        "{mode:?}: {e}"
                    );
                }
            }
            fixture.wait_for_background();
        }
        eprintln!(
            "{mode:?}: {failed} handshake failed after the reset; {:?}",
            fixture.card.stats()
        );
        assert!(
            fixture.card.stats().card_resets > resets_before,
            "{mode:?}: the reset was seen"
        );
        drop(fixture);
        handle.stop().unwrap();
    }
}

/// A provisioned card with `options` behind a modem, and a session on it over AT in `mode`.
struct Rig {
    card: Card,
    report: ProvisionReport,
    handle: AtHandle,
    _dir: tempfile::TempDir,
}

fn rig(options: CardOptions, modem: ModemOptions, mode: AtMode, config: CardConfig) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let (report, vcard) = provisioned(dir.path(), options);
    let (addr, handle) = self::modem(Arc::new(Mutex::new(vcard)), modem);
    let transport = AtTransport::connect_tcp_with(addr, host_options(mode)).unwrap();
    let card = Card::open(transport, config).expect("open over AT");
    Rig {
        card,
        report,
        handle,
        _dir: dir,
    }
}

#[test]
fn short_read_file_answers_are_read_to_the_end() {
    for mode in [AtMode::Csim, AtMode::Cgla] {
        let mut options = CardOptions::default();
        options.quirks.read_file_max = Some(50);
        let r = rig(
            options,
            ModemOptions::default(),
            mode,
            CardConfig::default(),
        );
        let cert = &r.report.device_cert_der;
        assert!(cert.len() > 240, "the certificate spans several chunks");
        // Size from GET DATA for the file, then from the object list.
        assert_eq!(&r.card.read_file(&ObjectRef::id([2])).unwrap(), cert);
        r.card.objects().unwrap();
        assert_eq!(&r.card.read_file(&ObjectRef::id([2])).unwrap(), cert);
        drop(r.card);
        r.handle.stop().unwrap();
    }
}

#[test]
fn a_strict_t0_card_gets_get_response_with_the_length_it_names() {
    for mode in [AtMode::Csim, AtMode::Cgla] {
        let mut options = CardOptions {
            transport: TransportMode::T0,
            ..CardOptions::default()
        };
        options.quirks.get_response_strict = true;
        let config = CardConfig {
            get_response_le: GetResponseLe::Zero,
            ..CardConfig::default()
        };
        let r = rig(options, ModemOptions::default(), mode, config);
        let point = r.card.read_public_key(&ObjectRef::id([1])).unwrap();
        assert_eq!(point.as_bytes(), &r.report.device_public_key[..]);
        sign_and_check(&r.card, &r.report.device_public_key, b"strict T=0");
        assert_eq!(
            &r.card.read_file(&ObjectRef::id([2])).unwrap(),
            &r.report.device_cert_der
        );
        drop(r.card);
        r.handle.stop().unwrap();
    }
}

#[test]
fn a_hashed_dh_output_is_refused_and_the_session_goes_on() {
    let mut options = CardOptions::default();
    options.quirks.dh_output = DhOutput::Sha1;
    let r = rig(
        options,
        ModemOptions::default(),
        AtMode::Cgla,
        CardConfig::default(),
    );
    let key = r.card.generate_ephemeral(&ObjectRef::id([4])).unwrap();
    let peer = EcPoint::from_slice(&r.report.device_public_key).unwrap();
    let err = r
        .card
        .ephemeral_agreement(&key, &ObjectRef::id([5]), &peer)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Malformed {
                command: CommandKind::ComputeDh,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("20 bytes"), "{err}");
    sign_and_check(&r.card, &r.report.device_public_key, b"after the DH");
    drop(r.card);
    r.handle.stop().unwrap();
}

#[test]
fn a_cut_csim_line_is_refused_and_the_session_goes_on() {
    // Card commands on the connection: MANAGE CHANNEL (1), SELECT (2), then COMPUTE SIGNATURE
    // Init (3) and Update (4): the Update's answer line loses its tail.
    let modem = ModemOptions {
        inject: Some(AtInjection::once(AtFault::Truncate(40), 4)),
        ..ModemOptions::default()
    };
    let r = rig(
        CardOptions::default(),
        modem,
        AtMode::Csim,
        CardConfig::default(),
    );
    let err = r
        .card
        .sign_digest(&ObjectRef::id([1]), HashAlgorithm::Sha256, &[7; 32])
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                source: TransportError::Protocol(_),
                ..
            }
        ),
        "{err}"
    );
    sign_and_check(&r.card, &r.report.device_public_key, b"after the cut line");
    drop(r.card);
    r.handle.stop().unwrap();
}
