//! Webhook intake in batches: the endpoints hand the events they verified to one task, which
//! keeps everything handed to it meanwhile in one store transaction, then answers each. A
//! delivery is still answered only once its events are kept (a crash loses nothing), but under
//! load a thousand deliveries cost a handful of transactions, not a thousand; alone, one waits
//! for nothing.

use tokio::sync::{mpsc, oneshot};
use weft_store::{Store, StoredEvent};

/// Deliveries kept in one transaction, at most.
const BATCH: usize = 512;

/// One delivery's verified events, for its tenant's flow, and where to answer whether each was
/// new.
struct Delivery {
    tenant: String,
    flow: String,
    events: Vec<StoredEvent>,
    kept: oneshot::Sender<Result<Vec<bool>, String>>,
}

/// Where the endpoints hand their events.
#[derive(Clone)]
pub(crate) struct Intake {
    deliveries: mpsc::Sender<Delivery>,
}

impl Intake {
    /// Starts the task keeping events in `store`; it ends when every `Intake` is dropped.
    pub fn start(store: Store) -> Intake {
        let (deliveries, received) = mpsc::channel(4 * BATCH);
        tokio::spawn(keep(store, received));
        Intake { deliveries }
    }

    /// Keeps `events` of `tenant`'s `flow`: for each, whether it was new (`false`: a
    /// redelivery); why not, when the store failed.
    pub async fn keep(
        &self,
        tenant: &str,
        flow: &str,
        events: Vec<StoredEvent>,
    ) -> Result<Vec<bool>, String> {
        let (kept, answer) = oneshot::channel();
        let delivery = Delivery {
            tenant: tenant.to_owned(),
            flow: flow.to_owned(),
            events,
            kept,
        };
        self.deliveries
            .send(delivery)
            .await
            .map_err(|_| "the server is stopping".to_owned())?;
        answer
            .await
            .map_err(|_| "the server is stopping".to_owned())?
    }
}

/// Takes deliveries as they come: the first, then whatever else is waiting (up to [`BATCH`]),
/// kept in one transaction.
async fn keep(store: Store, mut received: mpsc::Receiver<Delivery>) {
    let mut batch = Vec::with_capacity(BATCH);
    while received.recv_many(&mut batch, BATCH).await > 0 {
        let rows: Vec<(&str, &str, &StoredEvent)> = batch
            .iter()
            .flat_map(|d| {
                d.events
                    .iter()
                    .map(|e| (d.tenant.as_str(), d.flow.as_str(), e))
            })
            .collect();
        let kept = store.events_put_many(&rows).await;
        drop(rows);
        let mut kept = match kept {
            Ok(kept) => Ok(kept.into_iter()),
            Err(e) => Err(e.to_string()),
        };
        for delivery in batch.drain(..) {
            let answer = match &mut kept {
                Ok(flags) => Ok(flags.by_ref().take(delivery.events.len()).collect()),
                Err(e) => Err(e.clone()),
            };
            // A sender that went away (its client hung up) needs no answer.
            let _ = delivery.kept.send(answer);
        }
    }
}
