# Shared helpers for scripts/*; source it, do not run it.

# ensure_packages CMD:PACKAGE ... installs the Debian package of every missing command.
# A `pkgconfig:NAME:PACKAGE` entry checks a pkg-config module instead of a command.
ensure_packages() {
  local missing=() entry
  for entry in "$@"; do
    case "$entry" in
      pkgconfig:*)
        local module=${entry#pkgconfig:}; module=${module%%:*}
        command -v pkg-config >/dev/null 2>&1 && pkg-config --exists "$module" || missing+=("${entry##*:}" pkg-config)
        ;;
      *) command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry##*:}") ;;
    esac
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  install_packages "${missing[@]}"
  # Debian starts the packaged redis-server on 6379; ours run on their own ports and sockets.
}

# install_packages PACKAGE ... installs Debian packages (for those no command reveals, directly).
install_packages() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: $*" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The build and test dependencies of Sluice.
ensure_build_dependencies() {
  command -v swift >/dev/null 2>&1 || { echo "Swift 6 is required (https://swift.org/install)" >&2; exit 1; }
  ensure_packages pkgconfig:hiredis:libhiredis-dev redis-server:redis-server redis-cli:redis-tools
}

# ensure_test_python DIR makes DIR a Python venv (Debian's python3 + python3-venv) holding the
# API-testing tools the tests run, at pinned versions; reused while the pins are unchanged.
# Prints the venv's bin directory.
ensure_test_python() {
  local dir=$1 pins="schemathesis==4.32.5 openapi-spec-validator==0.9.0 openapi-python-client==0.29.1 opentelemetry-proto==1.45.2"
  [ -x /usr/bin/python3 ] || install_packages python3 >&2
  /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || install_packages python3-venv >&2
  if [ "$(cat "$dir/.pins" 2>/dev/null)" != "$pins" ]; then
    rm -rf "$dir"
    /usr/bin/python3 -m venv "$dir" >&2
    "$dir/bin/pip" install -q --disable-pip-version-check $pins >&2
    echo "$pins" >"$dir/.pins"
  fi
  echo "$dir/bin"
}

# What the cluster tests add: the load balancers (HAProxy runs the local cluster, nginx's
# config is validated with `nginx -t`), curl (scripts/cluster's health checks) and openssl
# (the load balancer's certificates, TLS handshake tests).
ensure_cluster_dependencies() {
  ensure_packages haproxy:haproxy nginx:nginx curl:curl openssl:openssl
}

# port_is_free PORT: true when a server could bind 127.0.0.1:PORT now — checked by binding (with
# perl-base, which every Debian has), so a port held by a socket that does not listen (bound,
# connecting, or a listener on 0.0.0.0) counts as taken, not only one that answers.
port_is_free() {
  perl -MSocket -e 'socket(my $s, PF_INET, SOCK_STREAM, 0) or exit 2;
    setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1);
    bind($s, sockaddr_in($ARGV[0], inet_aton("127.0.0.1"))) or exit 1' "$1"
}

# free_port prints a TCP port on 127.0.0.1 that is free (port_is_free), chosen below the kernel's
# ephemeral range (ip_local_port_range) so that no outgoing connection can take it meanwhile.
free_port() {
  local port low=32768
  [ -r /proc/sys/net/ipv4/ip_local_port_range ] && read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  [ "$low" -gt 12000 ] || low=32768
  for port in $(shuf -i 10000-$((low - 1)) -n 50); do
    port_is_free "$port" && { echo "$port"; return 0; }
  done
  echo "no free port found" >&2
  return 1
}

# start_private_redis DIR [redis-server options...] starts a daemonized redis-server whose
# files live in DIR (pidfile DIR/redis.pid, socket DIR/redis.sock) and waits until it answers.
start_private_redis() {
  local dir=$1; shift
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    --unixsocket "$dir/redis.sock" --unixsocketperm 700 --save '' --appendonly no --daemonize yes "$@"
  local _
  for _ in $(seq 100); do
    redis-cli -s "$dir/redis.sock" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "redis-server did not start; see $dir/redis.log" >&2
  return 1
}

# stop_private_redis DIR stops the server started by start_private_redis.
stop_private_redis() {
  local dir=$1 pid
  [ -f "$dir/redis.pid" ] || return 0
  pid=$(cat "$dir/redis.pid")
  kill "$pid" 2>/dev/null || true
  local _
  for _ in $(seq 100); do [ -S "$dir/redis.sock" ] || break; sleep 0.05; done
}
