# Sourced by the scripts that install a test dependency into a folder (py-hub.sh, fastchat.sh,
# playwright.sh): `install_once DEST MARKER FUNCTION` runs FUNCTION (which fills DEST, exiting
# non-zero on failure) unless DEST/.done already holds MARKER, then writes the marker.
#
# Safe in parallel (the tests call these scripts from several test binaries at once): an flock
# on DEST/.lock lets one process install while the others wait, and the marker is checked again
# after the lock is taken. An interrupted or failed install leaves no marker, and the next run
# starts from an empty DEST (a half-written venv or node_modules is not to be trusted).

install_once() {
  local dest="$1" marker="$2" fill="$3"
  if ! command -v flock >/dev/null 2>&1; then
    echo "error: flock not found (util-linux); it keeps parallel installs from racing" >&2
    exit 1
  fi
  _install_done() { [ -f "$dest/.done" ] && [ "$(cat "$dest/.done")" = "$marker" ]; }
  if _install_done; then
    return 0
  fi
  mkdir -p "$dest"
  exec 9>"$dest/.lock"
  flock 9
  if ! _install_done; then
    find "$dest" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf {} +
    "$fill"
    echo "$marker" >"$dest/.done"
  fi
  exec 9>&-
}
