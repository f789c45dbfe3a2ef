//! Compiles proto/ with protox (pure Rust: no system `protoc` needed) and generates the tonic code.

use std::{env, fs, path::PathBuf};

use prost_types::FileDescriptorSet;
use protox::prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "mekong/v1/ingest.proto",
        "mekong/v1/subscribe.proto",
        "mekong/v1/admin.proto",
    ];
    let fds: FileDescriptorSet = protox::compile(files, [&proto_root])?;

    // Kept for gRPC server reflection.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("mekong_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        // A payload is shared, not copied, by every copy of a record that is not redacted.
        .bytes(".mekong.v1.PublishRequest.payload")
        .bytes(".mekong.v1.DeliveredRecord.payload")
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", proto_root.display());
    Ok(())
}
