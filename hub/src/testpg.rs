//! A real PostgreSQL 15 for the hub's tests (Debian's `postgresql-15`):
//! `initdb` in a temp dir as an unprivileged user (initdb refuses root; the
//! `postgres` user, else `nobody`), a password login (scram-sha-256),
//! listening on 127.0.0.1 and a socket in that dir only; stopped on drop
//! (the dir is the caller's to remove). Used by the unit tests of `db.rs`
//! and by `hub/tests/postgres.rs` (included there by path).
//!
//! Needs the server binaries: `/usr/lib/postgresql/15/bin`, or the
//! directory in `OUTPOST_TEST_PG_BIN` (scripts/test installs
//! postgresql-15). Without them it panics saying so.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const PASSWORD: &str = "pg-Pa55w0rd-7c1e94";

/// A PostgreSQL server of this test: stopped and removed on drop.
pub struct Pg {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
    /// The server's options (`pg_ctl -o`) and log file.
    opts: String,
    log: PathBuf,
    /// `runuser -u USER --` when the test runs as root (initdb refuses root).
    user: Option<String>,
}

fn pg_bin() -> PathBuf {
    let dir = std::env::var_os("OUTPOST_TEST_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    assert!(
        dir.join("initdb").is_file() && dir.join("pg_ctl").is_file(),
        "no PostgreSQL server in {}: install postgresql-15 (scripts/deps install test) or set OUTPOST_TEST_PG_BIN",
        dir.display()
    );
    dir
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// (uid, gid) of a user, from /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name) && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

impl Pg {
    fn cmd(&self, prog: &str) -> Command {
        let path = self.bin.join(prog);
        match &self.user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    pub fn start(dir: &Path) -> Pg {
        Pg::start_with(dir, None)
    }

    /// The same with `ssl=on` and this certificate and key (PEM), copied
    /// into the server's dir for its user (PostgreSQL wants the key 0600).
    pub fn start_tls(dir: &Path, cert: &Path, key: &Path) -> Pg {
        Pg::start_with(dir, Some((cert, key)))
    }

    fn start_with(dir: &Path, tls: Option<(&Path, &Path)>) -> Pg {
        let bin = pg_bin();
        let user = if is_root() {
            let name = ["postgres", "nobody"]
                .into_iter()
                .find(|n| user_ids(n).is_some())
                .expect("a postgres or nobody user to run PostgreSQL as");
            Some(name.to_string())
        } else {
            None
        };
        let root = dir.join("pg");
        std::fs::create_dir(&root).expect("pg dir");
        let pwfile = root.join("initpw");
        std::fs::write(&pwfile, format!("{PASSWORD}\n")).expect("pw file");
        if let Some(u) = &user {
            let (uid, gid) = user_ids(u).expect("ids");
            for p in [&root, &pwfile] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
            }
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let mut pg = Pg {
            bin,
            data: root.join("data"),
            port: 0,
            opts: String::new(),
            log: root.join("log"),
            user,
        };
        let out = pg
            .cmd("initdb")
            .arg("-D")
            .arg(&pg.data)
            .args([
                "-A",
                "scram-sha-256",
                "-U",
                "outpost",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_file(&pwfile);
        let mut ssl = String::new();
        if let Some((cert, key)) = tls {
            let (c, k) = (root.join("server.crt"), root.join("server.key"));
            std::fs::copy(cert, &c).expect("copying the server certificate");
            std::fs::copy(key, &k).expect("copying the server key");
            std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            if let Some(u) = &pg.user {
                let (uid, gid) = user_ids(u).expect("ids");
                for p in [&c, &k] {
                    std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
                }
            }
            ssl = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                c.display(),
                k.display()
            );
        }
        // A free port: bind :0, release it, start there; another process
        // may take it between, so a few tries.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("free port");
            let opts = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100{ssl}",
                root.display()
            );
            let st = pg
                .cmd("pg_ctl")
                .arg("-D")
                .arg(&pg.data)
                .arg("-l")
                .arg(root.join("log"))
                .args(["-w", "-t", "60", "-o", &opts, "start"])
                .stdout(Stdio::null())
                .status()
                .expect("running pg_ctl");
            if st.success() {
                pg.port = port;
                pg.opts = opts;
                return pg;
            }
        }
        panic!(
            "PostgreSQL did not start: {}",
            std::fs::read_to_string(root.join("log")).unwrap_or_default()
        );
    }

    /// Leave the server running for the rest of this process (one server
    /// shared by a test binary's tests): a watcher process stops it and
    /// removes `remove` once this process is gone, also after a panic or
    /// a kill (bounded: it gives up waiting after 3 hours).
    pub fn keep_until_exit(self, remove: &Path) {
        let script = r#"pid=$1; shift; remove=$1; shift
i=0
while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 10800 ]; do sleep 1; i=$((i + 1)); done
"$@" >/dev/null 2>&1
rm -rf "$remove""#;
        let mut stop = self.cmd("pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(script)
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(remove)
            .arg(stop.get_program())
            .args(stop.get_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Never waited for: it outlives this process by design (it ends
        // only after this process has gone; init reaps it).
        #[allow(clippy::zombie_processes)]
        let _watcher = c
            .spawn()
            .expect("starting the watcher of the shared PostgreSQL");
        std::mem::forget(self);
    }

    /// Stop the server (a database outage), or start it again.
    pub fn ctl(&self, action: &str) {
        let st = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", "60", "-m", "fast", "-o", &self.opts, action])
            .stdout(Stdio::null())
            .status()
            .expect("running pg_ctl");
        assert!(st.success(), "pg_ctl {action}");
    }

    /// The same database through the unix socket in the test's dir.
    pub fn socket_url(&self) -> String {
        let dir = self.data.parent().expect("pg dir").display().to_string();
        format!(
            "postgres://outpost@{}:{}/postgres",
            dir.replace('/', "%2F"),
            self.port
        )
    }

    pub fn url(&self) -> String {
        format!(
            "postgres://outpost@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// A client of our own, to look at the tables.
    pub fn client(&self) -> postgres::Client {
        let mut cfg: postgres::Config = self.url().parse().expect("url");
        cfg.password(PASSWORD);
        cfg.connect(postgres::NoTls).expect("connect")
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if self.port != 0 {
            let _ = self
                .cmd("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
