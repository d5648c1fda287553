//! A TCP relay between clients and a broker listener that a test breaks on purpose: refuse new
//! connections, cut the open ones mid-stream, black-hole (accept, hold every byte, never
//! answer) or add latency. A Kafka cluster started with [`crate::KafkaOptions::faults`]
//! advertises the relay's port on a listener of its own, so clients that bootstrap through
//! the relay stay behind it, while the test's own clients use the direct listener.
//!
//! Plain threads: one accepting, and per connection and direction one reading and one writing
//! (latency delays each chunk without limiting throughput to a chunk per delay). Invariant:
//! bytes are relayed in order or not at all; a black hole holds them (the connection resumes
//! when it ends, as after a healed partition), it never drops them.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Result;

/// What the relay does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Relays everything as it comes.
    None,
    /// New connections are closed as soon as they are accepted; open ones go on.
    Refuse,
    /// Connections (open and new) are kept, and nothing crosses in either direction.
    BlackHole,
    /// Every chunk crosses this much later, in each direction.
    Latency(Duration),
}

struct Shared {
    upstream: SocketAddr,
    fault: Mutex<Fault>,
    changed: Condvar,
    stopping: AtomicBool,
    /// Both sockets of every open connection, by id, to cut them.
    open: Mutex<Vec<(u64, TcpStream, TcpStream)>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
}

impl Shared {
    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns once the relay is not a black hole (or is stopping).
    fn wait_while_black_hole(&self) {
        let mut fault = self.fault.lock().unwrap_or_else(|e| e.into_inner());
        while *fault == Fault::BlackHole && !self.stopping.load(Ordering::Relaxed) {
            fault = self
                .changed
                .wait_timeout(fault, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn close(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(index) = open.iter().position(|(i, _, _)| *i == id) {
            let (_, client, upstream) = open.swap_remove(index);
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }
}

/// A relay from a local port to `upstream`; stops (and cuts everything) when dropped.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Relays `127.0.0.1:port` to `upstream`; port 0 takes a free one (no race with another
    /// caller probing for free ports: the relay holds it from the start).
    pub fn start(port: u16, upstream: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            upstream,
            fault: Mutex::new(Fault::None),
            changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("fault-proxy-{port}"))
                .spawn(move || accept(listener, shared))?
        };
        Ok(FaultProxy {
            port,
            shared,
            acceptor: Some(acceptor),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT` of the relay.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// From now on, does `fault` to traffic.
    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
        self.shared.changed.notify_all();
    }

    /// Cuts every open connection now, mid-stream; returns how many there were.
    pub fn cut(&self) -> usize {
        let open: Vec<u64> = self
            .shared
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, _, _)| *id)
            .collect();
        for id in &open {
            self.shared.close(*id);
        }
        open.len()
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Connections accepted since the start (refused ones included).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.shared.changed.notify_all();
        // Wake the acceptor.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.cut();
    }
}

fn accept(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        let Ok(client) = client else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        if shared.fault() == Fault::Refuse {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let shared = shared.clone();
        // Connecting upstream can take a while when the broker is down: not on the acceptor.
        let _ = std::thread::Builder::new()
            .name("fault-proxy-connect".into())
            .spawn(move || relay(client, shared));
    }
}

fn relay(client: TcpStream, shared: Arc<Shared>) {
    let Ok(upstream) = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(5)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let clones = (client.try_clone(), upstream.try_clone());
    let (Ok(client_copy), Ok(upstream_copy)) = clones else {
        return;
    };
    shared
        .open
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((id, client_copy, upstream_copy));
    for (from, to) in [(&client, &upstream), (&upstream, &client)] {
        let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
            shared.close(id);
            return;
        };
        let shared = shared.clone();
        let _ = std::thread::Builder::new()
            .name("fault-proxy-pump".into())
            .spawn(move || pump(from, to, id, shared));
    }
}

/// Relays one direction until either side closes, then closes both.
fn pump(mut from: TcpStream, mut to: TcpStream, id: u64, shared: Arc<Shared>) {
    let (chunks, due) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("fault-proxy-write".into())
            .spawn(move || {
                for (at, bytes) in due {
                    if let Some(wait) = at.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    shared.wait_while_black_hole();
                    if to.write_all(&bytes).is_err() {
                        break;
                    }
                }
                shared.close(id);
            })
    };
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        shared.wait_while_black_hole();
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let delay = match shared.fault() {
            Fault::Latency(delay) => delay,
            _ => Duration::ZERO,
        };
        if chunks
            .send((Instant::now() + delay, buffer[..read].to_vec()))
            .is_err()
        {
            break;
        }
    }
    drop(chunks);
    if let Ok(writer) = writer {
        let _ = writer.join();
    }
    shared.close(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes what it reads.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut buffer = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buffer) {
                        if n == 0 || stream.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        address
    }

    fn proxy() -> FaultProxy {
        FaultProxy::start(0, echo_server()).unwrap()
    }

    fn round_trip(stream: &mut TcpStream, text: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(text)?;
        let mut answer = vec![0u8; text.len()];
        stream.read_exact(&mut answer)?;
        Ok(answer)
    }

    fn connect(proxy: &FaultProxy) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
    }

    #[test]
    fn relays_in_order_and_cuts_mid_stream() {
        let proxy = proxy();
        let mut stream = connect(&proxy);
        assert_eq!(round_trip(&mut stream, b"hello").unwrap(), b"hello");
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(round_trip(&mut stream, &big).unwrap(), big);
        assert_eq!(proxy.cut(), 1);
        let mut rest = Vec::new();
        assert!(matches!(stream.read_to_end(&mut rest), Ok(0) | Err(_)));
        // A new connection works again.
        let mut again = connect(&proxy);
        assert_eq!(round_trip(&mut again, b"again").unwrap(), b"again");
    }

    #[test]
    fn refuses_new_connections_only() {
        let proxy = proxy();
        let mut open = connect(&proxy);
        // Accepted and relayed before the fault.
        assert_eq!(round_trip(&mut open, b"first").unwrap(), b"first");
        proxy.set(Fault::Refuse);
        let mut refused = connect(&proxy);
        let mut byte = [0u8; 1];
        assert!(matches!(refused.read(&mut byte), Ok(0) | Err(_)));
        assert_eq!(round_trip(&mut open, b"still").unwrap(), b"still");
    }

    #[test]
    fn a_black_hole_holds_bytes_and_delivers_them_when_it_ends() {
        let proxy = proxy();
        let mut stream = connect(&proxy);
        assert_eq!(round_trip(&mut stream, b"before").unwrap(), b"before");
        proxy.set(Fault::BlackHole);
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        stream.write_all(b"held").unwrap();
        let mut answer = [0u8; 4];
        assert!(stream.read_exact(&mut answer).is_err(), "nothing crosses");
        proxy.set(Fault::None);
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"held");
    }

    #[test]
    fn latency_delays_each_direction() {
        let proxy = proxy();
        proxy.set(Fault::Latency(Duration::from_millis(150)));
        let mut stream = connect(&proxy);
        let started = Instant::now();
        assert_eq!(round_trip(&mut stream, b"slow").unwrap(), b"slow");
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}
