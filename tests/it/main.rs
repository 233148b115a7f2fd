//! Integration tests: the real server over the network, on SQLite and on MySQL (a mariadbd
//! the harness spawns), driven by a real WebSocket client.

mod support;

mod private;
