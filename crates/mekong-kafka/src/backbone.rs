//! Where Kafka is: a real cluster named by its bootstrap servers, or an embedded in-process mock
//! cluster for development.

use std::sync::mpsc;
use std::thread;

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;

/// Extra librdkafka properties (`security.protocol`, `sasl.*`, `ssl.*` ...) applied to every client.
pub type KafkaOptions = Vec<(String, String)>;

/// A running backbone.
pub struct Backbone {
    bootstrap_servers: String,
    options: KafkaOptions,
    /// For the embedded backbone: dropping this sender stops the mock cluster's thread.
    embedded: Option<(mpsc::Sender<()>, thread::JoinHandle<()>)>,
}

/// Brokers in the embedded cluster: three, so topics behave like on a small real cluster.
const EMBEDDED_BROKERS: i32 = 3;

impl Backbone {
    /// A real Kafka cluster.
    pub fn external(bootstrap_servers: impl Into<String>, options: KafkaOptions) -> Backbone {
        Backbone { bootstrap_servers: bootstrap_servers.into(), options, embedded: None }
    }

    /// Starts librdkafka's mock cluster in-process. It is not durable and keeps only the most recent
    /// few MiB per partition. The cluster is not `Send`, so it lives on a thread of its own.
    pub fn embedded() -> Result<Backbone, rdkafka::error::KafkaError> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("mekong-embedded-kafka".into())
            .spawn(move || match MockCluster::new(EMBEDDED_BROKERS) {
                Ok(cluster) => {
                    let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                    // Blocks until the backbone is dropped (the sender goes away).
                    let _ = stop_rx.recv();
                    drop(cluster);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .expect("spawning a thread");
        let bootstrap_servers = ready_rx.recv().expect("the mock cluster thread answers")?;
        Ok(Backbone { bootstrap_servers, options: Vec::new(), embedded: Some((stop_tx, thread)) })
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// A client configuration pointing at this backbone, with the extra options applied.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.options {
            config.set(k, v);
        }
        config
    }
}

impl Drop for Backbone {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.embedded.take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}
