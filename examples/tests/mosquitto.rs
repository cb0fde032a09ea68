//! The demo binary against mosquitto (OpenSSL) requiring client certificates: an independent TLS
//! stack checks the card's DER signature and ECDHE. Skipped when mosquitto is not installed, unless
//! `IOTSAFE_REQUIRE_SERVICES=1`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn have(program: &str) -> bool {
    Command::new("sh")
        .args([
            "-c",
            &format!("command -v {program} || test -x /usr/sbin/{program}"),
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn mosquitto_binary() -> &'static str {
    if std::path::Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn demo_against_mosquitto_with_required_client_certificates() {
    if !have("mosquitto") {
        if std::env::var("IOTSAFE_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("mosquitto is required (IOTSAFE_REQUIRE_SERVICES=1) but not installed");
        }
        eprintln!("skipping: mosquitto is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("card.json");
    iotsafe_vcard::provision(&state, &dir.path().join("card-pki"), Default::default()).unwrap();
    // mosquitto started as root drops to user mosquitto before reading its files.
    let mut perms = std::fs::metadata(dir.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(dir.path(), perms).unwrap();
    let pki = dir.path().join("card-pki");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("mosquitto.conf");
    std::fs::write(
        &config,
        format!(
            "per_listener_settings false\nallow_anonymous false\nlistener {port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\nrequire_certificate true\nuse_identity_as_username true\ntls_version tlsv1.3\n{user}",
            ca = pki.join("ca.pem").display(),
            cert = pki.join("server.pem").display(),
            key = pki.join("server.key").display(),
            user = if is_root() { "user root\n" } else { "" },
        ),
    )
    .unwrap();
    let _broker = Broker(
        Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mosquitto"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_mqtt-demo"))
        .args(["--vcard", state.to_str().unwrap(), "--json"])
        .args(["--broker", &format!("mqtts://127.0.0.1:{port}")])
        .arg("--ca")
        .arg(pki.join("ca.pem"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["success"], true);
    assert_eq!(report["handshake"]["version"], "TLSv1.3");
    assert_eq!(report["handshake"]["group"], "secp256r1");
    assert_eq!(report["mqtt"]["connect_card_signatures"], 1);
    assert_eq!(report["messages"]["received"], 3);
}
