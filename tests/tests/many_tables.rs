//! A workspace of 5,000 tables on the embedded store, through the API: imported in bundles of
//! at most 2,000 tables (the bundle limit), listed, and exported whole. The DynamoDB store's
//! side (a commit of 5,000 tables, listing them, one more row costing what it changes) is in
//! `dynamodb_layout.rs`, where its requests are counted; exporting them there takes moto minutes.

use blackbox_tests::{harness, Backend, Client};
use serde_json::{json, Map, Value};
use shared::routes::Endpoint;
use shared::tables::WsKey;

const WS: &str = "ws_many";
const TABLES: usize = 5_000;

fn bundle(range: std::ops::Range<usize>) -> Value {
    let schema = json!([{"name": "id", "type": "text", "nullable": "NO", "default": null},
                        {"name": "v", "type": "text", "nullable": "YES", "default": null}]);
    let tables: Map<String, Value> = range
        .map(|i| {
            let data = json!([{"id": "k", "v": format!("{i}")}]);
            (format!("t{i:05}_{WS}"), json!({"schema": schema.clone(), "data": data}))
        })
        .collect();
    json!({"workspace_id": WS, "projects": {}, "tables": tables})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_tables_import_list_and_export_on_the_embedded_store() {
    let Some(h) = harness(Backend::Embedded, "many_tables", &[]).await else { return };
    let c = Client::new(&h.app, "acme", "ann");
    for range in [0..2000, 2000..4000, 4000..TABLES] {
        let body = json!({"export_data": bundle(range), "workspace_id": WS, "scope": "user"});
        c.post(Endpoint::ImportTables, "/workspaces/import-tables", body).await.ok();
    }
    let ws = WsKey::new(shared::model::Owner::user("acme", "ann"), WS);
    let snapshot = h.app.store.snapshot(&ws).await.expect("snapshot");
    assert_eq!(snapshot.tables().len(), TABLES);

    let answer = c.post(Endpoint::ExportTables, &format!("/workspaces/{WS}/export-tables"), json!({})).await;
    let data = answer.ok();
    let exported = match data.get("bundle") {
        // Over the inline limit: staged, and fetched by its link.
        Some(bundle) => {
            let url = bundle["url"].as_str().expect("url");
            let (status, bytes) = blackbox_tests::fetch_url(&h.app, "GET", url, None).await;
            assert_eq!(status, 200);
            serde_json::from_slice::<Value>(&bytes).expect("bundle JSON")
        }
        None => data.clone(),
    };
    let tables = exported["tables"].as_object().expect("tables");
    assert_eq!(tables.len(), TABLES, "every table is in the bundle");
    assert_eq!(tables[&format!("t04321_{WS}")]["data"][0]["v"], "4321");
    assert_eq!(data["summary"]["total_rows"], TABLES);
}
