//! Plugins a tenant uploads: inspected at upload, found by its own flows only, gone with their
//! delete.

use super::*;

/// The hostile test transform's component: a plugin no shared directory offers under the
/// name it describes itself with (`hostile-transform`).
fn hostile_transform() -> Vec<u8> {
    let path = std::path::Path::new(weft_tests::WASM_DIR)
        .join(format!("{}.wasm", weft_tests::HOSTILE_TRANSFORM));
    std::fs::read(path).unwrap()
}

impl Served {
    /// Uploads `wasm` for `token`: the status and the answer.
    async fn upload(&self, token: &str, wasm: Vec<u8>) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("http://{}/api/v1/plugins", self.address))
            .bearer_auth(token)
            .header("content-type", "application/wasm")
            .body(wasm)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }
}

/// A flow reading `upstream`'s items through the uploaded transform (echoing them) into a
/// dataset.
fn through_upload(upstream: &Upstream) -> String {
    sync_flow(upstream, "sync", "items")
        .replace("input = \"items\"", "input = \"mapped\"")
        .replace(
            "[[steps]]\nid = \"keep\"",
            "[[steps]]\nid = \"mapped\"\ntransform = { plugin = \"hostile-transform\", input = \"items\" }\nconfig = { do = \"echo\" }\n\n[[steps]]\nid = \"keep\"",
        )
}

#[tokio::test]
async fn a_tenants_uploaded_plugin_is_inspected_and_found_by_its_flows_only() {
    let upstream = Upstream::start().await;
    upstream.require_bearer("s3cret-token");
    upstream.seed("items", people("a", 3));
    let mut served = Served::start(allow_private()).await;
    let acme = served.tenant("acme").await;
    let globex = served.tenant("globex").await;

    // What is not a weft plugin is refused, and nothing is kept.
    let (status, refused) = served.upload(&acme, b"\0asm not really".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .starts_with("not a weft plugin: "),
        "{refused}"
    );

    // Over the tenant's quota of plugin bytes: refused, saying so; under it, taken.
    let size = hostile_transform().len() as u64;
    let quota = |limit: u64| json!({ "plugin_bytes": limit });
    served.set_quotas("acme", quota(size - 1)).await;
    let (status, refused) = served.upload(&acme, hostile_transform()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains(&format!(
            "over the tenant's quota plugin_bytes of {}",
            size - 1
        )),
        "{refused}"
    );
    served.set_quotas("acme", quota(size)).await;
    let (status, uploaded) = served.upload(&acme, hostile_transform()).await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    assert_eq!(
        (&uploaded["name"], &uploaded["kind"]),
        (&json!("hostile-transform"), &json!("transform"))
    );
    assert_eq!(uploaded["digest"].as_str().unwrap().len(), 64);
    // Uploaded again: the same plugin, replaced.
    let (status, _) = served.upload(&acme, hostile_transform()).await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = served
        .call(Some(&acme), Method::GET, "/api/v1/plugins", None)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let (_, theirs) = served
        .call(Some(&globex), Method::GET, "/api/v1/plugins", None)
        .await;
    assert_eq!(theirs, json!([]));

    // Acme's flow plans and runs with it; the same flow is refused for globex, which has none.
    let run = deploy_and_run(&mut served, &acme, "sync", through_upload(&upstream)).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["usage"]["records_written"], 3);
    let (status, body) = served
        .call(
            Some(&globex),
            Method::POST,
            "/api/v1/flows",
            Some(json!({ "source": through_upload(&upstream) })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["report"]
            .as_str()
            .unwrap()
            .contains("no plugin `hostile-transform`"),
        "{body}"
    );
    let (status, _) = served
        .call(
            Some(&globex),
            Method::DELETE,
            "/api/v1/plugins/hostile-transform",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleted, it is gone: the flow that named it is no longer served.
    let (status, _) = served
        .call(
            Some(&acme),
            Method::DELETE,
            "/api/v1/plugins/hostile-transform",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    served.told();
    turn(&mut served.server, SystemTime::now()).await;
    let told = served.told();
    assert!(
        told.iter()
            .any(|l| l.starts_with("acme/sync deferred: ") && l.contains("hostile-transform")),
        "{told:?}"
    );
    assert!(served.server.flows().is_empty());
}

/// The hostile transform's component describing itself as version `version` instead of 0.1.0
/// (the one place its bytes say `0.1.0` is the version its `describe` returns).
fn hostile_transform_at(version: &str) -> Vec<u8> {
    assert_eq!(version.len(), 5, "a version of the same length");
    let mut wasm = hostile_transform();
    let at = wasm
        .windows(5)
        .position(|w| w == b"0.1.0")
        .expect("the component states its version");
    wasm[at..at + 5].copy_from_slice(version.as_bytes());
    wasm
}

#[tokio::test]
async fn versions_of_a_tenants_plugin_live_side_by_side_and_a_flow_pins_one() {
    let upstream = Upstream::start().await;
    upstream.require_bearer("s3cret-token");
    upstream.seed("items", people("a", 3));
    let mut served = Served::start(allow_private()).await;
    let acme = served.tenant("acme").await;
    for version in ["0.1.0", "0.2.0"] {
        let (status, uploaded) = served.upload(&acme, hostile_transform_at(version)).await;
        assert_eq!(status, StatusCode::CREATED, "{uploaded}");
        assert_eq!(uploaded["version"], version);
    }
    let (_, listed) = served
        .call(Some(&acme), Method::GET, "/api/v1/plugins", None)
        .await;
    let versions: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["0.1.0", "0.2.0"], "{listed}");

    // A pin takes its version; a pin no version meets does not plan, and says what there is.
    let pinned = |pin: &str| through_upload(&upstream).replace("\"hostile-transform\"", pin);
    let run = deploy_and_run(
        &mut served,
        &acme,
        "sync",
        pinned("\"hostile-transform@0.1\""),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let (status, body) = served
        .call(
            Some(&acme),
            Method::POST,
            "/api/v1/flows",
            Some(json!({ "source": pinned("\"hostile-transform@0.3\"") })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let report = body["report"].as_str().unwrap();
    assert!(
        report.contains("no plugin `hostile-transform@0.3`")
            && report.contains("hostile-transform@0.2.0"),
        "{body}"
    );

    // Deleting one version leaves the other: the flow pinned to the deleted one stops planning.
    let (status, _) = served
        .call(
            Some(&acme),
            Method::DELETE,
            "/api/v1/plugins/hostile-transform@0.1.0",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, listed) = served
        .call(Some(&acme), Method::GET, "/api/v1/plugins", None)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["version"], "0.2.0");
    served.told();
    turn(&mut served.server, SystemTime::now()).await;
    let told = served.told();
    assert!(
        told.iter()
            .any(|l| l.starts_with("acme/sync deferred: ") && l.contains("hostile-transform@0.1")),
        "{told:?}"
    );
    let (status, _) = served
        .call(
            Some(&acme),
            Method::DELETE,
            "/api/v1/plugins/hostile-transform@0.1.0",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "deleted already");
}
