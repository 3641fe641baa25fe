//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`,
//! never in a release build): thin wrappers that feed arbitrary bytes to
//! the parsers the agent runs on input it does not control. Each must
//! return (any result) and never panic, hang or allocate without bound.
//! Must not do I/O beyond what the wrapped parser does.

use crate::config::{self, Options};
use crate::sys::Root;

/// Arbitrary bytes as text the way the agent sees them (lossy UTF-8).
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The configuration loader on a user-data file's bytes (size limit,
/// UTF-8, header, depth and key bounds, YAML, validation of every key).
/// The root is an empty, nonexistent directory; no environment.
pub fn config_load(data: &[u8]) {
    let root = Root::new("/nonexistent-outpost-fuzz-root");
    let opts = Options {
        root: &root,
        file: None,
        env: Vec::new(),
        sets: Vec::new(),
    };
    let loaded = config::load_text(std::path::Path::new("user-data"), Some(data), &opts);
    let _ = loaded.into_valid();
}

/// The raw-text shape check alone (depth and key count).
pub fn config_shape(data: &[u8]) {
    let _ = config::check_shape(&text(data));
}

/// Every protocol message the agent decodes from a server.
pub fn proto_decode(data: &[u8]) {
    use crate::proto::{decode, CheckinResponse, Probe, RegisterResponse};
    let t = text(data);
    let _ = decode::<Probe>(&t);
    let _ = decode::<RegisterResponse>(&t);
    let _ = decode::<CheckinResponse>(&t);
    let _ = decode::<crate::proto::ErrorBody>(&t);
    // hawkBit DDI answers (`outpost.server.protocol: ddi`).
    let _ = crate::ddi::parse_poll(&t);
    let _ = crate::ddi::parse_sleep(&t);
}

/// The signed release: the `outpost.release/v1` manifest, a signify
/// signature and public key, and the verification that joins them. The
/// input is split at its first NUL byte into a manifest and a signature;
/// the key is a fixed test key, so verification reaches the key-id match
/// and the Ed25519 check with attacker-chosen bytes.
pub fn release(data: &[u8]) {
    use crate::upgrade::{release, sig};
    let t = text(data);
    let (manifest, signature) = t.split_once('\0').unwrap_or((t.as_str(), ""));
    let _ = release::parse(manifest);
    let _ = sig::Signature::parse(signature);
    let _ = sig::PublicKey::parse(manifest);
    let _ = release::parse_version(manifest);
    let _ = release::compare(manifest, signature);
    // A signify public key made for the fuzz corpus (its secret half was
    // thrown away; trusted nowhere else). The seed `signed` in
    // fuzz/corpus/release carries a valid signature by it, so the fuzzer
    // starts from an input that passes verification (a unit test in
    // upgrade/release.rs holds that true).
    if let Ok(key) = sig::PublicKey::parse(FUZZ_PUBKEY) {
        let _ = release::verify(manifest, signature, &[key]);
    }
}

const FUZZ_PUBKEY: &str = include_str!("../fuzz/corpus/release/pubkey");

/// The install manifest (read back from the state directory).
pub fn manifest(data: &[u8]) {
    let _ = crate::install::manifest::Manifest::parse(&text(data), "manifest.json");
}

/// The host parsers: kernel text formats under /proc and /sys, os-release.
pub fn host_parsers(data: &[u8]) {
    use crate::facts::*;
    let t = text(data);
    let _ = mountinfo::parse_mountinfo(&t);
    let _ = mountinfo::unescape(&t);
    let _ = cpu::parse_cpu_list(&t);
    let _ = cpu::parse_cpuinfo_processors(&t);
    let _ = cpu::parse_cpu_model(&t);
    let _ = cpu::parse_cpu_max(&t);
    let _ = cpu::parse_proc_cgroup(&t);
    let _ = mem::parse_meminfo(&t);
    let _ = os::parse_os_release(&t);
    let _ = os::unquote(&t);
    let _ = modules::parse_proc_modules(&t);
    let _ = modules::parse_module_paths(&t);
    let _ = modules::parse_filesystems(&t);
    let _ = block::parse_sectors(&t);
    let _ = block::parse_rotational(&t);
    let _ = swap::parse_swaps(&t);
    let _ = net::parse_listening(&t);
    let _ = devices::parse_mac(&t);
    let _ = devices::parse_default_route(&t);
    let _ = devices::parse_uptime(&t);
}

/// The noProxy list parser and matcher: the first line is the list, the
/// second a host, the third a port.
pub fn noproxy(data: &[u8]) {
    let t = text(data);
    let mut lines = t.splitn(3, '\n');
    let list = lines.next().unwrap_or("");
    let host = lines.next().unwrap_or("");
    let port = lines
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(443);
    let _ = crate::noproxy::NoProxy::parse(list);
    let (np, _) = crate::noproxy::NoProxy::parse_lenient(list);
    let _ = np.matches(host, port);
}
