//! An `ObjectStore` that misbehaves on purpose, for tests: the storage faults production clusters
//! see every week, injected at a chosen rate with a seeded random generator.
//!
//! * **error** — the call fails and does nothing (a refused connection, a 503).
//! * **lost-response** — the call takes effect, then fails (a timeout or 5xx after the write
//!   landed): the caller cannot tell whether its write happened. The dangerous one.
//! * **latency** — the call waits, then takes effect (a slow store).
//! * **torn** — a write leaves only the first half of its bytes, then fails (a local disk that
//!   died mid-write, a proxy that cut the upload short).
//!
//! Every process of a test cluster turns it on with the environment variable
//! `SLUICE_STORE_FAULTS` (see [`FaultPlan::parse`]); every store sluice resolves is then wrapped.
//! Each injected fault is counted ([`injected`]) and, when `SLUICE_STORE_FAULTS_LOG` names a
//! file, appended to it as one line, so a chaos test can report how many faults of each kind its
//! processes survived.

use std::fmt;
use std::io::Write;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions,
    PutPayload, PutResult,
};

use crate::error::{Result, SluiceError};

/// Environment variable that turns fault injection on (its value is a [`FaultPlan`]).
pub const FAULTS_ENV: &str = "SLUICE_STORE_FAULTS";
/// Environment variable naming a file each injected fault is appended to.
pub const FAULTS_LOG_ENV: &str = "SLUICE_STORE_FAULTS_LOG";

/// One kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// The call fails without taking effect.
    Error,
    /// The call takes effect, then fails.
    LostResponse,
    /// The call is delayed.
    Latency,
    /// A write stores half its bytes, then fails.
    Torn,
}

impl FaultKind {
    /// Every kind, in a fixed order.
    pub const ALL: [FaultKind; 4] = [FaultKind::Error, FaultKind::LostResponse, FaultKind::Latency, FaultKind::Torn];

    /// The kind's name in a [`FaultPlan`] and in the fault log.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Error => "error",
            FaultKind::LostResponse => "lost-response",
            FaultKind::Latency => "latency",
            FaultKind::Torn => "torn",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Which faults to inject, how often, and from which seed.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// Seed of the random generator (each store mixes in its own name).
    pub seed: u64,
    /// Probability that one call gets a fault.
    pub rate: f64,
    /// The kinds to choose from, uniformly.
    pub kinds: Vec<FaultKind>,
    /// How long a latency fault waits.
    pub latency: Duration,
    /// Only paths containing this text get faults (all paths when empty).
    pub only: String,
}

impl FaultPlan {
    /// Parses `seed=7,rate=0.05,kinds=error+lost-response+latency+torn,latency-ms=200,only=chk`;
    /// every key is optional (defaults: seed 0, rate 0.02, every kind, 200 ms, every path).
    pub fn parse(spec: &str) -> Result<Self> {
        let mut plan = FaultPlan {
            seed: 0,
            rate: 0.02,
            kinds: FaultKind::ALL.to_vec(),
            latency: Duration::from_millis(200),
            only: String::new(),
        };
        let bad = |what: &str| SluiceError::user(format!("{FAULTS_ENV}: {what} in '{spec}'"));
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| bad(&format!("'{part}' is not key=value")))?;
            match key.trim() {
                "seed" => plan.seed = value.parse().map_err(|_| bad("seed is not a number"))?,
                "rate" => {
                    plan.rate = value
                        .parse()
                        .ok()
                        .filter(|r: &f64| (0.0..=1.0).contains(r))
                        .ok_or_else(|| bad("rate is not in [0, 1]"))?
                }
                "latency-ms" => {
                    plan.latency = Duration::from_millis(value.parse().map_err(|_| bad("latency-ms is not a number"))?)
                }
                "only" => plan.only = value.to_string(),
                "kinds" => {
                    plan.kinds = value
                        .split('+')
                        .map(|k| {
                            FaultKind::ALL
                                .into_iter()
                                .find(|f| f.name() == k.trim())
                                .ok_or_else(|| bad(&format!("unknown kind '{k}'")))
                        })
                        .collect::<Result<_>>()?;
                }
                other => return Err(bad(&format!("unknown key '{other}'"))),
            }
        }
        Ok(plan)
    }

    /// The plan in [`FAULTS_ENV`], if set.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var(FAULTS_ENV) {
            Ok(spec) if !spec.trim().is_empty() => Self::parse(&spec).map(Some),
            _ => Ok(None),
        }
    }
}

static INJECTED: [AtomicU64; 4] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Faults injected so far in this process, per kind.
pub fn injected() -> Vec<(FaultKind, u64)> {
    FaultKind::ALL.into_iter().map(|k| (k, INJECTED[k.index()].load(Ordering::Relaxed))).collect()
}

/// A store that injects the faults of a [`FaultPlan`] into the calls it passes on.
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    injector: Arc<Injector>,
}

/// Decides and records faults; shared with the delete streams a store hands out.
struct Injector {
    plan: FaultPlan,
    rng: Mutex<fastrand::Rng>,
    /// Faults to inject into the next calls, in order, instead of random ones (unit tests).
    script: Option<Mutex<std::collections::VecDeque<Option<FaultKind>>>>,
    log: Option<std::path::PathBuf>,
}

impl FaultyStore {
    /// Wraps `inner`; `name` (the store's scheme and authority) varies the random sequence per
    /// store, and so does the process id, so the processes of a cluster fail differently.
    pub fn new(inner: Arc<dyn ObjectStore>, plan: FaultPlan, name: &str) -> Self {
        let salt = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let seed = plan.seed ^ salt ^ u64::from(std::process::id());
        let log = std::env::var_os(FAULTS_LOG_ENV).map(std::path::PathBuf::from);
        Self { inner, injector: Arc::new(Injector { rng: Mutex::new(fastrand::Rng::with_seed(seed)), plan, script: None, log }) }
    }

    /// Wraps `inner` and injects exactly `faults` into the next calls, one entry per call
    /// (`None`: that call goes through); calls after the script ran out get no faults.
    pub fn scripted(inner: Arc<dyn ObjectStore>, faults: Vec<Option<FaultKind>>) -> Self {
        let plan = FaultPlan {
            seed: 0,
            rate: 0.0,
            kinds: FaultKind::ALL.to_vec(),
            latency: Duration::from_millis(1),
            only: String::new(),
        };
        let injector =
            Injector { rng: Mutex::new(fastrand::Rng::with_seed(0)), plan, script: Some(Mutex::new(faults.into())), log: None };
        Self { inner, injector: Arc::new(injector) }
    }

    async fn before(&self, op: &str, path: &Path, allowed: &[FaultKind]) -> object_store::Result<Option<FaultKind>> {
        match self.injector.draw(op, path, allowed) {
            Some(FaultKind::Error) => Err(injected_error(FaultKind::Error, op, path)),
            Some(FaultKind::Latency) => {
                tokio::time::sleep(self.injector.plan.latency).await;
                Ok(None)
            }
            other => Ok(other),
        }
    }
}

impl Injector {
    /// The fault, if any, for one call on `path`, among `allowed` kinds.
    fn draw(&self, op: &str, path: &Path, allowed: &[FaultKind]) -> Option<FaultKind> {
        if !path.as_ref().contains(self.plan.only.as_str()) {
            return None;
        }
        let kind = match &self.script {
            Some(script) => script.lock().ok()?.pop_front().flatten().filter(|k| allowed.contains(k))?,
            None => {
                let kinds: Vec<FaultKind> = self.plan.kinds.iter().copied().filter(|k| allowed.contains(k)).collect();
                let mut rng = self.rng.lock().ok()?;
                if kinds.is_empty() || rng.f64() >= self.plan.rate {
                    return None;
                }
                kinds[rng.usize(..kinds.len())]
            }
        };
        INJECTED[kind.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(log) = &self.log {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
                let _ = writeln!(f, "{} {op} {path}", kind.name());
            }
        }
        tracing::debug!(fault = kind.name(), op, %path, "injected object store fault");
        Some(kind)
    }
}

fn injected_error(kind: FaultKind, op: &str, path: &Path) -> object_store::Error {
    object_store::Error::Generic { store: "faults", source: format!("injected {} fault on {op} {path}", kind.name()).into() }
}

const READ_FAULTS: &[FaultKind] = &[FaultKind::Error, FaultKind::Latency];
const WRITE_FAULTS: &[FaultKind] = &[FaultKind::Error, FaultKind::LostResponse, FaultKind::Latency, FaultKind::Torn];
const DELETE_FAULTS: &[FaultKind] = &[FaultKind::Error, FaultKind::LostResponse, FaultKind::Latency];

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The inner store's Display: its Debug shows its whole configuration.
        write!(f, "FaultyStore({}, {:?})", self.inner, self.injector.plan)
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
        match self.before("put", location, WRITE_FAULTS).await? {
            Some(FaultKind::LostResponse) => {
                self.inner.put_opts(location, payload, opts).await?;
                Err(injected_error(FaultKind::LostResponse, "put", location))
            }
            Some(FaultKind::Torn) => {
                let bytes: Vec<u8> = payload.iter().flat_map(|chunk| chunk.iter().copied()).collect();
                let half = Bytes::from(bytes[..bytes.len() / 2].to_vec());
                self.inner.put_opts(location, PutPayload::from(half), opts).await?;
                Err(injected_error(FaultKind::Torn, "put", location))
            }
            _ => self.inner.put_opts(location, payload, opts).await,
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.before("put-multipart", location, READ_FAULTS).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.before("get", location, READ_FAULTS).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.before("get", location, READ_FAULTS).await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let store = Arc::clone(&self.inner);
        let injector = Arc::clone(&self.injector);
        locations
            .then(move |path| {
                let store = Arc::clone(&store);
                let injector = Arc::clone(&injector);
                async move {
                    let path = path?;
                    let fault = injector.draw("delete", &path, DELETE_FAULTS);
                    match fault {
                        Some(FaultKind::Error) => return Err(injected_error(FaultKind::Error, "delete", &path)),
                        Some(FaultKind::Latency) => tokio::time::sleep(injector.plan.latency).await,
                        _ => {}
                    }
                    let mut done = store.delete_stream(futures::stream::iter([Ok(path.clone())]).boxed());
                    while let Some(r) = done.next().await {
                        r?;
                    }
                    match fault {
                        Some(FaultKind::LostResponse) => Err(injected_error(FaultKind::LostResponse, "delete", &path)),
                        _ => Ok(path),
                    }
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let root = Path::default();
        let path = prefix.unwrap_or(&root);
        match self.injector.draw("list", path, &[FaultKind::Error]) {
            Some(kind) => futures::stream::once(futures::future::ready(Err(injected_error(kind, "list", path)))).boxed(),
            None => self.inner.list(prefix),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let root = Path::default();
        self.before("list", prefix.unwrap_or(&root), READ_FAULTS).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.before("copy", to, READ_FAULTS).await?;
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    use super::*;

    #[test]
    fn plans_parse_with_defaults_and_refuse_unknown_keys() {
        let p = FaultPlan::parse("seed=7,rate=0.5,kinds=error+torn,latency-ms=5,only=chk").unwrap();
        assert_eq!(
            (p.seed, p.rate, p.kinds.clone(), p.latency, p.only.as_str()),
            (7, 0.5, vec![FaultKind::Error, FaultKind::Torn], Duration::from_millis(5), "chk")
        );
        assert_eq!(FaultPlan::parse("").unwrap().kinds, FaultKind::ALL.to_vec());
        assert!(FaultPlan::parse("rate=2").is_err());
        assert!(FaultPlan::parse("kinds=flood").is_err());
        assert!(FaultPlan::parse("sead=1").is_err());
    }

    fn store(kinds: &str) -> (Arc<InMemory>, FaultyStore) {
        let inner = Arc::new(InMemory::new());
        let plan = FaultPlan::parse(&format!("rate=1,kinds={kinds}")).unwrap();
        let faulty = FaultyStore::new(Arc::clone(&inner) as Arc<dyn ObjectStore>, plan, "memory://t");
        (inner, faulty)
    }

    #[tokio::test]
    async fn a_lost_response_write_lands_but_reports_failure() {
        let (inner, faulty) = store("lost-response");
        let p = Path::from("chk/offsets/0");
        assert!(faulty.put(&p, PutPayload::from_static(b"v1\n{}")).await.is_err());
        assert_eq!(inner.get(&p).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"v1\n{}"));
    }

    #[tokio::test]
    async fn an_error_write_does_not_land_and_a_torn_one_lands_half() {
        let (inner, faulty) = store("error");
        let p = Path::from("a");
        assert!(faulty.put(&p, PutPayload::from_static(b"abcdef")).await.is_err());
        assert!(inner.get(&p).await.is_err());
        let (inner, faulty) = store("torn");
        assert!(faulty.put(&p, PutPayload::from_static(b"abcdef")).await.is_err());
        assert_eq!(inner.get(&p).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"abc"));
    }
}
