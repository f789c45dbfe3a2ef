//! Judging records off the async workers: parsing, schema validation and route conditions run on a
//! bounded set of blocking threads, each record within a deadline. A record that takes longer is
//! answered at once (INVALID_ARGUMENT, naming the rule that was running) while its thread finishes
//! in the background; health checks and every other call go on meanwhile, since no async worker
//! ever waits on a rule.

use std::sync::Arc;
use std::time::Duration;

use mekong_core::{Progress, Stage};
use tokio::sync::Semaphore;

/// How records are judged.
#[derive(Debug, Clone, Copy)]
pub struct JudgeSettings {
    /// Records judged at once (blocking threads in use).
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

#[derive(Clone)]
pub(crate) struct Judge {
    threads: Arc<Semaphore>,
    max_time: Duration,
}

impl Judge {
    pub(crate) fn new(settings: JudgeSettings) -> Judge {
        Judge {
            threads: Arc::new(Semaphore::new(settings.threads.max(1))),
            max_time: settings.max_time,
        }
    }

    /// The deadline of one record.
    pub(crate) fn max_time(&self) -> Duration {
        self.max_time
    }

    /// Runs `work` on a judging thread, reporting its progress, within the deadline.
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Progress) -> R + Send + 'static,
    ) -> Result<R, Unjudged> {
        let thread = tokio::time::timeout(QUEUE_WAIT, Arc::clone(&self.threads).acquire_owned())
            .await
            .map_err(|_| Unjudged::Busy)?
            .map_err(|_| Unjudged::Failed)?;
        let progress = Arc::new(Progress::default());
        let watched = Arc::clone(&progress);
        let task = tokio::task::spawn_blocking(move || {
            // Held until the work ends, even past the deadline: an overrun keeps its thread busy
            // and the number of threads stays bounded.
            let _thread = thread;
            work(&watched)
        });
        match tokio::time::timeout(self.max_time, task).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(Unjudged::Failed),
            Err(_) => Err(Unjudged::TooSlow(progress.stage())),
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
        // The overrun still holds the only thread: the next record waits for it.
        let next = tokio::spawn({
            let judge = judge.clone();
            async move { judge.run(|_| 7).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!next.is_finished());
        release.send(()).unwrap();
        assert_eq!(next.await.unwrap(), Ok(7));
    }
}
