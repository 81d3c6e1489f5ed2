//! `facerec keys` and `facerec collections`: API keys and collections, against the configured
//! database (as an `admin` of it: whoever can open the database is its operator).

use anyhow::Context;
use clap::{Args, Subcommand};
use facerec_core::{Caller, CollectionSettings, KeyId, NewCollection, Scopes};
use facerec_service::App;

use crate::settings::ServiceArgs;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random key (32 bytes from the operating system, base64url) for --api-keys
    Generate,
    /// Create a key of a collection in the database; its secret is printed once
    Create(CreateKeyArgs),
    /// List the database's keys (never their secrets)
    List(ListKeysArgs),
    /// Revoke a key: refused on every server within a second or two
    Revoke(RevokeKeyArgs),
}

#[derive(Debug, Args)]
pub struct CreateKeyArgs {
    /// The key's collection (name or id)
    #[arg(long, default_value = "default")]
    collection: String,
    /// Its scopes, comma-separated: recognize, enroll, manage, embeddings, admin
    #[arg(long, required = true)]
    scopes: String,
    /// What it is for (shown in listings)
    #[arg(long)]
    label: String,
    /// When it stops working (RFC 3339)
    #[arg(long)]
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Print the key as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    database: ServiceArgs,
}

#[derive(Debug, Args)]
pub struct ListKeysArgs {
    /// Only this collection's keys
    #[arg(long)]
    collection: Option<String>,
    #[command(flatten)]
    database: ServiceArgs,
}

#[derive(Debug, Args)]
pub struct RevokeKeyArgs {
    /// The key's id
    id: KeyId,
    #[command(flatten)]
    database: ServiceArgs,
}

#[derive(Debug, Subcommand)]
pub enum CollectionsCommand {
    /// Create a collection
    Create {
        name: String,
        #[command(flatten)]
        database: ServiceArgs,
    },
    /// List the collections
    List {
        #[command(flatten)]
        database: ServiceArgs,
    },
    /// Delete a collection with its persons, faces and keys, for good
    Delete {
        name: String,
        #[command(flatten)]
        database: ServiceArgs,
    },
}

/// The service on the configured database, as its operator (one inference worker: these
/// commands never analyze).
async fn admin_app(service: &ServiceArgs) -> anyhow::Result<(App, Caller)> {
    let app = App::start(service.app_config(Some(1), 1)?).await?;
    let caller = app
        .local_operator(facerec_core::Collection::DEFAULT_NAME)
        .await?;
    Ok((app, caller))
}

pub async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate => println!("{}", facerec_service::access::generate_secret()),
        KeysCommand::Create(args) => {
            let scopes = Scopes::parse_list(&args.scopes).map_err(anyhow::Error::msg)?;
            let (app, caller) = admin_app(&args.database).await?;
            let created = app
                .create_key(
                    &args.collection,
                    scopes,
                    args.label,
                    args.expires_at,
                    &caller,
                )
                .await?;
            if args.json {
                let key = serde_json::json!({
                    "id": created.key.id, "key": created.secret, "collection": created.collection.name,
                    "scopes": created.key.scopes, "label": created.key.label,
                    "expires_at": created.key.expires_at,
                });
                println!("{key}");
            } else {
                println!("{}", created.secret);
                eprintln!(
                    "key {} of collection '{}' with scopes {} (the secret above is shown this once)",
                    created.key.id,
                    created.collection.name,
                    created.key.scopes.to_text()
                );
            }
        }
        KeysCommand::List(args) => {
            let (app, caller) = admin_app(&args.database).await?;
            let names: std::collections::HashMap<_, _> = app
                .collections()
                .await?
                .into_iter()
                .map(|c| (c.id, c.name))
                .collect();
            for key in app.keys(args.collection.as_deref(), &caller).await? {
                let state = if key.revoked_at.is_some() {
                    "revoked"
                } else if !key.is_live(chrono::Utc::now()) {
                    "expired"
                } else {
                    "live"
                };
                println!(
                    "{}\t{}\t{}\t{}\t{state}\tlast used {}",
                    key.id,
                    names.get(&key.collection_id).map_or("?", String::as_str),
                    key.scopes.to_text().replace(' ', ","),
                    key.label,
                    key.last_used_at
                        .map_or_else(|| "never".to_owned(), |at| at.to_rfc3339())
                );
            }
        }
        KeysCommand::Revoke(args) => {
            let (app, caller) = admin_app(&args.database).await?;
            let key = app.revoke_key(args.id, &caller).await?;
            println!("revoked {}", key.id);
        }
    }
    Ok(())
}

pub async fn collections(command: CollectionsCommand) -> anyhow::Result<()> {
    match command {
        CollectionsCommand::Create { name, database } => {
            let (app, caller) = admin_app(&database).await?;
            let new = NewCollection {
                name,
                settings: CollectionSettings::default(),
            };
            let created = app.create_collection(new, &caller).await?;
            println!("{}\t{}", created.id, created.name);
        }
        CollectionsCommand::List { database } => {
            let (app, _) = admin_app(&database).await?;
            for c in app.collections().await? {
                let settings = serde_json::to_string(&c.settings).context("settings")?;
                println!("{}\t{}\t{settings}", c.id, c.name);
            }
        }
        CollectionsCommand::Delete { name, database } => {
            let (app, caller) = admin_app(&database).await?;
            let deleted = app.delete_collection(&name, &caller).await?;
            println!(
                "deleted collection '{}': {} persons, {} faces, {} keys",
                deleted.collection.name,
                deleted.persons_deleted,
                deleted.faces_deleted,
                deleted.keys_deleted
            );
        }
    }
    Ok(())
}
