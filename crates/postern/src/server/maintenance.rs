//! The store's upkeep while serving: SQLite's write-ahead log copied into the database
//! (backing off while nothing is written), API key use written every 2 s, and PostgreSQL's
//! message count deltas folded every 2 s.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::KeyAuthenticator;
use crate::store::{Checkpointed, Store};

/// How often SQLite's write-ahead log is copied into the database ([`Store::checkpoint`]).
/// Each checkpoint ends with a flush of the database file, and the accepts' flushes of the
/// log wait behind it on the same disk, while its copying takes a core from them: the less
/// each one has to copy and flush, the less an accept waits behind it. A checkpoint every
/// 500 ms at 12,000 accepts/s had about 10 MB to flush and held answers up by ~10 ms each
/// time (p99 17-19 ms in the open loop of `bench/accept.sh`); every 100 ms, a fifth of that
/// (p99 6.4-8.6 ms at 13,800/s, one run 113 ms); every 25 ms, with the restart below only
/// every 20th, p99 4.2-5.3 ms at 13,800/s. The ticks are an interval: the work of one does
/// not push the next back.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(25);
/// While the log is idle (nothing written since the last checkpoint, which copied every
/// frame), only every this many ticks (200 ms) checks it again; the first tick after a write
/// of this process brings back the 25 ms cadence. An idle checkpoint copies nothing, but its
/// round trips to the pool's connection thread and the flush of the database file still cost
/// ~0.3-0.5 ms of CPU: an idle accept-only node spent 22-23.5 ms of CPU a second on 40 of
/// them, and 9.5-12 ms with the back-off.
const IDLE_CHECKPOINT_EVERY_TICKS: u64 = 8;
/// The checkpoint restarts the log (its last round holds the write lock, 1-2.5 ms here, during
/// which no accept commits) every this many ticks (500 ms); the ticks between copy and flush
/// without the lock. With a restart at every 100 ms tick, that stall fell on 1-2% of the
/// accepts, where the p99 is read. Between two restarts the log grows by what was committed
/// meanwhile (under 100 MB at full load here) and is then reused from its start.
const RESTART_EVERY_TICKS: u64 = 20;
/// How often API key use (`last_used_at`) is written, from the same loop.
const KEY_USAGE_EVERY: Duration = Duration::from_secs(2);
/// How often PostgreSQL's rows of message count deltas are folded
/// ([`Store::fold_message_counts`]). A group commit adds one row per tenant and status in it
/// (about 600 a second at 10,000 accepts/s); each change of status adds two (-1 and +1), so
/// each delivered message four (claimed, then delivered): at 4,000 deliveries a second about
/// 32,000 rows pile up between two folds. A scrape sums what is there: 160,000 rows (a 10 s
/// fold) took it 26-31 ms; the fold itself costs the same per row whatever its cadence.
const FOLD_COUNTS_EVERY: Duration = Duration::from_secs(2);

/// Whether the write-ahead log has been idle, for the maintenance loop's back-off
/// ([`IDLE_CHECKPOINT_EVERY_TICKS`]).
#[derive(Debug, Default)]
struct LogWatch {
    /// The last checkpoint's finding, and [`Store::writes`] just before it began.
    last: Option<(Checkpointed, u64)>,
    idle: bool,
}

impl LogWatch {
    /// Whether tick number `tick` should checkpoint, with `writes` the store's count now: any
    /// write of this process since the last checkpoint ends the back-off at once.
    fn due(&self, tick: u64, writes: u64) -> bool {
        !self.idle
            || tick.is_multiple_of(IDLE_CHECKPOINT_EVERY_TICKS)
            || self.last.is_none_or(|(_, w)| w != writes)
    }

    /// Records a checkpoint's finding (None: it failed), with `writes` read before it began.
    /// Idle means: no writer of this process took the write lock since the checkpoint before,
    /// and the log holds as many frames as then, every one copied. The frame count is what
    /// catches another process writing (a CLI command); that one's commits can go unseen
    /// only if the log restarted and got exactly as many frames as it held, and then the
    /// checkpoint comes at most 175 ms late.
    fn saw(&mut self, found: Option<Checkpointed>, writes: u64) {
        self.idle = match (self.last, found) {
            (Some((before, written)), Some(now)) => {
                written == writes && now.left == 0 && now.frames == before.frames
            }
            _ => false,
        };
        self.last = found.map(|f| (f, writes));
    }
}

/// Runs the checkpoints and the key-use writes until `stop` changes.
pub(super) fn spawn(
    store: Store,
    mut stop: watch::Receiver<bool>,
    keys: KeyAuthenticator,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = 0_u64;
        let mut every = tokio::time::interval(CHECKPOINT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut usage_written = tokio::time::Instant::now();
        let mut counts_folded = tokio::time::Instant::now();
        let mut log = LogWatch::default();
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.changed() => break,
            }
            let writes = store.writes();
            if log.due(ticks, writes) {
                let found = store
                    .checkpoint(ticks.is_multiple_of(RESTART_EVERY_TICKS))
                    .await;
                if let Err(e) = &found {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
                log.saw(found.ok(), writes);
            }
            ticks += 1;
            if usage_written.elapsed() >= KEY_USAGE_EVERY {
                usage_written = tokio::time::Instant::now();
                if let Err(e) = keys.flush_usage().await {
                    tracing::warn!(error = %e, "recording API key use failed");
                }
            }
            if counts_folded.elapsed() >= FOLD_COUNTS_EVERY {
                counts_folded = tokio::time::Instant::now();
                if let Err(e) = store.fold_message_counts().await {
                    tracing::warn!(error = %e, "folding the message counts failed");
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    /// The back-off follows the real log: a checkpoint after a write keeps the 25 ms cadence,
    /// the next one with nothing written backs off, and a write brings it back at the next
    /// tick.
    #[tokio::test]
    async fn checkpoints_back_off_while_nothing_is_written() {
        use super::{IDLE_CHECKPOINT_EVERY_TICKS, LogWatch};
        use crate::store::Checkpointed;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = crate::store::Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let mut log = LogWatch::default();
        let skipped = |log: &LogWatch, writes: u64| {
            (1..IDLE_CHECKPOINT_EVERY_TICKS).all(|t| !log.due(t, writes))
        };
        store.create_tenant("acme", 1).await.unwrap();
        for _ in 0..2 {
            let w = store.writes();
            log.saw(store.checkpoint(false).await.ok(), w);
        }
        assert!(log.idle, "nothing was written between the two checkpoints");
        let w = store.writes();
        assert!(log.due(0, w) && log.due(IDLE_CHECKPOINT_EVERY_TICKS, w));
        assert!(skipped(&log, w));

        // A write of this process ends the back-off at the next tick.
        store.create_tenant("globex", 2).await.unwrap();
        assert!(store.writes() > w);
        assert!((1..IDLE_CHECKPOINT_EVERY_TICKS).all(|t| log.due(t, store.writes())));
        let w = store.writes();
        log.saw(store.checkpoint(false).await.ok(), w);
        assert!(!log.idle, "the new tenant was written since");
        assert!((0..IDLE_CHECKPOINT_EVERY_TICKS).all(|t| log.due(t, w)));

        // The restart's own hold of the write lock is no write: idle again after it.
        log.saw(store.checkpoint(true).await.ok(), w);
        log.saw(store.checkpoint(false).await.ok(), store.writes());
        assert!(log.idle);

        // Another process writing the same file: only the log's frames tell.
        let frames_before = log.last.unwrap().0.frames;
        let other = crate::store::Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        // Two commits: after a restart, one commit of the same pages as the log held before
        // would leave the count where it was (the case `saw` documents).
        other.create_tenant("initech", 3).await.unwrap();
        other.create_tenant("umbrella", 4).await.unwrap();
        let w = store.writes();
        let found = store.checkpoint(false).await.unwrap();
        assert_ne!(
            found.frames, frames_before,
            "the other process added frames"
        );
        log.saw(Some(found), w);
        assert!(!log.idle, "the other process's write was seen in the log");

        // Frames a reader held back, another checkpointer, a failed checkpoint: never idle.
        let (copied, _) = log.last.unwrap();
        for held in [
            Checkpointed { left: 3, ..copied },
            Checkpointed { left: -1, ..copied },
        ] {
            log.saw(Some(copied), w);
            log.saw(Some(copied), w);
            assert!(log.idle);
            log.saw(Some(held), w);
            assert!(!log.idle, "{held:?}");
        }
        log.saw(None, w);
        assert!(!log.idle);
        other.close().await;
    }
}
