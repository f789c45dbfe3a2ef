//! Changing resources through the store: apply, delete, pausing an adapter, and the seeding of a store from files at
//! start, each judged against the state every instance shares, written all or nothing with its
//! audit events, and read back before it returns (read-your-writes).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use mekong_core::{
    Actor, AdapterSpec, AuditEvent, Document, Key, Kind, Outcome, Plan, Proposal, Resource, Stored,
    Verdict, parse_documents,
};
use mekong_kafka::{Backbone, Store, StoreError, TopicSettings, View, ensure_topics};
use tracing::{info, warn};

/// Applying and deleting resources through the store; used by the admin service and
/// the seeding of `mekong serve --resources`.
#[derive(Clone)]
pub struct Changes {
    pub store: Arc<Store>,
    pub backbone: Arc<Backbone>,
    /// How destination topics of new routes are created.
    pub topics: TopicSettings,
}

/// A judged change, and whether it was written.
pub struct Applied {
    pub plan: Plan,
    pub applied: bool,
    pub view: Arc<View>,
}

/// Why the texts seeded at start were not applied.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The change was refused; nothing was changed.
    #[error("the resources were refused; nothing was changed:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<mekong_core::ResourceError>),
}

/// What seeding changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

impl Changes {
    /// Applies documents as `actor`. A dry run judges against the current state and writes nothing;
    /// otherwise the change (accepted or rejected) is audited, and an accepted one is in this
    /// instance's catalog when this returns.
    pub async fn apply(
        &self,
        sources: &[(String, String)],
        expected_versions: &BTreeMap<String, u64>,
        actor: &Actor,
        dry_run: bool,
    ) -> Result<Applied, StoreError> {
        let mut documents = Vec::new();
        let mut parse_errors = Vec::new();
        for (name, text) in sources {
            let (docs, errors) = parse_documents(name, text);
            documents.extend(docs);
            parse_errors.extend(errors);
        }
        let now = now();
        let proposal = |state: &mekong_core::ResourceState| {
            state.plan_apply(Proposal {
                documents: documents.clone(),
                parse_errors: parse_errors.clone(),
                expected_versions,
                actor: &actor.name,
                now: &now,
            })
        };
        if dry_run {
            let view = self.store.sync().await?;
            let plan = proposal(&view.state);
            return Ok(Applied {
                plan,
                applied: false,
                view,
            });
        }
        let transaction = self.store.begin().await?;
        let plan = proposal(&transaction.view.state);
        self.finish(transaction, plan, "apply", actor, &now).await
    }

    /// Pauses (or resumes) an adapter as `actor`: its stored resource with `paused` set, judged and
    /// audited like any change (action `pause` or `resume`), so every instance follows it. `None`
    /// when there is no such adapter; a plan without changes when it already is so.
    pub async fn set_adapter_paused(
        &self,
        name: &str,
        paused: bool,
        actor: &Actor,
    ) -> Result<Option<Applied>, StoreError> {
        let transaction = self.store.begin().await?;
        let key = Key::new(Kind::Adapter, name.to_owned());
        let Some(stored) = transaction.view.state.get(&key) else {
            return Ok(None);
        };
        let Resource::Adapter(spec) = &stored.resource else {
            unreachable!("an Adapter key holds an adapter");
        };
        let action = if paused { "pause" } else { "resume" };
        let resource = Resource::Adapter(AdapterSpec {
            paused,
            ..spec.clone()
        });
        let expected = BTreeMap::from([(key.to_string(), stored.version)]);
        let now = now();
        let plan = transaction.view.state.plan_apply(Proposal {
            documents: vec![Document {
                source: format!("mekong adapters {action}"),
                index: 1,
                line: 0,
                resource,
            }],
            parse_errors: Vec::new(),
            expected_versions: &expected,
            actor: &actor.name,
            now: &now,
        });
        self.finish(transaction, plan, action, actor, &now)
            .await
            .map(Some)
    }

    /// Deletes one resource as `actor`.
    pub async fn delete(
        &self,
        key: &Key,
        expected_version: Option<u64>,
        actor: &Actor,
        dry_run: bool,
    ) -> Result<Applied, StoreError> {
        if dry_run {
            let view = self.store.sync().await?;
            let plan = view.state.plan_delete(key, expected_version);
            return Ok(Applied {
                plan,
                applied: false,
                view,
            });
        }
        let transaction = self.store.begin().await?;
        let plan = transaction.view.state.plan_delete(key, expected_version);
        self.finish(transaction, plan, "delete", actor, &now())
            .await
    }

    async fn finish(
        &self,
        transaction: mekong_kafka::Transaction<'_>,
        plan: Plan,
        action: &'static str,
        actor: &Actor,
        now: &str,
    ) -> Result<Applied, StoreError> {
        let events = AuditEvent::from_plan(&plan, action, actor, now);
        let writes: Vec<(Key, Option<Stored>)> = if plan.verdict == Verdict::Accepted {
            plan.writes()
                .map(|(k, v)| (k.clone(), v.cloned()))
                .collect()
        } else {
            Vec::new()
        };
        if events.is_empty() {
            // Nothing changes and nothing was refused: nothing to write or audit.
            let view = transaction.view.clone();
            return Ok(Applied {
                plan,
                applied: false,
                view,
            });
        }
        if let Some(catalog) = &plan.catalog {
            // New routes write to topics that may not exist yet.
            let topics: Vec<&str> = catalog.destination_topics().into_iter().collect();
            ensure_topics(
                &self.backbone,
                &topics,
                self.topics,
                std::time::Duration::from_secs(30),
            )
            .await?;
        }
        let applied = !writes.is_empty();
        let view = transaction.commit(writes, events).await?;
        if applied {
            for change in plan.writes() {
                info!(resource = %change.0, actor = %actor.name, action, "resource changed");
            }
        } else {
            warn!(
                actor = %actor.name,
                action,
                problems = plan.problems.len(),
                "resource change rejected"
            );
        }
        Ok(Applied {
            plan,
            applied,
            view,
        })
    }

    /// Applies resource texts at start, as an ordinary change made by `actor`. Resources are
    /// created or updated, unchanged ones not rewritten, none deleted; a refused change is an error.
    pub async fn seed(
        &self,
        sources: &[(String, String)],
        actor: &str,
    ) -> Result<Seeded, SeedError> {
        let applied = self
            .apply(sources, &BTreeMap::new(), &Actor::named(actor), false)
            .await?;
        let plan = &applied.plan;
        if plan.verdict != Verdict::Accepted {
            return Err(SeedError::Refused(plan.problems.clone()));
        }
        let count = |o: Outcome| plan.changes.iter().filter(|c| c.outcome == o).count();
        Ok(Seeded {
            created: count(Outcome::Created),
            updated: count(Outcome::Updated),
            unchanged: count(Outcome::Unchanged),
        })
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
