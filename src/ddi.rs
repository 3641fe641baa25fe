//! Eclipse hawkBit Direct Device Integration (DDI), the parts outpost speaks
//! so far: the controller base resource (`GET /{tenant}/controller/v1/
//! {controllerId}`), its `config.polling.sleep` and `_links`, and the
//! `Authorization` header of a target or gateway token. Pure: no I/O.
//!
//! Also the `configData` body built from the inventory (string values
//! only, as DDI wants). Not yet: the poll loop in `run`, deployments
//! (docs/hawkbit.md).

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
    Ok(Poll {
        sleep,
        sleep_secs,
        links,
    })
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
                links: vec!["configData".into()]
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
}
