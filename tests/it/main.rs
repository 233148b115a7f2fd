//! Integration tests: the real server over the network, on SQLite and on MySQL (a mariadbd
//! the harness spawns), driven by a real WebSocket client.

mod support;

mod auth;
mod autobahn;
mod batching;
mod bus_contract;
mod bus_outage;
mod catchup;
mod closing;
mod cluster;
mod drain;
mod duplicates;
mod edge;
mod faults;
mod framing;
mod groups;
mod handshake;
mod handshake_props;
mod history;
mod jwks;
mod limiter_contract;
mod limits;
mod liveness;
mod load_tool;
mod metrics_listener;
mod multi_device;
mod observability;
mod private;
mod process;
mod protocol_errors;
mod push;
mod readiness;
mod receipts;
mod rest_groups;
mod rest_social;
mod rfc_handshake;
mod sharded;
mod storage_failure;
mod store_contract;
mod stranger;
mod sync;
mod token_life;
mod upgrade;
