//! What IAM must allow, declared next to the code that needs it, in two tables:
//!
//! - [`Op::needs`]: each storage operation (a method of `Workspaces`, `Tables`, `Snapshot`,
//!   `Blobs`, `BundleStore`, `Jobs`, `JobQueue` or `QueueReceiver`) → the IAM actions, with resources, its DynamoDB / S3 adapter
//!   needs;
//! - [`FUNCTIONS`]: each Lambda function → the operations its handler reaches.
//!
//! Three tests keep them honest: `tests/tests/iam_calls.rs` drives every operation against
//! moto and checks each real API call against [`Op::needs`]; `tests/tests/iam_reach.rs` drives
//! every endpoint and checks the operations reached against [`FUNCTIONS`]; and
//! `tests/tests/iam_agree.rs` checks that `template.yaml` grants each deployed function exactly
//! what the two tables imply ([`Function::needs`]), no less and no more.
//!
//! IAM semantics the declarations follow: `TransactWriteItems` has no action of its own, each
//! item is checked as its kind (ConditionCheck → `ConditionCheckItem`, Put → `PutItem`, ...);
//! `BatchWriteItem` / `BatchGetItem` are their own actions; every S3 call that writes an object
//! (PutObject and the multipart Create/UploadPart/Complete) is `s3:PutObject`, HeadObject is
//! `s3:GetObject`, and ListObjectsV2 is `s3:ListBucket` on the bucket itself.

/// The table's one index (workspaces by owner and update time), as template.yaml declares it
/// and `adapter-dynamodb` queries it.
pub const GSI_BY_UPDATED: &str = "by_updated";
use std::collections::{BTreeMap, BTreeSet};

use crate::api::bundles::BUNDLE_PREFIX;

/// Where the DynamoDB store puts rows too large for an item (`store/dynamodb/layout.rs`,
/// `blob_key`); `iam_calls.rs` checks the real keys against it.
pub const ROW_BLOB_PREFIX: &str = "rows/";

/// What an action applies to, named as in `template.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// The DynamoDB table (`!GetAtt Table.Arn`).
    Table,
    /// One of its secondary indexes (`${Table.Arn}/index/<name>`).
    Index(&'static str),
    /// The bundles bucket itself (`!GetAtt BundlesBucket.Arn`).
    Bucket,
    /// The bucket's objects under a key prefix (`${BundlesBucket.Arn}/<prefix>*`).
    Objects(&'static str),
    /// The jobs queue (`!GetAtt JobsQueue.Arn`).
    Queue,
}

/// One IAM action on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    pub action: &'static str,
    pub resource: Resource,
}

const fn table(action: &'static str) -> Grant {
    Grant { action, resource: Resource::Table }
}

const fn queue(action: &'static str) -> Grant {
    Grant { action, resource: Resource::Queue }
}

const fn rows(action: &'static str) -> Grant {
    Grant { action, resource: Resource::Objects(ROW_BLOB_PREFIX) }
}

/// Handlers keep every bundle under one prefix (`api::bundles`); `iam_reach.rs` checks the keys.
const fn bundles(action: &'static str) -> Grant {
    Grant { action, resource: Resource::Objects(BUNDLE_PREFIX) }
}

/// Without ListBucket S3 answers 403 instead of 404 for a missing key, and the adapters read
/// "absent" only from a 404 (an unknown or expired bundle id would be a 500).
const MISSING_IS_404: (Grant, &str) = (
    Grant { action: "s3:ListBucket", resource: Resource::Bucket },
    "S3 answers 404 rather than 403 for a missing key only with ListBucket",
);

/// What one operation needs.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    /// What the API calls the adapter makes need (checked against real calls on moto).
    pub calls: &'static [Grant],
    /// What it needs without making the call itself, and why: S3 checks a presigned URL against
    /// the permissions of the role that signed it, when the link is used.
    pub implied: &'static [(Grant, &'static str)],
    /// Operations it performs in turn: the DynamoDB store keeps oversized rows in `Blobs`.
    pub via: &'static [Op],
}

macro_rules! ops {
    ($($op:ident => $name:literal,)*) => {
        /// A storage operation: one method of a storage trait.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Op { $($op,)* }

        impl Op {
            /// Every operation, in declaration order.
            pub const ALL: &'static [Op] = &[$(Op::$op,)*];

            /// `Trait::method`.
            pub const fn name(self) -> &'static str {
                match self { $(Op::$op => $name,)* }
            }
        }
    };
}

ops! {
    SaveWorkspace => "Workspaces::save_workspace",
    GetWorkspace => "Workspaces::get_workspace",
    ListWorkspaces => "Workspaces::list_workspaces",
    ListTables => "Tables::snapshot",
    ReadRows => "Snapshot::read_rows",
    GetRows => "Snapshot::get_rows",
    Commit => "Tables::commit",
    DeleteWorkspace => "Workspaces::delete_workspace",
    PutBlob => "Blobs::put_blob",
    GetBlob => "Blobs::get_blob",
    DeleteBlob => "Blobs::delete_blob",
    CreateUpload => "BundleStore::create_upload",
    ResumeUpload => "BundleStore::resume_upload",
    Get => "BundleStore::get",
    OpenStream => "BundleStore::open_stream",
    Head => "BundleStore::head",
    DownloadUrl => "BundleStore::download_url",
    UploadUrl => "BundleStore::upload_url",
    PartedUpload => "BundleStore::parted_upload",
    UploadPart => "BundleStore::upload_part",
    CompleteParts => "BundleStore::complete_parts",
    Sweep => "BundleStore::sweep",
    Delete => "BundleStore::delete",
    CheckLayout => "DynamoStore::check_layout",
    Compact => "DynamoStore::compact_marked",
    // Jobs: the job records (`store::jobs`) and the jobs queue (`queue`).
    CreateJob => "Jobs::create_job",
    GetJob => "Jobs::get_job",
    ListJobs => "Jobs::list_jobs",
    UpdateJob => "Jobs::update_job",
    SendJob => "JobQueue::send",
    ReceiveJobs => "QueueReceiver::receive",
    DeleteJobMessage => "QueueReceiver::delete",
    // What jobs need of the tables (`store::job_tables::JobTables`).
    HoldRevision => "JobTables::hold_revision",
    ReleaseRevision => "JobTables::release_revision",
    SnapshotAt => "JobTables::snapshot_at",
    BeginStaging => "JobTables::begin_staging",
    StageRows => "JobTables::stage_rows",
    FinishStaging => "JobTables::finish_staging",
    AbortStaging => "JobTables::abort_staging",

    // The streaming import (`api::import`): one piece of a staged bundle at a time.
    ReadRange => "BundleStore::read_range",
}

/// A commit: the head, the touched tables' entries and the changed keys (GetItem, Query,
/// BatchGetItem); a small one is one TransactWriteItems (Puts of rows and entries, the head's
/// Update, the workspace's conditional Put when it creates it); a large one first puts its
/// record and stages rows and entries (PutItem, BatchWriteItem).
const COMMIT: &[Grant] = &[
    table("dynamodb:GetItem"),
    table("dynamodb:Query"),
    table("dynamodb:BatchGetItem"),
    table("dynamodb:PutItem"),
    table("dynamodb:UpdateItem"),
    table("dynamodb:BatchWriteItem"),
];

/// A delete: the workspace, the head and the catalog read (to count rows), then one
/// TransactWriteItems (Delete of the workspace; the head's Update, or Put when it had none).
const DELETE: &[Grant] = &[
    table("dynamodb:GetItem"),
    table("dynamodb:Query"),
    table("dynamodb:BatchGetItem"),
    table("dynamodb:DeleteItem"),
    table("dynamodb:UpdateItem"),
    table("dynamodb:PutItem"),
];

/// Compaction: the marked heads (the GSI), each generation's items (Query), folds written and
/// garbage deleted in batches, a fold published as a commit (TransactWriteItems: entries' Puts,
/// the head's Update), records marked aborting and marks cleared (UpdateItem).
const COMPACT: &[Grant] = &[
    LIST_QUERY,
    table("dynamodb:GetItem"),
    table("dynamodb:Query"),
    table("dynamodb:PutItem"),
    table("dynamodb:UpdateItem"),
    table("dynamodb:BatchWriteItem"),
];

/// A staging's finish: its pointer, record, the head and the workspace (GetItem), the touched
/// tables' entries and the staged keys when it counts them (Query), their rows in the current
/// parts and the log of staged entries (BatchGetItem), its entries staged (BatchWriteItem), then
/// the record kept alive (UpdateItem) and one TransactWriteItems: the head's, the record's and
/// the pointer's Updates, the log's Put and the workspace's conditional Put.
const FINISH_STAGING: &[Grant] = &[
    table("dynamodb:GetItem"),
    table("dynamodb:Query"),
    table("dynamodb:BatchGetItem"),
    table("dynamodb:BatchWriteItem"),
    table("dynamodb:UpdateItem"),
    table("dynamodb:PutItem"),
];

/// An abort: pointer and record (GetItem), both marked aborting (UpdateItem), the staged parts
/// read (Query) and deleted in batches (BatchWriteItem).
const ABORT_STAGING: &[Grant] = &[
    table("dynamodb:GetItem"),
    table("dynamodb:UpdateItem"),
    table("dynamodb:Query"),
    table("dynamodb:BatchWriteItem"),
];

/// Listing reads the GSI only.
const LIST_QUERY: Grant = Grant { action: "dynamodb:Query", resource: Resource::Index(GSI_BY_UPDATED) };

impl Op {
    /// What this operation needs from IAM. Exhaustive: a new operation does not compile
    /// until it is declared here.
    pub const fn needs(self) -> Needs {
        const fn calls(calls: &'static [Grant]) -> Needs {
            Needs { calls, implied: &[], via: &[] }
        }
        match self {
            // One UpdateItem; a refused one reads the workspace to word its 409.
            Op::SaveWorkspace => {
                Needs { calls: const { &[table("dynamodb:UpdateItem")] }, implied: &[], via: &[Op::GetWorkspace] }
            }
            Op::GetWorkspace | Op::CheckLayout => calls(const { &[table("dynamodb:GetItem")] }),
            Op::ListWorkspaces => calls(const { &[LIST_QUERY] }),
            // Taking a snapshot: the head, every catalog entry, the log of staged ones.
            Op::ListTables => {
                calls(const { &[table("dynamodb:GetItem"), table("dynamodb:Query"), table("dynamodb:BatchGetItem")] })
            }
            // Its reads then go to the parts the entries name, oversized rows to their blobs.
            Op::ReadRows => Needs { calls: const { &[table("dynamodb:Query")] }, implied: &[], via: &[Op::GetBlob] },
            Op::GetRows => {
                Needs { calls: const { &[table("dynamodb:BatchGetItem")] }, implied: &[], via: &[Op::GetBlob] }
            }
            // Writes new rows' blobs.
            Op::Commit => Needs { calls: COMMIT, implied: &[], via: &[Op::PutBlob] },
            Op::DeleteWorkspace => calls(DELETE),
            // Folds copy oversized rows' blobs (read + write); garbage takes its blobs with it.
            Op::Compact => Needs { calls: COMPACT, implied: &[], via: &[Op::GetBlob, Op::PutBlob, Op::DeleteBlob] },
            Op::PutBlob => calls(const { &[rows("s3:PutObject")] }),
            Op::GetBlob => calls(const { &[rows("s3:GetObject")] }),
            Op::DeleteBlob => calls(const { &[rows("s3:DeleteObject")] }),
            // One PutObject, or a multipart upload (all `s3:PutObject`); abort ends the latter.
            Op::CreateUpload => calls(const { &[bundles("s3:PutObject"), bundles("s3:AbortMultipartUpload")] }),
            // An export job's upload opened again: its parts, completion or abort, as created.
            Op::ResumeUpload => calls(const { &[bundles("s3:PutObject"), bundles("s3:AbortMultipartUpload")] }),
            // GetObject (HeadObject is `s3:GetObject` too).
            Op::Get | Op::OpenStream | Op::Head => {
                Needs { calls: const { &[bundles("s3:GetObject")] }, implied: &[MISSING_IS_404], via: &[] }
            }
            Op::DownloadUrl => Needs {
                calls: &[],
                implied: const { &[(bundles("s3:GetObject"), "the presigned GET works only if the signer may GetObject")] },
                via: &[],
            },
            Op::UploadUrl => Needs {
                calls: &[],
                implied: const { &[(bundles("s3:PutObject"), "the presigned PUT works only if the signer may PutObject")] },
                via: &[],
            },
            // CreateMultipartUpload; the client then uploads and completes through presigned URLs.
            Op::PartedUpload => Needs {
                calls: const { &[bundles("s3:PutObject")] },
                implied: const {
                    &[(bundles("s3:PutObject"), "presigned UploadPart and CompleteMultipartUpload need PutObject")]
                },
                via: &[],
            },
            // UploadPart; CompleteMultipartUpload.
            Op::UploadPart | Op::CompleteParts => calls(const { &[bundles("s3:PutObject")] }),
            // S3 leaves expiry to the bucket's lifecycle rule: no call.
            Op::Sweep => calls(&[]),
            Op::Delete => calls(const { &[bundles("s3:DeleteObject")] }),

            // Jobs (`adapters/dynamodb/src/jobs.rs`, `adapters/sqs/src/lib.rs`).
            // One TransactWriteItems of two Puts (the job, its key's item); when the key is held,
            // the key's item and the job it names are read, and the key may be taken over.
            Op::CreateJob => calls(const { &[table("dynamodb:PutItem"), table("dynamodb:GetItem")] }),
            Op::GetJob => calls(const { &[table("dynamodb:GetItem")] }),
            // A Query of the owner's job partition (the table itself, no index).
            Op::ListJobs => calls(const { &[table("dynamodb:Query")] }),
            // A conditional PutItem; when the job's expiry changes, its key's item follows.
            Op::UpdateJob => calls(const { &[table("dynamodb:PutItem"), table("dynamodb:UpdateItem")] }),
            Op::SendJob => calls(const { &[queue("sqs:SendMessage")] }),
            Op::ReceiveJobs => calls(const { &[queue("sqs:ReceiveMessage")] }),
            Op::DeleteJobMessage => calls(const { &[queue("sqs:DeleteMessage")] }),
            // A lease item put, and deleted.
            Op::HoldRevision => calls(const { &[table("dynamodb:PutItem")] }),
            Op::ReleaseRevision => calls(const { &[table("dynamodb:DeleteItem")] }),
            // As a snapshot: the head, the catalog, the log of staged entries.
            Op::SnapshotAt => {
                calls(const { &[table("dynamodb:GetItem"), table("dynamodb:Query"), table("dynamodb:BatchGetItem")] })
            }
            // Its pointer looked up and the head read, then the record and the pointer put.
            Op::BeginStaging => calls(const { &[table("dynamodb:GetItem"), table("dynamodb:PutItem")] }),
            // Pointer and record read, the record kept alive and told of oversized rows' blobs,
            // which it writes, then the rows in batches.
            Op::StageRows => Needs {
                calls: const { &[table("dynamodb:GetItem"), table("dynamodb:UpdateItem"), table("dynamodb:BatchWriteItem")] },
                implied: &[],
                via: &[Op::PutBlob],
            },
            Op::FinishStaging => calls(FINISH_STAGING),
            // Staged blobs go with the rows.
            Op::AbortStaging => Needs { calls: ABORT_STAGING, implied: &[], via: &[Op::DeleteBlob] },
            // A ranged GetObject; an object gone meanwhile must read as absent, not as a 403.
            Op::ReadRange => {
                Needs { calls: const { &[bundles("s3:GetObject")] }, implied: &[MISSING_IS_404], via: &[] }
            }
        }
    }

    /// An operation of the DynamoDB store's item table (which checks the table's layout first).
    pub const fn is_table_store(self) -> bool {
        matches!(
            self,
            Op::SaveWorkspace
                | Op::GetWorkspace
                | Op::ListWorkspaces
                | Op::ListTables
                | Op::ReadRows
                | Op::GetRows
                | Op::Commit
                | Op::DeleteWorkspace
                | Op::Compact
                | Op::CreateJob
                | Op::GetJob
                | Op::ListJobs
                | Op::UpdateJob
                | Op::HoldRevision
                | Op::ReleaseRevision
                | Op::SnapshotAt
                | Op::BeginStaging
                | Op::StageRows
                | Op::FinishStaging
                | Op::AbortStaging
        )
    }

    /// Everything this operation needs, its `via` operations' needs included, each grant
    /// with the operations that need it.
    pub fn all_needs(self) -> BTreeMap<Grant, BTreeSet<Op>> {
        let mut out: BTreeMap<Grant, BTreeSet<Op>> = BTreeMap::new();
        let mut todo = vec![self];
        let mut seen = BTreeSet::new();
        while let Some(op) = todo.pop() {
            if !seen.insert(op) {
                continue;
            }
            let needs = op.needs();
            for grant in needs.calls.iter().chain(needs.implied.iter().map(|(g, _)| g)) {
                out.entry(*grant).or_default().insert(op);
            }
            todo.extend(needs.via);
        }
        out
    }
}

/// A Lambda function and the storage operations its handler may reach.
#[derive(Debug, Clone, Copy)]
pub struct Function {
    /// The binary (`functions/<name>`, the template's `BuildProperties.Binary`).
    pub name: &'static str,
    /// In `template.yaml` (false for the local-only bundle link functions).
    pub deployed: bool,
    pub ops: &'static [Op],
}

impl Function {
    /// Every grant the function's role needs, with the operations that need it. A function that
    /// reaches the DynamoDB store also checks its layout, once per process, on first use.
    pub fn needs(&self) -> BTreeMap<Grant, BTreeSet<Op>> {
        let mut out: BTreeMap<Grant, BTreeSet<Op>> = BTreeMap::new();
        let layout = self.ops.iter().any(|op| op.is_table_store()).then_some(&Op::CheckLayout);
        for op in self.ops.iter().chain(layout) {
            for (grant, by) in op.all_needs() {
                out.entry(grant).or_default().extend(by);
            }
        }
        out
    }
}

const fn deployed(name: &'static str, ops: &'static [Op]) -> Function {
    Function { name, deployed: true, ops }
}

const fn local_only(name: &'static str, ops: &'static [Op]) -> Function {
    Function { name, deployed: false, ops }
}

/// Every function: each `function` of `routes::ROUTES`, then the ones no route reaches.
pub const FUNCTIONS: &[Function] = &[
    deployed("save-workspace", &[Op::SaveWorkspace]),
    deployed("list-workspaces", &[Op::ListWorkspaces]),
    deployed("load-workspace", &[Op::GetWorkspace]),
    deployed("cleanup-workspace", &[Op::GetWorkspace, Op::ListTables, Op::DeleteWorkspace]),
    deployed(
        "export-tables",
        &[
            Op::GetWorkspace,
            Op::ListTables,
            Op::ReadRows,
            Op::Sweep,
            Op::CreateUpload,
            Op::DownloadUrl,
            Op::CreateJob,
            Op::SendJob,
        ],
    ),
    // `"async": true`: an inline bundle copied into the bundle store (deleted again when the
    // request found its job), a staged one checked to exist, the job stored and queued.
    deployed(
        "import-tables",
        &[
            Op::OpenStream,
            Op::ReadRange,
            Op::GetWorkspace,
            Op::ListTables,
            Op::GetRows,
            Op::Commit,
            Op::Head,
            Op::CreateUpload,
            Op::Delete,
            Op::CreateJob,
            Op::SendJob,
        ],
    ),
    deployed("create-bundle-upload", &[Op::Sweep, Op::UploadUrl, Op::PartedUpload, Op::CreateUpload]),
    // The upload's record read (and deleted once joined), then the parts joined.
    deployed("complete-bundle-upload", &[Op::Get, Op::CompleteParts, Op::Delete]),
    deployed("save-project", &[Op::GetWorkspace, Op::GetRows, Op::ListTables, Op::Commit]),
    deployed("list-projects", &[Op::GetWorkspace, Op::ListTables, Op::ReadRows]),
    deployed("load-project", &[Op::GetWorkspace, Op::ListTables, Op::GetRows]),
    deployed("cleanup-project", &[Op::GetWorkspace, Op::GetRows, Op::ReadRows, Op::ListTables, Op::Commit]),
    deployed("get-job", &[Op::GetJob, Op::DownloadUrl]),
    deployed("list-jobs", &[Op::ListJobs, Op::DownloadUrl]),
    deployed("cancel-job", &[Op::GetJob, Op::UpdateJob]),
    local_only("download-bundle", &[Op::OpenStream]),
    local_only("upload-bundle", &[Op::CreateUpload, Op::UploadPart]),
    // Deployed functions that no route reaches go here, with `deployed(...)`: iam_agree.rs then
    // requires them in the template too.
    deployed("compact-tables", &[Op::Compact]),
    // Export jobs: the job, its workspace, one revision held and read again in each invocation,
    // a resumable upload, and the queue to go on in a fresh invocation. Import jobs: the bundle
    // streamed and read by ranges, the plan kept in and read back from the bundle store, the
    // stored rows of each chunk's keys, the staging, and the plan and bundle copy deleted at the end.
    deployed(
        "jobs-worker",
        &[
            Op::GetJob,
            Op::UpdateJob,
            Op::GetWorkspace,
            Op::ListTables,
            Op::SnapshotAt,
            Op::HoldRevision,
            Op::ReleaseRevision,
            Op::ReadRows,
            Op::GetRows,
            Op::CreateUpload,
            Op::ResumeUpload,
            Op::Get,
            Op::Delete,
            Op::OpenStream,
            Op::ReadRange,
            Op::BeginStaging,
            Op::StageRows,
            Op::FinishStaging,
            Op::AbortStaging,
            Op::SendJob,
        ],
    ),
];

/// The function named `name`.
pub fn function(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::ROUTES;

    #[test]
    fn every_routed_function_is_declared_once_and_deployed_unless_local_only() {
        for route in ROUTES {
            let declared: Vec<_> = FUNCTIONS.iter().filter(|f| f.name == route.function).collect();
            assert_eq!(declared.len(), 1, "{} must be in iam::FUNCTIONS exactly once", route.function);
            assert_eq!(declared[0].deployed, !route.local_only, "{}: deployed is !local_only", route.function);
        }
        for f in FUNCTIONS.iter().filter(|f| !ROUTES.iter().any(|r| r.function == f.name)) {
            assert!(f.deployed, "{}: a function no route reaches only exists deployed", f.name);
        }
        let names: BTreeSet<_> = FUNCTIONS.iter().map(|f| f.name).collect();
        assert_eq!(names.len(), FUNCTIONS.len(), "a function appears twice in iam::FUNCTIONS");
    }

    #[test]
    fn prefixes_are_folders() {
        assert!(ROW_BLOB_PREFIX.ends_with('/') && BUNDLE_PREFIX.ends_with('/'));
        assert!(!ROW_BLOB_PREFIX.starts_with(BUNDLE_PREFIX) && !BUNDLE_PREFIX.starts_with(ROW_BLOB_PREFIX));
    }
}
