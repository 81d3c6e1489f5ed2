//! Face embedding with ArcFace (InsightFace's `model_zoo/arcface_onnx.py`).

use ort::session::Session;
use ort::value::{TensorRef, ValueType};

use crate::align::{FaceChip, CHIP_SIZE};
use crate::embedding::NormalizedEmbedding;
use crate::error::RuntimeError;

/// ArcFace normalization for this model family: `(pixel - 127.5) / 127.5`, RGB.
const INPUT_MEAN: f32 = 127.5;
const INPUT_STD: f32 = 127.5;

/// An embedding and the norm the model's raw output had (a quality signal).
#[derive(Debug, Clone)]
pub struct Embedded {
    pub embedding: NormalizedEmbedding,
    pub raw_norm: f32,
}

/// Faces whose input buffer an embedder keeps between batches (a larger batch's is given back).
const KEPT_BATCH: usize = 8;

/// The ArcFace embedder: one ONNX session.
pub struct Embedder {
    session: Session,
    /// Whether the model takes a dynamic batch; otherwise chips are embedded one by one.
    batched: bool,
    dim: usize,
    input: Vec<f32>,
}

impl Embedder {
    pub(crate) fn new(session: Session) -> Result<Self, RuntimeError> {
        let signature_error = |message: String| RuntimeError::ModelSignature {
            model: "embedder".into(),
            message,
        };
        let input_shape = match session.inputs().first().map(|i| i.dtype()) {
            Some(ValueType::Tensor { shape, .. }) => shape.to_vec(),
            _ => return Err(signature_error("no tensor input".into())),
        };
        let side = i64::from(CHIP_SIZE);
        if input_shape.len() != 4 || input_shape[1..] != [3, side, side] {
            return Err(signature_error(format!(
                "expected input [N, 3, 112, 112], found {input_shape:?}"
            )));
        }
        let dim = match session.outputs().first().map(|o| o.dtype()) {
            Some(ValueType::Tensor { shape, .. }) if shape.len() == 2 && shape[1] > 0 => {
                shape[1] as usize
            }
            other => {
                return Err(signature_error(format!(
                    "expected output [N, D], found {other:?}"
                )))
            }
        };
        Ok(Self {
            session,
            batched: input_shape[0] < 0,
            dim,
            input: Vec::new(),
        })
    }

    /// Length of the embeddings this model produces.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Embeds all chips, in one batch where the model allows it.
    pub fn embed(&mut self, chips: &[FaceChip]) -> Result<Vec<Embedded>, RuntimeError> {
        if chips.is_empty() {
            return Ok(Vec::new());
        }
        if self.batched {
            return self.embed_batch(chips);
        }
        let mut all = Vec::with_capacity(chips.len());
        for chip in chips {
            all.extend(self.embed_batch(std::slice::from_ref(chip))?);
        }
        Ok(all)
    }

    fn embed_batch(&mut self, chips: &[FaceChip]) -> Result<Vec<Embedded>, RuntimeError> {
        let plane = (CHIP_SIZE * CHIP_SIZE) as usize;
        let needed = chips.len() * 3 * plane;
        self.input.clear();
        // One group photo of 100 faces needs 15 MB here; later, smaller batches give it back.
        self.input.shrink_to(needed.max(KEPT_BATCH * 3 * plane));
        self.input.resize(needed, 0.0);
        for (chip, slot) in chips.iter().zip(self.input.chunks_exact_mut(3 * plane)) {
            for (i, px) in chip.image().as_raw().chunks_exact(3).enumerate() {
                for c in 0..3 {
                    slot[c * plane + i] = (f32::from(px[c]) - INPUT_MEAN) / INPUT_STD;
                }
            }
        }
        let shape = [chips.len(), 3, CHIP_SIZE as usize, CHIP_SIZE as usize];
        let tensor = TensorRef::from_array_view((shape, self.input.as_slice()))?;
        let outputs = self.session.run(ort::inputs![tensor])?;
        let (_, raw) = outputs[0].try_extract_tensor::<f32>()?;
        if raw.len() != chips.len() * self.dim {
            return Err(RuntimeError::Inference(format!(
                "embedder returned {} values for {} faces of dimension {}",
                raw.len(),
                chips.len(),
                self.dim
            )));
        }
        raw.chunks_exact(self.dim)
            .map(|row| {
                NormalizedEmbedding::normalize(row)
                    .map(|(embedding, raw_norm)| Embedded {
                        embedding,
                        raw_norm,
                    })
                    .map_err(|e| RuntimeError::Inference(format!("embedder output: {e}")))
            })
            .collect()
    }
}
