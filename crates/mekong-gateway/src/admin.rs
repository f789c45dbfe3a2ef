//! `mekong.v1.AdminService`: resources changed through the store while the hub runs, and records
//! tried out against the catalog. Every caller needs the `admin` role.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use mekong_control::{Applied, Changes, ControlError, Replay, TraceQuery};
use mekong_core::{
    Catalog, Key, Kind, Limits, Outcome, Plan, ResourceError, RouteVerdict, Stored, Submission,
    Verdict,
};
use mekong_kafka::{Lineage, Producer, StoreError};
use mekong_proto::v1 as pb;
use mekong_proto::v1::admin_service_server::AdminService;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use uuid::Uuid;

use crate::auth::Caller;
use crate::status::control_status;

/// What the admin service works with.
pub struct Admin {
    catalog: Arc<ArcSwap<Catalog>>,
    changes: Changes,
    limits: Limits,
    /// Writes replayed dead letters.
    producer: Producer,
    lineage: Option<Arc<Lineage>>,
}

impl Admin {
    pub fn new(
        catalog: Arc<ArcSwap<Catalog>>,
        changes: Changes,
        limits: Limits,
        producer: Producer,
        lineage: Option<Arc<Lineage>>,
    ) -> Admin {
        Admin {
            catalog,
            changes,
            limits,
            producer,
            lineage,
        }
    }

    /// The name of an adapter the catalog has.
    fn adapter(&self, name: &str) -> Result<(), Status> {
        match self.catalog.load().adapter(name) {
            Some(_) => Ok(()),
            None => Err(Status::not_found(format!("there is no adapter `{name}`"))),
        }
    }

    /// The calling client: the layer admitted it as an admin.
    /// The admin calling, as the audit trail names them.
    fn admin<T>(&self, request: &Request<T>) -> Result<mekong_core::Actor, Status> {
        Caller::of(request).map(|caller| mekong_core::Actor {
            name: caller.client,
            authenticated: Some(caller.authenticated),
        })
    }
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn apply(
        &self,
        request: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyResponse>, Status> {
        let actor = self.admin(&request)?;
        let request = request.into_inner();
        let sources: Vec<(String, String)> = request
            .sources
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let name = if s.name.is_empty() {
                    format!("source {}", i + 1)
                } else {
                    s.name
                };
                (name, s.text)
            })
            .collect();
        if sources.iter().all(|(_, text)| text.trim().is_empty()) {
            return Err(Status::invalid_argument(
                "nothing to apply: send at least one source with resource documents",
            ));
        }
        let expected: BTreeMap<String, u64> = request.expected_versions.into_iter().collect();
        for key in expected.keys() {
            if Key::parse(key).is_none() {
                return Err(Status::invalid_argument(format!(
                    "expected_versions: `{key}` is not `Kind/name` (kinds: RecordType, Route, Client, Adapter)"
                )));
            }
        }
        let outcome = self
            .changes
            .apply(&sources, &expected, &actor, request.dry_run)
            .await
            .map_err(store_status)?;
        refused(&outcome.plan)?;
        Ok(Response::new(pb::ApplyResponse {
            results: results(&outcome),
            applied: outcome.applied,
        }))
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::StoredResource>, Status> {
        self.admin(&request)?;
        let request = request.into_inner();
        let key = Key::new(kind(&request.kind)?, request.name);
        let view = self.changes.store.sync().await.map_err(store_status)?;
        match view.state.get(&key) {
            Some(stored) => Ok(Response::new(stored_resource(stored))),
            None => Err(Status::not_found(format!("there is no {key}"))),
        }
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        self.admin(&request)?;
        let request = request.into_inner();
        let kind = match request.kind.as_str() {
            "" => None,
            text => Some(kind(text)?),
        };
        let view = self.changes.store.sync().await.map_err(store_status)?;
        Ok(Response::new(pb::ListResponse {
            resources: view.state.list(kind).map(stored_resource).collect(),
        }))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let actor = self.admin(&request)?;
        let request = request.into_inner();
        let key = Key::new(kind(&request.kind)?, request.name);
        let expected = (request.expected_version > 0).then_some(request.expected_version);
        let outcome = self
            .changes
            .delete(&key, expected, &actor, request.dry_run)
            .await
            .map_err(store_status)?;
        refused(&outcome.plan)?;
        let version = outcome.plan.changes[0]
            .old
            .as_ref()
            .map_or(0, |o| o.version);
        Ok(Response::new(pb::DeleteResponse {
            version,
            applied: outcome.applied,
        }))
    }

    async fn test_record(
        &self,
        request: Request<pb::TestRecordRequest>,
    ) -> Result<Response<pb::TestRecordResponse>, Status> {
        self.admin(&request)?;
        let request = request.into_inner();
        let catalog = self.catalog.load_full();
        let Some(client) = catalog.client(&request.client) else {
            return Err(Status::not_found(format!(
                "there is no client `{}` to act as",
                request.client
            )));
        };
        let attributes = HashMap::new();
        let payload = bytes::Bytes::from(request.payload);
        let submission = Submission {
            record_type: &request.record_type,
            payload: &payload,
            key: Some(request.key.as_str()),
            attributes: &attributes,
            traceparent: None,
            schema_version: request.schema_version,
            record_id: Uuid::now_v7(),
            time: SystemTime::now(),
            progress: None,
        };
        let test = catalog.test_record(client, submission, &self.limits);
        let routes = test
            .routes
            .iter()
            .map(|(route, verdict)| pb::RouteDecision {
                route: route.clone(),
                matched: *verdict == RouteVerdict::Matched,
                reason: match verdict {
                    RouteVerdict::Matched => String::new(),
                    RouteVerdict::OtherType => "the record type is not in match.types".into(),
                    RouteVerdict::OtherSource => {
                        format!("client `{}` is not in match.sources", request.client)
                    }
                    RouteVerdict::ConditionFalse => "match.when is false for this record".into(),
                    RouteVerdict::Unevaluable(e) => {
                        format!("match.when could not be evaluated (counts as no match): {e}")
                    }
                },
            })
            .collect();
        let response = match test.outcome {
            Ok(prepared) => pb::TestRecordResponse {
                accepted: true,
                schema_version: prepared.schema_version,
                routes,
                copies: prepared
                    .copies
                    .into_iter()
                    .map(|c| pb::TestCopy {
                        topic: c.topic,
                        key: c.key,
                        headers: c.headers.into_iter().collect(),
                        payload: c.value.to_vec(),
                        routes: c.routes,
                    })
                    .collect(),
                ..Default::default()
            },
            Err(rejection) => pb::TestRecordResponse {
                accepted: false,
                rejection_code: crate::status::code_name(crate::status::code_of(rejection.kind))
                    .to_uppercase(),
                rejection_message: rejection.message,
                violations: rejection
                    .violations
                    .into_iter()
                    .map(|v| pb::FieldProblem {
                        field: v.field,
                        description: v.description,
                    })
                    .collect(),
                routes,
                ..Default::default()
            },
        };
        Ok(Response::new(response))
    }

    async fn list_dead_letters(
        &self,
        request: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        self.admin(&request)?;
        let request = request.into_inner();
        self.adapter(&request.adapter)?;
        let from = match request.page_token.as_str() {
            "" => 0,
            token => token.parse::<i64>().ok().filter(|o| *o >= 0).ok_or_else(|| {
                Status::invalid_argument(
                    "page_token is not one this service gave out: send the last answer's next_page_token",
                )
            })?,
        };
        let listing = mekong_control::deadletters::list(
            &self.changes.backbone,
            &request.adapter,
            from,
            request.page_size as usize,
        )
        .await
        .map_err(control_status)?;
        Ok(Response::new(pb::ListDeadLettersResponse {
            dead_letters: listing
                .letters
                .into_iter()
                .map(|l| pb::DeadLetter {
                    offset: l.offset,
                    record_id: l.record_id,
                    record_type: l.record_type,
                    key: l.key,
                    source: l.info.source,
                    attempts: l.info.attempts,
                    last_status: l.info.status.map(|s| s.to_string()).unwrap_or_default(),
                    error: l.info.error,
                    time: l.info.time,
                    replayed: l.replayed,
                })
                .collect(),
            next_page_token: listing.next.map(|n| n.to_string()).unwrap_or_default(),
        }))
    }

    async fn replay_dead_letters(
        &self,
        request: Request<pb::ReplayDeadLettersRequest>,
    ) -> Result<Response<pb::ReplayDeadLettersResponse>, Status> {
        let actor = self.admin(&request)?;
        let request = request.into_inner();
        self.adapter(&request.adapter)?;
        // Exactly one of: some record ids, or all.
        let which = match (request.all, request.record_ids.is_empty()) {
            (true, true) => Replay::All,
            (false, false) => Replay::Records(request.record_ids),
            _ => {
                return Err(Status::invalid_argument(
                    "say which dead letters to replay: record ids, or all",
                ));
            }
        };
        let replayed = mekong_control::deadletters::replay(
            &self.changes.backbone,
            &self.producer,
            &request.adapter,
            &which,
            &actor.name,
        )
        .await
        .map_err(control_status)?;
        Ok(Response::new(pb::ReplayDeadLettersResponse { replayed }))
    }

    async fn trace(
        &self,
        request: Request<pb::TraceRequest>,
    ) -> Result<Response<pb::TraceResponse>, Status> {
        self.admin(&request)?;
        let request = request.into_inner();
        let Some(lineage) = &self.lineage else {
            return Err(Status::failed_precondition(
                "this instance keeps no lineage index: ask one started with --lineage-dir",
            ));
        };
        let query = match (request.record_id.is_empty(), request.key.is_empty()) {
            (false, true) => TraceQuery::RecordId(request.record_id),
            (true, false) => TraceQuery::Key(request.key),
            _ => {
                return Err(Status::invalid_argument(
                    "give either a record id or a key, not both or neither",
                ));
            }
        };
        let records = mekong_control::trace(lineage, &query)
            .await
            .map_err(control_status)?
            .into_iter()
            .map(|r| pb::TracedRecord {
                record_id: r.record_id,
                events: r.events.iter().map(|e| e.to_string()).collect(),
            })
            .collect();
        Ok(Response::new(pb::TraceResponse { records }))
    }

    async fn set_adapter_paused(
        &self,
        request: Request<pb::SetAdapterPausedRequest>,
    ) -> Result<Response<pb::SetAdapterPausedResponse>, Status> {
        let actor = self.admin(&request)?;
        let request = request.into_inner();
        let outcome = self
            .changes
            .set_adapter_paused(&request.name, request.paused, &actor)
            .await
            .map_err(store_status)?
            .ok_or_else(|| Status::not_found(format!("there is no adapter `{}`", request.name)))?;
        refused(&outcome.plan)?;
        let key = Key::new(Kind::Adapter, request.name);
        Ok(Response::new(pb::SetAdapterPausedResponse {
            changed: outcome.applied,
            version: outcome.view.state.get(&key).map_or(0, |s| s.version),
        }))
    }

    async fn list_overdue(
        &self,
        request: Request<pb::ListOverdueRequest>,
    ) -> Result<Response<pb::ListOverdueResponse>, Status> {
        self.admin(&request)?;
        let request = request.into_inner();
        let limit = match request.limit {
            0 => 1000,
            n => n.min(10_000),
        } as usize;
        let query = mekong_deadlines::OverdueQuery {
            deadline: Some(request.deadline).filter(|d| !d.is_empty()),
            unit: Some(request.unit).filter(|u| !u.is_empty()),
            older_than: Some(std::time::Duration::from_secs(request.older_than_seconds)),
        };
        let (found, now) = mekong_control::deadlines::overdue(
            &self.changes.backbone,
            self.catalog.load_full(),
            query,
        )
        .await
        .map_err(control_status)?;
        Ok(Response::new(pb::ListOverdueResponse {
            total: found.len() as u64,
            overdue: found
                .into_iter()
                .take(limit)
                .map(|o| pb::OverdueDeadline {
                    deadline: o.deadline,
                    due: mekong_core::times::utc_text(o.open.due_ms),
                    overdue_seconds: ((now - o.open.due_ms).max(0) / 1000) as u64,
                    key: o.open.key,
                    unit: o.open.unit.unwrap_or_default(),
                    opened_by: o.open.opened_by,
                    extended_by: o.open.extended_by.unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn proof(
        &self,
        request: Request<pb::ProofRequest>,
    ) -> Result<Response<pb::ProofResponse>, Status> {
        self.admin(&request)?;
        let request = request.into_inner();
        let Some(lineage) = &self.lineage else {
            return Err(Status::failed_precondition(
                "this instance keeps no lineage index: ask one started with --lineage-dir",
            ));
        };
        if request.record_id.is_empty() {
            return Err(Status::invalid_argument("give the record id to prove"));
        }
        let (bundle, uncovered) =
            mekong_control::proof(&self.changes.backbone, lineage, &request.record_id)
                .await
                .map_err(control_status)?;
        Ok(Response::new(pb::ProofResponse {
            bundle: serde_json::to_string_pretty(&bundle).expect("bundles serialise"),
            uncovered: uncovered as u32,
        }))
    }
}

fn kind(text: &str) -> Result<Kind, Status> {
    Kind::parse(text).ok_or_else(|| {
        Status::invalid_argument(format!(
            "unknown kind `{text}`; expected one of RecordType, Route, Client, Adapter, Deadline"
        ))
    })
}

/// Problems of a refused change told in its status, and how much of each.
const MAX_PROBLEMS_TOLD: usize = 10;
const MAX_PROBLEM_CHARS: usize = 300;

/// A refused change as a status: every problem in the message, one per line, and as field
/// violations (`Kind/name:field`).
fn refused(plan: &Plan) -> Result<(), Status> {
    let code = match plan.verdict {
        Verdict::Accepted => return Ok(()),
        Verdict::Invalid => Code::InvalidArgument,
        Verdict::Conflict => Code::FailedPrecondition,
        Verdict::NotFound => Code::NotFound,
    };
    // The status travels in HTTP/2 trailers, which gRPC clients cap at 16 KiB: the first problems
    // are told in full, the count of the rest.
    let n = plan.problems.len();
    let mut message = format!(
        "rejected, nothing changed: {n} problem{}",
        if n == 1 { "" } else { "s" }
    );
    let told: Vec<String> = plan
        .problems
        .iter()
        .take(MAX_PROBLEMS_TOLD)
        .map(|p| mekong_core::excerpt(&p.to_string(), MAX_PROBLEM_CHARS).into_owned())
        .collect();
    for p in &told {
        message.push_str(&format!("\n  {p}"));
    }
    if n > told.len() {
        message.push_str(&format!(
            "\n  ... and {} more; fix these and apply again to see them",
            n - told.len()
        ));
    }
    let violations: Vec<_> = plan
        .problems
        .iter()
        .zip(told)
        .map(|(p, text)| tonic_types::FieldViolation::new(violation_field(p), text))
        .collect();
    let mut details = ErrorDetails::new();
    details.set_bad_request(violations);
    Err(Status::with_error_details(code, message, details))
}

fn violation_field(p: &ResourceError) -> String {
    let resource = p
        .resource
        .as_ref()
        .map_or_else(|| p.source.clone(), ToString::to_string);
    if p.field.is_empty() {
        resource
    } else {
        format!("{resource}:{}", p.field)
    }
}

fn results(outcome: &Applied) -> Vec<pb::ResourceResult> {
    outcome
        .plan
        .changes
        .iter()
        .map(|c| {
            let now = c.new.as_ref().or(c.old.as_ref());
            pb::ResourceResult {
                kind: c.key.kind.to_string(),
                name: c.key.name.clone(),
                outcome: c.outcome.as_str().into(),
                version: now.map_or(0, |s| s.version),
                schema_version: now.map_or(0, Stored::schema_version),
                before: c.old.as_ref().map_or(String::new(), spec_json),
                after: match c.outcome {
                    Outcome::Deleted => None,
                    Outcome::Unchanged => c.old.as_ref(),
                    _ => c.new.as_ref(),
                }
                .map_or(String::new(), spec_json),
            }
        })
        .collect()
}

fn spec_json(stored: &Stored) -> String {
    stored.resource.to_value().to_string()
}

fn stored_resource(stored: &Stored) -> pb::StoredResource {
    pb::StoredResource {
        kind: stored.resource.kind().to_string(),
        name: stored.resource.name().to_owned(),
        version: stored.version,
        changed_by: stored.changed_by.clone(),
        changed_at: stored.changed_at.clone(),
        spec: spec_json(stored),
        schema_version: stored.schema_version(),
        schemas: stored.schemas.iter().map(|s| s.to_string()).collect(),
    }
}

pub(crate) fn store_status(e: StoreError) -> Status {
    control_status(ControlError::Store(e))
}
