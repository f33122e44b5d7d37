//! Generates the ONNX protobuf types from the vendored `proto/onnx.proto`.
//!
//! `protox` compiles the schema in pure Rust, so no `protoc` binary is needed at build time.
//! `bytes` fields decode as `bytes::Bytes` slices of the input buffer, so a model's weights are
//! not copied when the model is decoded.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let descriptors = protox::compile(["onnx.proto"], ["proto"])?;
    prost_build::Config::new().bytes(["."]).compile_fds(descriptors)?;
    Ok(())
}
