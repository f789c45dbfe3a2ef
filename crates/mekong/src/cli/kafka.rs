//! Where the hub's Kafka is and how its topics are made: the flags `mekong serve` and `mekong
//! adapters run` share.

use clap::Args;
use mekong_hub::BackboneConfig;
use mekong_kafka::{RESOURCES_TOPIC, StoreSettings};

#[derive(Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port,...). Without it, `serve` starts an embedded development
    /// backbone; `adapters run` needs it.
    #[arg(long, env = "MEKONG_KAFKA")]
    pub kafka: Option<String>,
    /// Extra librdkafka client property, e.g. security.protocol=SASL_SSL (repeatable). A value
    /// `env:NAME` or `file:PATH` is read from there at start (sasl.password=env:MEKONG_SECRET_KAFKA),
    /// so that secrets stay off command lines; it is never logged.
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = key_value)]
    pub kafka_options: Vec<(String, String)>,
    /// The compacted topic that holds the resources. Hubs sharing one Kafka cluster share their
    /// resources when they share this topic.
    #[arg(long, default_value = RESOURCES_TOPIC)]
    pub resources_topic: String,
    /// Replication factor of the topics the hub creates, internal ones included (-1: the cluster's
    /// default).
    #[arg(long, default_value_t = StoreSettings::default().replication, allow_negative_numbers = true)]
    pub topic_replication: i32,
}

impl KafkaArgs {
    pub fn backbone(&self) -> BackboneConfig {
        match &self.kafka {
            Some(bootstrap) => BackboneConfig::External {
                bootstrap: bootstrap.clone(),
                options: self.kafka_options.clone(),
            },
            None => BackboneConfig::Embedded,
        }
    }

    pub fn store(&self) -> StoreSettings {
        StoreSettings {
            topic: self.resources_topic.clone(),
            replication: self.topic_replication,
            ..StoreSettings::default()
        }
    }
}

/// The backbone with every `env:`/`file:` Kafka option value read from where it points.
pub fn resolve_secrets(backbone: BackboneConfig) -> Result<BackboneConfig, super::Failure> {
    let BackboneConfig::External { bootstrap, options } = backbone else {
        return Ok(backbone);
    };
    let mut resolved = Vec::with_capacity(options.len());
    for (key, value) in options {
        let refused = |why: String| super::Failure::usage(format!("--kafka-option {key}: {why}"));
        let value = if value.starts_with("env:") || value.starts_with("file:") {
            let text = String::from_utf8(read_secret(&value).map_err(refused)?)
                .map_err(|_| refused("not UTF-8".into()))?;
            // A secret file's final newline is not part of the secret.
            text.strip_suffix('\n').unwrap_or(&text).to_owned()
        } else {
            value
        };
        resolved.push((key, value));
    }
    Ok(BackboneConfig::External {
        bootstrap,
        options: resolved,
    })
}

/// A secret named `env:NAME` (the variable's value) or `file:PATH` (the file's bytes).
pub fn read_secret(reference: &str) -> Result<Vec<u8>, String> {
    if let Some(name) = reference.strip_prefix("env:") {
        std::env::var(name)
            .map(String::into_bytes)
            .map_err(|_| format!("the environment variable {name} is not set"))
    } else if let Some(path) = reference.strip_prefix("file:") {
        std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
    } else {
        Err(format!(
            "`{reference}`: name the secret as file:PATH or env:NAME, not on the command line"
        ))
    }
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_values_are_read_from_the_environment_or_a_file() {
        let file = std::env::temp_dir().join(format!("mekong-kafka-secret-{}", std::process::id()));
        std::fs::write(&file, "from-a-file\n").unwrap();
        let name = format!("MEKONG_TEST_KAFKA_SECRET_{}", std::process::id());
        let backbone = BackboneConfig::External {
            bootstrap: "k:9092".into(),
            options: vec![
                ("sasl.username".into(), "mekong".into()),
                ("sasl.password".into(), format!("file:{}", file.display())),
                ("ssl.key.password".into(), format!("env:{name}")),
            ],
        };
        let missing = resolve_secrets(backbone.clone()).expect_err("an unset variable");
        assert_eq!(
            missing.message,
            format!("--kafka-option ssl.key.password: the environment variable {name} is not set")
        );
        let BackboneConfig::External { options, .. } = resolve_secrets(BackboneConfig::External {
            bootstrap: "k:9092".into(),
            options: vec![("sasl.password".into(), format!("file:{}", file.display()))],
        })
        .unwrap() else {
            unreachable!()
        };
        assert_eq!(
            options,
            [("sasl.password".to_string(), "from-a-file".to_string())]
        );
        let _ = std::fs::remove_file(file);
    }
}
