//! Who is signed in: sessions made from an admin's or auditor's API key, kept in memory on this
//! instance (a restart signs everyone out), each with its CSRF token and expiry; and the slowing of
//! an address that keeps presenting wrong keys.
//!
//! A session is only a pointer to its key: every request checks again that the key still
//! identifies the client and that the client still holds the role, so a key withdrawn or a role
//! taken away ends its sessions at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mekong_core::identity::AuthenticatedBy;
use mekong_core::{ApiKeyHash, Catalog, Role};
use ring::rand::{SecureRandom, SystemRandom};

/// What a signed-in person may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleRole {
    /// Everything.
    Admin,
    /// Look at everything but payloads; change nothing.
    Auditor,
}

impl ConsoleRole {
    /// The console role a client holds, admin first.
    pub fn of(client: &mekong_core::Client) -> Option<ConsoleRole> {
        if client.has_role(Role::Admin) {
            Some(ConsoleRole::Admin)
        } else if client.has_role(Role::Auditor) {
            Some(ConsoleRole::Auditor)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ConsoleRole::Admin => "admin",
            ConsoleRole::Auditor => "auditor",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub client: String,
    pub role: ConsoleRole,
    /// The digest of the key it was made from.
    pub key: ApiKeyHash,
    /// How the key identified its client, as the audit trail records changes.
    pub by: AuthenticatedBy,
    /// Sent back with every change (a hidden form field).
    pub csrf: String,
    pub expires: Instant,
}

impl Session {
    /// The session as the current catalog sees it: `None` when its key no longer identifies its
    /// client, or the client no longer holds a console role (an admin made auditor is one now).
    pub fn recheck(&self, catalog: &Catalog) -> Option<Session> {
        let client = catalog.authenticate_digest(&self.key)?;
        if client.name() != self.client {
            return None;
        }
        let role = ConsoleRole::of(client)?;
        Some(Session {
            role,
            ..self.clone()
        })
    }
}

/// The sessions of this instance.
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
    ttl: Duration,
    max: usize,
}

impl Sessions {
    pub fn new(ttl: Duration, max: usize) -> Sessions {
        Sessions {
            open: Mutex::default(),
            ttl,
            max,
        }
    }

    /// A new session and its token (the cookie's value). The oldest go when there are `max`.
    pub fn begin(
        &self,
        client: String,
        role: ConsoleRole,
        key: ApiKeyHash,
        by: AuthenticatedBy,
    ) -> (String, Session) {
        let token = random_token();
        let session = Session {
            client,
            role,
            key,
            by,
            csrf: random_token(),
            expires: Instant::now() + self.ttl,
        };
        let mut open = self.open.lock().expect("the sessions");
        let now = Instant::now();
        open.retain(|_, s| s.expires > now);
        while open.len() >= self.max {
            let Some(oldest) = open
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(t, _)| t.clone())
            else {
                break;
            };
            open.remove(&oldest);
        }
        open.insert(token.clone(), session.clone());
        (token, session)
    }

    /// The session of a token, while it lasts.
    pub fn get(&self, token: &str) -> Option<Session> {
        let mut open = self.open.lock().expect("the sessions");
        match open.get(token) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                open.remove(token);
                None
            }
            None => None,
        }
    }

    pub fn end(&self, token: &str) -> Option<Session> {
        self.open.lock().expect("the sessions").remove(token)
    }
}

/// Failed sign-ins per address: after `free` failures, each next attempt must wait, twice as long
/// each time (up to `max_wait`); a success forgets the address.
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, Failures>>,
    free: u32,
    first_wait: Duration,
    max_wait: Duration,
    /// Addresses remembered at most (the oldest are forgotten), so that many addresses cannot
    /// grow the map without bound.
    max_addresses: usize,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// No attempt is heard before this.
    until: Instant,
    last: Instant,
}

impl Throttle {
    pub fn new(free: u32, first_wait: Duration, max_wait: Duration) -> Throttle {
        Throttle {
            failures: Mutex::default(),
            free,
            first_wait,
            max_wait,
            max_addresses: 10_000,
        }
    }

    /// How long `address` must still wait before its next attempt, if at all.
    pub fn wait(&self, address: IpAddr) -> Option<Duration> {
        let failures = self.failures.lock().expect("the throttle");
        let f = failures.get(&address)?;
        f.until.checked_duration_since(Instant::now())
    }

    pub fn failed(&self, address: IpAddr) {
        let mut failures = self.failures.lock().expect("the throttle");
        let now = Instant::now();
        if failures.len() >= self.max_addresses && !failures.contains_key(&address) {
            // Forget what no longer holds anyone back, then the oldest.
            failures.retain(|_, f| f.until > now);
            if failures.len() >= self.max_addresses
                && let Some(oldest) = failures.iter().min_by_key(|(_, f)| f.last).map(|(a, _)| *a)
            {
                failures.remove(&oldest);
            }
        }
        let f = failures.entry(address).or_insert(Failures {
            count: 0,
            until: now,
            last: now,
        });
        f.count += 1;
        f.last = now;
        if f.count > self.free {
            let doublings = (f.count - self.free - 1).min(16);
            let wait = self
                .first_wait
                .saturating_mul(1 << doublings)
                .min(self.max_wait);
            f.until = now + wait;
        }
    }

    pub fn succeeded(&self, address: IpAddr) {
        self.failures.lock().expect("the throttle").remove(&address);
    }
}

/// 32 random bytes, hex.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random numbers");
    hex::encode(bytes)
}

/// Whether two tokens are equal, in time that does not depend on where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lasts_its_time_and_the_oldest_go_first() {
        let sessions = Sessions::new(Duration::from_millis(50), 2);
        let key = ApiKeyHash([0; 32]);
        let by = AuthenticatedBy {
            by: "key".into(),
            key_id: None,
            certificate_sha256: None,
            certificate_subject: None,
        };
        let (a, _) = sessions.begin("a".into(), ConsoleRole::Admin, key, by.clone());
        let (b, _) = sessions.begin("b".into(), ConsoleRole::Auditor, key, by.clone());
        assert!(sessions.get(&a).is_some());
        let (c, _) = sessions.begin("c".into(), ConsoleRole::Admin, key, by);
        assert!(sessions.get(&a).is_none(), "the oldest went");
        assert!(sessions.get(&b).is_some() && sessions.get(&c).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(sessions.get(&b).is_none(), "expired");
        assert_ne!(b, c);
        assert_eq!(b.len(), 64);
    }

    #[test]
    fn an_address_is_slowed_after_its_free_failures_and_forgiven_by_a_success() {
        let throttle = Throttle::new(3, Duration::from_millis(100), Duration::from_secs(1));
        let here: IpAddr = "10.0.0.1".parse().unwrap();
        let there: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(throttle.wait(here), None);
            throttle.failed(here);
        }
        assert_eq!(throttle.wait(here), None, "three are free");
        throttle.failed(here);
        let first = throttle.wait(here).expect("the fourth waits");
        throttle.failed(here);
        let second = throttle.wait(here).expect("and the fifth longer");
        assert!(second > first, "{first:?} {second:?}");
        assert_eq!(throttle.wait(there), None, "per address");
        throttle.succeeded(here);
        assert_eq!(throttle.wait(here), None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
    }
}
