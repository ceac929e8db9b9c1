#!/bin/sh
# Assembles the Azure Functions deployment package of the custom handler:
#
#   <outdir>/host.json
#   <outdir>/<Function>/function.json    one folder per functions/<Function>/
#   <outdir>/handler                      Linux amd64, static (CGO_ENABLED=0), executable
#
# That folder is the app root the Functions host expects (function folders beside
# host.json). azd zips and deploys it (azure.yaml: language custom, dist dist); without
# azd, zip its *contents* and push the zip (README.md (Deploy to Azure)).
#
# Usage: scripts/package.sh [outdir]     (default: dist, relative to the current directory)
#
# Idempotent: the output folder is emptied first. To avoid deleting the wrong thing it
# refuses a folder that is not empty and does not already hold a package (host.json).
# Nothing else from the repository is copied: no local.settings.json, no tests, no .tools.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-dist}

die() {
	echo "package.sh: $*" >&2
	exit 1
}

command -v go >/dev/null 2>&1 || die "go is not on PATH"
[ -f "$root/host.json" ] || die "no host.json in $root"

# The binary's name comes from host.json so the two cannot drift apart.
exe=$(sed -n 's/.*"defaultExecutablePath"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$root/host.json" | head -n 1)
[ -n "$exe" ] || die "host.json has no customHandler.description.defaultExecutablePath"
case $exe in
*/* | *\\* | . | ..) die "defaultExecutablePath \"$exe\" must be a plain file name at the app root" ;;
esac

mkdir -p "$out"
out=$(cd "$out" && pwd)
case $out in
/ | "$root" | "${HOME:-/}") die "refusing to use $out as the output folder" ;;
esac
if [ -n "$(ls -A "$out")" ] && [ ! -f "$out/host.json" ]; then
	die "$out is not empty and holds no host.json: not a package folder, refusing to empty it"
fi
# Empty it, dotfiles included, without removing the folder itself (an unmatched glob
# stays literal and rm -f ignores it).
rm -rf "$out"/* "$out"/.[!.]* "$out"/..?*

cd "$root"
echo "package.sh: building $exe (linux/amd64) into $out"
GOOS=linux GOARCH=amd64 CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$out/$exe" ./handler
# Zips made on Windows (and some zip tools) drop the executable bit; set it here so a
# zip made from this folder on Linux or macOS keeps it. The host also tries a chmod on
# Flex Consumption, but the package is mounted read-only there (PLATFORM.md, known pains).
chmod 755 "$out/$exe"

cp host.json "$out/host.json"

count=0
for dir in functions/*/; do
	[ -f "${dir}function.json" ] || continue
	name=$(basename "$dir")
	[ "$name" != "$exe" ] || die "function folder functions/$name clashes with the handler binary"
	mkdir "$out/$name"
	# Only the binding files: a function folder holds no code for a custom handler.
	for f in "$dir"*; do
		[ -f "$f" ] || continue
		case $(basename "$f") in
		*_test.go | *.go | local.settings.json | .*) continue ;;
		esac
		cp "$f" "$out/$name/"
	done
	count=$((count + 1))
done
[ "$count" -gt 0 ] || die "no functions/*/function.json found"

echo "package.sh: $count functions, host.json and $exe in $out"
