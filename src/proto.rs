//! The outpost check-in protocol on the wire (docs/protocol.md): message
//! types shared by the agent and the reference hub, strict decoding with a
//! one-line error naming the message and the field, `Retry-After` parsing and
//! the mapping of HTTP status codes to agent exit codes.
//!
//! Pure: no I/O, no clock (callers pass `now`), no hashing. A message that
//! does not fit its schema is rejected here, before any field is used.

use crate::error::Code;
use miniserde::json::{self, Value};
use miniserde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The protocol revision carried as `v` in every message. Additive changes
/// bump it; a breaking change gets a new path prefix (`/outpost/v2/`).
pub const PROTOCOL_VERSION: u32 = 3;
/// The major version in the URL paths below.
pub const PROTOCOL_MAJOR: u32 = 1;
pub const PATH_PROBE: &str = "/outpost/v1/probe";
pub const PATH_REGISTER: &str = "/outpost/v1/register";
pub const PATH_CHECKIN: &str = "/outpost/v1/checkin";
/// The `protocol` field of a probe answer.
pub const PROTOCOL_NAME: &str = "outpost";
/// Largest request body a server must accept (a register with inventory).
pub const MAX_REQUEST_BODY: usize = 64 * 1024;
/// Largest response body an agent must accept.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;
/// A steady-state check-in (healthy, no inventory) never exceeds this.
pub const STEADY_CHECKIN_MAX: usize = 512;
/// Longest accepted `host_id`.
pub const MAX_HOST_ID: usize = 128;

/// Answer to `GET /outpost/v1/probe`: "this endpoint speaks outpost".
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Probe {
    pub v: u32,
    /// Always "outpost".
    pub protocol: String,
    /// Major versions served, each under `/outpost/v<N>/`.
    pub majors: Vec<u32>,
    /// Server software and version, for diagnostics only.
    pub server: String,
    /// Server clock, Unix seconds.
    pub server_time: u64,
}

/// `POST /outpost/v1/register`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RegisterRequest {
    pub v: u32,
    /// The registration token from the operator's user-data.
    pub token: String,
    pub host_id: String,
    /// Random per-install secret kept in the agent's state dir; proves that a
    /// re-registration comes from the machine that registered first.
    pub install_secret: String,
    /// Project to join; the token's own project wins when it has one.
    pub project: Option<String>,
    pub hostname: String,
    pub tags: BTreeMap<String, String>,
    pub agent: String,
    pub inventory: Inventory,
    pub inventory_hash: String,
}

/// 200 answer to a register request.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RegisterResponse {
    pub v: u32,
    pub host_id: String,
    /// The per-device credential: `Authorization: Bearer <credential>`.
    pub credential: String,
    /// True when an existing record was re-registered (credential rotated).
    pub rotated: bool,
    pub interval_ms: u64,
    pub phase_ms: u64,
    pub server_time: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Health {
    pub ok: bool,
    /// IDs of failing checks (empty when `ok`).
    pub failing: Vec<String>,
}

/// `POST /outpost/v1/checkin` with `Authorization: Bearer <credential>`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CheckinRequest {
    pub v: u32,
    pub host_id: String,
    pub agent: String,
    pub health: Health,
    /// The agent's digest of its inventory; the server only compares it.
    pub inventory_hash: String,
    /// Tag of the desired state the agent holds ("" when none).
    pub desired_tag: String,
    /// Present only when the hash changed or the server asked for it.
    pub inventory: Option<Inventory>,
    /// (v2) The last self-upgrade's state, sent while on trial and until a
    /// check-in carried its outcome.
    pub upgrade: Option<UpgradeReport>,
    /// (v2) What the agent did with `desired.config`, sent once per change.
    pub config: Option<ConfigReport>,
    /// (v2) This boot's beacon (`outpost.boot/v1`, docs/boot.md), sent once
    /// per boot: by the early check-in from the initramfs, then by the
    /// agent's first check-in after boot.
    pub boot: Option<crate::boot::Beacon>,
    /// (v3) The cluster role's state, sent when it changed since the last
    /// check-in that carried it (the init server's join token rides here).
    pub cluster: Option<ClusterReport>,
}

/// (v3) Where this host's cluster role stands (docs/protocol.md).
#[derive(Serialize, Deserialize, Clone, PartialEq)]
pub struct ClusterReport {
    pub cluster: String,
    /// `init-server`, `join-server` or `join-agent`.
    pub role: String,
    /// `installing`, `running`, `ready`, `failed` or `left`.
    pub state: String,
    /// Why it failed ("" otherwise).
    pub reason: String,
    /// The last lines of the service's log when it failed ("" otherwise).
    pub log_tail: String,
    /// The init server, once ready: the secure `K10<ca-hash>::...` join
    /// token. A secret: never logged (see `ClusterReport`'s Debug).
    pub token: Option<String>,
}

impl fmt::Debug for ClusterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterReport")
            .field("cluster", &self.cluster)
            .field("role", &self.role)
            .field("state", &self.state)
            .field("reason", &self.reason)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// (v2) Remote configuration: keys applied, keys refused with the reason.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ConfigReport {
    /// The desired-state tag the agent acted on.
    pub tag: String,
    pub applied: Vec<String>,
    pub refused: BTreeMap<String, String>,
}

/// (v2) How the agent's last self-upgrade went (docs/protocol.md).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct UpgradeReport {
    /// `on_trial`, `committed`, `rolled_back` or `failed`.
    pub state: String,
    pub from: String,
    pub to: String,
    /// Why it failed or was rolled back ("" otherwise).
    pub reason: String,
    /// The agent exit code of a failure (0 otherwise).
    pub code: i32,
}

/// 200 answer to a check-in.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CheckinResponse {
    pub v: u32,
    pub interval_ms: u64,
    pub phase_ms: u64,
    pub server_time: u64,
    /// Send the full inventory on the next check-in.
    pub inventory_wanted: bool,
    /// Tag of the server's current desired state for this device.
    pub desired_tag: String,
    /// The desired state, present only when `desired_tag` differs from the
    /// tag the agent sent.
    pub desired: Option<Desired>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Desired {
    pub labels: BTreeMap<String, String>,
    pub upgrade: Option<UpgradeOffer>,
    /// Configuration changes: keys of the `outpost:` block, string values.
    pub config: BTreeMap<String, String>,
    /// The operator deregistered this device: clean up and stop (exit 15).
    pub deregister: bool,
    /// (v2) A Kubernetes upgrade the cluster gate released for this host.
    pub kubernetes: Option<KubernetesUpgrade>,
    /// (v3) This host's cluster role, once the hub released it.
    pub cluster: Option<ClusterRole>,
}

/// (v3) A cluster role instruction (docs/protocol.md, docs/clusters.md).
#[derive(Serialize, Deserialize, Clone, PartialEq)]
pub struct ClusterRole {
    pub cluster: String,
    /// `k3s`, `pxke` or `canonical`.
    pub distro: String,
    pub version: String,
    /// `vip:ADDR` or `dns:NAME`.
    pub endpoint: String,
    /// `init-server`, `join-server` or `join-agent`.
    pub role: String,
    /// `https://ENDPOINT:6443`.
    pub server_url: String,
    /// init-server: the bootstrap token; joiners: the secure K10 token.
    /// "" with `leave`.
    pub token: String,
    pub interface: Option<String>,
    pub pod_cidr: Option<String>,
    pub service_cidr: Option<String>,
    /// The lowest agent version this instruction needs ("" if none).
    pub min_version: String,
    /// The operator removed this host from the cluster: leave it.
    pub leave: bool,
    /// This member's address for Kubernetes (K3s `node-ip`): the address
    /// its inventory has on the cluster's interface, else its first
    /// address of the endpoint's family. Absent: K3s picks one.
    pub node_ip: Option<String>,
    /// The signed K3s bundle for this cluster's version and the member's
    /// architecture, when the hub has one (`outpost-hub cluster bundle
    /// add`); absent: the agent uses the K3s binary already installed.
    pub bundle: Option<ClusterBundle>,
}

/// A signed K3s bundle (`outpost.k3s-bundle/v1`, docs/clusters.md): its
/// manifest, the manifest's signify signature, and the URL its files are
/// under (`<url><sha256>`). The agent verifies the signature with its own
/// trusted release keys and holds each file to the signed size and hash.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ClusterBundle {
    pub manifest: String,
    pub signature: String,
    pub url: String,
}

impl fmt::Debug for ClusterRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterRole")
            .field("cluster", &self.cluster)
            .field("role", &self.role)
            .field("endpoint", &self.endpoint)
            .field("token", &"<redacted>")
            .field("leave", &self.leave)
            .finish()
    }
}

/// (v2) A cluster's Kubernetes upgrade, with the agent version it needs.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct KubernetesUpgrade {
    pub version: String,
    /// The agent refuses the instruction when it is older than this.
    pub min_agent_version: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct UpgradeOffer {
    pub version: String,
    /// The lowest agent version a pending cluster upgrade needs ("" if none).
    pub min_version: String,
    pub artifacts: Vec<Artifact>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Artifact {
    /// `x86_64` or `aarch64`.
    pub arch: String,
    pub url: String,
    /// Lowercase hex SHA-256 of the binary.
    pub sha256: String,
    pub size: u64,
    /// (v2) The signed release manifest (outpost.release/v1 JSON text) and
    /// its signify signature; the agent acts on nothing else.
    pub manifest: Option<String>,
    pub signature: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Inventory {
    pub arch: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    /// PRETTY_NAME of os-release.
    pub os: String,
    pub kernel: String,
    pub interfaces: Vec<Interface>,
    // Optional fields (docs/protocol.md, "Inventory"): missing or null means
    // the agent did not know or did not send them.
    pub host_id: Option<String>,
    pub hostname: Option<String>,
    pub cpu_model: Option<String>,
    pub disks: Option<Vec<Disk>>,
    /// The address the default route leaves from.
    pub primary_ip: Option<String>,
    /// Seconds since boot; not part of `inventory_hash` (it always changes).
    pub uptime_s: Option<u64>,
    pub agent: Option<String>,
    /// Static tags and tags from the operator's tags file.
    pub tags: Option<BTreeMap<String, String>>,
    /// Result counts of the agent's checks (`outpost check`).
    pub checks: Option<CheckCounts>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Disk {
    /// Kernel name (`sda`, `nvme0n1`, `mmcblk0`).
    pub name: String,
    pub size_bytes: u64,
    pub rotational: Option<bool>,
    /// Model as the device reports it ("" when unknown).
    pub model: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct CheckCounts {
    pub pass: u32,
    pub warn: u32,
    pub fail: u32,
    pub skip: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Interface {
    pub name: String,
    pub mac: String,
    /// Addresses in CIDR form (`192.0.2.10/24`).
    pub addrs: Vec<String>,
}

/// The body of every non-200 answer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ErrorBody {
    pub v: u32,
    /// Stable machine-readable code (docs/protocol.md, "Errors").
    pub error: String,
    /// One line for people; never contains a secret.
    pub message: String,
}

// ---------------------------------------------------------------- schemas

/// The JSON type a field must have.
#[derive(Clone, Copy, Debug)]
pub enum Ty {
    /// A string of at most this many bytes.
    Str(usize),
    U32,
    U64,
    Bool,
    Obj(&'static [Field]),
    /// Array of strings: at most (items, bytes each).
    ArrStr(usize, usize),
    /// Array of non-negative integers below 2^32: at most this many items.
    ArrU32(usize),
    /// Array of objects: at most this many items.
    ArrObj(usize, &'static [Field]),
    /// Object of string values: at most (entries, bytes per key or value).
    MapStr(usize, usize),
}

#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    /// Optional fields may be missing or null.
    pub required: bool,
}

const fn req(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: true,
    }
}

const fn opt(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: false,
    }
}

const S: usize = 256;
const INTERFACE: &[Field] = &[
    req("name", Ty::Str(64)),
    req("mac", Ty::Str(64)),
    req("addrs", Ty::ArrStr(64, 64)),
];
const INVENTORY: &[Field] = &[
    req("arch", Ty::Str(32)),
    req("cpus", Ty::U32),
    req("memory_bytes", Ty::U64),
    req("os", Ty::Str(S)),
    req("kernel", Ty::Str(S)),
    req("interfaces", Ty::ArrObj(64, INTERFACE)),
    opt("host_id", Ty::Str(MAX_HOST_ID)),
    opt("hostname", Ty::Str(S)),
    opt("cpu_model", Ty::Str(S)),
    opt("disks", Ty::ArrObj(32, DISK)),
    opt("primary_ip", Ty::Str(64)),
    opt("uptime_s", Ty::U64),
    opt("agent", Ty::Str(64)),
    opt("tags", Ty::MapStr(64, S)),
    opt("checks", Ty::Obj(CHECK_COUNTS)),
];
const DISK: &[Field] = &[
    req("name", Ty::Str(64)),
    req("size_bytes", Ty::U64),
    opt("rotational", Ty::Bool),
    req("model", Ty::Str(S)),
];
const CHECK_COUNTS: &[Field] = &[
    req("pass", Ty::U32),
    req("warn", Ty::U32),
    req("fail", Ty::U32),
    req("skip", Ty::U32),
];
const HEALTH: &[Field] = &[req("ok", Ty::Bool), req("failing", Ty::ArrStr(64, 64))];
const ARTIFACT: &[Field] = &[
    req("arch", Ty::Str(32)),
    req("url", Ty::Str(2048)),
    req("sha256", Ty::Str(64)),
    req("size", Ty::U64),
    opt("manifest", Ty::Str(4096)),
    opt("signature", Ty::Str(1024)),
];
const CONFIG_REPORT: &[Field] = &[
    req("tag", Ty::Str(64)),
    req("applied", Ty::ArrStr(64, 256)),
    req("refused", Ty::MapStr(64, 1024)),
];
const UPGRADE_REPORT: &[Field] = &[
    req("state", Ty::Str(32)),
    req("from", Ty::Str(64)),
    req("to", Ty::Str(64)),
    req("reason", Ty::Str(1024)),
    req("code", Ty::U32),
];
const UPGRADE: &[Field] = &[
    req("version", Ty::Str(64)),
    req("min_version", Ty::Str(64)),
    req("artifacts", Ty::ArrObj(16, ARTIFACT)),
];
const DESIRED: &[Field] = &[
    req("labels", Ty::MapStr(64, S)),
    opt("upgrade", Ty::Obj(UPGRADE)),
    req("config", Ty::MapStr(64, 1024)),
    req("deregister", Ty::Bool),
    opt("kubernetes", Ty::Obj(KUBERNETES)),
    opt("cluster", Ty::Obj(CLUSTER_ROLE)),
];
const CLUSTER_ROLE: &[Field] = &[
    req("cluster", Ty::Str(64)),
    req("distro", Ty::Str(32)),
    req("version", Ty::Str(64)),
    req("endpoint", Ty::Str(260)),
    req("role", Ty::Str(32)),
    req("server_url", Ty::Str(300)),
    req("token", Ty::Str(S)),
    opt("interface", Ty::Str(64)),
    opt("pod_cidr", Ty::Str(64)),
    opt("service_cidr", Ty::Str(64)),
    req("min_version", Ty::Str(64)),
    req("leave", Ty::Bool),
    opt("node_ip", Ty::Str(64)),
    opt("bundle", Ty::Obj(CLUSTER_BUNDLE)),
];
const CLUSTER_BUNDLE: &[Field] = &[
    req("manifest", Ty::Str(4096)),
    req("signature", Ty::Str(4096)),
    req("url", Ty::Str(300)),
];
const CLUSTER_REPORT: &[Field] = &[
    req("cluster", Ty::Str(64)),
    req("role", Ty::Str(32)),
    req("state", Ty::Str(32)),
    req("reason", Ty::Str(1024)),
    req("log_tail", Ty::Str(4096)),
    opt("token", Ty::Str(S)),
];
const KUBERNETES: &[Field] = &[
    req("version", Ty::Str(64)),
    req("min_agent_version", Ty::Str(64)),
];

// The boot beacon (`outpost.boot/v1`, docs/boot.md), v2 of the check-in.
const BOOT_CMDLINE: &[Field] = &[
    opt("root", Ty::Str(S)),
    opt("root_mode", Ty::Str(8)),
    opt("ip", Ty::Str(S)),
    req("neednet", Ty::Bool),
    req("outpost", Ty::ArrStr(16, S)),
];
const BOOT_ROOT: &[Field] = &[
    opt("device", Ty::Str(S)),
    req("present", Ty::Bool),
    opt("mounted_at", Ty::Str(S)),
    opt("read_only", Ty::Bool),
];
const BOOT_CHECK: &[Field] = &[
    req("id", Ty::Str(32)),
    req("status", Ty::Str(8)),
    req("observed", Ty::Str(S)),
];
const BOOT_CHECKIN: &[Field] = &[
    req("wanted", Ty::Bool),
    req("result", Ty::Str(16)),
    opt("code", Ty::U32),
    req("message", Ty::Str(1024)),
    req("elapsed_ms", Ty::U64),
];
const BOOT_REASON: &[Field] = &[req("id", Ty::Str(32)), req("detail", Ty::Str(1024))];
const BOOT: &[Field] = &[
    req("schema", Ty::Str(32)),
    req("agent_version", Ty::Str(64)),
    req("boot_id", Ty::Str(64)),
    req("boot_count", Ty::U64),
    req("generator", Ty::Str(64)),
    req("stage", Ty::Str(64)),
    req("uptime_ms", Ty::U64),
    opt("written_at", Ty::Str(32)),
    req("clock_valid", Ty::Bool),
    req("cmdline", Ty::Obj(BOOT_CMDLINE)),
    opt("cpus", Ty::U32),
    opt("memory_bytes", Ty::U64),
    req("root", Ty::Obj(BOOT_ROOT)),
    req("network", Ty::Bool),
    req("installed", Ty::Bool),
    req("registered", Ty::Bool),
    req("checks", Ty::ArrObj(16, BOOT_CHECK)),
    req("checkin", Ty::Obj(BOOT_CHECKIN)),
    req("reasons", Ty::ArrObj(16, BOOT_REASON)),
    req("reported_by", Ty::Str(16)),
];

/// A message type with its schema, for [`decode`].
pub trait Message: Deserialize + Serialize {
    /// Name used in error messages ("check-in request").
    const NAME: &'static str;
    const FIELDS: &'static [Field];
}

macro_rules! message {
    ($t:ty, $name:expr, $fields:expr) => {
        impl Message for $t {
            const NAME: &'static str = $name;
            const FIELDS: &'static [Field] = $fields;
        }
    };
}

message!(
    Probe,
    "probe answer",
    &[
        req("v", Ty::U32),
        req("protocol", Ty::Str(32)),
        req("majors", Ty::ArrU32(16)),
        req("server", Ty::Str(S)),
        req("server_time", Ty::U64),
    ]
);
message!(
    RegisterRequest,
    "register request",
    &[
        req("v", Ty::U32),
        req("token", Ty::Str(S)),
        req("host_id", Ty::Str(MAX_HOST_ID)),
        req("install_secret", Ty::Str(S)),
        opt("project", Ty::Str(64)),
        req("hostname", Ty::Str(S)),
        req("tags", Ty::MapStr(64, S)),
        req("agent", Ty::Str(64)),
        req("inventory", Ty::Obj(INVENTORY)),
        req("inventory_hash", Ty::Str(80)),
    ]
);
message!(
    RegisterResponse,
    "register answer",
    &[
        req("v", Ty::U32),
        req("host_id", Ty::Str(MAX_HOST_ID)),
        req("credential", Ty::Str(S)),
        req("rotated", Ty::Bool),
        req("interval_ms", Ty::U64),
        req("phase_ms", Ty::U64),
        req("server_time", Ty::U64),
    ]
);
message!(
    CheckinRequest,
    "check-in request",
    &[
        req("v", Ty::U32),
        req("host_id", Ty::Str(MAX_HOST_ID)),
        req("agent", Ty::Str(64)),
        req("health", Ty::Obj(HEALTH)),
        req("inventory_hash", Ty::Str(80)),
        req("desired_tag", Ty::Str(64)),
        opt("inventory", Ty::Obj(INVENTORY)),
        opt("upgrade", Ty::Obj(UPGRADE_REPORT)),
        opt("config", Ty::Obj(CONFIG_REPORT)),
        opt("boot", Ty::Obj(BOOT)),
        opt("cluster", Ty::Obj(CLUSTER_REPORT)),
    ]
);
message!(
    CheckinResponse,
    "check-in answer",
    &[
        req("v", Ty::U32),
        req("interval_ms", Ty::U64),
        req("phase_ms", Ty::U64),
        req("server_time", Ty::U64),
        req("inventory_wanted", Ty::Bool),
        req("desired_tag", Ty::Str(64)),
        opt("desired", Ty::Obj(DESIRED)),
    ]
);
message!(
    ErrorBody,
    "error answer",
    &[
        req("v", Ty::U32),
        req("error", Ty::Str(64)),
        req("message", Ty::Str(1024)),
    ]
);

/// Why a message was rejected: one line naming the message and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parse and validate one message. Unknown fields are ignored; a missing
/// required field, a wrong type, an over-long string or list, or a `v` of 0
/// is an error naming the field (`health.ok`, `inventory.interfaces[2].mac`).
pub fn decode<T: Message>(text: &str) -> Result<T, DecodeError> {
    let value: Value =
        json::from_str(text).map_err(|_| DecodeError(format!("{}: malformed JSON", T::NAME)))?;
    let Value::Object(obj) = &value else {
        return Err(DecodeError(format!(
            "{}: expected a JSON object, got {}",
            T::NAME,
            kind(&value)
        )));
    };
    check_object(obj, T::FIELDS, "").map_err(|e| DecodeError(format!("{}: {e}", T::NAME)))?;
    if let Some(Value::Number(json::Number::U64(0))) = obj.get("v") {
        return Err(DecodeError(format!("{}: field `v` must be >= 1", T::NAME)));
    }
    json::from_str(text).map_err(|_| DecodeError(format!("{}: does not match its schema", T::NAME)))
}

/// Serialize a message (compact JSON).
pub fn encode<T: Serialize>(msg: &T) -> String {
    json::to_string(msg)
}

/// A check-in request as sent: like `encode`, but an absent (v3) `cluster`
/// report is left out rather than sent as `null`, so a steady check-in is
/// byte for byte what it was before revision 3 (the 512-byte budget).
pub fn encode_checkin(req: &CheckinRequest) -> String {
    let s = json::to_string(req);
    match (req.cluster.is_none(), s.strip_suffix(",\"cluster\":null}")) {
        (true, Some(head)) => format!("{head}}}"),
        _ => s,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(json::Number::F64(_)) => "a fraction",
        Value::Number(json::Number::I64(_)) => "a negative number",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_object(obj: &json::Object, fields: &[Field], prefix: &str) -> Result<(), String> {
    for f in fields {
        let path = format!("{prefix}{}", f.name);
        match obj.get(f.name) {
            None | Some(Value::Null) if !f.required => {}
            None => return Err(format!("missing field `{path}`")),
            Some(v) => check_value(v, f.ty, &path)?,
        }
    }
    Ok(())
}

fn check_value(v: &Value, ty: Ty, path: &str) -> Result<(), String> {
    let wrong = |want: &str| format!("field `{path}` must be {want}, got {}", kind(v));
    match (ty, v) {
        (Ty::Str(max), Value::String(s)) => {
            if s.len() > max {
                return Err(format!("field `{path}` is longer than {max} bytes"));
            }
        }
        (Ty::Str(_), _) => return Err(wrong("a string")),
        (Ty::U32, Value::Number(json::Number::U64(n))) => {
            if *n > u64::from(u32::MAX) {
                return Err(format!("field `{path}` is out of range"));
            }
        }
        (Ty::U64, Value::Number(json::Number::U64(_))) => {}
        (Ty::U32 | Ty::U64, _) => return Err(wrong("a non-negative integer")),
        (Ty::Bool, Value::Bool(_)) => {}
        (Ty::Bool, _) => return Err(wrong("true or false")),
        (Ty::Obj(fields), Value::Object(o)) => check_object(o, fields, &format!("{path}."))?,
        (Ty::Obj(_), _) => return Err(wrong("an object")),
        (Ty::ArrStr(items, len), Value::Array(a)) => {
            if a.len() > items {
                return Err(format!("field `{path}` has more than {items} items"));
            }
            for (i, x) in a.iter().enumerate() {
                check_value(x, Ty::Str(len), &format!("{path}[{i}]"))?;
            }
        }
        (Ty::ArrU32(items), Value::Array(a)) => {
            if a.len() > items {
                return Err(format!("field `{path}` has more than {items} items"));
            }
            for (i, x) in a.iter().enumerate() {
                check_value(x, Ty::U32, &format!("{path}[{i}]"))?;
            }
        }
        (Ty::ArrObj(items, fields), Value::Array(a)) => {
            if a.len() > items {
                return Err(format!("field `{path}` has more than {items} items"));
            }
            for (i, x) in a.iter().enumerate() {
                check_value(x, Ty::Obj(fields), &format!("{path}[{i}]"))?;
            }
        }
        (Ty::ArrStr(..) | Ty::ArrU32(_) | Ty::ArrObj(..), _) => return Err(wrong("an array")),
        (Ty::MapStr(items, len), Value::Object(o)) => {
            if o.len() > items {
                return Err(format!("field `{path}` has more than {items} entries"));
            }
            for (k, x) in o.iter() {
                if k.len() > len {
                    return Err(format!("field `{path}` has a key longer than {len} bytes"));
                }
                check_value(x, Ty::Str(len), &format!("{path}.{k}"))?;
            }
        }
        (Ty::MapStr(..), _) => return Err(wrong("an object of strings")),
    }
    Ok(())
}

// ---------------------------------------------------------- status codes

/// Which request an HTTP status answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Probe,
    Register,
    Checkin,
}

/// What the agent does with an HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 200: use the answer.
    Ok,
    /// 401 or 403 on a check-in: the credential is refused; drop it and
    /// register again with the token, once per attempt.
    Reregister,
    /// Stop with this exit code; retryable codes (11) honour `Retry-After`
    /// (`schedule::retry_delay`).
    Exit(Code),
}

impl Outcome {
    /// The exit code when this outcome ends the attempt (a `Reregister`
    /// that cannot be done again in this attempt is a refusal, 13).
    pub fn code(self) -> Code {
        match self {
            Outcome::Ok => Code::Ok,
            Outcome::Reregister => Code::RegistrationRefused,
            Outcome::Exit(c) => c,
        }
    }
}

/// The agent's reaction to an HTTP status: the one table of it
/// (docs/protocol.md, "Errors"). The transport hands every answer but a
/// redirect to its caller; `checkin::run_once`, `probe` and
/// `install --config URL` all decide through this function.
pub fn outcome(endpoint: Endpoint, status: u16) -> Outcome {
    match (endpoint, status) {
        (_, 200) => Outcome::Ok,
        (Endpoint::Checkin, 401 | 403) => Outcome::Reregister,
        (Endpoint::Register, 401 | 403) => Outcome::Exit(Code::RegistrationRefused),
        (_, 409) => Outcome::Exit(Code::DuplicateHost),
        (_, 410) => Outcome::Exit(Code::Deregistered),
        (_, 408 | 429 | 500..=599) => Outcome::Exit(Code::ServerBusy),
        _ => Outcome::Exit(Code::BadAnswer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_cluster_report_is_left_out_of_the_checkin() {
        let mut r: CheckinRequest = decode(
            r#"{"v":3,"host_id":"h","agent":"0.1.0","health":{"ok":true,"failing":[]},"inventory_hash":"x","desired_tag":""}"#,
        )
        .expect("decode");
        let s = encode_checkin(&r);
        assert!(
            !s.contains("cluster") && s.ends_with("\"boot\":null}"),
            "{s}"
        );
        assert_eq!(decode::<CheckinRequest>(&s).expect("round trip"), r);
        r.cluster = Some(ClusterReport {
            cluster: "c".into(),
            role: "join-agent".into(),
            state: "ready".into(),
            reason: String::new(),
            log_tail: String::new(),
            token: None,
        });
        let s = encode_checkin(&r);
        assert!(s.contains("\"cluster\":{\"cluster\":\"c\""), "{s}");
        assert_eq!(decode::<CheckinRequest>(&s).expect("round trip"), r);
    }

    fn inventory() -> Inventory {
        Inventory {
            arch: "x86_64".into(),
            cpus: 4,
            memory_bytes: 8_000_000_000,
            os: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel: "6.1.0-40-amd64".into(),
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: "52:54:00:12:34:56".into(),
                addrs: vec!["192.0.2.10/24".into()],
            }],
            ..Default::default()
        }
    }

    fn checkin() -> CheckinRequest {
        CheckinRequest {
            v: 1,
            host_id: "edge-4c4c4544-0037".into(),
            agent: "0.1.0".into(),
            health: Health {
                ok: true,
                failing: vec![],
            },
            inventory_hash: format!("sha256:{}", "ab".repeat(32)),
            desired_tag: "d-0123456789abcdef".into(),
            inventory: None,
            upgrade: None,
            config: None,
            boot: None,
            cluster: None,
        }
    }

    fn round_trip<T: Message + PartialEq + fmt::Debug>(name: &str, msg: T) {
        let text = encode(&msg);
        let back: T = decode(&text).unwrap_or_else(|e| panic!("{name}: {e}: {text}"));
        assert_eq!(back, msg, "{name}: round trip");
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(
            "probe",
            Probe {
                v: 1,
                protocol: "outpost".into(),
                majors: vec![1],
                server: "outpost-hub 0.1.0".into(),
                server_time: 1_764_000_000,
            },
        );
        let mut tags = BTreeMap::new();
        tags.insert("site".to_string(), "berlin-3".to_string());
        round_trip(
            "register request",
            RegisterRequest {
                v: 1,
                token: "opt_x".into(),
                host_id: "h1".into(),
                install_secret: "s".into(),
                project: Some("shops".into()),
                hostname: "edge-01".into(),
                tags: tags.clone(),
                agent: "0.1.0".into(),
                inventory: inventory(),
                inventory_hash: "sha256:00".into(),
            },
        );
        round_trip(
            "register answer",
            RegisterResponse {
                v: 1,
                host_id: "h1".into(),
                credential: "c".into(),
                rotated: true,
                interval_ms: 300_000,
                phase_ms: 1234,
                server_time: 5,
            },
        );
        round_trip("check-in request", checkin());
        let mut with_inv = checkin();
        with_inv.inventory = Some(inventory());
        with_inv.health = Health {
            ok: false,
            failing: vec!["memory".into(), "cpu.cores".into()],
        };
        round_trip("check-in request with inventory", with_inv);
        round_trip(
            "check-in answer",
            CheckinResponse {
                v: 1,
                interval_ms: 60_000,
                phase_ms: 0,
                server_time: 7,
                inventory_wanted: true,
                desired_tag: "d-1".into(),
                desired: Some(Desired {
                    labels: tags.clone(),
                    upgrade: Some(UpgradeOffer {
                        version: "0.2.0".into(),
                        min_version: "0.1.5".into(),
                        artifacts: vec![Artifact {
                            arch: "aarch64".into(),
                            url: "https://hub.example/a".into(),
                            sha256: "cd".repeat(32),
                            size: 812_345,
                            manifest: Some("{}".into()),
                            signature: None,
                        }],
                    }),
                    config: tags,
                    deregister: false,
                    kubernetes: Some(KubernetesUpgrade {
                        version: "1.30.2".into(),
                        min_agent_version: "0.2.0".into(),
                    }),
                    cluster: None,
                }),
            },
        );
        round_trip(
            "error",
            ErrorBody {
                v: 1,
                error: "duplicate_host".into(),
                message: "m".into(),
            },
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let text = r#"{"v":2,"host_id":"h","agent":"9.0.0","future":{"x":[1,2]},
            "health":{"ok":true,"failing":[],"score":0.5},"inventory_hash":"",
            "desired_tag":"","inventory":null,"extra":"yes"}"#;
        let got: CheckinRequest = decode(text).expect("newer agent's check-in");
        assert_eq!(got.v, 2, "newer revision accepted");
        assert!(got.health.ok);
        assert_eq!(got.inventory, None);
    }

    #[test]
    fn bad_messages_are_rejected_with_the_field_named() {
        let good = encode(&checkin());
        let cases: &[(&str, String, &str)] = &[
            (
                "not JSON",
                "{\"v\":1,".into(),
                "check-in request: malformed JSON",
            ),
            ("empty", String::new(), "check-in request: malformed JSON"),
            (
                "array",
                "[1]".into(),
                "check-in request: expected a JSON object, got an array",
            ),
            (
                "missing health",
                good.replace(r#""health":{"ok":true,"failing":[]},"#, ""),
                "check-in request: missing field `health`",
            ),
            (
                "missing health.ok",
                good.replace(r#""ok":true,"#, ""),
                "check-in request: missing field `health.ok`",
            ),
            (
                "v as string",
                good.replace(r#""v":1"#, r#""v":"1""#),
                "check-in request: field `v` must be a non-negative integer, got a string",
            ),
            (
                "v zero",
                good.replace(r#""v":1"#, r#""v":0"#),
                "check-in request: field `v` must be >= 1",
            ),
            (
                "negative v",
                good.replace(r#""v":1"#, r#""v":-1"#),
                "check-in request: field `v` must be a non-negative integer, got a negative number",
            ),
            (
                "ok as string",
                good.replace(r#""ok":true"#, r#""ok":"yes""#),
                "check-in request: field `health.ok` must be true or false, got a string",
            ),
            (
                "failing item number",
                good.replace(r#""failing":[]"#, r#""failing":[3]"#),
                "check-in request: field `health.failing[0]` must be a string, got a number",
            ),
            (
                "host_id null",
                good.replace(r#""host_id":"edge-4c4c4544-0037""#, r#""host_id":null"#),
                "check-in request: field `host_id` must be a string, got null",
            ),
            (
                "host_id too long",
                good.replace("edge-4c4c4544-0037", &"h".repeat(129)),
                "check-in request: field `host_id` is longer than 128 bytes",
            ),
            (
                "inventory wrong type",
                good.replace(r#""inventory":null"#, r#""inventory":"x""#),
                "check-in request: field `inventory` must be an object, got a string",
            ),
            (
                "inventory missing nested",
                good.replace(r#""inventory":null"#, r#""inventory":{"arch":"x"}"#),
                "check-in request: missing field `inventory.cpus`",
            ),
        ];
        for (name, text, want) in cases {
            let got = decode::<CheckinRequest>(text).expect_err(name);
            assert_eq!(got.to_string(), *want, "case {name}");
        }
    }

    #[test]
    fn nested_array_errors_name_the_index() {
        let mut r = checkin();
        let mut inv = inventory();
        inv.interfaces.push(inv.interfaces[0].clone());
        r.inventory = Some(inv);
        let text = encode(&r).replacen(r#""mac":"52:54:00:12:34:56","#, "", 2);
        let text = text.replacen(r#""name":"eth0","#, r#""name":"eth0","mac":"m","#, 1);
        let got = decode::<CheckinRequest>(&text).expect_err("second interface lacks mac");
        assert_eq!(
            got.to_string(),
            "check-in request: missing field `inventory.interfaces[1].mac`"
        );
    }

    #[test]
    fn steady_state_checkin_fits_512_bytes_at_maximum_field_sizes() {
        let mut r = checkin();
        r.host_id = "h".repeat(MAX_HOST_ID);
        r.agent = "9".repeat(32);
        r.inventory_hash = format!("sha256:{}", "f".repeat(64));
        r.desired_tag = "d".repeat(64);
        let n = encode_checkin(&r).len();
        assert!(n <= STEADY_CHECKIN_MAX, "steady check-in is {n} bytes");
    }

    #[test]
    fn status_codes_map_to_exit_codes() {
        use Endpoint::*;
        let cases = [
            (Register, 200, Outcome::Ok),
            (Register, 401, Outcome::Exit(Code::RegistrationRefused)),
            (Checkin, 401, Outcome::Reregister),
            (Checkin, 403, Outcome::Reregister),
            (Register, 403, Outcome::Exit(Code::RegistrationRefused)),
            (Probe, 401, Outcome::Exit(Code::BadAnswer)),
            (Register, 409, Outcome::Exit(Code::DuplicateHost)),
            (Checkin, 410, Outcome::Exit(Code::Deregistered)),
            (Checkin, 429, Outcome::Exit(Code::ServerBusy)),
            (Checkin, 503, Outcome::Exit(Code::ServerBusy)),
            (Checkin, 500, Outcome::Exit(Code::ServerBusy)),
            (Checkin, 408, Outcome::Exit(Code::ServerBusy)),
            (Checkin, 400, Outcome::Exit(Code::BadAnswer)),
            (Probe, 404, Outcome::Exit(Code::BadAnswer)),
            (Checkin, 302, Outcome::Exit(Code::BadAnswer)),
        ];
        for (ep, status, want) in cases {
            assert_eq!(outcome(ep, status), want, "{ep:?} {status}");
        }
    }
}
