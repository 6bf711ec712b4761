//! State files of one operator: snapshots (`state/<op>/<partition>/<version>.snapshot`),
//! delta bundles and their manifests (`state/<op>/deltas/<version>/…`), and deltas in the
//! layout before bundles (`<partition>/<version>.delta`) — CRC32C-framed Arrow IPC streams and
//! JSON indexes, loaded into keyed state when a partition is rebuilt from the checkpoint.
//!
//! Input: a [`crate::corpus::file_set`] of the operator's files, named relative to `state/0`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sluice_common::StateVersion;
use sluice_state::{DeltaBundles, DeltaManifest, StateFiles, StatePartition, StatePolicy};

use crate::corpus::{file_set, parse_file_set};
use crate::Target;

pub const TARGET: Target = Target {
    name: "state_file",
    seeds,
    store_seeds: true,
    dictionary: &[
        "SLCK",
        "@@ 0/1.delta",
        "@@ 0/2.snapshot",
        "@@ 0/18446744073709551615.snapshot",
        "@@ deltas/1/manifest",
        "@@ deltas/2/call.bundle",
        ".delta",
        ".snapshot",
        "\"partition\":",
        "\"offset\":",
        "\"len\":",
        "ARROW1",
        "\u{ff}\u{ff}",
    ],
    run,
};

fn schemas() -> (SchemaRef, SchemaRef) {
    (
        Arc::new(Schema::new(vec![Field::new("user_id", DataType::Utf8, true)])),
        Arc::new(Schema::new(vec![Field::new("count", DataType::Int64, true)])),
    )
}

fn run(input: &[u8]) {
    let files = parse_file_set(input);
    let versions: Vec<u64> = files.iter().filter_map(|(n, _)| version_in(n)).collect();
    super::block_on(async {
        let location = super::memory_location();
        super::put_files(&location, "state/0", &files).await;
        let (keys, values) = schemas();
        // Load the newest version, as a task does when the partition moved to its executor.
        if let Some(v) = versions.iter().max() {
            let files = StateFiles::new(&location, 0, 0);
            let _ = StatePartition::load(files, Arc::clone(&keys), Arc::clone(&values), StateVersion(*v), policy()).await;
        }
    });
}

/// The version a file name under `state/0` is of: `<partition>/<version>.<kind>` or
/// `deltas/<version>/<file>`.
fn version_in(name: &str) -> Option<u64> {
    match name.split('/').collect::<Vec<_>>().as_slice() {
        ["deltas", v, _] => v.parse().ok(),
        [_, file] => file.split_once('.')?.0.parse().ok(),
        _ => None,
    }
}

/// A snapshot once more than two deltas follow the last one.
fn policy() -> StatePolicy {
    StatePolicy { min_deltas_for_snapshot: 2, min_batches_to_retain: 100, maintenance_interval: std::time::Duration::ZERO }
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    super::block_on(async {
        let location = super::memory_location();
        let (keys, values) = schemas();
        let mut partition = StatePartition::load(StateFiles::new(&location, 0, 0), keys, values, StateVersion::EMPTY, policy())
            .await
            .expect("an empty partition");
        for batch in 0..5i64 {
            let users: ArrayRef =
                Arc::new(StringArray::from(vec![format!("user-{batch}"), "user-0".to_string(), "ü€𝄞".to_string()]));
            let counts: ArrayRef = Arc::new(Int64Array::from(vec![batch, batch * 10, i64::MAX - batch]));
            let k = partition.state.encode_keys(&[users], 3).expect("encoding keys");
            let v = partition.state.encode_values(&[counts], 3).expect("encoding values");
            for row in 0..3 {
                partition.state.put(k.row(row).as_ref(), v.row(row).as_ref(), (row == 0).then_some(batch * 1_000_000));
            }
            if batch == 3 {
                partition.state.remove(k.row(1).as_ref());
            }
            // The executor's bundle, then the driver's manifest.
            let version = partition.version().next().0;
            if let Some(delta) = partition.commit().expect("committing state").delta {
                let bundles = DeltaBundles::new(&location, 0);
                let deltas = bundles.write(version, "call", vec![delta]).await.expect("writing a bundle");
                bundles.write_manifest(version, &DeltaManifest { deltas }).await.expect("writing a manifest");
            }
            // Maintenance after every batch, as with a short maintenance interval.
            if let Some(work) = partition.maintenance(std::time::Instant::now()).expect("maintenance") {
                if let Some(version) = work.run().await.expect("running maintenance") {
                    partition.snapshot_written(version);
                }
            }
        }
        let files = super::get_files(&location, "state/0").await;
        let mut out = vec![("partition.fileset".to_string(), file_set(&files))];
        for (name, content) in &files {
            let seed = name.replace('/', "_");
            out.push((format!("{seed}.fileset"), file_set(&[(name.clone(), content.clone())])));
        }
        out
    })
}
