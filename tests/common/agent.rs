//! Test support for agent commands (`checkin`, `status`, `run`): a device
//! as a `--root` tree with its own user-data (endpoint, token, host ID,
//! trusted test CA), commands run with a clean proxy environment, and
//! byte snapshots of the state directory to prove a failure left it alone.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The proxy variables a developer's shell may carry; tests set their own.
pub const PROXY_VARS: [&str; 8] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

pub struct Device {
    pub root: PathBuf,
    pub config: PathBuf,
}

/// Settings of one device's user-data.
pub struct Setup<'a> {
    pub endpoint: &'a str,
    pub token: Option<&'a str>,
    pub host_id: &'a str,
    pub ca_pem: &'a Path,
    /// Extra lines under `stylus.site:` (indented by the caller with 4 spaces).
    pub site: &'a str,
    /// Extra top-level YAML (e.g. an `outpost:` block).
    pub top: &'a str,
}

impl Device {
    pub fn new(dir: &Path, s: &Setup<'_>) -> Device {
        use std::os::unix::fs::PermissionsExt;
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("etc/outpost")).expect("mkdir root");
        let ca = std::fs::read_to_string(s.ca_pem).expect("reading test CA");
        let mut y = String::from("#cloud-config\nstylus:\n  site:\n");
        y.push_str(&format!("    paletteEndpoint: {}\n", s.endpoint));
        if let Some(t) = s.token {
            y.push_str(&format!("    edgeHostToken: {t}\n"));
        }
        y.push_str(&format!(
            "    name: {}\n    caCerts:\n      - |\n",
            s.host_id
        ));
        for line in ca.lines() {
            y.push_str(&format!("        {line}\n"));
        }
        y.push_str(s.site);
        y.push_str(s.top);
        let config = dir.join("user-data");
        std::fs::write(&config, y).expect("writing user-data");
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        Device { root, config }
    }

    /// `outpost ARGS --root ROOT --config FILE`, proxy variables removed.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = super::outpost();
        c.args(args)
            .arg("--root")
            .arg(&self.root)
            .arg("--config")
            .arg(&self.config);
        for v in PROXY_VARS {
            c.env_remove(v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        super::run(&mut self.cmd(args))
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join("var/lib/outpost")
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.state_dir().join(name)
    }

    /// Every file of the state dir except `status.json` and `lock`, with its bytes.
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(self.state_dir())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "status.json" && n != "lock")
                    .map(|n| {
                        let b = std::fs::read(self.file(&n)).expect("reading state file");
                        (n, b)
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Write a registered-looking state: credential, install secret, state.json.
    pub fn seed(&self, host_id: &str) {
        use std::os::unix::fs::PermissionsExt;
        let d = self.state_dir();
        std::fs::create_dir_all(&d).expect("mkdir state");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let w = |n: &str, t: &str| {
            std::fs::write(d.join(n), t).expect("seed");
            std::fs::set_permissions(d.join(n), std::fs::Permissions::from_mode(0o600))
                .expect("chmod");
        };
        w("credential", "opc_seeded0credential\n");
        w("install-secret", &format!("{}\n", "5e".repeat(32)));
        w("host-id", &format!("{host_id}\n"));
        w(
            "state.json",
            &format!(
                "{{\"schema\":\"outpost.state/v1\",\"host_id\":\"{host_id}\",\"interval_ms\":60000,\"phase_ms\":0,\"clock_offset_s\":0,\"inventory_hash\":\"\",\"inventory_wanted\":false,\"desired_tag\":\"\",\"desired\":null,\"registered_at\":1,\"last_success\":1,\"deregistered\":false}}\n"
            ),
        );
    }
}

/// The value of a JSON number field in a hub request-log line.
pub fn field(line: &str, name: &str) -> u64 {
    let key = format!("\"{name}\":");
    let at = line.find(&key).map(|i| i + key.len()).unwrap_or(line.len());
    line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or(0)
}

/// (path, status, bytes_in) of each hub request-log line.
pub fn requests(lines: &[String]) -> Vec<(String, u64, u64)> {
    lines
        .iter()
        .map(|l| {
            let path = l
                .split("\"path\":\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_string();
            (path, field(l, "status"), field(l, "bytes_in"))
        })
        .collect()
}

/// A hub over TLS (the test PKI) with a fresh registration token, checking
/// devices in every `interval` seconds (test mode), and one device set up
/// against it (`run_checkin`-style tests start here).
pub struct HubAndDevice {
    pub pki: super::tls::TestPki,
    pub hub: super::hub::Hub,
    pub token: String,
    pub device: Device,
}

impl HubAndDevice {
    pub fn start(dir: &Path, host_id: &str, interval: &str) -> HubAndDevice {
        HubAndDevice::start_with(dir, host_id, interval, &[])
    }

    /// `start`, with extra arguments for `outpost-hub serve`.
    pub fn start_with(dir: &Path, host_id: &str, interval: &str, serve: &[&str]) -> HubAndDevice {
        let pki = super::tls::make_pki(dir);
        let hub = super::hub::Hub::start(dir, Some(&pki), serve);
        let token = hub.token(&[]);
        let (code, _, err) = hub.cli(&["set-interval", "--test-mode", interval]);
        assert_eq!(code, 0, "set-interval: {err}");
        let device = Device::new(
            dir,
            &Setup {
                endpoint: &hub.url,
                token: Some(&token),
                host_id,
                ca_pem: &pki.ca_cert,
                site: "",
                top: "",
            },
        );
        HubAndDevice {
            pki,
            hub,
            token,
            device,
        }
    }
}
