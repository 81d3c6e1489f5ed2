"""Builds a model pack for the model-pack tests (crates/cli/tests/model_packs.rs) from buffalo_s.

usage: make-test-pack.py KIND MODELS_DIR OUT_DIR   (KIND: rotated, wrong-sha, missing-file, wrong-shape)

`rotated` is a second, genuinely different embedding space without a second set of weights: buffalo_s's
recognizer with a fixed orthogonal 512x512 rotation appended. A rotation keeps norms and dot products, so
the same faces match with the same scores, while its embeddings are not comparable with buffalo_s's ones.
The other kinds are packs that must be refused: a manifest sha256 that is wrong, a file the manifest
names but that is missing, a recognizer that loads but takes [N,3,64,64] instead of [N,3,112,112].
Deterministic: the same inputs give byte-identical files. Needs onnx and numpy (tests/contract/requirements.txt).
"""
import hashlib
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

KINDS = ("rotated", "wrong-sha", "missing-file", "wrong-shape")
LICENCE = "test-only: derived from InsightFace buffalo_s (non-commercial research licence)"
SEED = 31


def rotation(n=512):
    # Haar-style random orthogonal matrix; fixing the signs of R's diagonal makes Q unique for a given A.
    q, r = np.linalg.qr(np.random.default_rng(SEED).standard_normal((n, n)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def rotated(models_dir):
    model = onnx.load(os.path.join(models_dir, "w600k_mbf.onnx"))
    graph = model.graph
    out = graph.output[0]
    # The rotation's MatMul takes over the output's name, so the model's signature is unchanged.
    inner = out.name + "_unrotated"
    for node in graph.node:
        node.output[:] = [inner if o == out.name else o for o in node.output]
    graph.initializer.append(numpy_helper.from_array(rotation(), "test_pack_rotation"))
    graph.node.append(helper.make_node("MatMul", [inner, "test_pack_rotation"], [out.name]))
    # buffalo_s runs batched but was exported with batch 1: its output and every intermediate shape say
    # [1,...], so onnxruntime reports the output as [1,512] and warns on larger batches. Declare the
    # input's dynamic batch on the output and drop the stale intermediate shapes (optional; re-inferred).
    out.type.tensor_type.shape.dim[0].CopyFrom(graph.input[0].type.tensor_type.shape.dim[0])
    del graph.value_info[:]
    # Opset 11 and IR version 6 are kept as loaded: onnxruntime loads what it loaded before.
    onnx.checker.check_model(model)
    return model.SerializeToString()


def wrong_shape():
    # Loadable, tiny, [N,512] out like a real recognizer, but its input is [N,3,64,64].
    weights = np.random.default_rng(SEED).standard_normal((3, 512)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input.1"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
         helper.make_node("MatMul", ["flat", "weights"], ["embedding"])],
        "wrong_shape",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 512])],
        [numpy_helper.from_array(weights, "weights")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6,
                              producer_name="facerec make-test-pack.py")
    onnx.checker.check_model(model)
    return model.SerializeToString()


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in KINDS:
        sys.exit(f"usage: make-test-pack.py {{{','.join(KINDS)}}} MODELS_DIR OUT_DIR")
    kind, models_dir, out_dir = sys.argv[1:]
    detector_src = os.path.join(models_dir, "scrfd_500m_bnkps.onnx")
    if not os.path.isfile(detector_src):
        sys.exit(f"make-test-pack: {detector_src} not found (run scripts/setup.sh)")
    recognizer = wrong_shape() if kind == "wrong-shape" else rotated(models_dir)

    os.makedirs(out_dir, exist_ok=True)
    detector = os.path.join(out_dir, "detector.onnx")
    shutil.copyfile(detector_src, detector)
    recognizer_path = os.path.join(out_dir, "recognizer.onnx")
    if kind == "missing-file":
        if os.path.exists(recognizer_path):
            os.remove(recognizer_path)
    else:
        with open(recognizer_path, "wb") as f:
            f.write(recognizer)
    with open(detector, "rb") as f:
        detector_sha = hashlib.sha256(f.read()).hexdigest()
    # missing-file names the sha256 the file would have had: only its absence is wrong.
    recognizer_sha = "0" * 64 if kind == "wrong-sha" else hashlib.sha256(recognizer).hexdigest()
    manifest = {
        "name": kind,
        "detector": {"file": "detector.onnx", "sha256": detector_sha},
        "recognizer": {"file": "recognizer.onnx", "sha256": recognizer_sha, "embedding_size": 512},
        "licence": LICENCE,
    }
    with open(os.path.join(out_dir, "pack.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(out_dir)


if __name__ == "__main__":
    main()
