//! Real network partitions for tests: a private network of Linux network namespaces.
//!
//! Each node (etcd, a driver, an executor, the CLI) gets its own network namespace with one
//! interface, `eth0`, cabled by a veth pair to a bridge that lives in a namespace of its own (the
//! switch). Cutting a node off pulls its cable at the switch: packets to and from it vanish, with
//! no reset and no error — a real partition, which is what catches code that relies on a peer
//! refusing connections. Healing plugs the cable back in. Nothing touches the test machine's own
//! network: the namespaces, the bridge and every address exist only while the [`Network`] lives.
//!
//! Needs root (or CAP_NET_ADMIN) and `ip` from iproute2; [`Network::create`] fails with a message
//! naming what is missing.

use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

/// Where a test process runs: the test's own loopback, or a node of a [`Network`].
#[derive(Debug, Clone)]
pub struct Host {
    /// The address the process listens on and others reach it at.
    pub ip: IpAddr,
    /// Its network namespace (`None`: the test's own, on 127.0.0.1).
    namespace: Option<String>,
}

impl Host {
    /// The test's own network, 127.0.0.1.
    pub fn loopback() -> Self {
        Self { ip: IpAddr::V4(Ipv4Addr::LOCALHOST), namespace: None }
    }

    /// A command that runs `program` on this host (inside its namespace).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        if let Some(ns) = &self.namespace {
            let handle = open_namespace(ns);
            // SAFETY: setns is async-signal-safe; the closure only reads the fd it owns.
            unsafe {
                cmd.pre_exec(move || enter(&handle).map_err(std::io::Error::from));
            }
        }
        cmd
    }

    /// True when a TCP connection to `port` on this host succeeds from inside its network.
    pub fn accepts(&self, port: u16) -> bool {
        let ip = self.ip;
        self.within(move || TcpStream::connect_timeout(&(ip, port).into(), Duration::from_millis(500)).is_ok())
    }

    /// Runs `f` on a thread that joined this host's network namespace (a namespace switch is
    /// per thread, so the test's other threads are unaffected).
    fn within<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let Some(ns) = self.namespace.clone() else { return f() };
        std::thread::spawn(move || {
            enter(&open_namespace(&ns)).unwrap_or_else(|e| panic!("joining {ns}: {e}"));
            f()
        })
        .join()
        .expect("network namespace thread")
    }
}

/// The handle of network namespace `ns` (made by `ip netns add`).
fn open_namespace(ns: &str) -> std::fs::File {
    std::fs::File::open(format!("/run/netns/{ns}")).unwrap_or_else(|e| panic!("network namespace {ns}: {e}"))
}

/// Moves the calling thread (or the child about to exec) into the namespace behind `handle`.
fn enter(handle: &std::fs::File) -> nix::Result<()> {
    nix::sched::setns(handle, nix::sched::CloneFlags::CLONE_NEWNET)
}

/// A private network: a switch and the nodes cabled to it.
pub struct Network {
    /// Prefix of every namespace and interface name, unique per test process and network.
    tag: String,
    switch: String,
    nodes: Vec<(String, Host)>,
}

/// The nodes' subnet (private to the network's namespaces, so every network can use it).
const SUBNET: [u8; 3] = [10, 77, 0];

impl Network {
    /// Creates the switch. Fails, naming the cause, without root or `ip`.
    pub fn create() -> Result<Self, String> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Interface names have at most 15 bytes: keep the tag short.
        let tag = format!("sl{}{}", std::process::id() % 100_000, (b'a' + (n % 26) as u8) as char);
        let switch = format!("{tag}-sw");
        remove_stale_namespaces();
        let net = Self { tag, switch: switch.clone(), nodes: Vec::new() };
        ip(&["netns", "add", &switch])?;
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        Ok(net)
    }

    /// Adds a node named `name` (unique in the network) and returns where it runs.
    pub fn add_node(&mut self, name: &str) -> Result<Host, String> {
        let index = self.nodes.len() + 1;
        if index > 250 {
            return Err("a test network holds at most 250 nodes".into());
        }
        let ns = format!("{}-{name}", self.tag);
        let port = self.port(index);
        let address = Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], index as u8);
        ip(&["netns", "add", &ns])?;
        let host = Host { ip: IpAddr::V4(address), namespace: Some(ns.clone()) };
        self.nodes.push((name.to_string(), host.clone()));
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&["link", "add", &port, "netns", &self.switch, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
        ip(&["-n", &self.switch, "link", "set", &port, "master", "br0", "up"])?;
        ip(&["-n", &ns, "addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        Ok(host)
    }

    /// Every node's host.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.nodes.iter().map(|(_, h)| h)
    }

    /// Where node `name` runs.
    pub fn host(&self, name: &str) -> Host {
        self.nodes[self.index_of(name) - 1].1.clone()
    }

    /// The switch-side interface of node `index` (1-based).
    fn port(&self, index: usize) -> String {
        format!("{}p{index}", self.tag)
    }

    fn index_of(&self, name: &str) -> usize {
        1 + self.nodes.iter().position(|(n, _)| n == name).unwrap_or_else(|| panic!("no node {name} in the network"))
    }

    /// Cuts node `name` off: nothing reaches it and nothing it sends arrives, without an error.
    pub fn cut(&self, name: &str) {
        let port = self.port(self.index_of(name));
        ip(&["-n", &self.switch, "link", "set", &port, "down"]).unwrap_or_else(|e| panic!("cutting {name} off: {e}"));
    }

    /// Reconnects node `name`.
    pub fn heal(&self, name: &str) {
        let port = self.port(self.index_of(name));
        ip(&["-n", &self.switch, "link", "set", &port, "up"]).unwrap_or_else(|e| panic!("reconnecting {name}: {e}"));
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of each veth, and with it the other end.
        for (_, host) in &self.nodes {
            if let Some(ns) = &host.namespace {
                let _ = ip(&["netns", "del", ns]);
            }
        }
        let _ = ip(&["netns", "del", &self.switch]);
    }
}

/// Deletes the namespaces of test processes that are gone (killed before their networks were
/// dropped): a namespace is `sl<pid mod 100000><letter>-…`, and stale when no running process has
/// such a pid.
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    let running: std::collections::HashSet<u32> = std::fs::read_dir("/proc")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).map(|pid| pid % 100_000).collect())
        .unwrap_or_default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        let Some(rest) = name.strip_prefix("sl") else { continue };
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let tagged = rest[digits.len()..].chars().next().is_some_and(|c| c.is_ascii_lowercase()) && rest.contains('-');
        if tagged && digits.parse::<u32>().is_ok_and(|pid| !running.contains(&pid)) {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Runs `ip args…`; the error names the command and what it printed.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("network partition tests need `ip` (iproute2) and root or CAP_NET_ADMIN: cannot run ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "network partition tests need root or CAP_NET_ADMIN: `ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cut node is unreachable and a healed one reachable again. (Whether the test's own
    /// network can reach 10.77.0.x depends on the machine's routes, so it is not asserted.)
    #[test]
    fn a_cut_node_is_unreachable_until_healed() {
        let mut net = Network::create().expect("network");
        let server = net.add_node("server").expect("node");
        let client = net.add_node("client").expect("node");
        let ip = server.ip;
        let listener = server.within(move || std::net::TcpListener::bind((ip, 7000)).expect("bind in the namespace"));
        let reach =
            |c: &Host| c.within(move || TcpStream::connect_timeout(&(ip, 7000).into(), Duration::from_millis(300)).is_ok());
        assert!(reach(&client), "reachable before the cut");
        net.cut("server");
        assert!(!reach(&client), "unreachable while cut");
        net.heal("server");
        assert!(crate::binary::wait_until(Duration::from_secs(5), || reach(&client)), "reachable after healing");
        drop(listener);
    }
}
