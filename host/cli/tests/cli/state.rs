//! Where weft keeps its state: PostgreSQL by `WEFT_DATABASE_URL`, a private data directory.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn weft_database_url_keeps_state_in_postgresql() {
    use sqlx::Connection;
    let admin = std::env::var("WEFT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let schema = format!("weft_cli_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (.ci/run starts it)");
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let url = format!("{admin}?options=-c%20search_path%3D{schema}");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let url_for_child = url.clone();
    let listed = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str], stdin: Option<&str>| {
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
                .args(args)
                .env("WEFT_DATA_DIR", &data)
                .env("WEFT_DATABASE_URL", &url_for_child)
                .env_remove("WEFT_MASTER_KEY")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            if let Some(input) = stdin {
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
            }
            drop(child.stdin.take());
            child.wait_with_output().unwrap()
        };
        let set = run(&["secret", "set", "crm_token"], Some("t0ken"));
        assert!(
            set.status.success(),
            "{}",
            String::from_utf8_lossy(&set.stderr)
        );
        run(&["secret", "list"], None)
    })
    .await
    .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).starts_with("crm_token\t"));
    let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {schema}.secrets"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 1, "the secret went to PostgreSQL");
    assert!(
        !dir.path().join("weft.db").exists(),
        "no SQLite file was made"
    );
    sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut conn)
        .await
        .unwrap();
}

#[cfg(unix)]
#[test]
fn the_data_directory_and_the_database_are_private_even_when_an_older_version_left_them_open() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let list = weft(&data, &["secret", "list"], None);
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert_eq!(mode(&data), 0o700);
    for file in ["weft.db", "weft.db-wal", "weft.db-shm"] {
        let path = data.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
    // As an older weft left them.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(data.join("weft.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let list = weft(&data, &["secret", "list"], None);
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("weft.db")), 0o600);
}
