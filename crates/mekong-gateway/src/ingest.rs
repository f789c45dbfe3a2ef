//! `mekong.v1.IngestService`: Publish, PublishBatch and PublishStream, all through one path per
//! record: the caller (authenticated by the layer), the idempotency window, the judge (off the async
//! workers, within a deadline), every copy written, the answer, the lineage event.
//!
//! An open PublishStream re-checks its caller whenever the catalog changes and ends (UNAUTHENTICATED
//! or PERMISSION_DENIED) once the key it was opened with is withdrawn or the role is gone; at
//! shutdown it stops taking records, answers those in flight and ends with UNAVAILABLE.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt, future::join_all};
use mekong_core::{
    AuditEvent, Catalog, PlacedCopy, RecordEvent, Role, Submission, UnevaluableCondition,
    is_traceparent, record_id_for,
};
use mekong_kafka::{Producer, View, WriteError, WrittenCopy};
use mekong_proto::v1::ingest_service_server::IngestService;
use mekong_proto::v1::{
    Placement, PublishBatchRequest, PublishBatchResponse, PublishRequest, PublishResponse,
    PublishResult, RecordError, publish_result,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status, Streaming};
use tonic_types::StatusExt;
use tracing::{Instrument, Level, Span, debug, info_span, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::GatewayConfig;
use crate::auth::{Caller, Need};
use crate::idempotency::{Claim, IdempotencyWindow, digest};
use crate::judge::{Judge, Unjudged};
use crate::metrics::{GatewayMetrics, KindLabels, RecordLabels, RejectedLabels, TopicLabels};
use crate::quota::{Quotas, StreamPlace, Throttled};
use crate::status::{PublishError, internal};

const PUBLISHER: Need = Need::Role(Role::Publisher);
/// How long a PublishStream that must end waits for the results of its records in flight.
const DRAIN: Duration = Duration::from_secs(1);

/// The ingest service. Cheap to clone: everything is shared.
#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Arc<ArcSwap<Catalog>>,
    /// Wakes when the catalog changes: open streams re-check their callers.
    changes: watch::Receiver<Arc<View>>,
    /// Turns true at shutdown.
    stopping: watch::Receiver<bool>,
    producer: Producer,
    config: GatewayConfig,
    window: IdempotencyWindow,
    judge: Judge,
    quotas: Quotas,
    metrics: GatewayMetrics,
    /// Where the streams' tasks run, so a shutdown can wait for them.
    tasks: TaskTracker,
}

impl Ingest {
    pub(crate) fn new(
        catalog: Arc<ArcSwap<Catalog>>,
        changes: watch::Receiver<Arc<View>>,
        stopping: watch::Receiver<bool>,
        producer: Producer,
        config: GatewayConfig,
        metrics: GatewayMetrics,
        tasks: TaskTracker,
    ) -> Ingest {
        Ingest {
            inner: Arc::new(Inner {
                catalog,
                changes,
                stopping,
                producer,
                config,
                window: IdempotencyWindow::new(config.idempotency),
                judge: Judge::new(config.judge),
                quotas: Quotas::new(config.quotas, metrics.clone()),
                metrics,
                tasks,
            }),
        }
    }

    /// Takes `records` records of `bytes` from the caller's quota, or refuses the call.
    fn take_quota(&self, caller: &Caller, records: usize, bytes: usize) -> Result<(), Status> {
        let catalog = self.inner.catalog.load();
        let client = caller.client_in(&catalog)?;
        let records = u32::try_from(records).unwrap_or(u32::MAX);
        self.inner
            .quotas
            .take(client, records, bytes)
            .map_err(Throttled::into_status)
    }

    /// Publishes one record, answering from the idempotency window when the key was seen.
    async fn publish_one(
        &self,
        caller: &Caller,
        request: PublishRequest,
    ) -> Result<PublishResponse, PublishError> {
        if request.idempotency_key.is_empty() {
            return self.write(caller, Arc::new(request), Uuid::now_v7()).await;
        }
        let id = record_id_for(&caller.client, &request.idempotency_key);
        let digest = digest(&request);
        let request = Arc::new(request);
        loop {
            match self.inner.window.claim(&caller.client, id, digest) {
                Claim::Duplicate(mut response) => {
                    response.duplicate = true;
                    return Ok(response);
                }
                Claim::Conflict => {
                    let error = PublishError::KeyReused;
                    let catalog = self.inner.catalog.load();
                    self.observe(caller, &request, &catalog, &Err(&error), Duration::ZERO);
                    return Err(error);
                }
                Claim::Wait(mut done) => {
                    // Ends when the first attempt ends, whichever way; then look again.
                    let _ = done.changed().await;
                }
                Claim::Owner(ticket) => {
                    let response = self.write(caller, Arc::clone(&request), id).await?;
                    ticket.succeed(&response);
                    return Ok(response);
                }
            }
        }
    }

    async fn write(
        &self,
        caller: &Caller,
        request: Arc<PublishRequest>,
        record_id: Uuid,
    ) -> Result<PublishResponse, PublishError> {
        // A span only when traces are exported or debug logs are on: it is a good part of the
        // cost of a record. Warnings carry their record's ids themselves.
        let span = if self.inner.config.record_spans || tracing::enabled!(Level::DEBUG) {
            info_span!("publish", client = %caller.client, record_type = %mekong_core::excerpt(&request.record_type, 64), record_id = %record_id)
        } else {
            Span::none()
        };
        // The publisher's trace, or one started here: it goes onto every copy, and exported spans
        // belong to it.
        let traceparent = match caller
            .traceparent
            .as_deref()
            .filter(|tp| is_traceparent(tp))
        {
            Some(tp) => tp.to_owned(),
            None => format!(
                "00-{}-{:016x}-01",
                record_id.simple(),
                Uuid::now_v7().as_u64_pair().1 | 1
            ),
        };
        if !span.is_disabled() {
            let parent = opentelemetry::global::get_text_map_propagator(|p| {
                p.extract(&Traceparent(&traceparent))
            });
            let _ = span.set_parent(parent);
        }
        // One snapshot judges the whole record and labels its metrics.
        let catalog = self.inner.catalog.load_full();
        let started = std::time::Instant::now();
        let result = self
            .judge_and_write(caller, &catalog, &request, record_id, traceparent)
            .instrument(span)
            .await;
        self.observe(
            caller,
            &request,
            &catalog,
            &result.as_ref().map_err(|(e, _)| e),
            started.elapsed(),
        );
        match result {
            Ok(response) => Ok(response),
            Err((error, key)) => {
                self.lineage_refused(caller, &request, &error, key, record_id);
                Err(error)
            }
        }
    }

    /// Judges the record by one catalog snapshot and writes its copies; the answer, or why not,
    /// with the record's key when it was read.
    async fn judge_and_write(
        &self,
        caller: &Caller,
        catalog: &Arc<Catalog>,
        request: &Arc<PublishRequest>,
        record_id: Uuid,
        traceparent: String,
    ) -> Result<PublishResponse, (PublishError, Option<String>)> {
        // Streams outlive catalog changes: the key and the role are checked for each record.
        caller
            .recheck(catalog, PUBLISHER)
            .map_err(|status| (PublishError::Caller(status), None))?;
        let limits = self.inner.config.limits;
        let (judged, client) = (Arc::clone(request), caller.client.clone());
        let snapshot = Arc::clone(catalog);
        let prepared = self
            .inner
            .judge
            .run(move |progress| {
                let client = snapshot.client(&client).expect("checked above, same snapshot");
                let submission = Submission {
                    record_type: &judged.record_type,
                    payload: &judged.payload,
                    key: Some(judged.key.as_str()),
                    attributes: &judged.attributes,
                    traceparent: Some(&traceparent),
                    schema_version: judged.schema_version,
                    record_id,
                    time: SystemTime::now(),
                    progress: Some(progress),
                };
                snapshot.prepare(client, submission, &limits)
            })
            .await
            .map_err(|unjudged| {
                let error = match unjudged {
                    Unjudged::Busy => PublishError::Busy,
                    Unjudged::Failed => {
                        let _ = internal("a judging thread failed", &"panic");
                        PublishError::Internal
                    }
                    Unjudged::TooSlow(stage) => {
                        let rule = stage.describe(catalog, &request.record_type);
                        self.inner.metrics.judge_overruns.inc();
                        warn!(%rule, limit = ?self.inner.judge.max_time(), client = %caller.client, %record_id, "judging a record took too long; refused");
                        PublishError::TooSlow {
                            limit: self.inner.judge.max_time(),
                            rule,
                        }
                    }
                };
                (error, None)
            })?
            .map_err(|r| {
                debug!(reason = %r, "record rejected");
                self.unevaluable(&r.unevaluable, caller, record_id);
                let key = r.key.clone();
                (PublishError::Rejected(r), key)
            })?;
        self.unevaluable(&prepared.unevaluable, caller, record_id);
        // The record's `record.accepted` event goes with its copies and is awaited with them: no
        // OK without the evidence of it. It names each copy by topic and digest; where they
        // landed is known only once Kafka answers, and follows in `record.placed`.
        let copies = prepared.copies.len();
        let accepted = RecordEvent {
            time: now(),
            record_id: record_id.to_string(),
            record_type: request.record_type.clone(),
            source: caller.client.clone(),
            authenticated: Some(caller.authenticated.clone()),
            key: prepared.key,
            schema_version: Some(prepared.schema_version),
            copies: prepared.copies.iter().map(PlacedCopy::unplaced).collect(),
            reason: None,
            message: None,
            violations: Vec::new(),
        };
        let mut records = prepared.copies;
        let event = AuditEvent::RecordAccepted(accepted);
        records.push(self.inner.producer.audit_record(&event));
        let AuditEvent::RecordAccepted(mut accepted) = event else {
            unreachable!("built as record.accepted above")
        };
        let placement = |index: usize, w: WrittenCopy| Placement {
            topic: w.topic,
            partition: w.partition,
            offset: w.offset,
            routes: records[index].routes.clone(),
        };
        match self.inner.producer.write(&records).await {
            Ok(mut written) => {
                written.truncate(copies);
                let placements: Vec<Placement> = written
                    .into_iter()
                    .enumerate()
                    .map(|(i, w)| placement(i, w))
                    .collect();
                for (copy, placed) in accepted.copies.iter_mut().zip(&placements) {
                    (copy.partition, copy.offset) = (placed.partition, placed.offset);
                }
                self.lineage(AuditEvent::RecordPlaced(accepted));
                debug!("record written");
                Ok(PublishResponse {
                    record_id: record_id.to_string(),
                    placements,
                    duplicate: false,
                })
            }
            Err(WriteError { error, landed }) => {
                warn!(error = %error, cause = ?std::error::Error::source(&error), landed = landed.len(), client = %caller.client, %record_id, "record not written");
                // A `record.accepted` that landed without all its copies is followed by the
                // `record.partial` the caller's error leads to.
                let landed = landed
                    .into_iter()
                    .filter(|(i, _)| *i < copies)
                    .map(|(i, w)| placement(i, w))
                    .collect();
                Err((PublishError::Produce { error, landed }, Some(accepted.key)))
            }
        }
    }

    /// Counts and logs the route conditions that could not be evaluated for a record.
    fn unevaluable(&self, conditions: &[UnevaluableCondition], caller: &Caller, record_id: Uuid) {
        for u in conditions {
            let total = self.inner.metrics.unevaluable.inc() + 1;
            warn!(route = %u.route, error = %u.error, total, client = %caller.client, %record_id, "route condition could not be evaluated; counted as no match");
        }
    }

    /// A refused record's event keeps no payload value: its violations are the masked ones. A write
    /// that landed partly is `record.partial`, with the copies that landed.
    fn lineage_refused(
        &self,
        caller: &Caller,
        request: &PublishRequest,
        error: &PublishError,
        key: Option<String>,
        record_id: Uuid,
    ) {
        if matches!(error, PublishError::Caller(_) | PublishError::KeyReused) {
            // Not a record of this caller's any more, or not a new one: nothing to trace.
            return;
        }
        let (message, violations) = error.explain();
        let landed = error.landed();
        let event = RecordEvent {
            time: now(),
            record_id: record_id.to_string(),
            record_type: mekong_core::excerpt(&request.record_type, 253).into_owned(),
            source: caller.client.clone(),
            authenticated: Some(caller.authenticated.clone()),
            key: key.unwrap_or_default(),
            schema_version: None,
            copies: placed(landed),
            reason: Some(error.reason().to_owned()),
            message: Some(message),
            violations,
        };
        self.lineage(if landed.is_empty() {
            AuditEvent::RecordRejected(event)
        } else {
            AuditEvent::RecordPartial(event)
        });
    }

    /// Writes a lineage event to the audit trail without waiting (`record.placed`, and refusals):
    /// losing one in a crash loses no data and no evidence of an accepted record.
    fn lineage(&self, event: AuditEvent) {
        if let Err(e) = self
            .inner
            .producer
            .enqueue(&self.inner.producer.audit_record(&event))
        {
            debug!(error = %e, "lineage event not written");
        }
    }

    fn observe(
        &self,
        caller: &Caller,
        request: &PublishRequest,
        catalog: &Catalog,
        result: &Result<&PublishResponse, &PublishError>,
        took: Duration,
    ) {
        let metrics = &self.inner.metrics;
        // Only names the catalog knows become label values: callers cannot grow the series.
        let record_type = match catalog.record_type(&request.record_type) {
            Some(_) => request.record_type.clone(),
            None => "unknown".to_owned(),
        };
        match result {
            Ok(response) => {
                metrics.accepted_all.inc();
                metrics
                    .accepted
                    .get_or_create(&RecordLabels {
                        record_type,
                        source: caller.client.clone(),
                    })
                    .inc();
                for placement in &response.placements {
                    metrics
                        .copies
                        .get_or_create(&TopicLabels {
                            topic: placement.topic.clone(),
                        })
                        .inc();
                }
                metrics.published("accepted", took);
            }
            Err(e) => {
                metrics.rejected_all.inc();
                *metrics
                    .refusals
                    .lock()
                    .expect("the refusals")
                    .entry((
                        record_type.clone(),
                        caller.client.clone(),
                        e.why().to_owned(),
                    ))
                    .or_default() += 1;
                metrics
                    .rejected
                    .get_or_create(&RejectedLabels {
                        record_type,
                        source: caller.client.clone(),
                        reason: e.reason().to_owned(),
                    })
                    .inc();
                if let Some(kind) = e.produce_kind() {
                    metrics
                        .produce_errors
                        .get_or_create(&KindLabels { kind })
                        .inc();
                    metrics.published("failed", took);
                } else {
                    metrics.published("rejected", took);
                }
            }
        }
    }

    async fn publish_result(&self, caller: &Caller, request: PublishRequest) -> PublishResult {
        let request_id = request.request_id.clone();
        let outcome = match self.publish_one(caller, request).await {
            Ok(response) => publish_result::Outcome::Published(response),
            Err(e) => publish_result::Outcome::Error(e.into_record_error()),
        };
        PublishResult {
            request_id,
            outcome: Some(outcome),
        }
    }

    /// Runs one PublishStream: records in, results out, until the input ends, the caller loses its
    /// right to publish, or the hub stops.
    async fn stream(
        self,
        caller: Caller,
        mut inbound: Streaming<PublishRequest>,
        out: mpsc::Sender<Result<PublishResult, Status>>,
        _place: StreamPlace,
    ) {
        let caller = Arc::new(caller);
        // A record over the caller's quota waits here, and no more are read until it may go:
        // HTTP/2 flow control holds the client back, and it never sees an error.
        let mut held: Option<(PublishRequest, Pin<Box<tokio::time::Sleep>>)> = None;
        let in_flight = self.inner.config.stream_in_flight.max(1);
        let mut changes = self.inner.changes.clone();
        let mut stopping = self.inner.stopping.clone();
        let mut running = FuturesUnordered::new();
        let mut open = true;
        let mut ending: Option<Status> = None;
        while ending.is_none() && (open || held.is_some() || !running.is_empty()) {
            // A record to run: one read from the stream, or the held one whose wait is over.
            let next = tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        ending = Some(Status::unavailable("the hub is shutting down; reconnect to go on"));
                    } else if let Err(status) = caller.recheck(&self.inner.catalog.load(), PUBLISHER) {
                        ending = Some(status);
                    }
                    None
                }
                () = async { let _ = stopping.wait_for(|s| *s).await; } => {
                    ending = Some(Status::unavailable("the hub is shutting down; reconnect to go on"));
                    None
                }
                Some(done) = running.next(), if !running.is_empty() => {
                    let result = match done {
                        Ok(result) => Ok(result),
                        Err(e) => Err(internal("a record task failed", &e)),
                    };
                    if out.send(result).await.is_err() {
                        return;
                    }
                    None
                }
                () = async { held.as_mut().expect("held").1.as_mut().await }, if held.is_some() => {
                    held.take().map(|(record, _)| record)
                }
                item = inbound.message(), if open && held.is_none() && running.len() < in_flight => match item {
                    Ok(Some(record)) => Some(record),
                    Ok(None) => {
                        open = false;
                        None
                    }
                    Err(status) => {
                        let _ = out.send(Err(status)).await;
                        return;
                    }
                },
            };
            let Some(record) = next else {
                continue;
            };
            match self.admit(&caller, record) {
                // Each record runs as its own task, so records of one stream are judged and
                // written concurrently; results go out as they complete.
                Admitted::Go(record) => running.push(self.spawn_record(&caller, record)),
                Admitted::Wait(record, wait) => {
                    held = Some((record, Box::pin(tokio::time::sleep(wait))));
                }
                Admitted::Refused(result) => {
                    if out.send(Ok(result)).await.is_err() {
                        return;
                    }
                }
            }
        }
        // Answers for the records already taken, then why the stream ends.
        let drained = tokio::time::timeout(DRAIN, async {
            while let Some(done) = running.next().await {
                if let Ok(result) = done
                    && out.send(Ok(result)).await.is_err()
                {
                    return;
                }
            }
        });
        let _ = drained.await;
        if let Some(status) = ending {
            debug!(code = ?status.code(), "publish stream ended by the hub");
            let _ = out.send(Err(status)).await;
        }
    }
}

/// What the quota says of a stream's next record.
enum Admitted {
    Go(PublishRequest),
    /// Over quota: held this long, then asked again.
    Wait(PublishRequest, Duration),
    /// It can never fit the quota (larger than its burst), or the caller is no longer known.
    Refused(PublishResult),
}

impl Ingest {
    fn admit(&self, caller: &Caller, record: PublishRequest) -> Admitted {
        let catalog = self.inner.catalog.load();
        let refused = |record: &PublishRequest, status: Status| {
            Admitted::Refused(PublishResult {
                request_id: record.request_id.clone(),
                outcome: Some(publish_result::Outcome::Error(RecordError {
                    code: status.code() as i32,
                    message: status.message().to_owned(),
                    reason: status
                        .get_details_error_info()
                        .map(|info| info.reason)
                        .unwrap_or_default(),
                    ..Default::default()
                })),
            })
        };
        let client = match caller.client_in(&catalog) {
            Ok(client) => client,
            Err(status) => return refused(&record, status),
        };
        match self.inner.quotas.take(client, 1, record.payload.len()) {
            Ok(()) => Admitted::Go(record),
            Err(Throttled {
                retry_after: Some(wait),
                ..
            }) => Admitted::Wait(record, wait),
            Err(never) => refused(&record, never.into_status()),
        }
    }

    fn spawn_record(
        &self,
        caller: &Arc<Caller>,
        record: PublishRequest,
    ) -> tokio::task::JoinHandle<PublishResult> {
        let (this, caller) = (self.clone(), Arc::clone(caller));
        tokio::spawn(async move { this.publish_result(&caller, record).await })
    }
}

fn placed(placements: &[Placement]) -> Vec<PlacedCopy> {
    placements
        .iter()
        .map(|p| PlacedCopy {
            topic: p.topic.clone(),
            partition: p.partition,
            offset: p.offset,
            routes: p.routes.clone(),
            sha256: None,
        })
        .collect()
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<PublishResult, Status>> + Send>>;

#[tonic::async_trait]
impl IngestService for Ingest {
    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        self.take_quota(&caller, 1, request.payload.len())?;
        self.publish_one(&caller, request)
            .await
            .map(Response::new)
            .map_err(PublishError::into_status)
    }

    async fn publish_batch(
        &self,
        request: Request<PublishBatchRequest>,
    ) -> Result<Response<PublishBatchResponse>, Status> {
        let caller = Caller::of(&request)?;
        let records = request.into_inner().records;
        let config = &self.inner.config;
        if records.len() > config.max_batch_records {
            return Err(batch_too_large(format!(
                "{} records; the limit is {} per batch",
                records.len(),
                config.max_batch_records
            )));
        }
        let bytes: usize = records.iter().map(|r| r.payload.len()).sum();
        if bytes > config.max_batch_bytes {
            return Err(batch_too_large(format!(
                "{bytes} payload bytes; the limit is {} per batch",
                config.max_batch_bytes
            )));
        }
        self.take_quota(&caller, records.len(), bytes)?;
        // All records at once: the producer batches them into few Kafka requests.
        let results = join_all(records.into_iter().map(|r| self.publish_result(&caller, r))).await;
        Ok(Response::new(PublishBatchResponse { results }))
    }

    type PublishStreamStream = ResultStream;

    async fn publish_stream(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<ResultStream>, Status> {
        let caller = Caller::of(&request)?;
        let place = {
            let catalog = self.inner.catalog.load();
            self.inner.quotas.open_stream(caller.client_in(&catalog)?)?
        };
        let (tx, rx) = mpsc::channel(64);
        self.inner
            .tasks
            .spawn(self.clone().stream(caller, request.into_inner(), tx, place));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn batch_too_large(what: String) -> Status {
    let details = tonic_types::ErrorDetails::with_error_info(
        crate::status::reason::BATCH_TOO_LARGE,
        crate::status::reason::DOMAIN,
        std::collections::HashMap::new(),
    );
    Status::with_error_details(
        tonic::Code::ResourceExhausted,
        format!("batch too large: {what}; split it into smaller batches"),
        details,
    )
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// The caller's `traceparent`, as OpenTelemetry's propagator reads it.
struct Traceparent<'a>(&'a str);

impl opentelemetry::propagation::Extractor for Traceparent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == mekong_core::cloudevents::TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![mekong_core::cloudevents::TRACEPARENT]
    }
}
