//! Secrets at rest: encryption, binding, master keys.

use weft_capabilities::{MasterKey, Secret, SecretError, SecretRef, Secrets};
use weft_store::Store;

const PLAINTEXT: &str = "zoho-refresh-token-PLAINTEXT-9f8e7d";

async fn file_secrets(dir: &std::path::Path, key: MasterKey) -> Secrets {
    Secrets::new(Store::open_sqlite(dir.join("weft.db")).await.unwrap(), key)
}

fn db_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["weft.db", "weft.db-wal", "weft.db-shm"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            all.extend(bytes);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn secrets_round_trip_encrypted_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    let s = file_secrets(dir.path(), MasterKey::load_from(None, &key_file).unwrap()).await;
    s.set("default", "zoho_refresh", &Secret::new(PLAINTEXT))
        .await
        .unwrap();
    assert_eq!(
        s.get("default", "zoho_refresh").await.unwrap().expose(),
        PLAINTEXT
    );

    let on_disk = db_bytes(dir.path());
    assert!(
        contains(&on_disk, b"zoho_refresh"),
        "the name is stored in the clear (sanity check)"
    );
    assert!(
        !contains(&on_disk, PLAINTEXT.as_bytes()),
        "the plaintext is in the database file"
    );

    // A second process with the same key file reads it back.
    drop(s);
    let again = file_secrets(dir.path(), MasterKey::load_from(None, &key_file).unwrap()).await;
    assert_eq!(
        again.get("default", "zoho_refresh").await.unwrap().expose(),
        PLAINTEXT
    );
    let listed: Vec<String> = again
        .list("default")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(listed, ["zoho_refresh"]);
    assert!(again.delete("default", "zoho_refresh").await.unwrap());
}

#[tokio::test]
async fn wrong_master_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = file_secrets(dir.path(), MasterKey::generate("first key")).await;
    s.set("default", "zoho_refresh", &Secret::new(PLAINTEXT))
        .await
        .unwrap();
    drop(s);
    let other = file_secrets(dir.path(), MasterKey::generate("WEFT_MASTER_KEY")).await;
    let err = other.get("default", "zoho_refresh").await.unwrap_err();
    assert!(matches!(err, SecretError::Decrypt { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("zoho_refresh") && text.contains("different master key"),
        "{text}"
    );
    assert!(
        text.contains("WEFT_MASTER_KEY"),
        "names where the key came from: {text}"
    );
    assert!(!text.contains(PLAINTEXT));
}

#[tokio::test]
async fn sealed_value_is_bound_to_its_tenant_and_name() {
    let store = Store::open_in_memory().await.unwrap();
    let s = Secrets::new(store.clone(), MasterKey::generate("test"));
    s.set("default", "a", &Secret::new(PLAINTEXT))
        .await
        .unwrap();
    let row = store.secret_get("default", "a").await.unwrap().unwrap();
    store.secret_put("default", "b", &row).await.unwrap();
    store.secret_put("acme", "a", &row).await.unwrap();
    assert!(matches!(
        s.get("default", "b").await,
        Err(SecretError::Decrypt { .. })
    ));
    assert!(matches!(
        s.get("acme", "a").await,
        Err(SecretError::Decrypt { .. })
    ));
}

#[tokio::test]
async fn each_write_uses_a_fresh_nonce() {
    let store = Store::open_in_memory().await.unwrap();
    let s = Secrets::new(store.clone(), MasterKey::generate("test"));
    s.set("default", "a", &Secret::new(PLAINTEXT))
        .await
        .unwrap();
    let first = store.secret_get("default", "a").await.unwrap().unwrap();
    s.set("default", "a", &Secret::new(PLAINTEXT))
        .await
        .unwrap();
    let second = store.secret_get("default", "a").await.unwrap().unwrap();
    assert_ne!(first, second);
}

#[tokio::test]
async fn missing_secret_says_how_to_set_it() {
    let s = crate::support::secrets().await;
    let err = s
        .resolve("default", &"secret:zendesk_token".into())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("weft secret set zendesk_token"),
        "{err}"
    );
}

#[tokio::test]
async fn env_references_read_the_process_environment() {
    let s = crate::support::secrets().await;
    let path = s
        .resolve("default", &SecretRef::Env("PATH".into()))
        .await
        .unwrap();
    assert_eq!(path.expose(), std::env::var("PATH").unwrap());
    let err = s
        .resolve(
            "default",
            &SecretRef::Env("WEFT_TEST_DEFINITELY_UNSET_VAR".into()),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("env:WEFT_TEST_DEFINITELY_UNSET_VAR"),
        "{err}"
    );
    assert_eq!(
        s.resolve("default", &"literal-value".into())
            .await
            .unwrap()
            .expose(),
        "literal-value"
    );
}

#[tokio::test]
async fn only_stored_references_can_be_updated() {
    let s = crate::support::secrets().await;
    s.update("default", &"secret:rt".into(), &Secret::new("v2-value"))
        .await
        .unwrap();
    assert_eq!(s.get("default", "rt").await.unwrap().expose(), "v2-value");
    let err = s
        .update("default", &"env:RT".into(), &Secret::new("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::NotWritable { .. }), "{err}");
}

#[test]
fn key_file_is_created_owner_only_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/master.key");
    let first = MasterKey::load_from(None, &path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let second = MasterKey::load_from(None, &path).unwrap();
    assert_eq!(*first.to_base64(), *second.to_base64());
    assert_eq!(first.source(), path.display().to_string());
}

#[test]
fn env_master_key_wins_over_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let b64 = MasterKey::generate("x").to_base64();
    let key = MasterKey::load_from(Some(&b64), &path).unwrap();
    assert_eq!(key.source(), "WEFT_MASTER_KEY");
    assert!(
        !path.exists(),
        "no key file is created when the env var is set"
    );
    let err = MasterKey::load_from(Some("c2hvcnQ="), &path).unwrap_err();
    assert!(
        err.to_string().contains("WEFT_MASTER_KEY") && err.to_string().contains("32"),
        "{err}"
    );
}

#[test]
fn corrupt_key_file_is_reported_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    std::fs::write(&path, "garbage!").unwrap();
    let err = MasterKey::load_from(None, &path).unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "garbage!");
}
