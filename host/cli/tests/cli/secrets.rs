//! `weft secret`: values set from stdin, listed by name only, removed.

use super::*;

#[test]
fn secrets_are_set_from_stdin_listed_by_name_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let set = weft(
        dir.path(),
        &["secret", "set", "zendesk_token"],
        Some("very-secret-value\n"),
    );
    assert!(set.status.success(), "{}", text(&set.stderr));
    assert!(text(&set.stderr).contains("\"secret:zendesk_token\""));

    let list = weft(dir.path(), &["secret", "list"], None);
    let listed = text(&list.stdout);
    assert!(listed.starts_with("zendesk_token\t"), "{listed}");
    assert!(!listed.contains("very-secret-value"));

    for file in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap_or_default();
        assert!(
            !text(&bytes).contains("very-secret-value"),
            "plaintext on disk"
        );
    }

    assert!(
        weft(dir.path(), &["secret", "rm", "zendesk_token"], None)
            .status
            .success()
    );
    let gone = weft(dir.path(), &["secret", "rm", "zendesk_token"], None);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        text(&gone.stderr).contains("there is no secret `zendesk_token`"),
        "{}",
        text(&gone.stderr)
    );
}

#[test]
fn secret_set_refuses_an_empty_value() {
    let dir = tempfile::tempdir().unwrap();
    let out = weft(dir.path(), &["secret", "set", "empty"], Some(""));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no value on standard input"),
        "{}",
        text(&out.stderr)
    );
}
