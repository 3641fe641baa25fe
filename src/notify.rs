//! systemd's notification protocol for `Type=notify` services: datagrams
//! such as `READY=1`, `WATCHDOG=1` and `STATUS=...` to the socket named in
//! `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading `@`).
//!
//! Without `$NOTIFY_SOCKET` every call does nothing. A failed send is logged
//! at debug level and otherwise ignored: supervision must never stop the
//! agent. It must not send anything but these state lines.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

pub struct Notifier {
    target: Option<(UnixDatagram, String)>,
    /// Half of `$WATCHDOG_USEC`, when the watchdog is on for this process.
    pub watchdog_every: Option<Duration>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`.
    pub fn from_env() -> Notifier {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Notifier::new(
            get("NOTIFY_SOCKET").as_deref(),
            get("WATCHDOG_USEC").as_deref(),
            get("WATCHDOG_PID").as_deref(),
            std::process::id(),
        )
    }

    pub fn new(
        socket: Option<&str>,
        wd_usec: Option<&str>,
        wd_pid: Option<&str>,
        pid: u32,
    ) -> Notifier {
        let target = socket.and_then(|s| match UnixDatagram::unbound() {
            Ok(sock) => Some((sock, s.to_string())),
            Err(e) => {
                log::debug!("NOTIFY_SOCKET: cannot make a socket: {e}");
                None
            }
        });
        Notifier {
            target,
            watchdog_every: watchdog_interval(wd_usec, wd_pid, pid),
        }
    }

    #[cfg(test)]
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Send one state line (e.g. `READY=1\nSTATUS=checked in`).
    pub fn send(&self, state: &str) {
        let Some((sock, name)) = &self.target else {
            return;
        };
        let r = match name.strip_prefix('@') {
            Some(abs) => send_abstract(sock, abs, state),
            None => sock.send_to(state.as_bytes(), name).map(|_| ()),
        };
        if let Err(e) = r {
            log::debug!("NOTIFY_SOCKET {name}: {e}");
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(sock: &UnixDatagram, name: &str, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    sock.send_to_addr(state.as_bytes(), &addr).map(|_| ())
}

/// Half the watchdog period when `WATCHDOG_USEC` is set and `WATCHDOG_PID`
/// (if set) is this process.
pub fn watchdog_interval(usec: Option<&str>, wd_pid: Option<&str>, pid: u32) -> Option<Duration> {
    let us: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(p) = wd_pid {
        if p.trim().parse::<u32>().ok() != Some(pid) {
            return None;
        }
    }
    Some(Duration::from_micros(us / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_settings() {
        let cases = [
            (Some("20000000"), None, Some(Duration::from_secs(10))),
            (Some("20000000"), Some("42"), Some(Duration::from_secs(10))),
            (Some("20000000"), Some("43"), None),
            (Some("0"), None, None),
            (Some("x"), None, None),
            (None, None, None),
        ];
        for (usec, pid, want) in cases {
            assert_eq!(
                watchdog_interval(usec, pid, 42),
                want,
                "usec {usec:?} pid {pid:?}"
            );
        }
    }

    #[test]
    fn sends_to_a_path_and_an_abstract_socket() {
        let dir = std::env::temp_dir().join(format!("outpost-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("notify.sock");
        let rx = UnixDatagram::bind(&path).expect("bind path socket");
        let n = Notifier::new(path.to_str(), None, None, 1);
        n.send("READY=1");
        let mut buf = [0u8; 64];
        let k = rx.recv(&mut buf).expect("receive");
        assert_eq!(&buf[..k], b"READY=1", "path socket");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("outpost-test-{}", std::process::id());
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let rx2 = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        let n2 = Notifier::new(Some(&format!("@{name}")), None, None, 1);
        n2.send("WATCHDOG=1");
        let k = rx2.recv(&mut buf).expect("receive abstract");
        assert_eq!(&buf[..k], b"WATCHDOG=1", "abstract socket");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            !Notifier::new(None, None, None, 1).enabled(),
            "no socket: disabled"
        );
    }
}
