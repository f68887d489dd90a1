//! A UDP relay between a child node and its parent that injects faults on command: partitions,
//! loss, delay with reordering, duplication. The child joins the proxy's address as its parent's.
//!
//! QUIC runs over UDP, so a relay of datagrams is all a link is made of: cutting the relay cuts
//! the link without restarting either node (the way a village's uplink really fails), and a seeded
//! random source makes every lossy run reproducible from its seed.
//!
//! One relay serves one parent and any number of children: each source address seen on the
//! listening socket gets its own upstream socket, so the parent sees each child at a distinct
//! address, as it would without the relay.

use std::collections::{BinaryHeap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Largest datagram relayed: QUIC never sends more than a path's MTU, far below this.
const DATAGRAM_BUFFER: usize = 65_536;

/// How often blocked receives wake up to notice that the relay is stopping.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// What the relay does to each datagram, in both directions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkMode {
    /// Every datagram passes at once.
    Pass,
    /// Every datagram is dropped: the link is cut.
    Partition,
    /// Each datagram is dropped with this probability (0.0 to 1.0).
    Lossy { drop_fraction: f64 },
    /// Each datagram is held for a random time up to `max_delay`, so later ones can overtake it.
    Slow { max_delay: Duration },
    /// Each datagram is sent twice with this probability.
    Duplicating { duplicate_fraction: f64 },
}

/// Datagrams the relay saw and what it did with them, for a test's report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayCounts {
    pub forwarded: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub delayed: u64,
}

#[derive(Default)]
struct Counters {
    forwarded: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    delayed: AtomicU64,
}

/// A datagram waiting for its time to be sent.
struct Held {
    due: Instant,
    sequence: u64,
    bytes: Vec<u8>,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.sequence) == (other.due, other.sequence)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    // Reversed so that the heap's top is the datagram due first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.sequence).cmp(&(self.due, self.sequence))
    }
}

struct Shared {
    mode: Mutex<LinkMode>,
    random: Mutex<SmallRng>,
    stopping: AtomicBool,
    counters: Counters,
    held: Mutex<BinaryHeap<Held>>,
    held_changed: Condvar,
    sequence: AtomicU64,
}

impl Shared {
    /// Apply the current mode to one datagram going out of `socket` to `to`.
    fn relay(&self, bytes: &[u8], socket: &Arc<UdpSocket>, to: SocketAddr) {
        let mode = *lock(&self.mode);
        let mut random = lock(&self.random);
        match mode {
            LinkMode::Pass => self.send_now(bytes, socket, to),
            LinkMode::Partition => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
            LinkMode::Lossy { drop_fraction } => {
                if random.random_bool(drop_fraction.clamp(0.0, 1.0)) {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.send_now(bytes, socket, to);
                }
            }
            LinkMode::Duplicating { duplicate_fraction } => {
                self.send_now(bytes, socket, to);
                if random.random_bool(duplicate_fraction.clamp(0.0, 1.0)) {
                    self.counters.duplicated.fetch_add(1, Ordering::Relaxed);
                    self.send_now(bytes, socket, to);
                }
            }
            LinkMode::Slow { max_delay } => {
                let millis = max_delay.as_millis().min(u128::from(u32::MAX)) as u64;
                let delay = Duration::from_millis(random.random_range(0..=millis));
                self.counters.delayed.fetch_add(1, Ordering::Relaxed);
                lock(&self.held).push(Held {
                    due: Instant::now() + delay,
                    sequence: self.sequence.fetch_add(1, Ordering::Relaxed),
                    bytes: bytes.to_vec(),
                    socket: Arc::clone(socket),
                    to,
                });
                self.held_changed.notify_all();
            }
        }
    }

    fn send_now(&self, bytes: &[u8], socket: &UdpSocket, to: SocketAddr) {
        // A send that fails (the peer's port closed while it restarts) is a lost datagram, which
        // QUIC recovers from like any other.
        if socket.send_to(bytes, to).is_ok() {
            self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking relay thread leaves the data consistent (every update is one assignment).
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running relay. Dropping it stops its threads.
pub struct FaultProxy {
    listen: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl FaultProxy {
    /// Relay datagrams arriving at a fresh port on 127.0.0.1 to `parent`, with faults drawn from
    /// `seed`. Starts in [`LinkMode::Pass`].
    pub fn start(parent: SocketAddr, seed: u64) -> anyhow::Result<FaultProxy> {
        let listener = Arc::new(UdpSocket::bind("127.0.0.1:0").context("bind the relay's port")?);
        listener
            .set_read_timeout(Some(POLL_INTERVAL))
            .context("set the relay's read timeout")?;
        let listen = listener.local_addr().context("the relay's address")?;
        let shared = Arc::new(Shared {
            mode: Mutex::new(LinkMode::Pass),
            random: Mutex::new(SmallRng::seed_from_u64(seed)),
            stopping: AtomicBool::new(false),
            counters: Counters::default(),
            held: Mutex::new(BinaryHeap::new()),
            held_changed: Condvar::new(),
            sequence: AtomicU64::new(0),
        });
        let mut threads = Vec::new();
        let downstream = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("fault-proxy-down".into())
                .spawn(move || relay_children(listener, parent, shared))
                .context("start the relay thread")?
        };
        threads.push(downstream);
        let scheduler = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("fault-proxy-held".into())
                .spawn(move || send_held(shared))
                .context("start the relay's delay thread")?
        };
        threads.push(scheduler);
        Ok(FaultProxy {
            listen,
            shared,
            threads,
        })
    }

    /// The address children should use as their parent's.
    pub fn address(&self) -> SocketAddr {
        self.listen
    }

    /// Change what the relay does from the next datagram on.
    pub fn set_mode(&self, mode: LinkMode) {
        *lock(&self.shared.mode) = mode;
    }

    /// Cut the link (drop everything).
    pub fn cut(&self) {
        self.set_mode(LinkMode::Partition);
    }

    /// Heal the link (pass everything).
    pub fn heal(&self) {
        self.set_mode(LinkMode::Pass);
    }

    pub fn counts(&self) -> RelayCounts {
        let counters = &self.shared.counters;
        RelayCounts {
            forwarded: counters.forwarded.load(Ordering::Relaxed),
            dropped: counters.dropped.load(Ordering::Relaxed),
            duplicated: counters.duplicated.load(Ordering::Relaxed),
            delayed: counters.delayed.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FaultProxy")
            .field("listen", &self.listen)
            .field("mode", &*lock(&self.shared.mode))
            .field("counts", &self.counts())
            .finish()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.shared.held_changed.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Datagrams from children go up through one upstream socket per child; each upstream socket
/// gets a thread relaying the parent's answers back down to that child.
fn relay_children(listener: Arc<UdpSocket>, parent: SocketAddr, shared: Arc<Shared>) {
    let mut upstream_of_child: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut answer_threads = Vec::new();
    let mut buffer = vec![0u8; DATAGRAM_BUFFER];
    while !shared.stopping.load(Ordering::Relaxed) {
        let (length, child) = match listener.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(_) => continue,
        };
        let upstream = match upstream_of_child.get(&child) {
            Some(socket) => Arc::clone(socket),
            None => {
                let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
                    continue;
                };
                if socket.set_read_timeout(Some(POLL_INTERVAL)).is_err() {
                    continue;
                }
                let socket = Arc::new(socket);
                upstream_of_child.insert(child, Arc::clone(&socket));
                let listener = Arc::clone(&listener);
                let shared = Arc::clone(&shared);
                let upstream = Arc::clone(&socket);
                if let Ok(thread) = std::thread::Builder::new()
                    .name("fault-proxy-up".into())
                    .spawn(move || relay_answers(upstream, listener, child, shared))
                {
                    answer_threads.push(thread);
                }
                socket
            }
        };
        shared.relay(&buffer[..length], &upstream, parent);
    }
    for thread in answer_threads {
        let _ = thread.join();
    }
}

fn relay_answers(
    upstream: Arc<UdpSocket>,
    listener: Arc<UdpSocket>,
    child: SocketAddr,
    shared: Arc<Shared>,
) {
    let mut buffer = vec![0u8; DATAGRAM_BUFFER];
    while !shared.stopping.load(Ordering::Relaxed) {
        if let Ok((length, _)) = upstream.recv_from(&mut buffer) {
            shared.relay(&buffer[..length], &listener, child);
        }
    }
}

fn send_held(shared: Arc<Shared>) {
    let mut held = lock(&shared.held);
    while !shared.stopping.load(Ordering::Relaxed) {
        let now = Instant::now();
        match held.peek().map(|next| next.due) {
            Some(due) if due <= now => {
                if let Some(datagram) = held.pop() {
                    shared.send_now(&datagram.bytes, &datagram.socket, datagram.to);
                }
            }
            Some(due) => {
                held = shared
                    .held_changed
                    .wait_timeout(held, due - now)
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|poisoned| poisoned.into_inner().0);
            }
            None => {
                held = shared
                    .held_changed
                    .wait_timeout(held, POLL_INTERVAL)
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|poisoned| poisoned.into_inner().0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> (SocketAddr, JoinHandle<()>) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let address = socket.local_addr().expect("address");
        let thread = std::thread::spawn(move || {
            let mut buffer = [0u8; 1500];
            while let Ok((length, from)) = socket.recv_from(&mut buffer) {
                if &buffer[..length] == b"stop" {
                    break;
                }
                let _ = socket.send_to(&buffer[..length], from);
            }
        });
        (address, thread)
    }

    fn client(proxy: &FaultProxy, wait: Duration) -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_read_timeout(Some(wait)).expect("timeout");
        socket.connect(proxy.address()).expect("connect");
        socket
    }

    fn round_trip(socket: &UdpSocket, message: &[u8]) -> Option<Vec<u8>> {
        socket.send(message).expect("send");
        let mut buffer = [0u8; 1500];
        socket
            .recv(&mut buffer)
            .ok()
            .map(|length| buffer[..length].to_vec())
    }

    #[test]
    fn relays_both_ways_and_cuts_and_heals_on_command() {
        let (server, server_thread) = echo_server();
        let proxy = FaultProxy::start(server, 1).expect("proxy");
        let socket = client(&proxy, Duration::from_millis(300));
        assert_eq!(
            round_trip(&socket, b"hello").as_deref(),
            Some(&b"hello"[..])
        );
        proxy.cut();
        assert_eq!(round_trip(&socket, b"lost"), None);
        proxy.heal();
        assert_eq!(
            round_trip(&socket, b"again").as_deref(),
            Some(&b"again"[..])
        );
        assert!(proxy.counts().dropped >= 1);
        proxy.heal();
        socket.send(b"stop").expect("send");
        server_thread.join().expect("echo server");
    }

    #[test]
    fn a_slow_link_lets_later_datagrams_overtake_earlier_ones() {
        let (server, server_thread) = echo_server();
        let proxy = FaultProxy::start(server, 7).expect("proxy");
        proxy.set_mode(LinkMode::Slow {
            max_delay: Duration::from_millis(100),
        });
        let socket = client(&proxy, Duration::from_millis(300));
        for index in 0u8..40 {
            socket.send(&[index]).expect("send");
        }
        let mut order = Vec::new();
        let mut buffer = [0u8; 16];
        while let Ok(length) = socket.recv(&mut buffer) {
            if length == 1 {
                order.push(buffer[0]);
            }
        }
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0u8..40).collect::<Vec<_>>(), "nothing lost");
        assert_ne!(order, sorted, "some datagram overtook an earlier one");
        proxy.heal();
        socket.send(b"stop").expect("send");
        server_thread.join().expect("echo server");
    }

    #[test]
    fn a_lossy_link_drops_about_the_fraction_asked_and_is_reproducible_from_its_seed() {
        // One way only, so that the relay draws for the datagrams in the order they were sent.
        let delivered_with_seed = |seed| {
            let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
            server
                .set_read_timeout(Some(Duration::from_millis(300)))
                .expect("timeout");
            let proxy =
                FaultProxy::start(server.local_addr().expect("address"), seed).expect("proxy");
            proxy.set_mode(LinkMode::Lossy { drop_fraction: 0.5 });
            let socket = client(&proxy, Duration::from_millis(300));
            for index in 0u8..200 {
                socket.send(&[index]).expect("send");
            }
            let mut delivered = Vec::new();
            let mut buffer = [0u8; 16];
            while let Ok((length, _)) = server.recv_from(&mut buffer) {
                delivered.extend_from_slice(&buffer[..length]);
            }
            delivered
        };
        let first = delivered_with_seed(42);
        assert!(
            (60..=140).contains(&first.len()),
            "{} of 200 delivered",
            first.len()
        );
        assert_eq!(first, delivered_with_seed(42), "same seed, same losses");
        assert_ne!(first, delivered_with_seed(43), "another seed, other losses");
    }
}
