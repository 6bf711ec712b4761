//! `--config FILE`: settings from a TOML file (a Kubernetes ConfigMap, typically).
//!
//! The file's keys are the long option names of the subcommand (`listen`, `etcd`,
//! `http-listen`, …). One precedence order holds for every setting:
//!
//! 1. the command line,
//! 2. the environment variable (`SLUICE_…`, shown by `--help`),
//! 3. the config file,
//! 4. the built-in default.
//!
//! A list setting (a repeatable flag such as `allow-location`) is a comma-separated string or an
//! array of strings.
//!
//! clap already orders 1, 2 and 4; the file's settings are slotted in by appending them to the
//! command line for the options whose value would otherwise come from the default — so the file
//! is checked by the same parser, with the same errors, as flags are.

use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};
use sluice_common::error::{Result, SluiceError};

/// The id (and long name) of the option naming the config file.
pub const CONFIG_ARG: &str = "config";

/// `argv` with the config file's settings appended for every option that neither the command
/// line nor the environment set. Unchanged when no config file is named, or when `argv` does not
/// parse (the real parse then reports why).
pub fn apply(command: Command, argv: Vec<OsString>) -> Result<Vec<OsString>> {
    let Ok(matches) = command.clone().try_get_matches_from(argv.clone()) else { return Ok(argv) };
    let Some((name, sub_matches)) = matches.subcommand() else { return Ok(argv) };
    // Only some subcommands take a config file.
    let Ok(Some(path)) = sub_matches.try_get_one::<std::path::PathBuf>(CONFIG_ARG) else { return Ok(argv) };
    let Some(sub) = command.find_subcommand(name) else { return Ok(argv) };
    let settings = read(path)?;
    let mut out = argv;
    out.extend(file_args(sub, sub_matches, &settings, path)?);
    Ok(out)
}

/// Reads and parses the file.
fn read(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SluiceError::user(format!("cannot read config file {}: {e}", path.display())))?;
    text.parse::<toml::Table>()
        .map_err(|e| SluiceError::user(format!("config file {} is not valid TOML: {}", path.display(), e.message())))
}

/// The command-line arguments standing for the file's settings that apply (see [`apply`]).
fn file_args(sub: &Command, matches: &ArgMatches, settings: &toml::Table, path: &Path) -> Result<Vec<OsString>> {
    let mut args = Vec::new();
    for (key, value) in settings {
        let arg = sub.get_arguments().find(|a| a.get_long() == Some(key.as_str()) && a.get_id() != CONFIG_ARG);
        let Some(arg) = arg else {
            let known: Vec<&str> =
                sub.get_arguments().filter_map(|a| a.get_long()).filter(|l| *l != CONFIG_ARG && *l != "help").collect();
            return Err(SluiceError::user(format!(
                "config file {}: `sluice {}` has no setting '{key}' (settings: {})",
                path.display(),
                sub.get_name(),
                known.join(", ")
            )));
        };
        let set_elsewhere =
            matches!(matches.value_source(arg.get_id().as_str()), Some(ValueSource::CommandLine | ValueSource::EnvVariable));
        if set_elsewhere {
            continue;
        }
        let flag = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        // A list setting (a repeatable flag) also takes an array: one flag per element.
        let values = match value {
            toml::Value::Array(items) if matches!(arg.get_action(), ArgAction::Append) => items.iter().collect(),
            one => vec![one],
        };
        for value in values {
            let text = scalar(value).ok_or_else(|| {
                SluiceError::user(format!("config file {}: '{key}' must be a string, number or boolean", path.display()))
            })?;
            if flag {
                match value {
                    toml::Value::Boolean(true) => args.push(OsString::from(format!("--{key}"))),
                    toml::Value::Boolean(false) => {}
                    _ => return Err(SluiceError::user(format!("config file {}: '{key}' must be true or false", path.display()))),
                }
            } else {
                args.push(OsString::from(format!("--{key}={text}")));
            }
        }
    }
    Ok(args)
}

/// A TOML scalar as the text a flag would carry.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    /// The test command; `--etcd` reads `etcd_env` (each test its own variable: tests run in
    /// parallel and the environment is the process's).
    fn cli() -> Command {
        cli_with_env("SLUICE_TEST_CONFIG_NEVER_SET")
    }

    fn cli_with_env(etcd_env: &'static str) -> Command {
        Command::new("sluice")
            .subcommand(Command::new("queries").arg(Arg::new("json").long("json").action(ArgAction::SetTrue)))
            .subcommand(
                Command::new("driver")
                    .arg(Arg::new(CONFIG_ARG).long(CONFIG_ARG).value_parser(clap::value_parser!(std::path::PathBuf)))
                    .arg(Arg::new("listen").long("listen").default_value("127.0.0.1:7077"))
                    .arg(Arg::new("etcd").long("etcd").env(etcd_env))
                    .arg(Arg::new("lease-ttl").long("lease-ttl").default_value("5"))
                    .arg(Arg::new("verbose").long("verbose").action(ArgAction::SetTrue)),
            )
    }

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn final_value(args: Vec<OsString>, id: &str) -> Option<String> {
        let m = cli().try_get_matches_from(args).unwrap();
        m.subcommand_matches("driver").unwrap().get_one::<String>(id).cloned()
    }

    #[test]
    fn the_file_beats_defaults_and_loses_to_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("driver.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:7077\"\nlease-ttl = 9\netcd = \"http://etcd:2379\"\nverbose = true\n").unwrap();
        let path = file.to_str().unwrap();
        let args = apply(cli(), argv(&["sluice", "driver", "--config", path, "--lease-ttl", "3"])).unwrap();
        assert_eq!(final_value(args.clone(), "listen").as_deref(), Some("0.0.0.0:7077"), "file beats default");
        assert_eq!(final_value(args.clone(), "lease-ttl").as_deref(), Some("3"), "flag beats file");
        assert_eq!(final_value(args.clone(), "etcd").as_deref(), Some("http://etcd:2379"));
        let m = cli().try_get_matches_from(args).unwrap();
        assert!(m.subcommand_matches("driver").unwrap().get_flag("verbose"));
    }

    #[test]
    fn the_environment_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("driver.toml");
        std::fs::write(&file, "etcd = \"http://from-file:2379\"\n").unwrap();
        // SAFETY: only this test reads or writes this variable.
        unsafe { std::env::set_var("SLUICE_TEST_CONFIG_ETCD", "http://from-env:2379") };
        let cli = cli_with_env("SLUICE_TEST_CONFIG_ETCD");
        let args = apply(cli.clone(), argv(&["sluice", "driver", "--config", file.to_str().unwrap()])).unwrap();
        let m = cli.try_get_matches_from(args).unwrap();
        assert_eq!(
            m.subcommand_matches("driver").unwrap().get_one::<String>("etcd").map(String::as_str),
            Some("http://from-env:2379")
        );
    }

    #[test]
    fn an_unknown_key_names_the_file_the_key_and_the_settings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("driver.toml");
        std::fs::write(&file, "lisen = \"0.0.0.0:1\"\n").unwrap();
        let e = apply(cli(), argv(&["sluice", "driver", "--config", file.to_str().unwrap()])).unwrap_err();
        let line = e.one_line();
        assert!(line.contains("driver.toml") && line.contains("'lisen'") && line.contains("listen, etcd, lease-ttl"), "{line}");
    }

    /// `sluice driver`'s job policy settings, with their real flags and parsers.
    #[derive(Debug, clap::Parser)]
    struct PolicyDriver {
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        #[command(flatten)]
        policy: crate::commands::policy_args::JobPolicyArgs,
    }

    fn policy_cli() -> Command {
        use clap::Args;
        Command::new("sluice").subcommand(PolicyDriver::augment_args(Command::new("driver")))
    }

    fn policy_from_file(text: &str) -> std::result::Result<sluice_driver::job::JobPolicy, String> {
        use clap::FromArgMatches;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("driver.toml");
        std::fs::write(&file, text).unwrap();
        let args =
            apply(policy_cli(), argv(&["sluice", "driver", "--config", file.to_str().unwrap()])).map_err(|e| e.one_line())?;
        let m = policy_cli().try_get_matches_from(args).map_err(|e| e.to_string())?;
        let driver = PolicyDriver::from_arg_matches(m.subcommand_matches("driver").unwrap()).unwrap();
        assert!(driver.config.is_some());
        Ok(driver.policy.policy())
    }

    #[test]
    fn list_settings_take_comma_separated_strings_or_arrays() {
        let p = policy_from_file(
            "allow-location = [\"/data/in\", \"s3://bucket/x,kafka://broker:9092\"]\n\
             allow-kafka-option = \"ssl.ca.location,kafka.ssl.key.location\"\n\
             allow-clean-source-delete = true\n",
        )
        .unwrap();
        let locations: Vec<String> = p.allowed_locations.iter().map(ToString::to_string).collect();
        assert_eq!(locations, ["/data/in", "s3://bucket/x", "kafka://broker:9092"]);
        let kafka: Vec<&str> = p.allowed_kafka_options.iter().map(String::as_str).collect();
        assert_eq!(kafka, ["ssl.ca.location", "ssl.key.location"]);
        assert!(p.allow_clean_source_delete);

        // A bad location in the file is refused as the flag would be.
        let e = policy_from_file("allow-location = \"relative/dir\"\n").unwrap_err();
        assert!(e.contains("relative/dir") && e.contains("relative"), "{e}");
        // Arrays are for list settings only.
        let e = policy_from_file("allow-clean-source-delete = [true]\n").unwrap_err();
        assert!(e.contains("must be a string, number or boolean"), "{e}");
    }

    #[test]
    fn commands_without_a_config_file_option_parse_as_given() {
        let args = argv(&["sluice", "queries", "--json"]);
        assert_eq!(apply(cli(), args.clone()).unwrap(), args);
    }

    #[test]
    fn a_missing_or_broken_file_is_a_user_error() {
        let e = apply(cli(), argv(&["sluice", "driver", "--config", "/nonexistent/driver.toml"])).unwrap_err();
        assert!(e.one_line().contains("cannot read config file /nonexistent/driver.toml"), "{}", e.one_line());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "listen = \n").unwrap();
        let e = apply(cli(), argv(&["sluice", "driver", "--config", file.to_str().unwrap()])).unwrap_err();
        assert!(e.one_line().contains("is not valid TOML"), "{}", e.one_line());
    }
}
