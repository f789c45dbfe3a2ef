//! The catalog: every resource, checked against the others and compiled (schemas, CEL programs,
//! pointers, patterns), in one immutable snapshot. A record is always judged by one catalog.

use std::collections::{BTreeMap, BTreeSet, HashMap, btree_map::Entry};
use std::fmt;
use std::sync::Arc;

use crate::access::{ApiKeyHash, Role, hash_api_key};
use crate::adapter::{Adapter, compile_adapter};
use crate::condition::Condition;
use crate::deadline::{Deadline, DeadlineSpec};
use crate::pattern::{Pattern, any_matches};
use crate::redact::JsonPointer;
use crate::resource::{
    ClientSpec, Document, Kind, RecordTypeSpec, Resource, ResourceError, RouteSpec,
};
use crate::schema::Schema;
use crate::topic::check_topic_name;
use serde_json::Value;

/// A record type, compiled.
#[derive(Debug)]
pub struct RecordType {
    pub spec: RecordTypeSpec,
    pub(crate) key: Option<JsonPointer>,
    /// Every schema version, oldest first: `schemas[v - 1]` is version `v`; the last is the spec's.
    pub(crate) schemas: Vec<Schema>,
}

impl RecordType {
    /// The newest schema version; records that do not pin a version are validated against it.
    pub fn latest_version(&self) -> u32 {
        self.schemas.len() as u32
    }

    /// The compiled schema of a version (1-based), if the record type has it.
    pub(crate) fn schema(&self, version: u32) -> Option<&Schema> {
        self.schemas.get((version as usize).checked_sub(1)?)
    }
}

/// A route, compiled.
#[derive(Debug)]
pub struct Route {
    pub spec: RouteSpec,
    pub(crate) types: Vec<Pattern>,
    pub(crate) condition: Option<Condition>,
    pub(crate) destinations: Vec<Destination>,
}

#[derive(Debug)]
pub(crate) struct Destination {
    pub(crate) topic: String,
    pub(crate) redact: Vec<JsonPointer>,
}

/// A client, compiled.
#[derive(Debug)]
pub struct Client {
    pub spec: ClientSpec,
    pub(crate) keys: Vec<ApiKeyHash>,
    pub(crate) bindings: Vec<crate::identity::Binding>,
    pub(crate) publish: Vec<Pattern>,
    pub(crate) subscribe: Vec<Pattern>,
}

impl Client {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.spec.roles.contains(&role)
    }

    /// Whether the key with this digest is (still) one of this client's.
    pub fn holds_key(&self, digest: &ApiKeyHash) -> bool {
        self.keys.contains(digest)
    }

    /// Open subscription streams it may hold on one hub instance.
    pub fn max_subscriptions(&self) -> u32 {
        self.spec.limits.max_subscriptions
    }

    /// Whether this client may publish records of the type.
    pub fn may_publish(&self, record_type: &str) -> bool {
        self.has_role(Role::Publisher) && any_matches(&self.publish, record_type)
    }

    /// Whether this client may read the topic: a subscriber whose `subscribe` patterns match it.
    /// Mekong's internal topics are for admins only, whatever the patterns say.
    pub fn may_subscribe(&self, topic: &str) -> bool {
        if topic.starts_with(crate::topic::INTERNAL_TOPIC_PREFIX) {
            return self.has_role(Role::Admin);
        }
        self.has_role(Role::Subscriber) && any_matches(&self.subscribe, topic)
    }
}

/// Every problem found while building a catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError(pub Vec<ResourceError>);

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} problem{} in the resources:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CatalogError {}

/// An immutable snapshot of all resources.
#[derive(Debug, Default)]
pub struct Catalog {
    pub(crate) record_types: BTreeMap<String, RecordType>,
    pub(crate) routes: Vec<Route>,
    pub(crate) clients: BTreeMap<String, Client>,
    pub(crate) adapters: BTreeMap<String, Adapter>,
    pub(crate) deadlines: BTreeMap<String, Arc<Deadline>>,
    /// The client of each API key digest, so a call is authenticated by one lookup however many
    /// clients there are. Only digests are compared: timing tells nothing about a key.
    key_owners: HashMap<ApiKeyHash, String>,
}

impl Catalog {
    /// Checks and compiles documents into a catalog. Every problem is reported, not just the first.
    /// Each record type has one schema version, its spec's.
    pub fn build(documents: Vec<Document>) -> Result<Catalog, CatalogError> {
        Catalog::build_versioned(documents, &BTreeMap::new())
    }

    /// As [`Catalog::build`], with the earlier schema versions of record types: `earlier[name]` holds
    /// versions 1, 2, ... and the spec's schema is the version after them.
    pub fn build_versioned(
        documents: Vec<Document>,
        earlier: &BTreeMap<String, Vec<Value>>,
    ) -> Result<Catalog, CatalogError> {
        let mut errors = Vec::new();
        let mut seen: BTreeMap<(Kind, String), (String, usize)> = BTreeMap::new();
        let mut record_types = Vec::new();
        let mut routes = Vec::new();
        let mut clients = Vec::new();
        let mut adapters = Vec::new();
        let mut deadlines = Vec::new();

        for doc in &documents {
            let name = doc.resource.name();
            if let Err(problem) = check_name(name) {
                errors.push(ResourceError::at(doc, "name", problem));
                continue;
            }
            match seen.entry((doc.resource.kind(), name.to_owned())) {
                Entry::Occupied(first) => {
                    let (source, index) = first.get();
                    errors.push(ResourceError::at(
                        doc,
                        "name",
                        format!("duplicate name; first defined in {source}, document {index}"),
                    ));
                    continue;
                }
                Entry::Vacant(slot) => {
                    slot.insert((doc.source.clone(), doc.index));
                }
            }
            match &doc.resource {
                Resource::RecordType(spec) => record_types.push((doc, spec)),
                Resource::Route(spec) => routes.push((doc, spec)),
                Resource::Client(spec) => clients.push((doc, spec)),
                Resource::Adapter(spec) => adapters.push((doc, spec)),
                Resource::Deadline(spec) => deadlines.push((doc, spec)),
            }
        }

        let mut catalog = Catalog::default();
        for (doc, spec) in record_types {
            let history = earlier.get(&spec.name).map_or(&[][..], Vec::as_slice);
            match compile_record_type(spec, history) {
                Ok(rt) => {
                    catalog.record_types.insert(spec.name.clone(), rt);
                }
                Err(e) => errors.extend(
                    e.into_iter()
                        .map(|(field, problem)| ResourceError::at(doc, field, problem)),
                ),
            }
        }
        let client_names: BTreeSet<&str> =
            clients.iter().map(|(_, spec)| spec.name.as_str()).collect();
        let mut key_owners: BTreeMap<[u8; 32], &str> = BTreeMap::new();
        let mut bound: Vec<(crate::identity::Binding, String)> = Vec::new();
        for (doc, spec) in clients {
            match compile_client(spec, &catalog) {
                Ok(client) => {
                    for key in &client.keys {
                        if let Some(other) = key_owners.insert(key.0, &spec.name) {
                            errors.push(ResourceError::at(doc, "apiKeys", format!("this key is already used by client `{other}`; every key must identify one client")));
                        }
                    }
                    // A certificate must identify one client: bindings of two clients that one
                    // certificate could match are refused, naming both.
                    for (i, binding) in client.bindings.iter().enumerate() {
                        if let Some((_, other)) = bound.iter().find(|(b, _)| b.overlaps(binding)) {
                            errors.push(ResourceError::at(doc, format!("certificates[{i}]"), format!("client `{}` and client `{other}` claim overlapping certificate bindings; a certificate must identify one client", spec.name)));
                        }
                    }
                    bound.extend(
                        client
                            .bindings
                            .iter()
                            .map(|b| (b.clone(), spec.name.clone())),
                    );
                    catalog.clients.insert(spec.name.clone(), client);
                }
                Err(e) => errors.extend(
                    e.into_iter()
                        .map(|(field, problem)| ResourceError::at(doc, field, problem)),
                ),
            }
        }
        for (doc, spec) in routes {
            match compile_route(spec, &catalog, &client_names) {
                Ok(route) => catalog.routes.push(route),
                Err(e) => errors.extend(
                    e.into_iter()
                        .map(|(field, problem)| ResourceError::at(doc, field, problem)),
                ),
            }
        }

        for (doc, spec) in adapters {
            match compile_adapter(spec) {
                Ok(adapter) => {
                    catalog.adapters.insert(spec.name.clone(), adapter);
                }
                Err(e) => errors.extend(
                    e.into_iter()
                        .map(|(field, problem)| ResourceError::at(doc, field, problem)),
                ),
            }
        }

        for (doc, spec) in deadlines {
            match compile_deadline(spec, &catalog) {
                Ok(deadline) => {
                    catalog
                        .deadlines
                        .insert(spec.name.clone(), Arc::new(deadline));
                }
                Err(e) => errors.extend(
                    e.into_iter()
                        .map(|(field, problem)| ResourceError::at(doc, field, problem)),
                ),
            }
        }

        if errors.is_empty() {
            catalog.index_keys();
            Ok(catalog)
        } else {
            Err(CatalogError(errors))
        }
    }

    /// Indexes the clients' key digests; a digest listed by two clients is the first one's, in
    /// name order.
    fn index_keys(&mut self) {
        for client in self.clients.values() {
            for key in &client.keys {
                self.key_owners
                    .entry(*key)
                    .or_insert_with(|| client.name().to_owned());
            }
        }
    }

    /// The client a presented API key belongs to.
    pub fn authenticate(&self, api_key: &str) -> Option<&Client> {
        self.authenticate_digest(&hash_api_key(api_key))
    }

    /// The client the digest of a presented API key belongs to.
    pub fn authenticate_digest(&self, digest: &ApiKeyHash) -> Option<&Client> {
        self.clients.get(self.key_owners.get(digest)?)
    }

    pub fn record_type(&self, name: &str) -> Option<&RecordType> {
        self.record_types.get(name)
    }

    pub fn client(&self, name: &str) -> Option<&Client> {
        self.clients.get(name)
    }

    pub fn adapters(&self) -> impl Iterator<Item = &Adapter> {
        self.adapters.values()
    }

    pub fn adapter(&self, name: &str) -> Option<&Adapter> {
        self.adapters.get(name)
    }

    pub fn deadlines(&self) -> impl Iterator<Item = &Arc<Deadline>> {
        self.deadlines.values()
    }

    pub fn deadline(&self, name: &str) -> Option<&Arc<Deadline>> {
        self.deadlines.get(name)
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Every topic some route writes to.
    pub fn destination_topics(&self) -> BTreeSet<&str> {
        self.routes
            .iter()
            .flat_map(|r| r.destinations.iter().map(|d| d.topic.as_str()))
            .collect()
    }

    pub fn clients(&self) -> impl Iterator<Item = &Client> {
        self.clients.values()
    }

    pub fn record_types(&self) -> impl Iterator<Item = &RecordType> {
        self.record_types.values()
    }

    /// How many resources of each kind: (record types, routes, clients).
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.record_types.len(),
            self.routes.len(),
            self.clients.len(),
        )
    }
}

/// Resource names: lower-case letters, digits, `.`, `_`, `-`; at most 253 characters.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("a name must have 1 to 253 characters".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!("`{name}` may use only a-z, 0-9, `.`, `_` and `-`"));
    }
    Ok(())
}

type FieldProblem = (String, String);

fn compile_record_type(
    spec: &RecordTypeSpec,
    earlier: &[Value],
) -> Result<RecordType, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let key = spec
        .key
        .as_deref()
        .map(JsonPointer::parse)
        .transpose()
        .unwrap_or_else(|e| {
            problems.push(("key".to_string(), e.to_string()));
            None
        });
    let mut schemas = Vec::with_capacity(earlier.len() + 1);
    for (i, schema) in earlier.iter().enumerate() {
        match Schema::compile(schema) {
            Ok(s) => schemas.push(s),
            Err(e) => problems.push(("schema".into(), format!("stored version {}: {e}", i + 1))),
        }
    }
    match Schema::compile(&spec.schema) {
        Ok(s) => schemas.push(s),
        Err(e) => problems.push(("schema".into(), e)),
    }
    if problems.is_empty() {
        Ok(RecordType {
            spec: spec.clone(),
            key,
            schemas,
        })
    } else {
        Err(problems)
    }
}

fn compile_client(spec: &ClientSpec, catalog: &Catalog) -> Result<Client, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    if spec.roles.is_empty() {
        problems.push((
            "roles".into(),
            "a client needs at least one role: publisher, subscriber or admin".into(),
        ));
    }
    let mut keys = Vec::new();
    for (i, key) in spec.api_keys.iter().enumerate() {
        match ApiKeyHash::from_hex(&key.sha256) {
            Ok(hash) => keys.push(hash),
            Err(problem) => problems.push((format!("apiKeys[{i}].sha256"), problem)),
        }
    }
    let mut bindings = Vec::new();
    for (i, binding) in spec.certificates.iter().enumerate() {
        match crate::identity::Binding::compile(binding) {
            Ok(b) if bindings.contains(&b) => {
                problems.push((format!("certificates[{i}]"), "listed twice".into()))
            }
            Ok(b) => bindings.push(b),
            Err(problem) => problems.push((format!("certificates[{i}]"), problem)),
        }
    }
    use crate::identity::Authentication;
    let auth = spec.authentication;
    if matches!(auth, Authentication::Certificate | Authentication::Both)
        && spec.certificates.is_empty()
    {
        problems.push((
            "authentication".into(),
            "this client must present a certificate, but `certificates` binds none".into(),
        ));
    }
    if matches!(auth, Authentication::Key | Authentication::Both) && spec.api_keys.is_empty() {
        problems.push((
            "authentication".into(),
            "this client must present an API key, but `apiKeys` lists none".into(),
        ));
    }
    let limits = &spec.limits;
    for (field, value) in [
        ("recordsPerSecond", limits.records_per_second),
        ("bytesPerSecond", limits.bytes_per_second),
        ("burst", limits.burst),
        ("maxStreams", limits.max_streams),
    ] {
        if value == Some(0) {
            problems.push((
                format!("limits.{field}"),
                "must be at least 1; leave it out for the instance's default".into(),
            ));
        }
    }
    let publish = type_patterns(&spec.publish, "publish", catalog, &mut problems);
    let mut subscribe = Vec::new();
    for (i, topic) in spec.subscribe.iter().enumerate() {
        match Pattern::parse(topic) {
            Ok(p) => subscribe.push(p),
            Err(problem) => problems.push((format!("subscribe[{i}]"), problem)),
        }
    }
    if problems.is_empty() {
        Ok(Client {
            spec: spec.clone(),
            keys,
            bindings,
            publish,
            subscribe,
        })
    } else {
        Err(problems)
    }
}

fn compile_route(
    spec: &RouteSpec,
    catalog: &Catalog,
    clients: &BTreeSet<&str>,
) -> Result<Route, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    if spec.matcher.types.is_empty() {
        problems.push((
            "match.types".into(),
            "list at least one record type (or a prefix like `dossier.*`)".into(),
        ));
    }
    let types = type_patterns(&spec.matcher.types, "match.types", catalog, &mut problems);
    for (i, source) in spec.matcher.sources.iter().enumerate() {
        if !clients.contains(source.as_str()) {
            problems.push((
                format!("match.sources[{i}]"),
                format!("no client is named `{source}`"),
            ));
        }
    }
    let condition = match &spec.matcher.when {
        Some(text) => match Condition::compile(text) {
            Ok(c) => Some(c),
            Err(problem) => {
                problems.push(("match.when".into(), problem));
                None
            }
        },
        None => None,
    };
    if spec.to.is_empty() {
        problems.push((
            "to".into(),
            "a route needs at least one destination topic".into(),
        ));
    }
    let mut destinations: Vec<Destination> = Vec::new();
    for (i, dest) in spec.to.iter().enumerate() {
        if let Err(problem) = check_topic_name(&dest.topic) {
            problems.push((format!("to[{i}].topic"), problem));
        } else if destinations.iter().any(|d| d.topic == dest.topic) {
            problems.push((
                format!("to[{i}].topic"),
                format!("topic `{}` is listed twice in this route", dest.topic),
            ));
        }
        let mut redact = Vec::new();
        for (j, pointer) in dest.redact.iter().enumerate() {
            match JsonPointer::parse(pointer) {
                Ok(p) => {
                    // The copy's Kafka key would carry the very value the copy hides.
                    for (name, key) in keys_of(&types, catalog) {
                        if p.covers(key) {
                            problems.push((
                                format!("to[{i}].redact[{j}]"),
                                format!(
                                    "`{p}` holds the partition key of record type `{name}` (key: {key}); \
                                     a redacted copy would still carry it as its Kafka key. Key the \
                                     record type by a field that is not personal data, or do not \
                                     redact this one"
                                ),
                            ));
                        }
                    }
                    redact.push(p)
                }
                Err(e) => problems.push((format!("to[{i}].redact[{j}]"), e.to_string())),
            }
        }
        destinations.push(Destination {
            topic: dest.topic.clone(),
            redact,
        });
    }
    if problems.is_empty() {
        Ok(Route {
            spec: spec.clone(),
            types,
            condition,
            destinations,
        })
    } else {
        Err(problems)
    }
}

/// A deadline reads whole records of keyed types from a topic routes fill with them, and writes its
/// events where no route writes.
fn compile_deadline(
    spec: &DeadlineSpec,
    catalog: &Catalog,
) -> Result<Deadline, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let changelog = crate::deadline::changelog_topic(&spec.name);
    if changelog.len() > 249 {
        problems.push((
            "name".into(),
            format!("too long for its changelog topic `{changelog}` (Kafka allows 249 characters)"),
        ));
    }
    for (i, name) in spec.track.iter().enumerate() {
        let field = format!("track[{i}]");
        match catalog.record_types.get(name) {
            None => problems.push((field, format!("no record type is named `{name}`"))),
            Some(rt) if rt.key.is_none() => problems.push((
                field,
                format!(
                    "record type `{name}` has no `key`: a deadline belongs to the records of one key"
                ),
            )),
            Some(_) => {
                let carried = catalog.routes.iter().any(|r| {
                    any_matches(&r.types, name)
                        && r.destinations
                            .iter()
                            .any(|d| d.topic == spec.from && d.redact.is_empty())
                });
                if !carried {
                    problems.push((
                        field,
                        format!(
                            "no route writes whole (unredacted) records of `{name}` to `{}`, the deadline's `from`",
                            spec.from
                        ),
                    ));
                }
            }
        }
    }
    if let Err(problem) = check_topic_name(&spec.from) {
        problems.push(("from".into(), problem));
    }
    if let Err(problem) = check_topic_name(&spec.to) {
        problems.push(("to".into(), problem));
    } else if spec.to == spec.from || catalog.destination_topics().contains(spec.to.as_str()) {
        problems.push((
            "to".into(),
            format!(
                "routes write records to `{}`: deadline events need a topic of their own",
                spec.to
            ),
        ));
    }
    match Deadline::compile(spec.clone()) {
        Ok(deadline) if problems.is_empty() => Ok(deadline),
        Ok(_) => Err(problems),
        Err(problem) => {
            problems.push(problem);
            Err(problems)
        }
    }
}

/// The key pointers of the record types some patterns match.
fn keys_of<'c>(
    patterns: &'c [Pattern],
    catalog: &'c Catalog,
) -> impl Iterator<Item = (&'c str, &'c JsonPointer)> + 'c {
    catalog
        .record_types
        .iter()
        .filter(|(name, _)| any_matches(patterns, name))
        .filter_map(|(name, rt)| Some((name.as_str(), rt.key.as_ref()?)))
}

/// Parses record-type patterns, each of which must match at least one known record type: a
/// pattern that matches nothing is almost always a typo.
fn type_patterns(
    texts: &[String],
    field: &str,
    catalog: &Catalog,
    problems: &mut Vec<FieldProblem>,
) -> Vec<Pattern> {
    let mut patterns = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        match Pattern::parse(text) {
            Ok(p) if catalog.record_types.keys().any(|name| p.matches(name)) => patterns.push(p),
            Ok(_) => problems.push((
                format!("{field}[{i}]"),
                format!("`{text}` matches no known record type"),
            )),
            Err(problem) => problems.push((format!("{field}[{i}]"), problem)),
        }
    }
    patterns
}

#[cfg(test)]
pub(crate) mod tests;
