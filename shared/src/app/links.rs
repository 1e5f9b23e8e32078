//! The adapters a binary links. Each adapter lives in a crate of its own (`adapters/*`), and a
//! function's `main` names the ones it can use, so a deployed binary holds no code for a store
//! it never talks to (the compaction function no SQLite, a function that never touches bundles
//! no S3 client): cargo features would be unified across the workspace instead.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use crate::bundles::DynBundles;
use crate::queue::{JobQueue, QueueReceiver};
use crate::store::job_tables::JobTables;
use crate::store::jobs::Jobs;
use crate::store::{Blobs, Store};

/// Every port one store adapter serves: workspace records, tables (with job staging) and job
/// records, from one table or file.
pub trait StoreAdapter: Store + Jobs + JobTables {}
impl<T: Store + Jobs + JobTables> StoreAdapter for T {}

/// Both ends of a jobs queue.
pub trait QueueAdapter: JobQueue + QueueReceiver {}
impl<T: JobQueue + QueueReceiver> QueueAdapter for T {}

/// `sqlite://` stores and queues: the embedded adapter (`adapter-sqlite`).
pub trait EmbeddedLink: Sync {
    fn store(&self, path: &Path) -> Result<Arc<dyn StoreAdapter>, String>;
    fn queue(&self, path: &Path) -> Result<Arc<dyn QueueAdapter>, String>;
}

/// `dynamodb://` stores (`adapter-dynamodb`).
#[async_trait]
pub trait DynamoDbLink: Sync {
    /// `blobs` takes the rows too large for an item; without it such a row fails clearly.
    async fn store(&self, table: &str, blobs: Option<Arc<dyn Blobs>>) -> Result<Arc<dyn StoreAdapter>, String>;
    /// Creates the table when missing (local stacks on a compatible server only).
    async fn provision(&self, table: &str) -> Result<(), String>;
}

/// `s3://` bundle stores (`adapter-s3`).
#[async_trait]
pub trait S3Link: Sync {
    async fn bundles(&self, bucket: &str, prefix: &str) -> Result<DynBundles, String>;
    /// Creates the bucket when missing (local stacks only).
    async fn provision(&self, bucket: &str) -> Result<(), String>;
}

/// SQS job queues by URL (`adapter-sqs`).
#[async_trait]
pub trait SqsLink: Sync {
    async fn queue(&self, url: &str) -> Result<Arc<dyn QueueAdapter>, String>;
    /// Creates the queue `name` when missing (local stacks only); answers its URL.
    async fn provision(&self, name: &str) -> Result<String, String>;
}

/// The adapters a binary links; the wiring opens the one its configuration names, and a
/// configuration naming one the binary does not link fails at start, saying so.
#[derive(Clone, Copy, Default)]
pub struct Links {
    pub embedded: Option<&'static dyn EmbeddedLink>,
    pub dynamodb: Option<&'static dyn DynamoDbLink>,
    pub s3: Option<&'static dyn S3Link>,
    pub sqs: Option<&'static dyn SqsLink>,
}

impl Links {
    pub const NONE: Links = Links { embedded: None, dynamodb: None, s3: None, sqs: None };

    pub const fn with_embedded(self, link: &'static dyn EmbeddedLink) -> Links {
        Links { embedded: Some(link), ..self }
    }

    pub const fn with_dynamodb(self, link: &'static dyn DynamoDbLink) -> Links {
        Links { dynamodb: Some(link), ..self }
    }

    pub const fn with_s3(self, link: &'static dyn S3Link) -> Links {
        Links { s3: Some(link), ..self }
    }

    pub const fn with_sqs(self, link: &'static dyn SqsLink) -> Links {
        Links { sqs: Some(link), ..self }
    }

    /// The linked adapter, or an error saying the binary was built without it.
    pub fn embedded(&self) -> Result<&'static dyn EmbeddedLink, String> {
        self.embedded.ok_or_else(|| missing("sqlite://", "adapter-sqlite"))
    }

    pub fn dynamodb(&self) -> Result<&'static dyn DynamoDbLink, String> {
        self.dynamodb.ok_or_else(|| missing("dynamodb://", "adapter-dynamodb"))
    }

    pub fn s3(&self) -> Result<&'static dyn S3Link, String> {
        self.s3.ok_or_else(|| missing("s3://", "adapter-s3"))
    }

    pub fn sqs(&self) -> Result<&'static dyn SqsLink, String> {
        self.sqs.ok_or_else(|| missing("an SQS queue URL", "adapter-sqs"))
    }
}

fn missing(what: &str, adapter: &str) -> String {
    format!("this function is built without {adapter}, so it cannot use {what}; link it in the function's main")
}
