//! What a Kafka source or sink touches, for the driver's job policy: the brokers its clients
//! connect to and every property handed to librdkafka as it is (some of them load code, run
//! commands or read files on the host; the policy decides which a job may set).

use sluice_common::error::{Result, SluiceError};

use super::options::ClientProperties;
use crate::access::Access;

/// librdkafka's default broker port.
const DEFAULT_PORT: u16 = 9092;

/// The brokers (as `kafka://host:port` endpoints) and the librdkafka properties of a client.
pub fn client_access(client: &ClientProperties) -> Result<Vec<Access>> {
    let mut out = Vec::new();
    for (property, value) in &client.properties {
        let option = format!("kafka.{property}");
        // `metadata.broker.list` is the property `bootstrap.servers` is an alias of: whichever
        // librdkafka applies last wins, so both are endpoints.
        if matches!(property.to_ascii_lowercase().as_str(), "bootstrap.servers" | "metadata.broker.list") {
            for endpoint in broker_endpoints(value).map_err(|e| e.context(format!("option '{option}'")))? {
                out.push(Access::Endpoint { option: option.clone(), endpoint });
            }
        }
        out.push(Access::ClientProperty { option, property: property.clone() });
    }
    Ok(out)
}

/// `kafka://host:port` for every broker of a librdkafka broker list, read as librdkafka reads
/// it: brokers separated by commas or spaces, each `[protocol://]host[:port]`, an IPv6 host in
/// brackets, port 9092 when left out. A broker that cannot be read is an error, not skipped:
/// the policy must see every endpoint the client may use.
pub fn broker_endpoints(list: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for broker in list.split([',', ' ', '\t']).filter(|b| !b.is_empty()) {
        let bad = || SluiceError::user(format!("cannot read broker address '{broker}' (expected host:port)"));
        let address = broker.split_once("://").map(|(_, a)| a).unwrap_or(broker);
        let (host, port) = if let Some(rest) = address.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (format!("[{host}]"), port)
        } else {
            match address.split_once(':') {
                Some((host, port)) => (host.to_string(), Some(port)),
                None => (address.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad())?,
            None => DEFAULT_PORT,
        };
        if host.is_empty() || host == "[]" || host.contains(['/', '@', '?', '#']) {
            return Err(bad());
        }
        out.push(format!("kafka://{}:{port}", host.to_ascii_lowercase()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::options::KafkaSinkOptions;
    use sluice_common::options::Options;

    #[test]
    fn broker_lists_become_endpoints_as_librdkafka_reads_them() {
        assert_eq!(broker_endpoints("a:1, B:2").unwrap(), ["kafka://a:1", "kafka://b:2"]);
        assert_eq!(broker_endpoints("host").unwrap(), ["kafka://host:9092"]);
        assert_eq!(broker_endpoints("SSL://h:9093 PLAINTEXT://g").unwrap(), ["kafka://h:9093", "kafka://g:9092"]);
        assert_eq!(broker_endpoints("[::1]:9094,[fe80::1]").unwrap(), ["kafka://[::1]:9094", "kafka://[fe80::1]:9092"]);
        for bad in ["h:x", "h:99999", "[::1", "[::1]x", "::1:9092", "h/evil:1", ":9092"] {
            assert!(broker_endpoints(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_client_property_and_both_broker_lists_are_reported() {
        let o = KafkaSinkOptions::parse(&Options::from_pairs([
            ("connector", "kafka"),
            ("kafka.bootstrap.servers", "a:1"),
            ("kafka.metadata.broker.list", "evil:2"),
            ("kafka.plugin.library.paths", "/tmp/x.so"),
        ]))
        .unwrap();
        let access = client_access(&o.client).unwrap();
        let endpoints: Vec<&str> = access
            .iter()
            .filter_map(|a| match a {
                Access::Endpoint { endpoint, .. } => Some(endpoint.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(endpoints, ["kafka://a:1", "kafka://evil:2"]);
        assert!(access.contains(&Access::ClientProperty {
            option: "kafka.plugin.library.paths".into(),
            property: "plugin.library.paths".into()
        }));
    }
}
