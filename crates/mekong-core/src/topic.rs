//! Kafka topic names: what Kafka accepts, and which names Mekong keeps for itself.

/// Topics starting with this prefix belong to Mekong itself (`_mekong.resources`, `_mekong.audit`).
pub const INTERNAL_TOPIC_PREFIX: &str = "_mekong.";

/// Checks a topic name a route may write to: legal for Kafka (1–249 of `[a-zA-Z0-9._-]`, not `.` or
/// `..`) and not one of Mekong's internal topics.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters long; Kafka allows at most 249",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` is not a legal Kafka topic name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name `{name}` contains `{c}`; Kafka allows only ASCII letters, digits, `.`, `_` and `-`"
        ));
    }
    if name.starts_with(INTERNAL_TOPIC_PREFIX) {
        return Err(format!(
            "topic `{name}` is internal to Mekong (prefix `{INTERNAL_TOPIC_PREFIX}`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        assert!(check_topic_name("dvcqg.dossier-sync.v1").is_ok());
        assert!(check_topic_name("city_dossier.V2").is_ok());
    }

    #[test]
    fn refuses_what_kafka_refuses_and_internal_topics() {
        for bad in [
            "",
            ".",
            "..",
            "has space",
            "ho-sơ",
            "a/b",
            "_mekong.resources",
        ] {
            assert!(check_topic_name(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(check_topic_name(&"x".repeat(250)).is_err());
        assert!(check_topic_name(&"x".repeat(249)).is_ok());
    }
}
