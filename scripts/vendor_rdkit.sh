#!/usr/bin/env bash
# Vendors RDKit.js (npm @rdkit/rdkit, pinned) into src/serve/web/vendor/ for the page that
# `instructmol serve` embeds in the binary (include_bytes!): nothing is fetched at run time.
#
#   bash scripts/vendor_rdkit.sh            # fetch, verify, copy
#
# The package is fetched with `npm pack` into a temporary folder (no node_modules anywhere),
# checked against the pinned npm integrity hash, and unpacked there; RDKit_minimal.js and
# RDKit_minimal.wasm are copied. The npm package ships no license file (its package.json says
# BSD-3-Clause), so RDKit's license.txt is taken from the matching release tag on GitHub; when
# GitHub cannot be reached, the committed copy is kept if it is the one pinned below.
# vendor/SOURCE.txt records what was vendored (version, tarball hash, file hashes and sizes).
set -euo pipefail
cd "$(dirname "$0")/.."

version=2026.9.1
release_tag=Release_2026_09_1
integrity='sha512-nbdi5yEw+mG2kIxFvgVMGulS5fjNMzzocx9nKs01NAjNpFAEQVb6RDl3pd9AWEa7m5D8DR4QAS6CDzu+5xjzEA=='
license_url="https://raw.githubusercontent.com/rdkit/rdkit/$release_tag/license.txt"
license_sha256=d8866aebd8b168d3eba41800df036f15a75a980b38fd4c00fc1b388d271b8275
out=src/serve/web/vendor

command -v npm >/dev/null || { echo "vendor_rdkit: npm is needed (apt-get install -y npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "vendor_rdkit: npm pack @rdkit/rdkit@$version" >&2
(cd "$tmp" && npm pack --silent "@rdkit/rdkit@$version" >/dev/null)
tgz=$(ls "$tmp"/rdkit-rdkit-"$version".tgz)
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [ "$got" != "$integrity" ]; then
    echo "vendor_rdkit: $tgz has integrity $got, expected $integrity" >&2
    exit 1
fi
tar -xzf "$tgz" -C "$tmp"
for f in RDKit_minimal.js RDKit_minimal.wasm; do
    [ -s "$tmp/package/dist/$f" ] || { echo "vendor_rdkit: the package has no dist/$f" >&2; exit 1; }
done

mkdir -p "$out"
install -m 0644 "$tmp/package/dist/RDKit_minimal.js" "$tmp/package/dist/RDKit_minimal.wasm" "$out/"

lic="$out/RDKit_LICENSE.txt"
if curl -fsSL --max-time 30 "$license_url" -o "$tmp/license.txt" 2>/dev/null; then
    cp "$tmp/license.txt" "$lic"
    if [ "$(sha256sum "$lic" | cut -d' ' -f1)" != "$license_sha256" ]; then
        echo "vendor_rdkit: note: RDKit's license.txt at $release_tag differs from the pinned copy; review $lic" >&2
    fi
elif [ -f "$lic" ] && [ "$(sha256sum "$lic" | cut -d' ' -f1)" = "$license_sha256" ]; then
    echo "vendor_rdkit: GitHub not reachable; keeping the committed $lic (pinned hash matches)" >&2
else
    echo "vendor_rdkit: cannot fetch $license_url and no pinned copy at $lic" >&2
    exit 1
fi

{
    echo "RDKit.js (RDKit MinimalLib compiled to WebAssembly), vendored by scripts/vendor_rdkit.sh"
    echo "package: @rdkit/rdkit@$version (npm), license: BSD-3-Clause (RDKit_LICENSE.txt, from rdkit/rdkit $release_tag license.txt)"
    echo "tarball integrity: $integrity"
    for f in RDKit_minimal.js RDKit_minimal.wasm RDKit_LICENSE.txt; do
        echo "$(sha256sum "$out/$f" | cut -d' ' -f1)  $(stat -c %s "$out/$f") bytes  $f"
    done
} > "$out/SOURCE.txt"
cat "$out/SOURCE.txt"
