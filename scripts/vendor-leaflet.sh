#!/usr/bin/env bash
# Vendor Leaflet (BSD-2-Clause) from the npm registry into the package, for the one-map page.
# Run by hand when upgrading; the result is committed, so nothing is fetched at run time or install.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:-1.9.4}
DEST=engine/onemap/static/vendor/leaflet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "leaflet@$VERSION" >/dev/null && tar xzf "leaflet-$VERSION.tgz")
rm -rf "$DEST"
mkdir -p "$DEST/images"
cp "$tmp/package/dist/leaflet.js" "$tmp/package/dist/leaflet.css" "$tmp/package/LICENSE" "$DEST/"
cp "$tmp/package/dist/images/"*.png "$DEST/images/"
# The source map is not shipped: drop the reference so browsers do not ask for it.
sed -i '/^\/\/# sourceMappingURL=/d' "$DEST/leaflet.js"
echo "leaflet $VERSION (npm), dist/leaflet.js, leaflet.css, images/, LICENSE" > "$DEST/VERSION"
echo "vendored leaflet $VERSION into $DEST"
