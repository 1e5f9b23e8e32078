//! What a function builds once at start and shares across invocations, and the one place that
//! wires adapters together: a function names its [`Needs`] and gets only those clients.

use std::error::Error;
use std::sync::Arc;

use crate::auth::Verifier;
use crate::bundles::{folder::FolderBundles, s3, DynBundles, LinkSigner};
use crate::config::{BundlesUrl, Config, QueueUrl, StoreUrl};
use crate::queue::{local::LocalQueue, sqs::SqsQueue, JobQueue};
use crate::store::job_tables::JobTables;
use crate::store::jobs::Jobs;
use crate::store::{dynamodb::DynamoStore, sqlite::SqliteStore, Blobs, DynStore};

mod unwired;

pub type InitError = Box<dyn Error + Send + Sync>;

pub struct App {
    pub config: Config,
    pub verifier: Verifier,
    /// Fails every call (a logged 500) in a function that did not ask for [`Needs::STORE`].
    pub store: DynStore,
    /// Fails every call (a logged 500) in a function that did not ask for [`Needs::BUNDLES`].
    pub bundles: DynBundles,
    /// Verifies the folder store's links on the local bundle routes (same secret as `bundles`).
    pub link_signer: LinkSigner,
    /// Job records; fails every call in a function that did not ask for [`Needs::JOBS`].
    pub jobs: Arc<dyn Jobs>,
    /// Long reads and staged commits, with [`Needs::TABLES`] (the same adapter as `store`).
    pub job_tables: Arc<dyn JobTables>,
    /// The jobs queue; fails every call in a function that did not ask for [`Needs::QUEUE`].
    pub queue: Arc<dyn JobQueue>,
}

/// The capabilities a function's `main` asks for, in the terms of its IAM policy
/// (`template.yaml`). Combine with [`Needs::and`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    store: bool,
    rows: bool,
    bundles: bool,
    jobs: bool,
    queue: bool,
}

impl Needs {
    /// Workspace records in the table.
    pub const STORE: Needs = Needs { store: true, ..Needs::NONE };
    /// Table rows too (projects are rows): the store, plus the bundle store's `rows/` prefix
    /// where DynamoDB puts rows too large for an item; long reads and staged commits of jobs.
    pub const TABLES: Needs = Needs { store: true, rows: true, ..Needs::NONE };
    /// Export bundles in the bundle store (`bundles/`): staging, links, reading them back.
    pub const BUNDLES: Needs = Needs { bundles: true, ..Needs::NONE };
    /// Job records (in the store's table or file).
    pub const JOBS: Needs = Needs { jobs: true, ..Needs::NONE };
    /// Sending to the jobs queue.
    pub const QUEUE: Needs = Needs { queue: true, ..Needs::NONE };
    /// Everything: the test kits and tools, which call every endpoint.
    pub const ALL: Needs = Needs::TABLES.and(Needs::BUNDLES).and(Needs::JOBS).and(Needs::QUEUE);
    const NONE: Needs = Needs { store: false, rows: false, bundles: false, jobs: false, queue: false };

    pub const fn and(self, other: Needs) -> Needs {
        Needs {
            store: self.store || other.store,
            rows: self.rows || other.rows,
            bundles: self.bundles || other.bundles,
            jobs: self.jobs || other.jobs,
            queue: self.queue || other.queue,
        }
    }
}

impl App {
    /// Reads the environment and builds what `needs` names, failing with a message that names
    /// the variable when something is wrong, so a misconfigured function never serves a request.
    pub async fn from_env(needs: Needs) -> Result<Self, InitError> {
        Self::wire(Config::from_env()?, needs).await
    }

    /// Every client a validated config names (for test kits and tools).
    pub async fn from_config(config: Config) -> Result<Self, InitError> {
        Self::wire(config, Needs::ALL).await
    }

    /// Builds the clients `needs` names and no others; the AWS SDK configuration is loaded at
    /// most once and shared by the DynamoDB and S3 clients.
    pub async fn wire(config: Config, needs: Needs) -> Result<Self, InitError> {
        let verifier = Verifier::from_config(&config.jwt)?;
        let link_signer = link_signer(&config);
        let dynamo = (needs.store || needs.jobs) && matches!(config.store, StoreUrl::DynamoDb { .. });
        // SQLite keeps rows of any size itself; DynamoDB offloads large ones to the bundle store.
        let want_bundles = needs.bundles || (needs.rows && dynamo);
        let s3 = want_bundles && matches!(config.bundles, BundlesUrl::S3 { .. });
        let sqs = needs.queue && matches!(config.jobs_queue, QueueUrl::Sqs(_));
        let sdk = if dynamo || s3 || sqs {
            Some(aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await)
        } else {
            None
        };
        let bundle_store =
            if want_bundles { Some(open_bundles(&config.bundles, link_signer.clone(), sdk.as_ref())?) } else { None };
        // One adapter serves the workspace records, the tables and the job records.
        let adapter = match (&config.store, needs.store || needs.jobs) {
            (_, false) => None,
            (StoreUrl::Sqlite(path), true) => {
                Some(Adapter::Sqlite(Arc::new(SqliteStore::open(path).map_err(|e| format!("WORKSPACES_STORE: {e}"))?)))
            }
            (StoreUrl::DynamoDb { table }, true) => {
                let client = aws_sdk_dynamodb::Client::new(sdk.as_ref().ok_or("AWS SDK config not loaded")?);
                let dynamo = DynamoStore::new(client, table);
                Some(Adapter::Dynamo(Arc::new(match (&bundle_store, needs.rows) {
                    (Some(blobs), true) => dynamo.with_blobs(blobs.clone() as Arc<dyn Blobs>),
                    // Without `rows`, a large row fails clearly ("no blob store is configured").
                    _ => dynamo,
                })))
            }
        };
        let store: DynStore = match (&adapter, needs.store) {
            (Some(Adapter::Sqlite(a)), true) => a.clone(),
            (Some(Adapter::Dynamo(a)), true) => a.clone(),
            _ => unwired::store(),
        };
        let jobs: Arc<dyn Jobs> = match (&adapter, needs.jobs) {
            (Some(Adapter::Sqlite(a)), true) => a.clone(),
            (Some(Adapter::Dynamo(a)), true) => a.clone(),
            _ => unwired::jobs(),
        };
        let job_tables: Arc<dyn JobTables> = match (&adapter, needs.rows) {
            (Some(Adapter::Sqlite(a)), true) => a.clone(),
            (Some(Adapter::Dynamo(a)), true) => a.clone(),
            _ => unwired::job_tables(),
        };
        let queue: Arc<dyn JobQueue> = match (&config.jobs_queue, needs.queue) {
            (_, false) => unwired::queue(),
            (QueueUrl::Sqlite(path), true) => {
                Arc::new(LocalQueue::open(path).map_err(|e| format!("WORKSPACES_JOBS_QUEUE: {e}"))?)
            }
            (QueueUrl::Sqs(url), true) => {
                Arc::new(SqsQueue::new(sdk.as_ref().ok_or("AWS SDK config not loaded")?, url))
            }
        };
        let bundles = match (bundle_store, needs.bundles) {
            (Some(b), true) => b,
            _ => unwired::bundles(),
        };
        Ok(Self { config, verifier, store, bundles, link_signer, jobs, job_tables, queue })
    }

    /// `bundles`, when a folder, must sign with `config.link_secret` for its links to verify.
    pub fn new(config: Config, verifier: Verifier, store: DynStore, bundles: DynBundles) -> Self {
        let link_signer = link_signer(&config);
        let (jobs, job_tables, queue) = (unwired::jobs(), unwired::job_tables(), unwired::queue());
        Self { config, verifier, store, bundles, link_signer, jobs, job_tables, queue }
    }
}

/// The store adapter a config names, behind every port it serves.
enum Adapter {
    Sqlite(Arc<SqliteStore>),
    Dynamo(Arc<DynamoStore>),
}

impl App {
    /// The same app with these job ports (test kits wrap them in recorders).
    pub fn with_jobs(self, jobs: Arc<dyn Jobs>, job_tables: Arc<dyn JobTables>, queue: Arc<dyn JobQueue>) -> Self {
        Self { jobs, job_tables, queue, ..self }
    }
}

/// Creates the DynamoDB table and the S3 bucket a config names when they are missing: for local
/// stacks on a compatible server (`make run STORE=dynamodb`, `make bench`). In AWS the SAM
/// template creates them, and no function calls this.
pub async fn provision_local(config: &Config) -> Result<(), InitError> {
    if let StoreUrl::DynamoDb { table } = &config.store {
        DynamoStore::from_env(table)
            .await
            .create_table_if_missing()
            .await
            .map_err(|e| format!("table {table}: {e}"))?;
    }
    if let BundlesUrl::S3 { bucket, prefix } = &config.bundles {
        let s3 = s3::S3Bundles::from_env(bucket, prefix).await;
        s3.create_bucket_if_missing().await.map_err(|e| format!("bucket {bucket}: {e}"))?;
    }
    if let QueueUrl::Sqs(url) = &config.jobs_queue {
        let name = url.rsplit('/').next().unwrap_or_default();
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        let queue = SqsQueue::create(&sdk, name).await.map_err(|e| format!("queue {name}: {e}"))?;
        if queue.url() != url {
            return Err(
                format!("WORKSPACES_JOBS_QUEUE is {url}, but the server named the queue {}", queue.url()).into()
            );
        }
    }
    Ok(())
}

fn open_bundles(
    url: &BundlesUrl,
    signer: LinkSigner,
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<DynBundles, String> {
    match url {
        BundlesUrl::Folder(root) => {
            Ok(Arc::new(FolderBundles::open(root, signer).map_err(|e| format!("WORKSPACES_BUNDLES: {e}"))?))
        }
        BundlesUrl::S3 { bucket, prefix } => {
            let client = s3_client(sdk.ok_or("AWS SDK config not loaded")?);
            Ok(Arc::new(s3::S3Bundles::new(client, bucket.as_str(), prefix)))
        }
    }
}

/// An S3 client from the shared SDK config; a local S3 server (moto) has no per-bucket host
/// names, so requests are path-style when `AWS_ENDPOINT_URL_S3` is set.
pub(crate) fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let mut s3_config = aws_sdk_s3::config::Builder::from(sdk);
    if std::env::var(s3::ENDPOINT_VAR).is_ok_and(|v| !v.trim().is_empty()) {
        s3_config = s3_config.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(s3_config.build())
}

/// No secret only happens with S3 bundles (config checks it), whose links S3 presigns: a random
/// key there makes every local link fail, which is right as no local route serves S3.
fn link_signer(config: &Config) -> LinkSigner {
    config.link_secret.as_deref().map(LinkSigner::new).unwrap_or_else(LinkSigner::random)
}
