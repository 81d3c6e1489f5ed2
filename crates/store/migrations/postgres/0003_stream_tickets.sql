-- One-time stream tickets, in the database so that any replica redeems what another issued.
-- Only the ticket's sha256 is stored.
CREATE TABLE stream_tickets (
    ticket_sha256 text PRIMARY KEY,
    actor         text NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX stream_tickets_expires_at ON stream_tickets (expires_at);
