//! The flags that bound what callers and adapters may do: the gateway's limits (messages,
//! connections, streams, subscriptions, judging, shutdown) and the adapters' policy (which secrets
//! they may read, which networks they may reach). Each default is the library's own, written once
//! there; these groups only read flags into the libraries' config types.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use mekong_adapters::{AdapterPolicy, DEFAULT_SECRETS_ENV_PREFIX};
use mekong_gateway::{
    ConnectionSettings, GatewayConfig, HttpSettings, JudgeSettings, QuotaDefaults, Reflection,
    WindowSettings,
};

fn defaults() -> GatewayConfig {
    GatewayConfig::default()
}

fn connection_defaults() -> ConnectionSettings {
    ConnectionSettings::default()
}

/// A duration flag's default, as clap shows it.
fn shown(d: Duration) -> humantime::Duration {
    d.into()
}

/// Who may use gRPC server reflection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReflectionFlag {
    Public,
    Authenticated,
    Off,
}

impl From<Reflection> for ReflectionFlag {
    fn from(reflection: Reflection) -> ReflectionFlag {
        match reflection {
            Reflection::Public => ReflectionFlag::Public,
            Reflection::Authenticated => ReflectionFlag::Authenticated,
            Reflection::Off => ReflectionFlag::Off,
        }
    }
}

impl From<ReflectionFlag> for Reflection {
    fn from(flag: ReflectionFlag) -> Reflection {
        match flag {
            ReflectionFlag::Public => Reflection::Public,
            ReflectionFlag::Authenticated => Reflection::Authenticated,
            ReflectionFlag::Off => Reflection::Off,
        }
    }
}

/// How the gateway treats callers.
#[derive(Args, Debug, Clone)]
pub struct GatewayArgs {
    /// Largest payload of one record, in bytes.
    #[arg(long, default_value_t = defaults().limits.max_record_bytes)]
    pub max_record_bytes: usize,
    /// Most records in one PublishBatch call.
    #[arg(long, default_value_t = defaults().max_batch_records)]
    max_batch_records: usize,
    /// Most payload bytes in one PublishBatch call.
    #[arg(long, default_value_t = defaults().max_batch_bytes)]
    max_batch_bytes: usize,
    /// Largest AdminService message (an Apply of resources), in bytes.
    #[arg(long, default_value_t = defaults().max_admin_bytes)]
    max_admin_bytes: usize,
    /// Records of one PublishStream processed at once.
    #[arg(long, default_value_t = defaults().stream_in_flight)]
    stream_in_flight: usize,
    /// Records per second each client may publish on this instance, where its Client's
    /// `limits.recordsPerSecond` says nothing [default: unlimited].
    #[arg(long, value_name = "N")]
    default_records_per_second: Option<NonZeroU32>,
    /// Payload bytes per second each client may publish on this instance, where its Client's
    /// `limits.bytesPerSecond` says nothing [default: unlimited].
    #[arg(long, value_name = "BYTES")]
    default_bytes_per_second: Option<NonZeroU32>,
    /// Records a client may send at once beyond its rate, where `limits.burst` says nothing
    /// [default: one second's worth].
    #[arg(long, value_name = "N")]
    default_burst: Option<NonZeroU32>,
    /// PublishStream streams each client may hold open on this instance, where
    /// `limits.maxStreams` says nothing.
    #[arg(long, value_name = "N", default_value_t = defaults().quotas.max_streams)]
    default_max_streams: NonZeroU32,
    /// Idempotency keys remembered in all (most recent first).
    #[arg(long, default_value_t = defaults().idempotency.max_entries)]
    idempotency_window_size: usize,
    /// Idempotency keys remembered per client: one client cannot push out the others' keys.
    #[arg(long, default_value_t = defaults().idempotency.max_entries_per_client)]
    idempotency_window_per_client: usize,
    /// How long an idempotency key is remembered.
    #[arg(long, default_value_t = shown(defaults().idempotency.max_age))]
    idempotency_window_age: humantime::Duration,
    /// Records judged (parsed, validated, routed) at once, on threads apart from the network's.
    #[arg(long, default_value_t = defaults().judge.threads)]
    judge_threads: usize,
    /// The longest judging one record may take; a record over it is refused, naming the rule.
    #[arg(long, default_value_t = shown(defaults().judge.max_time))]
    max_judge_time: humantime::Duration,
    /// Subscription streams open on this instance, all clients together (each client also has
    /// `limits.maxSubscriptions`).
    #[arg(long, default_value_t = defaults().max_subscriptions)]
    max_subscriptions: usize,
    /// Who may use gRPC server reflection (what grpcurl lists and describes).
    #[arg(long, value_enum, default_value_t = ReflectionFlag::from(defaults().reflection))]
    reflection: ReflectionFlag,
    /// Client connections open at once; more are closed as soon as they are accepted.
    #[arg(long, default_value_t = connection_defaults().max_connections)]
    max_connections: usize,
    /// Calls (HTTP/2 streams) open at once on one connection.
    #[arg(long, default_value_t = connection_defaults().max_streams)]
    max_streams_per_connection: u32,
    /// How long a new connection has to make its first authenticated call before it is closed.
    #[arg(long, default_value_t = shown(connection_defaults().handshake_timeout))]
    handshake_timeout: humantime::Duration,
    /// How often an idle connection is pinged (HTTP/2 PING).
    #[arg(long, default_value_t = shown(connection_defaults().keepalive_interval))]
    keepalive_interval: humantime::Duration,
    /// How long a ping's answer may take before the connection is closed.
    #[arg(long, default_value_t = shown(connection_defaults().keepalive_timeout))]
    keepalive_timeout: humantime::Duration,
    /// Connections older than this are asked to go away, so long streams reconnect and
    /// authenticate again.
    #[arg(long, default_value_t = shown(connection_defaults().max_age))]
    max_connection_age: humantime::Duration,
    /// How long an aged connection may finish its calls before it is closed.
    #[arg(long, default_value_t = shown(connection_defaults().max_age_grace))]
    max_connection_age_grace: humantime::Duration,
    /// How long the body of an HTTP API request may take to arrive (slow senders, endless chunked
    /// bodies); it is refused with 408 after that.
    #[arg(long, default_value_t = shown(defaults().http.read_timeout))]
    http_read_timeout: humantime::Duration,
    /// How long a shutdown (SIGTERM, Ctrl-C) waits for calls and streams to end before it closes
    /// their connections, flushes and exits.
    #[arg(long, default_value_t = shown(defaults().shutdown_grace))]
    pub shutdown_grace: humantime::Duration,
}

impl GatewayArgs {
    /// The gateway's config these flags describe.
    pub fn config(&self) -> GatewayConfig {
        GatewayConfig {
            limits: mekong_core::Limits {
                max_record_bytes: self.max_record_bytes,
            },
            max_batch_records: self.max_batch_records,
            max_batch_bytes: self.max_batch_bytes,
            max_admin_bytes: self.max_admin_bytes,
            stream_in_flight: self.stream_in_flight,
            idempotency: WindowSettings {
                max_entries: self.idempotency_window_size,
                max_entries_per_client: self.idempotency_window_per_client,
                max_age: self.idempotency_window_age.into(),
            },
            judge: JudgeSettings {
                threads: self.judge_threads,
                max_time: self.max_judge_time.into(),
            },
            max_subscriptions: self.max_subscriptions,
            quotas: QuotaDefaults {
                records_per_second: self.default_records_per_second,
                bytes_per_second: self.default_bytes_per_second,
                burst: self.default_burst,
                max_streams: self.default_max_streams,
            },
            reflection: self.reflection.into(),
            connections: ConnectionSettings {
                max_connections: self.max_connections,
                max_streams: self.max_streams_per_connection,
                handshake_timeout: self.handshake_timeout.into(),
                keepalive_interval: self.keepalive_interval.into(),
                keepalive_timeout: self.keepalive_timeout.into(),
                max_age: self.max_connection_age.into(),
                max_age_grace: self.max_connection_age_grace.into(),
            },
            http: HttpSettings {
                read_timeout: self.http_read_timeout.into(),
            },
            shutdown_grace: self.shutdown_grace.into(),
            // Not a flag: on when spans are exported (--otlp-endpoint).
            record_spans: defaults().record_spans,
        }
    }
}

/// What adapters may read and reach.
#[derive(Args, Debug, Clone)]
pub struct AdapterPolicyArgs {
    /// A directory below which adapters may read `file:` secrets (repeatable; none: no `file:`
    /// secrets at all).
    #[arg(long = "secrets-dir", value_name = "DIR")]
    secrets_dirs: Vec<PathBuf>,
    /// The prefix of environment variables adapters may read `env:` secrets from.
    #[arg(long, default_value = DEFAULT_SECRETS_ENV_PREFIX)]
    secrets_env_prefix: String,
    /// A network adapters may send to although it is loopback, private or link-local, e.g.
    /// 10.20.0.0/16 (repeatable; public addresses are always allowed).
    #[arg(long = "adapter-allow-network", value_name = "CIDR")]
    allowed_networks: Vec<ipnet::IpNet>,
}

impl AdapterPolicyArgs {
    pub fn policy(&self) -> AdapterPolicy {
        AdapterPolicy {
            secrets_dirs: self.secrets_dirs.clone(),
            secrets_env_prefix: self.secrets_env_prefix.clone(),
            allowed_networks: self.allowed_networks.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        gateway: GatewayArgs,
        #[command(flatten)]
        policy: AdapterPolicyArgs,
    }

    #[test]
    fn without_flags_the_libraries_defaults_apply() {
        let flags = Flags::parse_from(["mekong"]);
        let config = flags.gateway.config();
        let defaults = GatewayConfig::default();
        assert_eq!(config.max_admin_bytes, defaults.max_admin_bytes);
        assert_eq!(config.shutdown_grace, defaults.shutdown_grace);
        assert_eq!(config.connections.max_age, defaults.connections.max_age);
        assert_eq!(config.judge.max_time, defaults.judge.max_time);
        assert_eq!(config.reflection, Reflection::Authenticated);
        let policy = flags.policy.policy();
        assert!(policy.secrets_dirs.is_empty() && policy.allowed_networks.is_empty());
        assert_eq!(policy.secrets_env_prefix, "MEKONG_SECRET_");
    }

    #[test]
    fn flags_reach_the_config() {
        let flags = Flags::parse_from([
            "mekong",
            "--max-admin-bytes",
            "1000",
            "--reflection",
            "off",
            "--max-connections",
            "7",
            "--handshake-timeout",
            "2s",
            "--max-judge-time",
            "250ms",
            "--shutdown-grace",
            "3s",
            "--secrets-dir",
            "/run/secrets",
            "--adapter-allow-network",
            "10.0.0.0/8",
            "--idempotency-window-size",
            "50",
            "--idempotency-window-per-client",
            "5",
            "--idempotency-window-age",
            "90s",
            "--default-records-per-second",
            "50",
            "--default-max-streams",
            "4",
        ]);
        let config = flags.gateway.config();
        assert_eq!(config.max_admin_bytes, 1000);
        assert_eq!(config.reflection, Reflection::Off);
        assert_eq!(config.connections.max_connections, 7);
        assert_eq!(config.connections.handshake_timeout, Duration::from_secs(2));
        assert_eq!(config.judge.max_time, Duration::from_millis(250));
        assert_eq!(config.shutdown_grace, Duration::from_secs(3));
        let window = config.idempotency;
        assert_eq!(
            (
                window.max_entries,
                window.max_entries_per_client,
                window.max_age
            ),
            (50, 5, Duration::from_secs(90))
        );
        assert_eq!(
            (
                config.quotas.records_per_second.map(NonZeroU32::get),
                config.quotas.bytes_per_second,
                config.quotas.max_streams.get()
            ),
            (Some(50), None, 4)
        );
        assert!(Flags::try_parse_from(["mekong", "--default-burst", "0"]).is_err());
        let policy = flags.policy.policy();
        assert_eq!(policy.secrets_dirs, [PathBuf::from("/run/secrets")]);
        assert_eq!(policy.allowed_networks.len(), 1);
        assert!(Flags::try_parse_from(["mekong", "--adapter-allow-network", "nonsense"]).is_err());
    }
}
