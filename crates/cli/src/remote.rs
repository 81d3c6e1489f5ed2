//! `enroll` and `identify` through a running server (`--url`, `--key`): they then need neither the
//! models nor the database, which a running SQLite server holds (a second process is refused it).
//! The same answers as on the database itself; over plain HTTP (put TLS in front of facerec, and
//! run these where they reach it without).

use clap::Args;
use facerec_core::person::fold_name;
use facerec_core::{Added, CollectionRef};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A running facerec to work through instead of the database.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// Work through the facerec server at this URL (http://host:port) instead of opening the
    /// database and the models here
    #[arg(long, env = "FACEREC_URL")]
    pub url: Option<String>,
    /// The API key to send to --url (with the scopes the command needs: `enroll` and `manage` for
    /// enroll, `recognize` for identify)
    #[arg(long, env = "FACEREC_KEY")]
    pub key: Option<String>,
}

/// Why a request failed: the server's error code (or a local one) and its message.
pub type Refusal = (String, String);

/// A server to enroll and identify through.
pub struct Remote {
    client: reqwest::Client,
    url: String,
    key: Option<String>,
    collection: String,
}

impl Remote {
    /// `None` when no `--url` was given.
    pub fn new(args: &RemoteArgs, collection: &CollectionRef) -> Option<Self> {
        let url = args.url.as_ref()?.trim_end_matches('/').to_owned();
        Some(Self {
            client: reqwest::Client::new(),
            url,
            key: args.key.clone(),
            collection: collection.to_string(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .client
            .request(method, format!("{}{path}", self.url))
            .header("x-facerec-collection", &self.collection);
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// Sends a request: its status and JSON answer, or the server's refusal.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(u16, Value), Refusal> {
        let response = request
            .send()
            .await
            .map_err(|e| ("unavailable".to_owned(), format!("{}: {e}", self.url)))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status >= 400 {
            let error = &body["error"];
            return Err((
                error["code"]
                    .as_str()
                    .unwrap_or("internal_error")
                    .to_owned(),
                error["message"]
                    .as_str()
                    .map_or_else(|| format!("HTTP {status}"), str::to_owned),
            ));
        }
        Ok((status, body))
    }

    /// `POST /v1/recognize` of a photo: its faces, each with `match` and `candidates`.
    pub async fn recognize(&self, photo: Vec<u8>) -> Result<Vec<Value>, Refusal> {
        let form = reqwest::multipart::Form::new()
            .part("image", photo_part(photo))
            .text("top_k", "2")
            .text("source", "facerec-identify");
        let request = self.request(reqwest::Method::POST, "/v1/recognize");
        let (_, body) = self.send(request.multipart(form)).await?;
        Ok(body["faces"].as_array().cloned().unwrap_or_default())
    }

    /// The one person of the collection whose name folds to `name`'s, if any.
    pub async fn person_named(&self, name: &str) -> Result<Option<String>, Refusal> {
        let request = self
            .request(reqwest::Method::GET, "/v1/persons")
            .query(&[("name", name), ("limit", "500")]);
        let (_, body) = self.send(request).await?;
        let folded = fold_name(name);
        let mut named = body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["name"].as_str().is_some_and(|n| fold_name(n) == folded));
        match (named.next(), named.next()) {
            (Some(person), None) => Ok(person["id"].as_str().map(str::to_owned)),
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err((
                "ambiguous_name".to_owned(),
                format!("several persons are named '{name}': rename all but one"),
            )),
        }
    }

    /// Registers a photo for the person named `name` (created with the consent basis when nobody
    /// is): safe to retry, by an `Idempotency-Key` drawn from the collection, the name and the
    /// photo.
    pub async fn enroll(
        &self,
        name: &str,
        photo: Vec<u8>,
        consent_basis: &str,
        largest_face: bool,
    ) -> Result<Added, Refusal> {
        let mut form = reqwest::multipart::Form::new().text("consent", "true");
        if largest_face {
            form = form.text("face", "largest");
        }
        let request = match self.person_named(name).await? {
            Some(person) => self.request(
                reqwest::Method::POST,
                &format!("/v1/persons/{person}/faces"),
            ),
            None => {
                form = form
                    .text("name", name.to_owned())
                    .text("consent_basis", consent_basis.to_owned())
                    .text("metadata", r#"{"enrolled_from":"facerec enroll"}"#);
                let key = Sha256::new()
                    .chain_update(self.collection.as_bytes())
                    .chain_update([0])
                    .chain_update(name.as_bytes())
                    .chain_update([0])
                    .chain_update(&photo)
                    .finalize();
                self.request(reqwest::Method::POST, "/v1/register")
                    .header("idempotency-key", format!("enroll-{}", hex::encode(key)))
            }
        };
        let form = form.part("image", photo_part(photo));
        let (status, _) = self.send(request.multipart(form)).await?;
        Ok(if status == 201 {
            Added::Created
        } else {
            Added::AlreadyPresent
        })
    }
}

fn photo_part(photo: Vec<u8>) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(photo).file_name("photo")
}
