//! Judging records off the async workers: parsing, schema validation and route conditions run on a
//! fixed set of judging threads, each record within a deadline counted from when its thread takes
//! it. A record that takes longer is answered at once (INVALID_ARGUMENT, naming the rule that was
//! running) while its thread finishes in the background; health checks and every other call go on
//! meanwhile, since no async worker ever waits on a rule.
//!
//! The threads are the hub's own, fed by one queue: handing a record over costs a few microseconds,
//! where a tokio blocking task per record cost about 90 µs of CPU (measured in the bench harness).
//!
//! A record is refused as too slow only when its thread really spent the time on it: past the
//! deadline the thread's CPU time is sampled (`/proc/self/task/<tid>/schedstat`), and a thread that
//! was starved of CPU (an overloaded machine) is waited for instead; if it is starved for longer
//! than a record may queue, the answer is the retryable RESOURCE_EXHAUSTED. A valid record is never
//! refused because the machine was busy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
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

/// A record to judge, given the id of the thread that judges it.
type Job = Box<dyn FnOnce(u32) + Send>;

/// One record's judging as both sides see it: how far it came, when and by which thread it was
/// taken.
#[derive(Default)]
struct Watch {
    progress: Progress,
    /// Nanoseconds after the judge's epoch when a thread took the record; 0 until then.
    started: AtomicU64,
    /// The Linux thread id of the thread judging it; 0 when unknown.
    thread: AtomicU32,
}

/// How long the CPU time of a judging thread is sampled past the deadline, at most (and at most
/// the deadline itself).
const SAMPLE: Duration = Duration::from_millis(20);

/// The id of the calling thread, as /proc names it (`/proc/thread-self` -> `<pid>/task/<tid>`).
fn own_thread_id() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|link| link.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

/// The CPU time a thread of this process has run, from the kernel's scheduler statistics.
fn cpu_time(thread: u32) -> Option<Duration> {
    if thread == 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/self/task/{thread}/schedstat")).ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
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
                    let id = own_thread_id();
                    for job in jobs {
                        job(id);
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
        let job: Job = Box::new(move |thread| {
            theirs.thread.store(thread, Ordering::Relaxed);
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
            if queued.elapsed() > QUEUE_WAIT {
                return Err(Unjudged::Busy);
            }
            match watch.started.load(Ordering::Acquire) {
                0 => wait = self.max_time,
                since => {
                    let running = self
                        .epoch
                        .elapsed()
                        .saturating_sub(Duration::from_nanos(since));
                    if running < self.max_time {
                        wait = self.max_time - running;
                        continue;
                    }
                    // Past the deadline: is the thread working on it, or waiting for a CPU?
                    let thread = watch.thread.load(Ordering::Relaxed);
                    let Some(before) = cpu_time(thread) else {
                        return Err(Unjudged::TooSlow(watch.progress.stage()));
                    };
                    let sample = SAMPLE.min(self.max_time);
                    tokio::select! {
                        outcome = &mut result => {
                            return outcome.ok().flatten().ok_or(Unjudged::Failed);
                        }
                        () = tokio::time::sleep(sample) => {}
                    }
                    let worked =
                        cpu_time(thread).map_or(sample, |after| after.saturating_sub(before));
                    if worked >= sample / 2 {
                        return Err(Unjudged::TooSlow(watch.progress.stage()));
                    }
                    // Starved: the machine, not the record. Wait on, within QUEUE_WAIT.
                    wait = self.max_time;
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
            // Works (spins) until released: a record that costs its thread the whole time.
            while wait.try_recv().is_err() {
                std::hint::spin_loop();
            }
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
    async fn a_record_whose_thread_waits_rather_than_works_is_not_refused() {
        // A thread that does not run (here: it sleeps, as a starved thread waits for a CPU) is not
        // the record's fault: past the deadline the judge waits on.
        let judge = Judge::new(JudgeSettings {
            threads: 1,
            max_time: Duration::from_millis(20),
        });
        let waited = judge.run(|_| std::thread::sleep(Duration::from_millis(150)));
        assert_eq!(waited.await, Ok(()));
        // One that burns its CPU on the record is refused.
        let spins = judge.run(|progress| {
            progress.enter(Stage::Schema);
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(300) {
                std::hint::spin_loop();
            }
        });
        assert_eq!(spins.await, Err(Unjudged::TooSlow(Stage::Schema)));
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
