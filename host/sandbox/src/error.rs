use std::net::SocketAddr;

/// Why the sandbox could not start or could not apply a setting.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "could not listen on {addr} for the {vendor} emulator: {source}; pick another port or free this one"
    )]
    Bind {
        vendor: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    #[error("the Salesforce JWT public key is not a PEM or DER RSA public key: {0}")]
    PublicKey(String),
}
