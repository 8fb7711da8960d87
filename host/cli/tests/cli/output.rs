//! Output into a closed pipe or a closed stdout: weft ends quietly.

use super::*;

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..20_000)
        .map(|i| format!("{{\"id\":\"{i}\",\"name\":\"person {i}\"}}\n"))
        .collect();
    let import = weft(
        dir.path(),
        &["dataset", "import", "people", "--key", "id"],
        Some(&lines),
    );
    assert!(import.status.success(), "{}", text(&import.stderr));
    // `weft dataset export people | head -1`
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["dataset", "export", "people", "--format", "jsonl"])
        .env("WEFT_DATA_DIR", dir.path())
        .env_remove("WEFT_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with('{'), "{first}");
    // The reader is gone now.
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn every_command_that_prints_ends_quietly_when_its_output_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let set = weft(dir.path(), &["secret", "set", "api_key"], Some("s3cret"));
    assert!(set.status.success(), "{}", text(&set.stderr));
    let people = "{\"id\":\"1\"}\n{\"id\":\"2\"}\n";
    let import = weft(
        dir.path(),
        &["dataset", "import", "people", "--key", "id"],
        Some(people),
    );
    assert!(import.status.success(), "{}", text(&import.stderr));
    let map = wasm(MAP);
    let flow = dir.path().join("copy.toml");
    std::fs::write(
        &flow,
        "name = \"copy\"\n[connections.store]\nplugin = \"dataset\"\n\
         [[steps]]\nid = \"read\"\nread = { connection = \"store\", stream = \"people\" }\n\
         [[steps]]\nid = \"keep\"\n\
         write = { connection = \"store\", stream = \"copies\", input = \"read\", mode = \"upsert\", key = [\"id\"] }\n",
    )
    .unwrap();
    let flow = flow.to_str().unwrap();
    for args in [
        vec!["schema"],
        vec!["secret", "list"],
        vec!["validate", flow],
        vec!["run", flow],
        vec!["runs", "list"],
        vec!["plugin", "inspect", map.to_str().unwrap()],
        vec!["dataset", "list"],
    ] {
        // A pipe whose reader is gone before weft starts: every write to stdout fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(&args)
            .env("WEFT_DATA_DIR", dir.path())
            .env_remove("WEFT_MASTER_KEY")
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "weft {args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "weft {args:?}: {err}");
        assert!(out.status.success(), "weft {args:?}: {err}");
    }
}
