//! Kafka names: what topic names Kafka accepts, which ones Mekong keeps for itself, the consumer
//! groups of subscriptions, and a record's position as text (`topic/partition/offset`).

/// Topics starting with this prefix belong to Mekong itself (`_mekong.resources`, `_mekong.audit`).
pub const INTERNAL_TOPIC_PREFIX: &str = "_mekong.";

/// The separator of a subscription's group id. Neither client names (`a-z0-9._-`) nor group names
/// (`A-Za-z0-9._-`) can contain it, so no two (client, group) pairs share a Kafka group.
const GROUP_SEPARATOR: char = ':';

/// A record's position as operators read it and headers carry it: `topic/partition/offset`
/// (topic names have no `/`).
pub fn position_text(topic: &str, partition: i32, offset: i64) -> String {
    format!("{topic}/{partition}/{offset}")
}

/// The (topic, partition, offset) of [`position_text`]'s text.
pub fn parse_position(text: &str) -> Option<(&str, i32, i64)> {
    let mut parts = text.rsplitn(3, '/');
    let offset = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    Some((parts.next()?, partition, offset))
}

/// The Kafka consumer group of a client's subscription group: `mekong:<client>:<group>`.
pub fn subscription_group(client: &str, group: &str) -> String {
    format!("mekong{GROUP_SEPARATOR}{client}{GROUP_SEPARATOR}{group}")
}

/// Checks a subscription's group name: 1–200 of `A-Za-z0-9._-`.
pub fn check_group_name(group: &str) -> Result<(), String> {
    if group.is_empty()
        || group.len() > 200
        || !group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("a group name has 1 to 200 of a-z, A-Z, 0-9, `.`, `_`, `-`".into());
    }
    Ok(())
}

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
    fn a_position_reads_back_as_written() {
        assert_eq!(
            parse_position(&position_text("t.city", 2, 41)),
            Some(("t.city", 2, 41))
        );
        assert_eq!(parse_position("nonsense"), None);
    }

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

    #[test]
    fn subscription_groups_of_different_clients_never_collide() {
        // Once `mekong.a` + `b.g` and `mekong.a.b` + `g` were the same group.
        assert_ne!(
            subscription_group("a", "b.g"),
            subscription_group("a.b", "g")
        );
        assert_eq!(subscription_group("q1", "default"), "mekong:q1:default");
        assert!(check_group_name("b.g-1_X").is_ok());
        assert!(check_group_name("a:b").is_err());
        assert!(check_group_name("").is_err());
    }
}
