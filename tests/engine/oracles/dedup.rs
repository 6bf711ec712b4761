//! T10–T11: deduplication suites (spec §12) — placeholder module filled below.
