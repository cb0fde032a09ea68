//! The virtual card's state file under SIGKILL: a child process (this test binary, re-executed with
//! `IOTSAFE_STATE_WRITER` set) rewrites the state in a loop; the parent kills it at 50 pseudo-random
//! moments. After each kill the file loads, is owner-only, and holds one complete generation — the
//! last one written or the one before — never a torn mix. Between kills the parent reads the file
//! continuously while it is being replaced: no reader ever sees a partial file.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use iotsafe_vcard::store::ObjectRef;
use iotsafe_vcard::{CardOptions, VirtualCard};

const WRITER_ENV: &str = "IOTSAFE_STATE_WRITER";

/// The contents of generation `g`: its number, then a length that changes with `g` (so a torn write
/// of two generations cannot look whole), filled with `g`'s low byte.
fn generation(g: u64) -> Vec<u8> {
    let mut data = g.to_be_bytes().to_vec();
    let len = 200 + (g as usize * 37) % 900;
    data.extend(std::iter::repeat_n(g as u8, len));
    data
}

/// The generation a file's contents hold, if they are whole.
fn parse_generation(data: &[u8]) -> Option<u64> {
    let g = u64::from_be_bytes(data.get(..8)?.try_into().ok()?);
    (generation(g) == data).then_some(g)
}

fn read_state(path: &Path) -> (u64, [u8; 32]) {
    let card = VirtualCard::open_state(path, CardOptions::default())
        .unwrap_or_else(|e| panic!("the state file does not load after a kill: {e}"));
    let file = &card.store().files[0].data;
    let g = parse_generation(file)
        .unwrap_or_else(|| panic!("a torn generation ({} bytes)", file.len()));
    let scalar: [u8; 32] = card.store().private_keys[0]
        .scalar
        .as_ref()
        .expect("the device key survives")
        .expose()
        .try_into()
        .unwrap();
    (g, scalar)
}

/// The child: loads the state, then writes generation after generation until killed.
#[test]
fn state_writer_child() {
    let Some(path) = std::env::var_os(WRITER_ENV) else {
        return; // an ordinary test run: nothing to do
    };
    let path = PathBuf::from(path);
    let mut card = VirtualCard::open_state(&path, CardOptions::default()).unwrap();
    let mut g = parse_generation(&card.store().files[0].data).unwrap();
    let started = Instant::now();
    // Bounded: a child the parent failed to kill stops by itself.
    while started.elapsed() < Duration::from_secs(30) {
        g += 1;
        assert!(card
            .store_mut()
            .write_file(ObjectRef::Id(&[2]), &generation(g)));
        card.save().unwrap();
    }
}

#[test]
fn the_state_file_survives_sigkill_at_any_point_of_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    {
        let mut card = VirtualCard::create_state(&path, CardOptions::default()).unwrap();
        assert!(card
            .store_mut()
            .write_file(ObjectRef::Id(&[2]), &generation(0)));
        card.save().unwrap();
    }
    let (mut last, key) = read_state(&path);
    assert_eq!(last, 0);
    let exe = std::env::current_exe().unwrap();
    // A fixed-seed generator: deterministic kill moments, spread over 0..25 ms after start-up.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut advanced = 0;
    let mut reads = 0u32;
    for round in 0..50 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut child = Command::new(&exe)
            .args(["--exact", "state_writer_child", "--test-threads=1", "-q"])
            .env(WRITER_ENV, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Until the kill, read the file over and over as the writer replaces it: a reader must
        // never see a partial file either (that is what catches a write in place).
        let kill_at = Instant::now() + Duration::from_micros(2_000 + (seed >> 33) % 25_000);
        while Instant::now() < kill_at {
            let (g, _) = read_state(&path);
            assert!(
                g >= last,
                "round {round}: a reader saw generation {g} after {last}"
            );
            reads += 1;
        }
        // `Child::kill` is SIGKILL on Unix: no destructor, no flush, no cleanup runs.
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "round {round}: the writer was killed, not finished"
        );
        let (g, scalar) = read_state(&path);
        assert!(
            g >= last,
            "round {round}: generation went back from {last} to {g}"
        );
        assert_eq!(scalar, key, "round {round}: the device key changed");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "round {round}: mode {mode:o}");
        advanced += u32::from(g > last);
        last = g;
    }
    // The kills did land during writing.
    assert!(
        advanced >= 10,
        "only {advanced} of 50 rounds wrote anything (generation {last})"
    );
    assert!(reads >= 50, "{reads} reads during writes");
    // Leftover temporary files (from kills between create and rename) are owner-only too...
    let mut leftovers = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{:?} mode {mode:o}", entry.file_name());
        leftovers += usize::from(entry.file_name() != "card.json");
    }
    // ...and hold the private key: the next successful write removes them (regression: they used
    // to pile up, one per killed writer).
    let card = VirtualCard::open_state(&path, CardOptions::default()).unwrap();
    card.save().unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["card.json"],
        "{leftovers} leftovers before the write"
    );
}
