//! The counting proxy of the test kit: what it counts for known SDK calls (on moto), that it
//! relays bytes unchanged over keep-alive connections, and that its serialised mode really sends
//! one request at a time (against a tiny upstream here that watches its own concurrency).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, DeleteRequest, KeySchemaElement, KeyType,
    KeysAndAttributes, Put, PutRequest, ScalarAttributeType, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use blackbox_tests::aws_endpoint;
use blackbox_tests::counting_proxy::{CountingProxy, Counts, OpCounts};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A guard against a hang, never a measurement: a broken proxy fails the test instead.
const GUARD: Duration = Duration::from_secs(60);

// ---- on moto, through the SDK ----

async fn client_at(url: &str) -> Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    Client::from_conf(aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(url).build())
}

async fn table_at(client: &Client, case: &str) -> String {
    let name = format!("t-{case}-{}", shared::model::new_id("", 8));
    let attr =
        |n: &str| AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build();
    let key = |n: &str, t| KeySchemaElement::builder().attribute_name(n).key_type(t).build();
    client
        .create_table()
        .table_name(&name)
        .attribute_definitions(attr("PK").expect("attr"))
        .attribute_definitions(attr("SK").expect("attr"))
        .key_schema(key("PK", KeyType::Hash).expect("key"))
        .key_schema(key("SK", KeyType::Range).expect("key"))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table");
    name
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// Every item lives in partition `p`, so one Query counts them all.
fn key(sk: &str) -> std::collections::HashMap<String, AttributeValue> {
    [("PK".to_owned(), s("p")), ("SK".to_owned(), s(sk))].into()
}

fn put(sk: &str) -> WriteRequest {
    WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(key(sk))).build().expect("put")).build()
}

fn delete(sk: &str) -> WriteRequest {
    WriteRequest::builder()
        .delete_request(DeleteRequest::builder().set_key(Some(key(sk))).build().expect("delete"))
        .build()
}

fn names(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i:02}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_requests_and_items_per_dynamodb_operation() {
    let Some(moto) = aws_endpoint("AWS_ENDPOINT_URL_DYNAMODB", "counting_proxy", "dynamodb") else { return };
    let proxy = CountingProxy::start(&moto).await.expect("proxy");
    let client = client_at(proxy.url()).await;
    let table = table_at(&client, "counts").await;
    assert_eq!(proxy.snapshot().op("CreateTable").requests, 1, "{}", proxy.snapshot());
    proxy.reset();
    assert_eq!(proxy.snapshot(), Counts::default());

    client.put_item().table_name(&table).set_item(Some(key("a"))).send().await.expect("put");
    client
        .update_item()
        .table_name(&table)
        .set_key(Some(key("a")))
        .update_expression("SET v = :v")
        .expression_attribute_values(":v", s("1"))
        .send()
        .await
        .expect("update");
    let refused = client
        .put_item()
        .table_name(&table)
        .set_item(Some(key("a")))
        .condition_expression("attribute_not_exists(PK)")
        .send()
        .await;
    assert!(refused.is_err(), "the item exists");

    let batch: Vec<WriteRequest> = names("b", 0..25).iter().map(|k| put(k)).collect();
    client.batch_write_item().request_items(&table, batch).send().await.expect("batch");
    assert_eq!(proxy.snapshot().op("BatchWriteItem"), OpCounts { requests: 1, written: 25, ..OpCounts::default() });
    let mut mixed: Vec<WriteRequest> = names("c", 0..20).iter().map(|k| put(k)).collect();
    mixed.extend(names("b", 0..5).iter().map(|k| delete(k)));
    client.batch_write_item().request_items(&table, mixed).send().await.expect("batch");

    let t = TransactWriteItem::builder;
    let items = vec![
        t().put(Put::builder().table_name(&table).set_item(Some(key("t1"))).build().expect("put")).build(),
        t().put(Put::builder().table_name(&table).set_item(Some(key("t2"))).build().expect("put")).build(),
        t().update(
            Update::builder()
                .table_name(&table)
                .set_key(Some(key("a")))
                .update_expression("SET v = :v")
                .expression_attribute_values(":v", s("2"))
                .build()
                .expect("update"),
        )
        .build(),
        t().delete(Delete::builder().table_name(&table).set_key(Some(key("b05"))).build().expect("delete")).build(),
        t().condition_check(
            ConditionCheck::builder()
                .table_name(&table)
                .set_key(Some(key("b06")))
                .condition_expression("attribute_exists(PK)")
                .build()
                .expect("check"),
        )
        .build(),
    ];
    client.transact_write_items().set_transact_items(Some(items)).send().await.expect("transaction");

    client.get_item().table_name(&table).set_key(Some(key("a"))).send().await.expect("get");
    // 30 keys asked for, of which b25..b39 do not exist: the keys requested are what is counted.
    let keys = KeysAndAttributes::builder().set_keys(Some(names("b", 10..40).iter().map(|k| key(k)).collect()));
    client.batch_get_item().request_items(&table, keys.build().expect("keys")).send().await.expect("batch get");
    let queried = client
        .query()
        .table_name(&table)
        .key_condition_expression("PK = :p")
        .expression_attribute_values(":p", s("p"))
        .send()
        .await
        .expect("query");
    // a, b06..b24, c00..c19, t1, t2
    assert_eq!(queried.count(), 42);
    client.delete_item().table_name(&table).set_key(Some(key("a"))).send().await.expect("delete");

    let c = |requests, failed, written, deleted, checked, read| OpCounts {
        requests,
        failed,
        written,
        deleted,
        checked,
        read,
    };
    let expected = Counts {
        ops: [
            ("PutItem", c(2, 1, 1, 0, 0, 0)),
            ("UpdateItem", c(1, 0, 1, 0, 0, 0)),
            ("BatchWriteItem", c(2, 0, 50, 5, 0, 0)),
            ("TransactWriteItems", c(1, 0, 4, 1, 1, 0)),
            ("GetItem", c(1, 0, 0, 0, 0, 1)),
            ("BatchGetItem", c(1, 0, 0, 0, 0, 30)),
            ("Query", c(1, 0, 0, 0, 0, 42)),
            ("DeleteItem", c(1, 0, 1, 1, 0, 0)),
        ]
        .into_iter()
        .map(|(op, counts)| (op.to_owned(), counts))
        .collect(),
    };
    assert_eq!(proxy.snapshot(), expected, "got:\n{}", proxy.snapshot());
    assert_eq!(proxy.snapshot().total().requests, 10);
    assert_eq!(proxy.snapshot().total().written, 57);
}

/// moto does not make a conditional write atomic under concurrent requests; one at a time, it
/// is: of 20 concurrent creates of one item exactly one wins, as on DynamoDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serialised_mode_keeps_concurrent_conditional_writes_exclusive_on_moto() {
    let Some(moto) = aws_endpoint("AWS_ENDPOINT_URL_DYNAMODB", "counting_proxy", "dynamodb") else { return };
    let proxy = CountingProxy::start_serialised(&moto).await.expect("proxy");
    let client = client_at(proxy.url()).await;
    let table = table_at(&client, "serial").await;
    proxy.reset();
    let attempts = (0..20).map(|i| {
        let (client, table) = (client.clone(), table.clone());
        tokio::spawn(async move {
            let mut item = key("only");
            item.insert("writer".into(), s(&i.to_string()));
            client
                .put_item()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(PK)")
                .send()
                .await
        })
    });
    let results = futures::future::join_all(attempts).await;
    let won = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    assert_eq!(won, 1, "exactly one create wins");
    assert_eq!(
        proxy.snapshot().op("PutItem"),
        OpCounts { requests: 20, failed: 19, written: 1, ..OpCounts::default() }
    );
    assert_eq!(proxy.max_in_flight(), 1);
}

// ---- against a small upstream that watches what arrives ----

#[derive(Clone, Copy)]
enum Hold {
    /// Answer each request after this long.
    For(Duration),
    /// Answer only once this many requests have been served at once (waiting up to `GUARD`).
    UntilConcurrent(usize),
    /// Answer with the request's own bytes, chunked.
    Echo,
}

struct Upstream {
    url: String,
    /// The most requests it was serving at once.
    max_active: Arc<AtomicUsize>,
}

async fn upstream(hold: Hold) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let active = Arc::new(AtomicUsize::new(0));
    let max_active = Arc::new(AtomicUsize::new(0));
    let max = max_active.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (active, max) = (active.clone(), max.clone());
            tokio::spawn(async move {
                let mut reader = BufReader::new(socket);
                while let Some(request) = read_request(&mut reader).await {
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    let answer = match hold {
                        Hold::For(d) => {
                            tokio::time::sleep(d).await;
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec()
                        }
                        Hold::UntilConcurrent(n) => {
                            let _ = tokio::time::timeout(GUARD, async {
                                while max.load(Ordering::SeqCst) < n {
                                    tokio::time::sleep(Duration::from_millis(5)).await;
                                }
                            })
                            .await;
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec()
                        }
                        Hold::Echo => chunked_echo(&request),
                    };
                    active.fetch_sub(1, Ordering::SeqCst);
                    if reader.get_mut().write_all(&answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Upstream { url, max_active }
}

/// One request's exact bytes (head, and a Content-Length body); `None` at the end.
async fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut raw = Vec::new();
    let mut length = 0;
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        raw.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line).to_ascii_lowercase();
        if let Some(v) = text.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        if line == b"\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    raw.extend_from_slice(&body);
    Some(raw)
}

fn chunked_echo(request: &[u8]) -> Vec<u8> {
    let (a, b) = request.split_at(request.len() / 2);
    let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for chunk in [a, b] {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn get_item_request(connection: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST / HTTP/1.1\r\nHost: proxy\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\nConnection: {connection}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Bodies with CRLFs, a blank line and bytes that are not UTF-8 arrive exactly as sent, and the
/// chunked answers come back exactly as the upstream framed them, twice over one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_requests_and_answers_byte_for_byte_over_one_kept_alive_connection() {
    let up = upstream(Hold::Echo).await;
    let proxy = CountingProxy::start(&up.url).await.expect("proxy");
    let mut socket = TcpStream::connect(proxy.url().trim_start_matches("http://")).await.expect("connect");
    for body in [b"{\"a\":1}\r\n\r\nGET / HTTP/1.1\r\n\xff\x00\xfe".to_vec(), b"second".to_vec()] {
        let request = get_item_request("keep-alive", &body);
        socket.write_all(&request).await.expect("send");
        let expected = chunked_echo(&request);
        let mut answer = vec![0; expected.len()];
        tokio::time::timeout(GUARD, socket.read_exact(&mut answer)).await.expect("answered").expect("read");
        assert_eq!(String::from_utf8_lossy(&answer), String::from_utf8_lossy(&expected));
        assert_eq!(answer, expected);
    }
    assert_eq!(proxy.snapshot().op("GetItem").requests, 2);
}

/// 20 clients at once, each on its own connection; the answers' bodies.
async fn twenty_concurrent_calls(proxy: &CountingProxy) -> Vec<Vec<u8>> {
    let address = proxy.url().trim_start_matches("http://").to_owned();
    let calls = (0..20).map(|_| {
        let address = address.clone();
        tokio::spawn(async move {
            let mut socket = TcpStream::connect(address).await.expect("connect");
            socket.write_all(&get_item_request("close", b"{}")).await.expect("send");
            let mut answer = Vec::new();
            tokio::time::timeout(GUARD, socket.read_to_end(&mut answer)).await.expect("answered").expect("read");
            answer
        })
    });
    futures::future::join_all(calls).await.into_iter().map(|r| r.expect("call")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serialised_mode_forwards_one_request_at_a_time() {
    // Each request is held a little, so overlapping requests would be seen overlapping.
    let up = upstream(Hold::For(Duration::from_millis(20))).await;
    let proxy = CountingProxy::start_serialised(&up.url).await.expect("proxy");
    let answers = twenty_concurrent_calls(&proxy).await;
    assert!(answers.iter().all(|a| a.starts_with(b"HTTP/1.1 200") && a.ends_with(b"{}")));
    assert_eq!(up.max_active.load(Ordering::SeqCst), 1, "the upstream saw overlapping requests");
    assert_eq!(proxy.max_in_flight(), 1);
    assert_eq!(proxy.snapshot().op("GetItem"), OpCounts { requests: 20, read: 20, ..OpCounts::default() });
    proxy.reset();
    assert_eq!(proxy.max_in_flight(), 0);
}

/// The other mode does overlap (this upstream answers only once two requests are in), so the
/// test above can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_through_mode_forwards_concurrently() {
    let up = upstream(Hold::UntilConcurrent(2)).await;
    let proxy = CountingProxy::start(&up.url).await.expect("proxy");
    let answers = twenty_concurrent_calls(&proxy).await;
    assert!(answers.iter().all(|a| a.starts_with(b"HTTP/1.1 200")));
    assert!(up.max_active.load(Ordering::SeqCst) >= 2);
    assert!(proxy.max_in_flight() >= 2);
    assert_eq!(proxy.snapshot().op("GetItem").requests, 20);
}

#[tokio::test]
async fn refuses_an_upstream_it_cannot_proxy() {
    for bad in ["https://127.0.0.1:1", "not a url", "unix:/tmp/x"] {
        assert!(CountingProxy::start(bad).await.is_err(), "{bad}");
    }
}
