//! `mekong.v1.IngestService`: Publish, PublishBatch and PublishStream, all through one path per
//! record — authenticate, judge by the current catalog, write every copy, answer.

use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use futures::{Stream, StreamExt, future::join_all};
use mekong_core::{
    AUDIT_TOPIC, Catalog, Copy, PlacedCopy, RecordEvent, Submission, audit_headers, is_traceparent,
    record_id_for,
};
use mekong_kafka::Producer;
use mekong_proto::v1::ingest_service_server::IngestService;
use mekong_proto::v1::{
    Placement, PublishBatchRequest, PublishBatchResponse, PublishRequest, PublishResponse,
    PublishResult, publish_result,
};
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, debug, info_span, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::GatewayConfig;
use crate::auth::{authenticate, traceparent};
use crate::idempotency::{Claim, IdempotencyWindow};
use crate::metrics::{GatewayMetrics, KindLabels, RecordLabels, RejectedLabels, TopicLabels};
use crate::status::PublishError;

/// The ingest service. Cheap to clone: everything is shared.
#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Arc<ArcSwap<Catalog>>,
    producer: Producer,
    config: GatewayConfig,
    window: IdempotencyWindow,
    metrics: GatewayMetrics,
}

impl Ingest {
    pub fn new(
        catalog: Arc<ArcSwap<Catalog>>,
        producer: Producer,
        config: GatewayConfig,
        metrics: GatewayMetrics,
    ) -> Ingest {
        let window = IdempotencyWindow::new(config.idempotency);
        Ingest {
            inner: Arc::new(Inner {
                catalog,
                producer,
                config,
                window,
                metrics,
            }),
        }
    }

    /// How many route conditions could not be evaluated since start (each counted as no match).
    pub fn unevaluable_conditions(&self) -> u64 {
        self.inner.metrics.unevaluable.get()
    }

    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let client = authenticate(&self.inner.catalog.load(), request.metadata())?;
        Ok(Caller {
            client,
            traceparent: traceparent(request.metadata()),
        })
    }

    /// Publishes one record, answering from the idempotency window when the key was seen.
    async fn publish_one(
        &self,
        caller: &Caller,
        request: PublishRequest,
    ) -> Result<PublishResponse, PublishError> {
        if request.idempotency_key.is_empty() {
            return self.write(caller, &request, Uuid::now_v7()).await;
        }
        let id = record_id_for(&caller.client, &request.idempotency_key);
        loop {
            match self.inner.window.claim(id) {
                Claim::Duplicate(mut response) => {
                    response.duplicate = true;
                    return Ok(response);
                }
                Claim::Wait(mut done) => {
                    // Ends when the first attempt ends, whichever way; then look again.
                    let _ = done.changed().await;
                }
                Claim::Owner(ticket) => {
                    let response = self.write(caller, &request, id).await?;
                    ticket.succeed(&response);
                    return Ok(response);
                }
            }
        }
    }

    async fn write(
        &self,
        caller: &Caller,
        request: &PublishRequest,
        record_id: Uuid,
    ) -> Result<PublishResponse, PublishError> {
        let span = info_span!("publish", client = %caller.client, record_type = %request.record_type, record_id = %record_id);
        // The publisher's trace, or one started here: it goes onto every copy, and exported spans
        // (--otlp-endpoint) belong to it.
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
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&Traceparent(&traceparent))
        });
        let _ = span.set_parent(parent);
        let started = std::time::Instant::now();
        let result = async {
            // One snapshot judges the whole record.
            let catalog = self.inner.catalog.load_full();
            let client = catalog
                .client(&caller.client)
                .ok_or_else(|| PublishError::Unauthenticated(format!("client `{}` no longer exists", caller.client)))?;
            let submission = Submission {
                record_type: &request.record_type,
                payload: &request.payload,
                key: Some(request.key.as_str()),
                attributes: &request.attributes,
                traceparent: Some(&traceparent),
                schema_version: request.schema_version,
                record_id,
                time: SystemTime::now(),
            };
            let prepared = catalog.prepare(client, submission, &self.inner.config.limits).map_err(|r| {
                debug!(reason = %r, "record rejected");
                PublishError::Rejected(r)
            })?;
            for u in &prepared.unevaluable {
                let total = self.inner.metrics.unevaluable.inc() + 1;
                warn!(route = %u.route, error = %u.error, total, "route condition could not be evaluated; counted as no match");
            }
            let written = self.inner.producer.write(&prepared.copies).await.map_err(|e| {
                warn!(error = %e, "record not written");
                PublishError::Produce(e)
            })?;
            let placements: Vec<Placement> = written
                .into_iter()
                .zip(prepared.copies.iter())
                .map(|(w, copy)| Placement { topic: w.topic, partition: w.partition, offset: w.offset, routes: copy.routes.clone() })
                .collect();
            self.lineage(RecordEvent {
                event: "record.accepted",
                time: now(),
                record_id: record_id.to_string(),
                record_type: request.record_type.clone(),
                source: caller.client.clone(),
                key: prepared.copies.first().map(|c| c.key.clone()).unwrap_or_default(),
                schema_version: Some(prepared.schema_version),
                copies: placements
                    .iter()
                    .map(|p| PlacedCopy { topic: p.topic.clone(), partition: p.partition, offset: p.offset, routes: p.routes.clone() })
                    .collect(),
                reason: None,
                message: None,
                violations: Vec::new(),
            });
            debug!("record written");
            Ok(PublishResponse { record_id: record_id.to_string(), placements, duplicate: false })
        }
        .instrument(span)
        .await;
        self.observe(caller, request, &result, started.elapsed());
        if let Err(e) = &result {
            let catalog = self.inner.catalog.load();
            let key = if request.key.is_empty() {
                catalog
                    .key_of(&request.record_type, &request.payload)
                    .unwrap_or_default()
            } else {
                request.key.clone()
            };
            let (message, violations) = e.explain();
            self.lineage(RecordEvent {
                event: "record.rejected",
                time: now(),
                record_id: record_id.to_string(),
                record_type: request.record_type.clone(),
                source: caller.client.clone(),
                key,
                schema_version: None,
                copies: Vec::new(),
                reason: Some(e.reason()),
                message: Some(message),
                violations,
            });
        }
        result
    }

    /// Writes a lineage event to the audit trail without waiting: the record's answer does not
    /// wait for it, and losing one in a crash loses no data.
    fn lineage(&self, event: RecordEvent) {
        let copy = Copy {
            topic: AUDIT_TOPIC.to_owned(),
            key: event.record_id.clone(),
            headers: audit_headers(Uuid::now_v7(), event.event, &event.time),
            value: std::borrow::Cow::Owned(event.to_json()),
            routes: Vec::new(),
        };
        if let Err(e) = self.inner.producer.enqueue(&copy) {
            debug!(error = %e, "lineage event not written");
        }
    }

    fn observe(
        &self,
        caller: &Caller,
        request: &PublishRequest,
        result: &Result<PublishResponse, PublishError>,
        took: std::time::Duration,
    ) {
        let metrics = &self.inner.metrics;
        // Only names the catalog knows become label values: callers cannot grow the series.
        let record_type = match self.inner.catalog.load().record_type(&request.record_type) {
            Some(_) => request.record_type.clone(),
            None => "unknown".to_owned(),
        };
        match result {
            Ok(response) => {
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
                metrics
                    .rejected
                    .get_or_create(&RejectedLabels {
                        record_type,
                        source: caller.client.clone(),
                        reason: e.reason(),
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
}

/// The authenticated caller of one call.
struct Caller {
    client: String,
    traceparent: Option<String>,
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<PublishResult, Status>> + Send>>;

#[tonic::async_trait]
impl IngestService for Ingest {
    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let caller = self.caller(&request)?;
        self.publish_one(&caller, request.into_inner())
            .await
            .map(Response::new)
            .map_err(PublishError::into_status)
    }

    async fn publish_batch(
        &self,
        request: Request<PublishBatchRequest>,
    ) -> Result<Response<PublishBatchResponse>, Status> {
        let caller = self.caller(&request)?;
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
        // All records at once: the producer batches them into few Kafka requests.
        let results = join_all(records.into_iter().map(|r| self.publish_result(&caller, r))).await;
        Ok(Response::new(PublishBatchResponse { results }))
    }

    type PublishStreamStream = ResultStream;

    async fn publish_stream(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<ResultStream>, Status> {
        let caller = Arc::new(self.caller(&request)?);
        let this = self.clone();
        let in_flight = self.inner.config.stream_in_flight;
        // Each record runs as its own task (so parsing and validation use every core), at most
        // `in_flight` at once; results go out as they complete, correlated by request_id.
        let results = request
            .into_inner()
            .map(move |item| {
                let (this, caller) = (this.clone(), Arc::clone(&caller));
                tokio::spawn(async move {
                    match item {
                        Ok(record) => Ok(this.publish_result(&caller, record).await),
                        Err(status) => Err(status),
                    }
                })
            })
            .buffer_unordered(in_flight)
            .map(|joined| {
                joined.unwrap_or_else(|e| Err(Status::internal(format!("record task failed: {e}"))))
            });
        Ok(Response::new(Box::pin(results)))
    }
}

fn batch_too_large(what: String) -> Status {
    Status::resource_exhausted(format!(
        "batch too large: {what}; split it into smaller batches"
    ))
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// The caller's `traceparent`, as OpenTelemetry's propagator reads it.
struct Traceparent<'a>(&'a str);

impl opentelemetry::propagation::Extractor for Traceparent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}
