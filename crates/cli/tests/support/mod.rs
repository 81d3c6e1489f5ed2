//! Starts the real `facerec` binary on a free port and talks HTTP to it.
#![allow(dead_code)]

pub mod mqtt;
pub mod receiver;
pub mod video;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn registry_photo(name: &str) -> Vec<u8> {
    let path = workspace().join("vendor/fixtures/registry").join(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} — run `make setup-test`", path.display()))
}

/// `../shared/faces/images` when this machine has it (FACEREC_TEST_NO_SHARED=1 tests as a fresh clone
/// would run).
pub fn shared_images() -> Option<PathBuf> {
    if std::env::var_os("FACEREC_TEST_NO_SHARED").is_some() {
        return None;
    }
    let dir = workspace().join("../shared/faces/images");
    dir.is_dir().then_some(dir)
}

pub enum Db {
    Sqlite,
    Postgres,
    /// A database the test made itself.
    #[allow(dead_code)]
    Url(String),
}

pub struct Server {
    child: Child,
    pub url: String,
    pub client: reqwest::Client,
    pub key: Option<String>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(db: Db, extra: &[&str]) -> Self {
        Self::start_in(&[], db, extra).await
    }

    /// Starts the server through `wrapper` (a command that ends by running its arguments, such as
    /// `unshare … sh -c '…; exec "$@"' sh`).
    pub async fn start_in(wrapper: &[&str], db: Db, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match db {
            Db::Sqlite => format!("sqlite://{}/facerec.db", dir.path().display()),
            Db::Postgres => new_postgres_database().await,
            Db::Url(url) => url,
        };
        let binary = env!("CARGO_BIN_EXE_facerec");
        let mut command = match wrapper {
            [] => Command::new(binary),
            [program, args @ ..] => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
        };
        command
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--database-url",
                &database_url,
            ])
            .args(extra)
            .current_dir(workspace())
            .env_remove("FACEREC_API_KEYS")
            .env("FACEREC_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("facerec binary");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("facerec listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server starts and says where it listens");
        let key = extra
            .windows(2)
            .find(|w| w[0] == "--api-keys")
            .map(|w| w[1].split(',').next().unwrap().to_owned());
        Self {
            child,
            url,
            client: reqwest::Client::new(),
            key,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.authorized(self.client.get(format!("{}{path}", self.url)))
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.authorized(self.client.delete(format!("{}{path}", self.url)))
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.authorized(self.client.patch(format!("{}{path}", self.url)))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_form(&self, path: &str, form: reqwest::multipart::Form) -> reqwest::Response {
        self.authorized(self.client.post(format!("{}{path}", self.url)))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// A multipart request with `key`: the status and the answer.
    pub async fn post_form_as(
        &self,
        path: &str,
        key: &str,
        form: reqwest::multipart::Form,
    ) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        json(response).await
    }
}

/// Runs `facerec <args> --database-url <url>` from the workspace (a command that opens the
/// database itself, beside no server).
pub fn facerec_offline(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_facerec"))
        .args(args)
        .args(["--database-url", url])
        .current_dir(workspace())
        .env("FACEREC_LOG", "warn")
        .output()
        .unwrap()
}

/// The test venv's Python (`make setup-test`, scripts/test-venv.sh).
pub fn test_venv_python() -> PathBuf {
    let python = workspace().join("target/test-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing — run `make setup-test` (scripts/test-venv.sh)",
        python.display()
    );
    python
}

/// Runs the compatible APIs' real clients (`tests/compat/clients.py`) against `server` with `key`
/// and `other`, a key of a second collection; fails with their output if any check fails.
pub fn run_compat_clients(server: &Server, key: &str, other: &str) {
    let output = Command::new(test_venv_python())
        .arg(workspace().join("tests/compat/clients.py"))
        .env("FACEREC_URL", &server.url)
        .env("FACEREC_KEY", key)
        .env("FACEREC_OTHER_KEY", other)
        .env(
            "FACEREC_PHOTOS",
            workspace().join("vendor/fixtures/registry"),
        )
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("all client checks passed"), "{stdout}");
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn new_postgres_database() -> String {
    let admin = std::env::var("FACEREC_TEST_DATABASE_URL")
        .expect("FACEREC_TEST_DATABASE_URL is not set: run `make test`, which starts PostgreSQL");
    facerec_store::testing::create_database(&admin, "facerec_e2e")
        .await
        .expect("PostgreSQL reachable")
}

pub fn image_part(bytes: Vec<u8>, name: &str) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned())
}

pub async fn json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, value)
}

/// Asserts an error answer: its status, its stable code, a message for people. Returns the body.
pub fn expect(answer: (u16, serde_json::Value), status: u16, code: &str) -> serde_json::Value {
    let (actual, body) = answer;
    assert_eq!(actual, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

/// A read-only connection to a SQLite file, beside the server that holds it.
pub async fn read_only_sqlite(path: &Path) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .unwrap()
}

/// A face of a random unit embedding (no photo), for filling a database fast.
pub fn synthetic_face(rng: &mut impl rand::Rng, image: usize) -> facerec_core::NewFace {
    let raw: Vec<f32> = (0..facerec_core::EMBEDDING_DIM)
        .map(|_| rng.random::<f32>() - 0.5)
        .collect();
    let model = facerec_core::ModelId {
        name: "synthetic".into(),
        sha256: "0".into(),
    };
    stored_face(
        facerec_types::NormalizedEmbedding::normalize(&raw)
            .unwrap()
            .0,
        &model,
        format!("{image}"),
    )
}

/// A face as registration would store it, for an embedding made by the test.
pub fn stored_face(
    embedding: facerec_types::NormalizedEmbedding,
    model: &facerec_core::ModelId,
    image_sha256: String,
) -> facerec_core::NewFace {
    facerec_core::NewFace {
        embedding,
        det_score: 0.8,
        bbox: [0.0, 0.0, 100.0, 100.0],
        quality: facerec_types::FaceQuality {
            face_size_px: 100.0,
            interocular_px: 40.0,
            frontality: 0.9,
            embedding_norm: 20.0,
        },
        model: model.clone(),
        image_sha256,
    }
}

/// A JSON request with a key (any method, an optional JSON body): the status and the answer.
pub async fn call(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = server
        .client
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    // A refusal outside the API (a proxy's, a transport's) may not be JSON: kept as text.
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON answer on a stream (within 30 s).
pub async fn reply(socket: &mut Socket) -> serde_json::Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("an answer")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Opens `/v1/stream{query}`, with the key as a bearer header when given.
pub async fn open_stream(
    server: &Server,
    query: &str,
    key: Option<&str>,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!(
        "{}/v1/stream{query}",
        server.url.replacen("http://", "ws://", 1)
    );
    let mut request = url.into_client_request().unwrap();
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

/// The model the server embeds with (its name and the sha256 of the file in vendor/).
pub fn served_model() -> facerec_core::ModelId {
    use sha2::Digest;
    let bytes = std::fs::read(workspace().join("vendor/models/w600k_mbf.onnx")).unwrap();
    facerec_core::ModelId {
        name: facerec_vision::pipeline::EMBEDDER_NAME.into(),
        sha256: hex::encode(sha2::Sha256::digest(bytes)),
    }
}

/// `persons` × `faces` random faces of the served model in the collection `name` of the database
/// (created when missing), written through the store.
pub async fn fill(url: &str, name: &str, persons: usize, faces: usize) {
    use facerec_core::*;
    use rand::{Rng, SeedableRng};
    let store = facerec_store::open(url, &facerec_store::StoreOptions::default())
        .await
        .unwrap();
    let operator = Actor::local_operator();
    let collection = match store.collection_named(name).await {
        Ok(existing) => existing.id,
        Err(_) => {
            let new = NewCollection {
                model: facerec_core::ModelBinding::built_in(),
                name: name.into(),
                settings: CollectionSettings::default(),
            };
            store.create_collection(new, &operator).await.unwrap().id
        }
    };
    let model = served_model();
    let mut rng = rand::rngs::StdRng::seed_from_u64(persons as u64 * 31 + faces as u64);
    let mut random = |image: String| {
        let raw: Vec<f32> = (0..EMBEDDING_DIM)
            .map(|_| rng.random::<f32>() - 0.5)
            .collect();
        let embedding = facerec_types::NormalizedEmbedding::normalize(&raw)
            .unwrap()
            .0;
        stored_face(embedding, &model, image)
    };
    let tag = uuid::Uuid::new_v4().simple().to_string();
    for p in 0..persons {
        let person = NewPerson {
            name: format!("Person {tag} {p}"),
            external_id: None,
            metadata: serde_json::Value::Null,
            consent: Consent::given_now("synthetic").unwrap(),
        };
        let (person, _) = store
            .register(
                collection,
                person,
                random(format!("{tag}-{p}-0")),
                &operator,
            )
            .await
            .unwrap();
        for f in 1..faces {
            store
                .add_face(
                    collection,
                    person.id,
                    random(format!("{tag}-{p}-{f}")),
                    &operator,
                )
                .await
                .unwrap();
        }
    }
}

/// Runs a browser script of `tests/browser/` (`node` with its arguments): the JSON object it prints
/// last, once it has exited with success (its output shown otherwise).
#[allow(dead_code)]
pub fn browser_result(mut node: std::process::Command) -> serde_json::Value {
    let output = node.output().expect("node runs (Node.js 20+)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser run failed:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// Creates the collection `name` through the API with `key` (201 asserted): its id.
pub async fn new_collection(server: &Server, key: &str, name: &str) -> String {
    let body = serde_json::json!({ "name": name });
    let (status, body) = call(
        server,
        reqwest::Method::POST,
        "/v1/collections",
        key,
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// A key of `collection` with `scopes`, created through the API with `admin` (201 asserted): its
/// secret.
pub async fn new_key(server: &Server, admin: &str, collection: &str, scopes: &[&str]) -> String {
    let body = serde_json::json!({"collection": collection, "scopes": scopes, "label": "test"});
    let (status, body) = call(server, reqwest::Method::POST, "/v1/keys", admin, Some(body)).await;
    assert_eq!(status, 201, "{body}");
    body["key"].as_str().unwrap().to_owned()
}

/// Registers `photo` (a fixture) as `name`, with consent, through `/v1/register` (201 asserted):
/// the person's id.
pub async fn register_person(server: &Server, photo: &str, name: &str) -> String {
    let form = reqwest::multipart::Form::new()
        .part("image", image_part(registry_photo(photo), "photo.jpg"))
        .text("name", name.to_owned())
        .text("consent", "true");
    let (status, body) = json(server.post_form("/v1/register", form).await).await;
    assert_eq!(status, 201, "{body}");
    body["person"]["id"].as_str().unwrap().to_owned()
}

/// A photo without a face: a grey square (PNG).
pub fn grey_png() -> Vec<u8> {
    let image = image::RgbImage::from_pixel(200, 200, image::Rgb([128, 128, 128]));
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}
