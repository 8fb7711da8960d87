//! `weft dataset`: list, show, export, import.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn datasets_can_be_listed_shown_and_exported() {
    let upstream = weft_tests::upstream::Upstream::start().await;
    upstream.seed("items", (0..3).map(|i| serde_json::json!({"id": format!("{i}"), "name": format!("Name, {i}"), "email": format!("p{i}@x.io")})));
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("flow.toml");
    std::fs::write(
        &flow,
        format!(
            r#"name = "keep"
[connections.api]
plugin = "http-json"
config = {{ base_url = "{url}" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[connections.store]
plugin = "dataset"

[[steps]]
id = "items"
read = {{ connection = "api", stream = "items" }}

[[steps]]
id = "keep"
write = {{ connection = "store", stream = "people", input = "items", mode = "upsert", key = ["email"] }}
"#,
            url = upstream.url(),
            host = upstream.addr
        ),
    )
    .unwrap();
    let data = dir.path().to_owned();
    let flow_arg = flow.to_str().unwrap().to_owned();
    let outputs = tokio::task::spawn_blocking(move || {
        let run = weft(
            &data,
            &["run", "--plugins", weft_tests::WASM_DIR, &flow_arg],
            None,
        );
        assert!(run.status.success(), "{}", text(&run.stderr));
        [
            weft(&data, &["dataset", "list"], None),
            weft(&data, &["dataset", "show", "people", "--limit", "1"], None),
            weft(
                &data,
                &["dataset", "export", "people", "--format", "csv"],
                None,
            ),
            weft(&data, &["dataset", "show", "nobody"], None),
        ]
    })
    .await
    .unwrap();
    assert!(
        text(&outputs[0].stdout).starts_with("people\t3 records\t"),
        "{}",
        text(&outputs[0].stdout)
    );
    assert_eq!(text(&outputs[1].stdout).lines().count(), 1);
    assert_eq!(
        text(&outputs[2].stdout),
        "email,id,name\np0@x.io,0,\"Name, 0\"\np1@x.io,1,\"Name, 1\"\np2@x.io,2,\"Name, 2\"\n"
    );
    assert_eq!(outputs[3].status.code(), Some(1));
    assert!(text(&outputs[3].stderr).contains("dataset `nobody` is empty or does not exist"));
}

#[test]
fn dataset_import_upserts_json_lines_by_key_and_refuses_a_bad_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let first = weft(
        dir.path(),
        &["dataset", "import", "conversations", "--key", "crm,id"],
        Some("{\"crm\":\"sf\",\"id\":\"1\",\"title\":\"a\"}\n\n{\"crm\":\"sf\",\"id\":\"2\"}\n"),
    );
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stderr).contains("2 records upserted into `conversations`"),
        "{}",
        text(&first.stderr)
    );
    let file = dir.path().join("more.jsonl");
    std::fs::write(
        &file,
        "{\"crm\":\"sf\",\"id\":\"1\",\"title\":\"replaced\"}\n",
    )
    .unwrap();
    let second = weft(
        dir.path(),
        &[
            "dataset",
            "import",
            "conversations",
            "--key",
            "crm,id",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(second.status.success(), "{}", text(&second.stderr));
    let shown = text(&weft(dir.path(), &["dataset", "export", "conversations"], None).stdout);
    assert_eq!(
        shown,
        "{\"crm\":\"sf\",\"id\":\"1\",\"title\":\"replaced\"}\n{\"crm\":\"sf\",\"id\":\"2\"}\n"
    );

    // A line without a key field, or not an object: nothing of the file is written.
    std::fs::write(&file, "{\"crm\":\"sf\",\"id\":\"3\"}\n{\"crm\":\"sf\"}\n").unwrap();
    let missing = weft(
        dir.path(),
        &[
            "dataset",
            "import",
            "conversations",
            "--key",
            "crm,id",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr)
            .contains("more.jsonl:2: key field `id` is missing or null (the key is crm, id)"),
        "{}",
        text(&missing.stderr)
    );
    let not_object = weft(
        dir.path(),
        &["dataset", "import", "conversations", "--key", "id"],
        Some("[1, 2]\n"),
    );
    assert!(
        text(&not_object.stderr)
            .contains("standard input:1: a record must be a JSON object, not `[1, 2]`"),
        "{}",
        text(&not_object.stderr)
    );
    let list = text(&weft(dir.path(), &["dataset", "list"], None).stdout);
    assert!(list.starts_with("conversations\t2 records\t"), "{list}");
}
