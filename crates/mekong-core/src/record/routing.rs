//! Where a record goes: each route judges it (record type, source, CEL condition), and the
//! destinations of the routes that take it are merged into one copy per topic.

use serde_json::Value;

use super::{Progress, Stage, UnevaluableCondition};
use crate::catalog::{Catalog, Route};
use crate::pattern::any_matches;
use crate::redact::JsonPointer;
use crate::rejection::excerpt;

/// Whether a route takes a record, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteVerdict {
    Matched,
    /// The record type is not among the route's `match.types`.
    OtherType,
    /// The publishing client is not among the route's `match.sources`.
    OtherSource,
    /// The condition evaluated to false.
    ConditionFalse,
    /// The condition could not be evaluated (a missing field, a type mismatch): no match.
    Unevaluable(String),
}

impl Route {
    /// Judges one record (already parsed) against this route.
    pub fn judge(&self, data: &Value, record_type: &str, source: &str) -> RouteVerdict {
        let spec = &self.spec.matcher;
        if !any_matches(&self.types, record_type) {
            return RouteVerdict::OtherType;
        }
        if !(spec.sources.is_empty() || spec.sources.iter().any(|c| c == source)) {
            return RouteVerdict::OtherSource;
        }
        match &self.condition {
            None => RouteVerdict::Matched,
            Some(condition) => match condition.evaluate(data, record_type, source) {
                Ok(true) => RouteVerdict::Matched,
                Ok(false) => RouteVerdict::ConditionFalse,
                // The interpreter's text may quote the payload: keep it short.
                Err(error) => RouteVerdict::Unevaluable(excerpt(&error, 200).into_owned()),
            },
        }
    }
}

/// One destination topic of a record: the routes that send it there and the union of their
/// redactions (a field any of them wants hidden stays hidden).
pub(super) struct Target<'c> {
    pub topic: &'c str,
    pub routes: Vec<String>,
    pub redact: Vec<&'c JsonPointer>,
}

impl Catalog {
    /// The topics a record goes to, in the order the routes first reach them, and the routes whose
    /// condition could not be evaluated.
    pub(super) fn targets(
        &self,
        data: &Value,
        record_type: &str,
        source: &str,
        progress: Option<&Progress>,
    ) -> (Vec<Target<'_>>, Vec<UnevaluableCondition>) {
        let mut unevaluable = Vec::new();
        let mut targets: Vec<Target<'_>> = Vec::new();
        for (i, route) in self.routes.iter().enumerate() {
            Progress::at(progress, Stage::Condition(i));
            match route.judge(data, record_type, source) {
                RouteVerdict::Matched => {}
                RouteVerdict::Unevaluable(error) => {
                    unevaluable.push(UnevaluableCondition {
                        route: route.spec.name.clone(),
                        error,
                    });
                    continue;
                }
                _ => continue,
            }
            for dest in &route.destinations {
                match targets.iter_mut().find(|t| t.topic == dest.topic) {
                    Some(target) => {
                        target.routes.push(route.spec.name.clone());
                        for pointer in &dest.redact {
                            if !target.redact.contains(&pointer) {
                                target.redact.push(pointer);
                            }
                        }
                    }
                    None => targets.push(Target {
                        topic: &dest.topic,
                        routes: vec![route.spec.name.clone()],
                        redact: dest.redact.iter().collect(),
                    }),
                }
            }
        }
        (targets, unevaluable)
    }
}
