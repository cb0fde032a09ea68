//! The allocator watch shared by the zeroize tests of the real transports
//! (`security_zeroize_at.rs`, `security_zeroize_pcsc.rs`): each test binary that includes this
//! module gets its own global allocator.
//!
//! While [`watch`] runs an operation, every block the process frees (on any thread) is copied into
//! a fixed, preallocated log; afterwards [`Freed::holds`] searches that log for a secret, raw
//! (8 consecutive bytes) or as hex (16 consecutive digits, upper or lower case: the AT transport
//! carries APDUs as hex text). Logging first and searching afterwards lets a test look for secrets
//! it only learns when the operation returns (a DH output, random bytes).
//!
//! Nothing else may run in the process while the watch is on: the virtual card lives in a child
//! process (it frees its own copies of the secrets, as it may).
//!
//! `unsafe` is needed for `GlobalAlloc` alone and is allowed on that one impl.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

use iotsafe_core::{Card, EcPoint, HashAlgorithm, ObjectRef};
use zeroize::Zeroizing;

/// Room for the freed blocks of one watched operation. An operation that frees more makes
/// [`watch`] panic: a log that silently dropped blocks would make the test pass for nothing.
const LOG_BYTES: usize = 8 << 20;

static LOG: [AtomicU8; LOG_BYTES] = [const { AtomicU8::new(0) }; LOG_BYTES];
/// Bytes of [`LOG`] claimed so far (may pass `LOG_BYTES`: then the log overflowed).
static LOG_END: AtomicUsize = AtomicUsize::new(0);
static ARMED: AtomicBool = AtomicBool::new(false);
/// Frees being logged right now (so that [`watch`] reads the log only once they are done).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Only one watch at a time in a process.
static SERIAL: Mutex<()> = Mutex::new(());

struct Logging;

/// Copies `block` into the log (no allocation here: this runs inside the allocator).
fn record(block: &[u8]) {
    let start = LOG_END.fetch_add(block.len(), Ordering::SeqCst);
    if start.saturating_add(block.len()) > LOG_BYTES {
        return; // overflow: `watch` sees LOG_END past the end and fails
    }
    for (slot, &byte) in LOG[start..start + block.len()].iter().zip(block) {
        slot.store(byte, Ordering::Relaxed);
    }
}

#[allow(unsafe_code)]
// SAFETY: every call is forwarded to the system allocator unchanged; `dealloc` only reads the
// block it is handed, which is valid for `layout.size()` bytes until it is passed on.
unsafe impl GlobalAlloc for Logging {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= 8 {
            IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
            if ARMED.load(Ordering::SeqCst) {
                record(unsafe { std::slice::from_raw_parts(ptr, layout.size()) });
            }
            IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A growing buffer leaves its old block behind: log it as a free, then move.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = unsafe { System.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Logging = Logging;

/// The contents of every block freed during one [`watch`], end to end.
pub struct Freed(Vec<u8>);

/// Upper-case or lower-case hex of `bytes`.
fn hex(bytes: &[u8], upper: bool) -> Vec<u8> {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    bytes
        .iter()
        .flat_map(|b| [digits[usize::from(b >> 4)], digits[usize::from(b & 15)]])
        .collect()
}

impl Freed {
    /// Whether a freed block held 8 consecutive bytes of `secret`, or 16 consecutive digits of its
    /// hex (either case).
    pub fn holds(&self, secret: &[u8]) -> bool {
        let raw: HashSet<&[u8]> = secret.windows(8).collect();
        let upper = hex(secret, true);
        let lower = hex(secret, false);
        let hexes: HashSet<&[u8]> = upper.windows(16).chain(lower.windows(16)).collect();
        self.0.windows(8).any(|w| raw.contains(w)) || self.0.windows(16).any(|w| hexes.contains(w))
    }

    /// How many bytes were freed (blocks of 8 bytes or more).
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Runs `op` with the watch on and returns its result and what was freed meanwhile.
pub fn watch<T>(op: impl FnOnce() -> T) -> (T, Freed) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    LOG_END.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    let out = op();
    ARMED.store(false, Ordering::SeqCst);
    while IN_FLIGHT.load(Ordering::SeqCst) > 0 {
        std::hint::spin_loop();
    }
    let end = LOG_END.load(Ordering::SeqCst);
    assert!(
        end <= LOG_BYTES,
        "the operation freed {end} bytes, more than the {LOG_BYTES} the watch can log"
    );
    let freed = LOG[..end]
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .collect();
    (out, Freed(freed))
}

/// The watch itself works: a secret freed in a plain `Vec` (raw or as hex text) is found, one in a
/// `Zeroizing` buffer is not.
pub fn self_check() {
    let secret: Vec<u8> = (0u8..48).map(|i| i.wrapping_mul(37) ^ 0xC3).collect();
    let ((), freed) = watch(|| drop(std::hint::black_box(secret.clone())));
    assert!(freed.holds(&secret), "a plain copy was not seen");
    let ((), freed) = watch(|| drop(std::hint::black_box(hex(&secret[10..30], true))));
    assert!(freed.holds(&secret), "a hex copy was not seen");
    let ((), freed) = watch(|| drop(std::hint::black_box(hex(&secret[3..20], false))));
    assert!(freed.holds(&secret), "a lower-case hex copy was not seen");
    let ((), freed) = watch(|| drop(zeroize::Zeroizing::new(secret.clone())));
    assert!(!freed.holds(&secret), "a wiped copy was taken for a leak");
    assert!(freed.len() >= secret.len());
}

/// The virtual card's front end in a child process: this test binary run again with one test
/// selected (`--exact NAME`) and `ENV=value` set, which serves until its stdin closes.
pub struct Peer {
    child: std::process::Child,
    /// The rest of the line the child announced itself with (after the prefix).
    pub said: String,
}

impl Peer {
    /// Starts the child test `name` with `env` and waits (bounded) for its line starting with
    /// `prefix`.
    pub fn start(name: &str, env: (&str, &str), prefix: &str) -> Peer {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args(["--exact", name, "--nocapture", "--test-threads=1", "-q"])
            .env(env.0, env.1)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the child test");
        let stdout = child.stdout.take().expect("the child's stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Reads to the end, also once nobody listens: the child must never see a closed pipe.
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut peer = Peer {
            child,
            said: String::new(),
        };
        loop {
            match rx.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        peer.said = rest.trim().to_string();
                        return peer;
                    }
                }
                Err(err) => panic!("the child test {name} did not say {prefix:?}: {err}"),
            }
        }
    }
}

impl Drop for Peer {
    /// Closes the child's stdin (it then shuts its front end down and exits), waits a bounded
    /// time, and kills it if it is still there.
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        for _ in 0..300 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In the child: serves until the parent closes stdin (or goes away).
pub fn serve_until_stdin_closes() {
    use std::io::Read;
    let mut sink = [0u8; 64];
    while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
}

/// Announces `line` on stdout at once (the parent waits for it).
pub fn announce(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The PRF secret and the HKDF input keying material: patterns no other code produces.
fn pattern(len: usize, seed: u8) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(
        (0..len)
            .map(|i| seed ^ (i as u8).wrapping_mul(29) ^ 0x3C)
            .collect(),
    )
}

/// Runs the four secret-bearing operations on `card`, each watched, and returns what leaked
/// (one line per finding) and the secrets seen, for the final check at drop.
fn operations(card: &Card, label: &str) -> (Vec<String>, Vec<Zeroizing<Vec<u8>>>) {
    let mut found = Vec::new();
    let mut secrets = Vec::new();
    let mut check = |what: &str, freed: &Freed, secret: &[u8]| {
        if freed.holds(secret) {
            found.push(format!(
                "{label}: {what} left a freed block with secret bytes"
            ));
        }
        secrets.push(Zeroizing::new(secret.to_vec()));
    };

    let prf_secret = pattern(48, 0xA5);
    let (prf, freed) = watch(|| card.prf(&prf_secret, b"master secretseed", 48).unwrap());
    assert_eq!(prf.len(), 48);
    check("PRF (its secret)", &freed, &prf_secret);
    check("PRF (its output)", &freed, &prf);

    let ikm = pattern(32, 0x5A);
    let (prk, freed) = watch(|| {
        card.hkdf_extract(&ikm, &[0x11; 32], HashAlgorithm::Sha256)
            .unwrap()
    });
    assert_eq!(prk.len(), 32);
    check("HKDF-Extract (its IKM)", &freed, &ikm);
    check("HKDF-Extract (its output)", &freed, &prk);

    // A key pair made on the card and a peer key from the test: the output is known to both.
    let pair = card.generate_key_pair(&ObjectRef::id([4])).unwrap();
    let peer = p256::ecdh::EphemeralSecret::random(&mut rand_core::OsRng);
    let peer_point =
        EcPoint::from_slice(p256::EncodedPoint::from(peer.public_key()).as_bytes()).unwrap();
    card.put_public_key(&ObjectRef::id([5]), &peer_point)
        .unwrap();
    let (z, freed) = watch(|| {
        card.compute_dh(&ObjectRef::id([4]), &ObjectRef::id([5]))
            .unwrap()
    });
    let card_public = p256::PublicKey::from_sec1_bytes(pair.point.as_bytes()).unwrap();
    assert_eq!(
        z.as_slice(),
        &peer.diffie_hellman(&card_public).raw_secret_bytes()[..],
        "{label}: the card's DH output"
    );
    check("COMPUTE DH (its output)", &freed, &z);

    let (random, freed) = watch(|| card.get_random(200).unwrap());
    assert_eq!(random.len(), 200);
    check("GET RANDOM (its output)", &freed, &random);
    (found, secrets)
}

/// [`operations`] on `card`, then the session dropped under the watch (nothing the transport keeps
/// between exchanges, such as a reused receive buffer, may go back to the allocator holding a
/// secret). Returns one line per finding.
pub fn session_leaks(card: Card, label: &str) -> Vec<String> {
    let (mut found, secrets) = operations(&card, label);
    let ((), freed) = watch(|| drop(card));
    if secrets.iter().any(|secret| freed.holds(secret)) {
        found.push(format!("{label}: closing the session freed secret bytes"));
    }
    found
}
