//! Seed corpora: `corpus/<target>/`, a handful of files per target made by the engine's own
//! writers, so mutations start from inputs the engine really reads.

use std::path::Path;

use crate::Target;

/// The seed files of `t`: the corpus directory's files, or — for a target whose directory is
/// missing — the seeds its writers produce now.
pub fn load(root: &Path, t: &Target) -> Vec<Vec<u8>> {
    let dir = root.join("corpus").join(t.name);
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    if seeds.is_empty() {
        (t.seeds)().into_iter().map(|(_, bytes)| bytes).collect()
    } else {
        seeds
    }
}

/// Replaces `corpus/<target>/` with the seeds the engine's writers produce; returns how many.
pub fn write_seeds(root: &Path, t: &Target) -> usize {
    let dir = root.join("corpus").join(t.name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the corpus directory");
    let seeds = (t.seeds)();
    for (name, bytes) in &seeds {
        std::fs::write(dir.join(name), bytes).expect("writing a seed file");
    }
    seeds.len()
}

/// A set of named files in one input: `@@ <name>\n<content>` sections, for targets that read a
/// directory (logs, state files), so the fuzzer mutates file names as well as contents.
pub fn file_set(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, content) in files {
        out.extend_from_slice(b"@@ ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(content);
        out.push(b'\n');
    }
    out
}

/// Splits a [`file_set`] input back into (name, content) pairs; text before the first section
/// is ignored, and a section's trailing newline is dropped.
pub fn parse_file_set(input: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = input;
    let Some(first) = find(rest, b"@@ ") else { return out };
    if first != 0 {
        let Some(at) = find(rest, b"\n@@ ") else { return out };
        rest = &rest[at + 1..];
    }
    while let Some(header) = rest.strip_prefix(b"@@ ") {
        let name_end = header.iter().position(|b| *b == b'\n').unwrap_or(header.len());
        let name = String::from_utf8_lossy(&header[..name_end]).trim().to_string();
        let body = header.get(name_end + 1..).unwrap_or_default();
        let (content, next) = match find(body, b"\n@@ ") {
            Some(at) => (&body[..at], &body[at + 1..]),
            None => (body.strip_suffix(b"\n").unwrap_or(body), &[][..]),
        };
        out.push((name, content.to_vec()));
        rest = next;
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
