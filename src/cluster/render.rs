//! Pure rendering of the files a role needs: the K3s config drop-in
//! (`/etc/rancher/k3s/config.yaml.d/10-outpost.yaml`), the kube-vip manifest
//! per distribution (K3s: an auto-deployed RBAC + DaemonSet manifest;
//! kubeadm: a static pod), the kubeadm configuration (PXK-E) and the
//! Canonical Kubernetes bootstrap/join configuration.
//!
//! Functions of a `Spec` only; nothing here touches files. Every string value
//! is written as a double-quoted YAML scalar (`q`), so no value can change
//! the document's structure. Golden files: tests/fixtures/cluster/.

use super::{Distro, Endpoint, Role, Spec};
use std::net::IpAddr;

/// kube-vip image the manifests pin (the operator's airgap bundle carries it).
pub const KUBE_VIP_IMAGE: &str = "ghcr.io/kube-vip/kube-vip:v0.8.9";

/// Where K3s reads outpost's drop-in (mode 0600: it holds the token).
pub const K3S_CONFIG_PATH: &str = "/etc/rancher/k3s/config.yaml.d/10-outpost.yaml";
/// K3s applies every manifest in this directory on its servers.
pub const K3S_MANIFEST_PATH: &str = "/var/lib/rancher/k3s/server/manifests/outpost-kube-vip.yaml";
/// kubeadm's static pod directory.
pub const KUBEADM_KUBE_VIP_PATH: &str = "/etc/kubernetes/manifests/kube-vip.yaml";
/// The kubeadm configuration outpost renders for `kubeadm init|join --config`.
pub const KUBEADM_CONFIG_PATH: &str = "/etc/outpost/cluster/kubeadm.yaml";
/// Canonical Kubernetes: `k8s bootstrap --file` / `k8s join-cluster --file`.
pub const CANONICAL_CONFIG_PATH: &str = "/etc/outpost/cluster/k8s-bootstrap.yaml";

/// A YAML double-quoted scalar: `"` and `\` escaped, control characters as
/// `\xNN` / `\uNNNN`, so any input stays one scalar.
pub fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (0x80..0xa0).contains(&(c as u32)) || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn header(spec: &Spec, what: &str) -> String {
    format!(
        "# {what} for cluster {} (role {}), written by outpost.\n# outpost rewrites this file; change the cluster on the hub instead.\n",
        spec.cluster.replace(['\n', '\r'], " "),
        spec.role.as_str()
    )
}

fn host_id_label(spec: &Spec) -> String {
    format!("outpost.io/host-id={}", spec.host_id)
}

fn cluster_label(spec: &Spec) -> String {
    format!("outpost.io/cluster={}", spec.cluster)
}

/// Subject alternative names for the API certificate: the endpoint (VIP or
/// name). K3s already adds the node's own addresses and `kubernetes*`.
fn tls_sans(spec: &Spec) -> Vec<String> {
    vec![spec.endpoint.host()]
}

/// The K3s config drop-in for this role.
///
/// - init-server: `cluster-init: true` (embedded etcd), token, tls-san.
/// - join-server: `server` on the endpoint, token, tls-san.
/// - join-agent: `server`, token, and only the keys `k3s agent` accepts.
///
/// Servers carry the settings that must match across servers
/// (`cluster-cidr`, `service-cidr`), or K3s refuses the join with
/// "critical configuration value mismatch".
pub fn k3s_config(spec: &Spec) -> String {
    let mut y = header(spec, "K3s configuration");
    y.push_str(&format!("token: {}\n", q(spec.token.expose())));
    match spec.role {
        Role::InitServer => y.push_str("cluster-init: true\n"),
        Role::JoinServer | Role::JoinAgent => {
            y.push_str(&format!("server: {}\n", q(&spec.endpoint.server_url())))
        }
    }
    if spec.role.is_server() {
        y.push_str("tls-san:\n");
        for san in tls_sans(spec) {
            y.push_str(&format!("  - {}\n", q(&san)));
        }
        y.push_str("write-kubeconfig-mode: \"0600\"\n");
        if let Some(c) = &spec.pod_cidr {
            y.push_str(&format!("cluster-cidr: {}\n", q(c)));
        }
        if let Some(c) = &spec.service_cidr {
            y.push_str(&format!("service-cidr: {}\n", q(c)));
        }
    }
    if let Some(ip) = spec.node_ip {
        y.push_str(&format!("node-ip: {}\n", q(&ip.to_string())));
    }
    y.push_str("node-label:\n");
    y.push_str(&format!("  - {}\n", q(&host_id_label(spec))));
    y.push_str(&format!("  - {}\n", q(&cluster_label(spec))));
    y
}

/// kube-vip's environment in ARP mode with the values the platform fixes
/// (lease 30 s, renew 20 s, retry 4 s; control plane only, /32 or /128).
fn kube_vip_env(spec: &Spec, indent: &str) -> String {
    let vip = spec
        .endpoint
        .vip()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let cidr = match spec.endpoint {
        Endpoint::Vip(IpAddr::V6(_)) => "128",
        _ => "32",
    };
    let mut pairs: Vec<(&str, String)> = vec![("vip_arp", "true".into()), ("port", "6443".into())];
    if let Some(i) = &spec.interface {
        pairs.push(("vip_interface", i.clone()));
    }
    pairs.extend([
        ("vip_cidr", cidr.to_string()),
        ("cp_enable", "true".into()),
        ("cp_namespace", "kube-system".into()),
        ("vip_ddns", "false".into()),
        ("svc_enable", "false".into()),
        ("vip_leaderelection", "true".into()),
        ("vip_leasename", "plndr-cp-lock".into()),
        ("vip_leaseduration", "30".into()),
        ("vip_renewdeadline", "20".into()),
        ("vip_retryperiod", "4".into()),
        ("address", vip),
    ]);
    let mut out = String::new();
    for (k, v) in pairs {
        out.push_str(&format!(
            "{indent}- name: {k}\n{indent}  value: {}\n",
            q(&v)
        ));
    }
    out
}

/// K3s: RBAC and a DaemonSet on control-plane nodes, auto-deployed from
/// the server manifests directory (K3s can start without the VIP, so
/// kube-vip runs in-cluster).
pub fn kube_vip_k3s(spec: &Spec) -> String {
    let mut y = header(spec, "kube-vip (ARP mode, K3s auto-deployed manifest)");
    y.push_str(
        "apiVersion: v1
kind: ServiceAccount
metadata:
  name: kube-vip
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:kube-vip-role
rules:
  - apiGroups: [\"\"]
    resources: [\"services/status\"]
    verbs: [\"update\"]
  - apiGroups: [\"\"]
    resources: [\"services\", \"endpoints\"]
    verbs: [\"list\", \"get\", \"watch\", \"update\"]
  - apiGroups: [\"\"]
    resources: [\"nodes\"]
    verbs: [\"list\", \"get\", \"watch\", \"update\", \"patch\"]
  - apiGroups: [\"coordination.k8s.io\"]
    resources: [\"leases\"]
    verbs: [\"list\", \"get\", \"watch\", \"update\", \"create\"]
  - apiGroups: [\"discovery.k8s.io\"]
    resources: [\"endpointslices\"]
    verbs: [\"list\", \"get\", \"watch\", \"update\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:kube-vip-binding
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kube-vip-role
subjects:
  - kind: ServiceAccount
    name: kube-vip
    namespace: kube-system
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-vip-ds
  namespace: kube-system
  labels:
    app.kubernetes.io/name: kube-vip-ds
    app.kubernetes.io/managed-by: outpost
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: kube-vip-ds
  template:
    metadata:
      labels:
        app.kubernetes.io/name: kube-vip-ds
    spec:
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - key: node-role.kubernetes.io/control-plane
                    operator: Exists
      containers:
        - name: kube-vip
",
    );
    y.push_str(&format!("          image: {}\n", q(KUBE_VIP_IMAGE)));
    y.push_str(
        "          imagePullPolicy: IfNotPresent
          args: [\"manager\"]
          env:
",
    );
    y.push_str(&kube_vip_env(spec, "            "));
    y.push_str(
        "          securityContext:
            capabilities:
              add: [\"NET_ADMIN\", \"NET_RAW\"]
      hostNetwork: true
      serviceAccountName: kube-vip
      tolerations:
        - effect: NoSchedule
          operator: Exists
        - effect: NoExecute
          operator: Exists
",
    );
    y
}

/// Kubernetes minor version from `v1.31.4+k3s1`, `1.29.0`, ...
pub fn minor_version(v: &str) -> Option<u32> {
    let v = v.strip_prefix('v').unwrap_or(v);
    let mut it = v.split('.');
    if it.next()? != "1" {
        return None;
    }
    it.next()?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// kubeadm: a static pod, so the VIP exists before `kubeadm init` finishes.
/// From Kubernetes 1.29 `admin.conf` no longer holds `system:masters`, so the
/// init node mounts `super-admin.conf` (it exists only there).
pub fn kube_vip_static_pod(spec: &Spec) -> String {
    let super_admin =
        spec.role == Role::InitServer && minor_version(&spec.version).is_some_and(|m| m >= 29);
    let kubeconfig = if super_admin {
        "/etc/kubernetes/super-admin.conf"
    } else {
        "/etc/kubernetes/admin.conf"
    };
    let mut y = header(spec, "kube-vip (ARP mode, kubeadm static pod)");
    y.push_str(
        "apiVersion: v1
kind: Pod
metadata:
  name: kube-vip
  namespace: kube-system
spec:
  containers:
    - name: kube-vip
",
    );
    y.push_str(&format!("      image: {}\n", q(KUBE_VIP_IMAGE)));
    y.push_str(
        "      imagePullPolicy: IfNotPresent
      args: [\"manager\"]
      env:
",
    );
    y.push_str(&kube_vip_env(spec, "        "));
    y.push_str(
        "      securityContext:
        capabilities:
          add: [\"NET_ADMIN\", \"NET_RAW\"]
      volumeMounts:
        - mountPath: /etc/kubernetes/admin.conf
          name: kubeconfig
  hostAliases:
    - hostnames: [\"kubernetes\"]
      ip: \"127.0.0.1\"
  hostNetwork: true
  volumes:
    - name: kubeconfig
      hostPath:
",
    );
    y.push_str(&format!("        path: {}\n", q(kubeconfig)));
    y
}

/// kubeadm API version: v1beta4 from Kubernetes 1.31, v1beta3 before.
fn kubeadm_api(spec: &Spec) -> &'static str {
    if minor_version(&spec.version).is_some_and(|m| m >= 31) {
        "kubeadm.k8s.io/v1beta4"
    } else {
        "kubeadm.k8s.io/v1beta3"
    }
}

/// kubelet extra args in the form of the kubeadm API version at hand
/// (v1beta4: a list of name/value; v1beta3: a map).
fn kubelet_args(spec: &Spec, indent: &str) -> String {
    let mut args: Vec<(&str, String)> = vec![(
        "node-labels",
        format!("{},{}", host_id_label(spec), cluster_label(spec)),
    )];
    if let Some(ip) = spec.node_ip {
        args.insert(0, ("node-ip", ip.to_string()));
    }
    let mut y = String::new();
    let v4 = kubeadm_api(spec).ends_with("v1beta4");
    for (k, v) in args {
        if v4 {
            y.push_str(&format!(
                "{indent}  - name: {k}\n{indent}    value: {}\n",
                q(&v)
            ));
        } else {
            y.push_str(&format!("{indent}  {k}: {}\n", q(&v)));
        }
    }
    y
}

/// A kubeadm token is `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn valid_kubeadm_token(t: &str) -> bool {
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    matches!(t.split_once('.'), Some((a, b)) if ok(a, 6) && ok(b, 16))
}

/// PXK-E (kubeadm): InitConfiguration + ClusterConfiguration for the init
/// node, JoinConfiguration (control plane or worker) for the others. The
/// join token is a kubeadm bootstrap token; joiners pin the CA with
/// `caCertHashes` (given here as `ca_hash`, `sha256:<hex>`), else
/// discovery is refused.
pub fn kubeadm_config(spec: &Spec, ca_hash: Option<&str>) -> Result<String, String> {
    if !valid_kubeadm_token(spec.token.expose()) {
        return Err("kubeadm join token must have the form [a-z0-9]{6}.[a-z0-9]{16}".to_string());
    }
    let api = kubeadm_api(spec);
    let endpoint = match &spec.endpoint {
        Endpoint::Vip(IpAddr::V6(a)) => format!("[{a}]:6443"),
        e => format!("{}:6443", e.host()),
    };
    let kubelet_key = "kubeletExtraArgs:\n";
    let mut y = header(spec, "kubeadm configuration");
    match spec.role {
        Role::InitServer => {
            y.push_str(&format!(
                "apiVersion: {api}\nkind: InitConfiguration\nbootstrapTokens:\n  - token: {}\n    ttl: \"2h\"\n    usages: [\"signing\", \"authentication\"]\n    groups: [\"system:bootstrappers:kubeadm:default-node-token\"]\nnodeRegistration:\n  {kubelet_key}",
                q(spec.token.expose())
            ));
            y.push_str(&kubelet_args(spec, "  "));
            if let Some(ip) = spec.node_ip {
                y.push_str(&format!(
                    "localAPIEndpoint:\n  advertiseAddress: {}\n  bindPort: 6443\n",
                    q(&ip.to_string())
                ));
            }
            y.push_str(&format!(
                "---\napiVersion: {api}\nkind: ClusterConfiguration\nkubernetesVersion: {}\ncontrolPlaneEndpoint: {}\napiServer:\n  certSANs:\n    - {}\nnetworking:\n",
                q(&spec.version),
                q(&endpoint),
                q(&spec.endpoint.host())
            ));
            y.push_str(&format!(
                "  podSubnet: {}\n  serviceSubnet: {}\n",
                q(spec.pod_cidr.as_deref().unwrap_or("10.244.0.0/16")),
                q(spec.service_cidr.as_deref().unwrap_or("10.96.0.0/12"))
            ));
        }
        Role::JoinServer | Role::JoinAgent => {
            let Some(hash) = ca_hash else {
                return Err("a kubeadm join needs the cluster CA hash (sha256:...)".to_string());
            };
            y.push_str(&format!(
                "apiVersion: {api}\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    apiServerEndpoint: {}\n    token: {}\n    caCertHashes:\n      - {}\nnodeRegistration:\n  {kubelet_key}",
                q(&endpoint),
                q(spec.token.expose()),
                q(hash)
            ));
            y.push_str(&kubelet_args(spec, "  "));
            if spec.role == Role::JoinServer {
                y.push_str("controlPlane:\n");
                if let Some(ip) = spec.node_ip {
                    y.push_str(&format!(
                        "  localAPIEndpoint:\n    advertiseAddress: {}\n    bindPort: 6443\n",
                        q(&ip.to_string())
                    ));
                }
            }
        }
    }
    Ok(y)
}

/// Canonical Kubernetes (`k8s` snap): the file for `k8s bootstrap --file`
/// on the init node, for `k8s join-cluster TOKEN --file` on joiners (the
/// join token itself goes on that command, not in this file). Rendered
/// only: not checked against a running snap.
pub fn canonical_config(spec: &Spec) -> String {
    let mut y = header(spec, "Canonical Kubernetes configuration");
    if spec.role == Role::InitServer {
        y.push_str(&format!(
            "pod-cidr: {}\nservice-cidr: {}\n",
            q(spec.pod_cidr.as_deref().unwrap_or("10.1.0.0/16")),
            q(spec.service_cidr.as_deref().unwrap_or("10.152.183.0/24"))
        ));
        y.push_str("cluster-config:\n  network:\n    enabled: true\n  dns:\n    enabled: true\n");
    }
    if spec.role.is_server() {
        y.push_str(&format!("extra-sans:\n  - {}\n", q(&spec.endpoint.host())));
    }
    y.push_str("extra-node-kubelet-args:\n");
    if let Some(ip) = spec.node_ip {
        y.push_str(&format!("  --node-ip: {}\n", q(&ip.to_string())));
    }
    y.push_str(&format!(
        "  --node-labels: {}\n",
        q(&format!("{},{}", host_id_label(spec), cluster_label(spec)))
    ));
    y
}

/// Every file a role gets: (host path, mode, content).
pub fn files(
    spec: &Spec,
    ca_hash: Option<&str>,
) -> Result<Vec<(&'static str, u32, String)>, String> {
    let mut out = Vec::new();
    match spec.distro {
        Distro::K3s => {
            out.push((K3S_CONFIG_PATH, 0o600, k3s_config(spec)));
            if spec.wants_kube_vip() {
                out.push((K3S_MANIFEST_PATH, 0o600, kube_vip_k3s(spec)));
            }
        }
        Distro::Pxke => {
            out.push((KUBEADM_CONFIG_PATH, 0o600, kubeadm_config(spec, ca_hash)?));
            if spec.wants_kube_vip() {
                out.push((KUBEADM_KUBE_VIP_PATH, 0o600, kube_vip_static_pod(spec)));
            }
        }
        Distro::Canonical => {
            out.push((CANONICAL_CONFIG_PATH, 0o600, canonical_config(spec)));
            if spec.wants_kube_vip() {
                out.push((KUBEADM_KUBE_VIP_PATH, 0o600, kube_vip_static_pod(spec)));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::Token;
    use super::*;

    fn spec(distro: Distro, role: Role, endpoint: &str) -> Spec {
        let k3s = format!("K10{}::server:5e3f1c0a9b7d4e21", "3f".repeat(32));
        Spec {
            cluster: "edge-1".into(),
            distro,
            version: match distro {
                Distro::K3s => "v1.31.4+k3s1".into(),
                _ => "v1.31.4".into(),
            },
            endpoint: super::super::Endpoint::parse(endpoint).unwrap_or_else(|e| panic!("{e}")),
            role,
            host_id: "edge-0a1b2c".into(),
            node_ip: Some("10.0.0.11".parse().unwrap_or_else(|_| unreachable!())),
            interface: Some("eth0".into()),
            pod_cidr: Some("10.42.0.0/16".into()),
            service_cidr: Some("10.43.0.0/16".into()),
            vip_skip: false,
            token: Token::new(match distro {
                Distro::K3s if role == Role::InitServer => "bootstrap-4c2f9a".to_string(),
                Distro::K3s => k3s,
                _ => "abcdef.0123456789abcdef".into(),
            }),
        }
    }

    /// Compare with tests/fixtures/cluster/NAME; `OUTPOST_BLESS=1` rewrites it.
    fn golden(name: &str, got: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/cluster")
            .join(name);
        if std::env::var_os("OUTPOST_BLESS").is_some() {
            std::fs::write(&path, got).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (OUTPOST_BLESS=1 writes it)", path.display()));
        assert_eq!(got, want, "golden file {name} differs");
        // Every rendering is valid YAML (one or more documents).
        for doc in got.split("\n---\n") {
            let v: Result<serde_norway::Value, _> = serde_norway::from_str(doc);
            assert!(v.is_ok(), "{name}: not YAML: {v:?}");
        }
    }

    #[test]
    fn golden_k3s_configs() {
        for (role, file) in [
            (Role::InitServer, "k3s-init-server.yaml"),
            (Role::JoinServer, "k3s-join-server.yaml"),
            (Role::JoinAgent, "k3s-join-agent.yaml"),
        ] {
            golden(
                file,
                &k3s_config(&spec(Distro::K3s, role, "vip:10.0.0.100")),
            );
        }
        golden(
            "k3s-join-server-dns.yaml",
            &k3s_config(&spec(
                Distro::K3s,
                Role::JoinServer,
                "dns:api.edge-1.example.test",
            )),
        );
    }

    #[test]
    fn golden_kube_vip() {
        golden(
            "kube-vip-k3s.yaml",
            &kube_vip_k3s(&spec(Distro::K3s, Role::InitServer, "vip:10.0.0.100")),
        );
        golden(
            "kube-vip-static-init.yaml",
            &kube_vip_static_pod(&spec(Distro::Pxke, Role::InitServer, "vip:10.0.0.100")),
        );
        golden(
            "kube-vip-static-join.yaml",
            &kube_vip_static_pod(&spec(Distro::Pxke, Role::JoinServer, "vip:fd00:10::64")),
        );
    }

    #[test]
    fn golden_kubeadm_and_canonical() {
        let hash = format!("sha256:{}", "ab".repeat(32));
        for (role, file) in [
            (Role::InitServer, "kubeadm-init.yaml"),
            (Role::JoinServer, "kubeadm-join-server.yaml"),
            (Role::JoinAgent, "kubeadm-join-agent.yaml"),
        ] {
            let s = spec(Distro::Pxke, role, "vip:10.0.0.100");
            golden(
                file,
                &kubeadm_config(&s, Some(&hash)).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        let mut old = spec(Distro::Pxke, Role::InitServer, "vip:10.0.0.100");
        old.version = "v1.30.8".into();
        golden(
            "kubeadm-init-v1beta3.yaml",
            &kubeadm_config(&old, None).unwrap_or_else(|e| panic!("{e}")),
        );
        golden(
            "canonical-init.yaml",
            &canonical_config(&spec(Distro::Canonical, Role::InitServer, "vip:10.0.0.100")),
        );
        golden(
            "canonical-join-agent.yaml",
            &canonical_config(&spec(Distro::Canonical, Role::JoinAgent, "vip:10.0.0.100")),
        );
    }

    #[test]
    fn k3s_config_parses_back_with_the_keys_per_role() {
        for role in [Role::InitServer, Role::JoinServer, Role::JoinAgent] {
            let s = spec(Distro::K3s, role, "vip:10.0.0.100");
            let v: serde_norway::Value =
                serde_norway::from_str(&k3s_config(&s)).unwrap_or_else(|e| panic!("{e}"));
            let m = v
                .as_mapping()
                .unwrap_or_else(|| panic!("{role:?}: not a map"));
            let has = |k: &str| m.contains_key(serde_norway::Value::String(k.into()));
            assert_eq!(has("cluster-init"), role == Role::InitServer, "{role:?}");
            assert_eq!(has("server"), role != Role::InitServer, "{role:?}");
            assert_eq!(has("tls-san"), role.is_server(), "{role:?}");
            assert_eq!(has("cluster-cidr"), role.is_server(), "{role:?}");
            assert!(
                has("token") && has("node-ip") && has("node-label"),
                "{role:?}"
            );
            assert_eq!(
                v["token"].as_str(),
                Some(s.token.expose()),
                "{role:?}: token round-trips"
            );
        }
    }

    #[test]
    fn hostile_values_stay_scalars() {
        let mut s = spec(Distro::K3s, Role::JoinAgent, "vip:10.0.0.100");
        s.token = Token::new("a\"b\nc: d\\e\u{85}");
        s.host_id = "x\n- evil: true".into();
        let v: serde_norway::Value =
            serde_norway::from_str(&k3s_config(&s)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["token"].as_str(), Some("a\"b\nc: d\\e\u{85}"));
        assert_eq!(
            v["node-label"][0].as_str(),
            Some("outpost.io/host-id=x\n- evil: true")
        );
    }

    #[test]
    fn kube_vip_only_for_servers_with_a_vip() {
        let names = |s: &Spec| {
            files(s, Some("sha256:00"))
                .unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .map(|f| f.0)
                .collect::<Vec<_>>()
        };
        let s = spec(Distro::K3s, Role::InitServer, "vip:10.0.0.100");
        assert_eq!(names(&s), [K3S_CONFIG_PATH, K3S_MANIFEST_PATH]);
        let mut skip = s.clone();
        skip.vip_skip = true;
        assert_eq!(names(&skip), [K3S_CONFIG_PATH], "stylus.vip.skip");
        let agent = spec(Distro::K3s, Role::JoinAgent, "vip:10.0.0.100");
        assert_eq!(names(&agent), [K3S_CONFIG_PATH], "workers run no kube-vip");
        let dns = spec(Distro::K3s, Role::InitServer, "dns:api.example.test");
        assert_eq!(names(&dns), [K3S_CONFIG_PATH], "DNS endpoint");
        let pxke = spec(Distro::Pxke, Role::JoinServer, "vip:10.0.0.100");
        assert_eq!(names(&pxke), [KUBEADM_CONFIG_PATH, KUBEADM_KUBE_VIP_PATH]);
    }

    #[test]
    fn kubeadm_rules() {
        let mut s = spec(Distro::Pxke, Role::JoinAgent, "vip:10.0.0.100");
        assert_eq!(
            kubeadm_config(&s, None),
            Err("a kubeadm join needs the cluster CA hash (sha256:...)".to_string())
        );
        s.token = Token::new("not-a-kubeadm-token");
        assert_eq!(
            kubeadm_config(&s, Some("sha256:00")),
            Err("kubeadm join token must have the form [a-z0-9]{6}.[a-z0-9]{16}".to_string())
        );
        let cases = [
            ("v1.31.4+k3s1", Some(31)),
            ("1.29.0", Some(29)),
            ("v1.28", Some(28)),
            ("v2.0.0", None),
            ("x", None),
        ];
        for (v, want) in cases {
            assert_eq!(minor_version(v), want, "case {v}");
        }
        let mut init128 = spec(Distro::Pxke, Role::InitServer, "vip:10.0.0.100");
        init128.version = "v1.28.9".into();
        assert!(kube_vip_static_pod(&init128).contains("path: \"/etc/kubernetes/admin.conf\""));
    }
}
