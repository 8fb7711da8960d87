//! `weft plugin install` and `list`: a component kept under the name and version its own
//! `describe` gives, found by flows by that name, pinned or not.

use super::{FLOW, text, weft};

/// A flow reading `acme` tickets through `plugin`, into nothing: enough to plan.
fn acme_flow(dir: &std::path::Path, plugin: &str) -> String {
    let path = dir.join(format!("flow-{}.toml", plugin.replace(['@', '.'], "-")));
    std::fs::write(
        &path,
        format!(
            "name = \"x\"\n[connections.acme]\nplugin = \"{plugin}\"\nconfig = {{ account = \"globex\" }}\nauth = {{ kind = \"api-key\", value = \"secret:acme\" }}\n\n[[steps]]\nid = \"tickets\"\nread = {{ connection = \"acme\", stream = \"tickets\" }}\n"
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn an_installed_plugin_is_named_by_its_describe_listed_and_pinned_by_version() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // The file's stem says `acme_helpdesk_connector`; the component calls itself
    // `acme-helpdesk` 0.1.0.
    let component = weft_tests::wasm("acme_helpdesk_connector");
    let component = component.to_str().unwrap();
    let out = weft(data, &["plugin", "install", component], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let installed = data.join("plugins/acme-helpdesk@0.1.0.wasm");
    assert!(
        text(&out.stdout).starts_with(&format!(
            "installed acme-helpdesk 0.1.0 (connector) as {}",
            installed.display()
        )),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(component).unwrap()
    );
    let again = weft(data, &["plugin", "install", component], None);
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("is installed already"),
        "{}",
        text(&again.stdout)
    );

    // Flows find it by its name, pinned or not; a pin nothing matches says what there is.
    for plugin in ["acme-helpdesk", "acme-helpdesk@0.1", "acme-helpdesk@0.1.0"] {
        let out = weft(data, &["validate", &acme_flow(data, plugin)], None);
        let err = text(&out.stderr);
        assert!(!err.contains("no plugin"), "{plugin}: {err}");
        assert!(err.contains("secret `acme`"), "{plugin}: {err}");
    }
    let out = weft(
        data,
        &["validate", &acme_flow(data, "acme-helpdesk@0.2")],
        None,
    );
    let err = text(&out.stderr);
    assert!(err.contains("no plugin `acme-helpdesk@0.2` in "), "{err}");
    assert!(err.contains("acme-helpdesk@0.1.0"), "{err}");

    let out = weft(data, &["plugin", "list"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    let row = listed
        .lines()
        .find(|l| l.ends_with(&installed.display().to_string()))
        .unwrap_or_else(|| panic!("{listed}"));
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        fields[..3],
        ["acme-helpdesk", "0.1.0", "connector"],
        "{row}"
    );
}

#[test]
fn an_installed_version_is_not_overwritten_by_another_build_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let component = weft_tests::wasm("acme_helpdesk_connector");
    let component = component.to_str().unwrap();
    let installed = data.join("plugins/acme-helpdesk@0.1.0.wasm");
    std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
    std::fs::write(&installed, b"another build").unwrap();
    let out = weft(data, &["plugin", "install", component], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("acme-helpdesk 0.1.0 is installed already, built differently"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(&installed).unwrap(), b"another build");
    let out = weft(data, &["plugin", "install", "--replace", component], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(component).unwrap()
    );
}

#[test]
fn a_file_that_is_not_a_plugin_is_not_installed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let bogus = data.join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm but not really").unwrap();
    let out = weft(data, &["plugin", "install", bogus.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("installing {}", bogus.display())),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !data.join("plugins").exists()
            || std::fs::read_dir(data.join("plugins"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn plugins_dirs_add_to_where_plugins_are_found_not_replace_it() {
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("extra");
    std::fs::create_dir(&extra).unwrap();
    std::fs::copy(weft_tests::wasm(weft_tests::MAP), extra.join("my-map.wasm")).unwrap();
    let flow = dir.path().join("flow.toml");
    std::fs::write(
        &flow,
        FLOW.replace("plugin = \"map\"", "plugin = \"my-map\""),
    )
    .unwrap();
    let flow = flow.to_str().unwrap();
    let extra = extra.to_str().unwrap();
    // `my-map` only in the extra directory, `http-json` only in the default ones.
    let out = weft(dir.path(), &["validate", "--plugins", extra, flow], None);
    let err = text(&out.stderr);
    assert!(!err.contains("no plugin"), "{err}");
    assert!(err.contains("missing: secret `api_token`"), "{err}");
    // Without it, the renamed plugin is not found, and the message says where weft looked.
    let out = weft(dir.path(), &["validate", flow], None);
    let err = text(&out.stderr);
    assert!(err.contains("no plugin `my-map` in "), "{err}");
}

#[test]
fn a_closed_pipe_ends_weft_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // `weft plugin list | head -c 1`: head exits after one byte; weft's next writes fail.
    // (`set -o pipefail`: the status is weft's, not head's.)
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; \"{}\" plugin list --plugins \"{}\" | head -c 1 >/dev/null",
            env!("CARGO_BIN_EXE_weft"),
            weft_tests::WASM_DIR
        ))
        .env("WEFT_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
}

#[test]
fn a_component_in_a_plugins_directory_is_found_by_its_describe_name_without_installing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A build's output: the file says `acme_helpdesk_connector`, the component `acme-helpdesk`.
    let build = dir.path().join("target");
    std::fs::create_dir_all(&build).unwrap();
    std::fs::copy(
        weft_tests::wasm("acme_helpdesk_connector"),
        build.join("acme_helpdesk_connector.wasm"),
    )
    .unwrap();
    let build = build.to_str().unwrap();
    for plugin in ["acme-helpdesk", "acme-helpdesk@0.1"] {
        let flow = acme_flow(dir.path(), plugin);
        let without = weft(&data, &["validate", &flow], None);
        assert!(
            text(&without.stderr).contains(&format!("no plugin `{plugin}`")),
            "not on the search path: {}",
            text(&without.stderr)
        );
        let with = weft(&data, &["validate", &flow, "--plugins", build], None);
        let err = text(&with.stderr);
        assert!(!err.contains("no plugin"), "{plugin}: {err}");
        // Planned as far as its credential, which this test does not store.
        assert!(err.contains("secret `acme`"), "{plugin}: {err}");
    }
    let pinned_elsewhere = weft(
        &data,
        &[
            "validate",
            &acme_flow(dir.path(), "acme-helpdesk@2"),
            "--plugins",
            build,
        ],
        None,
    );
    assert!(
        text(&pinned_elsewhere.stderr).contains("no plugin `acme-helpdesk@2`"),
        "{}",
        text(&pinned_elsewhere.stderr)
    );
}
