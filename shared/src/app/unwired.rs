//! Stand-ins for the adapters a function did not ask for: every call fails as a wiring bug (a
//! logged 500), never touches a backend, and names the capability its `main` is missing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::bundles::{BundleStore, ByteStream, DynBundles, PartedUpload, SentPart, Upload};
use crate::model::{Owner, Workspace, WorkspaceDraft};
use crate::queue::{JobMessage, JobQueue};
use crate::store::job_tables::{JobTables, StagedFinish};
use crate::store::jobs::{JobRecord, Jobs};
use crate::store::{Blobs, DynStore, Snapshot, StoreError, StoreResult, Tables, WorkspacePage, Workspaces};
use crate::tables::{Commit, Row, WsKey};

struct Unwired(&'static str);

impl Unwired {
    fn fail<T>(&self) -> StoreResult<T> {
        Err(StoreError::Internal(format!("wiring bug: this function's main does not ask for {}", self.0)))
    }
}

pub fn store() -> DynStore {
    Arc::new(Unwired("Needs::STORE"))
}

pub fn bundles() -> DynBundles {
    Arc::new(Unwired("Needs::BUNDLES"))
}

#[async_trait]
impl Workspaces for Unwired {
    async fn save_workspace(&self, _: &Owner, _: WorkspaceDraft) -> StoreResult<Workspace> {
        self.fail()
    }
    async fn get_workspace(&self, _: &Owner, _: &str) -> StoreResult<Option<Workspace>> {
        self.fail()
    }
    async fn list_workspaces(&self, _: &Owner, _: Option<&str>, _: usize) -> StoreResult<WorkspacePage> {
        self.fail()
    }
    async fn delete_workspace(&self, _: &Owner, _: &str) -> StoreResult<Option<u64>> {
        self.fail()
    }
}

#[async_trait]
impl Tables for Unwired {
    async fn snapshot(&self, _: &WsKey) -> StoreResult<Box<dyn Snapshot>> {
        self.fail()
    }
    async fn commit(&self, _: &WsKey, _: u64, _: Commit) -> StoreResult<u64> {
        self.fail()
    }
}

#[cfg(feature = "faults")]
impl crate::store::Faults for Unwired {
    fn inject_commit_fault(&self, _: Option<usize>) {}
}

#[async_trait]
impl Blobs for Unwired {
    async fn put_blob(&self, _: &str, _: Vec<u8>) -> StoreResult<()> {
        self.fail()
    }
    async fn get_blob(&self, _: &str) -> StoreResult<Option<Vec<u8>>> {
        self.fail()
    }
    async fn delete_blob(&self, _: &str) -> StoreResult<()> {
        self.fail()
    }
}

#[async_trait]
impl BundleStore for Unwired {
    async fn create_upload(&self, _: &str) -> StoreResult<Box<dyn Upload>> {
        self.fail()
    }
    async fn get(&self, _: &str, _: u64) -> StoreResult<Option<Vec<u8>>> {
        self.fail()
    }
    async fn open_stream(&self, _: &str) -> StoreResult<Option<(u64, ByteStream)>> {
        self.fail()
    }
    async fn read_range(&self, _: &str, _: u64, _: u64) -> StoreResult<Vec<u8>> {
        self.fail()
    }
    async fn head(&self, _: &str) -> StoreResult<Option<u64>> {
        self.fail()
    }
    async fn download_url(&self, _: &str, _: i64, _: &str) -> StoreResult<String> {
        self.fail()
    }
    async fn upload_url(&self, _: &str, _: i64, _: &str) -> StoreResult<String> {
        self.fail()
    }
    async fn parted_upload(&self, _: &str, _: u64, _: i64, _: &str) -> StoreResult<PartedUpload> {
        self.fail()
    }
    async fn upload_part(&self, _: &str, _: &str, _: u32, _: &[u8]) -> StoreResult<String> {
        self.fail()
    }
    async fn complete_parts(&self, _: &str, _: &str, _: &[SentPart]) -> StoreResult<()> {
        self.fail()
    }
    async fn sweep(&self, _: &str, _: Duration) -> StoreResult<usize> {
        self.fail()
    }
    async fn delete(&self, _: &str) -> StoreResult<()> {
        self.fail()
    }
    async fn resume_upload(&self, _: &str, _: &serde_json::Value) -> StoreResult<Box<dyn Upload>> {
        self.fail()
    }
}

pub fn jobs() -> Arc<dyn Jobs> {
    Arc::new(Unwired("Needs::JOBS"))
}

pub fn job_tables() -> Arc<dyn JobTables> {
    Arc::new(Unwired("Needs::TABLES"))
}

pub fn queue() -> Arc<dyn JobQueue> {
    Arc::new(Unwired("Needs::QUEUE"))
}

#[async_trait]
impl Jobs for Unwired {
    async fn create_job(&self, _: JobRecord) -> StoreResult<(JobRecord, bool)> {
        self.fail()
    }
    async fn get_job(&self, _: &Owner, _: &str) -> StoreResult<Option<JobRecord>> {
        self.fail()
    }
    async fn list_jobs(&self, _: &Owner, _: Option<&str>, _: usize) -> StoreResult<Vec<JobRecord>> {
        self.fail()
    }
    async fn update_job(&self, _: &JobRecord) -> StoreResult<JobRecord> {
        self.fail()
    }
}

#[async_trait]
impl JobTables for Unwired {
    async fn hold_revision(&self, _: &WsKey, _: &str, _: u64, _: u64) -> StoreResult<()> {
        self.fail()
    }
    async fn release_revision(&self, _: &WsKey, _: &str) -> StoreResult<()> {
        self.fail()
    }
    async fn snapshot_at(&self, _: &WsKey, _: u64) -> StoreResult<Option<Box<dyn Snapshot>>> {
        self.fail()
    }
    async fn begin_staging(&self, _: &WsKey, _: &str, _: &[(String, u64)]) -> StoreResult<()> {
        self.fail()
    }
    async fn stage_rows(&self, _: &WsKey, _: &str, _: &str, _: Vec<(String, Row)>) -> StoreResult<()> {
        self.fail()
    }
    async fn finish_staging(&self, _: &WsKey, _: &str, _: StagedFinish) -> StoreResult<u64> {
        self.fail()
    }
    async fn abort_staging(&self, _: &WsKey, _: &str) -> StoreResult<()> {
        self.fail()
    }
}

#[async_trait]
impl JobQueue for Unwired {
    async fn send(&self, _: &JobMessage) -> StoreResult<()> {
        self.fail()
    }
}
