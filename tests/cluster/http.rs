//! A tiny blocking HTTP/1.0 client for Patroni's REST API on loopback.
//!
//! Patroni's server closes the connection after each HTTP/1.0 response, so reading to
//! EOF gives the whole response; no keep-alive, chunking or TLS is needed here.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

/// A response: status code and body text.
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Sends one request to `127.0.0.1:port` and reads the response until the server closes.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<Response> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("{method} {path} on port {port}"))?;
    parse(&raw).with_context(|| format!("{method} {path} on port {port}"))
}

fn parse(raw: &[u8]) -> Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no end of headers in {} bytes", raw.len()))?;
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        bail!("bad status line {status_line:?}");
    };
    if !version.starts_with("HTTP/") {
        bail!("bad status line {status_line:?}");
    }
    Ok(Response {
        status: code.parse().with_context(|| format!("status {code:?}"))?,
        body: body.to_string(),
    })
}

/// GET `path` and parse the JSON body; errors on a non-2xx status.
pub fn get_json(port: u16, path: &str) -> Result<serde_json::Value> {
    let resp = request(port, "GET", path, None, Duration::from_secs(5))?;
    if !(200..300).contains(&resp.status) {
        bail!(
            "GET {path} on port {port}: HTTP {}: {}",
            resp.status,
            resp.body
        );
    }
    serde_json::from_str(&resp.body).with_context(|| format!("JSON from GET {path}"))
}
