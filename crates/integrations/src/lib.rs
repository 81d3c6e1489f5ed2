//! # facerec-integrations
//!
//! What tells the house: the dispatcher that takes events from the outbox to their destinations —
//! webhooks ([`webhook`], signed as Standard Webhooks do, never to an address the operator did not
//! allow) and MQTT ([`mqtt`], with Home Assistant discovery) — and the Frigate bridge
//! ([`frigate`]). They work beside the server over the service's use cases (`App`), as the HTTP
//! layer does: no HTTP routes and no SQL here. The command line starts them (`facerec serve`).

pub mod dispatch;
pub mod mqtt;
pub mod webhook;

use std::sync::Arc;

use facerec_core::events::AddressPolicy;
use facerec_service::App;

pub use mqtt::MqttConfig;

/// What runs beside the server.
#[derive(Debug, Clone, Default)]
pub struct IntegrationsConfig {
    pub webhook_addresses: AddressPolicy,
    pub mqtt: Option<MqttConfig>,
}

impl IntegrationsConfig {
    /// Refuses settings that cannot work, before the server starts.
    pub fn check(&self) -> Result<(), String> {
        match &self.mqtt {
            Some(mqtt) => mqtt.check(),
            None => Ok(()),
        }
    }
}

/// Starts the dispatcher (on the current runtime). `Err`: a setting that cannot work (an MQTT URL
/// that is not one), before anything starts.
pub fn start(app: Arc<App>, config: IntegrationsConfig) -> Result<(), String> {
    let webhooks = webhook::WebhookSender::new(config.webhook_addresses)?;
    let mqtt = match config.mqtt {
        Some(mqtt) => Some(mqtt::Mqtt::connect(mqtt, None)?),
        None => None,
    };
    tokio::spawn(dispatch::run(app, dispatch::Deliverers { webhooks, mqtt }));
    Ok(())
}
