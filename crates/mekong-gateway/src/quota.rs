//! Per-client quotas on each instance: records and payload bytes per second (GCRA, `governor`),
//! with a burst, and PublishStream streams open at once. A Client's `limits` override the
//! instance's defaults; both change live (a limiter is made again when its client's limits
//! change). N instances allow N times a rate: set the rates per instance.
//!
//! Publish and PublishBatch over quota are refused (RESOURCE_EXHAUSTED, with RetryInfo saying when
//! to retry and QuotaFailure naming the limit); a PublishStream is slowed instead (`ingest.rs`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use mekong_core::Client;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::metrics::GatewayMetrics;

/// The instance's quotas for clients whose `limits` do not set their own. `None`: unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaDefaults {
    pub records_per_second: Option<NonZeroU32>,
    pub bytes_per_second: Option<NonZeroU32>,
    /// Records at once beyond the rate (`None`: one second's worth).
    pub burst: Option<NonZeroU32>,
    /// PublishStream streams of one client open at once.
    pub max_streams: NonZeroU32,
}

impl Default for QuotaDefaults {
    fn default() -> Self {
        QuotaDefaults {
            records_per_second: None,
            bytes_per_second: None,
            burst: None,
            max_streams: NonZeroU32::new(16).expect("16 is not 0"),
        }
    }
}

/// What one client is held to, its own limits over the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Effective {
    records_per_second: Option<NonZeroU32>,
    bytes_per_second: Option<NonZeroU32>,
    burst: Option<NonZeroU32>,
    max_streams: u32,
}

impl Effective {
    fn of(client: &Client, defaults: &QuotaDefaults) -> Effective {
        let limits = &client.spec.limits;
        let own = |v: Option<u32>| v.and_then(NonZeroU32::new);
        Effective {
            records_per_second: own(limits.records_per_second).or(defaults.records_per_second),
            bytes_per_second: own(limits.bytes_per_second).or(defaults.bytes_per_second),
            burst: own(limits.burst).or(defaults.burst),
            max_streams: limits.max_streams.unwrap_or(defaults.max_streams.get()),
        }
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, MonotonicClock>;

/// One client's limiters on this instance.
struct ClientQuota {
    effective: Effective,
    records: Option<Limiter>,
    bytes: Option<Limiter>,
    /// Open streams: one counter per client, kept when its limiters are made again, so that a
    /// stream opened before a change gives its place back to the same count.
    streams: Arc<AtomicU32>,
}

/// Why a call may not go now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Throttled {
    /// The limit, as the Client's `limits` names it.
    pub limit: &'static str,
    /// How long until it may; `None`: never, it is larger than the limit's burst.
    pub retry_after: Option<Duration>,
    pub description: String,
    client: String,
}

impl Throttled {
    pub(crate) fn into_status(self) -> Status {
        let mut details = ErrorDetails::with_quota_failure_violation(
            format!("client:{}", self.client),
            self.description.clone(),
        );
        if let Some(wait) = self.retry_after {
            details.set_retry_info(Some(wait));
        }
        details.set_error_info(
            crate::status::reason::QUOTA_EXCEEDED,
            crate::status::reason::DOMAIN,
            std::collections::HashMap::from([("limit".to_string(), self.limit.to_string())]),
        );
        Status::with_error_details(Code::ResourceExhausted, self.description, details)
    }
}

/// The quotas of every client, kept per instance.
pub(crate) struct Quotas {
    defaults: QuotaDefaults,
    clients: Mutex<HashMap<String, Arc<ClientQuota>>>,
    metrics: GatewayMetrics,
}

/// A PublishStream's place among its client's `maxStreams`, given back when dropped.
pub(crate) struct StreamPlace(Arc<ClientQuota>);

impl Drop for StreamPlace {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Quotas {
    pub(crate) fn new(defaults: QuotaDefaults, metrics: GatewayMetrics) -> Quotas {
        Quotas {
            defaults,
            clients: Mutex::default(),
            metrics,
        }
    }

    /// The client's limiters, made again when its limits changed.
    fn of(&self, client: &Client) -> Arc<ClientQuota> {
        let effective = Effective::of(client, &self.defaults);
        let mut clients = self.clients.lock().expect("the quotas");
        if let Some(quota) = clients.get(client.name())
            && quota.effective == effective
        {
            return Arc::clone(quota);
        }
        let limiter = |rate: Option<NonZeroU32>, burst: Option<NonZeroU32>| {
            rate.map(|rate| {
                Limiter::direct_with_clock(
                    Quota::per_second(rate).allow_burst(burst.unwrap_or(rate)),
                    MonotonicClock,
                )
            })
        };
        // Streams already open stay counted under the new limits.
        let streams = clients
            .get(client.name())
            .map_or_else(Arc::default, |q| Arc::clone(&q.streams));
        let quota = Arc::new(ClientQuota {
            effective,
            records: limiter(effective.records_per_second, effective.burst),
            bytes: limiter(effective.bytes_per_second, None),
            streams,
        });
        clients.insert(client.name().to_owned(), Arc::clone(&quota));
        quota
    }

    /// Takes `records` records of `bytes` payload bytes from the client's quota, or says when
    /// they may go.
    pub(crate) fn take(
        &self,
        client: &Client,
        records: u32,
        bytes: usize,
    ) -> Result<(), Throttled> {
        let quota = self.of(client);
        let refuse = |limit: &'static str, rate: u32, asked: u64, retry_after: Option<Duration>| {
            self.metrics.throttled(client.name(), limit);
            let unit = if limit == "bytesPerSecond" {
                "bytes"
            } else {
                "records"
            };
            let description = match retry_after {
                Some(wait) => format!(
                    "client `{}` is over its quota of {rate} {unit} per second (limits.{limit}); retry in {} ms",
                    client.name(),
                    wait.as_millis().max(1)
                ),
                None => {
                    let bound = if limit == "recordsPerSecond" {
                        "burst"
                    } else {
                        limit
                    };
                    format!(
                        "{asked} {unit} at once is more than client `{}` may ever send at once (limits.{bound}); send less at a time",
                        client.name()
                    )
                }
            };
            Throttled {
                limit,
                retry_after,
                description,
                client: client.name().to_owned(),
            }
        };
        let checks = [
            (
                "recordsPerSecond",
                &quota.records,
                u64::from(records),
                quota.effective.records_per_second,
            ),
            (
                "bytesPerSecond",
                &quota.bytes,
                bytes as u64,
                quota.effective.bytes_per_second,
            ),
        ];
        for (limit, limiter, asked, rate) in checks {
            let (Some(limiter), Some(rate)) = (limiter, rate) else {
                continue;
            };
            let Some(n) = NonZeroU32::new(u32::try_from(asked).unwrap_or(u32::MAX)) else {
                continue;
            };
            match limiter.check_n(n) {
                Ok(Ok(())) => {}
                Ok(Err(not_until)) => {
                    let wait = not_until.wait_time_from(MonotonicClock.now());
                    return Err(refuse(limit, rate.get(), asked, Some(wait)));
                }
                Err(_) => return Err(refuse(limit, rate.get(), asked, None)),
            }
        }
        Ok(())
    }

    /// A place for one more PublishStream of the client, or RESOURCE_EXHAUSTED naming the limit.
    pub(crate) fn open_stream(&self, client: &Client) -> Result<StreamPlace, Status> {
        let quota = self.of(client);
        let max = quota.effective.max_streams;
        let open = quota.streams.fetch_add(1, Ordering::Relaxed);
        let place = StreamPlace(Arc::clone(&quota));
        if open >= max {
            self.metrics.throttled(client.name(), "maxStreams");
            let description = format!(
                "client `{}` has {open} publish streams open on this instance; its limit is {max} (limits.maxStreams)",
                client.name()
            );
            drop(place);
            return Err(Status::with_error_details(
                Code::ResourceExhausted,
                description.clone(),
                ErrorDetails::with_quota_failure_violation(
                    format!("client:{}", client.name()),
                    description,
                ),
            ));
        }
        Ok(place)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(limits: &str) -> mekong_core::Catalog {
        let yaml = format!("kind: Client\nname: q1\nroles: [publisher]\nlimits: {{{limits}}}\n");
        let (docs, errors) = mekong_core::parse_documents("c.yaml", &yaml);
        assert!(errors.is_empty(), "{errors:?}");
        mekong_core::Catalog::build(docs).unwrap()
    }

    #[test]
    fn a_rate_allows_its_burst_then_says_when_to_retry() {
        let quotas = Quotas::new(QuotaDefaults::default(), GatewayMetrics::default());
        let catalog = client("recordsPerSecond: 2, burst: 3");
        let q1 = catalog.client("q1").unwrap();
        for _ in 0..3 {
            quotas.take(q1, 1, 10).expect("within the burst");
        }
        let throttled = quotas.take(q1, 1, 10).unwrap_err();
        assert_eq!(throttled.limit, "recordsPerSecond");
        let wait = throttled.retry_after.expect("a time to retry");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // More than the burst can never go at once.
        let never = quotas.take(q1, 4, 10).unwrap_err();
        assert_eq!(never.retry_after, None);
        assert!(
            never.description.contains("send less at a time"),
            "{}",
            never.description
        );
    }

    #[test]
    fn bytes_defaults_and_live_changes() {
        let defaults = QuotaDefaults {
            bytes_per_second: NonZeroU32::new(1000),
            ..QuotaDefaults::default()
        };
        let quotas = Quotas::new(defaults, GatewayMetrics::default());
        let catalog = client("maxSubscriptions: 16");
        let q1 = catalog.client("q1").unwrap();
        quotas
            .take(q1, 1, 1000)
            .expect("one second's worth of bytes");
        assert_eq!(quotas.take(q1, 1, 1).unwrap_err().limit, "bytesPerSecond");
        // The client gets its own, larger limit: a new limiter, at once.
        let catalog = client("bytesPerSecond: 100000");
        let q1 = catalog.client("q1").unwrap();
        quotas.take(q1, 1, 50_000).expect("the new limit");
    }

    #[test]
    fn streams_are_counted_and_given_back() {
        let quotas = Quotas::new(QuotaDefaults::default(), GatewayMetrics::default());
        let catalog = client("maxStreams: 2");
        let q1 = catalog.client("q1").unwrap();
        let a = quotas.open_stream(q1).unwrap();
        let b = quotas.open_stream(q1).unwrap();
        let refused = quotas.open_stream(q1).err().expect("over maxStreams");
        assert_eq!(refused.code(), Code::ResourceExhausted);
        drop(a);
        quotas.open_stream(q1).expect("a place was given back");
        // Limits change while a stream is open: when it ends, its place is given back to the
        // count the new limits use.
        let catalog = client("maxStreams: 2, recordsPerSecond: 5");
        let q1 = catalog.client("q1").unwrap();
        drop(b);
        let _c = quotas
            .open_stream(q1)
            .expect("a first under the new limits");
        let _d = quotas
            .open_stream(q1)
            .expect("a second under the new limits");
        assert!(quotas.open_stream(q1).is_err(), "a third is over");
    }
}
