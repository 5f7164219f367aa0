#!/usr/bin/env bash
# vendor.sh fetches the dashboard's pinned browser libraries from the npm registry with
# `npm pack` and copies their ES-module builds and licenses into ui/vendor/. The files it
# writes are committed: building clinicmsg needs neither Node nor the network. Run it again
# only to change a version (edit the pins below), then review the diff.
set -euo pipefail
cd "$(dirname "$0")"

PB_VERSION=0.28.1     # the PocketBase JavaScript SDK (auth, records, realtime)
UPLOT_VERSION=1.6.32  # the daily chart on the overview

command -v npm >/dev/null || { echo "vendor.sh needs npm (apt-get install -y npm)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# fetch NAME VERSION: unpacks the registry tarball into $work/NAME and prints its integrity.
fetch() {
	local name="$1" version="$2"
	(cd "$work" && npm pack --silent --json "$name@$version" >"$name.json")
	local tgz
	tgz="$(cd "$work" && node -e 'const p=require("./'"$name"'.json")[0]; process.stdout.write(p.filename)')"
	mkdir -p "$work/$name"
	tar -xzf "$work/$tgz" -C "$work/$name" --strip-components=1
	(cd "$work" && node -e 'const p=require("./'"$name"'.json")[0]; process.stdout.write(p.integrity)')
}

rm -rf vendor
mkdir -p vendor/pocketbase vendor/uplot

pb_integrity="$(fetch pocketbase "$PB_VERSION")"
# Drop the source-map comment: the map is not vendored.
sed '/^\/\/# sourceMappingURL=/d' "$work/pocketbase/dist/pocketbase.es.mjs" >vendor/pocketbase/pocketbase.es.mjs
cp "$work/pocketbase/LICENSE.md" vendor/pocketbase/LICENSE.md

uplot_integrity="$(fetch uplot "$UPLOT_VERSION")"
cp "$work/uplot/dist/uPlot.esm.js" vendor/uplot/uPlot.esm.js
cp "$work/uplot/dist/uPlot.min.css" vendor/uplot/uPlot.min.css
cp "$work/uplot/LICENSE" vendor/uplot/LICENSE

license_of() { node -e 'process.stdout.write(require(process.argv[1]).license)' "$work/$1/package.json"; }

cat >vendor/VENDOR.md <<MD
# Vendored browser libraries

Written by \`ui/vendor.sh\` (do not edit by hand): it fetches each pinned version from the npm
registry with \`npm pack\` and copies the ES-module build and the license file here. The
dashboard imports these files directly; there is no build step.

| Library | Version | License | Files | npm integrity |
|---|---|---|---|---|
| [pocketbase](https://www.npmjs.com/package/pocketbase) (JavaScript SDK) | $PB_VERSION | $(license_of pocketbase) ([LICENSE.md](pocketbase/LICENSE.md)) | \`pocketbase/pocketbase.es.mjs\` (from \`dist/pocketbase.es.mjs\`, source-map comment removed) | \`$pb_integrity\` |
| [uplot](https://www.npmjs.com/package/uplot) (uPlot charts) | $UPLOT_VERSION | $(license_of uplot) ([LICENSE](uplot/LICENSE)) | \`uplot/uPlot.esm.js\`, \`uplot/uPlot.min.css\` (from \`dist/\`) | \`$uplot_integrity\` |
MD

echo "vendored pocketbase@$PB_VERSION and uplot@$UPLOT_VERSION into ui/vendor/"
