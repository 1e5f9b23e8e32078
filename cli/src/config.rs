//! Where the API and the token come from: flags, else the environment, else a config file.

use std::path::PathBuf;

use crate::error::{Failure, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// Up to and including `/api/v1`, no trailing slash.
    pub url: String,
    pub token: String,
}

/// `--url`/`--token`, else `WORKSPACES_URL`/`WORKSPACES_TOKEN`, else the config file
/// (`$WORKSPACES_CONFIG`, else `~/.config/workspaces/config.toml`), each key on its own.
pub fn resolve(url: Option<String>, token: Option<String>) -> Result<Conn> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let mut url = url.or_else(|| env("WORKSPACES_URL"));
    let mut token = token.or_else(|| env("WORKSPACES_TOKEN"));
    if url.is_none() || token.is_none() {
        if let Some((path, required)) = config_path() {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let file = parse(&text);
                    url = url.or(file.url);
                    token = token.or(file.token);
                }
                Err(e) if required || e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Failure::usage(format!("config file {}: {e}", path.display())));
                }
                Err(_) => {}
            }
        }
    }
    let missing = |what: &str, flag: &str, var: &str| {
        Failure::usage(format!(
            "no {what}: pass {flag}, set {var}, or put `{}` in the config file ($WORKSPACES_CONFIG or \
             ~/.config/workspaces/config.toml)",
            flag.trim_start_matches('-')
        ))
    };
    let url = url.ok_or_else(|| missing("API URL", "--url", "WORKSPACES_URL"))?;
    let token = token.ok_or_else(|| missing("token", "--token", "WORKSPACES_TOKEN"))?;
    let url = url.trim().trim_end_matches('/').to_owned();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Failure::usage(format!("the API URL '{url}' is not http:// or https://")));
    }
    Ok(Conn { url, token: token.trim().to_owned() })
}

/// The file to read, and whether it must exist (named by `WORKSPACES_CONFIG`).
fn config_path() -> Option<(PathBuf, bool)> {
    if let Some(path) = std::env::var_os("WORKSPACES_CONFIG").filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(path), true));
    }
    let home = std::env::var_os("HOME").filter(|p| !p.is_empty())?;
    Some((PathBuf::from(home).join(".config/workspaces/config.toml"), false))
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct File {
    pub url: Option<String>,
    pub token: Option<String>,
}

/// `key = "value"` lines (TOML's basic strings without escapes, or bare words); comments,
/// sections and other keys are ignored.
pub fn parse(text: &str) -> File {
    let mut file = File::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let value = value.trim();
        let value = match value.strip_prefix('"').and_then(|v| v.split_once('"')) {
            Some((quoted, _)) => quoted.to_owned(),
            None => match value.strip_prefix('\'').and_then(|v| v.split_once('\'')) {
                Some((quoted, _)) => quoted.to_owned(),
                None => value.split('#').next().unwrap_or_default().trim().to_owned(),
            },
        };
        if value.is_empty() {
            continue;
        }
        match key.trim() {
            "url" => file.url = Some(value),
            "token" => file.token = Some(value),
            _ => {}
        }
    }
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_and_bare_values() {
        let f = parse("# mine\n[default]\nurl = \"http://h/api/v1\" # here\ntoken='abc'\nother = 1\n");
        assert_eq!(f, File { url: Some("http://h/api/v1".into()), token: Some("abc".into()) });
        assert_eq!(parse("url = http://x # c\ntoken =\n"), File { url: Some("http://x".into()), token: None });
    }
}
