"""InsightFace itself on a list of photos, for side-by-side timing with `facerec analyze`
(scripts/bench-batch.sh runs it when INSIGHTFACE_PYTHON names a Python that has the package).

The same models (vendor/models, as buffalo_s), det size 640, detection + recognition, CPU, with
ONNX Runtime's default threads (every core), images read as InsightFace's own tools read them.
"""
import os
import sys
import tempfile
import time

import cv2
from insightface.app import FaceAnalysis

models, photo_list = sys.argv[1], sys.argv[2]
root = tempfile.mkdtemp()
os.makedirs(os.path.join(root, "models", "buffalo_s"))
for name in ("scrfd_500m_bnkps.onnx", "w600k_mbf.onnx"):
    os.symlink(os.path.abspath(os.path.join(models, name)), os.path.join(root, "models", "buffalo_s", name))

start = time.time()
app = FaceAnalysis(name="buffalo_s", root=root, allowed_modules=["detection", "recognition"],
                   providers=["CPUExecutionProvider"])
app.prepare(ctx_id=-1, det_size=(640, 640))
loaded = time.time()
paths = [line.strip() for line in open(photo_list) if line.strip()]
faces = sum(len(app.get(img)) for img in (cv2.imread(p, cv2.IMREAD_COLOR) for p in paths) if img is not None)
done = time.time()
print(f"{loaded - start:.2f} {done - loaded:.2f} {done - start:.2f} {faces}")
