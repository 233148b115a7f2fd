//! The `chat-gateway` command: serve (default), migrate, mint a token, check configuration,
//! check a running node's health.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

use chat_gateway::auth::Authenticator;
use chat_gateway::{Application, Settings, fdlimit, telemetry};

/// mimalloc instead of the system allocator: glibc's malloc took ~9 % of a node's CPU at
/// 20,000 private messages/s (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "A horizontally scalable WebSocket chat gateway")]
struct Cli {
    /// TOML configuration file (then CHAT__SECTION__KEY variables override it).
    #[arg(long, short, global = true, env = "CHAT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Mint a JWT for a user with the configured auth.jwt_secret.
    Token {
        /// The user id (the token's sub).
        #[arg(long)]
        user: i64,
        /// Lifetime, such as 24h, 30m, 7days.
        #[arg(long, default_value = "24h")]
        ttl: humantime::Duration,
    },
    /// Load and validate the configuration, print it with secrets hidden, and exit.
    CheckConfig,
    /// Ask this node's /health/ready (on server.metrics_bind when set, else server.bind)
    /// and exit 0 when it answers 200, 1 otherwise: the container image's HEALTHCHECK.
    Healthcheck {
        /// Ask /health/live instead: whether the process answers at all.
        #[arg(long)]
        live: bool,
        /// Longest wait for the answer, connecting included.
        #[arg(long, default_value = "1s")]
        timeout: humantime::Duration,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref()).context("loading configuration")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            settings.validate().map_err(anyhow::Error::msg)?;
            println!("{settings:#?}");
            println!("configuration OK");
            Ok(())
        }
        Command::Token { user, ttl } => {
            anyhow::ensure!(user > 0, "--user must be a positive integer");
            let secret = settings.auth.jwt_secret.as_ref().context(
                "auth.jwt_secret is not set (CHAT__AUTH__JWT_SECRET): tokens minted now would not verify anywhere",
            )?;
            anyhow::ensure!(
                secret.expose().len() >= 32,
                "auth.jwt_secret must be at least 32 bytes"
            );
            let auth = Authenticator::new(secret.expose().as_bytes()).with_claims(
                settings.auth.issuer.as_deref(),
                settings.auth.audience.as_deref(),
            );
            println!("{}", auth.mint(user, Duration::from(ttl)));
            Ok(())
        }
        Command::Healthcheck { live, timeout } => {
            let addr = chat_gateway::healthcheck::target(&settings.server);
            let path = if live {
                "/health/live"
            } else {
                "/health/ready"
            };
            let probed = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?
                .block_on(chat_gateway::healthcheck::probe(
                    addr,
                    path,
                    Duration::from(timeout),
                ));
            match probed {
                Ok(()) => Ok(()),
                Err(problem) => {
                    eprintln!("unhealthy: {problem}");
                    std::process::exit(1);
                }
            }
        }
        Command::Migrate => runtime(0)?.block_on(async {
            telemetry::init(&settings.log, &Default::default());
            chat_gateway::store::migrate(&settings.storage)
                .await
                .with_context(|| format!("migrating {}", settings.storage.url))?;
            println!("migrations applied");
            Ok(())
        }),
        Command::Serve => runtime(settings.server.worker_threads)?.block_on(serve(settings)),
    }
}

/// The multi-threaded runtime, with `workers` threads (0: tokio's default, one per CPU this
/// process may use).
fn runtime(workers: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        builder.worker_threads(workers);
    }
    builder.enable_all().build().context("starting the runtime")
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let telemetry = telemetry::init(&settings.log, &settings.traces);
    raise_fd_limit();
    let app = Application::build(settings).await?;
    let addr = app.local_addr();
    let state = app.state().clone();
    tracing::info!(
        %addr,
        storage = %state.settings.storage.url,
        bus = %state.settings.bus.url,
        stranger_counters = %state.settings.stranger_counters(),
        "chat-gateway listening"
    );
    println!("chat-gateway listening on ws://{addr}/ws");
    if state.settings.server.web_ui {
        println!("open {} in a browser", page_url(addr));
    }
    if state.dev_tokens {
        println!(
            "dev mode: get a token with\n  curl -s -X POST http://{addr}/api/dev/token -H 'content-type: application/json' -d '{{\"user_id\":1}}'"
        );
    }
    let served = app.run_until(shutdown_signal()).await;
    // The exporter's last batch leaves on its own thread; wait for it off the runtime.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    served
}

/// The web app's address as a browser on this machine reaches it: a wildcard bind
/// (`0.0.0.0`, `::`) is opened through loopback.
fn page_url(addr: std::net::SocketAddr) -> String {
    let port = addr.port();
    match addr.ip() {
        ip if ip.is_unspecified() => format!("http://localhost:{port}/"),
        std::net::IpAddr::V6(ip) => format!("http://[{ip}]:{port}/"),
        std::net::IpAddr::V4(ip) => format!("http://{ip}:{port}/"),
    }
}

/// Below this many descriptors a node is reported as capped: it holds one per connection.
const FEW_FDS: u64 = 16_384;

/// Raises the soft file-descriptor limit to the hard one (`fdlimit`) and logs the result,
/// with a warning when it still caps the node.
fn raise_fd_limit() {
    let fdlimit::Raised {
        initial,
        soft,
        hard,
    } = fdlimit::raise();
    if soft < FEW_FDS {
        tracing::warn!(
            soft,
            hard,
            "the file-descriptor limit caps this node at about {soft} connections; raise the \
             hard limit (ulimit -Hn, systemd LimitNOFILE=, the container runtime's nofile)"
        );
    } else {
        tracing::info!(initial, soft, hard, "file-descriptor limit");
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("draining");
}
