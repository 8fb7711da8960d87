//! Webhooks: signature v3 over the URI a delivery was signed for, events by object, the app's
//! subscriptions.

use super::*;

#[derive(Deserialize)]
struct Delivered {
    #[serde(rename = "eventId")]
    event_id: Value,
    #[serde(default, rename = "subscriptionType")]
    subscription_type: String,
    #[serde(default, rename = "objectId")]
    object_id: Value,
    #[serde(default, rename = "occurredAt")]
    occurred_at: Option<i64>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// The URIs a genuine delivery may have been signed over, most specific first.
fn signed_uris(conn: &Connection, req: &InboundRequest) -> Result<Vec<String>> {
    let query = if req.query.is_empty() {
        String::new()
    } else {
        format!("?{}", req.query)
    };
    if let Some(url) = config(conn)?.webhook_url {
        return Ok(vec![url]);
    }
    let Some(host) = req
        .header("x-forwarded-host")
        .or_else(|| req.header("host"))
    else {
        return Ok(Vec::new());
    };
    let schemes: Vec<&str> = match req.header("x-forwarded-proto") {
        Some(p) => vec![p.split(',').next().unwrap_or(p).trim()],
        None => vec!["https", "http"],
    };
    Ok(schemes
        .into_iter()
        .map(|s| format!("{s}://{host}{}{query}", req.path))
        .collect())
}

pub(super) fn verify_delivery(conn: &Connection, req: &InboundRequest) -> Result<Verification> {
    let Some(signature) = req.header("x-hubspot-signature-v3") else {
        return Ok(Verification::Rejected(
            "missing X-HubSpot-Signature-v3 (only signature v3 is accepted)".into(),
        ));
    };
    let Some(timestamp) = req.header("x-hubspot-request-timestamp") else {
        return Ok(Verification::Rejected(
            "missing X-HubSpot-Request-Timestamp".into(),
        ));
    };
    let Ok(sent_ms) = timestamp.trim().parse::<i64>() else {
        return Ok(Verification::Rejected(
            "X-HubSpot-Request-Timestamp is not epoch milliseconds".into(),
        ));
    };
    let age = weft_sdk::time::now_ms() - sent_ms;
    if !(-MAX_DELIVERY_AGE_MS..=MAX_DELIVERY_AGE_MS).contains(&age) {
        return Ok(Verification::Rejected(format!(
            "the delivery's timestamp is {} s away from now; at most 300 s is accepted",
            age / 1_000
        )));
    }
    let Some(given) = weft_sdk::base64::decode(signature) else {
        return Ok(Verification::Rejected(
            "X-HubSpot-Signature-v3 is not base64".into(),
        ));
    };
    let uris = signed_uris(conn, req)?;
    if uris.is_empty() {
        return Ok(Verification::Rejected(
            "no Host header and no webhook_url in the config: the signed URI is unknown".into(),
        ));
    }
    let mut genuine = false;
    for uri in uris {
        let mut message =
            Vec::with_capacity(req.method.len() + uri.len() + req.body.len() + timestamp.len());
        message.extend_from_slice(req.method.to_uppercase().as_bytes());
        message.extend_from_slice(uri.as_bytes());
        message.extend_from_slice(&req.body);
        message.extend_from_slice(timestamp.trim().as_bytes());
        let expected = conn.webhook_mac(MacAlgorithm::HmacSha256, &message)?;
        genuine |= constant_time_eq(&expected, &given);
    }
    if !genuine {
        return Ok(Verification::Rejected(
            "X-HubSpot-Signature-v3 does not match the request".into(),
        ));
    }
    let delivered: Vec<Delivered> = serde_json::from_slice(&req.body).map_err(|e| {
        Error::invalid_record(format!("the delivery is not a HubSpot event array: {e}"))
    })?;
    let events = delivered
        .into_iter()
        .map(|d| {
            let prefix = d.subscription_type.split('.').next().unwrap_or("");
            let stream = TYPES
                .iter()
                .find(|t| t.singular == prefix)
                .map(|t| t.stream)
                .unwrap_or(prefix)
                .to_owned();
            let mut record = Record::new();
            record.insert("id".into(), json!(id_text(&d.object_id)));
            record.insert("eventId".into(), d.event_id.clone());
            record.insert("subscriptionType".into(), json!(d.subscription_type));
            for (k, v) in d.rest {
                record.insert(k, v);
            }
            Event {
                id: id_text(&d.event_id),
                stream,
                action: d.subscription_type,
                record,
                occurred_at: d.occurred_at.map(weft_sdk::time::format_rfc3339_ms),
            }
        })
        .collect();
    Ok(Verification::Accepted(events))
}

pub(super) fn app_id(conn: &Connection) -> Result<String> {
    match config(conn)?.app_id {
        Some(Value::String(s)) if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => Ok(s),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(Error::config(format!(
            "connection `{}`: webhook subscriptions need the app's numeric `app_id` in the config",
            conn.name()
        ))),
    }
}

pub(super) const EVENT_TYPES: &[&str] = &[
    "contact.creation",
    "contact.propertyChange",
    "contact.deletion",
    "company.creation",
    "company.propertyChange",
    "company.deletion",
    "deal.creation",
    "deal.propertyChange",
    "deal.deletion",
];
