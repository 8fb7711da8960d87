//! Datasets: records kept in weft's own store under a name, upserted by key.

use std::collections::HashMap;

use crate::dialect::{bind, execute, on_database};
use crate::{DatasetInfo, Store, StoreError, Upserted, millis_to_time, now_millis};

/// What one page of dataset upserts does, worked out in memory from the records the keys hold
/// now: one outcome per row, in order (a key repeated in the page sees its earlier row), and
/// the rows to write, once per key, in the page's order of their last occurrence.
fn upsert_plan(
    rows: &[(String, String)],
    existing: HashMap<String, String>,
) -> (Vec<Upserted>, Vec<(&str, &str)>) {
    let mut current: HashMap<&str, (&str, bool)> = HashMap::with_capacity(rows.len());
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut order: Vec<&str> = Vec::new();
    for (key, record) in rows {
        let before: Option<&str> = match current.get(key.as_str()) {
            Some((r, _)) => Some(r),
            None => existing.get(key).map(String::as_str),
        };
        let outcome = match before {
            Some(old) if old == record => Upserted::Unchanged,
            Some(_) => Upserted::Updated,
            None => Upserted::Created,
        };
        let changed =
            outcome != Upserted::Unchanged || current.get(key.as_str()).is_some_and(|(_, c)| *c);
        if !current.contains_key(key.as_str()) {
            order.push(key);
        }
        current.insert(key, (record, changed));
        outcomes.push(outcome);
    }
    let writes = order
        .into_iter()
        .filter_map(|k| {
            current
                .get(k)
                .filter(|(_, changed)| *changed)
                .map(|(r, _)| (k, *r))
        })
        .collect();
    (outcomes, writes)
}

/// Rows per multi-row statement: five parameters each, well under both databases' limits.
const UPSERT_CHUNK: usize = 1_000;

impl Store {
    /// Upserts `(key, record JSON)` rows into a dataset in one transaction; one outcome per row.
    ///
    /// One page is a few statements, not two per record: the keys' current records in one
    /// `SELECT … IN`, then the new and changed rows in one multi-row `INSERT … ON CONFLICT`.
    pub async fn dataset_upsert(
        &self,
        tenant: &str,
        dataset: &str,
        rows: &[(String, String)],
    ) -> Result<Vec<Upserted>, StoreError> {
        let begin_write = self.pool.dialect().begin_write;
        let mut keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let keys = keys.as_slice();
        on_database!(self, format!("upsert into dataset {dataset}"), |pool| {
            let mut tx = pool.begin_with(begin_write).await?;
            let mut existing = HashMap::new();
            for chunk in keys.chunks(UPSERT_CHUNK) {
                let mut select = sqlx::QueryBuilder::new(
                    "SELECT key, record FROM dataset_records WHERE tenant = ",
                );
                select
                    .push_bind(tenant)
                    .push(" AND dataset = ")
                    .push_bind(dataset);
                select.push(" AND key IN (");
                let mut list = select.separated(", ");
                for key in chunk {
                    list.push_bind(*key);
                }
                select.push(")");
                let found: Vec<(String, String)> =
                    select.build_query_as().fetch_all(&mut *tx).await?;
                existing.extend(found);
            }
            let (outcomes, writes) = upsert_plan(rows, existing);
            let now = now_millis();
            for chunk in writes.chunks(UPSERT_CHUNK) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO dataset_records (tenant, dataset, key, record, updated_at) ",
                );
                insert.push_values(chunk, |mut row, (key, record)| {
                    row.push_bind(tenant).push_bind(dataset);
                    row.push_bind(*key).push_bind(*record).push_bind(now);
                });
                insert.push(
                    " ON CONFLICT (tenant, dataset, key)
                      DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at",
                );
                insert.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(outcomes)
        })
    }

    /// Deletes the rows with these keys from a dataset in one transaction; how many there were.
    pub async fn dataset_delete(
        &self,
        tenant: &str,
        dataset: &str,
        keys: &[String],
    ) -> Result<u64, StoreError> {
        let begin_write = self.pool.dialect().begin_write;
        on_database!(self, format!("delete from dataset {dataset}"), |pool| {
            let mut tx = pool.begin_with(begin_write).await?;
            let sql = "DELETE FROM dataset_records WHERE tenant = $1 AND dataset = $2 AND key = $3";
            let mut deleted = 0;
            for key in keys {
                deleted += execute!(&mut *tx, sql, tenant, dataset, key)?;
            }
            tx.commit().await?;
            Ok(deleted)
        })
    }

    /// Up to `limit` `(key, record JSON)` rows in key order, after `after`.
    pub async fn dataset_page(
        &self,
        tenant: &str,
        dataset: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let after = after.unwrap_or("");
        on_database!(self, format!("read dataset {dataset}"), |pool| {
            let query = sqlx::query_as(
                "SELECT key, record FROM dataset_records
                 WHERE tenant = $1 AND dataset = $2 AND key > $3 ORDER BY key LIMIT $4",
            );
            bind!(query, tenant, dataset, after, i64::from(limit))
                .fetch_all(pool)
                .await
        })
    }

    /// How many records the tenant's datasets hold in all.
    pub async fn dataset_rows(&self, tenant: &str) -> Result<u64, StoreError> {
        let rows: i64 = on_database!(self, "count the tenant's dataset records", |pool| {
            let sql = "SELECT COUNT(*) FROM dataset_records WHERE tenant = $1";
            sqlx::query_scalar(sql).bind(tenant).fetch_one(pool).await
        })?;
        Ok(rows.max(0) as u64)
    }

    /// The tenant's datasets with their sizes.
    pub async fn dataset_list(&self, tenant: &str) -> Result<Vec<DatasetInfo>, StoreError> {
        let rows: Vec<(String, i64, i64)> = on_database!(self, "list datasets", |pool| {
            let sql = "SELECT dataset, COUNT(*), MAX(updated_at) FROM dataset_records
                       WHERE tenant = $1 GROUP BY dataset ORDER BY dataset";
            sqlx::query_as(sql).bind(tenant).fetch_all(pool).await
        })?;
        Ok(rows
            .into_iter()
            .map(|(name, records, updated_at)| DatasetInfo {
                name,
                records: records as u64,
                updated_at: millis_to_time(updated_at),
            })
            .collect())
    }
}
