//! Scenario files: a TOML file naming the scenario, its flags, the common options and the
//! thresholds, turned into the command line it stands for (so a file is checked exactly as
//! flags are, and flags given after it override it).
//!
//! ```toml
//! scenario = "mixed"
//! [options]                    # common options, named as the flags without `--`
//! url = ["ws://127.0.0.1:8001/ws", "ws://127.0.0.1:8002/ws"]
//! drain = "20s"
//! [mixed]                      # the scenario's flags
//! users = 2000
//! private_weight = 80
//! group_weight = 20
//! [thresholds]
//! max_p99 = "50ms"
//! max_lost = 0
//! ```

use std::ffi::OsString;
use std::path::Path;
use toml::de::{DeTable, DeValue};

/// Sections a scenario file may have besides the scenario's own.
const SECTIONS: [&str; 2] = ["options", "thresholds"];
/// Scenarios a file may name.
const SCENARIOS: [&str; 5] = ["connect", "private", "group", "mixed", "storm"];

/// The command line (without the program name) that the file at `path` stands for: the
/// scenario, its flags, then the options and thresholds (global flags).
pub fn args(path: &Path) -> Result<Vec<OsString>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    to_args(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn to_args(text: &str) -> Result<Vec<OsString>, String> {
    let table = DeTable::parse(text)
        .map_err(|e| e.to_string())?
        .into_inner();
    let mut scenario = None;
    let mut sections = Vec::new();
    for (key, value) in table {
        let key = key.into_inner();
        match (key.as_ref(), value.into_inner()) {
            ("scenario", DeValue::String(name)) => scenario = Some(name.into_owned()),
            ("scenario", _) => return Err("`scenario` is the scenario's name, a string".into()),
            (name, DeValue::Table(flags)) => sections.push((name.to_string(), flags)),
            (name, _) => {
                return Err(format!(
                    "`{name}` is not a setting of a scenario file: it has `scenario = \"…\"` \
                     and the sections [options], [thresholds] and [<scenario>]"
                ));
            }
        }
    }
    let scenario =
        scenario.ok_or("no `scenario = \"…\"` (connect, private, group, mixed, storm)")?;
    if !SCENARIOS.contains(&scenario.as_str()) {
        return Err(format!(
            "unknown scenario `{scenario}` (connect, private, group, mixed, storm)"
        ));
    }
    let mut own = Vec::new();
    let mut global = Vec::new();
    for (name, flags) in sections {
        let out = if name == scenario {
            &mut own
        } else if SECTIONS.contains(&name.as_str()) {
            &mut global
        } else {
            return Err(format!(
                "section [{name}] is neither [options], [thresholds] nor [{scenario}]"
            ));
        };
        for (key, value) in flags {
            let flag = format!("--{}", key.into_inner().replace('_', "-"));
            push(out, &flag, value.into_inner())?;
        }
    }
    let mut args = vec![OsString::from(scenario)];
    args.extend(own);
    args.extend(global);
    Ok(args)
}

fn push(out: &mut Vec<OsString>, flag: &str, value: DeValue<'_>) -> Result<(), String> {
    let text = match value {
        DeValue::String(s) => s.into_owned(),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map_err(|e| format!("{flag}: {e}"))?
            .to_string(),
        DeValue::Float(f) => f.as_str().to_string(),
        DeValue::Boolean(true) => {
            out.push(flag.into());
            return Ok(());
        }
        DeValue::Boolean(false) => return Ok(()),
        DeValue::Array(items) => {
            for item in items {
                push(out, flag, item.into_inner())?;
            }
            return Ok(());
        }
        DeValue::Table(_) | DeValue::Datetime(_) => {
            return Err(format!(
                "{flag}: a string, number, boolean or array of them"
            ));
        }
    };
    out.push(flag.into());
    out.push(text.into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn a_file_becomes_its_command_line() {
        let args = to_args(
            r#"
            scenario = "private"
            [options]
            url = ["ws://a/ws", "ws://b/ws"]
            quiet = true
            no_mark_read = false
            [private]
            pairs = 1_000
            rate = 2500.5
            duration = "30s"
            [thresholds]
            max_p99 = "50ms"
            max_lost = 0
            "#,
        )
        .unwrap();
        assert_eq!(
            strings(args),
            // The scenario's flags first, then the global ones; keys in order of name.
            [
                "private",
                "--duration",
                "30s",
                "--pairs",
                "1000",
                "--rate",
                "2500.5",
                "--quiet",
                "--url",
                "ws://a/ws",
                "--url",
                "ws://b/ws",
                "--max-lost",
                "0",
                "--max-p99",
                "50ms"
            ]
        );
    }

    #[test]
    fn mistakes_are_named() {
        let err = |text: &str| to_args(text).unwrap_err();
        assert!(err("[private]\npairs = 1").contains("no `scenario"));
        assert!(err("scenario = \"gossip\"").contains("gossip"));
        assert!(err("scenario = \"private\"\n[group]\nmembers = 2").contains("[group]"));
        assert!(err("scenario = \"private\"\nrate = 2").contains("`rate`"));
        assert!(err("scenario = \"private\"\n[private]\nx = {a = 1}").contains("--x"));
        assert!(!err("scenario = ").is_empty());
    }
}
