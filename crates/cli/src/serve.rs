//! `facerec serve`: the HTTP service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use facerec_core::tracking::TrackerConfig;
use facerec_server::api::keys::ApiKeys;
use facerec_server::api::limits::DEFAULT_RATE_LIMIT_PER_MINUTE;
use facerec_server::api::stream::StreamLimits;
use facerec_server::api::HttpLimits;
use facerec_server::listen::ConnectionLimits;
use facerec_server::ServerConfig;
use facerec_service::EngineConfig;

use crate::settings::{BackgroundArgs, EnrollingArgs, ServiceArgs};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Without API keys (operator keys, or an `admin` key in the database)
    /// only loopback addresses are accepted
    #[arg(long, env = "FACEREC_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    /// API keys, comma-separated: held only as sha256 hashes, compared in constant time
    #[arg(
        long,
        env = "FACEREC_API_KEYS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub api_keys: Vec<String>,
    /// File with one API key per line, plain or `sha256:<hex>`; plain keys of 16 characters at
    /// least (`facerec keys generate`)
    #[arg(long, env = "FACEREC_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// Inference workers (each holds its own model sessions) [default: CPU cores]
    #[arg(long, env = "FACEREC_WORKERS")]
    pub workers: Option<usize>,
    /// Requests that may wait for a worker before the server answers 503
    #[arg(long, env = "FACEREC_QUEUE", default_value_t = EngineConfig::DEFAULT_QUEUE)]
    pub queue: usize,
    /// Largest request body, bytes
    #[arg(long, env = "FACEREC_MAX_BODY_BYTES", default_value_t = HttpLimits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Longest a request may take, seconds
    #[arg(long, env = "FACEREC_REQUEST_TIMEOUT_SECS", default_value_t = HttpLimits::default().request_timeout.as_secs())]
    pub request_timeout_secs: u64,
    /// Seconds a request's header (or the next request on an idle connection) may take to arrive
    #[arg(long, env = "FACEREC_HEADER_TIMEOUT_SECS", default_value_t = ConnectionLimits::default().header_timeout.as_secs())]
    pub header_timeout_secs: u64,
    /// Connections open at once; beyond them a new connection is answered 503 and closed (also held
    /// below the open-file limit, which is raised to its maximum at start)
    #[arg(long, env = "FACEREC_MAX_CONNECTIONS", default_value_t = ConnectionLimits::default().max_connections)]
    pub max_connections: usize,
    /// Requests per minute per API key (0 = unlimited)
    #[arg(long, env = "FACEREC_RATE_LIMIT_PER_MINUTE", default_value_t = DEFAULT_RATE_LIMIT_PER_MINUTE)]
    pub rate_limit_per_minute: u32,
    /// Origins allowed to call the API from other web pages, comma-separated (default: CORS off;
    /// every other page's requests are refused)
    #[arg(long, env = "FACEREC_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Host names served besides loopback, comma-separated (`*.example.com` for subdomains); e.g. the
    /// name a reverse proxy forwards. Without API keys only loopback names and the bound address are
    /// served; with keys, any host unless this is set
    #[arg(long, env = "FACEREC_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Serve /metrics without an API key even when keys are configured
    #[arg(long, env = "FACEREC_METRICS_PUBLIC")]
    pub metrics_public: bool,
    /// Largest video frame accepted on /v1/stream, bytes
    #[arg(long, env = "FACEREC_STREAM_MAX_FRAME_BYTES", default_value_t = StreamLimits::default().max_frame_bytes)]
    pub stream_max_frame_bytes: usize,
    /// Frames per second accepted per stream (faster frames are skipped)
    #[arg(long, env = "FACEREC_STREAM_MAX_FPS", default_value_t = StreamLimits::default().max_fps)]
    pub stream_max_fps: f32,
    /// Concurrent streams
    #[arg(long, env = "FACEREC_STREAM_MAX_STREAMS", default_value_t = StreamLimits::default().max_streams)]
    pub stream_max_streams: usize,
    /// Concurrent streams per API key
    #[arg(long, env = "FACEREC_STREAM_MAX_STREAMS_PER_KEY", default_value_t = StreamLimits::default().max_streams_per_key)]
    pub stream_max_streams_per_key: usize,
    /// Frames per second one API key may send over all its streams (0 = unlimited)
    #[arg(
        long,
        env = "FACEREC_STREAM_MAX_FRAMES_PER_SEC_PER_KEY",
        default_value_t = StreamLimits::default().max_frames_per_sec_per_key
    )]
    pub stream_max_frames_per_sec_per_key: u32,
    /// Close a stream that sends no frame for this many seconds
    #[arg(long, env = "FACEREC_STREAM_IDLE_SECS", default_value_t = StreamLimits::default().idle_timeout.as_secs())]
    pub stream_idle_secs: u64,
    /// Re-embed a tracked face every N frames
    #[arg(long, env = "FACEREC_STREAM_REEMBED_EVERY", default_value_t = TrackerConfig::default().reembed_every)]
    pub stream_reembed_every: u32,
    /// How consent is collected from people registered through the CompreFace- and
    /// DeepStack-compatible APIs, which have no consent field (e.g. "signed form, kept by the
    /// front desk"). Recorded on every person registered there; without it those APIs refuse to
    /// register anyone
    #[arg(long, env = "FACEREC_COMPAT_CONSENT_BASIS")]
    pub compat_consent_basis: Option<String>,
    /// Give the operator's keys (--api-keys, the key file's keys without scopes=, and keyless
    /// loopback use) the `embeddings` scope: the routes that accept or return raw embeddings
    /// (`/v1/detect` with embeddings=true, CompreFace's embedding endpoints and calculator plugin).
    /// Off by default: a client with embeddings and a similarity answer can rebuild stored face
    /// templates. The routes are always served: a database key an `admin` created with the
    /// `embeddings` scope (granted by name, never implied) reaches them whatever this flag says
    #[arg(long, env = "FACEREC_ALLOW_EMBEDDINGS")]
    pub allow_embeddings: bool,
    #[command(flatten)]
    pub service: ServiceArgs,
    #[command(flatten)]
    pub enrolling: EnrollingArgs,
    #[command(flatten)]
    pub background: BackgroundArgs,
    #[command(flatten)]
    pub events: EventArgs,
}

/// Where events go besides webhooks (docs/EVENTS.md).
#[derive(Debug, Args)]
pub struct EventArgs {
    /// Deliver webhooks to loopback, private, link-local and other non-public addresses too (a
    /// home network's Home Assistant, say). Off by default: a key with `admin` could otherwise
    /// make the server reach what only it can reach (cloud metadata, the database)
    #[arg(long, env = "FACEREC_WEBHOOK_ALLOW_PRIVATE_NETWORKS")]
    pub webhook_allow_private_networks: bool,
    /// Publish events to this MQTT broker: mqtt://user:pass@host:1883 or mqtts://…:8883
    #[arg(long, env = "FACEREC_MQTT_URL", hide_env_values = true)]
    pub mqtt_url: Option<String>,
    /// The first level of every topic facerec publishes
    #[arg(long, env = "FACEREC_MQTT_TOPIC_PREFIX", default_value = "facerec", value_parser = topic_level)]
    pub mqtt_topic_prefix: String,
    /// Home Assistant's discovery prefix; empty: no discovery
    #[arg(
        long,
        env = "FACEREC_MQTT_DISCOVERY_PREFIX",
        default_value = "homeassistant"
    )]
    pub mqtt_discovery_prefix: String,
    /// Certificate authorities (PEM) an mqtts:// broker is checked against [default: the system's]
    #[arg(long, env = "FACEREC_MQTT_CA_FILE")]
    pub mqtt_ca_file: Option<PathBuf>,
    /// Frigate's API (e.g. http://frigate:5000): the bridge recognizes the people Frigate tracks
    /// (its events come from the broker of --mqtt-url) and names them back there
    #[arg(long, env = "FACEREC_FRIGATE_URL")]
    pub frigate_url: Option<String>,
    /// Frigate's MQTT topic prefix
    #[arg(long, env = "FACEREC_FRIGATE_TOPIC_PREFIX", default_value = "frigate", value_parser = topic_level)]
    pub frigate_topic_prefix: String,
    /// The labels of Frigate's tracked objects the bridge looks at, comma-separated
    #[arg(
        long,
        env = "FACEREC_FRIGATE_LABELS",
        value_delimiter = ',',
        default_value = "person"
    )]
    pub frigate_labels: Vec<String>,
    /// Snapshots taken per Frigate event at most, until someone is named
    #[arg(long, env = "FACEREC_FRIGATE_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub frigate_attempts: u32,
    /// Camera → collection, comma-separated (front_door=family,garage=staff); other cameras
    /// recognize in --frigate-collection
    #[arg(long, env = "FACEREC_FRIGATE_CAMERAS", value_delimiter = ',', value_parser = camera_collection)]
    pub frigate_cameras: Vec<(String, String)>,
    /// The collection of the cameras --frigate-cameras does not name
    #[arg(long, env = "FACEREC_FRIGATE_COLLECTION", default_value = "default")]
    pub frigate_collection: String,
}

/// `camera=collection`.
fn camera_collection(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((camera, collection))
            if !camera.trim().is_empty() && !collection.trim().is_empty() =>
        {
            Ok((camera.trim().to_owned(), collection.trim().to_owned()))
        }
        _ => Err(format!("'{text}' is not camera=collection")),
    }
}

/// A topic level: no wildcards, no separators, not empty.
fn topic_level(text: &str) -> Result<String, String> {
    if text.is_empty() || text.contains(['/', '+', '#', '\0']) {
        return Err(format!(
            "'{text}' is not one MQTT topic level (no '/', '+' or '#')"
        ));
    }
    Ok(text.to_owned())
}

impl EventArgs {
    pub fn integrations(&self) -> facerec_integrations::IntegrationsConfig {
        let discovery = self.mqtt_discovery_prefix.trim();
        facerec_integrations::IntegrationsConfig {
            webhook_addresses: self.addresses(),
            mqtt: self
                .mqtt_url
                .as_ref()
                .map(|url| facerec_integrations::MqttConfig {
                    url: url.clone(),
                    prefix: self.mqtt_topic_prefix.clone(),
                    discovery_prefix: (!discovery.is_empty()).then(|| discovery.to_owned()),
                    ca_file: self.mqtt_ca_file.clone(),
                    frigate_topic: None,
                }),
            frigate: self
                .frigate_url
                .as_ref()
                .map(|url| facerec_integrations::FrigateConfig {
                    url: url.clone(),
                    topic: self.frigate_topic_prefix.clone(),
                    labels: self
                        .frigate_labels
                        .iter()
                        .map(|l| l.trim().to_owned())
                        .filter(|l| !l.is_empty())
                        .collect(),
                    attempts: self.frigate_attempts,
                    cameras: self.frigate_cameras.iter().cloned().collect(),
                    collection: self.frigate_collection.clone(),
                }),
        }
    }

    pub fn addresses(&self) -> facerec_core::events::AddressPolicy {
        facerec_core::events::AddressPolicy {
            allow_private: self.webhook_allow_private_networks,
        }
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut keys = ApiKeys::from_plain(args.api_keys.iter().map(String::as_str))
        .map_err(anyhow::Error::msg)?;
    if let Some(file) = &args.api_keys_file {
        keys.add_file(file).map_err(anyhow::Error::msg)?;
    }
    let mut app = args.service.app_config(args.workers, args.queue)?;
    args.enrolling.apply(&mut app);
    args.background.apply(&mut app);
    app.webhook_addresses = args.events.addresses();
    let integrations = args.events.integrations();
    integrations.check().map_err(anyhow::Error::msg)?;
    let config = ServerConfig {
        app,
        bind: args.bind,
        keys,
        http: HttpLimits {
            max_body_bytes: args.max_body_bytes,
            request_timeout: Duration::from_secs(args.request_timeout_secs),
            cors_origins: args
                .cors_origins
                .into_iter()
                .filter(|o| !o.trim().is_empty())
                .collect(),
            allowed_hosts: args
                .allowed_hosts
                .into_iter()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect(),
            metrics_public: args.metrics_public,
        },
        rate_limit_per_minute: args.rate_limit_per_minute,
        compat_consent_basis: args
            .compat_consent_basis
            .map(|b| b.trim().to_owned())
            .filter(|b| !b.is_empty()),
        allow_embeddings: args.allow_embeddings,
        connections: ConnectionLimits {
            header_timeout: Duration::from_secs(args.header_timeout_secs.max(1)),
            max_connections: args.max_connections.max(1),
            drain_timeout: Duration::from_secs(args.request_timeout_secs),
        },
        stream: StreamLimits {
            max_frame_bytes: args.stream_max_frame_bytes,
            max_fps: args.stream_max_fps,
            max_streams: args.stream_max_streams.max(1),
            max_streams_per_key: args.stream_max_streams_per_key.max(1),
            max_frames_per_sec_per_key: args.stream_max_frames_per_sec_per_key,
            idle_timeout: Duration::from_secs(args.stream_idle_secs.max(1)),
            send_timeout: StreamLimits::default().send_timeout,
            tracker: TrackerConfig {
                reembed_every: args.stream_reembed_every.max(1),
                ..TrackerConfig::default()
            },
        },
    };
    // Beyond loopback without configured keys: refused before the models load unless the
    // database holds an admin key (`facerec_server::check_exposure`).
    let store = args.service.database.open().await?;
    facerec_server::serve(config, store, |app| {
        facerec_integrations::start(app, integrations)
    })
    .await?;
    Ok(())
}
