//! Helpers shared by the CLI tests: a provisioned virtual card in a temp dir, and the binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A temp dir holding a provisioned virtual card state (`card.json`, test PKI in `card-pki/`).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("card.json");
        iotsafe_vcard::provision(&state, &dir.path().join("card-pki"), Default::default())
            .expect("provisioning the virtual card");
        Fixture { dir, state }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn pki(&self, name: &str) -> PathBuf {
        self.dir.path().join("card-pki").join(name)
    }

    /// Runs `iotsafe --vcard STATE <args>`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_env(args, &[])
    }

    /// Runs `iotsafe --vcard STATE <args>` with the environment variables `env` set.
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut full = vec!["--vcard", self.state.to_str().unwrap()];
        full.extend_from_slice(args);
        iotsafe_with_env(&full, self.dir.path(), env)
    }

    /// Runs with `--json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let r = self.run(&full);
        assert!(r.ok(), "iotsafe {args:?} failed: {}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.stdout))
    }
}

/// The result of one run.
pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.status == Some(0)
    }
    /// A user mistake: status 1 or 2, one `error:` line, no panic, no backtrace.
    pub fn assert_clean_error(&self) {
        assert!(
            matches!(self.status, Some(1) | Some(2)),
            "expected a failure status, got {:?}; stderr: {}",
            self.status,
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "panic: {}", self.stderr);
        assert!(!self.stderr.contains("stack backtrace"), "{}", self.stderr);
    }
}

pub fn iotsafe(args: &[&str], cwd: &Path) -> Run {
    iotsafe_with_env(args, cwd, &[])
}

/// Runs `iotsafe <args>` in `cwd` with none of the card selection variables but `env`.
pub fn iotsafe_with_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_iotsafe"));
    command.args(args).current_dir(cwd);
    for name in [
        "IOTSAFE_VCARD",
        "IOTSAFE_READER",
        "IOTSAFE_MODEM",
        "IOTSAFE_AID",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let out: Output = command.output().expect("running iotsafe");
    Run {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Skips (returns false) when `program` is missing, unless `IOTSAFE_REQUIRE_SERVICES=1`, which
/// makes a missing program a failure.
pub fn require(program: &str) -> bool {
    if have(program) {
        return true;
    }
    if std::env::var("IOTSAFE_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{program} is required (IOTSAFE_REQUIRE_SERVICES=1) but not installed");
    }
    eprintln!("skipping: {program} is not installed");
    false
}

/// `openssl s_server` requiring a client certificate from `client_ca`; killed on drop.
pub struct OpenSslServer {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

impl OpenSslServer {
    pub fn start(f: &Fixture, client_ca: &std::path::Path) -> OpenSslServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                &format!("127.0.0.1:{port}"),
                "-tls1_3",
            ])
            .arg("-cert")
            .arg(f.pki("server.pem"))
            .arg("-key")
            .arg(f.pki("server.key"))
            .arg("-CAfile")
            .arg(client_ca)
            .args(["-Verify", "1", "-verify_return_error"])
            // s_server quits when its stdin closes: keep a pipe open.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting openssl s_server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "openssl s_server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        OpenSslServer { child, port }
    }
}

impl Drop for OpenSslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
