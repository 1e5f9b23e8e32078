//! Import jobs (wired onto the streaming import engine once it lands).

use super::worker::{Outcome, Run, Stop};
use crate::error::ApiError;

pub async fn run(_run: &mut Run<'_>) -> Result<Outcome, Stop> {
    Err(Stop::Failed(ApiError::new(501, "import jobs are not wired yet")))
}

pub async fn part(_run: &mut Run<'_>, _part: u32) -> Result<Outcome, Stop> {
    Err(Stop::Failed(ApiError::new(501, "import jobs are not wired yet")))
}

pub async fn finish(_run: &mut Run<'_>) -> Result<Outcome, Stop> {
    Err(Stop::Failed(ApiError::new(501, "import jobs are not wired yet")))
}

pub async fn abandon(_run: &Run<'_>) -> Result<(), ApiError> {
    Ok(())
}
