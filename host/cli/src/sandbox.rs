//! `weft sandbox`: every emulator on its well-known port until Ctrl-C.

use anyhow::Context;
use clap::Args;
use weft_sandbox::{Sandbox, SandboxConfig};

#[derive(Args)]
pub struct SandboxArgs {
    /// Seed of the generated demo data; the same seed gives the same records.
    #[arg(long)]
    seed: Option<u64>,
    /// Let the OS choose free ports instead of 4100-4107.
    #[arg(long)]
    ephemeral_ports: bool,
}

pub async fn run(args: SandboxArgs) -> anyhow::Result<()> {
    let mut config = if args.ephemeral_ports { SandboxConfig::default() } else { SandboxConfig::well_known_ports() };
    if let Some(seed) = args.seed {
        config.data.seed = seed;
    }
    let sandbox = Sandbox::start(config).await.context("starting the sandbox")?;
    print!("{}", weft_sandbox::render_table(&sandbox));
    println!("\nadmin API  {}  (reset, seed, request log, faults, token expiry)", sandbox.admin_url());
    println!("Ctrl-C stops the sandbox.");
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    sandbox.shutdown().await;
    Ok(())
}
