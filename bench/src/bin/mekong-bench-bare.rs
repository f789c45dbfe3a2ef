//! `mekong-bench-bare`: the transport floor. An IngestService that answers every record OK at once
//! (as many placements as the gateway would give), doing no work at all: no authentication, no
//! validation, no Kafka. The bench drives it with the same load generator and payloads as the
//! gateway, so the gateway's figures can be read beside what tonic itself costs on this machine.

use std::pin::Pin;

use clap::Parser;
use futures::{Stream, StreamExt};
use mekong_proto::v1::ingest_service_server::{IngestService, IngestServiceServer};
use mekong_proto::v1::{
    Placement, PublishBatchRequest, PublishBatchResponse, PublishRequest, PublishResponse,
    PublishResult, publish_result,
};
use tonic::{Request, Response, Status, Streaming};

// The gateway's allocator, so the floor is measured with the same one.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Placements in each answer (the gateway's copies per record).
    #[arg(long, default_value_t = 2)]
    copies: usize,
}

#[derive(Clone)]
struct Bare {
    copies: usize,
}

impl Bare {
    fn answer(&self, request: &PublishRequest) -> PublishResponse {
        PublishResponse {
            record_id: request.request_id.clone(),
            placements: (0..self.copies)
                .map(|i| Placement {
                    topic: format!("topic-{i}"),
                    partition: 0,
                    offset: 0,
                    routes: vec!["route".into()],
                })
                .collect(),
            duplicate: false,
        }
    }
}

type Results = Pin<Box<dyn Stream<Item = Result<PublishResult, Status>> + Send>>;

#[tonic::async_trait]
impl IngestService for Bare {
    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        Ok(Response::new(self.answer(request.get_ref())))
    }

    async fn publish_batch(
        &self,
        request: Request<PublishBatchRequest>,
    ) -> Result<Response<PublishBatchResponse>, Status> {
        let results = request
            .get_ref()
            .records
            .iter()
            .map(|r| PublishResult {
                request_id: r.request_id.clone(),
                outcome: Some(publish_result::Outcome::Published(self.answer(r))),
            })
            .collect();
        Ok(Response::new(PublishBatchResponse { results }))
    }

    type PublishStreamStream = Results;

    async fn publish_stream(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Results>, Status> {
        let this = self.clone();
        let results = request.into_inner().map(move |item| {
            item.map(|r| PublishResult {
                request_id: r.request_id.clone(),
                outcome: Some(publish_result::Outcome::Published(this.answer(&r))),
            })
        });
        Ok(Response::new(Box::pin(results)))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let service = IngestServiceServer::new(Bare {
        copies: args.copies,
    })
    .max_decoding_message_size(64 << 20);
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(service)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
        )
        .await?;
    Ok(())
}
