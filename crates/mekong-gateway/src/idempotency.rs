//! The idempotency window: the answers to recent publishes that carried an idempotency key, so a
//! retry gets the first answer back (`duplicate = true`) instead of writing again. A retry that
//! arrives while the first attempt is still in flight waits for it. The same key with a different
//! record (another digest of type, key, attributes, schema version and payload) is a conflict,
//! never a silent duplicate: that record would be lost.
//!
//! Bounded in age and size, and shared fairly: each client holds at most `max_entries_per_client`
//! answers, and when the window as a whole is full the client holding the most gives one up, so a
//! client in a retry loop cannot evict the others' keys.
//!
//! The window is per gateway instance: a retry that reaches another instance writes again, with the
//! same record id, so consumers can still deduplicate.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mekong_proto::v1::PublishRequest;
use mekong_proto::v1::PublishResponse;
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use uuid::Uuid;

/// How much the window remembers.
#[derive(Debug, Clone, Copy)]
pub struct WindowSettings {
    pub max_entries: usize,
    pub max_entries_per_client: usize,
    pub max_age: Duration,
}

impl Default for WindowSettings {
    fn default() -> Self {
        WindowSettings {
            max_entries: 100_000,
            max_entries_per_client: 10_000,
            max_age: Duration::from_secs(15 * 60),
        }
    }
}

/// What identifies a record's content: two publishes with one key must carry the same.
pub(crate) type RecordDigest = [u8; 32];

/// The digest of everything in a request that makes the record what it is.
pub(crate) fn digest(request: &PublishRequest) -> RecordDigest {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    field(request.record_type.as_bytes());
    field(request.key.as_bytes());
    field(&request.schema_version.to_be_bytes());
    let mut attributes: Vec<_> = request.attributes.iter().collect();
    attributes.sort();
    field(&(attributes.len() as u64).to_be_bytes());
    for (name, value) in attributes {
        field(name.as_bytes());
        field(value.as_bytes());
    }
    field(&request.payload);
    hash.finalize().into()
}

enum Slot {
    /// The first attempt is running; its sender is dropped when it ends.
    InFlight {
        digest: RecordDigest,
        done: watch::Receiver<()>,
    },
    Done {
        digest: RecordDigest,
        response: PublishResponse,
        at: Instant,
    },
}

/// What a publish with an idempotency key should do.
pub(crate) enum Claim<'w> {
    /// Answer with the earlier response.
    Duplicate(PublishResponse),
    /// The key was used for another record: refuse.
    Conflict,
    /// Another attempt with the same id is in flight: wait, then claim again.
    Wait(watch::Receiver<()>),
    /// This attempt is the first: publish, then finish the ticket.
    Owner(Ticket<'w>),
}

pub(crate) struct IdempotencyWindow {
    settings: WindowSettings,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<Uuid, Slot>,
    /// Completed entries of each client, oldest first, for eviction.
    order: HashMap<String, VecDeque<(Uuid, Instant)>>,
    /// Completed entries in all.
    done: usize,
}

impl IdempotencyWindow {
    pub(crate) fn new(settings: WindowSettings) -> Self {
        IdempotencyWindow {
            settings,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub(crate) fn claim(&self, client: &str, id: Uuid, digest: RecordDigest) -> Claim<'_> {
        let now = Instant::now();
        let mut inner = self.inner.lock().expect("idempotency window lock");
        inner.expire(client, now, self.settings.max_age);
        match inner.slots.get(&id) {
            Some(Slot::Done {
                digest: first,
                response,
                at,
            }) if now.duration_since(*at) <= self.settings.max_age => {
                return if *first == digest {
                    Claim::Duplicate(response.clone())
                } else {
                    Claim::Conflict
                };
            }
            Some(Slot::InFlight { digest: first, .. }) if *first != digest => {
                return Claim::Conflict;
            }
            Some(Slot::InFlight { done, .. }) => return Claim::Wait(done.clone()),
            _ => {}
        }
        let (tx, rx) = watch::channel(());
        inner.slots.insert(id, Slot::InFlight { digest, done: rx });
        Claim::Owner(Ticket {
            window: self,
            client: client.to_owned(),
            id,
            digest,
            _done: tx,
            finished: false,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().slots.len()
    }
}

impl Inner {
    /// Forgets the client's answers older than `max_age`.
    fn expire(&mut self, client: &str, now: Instant, max_age: Duration) {
        while let Some(&(_, at)) = self.order.get(client).and_then(VecDeque::front) {
            if now.duration_since(at) <= max_age {
                break;
            }
            self.evict_oldest(client);
        }
    }

    /// Forgets the client's oldest answer.
    fn evict_oldest(&mut self, client: &str) {
        let Some(queue) = self.order.get_mut(client) else {
            return;
        };
        let Some((id, at)) = queue.pop_front() else {
            return;
        };
        if queue.is_empty() {
            self.order.remove(client);
        }
        self.done -= 1;
        // Only remove the entry this queue position stands for; a newer one may have replaced it.
        if matches!(self.slots.get(&id), Some(Slot::Done { at: done_at, .. }) if *done_at == at) {
            self.slots.remove(&id);
        }
    }

    /// Makes room for one more answer of `client`.
    fn make_room(&mut self, client: &str, settings: &WindowSettings) {
        while self.order.get(client).map_or(0, VecDeque::len)
            >= settings.max_entries_per_client.max(1)
        {
            self.evict_oldest(client);
        }
        while self.done >= settings.max_entries.max(1) {
            // The asking client counts the answer it adds: on a tie, it gives way itself.
            let Some(largest) = self
                .order
                .iter()
                .max_by_key(|(name, queue)| queue.len() + usize::from(name.as_str() == client))
                .map(|(name, _)| name.clone())
            else {
                break;
            };
            self.evict_oldest(&largest);
        }
    }
}

/// The right to publish a record id first. Dropping it without `succeed` (failure, cancellation)
/// forgets the attempt, so a retry publishes afresh; either way the waiters wake.
pub(crate) struct Ticket<'w> {
    window: &'w IdempotencyWindow,
    client: String,
    id: Uuid,
    digest: RecordDigest,
    _done: watch::Sender<()>,
    finished: bool,
}

impl Ticket<'_> {
    pub(crate) fn succeed(mut self, response: &PublishResponse) {
        let at = Instant::now();
        let window = self.window;
        let mut inner = window.inner.lock().expect("idempotency window lock");
        inner.make_room(&self.client, &window.settings);
        inner.slots.insert(
            self.id,
            Slot::Done {
                digest: self.digest,
                response: response.clone(),
                at,
            },
        );
        inner
            .order
            .entry(self.client.clone())
            .or_default()
            .push_back((self.id, at));
        inner.done += 1;
        self.finished = true;
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let mut inner = self.window.inner.lock().expect("idempotency window lock");
            if matches!(inner.slots.get(&self.id), Some(Slot::InFlight { .. })) {
                inner.slots.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(id: &str) -> PublishResponse {
        PublishResponse {
            record_id: id.into(),
            placements: vec![],
            duplicate: false,
        }
    }

    fn window(max_entries: usize, per_client: usize, max_age: Duration) -> IdempotencyWindow {
        IdempotencyWindow::new(WindowSettings {
            max_entries,
            max_entries_per_client: per_client,
            max_age,
        })
    }

    const D: RecordDigest = [1; 32];

    fn publish(w: &IdempotencyWindow, client: &str, id: u128) {
        let Claim::Owner(t) = w.claim(client, Uuid::from_u128(id), D) else {
            panic!("{client}/{id} should be new")
        };
        t.succeed(&response("x"));
    }

    fn remembered(w: &IdempotencyWindow, client: &str, id: u128) -> bool {
        matches!(w.claim(client, Uuid::from_u128(id), D), Claim::Duplicate(_))
    }

    #[test]
    fn a_retry_after_success_is_a_duplicate() {
        let w = window(10, 10, Duration::from_secs(60));
        let id = Uuid::from_u128(1);
        let Claim::Owner(ticket) = w.claim("c", id, D) else {
            panic!("first claim owns")
        };
        assert!(
            matches!(w.claim("c", id, D), Claim::Wait(_)),
            "in flight: wait"
        );
        ticket.succeed(&response("r1"));
        let Claim::Duplicate(r) = w.claim("c", id, D) else {
            panic!("done: duplicate")
        };
        assert_eq!(r.record_id, "r1");
    }

    #[test]
    fn the_same_key_with_another_record_is_a_conflict_not_a_duplicate() {
        let w = window(10, 10, Duration::from_secs(60));
        let id = Uuid::from_u128(1);
        let Claim::Owner(ticket) = w.claim("c", id, D) else {
            panic!()
        };
        assert!(
            matches!(w.claim("c", id, [2; 32]), Claim::Conflict),
            "in flight"
        );
        ticket.succeed(&response("r1"));
        assert!(matches!(w.claim("c", id, [2; 32]), Claim::Conflict), "done");
    }

    #[test]
    fn the_digest_covers_everything_that_makes_the_record() {
        let base = PublishRequest {
            record_type: "t".into(),
            payload: bytes::Bytes::from_static(b"{}"),
            idempotency_key: "k".into(),
            request_id: "r1".into(),
            ..Default::default()
        };
        let same = PublishRequest {
            request_id: "r2".into(),
            ..base.clone()
        };
        assert_eq!(digest(&base), digest(&same), "request ids do not count");
        for other in [
            PublishRequest {
                payload: bytes::Bytes::from_static(b"{ }"),
                ..base.clone()
            },
            PublishRequest {
                key: "k2".into(),
                ..base.clone()
            },
            PublishRequest {
                schema_version: 2,
                ..base.clone()
            },
            PublishRequest {
                attributes: [("a".to_string(), "b".to_string())].into(),
                ..base.clone()
            },
            PublishRequest {
                record_type: "t2".into(),
                ..base.clone()
            },
        ] {
            assert_ne!(digest(&base), digest(&other), "{other:?}");
        }
    }

    #[test]
    fn a_failed_attempt_is_forgotten_and_waiters_wake() {
        let w = window(10, 10, Duration::from_secs(60));
        let id = Uuid::from_u128(2);
        let Claim::Owner(ticket) = w.claim("c", id, D) else {
            panic!()
        };
        let Claim::Wait(rx) = w.claim("c", id, D) else {
            panic!()
        };
        drop(ticket);
        assert!(rx.has_changed().is_err(), "the waiter sees the attempt end");
        assert!(
            matches!(w.claim("c", id, D), Claim::Owner(_)),
            "a retry publishes afresh"
        );
    }

    #[test]
    fn bounded_by_size_and_age() {
        let w = window(2, 10, Duration::from_secs(60));
        for i in 0..5 {
            publish(&w, "c", i);
        }
        assert_eq!(w.len(), 2);
        assert!(!remembered(&w, "c", 0), "the oldest was evicted");
        assert!(remembered(&w, "c", 4));

        let w = window(10, 10, Duration::ZERO);
        publish(&w, "c", 1);
        std::thread::sleep(Duration::from_millis(2));
        assert!(
            matches!(w.claim("c", Uuid::from_u128(1), D), Claim::Owner(_)),
            "expired entries are forgotten"
        );
    }

    #[test]
    fn one_client_cannot_evict_the_others_keys() {
        let w = window(100, 30, Duration::from_secs(60));
        for i in 0..20 {
            publish(&w, "quiet", i);
        }
        // A client in a retry loop with fresh keys: it only ever pushes out its own.
        for i in 1000..5000 {
            publish(&w, "flood", i);
        }
        assert!((0..20).all(|i| remembered(&w, "quiet", i)));
        assert!(remembered(&w, "flood", 4999));
        assert!(!remembered(&w, "flood", 1000));
        // When the window as a whole is full, the largest holder gives way.
        let w = window(40, 30, Duration::from_secs(60));
        for i in 0..20 {
            publish(&w, "quiet", i);
        }
        for i in 1000..1030 {
            publish(&w, "flood", i);
        }
        assert!((0..20).all(|i| remembered(&w, "quiet", i)));
        assert_eq!(w.len(), 40);
    }
}
