"""InsightFace itself on a model pack: the reference numbers a pack's facerec output is checked against.

usage: insightface-reference.py PACK_NAME PACK_DIR PHOTO_LIST > reference.jsonl

Writes one JSON line per photo in the format of ../shared/faces/reference.jsonl (see ../shared/README.md):
{"path","width","height","n_faces","faces":[{"bbox","kps","det_score","embedding","embedding_norm"}]},
"path" as the list gives it, faces in detector order, "embedding" L2-normalized. Same settings as that file:
detection + recognition, det size 640, CPU, images read as InsightFace's own tools read them.
Needs the insightface package (not in the test venv): run it with a Python that has it.
"""
import contextlib
import json
import os
import sys
import tempfile

import cv2
from insightface.app import FaceAnalysis

if len(sys.argv) != 4:
    sys.exit("usage: insightface-reference.py PACK_NAME PACK_DIR PHOTO_LIST > reference.jsonl")
pack_name, pack_dir, photo_list = sys.argv[1:]
# FaceAnalysis finds its models under ROOT/models/NAME and tells detector from recognizer by their
# signatures, not their names: link the pack's ONNX files there (pack.json itself is not needed).
root = tempfile.mkdtemp()
models = os.path.join(root, "models", pack_name)
os.makedirs(models)
for name in sorted(os.listdir(pack_dir)):
    if name.endswith(".onnx"):
        os.symlink(os.path.abspath(os.path.join(pack_dir, name)), os.path.join(models, name))

# InsightFace 0.7.x prints what it loaded ("find model: ...") on stdout, which is the JSON's.
with contextlib.redirect_stdout(sys.stderr):
    app = FaceAnalysis(name=pack_name, root=root, allowed_modules=["detection", "recognition"],
                       providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=-1, det_size=(640, 640))
for path in (line.strip() for line in open(photo_list)):
    if not path:
        continue
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        sys.exit(f"insightface-reference: cannot read {path}")
    faces = app.get(img)
    print(json.dumps({
        "path": path, "width": img.shape[1], "height": img.shape[0], "n_faces": len(faces),
        "faces": [{
            "bbox": [float(v) for v in face.bbox],
            "kps": [[float(x), float(y)] for x, y in face.kps],
            "det_score": float(face.det_score),
            "embedding": [float(v) for v in face.normed_embedding],
            "embedding_norm": float(face.embedding_norm),
        } for face in faces],
    }), flush=True)
