//! Test support: Debian's `tinyproxy` started on 127.0.0.1 with a generated
//! config (CONNECT allowed to the test server's port only, optional basic
//! auth), bounded by `timeout 120`, terminated on drop; its log tells which
//! CONNECTs went through it.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::fault::Scratch;

pub struct Tinyproxy {
    pub port: u16,
    log: PathBuf,
    child: Child,
    _scratch: Scratch,
}

/// A free loopback port (bound and released; tinyproxy takes it next).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().expect("local addr").port()
}

impl Tinyproxy {
    /// Allow CONNECT to `connect_port`; with `auth`, require basic auth.
    pub fn start(connect_port: u16, auth: Option<(&str, &str)>) -> Tinyproxy {
        let scratch = Scratch::new("tinyproxy");
        let dir = scratch.path().to_path_buf();
        let port = free_port();
        let log = dir.join("tinyproxy.log");
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 10\nMaxClients 8\nAllow 127.0.0.1\n\
             ConnectPort {connect_port}\nLogLevel Connect\nLogFile \"{}\"\nPidFile \"{}\"\n",
            log.display(),
            dir.join("tinyproxy.pid").display()
        );
        if let Some((user, pass)) = auth {
            conf.push_str(&format!("BasicAuth {user} {pass}\n"));
        }
        let conf_path = dir.join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).expect("writing tinyproxy.conf");
        let child = Command::new("timeout")
            .args(["120", "tinyproxy", "-d", "-c"])
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning tinyproxy (Debian package tinyproxy; scripts/test installs it)");
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "tinyproxy did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Tinyproxy {
            port,
            log,
            child,
            _scratch: scratch,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many CONNECTs to `127.0.0.1:port` tinyproxy logged.
    pub fn connects_to(&self, port: u16) -> usize {
        let needle = format!("CONNECT 127.0.0.1:{port} ");
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&needle))
            .count()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        // SIGTERM to `timeout`, which passes it on to tinyproxy; a SIGKILL
        // would leave tinyproxy running without its time bound.
        let pid = self.child.id().to_string();
        let termed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        if !termed {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
