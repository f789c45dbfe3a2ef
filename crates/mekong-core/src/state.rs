//! The resource state: every resource as the store keeps it (its version, who changed it and when,
//! a record type's schema history), and how a proposed change is judged against it. A change is
//! all-or-nothing: it is accepted only if every resource in it is acceptable and the catalog after
//! it builds. The store in `mekong-kafka` writes what is decided here; nothing here does I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, CatalogError};
use crate::compat::incompatibilities;
pub use crate::resource::Key;
use crate::resource::{Document, Kind, Resource, ResourceError};

/// A resource as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub resource: Resource,
    /// 1 when created, one more with each change.
    pub version: u64,
    /// The client that made the last change.
    pub changed_by: String,
    /// When, as RFC 3339 (the caller's clock: this room has none).
    pub changed_at: String,
    /// For a record type, the schema of each version, oldest first; the last is the resource's own.
    pub schemas: Vec<Value>,
}

/// The stored form, as JSON.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StoredJson {
    version: u64,
    changed_by: String,
    changed_at: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    schemas: Vec<Value>,
    resource: Value,
}

impl Stored {
    pub fn key(&self) -> Key {
        Key::of(&self.resource)
    }

    /// The schema version a record type is at (0 for other kinds).
    pub fn schema_version(&self) -> u32 {
        self.schemas.len() as u32
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&StoredJson {
            version: self.version,
            changed_by: self.changed_by.clone(),
            changed_at: self.changed_at.clone(),
            schemas: self.schemas.clone(),
            resource: self.resource.to_value(),
        })
        .expect("stored resources serialise to JSON")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Stored, String> {
        let json: StoredJson = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        Ok(Stored {
            resource: Resource::from_value(json.resource)?,
            version: json.version,
            changed_by: json.changed_by,
            changed_at: json.changed_at,
            schemas: json.schemas,
        })
    }

    /// SHA-256 of the resource as written (hex): what the audit trail records of each side.
    pub fn digest(&self) -> String {
        let bytes =
            serde_json::to_vec(&self.resource.to_value()).expect("resources serialise to JSON");
        hex::encode(Sha256::digest(bytes))
    }
}

/// What a change does to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    Deleted,
    /// Refused; see the problems.
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Deleted => "deleted",
            Outcome::Rejected => "rejected",
        }
    }
}

/// One resource's part in a change.
#[derive(Debug, Clone)]
pub struct Change {
    pub key: Key,
    pub outcome: Outcome,
    /// What the store holds now.
    pub old: Option<Stored>,
    /// What it would hold after the change (`None` for a delete); also set for a rejected resource,
    /// so callers can show what was proposed.
    pub new: Option<Stored>,
    /// Problems with this resource, in plain words.
    pub problems: Vec<String>,
}

/// The verdict on a whole change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Something in it is wrong (INVALID_ARGUMENT).
    Invalid,
    /// It was made against another state: a version conflict, or a delete of something still
    /// referred to (FAILED_PRECONDITION).
    Conflict,
    /// The resource to delete does not exist (NOT_FOUND).
    NotFound,
}

/// A judged change.
#[derive(Debug)]
pub struct Plan {
    pub verdict: Verdict,
    pub changes: Vec<Change>,
    /// Every problem, located (file, document, line, field) where it can be.
    pub problems: Vec<ResourceError>,
    /// The catalog after the change, when accepted.
    pub catalog: Option<Catalog>,
}

impl Plan {
    /// What to write to the store: the new value of each changed resource, `None` for a delete.
    pub fn writes(&self) -> impl Iterator<Item = (&Key, Option<&Stored>)> {
        self.changes
            .iter()
            .filter(|c| {
                matches!(
                    c.outcome,
                    Outcome::Created | Outcome::Updated | Outcome::Deleted
                )
            })
            .map(|c| (&c.key, c.new.as_ref()))
    }

    fn refuse(verdict: Verdict, mut changes: Vec<Change>, problems: Vec<ResourceError>) -> Plan {
        for change in &mut changes {
            change.problems.extend(
                problems
                    .iter()
                    .filter(|p| p.resource.as_ref() == Some(&change.key))
                    .map(|p| {
                        if p.field.is_empty() {
                            p.problem.clone()
                        } else {
                            format!("field `{}`: {}", p.field, p.problem)
                        }
                    }),
            );
            if !change.problems.is_empty() {
                change.outcome = Outcome::Rejected;
            }
        }
        Plan {
            verdict,
            changes,
            problems,
            catalog: None,
        }
    }
}

/// A proposed apply: documents read from text, with any problems found while reading them.
#[derive(Debug)]
pub struct Proposal<'a> {
    pub documents: Vec<Document>,
    pub parse_errors: Vec<ResourceError>,
    /// `Kind/name` -> the version the caller believes is stored (0: must not exist yet).
    pub expected_versions: &'a BTreeMap<String, u64>,
    pub actor: &'a str,
    pub now: &'a str,
}

/// Every resource in the store.
#[derive(Debug, Clone, Default)]
pub struct ResourceState {
    resources: BTreeMap<Key, Stored>,
}

impl ResourceState {
    pub fn get(&self, key: &Key) -> Option<&Stored> {
        self.resources.get(key)
    }

    /// Resources of a kind (or all), by kind then name.
    pub fn list(&self, kind: Option<Kind>) -> impl Iterator<Item = &Stored> {
        self.resources
            .values()
            .filter(move |s| kind.is_none_or(|k| s.resource.kind() == k))
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// Sets or (with `None`) removes a resource, as the store's log says.
    pub fn set(&mut self, key: Key, value: Option<Stored>) {
        match value {
            Some(stored) => self.resources.insert(key, stored),
            None => self.resources.remove(&key),
        };
    }

    /// The catalog of this state.
    pub fn catalog(&self) -> Result<Catalog, CatalogError> {
        self.catalog_locating(&BTreeMap::new())
    }

    /// Builds the catalog; resources found in `located` keep their file and document in errors.
    fn catalog_locating(
        &self,
        located: &BTreeMap<Key, &Document>,
    ) -> Result<Catalog, CatalogError> {
        let mut earlier = BTreeMap::new();
        let documents = self
            .resources
            .iter()
            .map(|(key, stored)| {
                if let Some((_, older)) = stored.schemas.split_last()
                    && !older.is_empty()
                {
                    earlier.insert(key.name.clone(), older.to_vec());
                }
                match located.get(key) {
                    Some(doc) => Document {
                        resource: stored.resource.clone(),
                        ..(*doc).clone()
                    },
                    None => Document {
                        source: "stored".into(),
                        index: 0,
                        line: 0,
                        resource: stored.resource.clone(),
                    },
                }
            })
            .collect();
        Catalog::build_versioned(documents, &earlier)
    }

    /// Judges an apply: each document creates, updates or leaves unchanged one resource.
    pub fn plan_apply(&self, mut proposal: Proposal<'_>) -> Plan {
        let mut problems = std::mem::take(&mut proposal.parse_errors);
        let mut conflict = false;
        let mut changes: Vec<Change> = Vec::new();
        let mut located: BTreeMap<Key, &Document> = BTreeMap::new();
        for doc in &proposal.documents {
            let key = Key::of(&doc.resource);
            if let Some(first) = located.insert(key.clone(), doc) {
                problems.push(ResourceError::at(
                    doc,
                    "name",
                    format!(
                        "{key} appears twice; first in {}, document {}",
                        first.source, first.index
                    ),
                ));
                continue;
            }
            let old = self.get(&key).cloned();
            if let Some(problem) = self.version_problem(doc, &key, &proposal) {
                conflict = true;
                problems.push(problem);
            }
            changes.push(self.change(doc, key, old, &proposal, &mut problems));
        }
        // The catalog after the change is built even when problems are known already, so that
        // one answer lists every problem.
        match self.catalog_after(&changes, &located) {
            Ok(catalog) if problems.is_empty() => Plan {
                verdict: Verdict::Accepted,
                changes,
                problems,
                catalog: Some(catalog),
            },
            outcome => {
                if let Err(CatalogError(more)) = outcome {
                    problems.extend(more);
                }
                problems.sort_by(|a, b| (&a.source, a.index).cmp(&(&b.source, b.index)));
                let verdict = if conflict {
                    Verdict::Conflict
                } else {
                    Verdict::Invalid
                };
                Plan::refuse(verdict, changes, problems)
            }
        }
    }

    /// The problem when the proposal expects another version of `key` than the stored one.
    fn version_problem(
        &self,
        doc: &Document,
        key: &Key,
        proposal: &Proposal<'_>,
    ) -> Option<ResourceError> {
        let old = self.get(key);
        let expected = *proposal.expected_versions.get(&key.to_string())?;
        (expected != old.map_or(0, |o| o.version))
            .then(|| ResourceError::at(doc, "", version_conflict(expected, old)))
    }

    /// What applying `doc` does to its resource: unchanged, or its next stored version.
    fn change(
        &self,
        doc: &Document,
        key: Key,
        old: Option<Stored>,
        proposal: &Proposal<'_>,
        problems: &mut Vec<ResourceError>,
    ) -> Change {
        let (outcome, new) = match &old {
            Some(old) if old.resource == doc.resource => (Outcome::Unchanged, None),
            _ => {
                let new = Stored {
                    resource: doc.resource.clone(),
                    version: old.as_ref().map_or(0, |o| o.version) + 1,
                    changed_by: proposal.actor.to_owned(),
                    changed_at: proposal.now.to_owned(),
                    schemas: schema_versions(doc, old.as_ref(), problems),
                };
                let outcome = if old.is_some() {
                    Outcome::Updated
                } else {
                    Outcome::Created
                };
                (outcome, Some(new))
            }
        };
        Change {
            key,
            outcome,
            old,
            new,
            problems: Vec::new(),
        }
    }

    /// The catalog this state would serve after `changes`.
    fn catalog_after(
        &self,
        changes: &[Change],
        located: &BTreeMap<Key, &Document>,
    ) -> Result<Catalog, CatalogError> {
        let mut after = self.clone();
        for change in changes {
            if let Some(new) = &change.new {
                after.set(change.key.clone(), Some(new.clone()));
            }
        }
        after.catalog_locating(located)
    }

    /// Judges a delete. It is refused while another resource refers to the one deleted.
    pub fn plan_delete(&self, key: &Key, expected_version: Option<u64>) -> Plan {
        let problem = |text: String| ResourceError {
            source: "delete".into(),
            index: 0,
            line: 0,
            resource: Some(key.clone()),
            field: String::new(),
            problem: text,
        };
        let Some(old) = self.get(key).cloned() else {
            let change = Change {
                key: key.clone(),
                outcome: Outcome::Rejected,
                old: None,
                new: None,
                problems: Vec::new(),
            };
            let missing = problem(format!("there is no {key}"));
            return Plan::refuse(Verdict::NotFound, vec![change], vec![missing]);
        };
        let change = Change {
            key: key.clone(),
            outcome: Outcome::Deleted,
            old: Some(old),
            new: None,
            problems: Vec::new(),
        };
        if let Some(expected) = expected_version
            && expected != change.old.as_ref().map_or(0, |o| o.version)
        {
            let conflict = problem(version_conflict(expected, change.old.as_ref()));
            return Plan::refuse(Verdict::Conflict, vec![change], vec![conflict]);
        }
        let mut after = self.clone();
        after.set(key.clone(), None);
        match after.catalog() {
            Ok(catalog) => Plan {
                verdict: Verdict::Accepted,
                changes: vec![change],
                problems: Vec::new(),
                catalog: Some(catalog),
            },
            // Whatever no longer builds refers to the deleted resource.
            Err(CatalogError(broken)) => {
                let referrers = broken
                    .iter()
                    .map(|e| {
                        let referrer = e.resource.as_ref().map_or_else(
                            || "a resource".to_owned(),
                            |k| format!("{} \"{}\"", k.kind, k.name),
                        );
                        problem(format!(
                            "still referred to by {referrer}: field `{}`: {}",
                            e.field, e.problem
                        ))
                    })
                    .collect();
                Plan::refuse(Verdict::Conflict, vec![change], referrers)
            }
        }
    }
}

/// The schema versions of a record type after `doc` changes it: a changed schema is a new
/// version, checked for compatibility with the latest one. Other kinds keep no schemas.
fn schema_versions(
    doc: &Document,
    old: Option<&Stored>,
    problems: &mut Vec<ResourceError>,
) -> Vec<Value> {
    let Resource::RecordType(spec) = &doc.resource else {
        return Vec::new();
    };
    let mut schemas = old.map_or(Vec::new(), |o| o.schemas.clone());
    if let Some(latest) = schemas.last()
        && latest != &spec.schema
    {
        for reason in incompatibilities(latest, &spec.schema, spec.compatibility) {
            problems.push(ResourceError::at(
                doc,
                "schema",
                format!(
                    "incompatible with version {} (compatibility `{}`): {reason}",
                    schemas.len(),
                    compatibility_name(spec.compatibility)
                ),
            ));
        }
    }
    if schemas.last() != Some(&spec.schema) {
        schemas.push(spec.schema.clone());
    }
    schemas
}

fn version_conflict(expected: u64, stored: Option<&Stored>) -> String {
    match stored {
        Some(s) => format!(
            "version conflict: expected version {expected}, but version {} is stored (changed by `{}` at {}); get it again and reapply",
            s.version, s.changed_by, s.changed_at
        ),
        None => format!(
            "version conflict: expected version {expected}, but it does not exist (anymore)"
        ),
    }
}

fn compatibility_name(mode: crate::resource::Compatibility) -> &'static str {
    use crate::resource::Compatibility::*;
    match mode {
        Backward => "backward",
        Forward => "forward",
        Full => "full",
        None => "none",
    }
}

#[cfg(test)]
mod tests;
