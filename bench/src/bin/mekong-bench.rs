//! `mekong-bench`: throughput and latency of the Mekong gateway against a real Kafka broker; see
//! the library (`mekong_bench`) and `deploy/bench.sh`.

use clap::Parser;
use mekong_bench::{Args, run};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let failed = runtime.block_on(run(args))?;
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
