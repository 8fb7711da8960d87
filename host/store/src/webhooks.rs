//! Webhook events, persisted before the sender gets its 2xx and processed in order, once; and
//! the registrations `weft serve` made with vendors.

use crate::dialect::{bind, execute, on_database};
use crate::{
    Store, StoreError, StoredEvent, WebhookSubscription, millis, millis_to_time, now_millis,
};

/// Webhook events: persisted before the sender gets its 2xx, processed in order, once.
impl Store {
    /// Keeps a verified event for `flow`; `false` when an event with its id was already kept
    /// (a redelivery), which is then dropped.
    pub async fn event_put(
        &self,
        tenant: &str,
        flow: &str,
        event: &StoredEvent,
    ) -> Result<bool, StoreError> {
        let kept = self.events_put_many(&[(tenant, flow, event)]).await?;
        Ok(kept.first().copied().unwrap_or(false))
    }

    /// Keeps many verified events, each for its tenant's flow, in one write transaction (what
    /// a server's webhook endpoints received in a short while): for each, whether it was new
    /// (`false`: a redelivery, dropped). All are kept or, when the transaction fails, none.
    pub async fn events_put_many(
        &self,
        events: &[(&str, &str, &StoredEvent)],
    ) -> Result<Vec<bool>, StoreError> {
        let begin_write = self.pool.dialect().begin_write;
        let action = || format!("keep {} webhook events", events.len());
        on_database!(self, action(), |pool| {
            let mut tx = pool.begin_with(begin_write).await?;
            let mut kept = Vec::with_capacity(events.len());
            for (tenant, flow, event) in events {
                let insert = sqlx::query(
                    "INSERT INTO webhook_events
                       (tenant, flow, event_id, seq, stream, action, record, received_at)
                     VALUES ($1, $2, $3,
                             (SELECT COALESCE(MAX(seq), 0) + 1 FROM webhook_events
                              WHERE tenant = $1 AND flow = $2),
                             $4, $5, $6, $7)
                     ON CONFLICT (tenant, flow, event_id) DO NOTHING",
                );
                let insert = bind!(insert, *tenant, *flow, &event.event_id, &event.stream);
                let insert = bind!(insert, &event.action, &event.record, now_millis());
                kept.push(insert.execute(&mut *tx).await?.rows_affected() > 0);
            }
            tx.commit().await?;
            Ok(kept)
        })
    }

    /// Events of `flow` not yet processed, in arrival order.
    pub async fn events_pending(
        &self,
        tenant: &str,
        flow: &str,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let action = || format!("read pending webhook events of flow {flow}");
        let rows: Vec<(String, i64, String, String, String)> =
            on_database!(self, action(), |pool| {
                let query = sqlx::query_as(
                    "SELECT event_id, seq, stream, action, record FROM webhook_events
                     WHERE tenant = $1 AND flow = $2 AND processed_at IS NULL
                     ORDER BY seq LIMIT $3",
                );
                bind!(query, tenant, flow, i64::from(limit))
                    .fetch_all(pool)
                    .await
            })?;
        Ok(rows
            .into_iter()
            .map(|(event_id, seq, stream, action, record)| StoredEvent {
                event_id,
                seq: seq as u64,
                stream,
                action,
                record,
            })
            .collect())
    }

    /// Marks events processed, after the run that consumed them succeeded.
    pub async fn events_done(
        &self,
        tenant: &str,
        flow: &str,
        event_ids: &[String],
    ) -> Result<(), StoreError> {
        let begin_write = self.pool.dialect().begin_write;
        let action = || format!("mark webhook events of flow {flow} processed");
        on_database!(self, action(), |pool| {
            let mut tx = pool.begin_with(begin_write).await?;
            let now = now_millis();
            let sql = "UPDATE webhook_events SET processed_at = $1
                       WHERE tenant = $2 AND flow = $3 AND event_id = $4";
            for id in event_ids {
                execute!(&mut *tx, sql, now, tenant, flow, id)?;
            }
            tx.commit().await
        })
    }
}

/// Webhook registrations with vendors.
impl Store {
    /// Keeps a flow's webhook registration, replacing the one it had.
    pub async fn subscription_put(
        &self,
        tenant: &str,
        subscription: &WebhookSubscription,
    ) -> Result<(), StoreError> {
        let s = subscription;
        let action = || format!("keep the webhook subscription of flow {}", s.flow);
        let (expires_at, created_at) = (s.expires_at.map(millis), millis(s.created_at));
        let events = s.events.join("\n");
        let events = events.as_str();
        on_database!(self, action(), |pool| {
            let upsert = sqlx::query(
                "INSERT INTO webhook_subscriptions (tenant, flow, connection, subscription_id,
                   callback_url, events, expires_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (tenant, flow) DO UPDATE SET connection = excluded.connection,
                   subscription_id = excluded.subscription_id,
                   callback_url = excluded.callback_url, events = excluded.events,
                   expires_at = excluded.expires_at, created_at = excluded.created_at",
            );
            let upsert = bind!(upsert, tenant, &s.flow, &s.connection, &s.subscription_id);
            let upsert = bind!(upsert, &s.callback_url, events, expires_at, created_at);
            upsert.execute(pool).await?;
            Ok(())
        })
    }

    /// The tenant's webhook registrations (only `flow`'s when given), by flow name.
    pub async fn subscriptions(
        &self,
        tenant: &str,
        flow: Option<&str>,
    ) -> Result<Vec<WebhookSubscription>, StoreError> {
        type Row = (String, String, String, String, String, Option<i64>, i64);
        let rows: Vec<Row> = on_database!(self, "list webhook subscriptions", |pool| {
            let query = sqlx::query_as(
                "SELECT flow, connection, subscription_id, callback_url, events, expires_at,
                        created_at
                 FROM webhook_subscriptions
                 WHERE tenant = $1 AND ($2 IS NULL OR flow = $2) ORDER BY flow",
            );
            bind!(query, tenant, flow).fetch_all(pool).await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    flow,
                    connection,
                    subscription_id,
                    callback_url,
                    events,
                    expires_at,
                    created_at,
                )| {
                    WebhookSubscription {
                        flow,
                        connection,
                        subscription_id,
                        callback_url,
                        events: events
                            .split('\n')
                            .filter(|e| !e.is_empty())
                            .map(str::to_owned)
                            .collect(),
                        expires_at: expires_at.map(millis_to_time),
                        created_at: millis_to_time(created_at),
                    }
                },
            )
            .collect())
    }

    /// Forgets a flow's webhook registration; whether there was one.
    pub async fn subscription_delete(&self, tenant: &str, flow: &str) -> Result<bool, StoreError> {
        let action = || format!("forget the webhook subscription of flow {flow}");
        let deleted = on_database!(self, action(), |pool| {
            let sql = "DELETE FROM webhook_subscriptions WHERE tenant = $1 AND flow = $2";
            execute!(pool, sql, tenant, flow)
        })?;
        Ok(deleted > 0)
    }
}
