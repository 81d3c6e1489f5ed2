//! Webhook delivery: one POST per event, signed as Standard Webhooks do
//! (<https://www.standardwebhooks.com>: `webhook-id`, `webhook-timestamp`, `webhook-signature:
//! v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed with the secret's base64-decoded
//! part after `whsec_`), never following a redirect and never connecting to an address the
//! operator did not allow (checked on the addresses a name resolves to: those are the only ones
//! connected to).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use facerec_core::events::{AddressPolicy, Event, Webhook, WebhookSecret};
use hmac::{Hmac, Mac};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sha2::Sha256;

/// How long one delivery may take; a hung endpoint costs its own destination this, nobody else.
pub const TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends events to webhooks.
#[derive(Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    addresses: AddressPolicy,
}

impl WebhookSender {
    pub fn new(addresses: AddressPolicy) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect on our behalf to an address nobody checked.
            .no_proxy()
            .dns_resolver(Arc::new(Guarded(addresses)))
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("facerec/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        Ok(Self { client, addresses })
    }

    /// Delivers one event: `Err` says why it was not (to be retried).
    pub async fn send(&self, webhook: &Webhook, event: &Event) -> Result<(), String> {
        // An address written out is never resolved: checked here.
        if let Some(ip) = webhook.url.ip_literal() {
            self.addresses.check(ip)?;
        }
        let body = serde_json::to_vec(&serde_json::json!({
            "type": event.data.kind.as_str(),
            "timestamp": event.data.time,
            "data": &event.data,
        }))
        .map_err(|e| format!("cannot encode the event: {e}"))?;
        let id = event.data.id.to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign(&webhook.secret, &id, timestamp, &body)?;
        let answer = self
            .client
            .post(webhook.url.as_str())
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else if status.is_redirection() {
            Err(format!(
                "answered {status}: redirects are not followed (give the final URL)"
            ))
        } else {
            Err(format!("answered {status}"))
        }
    }
}

/// The `webhook-signature` header's value for one delivery.
pub fn sign(
    secret: &WebhookSecret,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, String> {
    let encoded = secret.0.strip_prefix("whsec_").unwrap_or(&secret.0);
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("the webhook's secret is not base64: {e}"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    ))
}

/// An error with its causes ("error sending request: … : name resolves only to refused addresses").
fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        format!("timed out after {} s", TIMEOUT.as_secs())
    } else {
        err.to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// Resolves names with the system's resolver, keeping only the addresses the policy allows.
struct Guarded(AddressPolicy);

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| policy.check(a.ip()).is_ok())
                .collect();
            // Which addresses it resolved to is not said: a webhook's error must not map the
            // server's network for whoever set the webhook.
            if allowed.is_empty() {
                return Err(format!(
                    "{host} resolves only to refused addresses (loopback, private, link-local or \
                     reserved; the operator may allow private networks)"
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Standard Webhooks' reference library (libraries/rust, `test_sign`).
    #[test]
    fn signs_as_the_reference_does() {
        let secret = WebhookSecret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into());
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let signature = sign(&secret, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body).unwrap();
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }
}
