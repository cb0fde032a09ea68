//! Security properties of the core client against the virtual card: the private key never leaves
//! the card on any path the client can take (success, refusal, injected fault), secrets come back
//! in `Zeroizing` buffers, traces redact them also on the T=0 GET RESPONSE path, and every crate
//! forbids `unsafe`.

use std::sync::{Arc, Mutex};

use iotsafe_core::Transaction;
use iotsafe_core::{
    Card, CardConfig, Direction, EcPoint, Error, HashAlgorithm, ObjectRef, TraceEvent, Transport,
    TransportError,
};
use iotsafe_vcard::{
    CardOptions, CardProfile, FaultPlan, InProcessTransport, TransportMode, VirtualCard,
};
use zeroize::Zeroizing;

/// The in-process transport, keeping every byte that crossed it.
#[derive(Clone)]
struct Recorder {
    inner: InProcessTransport,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Transaction for Recorder {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let answer = self.inner.transmit(command);
        let mut seen = self.seen.lock().unwrap();
        seen.extend_from_slice(command);
        if let Ok(a) = &answer {
            seen.extend_from_slice(a);
        }
        answer
    }
}

impl Transport for Recorder {
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, TransportError> {
        Ok(Box::new(self))
    }
    fn reconnect(&mut self) -> Result<(), TransportError> {
        self.inner.reconnect()
    }
}

struct Rig {
    card: Card,
    vcard: Arc<Mutex<VirtualCard>>,
    seen: Arc<Mutex<Vec<u8>>>,
    trace: Arc<Mutex<Vec<TraceEvent>>>,
}

fn rig(options: CardOptions, config: CardConfig) -> Rig {
    let inner = InProcessTransport::new(VirtualCard::with_default_layout(options));
    let vcard = inner.card();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder {
        inner,
        seen: Arc::clone(&seen),
    };
    let card = Card::open(recorder, config).unwrap();
    let trace = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&trace);
    card.set_trace(Some(Arc::new(move |e: &TraceEvent| {
        sink.lock().unwrap().push(e.clone())
    })));
    Rig {
        card,
        vcard,
        seen,
        trace,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && needle.len() <= haystack.len()
        && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every private scalar on the card right now.
fn scalars(vcard: &Arc<Mutex<VirtualCard>>) -> Vec<Vec<u8>> {
    vcard
        .lock()
        .unwrap()
        .store()
        .private_keys
        .iter()
        .filter_map(|k| k.scalar.as_ref().map(|s| s.expose().to_vec()))
        .collect()
}

fn peer_point() -> EcPoint {
    let peer = p256::SecretKey::random(&mut rand_core::OsRng);
    EcPoint::from_slice(p256::EncodedPoint::from(peer.public_key()).as_bytes()).unwrap()
}

/// Runs every operation of the client, and the ways each can be refused; returns the error texts
/// (which must not carry key material either). Keys seen at any point are added to `keys`.
fn every_operation(r: &Rig, keys: &mut Vec<Vec<u8>>) -> Vec<String> {
    let c = &r.card;
    let device = ObjectRef::id([1]);
    let eph = ObjectRef::id([4]);
    let peer = ObjectRef::id([5]);
    let digest = [0x42u8; 32];
    let mut errors = Vec::new();
    let mut note = |e: Result<(), Error>| {
        if let Err(e) = e {
            errors.push(format!("{e} / {e:?}"));
        }
    };
    let snapshot = |keys: &mut Vec<Vec<u8>>| {
        for k in scalars(&r.vcard) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    };
    snapshot(keys);
    note(c.objects().map(drop));
    note(c.applet_info().map(drop));
    for id in [1u8, 2, 3, 4, 5, 9] {
        note(
            c.object_info(iotsafe_core::ObjectKind::PrivateKey, &ObjectRef::id([id]))
                .map(drop),
        );
        note(c.read_public_key(&ObjectRef::id([id])).map(drop));
        note(c.read_file(&ObjectRef::id([id])).map(drop));
        note(
            c.sign_digest(&ObjectRef::id([id]), HashAlgorithm::Sha256, &digest)
                .map(drop),
        );
        note(c.compute_dh(&ObjectRef::id([id]), &peer).map(drop));
        note(c.compute_dh(&eph, &ObjectRef::id([id])).map(drop));
    }
    note(c.read_public_key(&ObjectRef::label("device")).map(drop));
    note(c.get_random(64).map(drop));
    note(
        c.sign_message(&device, HashAlgorithm::Sha256, &[7u8; 500])
            .map(drop),
    );
    note(c.put_public_key(&device, &peer_point()));
    note(c.put_public_key(&peer, &peer_point()));
    note(
        c.verify_digest(&peer, HashAlgorithm::Sha256, &digest, &[1u8; 64])
            .map(drop),
    );
    note(
        c.verify_digest(&device, HashAlgorithm::Sha256, &digest, &[1u8; 64])
            .map(drop),
    );
    let e = c.generate_ephemeral(&eph);
    snapshot(keys);
    if let Ok(e) = e {
        note(c.ephemeral_agreement(&e, &peer, &peer_point()).map(drop));
        note(c.ephemeral_agreement(&e, &device, &peer_point()).map(drop));
    }
    note(c.compute_dh(&eph, &peer).map(drop));
    note(
        c.hkdf_extract(&[9u8; 32], &[3u8; 32], HashAlgorithm::Sha256)
            .map(drop),
    );
    note(c.prf(&[9u8; 48], b"master secretseed", 48).map(drop));
    // Key rotation: the new scalar must not come out either.
    note(c.generate_key_pair(&device).map(drop));
    snapshot(keys);
    note(c.generate_key_pair(&ObjectRef::id([9])).map(drop));
    note(
        c.sign_digest(&device, HashAlgorithm::Sha256, &digest)
            .map(drop),
    );
    for apdu in [
        &[0x81, 0xCD, 0x00, 0x00, 0x03, 0x84, 0x01, 0x01, 0x00][..],
        &[0x81, 0xCB, 0x01, 0x00, 0x00],
        &[0x81, 0xB0, 0x00, 0x00, 0x03, 0x84, 0x01, 0x01, 0x00],
        &[
            0x81, 0x46, 0x00, 0x00, 0x06, 0x84, 0x01, 0x01, 0x85, 0x01, 0x01, 0x00,
        ],
        &[0x00, 0xCA, 0x00, 0x00, 0x00],
        &[0x81],
    ] {
        note(c.transmit_raw(apdu).map(drop));
    }
    // The same operations with a fault at each of their APDUs.
    for k in 1..=8u64 {
        for plan in [
            FaultPlan {
                status_word_at: Some((k, 0x6F00)),
                ..FaultPlan::default()
            },
            FaultPlan {
                corrupt_at: Some(k),
                ..FaultPlan::default()
            },
            FaultPlan {
                disconnect_after: Some(k - 1),
                ..FaultPlan::default()
            },
        ] {
            let base = r.vcard.lock().unwrap().apdu_count();
            let shifted = FaultPlan {
                status_word_at: plan.status_word_at.map(|(n, sw)| (base + n, sw)),
                corrupt_at: plan.corrupt_at.map(|n| base + n),
                disconnect_after: plan.disconnect_after.map(|n| base + n),
                stall_at: None,
            };
            r.vcard.lock().unwrap().set_faults(shifted);
            note(
                c.sign_digest(&device, HashAlgorithm::Sha256, &digest)
                    .map(drop),
            );
            note(c.generate_ephemeral(&eph).map(drop));
            snapshot(keys);
            note(c.compute_dh(&eph, &peer).map(drop));
            r.vcard.lock().unwrap().set_faults(FaultPlan::default());
        }
    }
    snapshot(keys);
    errors
}

fn assert_no_leak(r: &Rig, keys: &[Vec<u8>], errors: &[String], label: &str) {
    assert!(
        keys.len() >= 3,
        "{label}: the device key, its rotation and ephemerals"
    );
    let seen = r.seen.lock().unwrap();
    let trace = r.trace.lock().unwrap();
    assert!(seen.len() > 5_000, "{label}: the recorder saw the traffic");
    assert!(trace.len() > 200, "{label}: the trace saw the traffic");
    let debug = format!("{:?}", r.card);
    for key in keys {
        assert_eq!(key.len(), 32);
        let text = hex(key);
        assert!(
            !contains(&seen, key),
            "{label}: a private scalar crossed the transport"
        );
        for e in trace.iter() {
            assert!(
                !e.text.contains(&text),
                "{label}: a private scalar in the trace"
            );
        }
        for e in errors {
            assert!(
                !e.to_uppercase().contains(&text),
                "{label}: in an error: {e}"
            );
        }
        assert!(!debug.to_uppercase().contains(&text));
    }
}

#[test]
fn the_private_key_never_crosses_the_transport_t1() {
    let r = rig(CardOptions::default(), CardConfig::default());
    let mut keys = Vec::new();
    let errors = every_operation(&r, &mut keys);
    assert!(errors.len() > 20, "the refusal paths ran: {}", errors.len());
    assert_no_leak(&r, &keys, &errors, "T=1");
}

#[test]
fn the_private_key_never_crosses_the_transport_t0_and_other_profiles() {
    for (profile, config) in [
        (CardProfile::Zariot, CardConfig::wolfssl_compatible()),
        (CardProfile::Ntt, CardConfig::default().probing_known_aids()),
        (CardProfile::ThalesMvp, CardConfig::thales_style()),
    ] {
        let r = rig(profile.options(), config);
        let mut keys = Vec::new();
        let errors = every_operation(&r, &mut keys);
        assert_no_leak(&r, &keys, &errors, &format!("{profile:?}"));
    }
}

#[test]
fn secret_outputs_are_zeroizing() {
    // Compile-time: each of these only type-checks while the API returns `Zeroizing`.
    let r = rig(CardOptions::default(), CardConfig::default());
    let c = &r.card;
    let eph = c.generate_ephemeral(&ObjectRef::id([4])).unwrap();
    let z: Zeroizing<Vec<u8>> = c
        .ephemeral_agreement(&eph, &ObjectRef::id([5]), &peer_point())
        .unwrap();
    assert_eq!(z.len(), 32);
    let z: Zeroizing<Vec<u8>> = c
        .compute_dh(&ObjectRef::id([4]), &ObjectRef::id([5]))
        .unwrap();
    assert_eq!(z.len(), 32);
    let prk: Zeroizing<Vec<u8>> = c
        .hkdf_extract(&[1u8; 32], &[2u8; 32], HashAlgorithm::Sha256)
        .unwrap();
    assert_eq!(prk.len(), 32);
    let prf: Zeroizing<Vec<u8>> = c.prf(&[1u8; 48], b"key expansionseed", 40).unwrap();
    assert_eq!(prf.len(), 40);
    let random: Zeroizing<Vec<u8>> = c.get_random(16).unwrap();
    assert_eq!(random.len(), 16);
}

/// Every secret of a DH / HKDF / PRF / GET RANDOM exchange, in traces of a T=0 card where the
/// answers come through GET RESPONSE (and a T=1 card for comparison): redacted.
#[test]
fn traces_redact_secrets_on_the_t0_get_response_path() {
    for transport in [TransportMode::T0, TransportMode::T1] {
        let options = CardOptions {
            transport,
            ..CardOptions::default()
        };
        let r = rig(options, CardConfig::default());
        let c = &r.card;
        let eph = c.generate_ephemeral(&ObjectRef::id([4])).unwrap();
        let z = c
            .ephemeral_agreement(&eph, &ObjectRef::id([5]), &peer_point())
            .unwrap();
        let ikm = [0xA5u8; 32];
        let prk = c
            .hkdf_extract(&ikm, &[0x11u8; 32], HashAlgorithm::Sha256)
            .unwrap();
        let secret = [0x5Au8; 48];
        let prf = c.prf(&secret, b"master secretseed", 48).unwrap();
        let random = c.get_random(300).unwrap();
        let trace = r.trace.lock().unwrap();
        let all: String = trace.iter().map(|e| format!("{}\n", e.text)).collect();
        // The T=0 path really went through GET RESPONSE for these commands.
        if transport == TransportMode::T0 {
            let get_responses = trace
                .iter()
                .filter(|e| e.direction == Direction::Command && e.text.get(2..4) == Some("C0"))
                .count();
            assert!(get_responses >= 4, "{get_responses} GET RESPONSE in\n{all}");
        }
        assert!(all.contains("redacted"), "{all}");
        for (what, secret) in [
            ("DH output", &z[..]),
            ("HKDF output", &prk[..]),
            ("HKDF IKM", &ikm[..]),
            ("PRF output", &prf[..]),
            ("PRF secret", &secret[..]),
            ("random bytes", &random[..32]),
        ] {
            let text = hex(secret);
            // 8 bytes are enough to recognise a secret in hex.
            assert!(
                !all.contains(&text[..16]),
                "{transport:?}: {what} in the trace:\n{all}"
            );
        }
    }
}

/// Every crate root of the workspace forbids `unsafe`.
#[test]
fn every_crate_forbids_unsafe_code() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut roots = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                // Build output, VCS data and the fuzz crates (libFuzzer's entry points) stay out.
                if !matches!(name.as_str(), "target" | ".git" | "fuzz" | "node_modules") {
                    stack.push(path);
                }
                continue;
            }
            let parent = path.parent().unwrap();
            let in_src = parent.file_name().is_some_and(|n| n == "src");
            let in_bin = parent.file_name().is_some_and(|n| n == "bin")
                && parent
                    .parent()
                    .and_then(|p| p.file_name())
                    .is_some_and(|n| n == "src");
            // A binary of several files: `src/bin/<name>/main.rs`.
            let in_bin_folder = name == "main.rs"
                && parent.parent().is_some_and(|bin| {
                    bin.file_name().is_some_and(|n| n == "bin")
                        && bin
                            .parent()
                            .and_then(|p| p.file_name())
                            .is_some_and(|n| n == "src")
                });
            if (in_src && (name == "lib.rs" || name == "main.rs"))
                || (in_bin && name.ends_with(".rs"))
                || in_bin_folder
            {
                roots.push(path);
            }
        }
    }
    // Every workspace member has a crate root, and was found.
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    for member in [
        "iotsafe-core",
        "iotsafe-vcard",
        "iotsafe-rustls",
        "iotsafe-cli",
        "tests",
    ] {
        assert!(manifest.contains(&format!("\"{member}\"")), "{member}");
        assert!(
            roots.iter().any(|p| p.starts_with(root.join(member))),
            "no crate root found in {member}: {roots:?}"
        );
    }
    let mut missing = Vec::new();
    for path in &roots {
        let text = std::fs::read_to_string(path).unwrap();
        // The folder holding the root's `src/`.
        let crate_dir = path
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == "src"))
            .and_then(|src| src.parent())
            .unwrap();
        if let Some((_, allowed)) = UNSAFE_BOUNDARIES
            .iter()
            .find(|(dir, _)| crate_dir == root.join(dir))
        {
            // The crate denies `unsafe` and allows it back only in its named boundary modules.
            assert!(
                text.lines().any(|l| l.trim() == "#![deny(unsafe_code)]"),
                "{} must deny unsafe_code outside its boundary",
                path.display()
            );
            for file in rust_files(&crate_dir.join("src")) {
                let relative = file
                    .strip_prefix(crate_dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let body = std::fs::read_to_string(&file).unwrap();
                let has_unsafe = body.lines().any(|l| {
                    let code = l.split("//").next().unwrap_or_default();
                    code.contains("unsafe ") || code.contains("unsafe{")
                });
                let in_boundary = allowed.iter().any(|a| relative.starts_with(a));
                assert!(
                    !has_unsafe || in_boundary,
                    "{relative}: unsafe code outside the boundary {allowed:?}"
                );
            }
            continue;
        }
        if !text.lines().any(|l| l.trim() == "#![forbid(unsafe_code)]") {
            missing.push(path.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "without #![forbid(unsafe_code)]: {missing:?}"
    );
}

/// The two places `unsafe` is allowed, each in named modules only: the PKCS#11 module's C ABI
/// (issue 15: the FFI boundary), and the firmware's register access and global allocator (issue
/// 16: what a board support crate needs), its stack measure and semihosting calls (issue 23). The crate root is the only other file that may name
/// `unsafe_code` (to allow it on the boundary module).
const UNSAFE_BOUNDARIES: [(&str, &[&str]); 2] = [
    ("iotsafe-pkcs11", &["src/ffi/", "src/lib.rs"]),
    (
        "examples/mcu",
        &[
            "src/mmio.rs",
            "src/heap.rs",
            "src/stack.rs",
            "src/semihost.rs",
        ],
    ),
];

/// Every `.rs` file below `dir`.
fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}
