"""A client generated from facerec's /openapi.json by a real generator registers, recognizes and
deletes a person (crates/cli/tests/generated_client.rs runs this; #32, 4).

Usage: generated_client.py BASE_URL API_KEY PHOTO WORK_DIR
The document is validated with openapi-spec-validator, the client generated with
openapi-python-client (both from PyPI, pinned in requirements.txt), then imported and used.
Prints one JSON line with what it saw; exits non-zero on failure.
"""

import io
import json
import os
import pathlib
import subprocess
import sys
import urllib.request

from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

base, key, photo, work = sys.argv[1:5]
work = pathlib.Path(work)
spec_path = work / "openapi.json"
spec_path.write_bytes(urllib.request.urlopen(f"{base}/openapi.json").read())
validate(read_from_filename(str(spec_path))[0])

# Every request and response body has an example, and each example is valid for its schema.
import jsonschema  # noqa: E402  (openapi-spec-validator's own dependency)
import referencing  # noqa: E402

document = json.loads(spec_path.read_text())
schemas = document["components"]["schemas"]
registry = referencing.Registry().with_resource(
    "urn:facerec", referencing.Resource.from_contents(document, referencing.jsonschema.DRAFT202012)
)
bodies = set()
for path, item in document["paths"].items():
    for method, operation in item.items():
        if not isinstance(operation, dict):
            continue
        contents = [operation.get("requestBody", {}).get("content", {})]
        contents += [r.get("content", {}) for s, r in operation.get("responses", {}).items() if s.startswith("2")]
        for content in contents:
            for media, body in content.items():
                ref = body.get("schema", {}).get("$ref", "")
                if ref:
                    bodies.add(ref.rsplit("/", 1)[1])
                elif media != "image/jpeg":
                    sys.exit(f"{method.upper()} {path}: a {media} body without a named schema")
missing = sorted(name for name in bodies if not schemas[name].get("examples"))
if missing:
    sys.exit(f"bodies without an example: {missing}")
for name in sorted(bodies):
    # A form's file fields hold a placeholder string: a string is what `format: binary` types.
    example = schemas[name]["examples"][0]
    schema = {"$ref": f"urn:facerec#/components/schemas/{name}"}
    errors = list(jsonschema.Draft202012Validator(schema, registry=registry).iter_errors(example))
    if errors:
        sys.exit(f"the example of {name} does not fit its schema: {errors[0].message} at {list(errors[0].absolute_path)}")

# The generator runs its formatter (ruff, installed beside it) from PATH.
bin_dir = pathlib.Path(sys.executable).parent
env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
generated = subprocess.run(
    [str(bin_dir / "openapi-python-client"), "generate", "--path", str(spec_path),
     "--meta", "none", "--output-path", str(work / "facerec_client"), "--overwrite"],
    env=env, capture_output=True, text=True,
)
if generated.returncode != 0:
    sys.exit(f"the generator failed:\n{generated.stdout}\n{generated.stderr}")
warnings = [line for line in generated.stdout.splitlines() if "Warning" in line]

sys.path.insert(0, str(work))
from facerec_client import AuthenticatedClient  # noqa: E402
from facerec_client.api.persons import delete_person, get_person  # noqa: E402
from facerec_client.api.recognition import recognize  # noqa: E402
from facerec_client.api.registration import register  # noqa: E402
from facerec_client.models import RecognizeForm, RegisterForm  # noqa: E402
from facerec_client.types import File  # noqa: E402

data = pathlib.Path(photo).read_bytes()
image = lambda: File(payload=io.BytesIO(data), file_name="photo.jpg", mime_type="image/jpeg")  # noqa: E731
client = AuthenticatedClient(base_url=base, token=key)
seen = {"generator_warnings": warnings, "examples_checked": len(bodies)}

registered = register.sync_detailed(
    client=client,
    body=RegisterForm(consent=True, image=image(), name="Generated Client"),
    idempotency_key="generated-client-1",
)
assert registered.status_code == 201, registered.content
person_id = registered.parsed.person.id
seen["registered"] = str(person_id)

recognized = recognize.sync_detailed(client=client, body=RecognizeForm(image=image()))
assert recognized.status_code == 200, recognized.content
match = getattr(recognized.parsed.faces[0], "match")
seen["recognized"] = match.name if match else None

deleted = delete_person.sync_detailed(client=client, id=person_id)
assert deleted.status_code == 200, deleted.content
gone = get_person.sync_detailed(client=client, id=person_id)
seen["after_delete"] = gone.status_code
# The code is an enum of the document's codes: its value is the code.
code = gone.parsed.error.code if gone.parsed else None
seen["error_code"] = getattr(code, "value", code)
print(json.dumps(seen))
