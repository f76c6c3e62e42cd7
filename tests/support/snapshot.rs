//! The table as a test can compare it before and after: for the checks
//! that a refused or rejected request left nothing behind.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::TestApp;

/// Every item of the table but the rate-limit counters (which every `/api`
/// request moves), keyed by `pk sk`, in full: an update shows as well as an
/// insert. Compared as attribute values, whose maps compare by content.
pub type Snapshot = BTreeMap<String, BTreeMap<String, AttributeValue>>;

impl TestApp {
    pub async fn snapshot(&self) -> Snapshot {
        let mut items = Snapshot::new();
        let mut start = None;
        loop {
            let page = self
                .dynamodb
                .scan()
                .table_name(&self.storage.table_name)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in page.items() {
                let key = |name: &str| match item.get(name) {
                    Some(AttributeValue::S(value)) => value.clone(),
                    other => format!("{other:?}"),
                };
                let (pk, sk) = (key("pk"), key("sk"));
                if !pk.starts_with(&model::keys::rate_pk("")) {
                    items.insert(
                        format!("{pk} {sk}"),
                        item.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    );
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return items,
            }
        }
    }

    /// How many items the partition `pk` holds (strongly consistent).
    pub async fn partition_len(&self, pk: &str) -> i32 {
        self.dynamodb
            .query()
            .table_name(&self.storage.table_name)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("query")
            .count
    }

    /// Fails with what was added, removed and changed since `before`.
    pub async fn assert_unchanged(&self, before: &Snapshot, what: &str) {
        let after = self.snapshot().await;
        let added: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
        let removed: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
        let changed: Vec<_> = after
            .iter()
            .filter(|(k, v)| before.get(*k).is_some_and(|old| old != *v))
            .map(|(k, _)| k)
            .collect();
        assert!(
            added.is_empty() && removed.is_empty() && changed.is_empty(),
            "{what}: added {added:?}, removed {removed:?}, changed {changed:?}"
        );
    }
}
