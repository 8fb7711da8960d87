//! Tenants, API tokens, deployed flows and run requests, on both databases.

#[macro_use]
mod common;

use weft_store::{FlowVersion, StateScope, StoreError, TenantStatus, TokenHolder};

fn acme() -> TokenHolder {
    TokenHolder::Tenant("acme".into())
}

on_both!(tenants_are_created_once_listed_and_suspended, |store| {
    assert!(store.tenant_create("acme").await.unwrap());
    assert!(
        !store.tenant_create("acme").await.unwrap(),
        "a second create changes nothing"
    );
    assert!(store.tenant_create("globex-2").await.unwrap());
    let names: Vec<String> = store
        .tenant_list()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["acme", "globex-2"]);
    assert!(
        store
            .tenant_set_status("acme", TenantStatus::Suspended)
            .await
            .unwrap()
    );
    let acme = store.tenant_get("acme").await.unwrap().unwrap();
    assert_eq!(acme.status, TenantStatus::Suspended);
    assert!(
        !store
            .tenant_set_status("nobody", TenantStatus::Active)
            .await
            .unwrap()
    );
    assert_eq!(store.tenant_get("nobody").await.unwrap(), None);
});

on_both!(tenant_names_are_checked_at_their_edges, |store| {
    let longest = "a".repeat(weft_store::TENANT_NAME_MAX);
    assert!(store.tenant_create(&longest).await.unwrap());
    for bad in [
        "",
        "-acme",
        "Acme",
        "acme corp",
        "acme/../x",
        "acme_1",
        &"a".repeat(weft_store::TENANT_NAME_MAX + 1),
    ] {
        let refused = store.tenant_create(bad).await.unwrap_err();
        assert!(
            matches!(refused, StoreError::InvalidTenantName { .. }),
            "{bad:?}: {refused}"
        );
    }
});

on_both!(
    a_token_acts_for_its_holder_until_revoked_or_suspended,
    |store| {
        store.tenant_create("acme").await.unwrap();
        store.api_token_add("t1", &acme(), "hash-1").await.unwrap();
        store
            .api_token_add("op", &TokenHolder::Operator, "hash-op")
            .await
            .unwrap();
        assert_eq!(
            store.api_token_holder("hash-1").await.unwrap(),
            Some(acme())
        );
        assert_eq!(
            store.api_token_holder("hash-op").await.unwrap(),
            Some(TokenHolder::Operator)
        );
        assert_eq!(store.api_token_holder("hash-2").await.unwrap(), None);

        // A suspended tenant's token is not taken; resumed, it is again.
        store
            .tenant_set_status("acme", TenantStatus::Suspended)
            .await
            .unwrap();
        assert_eq!(store.api_token_holder("hash-1").await.unwrap(), None);
        store
            .tenant_set_status("acme", TenantStatus::Active)
            .await
            .unwrap();

        // Rotating: a second token, then the first revoked by id.
        store.api_token_add("t2", &acme(), "hash-2").await.unwrap();
        assert_eq!(
            store.api_token_revoke(&acme(), Some("t1")).await.unwrap(),
            1
        );
        assert_eq!(store.api_token_holder("hash-1").await.unwrap(), None);
        assert_eq!(
            store.api_token_holder("hash-2").await.unwrap(),
            Some(acme())
        );
        // A tenant cannot revoke the operator's token by naming it.
        assert_eq!(
            store.api_token_revoke(&acme(), Some("op")).await.unwrap(),
            0
        );
        let listed = store.api_token_list(&acme()).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(
            listed
                .iter()
                .any(|t| t.id == "t1" && t.revoked_at.is_some())
        );
        assert_eq!(
            store
                .api_token_list(&TokenHolder::Operator)
                .await
                .unwrap()
                .len(),
            1
        );
        // All of a holder's at once.
        assert_eq!(store.api_token_revoke(&acme(), None).await.unwrap(), 1);
        assert_eq!(store.api_token_holder("hash-2").await.unwrap(), None);
        // A token of a tenant that does not exist (deleted) acts for nobody.
        store
            .api_token_add("t3", &TokenHolder::Tenant("ghost".into()), "hash-3")
            .await
            .unwrap();
        assert_eq!(store.api_token_holder("hash-3").await.unwrap(), None);
    }
);

on_both!(
    deleting_a_tenant_deletes_all_it_owns_and_nothing_else,
    |store| {
        for tenant in ["acme", "globex"] {
            store.tenant_create(tenant).await.unwrap();
            let holder = TokenHolder::Tenant(tenant.into());
            store
                .api_token_add(&format!("id-{tenant}"), &holder, &format!("hash-{tenant}"))
                .await
                .unwrap();
            store.secret_put(tenant, "api", b"sealed").await.unwrap();
            let scope = StateScope::new(tenant, "p", "c", "f");
            store.state_set(&scope, "k", b"v").await.unwrap();
            store
                .flow_deploy(
                    tenant,
                    "sync",
                    "name = \"sync\"",
                    "{}",
                    "d1",
                    &format!("ep-{tenant}"),
                )
                .await
                .unwrap();
            store.run_request(tenant, "sync", None, "{}").await.unwrap();
            let run = format!("run-{tenant}");
            store.run_start(&run, tenant, "sync", None).await.unwrap();
            store
                .error_append(&run, "read", Some("{}"), "refused")
                .await
                .unwrap();
            store.cursor_set(tenant, "sync", "read", "c").await.unwrap();
            store
                .dataset_upsert(tenant, "people", &[("1".into(), "{}".into())])
                .await
                .unwrap();
        }
        assert!(store.tenant_delete("acme").await.unwrap());
        assert!(!store.tenant_delete("acme").await.unwrap());

        assert_eq!(store.tenant_get("acme").await.unwrap(), None);
        assert_eq!(store.api_token_holder("hash-acme").await.unwrap(), None);
        assert!(store.secret_list("acme").await.unwrap().is_empty());
        let scope = StateScope::new("acme", "p", "c", "f");
        assert_eq!(store.state_get(&scope, "k").await.unwrap(), None);
        assert!(store.flows_deployed("acme").await.unwrap().is_empty());
        assert!(store.runs_list("acme", 10).await.unwrap().is_empty());
        assert!(store.run_errors("run-acme").await.unwrap().is_empty());
        assert_eq!(
            store.cursor_get("acme", "sync", "read").await.unwrap(),
            None
        );
        assert!(store.dataset_list("acme").await.unwrap().is_empty());
        let requests = store.run_requests().await.unwrap();
        assert!(requests.iter().all(|r| r.tenant == "globex"));

        // The other tenant keeps everything.
        assert!(store.tenant_get("globex").await.unwrap().is_some());
        assert_eq!(
            store.api_token_holder("hash-globex").await.unwrap(),
            Some(TokenHolder::Tenant("globex".into()))
        );
        assert_eq!(store.secret_list("globex").await.unwrap().len(), 1);
        assert_eq!(store.flows_deployed("globex").await.unwrap().len(), 1);
        assert_eq!(store.runs_list("globex", 10).await.unwrap().len(), 1);
        assert_eq!(store.run_errors("run-globex").await.unwrap().len(), 1);
        assert_eq!(store.dataset_list("globex").await.unwrap().len(), 1);
        assert_eq!(requests.len(), 1);
    }
);

on_both!(
    deployed_flows_are_kept_replaced_disabled_and_removed,
    |store| {
        store.tenant_create("acme").await.unwrap();
        store.tenant_create("globex").await.unwrap();
        assert!(
            store
                .flow_deploy("acme", "sync", "v1", "{}", "d1", "ep-1")
                .await
                .unwrap()
        );
        assert!(
            store
                .flow_deploy("globex", "sync", "g1", "{}", "g1", "ep-2")
                .await
                .unwrap()
        );
        assert!(store.flow_set_enabled("acme", "sync", false).await.unwrap());
        // A redeploy replaces the source and keeps the flow disabled.
        assert!(
            !store
                .flow_deploy("acme", "sync", "v2", "{\"a\":\"1\"}", "d2", "ep-3")
                .await
                .unwrap()
        );
        let sync = store.flow_deployed("acme", "sync").await.unwrap().unwrap();
        assert_eq!((sync.source.as_str(), sync.digest.as_str()), ("v2", "d2"));
        assert_eq!(sync.variables, "{\"a\":\"1\"}");
        assert!(!sync.enabled);
        // Its webhook endpoint is the one made at its first deploy: what a vendor was given
        // stays right.
        assert_eq!(sync.endpoint.as_deref(), Some("ep-1"));

        // Served: enabled flows of active tenants only.
        let served = store.flows_served().await.unwrap();
        assert_eq!(
            served,
            [FlowVersion {
                tenant: "globex".into(),
                name: "sync".into(),
                digest: "g1".into()
            }]
        );
        store.flow_set_enabled("acme", "sync", true).await.unwrap();
        store
            .tenant_set_status("globex", TenantStatus::Suspended)
            .await
            .unwrap();
        let served: Vec<String> = store
            .flows_served()
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.tenant)
            .collect();
        assert_eq!(served, ["acme"]);

        // Removing a flow takes its cursors with it, not its runs.
        store.cursor_set("acme", "sync", "read", "c").await.unwrap();
        store.run_start("r1", "acme", "sync", None).await.unwrap();
        assert!(store.flow_undeploy("acme", "sync").await.unwrap());
        assert!(!store.flow_undeploy("acme", "sync").await.unwrap());
        assert_eq!(store.flow_deployed("acme", "sync").await.unwrap(), None);
        assert_eq!(
            store.cursor_get("acme", "sync", "read").await.unwrap(),
            None
        );
        assert_eq!(store.runs_list("acme", 10).await.unwrap().len(), 1);
        assert!(
            store
                .flow_deployed("globex", "sync")
                .await
                .unwrap()
                .is_some()
        );
        assert!(!store.flow_set_enabled("acme", "sync", true).await.unwrap());
    }
);

on_both!(a_run_request_made_during_a_run_outlives_it, |store| {
    store.run_request("acme", "sync", None, "{}").await.unwrap();
    let taken = store.run_requests().await.unwrap();
    assert_eq!(taken.len(), 1);
    // Asked again while the run for the first request goes on.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.run_request("acme", "sync", None, "{}").await.unwrap();
    store.run_request_done(&taken[0]).await.unwrap();
    let waiting = store.run_requests().await.unwrap();
    assert_eq!(
        waiting.len(),
        1,
        "the later request waits for a run of its own"
    );
    store.run_request_done(&waiting[0]).await.unwrap();
    assert!(store.run_requests().await.unwrap().is_empty());
});

on_both!(
    retries_and_runs_with_variables_wait_beside_a_whole_run_each_once,
    |store| {
        store.run_request("acme", "sync", None, "{}").await.unwrap();
        store
            .run_request("acme", "sync", Some("r1"), "{}")
            .await
            .unwrap();
        store
            .run_request("acme", "sync", Some("r2"), "{}")
            .await
            .unwrap();
        // Asked twice, the retry of r1 is one request.
        store
            .run_request("acme", "sync", Some("r1"), "{}")
            .await
            .unwrap();
        let waiting = store.run_requests().await.unwrap();
        let mut retries: Vec<Option<&str>> =
            waiting.iter().map(|r| r.retry_of.as_deref()).collect();
        retries.sort();
        assert_eq!(retries, [None, Some("r1"), Some("r2")]);
        let r1 = waiting
            .iter()
            .find(|r| r.retry_of.as_deref() == Some("r1"))
            .unwrap();
        store.run_request_done(r1).await.unwrap();
        let left: Vec<Option<String>> = store
            .run_requests()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.retry_of)
            .collect();
        assert_eq!(left.len(), 2);
        assert!(!left.contains(&Some("r1".into())), "{left:?}");

        // A run with other variables is a run of its own; with the same ones, the same request.
        let since = r#"{"since":"2026-01-01"}"#;
        store
            .run_request("acme", "sync", None, since)
            .await
            .unwrap();
        store
            .run_request("acme", "sync", None, since)
            .await
            .unwrap();
        let waiting = store.run_requests().await.unwrap();
        assert_eq!(waiting.len(), 3);
        let with = waiting.iter().find(|r| r.variables == since).unwrap();
        store.run_request_done(with).await.unwrap();
        let left = store.run_requests().await.unwrap();
        assert_eq!(left.len(), 2);
        assert!(left.iter().all(|r| r.variables == "{}"), "{left:?}");
    }
);

on_both!(only_a_running_run_of_the_tenant_is_asked_to_stop, |store| {
    use weft_store::RunStatus;
    for (id, tenant) in [("r1", "acme"), ("r2", "acme"), ("r3", "globex")] {
        store.run_start(id, tenant, "sync", None).await.unwrap();
    }
    store
        .run_finish("r2", RunStatus::Succeeded, None)
        .await
        .unwrap();
    let all: Vec<String> = ["r1", "r2", "r3"].map(String::from).to_vec();
    assert!(store.runs_cancelling(&all).await.unwrap().is_empty());

    assert_eq!(
        store.run_cancel("acme", "r1").await.unwrap(),
        Some(RunStatus::Running)
    );
    // Ended already: how it ended, and nothing asked.
    assert_eq!(
        store.run_cancel("acme", "r2").await.unwrap(),
        Some(RunStatus::Succeeded)
    );
    // Another tenant's run is no run at all.
    assert_eq!(store.run_cancel("acme", "r3").await.unwrap(), None);
    assert_eq!(store.run_cancel("acme", "nope").await.unwrap(), None);
    assert_eq!(store.runs_cancelling(&all).await.unwrap(), ["r1"]);
    assert!(store.runs_cancelling(&[]).await.unwrap().is_empty());

    // Once it ended, it is no longer asked.
    store
        .run_finish("r1", RunStatus::Cancelled, Some("cancelled"))
        .await
        .unwrap();
    assert!(store.runs_cancelling(&all).await.unwrap().is_empty());
    let (run, _) = store.run_get("acme", "r1").await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
});

on_both!(runs_are_found_by_flow_status_and_time, |store| {
    use std::time::{Duration, SystemTime};
    use weft_store::{RunFilter, RunStatus};
    let before_all = SystemTime::now() - Duration::from_secs(1);
    for (id, flow) in [("r1", "a"), ("r2", "b"), ("r3", "a")] {
        store.run_start(id, "acme", flow, None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    store.run_start("other", "globex", "a", None).await.unwrap();
    store
        .run_finish("r1", RunStatus::Failed, Some("boom"))
        .await
        .unwrap();
    let ids = |runs: Vec<weft_store::RunRecord>| -> Vec<String> {
        runs.into_iter().map(|r| r.id).collect()
    };
    let all = RunFilter {
        limit: 10,
        ..RunFilter::default()
    };
    assert_eq!(
        ids(store.runs_find("acme", &all).await.unwrap()),
        ["r3", "r2", "r1"]
    );
    let of_a = RunFilter {
        flow: Some("a"),
        ..all
    };
    assert_eq!(
        ids(store.runs_find("acme", &of_a).await.unwrap()),
        ["r3", "r1"]
    );
    let failed = RunFilter {
        status: Some(RunStatus::Failed),
        ..all
    };
    assert_eq!(ids(store.runs_find("acme", &failed).await.unwrap()), ["r1"]);
    let r2 = store.run_get("acme", "r2").await.unwrap().unwrap().0;
    let since_r2 = RunFilter {
        since: Some(r2.started_at),
        ..all
    };
    assert_eq!(
        ids(store.runs_find("acme", &since_r2).await.unwrap()),
        ["r3", "r2"]
    );
    let before_r2 = RunFilter {
        before: Some(r2.started_at),
        since: Some(before_all),
        ..all
    };
    assert_eq!(
        ids(store.runs_find("acme", &before_r2).await.unwrap()),
        ["r1"]
    );
    let one = RunFilter { limit: 1, ..all };
    assert_eq!(ids(store.runs_find("acme", &one).await.unwrap()), ["r3"]);
});

on_both!(
    what_runs_used_is_kept_and_summed_per_tenant_and_period,
    |store| {
        use std::time::{Duration, SystemTime};
        use weft_store::RunUsage;
        let start = SystemTime::now() - Duration::from_secs(1);
        let used = |n: u64| RunUsage {
            cpu_ms: 10 * n,
            requests: n,
            bytes_out: 100 * n,
            bytes_in: 1_000 * n,
            peak_memory: 65_536 * n,
            records_read: 3 * n,
            records_written: 2 * n,
            records_failed: n,
        };
        for (id, tenant, n) in [("r1", "acme", 1), ("r2", "acme", 2), ("r3", "globex", 5)] {
            store.run_start(id, tenant, "sync", None).await.unwrap();
            store.run_used(id, &used(n)).await.unwrap();
        }
        // A run that has not ended yet counts as a run that used nothing so far.
        store.run_start("r4", "acme", "sync", None).await.unwrap();
        let r2 = store.run_get("acme", "r2").await.unwrap().unwrap().0;
        assert_eq!(r2.usage, used(2));
        let r4 = store.run_get("acme", "r4").await.unwrap().unwrap().0;
        assert_eq!(r4.usage, RunUsage::default());

        let until = SystemTime::now() + Duration::from_secs(1);
        let (runs, sum) = store.usage_sum("acme", start, until).await.unwrap();
        assert_eq!(runs, 3);
        assert_eq!(
            sum,
            RunUsage {
                peak_memory: 65_536 * 2,
                ..used(3)
            },
            "sums, and the peak is the most of any run"
        );
        // Outside the period: nothing.
        let (runs, sum) = store
            .usage_sum("acme", start - Duration::from_secs(3_600), start)
            .await
            .unwrap();
        assert_eq!((runs, sum), (0, RunUsage::default()));
        let (runs, _) = store.usage_sum("nobody", start, until).await.unwrap();
        assert_eq!(runs, 0);
    }
);

on_both!(
    every_change_to_what_servers_serve_moves_the_generation_and_nothing_else_does,
    |store| {
        use weft_store::TenantStatus;
        let mut last = store.serving_generation().await.unwrap();
        let mut moved = async |what: &str| {
            let now = store.serving_generation().await.unwrap();
            assert!(now > last, "{what} moves the generation");
            last = now;
        };
        store.tenant_create("acme").await.unwrap();
        store
            .flow_deploy("acme", "sync", "v1", "{}", "d1", "ep-1")
            .await
            .unwrap();
        moved("a deploy").await;
        store.flow_set_enabled("acme", "sync", false).await.unwrap();
        moved("disabling a flow").await;
        store
            .tenant_set_status("acme", TenantStatus::Suspended)
            .await
            .unwrap();
        moved("suspending a tenant").await;
        store.flow_undeploy("acme", "sync").await.unwrap();
        moved("deleting a flow").await;
        store.tenant_delete("acme").await.unwrap();
        moved("deleting a tenant").await;
        // What does not change what is served leaves it.
        let before = store.serving_generation().await.unwrap();
        store.tenant_create("globex").await.unwrap();
        store
            .run_request("globex", "sync", None, "{}")
            .await
            .unwrap();
        store.run_start("r1", "globex", "sync", None).await.unwrap();
        assert_eq!(store.serving_generation().await.unwrap(), before);
    }
);
