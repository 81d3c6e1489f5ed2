//! One-time stream tickets: a browser exchanges its API key for one, so the key never appears in a
//! WebSocket URL. Tickets live in the database (only their sha256), so with several replicas on one
//! PostgreSQL a ticket issued by one opens a stream on any other, exactly once.

use std::time::Duration;

use facerec_core::{Actor, Caller, CollectionId, TicketBudget};
use sha2::{Digest, Sha256};

use crate::access::Access;
use crate::AppResult;

/// How long a ticket stays valid.
pub const TICKET_TTL: Duration = Duration::from_secs(60);
/// Unspent tickets held at once, whatever the rate limit: beyond it, issuing is refused. One key
/// may hold a hundredth of them and one collection a tenth, so that neither can take them all.
pub const TICKETS: TicketBudget = TicketBudget {
    total: 10_000,
    per_collection: 1_000,
    per_holder: 100,
};

fn digest(ticket: &str) -> String {
    hex::encode(Sha256::digest(ticket.as_bytes()))
}

impl Access {
    /// A new ticket for the caller (its collection and who it is), valid for [`TICKET_TTL`]; `None`
    /// when the caller's share of [`TICKETS`] is outstanding.
    pub async fn issue_stream_ticket(&self, caller: &Caller) -> AppResult<Option<String>> {
        // Two v4 UUIDs: 244 random bits from the operating system's generator.
        let ticket = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let ttl = chrono::Duration::from_std(TICKET_TTL).expect("a minute fits");
        let issued = self
            .store
            .issue_ticket(
                caller.collection_id(),
                &digest(&ticket),
                &caller.actor,
                chrono::Utc::now() + ttl,
                TICKETS,
            )
            .await?;
        Ok(issued.then_some(ticket))
    }

    /// The holder of an unexpired ticket; it stays valid.
    pub async fn stream_ticket_holder(
        &self,
        ticket: &str,
    ) -> AppResult<Option<(Actor, CollectionId)>> {
        Ok(self.store.ticket_holder(&digest(ticket)).await?)
    }

    /// Spends a ticket: `true` exactly once, on whichever replica asks first.
    pub async fn redeem_stream_ticket(&self, ticket: &str) -> AppResult<bool> {
        Ok(self.store.redeem_ticket(&digest(ticket)).await?)
    }
}
