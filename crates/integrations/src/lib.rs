//! # facerec-integrations
//!
//! What tells the house: the dispatcher that takes events from the outbox to their destinations —
//! webhooks ([`webhook`], signed as Standard Webhooks do, never to an address the operator did not
//! allow) and MQTT ([`mqtt`], with Home Assistant discovery) — and the Frigate bridge
//! ([`frigate`]). They work beside the server over the service's use cases (`App`), as the HTTP
//! layer does: no HTTP routes and no SQL here. The command line starts them (`facerec serve`).

pub mod dispatch;
pub mod frigate;
pub mod mqtt;
pub mod webhook;

use std::sync::Arc;

use facerec_core::events::AddressPolicy;
use facerec_service::App;

pub use frigate::FrigateConfig;
pub use mqtt::MqttConfig;

/// What runs beside the server.
#[derive(Debug, Clone, Default)]
pub struct IntegrationsConfig {
    pub webhook_addresses: AddressPolicy,
    pub mqtt: Option<MqttConfig>,
    /// The Frigate bridge: it listens on the broker of `mqtt`.
    pub frigate: Option<FrigateConfig>,
}

impl IntegrationsConfig {
    /// Refuses settings that cannot work, before the server starts.
    pub fn check(&self) -> Result<(), String> {
        if let Some(mqtt) = &self.mqtt {
            mqtt.check()?;
        }
        if let Some(frigate) = &self.frigate {
            if self.mqtt.is_none() {
                return Err(
                    "--frigate-url needs --mqtt-url: the bridge listens to Frigate's events on \
                     that broker"
                        .into(),
                );
            }
            let url = url::Url::parse(&frigate.url)
                .map_err(|e| format!("--frigate-url '{}': {e}", frigate.url))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(format!(
                    "--frigate-url '{}' is not an http(s) URL with a host",
                    frigate.url
                ));
            }
            if frigate.attempts == 0 {
                return Err("--frigate-attempts must be at least 1".into());
            }
        }
        Ok(())
    }
}

/// Starts the dispatcher (on the current runtime). `Err`: a setting that cannot work (an MQTT URL
/// that is not one), before anything starts.
pub fn start(app: Arc<App>, config: IntegrationsConfig) -> Result<(), String> {
    config.check()?;
    let webhooks = webhook::WebhookSender::new(config.webhook_addresses)?;
    let (frigate, messages) = match config.frigate {
        Some(frigate) => {
            let (tx, rx) = tokio::sync::mpsc::channel(frigate::QUEUE);
            (Some((frigate, rx)), Some(tx))
        }
        None => (None, None),
    };
    let mqtt = match config.mqtt {
        Some(mut mqtt) => {
            mqtt.frigate_topic = frigate.as_ref().map(|(f, _)| f.topic.clone());
            Some(mqtt::Mqtt::connect(mqtt, messages)?)
        }
        None => None,
    };
    if let Some((frigate, rx)) = frigate {
        tokio::spawn(frigate::run(Arc::clone(&app), frigate, rx));
    }
    tokio::spawn(dispatch::run(app, dispatch::Deliverers { webhooks, mqtt }));
    Ok(())
}
