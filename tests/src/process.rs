//! A `mekong` process for the tests: started with flags from the repository root, its addresses read
//! from the lines it prints, its memory and threads read from `/proc`, stopped by signal, and killed
//! when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `mekong` process.
pub struct Process {
    child: Child,
    /// The gRPC address it printed (`listening on ...`), if it serves.
    pub grpc: String,
    /// The metrics address it printed (`metrics on ...`), if any.
    pub metrics: Option<String>,
    /// What it printed on stdout up to the ready line, that line included.
    pub printed: Vec<String>,
    log: std::path::PathBuf,
}

/// What a process holds, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Resident memory, in bytes.
    pub rss: u64,
    /// The most resident memory it ever had (VmHWM), in bytes: what a burst cost.
    pub peak: u64,
    pub threads: u64,
}

impl Process {
    /// Runs `binary` with `args` and waits until it prints a line starting with `ready` (for
    /// `serve`: `listening on `). Panics if it exits first.
    pub fn start(binary: &str, args: &[&str], ready: &str) -> Process {
        // Its log, for the panic message when it ends early.
        let log = std::env::temp_dir().join(format!("mekong-process-{}.log", crate::unique()));
        let mut child = Command::new(binary)
            .args(args)
            .current_dir(crate::repo_root())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("starting mekong");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (mut grpc, mut metrics, mut printed) = (String::new(), None, Vec::new());
        loop {
            match lines.next() {
                Some(Ok(line)) => {
                    printed.push(line.clone());
                    if let Some(a) = line.strip_prefix("metrics on ") {
                        metrics = Some(a.to_owned());
                    }
                    if let Some(a) = line.strip_prefix("listening on ") {
                        grpc = a.to_owned();
                    }
                    if line.starts_with(ready) {
                        break;
                    }
                }
                _ => {
                    let status = child.wait();
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(20).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    panic!(
                        "mekong {args:?} ended before printing `{ready}`: {status:?}\n{}",
                        tail.join("\n")
                    );
                }
            }
        }
        // Keep reading what it prints, so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Process {
            child,
            grpc,
            metrics,
            printed,
            log,
        }
    }

    /// The rest of the printed line that starts with `prefix`, e.g. `kafka bootstrap: `.
    pub fn printed(&self, prefix: &str) -> Option<&str> {
        self.printed.iter().find_map(|l| l.strip_prefix(prefix))
    }

    /// What it has logged on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `mekong serve` with `args`.
    pub fn serve(binary: &str, args: &[&str]) -> Process {
        let args: Vec<&str> = ["serve"].iter().chain(args).copied().collect();
        Process::start(binary, &args, "listening on ")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory and threads now.
    pub fn usage(&self) -> Usage {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("reading /proc/<pid>/status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc status"))
        };
        Usage {
            rss: field("VmRSS:") * 1024,
            peak: field("VmHWM:") * 1024,
            threads: field("Threads:"),
        }
    }

    /// Sends SIGTERM, as Kubernetes and systemd do to stop it.
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {}", self.pid());
    }

    /// Waits up to `timeout` for it to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
