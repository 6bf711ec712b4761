//! Generates the gRPC code from `proto/sluice.proto` with a vendored `protoc`, so a fresh
//! machine needs nothing from apt to build sluice.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    tonic_prost_build::configure().compile_protos(&["proto/sluice.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/sluice.proto");
    Ok(())
}
