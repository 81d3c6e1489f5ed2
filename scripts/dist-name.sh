# Sourced by the dist scripts: `root` (the checkout), `name` (facerec-<version>-linux-x86_64, the
# archive's top folder) and `archive` (dist/<name>.tar.gz, or the script's first argument).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
name="facerec-$version-linux-x86_64"
archive="${1:-$root/dist/$name.tar.gz}"
