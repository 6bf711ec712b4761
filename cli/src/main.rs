//! The `sluice` command.

/// jemalloc: see the workspace's `Cargo.toml` for why the binaries do not use glibc's malloc.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    sluice::commands::main()
}
