# Sourced by the install scripts: ensure_packages LABEL PKG... installs the Debian packages that are
# missing, idempotently, and prints what it installs. Exit 2 when root is needed but missing.
ensure_packages() {
  local label="$1"
  shift
  local missing=() p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "$label: all $# packages already installed"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "$label: missing packages ${missing[*]}: run it as root, e.g. 'sudo $0' (apt-get needs root)" >&2
    exit 2
  fi
  echo "$label: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  echo "$label: installed ${missing[*]}"
}
