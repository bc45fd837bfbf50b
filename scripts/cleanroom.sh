#!/usr/bin/env bash
# The clean room: a minimal Debian chroot (debootstrap --variant=minbase) with only python3 and
# python3-venv added, where the built wheel must install and run. Not part of the test suite
# (making the chroot takes minutes); run by hand after scripts/wheel.sh:
#
#   sudo ./scripts/cleanroom.sh [WHEEL]      # default: the newest dist/pgsafe-*.whl
#
# It installs the wheel into a venv in the chroot from a directory of downloaded wheels (no
# package index and no network in the chroot), then runs `pgsafe --help` and `pgsafe lint` on this checkout's
# migrations. The chroot is kept in build/cleanroom/<suite>/ for the next run.
# Environment: SUITE (default bookworm), MIRROR (default: Debian's main mirror),
#              CLEANROOM_SERVER=1 (also install the `server` extra, downloaded on the host, and
#              run `pgsafe test` on the migrations),
#              CLEANROOM_SDIST=1 (also build dist/pgsafe-*.tar.gz from source in a copy of the
#              chroot, build/cleanroom/<suite>-build: first without libzstd-dev, which must stop
#              on the one line naming it, then with every -dev package).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
CHROOT="$ROOT/build/cleanroom/$SUITE"

[[ $EUID -eq 0 ]] || die "needs root (debootstrap and chroot)"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap not found: apt-get install debootstrap"
command -v unshare >/dev/null 2>&1 || die "unshare not found: apt-get install util-linux"

wheel="${1:-$(find "$ROOT/dist" -maxdepth 1 -name 'pgsafe-*.whl' -printf '%T@ %p\n' 2>/dev/null |
  sort -rn | head -n1 | cut -d' ' -f2-)}"
[[ -n "$wheel" && -f "$wheel" ]] || die "no wheel given and none in dist/ (run scripts/wheel.sh)"

if [[ ! -x "$CHROOT/usr/bin/python3" ]]; then
  say "debootstrap $SUITE (minbase + python3 python3-venv) into build/cleanroom/$SUITE"
  rm -rf "$CHROOT"
  mkdir -p "$CHROOT"
  debootstrap --variant=minbase --include=python3,python3-venv "$SUITE" "$CHROOT" "$MIRROR" \
    >"$ROOT/build/cleanroom/$SUITE.log" 2>&1 || die "debootstrap failed: build/cleanroom/$SUITE.log"
fi

name="$(basename "$wheel")"
extra=""
[[ "${CLEANROOM_SERVER:-0}" == 1 ]] && extra="[server]"
rm -rf "$CHROOT/tmp/wheels"
mkdir -p "$CHROOT/tmp/wheels"
cp "$wheel" "$CHROOT/tmp/"
# The wheel's dependencies (and the extra's) are downloaded here, where pip is configured for
# this machine's network; the chroot's pip installs from that directory only.
pyver="$(chroot "$CHROOT" /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
python3 -m pip download -q --only-binary=:all: --python-version "$pyver" \
  -d "$CHROOT/tmp/wheels" "$wheel$extra" || die "could not download the wheel's dependencies"
rm -rf "$CHROOT/tmp/migrations"
cp -r "$ROOT/migrations" "$CHROOT/tmp/migrations"

# Runs the bash script on stdin inside chroot $1 with arguments $2...: /proc and /dev mounted
# only in a private mount namespace, so nothing is left mounted, and a clean environment.
in_chroot() {
  local dir="$1"
  shift
  unshare -m --propagation private bash -c '
    set -e
    mount -t proc proc "$1/proc"
    mount --rbind /dev "$1/dev"
    dir="$1"
    shift
    exec chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
      LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive bash -s "$@"
  ' sh "$dir" "$@"
}

in_chroot "$CHROOT" "$name" "$extra" <<'CHROOT'
set -euo pipefail
name="$1" extra="$2"
echo "== $(. /etc/os-release; echo "$PRETTY_NAME"), $(python3 -V), $(ldd --version | head -n1)"
echo "== added to minbase: $(dpkg-query -W -f='${Package} ' python3 python3-venv)"
rm -rf /opt/pgsafe-venv
python3 -m venv /opt/pgsafe-venv
start=$(date +%s.%N)
/opt/pgsafe-venv/bin/pip install -q --disable-pip-version-check --no-index \
  --find-links /tmp/wheels "/tmp/$name$extra"
echo "== pip install took $(python3 -c "import time; print(f'{time.time() - $start:.1f}')") s"
export PATH=/opt/pgsafe-venv/bin:$PATH
cd /tmp
echo "== pgsafe --help"
pgsafe --help | head -n 5
echo "== pgsafe lint migrations"
set +e
pgsafe lint migrations
echo "exit $?"
if [[ -n "$extra" ]]; then
  echo "== pgsafe test migrations"
  start=$(date +%s.%N)
  pgsafe test migrations --rows 5
  echo "exit $? after $(python3 -c "import time; print(f'{time.time() - $start:.1f}')") s"
fi
CHROOT

[[ "${CLEANROOM_SDIST:-0}" == 1 ]] || exit 0

# --- the sdist, built from source --------------------------------------------------------------
sdist="$(find "$ROOT/dist" -maxdepth 1 -name 'pgsafe-*.tar.gz' | head -n1)"
[[ -n "$sdist" ]] || die "no sdist in dist/ (run scripts/wheel.sh)"
BUILD_CHROOT="$ROOT/build/cleanroom/$SUITE-build"
if [[ ! -x "$BUILD_CHROOT/usr/bin/python3" ]]; then
  say "copying the clean room to build/cleanroom/$SUITE-build"
  cp -a "$CHROOT" "$BUILD_CHROOT"
fi
rm -rf "$BUILD_CHROOT/tmp/wheels" "$BUILD_CHROOT/tmp/out"
mkdir -p "$BUILD_CHROOT/tmp/wheels"
cp "$sdist" "$BUILD_CHROOT/tmp/"
# The build requirements (pyproject's, plus what scikit-build-core and build pull in), downloaded
# here; the chroot's pip then uses only that directory.
mapfile -t build_requires < <(python3 -c '
import tomllib
with open("'"$ROOT"'/pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["build-system"]["requires"]))
')
python3 -m pip download -q -d "$BUILD_CHROOT/tmp/wheels" "${build_requires[@]}" 'ninja>=1.5' \
  'build>=1.2' || die "could not download the build requirements"

in_chroot "$BUILD_CHROOT" "$(basename "$sdist")" <<'CHROOT'
set -uo pipefail
sdist="$1"
# What the C++ core needs (CMakeLists.txt names each); libzstd-dev comes second.
dev=(g++ make cmake pkgconf python3-dev libpq-dev libssl-dev libspdlog-dev libfmt-dev
  zlib1g-dev libxxhash-dev)
apt-get update -qq && apt-get install -y -qq --no-install-recommends "${dev[@]}" >/dev/null 2>&1 ||
  { echo "apt-get install of the -dev packages failed"; exit 1; }
apt-get remove -y -qq libzstd-dev >/dev/null 2>&1
export PIP_NO_INDEX=1 PIP_FIND_LINKS=/tmp/wheels PIP_DISABLE_PIP_VERSION_CHECK=1
cd /tmp
rm -rf buildvenv && python3 -m venv buildvenv && buildvenv/bin/pip install -q build
echo "== without libzstd-dev: python -m build --wheel $sdist"
buildvenv/bin/python -m build --wheel --outdir out "$sdist" >build-1.log 2>&1
echo "exit $?; its line: $(grep -m1 -o 'pgsafe: .* not found: install .*' build-1.log)"
apt-get install -y -qq --no-install-recommends libzstd-dev >/dev/null 2>&1
echo "== with every -dev package: python -m build --wheel $sdist"
start=$(date +%s)
buildvenv/bin/python -m build --wheel --outdir out "$sdist" >build-2.log 2>&1
echo "exit $? after $(($(date +%s) - start)) s: $(cd out && ls pgsafe-*.whl 2>/dev/null)"
CHROOT
