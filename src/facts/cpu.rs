//! CPU facts: online CPUs (`/sys/devices/system/cpu/online`, a cpu list such as
//! `0-3,5,7-8`, falling back to `processor` lines in `/proc/cpuinfo`) and the
//! cgroup CPU quota of this process (cgroup v2 `cpu.max`, v1 `cpu.cfs_*`).

use crate::sys::Root;

/// Parse a kernel cpu list (`0-3,5,7-8`) into the number of CPUs it names.
pub fn parse_cpu_list(text: &str) -> Result<u32, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty cpu list".to_string());
    }
    let mut count: u32 = 0;
    for part in text.split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a, part)?, num(b, part)?),
            None => {
                let n = num(part, part)?;
                (n, n)
            }
        };
        if hi < lo {
            return Err(format!("descending range {part:?}"));
        }
        count = (hi - lo)
            .checked_add(1)
            .and_then(|n| count.checked_add(n))
            .ok_or_else(|| format!("cpu list too large at {part:?}"))?;
    }
    Ok(count)
}

fn num(s: &str, part: &str) -> Result<u32, String> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad cpu list entry {part:?}"));
    }
    s.parse::<u32>()
        .map_err(|_| format!("bad cpu list entry {part:?}"))
}

/// Count `processor : N` lines in `/proc/cpuinfo` text.
pub fn parse_cpuinfo_processors(text: &str) -> u32 {
    text.lines()
        .filter(|l| {
            l.split_once(':')
                .map(|(k, _)| k.trim() == "processor")
                .unwrap_or(false)
        })
        .count() as u32
}

/// The first `model name` (x86) or `Hardware`/`Model` line of `/proc/cpuinfo`.
pub fn parse_cpu_model(text: &str) -> Option<String> {
    for key in ["model name", "Model", "Hardware", "cpu model"] {
        for l in text.lines() {
            if let Some((k, v)) = l.split_once(':') {
                if k.trim() == key && !v.trim().is_empty() {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}

/// Online CPU count and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnlineCpus {
    pub count: u32,
    pub source: &'static str,
}

pub fn online_cpus(root: &Root) -> Result<OnlineCpus, String> {
    const ONLINE: &str = "/sys/devices/system/cpu/online";
    match root.read(ONLINE) {
        Ok(text) => {
            return parse_cpu_list(&text)
                .map(|count| OnlineCpus {
                    count,
                    source: ONLINE,
                })
                .map_err(|e| format!("{ONLINE}: {e}"))
        }
        Err(_) => {
            if let Ok(text) = root.read("/proc/cpuinfo") {
                let n = parse_cpuinfo_processors(&text);
                if n > 0 {
                    return Ok(OnlineCpus {
                        count: n,
                        source: "/proc/cpuinfo",
                    });
                }
            }
        }
    }
    Err(format!("{ONLINE} and /proc/cpuinfo unreadable"))
}

/// A CPU bandwidth limit: `quota` microseconds of CPU time per `period`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quota {
    pub quota_us: u64,
    pub period_us: u64,
}

impl Quota {
    /// The limit in CPUs (e.g. 1.5).
    pub fn cpus(&self) -> f64 {
        self.quota_us as f64 / self.period_us as f64
    }
}

/// Parse cgroup v2 `cpu.max` ("max 100000" or "150000 100000").
/// `Ok(None)` means unlimited.
pub fn parse_cpu_max(text: &str) -> Result<Option<Quota>, String> {
    let mut it = text.split_whitespace();
    let q = it.next().ok_or("empty cpu.max")?;
    let period = match it.next() {
        Some(p) => p
            .parse::<u64>()
            .map_err(|_| format!("bad period {p:?} in cpu.max"))?,
        None => 100_000,
    };
    if q == "max" {
        return Ok(None);
    }
    let quota = q
        .parse::<u64>()
        .map_err(|_| format!("bad quota {q:?} in cpu.max"))?;
    if period == 0 {
        return Err("zero period in cpu.max".to_string());
    }
    Ok(Some(Quota {
        quota_us: quota,
        period_us: period,
    }))
}

/// Parse `/proc/self/cgroup` into (v2 path, v1 cpu controller path).
pub fn parse_proc_cgroup(text: &str) -> (Option<String>, Option<String>) {
    let mut v2 = None;
    let mut v1 = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if id == "0" && ctrls.is_empty() {
            v2 = Some(path.to_string());
        } else if ctrls.split(',').any(|c| c == "cpu") {
            v1 = Some(path.to_string());
        }
    }
    (v2, v1)
}

/// The tightest CPU quota on this process's cgroup path (walking up to the
/// cgroup root), or `None` when unlimited or unknown.
pub fn cgroup_quota(root: &Root) -> Option<Quota> {
    let text = root.read("/proc/self/cgroup").ok()?;
    let (v2, v1) = parse_proc_cgroup(&text);
    let mut best: Option<Quota> = None;
    let mut consider = |q: Quota| {
        if best.map(|b| q.cpus() < b.cpus()).unwrap_or(true) {
            best = Some(q);
        }
    };
    if let Some(p) = v1 {
        for dir in ancestors(&p) {
            let base = format!("/sys/fs/cgroup/cpu{dir}");
            let quota = root.read_trim(format!("{base}/cpu.cfs_quota_us"));
            let period = root.read_trim(format!("{base}/cpu.cfs_period_us"));
            if let (Some(q), Some(p)) = (quota, period) {
                if let (Ok(q), Ok(p)) = (q.parse::<i64>(), p.parse::<u64>()) {
                    if q > 0 && p > 0 {
                        consider(Quota {
                            quota_us: q as u64,
                            period_us: p,
                        });
                    }
                }
            }
        }
    }
    if let Some(p) = v2 {
        for dir in ancestors(&p) {
            if let Some(text) = root.read_trim(format!("/sys/fs/cgroup{dir}/cpu.max")) {
                if let Ok(Some(q)) = parse_cpu_max(&text) {
                    consider(q);
                }
            }
        }
    }
    best
}

/// `/a/b` -> ["/a/b", "/a", ""] (the last is the cgroup root itself).
fn ancestors(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut p = path.trim_end_matches('/').to_string();
    loop {
        out.push(p.clone());
        match p.rfind('/') {
            Some(i) => p.truncate(i),
            None => break,
        }
        if p.is_empty() {
            out.push(String::new());
            break;
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        let cases: &[(&str, Result<u32, &str>)] = &[
            ("0", Ok(1)),
            ("0-3", Ok(4)),
            ("0-3,5,7-8\n", Ok(7)),
            ("0-1", Ok(2)),
            (" 0-63 ", Ok(64)),
            ("", Err("empty cpu list")),
            ("\n", Err("empty cpu list")),
            ("3-1", Err("descending range \"3-1\"")),
            ("0-", Err("bad cpu list entry \"0-\"")),
            ("a-b", Err("bad cpu list entry \"a-b\"")),
            ("0,,2", Err("bad cpu list entry \"\"")),
            ("-1", Err("bad cpu list entry \"-1\"")),
            ("0-4294967295", Err("cpu list too large at \"0-4294967295\"")),
        ];
        for (input, want) in cases {
            let got = parse_cpu_list(input);
            assert_eq!(got, want.map_err(|e| e.to_string()), "input {input:?}");
        }
    }

    #[test]
    fn cpuinfo_counts_processors() {
        let text = "processor\t: 0\nmodel name\t: Intel(R) Xeon\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon\n";
        assert_eq!(parse_cpuinfo_processors(text), 2);
        assert_eq!(parse_cpu_model(text).as_deref(), Some("Intel(R) Xeon"));
        assert_eq!(parse_cpuinfo_processors("garbage\n\0\0"), 0);
        assert_eq!(parse_cpu_model(""), None);
    }

    #[test]
    fn cpu_max() {
        assert_eq!(parse_cpu_max("max 100000\n"), Ok(None));
        let q = parse_cpu_max("150000 100000").expect("quota").expect("some");
        assert!((q.cpus() - 1.5).abs() < 1e-9);
        assert!(parse_cpu_max("").is_err());
        assert!(parse_cpu_max("x 100000").is_err());
        assert!(parse_cpu_max("100 0").is_err());
        assert!(parse_cpu_max("100 y").is_err());
    }

    #[test]
    fn proc_cgroup() {
        let v2 = "0::/system.slice/outpost.service\n";
        assert_eq!(
            parse_proc_cgroup(v2),
            (Some("/system.slice/outpost.service".into()), None)
        );
        let v1 = "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n0::/\n";
        assert_eq!(
            parse_proc_cgroup(v1),
            (Some("/".into()), Some("/docker/abc".into()))
        );
        assert_eq!(parse_proc_cgroup("garbage"), (None, None));
    }

    #[test]
    fn cgroup_ancestors() {
        assert_eq!(ancestors("/a/b"), vec!["/a/b", "/a", ""]);
        assert_eq!(ancestors("/"), vec![""]);
    }
}
