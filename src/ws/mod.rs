//! The WebSocket transport (RFC 6455), knowing nothing of chat: the framing, the outbound
//! queue between the hub and a socket, the close reasons and codes, the writes (partial and
//! vectored), the flusher, the frame rate and the shared TCP socket.

pub mod close;
pub mod flusher;
pub mod frame;
pub mod outbox;
pub mod rate;
pub mod socket;
mod write;

/// A connected TCP pair for the transport's tests: the server's end and the client's.
#[cfg(test)]
async fn socket_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(client, listener.accept());
    (accepted.unwrap().0, client.unwrap())
}
