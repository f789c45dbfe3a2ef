//! The idempotency window: the answers to recent publishes that carried an idempotency key, so a
//! retry gets the first answer back (`duplicate = true`) instead of writing again. Bounded in size
//! and age. A retry that arrives while the first attempt is still in flight waits for it.
//!
//! The window is per gateway instance: a retry that reaches another instance writes again, with the
//! same record id, so consumers can still deduplicate.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mekong_proto::v1::PublishResponse;
use tokio::sync::watch;
use uuid::Uuid;

/// How much the window remembers.
#[derive(Debug, Clone, Copy)]
pub struct WindowSettings {
    pub max_entries: usize,
    pub max_age: Duration,
}

enum Slot {
    /// The first attempt is running; its sender is dropped when it ends.
    InFlight(watch::Receiver<()>),
    Done {
        response: PublishResponse,
        at: Instant,
    },
}

/// What a publish with an idempotency key should do.
pub(crate) enum Claim<'w> {
    /// Answer with the earlier response.
    Duplicate(PublishResponse),
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
    /// Completed entries, oldest first, for eviction.
    order: VecDeque<(Uuid, Instant)>,
}

impl IdempotencyWindow {
    pub(crate) fn new(settings: WindowSettings) -> Self {
        IdempotencyWindow {
            settings,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub(crate) fn claim(&self, id: Uuid) -> Claim<'_> {
        let now = Instant::now();
        let mut inner = self.inner.lock().expect("idempotency window lock");
        inner.evict(now, &self.settings);
        match inner.slots.get(&id) {
            Some(Slot::Done { response, at })
                if now.duration_since(*at) <= self.settings.max_age =>
            {
                return Claim::Duplicate(response.clone());
            }
            Some(Slot::InFlight(rx)) => return Claim::Wait(rx.clone()),
            _ => {}
        }
        let (tx, rx) = watch::channel(());
        inner.slots.insert(id, Slot::InFlight(rx));
        Claim::Owner(Ticket {
            window: self,
            id,
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
    fn evict(&mut self, now: Instant, settings: &WindowSettings) {
        while let Some(&(id, at)) = self.order.front() {
            if self.order.len() <= settings.max_entries
                && now.duration_since(at) <= settings.max_age
            {
                break;
            }
            self.order.pop_front();
            // Only remove the entry this queue position stands for; a newer one may have replaced it.
            if matches!(self.slots.get(&id), Some(Slot::Done { at: done_at, .. }) if *done_at == at)
            {
                self.slots.remove(&id);
            }
        }
    }
}

/// The right to publish a record id first. Dropping it without `succeed` (failure, cancellation)
/// forgets the attempt, so a retry publishes afresh; either way the waiters wake.
pub(crate) struct Ticket<'w> {
    window: &'w IdempotencyWindow,
    id: Uuid,
    _done: watch::Sender<()>,
    finished: bool,
}

impl Ticket<'_> {
    pub(crate) fn succeed(mut self, response: &PublishResponse) {
        let at = Instant::now();
        let mut inner = self.window.inner.lock().expect("idempotency window lock");
        inner.slots.insert(
            self.id,
            Slot::Done {
                response: response.clone(),
                at,
            },
        );
        inner.order.push_back((self.id, at));
        self.finished = true;
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let mut inner = self.window.inner.lock().expect("idempotency window lock");
            if matches!(inner.slots.get(&self.id), Some(Slot::InFlight(_))) {
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

    fn window(max_entries: usize, max_age: Duration) -> IdempotencyWindow {
        IdempotencyWindow::new(WindowSettings {
            max_entries,
            max_age,
        })
    }

    #[test]
    fn a_retry_after_success_is_a_duplicate() {
        let w = window(10, Duration::from_secs(60));
        let id = Uuid::from_u128(1);
        let Claim::Owner(ticket) = w.claim(id) else {
            panic!("first claim owns")
        };
        assert!(matches!(w.claim(id), Claim::Wait(_)), "in flight: wait");
        ticket.succeed(&response("r1"));
        let Claim::Duplicate(r) = w.claim(id) else {
            panic!("done: duplicate")
        };
        assert_eq!(r.record_id, "r1");
    }

    #[test]
    fn a_failed_attempt_is_forgotten_and_waiters_wake() {
        let w = window(10, Duration::from_secs(60));
        let id = Uuid::from_u128(2);
        let Claim::Owner(ticket) = w.claim(id) else {
            panic!()
        };
        let Claim::Wait(rx) = w.claim(id) else {
            panic!()
        };
        drop(ticket);
        assert!(rx.has_changed().is_err(), "the waiter sees the attempt end");
        assert!(
            matches!(w.claim(id), Claim::Owner(_)),
            "a retry publishes afresh"
        );
    }

    #[test]
    fn bounded_by_size_and_age() {
        let w = window(2, Duration::from_secs(60));
        for i in 0..5u128 {
            let Claim::Owner(t) = w.claim(Uuid::from_u128(i)) else {
                panic!()
            };
            t.succeed(&response("x"));
        }
        // Eviction happens on the next claim: at most 2 completed entries remain, plus the new one.
        let Claim::Owner(_t) = w.claim(Uuid::from_u128(99)) else {
            panic!()
        };
        assert_eq!(w.len(), 3);
        assert!(
            matches!(w.claim(Uuid::from_u128(0)), Claim::Owner(_)),
            "the oldest was evicted"
        );

        let w = window(10, Duration::ZERO);
        let Claim::Owner(t) = w.claim(Uuid::from_u128(1)) else {
            panic!()
        };
        t.succeed(&response("x"));
        std::thread::sleep(Duration::from_millis(2));
        assert!(
            matches!(w.claim(Uuid::from_u128(1)), Claim::Owner(_)),
            "expired entries are forgotten"
        );
    }
}
