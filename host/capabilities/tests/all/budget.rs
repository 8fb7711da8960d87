//! Rate budgets are per credential and shared by every connection that uses it.

use std::time::{Duration, Instant};

use weft_capabilities::{RateBudget, Request};

use crate::support::*;

/// Sends `each` requests on every connection, alternating between them, and says how long
/// it took.
async fn send_all(
    connections: &[&weft_capabilities::Connection],
    each: usize,
    url: &str,
) -> Duration {
    let started = Instant::now();
    for _ in 0..each {
        for connection in connections {
            assert_eq!(
                connection.send(Request::get(url)).await.unwrap().status,
                200
            );
        }
    }
    started.elapsed()
}

#[tokio::test]
async fn two_connections_with_one_credential_share_its_budget() {
    let upstream = Upstream::start(|_| async { "ok" }).await;
    let secrets = secrets().await;
    let budget = RateBudget {
        requests: 10,
        per: Duration::from_secs(1),
    };
    let mut first = bearer_spec("same-token");
    first.rate = Some(budget);
    let mut second = bearer_spec("same-token");
    second.name = "other-flow".into();
    second.rate = Some(budget);
    let (a, b) = (connect(first, &secrets), connect(second, &secrets));
    // 30 requests at 10 per second with a burst of 10: at least two seconds, whichever
    // connection sends them.
    let took = send_all(&[&a, &b], 15, &upstream.url("/x")).await;
    assert!(
        took >= Duration::from_millis(1_900),
        "30 requests in {took:?} break a budget of 10/s"
    );
    assert_eq!(upstream.seen().len(), 30);
}

#[tokio::test]
async fn another_credential_has_its_own_budget() {
    let upstream = Upstream::start(|_| async { "ok" }).await;
    let secrets = secrets().await;
    let budget = RateBudget {
        requests: 10,
        per: Duration::from_secs(60),
    };
    let mut first = bearer_spec("token-one");
    first.rate = Some(budget);
    let mut second = bearer_spec("token-two");
    second.rate = Some(budget);
    let (a, b) = (connect(first, &secrets), connect(second, &secrets));
    // Each credential's burst covers its own ten requests: no waiting at all.
    let took = send_all(&[&a, &b], 10, &upstream.url("/x")).await;
    assert!(
        took < Duration::from_secs(5),
        "independent budgets waited {took:?}"
    );
}
