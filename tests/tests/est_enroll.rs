//! EST enrolment (`iotsafe-est`) with the key on the virtual card, against the RFC 7030 test
//! server (`iotsafe_tests::est_server`): over TLS 1.3 and TLS 1.2 with basic auth, with TLS client
//! authentication by the card's bootstrap certificate, renewal with the operational certificate,
//! manual approval (202) waited out, bootstrap by CA fingerprint, and each refusal. Then the
//! enrolled certificate is used by `iotsafe connect --cert` against `openssl s_server` trusting
//! only the EST CA.

use iotsafe_core::{Card, CardConfig, ObjectRef};
use iotsafe_est::{enroll, BasicAuth, Enrollment, EstError, EstUrl, Operation, Trust};
use iotsafe_tests::est_server::{EstConfig, EstServer, TlsVersions};
use iotsafe_tests::provisioned;
use iotsafe_vcard::{CardOptions, InProcessTransport, ProvisionReport};
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A provisioned virtual card, opened in process.
fn card(dir: &Path) -> (ProvisionReport, Arc<Card>) {
    let (report, card) = provisioned(dir, CardOptions::default());
    let card = Card::open(InProcessTransport::new(card), CardConfig::default()).expect("open");
    (report, Arc::new(card))
}

/// An enrolment on `server` trusting its CA, with basic credentials `basic`.
fn enrollment(server: &EstServer, basic: Option<(&str, &str)>) -> Enrollment {
    Enrollment {
        url: EstUrl::parse(&server.base_url()).unwrap(),
        trust: Trust::Anchors(vec![server.ca_der()]),
        client_certificate: basic.is_none(),
        basic: basic.map(|(u, p)| BasicAuth::new(u, p)),
        key: ObjectRef::id([0x01]),
        current: None,
        subject: None,
        tls12: false,
        csr_attrs: false,
        new_key: None,
        operation: Operation::Enroll,
        wait: None,
    }
}

/// The SubjectPublicKeyInfo of a certificate.
fn spki(certificate: &[u8]) -> Vec<u8> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).unwrap();
    parsed.public_key().raw.to_vec()
}

fn basic_only(tls: TlsVersions) -> EstConfig {
    EstConfig {
        tls,
        require_basic: true,
        accept_client_cert: false,
        ..EstConfig::default()
    }
}

#[test]
fn enrols_over_tls13_and_tls12_with_basic_auth() {
    for (versions, tls12) in [(TlsVersions::Tls13, false), (TlsVersions::Tls12, true)] {
        let dir = tempfile::tempdir().unwrap();
        let (report, card) = card(dir.path());
        let server = EstServer::start(basic_only(versions));
        let mut request = enrollment(&server, Some(("estuser", "estpwd")));
        request.tls12 = tls12;
        let enrolled = enroll(&card, &request).unwrap_or_else(|e| panic!("{versions:?}: {e}"));
        let issued = server.issued();
        assert_eq!(issued.len(), 1, "{versions:?}");
        assert_eq!(enrolled.chain[0], issued[0]);
        assert_eq!(
            enrolled.chain[1],
            server.ca_der(),
            "the chain ends with the EST CA"
        );
        // The certificate is for the card key; the subject is the bootstrap certificate's.
        assert_eq!(
            spki(&enrolled.chain[0]),
            spki(&report.device_cert_der),
            "{versions:?}"
        );
        let (_, parsed) = x509_parser::parse_x509_certificate(&enrolled.chain[0]).unwrap();
        assert_eq!(parsed.subject().to_string(), "CN=device-0001");
        assert_eq!(server.requests().cacerts, 1);
        assert_eq!(server.requests().simpleenroll, 1);
        // Opening TLS with the card: READ PUBLIC KEY, the object list, the certificate (READ
        // FILE ×2): 4. Two connections (/cacerts, /simpleenroll) of ECDHE on the card: GENERATE
        // KEY PAIR, PUT PUBLIC KEY ×2 (the session left open), COMPUTE DH; offering TLS 1.2 too,
        // a second key generation each (the TLS 1.3 share made before the server chose 1.2). The
        // CSR's signature: 2.
        let expected = 4 + 2 * (4 + u64::from(tls12)) + 2;
        assert_eq!(enrolled.apdus, expected, "{versions:?}");
    }
}

#[test]
fn enrols_with_the_cards_bootstrap_certificate_then_renews_with_the_operational_one() {
    let dir = tempfile::tempdir().unwrap();
    let (report, card) = card(dir.path());
    let server = EstServer::start(EstConfig {
        client_roots: vec![CertificateDer::from(report.ca_cert_der.clone())],
        basic: None,
        ..EstConfig::default()
    });
    let first = enroll(&card, &enrollment(&server, None)).expect("mTLS on the bootstrap cert");
    // As with basic auth, plus the client's CertificateVerify on each connection (2 APDUs).
    assert_eq!(first.apdus, 4 + 2 * (4 + 2) + 2);
    let mut renewal = enrollment(&server, None);
    renewal.operation = Operation::Reenroll;
    renewal.current = Some(("enrolled.pem".into(), first.chain.clone()));
    let second = enroll(&card, &renewal).expect("re-enrolment with the operational cert");
    assert_eq!(server.requests().simplereenroll, 1);
    assert_ne!(first.chain[0], second.chain[0], "a new certificate");
    assert_eq!(spki(&second.chain[0]), spki(&first.chain[0]));
    // The same over TLS 1.2: the card signs the TLS 1.2 CertificateVerify too.
    let old = EstServer::start(EstConfig {
        tls: TlsVersions::Tls12,
        ca: Some((server.ca_der(), server.ca_key())),
        client_roots: vec![CertificateDer::from(report.ca_cert_der.clone())],
        basic: None,
        ..EstConfig::default()
    });
    let mut renewal12 = enrollment(&old, None);
    renewal12.operation = Operation::Reenroll;
    renewal12.tls12 = true;
    renewal12.current = Some(("enrolled.pem".into(), second.chain.clone()));
    let third = enroll(&card, &renewal12).expect("re-enrolment over TLS 1.2");
    assert_eq!(old.requests().simplereenroll, 1);
    // READ PUBLIC KEY (the object list is cached on this session, the certificate comes from
    // the file); two connections, each: two key generations (TLS 1.3 share, then 1.2), PUT ×2,
    // DH, signature ×2 (sessions left open); the CSR's signature.
    assert_eq!(third.apdus, 1 + 2 * (5 + 2) + 2);
    // Re-enrolment without a certificate the server accepts is refused.
    let stranger = EstServer::start(EstConfig {
        basic: None,
        ..EstConfig::default()
    });
    let mut elsewhere = enrollment(&stranger, None);
    elsewhere.operation = Operation::Reenroll;
    let refused = enroll(&card, &elsewhere);
    assert!(
        matches!(refused, Err(EstError::Tls(_))),
        "a server that does not trust the bootstrap CA refuses the connection: {refused:?}"
    );
}

#[test]
fn waits_out_manual_approval_or_says_when_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (_, card) = card(dir.path());
    let server = EstServer::start(EstConfig {
        pending_first: 1,
        retry_after_secs: 1,
        ..basic_only(TlsVersions::Tls13)
    });
    let mut request = enrollment(&server, Some(("estuser", "estpwd")));
    match enroll(&card, &request) {
        Err(EstError::RetryLater { after }) => assert_eq!(after, Duration::from_secs(1)),
        other => panic!("expected 202 → RetryLater, got {other:?}"),
    }
    let server = EstServer::start(EstConfig {
        pending_first: 1,
        retry_after_secs: 1,
        ..basic_only(TlsVersions::Tls13)
    });
    request = enrollment(&server, Some(("estuser", "estpwd")));
    request.wait = Some(Duration::from_secs(20));
    let enrolled = enroll(&card, &request).expect("issued after one wait");
    assert_eq!(enrolled.retries, 1);
    assert_eq!(server.requests().simpleenroll, 2);
}

#[test]
fn bootstraps_trust_from_a_ca_fingerprint_and_refuses_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (_, card) = card(dir.path());
    let server = EstServer::start(basic_only(TlsVersions::Tls13));
    let mut request = enrollment(&server, Some(("estuser", "estpwd")));
    request.trust = Trust::Fingerprint(server.ca_fingerprint_sha256().to_uppercase());
    let enrolled = enroll(&card, &request).expect("bootstrap by fingerprint");
    assert_eq!(enrolled.ca, vec![server.ca_der()]);

    let other = EstServer::start(basic_only(TlsVersions::Tls13));
    request.trust = Trust::Fingerprint(server.ca_fingerprint_sha256());
    request.url = EstUrl::parse(&other.base_url()).unwrap();
    match enroll(&card, &request) {
        Err(EstError::CaChanged { expected, got }) => {
            assert_eq!(expected, server.ca_fingerprint_sha256());
            assert_eq!(got, other.ca_fingerprint_sha256());
        }
        other => panic!("expected CaChanged, got {other:?}"),
    }
    assert_eq!(
        other.requests().simpleenroll,
        0,
        "nothing sent to an unknown CA"
    );
}

#[test]
fn each_refusal_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (_, card) = card(dir.path());
    let server = EstServer::start(basic_only(TlsVersions::Tls13));
    // Wrong password.
    let wrong = enroll(&card, &enrollment(&server, Some(("estuser", "nope"))));
    let Err(e @ EstError::Unauthorized { .. }) = wrong else {
        panic!("expected 401, got {wrong:?}");
    };
    assert!(e.to_string().contains("--password-file"), "{e}");
    // No credentials at all (and no client certificate).
    let mut anonymous = enrollment(&server, None);
    anonymous.client_certificate = false;
    let refused = enroll(&card, &anonymous);
    assert!(
        matches!(refused, Err(EstError::Unauthorized { .. })),
        "{refused:?}"
    );
    // A trust anchor that is not the server's CA: the TLS connection fails, nothing is sent.
    let stranger = EstServer::start(basic_only(TlsVersions::Tls13));
    let mut untrusted = enrollment(&server, Some(("estuser", "estpwd")));
    untrusted.trust = Trust::Anchors(vec![stranger.ca_der()]);
    let refused = enroll(&card, &untrusted);
    assert!(matches!(refused, Err(EstError::Tls(_))), "{refused:?}");
    // A TLS 1.2-only server and a client that offers only TLS 1.3.
    let old = EstServer::start(basic_only(TlsVersions::Tls12));
    let refused = enroll(&card, &enrollment(&old, Some(("estuser", "estpwd"))));
    assert!(matches!(refused, Err(EstError::Tls(_))), "{refused:?}");
    assert!(server.issued().is_empty() && old.issued().is_empty());

    // A certificate issued for another key than the card's is refused, and nothing is returned
    // to store.
    let misissuing = EstServer::start(EstConfig {
        misissue: true,
        ..basic_only(TlsVersions::Tls13)
    });
    let refused = enroll(&card, &enrollment(&misissuing, Some(("estuser", "estpwd"))));
    let Err(e @ EstError::Refused(_)) = refused else {
        panic!("expected Refused, got {refused:?}");
    };
    assert!(e.to_string().contains("not the card key"), "{e}");
    assert_eq!(misissuing.issued().len(), 1);
}

/// The `iotsafe` program the workspace's test run built beside this test (`target/<profile>/`).
fn iotsafe_program() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let program = exe.parent()?.parent()?.join("iotsafe");
    program.is_file().then_some(program)
}

/// Runs `iotsafe --vcard <state> <args>` in `dir`; `(success, stdout, stderr)`.
fn iotsafe(program: &Path, dir: &Path, args: &[&str]) -> (bool, String, String) {
    let state = dir.join("card.json");
    let out = std::process::Command::new(program)
        .arg("--vcard")
        .arg(&state)
        .args(args)
        .current_dir(dir)
        .env_remove("IOTSAFE_READER")
        .env_remove("IOTSAFE_MODEM")
        .env_remove("IOTSAFE_VCARD")
        .output()
        .expect("run iotsafe");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn iotsafe_enroll_renew_and_connect_with_the_enrolled_certificate() {
    use iotsafe_tests::{have_program, service};
    let Some(program) = iotsafe_program() else {
        assert!(
            !iotsafe_tests::services_required(),
            "no iotsafe program beside the test (run the workspace's tests)"
        );
        eprintln!("skipped: no iotsafe program beside the test");
        return;
    };
    if !service(have_program("openssl"), "openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let report = iotsafe_vcard::provision(
        &dir.path().join("card.json"),
        &dir.path().join("pki"),
        CardOptions::default(),
    )
    .expect("provision");
    // Bootstrap: the server trusts the card's factory CA for TLS client authentication.
    let server = EstServer::start(EstConfig {
        client_roots: vec![CertificateDer::from(report.ca_cert_der.clone())],
        basic: None,
        ..EstConfig::default()
    });
    let est_ca = dir.path().join("est-ca.pem");
    std::fs::write(&est_ca, server.ca_pem()).unwrap();
    let url = server.base_url();
    let enroll = |extra: &[&str]| {
        let mut args = vec![
            "enroll",
            "--est",
            url.as_str(),
            "--ca",
            est_ca.to_str().unwrap(),
            "--out",
            "device.pem",
        ];
        args.extend_from_slice(extra);
        iotsafe(&program, dir.path(), &args)
    };
    let (ok, out, err) = enroll(&[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("enrolled"), "{out}");
    let stored = iotsafe_rustls::read_pem_chain(&dir.path().join("device.pem")).unwrap();
    assert_eq!(stored[0], server.issued()[0]);

    // 30 days of validity: outside a 7-day window nothing is sent, inside a 60-day one it renews.
    let (ok, out, err) = enroll(&["--renew-before", "7"]);
    assert!(ok && out.contains("not renewed"), "{out}{err}");
    assert_eq!(server.requests().simpleenroll, 1);
    assert_eq!(server.requests().simplereenroll, 0);
    let (ok, out, err) = enroll(&["--renew-before", "60"]);
    assert!(ok && out.contains("renewed"), "{out}{err}");
    assert_eq!(server.requests().simplereenroll, 1);
    let renewed = iotsafe_rustls::read_pem_chain(&dir.path().join("device.pem")).unwrap();
    assert_eq!(renewed[0], server.issued()[1]);

    // A server that trusts only the EST CA accepts the enrolled certificate, not the bootstrap.
    let pki = dir.path().join("pki");
    let (s_server, address) = iotsafe_tests::openssl_server(
        dir.path(),
        &pki.join("server.pem"),
        &pki.join("server.key"),
        &est_ca,
    );
    let address = address.to_string();
    let card_ca = pki.join("ca.pem");
    let connect = |extra: &[&str]| {
        let mut args = vec![
            "connect",
            address.as_str(),
            "--ca",
            card_ca.to_str().unwrap(),
            "--server-name",
            "localhost",
        ];
        args.extend_from_slice(extra);
        iotsafe(&program, dir.path(), &args)
    };
    let (ok, out, err) = connect(&["--cert", "device.pem"]);
    assert!(ok, "{out}{err}\n{}", s_server.log());
    assert!(out.contains("handshake OK"), "{out}");
    let (ok, _, err) = connect(&[]);
    assert!(!ok, "the bootstrap certificate is not the EST CA's: {err}");
    // A chain for another key is refused before any connection.
    std::fs::write(dir.path().join("other.pem"), server.ca_pem()).unwrap();
    let (ok, _, err) = connect(&["--cert", "other.pem"]);
    assert!(!ok && err.contains("does not match"), "{err}");
}

#[test]
fn csrattrs_the_card_cannot_meet_stop_the_enrolment_before_anything_is_signed() {
    use iotsafe_tests::est_server::csrattrs_der;
    const ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
    const ECDSA_SHA384: &[u64] = &[1, 2, 840, 10045, 4, 3, 3];
    let dir = tempfile::tempdir().unwrap();
    let (_, card) = card(dir.path());
    let wants = |oids: &[&[u64]]| {
        EstServer::start(EstConfig {
            csrattrs: Some(csrattrs_der(oids)),
            ..basic_only(TlsVersions::Tls13)
        })
    };
    let server = wants(&[ECDSA_SHA384]);
    let mut request = enrollment(&server, Some(("estuser", "estpwd")));
    request.csr_attrs = true;
    let signatures = card.stats().of(iotsafe_core::Operation::Sign).count;
    let refused = enroll(&card, &request);
    let Err(EstError::Answer {
        request: asked,
        why,
    }) = refused
    else {
        panic!("expected a refusal of the CsrAttrs, got {refused:?}");
    };
    assert_eq!(asked, "GET /csrattrs");
    assert!(why.contains("ecdsa-with-SHA384"), "{why}");
    assert_eq!(server.requests().simpleenroll, 0);
    assert_eq!(
        card.stats().of(iotsafe_core::Operation::Sign).count,
        signatures,
        "no CSR signed"
    );
    // What the card does, or nothing asked (404): enrolled.
    for server in [
        wants(&[ECDSA_SHA256]),
        EstServer::start(basic_only(TlsVersions::Tls13)),
    ] {
        let mut request = enrollment(&server, Some(("estuser", "estpwd")));
        request.csr_attrs = true;
        enroll(&card, &request).expect("enrolled");
        assert_eq!(server.requests().csrattrs, 1);
    }
}

#[test]
fn a_fresh_key_is_never_made_in_the_slot_that_authenticates_the_enrolment() {
    let dir = tempfile::tempdir().unwrap();
    let (report, card) = card(dir.path());
    let server = EstServer::start(basic_only(TlsVersions::Tls13));
    let mut request = enrollment(&server, Some(("estuser", "estpwd")));
    request.new_key = Some((ObjectRef::id([0x01]), true));
    let refused = enroll(&card, &request);
    assert!(
        matches!(&refused, Err(EstError::Certificate(why)) if why.contains("would replace")),
        "{refused:?}"
    );
    // The device key is untouched: its certificate still certifies it.
    let point = card.read_public_key(&ObjectRef::id([0x01])).unwrap();
    assert_eq!(point.as_bytes(), &report.device_public_key[..]);
    assert!(server.issued().is_empty());
}
