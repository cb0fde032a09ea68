//! How long the async runtime was kept from running its tasks: a task that asks to wake every
//! 5 ms and notes the longest it waited beyond that. On a `current_thread` runtime anything that
//! blocks the thread (card work in a rustls callback, say) shows here in full.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The tick asked for.
pub const TICK: Duration = Duration::from_millis(5);

/// A running ticker; [`StallWatch::stop`] gives the longest stall it saw.
#[derive(Debug)]
pub struct StallWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Duration>,
}

impl StallWatch {
    /// Starts the ticker on the current runtime.
    pub fn start() -> StallWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut longest = Duration::ZERO;
            let mut last = Instant::now();
            while !stopping.load(Ordering::SeqCst) {
                tokio::time::sleep(TICK).await;
                let now = Instant::now();
                longest = longest.max(now.duration_since(last).saturating_sub(TICK));
                last = now;
            }
            longest
        });
        StallWatch { stop, task }
    }

    /// Stops the ticker: the longest stall seen.
    pub async fn stop(self) -> Duration {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap_or_default()
    }
}
