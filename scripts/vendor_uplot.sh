#!/usr/bin/env bash
# The dashboard's chart library, uPlot (MIT), pinned and kept in app/web/static/ so that a clean
# clone serves the web view offline (the worker inlines it into the page: no CDN, no extra route).
#
#   scripts/vendor_uplot.sh check   # the kept files are the pinned release's (offline; make install)
#   scripts/vendor_uplot.sh fetch   # download the pinned tarball from the npm registry, check its
#                                   # sha512 integrity, and write the files again
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.6.32
INTEGRITY="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="
TARBALL="https://registry.npmjs.org/uplot/-/uplot-${VERSION}.tgz"
DEST=app/web/static
# tarball path -> kept file, and the kept file's sha256
FILES=(
  "package/dist/uPlot.iife.min.js uplot-${VERSION}.iife.min.js 19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f"
  "package/dist/uPlot.min.css uplot-${VERSION}.min.css df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04"
  "package/LICENSE uplot-${VERSION}.LICENSE 8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd"
)

check() {
  local ok=0 entry src name sum
  for entry in "${FILES[@]}"; do
    read -r src name sum <<<"$entry"
    if ! echo "${sum}  ${DEST}/${name}" | sha256sum --check --status 2>/dev/null; then
      echo "vendor_uplot: ${DEST}/${name} is missing or not uPlot ${VERSION}'s" >&2
      ok=1
    fi
  done
  return $ok
}

fetch() {
  local tmp entry src name sum got
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  curl -fsSL --retry 3 -o "$tmp/uplot.tgz" "$TARBALL"
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/uplot.tgz" | base64 -w0)"
  if [[ "$got" != "$INTEGRITY" ]]; then
    echo "vendor_uplot: integrity mismatch for $TARBALL" >&2
    return 1
  fi
  tar -xzf "$tmp/uplot.tgz" -C "$tmp"
  for entry in "${FILES[@]}"; do
    read -r src name sum <<<"$entry"
    cp "$tmp/$src" "$DEST/$name"
  done
  check
}

case "${1:-check}" in
  check) check ;;
  fetch) fetch ;;
  *) echo "usage: $0 [check|fetch]" >&2; exit 2 ;;
esac
