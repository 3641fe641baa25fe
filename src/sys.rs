//! The host seen by the agent: `Root` (every path under a prefix, so `--root`
//! can point at a fixture tree or an OS image) and the `Host` trait (what only
//! a syscall can tell: euid, clock, statvfs, uname, sleep, randomness).
//!
//! This is the only module that names `libc` and holds `unsafe`. It must not
//! parse kernel text formats (that is `facts/`) or decide anything.

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
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The host to use: the real one, or with the `test-hooks` feature, the real
/// one with `OUTPOST_TEST_NOW` (Unix seconds) and `OUTPOST_TEST_EUID` applied.
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
    }

    impl HookedHost {
        pub fn from_env() -> HookedHost {
            let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
            HookedHost {
                now: num("OUTPOST_TEST_NOW"),
                euid: num("OUTPOST_TEST_EUID").map(|v| v as u32),
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
            RealHost.statvfs(path)
        }
        fn sleep(&self, d: Duration) {
            RealHost.sleep(d)
        }
        fn fill_random(&self, buf: &mut [u8]) -> io::Result<()> {
            RealHost.fill_random(buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
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
        assert_eq!(Root::system().path("/proc/meminfo"), PathBuf::from("/proc/meminfo"));
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
    }
}
