//! Name patterns used by routes and clients: an exact name, or a prefix ending in `*`
//! (`payment.*`, or `*` for everything).

/// A compiled name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    /// Parses a pattern; `*` is allowed only at the end.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("empty pattern".into());
        }
        match text.strip_suffix('*') {
            Some(prefix) if !prefix.contains('*') => Ok(Pattern::Prefix(prefix.to_owned())),
            Some(_) => Err(format!(
                "pattern `{text}`: `*` may appear only once, at the end"
            )),
            None if text.contains('*') => {
                Err(format!("pattern `{text}`: `*` may appear only at the end"))
            }
            None => Ok(Pattern::Exact(text.to_owned())),
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(exact) => exact == name,
            Pattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }
}

/// True when any of the patterns matches the name.
pub fn any_matches(patterns: &[Pattern], name: &str) -> bool {
    patterns.iter().any(|p| p.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_prefix() {
        let exact = Pattern::parse("dossier.sync").unwrap();
        assert!(exact.matches("dossier.sync"));
        assert!(!exact.matches("dossier.sync2"));
        let prefix = Pattern::parse("payment.*").unwrap();
        assert!(prefix.matches("payment.completed"));
        assert!(!prefix.matches("paymentx"));
        assert!(Pattern::parse("*").unwrap().matches("anything"));
    }

    #[test]
    fn star_only_at_the_end() {
        assert!(Pattern::parse("pay*ment").is_err());
        assert!(Pattern::parse("**").is_err());
        assert!(Pattern::parse("").is_err());
    }
}
