//! The upgrade: the request that opens a WebSocket, and the check of the server's answer
//! (status 101, the upgrade headers, the accept key derived from the request's key).

use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The longest upgrade response header accepted.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// The upgrade request for `path` on `host`, authenticated by `token`, and the key its
/// answer must derive its `Sec-WebSocket-Accept` from.
pub fn upgrade_request(path: &str, host: &str, token: &str) -> Result<(String, String), String> {
    if token.bytes().any(|b| b.is_ascii_control()) {
        return Err("token is not a valid header value".into());
    }
    let key = generate_key();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    Ok((request, key))
}

/// Where the response header ends (just past its `\r\n\r\n`), once it is all in `buf`.
pub fn response_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Why an upgrade was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum UpgradeError {
    /// The server answered with this status instead of 101.
    Status(u16),
    /// The answer is not a valid upgrade.
    Invalid(String),
}

/// Checks the response header `head` (up to and including its blank line) to an upgrade
/// request made with `key`.
pub fn check_response(head: &[u8], key: &str) -> Result<(), UpgradeError> {
    let invalid = |what: &str| UpgradeError::Invalid(what.to_string());
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(invalid("response header cut short")),
        Err(e) => return Err(UpgradeError::Invalid(format!("malformed response: {e}"))),
    }
    let status = response.code.unwrap_or_default();
    if status != 101 {
        return Err(UpgradeError::Status(status));
    }
    let value = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    if !value("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err(invalid("no \"Upgrade: websocket\" header"));
    }
    let upgrade_token = |v: &str| {
        v.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    };
    if !value("connection").is_some_and(upgrade_token) {
        return Err(invalid("no \"Connection: Upgrade\" header"));
    }
    match value("sec-websocket-accept") {
        Some(accept) if accept == derive_accept_key(key.as_bytes()) => Ok(()),
        Some(_) => Err(invalid("wrong Sec-WebSocket-Accept")),
        None => Err(invalid("no Sec-WebSocket-Accept header")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_upgrade_request() {
        let (request, key) = upgrade_request("/ws?a=1", "127.0.0.1:8080", "abc.def").unwrap();
        assert!(request.starts_with("GET /ws?a=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(request.contains(&format!("\r\nSec-WebSocket-Key: {key}\r\n")));
        assert!(request.contains("\r\nAuthorization: Bearer abc.def\r\n"));
        assert!(request.ends_with("\r\n\r\n"));
        assert_eq!(key.len(), 24, "16 bytes in base64");
        assert!(upgrade_request("/", "h", "a\r\nb").is_err());
    }

    #[test]
    fn checks_the_upgrade_response() {
        // The example of RFC 6455, section 1.3.
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n\
                  Connection: keep-alive, Upgrade\r\n\
                  Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(response_end(ok.as_bytes()), Some(ok.len()));
        assert_eq!(response_end(&ok.as_bytes()[..ok.len() - 1]), None);
        assert_eq!(check_response(ok.as_bytes(), key), Ok(()));
        let wrong = ok.replace("s3pP", "xxxx");
        assert!(matches!(
            check_response(wrong.as_bytes(), key),
            Err(UpgradeError::Invalid(_))
        ));
        let refused = "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            check_response(refused.as_bytes(), key),
            Err(UpgradeError::Status(401))
        );
        let no_upgrade = ok.replace("upgrade: WebSocket\r\n", "");
        assert!(matches!(
            check_response(no_upgrade.as_bytes(), key),
            Err(UpgradeError::Invalid(_))
        ));
        assert!(matches!(
            check_response(b"SSH-2.0-x\r\n\r\n", key),
            Err(UpgradeError::Invalid(_))
        ));
    }
}
