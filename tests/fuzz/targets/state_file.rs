//! State files (`state/<op>/<partition>/<version>.delta|.snapshot`): CRC32C-framed Arrow IPC
//! streams loaded into keyed state when a partition is rebuilt from the checkpoint.
//!
//! Input: a [`crate::corpus::file_set`] of one partition's state files.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sluice_common::StateVersion;
use sluice_state::{StateFiles, StatePartition, StatePolicy};

use crate::corpus::{file_set, parse_file_set};
use crate::Target;

pub const TARGET: Target = Target {
    name: "state_file",
    seeds,
    store_seeds: true,
    dictionary: &[
        "SLCK",
        "@@ 1.delta",
        "@@ 2.snapshot",
        "@@ 18446744073709551615.snapshot",
        ".delta",
        ".snapshot",
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
    let versions: Vec<u64> = files.iter().filter_map(|(n, _)| n.split_once('.')?.0.parse().ok()).collect();
    super::block_on(async {
        let location = super::memory_location();
        super::put_files(&location, "state/0/0", &files).await;
        let (keys, values) = schemas();
        // Load the newest version, as a task does when the partition moved to its executor.
        if let Some(v) = versions.iter().max() {
            let files = StateFiles::new(&location, 0, 0);
            let _ = StatePartition::load(files, Arc::clone(&keys), Arc::clone(&values), StateVersion(*v), policy()).await;
        }
    });
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
            partition.commit().await.expect("committing state");
            // Maintenance after every batch, as with a short maintenance interval.
            if let Some(work) = partition.maintenance(std::time::Instant::now()).expect("maintenance") {
                if let Some(version) = work.run().await.expect("running maintenance") {
                    partition.snapshot_written(version);
                }
            }
        }
        let files = super::get_files(&location, "state/0/0").await;
        let mut out = vec![("partition.fileset".to_string(), file_set(&files))];
        for (name, content) in &files {
            out.push((format!("{name}.fileset"), file_set(&[(name.clone(), content.clone())])));
        }
        out
    })
}
