//! What the module's integration tests share: where the built module is, a virtual card behind
//! its AT modem, running OpenSC's `pkcs11-tool` and `openssl` against the module, and the whole
//! `pkcs11-tool` workout over one card.
#![allow(dead_code)]

pub mod raw;

use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePublicKey;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The module cargo built for these tests: `libiotsafe_pkcs11.so` in the `deps/` folder the
/// test binary runs from (`cargo test` builds it there, with the features of this run, and does
/// not copy it up to `target/<profile>/` as `cargo build` does).
pub fn module_path() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let module = exe
        .parent()
        .expect("target/<profile>/deps/<test>")
        .join("libiotsafe_pkcs11.so");
    assert!(module.is_file(), "{} was not built", module.display());
    module
}

/// A card provisioned in `dir` with `options`, behind the virtual card's AT modem front end on a
/// loopback TCP port: its provisioning report, the port's address, the modem's handle.
#[cfg(feature = "at")]
pub fn at_modem(
    dir: &Path,
    options: iotsafe_vcard::CardOptions,
) -> (
    iotsafe_vcard::ProvisionReport,
    std::net::SocketAddr,
    iotsafe_vcard::frontend::at::AtHandle,
) {
    use iotsafe_vcard::frontend::{at::AtOptions, share, tcp::TcpModem};
    let (report, card) = iotsafe_tests::provisioned(dir, options);
    let modem = TcpModem::bind("127.0.0.1:0".parse().unwrap()).expect("bind the modem");
    let address = modem.local_addr().unwrap();
    let handle = modem
        .spawn(share(card), AtOptions::default())
        .expect("start the modem");
    (report, address, handle)
}

/// Environment variables that choose the card; every child gets only the ones a test sets.
pub const CARD_VARIABLES: [&str; 7] = [
    "IOTSAFE_READER",
    "IOTSAFE_MODEM",
    "IOTSAFE_VCARD",
    "IOTSAFE_AID",
    "IOTSAFE_TOKEN_LABEL",
    "IOTSAFE_PKCS11_CONF",
    "IOTSAFE_PKCS11_DEBUG",
];

/// A program run: its output, and the command line for messages.
pub struct Run {
    /// What it printed and how it ended.
    pub output: Output,
    /// The command line.
    pub line: String,
}

impl Run {
    /// Standard output as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    /// Standard error as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    /// Panics with everything the program said unless it succeeded; returns its stdout.
    pub fn ok(&self) -> String {
        assert!(
            self.output.status.success(),
            "{} failed ({}):\nstdout: {}\nstderr: {}",
            self.line,
            self.output.status,
            self.stdout(),
            String::from_utf8_lossy(&self.output.stderr)
        );
        self.stdout()
    }
}

/// Runs `program` with `args` in `dir`, with `env` as the only card variables.
pub fn run(program: &str, args: &[&str], dir: &Path, env: &[(&str, String)]) -> Run {
    let mut command = Command::new(program);
    command.args(args).current_dir(dir);
    for var in CARD_VARIABLES {
        command.env_remove(var);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    // The module's diagnostics land in the failure message of a test that fails.
    command.env("IOTSAFE_PKCS11_DEBUG", "1");
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    Run {
        output,
        line: format!("{program} {}", args.join(" ")),
    }
}

/// Runs `pkcs11-tool --module <the module>` with `args`.
pub fn tool(args: &[&str], dir: &Path, env: &[(&str, String)]) -> Run {
    let module = module_path();
    let mut full = vec!["--module", module.to_str().expect("a UTF-8 path")];
    full.extend_from_slice(args);
    run("pkcs11-tool", &full, dir, env)
}

/// The `pkcs11-tool` workout of the module over one card (chosen by `env`): list slots and
/// objects, read the certificate, sign (verified by `openssl dgst`), random bytes, generate the
/// ephemeral key pair and derive a secret with it against a software peer (compared with the
/// peer's own ECDH).
pub fn workout(dir: &Path, env: &[(&str, String)], device_cert: &[u8]) {
    let slots = tool(&["--list-slots"], dir, env).ok();
    assert!(
        slots.contains("token label        : IoT SAFE device-0001"),
        "{slots}"
    );
    assert!(slots.contains("token initialized"), "{slots}");
    assert!(!slots.contains("login required"), "{slots}");

    let objects = tool(&["--list-objects"], dir, env).ok();
    for needle in [
        "Private Key Object; EC",
        "label:      device",
        "Usage:      sign",
        "Certificate Object; type = X.509 cert",
        "label:      device-cert",
        "subject:    DN: CN=device-0001",
    ] {
        assert!(objects.contains(needle), "no {needle:?} in:\n{objects}");
    }
    // A fresh card's ephemeral slot was never generated: not shown until --keypairgen.
    assert!(!objects.contains("label:      ecdhe"), "{objects}");

    // The certificate shares the device key's ID, so that engines pair them.
    tool(
        &[
            "--read-object",
            "--type",
            "cert",
            "--id",
            "01",
            "-o",
            "dev.der",
        ],
        dir,
        env,
    )
    .ok();
    let read = std::fs::read(dir.join("dev.der")).expect("the certificate read");
    assert_eq!(read, device_cert, "the certificate as provisioned");
    run(
        "openssl",
        &[
            "x509", "-inform", "der", "-in", "dev.der", "-pubkey", "-noout", "-out", "dev.pub",
        ],
        dir,
        &[],
    )
    .ok();

    std::fs::write(dir.join("msg.txt"), b"signed by the SIM through PKCS#11\n").unwrap();
    for (id_or_label, sig) in [
        (["--id", "01"], "sig1.der"),
        (["--label", "device"], "sig2.der"),
    ] {
        // The same ECDSA-SHA256 options for signing (on the card) and verifying (on the host).
        let with = |action: &'static str, key: [&'static str; 2], file: &'static str| {
            let mut args = vec![
                action,
                "-m",
                "ECDSA-SHA256",
                key[0],
                key[1],
                "-i",
                "msg.txt",
            ];
            args.extend([file, sig, "--signature-format", "openssl"]);
            tool(&args, dir, env).ok()
        };
        with("--sign", id_or_label, "-o");
        let verified = run(
            "openssl",
            &[
                "dgst",
                "-sha256",
                "-verify",
                "dev.pub",
                "-signature",
                sig,
                "msg.txt",
            ],
            dir,
            &[],
        )
        .ok();
        assert!(verified.contains("Verified OK"), "{verified}");
        let checked = with("--verify", ["--id", "01"], "--signature-file");
        assert!(checked.contains("Signature is valid"), "{checked}");
    }

    let random = |n: &str| tool(&["--generate-random", n], dir, env).output.stdout;
    let (a, b) = (random("48"), random("48"));
    assert_eq!((a.len(), b.len()), (48, 48));
    assert_ne!(a, b, "two draws of 48 random bytes");

    derive_workout(dir, env);
}

/// `--keypairgen` into the ephemeral slot, then `--derive` against a software peer, with the peer's
/// point passed raw and as DER; both secrets equal the peer's own ECDH.
fn derive_workout(dir: &Path, env: &[(&str, String)]) {
    let generated = tool(
        &[
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "04",
            "--usage-derive",
        ],
        dir,
        env,
    )
    .ok();
    assert!(generated.contains("Key pair generated"), "{generated}");
    // Now the slot shows: its private key and its public half, both labelled as on the card.
    let objects = tool(&["--list-objects"], dir, env).ok();
    assert_eq!(objects.matches("label:      ecdhe").count(), 2, "{objects}");
    // The generated public key as the module gives it (CKA_EC_POINT, printed by pkcs11-tool).
    // Not `--read-object --type pubkey`: OpenSC 0.23's (Debian 12) frees the point before using
    // it (a use-after-free fixed in OpenSC 0.24), so it fails or not with the heap's contents.
    let ephemeral = printed_point(&generated);
    assert!(
        objects.contains(&hex(ephemeral.to_encoded_point(false).as_bytes())),
        "the listing shows the generated point: {objects}"
    );

    let peer = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let peer_der = peer.public_key().to_public_key_der().unwrap();
    std::fs::write(dir.join("peer.der"), peer_der.as_bytes()).unwrap();
    let expected = p256::ecdh::diffie_hellman(peer.to_nonzero_scalar(), ephemeral.as_affine());
    for (extra, out) in [
        (None, "secret.bin"),
        (Some("--derive-pass-der"), "secret-der.bin"),
    ] {
        let mut args = vec![
            "--derive",
            "-m",
            "ECDH1-DERIVE",
            "--id",
            "04",
            "-i",
            "peer.der",
            "-o",
            out,
        ];
        args.extend(extra);
        tool(&args, dir, env).ok();
        let secret = std::fs::read(dir.join(out)).unwrap();
        assert_eq!(
            secret.as_slice(),
            &expected.raw_secret_bytes()[..],
            "the card's ECDH equals the peer's ({out})"
        );
    }
}

/// The P-256 point of the one `EC_POINT:` line `pkcs11-tool` printed (hex of CKA_EC_POINT, the
/// DER OCTET STRING `04 41 04 x y`).
fn printed_point(output: &str) -> p256::PublicKey {
    let lines: Vec<&str> = output
        .lines()
        .filter_map(|line| line.trim().strip_prefix("EC_POINT:"))
        .collect();
    assert_eq!(lines.len(), 1, "one EC_POINT in: {output}");
    let der = unhex(lines[0].trim());
    let point = der
        .strip_prefix(&[0x04, 0x41][..])
        .unwrap_or_else(|| panic!("an OCTET STRING of 65 bytes: {}", lines[0]));
    p256::PublicKey::from_sec1_bytes(point).expect("a P-256 point")
}

/// Lower-case hex, as `pkcs11-tool` prints points.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex (lower or upper case); panics on anything else (test input).
pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}
