//! The streaming import's memory promise, measured: importing a staged bundle of ~100 MB takes
//! about the peak memory one of ~10 MB takes. Each size runs in a child process of this test
//! binary (its own peak RSS, `VmHWM`), doing what an import job does: plan the bundle (pass 1),
//! then every chunk (pass 2) with its rows handed off and dropped, as staging would, then finish.

use std::sync::Arc;

use async_trait::async_trait;
use shared::api::import::{finish, plan, write_chunk, ChunkLimits, ImportRequest, PlanContext, StoredSource, Tallies};
use shared::bundles::folder::FolderBundles;
use shared::bundles::{BundleStore, LinkSigner};
use shared::model::{Owner, Principal, Scope};
use shared::store::{Snapshot, StoreResult};
use shared::tables::{Row, TableMeta, WsKey};

const SIZE_VAR: &str = "IMPORT_MEMORY_CHILD_MB";
const KEY: &str = "bundles/tmem/bnd_0123456789abcdef.json";

/// An empty workspace: every row is new.
struct Empty;

#[async_trait]
impl Snapshot for Empty {
    fn revision(&self) -> u64 {
        0
    }
    fn tables(&self) -> &[TableMeta] {
        &[]
    }
    async fn read_rows(&self, _: &str, _: Option<&str>, _: usize) -> StoreResult<Vec<(String, Row)>> {
        Ok(Vec::new())
    }
    async fn get_rows(&self, _: &str, _: &[String]) -> StoreResult<Vec<(String, Row)>> {
        Ok(Vec::new())
    }
}

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: 0 kB");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Streams a bundle of about `mb` MB into the store: two projects' tables and a workspace
/// table repeated in both (keys overlap), ~1 KB rows, a redacted secret in some.
async fn stage_bundle(store: &dyn BundleStore, mb: usize) -> u64 {
    let mut upload = store.create_upload(KEY).await.expect("upload");
    let schema = r#"[{"name":"id","type":"text","nullable":"NO","default":null},{"name":"n","type":"integer","nullable":"YES","default":null},{"name":"body","type":"text","nullable":"YES","default":null},{"name":"conf","type":"jsonb","nullable":"YES","default":null}]"#;
    let body = "x".repeat(900);
    let per_table = mb * 1024 * 1024 / 4 / 1000;
    let mut rows = 0u64;
    let mut text = String::from(r#"{"workspace_id":"ws_mem","projects":{"#);
    for (p, pid) in ["pa", "pb"].iter().enumerate() {
        if p > 0 {
            text.push(',');
        }
        text.push_str(&format!(r#""{pid}":{{"project_id":"{pid}","tables":{{"#));
        for (t, name) in [format!("cells_{pid}"), "datasources_ws_mem".to_owned()].iter().enumerate() {
            if t > 0 {
                text.push(',');
            }
            text.push_str(&format!(r#""{name}":{{"schema":{schema},"data":["#));
            for i in 0..per_table {
                if i > 0 {
                    text.push(',');
                }
                let conf = if i % 10 == 0 { r#"{"password":"**redacted**"}"# } else { "null" };
                text.push_str(&format!(r#"{{"id":"r{i:07}","n":{i},"body":"{body}","conf":{conf}}}"#));
                rows += 1;
                if text.len() > 1 << 20 {
                    upload.write(text.as_bytes()).await.expect("write");
                    text.clear();
                }
            }
            text.push_str("]}");
        }
        text.push_str("}}");
    }
    text.push_str("}}");
    upload.write(text.as_bytes()).await.expect("write");
    upload.finish().await.expect("finish");
    rows
}

/// The child: stage, import as a job would, print the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the test below, in a child process"]
async fn child_imports_one_staged_bundle() {
    let mb: usize = std::env::var(SIZE_VAR).ok().and_then(|v| v.parse().ok()).expect(SIZE_VAR);
    let dir = tempfile::tempdir().expect("temp dir");
    let bundles = Arc::new(FolderBundles::open(dir.path(), LinkSigner::new("m")).expect("folder"));
    let rows = stage_bundle(bundles.as_ref(), mb).await;
    let size = bundles.head(KEY).await.expect("head").expect("staged");
    let before = peak_rss_kb();

    let source = StoredSource { bundles, key: KEY.into(), bundle_id: "bnd_mem".into(), max_bytes: u64::MAX };
    let principal =
        Principal { sub: "ann".into(), username: "ann".into(), organization: "acme".into(), role: None, jti: None };
    let target = WsKey::new(Owner::user("acme", "ann"), "ws_mem");
    let request = ImportRequest {
        workspace_id: "ws_mem".into(),
        scope: Scope::User,
        force_new_id: false,
        commit_id: "c1".into(),
    };
    let ctx = PlanContext {
        principal: &principal,
        target: &target,
        request: &request,
        workspace_exists: false,
        sync_max_rows: None,
        limits: ChunkLimits::default(),
        now: "2024-01-01T00:00:00Z".into(),
    };
    let plan = plan(&source, &Empty, &ctx).await.expect("plan");
    let mut tallies = Tallies::new(&plan);
    let mut written = 0;
    for i in 0..plan.chunks.len() {
        let out = write_chunk(&plan, i, &source, &Empty).await.expect("chunk");
        tallies.add(&out.tally);
        written += out.rows.len();
    }
    let (staged, reply) = finish(&plan, &tallies).expect("finish");
    // The workspace table repeats in both projects: its keys are written once.
    let new_keys: u64 = staged.tables.iter().map(|t| t.new_keys).sum();
    assert_eq!(new_keys, written as u64);
    assert_eq!(reply.data["summary"]["rows_inserted"].as_u64(), Some(new_keys));
    assert_eq!(written as u64, rows * 3 / 4);
    println!(
        "IMPORT_MEMORY bytes={size} rows={rows} written={written} chunks={} peak_kb={} before_kb={before}",
        plan.chunks.len(),
        peak_rss_kb()
    );
}

fn child(mb: usize) -> (u64, u64) {
    let exe = std::env::current_exe().expect("this test binary");
    let out = std::process::Command::new(exe)
        .args(["--exact", "child_imports_one_staged_bundle", "--ignored", "--nocapture", "--test-threads=1"])
        .env(SIZE_VAR, mb.to_string())
        .output()
        .expect("running the child");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "child for {mb} MB failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = text
        .lines()
        .find_map(|l| l.find("IMPORT_MEMORY").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no figures:\n{text}"));
    eprintln!("{mb} MB: {line}");
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    (field("bytes="), field("peak_kb="))
}

#[test]
fn a_ten_times_larger_staged_bundle_imports_in_about_the_same_memory() {
    let (small_bytes, small) = child(10);
    let (large_bytes, large) = child(100);
    assert!(large_bytes >= 9 * small_bytes, "{large_bytes} vs {small_bytes}");
    // The key index grows with rows (2 bits kept, 16 bytes while built: ~1.6 MB at 100 MB
    // here); everything else is one chunk at a time.
    assert!(large * 10 < small * 15, "peak RSS {large} kB for {large_bytes} bytes vs {small} kB for {small_bytes}");
}
