-- One-time stream tickets, in the database so that any replica redeems what another issued.
-- Only the ticket's sha256 is stored.
CREATE TABLE stream_tickets (
    ticket_sha256 TEXT PRIMARY KEY,
    actor         TEXT NOT NULL,
    expires_at    TEXT NOT NULL -- RFC 3339
);
CREATE INDEX stream_tickets_expires_at ON stream_tickets (expires_at);
