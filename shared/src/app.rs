//! What a function builds once at start and shares across invocations, and the one place that
//! wires adapters together: a function names its [`Needs`] and gets only those clients.

use std::error::Error;
use std::sync::Arc;

use crate::auth::Verifier;
use crate::bundles::{folder::FolderBundles, DynBundles, LinkSigner};
use crate::config::{BundlesUrl, Config, QueueUrl, StoreUrl};
use crate::queue::JobQueue;
use crate::store::job_tables::JobTables;
use crate::store::jobs::Jobs;
use crate::store::{Blobs, DynStore};

mod links;
mod unwired;

pub use links::{DynamoDbLink, EmbeddedLink, Links, QueueAdapter, S3Link, SqsLink, StoreAdapter};

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
    /// Reads the environment and builds what `needs` names with the adapters `links` holds,
    /// failing with a message that names the variable when something is wrong, so a
    /// misconfigured function never serves a request.
    pub async fn from_env(needs: Needs, links: Links) -> Result<Self, InitError> {
        Self::wire(Config::from_env()?, needs, links).await
    }

    /// Every client a validated config names (for test kits and tools).
    pub async fn from_config(config: Config, links: Links) -> Result<Self, InitError> {
        Self::wire(config, Needs::ALL, links).await
    }

    /// Builds the clients `needs` names and no others. The AWS adapters share one SDK
    /// configuration, loaded once (`adapter-aws`); nothing here makes a network call.
    pub async fn wire(config: Config, needs: Needs, links: Links) -> Result<Self, InitError> {
        let verifier = Verifier::from_config(&config.jwt)?;
        let link_signer = link_signer(&config);
        let dynamo = (needs.store || needs.jobs) && matches!(config.store, StoreUrl::DynamoDb { .. });
        // SQLite keeps rows of any size itself; DynamoDB offloads large ones to the bundle store.
        let want_bundles = needs.bundles || (needs.rows && dynamo);
        let bundle_store = if want_bundles {
            Some(
                open_bundles(&config.bundles, link_signer.clone(), links)
                    .await
                    .map_err(|e| format!("WORKSPACES_BUNDLES: {e}"))?,
            )
        } else {
            None
        };
        // One adapter serves the workspace records, the tables and the job records.
        let adapter = if needs.store || needs.jobs {
            // Without `rows`, a large row on DynamoDB fails clearly ("no blob store is configured").
            let blobs = bundle_store.clone().filter(|_| needs.rows).map(|b| b as Arc<dyn Blobs>);
            Some(open_store(&config.store, blobs, links).await.map_err(|e| format!("WORKSPACES_STORE: {e}"))?)
        } else {
            None
        };
        let store: DynStore = match (&adapter, needs.store) {
            (Some(a), true) => a.clone(),
            _ => unwired::store(),
        };
        let jobs: Arc<dyn Jobs> = match (&adapter, needs.jobs) {
            (Some(a), true) => a.clone(),
            _ => unwired::jobs(),
        };
        let job_tables: Arc<dyn JobTables> = match (&adapter, needs.rows) {
            (Some(a), true) => a.clone(),
            _ => unwired::job_tables(),
        };
        let queue: Arc<dyn JobQueue> = if needs.queue {
            open_queue(&config.jobs_queue, links).await.map_err(|e| format!("WORKSPACES_JOBS_QUEUE: {e}"))?
        } else {
            unwired::queue()
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

impl App {
    /// The same app with these job ports (test kits wrap them in recorders).
    pub fn with_jobs(self, jobs: Arc<dyn Jobs>, job_tables: Arc<dyn JobTables>, queue: Arc<dyn JobQueue>) -> Self {
        Self { jobs, job_tables, queue, ..self }
    }
}

/// Creates the DynamoDB table, the S3 bucket and the SQS queue a config names when they are
/// missing: for local stacks on a compatible server (`make run STORE=dynamodb`, `make bench`).
/// In AWS the SAM template creates them, and no function calls this.
pub async fn provision_local(config: &Config, links: Links) -> Result<(), InitError> {
    if let StoreUrl::DynamoDb { table } = &config.store {
        links.dynamodb()?.provision(table).await.map_err(|e| format!("table {table}: {e}"))?;
    }
    if let BundlesUrl::S3 { bucket, .. } = &config.bundles {
        links.s3()?.provision(bucket).await.map_err(|e| format!("bucket {bucket}: {e}"))?;
    }
    if let QueueUrl::Sqs(url) = &config.jobs_queue {
        let name = url.rsplit('/').next().unwrap_or_default();
        let created = links.sqs()?.provision(name).await.map_err(|e| format!("queue {name}: {e}"))?;
        if &created != url {
            return Err(format!("WORKSPACES_JOBS_QUEUE is {url}, but the server named the queue {created}").into());
        }
    }
    Ok(())
}

async fn open_store(
    url: &StoreUrl,
    blobs: Option<Arc<dyn Blobs>>,
    links: Links,
) -> Result<Arc<dyn StoreAdapter>, String> {
    match url {
        StoreUrl::Sqlite(path) => links.embedded()?.store(path),
        StoreUrl::DynamoDb { table } => links.dynamodb()?.store(table, blobs).await,
    }
}

async fn open_bundles(url: &BundlesUrl, signer: LinkSigner, links: Links) -> Result<DynBundles, String> {
    match url {
        BundlesUrl::Folder(root) => Ok(Arc::new(FolderBundles::open(root, signer).map_err(|e| e.to_string())?)),
        BundlesUrl::S3 { bucket, prefix } => links.s3()?.bundles(bucket.as_str(), prefix).await,
    }
}

/// The jobs queue `url` names, both ends (the sending side for functions; the receiving side
/// for what stands in for Lambda's event source mapping: the local dispatcher, the bench).
pub async fn open_queue(url: &QueueUrl, links: Links) -> Result<Arc<dyn QueueAdapter>, String> {
    match url {
        QueueUrl::Sqlite(path) => links.embedded()?.queue(path),
        QueueUrl::Sqs(url) => links.sqs()?.queue(url).await,
    }
}

/// No secret only happens with S3 bundles (config checks it), whose links S3 presigns: a random
/// key there makes every local link fail, which is right as no local route serves S3.
fn link_signer(config: &Config) -> LinkSigner {
    config.link_secret.as_deref().map(LinkSigner::new).unwrap_or_else(LinkSigner::random)
}
