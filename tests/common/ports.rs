//! Ports for servers the tests and benches start that must be told their port (SeaweedFS,
//! moto): leased, never merely "free a moment ago". Shared by both crates (the benches
//! include this file with `#[path]`), so it uses std only.
//!
//! A port found by binding port 0 and closing lies in the kernel's ephemeral range, where any
//! other `bind(0)` on the machine (other tests, other suites running at once) may be handed
//! it again before the server binds it, and where it is free for anyone while a killed server
//! is down before its restart. A lease is a port outside that range (no `bind(0)` or
//! `connect()` lands there), checked free, and held by an abstract unix socket named after it
//! for as long as the [`Lease`] lives: every lease in any process honours it, and the kernel
//! drops it when the holder dies (no lock files left behind).
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::time::{Duration, Instant};

/// A port lease: the port, free when checked, and the abstract socket that holds it.
pub struct Lease {
    _hold: UnixListener,
}

/// `ip_local_port_range`: where `bind(0)` and `connect()` pick ports.
fn ephemeral_range() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// Whether nothing listens on or is bound to `port`, in the ways weed checks it (the bind
/// address and every interface).
fn port_free(port: u16) -> bool {
    let v4 = TcpListener::bind(("127.0.0.1", port)).is_ok()
        && TcpListener::bind(("0.0.0.0", port)).is_ok();
    // No IPv6 on the machine is fine; only "in use" means taken.
    v4 && !matches!(
        TcpListener::bind(("::", port)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse
    )
}

/// Takes the lease of `port` if no store in any process holds it and it is free now.
fn lease(port: u16) -> Option<Lease> {
    let name = format!("staticd-test-port-{port}");
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).ok()?;
    let hold = UnixListener::bind_addr(&addr).ok()?;
    port_free(port).then_some(Lease { _hold: hold })
}

/// A xorshift over time, pid and a counter: spread picks, no dependency.
fn random() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
        ^ (u64::from(std::process::id()) << 32);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// Leases `count` distinct ports outside the ephemeral range, each with `port + gap` leased
/// too when `gap` is set (weed's admin worker dials the admin port + 10000 whatever
/// `-admin.port.grpc` says).
pub fn lease_ports(count: usize, gap: Option<u16>) -> (Vec<u16>, Vec<Lease>) {
    let (lo, hi) = ephemeral_range();
    let usable = |p: u32| (10000..=65535).contains(&p) && !(lo..=hi).contains(&p);
    let mut ports = Vec::new();
    let mut leases = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ports.len() < count {
        assert!(
            Instant::now() < deadline,
            "no free port outside the ephemeral range {lo}-{hi} in 30 s"
        );
        let p = 10000 + (random() % 55536) as u32;
        let pair = gap.map(|g| p + u32::from(g));
        if !usable(p) || pair.is_some_and(|q| !usable(q)) {
            continue;
        }
        let Some(a) = lease(p as u16) else { continue };
        match pair {
            None => leases.push(a),
            Some(q) => {
                let Some(b) = lease(q as u16) else { continue };
                leases.extend([a, b]);
            }
        }
        ports.push(p as u16);
    }
    (ports, leases)
}
