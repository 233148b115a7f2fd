//! `Client`: a real WebSocket client for the tests, with a deadline on every wait.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::Request;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::app::TestApp;

/// How long any expected frame may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// A TCP connection to `app` with a tiny receive buffer: a client that stops reading it
/// fills the server's side quickly.
pub async fn small_buffer_stream(app: &TestApp) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(app.addr).await.expect("connecting")
}

/// A connected, authenticated user.
pub struct Client {
    pub user: i64,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// 2800 frames (the conversation list changed) set aside by `recv`: they arrive
    /// whenever a membership changes, so only `expect(2800)` looks at them.
    updates: std::collections::VecDeque<Value>,
    /// 2900 frames (a followed user came online or went offline) set aside by `recv`: they
    /// arrive whenever a followed user connects or leaves, so only `expect(2900)` looks at
    /// them.
    presence: std::collections::VecDeque<Value>,
}

impl Client {
    /// Connects `user` with a bearer header and reads the 1000 frame.
    pub async fn connect(app: &TestApp, user: i64) -> Client {
        Client::connect_url(&app.ws_url(), &app.token(user), user).await
    }

    /// Connects `user` as device `device` (`?device_id=`) and reads the 1000 frame.
    pub async fn connect_device(app: &TestApp, user: i64, device: &str) -> Client {
        let url = format!("{}?device_id={device}", app.ws_url());
        Client::connect_url(&url, &app.token(user), user).await
    }

    /// Connects to `url` with `token`, expecting 1000 for `user`.
    pub async fn connect_url(url: &str, token: &str, user: i64) -> Client {
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let mut client = Client::open(request, user).await.expect("handshake");
        let hello = client.recv().await;
        assert_eq!(hello["code"], 1000, "{hello}");
        assert_eq!(hello["user_id"], user, "{hello}");
        client
    }

    /// Connects `user` over a socket with a tiny receive buffer (and reads the 1000 frame),
    /// so that a client that stops reading fills the server's side quickly.
    pub async fn connect_small_buffer(app: &TestApp, user: i64) -> Client {
        Client::connect_small_buffer_to(app, user, "").await
    }

    /// `connect_small_buffer` with `query` (`?…`) added to the URL.
    pub async fn connect_small_buffer_to(app: &TestApp, user: i64, query: &str) -> Client {
        let stream = small_buffer_stream(app).await;
        let mut request = format!("{}{query}", app.ws_url())
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", app.token(user)).parse().unwrap(),
        );
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)),
        )
        .await
        .expect("handshake timed out")
        .expect("handshake");
        let mut client = Client {
            user,
            ws,
            updates: Default::default(),
            presence: Default::default(),
        };
        client.expect(1000).await;
        client
    }

    /// A handshake request for `user` (bearer header) with `headers` added.
    pub fn request_with(app: &TestApp, user: i64, headers: &[(&str, &str)]) -> Request<()> {
        let mut request = app.ws_url().into_client_request().unwrap();
        let token = format!("Bearer {}", app.token(user));
        request
            .headers_mut()
            .insert("authorization", token.parse().unwrap());
        for (name, value) in headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName = name.parse().unwrap();
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        request
    }

    /// Opens a connection with a prepared request (to test handshakes).
    pub async fn open(request: Request<()>, user: i64) -> Result<Client, Error> {
        Client::open_with_response(request, user)
            .await
            .map(|(client, _)| client)
    }

    /// Opens a connection with a prepared request; the client and the server's 101 answer.
    pub async fn open_with_response(
        request: Request<()>,
        user: i64,
    ) -> Result<(Client, Response), Error> {
        let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("handshake timed out")?;
        Ok((
            Client {
                user,
                ws,
                updates: Default::default(),
                presence: Default::default(),
            },
            response,
        ))
    }

    /// Sends a JSON frame.
    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_string()))
            .await
            .expect("sending a frame");
    }

    /// Sends a raw WebSocket message.
    pub async fn send_raw(&mut self, message: Message) -> Result<(), Error> {
        self.ws.send(message).await
    }

    /// The next text frame as JSON, 2800s and 2900s set aside; panics after `WAIT` or if
    /// the connection ends.
    pub async fn recv(&mut self) -> Value {
        self.recv_but(0).await
    }

    /// The next text frame as JSON, setting aside 2800s and 2900s other than `code`.
    async fn recv_but(&mut self, code: u16) -> Value {
        loop {
            let frame = self.recv_any().await;
            if frame["code"] != code && frame["code"] == 2800 {
                self.updates.push_back(frame);
                continue;
            }
            if frame["code"] != code && frame["code"] == 2900 {
                self.presence.push_back(frame);
                continue;
            }
            return frame;
        }
    }

    /// The next text frame as JSON, whatever it is.
    async fn recv_any(&mut self) -> Value {
        match self.next().await {
            Some(Message::Text(text)) => serde_json::from_str(&text).expect("server frame is JSON"),
            other => panic!("user {}: expected a text frame, got {other:?}", self.user),
        }
    }

    /// The next JSON frame, or `None` once the connection closed (a close frame or its end).
    pub async fn recv_or_close(&mut self) -> Option<Value> {
        match self.next().await {
            Some(Message::Text(text)) => Some(serde_json::from_str(&text).expect("JSON")),
            Some(Message::Close(_)) | None => None,
            Some(other) => panic!("user {}: unexpected {other:?}", self.user),
        }
    }

    /// Sends a JSON frame; an error once the connection is closing or gone.
    pub async fn send_checked(&mut self, frame: Value) -> Result<(), Error> {
        self.ws.send(Message::text(frame.to_string())).await
    }

    /// The next message of any kind (pings skipped), or `None` when the connection ended.
    pub async fn next(&mut self) -> Option<Message> {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("user {}: nothing received within {WAIT:?}", self.user));
            match next {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(message)) => return Some(message),
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Reads for `window`, answering pings (as every client library does); fails on any
    /// other frame. How many pings arrived.
    pub async fn pings_within(&mut self, window: Duration) -> usize {
        let end = tokio::time::Instant::now() + window;
        let mut pings = 0;
        while let Ok(next) = tokio::time::timeout_at(end, self.ws.next()).await {
            match next {
                Some(Ok(Message::Ping(_))) => pings += 1,
                other => panic!("user {}: expected only pings, got {other:?}", self.user),
            }
        }
        pings
    }

    /// Every message, pings included, until the connection ends (`None`).
    pub async fn next_raw(&mut self) -> Option<Message> {
        match tokio::time::timeout(WAIT, self.ws.next()).await {
            Ok(Some(Ok(message))) => Some(message),
            Ok(_) => None,
            Err(_) => panic!("user {}: nothing received within {WAIT:?}", self.user),
        }
    }

    /// The next frame, which must carry `code` (a 2800: the oldest set aside, or the next).
    pub async fn expect(&mut self, code: u16) -> Value {
        let frame = match code {
            2800 => match self.updates.pop_front() {
                Some(update) => update,
                None => self.recv_but(2800).await,
            },
            2900 => match self.presence.pop_front() {
                Some(presence) => presence,
                None => self.recv_but(2900).await,
            },
            _ => self.recv().await,
        };
        assert_eq!(frame["code"], code, "user {}: {frame}", self.user);
        frame
    }

    /// Waits for the close frame; its code.
    pub async fn expect_close(&mut self) -> Option<CloseFrame> {
        loop {
            match self.next().await {
                Some(Message::Close(frame)) => return frame,
                Some(Message::Text(_)) => continue,
                Some(other) => panic!("expected close, got {other:?}"),
                None => return None,
            }
        }
    }

    /// Waits for the close frame, which must carry `code`; its reason.
    pub async fn expect_close_code(&mut self, code: u16) -> String {
        let frame = self.expect_close().await.unwrap_or_else(|| {
            panic!("user {}: connection ended without a close frame", self.user)
        });
        assert_eq!(u16::from(frame.code), code, "user {}: {frame:?}", self.user);
        frame.reason.to_string()
    }

    /// Proves nothing else is queued for this client: a ping's pong is the very next frame.
    pub async fn expect_nothing_pending(&mut self) {
        self.send(json!({"type": 7})).await;
        let frame = self.recv().await;
        assert_eq!(
            frame["code"], 1003,
            "user {}: unexpected frame {frame}",
            self.user
        );
    }

    /// Sends a private message and returns the acknowledgement (whatever its code).
    pub async fn private(&mut self, to: i64, content: &str) -> Value {
        self.send(json!({"type": 1, "recipient_id": to, "content": content}))
            .await;
        self.recv().await
    }

    /// Sends a private message with a `client_msg_id`; the acknowledgement.
    pub async fn private_with_id(&mut self, to: i64, content: &str, client_msg_id: &str) -> Value {
        self.send(json!({"type": 1, "recipient_id": to, "content": content, "client_msg_id": client_msg_id}))
            .await;
        self.recv().await
    }

    /// Sends a private message that must be stored (2100 or 2101); the acknowledgement.
    pub async fn stored(&mut self, to: i64, content: &str) -> Value {
        let ack = self.private(to, content).await;
        assert!(
            ack["code"] == 2100 || ack["code"] == 2101,
            "user {}: message not stored: {ack}",
            self.user
        );
        ack
    }

    /// Sends a group message that must be stored (2100 or 2101); the acknowledgement.
    pub async fn group_stored(&mut self, group: &str, content: &str) -> Value {
        let ack = self.group(group, content).await;
        assert!(
            ack["code"] == 2100 || ack["code"] == 2101,
            "user {}: group message not stored: {ack}",
            self.user
        );
        ack
    }

    /// Type 3 with a cursor and an optional limit: one page.
    pub async fn history(
        &mut self,
        peer: i64,
        cursor: &str,
        limit: Option<u32>,
    ) -> (Vec<Value>, Value) {
        let mut request = json!({"type": 3, "recipient_id": peer, "content": cursor});
        if let Some(limit) = limit {
            request["limit"] = json!(limit);
        }
        self.page(request).await
    }

    /// Type 6 with a cursor and an optional limit: one page.
    pub async fn group_history(
        &mut self,
        group: &str,
        cursor: &str,
        limit: Option<u32>,
    ) -> (Vec<Value>, Value) {
        let mut request = json!({"type": 6, "group_id": group, "content": cursor});
        if let Some(limit) = limit {
            request["limit"] = json!(limit);
        }
        self.page(request).await
    }

    /// Unread sync with a limit.
    pub async fn sync_limit(&mut self, limit: u32) -> (Vec<Value>, Value) {
        self.page(json!({"type": 2, "limit": limit})).await
    }

    /// Sends a read receipt (type 5) for `id`; the answer.
    pub async fn read(&mut self, id: &Value) -> Value {
        let id = id.as_str().expect("message id");
        self.send(json!({"type": 5, "content": id})).await;
        self.recv().await
    }

    /// Sends a group message and returns the acknowledgement.
    pub async fn group(&mut self, group: &str, content: &str) -> Value {
        self.send(json!({"type": 4, "group_id": group, "content": content}))
            .await;
        self.recv().await
    }

    /// Sends a request and collects message frames up to the 2200 that ends the page.
    pub async fn page(&mut self, request: Value) -> (Vec<Value>, Value) {
        self.send(request).await;
        let mut messages = Vec::new();
        loop {
            let frame = self.recv().await;
            match frame["code"].as_u64() {
                Some(2000) => messages.push(frame),
                Some(2200) => return (messages, frame),
                _ => panic!("user {}: unexpected frame in a page: {frame}", self.user),
            }
        }
    }

    /// Unread sync (type 2).
    pub async fn sync(&mut self) -> (Vec<Value>, Value) {
        self.page(json!({"type": 2})).await
    }

    /// Confirms delivery up to `id` (type 9); the answer.
    pub async fn confirm(&mut self, id: &Value) -> Value {
        let id = id.as_str().expect("message id");
        self.send(json!({"type": 9, "content": id})).await;
        self.recv().await
    }

    /// Syncs page after page until the end; every message, in order.
    pub async fn sync_all(&mut self, limit: u32) -> Vec<Value> {
        let mut all = Vec::new();
        loop {
            let (page, end) = self.sync_limit(limit).await;
            all.extend(page);
            if end["content"] == "end" {
                return all;
            }
        }
    }

    /// The 2900 frames received and set aside so far (not yet taken by `expect(2900)`).
    pub fn presence_seen(&self) -> Vec<Value> {
        self.presence.iter().cloned().collect()
    }

    /// Closes the connection cleanly.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.ws.next()).await {}
    }
}
