//! Generates the gRPC code for `proto/commerce/v1/commerce.proto` with a vendored `protoc`, so a
//! clean clone builds without a system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &["proto/commerce/v1/commerce.proto"], &["proto"])?;
    Ok(())
}
