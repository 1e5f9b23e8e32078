//! `workspaces`: the Workspaces API from a shell. docs/cli.md has every command and the exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

mod api;
mod config;
mod error;
mod token;
mod transfer;

use api::{segment, Api, Ui};
use error::{Failure, Result};
use transfer::{ExportOpts, Exported, ImportOpts, Source, DEFAULT_INLINE_MAX};

#[derive(Parser, Debug)]
#[command(
    name = "workspaces",
    version,
    about = "The Workspaces API from a shell: tokens, list/show, export/import/copy, jobs."
)]
#[command(after_help = "Connection: --url/--token, else WORKSPACES_URL/WORKSPACES_TOKEN, else the config file \
($WORKSPACES_CONFIG or ~/.config/workspaces/config.toml, keys `url` and `token`).\n\
Exit codes: 0 ok, 1 local file error, 2 usage, 3 auth (401/403), 4 not found (404), 5 conflict (409/412, cancelled job), \
6 invalid (400/413/422), 7 server or network (5xx, connection, incomplete transfer).")]
struct Cli {
    /// The API base URL, up to and including /api/v1 (e.g. http://127.0.0.1:9000/jarvispy/my-org/my-user/api/v1).
    #[arg(long, global = true, value_name = "URL")]
    url: Option<String>,
    /// The bearer token.
    #[arg(long, global = true, value_name = "TOKEN")]
    token: Option<String>,
    /// Print a machine-readable result (JSON) on stdout, also for failures.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// What an export takes, for `export` and `copy` alike.
#[derive(clap::Args, Debug)]
struct ExportFlags {
    /// The workspace's scope (user or organization; the API's default is user).
    #[arg(long)]
    scope: Option<String>,
    /// Include secret values (otherwise they are redacted).
    #[arg(long)]
    include_secrets: bool,
    /// Run it as a job from the start (otherwise only when the workspace is too large for one
    /// request; for `copy`, the import there too).
    #[arg(long = "async")]
    run_async: bool,
}

impl From<ExportFlags> for ExportOpts {
    fn from(f: ExportFlags) -> Self {
        ExportOpts { scope: f.scope, include_secrets: f.include_secrets, run_async: f.run_async }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a dev HS256 token for ORG/USER (the secret the API verifies with: --secret or WORKSPACES_JWT_SECRET).
    Token {
        #[arg(long)]
        org: String,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "user")]
        role: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600, allow_negative_numbers = true)]
        ttl: i64,
        #[arg(long)]
        secret: Option<String>,
    },
    /// List the workspaces (newest update first).
    List {
        /// Comma-separated scopes (user, organization); the API's default is user.
        #[arg(long)]
        scopes: Option<String>,
    },
    /// Show one workspace (load).
    Show {
        workspace_id: String,
        #[arg(long)]
        scope: Option<String>,
    },
    /// Export a workspace to a bundle file (inline, staged or by a job), verified by size and sha256.
    Export {
        workspace_id: String,
        /// The bundle file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        #[command(flatten)]
        export: ExportFlags,
    },
    /// Import a bundle file into a workspace (inline when small, else uploaded and imported by a job).
    Import {
        file: PathBuf,
        /// The workspace to import into.
        #[arg(long, value_name = "WORKSPACE_ID")]
        into: String,
        #[arg(long)]
        scope: Option<String>,
        #[arg(long)]
        force_new_id: bool,
        /// Import as a job even when the bundle is small.
        #[arg(long = "async")]
        run_async: bool,
        /// Bundles larger than this many bytes are uploaded first.
        #[arg(long, default_value_t = DEFAULT_INLINE_MAX, value_name = "BYTES")]
        inline_max: u64,
    },
    /// Copy a workspace to another API (export here, import there), streamed without a temp file.
    Copy {
        workspace_id: String,
        /// The other API's base URL (up to and including /api/v1).
        #[arg(long, value_name = "URL")]
        to_url: String,
        /// The other API's token (default: the source token).
        #[arg(long, value_name = "TOKEN")]
        to_token: Option<String>,
        /// The workspace id there (default: the same id).
        #[arg(long, value_name = "WORKSPACE_ID")]
        into: Option<String>,
        #[command(flatten)]
        export: ExportFlags,
        /// Bundles larger than this many bytes are uploaded there first (in parts).
        #[arg(long, default_value_t = DEFAULT_INLINE_MAX, value_name = "BYTES")]
        inline_max: u64,
    },
    /// List your jobs, or show one (--wait follows it to the end, --cancel cancels it).
    Jobs {
        job_id: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long, requires = "job_id")]
        wait: bool,
        #[arg(long, requires = "job_id", conflicts_with = "wait")]
        cancel: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let json_out = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("workspaces: {f}");
            if json_out {
                println!("{}", api::failure_json(&f));
            }
            ExitCode::from(f.kind.code())
        }
    }
}

/// What a command prints: the human form, or its JSON with `--json`.
struct Out {
    json: bool,
}

impl Out {
    fn print(&self, value: &Value, human: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            let text = human();
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let out = Out { json: cli.json };
    let ui = Ui::new(std::io::stderr().is_terminal());
    let connect = || config::resolve(cli.url.clone(), cli.token.clone()).map(|c| Api::new(&c));
    match cli.command {
        Command::Token { org, user, role, ttl, secret } => {
            let secret = secret
                .or_else(|| std::env::var("WORKSPACES_JWT_SECRET").ok())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    Failure::usage(
                        "no secret: pass --secret or set WORKSPACES_JWT_SECRET (the value the API verifies with)",
                    )
                })?;
            let token = token::mint(&secret, &org, &user, &role, ttl)?;
            out.print(&json!({"token": token, "org": org, "user": user, "role": role, "ttl": ttl}), || token.clone());
        }
        Command::List { scopes } => {
            let api = connect()?;
            let items = list(&api, scopes.as_deref())?;
            out.print(&Value::Array(items.clone()), || table(&items));
        }
        Command::Show { workspace_id, scope } => {
            let api = connect()?;
            let query = scope.map(|s| format!("?scope={}", segment(&s))).unwrap_or_default();
            let answer = api.get(&format!("/workspaces/{}/load{query}", segment(&workspace_id)))?.ok()?;
            let data = answer.data().clone();
            out.print(&data, || serde_json::to_string_pretty(&data).unwrap_or_default());
        }
        Command::Export { workspace_id, output, export } => {
            let api = connect()?;
            let opts = ExportOpts::from(export);
            let export = transfer::start_export(&api, &ui, &workspace_id, &opts)?;
            let saved = transfer::save(&api, &ui, &export.bundle, &output)?;
            let staged = matches!(export.bundle, Exported::Staged { .. });
            let result = json!({
                "workspace_id": workspace_id, "file": output, "bytes": saved.bytes, "sha256": saved.sha256,
                "staged": staged, "job_id": export.job_id, "message": export.message, "seconds": saved.seconds,
            });
            out.print(&result, || {
                format!(
                    "exported {workspace_id} to {} ({} bytes, sha256 {}{})",
                    output.display(),
                    saved.bytes,
                    saved.sha256,
                    if staged { ", staged and verified" } else { "" }
                )
            });
        }
        Command::Import { file, into, scope, force_new_id, run_async, inline_max } => {
            let api = connect()?;
            let opts = ImportOpts { scope, force_new_id, run_async, inline_max };
            let imported = transfer::import(&api, &ui, Source::File(&file), &into, &opts)?;
            let result = json!({
                "workspace_id": into, "file": file, "bytes": imported.bytes, "via": imported.via,
                "bundle_id": imported.bundle_id, "job_id": imported.job_id, "result": imported.result,
                "message": imported.message, "seconds": imported.seconds, "upload_seconds": imported.upload_seconds,
                "parts": imported.parts,
            });
            out.print(&result, || format!("{} into {into}: {}", file.display(), imported.message));
        }
        Command::Copy { workspace_id, to_url, to_token, into, export, inline_max } => {
            let from = config::resolve(cli.url.clone(), cli.token.clone())?;
            let api = Api::new(&from);
            // The destination: its own URL, and its own token or else the source's (same secret).
            let to = config::Conn {
                url: to_url.trim().trim_end_matches('/').to_owned(),
                token: to_token.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| from.token.clone()),
            };
            let dst = Api::new(&to);
            let into = into.unwrap_or_else(|| workspace_id.clone());
            let opts = ExportOpts::from(export);
            let (scope, run_async) = (opts.scope.clone(), opts.run_async);
            let export = transfer::start_export(&api, &ui, &workspace_id, &opts)?;
            let source = match export.bundle {
                Exported::Inline { data } => {
                    Source::Bytes(serde_json::to_vec(&data).map_err(|e| Failure::local(e.to_string()))?)
                }
                Exported::Staged { url, size, sha256 } => Source::Link { url, size, sha256, agent: &api.agent },
            };
            let opts = ImportOpts { scope, force_new_id: false, run_async, inline_max };
            let imported = transfer::import(&dst, &ui, source, &into, &opts)?;
            let result = json!({
                "workspace_id": workspace_id, "into": into, "to_url": to.url, "bytes": imported.bytes,
                "via": imported.via, "export_job_id": export.job_id, "import_job_id": imported.job_id,
                "result": imported.result, "message": imported.message, "seconds": imported.seconds,
                "upload_seconds": imported.upload_seconds,
                "parts": imported.parts,
            });
            out.print(&result, || {
                format!(
                    "copied {workspace_id} to {into} at {} ({} bytes): {}",
                    to.url, imported.bytes, imported.message
                )
            });
        }
        Command::Jobs { job_id, limit, wait, cancel } => {
            let api = connect()?;
            match job_id {
                None => {
                    let query = limit.map(|l| format!("?limit={l}")).unwrap_or_default();
                    let answer = api.get(&format!("/workspaces/jobs{query}"))?.ok()?;
                    let jobs = answer.data().as_array().cloned().unwrap_or_default();
                    let more = answer.body.get("next_token").is_some();
                    out.print(&Value::Array(jobs.clone()), || {
                        let mut text = jobs_table(&jobs);
                        if more {
                            text.push_str("\n(more jobs follow: pass a larger --limit, at most 1000)");
                        }
                        text
                    });
                }
                Some(id) => {
                    let job = if cancel {
                        api.post(&format!("/workspaces/jobs/{}/cancel", segment(&id)), &json!({}))?.ok()?.data().clone()
                    } else if wait {
                        api.wait_job(&id, &ui, "")?
                    } else {
                        api.job(&id)?
                    };
                    out.print(&job, || serde_json::to_string_pretty(&job).unwrap_or_default());
                }
            }
        }
    }
    Ok(())
}

/// Every page of the workspace list (each page is a small envelope).
fn list(api: &Api, scopes: Option<&str>) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut query = Vec::new();
        if let Some(s) = scopes {
            query.push(format!("scopes={}", segment(s)));
        }
        if let Some(t) = &next {
            query.push(format!("next_token={}", segment(t)));
        }
        let q = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
        let answer = api.get(&format!("/workspaces/list{q}"))?.ok()?;
        items.extend(answer.data().as_array().cloned().unwrap_or_default());
        match answer.body.get("next_token").and_then(Value::as_str) {
            Some(t) if next.as_deref() != Some(t) => next = Some(t.to_owned()),
            _ => return Ok(items),
        }
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn table(items: &[Value]) -> String {
    let mut lines = vec![format!("{:<28} {:<12} {:<30} {}", "ID", "SCOPE", "UPDATED", "NAME")];
    for w in items {
        lines.push(format!(
            "{:<28} {:<12} {:<30} {}",
            cell(&w["id"]),
            cell(&w["scope"]),
            cell(&w["updated_at"]),
            cell(&w["name"])
        ));
    }
    lines.join("\n")
}

fn jobs_table(jobs: &[Value]) -> String {
    let mut lines =
        vec![format!("{:<28} {:<7} {:<10} {:<24} {:<17} {}", "JOB", "KIND", "STATE", "WORKSPACE", "ROWS", "UPDATED")];
    for j in jobs {
        let rows = &j["progress"]["rows"];
        let rows = format!("{}/{}", rows["done"].as_u64().unwrap_or(0), rows["total"].as_u64().unwrap_or(0));
        lines.push(format!(
            "{:<28} {:<7} {:<10} {:<24} {:<17} {}",
            cell(&j["job_id"]),
            cell(&j["kind"]),
            cell(&j["state"]),
            cell(&j["workspace_id"]),
            rows,
            cell(&j["updated_at"])
        ));
    }
    lines.join("\n")
}
