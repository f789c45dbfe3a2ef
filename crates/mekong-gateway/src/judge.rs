//! Judging records off the async workers: parsing, schema validation and route conditions run on a
//! fixed set of judging threads, each record within a deadline counted from when its thread takes
//! it. A record that takes longer is answered at once (INVALID_ARGUMENT, naming the rule that was
//! running) while its thread finishes in the background; health checks and every other call go on
//! meanwhile, since no async worker ever waits on a rule.
//!
//! The threads are the hub's own, fed by one queue: handing a record over costs a few microseconds,
//! where a tokio blocking task per record cost about 90 µs of CPU (measured in the bench harness).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use mekong_core::{Progress, Stage};
use tokio::sync::oneshot;

/// How records are judged.
#[derive(Debug, Clone, Copy)]
pub struct JudgeSettings {
    /// Judging threads: records judged at once.
    pub threads: usize,
    /// The longest one record's judging may take.
    pub max_time: Duration,
}

impl Default for JudgeSettings {
    fn default() -> Self {
        JudgeSettings {
            threads: std::thread::available_parallelism().map_or(2, usize::from),
            max_time: Duration::from_millis(100),
        }
    }
}

/// Records waiting for a judging thread, at most; beyond, the hub says it is too busy.
const QUEUE: usize = 16 * 1024;
/// How long a record may wait for a judging thread before the hub says it is too busy.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Why a record was not judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unjudged {
    /// Every judging thread stayed busy.
    Busy,
    /// Judging took longer than allowed; it was at this stage.
    TooSlow(Stage),
    /// The judging thread failed (a bug).
    Failed,
}

type Job = Box<dyn FnOnce() + Send>;

/// One record's judging as both sides see it: how far it came, and when its thread took it.
#[derive(Default)]
struct Watch {
    progress: Progress,
    /// Nanoseconds after the judge's epoch when a thread took the record; 0 until then.
    started: AtomicU64,
}

#[derive(Clone)]
pub(crate) struct Judge {
    queue: Sender<Job>,
    max_time: Duration,
    epoch: Instant,
}

impl Judge {
    pub(crate) fn new(settings: JudgeSettings) -> Judge {
        let (queue, jobs) = crossbeam_channel::bounded::<Job>(QUEUE);
        for i in 0..settings.threads.max(1) {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("mekong-judge-{i}"))
                .spawn(move || {
                    for job in jobs {
                        job();
                    }
                })
                .expect("spawning a judging thread");
        }
        Judge {
            queue,
            max_time: settings.max_time,
            epoch: Instant::now(),
        }
    }

    /// The deadline of one record.
    pub(crate) fn max_time(&self) -> Duration {
        self.max_time
    }

    /// Runs `work` on a judging thread, reporting its progress, within the deadline. The threads
    /// end when the last `Judge` is dropped.
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Progress) -> R + Send + 'static,
    ) -> Result<R, Unjudged> {
        let watch = Arc::new(Watch::default());
        let (done, result) = oneshot::channel();
        let (epoch, theirs) = (self.epoch, Arc::clone(&watch));
        let job: Job = Box::new(move || {
            // Past the epoch by at least 1 ns: 0 means "not started".
            let since = epoch.elapsed().as_nanos().max(1) as u64;
            theirs.started.store(since, Ordering::Release);
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&theirs.progress)));
            let _ = done.send(outcome.ok());
        });
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(Unjudged::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(Unjudged::Failed),
        }
        let mut result = result;
        let queued = Instant::now();
        // Wait for the result; check the deadline only when it could have passed, counted from
        // when a thread took the record (waiting in the queue is not the record's fault).
        let mut wait = self.max_time;
        loop {
            tokio::select! {
                outcome = &mut result => {
                    return outcome.ok().flatten().ok_or(Unjudged::Failed);
                }
                () = tokio::time::sleep(wait) => {}
            }
            match watch.started.load(Ordering::Acquire) {
                0 if queued.elapsed() > QUEUE_WAIT => return Err(Unjudged::Busy),
                0 => wait = self.max_time,
                since => {
                    let running = self
                        .epoch
                        .elapsed()
                        .saturating_sub(Duration::from_nanos(since));
                    if running >= self.max_time {
                        return Err(Unjudged::TooSlow(watch.progress.stage()));
                    }
                    wait = self.max_time - running;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_record_is_answered_at_the_deadline_with_its_stage() {
        let judge = Judge::new(JudgeSettings {
            threads: 1,
            max_time: Duration::from_millis(50),
        });
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let slow = judge.run(move |progress| {
            progress.enter(Stage::Schema);
            let _ = wait.recv();
        });
        assert_eq!(slow.await, Err(Unjudged::TooSlow(Stage::Schema)));
        // The overrun still holds the only thread: the next record waits for it, and its own
        // deadline starts only when it is taken.
        let next = tokio::spawn({
            let judge = judge.clone();
            async move { judge.run(|_| 7).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!next.is_finished());
        release.send(()).unwrap();
        assert_eq!(next.await.unwrap(), Ok(7));
    }

    #[tokio::test]
    async fn a_panic_in_judging_is_a_failure_not_a_lost_thread() {
        let judge = Judge::new(JudgeSettings {
            threads: 1,
            max_time: Duration::from_secs(5),
        });
        assert_eq!(
            judge.run(|_| -> u8 { panic!("a bug") }).await,
            Err(Unjudged::Failed)
        );
        assert_eq!(judge.run(|_| 1).await, Ok(1), "the thread goes on");
    }
}
