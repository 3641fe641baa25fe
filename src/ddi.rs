//! Eclipse hawkBit Direct Device Integration (DDI), the parts outpost speaks
//! so far: the controller base resource (`GET /{tenant}/controller/v1/
//! {controllerId}`), its `config.polling.sleep` and `_links`, and the
//! `Authorization` header of a target or gateway token. Pure: no I/O.
//!
//! Also the `configData` body built from the inventory (string values
//! only, as DDI wants), the `deploymentBase` and `cancelAction` resources,
//! the choice of the signed outpost artifact in a deployment (the
//! convention of docs/hawkbit.md, "Deployments") and the feedback bodies.
//! The I/O is `ddi_action.rs`.

use miniserde::json::Value;
use std::collections::BTreeMap;

/// The DDI base path of this controller (tenant and ID are checked by the
/// config loader and the host ID rules: no `/`).
pub fn base_path(tenant: &str, controller_id: &str) -> String {
    format!("/{tenant}/controller/v1/{controller_id}")
}

/// `Authorization` header value: `TargetToken <t>` or `GatewayToken <t>`.
pub fn authorization(token_type: &str, token: &str) -> String {
    match token_type {
        "gateway" => format!("GatewayToken {token}"),
        _ => format!("TargetToken {token}"),
    }
}

/// `HH:MM:SS` (hawkBit's polling sleep) in seconds.
pub fn parse_sleep(s: &str) -> Option<u64> {
    let mut it = s.trim().split(':');
    let (h, m, sec) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let num = |t: &str, max: u64| -> Option<u64> {
        (!t.is_empty() && t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<u64>().ok())
            .flatten()
            .filter(|v| *v <= max)
    };
    Some(num(h, 23)? * 3600 + num(m, 59)? * 60 + num(sec, 59)?)
}

/// What the base resource says.
#[derive(Debug, PartialEq, Eq)]
pub struct Poll {
    pub sleep: String,
    pub sleep_secs: u64,
    /// Names of the `_links` offered (`configData`, `deploymentBase`, ...).
    pub links: Vec<String>,
    /// `_links.deploymentBase.href` and `_links.cancelAction.href`.
    pub deployment: Option<String>,
    pub cancel: Option<String>,
}

/// Parse the base resource; Err says what is missing.
pub fn parse_poll(body: &str) -> Result<Poll, String> {
    let v: Value = miniserde::json::from_str(body).map_err(|_| "not JSON".to_string())?;
    let Value::Object(o) = v else {
        return Err("not a JSON object".into());
    };
    let sleep = match o.get("config") {
        Some(Value::Object(c)) => match c.get("polling") {
            Some(Value::Object(p)) => match p.get("sleep") {
                Some(Value::String(s)) => s.clone(),
                _ => return Err("no config.polling.sleep".into()),
            },
            _ => return Err("no config.polling".into()),
        },
        _ => return Err("no config".into()),
    };
    let sleep_secs =
        parse_sleep(&sleep).ok_or_else(|| format!("sleep {sleep:?} is not HH:MM:SS"))?;
    let mut links: Vec<String> = match o.get("_links") {
        Some(Value::Object(l)) => l.keys().cloned().collect(),
        _ => Vec::new(),
    };
    links.sort();
    let href = |name: &str| match o.get("_links") {
        Some(Value::Object(l)) => match l.get(name) {
            Some(Value::Object(x)) => match x.get("href") {
                Some(Value::String(h)) => Some(h.clone()),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    };
    Ok(Poll {
        sleep,
        sleep_secs,
        deployment: href("deploymentBase"),
        cancel: href("cancelAction"),
        links,
    })
}

fn obj(v: Option<&Value>) -> Option<&miniserde::json::Object> {
    match v {
        Some(Value::Object(o)) => Some(o),
        _ => None,
    }
}

fn string(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        // hawkBit sends IDs as strings; accept numbers too.
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: Option<&Value>) -> Option<u64> {
    match v {
        Some(Value::Number(miniserde::json::Number::U64(n))) => Some(*n),
        Some(Value::Number(miniserde::json::Number::I64(n))) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// One artifact of a deployment chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdiArtifact {
    pub filename: String,
    pub size: u64,
    /// Lowercase hex, as the server gave them (sha1 and md5 always in
    /// hawkBit, sha256 when the server has it).
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    /// `_links.download.href`, else `download-http`.
    pub href: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub part: String,
    pub name: String,
    pub version: String,
    pub artifacts: Vec<DdiArtifact>,
}

/// `GET …/deploymentBase/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    /// `skip`, `attempt` or `forced`.
    pub download: String,
    pub update: String,
    /// `available`, `unavailable` or absent (no maintenance window).
    pub maintenance_window: Option<String>,
    pub chunks: Vec<Chunk>,
}

/// Parse a deployment; Err says what is missing.
pub fn parse_deployment(body: &str) -> Result<Deployment, String> {
    let v: Value = miniserde::json::from_str(body).map_err(|_| "not JSON".to_string())?;
    let Value::Object(o) = v else {
        return Err("not a JSON object".into());
    };
    let id = string(o.get("id")).ok_or("no id")?;
    let d = obj(o.get("deployment")).ok_or("no deployment")?;
    let handling = |k: &str| -> Result<String, String> {
        match string(d.get(k)) {
            Some(s) if ["skip", "attempt", "forced"].contains(&s.as_str()) => Ok(s),
            Some(s) => Err(format!(
                "deployment.{k} {s:?} is not skip, attempt or forced"
            )),
            None => Err(format!("no deployment.{k}")),
        }
    };
    let download = handling("download")?;
    // hawkBit always sends both; `update` defaults to `download` if absent.
    let update = if d.contains_key("update") {
        handling("update")?
    } else {
        download.clone()
    };
    let maintenance_window = string(d.get("maintenanceWindow"));
    let mut chunks = Vec::new();
    if let Some(Value::Array(cs)) = d.get("chunks") {
        for c in cs {
            let Value::Object(c) = c else {
                return Err("a chunk is not an object".into());
            };
            let mut artifacts = Vec::new();
            if let Some(Value::Array(arts)) = c.get("artifacts") {
                for a in arts {
                    let Value::Object(a) = a else {
                        return Err("an artifact is not an object".into());
                    };
                    let filename =
                        string(a.get("filename")).ok_or("an artifact has no filename")?;
                    let size = number(a.get("size"))
                        .ok_or_else(|| format!("artifact {filename:?} has no size"))?;
                    let hashes = obj(a.get("hashes"));
                    let hash = |k: &str| {
                        hashes
                            .and_then(|h| string(h.get(k)))
                            .map(|s| s.to_ascii_lowercase())
                    };
                    let links = obj(a.get("_links"));
                    let href = ["download", "download-http"]
                        .iter()
                        .find_map(|k| {
                            obj(links.and_then(|l| l.get(*k))).and_then(|x| string(x.get("href")))
                        })
                        .ok_or_else(|| format!("artifact {filename:?} has no download link"))?;
                    artifacts.push(DdiArtifact {
                        filename,
                        size,
                        sha1: hash("sha1"),
                        sha256: hash("sha256"),
                        href,
                    });
                }
            }
            chunks.push(Chunk {
                part: string(c.get("part")).unwrap_or_default(),
                name: string(c.get("name")).unwrap_or_default(),
                version: string(c.get("version")).unwrap_or_default(),
                artifacts,
            });
        }
    }
    Ok(Deployment {
        id,
        download,
        update,
        maintenance_window,
        chunks,
    })
}

/// `GET …/cancelAction/{id}`: the action to stop (`cancelAction.stopId`).
pub fn parse_cancel(body: &str) -> Result<(String, String), String> {
    let v: Value = miniserde::json::from_str(body).map_err(|_| "not JSON".to_string())?;
    let Value::Object(o) = v else {
        return Err("not a JSON object".into());
    };
    let id = string(o.get("id")).ok_or("no id")?;
    let stop = obj(o.get("cancelAction"))
        .and_then(|c| string(c.get("stopId")))
        .ok_or("no cancelAction.stopId")?;
    Ok((id, stop))
}

/// The signed outpost release found in a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
// One short-lived value per deployment: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Release {
    /// Three artifacts of one chunk: `X`, `X.manifest`, `X.manifest.sig`
    /// (hawkBit: a software module with three artifacts).
    Split {
        binary: DdiArtifact,
        manifest: DdiArtifact,
        signature: DdiArtifact,
    },
    /// One SWUpdate-format archive (`*.swu`, cpio newc) holding the same
    /// three files (servers that take one SWU/RAUC image per software,
    /// like gooseBit).
    Swu(DdiArtifact),
}

/// Find the outpost release for `arch` in a deployment (docs/hawkbit.md,
/// "Deployments"). A triple whose binary name names another architecture
/// is skipped; Err says what the deployment holds instead.
pub fn choose(d: &Deployment, arch: &str) -> Result<Release, String> {
    let other = if arch == "x86_64" {
        "aarch64"
    } else {
        "x86_64"
    };
    let mut triples = Vec::new();
    let mut swus = Vec::new();
    for c in &d.chunks {
        for sig in &c.artifacts {
            let Some(x) = sig.filename.strip_suffix(".manifest.sig") else {
                continue;
            };
            let find = |n: &str| c.artifacts.iter().find(|a| a.filename == n).cloned();
            if let (Some(binary), Some(manifest)) = (find(x), find(&format!("{x}.manifest"))) {
                triples.push(Release::Split {
                    binary,
                    manifest,
                    signature: sig.clone(),
                });
            }
        }
        for a in &c.artifacts {
            if a.filename.ends_with(".swu") {
                swus.push(Release::Swu(a.clone()));
            }
        }
    }
    let name = |r: &Release| match r {
        Release::Split { binary, .. } => binary.filename.clone(),
        Release::Swu(a) => a.filename.clone(),
    };
    let all: Vec<Release> = triples.into_iter().chain(swus).collect();
    if all.is_empty() {
        let names: Vec<String> = d
            .chunks
            .iter()
            .flat_map(|c| c.artifacts.iter().map(|a| a.filename.clone()))
            .collect();
        return Err(format!(
            "no signed outpost release in the deployment (want X, X.manifest and X.manifest.sig in one chunk, or one *.swu holding them); artifacts: {}",
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        ));
    }
    let mine = all.iter().find(|r| name(r).contains(arch));
    let neutral = all.iter().find(|r| !name(r).contains(other));
    mine.or(neutral).cloned().ok_or_else(|| {
        format!(
            "the deployment's outpost release is for {other} only ({}), this host runs {arch}",
            all.iter().map(name).collect::<Vec<_>>().join(", ")
        )
    })
}

/// A feedback body: `{"time":..,"status":{"execution":..,"result":
/// {"finished":..},"details":[..]}}` (hawkBit's `DdiActionFeedback`; time
/// as `yyyyMMdd'T'HHmmss`, as rauc-hawkbit-updater sends it).
pub fn feedback_body(unix_s: u64, execution: &str, finished: &str, details: &[String]) -> String {
    use miniserde::json::{Array, Object};
    let mut result = Object::new();
    result.insert("finished".into(), Value::String(finished.into()));
    let mut status = Object::new();
    status.insert("execution".into(), Value::String(execution.into()));
    status.insert("result".into(), Value::Object(result));
    let mut d = Array::new();
    for l in details {
        d.push(Value::String(l.clone()));
    }
    status.insert("details".into(), Value::Array(d));
    let mut o = Object::new();
    let t = crate::timefmt::rfc3339(unix_s);
    // 2026-12-06T07:30:00Z -> 20261206T073000
    let compact: String = t
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    o.insert("time".into(), Value::String(compact));
    o.insert("status".into(), Value::Object(status));
    miniserde::json::to_string(&Value::Object(o))
}

/// The inventory as DDI configuration data: a flat map of strings.
pub fn config_data(inv: &crate::inventory::Input) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("hostname".to_string(), inv.hostname.clone());
    m.insert("arch".to_string(), inv.arch.clone());
    m.insert("cpus".to_string(), inv.cpus.to_string());
    m.insert("memory_bytes".to_string(), inv.memory_bytes.to_string());
    m.insert("os".to_string(), inv.os.clone());
    m.insert("kernel".to_string(), inv.kernel.clone());
    m.insert("agent".to_string(), inv.agent.clone());
    // The key SWUpdate's suricatta and gooseBit use for the running
    // software version (gooseBit skips a deployment of this version).
    m.insert("sw_version".to_string(), crate::version::running());
    for (k, v) in &inv.tags {
        m.insert(format!("tag.{k}"), v.clone());
    }
    m
}

/// `{"mode":"merge","data":{...}}`.
pub fn config_data_body(data: &BTreeMap<String, String>) -> String {
    use miniserde::json::{Object, Value};
    let mut d = Object::new();
    for (k, v) in data {
        d.insert(k.clone(), Value::String(v.clone()));
    }
    let mut o = Object::new();
    o.insert("mode".into(), Value::String("merge".into()));
    o.insert("data".into(), Value::Object(d));
    miniserde::json::to_string(&Value::Object(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_and_poll() {
        assert_eq!(parse_sleep("00:05:00"), Some(300));
        assert_eq!(parse_sleep("23:59:59"), Some(86_399));
        for bad in [
            "",
            "5",
            "00:60:00",
            "1:2",
            "00:00:0x",
            "00:00:00:00",
            "-1:00:00",
        ] {
            assert_eq!(parse_sleep(bad), None, "{bad}");
        }
        // gooseBit 0.2.12's first answer, as captured on loopback.
        let p = parse_poll(r#"{"config":{"polling":{"sleep":"00:00:10"}},"_links":{"configData":{"href":"http://127.0.0.1:60053/DEFAULT/controller/v1/dev-0001/configData"}}}"#)
            .expect("poll");
        assert_eq!(
            p,
            Poll {
                sleep: "00:00:10".into(),
                sleep_secs: 10,
                links: vec!["configData".into()],
                deployment: None,
                cancel: None,
            }
        );
        assert_eq!(
            parse_poll(r#"{"config":{}}"#),
            Err("no config.polling".into())
        );
        assert_eq!(authorization("gateway", "t"), "GatewayToken t");
        assert_eq!(authorization("target", "t"), "TargetToken t");
        assert_eq!(
            base_path("DEFAULT", "edge-1"),
            "/DEFAULT/controller/v1/edge-1"
        );
    }

    fn art(name: &str) -> String {
        format!(
            r#"{{"filename":"{name}","hashes":{{"sha1":"AB","md5":"cd"}},"size":3,"_links":{{"download-http":{{"href":"http://x/{name}"}},"download":{{"href":"https://x/{name}"}}}}}}"#
        )
    }

    #[test]
    fn deployment_cancel_choice_and_feedback() {
        // hawkBit's documented example shape (ddi_api.md), one chunk with a
        // three-artifact outpost release and an unrelated chunk.
        let body = format!(
            r#"{{"id":"8","deployment":{{"download":"forced","update":"attempt","maintenanceWindow":"available","chunks":[{{"part":"os","version":"1","name":"other","artifacts":[{}]}},{{"part":"bApp","version":"0.9.0","name":"outpost","artifacts":[{},{},{},{}]}}]}},"actionHistory":{{"status":"RUNNING","messages":[]}}}}"#,
            art("rootfs.img"),
            art("outpost-0.9.0-aarch64-linux-musl"),
            art("outpost-0.9.0-x86_64-linux-musl"),
            art("outpost-0.9.0-x86_64-linux-musl.manifest"),
            art("outpost-0.9.0-x86_64-linux-musl.manifest.sig"),
        );
        let d = parse_deployment(&body).expect("deployment");
        assert_eq!(d.id, "8");
        assert_eq!(
            (d.download.as_str(), d.update.as_str()),
            ("forced", "attempt")
        );
        assert_eq!(d.maintenance_window.as_deref(), Some("available"));
        assert_eq!(d.chunks.len(), 2);
        let a = &d.chunks[1].artifacts[0];
        assert_eq!(
            a.href, "https://x/outpost-0.9.0-aarch64-linux-musl",
            "download before download-http"
        );
        assert_eq!(a.sha1.as_deref(), Some("ab"));
        assert_eq!(a.sha256, None);
        match choose(&d, "x86_64").expect("x86_64") {
            Release::Split {
                binary,
                manifest,
                signature,
            } => {
                assert_eq!(binary.filename, "outpost-0.9.0-x86_64-linux-musl");
                assert!(manifest.filename.ends_with(".manifest"));
                assert!(signature.filename.ends_with(".manifest.sig"));
            }
            r => panic!("{r:?}"),
        }
        // Only an x86_64 triple: an aarch64 host is told so.
        let e = choose(&d, "aarch64").expect_err("no aarch64 triple");
        assert!(e.contains("for x86_64 only"), "{e}");
        // A numeric id (gooseBit sends strings; some servers numbers).
        let swu = format!(
            r#"{{"id":1,"deployment":{{"download":"forced","update":"forced","chunks":[{{"part":"os","version":"0.9.0","name":"x.swu","artifacts":[{}]}}]}}}}"#,
            art("outpost-0.9.0.swu")
        );
        let d = parse_deployment(&swu).expect("swu");
        assert_eq!(d.id, "1");
        assert!(matches!(choose(&d, "aarch64"), Ok(Release::Swu(_))));
        let none = parse_deployment(&format!(
            r#"{{"id":"2","deployment":{{"download":"attempt","chunks":[{{"artifacts":[{}]}}]}}}}"#,
            art("rootfs.img")
        ))
        .expect("parse");
        assert_eq!(none.update, "attempt", "update defaults to download");
        let e = choose(&none, "x86_64").expect_err("nothing");
        assert!(e.contains("artifacts: rootfs.img"), "{e}");
        for (bad, why) in [
            (r#"{"deployment":{}}"#, "no id"),
            (r#"{"id":"1"}"#, "no deployment"),
            (
                r#"{"id":"1","deployment":{"download":"later"}}"#,
                "is not skip",
            ),
            (
                r#"{"id":"1","deployment":{"download":"forced","chunks":[{"artifacts":[{"filename":"a","size":1}]}]}}"#,
                "no download link",
            ),
            ("[1]", "not a JSON object"),
        ] {
            let e = parse_deployment(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert_eq!(
            parse_cancel(r#"{"id":"11","cancelAction":{"stopId":"8"}}"#),
            Ok(("11".into(), "8".into()))
        );
        assert!(parse_cancel(r#"{"id":"11"}"#).is_err());
        let p = parse_poll(r#"{"config":{"polling":{"sleep":"00:05:00"}},"_links":{"deploymentBase":{"href":"https://h/T/controller/v1/c/deploymentBase/8?c=-2"},"cancelAction":{"href":"https://h/T/controller/v1/c/cancelAction/11"}}}"#).expect("poll");
        assert_eq!(
            p.deployment.as_deref(),
            Some("https://h/T/controller/v1/c/deploymentBase/8?c=-2")
        );
        assert_eq!(
            p.cancel.as_deref(),
            Some("https://h/T/controller/v1/c/cancelAction/11")
        );
        // 2026-12-06T07:30:05Z
        let f = feedback_body(1_796_542_205, "closed", "failure", &["bad \"sig\"".into()]);
        assert_eq!(
            f,
            r#"{"status":{"details":["bad \"sig\""],"execution":"closed","result":{"finished":"failure"}},"time":"20261206T073005"}"#
        );
    }
}
