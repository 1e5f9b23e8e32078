//! What each everyday route costs on DynamoDB, in requests by operation (counted by the test
//! kit's proxy in front of moto): the round trips a handler makes beyond what the operation
//! needs are what `make bench`'s overhead section shows as latency; here they are pinned as
//! counts, which depend on the code and not on how fast the machine is. Run with
//! `--nocapture` to see them.

use blackbox_tests::counting_proxy::{CountingProxy, Counts};
use blackbox_tests::{aws_endpoint, harness_with_dynamodb_endpoint, Client, Harness};
use serde_json::json;
use shared::routes::Endpoint;

/// More than one page of the old fixed batch (200), fewer than moto can list quickly.
const WORKSPACES: usize = 450;

async fn stack(name: &str) -> Option<(CountingProxy, Harness)> {
    let moto = aws_endpoint("AWS_ENDPOINT_URL_DYNAMODB", "route_costs", "dynamodb")?;
    let proxy = CountingProxy::start(&moto).await.expect("proxy");
    let h = harness_with_dynamodb_endpoint(name, &[], proxy.url()).await?;
    Some((proxy, h))
}

/// Counts of `step` alone.
async fn counted<F: std::future::Future<Output = ()>>(proxy: &CountingProxy, label: &str, step: F) -> Counts {
    proxy.reset();
    step.await;
    let counts = proxy.snapshot();
    eprintln!("{label:<45} {counts}");
    counts
}

fn requests(counts: &Counts, op: &str) -> u64 {
    counts.op(op).requests
}

#[tokio::test]
async fn listing_workspaces_costs_one_query_per_scope_and_page() {
    let Some((proxy, h)) = stack("costs-list").await else { return };
    let c = Client::new(&h.app, "acme", "ann");
    for i in 0..WORKSPACES {
        c.post(Endpoint::SaveWorkspace, "/workspaces/save", json!({"id": format!("ws_{i:04}"), "name": "n"}))
            .await
            .ok();
    }
    c.post(Endpoint::SaveWorkspace, "/workspaces/save", json!({"id": "ws_org", "name": "n", "scope": "organization"}))
        .await
        .ok();

    let mut listed = 0;
    let all = counted(&proxy, "list all (user scope)", async {
        listed = c.get(Endpoint::ListWorkspaces, "/workspaces/list").await.ok().as_array().map_or(0, Vec::len);
    })
    .await;
    assert_eq!(listed, WORKSPACES);
    assert_eq!(all.total().requests, 1, "one Query for the whole list, no empty page after it: {all}");

    let both = counted(&proxy, "list all (user and organization scopes)", async {
        listed = c
            .get(Endpoint::ListWorkspaces, "/workspaces/list?scopes=user,organization")
            .await
            .ok()
            .as_array()
            .map_or(0, Vec::len);
    })
    .await;
    assert_eq!(listed, WORKSPACES + 1);
    assert_eq!(requests(&both, "Query"), 2, "one Query per scope: {both}");
    assert_eq!(both.total().requests, 2, "{both}");

    let mut token = String::new();
    let paged = counted(&proxy, "list limit=20", async {
        let answer = c.get(Endpoint::ListWorkspaces, "/workspaces/list?limit=20").await;
        assert_eq!(answer.ok().as_array().map(Vec::len), Some(20));
        token = answer.body["next_token"].as_str().expect("a next_token: more follow").to_owned();
    })
    .await;
    assert_eq!(paged.total().requests, 1, "{paged}");
    // A small page reads what it returns (and one item to know that more follow), not a batch.
    assert!(paged.total().read <= 21, "limit=20 read {} items", paged.total().read);

    let last = counted(&proxy, "list the last page (limit 1000)", async {
        let answer = c.get(Endpoint::ListWorkspaces, &format!("/workspaces/list?limit=1000&next_token={token}")).await;
        assert_eq!(answer.ok().as_array().map(Vec::len), Some(WORKSPACES - 20));
        assert!(answer.body.get("next_token").is_none(), "the last page says nothing follows: {}", answer.body);
    })
    .await;
    assert_eq!(last.total().requests, 1, "{last}");
}

#[tokio::test]
async fn project_routes_cost_what_they_read_and_write() {
    let Some((proxy, h)) = stack("costs-projects").await else { return };
    let c = Client::new(&h.app, "acme", "ann");
    c.post(Endpoint::SaveWorkspace, "/workspaces/save", json!({"id": "ws_p", "name": "n"})).await.ok();
    for i in 0..5 {
        let p = json!({"project": {"id": format!("p_{i}"), "name": "seed"}});
        c.post(Endpoint::SaveProject, "/projects/ws_p/save", p).await.ok();
    }

    let new = counted(&proxy, "save a new project", async {
        c.post(Endpoint::SaveProject, "/projects/ws_p/save", json!({"project": {"id": "p_new", "name": "n"}}))
            .await
            .ok();
    })
    .await;
    let update = counted(&proxy, "save an existing project", async {
        c.post(Endpoint::SaveProject, "/projects/ws_p/save", json!({"project": {"id": "p_2", "name": "again"}}))
            .await
            .ok();
    })
    .await;
    let list = counted(&proxy, "list projects", async {
        let listed = c.get(Endpoint::ListProjects, "/projects/ws_p/list").await;
        assert_eq!(listed.ok().as_array().map(Vec::len), Some(6));
    })
    .await;
    let load = counted(&proxy, "load a project", async {
        let loaded = c.get(Endpoint::LoadProject, "/projects/ws_p/load?project_id=p_2").await;
        assert_eq!(loaded.ok()["name"], "again");
    })
    .await;
    // Saving reads the workspace, the head, the catalog and the project's row once each (the
    // commit takes the head, catalog and row from the snapshot the save decided on), then one
    // transaction writes the row, its table's entry and the head.
    for (what, save) in [("new", &new), ("existing", &update)] {
        assert_eq!(save.total().requests, 5, "save {what}: {save}");
        assert_eq!(requests(save, "GetItem"), 2, "save {what}: the workspace and the head, once: {save}");
        assert_eq!(requests(save, "BatchGetItem"), 1, "save {what}: the row, once: {save}");
        assert_eq!(requests(save, "TransactWriteItems"), 1, "{save}");
        assert_eq!(save.total().written, 3, "save {what}: row, entry, head: {save}");
    }
    assert_eq!(load.total().requests, 4, "load: workspace, head, catalog, the row: {load}");
    // Listing reads each part of the projects table (one per save until compaction folds them).
    assert_eq!(requests(&list, "GetItem"), 2, "list: workspace and head: {list}");
}

/// Imports workspace `ws_<projects>` with `projects` projects and a 50-row workspace table
/// `datasources_<ws>`; answers the workspace id and its project ids.
async fn workspace_with_projects(c: &Client<'_>, projects: usize) -> (String, Vec<String>) {
    let ws = format!("ws_{projects}");
    let ids: Vec<String> = (0..projects).map(|i| format!("p{i}")).collect();
    let rows: Vec<(&str, &str, &str)> = ids.iter().map(|id| (id.as_str(), "ann", "user")).collect();
    let data: Vec<serde_json::Value> = (0..50).map(|i| json!({"datasource_id": format!("d{i:03}")})).collect();
    let datasources = json!({
        "schema": [{"name": "datasource_id", "type": "text", "nullable": "NO", "default": null}],
        "data": data,
    });
    let bundle = json!({"workspace_id": ws, "projects": {}, "tables": {
        format!("projects_{ws}"): blackbox_tests::projects_table(&rows),
        format!("datasources_{ws}"): datasources,
    }});
    let body = json!({"export_data": bundle, "workspace_id": ws, "scope": "user"});
    c.post(Endpoint::ImportTables, "/workspaces/import-tables", body).await.ok();
    (ws, ids)
}

/// A workspace table appears inside every project of an export bundle (the platform's format);
/// when it is small its rows are written once and replayed, so exporting a workspace of five
/// projects reads it as often as one of one project does.
#[tokio::test]
async fn an_export_reads_a_repeated_workspace_table_once() {
    let Some((proxy, h)) = stack("costs-export").await else { return };
    let c = Client::new(&h.app, "acme", "ann");
    let mut costs = Vec::new();
    for projects in [1usize, 5] {
        let (ws, ids) = workspace_with_projects(&c, projects).await;
        let label = format!("export, {projects} projects");
        let cost = counted(&proxy, &label, async {
            let answer = c.post(Endpoint::ExportTables, &format!("/workspaces/{ws}/export-tables"), json!({})).await;
            let bundle = answer.ok();
            for id in &ids {
                let table = &bundle["projects"][id.as_str()]["tables"][format!("datasources_{ws}")];
                assert_eq!(table["row_count"], 50, "{id} holds the workspace table whole");
            }
        })
        .await;
        costs.push(cost);
    }
    assert_eq!(
        costs[0].total().requests,
        costs[1].total().requests,
        "1 project: {}\n5 projects: {}",
        costs[0],
        costs[1]
    );
    // The projects table is read twice (who may see which project, then its rows): the four
    // more project rows twice, and not one more datasource row.
    assert_eq!(
        costs[1].total().read - costs[0].total().read,
        2 * 4,
        "1 project: {}\n5 projects: {}",
        costs[0],
        costs[1]
    );
}

/// Re-importing an export (the same rows) looks up a workspace table the bundle repeats in
/// every project at its first and last occurrence only, not once per project; the answer still
/// counts every occurrence as the platform does.
#[tokio::test]
async fn a_reimport_looks_up_a_repeated_workspace_table_twice_at_most() {
    let Some((proxy, h)) = stack("costs-reimport").await else { return };
    let c = Client::new(&h.app, "acme", "ann");
    let mut costs = Vec::new();
    for projects in [1usize, 5] {
        let (ws, _) = workspace_with_projects(&c, projects).await;
        let export = c.post(Endpoint::ExportTables, &format!("/workspaces/{ws}/export-tables"), json!({})).await;
        let bundle = export.ok().clone();
        let label = format!("re-import, {projects} projects");
        let cost = counted(&proxy, &label, async {
            let body = json!({"export_data": bundle, "workspace_id": ws});
            let answer = c.post(Endpoint::ImportTables, "/workspaces/import-tables", body).await;
            let summary = &answer.ok()["summary"];
            // 50 datasources in each project's copy, and the projects table's rows.
            assert_eq!(summary["rows_updated"], json!(50 * projects + projects), "{summary}");
            assert_eq!(summary["rows_inserted"], 0, "{summary}");
        })
        .await;
        costs.push(cost);
    }
    let gets = |c: &Counts| requests(c, "BatchGetItem");
    assert!(gets(&costs[1]) <= gets(&costs[0]) + 1, "1 project: {}\n5 projects: {}", costs[0], costs[1]);
    // Items read: the first and last copies of the 50 datasources, not five.
    assert!(
        costs[1].total().read <= costs[0].total().read + 50 + 2 * 4,
        "1 project: {}\n5 projects: {}",
        costs[0],
        costs[1]
    );
}
