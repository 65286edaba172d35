//! `postern simulate`: the real pipeline on virtual time. The same detector and containment
//! task, pause set, routing table and `deliver_one` as `serve`, with simulated providers whose
//! recipients bounce, complain and auto-reply at the rates a scenario declares, and simulated
//! senders. Deterministic for a seed: one seeded RNG, a manual clock, no wall time, and results
//! gathered in declaration order.
//!
//! The acceptor's logic (hold when a pause covers the message, then observe it) runs in-line
//! instead of through the group-commit writer, and messages are followed in memory: a
//! 10-minute scenario at 500 msg/s runs in seconds. The store (a temporary SQLite file) holds
//! the tenants and routes that the routing table loads, and the pauses and alerts the
//! containment task writes.

mod duration;
mod provider;
mod run;
pub mod scenario;
mod summary;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;

pub use scenario::{Scenario, ScenarioError};

/// Reads and checks a scenario file.
pub fn load(path: &Path) -> anyhow::Result<Scenario> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading scenario {}", path.display()))?;
    Ok(Scenario::parse(&path.display().to_string(), &text)?)
}

/// Runs a scenario; returns the JSON summary and whether every expectation passed.
pub async fn simulate(
    sc: &Scenario,
    seed: Option<u64>,
) -> anyhow::Result<(serde_json::Value, bool)> {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let seed = seed.unwrap_or(sc.scenario.seed);
    let file = std::env::temp_dir().join(format!(
        "postern-sim-{}-{}.db",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let result = async {
        let store = crate::store::Store::connect(&url)
            .await
            .context("opening the simulation's store")?;
        let mut run = run::Run::new(sc, seed, store.clone()).await?;
        run.run().await?;
        let out = run.tally.summary(sc, seed);
        drop(run);
        store.close().await;
        anyhow::Ok(out)
    }
    .await;
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", file.display()));
    }
    result
}
