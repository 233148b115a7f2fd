//! A terminal chat client: every server frame is printed as one JSON line; every input line
//! is sent as a frame.
//!
//! ```text
//! cargo run --example chat -- ws://127.0.0.1:8080/ws <token>
//! @2 hello          private message to user 2
//! #team-1 hello     group message to group team-1
//! /sync             unread sync (type 2)
//! /history 2        history with user 2 (type 3)
//! /read <id>        read receipt (type 5)
//! /ping             application ping (type 7)
//! {"type":1,...}    any raw frame
//! ```

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(token)) = (args.next(), args.next()) else {
        eprintln!("usage: chat <ws://host:port/ws> <token>");
        std::process::exit(2);
    };
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (socket, _) = tokio_tungstenite::connect_async(request).await?;
    let (mut sink, mut stream) = socket.split();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => println!("{text}"),
                Some(Ok(Message::Close(close))) => {
                    println!("closed: {close:?}");
                    return Ok(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            line = lines.next_line() => {
                let Some(line) = line? else { return Ok(()) };
                if let Some(frame) = frame_of(line.trim()) {
                    sink.send(Message::text(frame)).await?;
                } else {
                    eprintln!("? @user text | #group text | /sync | /history user | /read id | /ping | raw JSON");
                }
            }
        }
    }
}

fn frame_of(line: &str) -> Option<String> {
    if line.starts_with('{') {
        return Some(line.to_string());
    }
    let (head, rest) = line.split_once(' ').unwrap_or((line, ""));
    let frame = match head {
        "/sync" => json!({"type": 2}),
        "/ping" => json!({"type": 7}),
        "/history" => {
            json!({"type": 3, "recipient_id": rest.trim().parse::<i64>().ok()?, "content": ""})
        }
        "/read" => json!({"type": 5, "content": rest.trim()}),
        _ if head.starts_with('@') => {
            json!({"type": 1, "recipient_id": head[1..].parse::<i64>().ok()?, "content": rest})
        }
        _ if head.starts_with('#') => json!({"type": 4, "group_id": &head[1..], "content": rest}),
        _ => return None,
    };
    Some(frame.to_string())
}
