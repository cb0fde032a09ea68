//! Where rustls's synchronous callbacks run, and so where card work may block.
//!
//! rustls calls the card from `ClientConnection::new` (key generation, and the wait for a slot)
//! and from `process_new_packets` (DH, signature): on whatever thread drives the connection. On
//! an OS thread, or in the async connector's blocking tasks, blocking is what should happen. On a
//! tokio runtime's own threads it stalls every other task, and waiting for a slot there can
//! deadlock (the handshake that holds the slot cannot be polled). So, with the `tokio` feature:
//!
//! | the callback runs on | card work | waiting for a slot |
//! |---|---|---|
//! | an OS thread, or a blocking task of [`crate::CardConnector`] | here | blocks |
//! | a multi-thread runtime's worker (plain tokio-rustls) | `block_in_place`: the runtime moves its other tasks to another thread | blocks, in place |
//! | a `current_thread` runtime (plain tokio-rustls) | here (the runtime stalls for its time) | never: a free slot or a key made ahead, else the handshake's ECDHE on the host ([`crate::KxOptions::host_ecdhe_when_busy`]) |
//!
//! A `current_thread` runtime's blocking tasks cannot be told from its own thread by tokio's
//! public API; they are treated as the runtime's thread (no waiting), unless the code runs under
//! [`blocking_allowed`], as the connector's tasks do.

use std::cell::Cell;

thread_local! {
    /// Set while code that may block runs on this thread (see [`blocking_allowed`]).
    static MAY_BLOCK: Cell<bool> = const { Cell::new(false) };
}

/// Where the calling thread stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Without tokio every thread may block: only `MayBlock` is ever made.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) enum Here {
    /// Blocking is fine.
    MayBlock,
    /// A multi-thread tokio runtime: block through `block_in_place`.
    InPlace,
    /// A `current_thread` runtime: never wait.
    MustNotWait,
}

/// Where the calling thread stands.
pub(crate) fn here() -> Here {
    if MAY_BLOCK.with(Cell::get) {
        return Here::MayBlock;
    }
    #[cfg(feature = "tokio")]
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        return match handle.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => Here::InPlace,
            _ => Here::MustNotWait,
        };
    }
    Here::MayBlock
}

/// Runs `f`, which blocks on the card, where it stalls no other task: in place on a multi-thread
/// runtime's worker, directly everywhere else.
pub(crate) fn card_work<T>(f: impl FnOnce() -> T) -> T {
    match here() {
        #[cfg(feature = "tokio")]
        Here::InPlace => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Runs `f` on this thread as code that may block on the card and wait for a slot: what a
/// blocking task of an async runtime (`tokio::task::spawn_blocking`) is for. Call it around a
/// `rustls::ClientConnection` that you drive in such a task on a `current_thread` runtime, where
/// this crate cannot tell the task from the runtime's own thread.
pub fn blocking_allowed<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            MAY_BLOCK.with(|m| m.set(self.0));
        }
    }
    let _reset = Reset(MAY_BLOCK.with(|m| m.replace(true)));
    f()
}

#[cfg(all(test, feature = "tokio"))]
mod tests {
    use super::*;

    #[test]
    fn each_place_is_told_apart() {
        assert_eq!(here(), Here::MayBlock);
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        current.block_on(async {
            assert_eq!(here(), Here::MustNotWait);
            assert_eq!(blocking_allowed(here), Here::MayBlock);
            assert_eq!(here(), Here::MustNotWait, "reset after");
        });
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        multi.block_on(async {
            let on_worker = tokio::spawn(async { (here(), card_work(|| 7)) });
            assert_eq!(on_worker.await.unwrap(), (Here::InPlace, 7));
        });
    }
}
