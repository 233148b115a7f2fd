//! Several devices per user: live pushes reach every device of the recipient, a copy of
//! what a user sends reaches their other devices (never the sending one), and a group
//! message reaches every member device except the sending one.

use crate::on_both_backends;
use crate::support::{Backend, Client, TestApp};

async fn private_push_reaches_every_recipient_device(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let mut bobs = vec![
        Client::connect(&app, 2).await,
        Client::connect(&app, 2).await,
        Client::connect(&app, 2).await,
    ];
    let ack = alice.private(2, "to all of you").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    for bob in &mut bobs {
        let pushed = bob.expect(2000).await;
        assert_eq!(pushed["id"], ack["id"]);
        assert_eq!(pushed["content"], "to all of you");
        assert_eq!(pushed["source"], "live");
        bob.expect_nothing_pending().await;
    }
    alice.expect_nothing_pending().await;
}

async fn copy_to_senders_other_devices_not_the_sending_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut phone = Client::connect(&app, 1).await;
    let mut laptop = Client::connect(&app, 1).await;
    let mut tablet = Client::connect(&app, 1).await;
    let mut bob = Client::connect(&app, 2).await;
    let ack = phone.private(2, "sent from the phone").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    for other in [&mut laptop, &mut tablet] {
        let copy = other.expect(2000).await;
        assert_eq!(copy["id"], ack["id"]);
        assert_eq!(copy["sender_id"], 1);
        assert_eq!(copy["recipient_id"], 2);
        assert_eq!(copy["from"], "1->2");
        assert_eq!(copy["source"], "live");
        other.expect_nothing_pending().await;
    }
    assert_eq!(bob.expect(2000).await["id"], ack["id"]);
    // The sending device got only its acknowledgement.
    phone.expect_nothing_pending().await;
}

async fn sender_copy_does_not_make_an_offline_recipient_online(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut phone = Client::connect(&app, 1).await;
    let mut laptop = Client::connect(&app, 1).await;
    let ack = phone.private(2, "bob is away").await;
    assert_eq!(ack["code"], 2101, "{ack}");
    assert_eq!(laptop.expect(2000).await["id"], ack["id"]);
    phone.expect_nothing_pending().await;
}

async fn replies_reach_every_device_of_both(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut a1 = Client::connect(&app, 1).await;
    let mut a2 = Client::connect(&app, 1).await;
    let mut b1 = Client::connect(&app, 2).await;
    let mut b2 = Client::connect(&app, 2).await;
    let ack = a1.private(2, "ping").await;
    for device in [&mut a2, &mut b1, &mut b2] {
        assert_eq!(device.expect(2000).await["id"], ack["id"]);
    }
    let reply = b2.private(1, "pong").await;
    assert_eq!(reply["code"], 2100);
    for device in [&mut a1, &mut a2, &mut b1] {
        let pushed = device.expect(2000).await;
        assert_eq!(pushed["id"], reply["id"]);
        assert_eq!(pushed["sender_id"], 2);
        device.expect_nothing_pending().await;
    }
    b2.expect_nothing_pending().await;
}

async fn a_closed_device_no_longer_counts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut alice = Client::connect(&app, 1).await;
    let b1 = Client::connect(&app, 2).await;
    let mut b2 = Client::connect(&app, 2).await;
    b1.close().await;
    let ack = alice.private(2, "one left").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    assert_eq!(b2.expect(2000).await["id"], ack["id"]);
    b2.close().await;
    // The last device gone, bob is offline; poll until the server has noticed.
    app.wait_offline(2, 1).await;
    let ack = alice.private(2, "none left").await;
    assert_eq!(ack["code"], 2101, "{ack}");
}

async fn group_message_reaches_every_member_device_except_the_sending_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = app.create_group(1, &[2, 3]).await;
    let mut a1 = Client::connect(&app, 1).await;
    let mut a2 = Client::connect(&app, 1).await;
    let mut b1 = Client::connect(&app, 2).await;
    let mut b2 = Client::connect(&app, 2).await;
    let mut c1 = Client::connect(&app, 3).await;
    let mut outsider = Client::connect(&app, 4).await;
    let ack = a1.group(&group, "hello everyone").await;
    assert_eq!(ack["code"], 2100, "{ack}");
    assert_eq!(ack["group_id"], group.as_str());
    for device in [&mut a2, &mut b1, &mut b2, &mut c1] {
        let pushed = device.expect(2000).await;
        assert_eq!(pushed["id"], ack["id"]);
        assert_eq!(pushed["group_id"], group.as_str());
        assert_eq!(pushed["sender_id"], 1);
        assert_eq!(pushed["from"], format!("1->{group}"));
        assert_eq!(pushed["source"], "live");
        assert!(pushed.get("recipient_id").is_none(), "{pushed}");
        device.expect_nothing_pending().await;
    }
    a1.expect_nothing_pending().await;
    outsider.expect_nothing_pending().await;
}

on_both_backends!(
    private_push_reaches_every_recipient_device,
    copy_to_senders_other_devices_not_the_sending_one,
    sender_copy_does_not_make_an_offline_recipient_online,
    replies_reach_every_device_of_both,
    a_closed_device_no_longer_counts,
    group_message_reaches_every_member_device_except_the_sending_one,
);
