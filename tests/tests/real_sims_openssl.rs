//! TLS 1.3 mutual auth against `openssl s_server` with the card behind REAL pcscd + vpcd, the card
//! acting out behaviours of real SIMs: it closes its own sessions after the final Update (and refuses
//! the host's close with `6985`), it packs its object list one structure per kind with the ID first,
//! and its signatures begin with the unlucky bytes `30 3E` or `33 3E` (a DER header, a `33` TLV
//! header) in each wire form. Each handshake must succeed, with the card's certificate verified by
//! OpenSSL; and a session dropped without `close()` gives its logical channel back.
//!
//! Needs pcscd with the vpcd driver and the `openssl` binary; skips without them unless
//! `IOTSAFE_REQUIRE_SERVICES=1`.
#![cfg(feature = "pcsc")]
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iotsafe_core::{Card, CardStats, ObjectKind, Operation};
use iotsafe_tests::handshake::card_client_config;
use iotsafe_tests::{
    have_program, openssl_server, pcscd_running, provisioned, service, vpcd, vpcd_slot_lock,
    ChildGuard,
};
use iotsafe_vcard::frontend::SharedCard;
use iotsafe_vcard::{
    CardOptions, InfoFieldOrder, ObjectListLayout, SignatureFormat, SignaturePrefix, TlvLengths,
    VirtualCard,
};
use rustls::pki_types::ServerName;

/// Upper bound for any one network step: only catches hangs.
const DEADLINE: Duration = Duration::from_secs(30);

fn services() -> bool {
    service(pcscd_running(), "pcscd") && service(have_program("openssl"), "openssl")
}

/// One handshake and one line each way with s_server; returns the card work it caused.
fn handshake_and_echo(
    card: &Arc<Card>,
    config: Arc<rustls::ClientConfig>,
    server: &mut ChildGuard,
    addr: SocketAddr,
    line: &str,
) -> CardStats {
    let before = card.stats();
    let tcp = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect to s_server");
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).expect("client connection");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(format!("{line}\n").as_bytes())
        .expect("handshake and first record");
    tls.flush().unwrap();
    assert!(
        server.wait_for_log(line, DEADLINE),
        "s_server never got {line:?}: {}",
        server.log()
    );
    server.write_stdin(b"back from s_server\n").unwrap();
    let mut got = Vec::new();
    let started = Instant::now();
    while !got.ends_with(b"back from s_server\n") {
        let mut buf = [0u8; 256];
        let n = tls.read(&mut buf).expect("read s_server's line");
        assert!(n > 0, "s_server closed: {}", server.log());
        got.extend_from_slice(&buf[..n]);
        assert!(started.elapsed() < DEADLINE, "{got:?}");
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
    card.stats().since(&before)
}

#[test]
fn openssl_accepts_the_card_acting_out_real_sim_behaviours() {
    let _slot = vpcd_slot_lock();
    if !services() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (report, _) = provisioned(dir.path(), CardOptions::default());
    let pki = &report.pki_dir;
    let (mut server, addr) = openssl_server(
        dir.path(),
        &pki.join("server.pem"),
        &pki.join("server.key"),
        &pki.join("ca.pem"),
    );

    let mut variants: Vec<(String, CardOptions)> = Vec::new();
    let mut closes = CardOptions::default();
    closes.quirks.close_after_final_update = Some(0x6985);
    variants.push(("card closes its own sessions".into(), closes));
    let mut grouped = CardOptions::default();
    grouped.quirks.object_list_layout = ObjectListLayout::Grouped;
    grouped.quirks.info_field_order = InfoFieldOrder::IdFirst;
    variants.push(("grouped object list, ID first".into(), grouped.clone()));
    // Grouped structures pass 128 bytes: a card writing their lengths as one plain byte (`C1 9A`)
    // puts a length of 81..FF before more structures.
    grouped.quirks.tlv_lengths = TlvLengths::OneByte;
    grouped.quirks.info_field_order = InfoFieldOrder::AttributesFirst;
    variants.push((
        "grouped object list, attributes first, one-byte lengths".into(),
        grouped,
    ));
    for prefix in [[0x30, 0x3E], [0x33, 0x3E]] {
        for format in [
            SignatureFormat::TwoByteLength,
            SignatureFormat::OneByteLength,
            SignatureFormat::Bare,
            SignatureFormat::Der,
        ] {
            let mut unlucky = CardOptions::default();
            unlucky.quirks.signature_format = format;
            unlucky.quirks.signature_prefix = Some(SignaturePrefix::new(&prefix).unwrap());
            variants.push((
                format!(
                    "signature {format:?} beginning {:02X} {:02X}",
                    prefix[0], prefix[1]
                ),
                unlucky,
            ));
        }
    }

    for (n, (what, options)) in variants.into_iter().enumerate() {
        let one_byte_lengths = options.quirks.tlv_lengths == TlvLengths::OneByte;
        let mut vcard = VirtualCard::open_state(&dir.path().join("card.json"), options)
            .expect("open the card state");
        if one_byte_lengths {
            // One more public key makes the grouped `C2` exactly 129 bytes, written `C2 81` with
            // `C3` after it: read as BER, `81` would take the next byte for the length.
            let keys = &mut vcard.store_mut().public_keys;
            let mut extra = keys[0].clone();
            extra.id = vec![0x06];
            extra.label = Some(String::from("backend"));
            keys.push(extra);
        }
        let vcard = Arc::new(Mutex::new(vcard));
        let plugged = vpcd::plug(vcard.clone() as SharedCard);
        let card = vpcd::open_card();
        // The object list as the card packed it: every object keeps its own label.
        let objects = card.objects().expect("object list");
        let labelled = |kind: ObjectKind, id: u8| {
            objects
                .iter()
                .find(|o| o.kind == Some(kind) && o.id.as_deref() == Some(&[id][..]))
                .and_then(|o| o.label.clone())
                .unwrap_or_else(|| panic!("{what}: no {kind} {id:02X} in {objects:?}"))
        };
        assert_eq!(labelled(ObjectKind::PrivateKey, 0x01), b"device", "{what}");
        assert_eq!(labelled(ObjectKind::PrivateKey, 0x04), b"ecdhe", "{what}");
        assert_eq!(labelled(ObjectKind::File, 0x02), b"device-cert", "{what}");
        if one_byte_lengths {
            assert_eq!(labelled(ObjectKind::PublicKey, 0x06), b"backend", "{what}");
        }
        let config = card_client_config(card.clone(), &pki.join("ca.pem"));
        let used = handshake_and_echo(&card, config, &mut server, addr, &format!("variant {n}"));
        eprintln!("{what}: {used:?}");
        assert_eq!(used.count(Operation::Sign), 1, "{what}: {used:?}");
        assert_eq!(used.count(Operation::Dh), 1, "{what}: {used:?}");
        assert_eq!(used.bad_signatures, 0, "{what}");
        for (op, stats) in &used.operations {
            assert_eq!(stats.failures, 0, "{what}: {op:?}: {used:?}");
        }
        // No session close is sent (the sessions are left open), so a card that ends its own
        // sessions costs nothing; closes it refuses are counted where the host closes
        // (`SessionClosing::Always`: tests/faults_at.rs, iotsafe-core/tests/card_behaviours.rs).
        assert_eq!(used.close_failures, 0, "{what}");
        assert_eq!(used.apdus, 6, "{what}: {used:?}");
        // A second session, dropped without close(), gives its logical channel back through
        // pcscd. (The TLS session's card stays open: the key-exchange group keeps it.)
        let channels = || vcard.lock().unwrap().open_channel_count();
        assert_eq!(channels(), 1, "{what}");
        let second = vpcd::open_card();
        assert_eq!(channels(), 2, "{what}");
        drop(second);
        assert_eq!(channels(), 1, "{what}");
        drop(card);
        drop(plugged);
    }
    let log = server.log();
    assert!(log.contains("subject=CN = device-0001"), "{log}");
    assert!(!log.contains("verify error"), "{log}");
}
