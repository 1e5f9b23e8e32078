//! What every function builds once at start and shares across invocations.

use crate::auth::Verifier;
use crate::config::Config;
use crate::store::{self, DynStore};

pub struct App {
    pub config: Config,
    pub verifier: Verifier,
    pub store: DynStore,
}

impl App {
    /// Reads the environment, builds the clients, and fails with a message that names the
    /// variable when something is wrong, so a misconfigured function never serves a request.
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let config = Config::from_env()?;
        let verifier = Verifier::from_config(&config.jwt)?;
        let store = store::open(&config.store).await.map_err(|e| format!("WORKSPACES_STORE: {e}"))?;
        Ok(Self { config, verifier, store })
    }

    pub fn new(config: Config, verifier: Verifier, store: DynStore) -> Self {
        Self { config, verifier, store }
    }
}
