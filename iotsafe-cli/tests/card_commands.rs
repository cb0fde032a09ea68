//! Every card subcommand of `iotsafe`, run as a process against an in-process virtual card.

mod common;

use common::{iotsafe, Fixture};

#[test]
fn info_reports_aid_channel_and_capabilities() {
    let f = Fixture::new();
    let info = f.json(&["info"]);
    assert_eq!(info["aid"], "A0000005590010");
    assert!(info["channel"].as_u64().unwrap() <= 19);
    assert_eq!(info["ecdsa"], true);
    assert_eq!(info["ecdh"], true);
    let text = f.run(&["info"]);
    assert!(text.ok());
    assert!(
        text.stdout.contains("AID:               A0000005590010"),
        "{}",
        text.stdout
    );
}

#[test]
fn objects_lists_the_default_layout() {
    let f = Fixture::new();
    let objects = f.json(&["objects"]);
    let list = objects["objects"].as_array().unwrap();
    let find = |kind: &str, id: &str| {
        list.iter()
            .find(|o| o["kind"] == kind && o["id"] == id)
            .unwrap_or_else(|| panic!("no {kind} {id} in {list:?}"))
    };
    assert_eq!(find("private-key", "01")["label"], "device");
    assert_eq!(find("private-key", "01")["usage"], "tls1.3-cert-verify");
    assert_eq!(find("private-key", "04")["key_type_name"], "P-256 volatile");
    assert_eq!(find("public-key", "05")["label"], "peer");
    assert_eq!(find("file", "02")["usage"], "certificate");
    let text = f.run(&["objects"]);
    assert!(text.stdout.starts_with("KIND"), "{}", text.stdout);
}

#[test]
fn cert_summary_matches_the_card_key_and_exports_pem() {
    let f = Fixture::new();
    let cert = f.json(&["cert"]);
    assert_eq!(cert["subject"], "CN=device-0001");
    assert_eq!(cert["issuer"], "CN=iotsafe-rs test CA");
    assert_eq!(cert["key_match"], true);
    assert_eq!(cert["valid_now"], true);
    let ca = f.json(&["cert", "--label", "ca-cert"]);
    assert_eq!(ca["subject"], "CN=iotsafe-rs test CA");
    assert_eq!(ca["key_match"], false);
    let pem = f.run(&["cert", "--file", "02", "--pem"]);
    assert!(pem.ok());
    assert!(pem.stdout.starts_with("-----BEGIN CERTIFICATE-----"));
    // Same certificate as the one provisioning wrote next to the state.
    let provisioned = std::fs::read_to_string(f.pki("device.pem")).unwrap();
    assert_eq!(pem.stdout.trim(), provisioned.trim());
    let out = f.path("device.der");
    assert!(f.run(&["cert", "--out", out.to_str().unwrap()]).ok());
    assert_eq!(std::fs::read(&out).unwrap()[0], 0x30);
}

#[test]
fn pubkey_is_the_certified_key() {
    let f = Fixture::new();
    let key = f.json(&["pubkey", "--key", "01"]);
    let cert = f.json(&["cert"]);
    assert_eq!(key["point"], cert["public_key"]);
    let by_label = f.json(&["pubkey", "--key", "device"]);
    assert_eq!(by_label["point"], key["point"]);
    let pem = f.run(&["pubkey", "--pem"]);
    assert!(pem.stdout.starts_with("-----BEGIN PUBLIC KEY-----"));
}

#[test]
fn sign_then_verify_on_host_and_on_card() {
    let f = Fixture::new();
    let msg = f.path("message.txt");
    let sig = f.path("message.sig");
    std::fs::write(&msg, b"firmware image 1.2.3").unwrap();
    let signed = f.run(&[
        "sign",
        "--key",
        "01",
        "--in",
        msg.to_str().unwrap(),
        "--out",
        sig.to_str().unwrap(),
    ]);
    assert!(signed.ok(), "{}", signed.stderr);
    let der = std::fs::read(&sig).unwrap();
    assert_eq!(der[0], 0x30, "DER SEQUENCE");
    assert!((8..=72).contains(&der.len()));

    // Independent check with p256: ECDSA P-256 over SHA-256 of the file.
    use p256::ecdsa::signature::Verifier;
    let point = f.json(&["pubkey", "--key", "01"])["point"]
        .as_str()
        .unwrap()
        .to_string();
    let point = iotsafe_core::hexutil::decode(&point).unwrap();
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    let signature = p256::ecdsa::Signature::from_der(&der).unwrap();
    vk.verify(b"firmware image 1.2.3", &signature)
        .expect("signature verifies with p256");

    for extra in [&[][..], &["--on-card"][..]] {
        let mut args = vec![
            "verify",
            "--key",
            "01",
            "--in",
            msg.to_str().unwrap(),
            "--sig",
            sig.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let ok = f.run(&args);
        assert!(ok.ok(), "verify {extra:?}: {} {}", ok.stdout, ok.stderr);
        assert!(ok.stdout.contains("signature OK"));
    }
    std::fs::write(&msg, b"firmware image 1.2.4").unwrap();
    for extra in [&[][..], &["--on-card"][..]] {
        let mut args = vec![
            "verify",
            "--in",
            msg.to_str().unwrap(),
            "--sig",
            sig.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let bad = f.run(&args);
        assert_eq!(bad.status, Some(1), "tampered message must fail {extra:?}");
        assert!(bad.stdout.contains("does NOT match"));
    }
    // Hex signature on stdout, verified from a hex file.
    let hex = f.run(&["sign", "--in", msg.to_str().unwrap()]);
    assert!(hex.ok());
    std::fs::write(&sig, hex.stdout.trim()).unwrap();
    assert!(f
        .run(&[
            "verify",
            "--in",
            msg.to_str().unwrap(),
            "--sig",
            sig.to_str().unwrap()
        ])
        .ok());
}

#[test]
fn random_returns_the_requested_length() {
    let f = Fixture::new();
    let r = f.run(&["random", "32"]);
    assert!(r.ok());
    assert_eq!(r.stdout.trim().len(), 64);
    let big = f.json(&["random", "600"]);
    assert_eq!(big["count"], 600);
    assert_eq!(big["hex"].as_str().unwrap().len(), 1200);
    let zero = f.run(&["random", "0"]);
    zero.assert_clean_error();
}

#[test]
fn keygen_replaces_the_key_so_the_certificate_no_longer_matches() {
    let f = Fixture::new();
    let before = f.json(&["pubkey", "--key", "01"])["point"].clone();
    let generated = f.json(&["keygen", "--key", "01"]);
    assert_ne!(generated["point"], before);
    let after = f.json(&["pubkey", "--key", "01"]);
    assert_eq!(
        after["point"], generated["point"],
        "the new key persisted in the state file"
    );
    assert_eq!(f.json(&["cert"])["key_match"], false);
}

#[test]
fn csr_is_signed_by_the_card_key() {
    let f = Fixture::new();
    let out = f.path("device.csr");
    let r = f.run(&[
        "csr",
        "--key",
        "01",
        "--subject",
        "CN=device-0002,O=Acme",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(r.ok(), "{}", r.stderr);
    let pem_text = std::fs::read_to_string(&out).unwrap();
    assert!(pem_text.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    let der = pem::parse(&pem_text).unwrap().into_contents();
    use x509_parser::prelude::FromDer;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
    assert_eq!(
        csr.certification_request_info.subject.to_string(),
        "CN=device-0002, O=Acme"
    );
    // Proof of possession: the request's signature verifies with the card's public key.
    let point = csr
        .certification_request_info
        .subject_pki
        .subject_public_key
        .data
        .to_vec();
    let card_point = f.json(&["pubkey", "--key", "01"])["point"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(iotsafe_core::hexutil::encode(&point), card_point);
    use p256::ecdsa::signature::Verifier;
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    let sig = p256::ecdsa::Signature::from_der(&csr.signature_value.data).unwrap();
    vk.verify(csr.certification_request_info.raw, &sig)
        .expect("CSR signature verifies");
    if common::have("openssl") {
        let check = std::process::Command::new("openssl")
            .args(["req", "-verify", "-noout", "-in", out.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "openssl req -verify: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    let bad = f.run(&["csr", "--key", "01", "--subject", "XX=nope"]);
    bad.assert_clean_error();
    assert!(bad.stderr.contains("--subject"), "{}", bad.stderr);
}

#[test]
fn trace_prints_apdus_with_secrets_redacted() {
    let f = Fixture::new();
    let r = f.run(&["--trace", "random", "8"]);
    assert!(r.ok());
    assert!(r.stderr.contains("→ GET RANDOM"), "{}", r.stderr);
    // The trace starts with the opening: SELECT of the standard AID is in it.
    assert!(r.stderr.contains("A4040007A0000005590010"), "{}", r.stderr);
    assert!(
        r.stderr.contains("redacted"),
        "random bytes must not be traced: {}",
        r.stderr
    );
    assert!(
        !r.stderr.contains(r.stdout.trim()),
        "the random bytes leaked into the trace"
    );
}

#[test]
fn user_mistakes_give_one_clear_line_and_a_failure_status() {
    let f = Fixture::new();
    let unknown = f.run(&["pubkey", "--key", "7F"]);
    unknown.assert_clean_error();
    assert!(
        unknown.stderr.starts_with("iotsafe: error: "),
        "{}",
        unknown.stderr
    );
    assert_eq!(
        unknown.stderr.trim().lines().count(),
        1,
        "{}",
        unknown.stderr
    );

    let no_card = iotsafe(&["info"], f.dir.path());
    no_card.assert_clean_error();
    assert!(
        no_card.stderr.contains("no card selected"),
        "{}",
        no_card.stderr
    );
    assert!(no_card.stderr.contains("--vcard"), "{}", no_card.stderr);

    let missing_input = f.run(&["sign", "--in", "/nonexistent/file"]);
    missing_input.assert_clean_error();
    assert!(missing_input.stderr.contains("/nonexistent/file"));

    let bad_aid = f.run(&["--aid", "zz", "info"]);
    bad_aid.assert_clean_error();
    let wrong_aid = f.run(&["--aid", "A000000559FFFF", "info"]);
    wrong_aid.assert_clean_error();
    assert!(
        wrong_aid.stderr.contains("no IoT SAFE applet"),
        "{}",
        wrong_aid.stderr
    );

    // The AID from the environment, as the PKCS#11 module takes it.
    let wrong_env_aid = f.run_with_env(&["info"], &[("IOTSAFE_AID", "A000000559FFFF")]);
    wrong_env_aid.assert_clean_error();
    assert!(
        wrong_env_aid.stderr.contains("no IoT SAFE applet"),
        "{}",
        wrong_env_aid.stderr
    );
    let env_aid = f.run_with_env(&["info"], &[("IOTSAFE_AID", "A0000005590010")]);
    assert!(env_aid.ok(), "{}", env_aid.stderr);

    let corrupt = f.path("corrupt.json");
    std::fs::write(&corrupt, b"{ not json").unwrap();
    let r = iotsafe(
        &["--vcard", corrupt.to_str().unwrap(), "info"],
        f.dir.path(),
    );
    r.assert_clean_error();

    let usage = f.run(&["sign"]);
    assert_eq!(usage.status, Some(2));
    let two_cards = f.run(&["--reader", "x", "info"]);
    two_cards.assert_clean_error();
    assert!(two_cards.stderr.contains("exclude each other"));
}

#[test]
fn a_missing_state_file_is_provisioned_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sub").join("new.json");
    let r = iotsafe(
        &["--vcard", state.to_str().unwrap(), "--json", "cert"],
        dir.path(),
    );
    assert!(r.ok(), "{}", r.stderr);
    assert!(state.exists());
    assert!(dir.path().join("sub/new-pki/ca.pem").exists());
}

#[test]
fn readers_without_pcsc_support_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = iotsafe(&["readers"], dir.path());
    if cfg!(feature = "pcsc") {
        return;
    }
    r.assert_clean_error();
    assert!(r.stderr.contains("--features pcsc"), "{}", r.stderr);
}
