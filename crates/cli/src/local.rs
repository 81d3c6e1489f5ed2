//! `facerec enroll`, `facerec identify` and `facerec migrate`: the service's use cases run locally
//! against the configured database, without HTTP.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use facerec_core::{Actor, Added, Matcher};
use facerec_service::{App, Engine, FacePick, RecognizeOptions, Registration, RegistrationTarget};
use indicatif::{ProgressBar, ProgressStyle};

use crate::settings::{files_below, DatabaseArgs, ServiceArgs};

async fn local_app(service: &ServiceArgs) -> anyhow::Result<App> {
    let ServiceArgs {
        database,
        matching,
        vision,
    } = service;
    let store = facerec_store::open(&database.database_url, &database.store_options()).await?;
    let config = vision.analyzer_config()?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let engine = tokio::task::spawn_blocking(move || Engine::start(&config, workers, 64)).await??;
    Ok(App::new(
        engine,
        store,
        Matcher::new(matching.threshold()?),
        matching.quality(),
        vision.ingest_limits(),
    ))
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
    #[command(flatten)]
    service: ServiceArgs,
}

pub async fn enroll(args: EnrollArgs) -> anyhow::Result<ExitCode> {
    if !args.consent {
        anyhow::bail!(
            "enrollment records that each person consented: pass --consent to confirm they did"
        );
    }
    let mut people: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in
        std::fs::read_dir(&args.dir).with_context(|| format!("reading {}", args.dir.display()))?
    {
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
    let total: usize = people.values().map(Vec::len).sum();
    if total == 0 {
        anyhow::bail!(
            "no photos found: expected {}/<person name>/<photos>",
            args.dir.display()
        );
    }
    let app = local_app(&args.service).await?;
    let actor = Actor::local_operator();
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").expect("static template"),
    );
    let (mut added, mut present) = (0, 0);
    let mut refused: Vec<(PathBuf, String, String)> = Vec::new();
    for (name, photos) in &people {
        bar.set_message(name.clone());
        let mut person = app.person_named(name).await?;
        for photo in photos {
            bar.inc(1);
            let image = std::fs::read(photo)
                .with_context(|| format!("reading {}", photo.display()))?
                .into();
            let target = match &person {
                Some(p) => RegistrationTarget::Existing(p.id),
                None => RegistrationTarget::NewPerson {
                    name: name.clone(),
                    external_id: None,
                    metadata: serde_json::json!({ "enrolled_from": "facerec enroll" }),
                },
            };
            let request = Registration {
                image,
                target,
                consent: true,
                consent_basis: Some(args.consent_basis.clone()),
                pick: if args.largest_face {
                    FacePick::Largest
                } else {
                    FacePick::Only
                },
            };
            match app.register(request, &actor).await {
                Ok(r) => {
                    if r.added == Added::Created {
                        added += 1;
                    } else {
                        present += 1;
                    }
                    person = Some(r.person);
                }
                Err(e) => refused.push((photo.clone(), e.code().to_owned(), e.to_string())),
            }
        }
    }
    bar.finish_and_clear();
    println!(
        "{} people, {total} photos: {added} faces added, {present} already registered, {} refused",
        people.len(),
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
    Ok(ExitCode::SUCCESS)
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
    service: ServiceArgs,
}

pub async fn identify(args: IdentifyArgs) -> anyhow::Result<ExitCode> {
    let app = local_app(&args.service).await?;
    let options = RecognizeOptions {
        threshold: None,
        top_k: 2,
        max_faces: 100,
    };
    let mut failed = 0;
    for path in &args.images {
        let shown = path.display().to_string();
        let result = match std::fs::read(path) {
            Ok(bytes) => app
                .recognize(bytes.into(), &options)
                .await
                .map(|r| r.faces)
                .map_err(|e| (e.code().to_owned(), e.to_string())),
            Err(e) => Err(("unreadable_file".to_owned(), e.to_string())),
        };
        match result {
            Ok(faces) => {
                if args.json {
                    let faces: Vec<serde_json::Value> = faces
                        .iter()
                        .map(|f| {
                            serde_json::json!({
                                "bbox": f.face.detection.bbox.to_array(),
                                "match": f.recognition.matched,
                                "best": f.recognition.best(),
                            })
                        })
                        .collect();
                    println!("{}", serde_json::json!({ "path": shown, "faces": faces }));
                } else {
                    let names: Vec<String> = faces
                        .iter()
                        .map(|f| match (&f.recognition.matched, f.recognition.best()) {
                            (Some(m), _) => format!("{} ({:.2})", m.name, m.similarity.value()),
                            (None, Some(b)) => {
                                format!("unknown (closest: {} {:.2})", b.name, b.similarity.value())
                            }
                            (None, None) => "unknown".to_owned(),
                        })
                        .collect();
                    let list = if names.is_empty() {
                        "no face".to_owned()
                    } else {
                        names.join(", ")
                    };
                    println!("{shown}: {list}");
                }
            }
            Err((code, message)) => {
                failed += 1;
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({ "path": shown, "error": { "code": code, "message": message } })
                    );
                } else {
                    println!("{shown}: error {code}: {message}");
                }
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
