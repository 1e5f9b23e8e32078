//! The local stand-in for Lambda's SQS event source mapping (`make run` starts it): takes
//! messages from the jobs queue `WORKSPACES_JOBS_QUEUE` names (the local SQLite queue, or SQS on
//! the compatible server with `make run STORE=dynamodb`), invokes the `jobs-worker` function
//! through `cargo lambda watch`'s invoke endpoint with them as an SQS event, and deletes those it
//! did not hand back. Up to `--concurrency` invocations at a time, like the mapping's
//! MaximumConcurrency (start `cargo lambda watch` with at least as much).
//!
//! `jobs-dispatch --invoke http://127.0.0.1:9000 [--function jobs-worker] [--concurrency 4]
//!   [--visibility 120] [--once]`

use std::sync::Arc;
use std::time::Duration;

use shared::config::parse_queue_url;
use shared::queue::QueueReceiver;

struct Args {
    invoke: String,
    function: String,
    concurrency: usize,
    visibility: Duration,
    once: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        invoke: "http://127.0.0.1:9000".into(),
        function: "jobs-worker".into(),
        concurrency: 4,
        visibility: Duration::from_secs(120),
        once: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--invoke" => args.invoke = value()?,
            "--function" => args.function = value()?,
            "--concurrency" => {
                args.concurrency =
                    value()?.parse().ok().filter(|n| *n > 0).ok_or("--concurrency: a whole number > 0")?
            }
            "--visibility" => {
                args.visibility =
                    Duration::from_secs(value()?.parse().ok().filter(|n| *n > 0).ok_or("--visibility: seconds > 0")?)
            }
            "--once" => args.once = true,
            other => return Err(format!("unknown argument {other}; see the top of tools/src/bin/jobs-dispatch.rs")),
        }
    }
    Ok(args)
}

async fn receiver() -> Result<Arc<dyn QueueReceiver>, String> {
    let raw = std::env::var("WORKSPACES_JOBS_QUEUE").unwrap_or_else(|_| shared::config::DEFAULT_JOBS_QUEUE.into());
    let url = parse_queue_url(&raw).map_err(|e| e.to_string())?;
    let queue = shared::app::open_queue(&url, blackbox_tests::LINKS).await?;
    Ok(queue as Arc<dyn QueueReceiver>)
}

/// One invocation of the worker through the invoke endpoint; its answer is the SQS batch response.
async fn invoke(
    url: String,
    event: serde_json::Value,
) -> Result<lambda_http::aws_lambda_events::sqs::SqsBatchResponse, String> {
    tokio::task::spawn_blocking(move || {
        let mut response = ureq::post(&url)
            .header("content-type", "application/json")
            .send(event.to_string())
            .map_err(|e| format!("invoking the worker: {e}"))?;
        let text = response.body_mut().read_to_string().map_err(|e| format!("reading the worker's answer: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("the worker answered {text:.200}: {e}"))
    })
    .await
    .map_err(|e| e.to_string())?
}

#[tokio::main]
async fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("jobs-dispatch: {e}");
            std::process::exit(2);
        }
    };
    let receiver = match receiver().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("jobs-dispatch: WORKSPACES_JOBS_QUEUE: {e}");
            std::process::exit(2);
        }
    };
    let url = format!("{}/2015-03-31/functions/{}/invocations", args.invoke.trim_end_matches('/'), args.function);
    eprintln!("jobs-dispatch: feeding {url} ({} at a time)", args.concurrency);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (receiver, url, visibility, once) = (receiver.clone(), url.clone(), args.visibility, args.once);
        workers.spawn(async move {
            loop {
                let taken = shared::jobs::lambda::pump(&*receiver, 1, visibility, Duration::from_secs(1), |event| {
                    let body = serde_json::to_value(&event).unwrap_or_default();
                    invoke(url.clone(), body)
                })
                .await;
                match taken {
                    Ok(0) if once => return,
                    Ok(_) => {}
                    // The watch server restarting (a rebuild), or the queue busy: try again soon.
                    Err(e) => {
                        eprintln!("jobs-dispatch: {e}");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
}
