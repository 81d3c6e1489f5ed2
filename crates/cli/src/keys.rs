//! `facerec keys` and `facerec collections`: API keys and collections, against the configured
//! database (as an `admin` of it: whoever can open the database is its operator).

use anyhow::Context;
use clap::{Args, Subcommand};
use facerec_core::{
    Caller, CollectionId, CollectionRef, CollectionSettings, KeyId, NewCollection, Scopes,
};
use facerec_service::Access;

use crate::settings::DatabaseArgs;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random key (32 bytes from the operating system, base64url) for --api-keys
    Generate,
    /// Create a key of a collection in the database; its secret is printed once
    Create(CreateKeyArgs),
    /// List the database's keys (never their secrets)
    List(ListKeysArgs),
    /// Revoke a key: refused on every server within a second (keys are trusted for 1 s)
    Revoke(RevokeKeyArgs),
}

#[derive(Debug, Args)]
pub struct CreateKeyArgs {
    /// The key's collection (name or id)
    #[arg(long, default_value = "default")]
    collection: CollectionRef,
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
    database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct ListKeysArgs {
    /// Only this collection's keys
    #[arg(long)]
    collection: Option<CollectionRef>,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct RevokeKeyArgs {
    /// The key's id
    id: KeyId,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(Debug, Subcommand)]
pub enum CollectionsCommand {
    /// Create a collection
    Create {
        name: String,
        /// The model pack whose recognizer embeds its faces, for good [default: --default-pack]
        #[arg(long)]
        model_pack: Option<String>,
        /// The pack whose detector finds its faces [default: the model pack's]
        #[arg(long)]
        detector_pack: Option<String>,
        #[command(flatten)]
        packs: crate::vision_args::PackArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List the collections
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Delete a collection with its persons, faces and keys, for good
    Delete {
        /// The collection (name or id)
        name: CollectionRef,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// Collections and keys of the configured database, as its operator (no inference engine: these
/// commands never analyze).
async fn admin_access(database: &DatabaseArgs) -> anyhow::Result<(Access, Caller)> {
    let access = Access::new(database.open().await?);
    let caller = access.local_operator(&CollectionId::DEFAULT.into()).await?;
    Ok((access, caller))
}

pub async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate => println!("{}", facerec_service::access::generate_secret()),
        KeysCommand::Create(args) => create_key(args).await?,
        KeysCommand::List(args) => list_keys(args).await?,
        KeysCommand::Revoke(args) => {
            let (access, caller) = admin_access(&args.database).await?;
            let key = access.revoke_key(args.id, &caller).await?;
            println!("revoked {}", key.id);
        }
    }
    Ok(())
}

/// Prints the new key's secret (the only time it is shown), or the whole key as JSON.
async fn create_key(args: CreateKeyArgs) -> anyhow::Result<()> {
    let scopes = Scopes::parse_list(&args.scopes).map_err(anyhow::Error::msg)?;
    let (access, caller) = admin_access(&args.database).await?;
    let created = access
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
    Ok(())
}

/// One line per key: id, collection, scopes, label, state, last use (never a secret).
async fn list_keys(args: ListKeysArgs) -> anyhow::Result<()> {
    let (access, caller) = admin_access(&args.database).await?;
    let names: std::collections::HashMap<_, _> = access
        .collections()
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    for key in access.keys(args.collection.as_ref(), &caller).await? {
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
    Ok(())
}

pub async fn collections(command: CollectionsCommand) -> anyhow::Result<()> {
    match command {
        CollectionsCommand::Create {
            name,
            model_pack,
            detector_pack,
            packs,
            database,
        } => {
            // The built-in pack's identity is pinned: naming nothing needs no model file (these
            // commands run where the models are not).
            let model = if model_pack.is_none()
                && detector_pack.is_none()
                && packs.default_pack == facerec_vision::pack::BUILT_IN_PACK
            {
                facerec_core::ModelBinding::built_in()
            } else {
                packs
                    .packs()?
                    .binding(model_pack.as_deref(), detector_pack.as_deref())?
            };
            let (access, caller) = admin_access(&database).await?;
            let new = NewCollection {
                model,
                name,
                settings: CollectionSettings::default(),
            };
            let created = access.create_collection(new, &caller).await?;
            println!("{}\t{}", created.id, created.name);
        }
        CollectionsCommand::List { database } => {
            let (access, _) = admin_access(&database).await?;
            for c in access.collections().await? {
                let settings = serde_json::to_string(&c.settings).context("settings")?;
                println!("{}\t{}\t{}\t{settings}", c.id, c.name, c.model.pack);
            }
        }
        CollectionsCommand::Delete { name, database } => {
            let (access, caller) = admin_access(&database).await?;
            let deleted = access.delete_collection(&name, &caller).await?;
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
