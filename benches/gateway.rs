//! Micro-benchmarks of the hot path: frame decode and encode, envelope encode/decode, and the
//! hub's fan-out of one group message to 10,000 local connections.
//!
//! `cargo bench --bench gateway`; numbers and the machine are in docs/performance.md.

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use chat_gateway::bus::{Envelope, Inbound, MemoryBus, Topic};
use chat_gateway::hub::Hub;
use chat_gateway::message::{Message, Target};
use chat_gateway::metrics::Metrics;
use chat_gateway::protocol::{ClientFrame, Source, server};
use chat_gateway::ws::outbox::Outbox;

fn frames(c: &mut Criterion) {
    let text = r#"{"type":1,"recipient_id":42,"content":"hello there, how are you doing today?","client_msg_id":"c-0001"}"#;
    c.bench_function("decode private frame", |b| {
        b.iter(|| ClientFrame::parse(black_box(text), 4096).unwrap())
    });
    let message = Message::new(
        7,
        Target::User(42),
        "hello there, how are you doing today?".into(),
        Some("c-0001".into()),
    );
    c.bench_function("encode 2000 frame", |b| {
        b.iter(|| server::message(black_box(&message), Source::Live))
    });
    c.bench_function("encode 2100 ack", |b| {
        b.iter(|| server::stored(black_box(&message), true))
    });
    let frame = server::message(&message, Source::Live);
    c.bench_function("encode envelope", |b| {
        b.iter(|| Envelope::deliver(Some(12345), black_box(&frame)))
    });
    let envelope = Envelope::deliver(Some(12345), &frame);
    c.bench_function("decode envelope", |b| {
        b.iter(|| Envelope::decode(black_box(envelope.clone())).unwrap())
    });
}

fn fan_out(c: &mut Criterion) {
    const MEMBERS: usize = 10_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let bus = Arc::new(MemoryBus::new());
    let hub = Hub::new(
        bus,
        Duration::ZERO,
        4,
        Duration::ZERO,
        Arc::new(Metrics::default()),
    );
    let group: chat_gateway::ids::GroupId = "big".into();
    let outboxes: Vec<Arc<Outbox>> = (0..MEMBERS)
        .map(|i| {
            let outbox = Arc::new(Outbox::new(None, 1 << 20));
            let user = i as i64 + 1;
            hub.register(user, i as u64 + 1, outbox.clone());
            hub.add_groups(user, [group.clone()]);
            outbox
        })
        .collect();
    let message = Message::new(
        1,
        Target::Group(group.clone()),
        "hello everyone".into(),
        None,
    );
    let envelope: Bytes = Envelope::deliver(Some(1), &server::message(&message, Source::Live));
    let mut g = c.benchmark_group("hub");
    g.throughput(Throughput::Elements(MEMBERS as u64));
    g.bench_function("fan-out to 10k local connections", |b| {
        b.iter_batched(
            || envelope.clone(),
            |envelope| {
                hub.deliver(Topic::Group(group.clone()), envelope);
                for outbox in &outboxes {
                    outbox.discard_queued();
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, frames, fan_out);
criterion_main!(benches);
