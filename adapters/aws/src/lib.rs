//! What the AWS adapters (DynamoDB, S3, SQS) share: one SDK configuration per process, and how
//! an SDK failure reaches the storage port.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use shared::store::StoreError;
use tokio::sync::OnceCell;

pub use aws_config::SdkConfig;

static SDK_CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

/// The SDK configuration from the environment (region, credentials, `AWS_ENDPOINT_URL_*`),
/// loaded on first use and shared by every client of the process: a function asking for
/// DynamoDB, S3 and SQS resolves its region and credential chain once. Loading makes no
/// network call; credentials are fetched lazily by the first request that needs them.
pub async fn sdk_config() -> &'static SdkConfig {
    SDK_CONFIG
        .get_or_init(|| aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client()).load())
        .await
}

/// The one HTTPS client: hyper 1 and rustls on ring (the SDK's default would be aws-lc-rs).
/// Plain `http://` endpoints (a local compatible server) work through it too.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// Maps an AWS SDK failure (DynamoDB, S3 and SQS alike) onto the port: throttling (the
/// service's `retryable_codes`), timeouts and network failures are `Unavailable` (the SDK has
/// already retried them; the caller may, later), anything else `Internal`. The detail is logged
/// only.
pub fn sdk_error<E, R>(service: &str, op: &str, err: SdkError<E, R>, retryable_codes: &[&str]) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let unavailable = match &err {
        SdkError::TimeoutError(_) => true,
        // `is_user` means we built a bad request: not something a retry fixes.
        SdkError::DispatchFailure(failure) => !failure.is_user(),
        SdkError::ServiceError(_) => err.code().is_some_and(|c| retryable_codes.contains(&c)),
        _ => false,
    };
    let detail = format!("{service} {op}: {}", DisplayErrorContext(&err));
    if unavailable {
        StoreError::Unavailable(detail)
    } else {
        StoreError::Internal(detail)
    }
}
