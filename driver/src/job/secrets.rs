//! Secrets in job files: an option value written `${secret:NAME}` is replaced, when the driver
//! prepares the job, by the contents of the file `NAME` in its secrets directory
//! (`--secrets-dir`, typically a mounted Kubernetes Secret).
//!
//! A job's text is kept: `sluice submit` sends it, the driver stores it in etcd so a new leader
//! can resume the query, and errors may quote it. With references, none of those ever holds a
//! password; only the resolved spec does, which lives in the driver's memory and reaches the
//! executors inside tasks (over TLS in a secure cluster). The directory is read again every time
//! a job is prepared — a resumed or restarted query picks up a rotated secret.
//!
//! Only a whole option value is a reference, and `NAME` is a plain file name (letters, digits,
//! `.`, `_`, `-`; not `.` or `..`): a job cannot name a file outside the directory.

use std::path::PathBuf;

use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;

use super::file::JobFile;

/// Where `${secret:NAME}` references are read from; none: references are refused.
#[derive(Debug, Clone, Default)]
pub struct SecretsDir {
    dir: Option<PathBuf>,
}

/// The secret name a whole option value refers to, if it is a reference. Pure.
pub fn reference(value: &str) -> Option<&str> {
    value.trim().strip_prefix("${secret:")?.strip_suffix('}')
}

/// Whether `name` is a plain file name a reference may use. Pure.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl SecretsDir {
    /// References resolve to files in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir: Some(dir) }
    }

    /// Replaces every reference in the options of `job`'s streams, tables and sinks.
    pub fn resolve(&self, job: &mut JobFile) -> Result<()> {
        for (name, def) in job.streams.iter_mut() {
            self.resolve_options(&format!("stream '{name}'"), &mut def.options)?;
        }
        for (name, def) in job.tables.iter_mut() {
            self.resolve_options(&format!("table '{name}'"), &mut def.options)?;
        }
        for (name, def) in job.sinks.iter_mut() {
            self.resolve_options(&format!("sink '{name}'"), &mut def.options)?;
        }
        Ok(())
    }

    fn resolve_options(&self, owner: &str, options: &mut Options) -> Result<()> {
        let references: Vec<(String, String)> =
            options.iter().filter_map(|(key, value)| reference(value).map(|name| (key.to_string(), name.to_string()))).collect();
        for (key, name) in references {
            let value = self.read(owner, &key, &name)?;
            options.insert(key, value);
        }
        Ok(())
    }

    fn read(&self, owner: &str, key: &str, name: &str) -> Result<String> {
        let refused = |why: String| SluiceError::user(format!("{owner}: option '{key}' refers to secret '{name}': {why}"));
        if !valid_name(name) {
            return Err(refused(
                "a secret name is a file name of letters, digits, '.', '_' and '-' in the driver's --secrets-dir".into(),
            ));
        }
        let Some(dir) = &self.dir else {
            return Err(refused("no --secrets-dir is set to read it from".into()));
        };
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => refused(format!("there is no {} in --secrets-dir", path.display())),
            _ => refused(format!("cannot read {}: {e}", path.display())).with_retryable(true),
        })?;
        // A Secret's file usually ends with a newline no password contains.
        Ok(text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_values_are_references() {
        assert_eq!(reference("${secret:kafka-password}"), Some("kafka-password"));
        assert_eq!(reference("  ${secret:x} "), Some("x"));
        assert_eq!(reference("pre${secret:x}"), None);
        assert_eq!(reference("${env:HOME}"), None);
        assert_eq!(reference("plain"), None);
    }

    #[test]
    fn names_cannot_leave_the_directory() {
        for ok in ["a", "kafka.password", "s3_key-2"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../etc/passwd", "/etc/passwd", "a/b", "a b"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    fn job(text: &str) -> JobFile {
        JobFile::parse("job.sql", text).unwrap()
    }

    const JOB: &str = "CREATE STREAM s WITH ('connector' = 'rate', 'kafka.sasl.password' = '${secret:pw}');
        CREATE SINK o WITH ('connector' = 'noop', 'token' = '${secret:../pw}');
        INSERT INTO o SELECT * FROM s;";

    #[test]
    fn references_resolve_to_the_files_and_bad_ones_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "hunter2-secret\n").unwrap();
        let secrets = SecretsDir::new(dir.path().to_path_buf());
        let mut ok = job("CREATE STREAM s WITH ('connector' = 'rate', 'kafka.sasl.password' = '${secret:pw}');
            CREATE SINK o WITH ('connector' = 'noop'); INSERT INTO o SELECT * FROM s;");
        secrets.resolve(&mut ok).unwrap();
        assert_eq!(ok.streams["s"].options.get("kafka.sasl.password"), Some("hunter2-secret"));

        let e = secrets.resolve(&mut job(JOB)).unwrap_err().one_line();
        assert!(e.contains("sink 'o': option 'token' refers to secret '../pw'") && e.contains("file name"), "{e}");
        let mut missing = job("CREATE STREAM s WITH ('connector' = 'rate', 'p' = '${secret:nope}');
            CREATE SINK o WITH ('connector' = 'noop'); INSERT INTO o SELECT * FROM s;");
        let e = secrets.resolve(&mut missing).unwrap_err().one_line();
        assert!(e.contains("refers to secret 'nope'") && e.contains("there is no"), "{e}");
        let e = SecretsDir::default().resolve(&mut job(JOB)).unwrap_err().one_line();
        assert!(e.contains("no --secrets-dir is set"), "{e}");
    }
}
