//! Time for the tokio driver: the wall clock, and the coarse clock the hot
//! path reads instead of it.
//!
//! Reading the system clock costs more than the rest of the hot path, so the
//! hot path compares expiries with a copy of the clock that a ticker thread
//! refreshes every [`CLOCK_TICK`]. The ticker is an OS thread of its own,
//! not a task: a task on the refresher's runtime stops ticking when that
//! runtime is starved (a current-thread runtime whose task blocks), and a
//! clock that stops would serve a token past its expiry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Timestamp;

/// The wall clock as a [`Timestamp`]: milliseconds since the UNIX epoch.
/// Every replica sharing a store must agree on it (within the expiry
/// margin), since expiries and leases are stored as instants.
pub fn wall_clock() -> Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Timestamp::from_millis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
}

/// How often the coarse clocks tick. Tokens stop being served
/// `expiry_margin` (30 s by default) before they expire, so a reading up to
/// a few ticks old is well inside the margin.
pub(crate) const CLOCK_TICK: Duration = Duration::from_millis(5);

/// A copy of `source`'s time, at most about one tick old while the process
/// is scheduled at all.
#[derive(Debug)]
pub(crate) struct CoarseClock {
    millis: AtomicU64,
    source: fn() -> Timestamp,
}

impl CoarseClock {
    /// A coarse copy of `source`, ticking until the returned `Arc` is gone.
    pub(crate) fn start(source: fn() -> Timestamp) -> Arc<CoarseClock> {
        let clock = Arc::new(CoarseClock {
            millis: AtomicU64::new(source().as_millis()),
            source,
        });
        Ticker::register(&clock);
        clock
    }

    /// The time as of the last tick.
    pub(crate) fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.millis.load(Ordering::Relaxed))
    }

    fn tick(&self) {
        self.millis
            .store((self.source)().as_millis(), Ordering::Relaxed);
    }
}

/// The clocks the ticker thread keeps current, and whether it runs. One
/// thread serves every refresher of the process; it exits when the last
/// clock is dropped and is started again by the next one.
struct Ticker {
    clocks: Vec<Weak<CoarseClock>>,
    running: bool,
}

static TICKER: Mutex<Ticker> = Mutex::new(Ticker {
    clocks: Vec::new(),
    running: false,
});

impl Ticker {
    fn register(clock: &Arc<CoarseClock>) {
        let mut ticker = TICKER.lock().unwrap_or_else(|poison| poison.into_inner());
        ticker.clocks.push(Arc::downgrade(clock));
        if !ticker.running {
            let spawned = std::thread::Builder::new()
                .name("baton-clock".into())
                .spawn(Ticker::run);
            // Without a thread (the OS refused one) the clocks would stand
            // still: better to fail loudly at construction than to serve
            // expired tokens later.
            spawned.expect("baton: cannot start the clock thread");
            ticker.running = true;
        }
    }

    fn run() {
        loop {
            std::thread::sleep(CLOCK_TICK);
            let mut ticker = TICKER.lock().unwrap_or_else(|poison| poison.into_inner());
            ticker.clocks.retain(|clock| match clock.upgrade() {
                Some(clock) => {
                    clock.tick();
                    true
                }
                None => false,
            });
            if ticker.clocks.is_empty() {
                ticker.running = false;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static FAKE_NOW: AtomicU64 = AtomicU64::new(1_000);

    fn fake_clock() -> Timestamp {
        Timestamp::from_millis(FAKE_NOW.load(Ordering::Relaxed))
    }

    #[test]
    fn the_coarse_clock_follows_its_source_without_any_runtime() {
        let clock = CoarseClock::start(fake_clock);
        assert_eq!(clock.now(), Timestamp::from_millis(1_000));
        FAKE_NOW.store(90_000, Ordering::Relaxed);
        // Blocking this thread must not stop the clock: it has its own.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while clock.now() != Timestamp::from_millis(90_000) {
            assert!(
                std::time::Instant::now() < deadline,
                "the coarse clock never caught up with its source"
            );
            std::thread::sleep(CLOCK_TICK);
        }
    }
}
