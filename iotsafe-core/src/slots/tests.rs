//! The slot book over both stores: threads, an async waiter, leaving the queue, leases, keys made
//! ahead of time, and two books sharing one folder as two processes would.

use super::*;
use crate::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::mpsc;
use std::task::Wake;

const LONG: Duration = Duration::from_secs(60);

fn slot(id: u8) -> ObjectRef {
    ObjectRef::id([id])
}

/// A folder of its own for one test, removed at the end.
struct Folder(std::path::PathBuf);

impl Folder {
    fn new(name: &str) -> Folder {
        let path = std::env::temp_dir().join(format!(
            "iotsafe-slots-{name}-{}-{}",
            std::process::id(),
            party::new_book()
        ));
        Folder(path)
    }

    fn book(&self) -> SlotBook {
        SlotBook::in_folder(&self.0, Some("test-card"))
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Blocks until `n` requests wait in `book`'s record.
fn until_waiting(book: &SlotBook, n: usize) {
    while book.update(|r| r.waiters.len()).unwrap() != n {
        std::thread::yield_now();
    }
}

#[test]
fn turns_are_granted_in_arrival_order() {
    let book = SlotBook::new(None);
    let first = book.wait(&[slot(4)], LONG).unwrap();
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    for i in 0..8u32 {
        let (b, tx) = (book.clone(), tx.clone());
        threads.push(std::thread::spawn(move || {
            let turn = b.wait(&[slot(4)], LONG).unwrap();
            tx.send(i).unwrap();
            drop(turn);
        }));
        until_waiting(&book, i as usize + 1);
    }
    drop(first);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        rx.try_iter().collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    let stats = book.stats();
    assert_eq!((stats.turns, stats.waited, stats.overtaken), (9, 8, 0));
}

/// 32 threads taking 10 turns each on `slots` slots: never two holders on one slot.
fn thirty_two_threads_on(book: SlotBook, slots: usize) {
    let names: Vec<ObjectRef> = (0..slots).map(|i| slot(4 + i as u8)).collect();
    let holders: Arc<Vec<AtomicU32>> = Arc::new((0..slots).map(|_| AtomicU32::new(0)).collect());
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let (book, holders, names) = (book.clone(), Arc::clone(&holders), names.clone());
            std::thread::spawn(move || {
                for _ in 0..10 {
                    let turn = book.wait(&names, LONG).unwrap();
                    let at = names.iter().position(|n| n == turn.slot()).unwrap();
                    assert_eq!(holders[at].fetch_add(1, SeqCst), 0, "one holder per slot");
                    std::thread::yield_now();
                    holders[at].fetch_sub(1, SeqCst);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = book.stats();
    assert_eq!((stats.turns, stats.overtaken), (320, 0));
}

#[test]
fn thirty_two_threads_on_one_and_on_four_slots_in_memory() {
    thirty_two_threads_on(SlotBook::new(None), 1);
    thirty_two_threads_on(SlotBook::new(None), 4);
}

#[test]
fn thirty_two_threads_on_a_shared_folder() {
    let folder = Folder::new("threads");
    thirty_two_threads_on(folder.book(), 2);
}

#[test]
fn a_holder_past_its_lease_is_overtaken_and_its_key_is_no_longer_current() {
    let book = SlotBook::new(None);
    let stuck = book.wait(&[slot(4)], Duration::from_millis(30)).unwrap();
    let next = book.wait(&[slot(4)], LONG).unwrap();
    assert_eq!(book.stats().overtaken, 1);
    assert!(book.check(stuck.claim()).is_err());
    assert!(book.check(next.claim()).is_ok());
    drop(stuck);
    // The overtaken turn's release left the new holder alone.
    assert!(book.check(next.claim()).is_ok());
    let w = book.request(&[slot(4)], LONG).unwrap();
    drop(next);
    assert!(w.wait().is_ok());
}

#[test]
fn leaving_the_queue_lets_the_next_one_go() {
    let book = SlotBook::new(None);
    let held = book.wait(&[slot(4)], LONG).unwrap();
    let leaving = book.request(&[slot(4)], LONG).unwrap();
    let b = book.clone();
    let staying = std::thread::spawn(move || b.wait(&[slot(4)], LONG).map(|_| ()));
    until_waiting(&book, 2);
    drop(leaving);
    drop(held);
    staying.join().unwrap().unwrap();
    assert!(book.update(|r| r.waiters.is_empty()).unwrap());
}

#[test]
fn a_key_made_ahead_goes_to_the_next_turn_of_the_same_process_only() {
    let folder = Folder::new("ready");
    let (ours, theirs) = (folder.book(), folder.book());
    let turn = ours.idle_turn(&[slot(4)], LONG).unwrap().expect("idle");
    assert!(ours.idle_turn(&[slot(4)], LONG).unwrap().is_none(), "held");
    turn.keep_ready(test_key(4));
    assert!(ours.has_ready_key());
    assert!(
        ours.idle_turn(&[slot(4)], LONG).unwrap().is_none(),
        "one is waiting"
    );
    let mut next = ours.wait(&[slot(4)], LONG).unwrap();
    let key = next.take_ready().expect("the key made ahead");
    assert_eq!(key.claim(), Some(next.claim()));
    next.keep_ready(key);
    // Another book (process) takes the slot: the key is spent for everyone.
    let mut other = theirs.wait(&[slot(4)], LONG).unwrap();
    assert!(other.take_ready().is_none());
    drop(other);
    let mut again = ours.wait(&[slot(4)], LONG).unwrap();
    assert!(again.take_ready().is_none());
    assert!(!ours.has_ready_key());
}

fn test_key(id: u8) -> EphemeralKey {
    let mut point = [0u8; 65];
    point[0] = 4;
    EphemeralKey {
        generation: 1,
        key_pair: crate::card::KeyPair {
            private: slot(id),
            public: slot(id),
            point: crate::objects::EcPoint::from_slice(&point).unwrap(),
        },
        claim: None,
    }
}

#[test]
fn two_books_on_one_folder_take_turns_first_come_first_served() {
    let folder = Folder::new("fifo");
    let (a, b) = (folder.book(), folder.book());
    let held = a.wait(&[slot(4)], LONG).unwrap();
    // b asks first, then a again: a's release must go to b, not to a's own later waiter.
    let (tx, rx) = mpsc::channel();
    let tb = tx.clone();
    let bb = b.clone();
    let waiter_b = std::thread::spawn(move || {
        let turn = bb.wait(&[slot(4)], LONG).unwrap();
        tb.send("b").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(turn);
    });
    until_waiting(&a, 1);
    let ab = a.clone();
    let waiter_a = std::thread::spawn(move || {
        let _turn = ab.wait(&[slot(4)], LONG).unwrap();
        tx.send("a").unwrap();
    });
    until_waiting(&a, 2);
    drop(held);
    waiter_b.join().unwrap();
    waiter_a.join().unwrap();
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["b", "a"]);
    // b's turn came by polling the folder: nothing in b's process released the slot.
    assert_eq!(b.stats().waited, 1);
}

#[test]
fn an_agreement_claim_is_current_until_someone_else_is_granted() {
    let folder = Folder::new("claim");
    let (a, b) = (folder.book(), folder.book());
    let turn = a.take_now(&[slot(4)], LONG).unwrap();
    let claim = turn.claim().clone();
    drop(turn);
    assert!(a.check(&claim).is_ok(), "released, nobody else granted");
    let theirs = b.take_now(&[slot(4)], LONG).unwrap();
    assert!(matches!(a.check(&claim), Err(Error::SlotTakenOver { .. })));
    drop(theirs);
}

#[test]
fn an_unusable_folder_is_a_typed_error_at_use() {
    let file = std::env::temp_dir().join(format!("iotsafe-slots-notadir-{}", std::process::id()));
    std::fs::write(&file, b"x").unwrap();
    let book = SlotBook::in_folder(&file, Some("card"));
    assert!(matches!(
        book.wait(&[slot(4)], LONG),
        Err(Error::SlotRecord { .. })
    ));
    let memory = SlotBook::new(None);
    assert!(matches!(
        memory.request(&[], LONG),
        Err(Error::InvalidRequest { .. })
    ));
    std::fs::remove_file(file).unwrap();
}

/// Runs `future` to completion on this thread, parking between polls.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[test]
fn an_async_waiter_is_woken_by_a_release_without_polling() {
    let book = SlotBook::new(None);
    let held = book.wait(&[slot(4)], LONG).unwrap();
    let mut waiting = book.request(&[slot(4)], LONG).unwrap();
    assert!(waiting.try_take().unwrap().is_none());
    // No polling: a release in this process, or the holder's lease running out, brings the turn.
    assert!(waiting
        .recheck_in()
        .is_some_and(|t| t > Duration::from_secs(50)));
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        drop(held);
    });
    block_on(waiting.changed());
    let turn = waiting.try_take().unwrap().expect("released");
    assert_eq!(turn.slot(), &slot(4));
    releaser.join().unwrap();
}

#[test]
fn an_async_waiter_held_up_by_another_process_is_told_to_look_again() {
    let folder = Folder::new("recheck");
    let (a, b) = (folder.book(), folder.book());
    let held = a.wait(&[slot(4)], Duration::from_millis(200)).unwrap();
    let mut waiting = b.request(&[slot(4)], LONG).unwrap();
    assert!(waiting.try_take().unwrap().is_none());
    assert_eq!(waiting.recheck_in(), Some(FOREIGN_POLL));
    drop(held);
    assert!(waiting.try_take().unwrap().is_some());
}
