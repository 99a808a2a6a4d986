#!/usr/bin/env bash
# A three-node MariaDB Galera cluster on this machine, for `make test-galera`.
#
#   scripts/galera_cluster.sh start|stop|status
#
# Three `mariadbd` processes (Debian's galera-4 provider), each with its own datadir, socket,
# pid file, SQL port and Galera ports under GALERA_BASE_DIR. Node 1 bootstraps the cluster
# (--wsrep-new-cluster) when no node runs; the others join it and receive its data by rsync
# state transfer (SST). root has no password on 127.0.0.1, like the development server.
# Nothing here touches the machine's own MariaDB (it reads no /etc/mysql file).
#
# Settings (environment):
#   GALERA_BASE_DIR        /tmp/exam-shop-galera
#   GALERA_SQL_PORTS       "3307 3308 3309"    one SQL port per node
#   GALERA_PORT_BASE       4567                node i: gcomm base+10(i-1), IST +1, SST +2
#   GALERA_BUFFER_POOL     64M                 innodb_buffer_pool_size of each node
#   GALERA_START_TIMEOUT   180                 seconds a node may take to join
#   MARIADBD, GALERA_PROVIDER                  the server binary and libgalera_smm.so
set -euo pipefail

BASE_DIR=${GALERA_BASE_DIR:-/tmp/exam-shop-galera}
read -r -a SQL_PORTS <<<"${GALERA_SQL_PORTS:-3307 3308 3309}"
PORT_BASE=${GALERA_PORT_BASE:-4567}
BUFFER_POOL=${GALERA_BUFFER_POOL:-64M}
START_TIMEOUT=${GALERA_START_TIMEOUT:-180}
MARIADBD=${MARIADBD:-/usr/sbin/mariadbd}
PROVIDER=${GALERA_PROVIDER:-/usr/lib/galera/libgalera_smm.so}
NODES=${#SQL_PORTS[@]}
# As root the servers run as `mysql`: the rsync daemon of a state transfer started by root would
# switch to `nobody` and could not write the joiner's datadir.
RUN_AS=$(id -un)
if [[ $(id -u) -eq 0 ]] && id mysql >/dev/null 2>&1; then RUN_AS=mysql; fi

die() {
    echo "galera_cluster: $*" >&2
    exit 1
}

[[ $NODES -eq 3 ]] || die "GALERA_SQL_PORTS must name three ports, not '${SQL_PORTS[*]}'"

node_dir() { echo "$BASE_DIR/node$1"; }
sql_port() { echo "${SQL_PORTS[$(($1 - 1))]}"; }
gcomm_port() { echo $((PORT_BASE + 10 * ($1 - 1))); }

cluster_address() {
    local i addresses=()
    for ((i = 1; i <= NODES; i++)); do addresses+=("127.0.0.1:$(gcomm_port "$i")"); done
    local IFS=,
    echo "gcomm://${addresses[*]}"
}

client() { # client NODE [mariadb arguments...]
    local node=$1
    shift
    mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -P "$(sql_port "$node")" -u root \
        --connect-timeout=2 -N -B "$@"
}

status_var() { # status_var NODE NAME: the value of a global status variable, or nothing
    client "$1" -e "SHOW GLOBAL STATUS LIKE '$2'" 2>/dev/null | cut -f2 || true
}

node_pid() { # the pid of a running node, or nothing
    local pid_file
    pid_file="$(node_dir "$1")/mariadbd.pid"
    if [[ -s $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then cat "$pid_file"; fi
}

running_nodes() {
    local i
    for ((i = 1; i <= NODES; i++)); do [[ -n $(node_pid "$i") ]] && echo "$i"; done
    return 0
}

require_tools() {
    [[ -x $MARIADBD ]] || die "$MARIADBD not found (apt-get install mariadb-server)"
    [[ -f $PROVIDER ]] || die "$PROVIDER not found (apt-get install galera-4)"
    if ! command -v rsync >/dev/null; then
        # The state transfer copies the datadir with rsync (wsrep_sst_rsync).
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            apt-get install -y -q rsync >/dev/null
        else
            die "rsync is needed for the state transfer: apt-get install rsync"
        fi
    fi
}

write_config() {
    local node=$1 dir gport
    dir=$(node_dir "$node")
    gport=$(gcomm_port "$node")
    cat >"$dir/my.cnf" <<EOF
# Written by scripts/galera_cluster.sh; rewritten at every start.
[mariadbd]
datadir = $dir/data
socket = $dir/mariadbd.sock
pid-file = $dir/mariadbd.pid
log-error = $dir/error.log
port = $(sql_port "$node")
bind-address = 127.0.0.1
user = $RUN_AS
skip-name-resolve
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
performance_schema = OFF
innodb_buffer_pool_size = $BUFFER_POOL
innodb_log_file_size = 48M
max_connections = 200

# What Galera requires
binlog_format = ROW
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
innodb_flush_log_at_trx_commit = 2
# Refuse what Galera cannot replicate safely: a table without a primary key, DML on a
# non-InnoDB table. The migrations run under it in make test-galera.
wsrep_mode = REQUIRED_PRIMARY_KEY,STRICT_REPLICATION

wsrep_on = ON
wsrep_provider = $PROVIDER
wsrep_cluster_name = exam_shop_galera
wsrep_cluster_address = $(cluster_address)
wsrep_node_name = node$node
wsrep_node_address = 127.0.0.1:$gport
wsrep_node_incoming_address = 127.0.0.1:$(sql_port "$node")
wsrep_provider_options = "gmcast.listen_addr=tcp://127.0.0.1:$gport;ist.recv_addr=127.0.0.1:$((gport + 1));gcache.size=64M"
wsrep_sst_method = rsync
wsrep_sst_receive_address = 127.0.0.1:$((gport + 2))
# A read waits until this node has applied what the cluster committed before it
# (causal reads): a token or a row written through another node is seen at once.
wsrep_sync_wait = 1

[client]
socket = $dir/mariadbd.sock
EOF
}

initialise() { # the bootstrap node's datadir: system tables, root without password on 127.0.0.1
    local node=$1 dir
    dir=$(node_dir "$node")
    [[ -d $dir/data/mysql ]] && return 0
    echo "galera_cluster: initialising node$node in $dir/data"
    mariadb-install-db --defaults-file="$dir/my.cnf" --user="$RUN_AS" \
        --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 || die "mariadb-install-db failed: see $dir/install.log"
}

wait_until_synced() { # wait_until_synced NODE PID: ready and synced, or die
    local node=$1 pid=$2 deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || break
        if [[ $(status_var "$node" wsrep_ready) == ON && $(status_var "$node" wsrep_local_state_comment) == Synced ]]; then
            return 0
        fi
        sleep 1
    done
    tail -n 30 "$(node_dir "$node")/error.log" >&2 || true
    die "node$node did not become ready and synced within ${START_TIMEOUT}s (see $(node_dir "$node")/error.log)"
}

start_node() { # start_node NODE bootstrap|join
    local node=$1 mode=$2 dir
    dir=$(node_dir "$node")
    mkdir -p "$dir/data"
    write_config "$node"
    chown -R "$RUN_AS" "$dir"
    local extra=()
    if [[ $mode == bootstrap ]]; then
        initialise "$node"
        # A cluster stopped by this script has node 1 last down, hence safe to bootstrap; after a
        # crash this throwaway test cluster bootstraps from node 1 anyway.
        [[ -f $dir/data/grastate.dat ]] && sed -i 's/^safe_to_bootstrap: 0/safe_to_bootstrap: 1/' "$dir/data/grastate.dat"
        extra+=(--wsrep-new-cluster)
    fi
    echo "galera_cluster: starting node$node ($mode) on port $(sql_port "$node")"
    rm -f "$dir/mariadbd.pid"
    setsid "$MARIADBD" --defaults-file="$dir/my.cnf" "${extra[@]}" </dev/null >>"$dir/stdout.log" 2>&1 &
    wait_until_synced "$node" $!
}

start() {
    require_tools
    mkdir -p "$BASE_DIR"
    chown "$RUN_AS" "$BASE_DIR"
    local i running
    running=$(running_nodes)
    if [[ -z $running ]]; then
        start_node 1 bootstrap
    fi
    for ((i = 1; i <= NODES; i++)); do
        [[ -n $(node_pid "$i") ]] || start_node "$i" join
    done
    local deadline=$((SECONDS + START_TIMEOUT))
    for ((i = 1; i <= NODES; i++)); do
        until [[ $(status_var "$i" wsrep_cluster_size) == "$NODES" && $(status_var "$i" wsrep_ready) == ON ]]; do
            ((SECONDS < deadline)) || die "node$i does not see a cluster of $NODES ready nodes"
            sleep 1
        done
    done
    status
}

stop_node() {
    local node=$1 pid
    pid=$(node_pid "$node")
    [[ -n $pid ]] || return 0
    echo "galera_cluster: stopping node$node (pid $pid)"
    kill -TERM "$pid"
    local deadline=$((SECONDS + 120))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || die "node$node (pid $pid) did not stop within 120s"
        sleep 0.5
    done
}

stop() {
    local i
    # Node 1 last: it then holds the newest state and is safe to bootstrap the next start.
    for ((i = NODES; i >= 1; i--)); do stop_node "$i"; done
}

status() {
    local i all_ready=0
    for ((i = 1; i <= NODES; i++)); do
        if [[ -z $(node_pid "$i") ]]; then
            echo "node$i port $(sql_port "$i"): stopped"
            all_ready=1
            continue
        fi
        local size ready state
        size=$(status_var "$i" wsrep_cluster_size)
        ready=$(status_var "$i" wsrep_ready)
        state=$(status_var "$i" wsrep_local_state_comment)
        echo "node$i port $(sql_port "$i"): running, wsrep_cluster_size=${size:-?} wsrep_ready=${ready:-?} state=${state:-?}"
        [[ $size == "$NODES" && $ready == ON ]] || all_ready=1
    done
    return "$all_ready"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
