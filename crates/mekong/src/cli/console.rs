//! The flags of the administrators' console (`serve`, `adapters run`): served at `/console` on the
//! metrics listener unless `--no-console`.

use clap::Args;
use mekong_console::ConsoleConfig;

fn defaults() -> ConsoleConfig {
    ConsoleConfig::default()
}

fn shown(d: std::time::Duration) -> humantime::Duration {
    d.into()
}

#[derive(Args, Debug)]
pub struct ConsoleArgs {
    /// Do not serve the administrators' console at /console on the metrics listener.
    #[arg(long)]
    no_console: bool,
    /// How long a console session lasts from sign-in.
    #[arg(long, default_value_t = shown(defaults().session_ttl))]
    console_session_ttl: humantime::Duration,
    /// Wrong keys from one address before its sign-ins are slowed (each further one waits twice
    /// as long as the last, from 2 s up to 5 min).
    #[arg(long, default_value_t = defaults().free_failures)]
    console_free_failures: u32,
}

impl ConsoleArgs {
    pub fn config(&self) -> Option<ConsoleConfig> {
        (!self.no_console).then(|| ConsoleConfig {
            session_ttl: self.console_session_ttl.into(),
            free_failures: self.console_free_failures,
            ..defaults()
        })
    }
}
