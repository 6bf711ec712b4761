//! What a declaration touches outside the engine — files and object stores, network endpoints,
//! client settings that act on the host — so that the driver can hold a job to its policy
//! (`sluice_driver::job::policy`) before anything of it runs.
//!
//! Each connector describes its own declarations ([`crate::SourceConnector::access`] and the
//! sink and table equivalents); the driver never interprets a connector's options itself. The
//! descriptions come from the same option parsing the connector runs with, so what the policy
//! checks is what will run.

/// How a declaration uses a location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationUse {
    /// Reads the objects under it (a source's or a table's `path`).
    Read,
    /// Creates and overwrites objects under it (a sink's `path`).
    Write,
    /// Moves the input files it has read under it (`cleanSource` = `archive`).
    Archive,
    /// Keeps a query's checkpoint under it (added by the driver, not by connectors).
    Checkpoint,
}

/// One thing a source, sink, table or query touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// A file or object-store location, as an absolute URL (`file:///data/in`, `s3://b/p`).
    Location {
        /// What is done there.
        usage: LocationUse,
        /// The option (or setting) that names it, as users write it: `path`, `sourceArchiveDir`.
        option: String,
        /// The absolute URL.
        location: String,
    },
    /// A network endpoint the driver or the executors connect to, written `<scheme>://host:port`
    /// with the connector's name as scheme (`kafka://broker:9092`, `socket://host:9999`).
    Endpoint {
        /// The option that names it: `kafka.bootstrap.servers`, `host`.
        option: String,
        /// `<scheme>://host:port`.
        endpoint: String,
    },
    /// A property handed to a client library as it is: a librdkafka property from a `kafka.*`
    /// option. Some of them load code, run commands or read files on the host.
    ClientProperty {
        /// The option as the job spells it: `kafka.plugin.library.paths`.
        option: String,
        /// The library's property name: `plugin.library.paths`.
        property: String,
    },
    /// Deletes the input files it has read (`cleanSource` = `delete`).
    DeletesInput {
        /// The option that asks for it: `cleanSource`.
        option: String,
    },
}

impl Access {
    /// A location named by `option`.
    pub fn location(usage: LocationUse, option: &str, location: impl Into<String>) -> Self {
        Access::Location { usage, option: option.to_string(), location: location.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::FilesConnector;
    use crate::socket::SocketConnector;
    use crate::{SinkConnector, SourceConnector, TableConnector};
    use sluice_common::options::Options;

    fn opts(pairs: &[(&str, &str)]) -> Options {
        Options::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn file_declarations_name_their_locations_as_absolute_urls() {
        let source =
            opts(&[("format", "text"), ("path", "/data/in"), ("cleanSource", "archive"), ("sourceArchiveDir", "/data/old")]);
        assert_eq!(
            SourceConnector::access(&FilesConnector, &source).unwrap(),
            [
                Access::location(LocationUse::Read, "path", "file:///data/in"),
                Access::location(LocationUse::Archive, "sourceArchiveDir", "file:///data/old"),
            ]
        );
        let delete = opts(&[("format", "text"), ("path", "/data/in"), ("cleanSource", "DELETE")]);
        assert_eq!(
            SourceConnector::access(&FilesConnector, &delete).unwrap()[1],
            Access::DeletesInput { option: "cleanSource".into() }
        );
        // Relative paths become absolute as resolution makes them, against the working directory.
        let sink = opts(&[("format", "json"), ("path", "out")]);
        let cwd = std::env::current_dir().unwrap().join("out");
        assert_eq!(
            SinkConnector::access(&FilesConnector, &sink).unwrap(),
            [Access::location(LocationUse::Write, "path", url::Url::from_file_path(&cwd).unwrap().to_string())]
        );
        let table = opts(&[("format", "parquet"), ("path", "s3://bucket/dim")]);
        assert_eq!(
            TableConnector::access(&FilesConnector, &table).unwrap(),
            [Access::location(LocationUse::Read, "path", "s3://bucket/dim")]
        );
    }

    #[test]
    fn a_socket_source_names_its_server() {
        let access = SourceConnector::access(&SocketConnector, &opts(&[("host", "LocalHost"), ("port", "9999")])).unwrap();
        assert_eq!(access, [Access::Endpoint { option: "host".into(), endpoint: "socket://localhost:9999".into() }]);
        let v6 = SourceConnector::access(&SocketConnector, &opts(&[("host", "::1"), ("port", "1")])).unwrap();
        assert_eq!(v6, [Access::Endpoint { option: "host".into(), endpoint: "socket://[::1]:1".into() }]);
    }
}
