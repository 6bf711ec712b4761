//! `sluice driver`'s job policy settings: what jobs submitted to the cluster may touch
//! (`sluice_driver::job::policy`). Locked down unless these allow more; in a `--config` file the
//! lists are comma-separated strings or TOML arrays (`allow-location = ["/data", "s3://b/x"]`).

use clap::Args;
use sluice_driver::job::policy::{allowed_kafka_option, Place};
use sluice_driver::job::JobPolicy;

/// What jobs may touch.
#[derive(Debug, Clone, Args)]
pub struct JobPolicyArgs {
    /// Where jobs may read, write, archive to and keep checkpoints, and which endpoints they may
    /// connect to: absolute paths and object-store URLs (`/data`, `s3://bucket/prefix`), Kafka
    /// brokers (`kafka://host:port`, or `kafka://host` for any port) and socket servers
    /// (`socket://host:port`). Everything under a location is allowed, by whole path
    /// components. Repeatable and comma-separated; none by default.
    #[arg(
        long = "allow-location",
        value_name = "LOCATION",
        env = "SLUICE_ALLOW_LOCATIONS",
        value_delimiter = ',',
        value_parser = Place::parse_allowed
    )]
    pub allow_location: Vec<Place>,
    /// librdkafka properties jobs may set although they load code, run commands, read or write
    /// files or fetch URLs on the hosts (`plugin.library.paths`, `ssl.ca.location`,
    /// `sasl.kerberos.kinit.cmd`, …: all of them are refused by default). Repeatable and
    /// comma-separated.
    #[arg(
        long = "allow-kafka-option",
        value_name = "PROPERTY",
        env = "SLUICE_ALLOW_KAFKA_OPTIONS",
        value_delimiter = ',',
        value_parser = allowed_kafka_option
    )]
    pub allow_kafka_option: Vec<String>,
    /// Lets file sources delete the files they have read (`cleanSource` = `delete`).
    #[arg(long, env = "SLUICE_ALLOW_CLEAN_SOURCE_DELETE")]
    pub allow_clean_source_delete: bool,
}

impl JobPolicyArgs {
    /// The policy these settings describe.
    pub fn policy(&self) -> JobPolicy {
        let mut policy = JobPolicy::default().with_clean_source_delete(self.allow_clean_source_delete);
        for location in &self.allow_location {
            policy = policy.allow_location(location.clone());
        }
        // Validated by the parser already.
        policy.allowed_kafka_options.extend(self.allow_kafka_option.iter().cloned());
        policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};
    use sluice_connectors::{Access, LocationUse};
    use sluice_driver::job::Touch;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        policy: JobPolicyArgs,
    }

    fn parse(args: &[&str]) -> Result<JobPolicy, clap::Error> {
        let argv = std::iter::once("driver").chain(args.iter().copied());
        Cli::try_parse_from(argv).map(|c| c.policy.policy())
    }

    fn reads(location: &str) -> Touch {
        Touch { owner: "source 's'".into(), access: Access::location(LocationUse::Read, "path", location) }
    }

    #[test]
    fn flags_repeat_and_split_on_commas() {
        let p = parse(&[
            "--allow-location",
            "/data/in,s3://bucket/x",
            "--allow-location=kafka://broker:9092",
            "--allow-kafka-option",
            "kafka.ssl.ca.location,ssl.key.location",
            "--allow-clean-source-delete",
        ])
        .unwrap();
        let shown: Vec<String> = p.allowed_locations.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["/data/in", "s3://bucket/x", "kafka://broker:9092"]);
        assert_eq!(
            p.allowed_kafka_options.iter().map(String::as_str).collect::<Vec<_>>(),
            ["ssl.ca.location", "ssl.key.location"]
        );
        assert!(p.allow_clean_source_delete);
        assert!(p.check(&[reads("file:///data/in/x")]).is_ok());
        assert!(p.check(&[reads("/database")]).is_err());
    }

    #[test]
    fn bad_settings_are_refused_when_the_driver_starts() {
        for bad in [
            &["--allow-location", "data/in"][..],
            &["--allow-location", "/data/../etc"],
            &["--allow-location", "/data/*"],
            &["--allow-kafka-option", "ssl.ca.locaton"],
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad[1]), "{bad:?}: {e}");
        }
    }

    #[test]
    fn nothing_given_is_locked_down() {
        let p = parse(&[]).unwrap();
        assert_eq!(p, JobPolicy::default());
        assert!(!p.is_unrestricted());
    }

    /// The variables are checked by name, not set: tests share one process environment (and
    /// the config-file tests parse these flags too).
    #[test]
    fn each_setting_has_its_environment_variable() {
        let cli = Cli::command();
        let env = |long: &str| {
            let arg = cli.get_arguments().find(|a| a.get_long() == Some(long)).unwrap();
            arg.get_env().and_then(|e| e.to_str()).map(str::to_string)
        };
        assert_eq!(env("allow-location").as_deref(), Some("SLUICE_ALLOW_LOCATIONS"));
        assert_eq!(env("allow-kafka-option").as_deref(), Some("SLUICE_ALLOW_KAFKA_OPTIONS"));
        assert_eq!(env("allow-clean-source-delete").as_deref(), Some("SLUICE_ALLOW_CLEAN_SOURCE_DELETE"));
    }
}
