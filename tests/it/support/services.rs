//! Real services for the tests: a mariadbd shared by the whole test binary (a fresh database
//! per test) and redis-server instances started per test. Each runs in a temp dir on a free
//! port, under a watchdog shell that kills it when the test process exits, even on a panic.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::eventually::eventually_blocking;
use super::guarded::Guarded;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The path of a system binary, or a panic saying how to install it.
pub fn binary(name: &str, package: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/bin",
        "/usr/local/sbin",
        "/sbin",
        "/bin",
    ] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!(
        "{name} is not installed: run `sudo apt-get install -y {package}` (scripts/test does it for you)"
    );
}

/// A mariadbd: the one shared by this test binary (`shared`), or one of a test's own
/// (`own`), which the test may stop and start again.
pub struct MariaDb {
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    process: Option<Guarded>,
}

static MARIADB: OnceLock<MariaDb> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(1);

impl MariaDb {
    /// The shared server, started on first use.
    pub fn shared() -> &'static MariaDb {
        MARIADB.get_or_init(MariaDb::start)
    }

    /// A mariadbd of the calling test's own, to stop or restart (the shared one serves
    /// every other test of the binary at once).
    pub fn own() -> MariaDb {
        MariaDb::start()
    }

    fn start() -> MariaDb {
        let install = binary("mariadb-install-db", "mariadb-server");
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        // A temp dir of its own: installs running at once in a shared /tmp trip over each
        // other's temporary tables ("Unknown table 'mysql.tmp_user_sys'").
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).expect("temp dir for mariadbd");
        let log = dir.path().join("install.log");
        // Its errors go to stdout or stderr depending on where it fails: keep both.
        let log_file = std::fs::File::create(&log).expect("install log");
        let status = Command::new(install)
            .args([
                "--no-defaults".to_string(),
                format!("--datadir={}", data.display()),
                format!("--tmpdir={}", tmp.display()),
                "--user=root".into(),
                "--auth-root-authentication-method=normal".into(),
                "--skip-test-db".into(),
            ])
            .stdout(log_file.try_clone().expect("install log"))
            .stderr(log_file)
            .status()
            .expect("running mariadb-install-db");
        assert!(
            status.success(),
            "mariadb-install-db failed:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let port = free_port();
        let args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", data.display()),
            format!("--tmpdir={}", tmp.display()),
            "--user=root".into(),
            format!("--socket={}", dir.path().join("sock").display()),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".into(),
            "--character-set-server=utf8mb4".into(),
            "--collation-server=utf8mb4_unicode_ci".into(),
            "--innodb-buffer-pool-size=64M".into(),
            "--innodb-flush-log-at-trx-commit=2".into(),
            "--max-connections=500".into(),
            format!("--pid-file={}", dir.path().join("pid").display()),
        ];
        let mut mariadb = MariaDb {
            port,
            dir,
            args,
            process: None,
        };
        mariadb.restart();
        mariadb
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers.
    pub fn pause(&self) {
        if let Some(p) = &self.process {
            p.pause();
        }
    }

    /// Lets a paused server run again.
    pub fn resume(&self) {
        if let Some(p) = &self.process {
            p.resume();
        }
    }

    /// Stops the server: `signal` `TERM` shuts it down cleanly, `KILL` crashes it.
    pub fn stop(&mut self, signal: &str) {
        if let Some(mut process) = self.process.take() {
            // A paused server would hold a TERM until it runs again.
            process.resume();
            process.signal(signal);
        }
    }

    /// Starts the server (again, after `stop`) on the same port and data, and waits until
    /// it accepts connections.
    pub fn restart(&mut self) {
        self.stop("TERM");
        let server = binary("mariadbd", "mariadb-server");
        let log = self.dir.path().join("mariadbd.log");
        self.process = Some(Guarded::spawn(&server, &self.args, &log));
        let port = self.port;
        eventually_blocking(Duration::from_secs(30), "mariadbd listening", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// A new empty database on the shared server; its `mysql://` URL.
    pub async fn fresh_database(&self) -> String {
        use sqlx::Connection;
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let admin = format!("mysql://root@127.0.0.1:{}/mysql", self.port);
        let mut conn = sqlx::MySqlConnection::connect(&admin)
            .await
            .expect("connecting to the test mariadbd");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )))
        .execute(&mut conn)
        .await
        .expect("creating a test database");
        format!("mysql://root@127.0.0.1:{}/{name}", self.port)
    }
}

/// A redis-server of one test.
pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    process: Option<Guarded>,
    extra: Vec<String>,
}

impl Redis {
    /// Starts a throwaway redis-server on a free port.
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// Starts one with extra arguments (such as `--cluster-enabled yes`).
    pub fn start_with(extra: &[&str]) -> Redis {
        Redis::start_on(free_port(), extra)
    }

    /// Starts one on `port` with extra arguments.
    pub fn start_on(port: u16, extra: &[&str]) -> Redis {
        let mut redis = Redis {
            port,
            dir: tempfile::tempdir().expect("temp dir"),
            process: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        redis.restart();
        redis
    }

    /// `redis://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers.
    pub fn pause(&self) {
        if let Some(p) = &self.process {
            p.pause();
        }
    }

    /// Lets a paused server run again.
    pub fn resume(&self) {
        if let Some(p) = &self.process {
            p.resume();
        }
    }

    /// Kills the server (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// Starts the server again on the same port (after `kill`).
    pub fn restart(&mut self) {
        self.kill();
        let server = binary("redis-server", "redis-server");
        let mut args = vec![
            "--port".to_string(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--daemonize".into(),
            "no".into(),
            "--dir".into(),
            self.dir.path().display().to_string(),
        ];
        args.extend(self.extra.iter().cloned());
        self.process = Some(Guarded::spawn(
            &server,
            &args,
            &self.dir.path().join("redis.log"),
        ));
        let port = self.port;
        eventually_blocking(
            Duration::from_secs(10),
            "redis-server answering PING",
            || ping(port),
        );
    }

    /// Runs a command with redis-cli and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(binary("redis-cli", "redis-tools"))
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("running redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

fn ping(port: u16) -> bool {
    use std::io::Read;
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// A Redis Cluster of masters without replicas, for sharded pub/sub. One per test binary
/// (`shared`); tests keep apart by channel and key prefix.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
}

static REDIS_CLUSTER: OnceLock<RedisCluster> = OnceLock::new();

impl RedisCluster {
    /// The cluster of this test binary (three masters), started on first use.
    pub fn shared() -> &'static RedisCluster {
        REDIS_CLUSTER.get_or_init(|| RedisCluster::start(3))
    }

    /// Starts `masters` cluster-enabled servers, joins them with `redis-cli --cluster
    /// create` and waits until every node reports `cluster_state:ok`.
    pub fn start(masters: usize) -> RedisCluster {
        let nodes: Vec<Redis> = (0..masters)
            .map(|_| {
                Redis::start_on(
                    cluster_port(),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = Command::new(binary("redis-cli", "redis-tools"))
            .args(&args)
            .output()
            .expect("running redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        eventually_blocking(Duration::from_secs(30), "redis cluster_state:ok", || {
            nodes
                .iter()
                .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        });
        RedisCluster { nodes }
    }

    /// The hash slot of `key` (or channel).
    pub fn slot(&self, key: &str) -> u16 {
        self.nodes[0]
            .cli(&["CLUSTER", "KEYSLOT", key])
            .parse()
            .expect("CLUSTER KEYSLOT answers a number")
    }

    /// Each node's cluster id, in `nodes` order.
    pub fn ids(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| n.cli(&["CLUSTER", "MYID"]))
            .collect()
    }

    /// The index in `nodes` of the master that owns `slot`.
    pub fn owner(&self, slot: u16) -> usize {
        let ids = self.ids();
        let table = self.nodes[0].cli(&["CLUSTER", "NODES"]);
        for line in table.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let owns = fields.iter().skip(8).any(|range| {
                let (start, end) = range.split_once('-').unwrap_or((range, range));
                match (start.parse::<u16>(), end.parse::<u16>()) {
                    (Ok(start), Ok(end)) => (start..=end).contains(&slot),
                    _ => false,
                }
            });
            if owns && let Some(index) = ids.iter().position(|id| id == fields[0]) {
                return index;
            }
        }
        panic!("no master owns slot {slot}: {table}");
    }

    /// Moves `slot` (holding no keys: pub/sub channels are not keys) to master `to`, the way
    /// a resharding does: IMPORTING on the target, MIGRATING on the source, then NODE on
    /// every master, which makes the source send SUNSUBSCRIBE to the slot's subscribers.
    pub fn migrate_slot(&self, slot: u16, to: usize) {
        let ids = self.ids();
        let from = self.owner(slot);
        if from == to {
            return;
        }
        let slot = slot.to_string();
        let ok = |node: &Redis, args: &[&str]| {
            let answer = node.cli(args);
            assert_eq!(answer, "OK", "{args:?}: {answer}");
        };
        ok(
            &self.nodes[to],
            &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &ids[from]],
        );
        ok(
            &self.nodes[from],
            &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &ids[to]],
        );
        ok(
            &self.nodes[to],
            &["CLUSTER", "SETSLOT", &slot, "NODE", &ids[to]],
        );
        ok(
            &self.nodes[from],
            &["CLUSTER", "SETSLOT", &slot, "NODE", &ids[to]],
        );
        for (i, node) in self.nodes.iter().enumerate() {
            if i != from && i != to {
                ok(node, &["CLUSTER", "SETSLOT", &slot, "NODE", &ids[to]]);
            }
        }
        eventually_blocking(
            Duration::from_secs(10),
            "every master agrees on the slot",
            || self.owner(slot.parse().unwrap_or_default()) == to,
        );
    }

    /// A URL naming every node: `redis://127.0.0.1:p1?node=127.0.0.1:p2&node=…`.
    pub fn url(&self) -> String {
        let mut url = self.nodes[0].url();
        for (i, node) in self.nodes.iter().enumerate().skip(1) {
            url.push(if i == 1 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{}", node.port));
        }
        url
    }
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}
