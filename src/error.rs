//! One error type for the whole agent and the exit-code table.
//!
//! Every error carries its exit code and a one-line message that names the
//! operation and the object ("reading /etc/os-release: Permission denied").
//! This file must not print, log or exit: `main.rs` maps an `Error` to the
//! process exit status. Messages must never contain secrets.

use std::fmt;
use std::path::Path;

/// Process exit codes. The numbers are a public contract (README, systemd's
/// `RestartPreventExitStatus=`): never renumber, only add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Success; for `check`: nothing failed (warnings allowed).
    Ok = 0,
    /// `check`: at least one check failed; `status`: last check-in failed.
    CheckFailed = 1,
    /// Usage: unknown flag, bad argument.
    Usage = 2,
    /// Configuration invalid.
    Config = 3,
    /// Not permitted (needs root, unsafe file mode).
    NotPermitted = 4,
    /// Already running (state lock held).
    Locked = 5,
    /// Nothing to do in local management mode.
    LocalMode = 6,
    /// `status`: overdue or never checked in.
    Overdue = 7,
    /// Network: DNS, connect, proxy, timeout, TLS handshake, clock not valid.
    Network = 10,
    /// Server busy: 429, 503, other 5xx.
    ServerBusy = 11,
    /// Server answer unusable: bad JSON, oversized, protocol error.
    BadAnswer = 12,
    /// Registration refused: bad or expired token.
    RegistrationRefused = 13,
    /// Duplicate host ID.
    DuplicateHost = 14,
    /// Deregistered by the server.
    Deregistered = 15,
    /// Server certificate not trusted.
    Untrusted = 16,
    /// Local I/O: disk full, state not writable.
    LocalIo = 20,
    /// Upgrade refused: the artifact failed verification (signature, key,
    /// size, SHA-256, architecture, smoke run) or is not newer.
    UpgradeRejected = 21,
    /// Restart requested (after a self-upgrade).
    Restart = 75,
}

/// How a supervisor should treat an exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Informational result, not an error of the agent.
    Result,
    /// Retrying without a change of input cannot help.
    Permanent,
    /// Nothing was done; the next scheduled run will do it.
    Skip,
    /// A later retry may succeed.
    Retryable,
    /// The service should be restarted.
    Restart,
}

impl Code {
    /// Every code, in table order (used by `--help`, the README test and systemd units).
    pub const ALL: [Code; 18] = [
        Code::Ok,
        Code::CheckFailed,
        Code::Usage,
        Code::Config,
        Code::NotPermitted,
        Code::Locked,
        Code::LocalMode,
        Code::Overdue,
        Code::Network,
        Code::ServerBusy,
        Code::BadAnswer,
        Code::RegistrationRefused,
        Code::DuplicateHost,
        Code::Deregistered,
        Code::Untrusted,
        Code::LocalIo,
        Code::UpgradeRejected,
        Code::Restart,
    ];

    pub fn as_i32(self) -> i32 {
        self as i32
    }

    pub fn kind(self) -> Kind {
        match self {
            Code::Ok | Code::CheckFailed | Code::Overdue => Kind::Result,
            Code::Usage
            | Code::Config
            | Code::NotPermitted
            | Code::RegistrationRefused
            | Code::DuplicateHost
            | Code::Deregistered
            | Code::Untrusted
            | Code::UpgradeRejected => Kind::Permanent,
            Code::Locked | Code::LocalMode => Kind::Skip,
            Code::Network | Code::ServerBusy | Code::BadAnswer | Code::LocalIo => Kind::Retryable,
            Code::Restart => Kind::Restart,
        }
    }

    pub fn is_retryable(self) -> bool {
        self.kind() == Kind::Retryable
    }

    /// The short meaning, as in the README table.
    pub fn meaning(self) -> &'static str {
        match self {
            Code::Ok => "success; for check: nothing failed (warnings allowed)",
            Code::CheckFailed => "check: at least one check failed; status: last check-in failed",
            Code::Usage => "usage: unknown flag, bad argument",
            Code::Config => "configuration invalid",
            Code::NotPermitted => "not permitted (needs root, unsafe file mode)",
            Code::Locked => "already running (state lock held)",
            Code::LocalMode => "nothing to do in local management mode",
            Code::Overdue => {
                "status: overdue (no successful check-in for 2 intervals) or never checked in"
            }
            Code::Network => {
                "network: DNS, connect, proxy, timeout, TLS handshake, clock not yet valid"
            }
            Code::ServerBusy => "server busy: 429, 503, other 5xx (Retry-After honoured)",
            Code::BadAnswer => "server answer unusable: bad JSON, oversized, protocol error",
            Code::RegistrationRefused => "registration refused: bad or expired token",
            Code::DuplicateHost => "duplicate host ID",
            Code::Deregistered => "deregistered by the server",
            Code::Untrusted => "server certificate not trusted (wrong CA, expired, name mismatch)",
            Code::LocalIo => "local I/O: disk full, state not writable",
            Code::UpgradeRejected => {
                "upgrade refused: artifact failed verification (signature, size, sha256, arch, smoke run) or not newer"
            }
            Code::Restart => "restart requested (after a self-upgrade)",
        }
    }

    /// The permanent codes as a space-separated list for `RestartPreventExitStatus=`.
    pub fn permanent_list() -> String {
        Code::ALL
            .iter()
            .filter(|c| c.kind() == Kind::Permanent)
            .map(|c| c.as_i32().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// An error with its exit code and a one-line, secret-free message; for a
/// failed check-in also the server's wish when to come back (`Retry-After`).
/// The one failure type of the agent: the fields are private, made by the
/// constructors below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: Code,
    message: String,
    retry_after: Option<std::time::Duration>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, carrying the server's `Retry-After`.
    pub fn with_retry_after(self, retry_after: Option<std::time::Duration>) -> Error {
        Error {
            retry_after,
            ..self
        }
    }

    /// The exit code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The one-line message (also what `Display` prints).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// When the server asked to be contacted again, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
    }

    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(Code::Usage, message)
    }

    pub fn config(message: impl Into<String>) -> Error {
        Error::new(Code::Config, message)
    }

    /// A local I/O failure: "`op` `path`: `err`". Permission errors map to
    /// exit 4, everything else to exit 20.
    pub fn io(op: &str, path: &Path, err: &std::io::Error) -> Error {
        let code = match err.kind() {
            std::io::ErrorKind::PermissionDenied => Code::NotPermitted,
            _ => Code::LocalIo,
        };
        Error::new(code, format!("{op} {}: {}", path.display(), io_text(err)))
    }
}

/// `std::io::Error` text without the "(os error N)" suffix.
pub fn io_text(err: &std::io::Error) -> String {
    let s = err.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_numbers() {
        let want = [
            0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 20, 21, 75,
        ];
        let got: Vec<i32> = Code::ALL.iter().map(|c| c.as_i32()).collect();
        assert_eq!(got, want, "exit-code table changed");
    }

    #[test]
    fn permanent_codes_for_systemd() {
        assert_eq!(Code::permanent_list(), "2 3 4 13 14 15 16 21");
    }

    #[test]
    fn retryable_codes() {
        let r: Vec<i32> = Code::ALL
            .iter()
            .filter(|c| c.is_retryable())
            .map(|c| c.as_i32())
            .collect();
        assert_eq!(r, [10, 11, 12, 20]);
    }

    #[test]
    fn io_error_names_operation_and_path() {
        let e = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let err = Error::io("writing", Path::new("/var/lib/outpost/state.json"), &e);
        assert_eq!(err.code, Code::LocalIo);
        assert_eq!(
            err.to_string(),
            "writing /var/lib/outpost/state.json: No space left on device"
        );
        let e = std::io::Error::from_raw_os_error(libc::EACCES);
        let err = Error::io("reading", Path::new("/etc/outpost/user-data"), &e);
        assert_eq!(err.code, Code::NotPermitted);
        assert_eq!(
            err.to_string(),
            "reading /etc/outpost/user-data: Permission denied"
        );
    }
}
