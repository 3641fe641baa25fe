//! The host seen by the agent: `Root` (every path under a prefix, so `--root`
//! can point at a fixture tree or an OS image) and the `Host` trait (what only
//! a syscall can tell: euid, clock, statvfs, uname, sleep, randomness).
//!
//! This is the only module that names `libc` and holds `unsafe`. It must not
//! parse kernel text formats (that is `facts/`) or decide anything.

// The crate denies `unsafe_code`; the syscalls live here, each with a SAFETY note.
#![allow(unsafe_code)]

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A path prefix under which every absolute host path is resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    base: PathBuf,
}

impl Root {
    pub fn new(base: impl Into<PathBuf>) -> Root {
        Root { base: base.into() }
    }

    /// The live system.
    pub fn system() -> Root {
        Root::new("/")
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// True when this root is the live system (`/`), not an image or fixture.
    pub fn is_live(&self) -> bool {
        self.base.components().all(|c| c == Component::RootDir)
    }

    /// Resolve an absolute host path (e.g. `/proc/meminfo`) under the root.
    ///
    /// `Path::join` with an absolute argument replaces the base, so the leading
    /// `/` is stripped first; `..` components are dropped so a path read from
    /// a host file cannot climb out of the root.
    pub fn path(&self, host_path: impl AsRef<Path>) -> PathBuf {
        let mut out = self.base.clone();
        for c in host_path.as_ref().components() {
            match c {
                Component::Normal(part) => out.push(part),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => {}
            }
        }
        out
    }

    /// Read a small text file under the root.
    pub fn read(&self, host_path: impl AsRef<Path>) -> io::Result<String> {
        std::fs::read_to_string(self.path(host_path))
    }

    /// Read a file and trim surrounding white space; `None` when missing or unreadable.
    pub fn read_trim(&self, host_path: impl AsRef<Path>) -> Option<String> {
        self.read(host_path).ok().map(|s| s.trim().to_string())
    }

    pub fn exists(&self, host_path: impl AsRef<Path>) -> bool {
        self.path(host_path).exists()
    }
}

/// Kernel identification as `uname(2)` gives it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Uname {
    pub machine: String,
    pub release: String,
    pub nodename: String,
}

/// Filesystem capacity as `statvfs(3)` gives it, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsSpace {
    pub total: u64,
    pub available: u64,
}

/// What only a syscall can tell. Tests substitute their own values.
pub trait Host {
    fn euid(&self) -> u32;
    fn now(&self) -> SystemTime;
    fn uname(&self) -> io::Result<Uname>;
    fn statvfs(&self, path: &Path) -> io::Result<FsSpace>;
    fn sleep(&self, d: Duration);
    fn fill_random(&self, buf: &mut [u8]) -> io::Result<()>;
    /// Whether the kernel clock is synchronised (NTP status from
    /// `adjtimex(2)`); `None` when the host cannot tell.
    fn clock_synced(&self) -> Option<bool> {
        None
    }
}

/// The real host.
pub struct RealHost;

impl Host for RealHost {
    fn euid(&self) -> u32 {
        // SAFETY: geteuid takes no arguments, cannot fail and touches no memory of ours.
        unsafe { libc::geteuid() }
    }

    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn uname(&self) -> io::Result<Uname> {
        // SAFETY: utsname is plain old data; all-zero is a valid value.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: `u` is a valid, writable utsname for the duration of the call.
        if unsafe { libc::uname(&mut u) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Uname {
            machine: c_chars(&u.machine),
            release: c_chars(&u.release),
            nodename: c_chars(&u.nodename),
        })
    }

    fn statvfs(&self, path: &Path) -> io::Result<FsSpace> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        // SAFETY: statvfs is plain old data; all-zero is a valid value.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated string and `s` a valid, writable statvfs.
        if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let frsize = if s.f_frsize > 0 {
            s.f_frsize as u64
        } else {
            s.f_bsize as u64
        };
        Ok(FsSpace {
            total: (s.f_blocks as u64).saturating_mul(frsize),
            available: (s.f_bavail as u64).saturating_mul(frsize),
        })
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }

    fn fill_random(&self, buf: &mut [u8]) -> io::Result<()> {
        getrandom_fill(buf)
    }

    fn clock_synced(&self) -> Option<bool> {
        // SAFETY: timex is plain old data; all-zero (modes = 0) asks for a read only.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        // SAFETY: `tx` is a valid, writable timex; modes 0 changes nothing.
        let state = unsafe { libc::adjtimex(&mut tx) };
        if state < 0 {
            return None;
        }
        Some(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
    }
}

fn getrandom_fill(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is a valid writable buffer of `rest.len()` bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}

fn c_chars(field: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = field
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// True when standard output is a terminal.
pub fn stdout_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor number.
    unsafe { libc::isatty(1) == 1 }
}

/// Seconds since the Unix epoch (0 for a clock before 1970).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ------------------------------------------------------------ state lock

/// Try to take an exclusive `flock` on `file` without waiting. `Ok(false)`
/// when another process holds it. The lock lasts as long as the descriptor.
pub fn try_lock_exclusive(file: &std::fs::File) -> io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    loop {
        // SAFETY: flock only takes a descriptor number we own (borrowed from `file`).
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

// ------------------------------------------------------------ stop signals

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop_signal(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Route SIGTERM and SIGINT to a flag that `stop_requested` reads, so a
/// long-running command ends cleanly between steps.
pub fn install_stop_handlers() -> io::Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: sigaction is plain old data; all-zero is a valid empty value.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_stop_signal as extern "C" fn(libc::c_int) as usize;
        // SAFETY: `sa.sa_mask` is a valid sigset_t owned by us.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: `sa` is fully initialised; the handler only stores an atomic.
        if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// True once SIGTERM or SIGINT arrived (after `install_stop_handlers`).
pub fn stop_requested() -> bool {
    STOP.load(std::sync::atomic::Ordering::SeqCst)
}

// ------------------------------------------------------------ interfaces

/// One address of a network interface as `getifaddrs(3)` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfAddr {
    pub name: String,
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

/// The IPv4 and IPv6 addresses of this host's interfaces (live host only:
/// a `--root` tree has no sockets to ask).
pub fn interface_addrs() -> io::Result<Vec<IfAddr>> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid out-pointer; freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr is non-null and points to at least a sockaddr.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        let (addr, prefix) = if family == libc::AF_INET {
            // SAFETY: the family says this is a sockaddr_in; netmask, when set, too.
            let a = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            let prefix = if ifa.ifa_netmask.is_null() {
                32
            } else {
                // SAFETY: as above, same family.
                let m = unsafe { &*(ifa.ifa_netmask as *const libc::sockaddr_in) };
                u32::from_be(m.sin_addr.s_addr).count_ones() as u8
            };
            (IpAddr::V4(ip), prefix)
        } else if family == libc::AF_INET6 {
            // SAFETY: the family says this is a sockaddr_in6; netmask, when set, too.
            let a = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            let prefix = if ifa.ifa_netmask.is_null() {
                128
            } else {
                // SAFETY: as above, same family.
                let m = unsafe { &*(ifa.ifa_netmask as *const libc::sockaddr_in6) };
                m.sin6_addr
                    .s6_addr
                    .iter()
                    .map(|b| b.count_ones())
                    .sum::<u32>() as u8
            };
            (IpAddr::V6(ip), prefix)
        } else {
            continue;
        };
        out.push(IfAddr { name, addr, prefix });
    }
    // SAFETY: `head` came from getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// Test hook (`test-hooks` builds only): with `OUTPOST_TEST_NO_TLS_RESUME`
/// set, the transport keeps no TLS sessions, so every new connection makes
/// a full handshake (scripts/bench.d/72-keepalive measures what resumption
/// saves). Always false in release builds.
pub fn tls_resumption_off() -> bool {
    #[cfg(feature = "test-hooks")]
    if std::env::var_os("OUTPOST_TEST_NO_TLS_RESUME").is_some() {
        return true;
    }
    false
}

/// A command that runs this binary again (`outpost boot` runs its early
/// check-in as a child). With `test-hooks`, `OUTPOST_TEST_RUNNER` (e.g.
/// `qemu-aarch64-static`) is put in front, as the tests do for the parent.
pub fn self_command() -> io::Result<std::process::Command> {
    let exe = self_exe()?;
    #[cfg(feature = "test-hooks")]
    if let Ok(runner) = std::env::var("OUTPOST_TEST_RUNNER") {
        let mut parts = runner.split_whitespace();
        if let Some(first) = parts.next() {
            let mut c = std::process::Command::new(first);
            c.args(parts).arg(exe);
            return Ok(c);
        }
    }
    Ok(std::process::Command::new(exe))
}

/// This program's file. After a self-upgrade swap the running file is
/// gone and the kernel names it `PATH (deleted)`: the path is what counts
/// (the new binary is there now).
pub fn self_exe() -> io::Result<std::path::PathBuf> {
    let p = std::env::current_exe()?;
    Ok(
        match p.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
            Some(s) => std::path::PathBuf::from(s),
            None => p,
        },
    )
}

// ------------------------------------------------------------ raw ARP

/// An `AF_PACKET` datagram socket for ARP on one interface (the VIP probe;
/// needs CAP_NET_RAW). The kernel adds and strips the Ethernet header.
pub struct PacketSocket {
    fd: std::os::fd::OwnedFd,
    ifindex: i32,
}

const ETH_P_ARP: u16 = 0x0806;

impl PacketSocket {
    /// Open and bind to interface `ifindex`, receiving ARP frames only.
    pub fn arp(ifindex: i32) -> io::Result<PacketSocket> {
        use std::os::fd::FromRawFd;
        let proto = i32::from(ETH_P_ARP.to_be());
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                proto,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own; OwnedFd closes it once.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        let sll = Self::addr(ifindex, [0; 6]);
        // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
        let r = unsafe {
            libc::bind(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { fd, ifindex })
    }

    fn addr(ifindex: i32, dest: [u8; 6]) -> libc::sockaddr_ll {
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ARP.to_be();
        sll.sll_ifindex = ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&dest);
        sll
    }

    /// Send one ARP payload to the Ethernet broadcast address.
    pub fn send_broadcast(&self, payload: &[u8]) -> io::Result<()> {
        let sll = Self::addr(self.ifindex, [0xff; 6]);
        // SAFETY: buffer and address are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                std::os::fd::AsRawFd::as_raw_fd(&self.fd),
                payload.as_ptr().cast(),
                payload.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Wait up to `timeout` for one ARP payload; `None` on timeout.
    pub fn recv(&self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.fd);
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, count 1.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(Some(Vec::new()))
            } else {
                Err(e)
            };
        }
        if r == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; 1500];
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(Some(Vec::new()))
            } else {
                Err(e)
            };
        }
        buf.truncate(n as usize);
        Ok(Some(buf))
    }
}

/// The host to use: the real one, or with the `test-hooks` feature, the real
/// one with `OUTPOST_TEST_NOW` (Unix seconds), `OUTPOST_TEST_EUID` and
/// `OUTPOST_TEST_FREE_BYTES` (what statvfs reports as total and available) applied,
/// and with `OUTPOST_TEST_SKIP_SLEEP` set, sleeps printed instead of slept.
pub fn host() -> Box<dyn Host> {
    #[cfg(feature = "test-hooks")]
    {
        Box::new(hooks::HookedHost::from_env())
    }
    #[cfg(not(feature = "test-hooks"))]
    {
        Box::new(RealHost)
    }
}

#[cfg(feature = "test-hooks")]
mod hooks {
    use super::*;

    /// The real host with test overrides from the environment.
    pub struct HookedHost {
        now: Option<u64>,
        euid: Option<u32>,
        free_bytes: Option<u64>,
        skip_sleep: bool,
    }

    impl HookedHost {
        pub fn from_env() -> HookedHost {
            let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
            HookedHost {
                now: num("OUTPOST_TEST_NOW"),
                euid: num("OUTPOST_TEST_EUID").map(|v| v as u32),
                free_bytes: num("OUTPOST_TEST_FREE_BYTES"),
                skip_sleep: std::env::var_os("OUTPOST_TEST_SKIP_SLEEP").is_some(),
            }
        }
    }

    impl Host for HookedHost {
        fn euid(&self) -> u32 {
            self.euid.unwrap_or_else(|| RealHost.euid())
        }
        fn now(&self) -> SystemTime {
            match self.now {
                Some(s) => UNIX_EPOCH + Duration::from_secs(s),
                None => SystemTime::now(),
            }
        }
        fn uname(&self) -> io::Result<Uname> {
            RealHost.uname()
        }
        fn statvfs(&self, path: &Path) -> io::Result<FsSpace> {
            match self.free_bytes {
                Some(b) => Ok(FsSpace {
                    total: b,
                    available: b,
                }),
                None => RealHost.statvfs(path),
            }
        }
        fn sleep(&self, d: Duration) {
            if self.skip_sleep {
                // Tests see the chosen delay instead of waiting it out.
                eprintln!("outpost: test: sleep of {} ms skipped", d.as_millis());
                return;
            }
            RealHost.sleep(d)
        }
        fn fill_random(&self, buf: &mut [u8]) -> io::Result<()> {
            RealHost.fill_random(buf)
        }
        fn clock_synced(&self) -> Option<bool> {
            RealHost.clock_synced()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::join_absolute_paths)] // the trap is shown on purpose
    fn absolute_paths_stay_under_the_root() {
        let r = Root::new("/r");
        let cases = [
            ("/etc/x", "/r/etc/x"),
            ("etc/x", "/r/etc/x"),
            ("//proc//meminfo", "/r/proc/meminfo"),
            ("/../../etc/shadow", "/r/etc/shadow"),
            ("/sys/./block/../dev", "/r/sys/block/dev"),
            ("/", "/r"),
        ];
        for (input, want) in cases {
            assert_eq!(r.path(input), PathBuf::from(want), "input {input:?}");
        }
        // The trap this guards against:
        assert_eq!(Path::new("/r").join("/etc/x"), PathBuf::from("/etc/x"));
    }

    #[test]
    fn live_root_is_detected() {
        assert!(Root::new("/").is_live());
        assert!(!Root::new("/tmp/img").is_live());
        assert_eq!(
            Root::system().path("/proc/meminfo"),
            PathBuf::from("/proc/meminfo")
        );
    }

    #[test]
    fn real_host_answers() {
        let h = RealHost;
        let u = h.uname().expect("uname");
        assert!(!u.machine.is_empty(), "uname machine empty");
        let s = h.statvfs(Path::new("/")).expect("statvfs /");
        assert!(s.total >= s.available, "statvfs total < available");
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        h.fill_random(&mut a).expect("random");
        h.fill_random(&mut b).expect("random");
        assert_ne!(a, b, "two random fills were equal");
        // Either answer is fine; the call must not fail on a normal kernel.
        assert!(h.clock_synced().is_some(), "adjtimex failed");
    }
}
