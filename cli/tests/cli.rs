//! The `workspaces` binary against the API served over real HTTP (`blackbox_tests::http_server`),
//! on both backends (SQLite + folder; DynamoDB + S3 + SQS when a local moto is configured): tokens,
//! list/show, export/import round trips (inline, staged, upload + job), copy between two servers,
//! jobs, exit codes, `--json`, and progress bars only on a terminal.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use blackbox_tests::http_server::{serve, HttpServer};
use blackbox_tests::{facts_bundle, harness, Backend, Client, SECRET};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::routes::Endpoint;

const ORG: &str = "acme";
const USER: &str = "ann";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        &self.stdout
    }
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("{e}: {:?} / {:?}", self.stdout, self.stderr))
    }
}

/// Runs the binary with `args`, none of the caller's configuration and stderr a pipe.
async fn cli<S: AsRef<str>>(args: &[S]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.as_ref().to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_workspaces"))
            .args(&args)
            .env_remove("WORKSPACES_URL")
            .env_remove("WORKSPACES_TOKEN")
            .env_remove("WORKSPACES_CONFIG")
            .env_remove("WORKSPACES_JWT_SECRET")
            .env("HOME", "/nonexistent-home")
            .output()
            .expect("running workspaces");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .expect("the cli thread")
}

/// A dev token from the CLI itself, for the test kit's secret.
async fn token() -> String {
    let run = cli(&["token", "--org", ORG, "--user", USER, "--secret", SECRET]).await;
    run.ok().trim().to_owned()
}

/// A server on `backend` with `rows` rows of about 500 bytes in workspace `ws_1` (none when 0).
async fn server(backend: Backend, case: &str, env: &[(&str, &str)], rows: usize) -> Option<HttpServer> {
    let h = harness(backend, case, env).await?;
    if rows > 0 {
        let c = Client::new(&h.app, ORG, USER);
        let body = json!({"export_data": facts_bundle("ws_1", 0..rows, 500), "workspace_id": "ws_1"});
        c.post(Endpoint::ImportTables, "/workspaces/import-tables", body).await.ok();
    }
    Some(serve(h, true).await)
}

/// Every table's rows by table name (the workspace id in names made `WS`), each table's rows
/// sorted, the bookkeeping columns an import rewrites left out.
fn rows(bundle_file: &Path, ws: &str) -> BTreeMap<String, Vec<String>> {
    let bundle: Value = serde_json::from_slice(&std::fs::read(bundle_file).expect("the bundle file")).expect("JSON");
    let mut out = BTreeMap::new();
    let mut add = |tables: &Value| {
        for (name, table) in tables.as_object().into_iter().flatten() {
            let mut rows: Vec<String> = table["data"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    let mut r = r.clone();
                    if let Some(o) = r.as_object_mut() {
                        for k in ["version", "updated_at", "created_at", "workspace_id"] {
                            o.remove(k);
                        }
                    }
                    r.to_string()
                })
                .collect();
            rows.sort();
            out.insert(name.replace(ws, "WS"), rows);
        }
    };
    add(&bundle["tables"]);
    for project in bundle["projects"].as_object().into_iter().flatten().map(|(_, p)| p) {
        add(&project["tables"]);
    }
    assert!(out.values().map(Vec::len).sum::<usize>() > 0, "no rows in {}", bundle_file.display());
    out
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("the file")))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

async fn token_list_show_and_exit_codes(backend: Backend) {
    let Some(srv) = server(backend, "cli-basics", &[], 20).await else { return };
    let url = srv.api_url(ORG, USER);
    let tok = token().await;
    let conn = ["--url", url.as_str(), "--token", tok.as_str()];
    let with = |rest: &[&str]| -> Vec<String> { conn.iter().chain(rest).map(|s| s.to_string()).collect() };

    let minted = cli(&["token", "--org", ORG, "--user", USER, "--secret", SECRET, "--json"]).await.json();
    assert_eq!(minted["org"], ORG);
    assert!(minted["token"].as_str().is_some_and(|t| t.split('.').count() == 3));

    let list = cli(&with(&["list"])).await;
    assert!(list.ok().contains("ws_1"), "{}", list.stdout);
    assert_eq!(list.stderr, "", "a pipe gets no progress");
    let listed = cli(&with(&["list", "--json"])).await.json();
    assert!(listed.as_array().is_some_and(|l| l.iter().any(|w| w["id"] == "ws_1")), "{listed}");
    let shown = cli(&with(&["show", "ws_1", "--json"])).await.json();
    assert_eq!(shown["id"], "ws_1");

    // Exit codes: 4 missing, 3 bad token, 6 bad bundle, 2 usage; --json failures parse.
    let missing = cli(&with(&["show", "nope", "--json"])).await;
    assert_eq!(missing.code, 4, "{}", missing.stderr);
    assert_eq!(missing.json()["http_status"], 404);
    let bad = cli(&["--url", &url, "--token", "not-a-token", "list", "--json"]).await;
    assert_eq!(bad.code, 3, "{}", bad.stderr);
    let failure = bad.json();
    assert_eq!(failure["exit_code"], 3);
    assert!(failure["message"].as_str().is_some_and(|m| !m.is_empty()), "{failure}");
    let other = cli(&["token", "--org", "other", "--user", USER, "--secret", SECRET]).await.ok().trim().to_owned();
    assert_eq!(cli(&["--url", &url, "--token", &other, "list"]).await.code, 3, "a token for another path is 403");
    let dir = tempfile_dir();
    let junk = dir.join("junk.json");
    std::fs::write(&junk, br#"{"not": "a bundle"}"#).expect("writing");
    let invalid = cli(&with(&["import", s(&junk), "--into", "ws_1"])).await;
    assert_eq!(invalid.code, 6, "{}", invalid.stderr);
    assert!(invalid.stderr.contains("export_data"), "the server's message as it is: {}", invalid.stderr);
    assert_eq!(cli(&["list"]).await.code, 2, "no URL configured");
    assert_eq!(cli(&with(&["frobnicate"])).await.code, 2);
    let unreachable = cli(&["--url", "http://127.0.0.1:9/api/v1", "--token", &tok, "list"]).await;
    assert_eq!(unreachable.code, 7, "{}", unreachable.stderr);

    // The environment and a config file, in that order after the flags.
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, format!("url = \"{url}\"\ntoken = \"{tok}\"\n")).expect("writing");
    let via_file = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_workspaces"))
            .args(["show", "ws_1", "--json"])
            .env_remove("WORKSPACES_URL")
            .env_remove("WORKSPACES_TOKEN")
            .env("WORKSPACES_CONFIG", &cfg)
            .output()
            .expect("running")
    })
    .await
    .expect("thread");
    assert!(via_file.status.success(), "{}", String::from_utf8_lossy(&via_file.stderr));
}

fn tempfile_dir() -> std::path::PathBuf {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("workspaces-cli-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

async fn inline_round_trip(backend: Backend) {
    let Some(srv) = server(backend, "cli-inline", &[], 50).await else { return };
    let url = srv.api_url(ORG, USER);
    let tok = token().await;
    let dir = tempfile_dir();
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
    let conn = ["--url", url.as_str(), "--token", tok.as_str(), "--json"];
    let with = |rest: &[&str]| -> Vec<String> { conn.iter().chain(rest).map(|s| s.to_string()).collect() };

    let exported = cli(&with(&["export", "ws_1", "-o", s(&a)])).await.json();
    assert_eq!(exported["staged"], false, "{exported}");
    assert_eq!(exported["sha256"], sha256_of(&a));
    let imported = cli(&with(&["import", s(&a), "--into", "ws_2"])).await.json();
    assert_eq!(imported["via"], "inline", "{imported}");
    assert_eq!(imported["job_id"], Value::Null);
    cli(&with(&["export", "ws_2", "-o", s(&b)])).await.ok();
    assert_eq!(rows(&a, "ws_1"), rows(&b, "ws_2"));
}

/// Small limits force every large path: a staged export (and one the route refuses as too many
/// rows, so it runs as a job), a sync import refused (413) that goes upload + job, `--async`.
async fn staged_and_job_paths(backend: Backend) {
    let limits = [
        ("WORKSPACES_INLINE_LIMIT_BYTES", "20000"),
        ("WORKSPACES_SYNC_EXPORT_MAX_ROWS", "300"),
        ("WORKSPACES_SYNC_IMPORT_MAX_ROWS", "300"),
    ];
    let Some(srv) = server(backend, "cli-staged", &limits, 250).await else { return };
    let url = srv.api_url(ORG, USER);
    let tok = token().await;
    let dir = tempfile_dir();
    let conn = ["--url", url.as_str(), "--token", tok.as_str(), "--json"];
    let with = |rest: &[&str]| -> Vec<String> { conn.iter().chain(rest).map(|s| s.to_string()).collect() };
    let files: Vec<_> = ["staged", "job", "upload", "back"].iter().map(|n| dir.join(format!("{n}.json"))).collect();

    // Staged synchronously: downloaded and verified against the reported size and sha256.
    let staged = cli(&with(&["export", "ws_1", "-o", s(&files[0])])).await.json();
    assert_eq!(staged["staged"], true, "{staged}");
    assert_eq!(staged["job_id"], Value::Null);
    assert_eq!(staged["sha256"], sha256_of(&files[0]));
    assert_eq!(staged["bytes"], std::fs::metadata(&files[0]).expect("file").len());
    // As a job (--async).
    let by_job = cli(&with(&["export", "ws_1", "-o", s(&files[1]), "--async"])).await.json();
    let export_job = by_job["job_id"].as_str().expect("an export job").to_owned();
    assert_eq!(rows(&files[0], "ws_1"), rows(&files[1], "ws_1"));

    // Uploaded and imported by a job: forced by --inline-max, and by the route's 413.
    let uploaded = cli(&with(&["import", s(&files[0]), "--into", "ws_up", "--inline-max", "1000"])).await.json();
    assert_eq!(uploaded["via"], "upload", "{uploaded}");
    let import_job = uploaded["job_id"].as_str().expect("an import job").to_owned();
    assert!(uploaded["bundle_id"].as_str().is_some_and(|b| b.starts_with("bnd_")), "{uploaded}");
    // 350 rows: over the synchronous limit (300), so the route's 413 sends it up and to a job.
    let big = dir.join("big.json");
    std::fs::write(&big, serde_json::to_vec(&facts_bundle("ws_1", 0..350, 100)).expect("json")).expect("writing");
    let refused = cli(&with(&["import", s(&big), "--into", "ws_big"])).await.json();
    assert_eq!(refused["via"], "upload", "{refused}");
    assert!(refused["job_id"].as_str().is_some(), "{refused}");
    cli(&with(&["export", "ws_up", "-o", s(&files[2])])).await.ok();
    assert_eq!(rows(&files[0], "ws_1"), rows(&files[2], "ws_up"));

    // More rows than a synchronous export streams: the route's 413 becomes a job.
    let more = facts_bundle("ws_1", 1000..1100, 500);
    std::fs::write(&files[3], serde_json::to_vec(&more).expect("json")).expect("writing");
    cli(&with(&["import", s(&files[3]), "--into", "ws_1"])).await.ok();
    let auto = cli(&with(&["export", "ws_1", "-o", s(&files[3])])).await.json();
    assert!(auto["job_id"].as_str().is_some(), "350 rows > 300: by a job: {auto}");

    // Jobs: listed, and shown one by one.
    let jobs = cli(&with(&["jobs"])).await.json();
    let ids: Vec<&str> = jobs.as_array().expect("a list").iter().filter_map(|j| j["job_id"].as_str()).collect();
    assert!(ids.contains(&export_job.as_str()) && ids.contains(&import_job.as_str()), "{jobs}");
    let listed = |id: &str| jobs.as_array().into_iter().flatten().find(|j| j["job_id"] == id).cloned();
    assert_eq!(listed(&export_job).map(|j| j["workspace_id"].clone()), Some(json!("ws_1")), "{jobs}");
    assert_eq!(listed(&import_job).map(|j| j["workspace_id"].clone()), Some(json!("ws_up")), "{jobs}");
    let job = cli(&with(&["jobs", &import_job])).await.json();
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["kind"], "import");
    let human = cli(&["--url", &url, "--token", &tok, "jobs"]).await;
    assert!(human.ok().contains(&export_job), "{}", human.stdout);
    assert_eq!(cli(&with(&["jobs", "job_doesnotexist"])).await.code, 4);
}

/// `copy` between two servers (staged here: streamed from the link into the upload there; and
/// inline) ends with the same rows on both.
async fn copy_between_servers(backend: Backend) {
    let Some(src) = server(backend, "cli-copy-src", &[("WORKSPACES_INLINE_LIMIT_BYTES", "20000")], 200).await else {
        return;
    };
    let Some(dst) = server(backend, "cli-copy-dst", &[], 0).await else { return };
    let (from, to) = (src.api_url(ORG, USER), dst.api_url(ORG, USER));
    let tok = token().await;
    let dir = tempfile_dir();
    let (a, b) = (dir.join("src.json"), dir.join("dst.json"));

    let copied =
        cli(&["--url", &from, "--token", &tok, "--json", "copy", "ws_1", "--to-url", &to, "--to-token", &tok]).await;
    let copied = copied.json();
    assert_eq!(copied["via"], "upload", "a staged bundle is streamed into an upload: {copied}");
    assert!(copied["import_job_id"].as_str().is_some(), "{copied}");
    cli(&["--url", &from, "--token", &tok, "export", "ws_1", "-o", s(&a)]).await.ok();
    cli(&["--url", &to, "--token", &tok, "export", "ws_1", "-o", s(&b)]).await.ok();
    assert_eq!(rows(&a, "ws_1"), rows(&b, "ws_1"));

    // Small: inline both ways, into another id there.
    let small =
        cli(&["--url", &to, "--token", &tok, "--json", "copy", "ws_1", "--to-url", &from, "--into", "ws_back"]).await;
    assert_eq!(small.json()["via"], "inline", "{}", small.stdout);
    cli(&["--url", &from, "--token", &tok, "export", "ws_back", "-o", s(&a)]).await.ok();
    assert_eq!(rows(&a, "ws_back"), rows(&b, "ws_1"));
}

/// A bundle larger than a part (4 MiB on the folder, 8 MiB on S3) goes up in parts, one in
/// memory at a time, and imports like any other. Padded with whitespace: the same JSON, few rows.
async fn large_bundles_go_up_in_parts(backend: Backend) {
    let Some(srv) = server(backend, "cli-parts", &[], 0).await else { return };
    let url = srv.api_url(ORG, USER);
    let tok = token().await;
    let dir = tempfile_dir();
    let names = ["padded", "plain", "back", "plain-back"];
    let [file, plain, back, plain_back] = names.map(|n| dir.join(format!("{n}.json")));
    let mut bytes = serde_json::to_vec(&facts_bundle("ws_1", 0..50, 100)).expect("json");
    std::fs::write(&plain, &bytes).expect("writing");
    bytes.resize(17 * 1024 * 1024, b' ');
    std::fs::write(&file, &bytes).expect("writing");
    let run = cli(&["--url", &url, "--token", &tok, "--json", "import", s(&file), "--into", "ws_p"]).await.json();
    assert_eq!(run["via"], "upload", "{run}");
    assert!(run["parts"].as_u64().is_some_and(|n| n >= 3), "17 MiB in parts of at most 8 MiB: {run}");
    assert_eq!(run["bytes"], bytes.len());
    // The same rows as the bundle sent whole (inline).
    let whole = cli(&["--url", &url, "--token", &tok, "--json", "import", s(&plain), "--into", "ws_q"]).await.json();
    assert_eq!(whole["via"], "inline", "{whole}");
    cli(&["--url", &url, "--token", &tok, "export", "ws_p", "-o", s(&back)]).await.ok();
    cli(&["--url", &url, "--token", &tok, "export", "ws_q", "-o", s(&plain_back)]).await.ok();
    assert_eq!(rows(&back, "ws_p"), rows(&plain_back, "ws_q"));
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(blackbox_tests::Backend::Embedded).await })*
        }
        mod aws {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(blackbox_tests::Backend::Aws).await })*
        }
    };
}

on_both_backends!(
    token_list_show_and_exit_codes,
    inline_round_trip,
    staged_and_job_paths,
    copy_between_servers,
    large_bundles_go_up_in_parts,
);

/// A terminal (a pty, by `script`) gets a progress bar on stderr; a pipe gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_only_on_a_terminal() {
    let Some(srv) = server(Backend::Embedded, "cli-tty", &[("WORKSPACES_INLINE_LIMIT_BYTES", "20000")], 200).await
    else {
        return;
    };
    let url = srv.api_url(ORG, USER);
    let tok = token().await;
    let dir = tempfile_dir();
    let out = dir.join("tty.json");
    let piped = cli(&["--url", &url, "--token", &tok, "export", "ws_1", "-o", s(&out)]).await;
    piped.ok();
    assert_eq!(piped.stderr, "", "no progress into a pipe");
    let command = format!("{} --url {url} --token {tok} export ws_1 -o {}", env!("CARGO_BIN_EXE_workspaces"), s(&out));
    let run = tokio::task::spawn_blocking(move || {
        Command::new("script").args(["-qec", &command, "/dev/null"]).env("TERM", "xterm").output()
    })
    .await
    .expect("thread");
    let Ok(run) = run else {
        eprintln!("SKIP progress_only_on_a_terminal: `script` (util-linux) is not installed");
        return;
    };
    let transcript = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{transcript}");
    assert!(transcript.contains("download") && transcript.contains("KiB"), "a byte progress bar: {transcript:?}");
}
