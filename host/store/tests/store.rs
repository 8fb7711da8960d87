//! The store on every database it supports: each behaviour runs once on a SQLite file in a
//! temporary directory and once on PostgreSQL (127.0.0.1:5432, or `WEFT_TEST_POSTGRES`), in a
//! schema of its own, through `on_both!`. Only what a SQLite file alone has (its creation, WAL
//! mode, private modes, databases in memory) is tested on SQLite only.

#[macro_use]
mod common;

use weft_store::{MIGRATIONS, StateLimits, StateScope, Store, StoreError};

fn scope(flow: &str) -> StateScope {
    StateScope::new("default", "zendesk", "zendesk", flow)
}

#[tokio::test]
async fn creates_file_and_parent_dirs_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/weft.db");
    let store = Store::open_sqlite(&path).await.unwrap();
    store.state_set(&scope("f"), "k", b"v").await.unwrap();
    assert!(path.exists());
    // WAL mode keeps a -wal file beside the database while connections are open.
    assert!(dir.path().join("a/b/weft.db-wal").exists());
}

#[tokio::test]
async fn a_current_database_opens_while_another_process_holds_its_write_lock() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.db");
    drop(Store::open_sqlite(&path).await.unwrap());
    // A writer mid-transaction, as a busy `weft serve` beside a starting command would be.
    let url = format!("sqlite://{}", path.display());
    let mut writer = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut writer)
        .await
        .unwrap();
    let opened = tokio::time::timeout(std::time::Duration::from_secs(2), Store::open_sqlite(&path))
        .await
        .expect("opening waited for the writer");
    let store = opened.unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        MIGRATIONS.last().unwrap().version
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut writer)
        .await
        .unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn keeps_the_database_and_its_directory_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/weft.db");
    let store = Store::open_sqlite(&path).await.unwrap();
    store.state_set(&scope("f"), "k", b"v").await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("data")), 0o700);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("data/weft.db-wal")), 0o600);
}

on_both!(
    applies_migrations_once_and_records_them,
    |store, database| {
        let latest = MIGRATIONS.last().unwrap().version;
        assert_eq!(store.schema_version().await.unwrap(), latest);
        store.state_set(&scope("f"), "cursor", b"42").await.unwrap();
        drop(store);
        // Reopening applies nothing again and keeps the data.
        let store = database.open().await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), latest);
        let kept = store.state_get(&scope("f"), "cursor").await.unwrap();
        assert_eq!(kept.as_deref(), Some(&b"42"[..]));
    }
);

on_both!(refuses_database_from_newer_weft, |store, database| {
    drop(store);
    // Simulate a newer weft having migrated the database.
    database
        .execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)",
        )
        .await;
    let err = database.open().await.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 999, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade weft"), "{err}");
});

on_both!(state_round_trips_and_deletes, |store| {
    let s = scope("flow-a");
    assert_eq!(store.state_get(&s, "cursor").await.unwrap(), None);
    store.state_set(&s, "cursor", b"page-1").await.unwrap();
    store.state_set(&s, "cursor", b"page-2").await.unwrap();
    assert_eq!(
        store.state_get(&s, "cursor").await.unwrap().unwrap(),
        b"page-2"
    );
    assert!(store.state_delete(&s, "cursor").await.unwrap());
    assert!(!store.state_delete(&s, "cursor").await.unwrap());
    assert_eq!(store.state_get(&s, "cursor").await.unwrap(), None);
});

on_both!(state_scopes_do_not_collide, |store| {
    store.state_set(&scope("flow-a"), "k", b"a").await.unwrap();
    store.state_set(&scope("flow-b"), "k", b"b").await.unwrap();
    let other_tenant = StateScope::new("acme", "zendesk", "zendesk", "flow-a");
    assert_eq!(store.state_get(&other_tenant, "k").await.unwrap(), None);
    assert_eq!(
        store
            .state_get(&scope("flow-a"), "k")
            .await
            .unwrap()
            .unwrap(),
        b"a"
    );
    assert_eq!(
        store
            .state_get(&scope("flow-b"), "k")
            .await
            .unwrap()
            .unwrap(),
        b"b"
    );
});

on_both!(refuses_state_key_over_256_bytes, |store| {
    let key = "k".repeat(257);
    let err = store.state_set(&scope("f"), &key, b"v").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StateKeyTooLong {
                size: 257,
                limit: 256,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("257 bytes"), "{err}");
    store
        .state_set(&scope("f"), &"k".repeat(256), b"v")
        .await
        .unwrap();
});

on_both!(refuses_state_value_over_64_kib, |store| {
    let err = store
        .state_set(&scope("f"), "big", &vec![0u8; 64 * 1024 + 1])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StateValueTooLarge {
                size: 65537,
                limit: 65536,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("65537 bytes"), "{err}");
    store
        .state_set(&scope("f"), "big", &vec![0u8; 64 * 1024])
        .await
        .unwrap();
});

on_both!(refuses_new_key_beyond_1000_but_allows_overwrite, |store| {
    assert_eq!(store.state_limits().max_keys_per_scope, 1_000);
    let s = scope("f");
    for i in 0..1_000 {
        store
            .state_set(&s, &format!("key-{i}"), b"v")
            .await
            .unwrap();
    }
    assert_eq!(store.state_count(&s).await.unwrap(), 1_000);
    let err = store.state_set(&s, "one-too-many", b"v").await.unwrap_err();
    assert!(
        matches!(err, StoreError::StateTooManyKeys { limit: 1_000, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("1000 keys"), "{err}");
    // Existing keys can still be rewritten, and other scopes are unaffected.
    store.state_set(&s, "key-7", b"new").await.unwrap();
    store.state_set(&scope("other"), "k", b"v").await.unwrap();
    // Deleting makes room again.
    store.state_delete(&s, "key-0").await.unwrap();
    store.state_set(&s, "one-too-many", b"v").await.unwrap();
});

on_both!(limits_are_configurable, |store| {
    let store = store.with_state_limits(StateLimits {
        max_key_bytes: 4,
        max_value_bytes: 2,
        max_keys_per_scope: 1,
    });
    assert!(store.state_set(&scope("f"), "abcde", b"v").await.is_err());
    assert!(store.state_set(&scope("f"), "a", b"vvv").await.is_err());
    store.state_set(&scope("f"), "a", b"v").await.unwrap();
    assert!(store.state_set(&scope("f"), "b", b"v").await.is_err());
});

on_both!(secrets_rows_round_trip_and_list_names_only, |store| {
    store
        .secret_put("default", "zoho_refresh", b"sealed-1")
        .await
        .unwrap();
    store
        .secret_put("default", "zendesk_token", b"sealed-2")
        .await
        .unwrap();
    store
        .secret_put("acme", "zoho_refresh", b"sealed-3")
        .await
        .unwrap();
    assert_eq!(
        store
            .secret_get("default", "zoho_refresh")
            .await
            .unwrap()
            .unwrap(),
        b"sealed-1"
    );
    store
        .secret_put("default", "zoho_refresh", b"sealed-4")
        .await
        .unwrap();
    assert_eq!(
        store
            .secret_get("default", "zoho_refresh")
            .await
            .unwrap()
            .unwrap(),
        b"sealed-4"
    );
    let names: Vec<String> = store
        .secret_list("default")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["zendesk_token", "zoho_refresh"]);
    assert!(
        store
            .secret_delete("default", "zendesk_token")
            .await
            .unwrap()
    );
    assert!(
        !store
            .secret_delete("default", "zendesk_token")
            .await
            .unwrap()
    );
    assert_eq!(
        store.secret_get("default", "zendesk_token").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .secret_get("acme", "zoho_refresh")
            .await
            .unwrap()
            .unwrap(),
        b"sealed-3"
    );
});

on_both!(refuses_secret_names_unfit_for_flow_files, |store| {
    let err = store
        .secret_put("default", "has space", b"x")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidSecretName { ref name } if name == "has space"),
        "{err}"
    );
    assert!(store.secret_put("default", "", b"x").await.is_err());
});

#[tokio::test]
async fn in_memory_store_keeps_data_across_calls() {
    let store = Store::open_in_memory().await.unwrap();
    let clone = store.clone();
    store.state_set(&scope("f"), "k", b"v").await.unwrap();
    assert_eq!(
        clone.state_get(&scope("f"), "k").await.unwrap().unwrap(),
        b"v"
    );
}

on_both!(key_limit_holds_under_concurrent_writers, |store| {
    let store = store.with_state_limits(StateLimits {
        max_keys_per_scope: 10,
        ..StateLimits::default()
    });
    let s = scope("f");
    for i in 0..5 {
        store
            .state_set(&s, &format!("pre-{i}"), b"v")
            .await
            .unwrap();
    }
    // 20 writers race for the 5 remaining slots; the check and the insert are one statement.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (store, s) = (store.clone(), s.clone());
            tokio::spawn(async move { store.state_set(&s, &format!("race-{i}"), b"v").await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::StateTooManyKeys { .. }) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(ok, 5);
    assert_eq!(store.state_count(&s).await.unwrap(), 10);
});

/// The tests written for both databases from the start.
mod on_both {
    use std::time::SystemTime;

    use std::time::Duration;

    use weft_store::{
        LeaseOutcome, StateLimits, StateScope, StepRunRecord, StoreError, StoredEvent, Upserted,
        WebhookSubscription,
    };

    fn scope(flow: &str) -> StateScope {
        StateScope::new("default", "zendesk", "zendesk", flow)
    }

    on_both!(state_round_trips_and_keeps_its_limits, |store| {
        let store = store.with_state_limits(StateLimits {
            max_keys_per_scope: 2,
            ..StateLimits::default()
        });
        store.state_set(&scope("a"), "k1", b"one").await.unwrap();
        store.state_set(&scope("a"), "k1", b"uno").await.unwrap();
        store.state_set(&scope("a"), "k2", b"two").await.unwrap();
        assert!(matches!(
            store.state_set(&scope("a"), "k3", b"x").await,
            Err(StoreError::StateTooManyKeys { .. })
        ));
        assert_eq!(
            store.state_get(&scope("a"), "k1").await.unwrap().as_deref(),
            Some(&b"uno"[..])
        );
        assert_eq!(
            store.state_get(&scope("b"), "k1").await.unwrap(),
            None,
            "scopes are separate"
        );
        assert!(store.state_delete(&scope("a"), "k1").await.unwrap());
        assert!(!store.state_delete(&scope("a"), "k1").await.unwrap());
    });

    on_both!(secrets_are_kept_per_tenant, |store| {
        store.secret_put("t1", "api", b"sealed-1").await.unwrap();
        store.secret_put("t1", "api", b"sealed-2").await.unwrap();
        store.secret_put("t2", "api", b"other").await.unwrap();
        assert_eq!(
            store.secret_get("t1", "api").await.unwrap().as_deref(),
            Some(&b"sealed-2"[..])
        );
        assert_eq!(store.secret_list("t1").await.unwrap().len(), 1);
        assert!(store.secret_delete("t1", "api").await.unwrap());
        assert_eq!(store.secret_get("t1", "api").await.unwrap(), None);
        assert!(store.secret_get("t2", "api").await.unwrap().is_some());
    });

    on_both!(runs_steps_errors_and_cursors, |store| {
        store
            .run_start("r1", "default", "sync", Some("staging"))
            .await
            .unwrap();
        let mut step = StepRunRecord {
            step: "read".into(),
            status: weft_store::StepStatus::Running,
            pages: 1,
            records_in: 10,
            records_out: 10,
            failed: 0,
            started_at: SystemTime::now(),
            finished_at: None,
            error: None,
        };
        let mut written = StepRunRecord {
            step: "write".into(),
            ..step.clone()
        };
        store
            .steps_save("r1", &[step.clone(), written.clone()])
            .await
            .unwrap();
        step.status = weft_store::StepStatus::Succeeded;
        step.pages = 2;
        step.finished_at = Some(SystemTime::now());
        written.records_out = 9;
        store
            .steps_save("r1", &[step.clone(), written.clone()])
            .await
            .unwrap();
        store
            .error_append("r1", "write", Some(r#"{"id":1}"#), "refused")
            .await
            .unwrap();
        store
            .error_append("r1", "write", None, "refused again")
            .await
            .unwrap();
        store
            .run_finish("r1", weft_store::RunStatus::Failed, Some("write: refused"))
            .await
            .unwrap();
        store
            .run_start("r2", "default", "sync", None)
            .await
            .unwrap();
        store
            .run_finish("r2", weft_store::RunStatus::Succeeded, None)
            .await
            .unwrap();

        let (run, steps) = store.run_get("default", "r1").await.unwrap().unwrap();
        assert_eq!(
            (
                run.status.as_str(),
                run.environment.as_deref(),
                run.error.as_deref()
            ),
            ("failed", Some("staging"), Some("write: refused"))
        );
        let saved: Vec<(&str, u64, u64, &str)> = steps
            .iter()
            .map(|s| (s.step.as_str(), s.pages, s.records_out, s.status.as_str()))
            .collect();
        assert_eq!(
            saved,
            [("read", 2, 10, "succeeded"), ("write", 1, 9, "running")]
        );
        assert!(store.run_get("other-tenant", "r1").await.unwrap().is_none());
        let errors = store.run_errors("r1").await.unwrap();
        assert_eq!(errors.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(errors[0].record.as_deref(), Some(r#"{"id":1}"#));
        assert_eq!(store.runs_list("default", 10).await.unwrap().len(), 2);
        let succeeded = store
            .flow_runs(
                "default",
                "sync",
                Some(weft_store::RunStatus::Succeeded),
                10,
            )
            .await
            .unwrap();
        assert_eq!(
            succeeded.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["r2"]
        );
        assert_eq!(
            store
                .flow_runs("default", "sync", None, 10)
                .await
                .unwrap()
                .len(),
            2
        );

        assert_eq!(
            store.cursor_get("default", "sync", "read").await.unwrap(),
            None
        );
        store
            .cursor_set("default", "sync", "read", "page-2")
            .await
            .unwrap();
        store
            .cursor_set("default", "sync", "read", "page-3")
            .await
            .unwrap();
        assert_eq!(
            store
                .cursor_get("default", "sync", "read")
                .await
                .unwrap()
                .as_deref(),
            Some("page-3")
        );
    });

    on_both!(datasets_upsert_by_key_and_page_in_key_order, |store| {
        let rows = |items: &[(&str, &str)]| {
            items
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        let first = store
            .dataset_upsert("default", "people", &rows(&[("b", "1"), ("a", "2")]))
            .await
            .unwrap();
        assert_eq!(first, [Upserted::Created, Upserted::Created]);
        let second = store
            .dataset_upsert(
                "default",
                "people",
                &rows(&[("a", "2"), ("b", "changed"), ("c", "3")]),
            )
            .await
            .unwrap();
        assert_eq!(
            second,
            [Upserted::Unchanged, Upserted::Updated, Upserted::Created]
        );
        let page = store
            .dataset_page("default", "people", None, 2)
            .await
            .unwrap();
        assert_eq!(page, rows(&[("a", "2"), ("b", "changed")]));
        let rest = store
            .dataset_page("default", "people", Some("b"), 2)
            .await
            .unwrap();
        assert_eq!(rest, rows(&[("c", "3")]));
        let list = store.dataset_list("default").await.unwrap();
        assert_eq!((list[0].name.as_str(), list[0].records), ("people", 3));
    });

    on_both!(a_page_repeating_a_key_upserts_as_if_row_by_row, |store| {
        let rows = |items: &[(&str, &str)]| {
            items
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        store
            .dataset_upsert("default", "people", &rows(&[("a", "1")]))
            .await
            .unwrap();
        let page = rows(&[
            ("a", "1"),
            ("b", "x"),
            ("a", "2"),
            ("b", "x"),
            ("b", "y"),
            ("c", "3"),
        ]);
        let outcomes = store
            .dataset_upsert("default", "people", &page)
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            [
                Upserted::Unchanged,
                Upserted::Created,
                Upserted::Updated,
                Upserted::Unchanged,
                Upserted::Updated,
                Upserted::Created
            ]
        );
        assert_eq!(
            store
                .dataset_page("default", "people", None, 10)
                .await
                .unwrap(),
            rows(&[("a", "2"), ("b", "y"), ("c", "3")])
        );
        // More rows than one statement takes.
        let many: Vec<(String, String)> = (0..2_500)
            .map(|i| (format!("k{i:05}"), format!("{i}")))
            .collect();
        let outcomes = store
            .dataset_upsert("default", "many", &many)
            .await
            .unwrap();
        assert!(outcomes.iter().all(|o| *o == Upserted::Created));
        assert_eq!(
            store
                .dataset_list("default")
                .await
                .unwrap()
                .iter()
                .find(|d| d.name == "many")
                .unwrap()
                .records,
            2_500
        );
    });

    on_both!(
        webhook_subscriptions_are_kept_per_flow_and_replaced,
        |store| {
            let at = |s: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
            let first = WebhookSubscription {
                flow: "referrals".into(),
                connection: "pc-events".into(),
                subscription_id: "sub-1".into(),
                callback_url: "https://weft.example/hooks/referrals".into(),
                events: vec!["referral-created".into(), "referral-updated".into()],
                expires_at: None,
                created_at: at(1_000),
            };
            store.subscription_put("default", &first).await.unwrap();
            let other = WebhookSubscription {
                flow: "tickets".into(),
                events: vec![],
                expires_at: Some(at(9_000)),
                ..first.clone()
            };
            store.subscription_put("default", &other).await.unwrap();
            store.subscription_put("t2", &first).await.unwrap();
            assert_eq!(
                store.subscriptions("default", None).await.unwrap(),
                [first.clone(), other.clone()]
            );
            let renewed = WebhookSubscription {
                subscription_id: "sub-2".into(),
                created_at: at(2_000),
                ..first.clone()
            };
            store.subscription_put("default", &renewed).await.unwrap();
            assert_eq!(
                store
                    .subscriptions("default", Some("referrals"))
                    .await
                    .unwrap(),
                [renewed]
            );
            assert!(
                store
                    .subscription_delete("default", "referrals")
                    .await
                    .unwrap()
            );
            assert!(
                !store
                    .subscription_delete("default", "referrals")
                    .await
                    .unwrap()
            );
            assert_eq!(store.subscriptions("default", None).await.unwrap(), [other]);
            assert_eq!(
                store.subscriptions("t2", None).await.unwrap(),
                [first],
                "tenants are separate"
            );
        }
    );

    /// An event of stream `items` with id `id`, as a connector hands it on.
    fn event(id: &str) -> StoredEvent {
        StoredEvent {
            event_id: id.into(),
            seq: 0,
            stream: "items".into(),
            action: "updated".into(),
            record: format!("{{\"id\":\"{id}\"}}"),
        }
    }

    on_both!(
        webhook_events_are_kept_once_and_processed_in_order,
        |store| {
            assert!(
                store
                    .event_put("default", "hooks", &event("e2"))
                    .await
                    .unwrap()
            );
            assert!(
                store
                    .event_put("default", "hooks", &event("e1"))
                    .await
                    .unwrap()
            );
            assert!(
                !store
                    .event_put("default", "hooks", &event("e2"))
                    .await
                    .unwrap(),
                "a redelivery is dropped"
            );
            let pending = store.events_pending("default", "hooks", 10).await.unwrap();
            assert_eq!(
                pending
                    .iter()
                    .map(|e| e.event_id.as_str())
                    .collect::<Vec<_>>(),
                ["e2", "e1"],
                "arrival order"
            );
            store
                .events_done("default", "hooks", &["e2".into()])
                .await
                .unwrap();
            let left = store.events_pending("default", "hooks", 10).await.unwrap();
            assert_eq!(
                left.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(),
                ["e1"]
            );
        }
    );

    on_both!(
        webhook_events_of_many_deliveries_are_kept_in_one_go_once_each_in_order,
        |store| {
            assert!(
                store
                    .event_put("acme", "hooks", &event("e0"))
                    .await
                    .unwrap()
            );
            let (e1, e2, e0) = (event("e1"), event("e2"), event("e0"));
            // Two flows of two tenants at once; a redelivery of one kept before, and one
            // delivered twice in the batch itself.
            let kept = store
                .events_put_many(&[
                    ("acme", "hooks", &e1),
                    ("globex", "hooks", &e1),
                    ("acme", "hooks", &e0),
                    ("acme", "hooks", &e2),
                    ("acme", "hooks", &e2),
                ])
                .await
                .unwrap();
            assert_eq!(kept, [true, true, false, true, false]);
            let pending = store.events_pending("acme", "hooks", 10).await.unwrap();
            assert_eq!(
                pending
                    .iter()
                    .map(|e| (e.event_id.as_str(), e.seq))
                    .collect::<Vec<_>>(),
                [("e0", 1), ("e1", 2), ("e2", 3)],
                "arrival order, numbered on"
            );
            let theirs = store.events_pending("globex", "hooks", 10).await.unwrap();
            assert_eq!(theirs.len(), 1);
            assert!(store.events_put_many(&[]).await.unwrap().is_empty());
        }
    );

    on_both!(the_schema_is_at_the_latest_migration, |store| {
        assert_eq!(
            store.schema_version().await.unwrap(),
            weft_store::MIGRATIONS.last().unwrap().version
        );
    });

    on_both!(one_run_holds_a_flow_and_a_second_is_told_which, |store| {
        let long = Duration::from_secs(30);
        assert_eq!(
            store
                .lease_acquire("default", "sync", "r1", "host-a:1", long)
                .await
                .unwrap(),
            LeaseOutcome::Acquired { abandoned: None }
        );
        match store
            .lease_acquire("default", "sync", "r2", "host-b:2", long)
            .await
            .unwrap()
        {
            LeaseOutcome::Held(lease) => assert_eq!(
                (lease.run_id.as_str(), lease.holder.as_str()),
                ("r1", "host-a:1")
            ),
            other => panic!("a second run took a held flow: {other:?}"),
        }
        // Other flows and other tenants are not held.
        assert!(matches!(
            store
                .lease_acquire("default", "other", "r3", "h", long)
                .await
                .unwrap(),
            LeaseOutcome::Acquired { .. }
        ));
        assert!(matches!(
            store
                .lease_acquire("t2", "sync", "r4", "h", long)
                .await
                .unwrap(),
            LeaseOutcome::Acquired { .. }
        ));
        assert!(
            store
                .lease_renew("default", "sync", "r1", long)
                .await
                .unwrap()
        );
        assert!(
            !store
                .lease_renew("default", "sync", "r2", long)
                .await
                .unwrap(),
            "only the holder renews"
        );
        store.lease_release("default", "sync", "r2").await.unwrap();
        assert!(
            matches!(
                store
                    .lease_acquire("default", "sync", "r2", "h", long)
                    .await
                    .unwrap(),
                LeaseOutcome::Held(_)
            ),
            "only the holder releases"
        );
        store.lease_release("default", "sync", "r1").await.unwrap();
        assert_eq!(
            store
                .lease_acquire("default", "sync", "r2", "host-b:2", long)
                .await
                .unwrap(),
            LeaseOutcome::Acquired { abandoned: None }
        );
    });

    on_both!(
        a_lapsed_lease_is_taken_over_and_its_run_marked_abandoned,
        |store| {
            store
                .lease_acquire(
                    "default",
                    "sync",
                    "r1",
                    "host-a:41",
                    Duration::from_millis(100),
                )
                .await
                .unwrap();
            store
                .run_start("r1", "default", "sync", None)
                .await
                .unwrap();
            // Its process dies: nothing renews the lease.
            tokio::time::sleep(Duration::from_millis(250)).await;
            let outcome = store
                .lease_acquire(
                    "default",
                    "sync",
                    "r2",
                    "host-b:42",
                    Duration::from_secs(30),
                )
                .await
                .unwrap();
            assert_eq!(
                outcome,
                LeaseOutcome::Acquired {
                    abandoned: Some("r1".into())
                }
            );
            let (run, _) = store.run_get("default", "r1").await.unwrap().unwrap();
            assert_eq!(run.status.as_str(), "abandoned");
            assert!(run.finished_at.is_some());
            assert!(
                run.error
                    .as_deref()
                    .is_some_and(|e| e.contains("host-a:41") && e.contains("lease")),
                "{:?}",
                run.error
            );
        }
    );

    on_both!(runs_no_live_lease_holds_are_reaped_as_abandoned, |store| {
        store
            .run_start("dead", "default", "sync", None)
            .await
            .unwrap();
        store
            .lease_acquire("default", "live", "alive", "h", Duration::from_secs(30))
            .await
            .unwrap();
        store
            .run_start("alive", "default", "live", None)
            .await
            .unwrap();
        store
            .run_start("done", "default", "done", None)
            .await
            .unwrap();
        store
            .run_finish("done", weft_store::RunStatus::Succeeded, None)
            .await
            .unwrap();
        assert_eq!(store.runs_reap("default").await.unwrap(), 1);
        let status = |id: &'static str| {
            let store = store.clone();
            async move {
                store
                    .run_get("default", id)
                    .await
                    .unwrap()
                    .unwrap()
                    .0
                    .status
                    .as_str()
            }
        };
        assert_eq!(status("dead").await, "abandoned");
        assert_eq!(status("alive").await, "running");
        assert_eq!(status("done").await, "succeeded");
    });

    on_both!(racing_takers_get_exactly_one_lease, |store| {
        let mut tasks = Vec::new();
        for i in 0..12 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .lease_acquire(
                        "default",
                        "sync",
                        &format!("r{i}"),
                        "h",
                        Duration::from_secs(30),
                    )
                    .await
            }));
        }
        let mut acquired = 0;
        for t in tasks {
            if matches!(t.await.unwrap().unwrap(), LeaseOutcome::Acquired { .. }) {
                acquired += 1;
            }
        }
        assert_eq!(acquired, 1);
    });
}

on_both!(
    /// Two processes' worth of writers on one database (two pools, as `weft run` beside
    /// `weft serve`): dataset upserts, webhook intake and event processing at once. Every call
    /// succeeds and every event is processed exactly once.
    concurrent_writers_and_webhook_intake_neither_fail_nor_process_twice,
    |runner, database| {
        let receiver = database.open().await.unwrap();
        concurrent_intake(runner, receiver).await;
    }
);

async fn concurrent_intake(runner: Store, receiver: Store) {
    use weft_store::StoredEvent;
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = runner.clone();
        tasks.push(tokio::spawn(async move {
            for page in 0..40 {
                let rows: Vec<(String, String)> = (0..50)
                    .map(|i| (format!("{w}-{i}"), format!("{{\"page\":{page}}}")))
                    .collect();
                store
                    .dataset_upsert("default", "contacts", &rows)
                    .await
                    .map(|_| ())?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for d in 0..4 {
        let store = receiver.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                let event = StoredEvent {
                    event_id: format!("e{d}-{i}"),
                    seq: 0,
                    stream: "tickets".into(),
                    action: "updated".into(),
                    record: "{}".into(),
                };
                store.event_put("default", "hooks", &event).await?;
            }
            Ok(())
        }));
    }
    let processor = {
        let store = runner.clone();
        tokio::spawn(async move {
            let mut processed = Vec::new();
            while processed.len() < 400 {
                let pending = store.events_pending("default", "hooks", 50).await?;
                let ids: Vec<String> = pending.into_iter().map(|e| e.event_id).collect();
                store.events_done("default", "hooks", &ids).await?;
                processed.extend(ids);
                tokio::task::yield_now().await;
            }
            Ok::<_, StoreError>(processed)
        })
    };
    for t in tasks {
        t.await
            .unwrap()
            .expect("no writer fails on a busy database");
    }
    let mut processed = processor.await.unwrap().expect("the processor never fails");
    let total = processed.len();
    processed.sort();
    processed.dedup();
    assert_eq!(
        (total, processed.len()),
        (400, 400),
        "every event processed exactly once"
    );
}

on_both!(
    a_batch_of_failed_records_is_logged_in_order_after_what_the_log_holds,
    |store| {
        store
            .run_start("r1", "default", "sync", None)
            .await
            .unwrap();
        store
            .error_append("r1", "read", None, "the first")
            .await
            .unwrap();
        // More than one statement's worth, so the numbering carries across them.
        let texts: Vec<String> = (0..2_500).map(|i| format!("{{\"id\":{i}}}")).collect();
        let failures: Vec<(Option<&str>, &str)> = texts
            .iter()
            .map(|t| (Some(t.as_str()), "refused"))
            .collect();
        store.errors_append("r1", "write", &failures).await.unwrap();
        store.errors_append("r1", "write", &[]).await.unwrap();
        let log = store.run_errors("r1").await.unwrap();
        assert_eq!(log.len(), 2_501);
        assert_eq!((log[0].seq, log[0].error.as_str()), (1, "the first"));
        assert!(log.iter().enumerate().all(|(i, e)| e.seq == i as u64 + 1));
        assert_eq!(log[2_500].record.as_deref(), Some("{\"id\":2499}"));
        assert_eq!(log[1].step, "write");
    }
);
