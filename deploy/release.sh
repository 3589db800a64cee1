#!/usr/bin/env bash
# The release recipe: static binaries for Linux (amd64 and arm64), one
# archive per platform with the license and the changelog, the npm client
# package, their SHA-256 checksums, and, when IMAGE is set, the multi-platform container image
# from deploy/Dockerfile with OCI labels, built from those same binaries.
#
#   deploy/release.sh                      # into dist/: every platform, no image
#   DIST=/tmp/rel ARCHES=amd64 deploy/release.sh
#   IMAGE=registry.example.com/marketgate PUSH=1 deploy/release.sh   # also the image (docker buildx)
#
# The version is not passed with -ldflags: the binaries carry Go's build
# information (-buildvcs=true records vcs.revision, vcs.time and
# vcs.modified; the main module's version is the git tag, e.g. v0.1.0, or
# a pseudo-version), which `marketgate version` and marketgate_build_info
# read. VERSION (default: git describe) names the archives and the image
# tag only. Tag first (git tag v0.1.0), then release from a clean tree.
#
# Settings (environment):
#   DIST     output folder (default dist/ in the repository; the image build
#            copies the binaries from there, so keep it inside the repository
#            when IMAGE is set)
#   ARCHES   space-separated GOARCH values (default "amd64 arm64")
#   VERSION  archive and image version (default: git describe --tags --always --dirty)
#   IMAGE    image name without tag; unset: no image
#   NPM      0 leaves out the npm client package (default 1: web/client
#            packed with npm pack into DIST, e.g. marketgate-client-0.1.0.tgz)
#   PUSH     1 pushes the image (buildx --push); otherwise it stays in the
#            build cache (a multi-platform image cannot be --load-ed)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

dist=${DIST:-$root/dist}
arches=${ARCHES:-amd64 arm64}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
commands=(marketgate exchangesim healthcheck)

case $version in
*[!A-Za-z0-9._+-]*) echo "release: VERSION $version: use letters, digits and . _ + -" >&2; exit 2 ;;
esac
# The npm client package (web/client) is released with the binaries: a
# release tag (vX.Y.Z) must be its package.json version.
client_version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' web/client/package.json)
if [[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] && [ "v$client_version" != "$version" ]; then
	echo "release: VERSION $version, but web/client/package.json has version $client_version: set it to ${version#v} (and note it in CHANGELOG.md), then tag again" >&2
	exit 2
fi
if [ "${NPM:-1}" = 1 ] && ! command -v npm >/dev/null; then
	echo "release: npm missing: install Node.js and npm to pack the client package, or set NPM=0 to leave it out" >&2
	exit 2
fi
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
# Go finds git only through a .git folder: in a git worktree (.git is a
# file) or a source tree without git it records no revision.
if [ ! -d .git ]; then
	echo "release: warning: $root/.git is not a folder (a git worktree, or no git): the binaries will carry no vcs.revision; release from a clone" >&2
fi

archives=()
for arch in $arches; do
	case $arch in
	amd64 | arm64) ;;
	*) echo "release: ARCHES: $arch is not a released platform (amd64, arm64)" >&2; exit 2 ;;
	esac
	out=$dist/linux_$arch
	rm -rf "$out"
	mkdir -p "$out"
	echo "release: building ${commands[*]} for linux/$arch" >&2
	# CGO_ENABLED=0: static binaries with Go's own resolver, for
	# distroless/static and any Linux. -trimpath keeps build paths out.
	# -buildvcs=true overrides a GOFLAGS=-buildvcs=false from the
	# environment: the revision must be recorded.
	pkgs=()
	for c in "${commands[@]}"; do pkgs+=("./cmd/$c"); done
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -buildvcs=true -ldflags='-s -w' -o "$out/" "${pkgs[@]}"
	name=marketgate_${version}_linux_$arch
	cp LICENSE README.md CHANGELOG.md "$out/"
	tar -C "$out" --owner=0 --group=0 --numeric-owner --mtime="@$(git log -1 --format=%ct 2>/dev/null || date +%s)" \
		--transform "s,^,$name/," -czf "$dist/$name.tar.gz" "${commands[@]}" LICENSE README.md CHANGELOG.md
	archives+=("$name.tar.gz")
done
if [ "${NPM:-1}" = 1 ]; then
	echo "release: packing the npm client package @marketgate/client $client_version" >&2
	archives+=("$(cd web/client && npm pack --silent --pack-destination "$dist")")
fi
(cd "$dist" && sha256sum "${archives[@]}" > SHA256SUMS)
echo "release: $dist/SHA256SUMS:" >&2
cat "$dist/SHA256SUMS" >&2

if [ -n "${IMAGE:-}" ]; then
	case $dist in
	"$root"/*) ;;
	*) echo "release: IMAGE needs DIST inside the repository (the build context); it is $dist" >&2; exit 2 ;;
	esac
	platforms=()
	for arch in $arches; do platforms+=("linux/$arch"); done
	push=()
	[ "${PUSH:-}" = 1 ] && push=(--push)
	created=$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
	# BINARIES=release: the image takes the binaries built above (with
	# their build information) instead of compiling from source.
	docker buildx build -f deploy/Dockerfile \
		--platform "$(IFS=,; echo "${platforms[*]}")" \
		--build-arg BINARIES=release \
		--build-arg DIST="${dist#"$root"/}" \
		--build-arg VERSION="$version" \
		--build-arg REVISION="$revision" \
		--build-arg CREATED="$created" \
		-t "$IMAGE:$version" "${push[@]}" .
fi
