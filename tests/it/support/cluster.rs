//! A whole deployment on this machine for the multi-node tests: redis-server, a fresh
//! database on the shared mariadbd, N processes of the real `chat-gateway` binary, and
//! haproxy in front of them. Everything is torn down when the `Cluster` drops, even when a
//! test fails.

use chat_gateway::auth::Authenticator;
use serde_json::Value;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::app::{SECRET, request};
use super::client::Client;
use super::eventually::eventually_blocking;
use super::guarded::{Guarded, Spawn};
use super::services::{MariaDb, Redis, binary, free_port};

/// One gateway process.
pub struct Node {
    pub port: u16,
    pub log: PathBuf,
    process: Guarded,
    env: Vec<(String, String)>,
}

impl Node {
    fn start(port: u16, env: &[(String, String)], log: PathBuf) -> Node {
        let program = Path::new(env!("CARGO_BIN_EXE_chat-gateway"));
        let spawn = Spawn {
            env,
            ..Spawn::default()
        };
        let process = Guarded::spawn_with(program, &[], &log, spawn);
        Node {
            port,
            log,
            process,
            env: env.to_vec(),
        }
    }

    /// Starts the node again (after a signal stopped it) on the same port and settings.
    pub fn restart(&mut self) {
        self.process.kill();
        *self = Node::start(self.port, &self.env.clone(), self.log.clone());
    }

    /// The process id (to pause it with SIGSTOP).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Sends `signal` (such as `KILL` or `TERM`) and waits for the process to exit.
    pub fn signal(&mut self, signal: &str) {
        self.process.signal(signal);
    }

    /// Whether the process was stopped.
    pub fn is_stopped(&self) -> bool {
        self.process.is_stopped()
    }

    /// `ws://127.0.0.1:port/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    fn ready(&self) -> bool {
        http_status(self.port, "/health/ready") == Some(200)
    }
}

/// Redis, a database, N nodes and haproxy.
pub struct Cluster {
    pub redis: Redis,
    pub database: String,
    pub nodes: Vec<Node>,
    pub lb_port: u16,
    haproxy: Option<Guarded>,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    auth: Authenticator,
    http: reqwest::Client,
}

impl Cluster {
    /// Starts everything with `nodes` gateway processes; returns when all are ready and
    /// haproxy routes to them.
    pub async fn start(nodes: usize) -> Cluster {
        Cluster::start_with(nodes, &[]).await
    }

    /// As `start`, with extra `CHAT__…` settings for every node.
    pub async fn start_with(count: usize, extra: &[(&str, &str)]) -> Cluster {
        let database = MariaDb::shared().fresh_database().await;
        Cluster::start_on(count, extra, database).await
    }

    /// As `start_with`, on the database at `database` (a `mysql://` URL; the fault tests
    /// give each cluster a mariadbd of its own, to kill).
    pub async fn start_on(count: usize, extra: &[(&str, &str)], database: String) -> Cluster {
        let redis = Redis::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut env: Vec<(String, String)> = vec![
            ("CHAT__AUTH__JWT_SECRET".into(), SECRET.into()),
            ("CHAT__AUTH__DEV_TOKENS".into(), "false".into()),
            ("CHAT__STORAGE__URL".into(), database.clone()),
            ("CHAT__BUS__URL".into(), redis.url()),
            ("CHAT__SERVER__SHUTDOWN_GRACE".into(), "3s".into()),
            ("CHAT__SERVER__DRAIN_WINDOW".into(), "1s".into()),
            ("CHAT__LOG__LEVEL".into(), "info".into()),
        ];
        for (k, v) in extra {
            env.push((k.to_string(), v.to_string()));
        }
        let mut cluster = Cluster {
            redis,
            database,
            nodes: Vec::new(),
            lb_port: free_port(),
            haproxy: None,
            env,
            auth: Authenticator::new(SECRET.as_bytes()),
            http: reqwest::Client::new(),
            dir,
        };
        for _ in 0..count {
            cluster.add_node();
        }
        cluster.wait_all_ready();
        cluster.start_haproxy();
        cluster
    }

    /// Starts one more node (index = its position in `nodes`).
    pub fn add_node(&mut self) -> usize {
        let port = free_port();
        let index = self.nodes.len();
        let mut env = self.env.clone();
        env.push(("CHAT__SERVER__BIND".into(), format!("127.0.0.1:{port}")));
        let log = self.dir.path().join(format!("node{index}.log"));
        self.nodes.push(Node::start(port, &env, log));
        index
    }

    /// Waits until every running node answers its readiness check.
    pub fn wait_all_ready(&self) {
        for node in self.nodes.iter().filter(|n| !n.is_stopped()) {
            eventually_blocking(
                Duration::from_secs(60),
                &format!(
                    "gateway node on port {} ready (log {})",
                    node.port,
                    node.log.display()
                ),
                || node.ready(),
            );
        }
    }

    fn start_haproxy(&mut self) {
        let mut servers = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            servers.push_str(&format!("    server n{i} 127.0.0.1:{} check\n", node.port));
        }
        let config = format!(
            "global\n    maxconn 4000\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n    timeout tunnel 1h\n\
             frontend gateway\n    bind 127.0.0.1:{lb}\n    default_backend nodes\n\
             backend nodes\n    balance roundrobin\n    option httpchk GET /health/ready\n    http-check expect status 200\n\
             \x20   default-server inter 300ms fall 2 rise 1\n{servers}",
            lb = self.lb_port
        );
        let path = self.dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("writing haproxy.cfg");
        let haproxy = binary("haproxy", "haproxy");
        self.haproxy = Some(Guarded::spawn(
            &haproxy,
            &["-db".into(), "-f".into(), path.display().to_string()],
            &self.dir.path().join("haproxy.log"),
        ));
        let port = self.lb_port;
        eventually_blocking(
            Duration::from_secs(30),
            "haproxy routing to a ready node",
            || http_status(port, "/health/ready") == Some(200),
        );
    }

    /// The load balancer's WebSocket URL.
    pub fn lb_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.lb_port)
    }

    /// A valid token for `user`.
    pub fn token(&self, user: i64) -> String {
        self.auth.mint(user, Duration::from_secs(3600))
    }

    /// Connects `user` directly to node `index`.
    pub async fn connect(&self, index: usize, user: i64) -> Client {
        Client::connect_url(&self.nodes[index].ws_url(), &self.token(user), user).await
    }

    /// Connects `user` through haproxy.
    pub async fn connect_lb(&self, user: i64) -> Client {
        Client::connect_url(&self.lb_url(), &self.token(user), user).await
    }

    /// SIGKILLs node `index`.
    pub fn kill_node(&mut self, index: usize) {
        self.nodes[index].signal("KILL");
    }

    /// Sends a REST request to node `index` as `user`; the status and JSON body, as
    /// `TestApp::request` gives them.
    pub async fn request(
        &self,
        index: usize,
        method: reqwest::Method,
        path: &str,
        user: i64,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.nodes[index].port);
        request(&self.http, method, &url, Some(self.token(user)), body).await
    }

    /// `GET path` on node `index` as `user`.
    pub async fn get(&self, index: usize, path: &str, user: i64) -> (u16, Value) {
        self.request(index, reqwest::Method::GET, path, user, None)
            .await
    }

    /// Polls until `redis` reports `subscribers` subscribers on `channel`.
    pub fn wait_subscribers(&self, channel: &str, subscribers: usize) {
        eventually_blocking(
            Duration::from_secs(10),
            &format!("{subscribers} subscribers on {channel}"),
            || {
                let out = self.redis.cli(&["PUBSUB", "NUMSUB", channel]);
                let count = out
                    .lines()
                    .nth(1)
                    .and_then(|n| n.trim().parse::<usize>().ok());
                if count == Some(subscribers) {
                    Ok(())
                } else {
                    Err(out)
                }
            },
        );
    }
}

/// The status of a plain HTTP GET, or `None` when nothing answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::Read;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
