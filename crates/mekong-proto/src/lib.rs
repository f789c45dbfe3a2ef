//! Mekong's wire contract, generated from `proto/mekong/v1`. Nothing here is written by hand but
//! this glue: change the `.proto` files, not this crate.

pub mod v1 {
    tonic::include_proto!("mekong.v1");
}

/// The encoded descriptor set of every Mekong proto file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/mekong_descriptor.bin"));
