//! `weft demo`: every example against its own sandbox, and the summary it ends with.

use super::*;

#[test]
fn demo_runs_each_example_against_its_own_sandbox_and_sums_up() {
    let dir = tempfile::tempdir().unwrap();
    let examples = dir.path().join("examples");
    std::fs::create_dir_all(examples.join("tickets")).unwrap();
    std::fs::create_dir_all(examples.join("not-flows/src")).unwrap();
    std::fs::write(
        examples.join("not-flows/Cargo.toml"),
        "[package]\nname = \"x\"\n",
    )
    .unwrap();
    // The examples' convention: production connection on top, the sandbox environment through
    // the `zendesk_url` / `zendesk_host` variables the demo sets for its own sandbox.
    std::fs::write(
        examples.join("tickets/tickets.toml"),
        r#"name = "zendesk-tickets"

[variables.zendesk_url]
type = "string"
default = "http://127.0.0.1:4102"

[variables.zendesk_host]
type = "string"
default = "127.0.0.1:4102"

[connections.zendesk]
plugin = "zendesk"
config = { subdomain = "acme" }
auth = { kind = "basic", username = "ops@acme.example/token", password = "secret:zendesk_token" }

[environments.sandbox.connections.zendesk]
config = { subdomain = "weft-sandbox", base_url = "${var.zendesk_url}" }
auth = { kind = "basic", username = "admin@weft-sandbox.example/token", password = "weftSandboxZendeskApiToken0000000000000000" }
egress = [{ host = "${var.zendesk_host}", allow_http = true, allow_private = true }]

[connections.kept]
plugin = "dataset"

[[steps]]
id = "tickets"
read = { connection = "zendesk", stream = "tickets", page_size = 15 }

[[steps]]
id = "cases"
transform = { plugin = "map", input = "tickets" }
config.fields = { ticket_id = "id", subject = "subject" }

[[steps]]
id = "save"
write = { connection = "kept", stream = "cases", input = "cases", mode = "upsert", key = ["ticket_id"] }
"#,
    )
    .unwrap();
    let out = weft(
        dir.path(),
        &[
            "demo",
            "--plugins",
            weft_tests::WASM_DIR,
            "--examples",
            examples.to_str().unwrap(),
        ],
        None,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("== tickets (1 runs)"), "{stdout}");
    assert!(
        !stdout.contains("not-flows"),
        "a directory without flow files is not a scenario: {stdout}"
    );
    let row = stdout
        .lines()
        .skip_while(|l| !l.starts_with("scenario "))
        .find(|l| l.starts_with("tickets "))
        .unwrap_or_else(|| panic!("a summary row: {stdout}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    // scenario, runs, failed, read, written, rejected, requests, time, records/s
    assert_eq!(&cells[1..6], ["1", "0", "40", "40", "0"], "{row}");
    assert!(
        cells[6].parse::<u32>().unwrap() >= 3,
        "at least the three pages were requested: {row}"
    );
    // The demo's own tenant, named at the start and in the pointers at the end.
    let tenant = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tenant    "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the demo names its tenant");
    assert!(tenant.starts_with("demo-"), "{stdout}");
    assert!(
        stdout.contains(&format!("weft --tenant {tenant} dataset list")),
        "{stdout}"
    );
    let listed = weft(
        dir.path(),
        &["--tenant", tenant, "dataset", "show", "cases"],
        None,
    );
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(!text(&out.stdout).contains("weftSandboxZendeskApiToken"));
}

/// The README's main command on the checkout's own examples: every scenario runs, none fails,
/// and each reads, writes and calls its vendors.
#[test]
fn demo_runs_all_five_scenarios_of_the_examples_and_again_with_nothing_carried_over() {
    let dir = tempfile::tempdir().unwrap();
    let first = demo_summary(dir.path());
    let names: Vec<&str> = first.iter().map(|cells| cells[0].as_str()).collect();
    assert_eq!(
        names,
        [
            "conversation-sync",
            "partner-center-salesforce",
            "salesforce-hubspot",
            "zendesk-zoho",
            "zoho-customer-success"
        ],
        "{first:?}"
    );
    for cells in &first {
        // scenario, runs, failed, read, written, rejected, requests, time, records/s
        assert_eq!(cells[2], "0", "{first:?}");
        for (column, what) in [(3, "read"), (4, "written"), (6, "requests")] {
            assert!(
                cells[column].parse::<u64>().unwrap() > 0,
                "{} {what} nothing: {first:?}",
                cells[0]
            );
        }
    }
    // A second demo on the same data directory has a new sandbox: no cursor, dataset or
    // plugin state of the first may reach it, so it runs, reads and writes the same (requests
    // may differ by a token refresh or a retry, which timing decides).
    let second = demo_summary(dir.path());
    let counts = |summary: &[Vec<String>]| -> Vec<Vec<String>> {
        summary.iter().map(|cells| cells[..6].to_vec()).collect()
    };
    assert_eq!(counts(&second), counts(&first));
}

/// Runs the demo on the data directory `dir`; its summary's rows, split into cells.
fn demo_summary(dir: &std::path::Path) -> Vec<Vec<String>> {
    let out = weft(dir, &["demo", "--plugins", weft_tests::WASM_DIR], None);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("seeded dataset conversations"), "{stdout}");
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("scenario "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}
