//! A minimal HTTP/1.1 client for the few REST calls of a run's setup (dev tokens, create
//! groups, follow users): JSON POSTs over one kept-alive connection, over TLS for a
//! `wss://` target.

use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::tls::{Stream, Tls};

/// A connection to one gateway's REST API.
pub struct Http {
    addr: SocketAddr,
    host: String,
    tls: Option<Tls>,
    conn: Option<BufReader<Stream>>,
}

impl Http {
    /// A client for `addr`, sending `host` as the Host header, over `tls` if given.
    pub fn new(addr: SocketAddr, host: &str, tls: Option<Tls>) -> Http {
        Http {
            addr,
            host: host.to_string(),
            tls,
            conn: None,
        }
    }

    /// POSTs `body` (JSON) to `path`, as the bearer of `token` if any; the status and body.
    /// A request on a kept-alive connection the server has closed is retried once.
    pub async fn post(
        &mut self,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> io::Result<(u16, String)> {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        let reused = self.conn.is_some();
        match self.exchange(&request).await {
            Err(_) if reused => {
                self.conn = None;
                self.exchange(&request).await
            }
            other => other,
        }
    }

    async fn exchange(&mut self, request: &str) -> io::Result<(u16, String)> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let tcp = TcpStream::connect(self.addr).await?;
                let stream = Stream::open(tcp, self.tls.as_ref()).await?;
                self.conn.insert(BufReader::new(stream))
            }
        };
        let result = roundtrip(conn, request).await;
        match &result {
            Ok((_, _, keep)) if *keep => {}
            _ => self.conn = None,
        }
        result.map(|(status, body, _)| (status, body))
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// One request and its response: status, body, whether the connection stays usable.
async fn roundtrip(conn: &mut BufReader<Stream>, request: &str) -> io::Result<(u16, String, bool)> {
    conn.get_mut().write_all(request.as_bytes()).await?;
    conn.get_mut().flush().await?;
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("malformed status line"))?;
    let (mut length, mut chunked, mut keep) = (None, false, true);
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(bad("headers cut short"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => keep = !value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("malformed chunk size"))?;
            let mut chunk = vec![0; size + 2];
            conn.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        conn.read_exact(&mut body).await?;
    } else {
        conn.read_to_end(&mut body).await?;
        keep = false;
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned(), keep))
}
