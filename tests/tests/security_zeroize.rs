//! Secrets are wiped, not just dropped: a global allocator watches every block freed while a
//! secret-bearing operation runs (PRF secret and output, HKDF IKM and output, DH output, random
//! bytes) and fails the test if a freed block still holds secret bytes — a copy the client made in
//! a plain `Vec`, or a `Zeroizing` buffer that grew and left its old allocation behind.
//!
//! The card is a minimal transport written for this test (the virtual card, in the same process,
//! would free its own copies). This file needs `unsafe` for `GlobalAlloc` alone: the only unsafe
//! code of the workspace, in a test, denied everywhere else in this file.
#![deny(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use iotsafe_core::config::GetResponseLe;
use iotsafe_core::Transaction;
use iotsafe_core::{Card, CardConfig, HashAlgorithm, ObjectRef, Transport, TransportError};

/// Secret material: a recognisable pattern no other code produces.
const SECRET: [u8; 48] = {
    let mut s = [0u8; 48];
    let mut i = 0;
    while i < 48 {
        s[i] = 0xA5 ^ (i as u8).wrapping_mul(29) ^ 0x3C;
        i += 1;
    }
    s
};

/// While set, freed blocks are searched for 8 consecutive bytes of [`SECRET`].
static ARMED: AtomicBool = AtomicBool::new(false);
static FOUND: AtomicUsize = AtomicUsize::new(0);

struct Watching;

fn holds_secret(block: &[u8]) -> bool {
    block.windows(8).any(|w| SECRET.windows(8).any(|s| s == w))
}

#[allow(unsafe_code)]
// SAFETY: every call is forwarded to the system allocator unchanged; `dealloc` only reads the
// block it is handed, which is valid for `layout.size()` bytes until it is passed on.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::Relaxed) && layout.size() >= 8 {
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if holds_secret(block) {
                FOUND.fetch_add(1, Ordering::Relaxed);
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A growing buffer leaves its old block behind: check it as a free, then move.
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
static ALLOCATOR: Watching = Watching;

/// Only one test arms the allocator at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A card that answers the secret-bearing commands with [`SECRET`] bytes, the T=0 way (`61xx`,
/// then GET RESPONSE in chunks) or at once. It never keeps a copy of what it is sent.
struct SecretCard {
    t0: bool,
    /// Bytes of the pending answer still to hand out through GET RESPONSE.
    pending: usize,
    /// How many GET RESPONSE rounds the pending answer takes.
    chunk: usize,
}

fn answer(len: usize, sw: [u8; 2]) -> Vec<u8> {
    // Sized up front: growing it would free a block holding the secret (in the test's code).
    let mut out = Vec::with_capacity(len + 2);
    out.extend(SECRET.iter().cycle().take(len));
    out.extend_from_slice(&sw);
    out
}

impl Transaction for SecretCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let ins = command.get(1).copied().unwrap_or(0);
        let secret_len = match ins {
            0x70 => return Ok(vec![0x01, 0x90, 0x00]),
            0xC0 if self.pending > 0 => {
                let n = self.pending.min(self.chunk);
                self.pending -= n;
                let sw = if self.pending > 0 {
                    [0x61, self.pending.min(255) as u8]
                } else {
                    [0x90, 0x00]
                };
                return Ok(answer(n, sw));
            }
            0x48 => usize::from(*command.last().unwrap_or(&48)).clamp(1, 48),
            0x4A | 0x46 => 32,
            0x84 => usize::from(command[4]).max(1),
            _ => return Ok(vec![0x90, 0x00]),
        };
        // PRF: the length byte is in the D3 TLV before Le; take it from the command data.
        let secret_len = if ins == 0x48 {
            command
                .windows(3)
                .rev()
                .find(|w| w[0] == 0xD3 && w[1] == 0x01)
                .map_or(secret_len, |w| usize::from(w[2]))
        } else {
            secret_len
        };
        if self.t0 && ins != 0x84 {
            self.pending = secret_len;
            return Ok(vec![0x61, secret_len as u8]);
        }
        Ok(answer(secret_len, [0x90, 0x00]))
    }
}

impl Transport for SecretCard {
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, TransportError> {
        Ok(Box::new(self))
    }
}

/// Runs `op` with the allocator armed and returns how many freed blocks held secret bytes.
fn leaks(op: impl FnOnce()) -> usize {
    FOUND.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    op();
    ARMED.store(false, Ordering::SeqCst);
    FOUND.load(Ordering::SeqCst)
}

fn card(t0: bool, chunk: usize) -> Card {
    let config = CardConfig {
        get_response_le: GetResponseLe::Zero,
        ..CardConfig::default()
    };
    Card::open(
        SecretCard {
            t0,
            pending: 0,
            chunk,
        },
        config,
    )
    .unwrap()
}

#[test]
fn the_watch_sees_a_plain_copy() {
    // The detector works: a secret dropped in a plain Vec is found.
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let found = leaks(|| {
        let copy = SECRET.to_vec();
        drop(std::hint::black_box(copy));
    });
    assert!(found >= 1);
    // And a Zeroizing one is not.
    let found = leaks(|| {
        let copy = zeroize::Zeroizing::new(SECRET.to_vec());
        drop(std::hint::black_box(copy));
    });
    assert_eq!(found, 0);
}

#[test]
fn no_freed_block_holds_a_secret_after_card_operations() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // T=1, T=0 with the whole answer in one GET RESPONSE, and T=0 in 16-byte chunks.
    for (t0, chunk) in [(false, 256), (true, 256), (true, 16)] {
        let c = card(t0, chunk);
        let label = format!("t0={t0} chunk={chunk}");
        // The PRF secret and HKDF IKM are secrets the host sends; the outputs come back. Each
        // result is dropped while the watch is on: wiped before it is freed.
        let found = leaks(|| {
            let prf = c.prf(&SECRET, b"master secretseed", 48).unwrap();
            assert_eq!(prf.len(), 48);
        });
        assert_eq!(
            found, 0,
            "{label}: PRF left {found} freed blocks with secret bytes"
        );
        let found = leaks(|| {
            let prk = c
                .hkdf_extract(&SECRET[..32], &[0x11; 32], HashAlgorithm::Sha256)
                .unwrap();
            assert_eq!(prk.len(), 32);
        });
        assert_eq!(
            found, 0,
            "{label}: HKDF left {found} freed blocks with secret bytes"
        );
        let found = leaks(|| {
            let z = c
                .compute_dh(&ObjectRef::id([4]), &ObjectRef::id([5]))
                .unwrap();
            assert_eq!(z.len(), 32);
        });
        assert_eq!(
            found, 0,
            "{label}: DH left {found} freed blocks with secret bytes"
        );
        let found = leaks(|| {
            let random = c.get_random(40).unwrap();
            assert_eq!(random.len(), 40);
        });
        assert_eq!(
            found, 0,
            "{label}: GET RANDOM left {found} freed blocks with secret bytes"
        );
    }
}
