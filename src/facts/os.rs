//! The operating system from `/etc/os-release` (falling back to
//! `/usr/lib/os-release`, as os-release(5) says), parsed as the shell-like
//! `KEY=value` format with single quotes, double quotes and backslash escapes.

use crate::sys::Root;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    pub id_like: Vec<String>,
    pub version_id: String,
    pub pretty_name: String,
    pub name: String,
}

/// Unquote one os-release value. Returns `None` for an unterminated quote.
pub fn unquote(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => match chars.next()? {
                        e @ ('"' | '\\' | '$' | '`') => out.push(e),
                        '\n' => {}
                        other => {
                            out.push('\\');
                            out.push(other);
                        }
                    },
                    other => out.push(other),
                }
            },
            '\'' => loop {
                match chars.next()? {
                    '\'' => break,
                    other => out.push(other),
                }
            },
            '\\' => {
                if let Some(e) = chars.next() {
                    out.push(e);
                }
            }
            '#' if out.is_empty() => break,
            c if c.is_whitespace() => break,
            other => out.push(other),
        }
    }
    Some(out)
}

/// Parse os-release text. Unknown keys, comments and malformed lines are skipped.
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut os = OsRelease::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let Some(v) = unquote(v) else { continue };
        match k.trim() {
            "ID" => os.id = v.to_ascii_lowercase(),
            "ID_LIKE" => {
                os.id_like = v
                    .split_whitespace()
                    .map(|s| s.to_ascii_lowercase())
                    .collect()
            }
            "VERSION_ID" => os.version_id = v,
            "PRETTY_NAME" => os.pretty_name = v,
            "NAME" => os.name = v,
            _ => {}
        }
    }
    if os.id.is_empty() {
        // os-release(5): ID defaults to "linux".
        os.id = "linux".to_string();
    }
    if os.pretty_name.is_empty() {
        os.pretty_name = if os.name.is_empty() {
            "Linux".to_string()
        } else {
            os.name.clone()
        };
    }
    os
}

/// Read os-release under the root; `Err` names the files tried.
pub fn read(root: &Root) -> Result<OsRelease, String> {
    for p in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Ok(text) = root.read(p) {
            return Ok(parse_os_release(&text));
        }
    }
    Err("/etc/os-release and /usr/lib/os-release unreadable".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        let cases: &[(&str, Option<&str>)] = &[
            ("debian", Some("debian")),
            ("\"Debian GNU/Linux 12 (bookworm)\"", Some("Debian GNU/Linux 12 (bookworm)")),
            ("'Rocky Linux 8.10 (Green Obsidian)'", Some("Rocky Linux 8.10 (Green Obsidian)")),
            ("\"a \\\"quoted\\\" word\"", Some("a \"quoted\" word")),
            ("\"dollar \\$HOME\"", Some("dollar $HOME")),
            ("\"unterminated", None),
            ("'unterminated", None),
            ("\"22.04\"  # comment", Some("22.04")),
            ("plain\\ space", Some("plain space")),
            ("", Some("")),
        ];
        for (input, want) in cases {
            assert_eq!(unquote(input).as_deref(), *want, "input {input:?}");
        }
    }

    #[test]
    fn os_release_files() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";
        let os = parse_os_release(debian);
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_id, "12");
        assert_eq!(os.pretty_name, "Debian GNU/Linux 12 (bookworm)");

        let rocky = "NAME='Rocky Linux'\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID='8.10'\n";
        let os = parse_os_release(rocky);
        assert_eq!(os.id, "rocky");
        assert_eq!(os.id_like, ["rhel", "centos", "fedora"]);
        assert_eq!(os.version_id, "8.10");
        assert_eq!(os.pretty_name, "Rocky Linux");

        let odd = "garbage line\nID=\"broken\nVERSION_ID=1\n\0\0";
        let os = parse_os_release(odd);
        assert_eq!(os.id, "linux", "unterminated ID is skipped, default applies");
        assert_eq!(os.version_id, "1");
        assert_eq!(os.pretty_name, "Linux");
    }
}
