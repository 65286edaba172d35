//! `postern simulate SCENARIO.toml [--seed N] [--json]`.

use std::path::PathBuf;

use anyhow::bail;

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// The scenario file (see scenarios/)
    scenario: PathBuf,
    /// Seed of the run [default: the scenario's `seed`]
    #[arg(long)]
    seed: Option<u64>,
}

/// Prints the summary (pretty JSON; one line with --json) and fails when an expectation does.
pub(super) async fn simulate(args: SimulateArgs, json_out: bool) -> anyhow::Result<()> {
    let sc = crate::sim::load(&args.scenario)?;
    let (summary, passed) = crate::sim::simulate(&sc, args.seed).await?;
    let text = if json_out {
        serde_json::to_string(&summary)?
    } else {
        serde_json::to_string_pretty(&summary)?
    };
    println!("{text}");
    if !passed {
        let failed: Vec<&str> = summary["expectations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["pass"] == false)
            .filter_map(|c| c["name"].as_str())
            .collect();
        bail!(
            "scenario {:?}: expectations failed: {}",
            sc.scenario.name,
            failed.join(", ")
        );
    }
    Ok(())
}
