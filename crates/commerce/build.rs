//! Generates the gRPC code for `proto/commerce/v1/commerce.proto` with a vendored `protoc`, so a
//! clean clone builds without a system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // The served methods, which the gRPC metrics create their series for.
        .file_descriptor_set_path(out_dir.join("commerce_descriptor.bin"))
        .build_client(true)
        .build_server(true)
        // prost's codec, but a request that does not decode is INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::grpc::codec::RequestCodec")
        .compile_with_config(config, &["proto/commerce/v1/commerce.proto"], &["proto"])?;
    Ok(())
}
