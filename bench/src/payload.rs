//! Payloads: the sample with a hole where the key goes, so records differ only in their key.

use std::sync::atomic::AtomicU64;

use anyhow::Context;
use mekong_core::{JsonPointer, Redacted};
use serde_json::Value;

/// A payload with a hole where the key goes: records differ only in their key.
pub(crate) struct Template {
    pub(crate) prefix: Vec<u8>,
    pub(crate) suffix: Vec<u8>,
    pub(crate) key_base: String,
}

pub(crate) const MARKER: &str = "@@MEKONG-BENCH-KEY@@";

impl Template {
    pub(crate) fn new(
        sample: &Value,
        key_pointer: &str,
        redact: &[String],
    ) -> anyhow::Result<Template> {
        // Redacted as the gateway redacts: the same serialiser.
        let pointers = redact
            .iter()
            .map(|p| JsonPointer::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&JsonPointer> = pointers.iter().collect();
        let mut value: Value = serde_json::from_slice(&Redacted::new(sample, &refs).to_vec())?;
        let slot = value
            .pointer_mut(key_pointer)
            .with_context(|| format!("the sample has no key field at {key_pointer}"))?;
        let key_base = slot
            .as_str()
            .with_context(|| format!("the sample's {key_pointer} is not a string"))?
            .to_owned();
        *slot = Value::String(MARKER.to_owned());
        let text = serde_json::to_vec(&value)?;
        let at = find(&text, MARKER.as_bytes()).context("marker not found")?;
        Ok(Template {
            prefix: text[..at].to_vec(),
            suffix: text[at + MARKER.len()..].to_vec(),
            key_base,
        })
    }

    pub(crate) fn key(&self, n: u64) -> String {
        format!("{}-{n:012}", self.key_base)
    }

    pub(crate) fn render(&self, key: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + key.len() + self.suffix.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&self.suffix);
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.prefix.len() + self.key(0).len() + self.suffix.len()
    }
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Every record of the run gets a distinct number, hence a distinct key.
pub(crate) static NEXT: AtomicU64 = AtomicU64::new(0);
