//! What every function builds once at start and shares across invocations.

use crate::auth::Verifier;
use crate::bundles::{self, DynBundles, LinkSigner};
use crate::config::Config;
use crate::store::{self, DynStore};

pub struct App {
    pub config: Config,
    pub verifier: Verifier,
    pub store: DynStore,
    pub bundles: DynBundles,
    /// Verifies the folder store's links on the local bundle routes (same secret as `bundles`).
    pub link_signer: LinkSigner,
}

impl App {
    /// Reads the environment, builds the clients, and fails with a message that names the
    /// variable when something is wrong, so a misconfigured function never serves a request.
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Self::from_config(Config::from_env()?).await
    }

    /// Builds the clients a validated config names.
    pub async fn from_config(config: Config) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let verifier = Verifier::from_config(&config.jwt)?;
        let link_signer = link_signer(&config);
        let bundles = bundles::open(&config.bundles, link_signer.clone())
            .await
            .map_err(|e| format!("WORKSPACES_BUNDLES: {e}"))?;
        // Rows over DynamoDB's item limit are offloaded (under `rows/`) to the bundle store.
        let blobs: std::sync::Arc<dyn store::Blobs> = bundles.clone();
        let store = store::open(&config.store, blobs).await.map_err(|e| format!("WORKSPACES_STORE: {e}"))?;
        Ok(Self { config, verifier, store, bundles, link_signer })
    }

    /// `bundles`, when a folder, must sign with `config.link_secret` for its links to verify.
    pub fn new(config: Config, verifier: Verifier, store: DynStore, bundles: DynBundles) -> Self {
        let link_signer = link_signer(&config);
        Self { config, verifier, store, bundles, link_signer }
    }
}

/// No secret only happens with S3 bundles (config checks it), whose links S3 presigns: a random
/// key there makes every local link fail, which is right as no local route serves S3.
fn link_signer(config: &Config) -> LinkSigner {
    config.link_secret.as_deref().map(LinkSigner::new).unwrap_or_else(LinkSigner::random)
}
