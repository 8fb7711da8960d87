//! Secrets: references in flow files, encryption at rest, and redaction.
//!
//! Flow files never hold credentials directly; they refer to them with a [`SecretRef`]:
//! `secret:NAME` (encrypted in the store, set with `weft secret set NAME`), `env:NAME` (the host
//! process's environment) or, discouraged, a literal. [`Secrets`] seals values with an AEAD under
//! a master key before they reach the store, binding each ciphertext to its tenant and name so a
//! row copied to another name or tenant does not decrypt. A resolved value is a [`Secret`], which
//! never prints itself, and [`redact`] scrubs secrets out of any text that leaves the host.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{self, Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use weft_store::{SecretEntry, Store, StoreError};
use zeroize::Zeroizing;

/// The environment variable holding the master key (base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "WEFT_MASTER_KEY";

/// The key file's name inside the data directory, used when [`MASTER_KEY_ENV`] is unset.
pub const MASTER_KEY_FILE: &str = "master.key";

/// What every redacted value is replaced with.
pub const REDACTED: &str = "<redacted>";

/// A secret value. Its `Debug` and `Display` print `<redacted>` and its memory is zeroed on drop,
/// so it can sit in structs that are logged without leaking.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The plaintext. Call only where the value is about to be used (a header, a signature).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Where a secret value comes from, as written in a flow file.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum SecretRef {
    /// `secret:NAME`: sealed in the store under the connection's tenant.
    Stored(String),
    /// `env:NAME`: the host process's environment variable.
    Env(String),
    /// Anything else: the value itself. Allowed for quick experiments, warned about, because the
    /// flow file then holds a credential in plain text.
    Literal(Secret),
}

impl SecretRef {
    /// Whether this is a literal value written into the flow file.
    pub fn is_literal(&self) -> bool {
        matches!(self, SecretRef::Literal(_))
    }
}

impl FromStr for SecretRef {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::from(s.to_owned()))
    }
}

impl From<String> for SecretRef {
    fn from(s: String) -> Self {
        if let Some(name) = s.strip_prefix("secret:") {
            SecretRef::Stored(name.to_owned())
        } else if let Some(name) = s.strip_prefix("env:") {
            SecretRef::Env(name.to_owned())
        } else {
            SecretRef::Literal(Secret::new(s))
        }
    }
}

impl From<&str> for SecretRef {
    fn from(s: &str) -> Self {
        Self::from(s.to_owned())
    }
}

/// Shows the reference, never a literal's value.
impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Stored(n) => write!(f, "secret:{n}"),
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::Literal(_) => f.write_str("<literal value>"),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a secret could not be read, written or decrypted. Each says which secret and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// `secret:NAME` names a secret that was never set.
    #[error(
        "secret {name:?} is not set for tenant {tenant:?}; set it with `weft secret set {name}` (the value is read from stdin)"
    )]
    Missing {
        /// The secret's name.
        name: String,
        /// The tenant it was looked up for.
        tenant: String,
    },
    /// `env:NAME` names an unset (or non-UTF-8) environment variable.
    #[error(
        "environment variable {var} (referenced as env:{var}) is not set in the weft process's environment"
    )]
    MissingEnv {
        /// The variable's name.
        var: String,
    },
    /// The sealed value did not decrypt: wrong master key, or the row was tampered with or
    /// copied from another name or tenant.
    #[error(
        "secret {name:?} of tenant {tenant:?} cannot be decrypted: it was sealed with a different master key than the one from {key_source} (or the row was altered); use the original key, or set the secret again with `weft secret set {name}`"
    )]
    Decrypt {
        /// The secret's name.
        name: String,
        /// The tenant.
        tenant: String,
        /// Where the master key in use came from.
        key_source: String,
    },
    /// The decrypted value is not UTF-8 text.
    #[error(
        "secret {name:?} of tenant {tenant:?} is not UTF-8 text; set it again with `weft secret set {name}`"
    )]
    NotText {
        /// The secret's name.
        name: String,
        /// The tenant.
        tenant: String,
    },
    /// The master key is malformed.
    #[error("the master key from {key_source} is invalid: {reason}")]
    InvalidMasterKey {
        /// Where it came from.
        key_source: String,
        /// What is wrong (never the key itself).
        reason: String,
    },
    /// The key file could not be read or created.
    #[error("cannot {action} the master key file {path}: {source}")]
    KeyFile {
        /// "read" or "create".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Only `secret:NAME` references can be written back (e.g. a rotated refresh token).
    #[error("cannot store a new value for {reference}: only secret:NAME references can be updated")]
    NotWritable {
        /// The reference, displayed without any literal value.
        reference: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The key every secret is sealed with.
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
    source: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(from {}, {REDACTED})", self.source)
    }
}

impl MasterKey {
    /// Decodes a base64 key of exactly 32 bytes; `source` says where it came from, for messages.
    pub fn from_base64(text: &str, source: impl Into<String>) -> Result<Self, SecretError> {
        let source = source.into();
        let decoded =
            Zeroizing::new(
                B64.decode(text.trim())
                    .map_err(|e| SecretError::InvalidMasterKey {
                        key_source: source.clone(),
                        reason: format!("not base64 ({e})"),
                    })?,
            );
        let bytes: [u8; 32] =
            decoded
                .as_slice()
                .try_into()
                .map_err(|_| SecretError::InvalidMasterKey {
                    key_source: source.clone(),
                    reason: format!("it decodes to {} bytes, 32 are needed", decoded.len()),
                })?;
        Ok(Self {
            bytes: Zeroizing::new(bytes),
            source,
        })
    }

    /// A fresh random key.
    pub fn generate(source: impl Into<String>) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .expect("the operating system's random number generator failed");
        Self {
            bytes,
            source: source.into(),
        }
    }

    /// The key as base64, for writing the key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(self.bytes.as_ref()))
    }

    /// Where the key came from (the env variable's name or the key file's path).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Loads the master key the way `weft` does: from [`MASTER_KEY_ENV`] if set, else from
    /// `data_dir/master.key`, which is created with a new random key (mode 0600) if absent.
    pub fn load(data_dir: &Path) -> Result<Self, SecretError> {
        let env = std::env::var(MASTER_KEY_ENV).ok().map(Zeroizing::new);
        Self::load_from(
            env.as_deref().map(String::as_str),
            &data_dir.join(MASTER_KEY_FILE),
        )
    }

    /// Like [`MasterKey::load`] with the environment value passed in, so callers and tests do not
    /// need to mutate the process environment.
    pub fn load_from(env_value: Option<&str>, key_file: &Path) -> Result<Self, SecretError> {
        if let Some(value) = env_value.filter(|v| !v.trim().is_empty()) {
            return Self::from_base64(value, MASTER_KEY_ENV);
        }
        let source = key_file.display().to_string();
        match std::fs::read_to_string(key_file) {
            Ok(text) => Self::from_base64(&Zeroizing::new(text), source),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate(source);
                write_key_file(key_file, key.to_base64().as_bytes()).map_err(|source| {
                    SecretError::KeyFile {
                        action: "create",
                        path: key_file.to_path_buf(),
                        source,
                    }
                })?;
                tracing::info!(path = %key_file.display(), "created a new master key file; back it up, secrets cannot be read without it");
                Ok(key)
            }
            Err(source) => Err(SecretError::KeyFile {
                action: "read",
                path: key_file.to_path_buf(),
                source,
            }),
        }
    }
}

/// Creates the key file readable by its owner only, failing if it appeared meanwhile so two
/// processes starting together cannot overwrite each other's key.
fn write_key_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// The secrets API: the store plus the cipher. Cheap to clone.
///
/// Values are sealed with ChaCha20-Poly1305 under the master key, a fresh random 96-bit nonce per
/// write, and `tenant \0 name` as associated data. The store keeps `nonce || ciphertext || tag`.
#[derive(Clone)]
pub struct Secrets {
    store: Store,
    key: std::sync::Arc<LessSafeKey>,
    key_source: String,
    rng: SystemRandom,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("key_source", &self.key_source)
            .finish_non_exhaustive()
    }
}

impl Secrets {
    /// Secrets sealed with `key` in `store`.
    pub fn new(store: Store, key: MasterKey) -> Self {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key.bytes.as_ref())
            .expect("a 32-byte key is valid for ChaCha20-Poly1305");
        Self {
            store,
            key: std::sync::Arc::new(LessSafeKey::new(unbound)),
            key_source: key.source,
            rng: SystemRandom::new(),
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Seals and stores `value` as `name` for `tenant`, replacing any previous value.
    pub async fn set(&self, tenant: &str, name: &str, value: &Secret) -> Result<(), SecretError> {
        let row = self.seal(&associated_data(tenant, name), value.expose().as_bytes());
        self.store.secret_put(tenant, name, &row).await?;
        Ok(())
    }

    /// Reads and decrypts `name` for `tenant`.
    pub async fn get(&self, tenant: &str, name: &str) -> Result<Secret, SecretError> {
        let row =
            self.store
                .secret_get(tenant, name)
                .await?
                .ok_or_else(|| SecretError::Missing {
                    name: name.to_owned(),
                    tenant: tenant.to_owned(),
                })?;
        let decrypt_err = || SecretError::Decrypt {
            name: name.to_owned(),
            tenant: tenant.to_owned(),
            key_source: self.key_source.clone(),
        };
        let plain = self
            .open(&associated_data(tenant, name), &row)
            .ok_or_else(decrypt_err)?;
        let text = std::str::from_utf8(&plain).map_err(|_| SecretError::NotText {
            name: name.to_owned(),
            tenant: tenant.to_owned(),
        })?;
        Ok(Secret::new(text))
    }

    /// `nonce + ciphertext` of `plain`, bound to `aad`.
    fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the operating system's random number generator failed");
        let mut sealed = Zeroizing::new(plain.to_vec());
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut *sealed,
            )
            .expect("sealing cannot fail for in-memory buffers under the size limit");
        let mut row = Vec::with_capacity(NONCE_LEN + sealed.len());
        row.extend_from_slice(&nonce);
        row.extend_from_slice(&sealed);
        row
    }

    /// The plaintext of a row [`Self::seal`] made with the same `aad`; `None` if it does not
    /// open under this key.
    fn open(&self, aad: &[u8], row: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if row.len() < NONCE_LEN + aead::CHACHA20_POLY1305.tag_len() {
            return None;
        }
        let (nonce, sealed) = row.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .ok()?
            .len();
        buf.truncate(len);
        Some(buf)
    }

    /// Keeps a token a token endpoint issued (its JSON envelope), sealed, for every process
    /// using the same credential; `credential` is a digest of what it was issued for.
    pub async fn token_keep(
        &self,
        tenant: &str,
        credential: &str,
        envelope: &[u8],
    ) -> Result<(), SecretError> {
        let row = self.seal(&token_associated_data(tenant, credential), envelope);
        Ok(self.store.token_put(tenant, credential, &row).await?)
    }

    /// The envelope [`Self::token_keep`] kept for `credential`, if any and if it opens (a token
    /// sealed under another master key is as good as none).
    pub async fn token_load(
        &self,
        tenant: &str,
        credential: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, SecretError> {
        let row = self.store.token_get(tenant, credential).await?;
        Ok(row.and_then(|row| self.open(&token_associated_data(tenant, credential), &row)))
    }

    /// Forgets the token kept for `credential`.
    pub async fn token_forget(&self, tenant: &str, credential: &str) -> Result<(), SecretError> {
        Ok(self.store.token_delete(tenant, credential).await?)
    }

    /// Deletes `name` for `tenant`; returns whether it existed.
    pub async fn delete(&self, tenant: &str, name: &str) -> Result<bool, SecretError> {
        Ok(self.store.secret_delete(tenant, name).await?)
    }

    /// The tenant's secret names with when each was last set; never values.
    pub async fn list(&self, tenant: &str) -> Result<Vec<SecretEntry>, SecretError> {
        Ok(self.store.secret_list(tenant).await?)
    }

    /// Resolves a reference for `tenant`.
    pub async fn resolve(
        &self,
        tenant: &str,
        reference: &SecretRef,
    ) -> Result<Secret, SecretError> {
        match reference {
            SecretRef::Stored(name) => self.get(tenant, name).await,
            SecretRef::Env(var) => std::env::var(var)
                .map(Secret::new)
                .map_err(|_| SecretError::MissingEnv { var: var.clone() }),
            SecretRef::Literal(value) => Ok(value.clone()),
        }
    }

    /// Writes a new value through a reference, e.g. a rotated refresh token. Only `secret:NAME`
    /// references can be written.
    pub async fn update(
        &self,
        tenant: &str,
        reference: &SecretRef,
        value: &Secret,
    ) -> Result<(), SecretError> {
        match reference {
            SecretRef::Stored(name) => self.set(tenant, name, value).await,
            other => Err(SecretError::NotWritable {
                reference: other.to_string(),
            }),
        }
    }
}

/// Tokens are sealed under other associated data than secrets, so a token row can never be
/// passed off as a secret or the other way round.
fn token_associated_data(tenant: &str, credential: &str) -> Vec<u8> {
    let mut aad = associated_data(tenant, credential);
    aad.extend_from_slice(b"\0token");
    aad
}

fn associated_data(tenant: &str, name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(tenant.len() + 1 + name.len() + 8);
    aad.extend_from_slice(b"weft-v1\0");
    aad.extend_from_slice(tenant.as_bytes());
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// Replaces every occurrence of each secret in `text` with `<redacted>`.
///
/// Used on any text that may echo a credential back: an upstream error body, a URL with a
/// credential in its query, a transport error. Secrets shorter than 4 characters are skipped: they
/// would turn ordinary text into noise and cannot be meaningfully hidden anyway.
pub fn redact(text: &str, secrets: &[Secret]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        let value = secret.expose();
        if value.len() >= 4 && out.contains(value) {
            out = out.replace(value, REDACTED);
        }
    }
    out
}

/// [`redact`] for bytes that may not be UTF-8, such as a response body.
pub fn redact_bytes(bytes: &[u8], secrets: &[Secret]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for secret in secrets {
        let needle = secret.expose().as_bytes();
        if needle.len() < 4 || out.len() < needle.len() {
            continue;
        }
        let mut result = Vec::with_capacity(out.len());
        let mut i = 0;
        let mut changed = false;
        while i < out.len() {
            if out[i..].starts_with(needle) {
                result.extend_from_slice(REDACTED.as_bytes());
                i += needle.len();
                changed = true;
            } else {
                result.push(out[i]);
                i += 1;
            }
        }
        if changed {
            out = result;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(
            SecretRef::from("secret:zoho_refresh"),
            SecretRef::Stored("zoho_refresh".into())
        );
        assert_eq!(
            SecretRef::from("env:ZOHO_ID"),
            SecretRef::Env("ZOHO_ID".into())
        );
        assert!(SecretRef::from("hunter22").is_literal());
        assert_eq!(SecretRef::from("hunter22").to_string(), "<literal value>");
        assert_eq!(
            format!("{:?}", SecretRef::from("hunter22")),
            "<literal value>"
        );
    }

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("tok-abcdef");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(format!("{:?}", Some(s)), "Some(<redacted>)");
    }

    #[test]
    fn redacts_every_occurrence() {
        let secrets = [Secret::new("tok-abcdef"), Secret::new("ab")];
        assert_eq!(
            redact("bad token tok-abcdef (tok-abcdef) ab", &secrets),
            "bad token <redacted> (<redacted>) ab"
        );
        assert_eq!(
            redact_bytes(b"\xff tok-abcdef", &secrets),
            b"\xff <redacted>".to_vec()
        );
    }

    #[test]
    fn master_key_must_be_32_bytes_of_base64() {
        assert!(MasterKey::from_base64("not base64!", "test").is_err());
        let err = MasterKey::from_base64(&B64.encode([0u8; 16]), "test").unwrap_err();
        assert!(err.to_string().contains("16 bytes, 32 are needed"), "{err}");
        assert!(MasterKey::from_base64(&B64.encode([7u8; 32]), "test").is_ok());
    }
}
