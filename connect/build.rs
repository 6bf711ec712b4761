//! Generates Spark Connect's messages and the server side of `SparkConnectService` from the
//! descriptor set `tools/vendor-spark-connect.py` took from PySpark 4.0.1, so no protoc and no
//! copy of Spark's .proto files are needed.
use prost::Message;

const DESCRIPTORS: &str = "../proto/spark-connect-4.0.1.fds.bin";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={DESCRIPTORS}");
    let bytes = std::fs::read(DESCRIPTORS)?;
    let fds = prost_types::FileDescriptorSet::decode(bytes.as_slice())?;
    tonic_prost_build::configure().build_client(false).generate_default_stubs(true).compile_fds(fds)?;
    Ok(())
}
