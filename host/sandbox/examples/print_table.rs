//! Starts every emulator on ephemeral ports, prints the table `weft sandbox` shows, makes one
//! authenticated call to prove the wiring, and stops. Run with
//! `cargo run -p weft-sandbox --example print_table`.

use weft_sandbox::{Sandbox, SandboxConfig, Vendor};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = Sandbox::start(SandboxConfig::default()).await?;
    print!("{}", weft_sandbox::render_table(&sandbox));

    // Zendesk takes its API token over Basic auth, so one request shows the sandbox answering.
    let zendesk = sandbox.vendor(Vendor::Zendesk).expect("zendesk runs");
    let c = zendesk.credentials();
    let http = reqwest::Client::builder().no_proxy().build()?;
    let status = http
        .get(format!(
            "{}/api/v2/tickets.json?page[size]=1",
            zendesk.base_url()
        ))
        .basic_auth(format!("{}/token", c.username), c.api_token)
        .send()
        .await?
        .status();
    println!(
        "\nGET {}/api/v2/tickets.json -> {status}",
        zendesk.base_url()
    );
    sandbox.shutdown().await;
    Ok(())
}
