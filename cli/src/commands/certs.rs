//! `sluice certs`: a development CA and certificates for a local cluster (see
//! `sluice_security::dev_ca` for the files).

use std::path::PathBuf;

use clap::Args;
use sluice_common::error::Result;

/// Arguments of `sluice certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write the files into (created; existing files are never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// A host name or IP address members are reached at (repeat, or comma-separate).
    #[arg(long = "host", value_delimiter = ',', default_values_t = ["127.0.0.1".to_string(), "localhost".to_string()])]
    hosts: Vec<String>,
    /// Days the certificates are valid.
    #[arg(long, default_value_t = 365)]
    days: u32,
}

pub fn certs(args: CertsArgs) -> Result<()> {
    let files = sluice_security::dev_ca::generate(&args.out, &args.hosts, args.days)?;
    let p = |name: &str| files.path(name).display().to_string();
    println!("wrote a development CA and certificates for {} to {}", args.hosts.join(", "), args.out.display());
    println!(
        "  drivers and executors: --tls-ca {} --tls-cert {} --tls-key {}",
        p("ca.pem"),
        p("member.pem"),
        p("member-key.pem")
    );
    println!("  driver, to accept users: --client-ca {} --auth-token-file {}", p("client-ca.pem"), p("token"));
    println!(
        "  users (submit, queries, stop): --tls-ca {} and either --tls-cert {} --tls-key {} or --token-file {}",
        p("ca.pem"),
        p("user.pem"),
        p("user-key.pem"),
        p("token")
    );
    Ok(())
}
