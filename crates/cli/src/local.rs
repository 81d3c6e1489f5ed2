//! `facerec enroll`, `facerec identify` and `facerec migrate`: the service's use cases run locally
//! against the configured database, without HTTP.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use facerec_core::{Added, Caller, CollectionRef, ErrorCode};
use facerec_service::{
    default_workers, App, AppResult, FacePick, NamedRegistration, RecognizeOptions, RecognizedFace,
};
use futures_util::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::remote::{Refusal, Remote, RemoteArgs};
use crate::settings::{files_below, DatabaseArgs, EnrollingArgs, ServiceArgs};

/// The service on the configured database, with `workers` inference workers (each with one-thread
/// sessions) and room in the queue for `workers` x `workers` jobs (enroll's people and photos side
/// by side).
async fn local_app(
    service: &ServiceArgs,
    workers: usize,
    enrolling: Option<&EnrollingArgs>,
) -> anyhow::Result<App> {
    let mut config = service.app_config(Some(workers), workers * workers)?;
    if let Some(enrolling) = enrolling {
        enrolling.apply(&mut config);
    }
    Ok(App::start(config, service.database.open().await?).await?)
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Print the whole calibration as JSON (the curve and histograms included)
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    collection: CollectionArg,
    #[command(flatten)]
    service: ServiceArgs,
}

/// The collection a command acts in.
#[derive(Debug, Args)]
pub struct CollectionArg {
    /// The collection to act in (name or id)
    #[arg(long, env = "FACEREC_COLLECTION", default_value = "default")]
    pub collection: CollectionRef,
}

/// Recalibrates the match threshold now and records it (a running server adopts it at its next look).
pub async fn calibrate(args: CalibrateArgs) -> anyhow::Result<()> {
    let app = local_app(&args.service, 1, None).await?;
    let caller = app
        .access()
        .local_operator(&args.collection.collection)
        .await?;
    let calibration = app.calibrator().calibrate(&caller.collection).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&*calibration)?);
    } else {
        println!(
            "threshold {:.3} (floor {:.3}) for {} persons: estimated {:.4} of strangers named \
             (95% bound {:.4}, target {}), {} method{}",
            calibration.effective_threshold.value(),
            calibration.floor_threshold.value(),
            calibration.persons,
            calibration.estimated_fpir,
            calibration.estimated_fpir_upper,
            calibration.target_fpir,
            serde_json::to_value(calibration.method)?
                .as_str()
                .unwrap_or_default(),
            if calibration.weak {
                "; the bound cannot show the target: the threshold is where the least risk was \
                 seen (weak estimate)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseArgs,
}

pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let store =
        facerec_store::open(&args.database.database_url, &args.database.store_options()).await?;
    println!(
        "{} database at {} is up to date",
        store.backend(),
        facerec_store::redact(&args.database.database_url)
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy (must not exist); its sha256 and schema version go beside it, in
    /// <PATH>.json
    path: PathBuf,
    #[command(flatten)]
    database: DatabaseArgs,
}

/// A consistent copy of the SQLite database, while a server may be using it.
pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let info = facerec_store::backup::backup(&args.database.database_url, &args.path).await?;
    println!(
        "backed up to {} (schema version {}, sha256 {})",
        args.path.display(),
        info.schema_version,
        info.sha256
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A backup made by `facerec backup` (with its <PATH>.json beside it)
    path: PathBuf,
    #[command(flatten)]
    database: DatabaseArgs,
}

/// Replaces the SQLite database by a checked backup; refused while a server holds it.
pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let info = facerec_store::backup::restore(&args.database.database_url, &args.path).await?;
    println!(
        "restored {} (schema version {}, made {})",
        args.path.display(),
        info.schema_version,
        info.created_at
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// Folder of `<person name>/<photos>`
    dir: PathBuf,
    /// Confirms that every person in the folder consented to being registered (required)
    #[arg(long)]
    consent: bool,
    /// How consent was obtained, recorded with each new person
    #[arg(
        long,
        default_value = "consent confirmed by the operator for `facerec enroll`"
    )]
    consent_basis: String,
    /// Register the largest face of photos that show several
    #[arg(long)]
    largest_face: bool,
    /// Photos analyzed at once, each on a one-thread model session [default: one per core]
    #[arg(long, env = "FACEREC_WORKERS")]
    workers: Option<usize>,
    #[command(flatten)]
    collection: CollectionArg,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    service: ServiceArgs,
    #[command(flatten)]
    enrolling: EnrollingArgs,
}

pub async fn enroll(args: EnrollArgs) -> anyhow::Result<ExitCode> {
    if !args.consent {
        anyhow::bail!(
            "enrollment records that each person consented: pass --consent to confirm they did"
        );
    }
    let people = people_in(&args.dir)?;
    let total: usize = people.values().map(Vec::len).sum();
    if total == 0 {
        anyhow::bail!(
            "no photos found: expected {}/<person name>/<photos>",
            args.dir.display()
        );
    }
    if let Some(remote) = Remote::new(&args.remote, &args.collection.collection) {
        let mut outcomes = Vec::with_capacity(total);
        for (name, photos) in &people {
            for photo in photos {
                let outcome = match std::fs::read(photo) {
                    Ok(bytes) => {
                        let (basis, largest) = (&args.consent_basis, args.largest_face);
                        remote.enroll(name, bytes, basis, largest).await
                    }
                    Err(e) => Err((ErrorCode::UnreadableFile.to_string(), e.to_string())),
                };
                outcomes.push((photo.clone(), outcome));
            }
        }
        print_enrolled(people.len(), total, outcomes.into_iter());
        return Ok(ExitCode::SUCCESS);
    }
    let workers = args.workers.unwrap_or_else(default_workers);
    let app = local_app(&args.service, workers, Some(&args.enrolling)).await?;
    let caller = app
        .access()
        .local_operator(&args.collection.collection)
        .await?;
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").expect("static template"),
    );
    let enrolling = Enrolling {
        app: &app,
        caller: &caller,
        args: &args,
        bar: &bar,
        workers,
    };
    // People side by side, and each person's photos side by side: at most workers x workers
    // registrations in flight, within the engine's queue of workers x workers.
    let outcomes: Vec<Vec<(PathBuf, AppResult<Added>)>> = futures_util::stream::iter(&people)
        .map(|(name, photos)| enrolling.person(name, photos))
        .buffered(workers)
        .try_collect()
        .await?;
    bar.finish_and_clear();
    let outcomes = outcomes.into_iter().flatten().map(|(photo, outcome)| {
        (
            photo,
            outcome.map_err(|e| (e.code().to_string(), e.to_string())),
        )
    });
    print_enrolled(people.len(), total, outcomes);
    Ok(ExitCode::SUCCESS)
}

/// The folder's `<person name>/<photos>`, by name (`_` in a folder name is a space).
fn people_in(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<PathBuf>>> {
    let mut people = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .replace('_', " ");
            people.insert(name, files_below(&path)?);
        }
    }
    Ok(people)
}

/// What `enroll` did: counts, then each refused photo and the count of each reason.
fn print_enrolled(
    people: usize,
    total: usize,
    outcomes: impl Iterator<Item = (PathBuf, Result<Added, Refusal>)>,
) {
    let (mut added, mut present) = (0, 0);
    let mut refused: Vec<(PathBuf, String, String)> = Vec::new();
    for (photo, outcome) in outcomes {
        match outcome {
            Ok(Added::Created) => added += 1,
            Ok(Added::AlreadyPresent) => present += 1,
            Err((code, message)) => refused.push((photo, code, message)),
        }
    }
    println!(
        "{people} people, {total} photos: {added} faces added, {present} already registered, {} refused",
        refused.len()
    );
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for (photo, code, message) in &refused {
        *by_reason.entry(code).or_default() += 1;
        println!("  refused {}: {code}: {message}", photo.display());
    }
    for (code, n) in by_reason {
        println!("  {n} x {code}");
    }
}

/// One `facerec enroll` run: what each person's registrations share.
struct Enrolling<'a> {
    app: &'a App,
    caller: &'a Caller,
    args: &'a EnrollArgs,
    bar: &'a ProgressBar,
    workers: usize,
}

impl Enrolling<'_> {
    /// Registers a person's photos side by side: the first to reach the store creates the person
    /// (registrations by one name are serialized there), the others add to them. Re-running adds
    /// nothing twice: a photo already registered is found by its image hash.
    async fn person(
        &self,
        name: &str,
        photos: &[PathBuf],
    ) -> anyhow::Result<Vec<(PathBuf, AppResult<Added>)>> {
        futures_util::stream::iter(photos)
            .map(|photo| async move {
                let outcome = self.photo(name, photo).await?;
                anyhow::Ok((photo.clone(), outcome))
            })
            .buffered(self.workers)
            .try_collect()
            .await
    }

    async fn photo(&self, name: &str, photo: &Path) -> anyhow::Result<AppResult<Added>> {
        let image = tokio::fs::read(photo)
            .await
            .with_context(|| format!("reading {}", photo.display()))?
            .into();
        let request = NamedRegistration {
            name: name.to_owned(),
            images: vec![image],
            consent_basis: self.args.consent_basis.clone(),
            metadata: serde_json::json!({ "enrolled_from": "facerec enroll" }),
            pick: if self.args.largest_face {
                FacePick::Largest
            } else {
                FacePick::Only
            },
        };
        let outcome = self.app.register_named(request, self.caller).await;
        self.bar.inc(1);
        self.bar.set_message(name.to_owned());
        Ok(outcome.map(|r| {
            r.faces
                .first()
                .map_or(Added::AlreadyPresent, |(_, added)| *added)
        }))
    }
}

#[derive(Debug, Args)]
pub struct IdentifyArgs {
    /// Photos to identify
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Print JSON lines instead of text
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    collection: CollectionArg,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    service: ServiceArgs,
}

pub async fn identify(args: IdentifyArgs) -> anyhow::Result<ExitCode> {
    if let Some(remote) = Remote::new(&args.remote, &args.collection.collection) {
        let mut failed = 0;
        for path in &args.images {
            let result = match std::fs::read(path) {
                Ok(bytes) => remote
                    .recognize(bytes)
                    .await
                    .map(|faces| faces.iter().map(Shown::from_answer).collect()),
                Err(e) => Err((ErrorCode::UnreadableFile.to_string(), e.to_string())),
            };
            failed += usize::from(result.is_err());
            print_identified(&path.display().to_string(), result, args.json);
        }
        return Ok(if failed > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let app = local_app(&args.service, default_workers(), None).await?;
    // Decide as a server on this database would.
    let caller = app
        .access()
        .local_operator(&args.collection.collection)
        .await?;
    app.calibrator()
        .calibrate_if_changed(&caller.collection)
        .await?;
    // The best candidate and the runner-up.
    let options = RecognizeOptions {
        top_k: 2,
        ..RecognizeOptions::default()
    };
    let mut failed = 0;
    for path in &args.images {
        let shown = path.display().to_string();
        let result = match std::fs::read(path) {
            Ok(bytes) => app
                .recognize(&caller, bytes.into(), &options)
                .await
                .map(|r| r.faces.iter().map(Shown::from_face).collect())
                .map_err(|e| (e.code().to_string(), e.to_string())),
            Err(e) => Err((ErrorCode::UnreadableFile.to_string(), e.to_string())),
        };
        failed += usize::from(result.is_err());
        print_identified(&shown, result, args.json);
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A face as `identify` prints it: its box, the person named (or none) and the closest candidate,
/// each `{person_id, name, similarity}` as the HTTP API answers them.
struct Shown {
    bbox: Value,
    matched: Value,
    best: Value,
}

impl Shown {
    fn from_face(face: &RecognizedFace) -> Self {
        let candidate = |c: &facerec_core::Candidate| serde_json::json!({ "person_id": c.person_id, "name": c.name, "similarity": c.similarity.value() });
        Self {
            bbox: serde_json::json!(face.face.detection.bbox.to_array()),
            matched: face
                .recognition
                .matched
                .as_ref()
                .map_or(Value::Null, candidate),
            best: face.recognition.best().map_or(Value::Null, candidate),
        }
    }

    /// A face of `/v1/recognize`'s answer.
    fn from_answer(face: &Value) -> Self {
        let candidate = |c: &Value| serde_json::json!({ "person_id": c["person_id"], "name": c["name"], "similarity": c["similarity"] });
        Self {
            bbox: face["bbox"].clone(),
            matched: if face["match"].is_null() {
                Value::Null
            } else {
                candidate(&face["match"])
            },
            best: face["candidates"].get(0).map_or(Value::Null, candidate),
        }
    }
}

/// One photo's line: who is in it, or why it could not be read (text, or JSON with `--json`).
fn print_identified(shown: &str, result: Result<Vec<Shown>, Refusal>, json: bool) {
    let name = |c: &Value| c["name"].as_str().unwrap_or("?").to_owned();
    let similarity = |c: &Value| c["similarity"].as_f64().unwrap_or(f64::NAN);
    match (result, json) {
        (Ok(faces), true) => {
            let faces: Vec<Value> = faces
                .iter()
                .map(|f| serde_json::json!({ "bbox": f.bbox, "match": f.matched, "best": f.best }))
                .collect();
            println!("{}", serde_json::json!({ "path": shown, "faces": faces }));
        }
        (Ok(faces), false) => {
            let names: Vec<String> = faces
                .iter()
                .map(|f| match (f.matched.is_null(), f.best.is_null()) {
                    (false, _) => format!("{} ({:.2})", name(&f.matched), similarity(&f.matched)),
                    (true, false) => {
                        format!(
                            "unknown (closest: {} {:.2})",
                            name(&f.best),
                            similarity(&f.best)
                        )
                    }
                    (true, true) => "unknown".to_owned(),
                })
                .collect();
            let list = if names.is_empty() {
                "no face".to_owned()
            } else {
                names.join(", ")
            };
            println!("{shown}: {list}");
        }
        (Err((code, message)), true) => println!(
            "{}",
            serde_json::json!({ "path": shown, "error": { "code": code, "message": message } })
        ),
        (Err((code, message)), false) => println!("{shown}: error {code}: {message}"),
    }
}
