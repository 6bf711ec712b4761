//! The job capability policy: what a job may touch.
//!
//! Whoever can submit a job to a cluster acts with the driver's and the executors' privileges: a
//! `text` source over `/proc/self/environ` reads their credentials, a Kafka sink sends them
//! anywhere, `cleanSource = delete` removes files, `kafka.plugin.library.paths` makes librdkafka
//! load a shared library of the job's choosing. So a driver (`sluice driver`) holds every job to
//! a policy, checked on the driver before any query of the job starts — and again whenever a
//! stored job is resumed, so tightening the policy also stops what it no longer allows:
//!
//! * **Locations** — every path or object-store URL a job reads, writes, archives to or keeps a
//!   checkpoint under, and every network endpoint it connects to (`kafka://host:port` for each
//!   Kafka broker, `socket://host:port` for the socket source), must fall under one of
//!   [`JobPolicy::allowed_locations`]. Matching is lexical and by whole path components:
//!   `/data` allows `/data/x` but not `/database`; `s3://bucket/a` does not allow
//!   `s3://bucket/ab`. Paths are never resolved against the file system, so a symbolic link
//!   inside an allowed directory leads wherever it points: allow only directories whose
//!   contents jobs' authors cannot plant links in.
//! * **Kafka options** — the librdkafka properties that load code, run commands, read or write
//!   files or fetch URLs on the hosts ([`DENIED_KAFKA_OPTIONS`]) are refused unless named in
//!   [`JobPolicy::allowed_kafka_options`]. Every other `kafka.*` option passes.
//! * **`cleanSource = delete`** — deleting the input files a source read is refused unless
//!   [`JobPolicy::allow_clean_source_delete`]. `archive` is allowed; its archive directory is a
//!   location like any other.
//!
//! The embedded `sluice run` is [`JobPolicy::unrestricted`]: its user runs their own job with
//! their own privileges. A driver is locked down ([`JobPolicy::default`]) until its settings
//! (`--allow-location`, `--allow-kafka-option`, `--allow-clean-source-delete`) allow more, and a
//! refusal is one line naming what was refused, where in the job, and the setting that allows it.
//!
//! What a job touches comes from its connectors ([`sluice_connectors::Access`]), which describe
//! their resolved options with the same parsing they run with; this module only decides.

use std::collections::BTreeSet;

use sluice_common::error::{Result, SluiceError};
use sluice_connectors::{Access, LocationUse};
use url::Url;

/// Why a job may not set a librdkafka property unless the driver allows it.
const LOADS_CODE: &str = "which loads code into the executors";
const RUNS_COMMAND: &str = "which runs a shell command on the executors";
const IN_COMMAND: &str = "which goes into the shell command the executors run for Kerberos (sasl.kerberos.kinit.cmd)";
const READS_FILE: &str = "which reads a file on the executors";
const WRITES_FILE: &str = "which writes files on the executors";
const FETCHES_URL: &str = "which makes the executors fetch a URL of the job's choosing";
const FETCHES_CREDENTIALS: &str = "which makes the executors fetch the host's cloud credentials and send a token to the broker";

/// The librdkafka properties (as of the bundled librdkafka 2.12, CONFIGURATION.md) that a job may
/// not set unless allowed, each with the reason. The callback and pointer properties (`*_cb`,
/// `opaque`, `ssl_engine_callback_data`) are not here: librdkafka refuses to set them from a
/// string. `sasl.oauthbearer.config` is not here either: it holds name=value pairs and reads no
/// file.
pub const DENIED_KAFKA_OPTIONS: &[(&str, &str)] = &[
    ("plugin.library.paths", LOADS_CODE),
    ("ssl.engine.location", LOADS_CODE),
    ("ssl.engine.id", LOADS_CODE),
    ("ssl.providers", LOADS_CODE),
    ("sasl.kerberos.kinit.cmd", RUNS_COMMAND),
    ("sasl.kerberos.principal", IN_COMMAND),
    ("sasl.kerberos.keytab", IN_COMMAND),
    ("ssl.key.location", READS_FILE),
    ("ssl.certificate.location", READS_FILE),
    ("ssl.ca.location", READS_FILE),
    ("ssl.crl.location", READS_FILE),
    ("ssl.keystore.location", READS_FILE),
    ("https.ca.location", READS_FILE),
    ("sasl.oauthbearer.assertion.private.key.file", READS_FILE),
    ("sasl.oauthbearer.assertion.file", READS_FILE),
    ("sasl.oauthbearer.assertion.jwt.template.file", READS_FILE),
    ("offset.store.path", WRITES_FILE),
    ("offset.store.method", WRITES_FILE),
    ("sasl.oauthbearer.token.endpoint.url", FETCHES_URL),
    ("sasl.oauthbearer.metadata.authentication.type", FETCHES_CREDENTIALS),
];

/// What the refusal of a location says when no location is allowed.
const NO_LOCATIONS: &str = "none: cluster mode allows no location until --allow-location names one";

/// One thing a job touches, and who in the job touches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    /// Who, as messages name it: `source 'events'`, `sink 'out'`, `table 'users'`,
    /// `query 'counts'`.
    pub owner: String,
    /// What, as its connector (or, for checkpoints, the driver) describes it.
    pub access: Access,
}

/// What a job may touch. [`Default`] is locked down: no location, none of the
/// [`DENIED_KAFKA_OPTIONS`], no `cleanSource = delete`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobPolicy {
    /// True only for [`JobPolicy::unrestricted`], which allows everything.
    unrestricted: bool,
    /// Prefixes every location and endpoint of a job must fall under.
    pub allowed_locations: Vec<Place>,
    /// Properties of [`DENIED_KAFKA_OPTIONS`] a job may set after all (lower case, no `kafka.`).
    pub allowed_kafka_options: BTreeSet<String>,
    /// Whether a file source may delete the files it read (`cleanSource = delete`).
    pub allow_clean_source_delete: bool,
}

impl JobPolicy {
    /// Allows everything: the embedded `sluice run`, where the user runs their own job, and
    /// tests of the engine.
    pub fn unrestricted() -> Self {
        Self { unrestricted: true, ..Self::default() }
    }

    /// True for [`JobPolicy::unrestricted`].
    pub fn is_unrestricted(&self) -> bool {
        self.unrestricted
    }

    /// This policy, also allowing everything under `location`.
    pub fn allow_location(mut self, location: Place) -> Self {
        if !self.allowed_locations.contains(&location) {
            self.allowed_locations.push(location);
        }
        self
    }

    /// This policy, also allowing the Kafka option `option` (see [`allowed_kafka_option`]).
    pub fn allow_kafka_option(mut self, option: &str) -> std::result::Result<Self, String> {
        self.allowed_kafka_options.insert(allowed_kafka_option(option)?);
        Ok(self)
    }

    /// This policy, allowing `cleanSource = delete` or not.
    pub fn with_clean_source_delete(mut self, allow: bool) -> Self {
        self.allow_clean_source_delete = allow;
        self
    }

    /// One line for the driver's log: what jobs may touch.
    pub fn describe(&self) -> String {
        if self.unrestricted {
            return "unrestricted".to_string();
        }
        let kafka: Vec<&str> = self.allowed_kafka_options.iter().map(String::as_str).collect();
        format!(
            "locations: {}; Kafka options denied by default but allowed: {}; cleanSource = delete: {}",
            self.locations_text(),
            if kafka.is_empty() { "none".to_string() } else { kafka.join(", ") },
            if self.allow_clean_source_delete { "allowed" } else { "refused" }
        )
    }

    /// Refuses the first of `touches` this policy does not allow, with one line naming it,
    /// where in the job it is, and the setting that would allow it.
    pub fn check(&self, touches: &[Touch]) -> Result<()> {
        if self.unrestricted {
            return Ok(());
        }
        touches.iter().try_for_each(|t| self.check_one(t))
    }

    fn check_one(&self, touch: &Touch) -> Result<()> {
        let owner = &touch.owner;
        match &touch.access {
            Access::Location { usage, option, location } => {
                let (verb, named_by) = match usage {
                    LocationUse::Read => ("reads", format!("option '{option}'")),
                    LocationUse::Write => ("writes to", format!("option '{option}'")),
                    LocationUse::Archive => ("moves the files it read to", format!("option '{option}'")),
                    LocationUse::Checkpoint => ("keeps its checkpoint at", format!("SET '{option}'")),
                };
                self.check_place(owner, verb, &named_by, location)
            }
            Access::Endpoint { option, endpoint } => {
                self.check_place(owner, "connects to", &format!("option '{option}'"), endpoint)
            }
            Access::ClientProperty { option, property } => {
                let name = property.trim().to_ascii_lowercase();
                match denied_kafka_option(&name) {
                    Some(why) if !self.allowed_kafka_options.contains(&name) => {
                        Err(refused(format!("{owner} sets {option}, {why}; allow it with --allow-kafka-option {name}")))
                    }
                    _ => Ok(()),
                }
            }
            Access::DeletesInput { option } if !self.allow_clean_source_delete => Err(refused(format!(
                "{owner} sets {option} = delete, which deletes the input files it has read; allow it with --allow-clean-source-delete"
            ))),
            Access::DeletesInput { .. } => Ok(()),
        }
    }

    fn check_place(&self, owner: &str, verb: &str, named_by: &str, location: &str) -> Result<()> {
        let place = Place::parse(location)
            .map_err(|why| refused(format!("{owner} {verb} {location} ({named_by}), which the policy cannot check: {why}")))?;
        // A glob may match anything in the directory it starts in: that directory must be allowed.
        let needed = place.before_glob();
        if self.allowed_locations.iter().any(|allowed| allowed.contains(&needed)) {
            return Ok(());
        }
        Err(refused(format!(
            "{owner} {verb} {place} ({named_by}), outside the allowed locations ({}); allow it with --allow-location {needed}",
            self.locations_text()
        )))
    }

    fn locations_text(&self) -> String {
        if self.allowed_locations.is_empty() {
            NO_LOCATIONS.to_string()
        } else {
            self.allowed_locations.iter().map(Place::to_string).collect::<Vec<_>>().join(", ")
        }
    }
}

fn refused(what: String) -> SluiceError {
    SluiceError::user(format!("job refused: {what}"))
}

/// Why a job may not set librdkafka property `name` (lower case), if it is denied by default.
fn denied_kafka_option(name: &str) -> Option<&'static str> {
    DENIED_KAFKA_OPTIONS.iter().find(|(p, _)| *p == name).map(|(_, why)| *why)
}

/// A Kafka option a driver's settings allow, as the policy keeps it: the librdkafka name in
/// lower case (a `kafka.` prefix, as jobs write it, is accepted). Only the
/// [`DENIED_KAFKA_OPTIONS`] can be allowed; naming another is a mistake worth hearing about (a
/// typo would otherwise leave the option refused without a word).
pub fn allowed_kafka_option(text: &str) -> std::result::Result<String, String> {
    let lower = text.trim().to_ascii_lowercase();
    let name = lower.strip_prefix("kafka.").unwrap_or(&lower);
    if denied_kafka_option(name).is_some() {
        return Ok(name.to_string());
    }
    let denied: Vec<&str> = DENIED_KAFKA_OPTIONS.iter().map(|(p, _)| *p).collect();
    Err(format!(
        "'{}' is not a Kafka option jobs are denied, so there is nothing to allow (denied unless allowed: {})",
        text.trim(),
        denied.join(", ")
    ))
}

/// A location or endpoint, normalised for comparison: scheme, host, port and path components.
///
/// * A local path (`/data/in`) is the `file` URL of that path: `file:///data/in` ≡ `/data/in`
///   ≡ `file://localhost/data/in`.
/// * A URL keeps its scheme (lower case; `s3a` is `s3`, the same store), host (lower case),
///   port and percent-decoded path; its query and fragment are ignored, as the stores ignore
///   them.
/// * `.` and `..` components are refused rather than resolved: the stores and the file system
///   may not resolve them the way a lexical check would.
/// * A relative path is refused: a policy anchored in the driver's working directory would
///   mean something else after a restart elsewhere. Job locations reach the policy already
///   absolute — the driver makes them absolute against its working directory, as it runs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    scheme: String,
    host: String,
    port: Option<u16>,
    path: Vec<String>,
}

impl Place {
    /// Parses a location: an absolute path or a URL.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an empty location".to_string());
        }
        if text.starts_with('/') {
            return Ok(Self { scheme: "file".into(), host: String::new(), port: None, path: components(text)? });
        }
        let url = match Url::parse(text) {
            // One-letter schemes are Windows drive letters to the stores, i.e. paths.
            Ok(url) if url.scheme().len() > 1 => url,
            _ => return Err(format!("'{text}' is relative: write an absolute path or a URL")),
        };
        let scheme = match url.scheme().to_ascii_lowercase().as_str() {
            "s3a" => "s3".to_string(),
            other => other.to_string(),
        };
        let mut host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if scheme == "file" && host == "localhost" {
            host.clear();
        }
        let decoded = percent_decode(url.path()).ok_or_else(|| format!("'{text}' is not UTF-8 once percent-decoded"))?;
        Ok(Self { scheme, host, port: url.port(), path: components(&decoded)? })
    }

    /// Parses a location an operator allows: as [`Place::parse`], without glob characters
    /// (allow the directory a glob would start in instead).
    pub fn parse_allowed(text: &str) -> std::result::Result<Self, String> {
        let place = Self::parse(text)?;
        if place.path.iter().any(|c| has_glob(c)) {
            return Err(format!("'{}' holds a glob character (* ? [ {{): allow the directory instead", text.trim()));
        }
        Ok(place)
    }

    /// The place up to (not including) the first path component with a glob character.
    fn before_glob(&self) -> Self {
        let path = self.path.iter().take_while(|c| !has_glob(c)).cloned().collect();
        Self { path, ..self.clone() }
    }

    /// True when `other` is this place or lies below it: same scheme and host, the same port
    /// unless this place names none, and this place's path components as a prefix of `other`'s.
    fn contains(&self, other: &Place) -> bool {
        self.scheme == other.scheme
            && self.host == other.host
            && (self.port.is_none() || self.port == other.port)
            && other.path.starts_with(&self.path)
    }
}

impl std::fmt::Display for Place {
    /// Local files as plain paths (`/data/in`), everything else as a URL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.scheme != "file" || !self.host.is_empty() {
            write!(f, "{}://{}", self.scheme, self.host)?;
            if let Some(port) = self.port {
                write!(f, ":{port}")?;
            }
            if self.path.is_empty() {
                return Ok(());
            }
        }
        write!(f, "/{}", self.path.join("/"))
    }
}

impl std::str::FromStr for Place {
    type Err = String;

    /// As [`Place::parse_allowed`]: what settings name.
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        Self::parse_allowed(text)
    }
}

/// The non-empty components of a `/`-separated path, refusing `.` and `..`.
fn components(path: &str) -> std::result::Result<Vec<String>, String> {
    let parts: Vec<String> = path.split('/').filter(|c| !c.is_empty()).map(str::to_string).collect();
    if parts.iter().any(|c| c == "." || c == "..") {
        return Err(format!("'{path}' has a '.' or '..' component: write the location without them"));
    }
    Ok(parts)
}

fn has_glob(component: &str) -> bool {
    component.contains(['*', '?', '[', '{'])
}

/// Decodes `%XX` escapes; `None` when the result is not UTF-8. A malformed escape is kept as it
/// is, as URL parsers keep it.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(text: &str) -> Place {
        Place::parse(text).unwrap()
    }

    fn allowing(locations: &[&str]) -> JobPolicy {
        locations.iter().fold(JobPolicy::default(), |p, l| p.allow_location(Place::parse_allowed(l).unwrap()))
    }

    fn read(owner: &str, location: &str) -> Touch {
        Touch { owner: owner.into(), access: Access::location(LocationUse::Read, "path", location) }
    }

    fn kafka_option(property: &str) -> Touch {
        Touch {
            owner: "sink 'out'".into(),
            access: Access::ClientProperty { option: format!("kafka.{property}"), property: property.into() },
        }
    }

    fn message(policy: &JobPolicy, touch: Touch) -> String {
        policy.check(&[touch]).unwrap_err().one_line()
    }

    fn allows(policy: &JobPolicy, location: &str) -> bool {
        policy.check(&[read("source 's'", location)]).is_ok()
    }

    #[test]
    fn prefixes_match_whole_path_components() {
        let p = allowing(&["/data", "s3://bucket/a", "file:///srv/in/"]);
        for ok in [
            "/data",
            "/data/",
            "/data/x/y.json",
            "file:///data/x",
            "file://localhost/data/x",
            "s3://bucket/a/b",
            "s3://bucket/a",
            "/srv/in/z",
        ] {
            assert!(allows(&p, ok), "{ok} should be allowed");
        }
        for refused in ["/database", "/dat", "/", "/etc/passwd", "s3://bucket/ab", "s3://bucket", "s3://other/a", "/srv/input"] {
            assert!(!allows(&p, refused), "{refused} should be refused");
        }
    }

    #[test]
    fn file_urls_and_local_paths_are_the_same_place() {
        assert_eq!(place("/data/x"), place("file:///data/x"));
        assert_eq!(place("/data/x/"), place("file://localhost/data/x"));
        assert_eq!(place("/data//x"), place("/data/x"));
        assert_ne!(place("file://server/data/x"), place("/data/x"), "a file URL naming a host is elsewhere");
        assert_eq!(place("file:///data/with%20space").to_string(), "/data/with space");
        assert!(allows(&allowing(&["/data/with space"]), "file:///data/with%20space/f"));
    }

    #[test]
    fn dot_dot_is_refused_not_resolved() {
        for text in ["/data/../etc", "/data/./x", "file:///data/in%2F..%2Fetc", "s3://b/a%2F%2E%2E%2Fc"] {
            let e = Place::parse(text).unwrap_err();
            assert!(e.contains("'..'"), "{text}: {e}");
        }
        let e = message(&allowing(&["/data"]), read("source 'events'", "file:///data/in%2F..%2Fetc"));
        assert!(
            e.starts_with(
                "job refused: source 'events' reads file:///data/in%2F..%2Fetc (option 'path'), which the policy cannot check"
            ),
            "{e}"
        );
        assert!(Place::parse_allowed("/data/../etc").is_err());
        // A URL's own dot segments (also escaped ones) are resolved by the URL parser — for the
        // stores too, so what is checked is where the store goes.
        assert_eq!(place("file:///data/%2e%2e/etc"), place("/etc"));
        assert!(!allows(&allowing(&["/data"]), "file:///data/%2e%2e/etc"));
    }

    #[test]
    fn relative_locations_are_refused_and_urls_kept() {
        for relative in ["data/in", "./data", "c:/data", ""] {
            assert!(Place::parse(relative).is_err(), "{relative}");
        }
        assert!(Place::parse_allowed("data").unwrap_err().contains("relative"));
        assert_eq!(
            place("S3A://Bucket/Key").to_string(),
            "s3://bucket/Key",
            "s3a is s3; hosts are case-insensitive, keys are not"
        );
        assert_eq!(place("s3://bucket/a?versionId=1#x"), place("s3://bucket/a"));
        assert_eq!(place("memory://t/p").to_string(), "memory://t/p");
        assert_eq!(place("s3://bucket").to_string(), "s3://bucket");
    }

    #[test]
    fn globs_need_the_directory_they_start_in() {
        let p = allowing(&["/data/in"]);
        assert!(allows(&p, "/data/in/*.json"));
        assert!(allows(&p, "/data/in/2024-*/x"));
        assert!(!allows(&p, "/data/in*"), "in* also matches /data/input");
        assert!(!allows(&p, "/data/{in,etc}"));
        let e = message(&p, read("source 'events'", "/data/i?"));
        assert!(e.ends_with("allow it with --allow-location /data"), "{e}");
        assert!(Place::parse_allowed("/data/*").unwrap_err().contains("glob"));
    }

    #[test]
    fn endpoints_match_host_and_port() {
        let p = allowing(&["kafka://broker:9092", "kafka://any-port", "socket://127.0.0.1:9999"]);
        let connect = |endpoint: &str| Touch {
            owner: "sink 'out'".into(),
            access: Access::Endpoint { option: "kafka.bootstrap.servers".into(), endpoint: endpoint.into() },
        };
        for ok in ["kafka://broker:9092", "kafka://BROKER:9092", "kafka://any-port:1", "socket://127.0.0.1:9999"] {
            assert!(p.check(&[connect(ok)]).is_ok(), "{ok}");
        }
        for refused in ["kafka://broker:9093", "kafka://evil:9092", "socket://127.0.0.1:22", "kafka://broker.evil:9092"] {
            assert!(p.check(&[connect(refused)]).is_err(), "{refused}");
        }
        assert_eq!(
            p.check(&[connect("kafka://evil:9092")]).unwrap_err().one_line(),
            "job refused: sink 'out' connects to kafka://evil:9092 (option 'kafka.bootstrap.servers'), outside the allowed \
             locations (kafka://broker:9092, kafka://any-port, socket://127.0.0.1:9999); allow it with --allow-location kafka://evil:9092"
        );
    }

    #[test]
    fn refusals_name_the_owner_the_option_and_the_setting() {
        let p = allowing(&["/data/in"]);
        assert_eq!(
            message(&p, read("source 'events'", "file:///etc/passwd")),
            "job refused: source 'events' reads /etc/passwd (option 'path'), outside the allowed locations (/data/in); \
             allow it with --allow-location /etc/passwd"
        );
        let write = Touch { owner: "sink 'out'".into(), access: Access::location(LocationUse::Write, "path", "/tmp/o") };
        assert!(message(&p, write).starts_with("job refused: sink 'out' writes to /tmp/o (option 'path')"));
        let checkpoint = Touch {
            owner: "query 'counts'".into(),
            access: Access::location(LocationUse::Checkpoint, "checkpointLocation", "file:///chk"),
        };
        assert!(message(&p, checkpoint)
            .starts_with("job refused: query 'counts' keeps its checkpoint at /chk (SET 'checkpointLocation')"));
        assert_eq!(
            message(&JobPolicy::default(), read("table 'users'", "/data/in")),
            "job refused: table 'users' reads /data/in (option 'path'), outside the allowed locations (none: cluster \
             mode allows no location until --allow-location names one); allow it with --allow-location /data/in"
        );
    }

    #[test]
    fn the_archive_directory_is_a_location_like_any_other() {
        let p = allowing(&["/data/in"]);
        let archive = |dir: &str| Touch {
            owner: "source 'events'".into(),
            access: Access::location(LocationUse::Archive, "sourceArchiveDir", dir),
        };
        assert!(p.check(&[archive("/data/in/../archive")]).is_err());
        assert_eq!(
            message(&p, archive("/etc/cron.d")),
            "job refused: source 'events' moves the files it read to /etc/cron.d (option 'sourceArchiveDir'), outside \
             the allowed locations (/data/in); allow it with --allow-location /etc/cron.d"
        );
        assert!(allowing(&["/data"]).check(&[archive("/data/archive")]).is_ok());
    }

    #[test]
    fn clean_source_delete_needs_its_setting() {
        let delete = Touch { owner: "source 'events'".into(), access: Access::DeletesInput { option: "cleanSource".into() } };
        assert_eq!(
            message(&JobPolicy::default(), delete.clone()),
            "job refused: source 'events' sets cleanSource = delete, which deletes the input files it has read; allow \
             it with --allow-clean-source-delete"
        );
        assert!(JobPolicy::default().with_clean_source_delete(true).check(&[delete]).is_ok());
    }

    #[test]
    fn every_default_denied_kafka_option_is_refused_until_allowed() {
        for (property, why) in DENIED_KAFKA_OPTIONS {
            let e = message(&JobPolicy::default(), kafka_option(property));
            assert_eq!(
                e,
                format!("job refused: sink 'out' sets kafka.{property}, {why}; allow it with --allow-kafka-option {property}")
            );
            let allowed = JobPolicy::default().allow_kafka_option(property).unwrap();
            assert!(allowed.check(&[kafka_option(property)]).is_ok(), "{property}");
            // Case does not slip a property past the policy.
            assert!(JobPolicy::default().check(&[kafka_option(&property.to_ascii_uppercase())]).is_err(), "{property}");
        }
        assert_eq!(
            message(&JobPolicy::default(), kafka_option("plugin.library.paths")),
            "job refused: sink 'out' sets kafka.plugin.library.paths, which loads code into the executors; allow it \
             with --allow-kafka-option plugin.library.paths"
        );
        for harmless in ["bootstrap.servers", "security.protocol", "sasl.username", "ssl.ca.pem", "sasl.oauthbearer.config"] {
            assert!(JobPolicy::default().check(&[kafka_option(harmless)]).is_ok(), "{harmless}");
        }
    }

    #[test]
    fn only_denied_kafka_options_can_be_allowed() {
        assert_eq!(allowed_kafka_option(" Kafka.SSL.CA.Location ").unwrap(), "ssl.ca.location");
        let e = allowed_kafka_option("ssl.ca.locaton").unwrap_err();
        assert!(e.contains("nothing to allow") && e.contains("plugin.library.paths"), "{e}");
        let p = JobPolicy::default().allow_kafka_option("ssl.ca.location").unwrap();
        assert!(p.check(&[kafka_option("ssl.key.location")]).is_err(), "allowing one option allows only that one");
    }

    #[test]
    fn the_first_refusal_is_reported() {
        let p = allowing(&["/data"]);
        let touches = [read("source 'a'", "/data/in"), read("source 'b'", "/etc"), kafka_option("plugin.library.paths")];
        assert!(p.check(&touches).unwrap_err().one_line().contains("source 'b' reads /etc"));
    }

    #[test]
    fn unrestricted_allows_everything_and_default_nothing() {
        let everything = [
            read("source 'a'", "/etc/passwd"),
            read("source 'b'", "/data/../etc"),
            kafka_option("plugin.library.paths"),
            Touch { owner: "source 'c'".into(), access: Access::DeletesInput { option: "cleanSource".into() } },
            Touch {
                owner: "sink 'd'".into(),
                access: Access::Endpoint { option: "host".into(), endpoint: "socket://x:1".into() },
            },
        ];
        assert!(JobPolicy::unrestricted().check(&everything).is_ok());
        assert!(JobPolicy::unrestricted().is_unrestricted());
        for t in everything {
            assert!(JobPolicy::default().check(std::slice::from_ref(&t)).is_err(), "{t:?}");
        }
        assert!(JobPolicy::default().check(&[]).is_ok(), "a job touching nothing (rate → console) runs");
        assert!(JobPolicy::default().describe().contains(NO_LOCATIONS));
        assert_eq!(JobPolicy::unrestricted().describe(), "unrestricted");
    }
}
