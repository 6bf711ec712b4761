//! A TCP proxy that drops connections: the network between sluice and a real server failing.
//!
//! It relays bytes both ways between a client and an upstream server on 127.0.0.1, and at random
//! (seeded, so a failure reproduces) cuts a connection — before a request reaches the server, or
//! after the server received it but before its response got back (the "did my write happen?"
//! case), or halfway through a response. Put in front of the S3 test server it makes a real S3
//! client see the connection failures of a real network, which an in-process fake cannot.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What the proxy cut so far.
#[derive(Debug, Default)]
pub struct Cuts {
    /// Connections cut while a request was on its way to the server.
    pub requests: AtomicUsize,
    /// Connections cut after the server answered, before the answer reached the client.
    pub responses: AtomicUsize,
    /// Connections cut halfway through a response.
    pub mid_response: AtomicUsize,
}

/// A running proxy; it stops (and cuts every connection) on drop.
pub struct FlakyProxy {
    /// The port clients connect to, on 127.0.0.1.
    pub port: u16,
    /// What it cut.
    pub cuts: Arc<Cuts>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

/// The seeded coin the relay threads share.
struct Dice {
    rng: Mutex<fastrand::Rng>,
    rate: f64,
}

impl Dice {
    /// True with probability `rate`.
    fn roll(&self) -> bool {
        self.rng.lock().map(|mut rng| rng.f64() < self.rate).unwrap_or(false)
    }
}

impl FlakyProxy {
    /// Relays to `127.0.0.1:upstream`, cutting a connection with probability `rate` at each
    /// request or response chunk it relays.
    pub fn start(upstream: u16, rate: f64, seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listens");
        let port = listener.local_addr().expect("proxy address").port();
        listener.set_nonblocking(true).expect("non-blocking accept");
        let cuts = Arc::new(Cuts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let dice = Arc::new(Dice { rng: Mutex::new(fastrand::Rng::with_seed(seed)), rate });
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let acceptor = {
            let (cuts, stop) = (Arc::clone(&cuts), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                            let _ = client.set_nonblocking(false);
                            if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                                if let Ok(mut open) = open.lock() {
                                    open.push(c);
                                    open.push(s);
                                }
                            }
                            relay(client, server, Arc::clone(&dice), Arc::clone(&cuts));
                        }
                        Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                    }
                }
                // Stopping: cut whatever is still open so no relay thread outlives the proxy.
                if let Ok(open) = open.lock() {
                    for s in open.iter() {
                        let _ = s.shutdown(Shutdown::Both);
                    }
                }
            })
        };
        Self { port, cuts, stop, acceptor: Some(acceptor) }
    }

    /// Connections cut so far, of every kind.
    pub fn total_cuts(&self) -> usize {
        self.cuts.requests.load(Ordering::Relaxed)
            + self.cuts.responses.load(Ordering::Relaxed)
            + self.cuts.mid_response.load(Ordering::Relaxed)
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// Relays one connection both ways on two threads; either may cut both directions.
fn relay(client: TcpStream, server: TcpStream, dice: Arc<Dice>, cuts: Arc<Cuts>) {
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else { return };
    // The server has everything it was sent so far: a cut now loses only its answer.
    let answered = Arc::new(AtomicBool::new(false));
    {
        let (dice, cuts, answered) = (Arc::clone(&dice), Arc::clone(&cuts), Arc::clone(&answered));
        std::thread::spawn(move || {
            pump(client, server, || {
                answered.store(false, Ordering::Relaxed);
                if dice.roll() {
                    cuts.requests.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                false
            })
        });
    }
    std::thread::spawn(move || {
        pump(server2, client2, || {
            // The first chunk since the last request chunk starts a response.
            let starts_response = !answered.swap(true, Ordering::Relaxed);
            if !dice.roll() {
                return false;
            }
            if starts_response {
                cuts.responses.fetch_add(1, Ordering::Relaxed);
            } else {
                cuts.mid_response.fetch_add(1, Ordering::Relaxed);
            }
            true
        })
    });
}

/// Copies `from` → `to` chunk by chunk until either side closes or `cut()` says to cut a chunk,
/// which shuts both connections down.
fn pump(mut from: TcpStream, mut to: TcpStream, mut cut: impl FnMut() -> bool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if cut() {
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
