//! `make invoke FN=<function>` sends shared/tests/fixtures/events/<function>.json to a running
//! `make run`. Every function has one, each is the event its `main` takes (an API Gateway HTTP
//! v2 request on its own route; an SQS batch of a job message for jobs-worker; a Scheduled Event
//! for compact-tables, which takes any JSON), and each runs through its handler on a local store
//! with the answer a fresh store gives.

use std::path::{Path, PathBuf};
use std::time::Duration;

use blackbox_tests::{harness, send, token, Backend};
use lambda_http::aws_lambda_events::sqs::SqsEvent;
use lambda_http::request::{LambdaRequest, RequestOrigin};
use serde_json::Value;
use shared::queue::JobMessage;
use shared::routes::{match_path, ROUTES};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

fn functions() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("functions"))
        .expect("functions/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The fixture as `make invoke` sends it: TOKEN replaced by a token for my-org/my-user.
fn fixture(function: &str) -> String {
    let path = root().join(format!("shared/tests/fixtures/events/{function}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{function} has no fixture event: {e}"));
    text.replace("TOKEN", &token("my-org", "my-user", "user"))
}

#[test]
fn every_function_has_a_fixture_event() {
    let missing: Vec<String> = functions()
        .into_iter()
        .filter(|f| !root().join(format!("shared/tests/fixtures/events/{f}.json")).exists())
        .collect();
    assert!(missing.is_empty(), "no shared/tests/fixtures/events/<fn>.json for {missing:?}");
}

/// What each route's fixture answers when they run in route order on a fresh store: ws_12345
/// exists once import-tables has imported an empty bundle into it; prj_12345 and job_12345
/// never do. Well formed with an accepted token, so nothing is 400, 401 or 5xx; the local links
/// carry no signature (one is only valid for minutes), so they are 403.
fn expected_status(function: &str) -> u16 {
    match function {
        "save-workspace"
        | "list-workspaces"
        | "import-tables"
        | "create-bundle-upload"
        | "save-project"
        | "list-projects"
        | "list-jobs" => 200,
        "download-bundle" | "upload-bundle" => 403,
        _ => 404,
    }
}

#[tokio::test]
async fn each_route_fixture_is_its_functions_api_gateway_event_and_is_served() {
    let h = harness(Backend::Embedded, "fixture_events", &[]).await.expect("embedded");
    for route in ROUTES {
        let text = fixture(route.function);
        let raw: LambdaRequest = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", route.function));
        assert!(
            matches!(raw.request_origin(), RequestOrigin::ApiGatewayV2),
            "{}: an HTTP API (payload 2.0) event, as the template's HttpApi sends",
            route.function
        );
        let event = lambda_http::request::from_str(&text).expect("a request");
        assert_eq!(event.method().as_str(), route.method, "{}: method", route.function);
        assert!(
            match_path(&route.full_path(), event.uri().path()).is_some(),
            "{}: {} is not on its route {}",
            route.function,
            event.uri().path(),
            route.full_path()
        );
        let answer = send(&h.app, route.endpoint, event).await;
        assert_eq!(answer.status, expected_status(route.function), "{}: {}", route.function, answer.body);
    }
}

#[tokio::test]
async fn the_worker_fixture_is_an_sqs_batch_of_one_job_message() {
    let event: SqsEvent = serde_json::from_str(&fixture("jobs-worker")).expect("an SQS event");
    assert_eq!(event.records.len(), 1, "the event source mapping's BatchSize is 1");
    let body = event.records[0].body.as_deref().expect("a body");
    let message: JobMessage = serde_json::from_str(body).expect("a job message");
    assert_eq!((message.org.as_str(), message.user.as_str()), ("my-org", "my-user"));
    // A job no store holds (expired, say) is done with: acknowledged, not handed back.
    let h = harness(Backend::Embedded, "fixture_worker", &[]).await.expect("embedded");
    let response = shared::jobs::lambda::handle_event(&h.app, event, Duration::from_secs(60)).await;
    assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
}

#[tokio::test]
async fn the_compaction_fixture_is_a_scheduled_event_and_runs() {
    let event: Value = serde_json::from_str(&fixture("compact-tables")).expect("JSON");
    assert_eq!(
        (event["source"].as_str(), event["detail-type"].as_str()),
        (Some("aws.events"), Some("Scheduled Event"))
    );
    // On the embedded store there is nothing to compact; the run says so.
    let answer = adapter_dynamodb::compaction::compact(None, Duration::from_secs(1)).await.expect("a run");
    assert_eq!(answer["compacted"], false);
}
