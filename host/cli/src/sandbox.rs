//! `weft sandbox`: every emulator on its well-known port until Ctrl-C, and with `--proxy` an
//! HTTPS proxy for clients that hard-code the vendors' hosts.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use clap::Args;
use weft_sandbox::{ProxyCa, Sandbox, SandboxConfig};

#[derive(Args)]
pub struct SandboxArgs {
    /// Seed of the generated demo data; the same seed gives the same records.
    #[arg(long)]
    seed: Option<u64>,
    /// Let the OS choose free ports instead of 4100-4108.
    #[arg(long)]
    ephemeral_ports: bool,
    /// Also serve an HTTPS proxy (default 127.0.0.1:4108) that routes the vendors' real hosts
    /// (api.hubapi.com, *.zendesk.com, login.salesforce.com, ...) to the emulators and refuses
    /// every other host. Point any client at the sandbox with HTTPS_PROXY and the sandbox's CA
    /// certificate, kept in the data directory (sandbox-ca.pem, made on first use), e.g.
    /// `HTTPS_PROXY=http://127.0.0.1:4108 REQUESTS_CA_BUNDLE=.weft/sandbox-ca.pem`.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:4108")]
    proxy: Option<SocketAddr>,
    /// Lift every vendor limit on the pace of requests (per minute, per day, concurrency), for
    /// benchmarks: the client sets the pace, not the emulated throttling. Page sizes stay.
    #[arg(long)]
    no_rate_limits: bool,
}

pub async fn run(args: SandboxArgs, data_dir: &Path) -> anyhow::Result<()> {
    let mut config = if args.ephemeral_ports {
        SandboxConfig::default()
    } else {
        SandboxConfig::well_known_ports()
    };
    if let Some(seed) = args.seed {
        config.data.seed = seed;
    }
    if args.no_rate_limits {
        config = config.unthrottled();
    }
    let sandbox = Sandbox::start(config)
        .await
        .context("starting the sandbox")?;
    print!("{}", weft_sandbox::render_table(&sandbox));
    println!(
        "\nadmin API  {}  (reset, seed, request log, faults, token expiry)",
        sandbox.admin_url()
    );
    let proxy = match args.proxy {
        None => None,
        Some(mut addr) => {
            if args.ephemeral_ports {
                addr.set_port(0);
            }
            let authority =
                ProxyCa::load_or_create(data_dir).context("loading the sandbox's CA")?;
            let proxy = sandbox
                .start_proxy(addr, authority)
                .await
                .context("starting the sandbox's HTTPS proxy")?;
            let ca = ProxyCa::cert_path(data_dir);
            println!(
                "\nHTTPS proxy  {}  (the vendors' hosts, answered by the emulators; anything else is refused)",
                proxy.url()
            );
            println!("  CA certificate  {}", ca.display());
            println!("  export HTTPS_PROXY={}", proxy.url());
            println!(
                "  export REQUESTS_CA_BUNDLE={0} SSL_CERT_FILE={0} NODE_EXTRA_CA_CERTS={0}",
                ca.display()
            );
            Some(proxy)
        }
    };
    println!("Ctrl-C stops the sandbox.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    if let Some(proxy) = proxy {
        proxy.shutdown().await;
    }
    sandbox.shutdown().await;
    Ok(())
}
