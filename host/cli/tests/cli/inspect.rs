//! `weft plugin inspect`: what a component is, from its own `describe`, and why one cannot load.

use super::*;

#[test]
fn inspect_describes_every_first_party_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let map = weft(
        dir.path(),
        &["plugin", "inspect", wasm(MAP).to_str().unwrap()],
        None,
    );
    assert!(map.status.success(), "{}", text(&map.stderr));
    let out = text(&map.stdout);
    assert!(out.starts_with("map 0.1.0 (transform)\n"), "{out}");
    assert!(out.contains("contract  weft:plugin@0.2.0"), "{out}");

    let conn = weft(
        dir.path(),
        &["plugin", "inspect", wasm(HTTP_JSON).to_str().unwrap()],
        None,
    );
    assert!(conn.status.success(), "{}", text(&conn.stderr));
    let out = text(&conn.stdout);
    assert!(out.starts_with("http-json 0.1.0 (connector)\n"), "{out}");
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("{base_url}")
            && l.ends_with("from the connection's config")),
        "{out}"
    );
    assert!(
        out.contains("api-key                    header `X-Api-Key: {token}`"),
        "{out}"
    );
    assert!(out.contains("\n  items\n"), "{out}");
    assert!(out.contains("    cursor       updated_at"), "{out}");
}

#[test]
fn inspect_json_is_machine_readable_and_second_run_uses_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let file = wasm(HTTP_JSON);
    let first = weft(
        dir.path(),
        &["plugin", "inspect", "--json", file.to_str().unwrap()],
        None,
    );
    assert!(first.status.success(), "{}", text(&first.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(doc["kind"], "connector");
    assert_eq!(doc["streams"][0]["name"], "items");
    assert_eq!(
        doc["streams"][0]["schema"]["properties"]["id"]["type"],
        "string"
    );
    let again = weft(
        dir.path(),
        &["plugin", "inspect", file.to_str().unwrap()],
        None,
    );
    assert!(
        text(&again.stdout).contains("(loaded from cache in"),
        "{}",
        text(&again.stdout)
    );
}

#[test]
fn inspect_explains_an_incompatible_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let out = weft(
        dir.path(),
        &["plugin", "inspect", wasm(OLD_CONTRACT).to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("weft:plugin@0.1.0") && err.contains("weft:plugin@0.2.0"),
        "{err}"
    );
}
