//! What the AWS adapters (DynamoDB, S3, SQS) share: one SDK configuration per process, and how
//! an SDK failure reaches the storage port.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use shared::store::StoreError;
use tokio::sync::OnceCell;

pub use aws_types::SdkConfig;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::{RuntimeComponents, RuntimeComponentsBuilder};
use aws_smithy_types::config_bag::ConfigBag;
use aws_types::region::Region;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

static SDK_CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

/// The SDK configuration, made once per process and shared by every client of it (DynamoDB,
/// S3 and SQS of one function resolve it once), from the environment Lambda gives a function
/// and nothing else: the region (`AWS_REGION`), the execution role's credentials
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and endpoint overrides
/// (`AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`, for a local compatible server).
///
/// Not `aws_config::load()`: its default chains read `~/.aws` profile files and build an STS
/// client for web-identity credentials at init, which loads the TLS root certificates before
/// the first request (half of a cold start, docs/benchmarks.md) and links STS, SSO, IMDS and the
/// profile parser into every function (≈1 MB). Nothing here touches the network or a file.
pub async fn sdk_config() -> &'static SdkConfig {
    SDK_CONFIG.get_or_init(|| async { environment_config() }).await
}

fn environment_config() -> SdkConfig {
    let region = ["AWS_REGION", "AWS_DEFAULT_REGION"].iter().find_map(|name| non_empty_env(name)).map(Region::new);
    SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(region)
        .credentials_provider(SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()))
        .service_config(EnvironmentServiceConfig)
        .http_client(https_client())
        .build()
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Per-service settings from the environment, as the SDK names them: `AWS_ENDPOINT_URL_DYNAMODB`
/// (the variable, then the service id in upper snake case) before the global `AWS_ENDPOINT_URL`.
#[derive(Debug)]
struct EnvironmentServiceConfig;

impl LoadServiceConfig for EnvironmentServiceConfig {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        let service = key.service_id().trim().replace([' ', '-'], "_").to_ascii_uppercase();
        non_empty_env(&format!("{}_{service}", key.env())).or_else(|| non_empty_env(key.env()))
    }
}

/// The one HTTPS client: hyper 1 and rustls on ring (the SDK's default would be aws-lc-rs).
/// Plain `http://` endpoints (a local compatible server) work through it too. Its connector,
/// and with it the system's root certificates, is made on a client's first request, not when
/// the client is built at init ([`DeferredConnector`]).
pub fn https_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let client = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    SharedHttpClient::new(DeferredConnector(client))
}

/// Delegates to the SDK's hyper client but skips its build-time validation, which makes a
/// connector (reading and parsing every root certificate of the system, ~5 ms) as each SDK
/// client is constructed. The connector is made and cached by the first `http_connector` call,
/// on the first request, exactly as it would be after the validation; a configuration the
/// validation would refuse fails that first request instead.
#[derive(Debug)]
struct DeferredConnector(SharedHttpClient);

impl HttpClient for DeferredConnector {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn validate_base_client_config(&self, _: &RuntimeComponentsBuilder, _: &ConfigBag) -> Result<(), BoxError> {
        Ok(())
    }

    fn validate_final_config(&self, _: &RuntimeComponents, _: &ConfigBag) -> Result<(), BoxError> {
        Ok(())
    }

    fn connector_metadata(&self) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.0.connector_metadata()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(service_id: &'a str, env: &'a str) -> ServiceConfigKey<'a> {
        ServiceConfigKey::builder()
            .service_id(service_id)
            .env(env)
            .profile("endpoint_url")
            .build()
            .expect("complete key")
    }

    // A variable name of this test's own, so no other test or the runner's environment interferes.
    #[test]
    fn the_service_variable_wins_over_the_global_one_and_blank_is_unset() {
        let global = "WS_ADAPTER_AWS_TEST_URL";
        std::env::set_var(global, "http://global");
        assert_eq!(EnvironmentServiceConfig.load_config(key("Dynamo DB", global)).as_deref(), Some("http://global"));
        std::env::set_var(format!("{global}_DYNAMO_DB"), "http://dynamo");
        assert_eq!(EnvironmentServiceConfig.load_config(key("Dynamo DB", global)).as_deref(), Some("http://dynamo"));
        std::env::set_var(format!("{global}_DYNAMO_DB"), " ");
        assert_eq!(EnvironmentServiceConfig.load_config(key("Dynamo DB", global)).as_deref(), Some("http://global"));
        std::env::remove_var(global);
        assert_eq!(EnvironmentServiceConfig.load_config(key("Dynamo DB", global)), None);
    }
}
