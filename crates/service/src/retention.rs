//! Consent that runs out. A registration may say until when its consent holds; without that, the
//! configured default retention applies (the compatible APIs, which have no such field, always use
//! it). A background sweep deletes the persons whose consent has expired, with the same secure
//! deletion as a deletion on request and an audit event saying why.

use std::time::Duration;

use chrono::Utc;
use facerec_core::{retry, Actor, DeletedPerson};

use crate::error::AppResult;
use crate::persons::Persons;

/// How long consent holds by default, and how often expired persons are looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Days a consent holds when the registration names no expiry (`None`: until deleted).
    pub default_days: Option<u32>,
    /// Time between two sweeps.
    pub sweep_every: Duration,
}

impl Retention {
    /// Persons deleted per sweep at most; a larger backlog takes the next sweeps.
    pub const SWEEP_BATCH: u32 = 500;
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            default_days: None,
            sweep_every: Duration::from_secs(60),
        }
    }
}

/// Who the audit log names for the sweep's deletions.
fn sweeper() -> Actor {
    Actor("retention-sweep".into())
}

impl Persons {
    /// Deletes the persons whose consent has expired (at most [`Retention::SWEEP_BATCH`]).
    pub async fn sweep_expired(&self) -> AppResult<Vec<DeletedPerson>> {
        let deleted = self
            .store
            .delete_expired(Utc::now(), Retention::SWEEP_BATCH, &sweeper())
            .await?;
        if !deleted.is_empty() {
            metrics::counter!("facerec_consent_expired_persons_total")
                .increment(deleted.len() as u64);
            tracing::info!(
                persons = deleted.len(),
                "deleted persons whose consent expired"
            );
        }
        Ok(deleted)
    }

    /// Forgets the registration attempts remembered longer than [`retry::KEPT_FOR`].
    pub async fn forget_old_attempts(&self) -> AppResult<u64> {
        let before = Utc::now() - retry::KEPT_FOR;
        Ok(self.store.forget_attempts(before).await?)
    }

    /// Sweeps every [`Retention::sweep_every`], forever; a failed sweep is logged and retried at the
    /// next tick. Each replica sweeps: deleting a person another replica just deleted is a no-op.
    /// Each sweep also forgets the registration attempts older than a day.
    pub async fn sweep_expired_forever(&self) {
        let mut tick = tokio::time::interval(self.sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.forget_old_attempts().await {
                tracing::warn!(error = %e, "forgetting old registration attempts failed; retrying later");
            }
            loop {
                match self.sweep_expired().await {
                    // A full batch: more may be waiting.
                    Ok(deleted) if deleted.len() == Retention::SWEEP_BATCH as usize => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "the retention sweep failed; retrying later");
                        break;
                    }
                }
            }
        }
    }
}
