//! `mint-token --org acme --user ann [--role admin] [--ttl 3600] [--secret S]`
//!
//! Prints an HS256 bearer token shaped like the platform's, for local use and tests. The secret
//! defaults to `WORKSPACES_JWT_SECRET`. Arguments are parsed by hand: four flags do not need clap.

use std::process::ExitCode;

const USAGE: &str = "usage: mint-token --org ORG --user USER [--role ROLE] [--ttl SECONDS] [--secret SECRET]

Prints an HS256 JWT for ORG/USER signed with SECRET (default: $WORKSPACES_JWT_SECRET).
  --role    role claim (default: user)
  --ttl     lifetime in seconds (default: 3600)";

#[derive(Debug, PartialEq)]
struct Args {
    org: String,
    user: String,
    role: String,
    ttl: i64,
    secret: Option<String>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut org, mut user, mut role, mut ttl, mut secret) = (None, None, None, None, None);
    while let Some(arg) = argv.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let slot = match flag.as_str() {
            "--org" => &mut org,
            "--user" => &mut user,
            "--role" => &mut role,
            "--ttl" => &mut ttl,
            "--secret" => &mut secret,
            other => return Err(format!("unknown argument '{other}'")),
        };
        let value = match inline {
            Some(v) => v,
            None => argv.next().ok_or_else(|| format!("{flag} needs a value"))?,
        };
        *slot = Some(value);
    }
    let nonempty = |v: Option<String>, name: &str| {
        v.filter(|s| !s.trim().is_empty()).ok_or_else(|| format!("--{name} is required"))
    };
    let ttl = match ttl {
        None => 3600,
        Some(t) => t
            .parse::<i64>()
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| format!("--ttl '{t}' is not a positive number of seconds"))?,
    };
    Ok(Some(Args {
        org: nonempty(org, "org")?,
        user: nonempty(user, "user")?,
        role: role.unwrap_or_else(|| "user".into()),
        ttl,
        secret,
    }))
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mint-token: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let secret = args.secret.or_else(|| std::env::var("WORKSPACES_JWT_SECRET").ok()).filter(|s| !s.is_empty());
    let Some(secret) = secret else {
        eprintln!(
            "mint-token: no secret: pass --secret or set WORKSPACES_JWT_SECRET (the value the API verifies with)"
        );
        return ExitCode::from(2);
    };
    match shared::auth::mint_hs256(&secret, &args.org, &args.user, &args.role, args.ttl) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mint-token: could not sign the token: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<Args>, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_flags_and_defaults() {
        let a = p(&["--org", "acme", "--user=ann", "--ttl", "60"]).unwrap().unwrap();
        assert_eq!(a, Args { org: "acme".into(), user: "ann".into(), role: "user".into(), ttl: 60, secret: None });
        assert!(p(&["--help"]).unwrap().is_none());
    }

    #[test]
    fn rejects_missing_or_bad_values() {
        assert!(p(&["--org", "acme"]).unwrap_err().contains("--user"));
        assert!(p(&["--org"]).unwrap_err().contains("needs a value"));
        assert!(p(&["--org", "a", "--user", "b", "--ttl", "-5"]).is_err());
        assert!(p(&["--bogus", "x"]).is_err());
    }
}
