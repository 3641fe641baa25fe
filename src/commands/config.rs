//! `outpost config validate|show`: load the configuration, print every
//! problem (exit 3) or the effective values with their sources. Secrets are
//! printed only redacted; warnings go to stderr, the report to stdout.

use crate::cli::{ConfigAction, ConfigArgs, ConfigSource};
use crate::config::values_api::Shown;
use crate::config::{self, Loaded, Options, Source};
use crate::error::{Code, Result};

/// Load through the command's `--root`, `--config` and `--set`.
pub fn load(src: &ConfigSource, require_file: bool) -> Result<Loaded> {
    let file = match (&src.file, require_file) {
        (Some(f), _) => Some(f.clone()),
        (None, true) => Some(src.root.path(config::DEFAULT_CONFIG)),
        (None, false) => None,
    };
    config::load(&Options::new(&src.root, file, src.sets.clone()))
}

pub fn run(args: ConfigArgs) -> Result<Code> {
    match args.action {
        ConfigAction::Validate { strict } => validate(&args.src, strict),
        ConfigAction::Show { json } => show(&args.src, json),
    }
}

fn print_warnings(l: &Loaded) {
    for w in &l.warnings {
        super::warning(w);
    }
}

fn validate(src: &ConfigSource, strict: bool) -> Result<Code> {
    let l = load(src, true)?;
    let file = l.config.file.display().to_string();
    // --strict: every warning counts as a problem (CI pipelines).
    let mut problems: Vec<&String> = Vec::new();
    if strict {
        problems.extend(l.warnings.iter());
    } else {
        print_warnings(&l);
    }
    problems.extend(l.problems.iter().chain(l.incomplete.iter()));
    if problems.is_empty() {
        super::print(&format!(
            "{file}: valid ({} warning(s))\n",
            l.warnings.len()
        ))?;
        return Ok(Code::Ok);
    }
    for p in &problems {
        eprintln!("error: {p}");
    }
    eprintln!("{file}: {} problem(s); nothing was changed", problems.len());
    Ok(Code::Config)
}

fn show(src: &ConfigSource, json: bool) -> Result<Code> {
    let l = load(src, false)?;
    print_warnings(&l);
    for i in &l.incomplete {
        super::warning(i);
    }
    if !l.problems.is_empty() {
        for p in &l.problems {
            eprintln!("error: {p}");
        }
        eprintln!(
            "{}: {} problem(s)",
            l.config.file.display(),
            l.problems.len()
        );
        return Ok(Code::Config);
    }
    let c = &l.config;
    let entries = c.entries();
    if json {
        return super::print(&(to_json(&l, &entries) + "\n"));
    }
    let state = if c.file_read {
        "read"
    } else {
        "not found, defaults used"
    };
    let mut out = format!("config file: {} ({state})\n", c.file.display());
    let kw = entries.iter().map(|e| e.key.len()).max().unwrap_or(0);
    let values: Vec<String> = entries.iter().map(|e| e.value.text()).collect();
    let vw = values
        .iter()
        .map(|v| v.chars().count())
        .max()
        .unwrap_or(0)
        .min(48);
    for (e, v) in entries.iter().zip(&values) {
        let pad = vw.saturating_sub(v.chars().count());
        out.push_str(&format!(
            "{:<kw$}  {v}{}  {}\n",
            e.key,
            " ".repeat(pad),
            e.source.text()
        ));
    }
    for i in &c.ignored {
        out.push_str(&format!("{i:<kw$}  (ignored by outpost)\n"));
    }
    super::print(&out)
}

/// `config show --json` as text, and the state directory in force (for
/// `bundle`). Problems in the config are an error.
pub fn show_json(src: &ConfigSource) -> Result<(String, String)> {
    let l = load(src, false)?;
    if let Some(p) = l.problems.first() {
        return Err(crate::error::Error::config(format!(
            "{}: {p}",
            l.config.file.display()
        )));
    }
    let entries = l.config.entries();
    Ok((to_json(&l, &entries), l.config.state_dir.value.clone()))
}

fn to_json(l: &Loaded, entries: &[crate::config::values_api::Entry]) -> String {
    use miniserde::json::{Array, Number, Object, Value};
    let s = |t: &str| Value::String(t.to_string());
    let mut keys = Array::new();
    for e in entries {
        let mut o = Object::new();
        o.insert("key".into(), s(e.key));
        let v = match &e.value {
            Shown::Unset => Value::Null,
            Shown::Text(t) => s(t),
            Shown::Bool(b) => Value::Bool(*b),
            Shown::Num(n) => Value::Number(Number::U64(*n)),
            Shown::List(v) => Value::Array(v.iter().map(|x| s(x)).collect()),
        };
        o.insert("value".into(), v);
        let src = match &e.source {
            Source::Default => "default",
            Source::Env(_) => "env",
            Source::File => "file",
            Source::Flag => "flag",
        };
        o.insert("source".into(), s(src));
        if let Source::Env(var) = &e.source {
            o.insert("env".into(), s(var));
        }
        keys.push(Value::Object(o));
    }
    let mut root = Object::new();
    root.insert("schema".into(), s("outpost.config/v1"));
    root.insert("file".into(), s(&l.config.file.display().to_string()));
    root.insert("file_read".into(), Value::Bool(l.config.file_read));
    root.insert("keys".into(), Value::Array(keys));
    root.insert(
        "ignored".into(),
        Value::Array(l.config.ignored.iter().map(|x| s(x)).collect()),
    );
    root.insert(
        "warnings".into(),
        Value::Array(
            l.warnings
                .iter()
                .chain(l.incomplete.iter())
                .map(|x| s(x))
                .collect(),
        ),
    );
    miniserde::json::to_string(&Value::Object(root))
}
