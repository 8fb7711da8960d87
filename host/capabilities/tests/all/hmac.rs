//! Webhook MACs computed with a secret the plugin never sees.

use weft_capabilities::{AuthSpec, HmacAlgorithm, MacError, Secret};

use crate::support::{connect, secrets, spec};

#[tokio::test]
async fn computes_and_verifies_hmac_with_the_webhook_secret() {
    let s = secrets().await;
    s.set("default", "zd_webhook", &Secret::new("whsec-123456"))
        .await
        .unwrap();
    let mut sp = spec(AuthSpec::None);
    sp.webhook_secret = Some("secret:zd_webhook".into());
    let conn = connect(sp, &s);
    let message = b"2026-11-22T13:00:00Z{\"ticket\":1}";

    for (alg, ring_alg) in [
        (HmacAlgorithm::Sha256, ring::hmac::HMAC_SHA256),
        (
            HmacAlgorithm::Sha1,
            ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        ),
    ] {
        let expected = ring::hmac::sign(&ring::hmac::Key::new(ring_alg, b"whsec-123456"), message);
        let mac = conn.hmac(alg, message).await.unwrap();
        assert_eq!(mac, expected.as_ref(), "{alg:?}");
        assert!(conn.hmac_verify(alg, message, &mac).await.unwrap());
        assert!(!conn.hmac_verify(alg, b"tampered", &mac).await.unwrap());
    }
}

#[tokio::test]
async fn hmac_without_a_webhook_secret_says_how_to_configure_one() {
    let s = secrets().await;
    let conn = connect(spec(AuthSpec::None), &s);
    let err = conn.hmac(HmacAlgorithm::Sha256, b"m").await.unwrap_err();
    assert!(matches!(&err, MacError::NoSecret { .. }), "{err}");
    assert!(err.to_string().contains("webhook_secret"), "{err}");
    assert!(
        !err.is_host_fault(),
        "a missing secret is the configuration's fault"
    );
}
