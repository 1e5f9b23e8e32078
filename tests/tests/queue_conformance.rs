//! The jobs queue ports (`JobQueue`, `QueueReceiver`), pinned once and run against both
//! adapters: the local SQLite queue on a temp file, and SQS on moto (a queue of its own per case;
//! skipped with a loud SKIP when `AWS_ENDPOINT_URL_SQS` is unset, unless
//! `WORKSPACES_TEST_REQUIRE_AWS=1`). The local queue's own rules (receipts, dead letters) follow.

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_sqlite::queue::{LocalQueue, MAX_RECEIVES};
use adapter_sqs::SqsQueue;
use shared::queue::{JobMessage, JobQueue, JobTask, QueueReceiver, Received};

trait Queue: JobQueue + QueueReceiver {}
impl<T: JobQueue + QueueReceiver> Queue for T {}

struct Fixture {
    queue: Arc<dyn Queue>,
    _dir: Option<tempfile::TempDir>,
}

async fn fresh_local(_case: &str) -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let queue = LocalQueue::open(&dir.path().join("queue.db")).expect("opening the local queue");
    Some(Fixture { queue: Arc::new(queue), _dir: Some(dir) })
}

/// An SQS config for the local server: dummy credentials, a fixed region.
async fn sqs_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region("us-east-1")
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "queue-tests"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// A new queue on the local server; its URL.
async fn create_queue(config: &aws_config::SdkConfig, case: &str) -> String {
    let name = blackbox_tests::unique_table("q", case).chars().take(80).collect::<String>();
    let out = aws_sdk_sqs::Client::new(config)
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating queue {name}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)));
    out.queue_url().expect("a queue URL").to_owned()
}

async fn fresh_sqs(case: &str) -> Option<Fixture> {
    let endpoint = blackbox_tests::aws_endpoint("AWS_ENDPOINT_URL_SQS", case, "sqs")?;
    let config = sqs_config(&endpoint).await;
    let url = create_queue(&config, case).await;
    Some(Fixture { queue: Arc::new(SqsQueue::new(&config, url)), _dir: None })
}

macro_rules! conformance {
    ($adapter:ident, $fresh:path) => {
        conformance!(@cases $adapter, $fresh;
            send_receive_delete,
            a_held_message_is_invisible_to_other_receivers,
            redelivered_after_the_visibility_timeout,
            messages_round_trip_as_json,
            receive_takes_at_most_max,
        );
    };
    (@cases $adapter:ident, $fresh:path; $($case:ident),+ $(,)?) => {
        mod $adapter {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(fixture) = $fresh(stringify!($case)).await else { return };
                    crate::cases::$case(fixture.queue.as_ref()).await;
                }
            )+
        }
    };
}

conformance!(local, crate::fresh_local);
conformance!(sqs, crate::fresh_sqs);

fn message(job: &str, task: JobTask) -> JobMessage {
    JobMessage { org: "acme".into(), user: "ann".into(), job_id: job.into(), task }
}

async fn send(q: &dyn Queue, m: &JobMessage) {
    q.send(m).await.unwrap_or_else(|e| panic!("send {}: {e}", m.job_id));
}

async fn receive(q: &dyn Queue, max: usize, visibility: Duration, wait: Duration) -> Vec<Received> {
    q.receive(max, visibility, wait).await.unwrap_or_else(|e| panic!("receive: {e}"))
}

fn parsed(r: &Received) -> JobMessage {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("body {} is not a JobMessage: {e}", r.body))
}

const HOLD: Duration = Duration::from_secs(30);
const NO_WAIT: Duration = Duration::ZERO;
const WAIT: Duration = Duration::from_secs(1);

mod cases {
    use super::*;

    pub async fn send_receive_delete(q: &dyn Queue) {
        let m = message("job_1", JobTask::Run);
        send(q, &m).await;
        let got = receive(q, 10, Duration::from_secs(1), WAIT).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((parsed(&got[0]), got[0].receive_count), (m, 1));
        q.delete(&got[0].receipt).await.expect("delete");
        // Deleted, not merely hidden: still gone once the visibility timeout is over.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(receive(q, 10, HOLD, NO_WAIT).await.is_empty());
    }

    pub async fn a_held_message_is_invisible_to_other_receivers(q: &dyn Queue) {
        send(q, &message("job_1", JobTask::Run)).await;
        let got = receive(q, 10, HOLD, WAIT).await;
        assert_eq!(got.len(), 1);
        assert!(
            receive(q, 10, HOLD, Duration::from_millis(300)).await.is_empty(),
            "a held message was delivered twice"
        );
        // Another message is not held by the first receive.
        send(q, &message("job_2", JobTask::Part { part: 7 })).await;
        let other = receive(q, 10, HOLD, WAIT).await;
        assert_eq!(other.iter().map(|r| parsed(r).job_id).collect::<Vec<_>>(), ["job_2"]);
    }

    pub async fn redelivered_after_the_visibility_timeout(q: &dyn Queue) {
        send(q, &message("job_1", JobTask::Run)).await;
        let first = receive(q, 10, Duration::from_secs(1), WAIT).await;
        assert_eq!(first.len(), 1);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let again = receive(q, 10, HOLD, WAIT).await;
        assert_eq!(again.len(), 1, "not redelivered");
        assert_eq!(again[0].message_id, first[0].message_id);
        assert_eq!(again[0].body, first[0].body);
        assert_eq!(again[0].receive_count, 2);
        assert_ne!(again[0].receipt, first[0].receipt, "each delivery has its own receipt");
        q.delete(&again[0].receipt).await.expect("delete");
    }

    pub async fn messages_round_trip_as_json(q: &dyn Queue) {
        let sent = [
            message("job_1", JobTask::Run),
            message("job_1", JobTask::Part { part: 7 }),
            JobMessage {
                org: "o-ü".into(),
                user: "u\"q".into(),
                job_id: "job_2".into(),
                task: JobTask::Part { part: 7 },
            },
        ];
        for m in &sent {
            send(q, m).await;
        }
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < sent.len() && Instant::now() < deadline {
            got.extend(receive(q, 10, HOLD, WAIT).await.iter().map(parsed));
        }
        for m in &sent {
            assert!(got.contains(m), "{m:?} not received intact: {got:?}");
        }
        assert_eq!(got.len(), sent.len());
    }

    pub async fn receive_takes_at_most_max(q: &dyn Queue) {
        for n in 0..3 {
            send(q, &message(&format!("job_{n}"), JobTask::Run)).await;
        }
        let first = receive(q, 2, HOLD, WAIT).await;
        assert!(!first.is_empty() && first.len() <= 2, "{first:?}");
        let mut all = first.len();
        let deadline = Instant::now() + Duration::from_secs(5);
        while all < 3 && Instant::now() < deadline {
            all += receive(q, 10, HOLD, WAIT).await.len();
        }
        assert_eq!(all, 3);
        assert!(receive(q, 0, HOLD, NO_WAIT).await.is_empty());
    }
}

mod local_only {
    use super::*;

    fn open() -> (LocalQueue, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        (LocalQueue::open(&dir.path().join("queue.db")).expect("open"), dir)
    }

    #[tokio::test]
    async fn a_stale_receipt_deletes_nothing() {
        let (q, _dir) = open();
        send(&q, &message("job_1", JobTask::Run)).await;
        let short = Duration::from_millis(50);
        let first = receive(&q, 1, short, WAIT).await;
        tokio::time::sleep(Duration::from_millis(80)).await;
        let second = receive(&q, 1, short, WAIT).await;
        assert_eq!(second[0].receive_count, 2);
        q.delete(&first[0].receipt).await.expect("a stale receipt is no error");
        tokio::time::sleep(Duration::from_millis(80)).await;
        let third = receive(&q, 1, HOLD, WAIT).await;
        assert_eq!(third.len(), 1, "the stale receipt deleted the message");
        assert_eq!(third[0].receive_count, 3);
        q.delete(&second[0].receipt).await.expect("stale too");
        q.delete(&third[0].receipt).await.expect("delete");
        assert!(receive(&q, 1, HOLD, NO_WAIT).await.is_empty());
        // Deleted for good, not hidden.
        assert!(q.dead_letters().await.expect("dead letters").is_empty());
    }

    #[tokio::test]
    async fn a_message_received_too_often_is_dead_lettered() {
        let (q, _dir) = open();
        let poison = message("job_poison", JobTask::Run);
        send(&q, &poison).await;
        for n in 1..=MAX_RECEIVES {
            let got = receive(&q, 10, Duration::ZERO, WAIT).await;
            assert_eq!(got.len(), 1, "receive {n}");
            assert_eq!(got[0].receive_count, n);
        }
        send(&q, &message("job_fine", JobTask::Run)).await;
        let next = receive(&q, 10, HOLD, WAIT).await;
        assert_eq!(next.iter().map(|r| parsed(r).job_id).collect::<Vec<_>>(), ["job_fine"], "not a 6th delivery");
        let dead = q.dead_letters().await.expect("dead letters");
        assert_eq!(dead.len(), 1);
        assert_eq!(serde_json::from_str::<JobMessage>(&dead[0]).expect("json"), poison);
        assert!(receive(&q, 10, Duration::ZERO, NO_WAIT).await.is_empty());
    }

    #[tokio::test]
    async fn receive_waits_for_a_message() {
        let (q, _dir) = open();
        let q = Arc::new(q);
        let sender = Arc::clone(&q);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            sender.send(&message("job_1", JobTask::Run)).await.expect("send");
        });
        let started = Instant::now();
        let got = receive(q.as_ref(), 10, HOLD, Duration::from_secs(5)).await;
        assert_eq!(got.len(), 1);
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
        let started = Instant::now();
        assert!(receive(q.as_ref(), 10, HOLD, Duration::from_millis(300)).await.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(300), "returned early: {:?}", started.elapsed());
    }

    /// Two handles on one file (as two processes have): a message goes to one of them.
    #[tokio::test]
    async fn two_receivers_on_one_file_never_share_a_message() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("queue.db");
        let (a, b) = (LocalQueue::open(&path).expect("open a"), LocalQueue::open(&path).expect("open b"));
        for n in 0..20 {
            send(&a, &message(&format!("job_{n}"), JobTask::Run)).await;
        }
        let (from_a, from_b) = tokio::join!(
            async {
                let mut got = Vec::new();
                for _ in 0..10 {
                    got.extend(receive(&a, 3, HOLD, NO_WAIT).await);
                }
                got
            },
            async {
                let mut got = Vec::new();
                for _ in 0..10 {
                    got.extend(receive(&b, 3, HOLD, NO_WAIT).await);
                }
                got
            }
        );
        let mut ids: Vec<String> = from_a.iter().chain(&from_b).map(|r| r.message_id.clone()).collect();
        ids.sort();
        let total = ids.len();
        ids.dedup();
        assert_eq!((ids.len(), total), (20, 20));
    }
}
