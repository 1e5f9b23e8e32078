//! Not part of the suite (ignored; minutes, hundreds of MB): the peak RSS and throughput of
//! `workspaces copy` of a large staged bundle between two served apps (SQLite + folder), the
//! measure behind "never holds a whole bundle in memory". Run it with
//! `CLI_COPY_MB=200 cargo test -p workspaces-cli --test copy_memory -- --ignored --nocapture`
//! (needs `/usr/bin/time`).

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use blackbox_tests::http_server::serve;
use blackbox_tests::{facts_bundle, harness, Backend, SECRET};
use serde_json::Value;

fn workspaces(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_workspaces"))
        .args(args)
        .env("HOME", "/nonexistent-home")
        .output()
        .expect("running")
}

/// A bundle of about `mb` MB (rows of about 1 KB) written row by row, never whole in memory.
fn write_bundle(path: &std::path::Path, mb: usize) {
    let skeleton = serde_json::to_string(&facts_bundle("ws_1", 0..0, 1000)).expect("json");
    let (head, tail) = skeleton.split_once("\"data\":[]").expect("the empty facts table");
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("bundle file"));
    write!(out, "{head}\"data\":[").expect("write");
    let pad = "x".repeat(940);
    for i in 0..mb * 1000 {
        let sep = if i == 0 { "" } else { "," };
        write!(out, "{sep}{{\"id\":\"r{i:07}\",\"n\":{i},\"pad\":\"{pad}\"}}").expect("write");
    }
    write!(out, "]{tail}").expect("write");
    out.flush().expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes and hundreds of MB: run by hand for the memory figure"]
async fn copy_of_a_large_bundle_streams() {
    let mb: usize = std::env::var("CLI_COPY_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let env = [("WORKSPACES_SYNC_EXPORT_MAX_ROWS", "1000000")];
    let src = serve(harness(Backend::Embedded, "cli-mem-src", &env).await.expect("embedded"), true).await;
    let dst = serve(harness(Backend::Embedded, "cli-mem-dst", &env).await.expect("embedded"), true).await;
    let (from, to) = (src.api_url("acme", "ann"), dst.api_url("acme", "ann"));
    let dir = std::env::temp_dir().join(format!("workspaces-cli-mem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("big.json");
    let path = file.to_str().expect("utf-8").to_owned();
    write_bundle(&file, mb);
    let size = std::fs::metadata(&file).expect("file").len();
    let tok = String::from_utf8(workspaces(&["token", "--org", "acme", "--user", "ann", "--secret", SECRET]).stdout)
        .expect("utf-8")
        .trim()
        .to_owned();

    let (from2, tok2) = (from.clone(), tok.clone());
    let seeded = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let out = timed(&["--url", &from2, "--token", &tok2, "--json", "import", &path, "--into", "ws_1"]);
        (out, started.elapsed())
    })
    .await
    .expect("thread");
    report("import (upload + job)", size, &seeded.0, seeded.1);
    std::fs::remove_file(&file).ok();

    let copied = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let out = timed(&["--url", &from, "--token", &tok, "--json", "copy", "ws_1", "--to-url", &to]);
        (out, started.elapsed())
    })
    .await
    .expect("thread");
    report("copy (staged export, streamed into an upload, import job)", size, &copied.0, copied.1);
}

/// The command under `/usr/bin/time -v`: its JSON result and peak RSS in KiB.
fn timed(args: &[&str]) -> (Value, u64) {
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_workspaces"))
        .args(args)
        .env("HOME", "/nonexistent-home")
        .output()
        .expect("running /usr/bin/time");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
    let rss = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .expect("time -v's peak RSS");
    (serde_json::from_slice(&out.stdout).expect("--json"), rss)
}

fn report(what: &str, size: u64, (json, rss_kib): &(Value, u64), total: std::time::Duration) {
    let mb = size as f64 / 1e6;
    let upload = json["upload_seconds"].as_f64().unwrap_or(f64::NAN);
    eprintln!(
        "{what}: {mb:.1} MB, total {:.1} s, upload {upload:.1} s ({:.1} MB/s), peak RSS {:.1} MiB; {}",
        total.as_secs_f64(),
        mb / upload,
        *rss_kib as f64 / 1024.0,
        json["message"]
    );
}
