//! A thread that follows one topic for an in-memory or on-disk view (the resource store, the
//! lineage index), and answers, when asked, where the topic ends. Closed explicitly, so that its
//! Kafka client is gone before the backbone is (the embedded cluster complains otherwise).

use std::sync::{Mutex, mpsc};
use std::thread::{self, JoinHandle};

use rdkafka::error::KafkaError;
use tokio::sync::oneshot;

/// A question to the follower: the topic's end offset, please.
pub(crate) type EndRequest = oneshot::Sender<Result<i64, KafkaError>>;

pub(crate) struct Follower {
    /// Dropping it ends the thread's loop.
    ends: Mutex<Option<mpsc::Sender<EndRequest>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Follower {
    /// Runs `follow` on a thread named `name`; it must return once its receiver is disconnected.
    pub(crate) fn spawn(
        name: &str,
        follow: impl FnOnce(mpsc::Receiver<EndRequest>) + Send + 'static,
    ) -> Follower {
        let (ends, requests) = mpsc::channel();
        let thread = thread::Builder::new()
            .name(name.into())
            .spawn(move || follow(requests))
            .expect("spawning a thread");
        Follower {
            ends: Mutex::new(Some(ends)),
            thread: Mutex::new(Some(thread)),
        }
    }

    /// The followed topic's end offset, as the thread reads it; `None` once closed.
    pub(crate) async fn end(&self) -> Option<Result<i64, KafkaError>> {
        let (tx, rx) = oneshot::channel();
        self.ends
            .lock()
            .expect("follower lock")
            .as_ref()?
            .send(tx)
            .ok()?;
        rx.await.ok()
    }

    /// Ends the thread and waits for it (its client is closed when this returns).
    pub(crate) fn close(&self) {
        drop(self.ends.lock().expect("follower lock").take());
        if let Some(thread) = self.thread.lock().expect("follower lock").take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.close();
    }
}
