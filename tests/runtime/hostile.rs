//! Plugins that misbehave fail their call with a clear error; the host carries on.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_runtime::{Batch, CallContext, CallError, Runtime, TransformPlugin};
use weft_tests::*;

fn batch(config: Value) -> Batch {
    Batch {
        config: config.to_string(),
        records: json!([{"id": 1}]).to_string(),
        lookup: None,
    }
}

/// The same runtime still runs a well-behaved call.
async fn still_serves(rt: &Runtime) {
    let plugin = transform(rt, HOSTILE_TRANSFORM).await;
    let out = plugin
        .process(&CallContext::default(), batch(json!({"do": "echo"})))
        .await
        .expect("echo after a hostile call");
    assert_eq!(
        serde_json::from_str::<Value>(&out.records).unwrap(),
        json!([{"id": 1}])
    );
    let map = transform(rt, MAP).await;
    map.process(
        &CallContext::default(),
        Batch {
            config: "{}".into(),
            records: "[{}]".into(),
            lookup: None,
        },
    )
    .await
    .expect("map after a hostile call");
}

async fn hostile(rt: &Runtime) -> TransformPlugin {
    transform(rt, HOSTILE_TRANSFORM).await
}

#[tokio::test]
async fn infinite_loop_is_stopped_at_its_cpu_limit() {
    let rt = runtime(|l| l.cpu_time = Duration::from_millis(300));
    let plugin = hostile(&rt).await;
    let started = Instant::now();
    let err = plugin
        .process(&CallContext::default(), batch(json!({"do": "spin"})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::CpuLimit { limit_ms: 300, .. }),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped only after {:?}",
        started.elapsed()
    );
    assert_eq!(
        err.to_string(),
        "hostile-transform used more than its CPU time limit of 300 ms in one call and was stopped"
    );
    still_serves(&rt).await;
}

#[tokio::test]
async fn infinite_loop_does_not_block_other_calls() {
    let rt = runtime(|l| l.cpu_time = Duration::from_secs(2));
    let plugin = hostile(&rt).await;
    let ctx = CallContext::default();
    let spinner = plugin.process(&ctx, batch(json!({"do": "spin"})));
    let quick = async {
        // The spinning guest yields every epoch tick, so this runs while it spins.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        plugin
            .process(&CallContext::default(), batch(json!({"do": "echo"})))
            .await
            .unwrap();
        started.elapsed()
    };
    let (spun, quick_took) = tokio::join!(spinner, quick);
    assert!(matches!(spun, Err(CallError::CpuLimit { .. })));
    assert!(
        quick_took < Duration::from_secs(1),
        "a good call waited {quick_took:?} behind a spinning one"
    );
}

#[tokio::test]
async fn wall_clock_limit_stops_a_call_even_when_cpu_allows_more() {
    let rt = runtime(|l| {
        l.cpu_time = Duration::from_secs(60);
        l.wall_time = Duration::from_millis(300);
    });
    let err = hostile(&rt)
        .await
        .process(&CallContext::default(), batch(json!({"do": "spin"})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::WallLimit { limit_ms: 300, .. }),
        "{err}"
    );
    still_serves(&rt).await;
}

#[tokio::test]
async fn memory_bomb_is_trapped_at_the_limit() {
    let rt = runtime(|l| l.memory_bytes = 32 << 20);
    let err = hostile(&rt)
        .await
        .process(&CallContext::default(), batch(json!({"do": "balloon"})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::MemoryLimit { limit_bytes, .. } if limit_bytes == 32 << 20),
        "{err}"
    );
    still_serves(&rt).await;
}

#[tokio::test]
async fn panic_fails_the_call_as_a_crash() {
    let rt = runtime(|_| {});
    let err = hostile(&rt)
        .await
        .process(&CallContext::default(), batch(json!({"do": "panic"})))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Trap { .. }), "{err}");
    // What trapped and where, without the guest's backtrace.
    assert_eq!(
        err.to_string(),
        "hostile-transform crashed: wasm trap: wasm `unreachable` instruction executed in weft:plugin/transform-api@0.2.0#process (how a panic in a plugin ends)"
    );
    still_serves(&rt).await;
}

#[tokio::test]
async fn oversized_output_is_refused() {
    let rt = runtime(|l| l.output_bytes = 1 << 20);
    let err = hostile(&rt)
        .await
        .process(
            &CallContext::default(),
            batch(json!({"do": "flood", "mib": 3})),
        )
        .await
        .unwrap_err();
    match &err {
        CallError::OutputTooLarge { size, limit, .. } => {
            assert!(*size > 3 << 20);
            assert_eq!(*limit, 1 << 20);
        }
        other => panic!("expected OutputTooLarge, got {other}"),
    }
    still_serves(&rt).await;
}

#[tokio::test]
async fn plugin_finds_no_environment_arguments_files_or_sockets() {
    // SAFETY: set before any other thread of this test process reads the environment.
    unsafe { std::env::set_var("WEFT_TEST_CANARY", "must-not-leak") };
    let rt = runtime(|_| {});
    let out = hostile(&rt)
        .await
        .process(&CallContext::default(), batch(json!({"do": "snoop"})))
        .await
        .unwrap();
    let seen: Value = serde_json::from_str::<Vec<Value>>(&out.records)
        .unwrap()
        .remove(0);
    assert_eq!(seen["env"], json!([]), "environment visible: {seen}");
    assert_eq!(seen["args"], json!([]), "arguments visible: {seen}");
    for probe in ["root_dir", "cwd", "passwd", "socket", "dns"] {
        assert!(
            seen[probe].as_str().unwrap().starts_with("Err("),
            "{probe} succeeded: {seen}"
        );
    }
}

#[tokio::test]
async fn running_out_of_instance_slots_fails_the_call_not_the_host() {
    let rt = runtime(|l| {
        l.instances = 1;
        l.cpu_time = Duration::from_millis(500);
    });
    let plugin = hostile(&rt).await;
    let ctx = CallContext::default();
    let spinning = plugin.process(&ctx, batch(json!({"do": "spin"})));
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        plugin.process(&ctx, batch(json!({"do": "echo"}))).await
    };
    let (first, second) = tokio::join!(spinning, second);
    assert!(
        matches!(first, Err(CallError::CpuLimit { .. })),
        "{first:?}"
    );
    let err = second.unwrap_err();
    assert!(matches!(err, CallError::Capacity { .. }), "{err}");
    assert!(
        err.to_string().contains("raise `Limits::instances`"),
        "{err}"
    );
    // The slot is free again once the spinning call has been stopped.
    plugin
        .process(&ctx, batch(json!({"do": "echo"})))
        .await
        .unwrap();
}

#[tokio::test]
async fn one_tenant_waits_its_turn_while_others_carry_on() {
    let rt = runtime(|l| {
        l.calls_per_tenant = 1;
        l.cpu_time = Duration::from_millis(400);
    });
    let plugin = hostile(&rt).await;
    let (busy, other) = (CallContext::new("busy"), CallContext::new("other"));
    let spinning = plugin.process(&busy, batch(json!({"do": "spin"})));
    let queued = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        plugin
            .process(&busy, batch(json!({"do": "echo"})))
            .await
            .unwrap();
        started.elapsed()
    };
    let elsewhere = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        plugin
            .process(&other, batch(json!({"do": "echo"})))
            .await
            .unwrap();
        started.elapsed()
    };
    let (spun, queued_for, other_took) = tokio::join!(spinning, queued, elsewhere);
    assert!(matches!(spun, Err(CallError::CpuLimit { .. })));
    assert!(
        queued_for >= Duration::from_millis(200),
        "the busy tenant's second call did not wait: {queued_for:?}"
    );
    assert!(
        other_took < queued_for,
        "another tenant waited behind the busy one: {other_took:?} vs {queued_for:?}"
    );
}
