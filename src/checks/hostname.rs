//! `hostname`: a valid Kubernetes node name: RFC 1123 labels of at most 63
//! characters from `a-z 0-9 -`, not starting or ending with `-`, at most
//! 253 characters in all. Upper case fails (node names must be lower case);
//! `localhost` warns (every fresh image is called that).

use super::{Def, Facts, Outcome, Status};

pub const DEF: Def = Def {
    id: "hostname",
    title: "Host name",
    run,
};

const REQUIRED: &str = "RFC 1123, lower case";

/// Why `name` is not a valid node name, or `None` when it is.
pub fn invalid(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("empty".into());
    }
    if name.len() > 253 {
        return Some(format!("{} characters, more than 253", name.len()));
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Some("contains upper case".into());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("has an empty label".into());
        }
        if label.len() > 63 {
            return Some(format!("label of {} characters, more than 63", label.len()));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Some(format!("contains {c:?}"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some("a label starts or ends with '-'".into());
        }
    }
    None
}

fn run(f: &Facts) -> Outcome {
    let Some(name) = f.kernel.hostname.as_deref() else {
        return Outcome::new(Status::Skip, "unknown", REQUIRED)
            .hint("/proc/sys/kernel/hostname is missing under the root");
    };
    let shown: String = name.chars().take(40).collect();
    if let Some(why) = invalid(name) {
        return Outcome::new(Status::Fail, shown, REQUIRED).hint(format!(
            "the host name {why}; set a valid one (hostnamectl set-hostname edge-01)"
        ));
    }
    if name == "localhost" || name.starts_with("localhost.") {
        return Outcome::new(Status::Warn, shown, REQUIRED)
            .hint("every node needs a unique name; set one (hostnamectl set-hostname edge-01)");
    }
    Outcome::new(Status::Pass, shown, REQUIRED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::facts;

    #[test]
    fn hostname_verdicts() {
        let long_label = "a".repeat(64);
        let max_label = "a".repeat(63);
        let long_name = vec!["a".repeat(60); 5].join(".");
        let cases: &[(Option<&str>, Status)] = &[
            (Some("edge-01"), Status::Pass),
            (Some("edge-01.site.example"), Status::Pass),
            (Some(&max_label), Status::Pass),
            (Some(&long_label), Status::Fail),
            (Some(&long_name), Status::Fail),
            (Some("Edge-01"), Status::Fail),
            (Some("edge_01"), Status::Fail),
            (Some("-edge"), Status::Fail),
            (Some("edge-"), Status::Fail),
            (Some("edge..x"), Status::Fail),
            (Some("édge"), Status::Fail),
            (Some("localhost"), Status::Warn),
            (Some("localhost.localdomain"), Status::Warn),
            (None, Status::Skip),
        ];
        for (name, want) in cases {
            let mut f = facts();
            f.kernel.hostname = name.map(String::from);
            assert_eq!(run(&f).status, *want, "hostname {name:?}");
        }
    }
}
