//! `Application`: builds a node from settings, binds its listener, serves until told to
//! stop, then drains.

use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::Admission;
use crate::auth::Authenticator;
use crate::health::Health;
use crate::hub::Hub;
use crate::limiter::Answered;
use crate::metrics::Metrics;
use crate::settings::{BusUrl, Settings};
use crate::state::{AppState, Shared};
use crate::store::MessageWriter;

/// A built node, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    /// The private listener of `server.metrics_bind`, when set.
    metrics_listener: Option<TcpListener>,
    state: AppState,
}

impl Application {
    /// Validates settings, connects storage and bus, and binds `server.bind` (port 0 picks
    /// a free port: see `local_addr`).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        settings.validate().map_err(anyhow::Error::msg)?;
        let dev_tokens = settings.dev_tokens();
        let shutdown = CancellationToken::new();
        let auth = Authenticator::start(&settings.auth, dev_tokens, shutdown.clone()).await?;
        let store = crate::store::connect(&settings.storage)
            .await
            .with_context(|| format!("connecting to storage {:?}", settings.storage.url))?;
        let writer = MessageWriter::start(
            store.clone(),
            settings.storage.batch_max,
            settings.storage.batch_interval,
        );
        let bus = crate::bus::connect(&settings.bus)
            .await
            .with_context(|| format!("connecting to bus {:?}", settings.bus.url))?;
        let metrics = Arc::new(Metrics::default());
        let limiter = crate::limiter::connect(&settings, metrics.clone())
            .await
            .with_context(|| {
                let url = settings.stranger_counters();
                format!("connecting the stranger counters to {url:?}")
            })?;
        if settings.stranger_counters() == &BusUrl::Memory && settings.bus.url != BusUrl::Memory {
            tracing::warn!(
                "the stranger counters are in memory while the bus is Redis: each node counts \
                 on its own, so a stranger may send limits.stranger_messages per node"
            );
        }
        let hub = Hub::new(
            bus.clone(),
            settings.bus.unsubscribe_delay,
            settings.server.max_devices_per_user,
            settings.server.group_write_delay,
            metrics.clone(),
        );
        let listener = crate::ws::socket::bind(settings.server.bind)
            .with_context(|| format!("binding {}", settings.server.bind))?;
        let metrics_listener = match settings.server.metrics_bind {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding server.metrics_bind {addr}"))?,
            ),
            None => None,
        };
        let push = crate::push::Push::start(&settings.push, &store);
        let state = AppState::new(Shared {
            auth,
            dev_tokens,
            store,
            writer,
            bus,
            hub,
            expiries: Arc::default(),
            limiter,
            answered: Answered::default(),
            metrics,
            health: Arc::new(Health::new(settings.server.ready_tolerance)),
            admission: Admission::new(&settings.server, crate::fdlimit::soft()),
            shutdown,
            tracker: TaskTracker::new(),
            push,
            presence: Arc::default(),
            settings,
        });
        Ok(Application {
            listener,
            metrics_listener,
            state,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.settings.server.bind)
    }

    /// The bound address of the private listener (`server.metrics_bind`), when set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The node's shared state (for the `token` subcommand and tests).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then drains: readiness turns 503 and new upgrades
    /// are refused (the node keeps answering HTTP meanwhile), every connection gets 1001 and
    /// close 1012 after answering the frame it is handling, spread over
    /// `server.drain_window`, and the node waits up to `server.shutdown_grace` for them.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let router = crate::http::router(state.clone());
        let on_signal = state.clone();
        tokio::spawn(async move {
            shutdown.await;
            on_signal.shutdown.cancel();
            // Connections get 1001 and close 1012 spread over the drain window, each after
            // answering the frame it is handling.
            let window = on_signal.settings.server.drain_window;
            on_signal.hub.drain(window).await;
        });
        tokio::spawn(state.expiries.clone().run(state.shutdown.clone()));
        tokio::spawn(crate::chat::memberships::reconcile(state.clone()));
        tokio::spawn(state.presence.clone().run(crate::presence::Tellers {
            hub: state.hub.clone(),
            bus: state.bus.clone(),
            store: state.store.clone(),
            max_followers: state.settings.chat.presence_max_followers,
        }));
        tokio::spawn(state.health.clone().run(
            state.store.clone(),
            state.bus.clone(),
            state.shutdown.clone(),
        ));
        tokio::spawn(crate::push::Push::dispatch(
            state.settings.push.clone(),
            state.store.clone(),
            state.bus.clone(),
            state.metrics.clone(),
            state.shutdown.clone(),
        ));
        let server = &state.settings.server;
        tokio::spawn(state.hub.clone().run_sweeper(
            server.ping_interval,
            server.idle_timeout,
            state.shutdown.clone(),
        ));
        let stop = CancellationToken::new();
        // The private listener answers through the drain too (readiness says "draining"),
        // until the node exits.
        let private = self.metrics_listener.map(|listener| {
            let router = crate::http::private_router(state.clone());
            let stop = stop.clone();
            tokio::spawn(async move {
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
                if let Err(e) = served {
                    tracing::warn!(error = %e, "the metrics listener stopped");
                }
            })
        });
        let serving = tokio::spawn(crate::http::serve(
            self.listener,
            router,
            state.clone(),
            stop.clone(),
        ));
        state.shutdown.cancelled().await;
        state.tracker.close();
        if tokio::time::timeout(state.settings.server.shutdown_grace, state.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = state.hub.connections(),
                "shutdown grace ran out with connections open"
            );
        }
        stop.cancel();
        let _ = serving.await;
        if let Some(private) = private {
            let _ = private.await;
        }
        Ok(())
    }
}
